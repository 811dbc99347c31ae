/* memory.c — the memory model (memory.h, docs/cost-model.md §6).
 * defines: mp_memory_stage_bytes, mp_memory_walk, mp_memory_walk_split, mp_memory_stage_peak,
 *          mp_memory_peaks, mp_memory_allreduce_bytes */
#include "memory.h"

#include <math.h>
#include <stdlib.h>

/* See memory.h. */
mp_stage_bytes mp_memory_stage_bytes(const mp_profile *prof, int lo, int hi)
{
    mp_stage_bytes r = { 0, 0, 0 };
    for (int l = lo; l <= hi; l++) {
        r.params += prof->layers[l].param_bytes;
        r.stash += prof->layers[l].stash_bytes_per_sample;
    }
    r.in_bytes = lo > 0 ? prof->layers[lo - 1].out_bytes_per_sample
                        : prof->input_bytes_per_sample;
    return r;
}

/* See memory.h. The running total never exceeds the peak (held >= 0), so a
 * backward with extra 0 never raises it. */
double mp_memory_walk(const mp_op *ops, int n, double base, const double *held, const double *extra)
{
    return mp_memory_walk_split(ops, n, base, held, extra, NULL);
}

/* See memory.h. */
double mp_memory_walk_split(const mp_op *ops, int n, double base, const double *held, const double *extra,
                            const double *wheld)
{
    double cur = base, peak = base;
    for (int i = 0; i < n; i++) {
        int s = ops[i].stage;
        double w = wheld ? wheld[s] : 0;
        if (ops[i].kind == MP_OP_FWD) {
            cur += held[s];
            if (cur > peak) peak = cur;
        } else if (ops[i].kind == MP_OP_BWD_IN) {
            cur += extra[s] + w;
            if (cur > peak) peak = cur;
        } else if (ops[i].kind == MP_OP_BWD_W) {
            cur -= held[s] + extra[s] + w;
        } else {
            if (cur + extra[s] > peak) peak = cur + extra[s];
            cur -= held[s];
        }
    }
    return peak;
}

/* See memory.h. */
double mp_memory_stage_peak(const mp_profile *prof, int lo, int hi, int stage,
                            int num_stages, mp_schedule_kind kind, int m, int b,
                            int recompute, double state_factor)
{
    if (kind != MP_SCHED_GPIPE && kind != MP_SCHED_1F1B) return NAN;
    mp_stage_bytes x = mp_memory_stage_bytes(prof, lo, hi);
    return mp_memory_peak_closed(&x, mp_memory_inflight(kind, stage, num_stages, m), b, recompute,
                                 state_factor);
}

/* See memory.h. */
double mp_memory_allreduce_bytes(const mp_profile *prof, int lo, int hi, int D)
{
    if (D <= 1) return 0;
    double mx = 4;   /* the executor's buffer holds at least one float */
    for (int l = lo; l <= hi; l++)
        if (prof->layers[l].param_bytes > mx) mx = prof->layers[l].param_bytes;
    return mx;
}

/* See memory.h. */
mp_status mp_memory_peaks(const mp_profile *prof, const mp_plan *plan,
                          const mp_op_lists *ops, double state_factor,
                          double *peaks, mp_error *err)
{
    int K = ops->num_positions, S = ops->num_stages;
    if (S != plan->num_stages || K < 1 || S % K != 0)
        return mp_error_set(err, MP_ERR_INPUT,
                            "memory: the op lists have %d stages, the plan %d", S, plan->num_stages);
    for (int s = 0; s < S; s++) {
        const mp_stage *st = &plan->stages[s];
        if (st->first < 0 || st->last < st->first || st->last >= prof->num_layers)
            return mp_error_set(err, MP_ERR_INPUT, "memory: stage %d: bad layer range %d..%d",
                                s, st->first, st->last);
    }
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops->len[p]; i++)
            if (ops->ops[p][i].stage < 0 || ops->ops[p][i].stage >= S)
                return mp_error_set(err, MP_ERR_INPUT, "memory: position %d op %d: bad stage %d",
                                    p, i, ops->ops[p][i].stage);
    double *params = malloc((size_t)4 * S * sizeof *params);
    if (!params) return mp_error_set(err, MP_ERR_NOMEM, "memory: out of memory");
    double *held = params + S, *extra = params + 2 * S, *wheld = params + 3 * S;
    for (int s = 0; s < S; s++) {
        const mp_stage *st = &plan->stages[s];
        mp_stage_bytes x = mp_memory_stage_bytes(prof, st->first, st->last);
        params[s] = x.params;
        mp_memory_held(&x, plan->microbatch_size, st->recompute, &held[s], &extra[s]);
        wheld[s] = 0;
        for (int l = st->first; l <= st->last; l++)
            wheld[s] += (double)plan->microbatch_size * prof->layers[l].wstash_bytes_per_sample;
    }
    for (int p = 0; p < K; p++) {
        double base = 0;
        double buf = 0;   /* one all-reduce buffer per position, for its largest layer */
        for (int s = 0; s < S; s++) {
            if ((ops->stage_pos ? ops->stage_pos[s] : s % K) != p) continue;
            double a = mp_memory_allreduce_bytes(prof, plan->stages[s].first, plan->stages[s].last,
                                                 mp_plan_replicas(plan));
            base += state_factor * params[s];
            if (a > buf) buf = a;
        }
        base += buf;
        peaks[p] = mp_memory_walk_split(ops->ops[p], ops->len[p], base, held, extra, wheld);
    }
    free(params);
    return MP_OK;
}
