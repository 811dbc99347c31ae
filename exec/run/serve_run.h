/* serve_run.h — serve a pipeline for real (mprun --serve): a load generator
 * thread releases requests open-loop at their scheduled times, a batcher in
 * front of stage 0 forms batches with the simulator's semantics
 * (docs/serving.md), stage workers run forward only on the existing layers,
 * backends and transports; every request's latency is measured on
 * CLOCK_MONOTONIC from its arrival at the server (when the generator released
 * it; how late that was against the schedule is reported apart) to the end of
 * the last stage's forward of its batch.
 * defines: mp_serve_run_config, mp_serve_run_result, mp_serve_run_config_default,
 *          mp_serve_run, mp_serve_run_metrics, mp_serve_run_result_free,
 *          mp_serve_report_info, mp_serve_report_print, mp_serve_report_write */
#ifndef MP_SERVE_RUN_H
#define MP_SERVE_RUN_H

#include <stdint.h>
#include <stdio.h>
#include "machine.h"
#include "model.h"
#include "mp_status.h"
#include "plan.h"
#include "serve.h"
#include "trace.h"

typedef struct {
    const mp_plan *plan;        /* a serving plan: mode serve, max_batch >= 1 */
    const mp_model *model;
    const char *backend;        /* "cpu" (default) or "cuda" */
    const char *transport;      /* "threads" (default): one thread per stage; "mpi": this
                                   process is rank s of `mpirun -np K` and runs stage s
                                   (rank 0 also the generator and the batcher) */
    int pin;                    /* cpu: pin stage s to core plan->stages[s].device */
    uint64_t seed;              /* request i's input is sample i of the synthetic data */
    const double *arrival_ms;   /* [n] scheduled arrival times, ms after the start, non-decreasing */
    int n;
    double slo_ms;              /* for attainment; <= 0: none (attainment counts finished ones) */
    double timeout_s;           /* every wait between stages (plus the longest idle gap) */
    double drain_s;             /* after the last arrival, requests not yet dispatched within
                                   this are abandoned and counted as unfinished */
    int keep_outputs;           /* keep every request's output row (tests) */
    int realtime;               /* run the generator and the stages under SCHED_FIFO (needs
                                   CAP_SYS_NICE; where refused they stay as they are) */
    const char *gpu_map;        /* cuda: "G0,G1,...": plan device d runs on GPU Gd (stages may
                                   share a GPU); NULL: $MPKIT_GPUS, else plan device d is GPU d */
    int num_devices;            /* > 0: device indices must be below it */
    const double *device_memory;/* [num_devices] bytes, or NULL: no fit check */
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
    double *busy_ms;            /* [K] sum of forward times (upload + forward + download) */
    double *copy_ms;            /* [K] of which upload + download of the batch rows */
    double *idle_ms;            /* [num_batches] when stage 0 came back to the batcher before batch j */
    double *take_ms;            /* [num_batches] when the batcher handed batch j to stage 0 */
    int queued_at_end;          /* requests not started on stage 0 at the last arrival */
    int unfinished;             /* requests with done_ms < 0 */
    int realtime_threads;       /* threads that got SCHED_FIFO (config realtime), all ranks */
    int is_root;                /* 1: the whole result (threads, or MPI rank 0, which gathered
                                   every stage's part); 0: an MPI rank > 0, which holds only
                                   its own stage's part and reports nothing */
    float *outputs;             /* keep_outputs: [n * out_dim] */
    double others_pct;          /* root: % of the machine's CPU time that processes outside this
                                   run took while it ran (its MPI ranks on this machine
                                   excluded); -1 when unknown */
    mp_cpu_sample cpu_start;    /* this process's and the machine's CPU time at the start */
    double peer_ticks;          /* root: CPU ticks of this run's other ranks on this machine */
} mp_serve_run_result;

/* Defaults: cpu, threads, pin, seed 1, timeout 30 s, drain 2 s, no SLO, no outputs. */
void mp_serve_run_config_default(mp_serve_run_config *c);

/* Serves the n requests, on threads of this process or, with transport "mpi",
 * as rank s of K ranks (every rank calls it with the same config; times are
 * relative to each rank's own clock start after a barrier, and rank 0 gathers
 * the other stages' parts: docs/serving.md §7, "MPI"). It runs on the
 * pipeline runner (pipeline.h), so the checks before any work are training's:
 * MPI compiled in, cores, the GPU map and the CUDA devices (mp_pipeline_check),
 * and every stage's serving memory bound against device_memory.
 * MP_ERR_INPUT for a plan that is not a serving plan, does not match the
 * model or does not fit; on a failure every stage stops within the timeout
 * and err names the stage (MPI: the failing rank prints that and brings every
 * rank down). */
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

/* Where the time goes besides the forwards, from the runtime's own
 * timestamps (docs/serving.md §7, "Overheads"). */
typedef struct {
    double gen_late_p50_ms, gen_late_p99_ms;  /* release - scheduled arrival, over requests */
    int idle_batches;                         /* batches that found stage 0 waiting in the batcher */
    double dispatch_p50_ms, dispatch_p99_ms;  /* those batches: take - ready (the batcher's wake-up) */
    double copy_per_batch_ms;                 /* mean upload + download per batch, summed over stages */
} mp_serve_overheads;

/* Fills *o from a finished run: a batch of b requests starting at request f
 * is ready at scheduled a_f + W, or when b = B at min(a_f + W, release of
 * request f+B-1); it is "idle" when that is after stage 0 came back to the
 * batcher (idle_ms), and its dispatch delay is take_ms - ready. Percentiles
 * are nearest-rank; 0 where there is nothing to measure. */
void mp_serve_run_overheads(const mp_serve_run_result *r, mp_serve_overheads *o);

/* ------------------------------------------------------------ report */

typedef struct {
    const char *plan_path, *model_path, *arrivals_desc;  /* arrivals_desc: "poisson seed 1" or a path */
    double rate_rps;            /* offered rate (requested, or the trace's) */
    const mp_serve_run_result *run;
    mp_serve_result measured;
    int has_prediction;
    mp_serve_result predicted;  /* the simulator on the same arrival times */
    double dispatch_ms, fwd_scale, batch_overhead_ms;  /* the model terms the prediction used */
    const double *spread;       /* ... and its forward-time spread quantiles (NULL: none) */
    int n_spread;
    mp_serve_overheads overheads;  /* measured (mp_serve_run_overheads) */
    const char *transport;      /* "threads" or "mpi" (NULL: threads) */
    const char *outputs_sha256; /* --checksum: SHA-256 of every output row in request order; NULL: none */
    int has_fit;                /* with a profile and >= 1 batch: this run's calibration */
    double fit_scale, fit_overhead_ms, fit_dispatch_ms;  /* measured fwd ~ overhead + scale * profile */
    int fit_points;             /* stage forwards in the fit */
    int fit_n_spread;           /* 41 when measured: quantiles at (k+0.5)/41 of each forward / its fit, mean 1 */
    double fit_spread[41];
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

#endif
