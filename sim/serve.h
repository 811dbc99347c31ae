/* serve.h — the serving simulator: open-loop single-sample requests, a batcher
 * in front of stage 0, forward-only stages and FIFO links (docs/serving.md).
 * defines: mp_serve_config, mp_serve_result, mp_serve_sim, mp_serve_sim_new,
 *          mp_serve_sim_free, mp_serve_sim_run, mp_serve_sim_latencies,
 *          mp_serve_sim_batch_of, mp_serve_sim_busy, mp_serve_percentile, mp_serve_arrivals,
 *          mp_serve_arrivals_poisson, mp_serve_arrivals_trace,
 *          mp_serve_arrivals_load, mp_serve_arrivals_at_rate,
 *          mp_serve_arrivals_free, mp_serve_tables_adjust,
 *          mp_serve_stage_memory
 *
 * All times inside are milliseconds; trace files hold seconds. */
#ifndef MP_SERVE_H
#define MP_SERVE_H

#include "cluster.h"
#include "mp_status.h"
#include "profile.h"

/* One serving pipeline: K stages, batches of 1..max_batch requests. */
typedef struct {
    int num_stages;          /* K >= 1 */
    int max_batch;           /* B >= 1 */
    double max_wait_ms;      /* >= 0: the batcher's timeout */
    const double *stage_ms;  /* [K*B] forward time of stage s at batch size b: stage_ms[s*B + b-1] */
    const double *link_ms;   /* [(K-1)*B] transfer s -> s+1 at batch size b: link_ms[s*B + b-1] */
    double dispatch_ms;      /* >= 0: the batcher's wake-up: a batch that becomes ready while stage 0
                                is idle leaves at ready + dispatch_ms (0: at ready; docs/serving.md §1) */
    const double *spread;    /* NULL: stage times as given; else [n_spread >= 2] equiprobable factors
                                (the quantiles at probabilities (k+0.5)/n_spread of measured / modelled
                                forward time, mean 1), > 0 and non-decreasing: every stage forward is its
                                time times one of them drawn at random (the same seeded stream in every
                                run, so candidates compare on common random numbers) */
    int n_spread;
} mp_serve_config;

typedef struct {
    int num_requests;
    int num_batches;
    double mean_batch;       /* requests per batch */
    double throughput_rps;   /* requests / (last completion - first arrival) */
    double offered_rps;      /* (n-1) / (last arrival - first arrival); 0 when undefined */
    double capacity_rps;     /* 1000*B / (slowest stage or link at batch B) */
    double p50_ms, p90_ms, p99_ms, max_ms, mean_ms;  /* latency, nearest-rank percentiles */
    double slo_ms;
    double slo_attainment;   /* share of requests with latency <= slo_ms */
    int queued_at_end;       /* requests not yet started on stage 0 at the last arrival */
    int overloaded;          /* offered_rps > capacity_rps */
    double bubble_fraction;  /* 1 - sum of stage busy time / (K * (last completion - first arrival)) */
} mp_serve_result;

typedef struct mp_serve_sim mp_serve_sim;  /* reusable buffers; no allocation once warm */

mp_serve_sim *mp_serve_sim_new(void);
void mp_serve_sim_free(mp_serve_sim *s);

/* Simulates n requests arriving at arrival_ms[0..n-1] (non-decreasing) through
 * the pipeline cfg and fills *out. O(n*K) plus O(n) for the percentiles.
 * MP_ERR_INPUT for n < 1, bad config or negative times; MP_ERR_NOMEM. */
mp_status mp_serve_sim_run(mp_serve_sim *s, const mp_serve_config *cfg,
                           const double *arrival_ms, int n, double slo_ms,
                           mp_serve_result *out, mp_error *err);

/* After a run: latency of each request in arrival order (n entries). */
const double *mp_serve_sim_latencies(const mp_serve_sim *s);
/* After a run: busy time (sum of forward times) of stage j. */
double mp_serve_sim_busy(const mp_serve_sim *s, int j);
/* After a run: index of the batch that carried each request (n entries). */
const int *mp_serve_sim_batch_of(const mp_serve_sim *s);

/* Nearest-rank percentile of v[0..n-1] (n >= 1): the ceil(p*n/100)-th smallest
 * value, p an integer 1..100. Reorders v. */
double mp_serve_percentile(double *v, int n, int p);

/* ------------------------------------------------------------ arrivals */

/* An arrival process that can be replayed at any rate: Poisson with a fixed
 * seed, or a trace whose time axis is scaled to the wanted rate. */
typedef struct {
    int is_trace;
    int n;                   /* requests per run */
    unsigned long seed;      /* Poisson */
    double *trace_ms;        /* trace: owned, n entries, first at its own time */
    double trace_rps;        /* trace: its own offered rate (n-1)/span; 0 if span is 0 */
} mp_serve_arrivals;

/* Poisson process: n requests (n >= 1) with the given seed. */
void mp_serve_arrivals_poisson(mp_serve_arrivals *a, int n, unsigned long seed);

/* Takes ownership of t_ms (n non-decreasing times, ms). */
void mp_serve_arrivals_trace(mp_serve_arrivals *a, double *t_ms, int n);

/* Reads a trace file: one arrival time in seconds per line (blank lines and
 * lines starting with '#' are skipped); times must be finite, >= 0 and
 * non-decreasing, at least one. MP_ERR_IO / MP_ERR_INPUT naming PATH:LINE. */
mp_status mp_serve_arrivals_load(mp_serve_arrivals *a, const char *path, mp_error *err);

/* Fills out_ms[0..a->n-1]. Poisson: gaps are exponential with mean
 * 1000/rate_rps ms from gsl_rng_mt19937 seeded with a->seed, the first
 * arrival one gap after 0. Trace: rate_rps <= 0 gives the trace as is,
 * otherwise every time is multiplied by trace_rps / rate_rps. */
void mp_serve_arrivals_at_rate(const mp_serve_arrivals *a, double rate_rps, double *out_ms);

void mp_serve_arrivals_free(mp_serve_arrivals *a);

/* ------------------------------------------------------------ costs */

/* The stage and link tables of a plan: sim/serve_eval.h. */

/* The measured serving terms on top of the profile's forward times
 * (docs/serving.md §1, "Overhead terms"): every stage_ms[s*B + b-1] of K
 * stages becomes fwd_scale * stage_ms + batch_overhead_ms. fwd_scale > 0,
 * batch_overhead_ms >= 0; (1, 0) leaves the table as it is. */
void mp_serve_tables_adjust(int K, int max_batch, double fwd_scale, double batch_overhead_ms,
                            double *stage_ms);

/* Serving memory bound of a stage with layers lo..hi:
 * params(lo..hi) + 2 * max_batch * max over l in lo..hi of (in(l) + out(l)),
 * in(l) = out_bytes of layer l-1 (input_bytes_per_sample for l = 0). */
double mp_serve_stage_memory(const mp_profile *prof, int lo, int hi, int max_batch);

#endif
