/* allreduce.h — the cost model of a stage's gradient all-reduce among its D
 * data-parallel replicas (docs/cost-model.md, "Data parallelism"): as the
 * executor does it, one ring per layer with parameters, each ring 2(D-1)
 * steps moving 1/D of the layer's gradient over every link of the ring at
 * once.
 * defines: mp_allreduce_ms, mp_allreduce_step_ms, mp_allreduce_vector_ms, mp_allreduce_stage_ms */
#ifndef MP_ALLREDUCE_H
#define MP_ALLREDUCE_H

#include "cluster.h"
#include "profile.h"

/* Time in ms of one ring step moving a chunk of `chunk` bytes, from the
 * cluster's measured points (allreduce_points > 0): linear interpolation
 * between the two points around it, the first point's time below the first,
 * the last point's time per byte above the last. Needs allreduce_points > 0. */
double mp_allreduce_step_ms(const mp_cluster *cl, double chunk);

/* Time in ms to all-reduce `vectors` gradient vectors of `bytes` in all
 * (one ring each, one after the other) among the D replicas of a stage
 * whose replica r runs on device `device + r * stride`, without measured
 * points (linear in bytes and vectors, so stages add up):
 *   with the cluster's measured fit (allreduce_bandwidth > 0):
 *     1000 * 2(D-1) * (vectors * allreduce_latency_s + bytes / (D * allreduce_bandwidth))
 *   else, over the slowest directed link r -> r+1 mod D of the ring:
 *     2(D-1) * max_r 1000 * (vectors * latency_r + bytes / (D * bandwidth_r))
 * 0 when D <= 1 or vectors == 0. The devices must exist in cl. With
 * measured points the time depends on each vector's size: use
 * mp_allreduce_vector_ms per vector. */
double mp_allreduce_ms(const mp_cluster *cl, int device, int stride, int D, double bytes, int vectors);

/* One ring of one vector of `bytes`: with measured points
 * 2(D-1) * mp_allreduce_step_ms(bytes / D), else mp_allreduce_ms(..., bytes, 1);
 * 0 when D <= 1 or bytes <= 0. */
double mp_allreduce_vector_ms(const mp_cluster *cl, int device, int stride, int D, double bytes);

/* The all-reduce of the stage holding layers lo..hi of prof: the sum of
 * mp_allreduce_vector_ms over its layers with param_bytes > 0 (equal to
 * mp_allreduce_ms of their sums without measured points). */
double mp_allreduce_stage_ms(const mp_cluster *cl, const mp_profile *prof, int lo, int hi, int device,
                             int stride, int D);

#endif
