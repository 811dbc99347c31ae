/* allreduce.c — the all-reduce cost model (allreduce.h).
 * defines: mp_allreduce_ms, mp_allreduce_stage_ms */
#include "allreduce.h"

/* See allreduce.h. */
double mp_allreduce_ms(const mp_cluster *cl, int device, int stride, int D, double bytes, int vectors)
{
    if (D <= 1 || vectors <= 0) return 0;
    double steps = 2.0 * (D - 1), chunk = bytes / D;
    if (cl->allreduce_bandwidth > 0)
        return 1000.0 * steps * (vectors * cl->allreduce_latency_s + chunk / cl->allreduce_bandwidth);
    double slowest = 0;
    for (int r = 0; r < D; r++) {
        mp_link l = mp_cluster_link(cl, device + r * stride, device + ((r + 1) % D) * stride);
        double t = 1000.0 * (vectors * l.latency_s + chunk / l.bandwidth);
        if (t > slowest) slowest = t;
    }
    return steps * slowest;
}

/* See allreduce.h. */
double mp_allreduce_stage_ms(const mp_cluster *cl, const mp_profile *prof, int lo, int hi, int device,
                             int stride, int D)
{
    double bytes = 0;
    int vectors = 0;
    for (int l = lo; l <= hi; l++) {
        bytes += prof->layers[l].param_bytes;
        vectors += prof->layers[l].param_bytes > 0;
    }
    return mp_allreduce_ms(cl, device, stride, D, bytes, vectors);
}
