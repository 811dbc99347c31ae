/* sim.h — the discrete-event pipeline simulator (docs/cost-model.md).
 * defines: mp_sim_input, mp_sim_result, mp_sim, mp_sim_new, mp_sim_free, mp_sim_run,
 *          mp_sim_busy, mp_sim_list_end
 *
 * Each position runs its op list in order; an op starts when the previous op
 * on its position has ended and its input has arrived. A forward of stage s>0
 * needs the activation from s-1, a backward (fused B or input-gradient BI) of
 * stage s<S-1 needs the gradient from s+1 (and its own forward), a weight
 * gradient W needs its BI. Data between two stages on the same position
 * (zb-v's turn of the V) arrives when it is produced. Each finished op that produces data for
 * another position enqueues a transfer on the directed link between the two
 * positions; a link carries one transfer at a time, first come first served;
 * compute never waits for a send. With data parallelism, each position then
 * all-reduces the gradients of its stages (in stage order) among the
 * replicas; the iteration ends when the last all-reduce has. Deterministic
 * (events keyed on time, seq). */
#ifndef MP_SIM_H
#define MP_SIM_H

#include "mp_status.h"
#include "schedule.h"
#include "trace.h"

typedef struct {
    const mp_op_lists *ops;
    const double *fwd_ms;        /* [S] forward time of each virtual stage (speed applied) */
    const double *bwd_ms;        /* [S] backward time, recompute included */
    const double *recompute_ms;  /* [S] the recompute part of bwd_ms, for traces; may be NULL */
    const double *act_ms;        /* [S-1] transfer time of stage s's activation to s+1 */
    const double *grad_ms;       /* [S-1] transfer time of stage s+1's gradient to s */
    const double *bwd_in_ms;     /* [S] BI time, recompute included (zero-bubble lists only) */
    const double *bwd_w_ms;      /* [S] W time (zero-bubble lists only) */
    const double *allreduce_ms;  /* [S] all-reduce time of stage s's gradients; NULL: none (D = 1) */
    const double *allreduce_ready_ms; /* [K] the other replicas' ends of position p's op list
                                  * (the all-reduces start no earlier); NULL: 0 */
    double stop_ms;              /* > 0 (and no trace): the run may stop as soon as an op ends
                                  * after stop_ms, with iteration_ms that end (> stop_ms, at most
                                  * the full run's) and the rest of the result 0 */
    int lists_built;             /* 1: ops are mp_schedule_build's, unchanged: their per-op
                                  * check is skipped (the times are still checked) */
} mp_sim_input;

typedef struct {
    double iteration_ms;     /* max over positions of the end of its last all-reduce
                              * (of its last op when there are none) */
    double bubble_fraction;  /* 1 - sum(busy) / (K * iteration_ms) */
    int bottleneck_position; /* position with the most busy time (lowest index on ties) */
} mp_sim_result;

typedef struct mp_sim mp_sim;  /* reusable workspace: no allocation per run once warm */

mp_sim *mp_sim_new(void);
void mp_sim_free(mp_sim *s);

/* Simulates one iteration. When trace is non-NULL, every op and transfer is
 * appended to it. Returns MP_ERR_INPUT on inconsistent input (negative times,
 * op lists that deadlock), MP_ERR_NOMEM on allocation failure. */
mp_status mp_sim_run(mp_sim *s, const mp_sim_input *in, mp_sim_result *out,
                     mp_trace *trace, mp_error *err);

/* Busy time (sum of op durations) of position p in the last run. */
double mp_sim_busy(const mp_sim *s, int p);

/* End of position p's last op (before its all-reduces) in the last run. */
double mp_sim_list_end(const mp_sim *s, int p);

#endif
