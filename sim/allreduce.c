/* allreduce.c — the all-reduce cost model (allreduce.h).
 * defines: mp_allreduce_ms */
#include "allreduce.h"

/* See allreduce.h. */
double mp_allreduce_ms(const mp_cluster *cl, int device, int stride, int D, double bytes)
{
    if (D <= 1) return 0;
    double steps = 2.0 * (D - 1), chunk = bytes / D;
    if (cl->allreduce_bandwidth > 0)
        return 1000.0 * steps * (cl->allreduce_latency_s + chunk / cl->allreduce_bandwidth);
    double slowest = 0;
    for (int r = 0; r < D; r++) {
        double t = mp_cluster_transfer_ms(cl, device + r * stride, device + ((r + 1) % D) * stride, chunk);
        if (t > slowest) slowest = t;
    }
    return steps * slowest;
}
