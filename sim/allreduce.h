/* allreduce.h — the cost model of a stage's gradient all-reduce among its D
 * data-parallel replicas (docs/cost-model.md, "Data parallelism"): a ring of
 * 2(D-1) steps, each moving bytes/D over every link of the ring at once.
 * defines: mp_allreduce_ms */
#ifndef MP_ALLREDUCE_H
#define MP_ALLREDUCE_H

#include "cluster.h"

/* Time in ms to all-reduce `bytes` of gradients among the D replicas of a
 * stage whose replica r runs on device `device + r * stride`:
 *   with the cluster's measured fit (allreduce_bandwidth > 0):
 *     1000 * 2(D-1) * (allreduce_latency_s + bytes / (D * allreduce_bandwidth))
 *   else, over the slowest directed link of the ring r -> r+1 mod D:
 *     2(D-1) * max_r mp_cluster_transfer_ms(dev r, dev r+1 mod D, bytes / D)
 * 0 when D <= 1. The devices must exist in cl. */
double mp_allreduce_ms(const mp_cluster *cl, int device, int stride, int D, double bytes);

#endif
