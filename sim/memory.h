/* memory.h — the memory model (docs/cost-model.md §6), the one place its
 * expressions live: the evaluator, the planner's search and its bounds all
 * call these.
 * defines: mp_stage_bytes, mp_memory_stage_bytes, mp_memory_inflight,
 *          mp_memory_peak_closed, mp_memory_held, mp_memory_walk,
 *          mp_memory_stage_peak, mp_memory_peaks, mp_memory_walk_split,
 *          mp_memory_allreduce_bytes
 *
 * A stage holds state_factor*params for its whole run; each micro-batch in
 * flight (forwarded, not yet backwarded) holds b*stash, or b*in_bytes when
 * the stage recomputes, and a recomputing backward holds b*stash on top
 * while it runs. stash and params are summed over the stage's layers;
 * in_bytes = out_bytes of layer lo-1, or the profile's input_bytes_per_sample
 * for lo = 0.
 * gpipe/1f1b, stage j of K, m micro-batches (closed form):
 *   no recompute: state_factor*params + inflight*b*stash
 *   recompute:    state_factor*params + inflight*b*in_bytes + b*stash
 *   inflight = m (gpipe) or min(K-j, m) (1f1b).
 * Every schedule (the op walk): per device, the most it holds at any point
 * of its op list. For gpipe/1f1b the walk equals the closed form.
 * Zero-bubble lists (F, BI, W): a micro-batch's stash (or input, with
 * recompute) is live from its F to its W; BI adds what a recomputing
 * backward holds (the stash) and the W-stash (b*wgrad_stash bytes, the
 * gradients W needs), both live until the W, which releases all three.
 * Data parallelism (D > 1): each position also holds its all-reduce buffer
 * for the whole run, one float buffer of its stages' largest layer's
 * parameter count, at least one float (mp_memory_allreduce_bytes), added to
 * the peak. */
#ifndef MP_MEMORY_H
#define MP_MEMORY_H

#include "mp_status.h"
#include "plan.h"
#include "profile.h"
#include "schedule.h"

/* What the model needs of one stage: its layers' summed parameter and stash
 * bytes, and the bytes per sample of its input. */
typedef struct {
    double params, stash, in_bytes;
} mp_stage_bytes;

/* The bytes of the stage holding layers lo..hi of prof (0 <= lo <= hi < L). */
mp_stage_bytes mp_memory_stage_bytes(const mp_profile *prof, int lo, int hi);

/* Micro-batches in flight at the peak of gpipe/1f1b stage `stage` of
 * num_stages: m for gpipe, min(num_stages - stage, m) for 1f1b. */
static inline int mp_memory_inflight(mp_schedule_kind kind, int stage, int num_stages, int m)
{
    return kind == MP_SCHED_1F1B && num_stages - stage < m ? num_stages - stage : m;
}

/* The closed form: the peak of a gpipe/1f1b stage of bytes *x with
 * `inflight` micro-batches of size b in flight. */
static inline double mp_memory_peak_closed(const mp_stage_bytes *x, int inflight, int b, int recompute,
                                           double state_factor)
{
    if (recompute)
        return state_factor * x->params + (double)inflight * b * x->in_bytes + (double)b * x->stash;
    return state_factor * x->params + (double)inflight * b * x->stash;
}

/* Per micro-batch of size b of a stage of bytes *x: *held, what a forward
 * keeps until its backward (b*stash, b*in_bytes with recompute), and
 * *extra, what a backward holds on top while it runs (b*stash with
 * recompute, else 0). */
static inline void mp_memory_held(const mp_stage_bytes *x, int b, int recompute, double *held, double *extra)
{
    *held = recompute ? (double)b * x->in_bytes : (double)b * x->stash;
    *extra = recompute ? (double)b * x->stash : 0;
}

/* The op walk of one position: starting from `base` (its parameter state),
 * a forward of stage s adds held[s], a backward holds extra[s] on top while
 * it runs and then releases held[s] (held, extra from mp_memory_held,
 * indexed by stage, >= 0); returns the most held at any point. Every
 * ops[i].stage must index held and extra. */
double mp_memory_walk(const mp_op *ops, int n, double base, const double *held, const double *extra);

/* The op walk of mp_memory_walk for lists that may hold BI and W ops too:
 * BI adds extra[s] + wheld[s], W releases held[s] + extra[s] + wheld[s]
 * (wheld may be NULL: 0). */
double mp_memory_walk_split(const mp_op *ops, int n, double base, const double *held, const double *extra,
                            const double *wheld);

/* The closed form for stage `stage` (of num_stages) holding layers lo..hi;
 * NAN for MP_SCHED_INTERLEAVED, which has none. */
double mp_memory_stage_peak(const mp_profile *prof, int lo, int hi, int stage,
                            int num_stages, mp_schedule_kind kind, int m, int b,
                            int recompute, double state_factor);

/* The all-reduce buffer of the stage holding layers lo..hi with D replicas:
 * the largest param_bytes among its layers, at least 4 (one float), when
 * D > 1, else 0. A position holds the largest of its stages'. */
double mp_memory_allreduce_bytes(const mp_profile *prof, int lo, int hi, int D);

/* The op walk for every position of `plan` (any schedule) over its op lists:
 * peaks[p] for each position p, its all-reduce buffer included when the
 * plan has D > 1 replicas. For gpipe/1f1b it equals the
 * closed form plus the buffer.
 * MP_ERR_INPUT when the lists do not match the plan or a stage's layer range
 * is bad; MP_ERR_NOMEM. */
mp_status mp_memory_peaks(const mp_profile *prof, const mp_plan *plan,
                          const mp_op_lists *ops, double state_factor,
                          double *peaks, mp_error *err);

#endif
