/* replay.h — the cost model fed with measured op times.
 * defines: mp_replay_trace
 *
 * Takes a measured timeline (mprun's trace of one step), averages each
 * stage's forward, backward, recompute and send durations over its
 * micro-batches, and simulates the plan's schedule with them; with data
 * parallelism, with each stage's measured all-reduce (MP_TEV_ALLREDUCE
 * events: replica 0's, so its waits for the other replicas included). Comparing the
 * result with the same step's measured time isolates the error of the
 * schedule/dependency model from the error of the profile (compute speed
 * drifting between profiling and running). */
#ifndef MP_REPLAY_H
#define MP_REPLAY_H

#include "mp_status.h"
#include "plan.h"
#include "trace.h"

/* *iteration_ms gets the simulated iteration time. MP_ERR_INPUT when the
 * trace lacks a forward or backward of some stage. */
mp_status mp_replay_trace(const mp_plan *plan, const mp_trace *t, double *iteration_ms, mp_error *err);

#endif
