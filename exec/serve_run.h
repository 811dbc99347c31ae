/* serve_run.h — serve a pipeline for real (mprun --serve): a load generator
 * thread releases requests open-loop at their scheduled times, a batcher in
 * front of stage 0 forms batches with the simulator's semantics
 * (docs/serving.md), stage workers run forward only on the existing layers,
 * backends and transports; every request's latency is measured on
 * CLOCK_MONOTONIC from its scheduled arrival to the end of the last stage's
 * forward of its batch.
 * defines: mp_serve_run_config, mp_serve_run_result, mp_serve_run_config_default,
 *          mp_serve_run, mp_serve_run_metrics, mp_serve_run_result_free,
 *          mp_serve_report_info, mp_serve_report_print, mp_serve_report_write,
 *          mp_serve_run_main */
#ifndef MP_SERVE_RUN_H
#define MP_SERVE_RUN_H

#include <stdint.h>
#include <stdio.h>
#include "model.h"
#include "mp_status.h"
#include "plan.h"
#include "serve.h"
#include "trace.h"

typedef struct {
    const mp_plan *plan;        /* a serving plan: mode serve, max_batch >= 1 */
    const mp_model *model;
    const char *backend;        /* "cpu" (default) or "cuda" */
    int pin;                    /* cpu: pin stage s to core plan->stages[s].device */
    uint64_t seed;              /* request i's input is sample i of the synthetic data */
    const double *arrival_ms;   /* [n] scheduled arrival times, ms after the start, non-decreasing */
    int n;
    double slo_ms;              /* for attainment; <= 0: none (attainment counts finished ones) */
    double timeout_s;           /* every wait between stages (plus the longest idle gap) */
    double drain_s;             /* after the last arrival, requests not yet dispatched within
                                   this are abandoned and counted as unfinished */
    int keep_outputs;           /* keep every request's output row (tests) */
} mp_serve_run_config;

typedef struct {
    int n, num_stages, max_batch, out_dim;
    double max_wait_ms;
    double *arrival_ms;         /* [n] scheduled arrivals (copy) */
    double *release_ms;         /* [n] when the generator actually queued it */
    double *done_ms;            /* [n] end of the last stage's forward; -1: unfinished */
    int *batch_of;              /* [n] batch id, -1: never dispatched */
    int num_batches;
    int *batch_size;            /* [num_batches] */
    int *batch_first;           /* [num_batches] first request id (batches are FIFO ranges) */
    double *fwd_start_ms, *fwd_end_ms;  /* [num_batches * K] stage s of batch j at [j*K + s] */
    double *busy_ms;            /* [K] sum of forward times */
    int queued_at_end;          /* requests not started on stage 0 at the last arrival */
    int unfinished;             /* requests with done_ms < 0 */
    float *outputs;             /* keep_outputs: [n * out_dim] */
} mp_serve_run_result;

/* Defaults: cpu, pin, seed 1, timeout 30 s, drain 2 s, no SLO, no outputs. */
void mp_serve_run_config_default(mp_serve_run_config *c);

/* Serves the n requests. Threads transport (one process). MP_ERR_INPUT for a
 * plan that is not a serving plan or does not match the model; on a failure
 * every stage stops within the timeout and err names the stage. */
mp_status mp_serve_run(const mp_serve_run_config *c, mp_serve_run_result *res, mp_error *err);

/* The measured metrics in the simulator's terms (docs/serving.md §2) over the
 * finished requests: throughput = finished / (last completion - first arrival),
 * nearest-rank percentiles, attainment over ALL n requests (unfinished ones
 * miss), queued_at_end as measured, capacity_rps left 0, and overloaded = 1
 * when any request is unfinished or when the queue at the last arrival holds
 * more than two full batches while throughput < 95% of the offered rate. */
mp_status mp_serve_run_metrics(const mp_serve_run_result *r, double slo_ms, mp_serve_result *out,
                               mp_error *err);

void mp_serve_run_result_free(mp_serve_run_result *r);

/* ------------------------------------------------------------ report */

typedef struct {
    const char *plan_path, *model_path, *arrivals_desc;  /* arrivals_desc: "poisson seed 1" or a path */
    double rate_rps;            /* offered rate (requested, or the trace's) */
    const mp_serve_run_result *run;
    mp_serve_result measured;
    int has_prediction;
    mp_serve_result predicted;  /* the simulator on the same arrival times */
} mp_serve_report_info;

/* Human summary: offered/achieved rate, latency percentiles, attainment,
 * batches, per-stage utilisation, queue/unfinished/overload, and the
 * prediction with errors in percent when present. */
void mp_serve_report_print(FILE *f, const mp_serve_report_info *r);

/* The report as JSON, atomically; top level has rate, throughput, p50_ms,
 * p90_ms, p99_ms, max_ms, slo_attainment, overloaded, ... (docs/serving.md §7). */
mp_status mp_serve_report_write(const char *path, const mp_serve_report_info *r, mp_error *err);

/* Measured timeline (stage forwards and link sends) as Chrome trace JSON. */
mp_status mp_serve_trace_write(const char *path, const mp_serve_run_result *r, mp_error *err);

/* `mprun PLAN --model M --serve ...`: parses its own options, runs, reports.
 * Returns the exit code (0, 1 failure, 2 bad input). */
int mp_serve_run_main(int argc, char **argv);

#endif
