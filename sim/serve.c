/* serve.c — the serving simulator (serve.h, docs/serving.md).
 *
 * Every server (stage 0..K-1, link 0..K-2) takes batches in batch order, so
 * the tandem queue is solved by one pass of recurrences instead of an event
 * heap: a batch starts on a server at max(its input is ready, the server's
 * previous batch ended). */
#include "serve.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct mp_serve_sim {
    int cap;             /* capacity of the per-request buffers */
    double *lat;         /* [cap] latency per request */
    double *tmp;         /* [cap] scratch for percentiles */
    int *batch_of;       /* [cap] */
    int kcap;
    double *stage_free;  /* [kcap] */
    double *link_free;   /* [kcap] */
    double *busy;        /* [kcap] */
};

mp_serve_sim *mp_serve_sim_new(void)
{
    return calloc(1, sizeof(mp_serve_sim));
}

void mp_serve_sim_free(mp_serve_sim *s)
{
    if (!s) return;
    free(s->lat);
    free(s->tmp);
    free(s->batch_of);
    free(s->stage_free);
    free(s->link_free);
    free(s->busy);
    free(s);
}

const double *mp_serve_sim_latencies(const mp_serve_sim *s) { return s->lat; }
const int *mp_serve_sim_batch_of(const mp_serve_sim *s) { return s->batch_of; }
double mp_serve_sim_busy(const mp_serve_sim *s, int j) { return s->busy[j]; }

static int reserve(mp_serve_sim *s, int n, int k)
{
    if (n > s->cap) {
        double *a = realloc(s->lat, (size_t)n * sizeof *a);
        if (!a) return 0;
        s->lat = a;
        a = realloc(s->tmp, (size_t)n * sizeof *a);
        if (!a) return 0;
        s->tmp = a;
        int *b = realloc(s->batch_of, (size_t)n * sizeof *b);
        if (!b) return 0;
        s->batch_of = b;
        s->cap = n;
    }
    if (k > s->kcap) {
        double *a = realloc(s->stage_free, (size_t)k * sizeof *a);
        if (!a) return 0;
        s->stage_free = a;
        a = realloc(s->link_free, (size_t)k * sizeof *a);
        if (!a) return 0;
        s->link_free = a;
        a = realloc(s->busy, (size_t)k * sizeof *a);
        if (!a) return 0;
        s->busy = a;
        s->kcap = k;
    }
    return 1;
}

/* ------------------------------------------------------------ percentiles */

static void swapd(double *a, double *b) { double t = *a; *a = *b; *b = t; }

/* k-th smallest (0-based) of v[0..n-1], Hoare quickselect with a
 * median-of-three pivot: deterministic, O(n) on average. */
static double select_kth(double *v, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (hi > lo) {
        int mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo]) swapd(&v[mid], &v[lo]);
        if (v[hi] < v[lo]) swapd(&v[hi], &v[lo]);
        if (v[hi] < v[mid]) swapd(&v[hi], &v[mid]);
        double pivot = v[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) { swapd(&v[i], &v[j]); i++; j--; }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

double mp_serve_percentile(double *v, int n, int p)
{
    long rank = ((long)p * n + 99) / 100;  /* ceil(p*n/100) */
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return select_kth(v, n, (int)rank - 1);
}

/* ------------------------------------------------------------ simulation */

static mp_status check_config(const mp_serve_config *c, int n, mp_error *err)
{
    if (n < 1) return mp_error_set(err, MP_ERR_INPUT, "serving simulator: no requests");
    if (c->num_stages < 1 || c->max_batch < 1)
        return mp_error_set(err, MP_ERR_INPUT, "serving simulator: need >= 1 stage and max_batch >= 1");
    if (!(c->max_wait_ms >= 0))
        return mp_error_set(err, MP_ERR_INPUT, "serving simulator: max_wait_ms must be >= 0");
    if (!(c->dispatch_ms >= 0) || !isfinite(c->dispatch_ms))
        return mp_error_set(err, MP_ERR_INPUT, "serving simulator: dispatch_ms must be finite and >= 0");
    if (c->spread && c->n_spread < 2)
        return mp_error_set(err, MP_ERR_INPUT, "serving simulator: a spread needs >= 2 quantiles");
    for (int k = 0; c->spread && k < c->n_spread; k++)
        if (!(c->spread[k] > 0) || !isfinite(c->spread[k]) || (k && c->spread[k] < c->spread[k - 1]))
            return mp_error_set(err, MP_ERR_INPUT, "serving simulator: spread quantile %d must be finite, > 0 "
                                "and not below the one before", k);
    int B = c->max_batch, K = c->num_stages;
    for (int i = 0; i < K * B; i++)
        if (!(c->stage_ms[i] >= 0))
            return mp_error_set(err, MP_ERR_INPUT, "serving simulator: stage %d time at batch %d is negative",
                                i / B, i % B + 1);
    for (int i = 0; i < (K - 1) * B; i++)
        if (!(c->link_ms[i] >= 0))
            return mp_error_set(err, MP_ERR_INPUT, "serving simulator: link %d time at batch %d is negative",
                                i / B, i % B + 1);
    return MP_OK;
}

/* A draw from the spread (1 when there is none): one of its n_spread
 * equiprobable factors; *rng advances. */
static double spread_draw(const mp_serve_config *c, uint64_t *rng)
{
    if (!c->spread) return 1;
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ULL);   /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    int k = (int)((double)(z >> 11) * 0x1.0p-53 * c->n_spread);
    return c->spread[k < c->n_spread ? k : c->n_spread - 1];
}

