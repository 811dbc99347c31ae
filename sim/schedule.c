/* schedule.c — the one schedule generator (schedule.h): per-position op lists
 * for GPipe, 1F1B and interleaved 1F1B, exactly as docs/cost-model.md says.
 * defines: mp_schedule_build, mp_op_lists_free */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

static mp_op mk(int kind, int stage, int mb)
{
    mp_op o;
    o.kind = kind;
    o.microbatch = mb;
    o.stage = stage;
    return o;
}

/* ---------------------------------------------------------------- gpipe / 1f1b */

/* GPipe: F0..F(m-1), then B0..B(m-1). */
static void build_gpipe(mp_op *l, int j, int m)
{
    int n = 0;
    for (int i = 0; i < m; i++) l[n++] = mk(MP_OP_FWD, j, i);
    for (int i = 0; i < m; i++) l[n++] = mk(MP_OP_BWD, j, i);
}

/* 1F1B: w = min(K-j-1, m) forwards, then (F(w+i), B(i)) for i < m-w, then
 * the remaining w backwards. */
static void build_1f1b(mp_op *l, int j, int K, int m)
{
    int w = K - j - 1 < m ? K - j - 1 : m, n = 0;
    for (int i = 0; i < w; i++) l[n++] = mk(MP_OP_FWD, j, i);
    for (int i = 0; i < m - w; i++) {
        l[n++] = mk(MP_OP_FWD, j, w + i);
        l[n++] = mk(MP_OP_BWD, j, i);
    }
    for (int i = m - w; i < m; i++) l[n++] = mk(MP_OP_BWD, j, i);
}

/* ---------------------------------------------------------------- interleaved */

/* Megatron-LM's virtual micro-batch k -> (stage, micro-batch) on position p. */
static mp_op virt(int kind, int k, int p, int K, int v)
{
    int c = (k / K) % v;
    if (kind == MP_OP_BWD) c = v - 1 - c;
    int mb = (k / (K * v)) * K + k % K;
    return mk(kind, c * K + p, mb);
}

static void build_interleaved(mp_op *l, int p, int K, int v, int m)
{
    int total = m * v, n = 0;
    int w = (K - p - 1) * 2 + (v - 1) * K;
    if (w > total || m == K) w = total;  /* Megatron: all_warmup_microbatches when m == K */
    for (int k = 0; k < w; k++) l[n++] = virt(MP_OP_FWD, k, p, K, v);
    for (int k = 0; k < total - w; k++) {
        l[n++] = virt(MP_OP_FWD, w + k, p, K, v);
        l[n++] = virt(MP_OP_BWD, k, p, K, v);
    }
    for (int k = total - w; k < total; k++) l[n++] = virt(MP_OP_BWD, k, p, K, v);
}

/* ---------------------------------------------------------------- public */

/* See schedule.h. */
mp_status mp_schedule_build(mp_schedule_kind kind, int num_positions, int chunks,
                            int num_microbatches, mp_op_lists *out, mp_error *err)
{
    int K = num_positions, m = num_microbatches, v = 1;
    memset(out, 0, sizeof *out);
    if (K < 1)
        return mp_error_set(err, MP_ERR_INPUT, "schedule: %d pipeline positions (need >= 1)", K);
    if (m < 1)
        return mp_error_set(err, MP_ERR_INPUT, "schedule: %d micro-batches (need >= 1)", m);
    if (kind == MP_SCHED_INTERLEAVED) {
        v = chunks;
        if (v < 2)
            return mp_error_set(err, MP_ERR_INPUT,
                                "schedule: interleaved needs chunks_per_device >= 2 (got %d)", v);
        if (K < 2)
            return mp_error_set(err, MP_ERR_INPUT,
                                "schedule: interleaved needs >= 2 devices (got %d)", K);
        if (m % K != 0)
            return mp_error_set(err, MP_ERR_INPUT,
                                "schedule: interleaved needs the number of micro-batches (%d) "
                                "to be a multiple of the number of devices (%d)", m, K);
    } else if (kind != MP_SCHED_GPIPE && kind != MP_SCHED_1F1B) {
        return mp_error_set(err, MP_ERR_INPUT, "schedule: unknown schedule kind %d", (int)kind);
    }
    if ((long long)2 * m * v > 1000000000LL / (K > 0 ? K : 1))
        return mp_error_set(err, MP_ERR_INPUT, "schedule: %d x %d x %d ops is too many", K, m, v);

    int per = 2 * m * v;
    out->kind = kind;
    out->num_positions = K;
    out->num_stages = K * v;
    out->num_microbatches = m;
    out->len = calloc((size_t)K, sizeof *out->len);
    out->ops = calloc((size_t)K, sizeof *out->ops);
    if (!out->len || !out->ops) goto nomem;
    for (int p = 0; p < K; p++) {
        out->ops[p] = malloc((size_t)per * sizeof(mp_op));
        if (!out->ops[p]) goto nomem;
        out->len[p] = per;
        if (kind == MP_SCHED_GPIPE) build_gpipe(out->ops[p], p, m);
        else if (kind == MP_SCHED_1F1B) build_1f1b(out->ops[p], p, K, m);
        else build_interleaved(out->ops[p], p, K, v, m);
    }
    return MP_OK;
nomem:
    mp_op_lists_free(out);
    return mp_error_set(err, MP_ERR_NOMEM, "schedule: out of memory for %d x %d ops", K, per);
}

/* See schedule.h. Safe on a zeroed or partly built struct. */
void mp_op_lists_free(mp_op_lists *l)
{
    if (!l) return;
    if (l->ops)
        for (int p = 0; p < l->num_positions; p++) free(l->ops[p]);
    free(l->ops);
    free(l->len);
    memset(l, 0, sizeof *l);
}
