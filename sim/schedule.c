/* schedule.c — the one schedule generator (schedule.h): per-position op lists
 * for GPipe, 1F1B, interleaved 1F1B, ZB-H1, ZB-H2 and ZB-V, exactly as
 * docs/cost-model.md says.
 * defines: mp_schedule_build, mp_op_lists_free, mp_schedule_is_zb, mp_schedule_chunks,
 *          mp_op_kind_name, mp_schedule_interleaved_ahead */
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

/* Position p's warm-up forwards (Megatron-LM's num_warmup_microbatches). */
static int warmup(int p, int K, int v, int m)
{
    int total = m * v, w = (K - p - 1) * 2 + (v - 1) * K;
    return w > total || m == K ? total : w;  /* Megatron: all_warmup_microbatches when m == K */
}

/* See schedule.h. */
int mp_schedule_interleaved_ahead(int p, int c, int K, int v, int m)
{
    int w = warmup(p, K, v, m), x = w < m * v ? w + 1 : w;   /* the first steady forward precedes the first backward */
    int cyc = K * v, r = x % cyc - c * K;                    /* forward k is of chunk (k / K) % v */
    return x / cyc * K + (r < 0 ? 0 : r > K ? K : r);
}

static void build_interleaved(mp_op *l, int p, int K, int v, int m)
{
    int total = m * v, n = 0, w = warmup(p, K, v, m);
    for (int k = 0; k < w; k++) l[n++] = virt(MP_OP_FWD, k, p, K, v);
    for (int k = 0; k < total - w; k++) {
        l[n++] = virt(MP_OP_FWD, w + k, p, K, v);
        l[n++] = virt(MP_OP_BWD, k, p, K, v);
    }
    for (int k = total - w; k < total; k++) l[n++] = virt(MP_OP_BWD, k, p, K, v);
}

/* ---------------------------------------------------------------- zero bubble */

/* Counters of one stage's F, BI and W, appending in micro-batch order. */
typedef struct {
    mp_op *l;
    int n, stage, f, b, w;
} zb_list;

static void zF(zb_list *z) { z->l[z->n++] = mk(MP_OP_FWD, z->stage, z->f++); }
static void zB(zb_list *z) { z->l[z->n++] = mk(MP_OP_BWD_IN, z->stage, z->b++); }
static void zW(zb_list *z) { z->l[z->n++] = mk(MP_OP_BWD_W, z->stage, z->w++); }

/* ZB-H1 (sail-sg's handcrafted order), position j: w = min(K-j-1, m)
 * forwards; r = min(j, m-w) rounds of (F, BI); then (F, BI, W-oldest) until
 * every F ran; then (BI, W) until every BI ran; then the remaining W. */
static int build_zb_h1(mp_op *l, int j, int K, int m)
{
    zb_list z = { l, 0, j, 0, 0, 0 };
    int w = K - j - 1 < m ? K - j - 1 : m, r = j < m - w ? j : m - w;
    for (int i = 0; i < w; i++) zF(&z);
    for (int i = 0; i < r; i++) { zF(&z); zB(&z); }
    while (z.f < m) { zF(&z); zB(&z); zW(&z); }
    while (z.b < m) { zB(&z); zW(&z); }
    while (z.w < m) zW(&z);
    return z.n;
}

/* ZB-H2, position j: w = min(2(K-j)-1, m) forwards (more in flight, so no
 * position waits for a forward); then r = min(j, m-w) rounds of (BI, F)
 * deferring r weight gradients as ZB-H1 does, so that the tail is filled;
 * then (BI, F, W-oldest) until every F ran; then (BI, W) until every BI ran;
 * then the remaining W. */
static int build_zb_h2(mp_op *l, int j, int K, int m)
{
    zb_list z = { l, 0, j, 0, 0, 0 };
    int w = 2 * (K - j) - 1 < m ? 2 * (K - j) - 1 : m, r = j < m - w ? j : m - w;
    for (int i = 0; i < w; i++) zF(&z);
    for (int i = 0; i < r; i++) { zB(&z); zF(&z); }
    while (z.f < m) { zB(&z); zF(&z); zW(&z); }
    while (z.b < m) { zB(&z); zW(&z); }
    while (z.w < m) zW(&z);
    return z.n;
}

/* ZB-V (PyTorch's ScheduleZBVZeroBubble), position p runs chunk 0 (stage p)
 * and chunk 1 (stage 2K-1-p). The order is generated for
 * n = max(2K-1, m) micro-batches and the ops of micro-batches >= m are then
 * dropped (as PyTorch does):
 *   2(K-p)-1 F0; p times (F1, F0); K-p times (F1, BI1, W1);
 *   while F1 < F0 or F0 < n: (F0 if F0 < n), BI0, W0, F1, BI1, W1;
 *   p times (BI0, BI1); K-p times (BI0, W0-oldest); the remaining W1, then W0. */