mp_status mp_serve_sim_run(mp_serve_sim *s, const mp_serve_config *cfg,
                           const double *a, int n, double slo_ms,
                           mp_serve_result *out, mp_error *err)
{
    mp_status st = check_config(cfg, n, err);
    if (st != MP_OK) return st;
    for (int i = 0; i < n; i++)
        if (!(a[i] >= 0) || (i > 0 && a[i] < a[i - 1]))
            return mp_error_set(err, MP_ERR_INPUT,
                                "serving simulator: arrival %d is negative or earlier than the previous one", i);
    const int K = cfg->num_stages, B = cfg->max_batch;
    if (!reserve(s, n, K)) return mp_error_set(err, MP_ERR_NOMEM, "serving simulator: out of memory");

    for (int j = 0; j < K; j++) {
        s->stage_free[j] = s->link_free[j] = -INFINITY;
        s->busy[j] = 0;
    }
    const double W = cfg->max_wait_ms, a_last = a[n - 1];
    uint64_t rng = 0x6d706b6974ULL;   /* "mpkit": the same draws in every run */
    int i = 0, nbatch = 0, queued = 0;
    double last_done = 0;
    while (i < n) {
        /* The batcher is ready when it holds B requests or the oldest has
         * waited W; the batch leaves when stage 0 is also free, taking every
         * request that has arrived by then (at most B). */
        double ready = a[i] + W;
        if (i + B - 1 < n && a[i + B - 1] < ready) ready = a[i + B - 1];
        /* stage 0 free by then: it waits in the batcher and wakes dispatch_ms
         * late; still busy: it finds the batch ready when it comes back */
        double start = ready >= s->stage_free[0] ? ready + cfg->dispatch_ms : s->stage_free[0];
        int e = i + 1;
        while (e < n && e - i < B && a[e] <= start) e++;
        int nb = e - i;
        if (start > a_last) queued += nb;
        double f = cfg->stage_ms[nb - 1] * spread_draw(cfg, &rng);
        double t = start + f;
        s->stage_free[0] = t;
        s->busy[0] += f;
        for (int j = 1; j < K; j++) {
            double ls = t > s->link_free[j - 1] ? t : s->link_free[j - 1];
            double le = ls + cfg->link_ms[(j - 1) * B + nb - 1];
            s->link_free[j - 1] = le;
            double ss = le > s->stage_free[j] ? le : s->stage_free[j];
            f = cfg->stage_ms[j * B + nb - 1] * spread_draw(cfg, &rng);
            t = ss + f;
            s->stage_free[j] = t;
            s->busy[j] += f;
        }
        for (int r = i; r < e; r++) {
            s->lat[r] = t - a[r];
            s->batch_of[r] = nbatch;
        }
        last_done = t;
        nbatch++;
        i = e;
    }

    memset(out, 0, sizeof *out);
    out->num_requests = n;
    out->num_batches = nbatch;
    out->mean_batch = (double)n / nbatch;
    double span = last_done - a[0];
    out->throughput_rps = span > 0 ? 1000.0 * n / span : 0;
    double busy = 0;
    for (int j = 0; j < K; j++) busy += s->busy[j];
    out->bubble_fraction = span > 0 ? 1 - busy / (K * span) : 0;
    out->offered_rps = (n > 1 && a_last > a[0]) ? 1000.0 * (n - 1) / (a_last - a[0]) : 0;
    double worst = 0;
    for (int j = 0; j < K; j++) {
        if (cfg->stage_ms[j * B + B - 1] > worst) worst = cfg->stage_ms[j * B + B - 1];
        if (j < K - 1 && cfg->link_ms[j * B + B - 1] > worst) worst = cfg->link_ms[j * B + B - 1];
    }
    out->capacity_rps = worst > 0 ? 1000.0 * B / worst : INFINITY;
    out->overloaded = out->offered_rps > out->capacity_rps;
    out->queued_at_end = queued;

    double sum = 0, mx = 0;
    int within = 0;
    for (int r = 0; r < n; r++) {
        double l = s->lat[r];
        sum += l;
        if (l > mx) mx = l;
        if (l <= slo_ms + 1e-9) within++;
        s->tmp[r] = l;
    }
    out->mean_ms = sum / n;
    out->max_ms = mx;
    out->slo_ms = slo_ms;
    out->slo_attainment = (double)within / n;
    /* Each selection partitions tmp around its rank, so increasing ranks can
     * continue on the upper part: still exact, less work. */
    long r50 = (50L * n + 99) / 100, r90 = (90L * n + 99) / 100, r99 = (99L * n + 99) / 100;
    out->p50_ms = select_kth(s->tmp, n, (int)r50 - 1);
    out->p90_ms = select_kth(s->tmp + r50 - 1, n - (int)r50 + 1, (int)(r90 - r50));
    out->p99_ms = select_kth(s->tmp + r90 - 1, n - (int)r90 + 1, (int)(r99 - r90));
    return MP_OK;
}

/* ------------------------------------------------------------ costs */

void mp_serve_tables_adjust(int K, int max_batch, double fwd_scale, double batch_overhead_ms,
                            double *stage_ms)
{
    for (int i = 0; i < K * max_batch; i++) stage_ms[i] = fwd_scale * stage_ms[i] + batch_overhead_ms;
}

double mp_serve_stage_memory(const mp_profile *prof, int lo, int hi, int max_batch)
{
    double params = 0, act = 0;
    for (int l = lo; l <= hi; l++) {
        double in = l == 0 ? prof->input_bytes_per_sample : prof->layers[l - 1].out_bytes_per_sample;
        double x = in + prof->layers[l].out_bytes_per_sample;
        params += prof->layers[l].param_bytes;
        if (x > act) act = x;
    }
    return params + 2.0 * max_batch * act;
}
