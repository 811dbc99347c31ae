/* mem_states.c — in-flight states of interleaved op lists (mem_states.h).
 * defines: mp_mem_states_build, mp_mem_states_peak, mp_mem_states_free */
#include "mem_states.h"

#include "clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows while sorting carry their width first: w, e, n_0..n_{v-1}. */
static int cmp_rows(const void *a, const void *b)
{
    const int *x = a, *y = b;
    for (int i = 1; i <= x[0]; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* Appends to ms->rows the unique, undominated rows of the n rows in buf
 * (stride w + 1, sorted); returns the new row count, -1 past deadline. */
static int keep_rows(mp_mem_states *ms, int *buf, int n, int w, int out, double deadline)
{
    int u = 0;  /* unique rows, in place */
    for (int a = 0; a < n; a++) {
        const int *ra = buf + (size_t)a * (w + 1);
        if (u > 0 && !memcmp(ra, buf + (size_t)(u - 1) * (w + 1), (size_t)(w + 1) * sizeof(int))) continue;
        memmove(buf + (size_t)u++ * (w + 1), ra, (size_t)(w + 1) * sizeof(int));
    }
    for (int a = 0; a < u; a++) {
        const int *ra = buf + (size_t)a * (w + 1) + 1;
        int dominated = 0;
        if (deadline < HUGE_VAL && a % 64 == 0 && mp_now_s() >= deadline) return -1;
        for (int b = 0; b < u && !dominated && u <= 4096; b++) {
            const int *rb = buf + (size_t)b * (w + 1) + 1;
            if (b == a || rb[0] != ra[0]) continue;
            int ge = 1;
            for (int c = 1; c < w && ge; c++) ge = rb[c] >= ra[c];
            dominated = ge;
        }
        if (!dominated) memcpy(ms->rows + (size_t)out++ * w, ra, (size_t)w * sizeof(int));
    }
    return out;
}

/* See mem_states.h. */
mp_status mp_mem_states_build(mp_mem_states *ms, const mp_op_lists *ops, int v)
{
    return mp_mem_states_build_by(ms, ops, v, HUGE_VAL);
}

/* See mem_states.h. */
mp_status mp_mem_states_build_by(mp_mem_states *ms, const mp_op_lists *ops, int v, double deadline)
{
    int K = ops->num_positions, S = ops->num_stages, w = v + 1, total = 0;
    mp_mem_states_free(ms);
    ms->K = K;
    ms->v = v;
    for (int p = 0; p < K; p++) total += ops->len[p];
    int *buf = malloc((size_t)total * (w + 1) * sizeof(int)), *cur = calloc((size_t)S, sizeof(int)), cnt[v];
    ms->rows = malloc((size_t)total * w * sizeof(int));
    ms->row_off = malloc((size_t)(K + 1) * sizeof(int));
    ms->nmax = calloc((size_t)S, sizeof(int));
    if (!buf || !cur || !ms->rows || !ms->row_off || !ms->nmax) {
        free(buf);
        free(cur);
        mp_mem_states_free(ms);
        return MP_ERR_NOMEM;
    }
    int out = 0;
    for (int p = 0; p < K; p++) {
        int n = 0;
        for (int c = 0; c < v; c++) cnt[c] = 0;
        for (int i = 0; i < ops->len[p]; i++) {
            int t = ops->ops[p][i].stage, c = t / K, fwd = ops->ops[p][i].kind == MP_OP_FWD;
            if (fwd) cnt[c]++;
            if (fwd && ++cur[t] > ms->nmax[t]) ms->nmax[t] = cur[t];
            int *r = buf + (size_t)n++ * (w + 1);
            r[0] = w;
            r[1] = fwd ? -1 : c;
            memcpy(r + 2, cnt, (size_t)v * sizeof(int));
            if (!fwd) cnt[c]--, cur[t]--;
        }
        if (deadline < HUGE_VAL && mp_now_s() >= deadline) out = -1;
        if (out >= 0) {
            qsort(buf, (size_t)n, (size_t)(w + 1) * sizeof(int), cmp_rows);
            ms->row_off[p] = out;
            out = keep_rows(ms, buf, n, w, out, deadline);
        }
        if (out < 0) {
            free(buf);
            free(cur);
            mp_mem_states_free(ms);
            return MP_ERR_TIMEOUT;
        }
    }
    ms->row_off[K] = out;
    free(buf);
    free(cur);
    return MP_OK;
}

/* See mem_states.h. */
double mp_mem_states_peak(const mp_mem_states *ms, int p, double params, const double *held,
                          const double *extra)
{
    int v = ms->v, w = v + 1;
    double best = 0;
    for (int r = ms->row_off[p]; r < ms->row_off[p + 1]; r++) {
        const int *row = ms->rows + (size_t)r * w;
        if (row[0] >= 0 && !extra) continue;
        double h = row[0] >= 0 ? extra[row[0]] : 0;
        for (int c = 0; c < v; c++) h += row[c + 1] * held[c];
        if (h > best) best = h;
    }
    return params + best;
}

/* See mem_states.h. */
void mp_mem_states_free(mp_mem_states *ms)
{
    free(ms->rows);
    free(ms->row_off);
    free(ms->nmax);
    ms->rows = ms->row_off = ms->nmax = NULL;
}