static int build_zb_v(mp_op *l, int p, int K, int m)
{
    int n = 2 * K - 1 > m ? 2 * K - 1 : m, cap = 6 * n;
    mp_op *t = malloc((size_t)cap * sizeof *t);
    if (!t) return -1;
    zb_list c0 = { t, 0, p, 0, 0, 0 }, c1 = { t, 0, 2 * K - 1 - p, 0, 0, 0 };
    /* both chunks append to t: keep one length */
#define ZN(op, c) do { c.n = len; op(&c); len = c.n; } while (0)
    int len = 0;
    for (int i = 0; i < 2 * (K - p) - 1; i++) ZN(zF, c0);
    for (int i = 0; i < p; i++) { ZN(zF, c1); ZN(zF, c0); }
    for (int i = 0; i < K - p; i++) { ZN(zF, c1); ZN(zB, c1); ZN(zW, c1); }
    while (c1.f < c0.f || c0.f < n) {
        if (c0.f < n) ZN(zF, c0);
        ZN(zB, c0); ZN(zW, c0);
        ZN(zF, c1); ZN(zB, c1); ZN(zW, c1);
    }
    for (int i = 0; i < p; i++) { ZN(zB, c0); ZN(zB, c1); }
    for (int i = 0; i < K - p; i++) { ZN(zB, c0); ZN(zW, c0); }
    while (c1.w < c1.b) ZN(zW, c1);
    while (c0.w < c0.b) ZN(zW, c0);
#undef ZN
    int k = 0;
    for (int i = 0; i < len; i++)
        if (t[i].microbatch < m) l[k++] = t[i];
    free(t);
    return k;
}

/* ---------------------------------------------------------------- public */

/* See schedule.h. */
const char *mp_op_kind_name(int kind)
{
    switch (kind) {
    case MP_OP_FWD: return "F";
    case MP_OP_BWD: return "B";
    case MP_OP_BWD_IN: return "Bi";
    case MP_OP_BWD_W: return "W";
    }
    return "?";
}

/* See schedule.h. */
int mp_schedule_is_zb(mp_schedule_kind kind)
{
    return kind == MP_SCHED_ZB_H1 || kind == MP_SCHED_ZB_H2 || kind == MP_SCHED_ZB_V;
}

/* See schedule.h. */
int mp_schedule_chunks(mp_schedule_kind kind, int chunks_per_device)
{
    if (kind == MP_SCHED_INTERLEAVED) return chunks_per_device;
    return kind == MP_SCHED_ZB_V ? 2 : 1;
}

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
    } else if (kind == MP_SCHED_ZB_V) {
        v = 2;
    } else if (kind != MP_SCHED_GPIPE && kind != MP_SCHED_1F1B && !mp_schedule_is_zb(kind)) {
        return mp_error_set(err, MP_ERR_INPUT, "schedule: unknown schedule kind %d", (int)kind);
    }
    if ((long long)3 * m * v > 1000000000LL / (K > 0 ? K : 1))
        return mp_error_set(err, MP_ERR_INPUT, "schedule: %d x %d x %d ops is too many", K, m, v);

    int per = (mp_schedule_is_zb(kind) ? 3 : 2) * m * v;
    out->kind = kind;
    out->num_positions = K;
    out->num_stages = K * v;
    out->num_microbatches = m;
    out->len = calloc((size_t)K, sizeof *out->len);
    out->ops = calloc((size_t)K, sizeof *out->ops);
    out->stage_pos = calloc((size_t)K * v, sizeof *out->stage_pos);
    if (!out->len || !out->ops || !out->stage_pos) goto nomem;
    for (int s = 0; s < K * v; s++)
        out->stage_pos[s] = kind == MP_SCHED_ZB_V ? (s < K ? s : 2 * K - 1 - s) : s % K;
    for (int p = 0; p < K; p++) {
        out->ops[p] = malloc((size_t)per * sizeof(mp_op));
        if (!out->ops[p]) goto nomem;
        out->len[p] = per;
        int n = per;
        if (kind == MP_SCHED_GPIPE) build_gpipe(out->ops[p], p, m);
        else if (kind == MP_SCHED_1F1B) build_1f1b(out->ops[p], p, K, m);
        else if (kind == MP_SCHED_INTERLEAVED) build_interleaved(out->ops[p], p, K, v, m);
        else if (kind == MP_SCHED_ZB_H1) n = build_zb_h1(out->ops[p], p, K, m);
        else if (kind == MP_SCHED_ZB_H2) n = build_zb_h2(out->ops[p], p, K, m);
        else n = build_zb_v(out->ops[p], p, K, m);
        if (n < 0) goto nomem;
        if (n != per) {
            mp_op_lists_free(out);
            return mp_error_set(err, MP_ERR_INTERNAL, "schedule: position %d got %d ops, expected %d", p, n, per);
        }
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
    free(l->stage_pos);
    memset(l, 0, sizeof *l);
}
