/* runtime.h — execute a training plan: a worker per pipeline position runs
 * exactly the op lists of sim/schedule.h (the lists the simulator times).
 * defines: mp_optimizer_kind, mp_run_config, mp_run_result, mp_run_config_default,
 *          mp_run, mp_run_check, mp_run_result_free
 *
 * Determinism: every stage's backwards run in micro-batch index order in all
 * three schedules (checked before any work: a schedule that did not would be
 * refused with MP_ERR_INTERNAL rather than silently change the sums), so each
 * layer's weight gradient is accumulated in place as g0 + g1 + ... + g(m-1),
 * exactly as a one-stage run of the same micro-batch size does. The loss
 * gradient is scaled by 1/global_batch; the step loss is the sum of the
 * micro-batch losses in index order (computed in double). Parameters are
 * initialised per layer from (seed, layer index), independent of the split.
 * Recompute re-runs the stage's forward from its saved input, which gives
 * bitwise the same stash. Hence on CPU a pipelined run and a one-stage run end
 * with bitwise identical weights.
 *
 * Data parallelism (plan data_parallel D > 1): D * K positions, position
 * replica * K + k; replica q takes micro-batches q*m .. q*m+m-1 of each
 * global batch (the samples a D = 1 run of the same global batch gives its
 * micro-batches q*m ..), and after each position's last op of the step its
 * stages' gradients are summed over the D replicas by the layer-local ring
 * of collective.h, before the optimizer step. Each element's summation order
 * depends only on D and its index in its layer: runs with the same D are
 * bitwise identical across splits, schedules and recompute, and bitwise
 * repeatable; against D = 1 only the order of the sum over the replicas'
 * partial sums differs (a rounding-level difference). Replica 0 writes the
 * checkpoints; at the end every replica's weights are checked equal to
 * replica 0's. */
#ifndef MP_RUNTIME_H
#define MP_RUNTIME_H

#include <stdint.h>
#include "model.h"
#include "mp_status.h"
#include "plan.h"
#include "trace.h"

typedef enum { MP_OPT_SGD = 0, MP_OPT_ADAM = 1 } mp_optimizer_kind;

typedef struct {
    const mp_plan *plan;
    const mp_model *model;
    const char *backend;        /* "cpu" (default) or "cuda" */
    const char *transport;      /* "threads" (default), "mpi" or "nccl" */
    int pin;                    /* cpu: pin position p to core plan->stages[p].device */
    int steps;                  /* steps to run (total, counting resumed ones) */
    uint64_t seed;
    mp_optimizer_kind optimizer;
    float lr;
    double timeout_s;           /* every wait */
    int warmup;                 /* steps left out of the median */
    const char *checkpoint_dir; /* NULL: none */
    int checkpoint_every;
    int resume;
    int num_devices;            /* > 0: device indices must be below it */
    const double *device_memory;/* [num_devices] bytes, or NULL: no fit check */
    int print_loss;             /* print "step N loss X" as steps finish */
    const char *fault;          /* test hook: "hang:P" (position P stops sending), NULL */
    const char *gpu_map;        /* cuda: "G0,G1,...": plan device d runs on GPU Gd (stages may
                                   share a GPU); NULL: $MPKIT_GPUS, else plan device d is GPU d */
} mp_run_config;

typedef struct {
    int is_root;                /* this process holds the results (threads; MPI rank 0) */
    int num_positions;          /* D * K: busy_ms and peak_bytes, position p = replica p / K */
    int replicas;               /* D, the plan's data_parallel (1: one pipeline) */
    double allreduce_ms;        /* D > 1: median per step of the longest gradient all-reduce */
    long long first_step;       /* 0, or the step resumed from */
    int steps;                  /* steps run by this invocation */
    double *loss;               /* [steps] mean loss over the global batch */
    double *iter_ms;            /* [steps] pipeline time: barrier to the last op's end */
    double *step_ms;            /* [steps] the whole step incl. optimizer and sync */
    double iteration_ms;        /* median of iter_ms after warm-up */
    double step_median_ms;      /* median of step_ms after warm-up */
    double samples_per_s;       /* global_batch / iteration_ms */
    double *busy_ms;            /* [K] median per-step busy time (op durations) */
    double *peak_bytes;         /* [K] peak bytes allocated by each position's backend */
    long long param_count;
    double entropy_rate;        /* token models: the data's entropy rate in nats, the loss's floor; else 0 */
    char checksum[65];          /* SHA-256 of the final parameters, layer order */
    char transport[16];         /* the transport used: "threads", "mpi" or "nccl" (--backend cuda
                                   under MPI picks nccl when it can: see docs/gpu.md) */
    double others_pct;          /* % of the machine's CPU time that processes outside this run
                                   took while it ran (its own MPI ranks on the same machine
                                   excluded); -1 when unknown */
    mp_trace trace;             /* measured timeline of the last step (replica 0's) */
} mp_run_result;

/* Defaults: cpu, threads, pin, sgd, lr 0.05, seed 1, timeout 30 s, warmup 1. */
void mp_run_config_default(mp_run_config *c);

/* Checks before any work: the plan against the model (layer count), devices
 * (cpu with pin: a core per device index), the schedule builds, backwards in
 * index order. MP_ERR_INPUT with one message otherwise. */
mp_status mp_run_check(const mp_run_config *c, mp_error *err);

/* Runs the plan. On failure every position stops within the timeout and err
 * names the stage and the cause. */
mp_status mp_run(const mp_run_config *c, mp_run_result *res, mp_error *err);

void mp_run_result_free(mp_run_result *r);

#endif
