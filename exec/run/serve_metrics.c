/* serve_metrics.c — what a serving run measured: latency percentiles,
 * throughput, SLO attainment and overload (mp_serve_run_metrics), and the
 * runtime's own overheads (mp_serve_run_overheads); see serve_run.h.
 * defines: mp_serve_run_metrics, mp_serve_run_overheads */
#include "serve_run.h"

#include <stdlib.h>
#include <string.h>

mp_status mp_serve_run_metrics(const mp_serve_run_result *r, double slo_ms, mp_serve_result *out,
                               mp_error *err)
{
    memset(out, 0, sizeof *out);
    int n = r->n, fin = 0;
    double *lat = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (!lat) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    double last_done = 0, sum = 0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        if (r->done_ms[i] < 0) continue;
        double l = r->done_ms[i] - (r->release_ms && r->release_ms[i] >= 0 ? r->release_ms[i] : r->arrival_ms[i]);
        lat[fin++] = l;
        sum += l;
        if (r->done_ms[i] > last_done) last_done = r->done_ms[i];
        if (slo_ms > 0 && l <= slo_ms + 1e-6) ok++;
    }
    out->num_requests = n;
    out->num_batches = r->num_batches;
    out->mean_batch = r->num_batches ? (double)(n - (n - fin)) / r->num_batches : 0;
    double span = n > 1 ? r->arrival_ms[n - 1] - r->arrival_ms[0] : 0;
    out->offered_rps = span > 0 ? 1e3 * (n - 1) / span : 0;
    double serve_span = last_done - (n ? r->arrival_ms[0] : 0);
    out->throughput_rps = fin && serve_span > 0 ? 1e3 * fin / serve_span : 0;
    out->slo_ms = slo_ms;
    out->slo_attainment = slo_ms > 0 ? (double)ok / n : (double)fin / (n ? n : 1);
    out->queued_at_end = r->queued_at_end;
    if (fin) {
        out->mean_ms = sum / fin;
        out->p50_ms = mp_serve_percentile(lat, fin, 50);
        out->p90_ms = mp_serve_percentile(lat, fin, 90);
        out->p99_ms = mp_serve_percentile(lat, fin, 99);
        out->max_ms = mp_serve_percentile(lat, fin, 100);
    }
    double busy = 0;
    for (int s = 0; s < r->num_stages; s++) busy += r->busy_ms[s];
    out->bubble_fraction = serve_span > 0 ? 1 - busy / (r->num_stages * serve_span) : 0;
    out->overloaded = r->unfinished > 0 ||
                      (r->queued_at_end > 2 * r->max_batch && out->throughput_rps < 0.95 * out->offered_rps);
    free(lat);
    return MP_OK;
}

static double pct_of(double *v, int n, int p) { return n > 0 ? mp_serve_percentile(v, n, p) : 0; }

void mp_serve_run_overheads(const mp_serve_run_result *r, mp_serve_overheads *o)
{
    memset(o, 0, sizeof *o);
    int n = r->n, nb = r->num_batches, m = 0;
    double *v = malloc((size_t)(n > nb ? n : nb) * sizeof(double) + sizeof(double));
    if (!v) return;
    for (int i = 0; i < n; i++)
        if (r->release_ms[i] >= 0) v[m++] = r->release_ms[i] - r->arrival_ms[i];
    o->gen_late_p50_ms = pct_of(v, m, 50);
    o->gen_late_p99_ms = pct_of(v, m, 99);
    m = 0;
    for (int j = 0; j < nb; j++) {
        int f = r->batch_first[j], b = r->batch_size[j];
        double ready = r->release_ms[f] + r->max_wait_ms;
        if (b == r->max_batch && r->release_ms[f + b - 1] >= 0 && r->release_ms[f + b - 1] < ready)
            ready = r->release_ms[f + b - 1];
        if (ready > r->idle_ms[j]) v[m++] = r->take_ms[j] - ready;
    }
    o->idle_batches = m;
    o->dispatch_p50_ms = pct_of(v, m, 50);
    o->dispatch_p99_ms = pct_of(v, m, 99);
    double copy = 0;
    for (int s = 0; s < r->num_stages; s++) copy += r->copy_ms[s];
    o->copy_per_batch_ms = nb ? copy / nb : 0;
    free(v);
}

