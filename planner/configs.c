/* configs.c — the search's configurations (configs.h).
 * defines: mp_config_fits, mp_config_replicas_ok, mp_configs_list */
#include "configs.h"
#include "schedule.h"
#include "split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.h"


/* See configs.h. A stage's peak grows with its last layer, so the layers
 * reachable after stage s form intervals, each marked once. */
int mp_config_fits(const mp_stage_fit *f, int *from, int *hi_out)
{
    int L = f->ps->L, S = f->S;
    for (int i = 0; i < (S + 1) * (L + 1); i++) from[i] = -1;
    from[0] = 0;
    for (int s = 0; s < S; s++) {
        int marked = -1, any = 0, *cur = from + (size_t)s * (L + 1), *next = cur + L + 1;
        for (int lo = 0; lo < L; lo++) {
            if (cur[lo] < 0) continue;
            int h, hmax = L - 1 - (S - 1 - s);
            MP_LAST_TRUE(h, lo, hmax, mp_stage_fit_rc(f, s, lo, hi) >= 0);
            for (int k = (lo > marked + 1 ? lo : marked + 1); k <= h; k++) next[k + 1] = lo, any = 1;
            if (h > marked) marked = h;
        }
        if (!any) return 0;
    }
    if (from[(size_t)S * (L + 1) + L] < 0) return 0;
    for (int s = S, end = L; hi_out && s >= 1; s--) {
        hi_out[s - 1] = end - 1;
        end = from[(size_t)s * (L + 1) + end];
    }
    return 1;
}

/* See configs.h. */
int mp_config_replicas_ok(const mp_cluster *cl, int K, int D, int ring)
{
    if (D < 1 || (long)D * K > cl->num_devices) return 0;
    for (int r = 1; r < D; r++)
        for (int k = 0; k < K; k++) {
            const mp_device *a = &cl->devices[k], *d = &cl->devices[r * K + k];
            if (d->speed != a->speed || d->memory_bytes != a->memory_bytes) return 0;
            for (int j = k - 1; j <= k + 1; j += 2) {
                int q = ring && K > 2 ? (j + K) % K : j;   /* ring: the wrap link K-1 <-> 0 too */
                if (q < 0 || q >= K) continue;
                mp_link l0 = mp_cluster_link(cl, k, q), l1 = mp_cluster_link(cl, r * K + k, r * K + q);
                if (l0.bandwidth != l1.bandwidth || l0.latency_s != l1.latency_s) return 0;
            }
        }
    return 1;
}

static int cmp_config(const void *a, const void *b)
{
    const mp_config *x = a, *y = b;
    if (x->lb != y->lb) return x->lb < y->lb ? -1 : 1;
    if (x->S != y->S) return x->S - y->S;
    if (x->b != y->b) return x->b - y->b;
    if (x->pl != y->pl) return x->pl - y->pl;
    return x->D - y->D;
}

