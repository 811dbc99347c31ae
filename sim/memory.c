/* memory.c — the memory model (memory.h, docs/cost-model.md "Memory").
 * defines: mp_memory_stage_peak, mp_memory_peaks */
#include "memory.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double params, stash, in_bytes;
} stage_mem;

static stage_mem stage_sums(const mp_profile *prof, int lo, int hi)
{
    stage_mem r = { 0, 0, 0 };
    for (int l = lo; l <= hi; l++) {
        r.params += prof->layers[l].param_bytes;
        r.stash += prof->layers[l].stash_bytes_per_sample;
    }
    r.in_bytes = lo > 0 ? prof->layers[lo - 1].out_bytes_per_sample
                        : prof->input_bytes_per_sample;
    return r;
}

/* See memory.h. For MP_SCHED_INTERLEAVED there is no closed form: NAN. */
double mp_memory_stage_peak(const mp_profile *prof, int lo, int hi, int stage,
                            int num_stages, mp_schedule_kind kind, int m, int b,
                            int recompute, double state_factor)
{
    if (kind == MP_SCHED_INTERLEAVED) return NAN;
    stage_mem s = stage_sums(prof, lo, hi);
    int inflight = m;
    if (kind == MP_SCHED_1F1B && num_stages - stage < m) inflight = num_stages - stage;
    if (recompute)
        return state_factor * s.params + (double)inflight * b * s.in_bytes + (double)b * s.stash;
    return state_factor * s.params + (double)inflight * b * s.stash;
}

/* See memory.h. Walks each position's list: a forward adds b*stash (b*in_bytes
 * with recompute) of its stage, a backward removes it after running; while a
 * recomputing backward runs, b*stash of its stage is held on top. */
mp_status mp_memory_peaks(const mp_profile *prof, const mp_plan *plan,
                          const mp_op_lists *ops, double state_factor,
                          double *peaks, mp_error *err)
{
    int K = ops->num_positions, S = ops->num_stages;
    if (S != plan->num_stages || K < 1 || S % K != 0)
        return mp_error_set(err, MP_ERR_INPUT,
                            "memory: the op lists have %d stages, the plan %d", S, plan->num_stages);
    double b = plan->microbatch_size;
    stage_mem *sm = malloc((size_t)S * sizeof *sm);
    if (!sm) return mp_error_set(err, MP_ERR_NOMEM, "memory: out of memory");
    for (int s = 0; s < S; s++) {
        const mp_stage *st = &plan->stages[s];
        if (st->first < 0 || st->last < st->first || st->last >= prof->num_layers) {
            free(sm);
            return mp_error_set(err, MP_ERR_INPUT, "memory: stage %d: bad layer range %d..%d",
                                s, st->first, st->last);
        }
        sm[s] = stage_sums(prof, st->first, st->last);
    }
    for (int p = 0; p < K; p++) {
        double cur = 0;
        for (int s = p; s < S; s += K) cur += state_factor * sm[s].params;
        double peak = cur;
        for (int i = 0; i < ops->len[p]; i++) {
            const mp_op *o = &ops->ops[p][i];
            if (o->stage < 0 || o->stage >= S) {
                free(sm);
                return mp_error_set(err, MP_ERR_INPUT, "memory: position %d op %d: bad stage %d",
                                    p, i, o->stage);
            }
            const stage_mem *x = &sm[o->stage];
            int rc = plan->stages[o->stage].recompute;
            double held = rc ? b * x->in_bytes : b * x->stash;
            if (o->kind == MP_OP_FWD) {
                cur += held;
                if (cur > peak) peak = cur;
            } else {
                if (rc && cur + b * x->stash > peak) peak = cur + b * x->stash;
                cur -= held;
            }
        }
        peaks[p] = peak;
    }
    free(sm);
    return MP_OK;
}
