/* allreduce.c — the all-reduce cost model (allreduce.h).
 * defines: mp_allreduce_ms, mp_allreduce_step_ms, mp_allreduce_vector_ms, mp_allreduce_stage_ms */
#include "allreduce.h"

/* See allreduce.h. */
double mp_allreduce_step_ms(const mp_cluster *cl, double chunk)
{
    const double *x = cl->allreduce_chunk_bytes, *y = cl->allreduce_step_ms;
    int n = cl->allreduce_points;
    if (chunk <= x[0]) return y[0];
    if (chunk >= x[n - 1]) return y[n - 1] * chunk / x[n - 1];
    int k = 1;
    while (x[k] < chunk) k++;
    return y[k - 1] + (y[k] - y[k - 1]) * (chunk - x[k - 1]) / (x[k] - x[k - 1]);
}

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
double mp_allreduce_vector_ms(const mp_cluster *cl, int device, int stride, int D, double bytes)
{
    if (D <= 1 || bytes <= 0) return 0;
    if (cl->allreduce_points > 0) return 2.0 * (D - 1) * mp_allreduce_step_ms(cl, bytes / D);
    return mp_allreduce_ms(cl, device, stride, D, bytes, 1);
}

/* See allreduce.h. */
double mp_allreduce_stage_ms(const mp_cluster *cl, const mp_profile *prof, int lo, int hi, int device,
                             int stride, int D)
{
    double bytes = 0, ms = 0;
    int vectors = 0;
    for (int l = lo; l <= hi; l++) {
        double p = prof->layers[l].param_bytes;
        if (p <= 0) continue;
        bytes += p;
        vectors++;
        if (cl->allreduce_points > 0) ms += mp_allreduce_vector_ms(cl, device, stride, D, p);
    }
    return cl->allreduce_points > 0 ? ms : mp_allreduce_ms(cl, device, stride, D, bytes, vectors);
}
