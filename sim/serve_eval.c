/* serve_eval.c — the serving evaluator (serve_eval.h). */
#include "serve_eval.h"

#include <stdlib.h>
#include <string.h>

mp_status mp_serve_eval_init(mp_serve_eval *e, const mp_profile *prof, const mp_cluster *cluster, int bmax,
                             const mp_serve_terms *terms, mp_error *err)
{
    memset(e, 0, sizeof *e);
    e->prof = prof;
    e->cluster = cluster;
    e->bmax = bmax;
    e->terms = terms ? *terms : mp_serve_terms_default();
    if (bmax < 1) return mp_error_set(err, MP_ERR_INPUT, "serving plan: max_batch %d < 1", bmax);
    int L = prof->num_layers;
    e->prefix = malloc((size_t)bmax * (L + 1) * sizeof(double));
    e->stage_ms = malloc((size_t)cluster->num_devices * bmax * sizeof(double));
    e->link_ms = malloc((size_t)cluster->num_devices * bmax * sizeof(double));
    e->sim = mp_serve_sim_new();
    if (!e->prefix || !e->stage_ms || !e->link_ms || !e->sim) {
        mp_serve_eval_free(e);
        return mp_error_set(err, MP_ERR_NOMEM, "serving evaluation: out of memory");
    }
    for (int b = 1; b <= bmax; b++) {
        double *P = e->prefix + (size_t)(b - 1) * (L + 1);
        P[0] = 0;
        for (int l = 0; l < L; l++) P[l + 1] = P[l] + mp_time_eval(&prof->layers[l].fwd, b);
    }
    return MP_OK;
}

void mp_serve_eval_free(mp_serve_eval *e)
{
    free(e->prefix);
    free(e->stage_ms);
    free(e->link_ms);
    mp_serve_sim_free(e->sim);
    memset(e, 0, sizeof *e);
}

double mp_serve_eval_stage_ms(const mp_serve_eval *e, int b, int dev, int lo, int hi)
{
    const double *P = e->prefix + (size_t)(b - 1) * (e->prof->num_layers + 1);
    return (P[hi + 1] - P[lo]) / e->cluster->devices[dev].speed;
}

double mp_serve_eval_link_ms(const mp_serve_eval *e, int b, int from, int to, int hi)
{
    return mp_cluster_transfer_ms(e->cluster, from, to, b * e->prof->layers[hi].out_bytes_per_sample);
}

/* Checks the split; MP_ERR_INPUT naming the problem. */
static mp_status check_split(const mp_serve_eval *e, int K, const int *first, const int *dev, int B,
                             double max_wait_ms, mp_error *err)
{
    int L = e->prof->num_layers, D = e->cluster->num_devices;
    if (K < 1 || (!dev && K > D))
        return mp_error_set(err, MP_ERR_INPUT, "serving plan: %d stages for %d devices", K, D);
    if (K > L) return mp_error_set(err, MP_ERR_INPUT, "serving plan: %d stages for %d layers", K, L);
    if (B < 1 || B > e->bmax)
        return mp_error_set(err, MP_ERR_INPUT, "serving plan: max_batch %d outside 1..%d", B, e->bmax);
    if (!(max_wait_ms >= 0)) return mp_error_set(err, MP_ERR_INPUT, "serving plan: max_wait_ms must be >= 0");
    for (int s = 0; s < K; s++) {
        int ok = s == 0 ? first[0] == 0 : first[s] > first[s - 1];
        if (!ok || first[s] >= L)
            return mp_error_set(err, MP_ERR_INPUT,
                                "serving plan: stages must be contiguous, non-empty and start at layer 0 (stage %d)", s);
        if (dev && (dev[s] < 0 || dev[s] >= D))
            return mp_error_set(err, MP_ERR_INPUT, "serving plan: stage %d on device %d, but the cluster has %d",
                                s, dev[s], D);
    }
    return MP_OK;
}

