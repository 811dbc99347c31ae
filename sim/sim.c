/* sim.c — the pipeline simulator (sim.h), an exact dependency-driven sweep.
 * defines: mp_sim_new, mp_sim_free, mp_sim_run, mp_sim_busy, mp_sim_list_end
 *
 * Why a sweep is exact (docs/cost-model.md, "The simulator"): every op starts
 * at max(end of the previous op on its position, arrival of its input), and
 * every directed link a->b is fed by one position only (a), whose ops end in
 * list order; so first-come-first-served on a link, with ties broken by
 * sequence, serves a's sends in a's list order, and a transfer's start is
 * max(its request, the end of the link's previous transfer), known as soon as
 * the sending op is timed. Timing the ops in any order that respects the
 * dependencies therefore gives exactly the times of an event-driven run with
 * a (time, sequence) heap — tests/test_sim.c checks this against one. The
 * sweep times each position as far as its inputs allow, alternating the
 * direction of the passes; a pass that times nothing means a deadlock. */
#include "sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mp_sim {
    size_t cap_sm;        /* capacity of the S*m arrays */
    int cap_k;            /* capacity of the per-position arrays */
    double *fwd_end;      /* [S*m] end of F(s, i); -1 until timed */
    double *act_arr;      /* [S*m] arrival at stage s+1 of F(s, i)'s activation */
    double *grad_arr;     /* [S*m] arrival at stage s of B(s+1, i)'s gradient */
    double *bin_end;      /* [S*m] end of BI(s, i); -1 until timed */
    unsigned char *seen;  /* [4*S*m] op-list validation */
    int *ptr;             /* [K] next op index */
    double *clock;        /* [K] end of the last timed op */
    double *busy;         /* [K] sum of op durations */
    double *list_end;     /* [K] end of the position's last op */
    double *link_free;    /* [2K] end of the last transfer on p->p+1 / p->p-1 */
    double over;          /* end of the op that passed in->stop_ms (0: none) */
    int last_k;
};

/* See sim.h. */
mp_sim *mp_sim_new(void)
{
    return calloc(1, sizeof(mp_sim));
}

/* See sim.h. Safe on NULL. */
void mp_sim_free(mp_sim *s)
{
    if (!s) return;
    free(s->fwd_end);
    free(s->act_arr);
    free(s->grad_arr);
    free(s->bin_end);
    free(s->seen);
    free(s->ptr);
    free(s->clock);
    free(s->busy);
    free(s->list_end);
    free(s->link_free);
    free(s);
}

/* See sim.h. 0 for an unknown position. */
double mp_sim_busy(const mp_sim *s, int p)
{
    if (!s || p < 0 || p >= s->last_k) return 0;
    return s->busy[p];
}

/* See sim.h. 0 for an unknown position. */
double mp_sim_list_end(const mp_sim *s, int p)
{
    if (!s || p < 0 || p >= s->last_k) return 0;
    return s->list_end[p];
}

/* ---------------------------------------------------------------- buffers */

static int grow(mp_sim *s, int K, size_t sm)
{
    if (sm > s->cap_sm) {
        size_t c = s->cap_sm ? s->cap_sm : 64;
        while (c < sm) c *= 2;
        double *a = realloc(s->fwd_end, c * sizeof *a);
        if (a) s->fwd_end = a;
        double *b = realloc(s->act_arr, c * sizeof *b);
        if (b) s->act_arr = b;
        double *g = realloc(s->grad_arr, c * sizeof *g);
        if (g) s->grad_arr = g;
        double *e = realloc(s->bin_end, c * sizeof *e);
        if (e) s->bin_end = e;
        unsigned char *u = realloc(s->seen, 4 * c);
        if (u) s->seen = u;
        if (!a || !b || !g || !e || !u) return 0;
        s->cap_sm = c;
    }
    if (K > s->cap_k) {
        int c = s->cap_k ? s->cap_k : 8;
        while (c < K) c *= 2;
        int *p = realloc(s->ptr, (size_t)c * sizeof *p);
        if (p) s->ptr = p;
        double *t = realloc(s->clock, (size_t)c * sizeof *t);
        if (t) s->clock = t;
        double *b = realloc(s->busy, (size_t)c * sizeof *b);
        if (b) s->busy = b;
        double *e = realloc(s->list_end, (size_t)c * sizeof *e);
        if (e) s->list_end = e;
        double *l = realloc(s->link_free, 2 * (size_t)c * sizeof *l);
        if (l) s->link_free = l;
        if (!p || !t || !b || !e || !l) return 0;
        s->cap_k = c;
    }
    return 1;
}