/* See configs.h. */
mp_status mp_configs_list(const mp_search_opts *o, const mp_cluster *cl, const mp_placements *pls, const mp_prefix *ps,
                          mp_bound_data *bd, mp_config **out, int *n, long *dropped, mp_error *err)
{
    int G = o->global_batch, N = cl->num_devices, L = ps->L, cap = 64, cnt = 0;
    mp_config *v = malloc((size_t)cap * sizeof *v);
    int *from = malloc(mp_config_fits_scratch(ps, cl) * sizeof(int));
    *out = NULL;
    *n = 0;
    if (!v || !from) goto nomem;
    for (int D = 1; D <= N; D++) {
        if (o->data_parallel > 0 ? D != o->data_parallel : 0) continue;
        for (int b = 1; b <= G; b++) {
            if (G % ((long)D * b) || (o->microbatch && b != o->microbatch)) continue;
            int m = G / (D * b);
            /* one replica: each placement; replicas: K = 1..N/D in the file order */
            int nk = D == 1 ? pls->n : N / D;
            for (int j = 0; j < nk; j++) {
                int K = D == 1 ? pls->p[j].K : j + 1, pl = D == 1 ? j : -1;
                if (K > L || K * D < o->min_devices || (o->max_devices > 0 && K * D > o->max_devices)) continue;
                if (o->positions && K != o->positions) continue;
                int line_ok = D == 1 || mp_config_replicas_ok(cl, K, D, 0);
                int ring_ok = line_ok && (D == 1 || mp_config_replicas_ok(cl, K, D, 1));
                if (!line_ok) continue;
                const mp_cluster *ccl = D == 1 ? &pls->p[j].cl : cl;
                bd->cl = ccl;
                for (int kind = 0; kind < MP_SCHED_COUNT; kind++) {
                    if (o->schedule >= 0 && kind != o->schedule) continue;
                    if (kind == MP_SCHED_INTERLEAVED && !ring_ok) continue;
                    int zb = mp_schedule_is_zb((mp_schedule_kind)kind);
                    /* replicas run any schedule: the cost model's all-reduces follow each position's
                     * list and only add time and memory, so every bound below stays a lower bound */
                    if (zb && (!mp_profile_has_split(ps->prof) || (kind == MP_SCHED_ZB_V && 2 * K > L))) continue;
                    if (zb && K == 1 && o->schedule < 0) continue;   /* auto: one stage has no bubble to fill */
                    int vmin = kind == MP_SCHED_INTERLEAVED ? 2 : kind == MP_SCHED_ZB_V ? 2 : 1, vmax = vmin;
                    if (kind == MP_SCHED_INTERLEAVED) {
                        if (K < 2 || m % K) continue;
                        vmax = L / K;
                    }
                    for (int vv = vmin; vv <= vmax; vv++) {
                        if (cnt == cap) {
                            mp_config *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
                            if (!nv) goto nomem;
                            v = nv;
                        }
                        mp_config c = { .K = K, .b = b, .kind = kind, .v = vv, .S = K * vv, .m = m, .pl = pl, .D = D };
                        if (zb) {   /* a simple valid bound: the work over the speed, no bubble */
                            c.lb = mp_split_zb_bound(ps->prof, ccl, K, b, m) * (1 - MP_BOUND_SLACK);
                            v[cnt++] = c;
                            continue;
                        }
                        c.lb = mp_bound_quick(bd, K, b, kind, vv, m);
                        if (kind != MP_SCHED_INTERLEAVED)  /* the split relaxation orders them well */
                            c.lb = mp_bound_split(bd, K, b, kind, m, c.lb, HUGE_VAL) * (1 - MP_BOUND_SLACK);
                        if (D > 1 && K == 1)  /* one stage: its list ends after its work, then all-reduces it all */
                            c.lb = (c.lb + mp_allreduce_stage_ms(cl, ps->prof, 0, L - 1, 0, 1, D)) * (1 - MP_BOUND_SLACK);
                        else if (D > 1) {   /* the positions' work, then their all-reduces */
                            double ar = mp_bound_allreduce(bd, K, b, m, D) * (1 - MP_BOUND_SLACK);
                            if (ar > c.lb) c.lb = ar;
                        }
                        v[cnt++] = c;
                    }
                }
            }
        }
    }
    for (int i = 0; i < cnt && cnt <= 64; i++) {  /* small lists: drop infeasible ones up front */
        mp_stage_fit f = mp_config_fit(&v[i], ps, mp_config_cluster(&v[i], pls, cl), o);
        if (v[i].kind != MP_SCHED_INTERLEAVED && !mp_schedule_is_zb((mp_schedule_kind)v[i].kind) &&
            !mp_config_fits(&f, from, NULL)) {
            v[i--] = v[--cnt];
            (*dropped)++;
        }
    }
    free(from);
    qsort(v, (size_t)cnt, sizeof *v, cmp_config);
    *out = v;
    *n = cnt;
    return MP_OK;
nomem:
    free(v);
    free(from);
    return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
}