mp_status mp_serve_eval_split(mp_serve_eval *e, int K, const int *first, const int *dev, int B,
                              double max_wait_ms, const double *arrival_ms, int n, double slo_ms,
                              mp_serve_result *out, double *memory_bytes, int *fits, mp_error *err)
{
    mp_status st = check_split(e, K, first, dev, B, max_wait_ms, err);
    if (st != MP_OK) return st;
    int L = e->prof->num_layers, all_fit = 1;
    for (int s = 0; s < K; s++) {
        int lo = first[s], hi = s + 1 < K ? first[s + 1] - 1 : L - 1, d = dev ? dev[s] : s;
        for (int b = 1; b <= B; b++) {
            e->stage_ms[s * B + b - 1] = mp_serve_eval_stage_ms(e, b, d, lo, hi);
            if (s + 1 < K) e->link_ms[s * B + b - 1] = mp_serve_eval_link_ms(e, b, d, dev ? dev[s + 1] : s + 1, hi);
        }
        double m = mp_serve_stage_memory(e->prof, lo, hi, B);
        if (memory_bytes) memory_bytes[s] = m;
        if (m > e->cluster->devices[d].memory_bytes) all_fit = 0;
    }
    if (fits) *fits = all_fit;
    const mp_serve_terms *t = &e->terms;
    mp_serve_tables_adjust(K, B, t->fwd_scale, t->batch_overhead_ms, e->stage_ms);
    mp_serve_config cfg = { K, B, max_wait_ms, e->stage_ms, e->link_ms, t->dispatch_ms,
                            t->n_spread ? t->spread : NULL, t->n_spread };
    return mp_serve_sim_run(e->sim, &cfg, arrival_ms, n, slo_ms, out, err);
}

mp_status mp_serve_eval_plan(mp_serve_eval *e, const mp_plan *p, const double *arrival_ms, int n,
                             double slo_ms, mp_serve_result *out, double *memory_bytes, int *fits,
                             mp_error *err)
{
    int K = p->num_stages;
    int *first = malloc((size_t)(K > 0 ? K : 1) * 2 * sizeof(int));
    if (!first) return mp_error_set(err, MP_ERR_NOMEM, "serving evaluation: out of memory");
    int *dev = first + (K > 0 ? K : 1);
    for (int s = 0; s < K; s++) {
        first[s] = p->stages[s].first;
        dev[s] = p->stages[s].device;
    }
    mp_status st = mp_serve_eval_split(e, K, first, dev, p->max_batch, p->max_wait_ms, arrival_ms, n, slo_ms,
                                       out, memory_bytes, fits, err);
    free(first);
    return st;
}

mp_status mp_serve_eval_predict(const mp_serve_eval *e, mp_plan *p, const mp_serve_result *m,
                                const double *memory_bytes, double rate_rps, mp_error *err)
{
    int K = p->num_stages, B = p->max_batch;
    double *peaks = malloc((size_t)(K > 0 ? K : 1) * sizeof *peaks);
    if (!peaks) return mp_error_set(err, MP_ERR_NOMEM, "serving plan: out of memory");
    double iter = 0, worst = -1;
    int bottleneck = 0;
    for (int s = 0; s < K; s++) {
        double t = e->stage_ms[s * B + B - 1];
        iter += t + (s + 1 < K ? e->link_ms[s * B + B - 1] : 0);
        if (t > worst) { worst = t; bottleneck = s; }
        peaks[s] = memory_bytes[s];
    }
    mp_prediction *pr = &p->predicted;
    free(pr->peak_memory_bytes);
    pr->peak_memory_bytes = peaks;
    pr->num_peaks = K;
    pr->iteration_ms = iter;
    pr->samples_per_s = m->throughput_rps;
    pr->bubble_fraction = m->bubble_fraction;
    pr->bottleneck_stage = bottleneck;
    pr->serve = (mp_serve_prediction){ .rate = rate_rps, .throughput_rps = m->throughput_rps, .p50_ms = m->p50_ms,
                                       .p90_ms = m->p90_ms, .p99_ms = m->p99_ms, .max_ms = m->max_ms,
                                       .slo_ms = m->slo_ms, .slo_attainment = m->slo_attainment,
                                       .capacity_rps = m->capacity_rps, .overloaded = m->overloaded,
                                       .queued_at_end = m->queued_at_end };
    p->has_prediction = 1;
    p->terms = e->terms;
    p->has_terms = 1;
    return MP_OK;
}