/* ---------------------------------------------------------------- validation */

/* The position of stage st: the lists' map, or st % K for lists without one. */
static int stage_pos(const mp_op_lists *L, int st)
{
    return L->stage_pos ? L->stage_pos[st] : st % L->num_positions;
}

static int bad_time(double x) { return !(x >= 0) || isinf(x); }

static mp_status check_input(mp_sim *s, const mp_sim_input *in, mp_error *err)
{
    const mp_op_lists *L = in->ops;
    if (!L || !L->len || !L->ops)
        return mp_error_set(err, MP_ERR_INPUT, "sim: no op lists");
    int K = L->num_positions, S = L->num_stages, m = L->num_microbatches;
    if (K < 1 || S < 1 || m < 1 || S % K != 0)
        return mp_error_set(err, MP_ERR_INPUT,
                            "sim: bad op-list shape (%d positions, %d stages, %d micro-batches)",
                            K, S, m);
    if (!in->fwd_ms || !in->bwd_ms || (S > 1 && (!in->act_ms || !in->grad_ms)))
        return mp_error_set(err, MP_ERR_INPUT, "sim: missing stage or transfer times");
    int zb = mp_schedule_is_zb(L->kind);
    if (zb && (!in->bwd_in_ms || !in->bwd_w_ms))
        return mp_error_set(err, MP_ERR_INPUT, "sim: %s needs input- and weight-gradient times",
                            mp_schedule_name(L->kind));
    for (int j = 0; j < S; j++) {
        if (zb && (bad_time(in->bwd_in_ms[j]) || bad_time(in->bwd_w_ms[j])))
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: stage %d: compute times must be finite and >= 0", j);
        if (bad_time(in->fwd_ms[j]) || bad_time(in->bwd_ms[j]) ||
            (in->recompute_ms && bad_time(in->recompute_ms[j])))
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: stage %d: compute times must be finite and >= 0", j);
        if (j < S - 1 && (bad_time(in->act_ms[j]) || bad_time(in->grad_ms[j])))
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: stage %d: transfer times must be finite and >= 0", j);
        if (in->allreduce_ms && bad_time(in->allreduce_ms[j]))
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: stage %d: all-reduce time must be finite and >= 0", j);
    }
    for (int p = 0; in->allreduce_ready_ms && p < K; p++)
        if (bad_time(in->allreduce_ready_ms[p]))
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: position %d: all-reduce ready time must be finite and >= 0", p);
    size_t sm = (size_t)S * (size_t)m;
    if (!grow(s, K, sm)) return mp_error_set(err, MP_ERR_NOMEM, "sim: out of memory");
    if (in->lists_built) return MP_OK;
    memset(s->seen, 0, 4 * sm);
    long long per = (zb ? 3LL : 2LL) * m * (S / K);
    for (int p = 0; p < K; p++) {
        if (L->len[p] != per || !L->ops[p])
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: position %d has %d ops (expected %lld)", p, L->len[p], per);
        for (int i = 0; i < L->len[p]; i++) {
            const mp_op *o = &L->ops[p][i];
            int kind_ok = o->kind == MP_OP_FWD ||
                          (zb ? o->kind == MP_OP_BWD_IN || o->kind == MP_OP_BWD_W : o->kind == MP_OP_BWD);
            if (!kind_ok || o->stage < 0 || o->stage >= S || stage_pos(L, o->stage) != p ||
                o->microbatch < 0 || o->microbatch >= m)
                return mp_error_set(err, MP_ERR_INPUT,
                                    "sim: position %d op %d (kind %d, stage %d, micro-batch %d) "
                                    "is out of range or on the wrong position",
                                    p, i, o->kind, o->stage, o->microbatch);
            size_t key = 4 * ((size_t)o->stage * m + o->microbatch) + (size_t)o->kind;
            if (s->seen[key])
                return mp_error_set(err, MP_ERR_INPUT,
                                    "sim: position %d op %d: %s of stage %d micro-batch %d "
                                    "appears twice", p, i, mp_op_kind_name(o->kind), o->stage,
                                    o->microbatch);
            s->seen[key] = 1;
        }
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- run */

/* Schedules one transfer from position p to position dst requested at `req`
 * lasting `dur`; returns its arrival time. On the same position: no link,
 * it arrives at `req`. */
static double send(mp_sim *s, int K, int p, int dst, double req, double dur, double *start)
{
    if (dst == p) {
        *start = req;
        return req;
    }
    double *lf = &s->link_free[2 * p + (dst == (p + 1) % K ? 0 : 1)];
    double st = req > *lf ? req : *lf;
    *start = st;
    *lf = st + dur;
    return *lf;
}

static mp_status trace_op(mp_trace *tr, const mp_sim_input *in, const mp_op *o, int p,
                          double st, double en)
{
    mp_trace_event e = { MP_TEV_FWD, p, -1, o->stage, o->microbatch, st, en };
    if (o->kind == MP_OP_BWD_W) e.kind = MP_TEV_WGRAD;
    if (o->kind == MP_OP_BWD || o->kind == MP_OP_BWD_IN) {
        double r = in->recompute_ms ? in->recompute_ms[o->stage] : 0;
        if (r > 0) {
            e.kind = MP_TEV_RECOMPUTE;
            e.end_ms = st + r;
            if (mp_trace_add(tr, e) != MP_OK) return MP_ERR_NOMEM;
            e.start_ms = st + r;
            e.end_ms = en;
        }
        e.kind = MP_TEV_BWD;
    }
    return mp_trace_add(tr, e);
}

static mp_status trace_send(mp_trace *tr, int kind, int p, int dst, const mp_op *o,
                            double st, double en)
{
    mp_trace_event e = { kind, p, dst, o->stage, o->microbatch, st, en };
    return mp_trace_add(tr, e);
}

/* Times position p's ops as far as their inputs allow; returns how many. */
static long advance(mp_sim *s, const mp_sim_input *in, int p, mp_trace *tr, mp_status *st)
{
    const mp_op_lists *L = in->ops;
    const int K = L->num_positions, S = L->num_stages, m = L->num_microbatches;
    const mp_op *ops = L->ops[p];
    const int len = L->len[p];
    int i = s->ptr[p];
    double t = s->clock[p], busy = s->busy[p];
    long done = 0;
    for (; i < len; i++) {
        const mp_op *o = &ops[i];
        const int st_ = o->stage, mb = o->microbatch;
        const size_t idx = (size_t)st_ * m + mb;
        double ready = t, dur, tstart, arr;
        if (o->kind == MP_OP_FWD) {
            if (st_ > 0) {
                double a = s->act_arr[idx - m];
                if (a < 0) break;
                if (a > ready) ready = a;
            }
            dur = in->fwd_ms[st_];
            t = ready + dur;
            s->fwd_end[idx] = t;
            if (st_ < S - 1) {
                int dst = stage_pos(L, st_ + 1);
                arr = send(s, K, p, dst, t, in->act_ms[st_], &tstart);
                s->act_arr[idx] = arr;
                if (tr && dst != p && (*st = trace_send(tr, MP_TEV_SEND_ACT, p, dst, o, tstart, arr)))
                    return -1;
            }
        } else if (o->kind == MP_OP_BWD_W) {
            if (s->bin_end[idx] < 0) break;
            dur = in->bwd_w_ms[st_];
            t = ready + dur;
        } else {
            if (s->fwd_end[idx] < 0) break;
            if (st_ < S - 1) {
                double g = s->grad_arr[idx];
                if (g < 0) break;
                if (g > ready) ready = g;
            }
            dur = o->kind == MP_OP_BWD_IN ? in->bwd_in_ms[st_] : in->bwd_ms[st_];
            t = ready + dur;
            s->bin_end[idx] = t;
            if (st_ > 0) {
                int dst = stage_pos(L, st_ - 1);
                arr = send(s, K, p, dst, t, in->grad_ms[st_ - 1], &tstart);
                s->grad_arr[idx - m] = arr;
                if (tr && dst != p && (*st = trace_send(tr, MP_TEV_SEND_GRAD, p, dst, o, tstart, arr)))
                    return -1;
            }
        }
        busy += dur;
        if (tr && (*st = trace_op(tr, in, o, p, ready, t))) return -1;
        done++;
        if (in->stop_ms > 0 && !tr && t > in->stop_ms) {  /* T >= t > stop: the caller needs no more */
            s->over = t;
            i++;
            break;
        }
    }
    s->ptr[p] = i;
    s->clock[p] = t;
    s->busy[p] = busy;
    return done;
}

/* After the op lists: position p's all-reduces, its stages in order p, p+K,
 * ..., one after the other, the first once its list and the other replicas'
 * have ended (docs/cost-model.md, "Data parallelism"); clock[p] becomes the
 * end of the last. */
static mp_status allreduce_tail(mp_sim *s, const mp_sim_input *in, mp_trace *tr)
{
    const int K = s->last_k, S = in->ops->num_stages;
    for (int p = 0; p < K; p++) {
        double t = s->clock[p];
        s->list_end[p] = t;
        if (!in->allreduce_ms) continue;
        if (in->allreduce_ready_ms && in->allreduce_ready_ms[p] > t) t = in->allreduce_ready_ms[p];
        for (int st = p; st < S; st += K) {
            double d = in->allreduce_ms[st];
            if (tr && d > 0) {
                mp_trace_event e = { MP_TEV_ALLREDUCE, p, -1, st, -1, t, t + d };
                if (mp_trace_add(tr, e) != MP_OK) return MP_ERR_NOMEM;
            }
            t += d;
        }
        s->clock[p] = t;
    }
    return MP_OK;
}

/* See sim.h. */
mp_status mp_sim_run(mp_sim *s, const mp_sim_input *in, mp_sim_result *out,
                     mp_trace *trace, mp_error *err)
{
    memset(out, 0, sizeof *out);
    if (!s || !in) return mp_error_set(err, MP_ERR_INPUT, "sim: no simulator or input");
    s->last_k = 0;
    mp_status rc = check_input(s, in, err);
    if (rc != MP_OK) return rc;
    const mp_op_lists *L = in->ops;
    const int K = L->num_positions;
    const size_t sm = (size_t)L->num_stages * L->num_microbatches;
    for (size_t i = 0; i < sm; i++) s->fwd_end[i] = s->act_arr[i] = s->grad_arr[i] = s->bin_end[i] = -1;
    long remaining = 0;
    for (int p = 0; p < K; p++) {
        s->ptr[p] = 0;
        s->clock[p] = s->busy[p] = 0;
        s->link_free[2 * p] = s->link_free[2 * p + 1] = 0;
        remaining += L->len[p];
    }
    if (trace && trace->num_positions < K) trace->num_positions = K;
    s->over = 0;
    for (int pass = 0; remaining > 0; pass++) {
        long progress = 0;
        for (int q = 0; q < K; q++) {
            int p = (pass & 1) ? K - 1 - q : q;
            long d = advance(s, in, p, trace, &rc);
            if (d < 0) return mp_error_set(err, rc, "sim: out of memory for the trace");
            if (s->over > 0) {  /* stopped past stop_ms */
                out->iteration_ms = s->over;
                return MP_OK;
            }
            progress += d;
        }
        if (progress == 0) {
            int p = 0;
            while (s->ptr[p] >= L->len[p]) p++;
            const mp_op *o = &L->ops[p][s->ptr[p]];
            return mp_error_set(err, MP_ERR_INPUT,
                                "sim: the op lists deadlock: position %d waits forever at op %d "
                                "(%s of stage %d, micro-batch %d)", p, s->ptr[p],
                                mp_op_kind_name(o->kind), o->stage, o->microbatch);
        }
        remaining -= progress;
    }
    s->last_k = K;
    if ((rc = allreduce_tail(s, in, trace)) != MP_OK)
        return mp_error_set(err, rc, "sim: out of memory for the trace");
    double iter = 0, sum = 0, best = -1;
    for (int p = 0; p < K; p++) {
        if (s->clock[p] > iter) iter = s->clock[p];
        sum += s->busy[p];
        if (s->busy[p] > best) {
            best = s->busy[p];
            out->bottleneck_position = p;
        }
    }
    out->iteration_ms = iter;
    out->bubble_fraction = iter > 0 ? 1.0 - sum / (K * iter) : 0.0;
    return MP_OK;
}
