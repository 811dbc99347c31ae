/* pipeline.h — the pipeline runner: "one position per thread or per MPI
 * rank", written once for training (runtime.h) and serving (serve_run.h), in
 * the nccl-tests style: the driver owns threads, ranks and timeouts; each
 * mode fills a table of function pointers.
 * defines: mp_pipeline_config, mp_pipeline_pos, mp_pipeline_mode, mp_pipeline,
 *          mp_pipeline_check, mp_pipeline_gpu_of, mp_pipeline_check_fit,
 *          mp_pipeline_device_of, mp_pipeline_name,
 *          mp_pipeline_open, mp_pipeline_run, mp_pipeline_close,
 *          mp_pipeline_fail, mp_pipeline_barrier, mp_pipeline_send_part,
 *          mp_pipeline_recv_part
 *
 * The driver owns:
 *   - the checks before any work (mp_pipeline_check, pipeline_check.c): the
 *     transport compiled in (under mpirun without MPI: one clear message),
 *     a core for every pinned position, the GPU map (--gpus G0,G1,.. or
 *     $MPKIT_GPUS: plan device d runs on GPU Gd, positions may share a GPU)
 *     and the CUDA device pre-check; and the memory-fit message;
 *   - the transport: opened for K positions, closed at the end (an MPI job
 *     that failed is aborted rather than finalized);
 *   - one thread per position, or under MPI this rank's position on the
 *     calling thread ("stage %d: cannot start its thread"), and an optional
 *     host thread beside them (serving: the load generator);
 *   - per position: the backend opened on the position's device (cpu: the
 *     core it is pinned to; cuda: the GPU the map names), failures named
 *     "stage %d (device %d): ...", the transport bound to that GPU, the
 *     backend closed after the mode released what it built on it;
 *   - the failure latch: the first failure, named "stage %d: ...", is kept
 *     and aborts the transport, so every wait (each bounded by the timeout)
 *     returns and every position stops;
 *   - data parallelism (config replicas D > 1): D * K positions, position p
 *     is replica p / K, stage position p % K, on the replica's device
 *     (mp_plan_replica_device); its failures are named "replica R stage S:
 *     ..." (a mode's "stage S: ..." gets the replica put in front);
 *   - under MPI, gathering the results to rank 0 in one shape: rank p > 0
 *     sends its parts, rank 0 receives them for p = 1..D*K-1 in turn, and each
 *     rank waits until its sends are delivered.
 * A mode supplies (mp_pipeline_mode) only what is its own: the op loop of a
 * position (position), optionally the host thread's work, a reaction to a
 * failure, the parts of its result (gather), the whole result where it is
 * held (collect) and the release of a position's state. */
#ifndef MP_PIPELINE_H
#define MP_PIPELINE_H

#include <pthread.h>
#include <stddef.h>
#include "backend.h"
#include "mp_status.h"
#include "plan.h"
#include "transport.h"

typedef struct {
    const mp_plan *plan;        /* position p runs on mp_pipeline_device_of(c, p) */
    int num_positions;          /* D * K: K <= plan->num_stages positions per replica */
    int replicas;               /* D (0 or 1: one pipeline); position p is replica p / K,
                                   position p % K of it (data parallelism) */
    const char *backend;        /* "cpu" or "cuda" */
    const char *transport;      /* "threads", "mpi" or "nccl" */
    int pin;                    /* cpu: pin position p to core plan->stages[p].device */
    const char *gpu_map;        /* cuda: "G0,G1,...": plan device d runs on GPU Gd; NULL:
                                   $MPKIT_GPUS, else plan device d is GPU d */
    int num_devices;            /* > 0: device_memory has this many entries */
    const double *device_memory;/* [num_devices] bytes, or NULL: no fit check */
    double timeout_s;           /* every wait of the driver: barrier, bind, gather, flush */
    int mailbox_cap;            /* threads transport: messages a mailbox holds */
} mp_pipeline_config;

typedef struct mp_pipeline mp_pipeline;

/* One position, as the mode's callbacks see it. */
typedef struct {
    mp_pipeline *pl;
    int p;                      /* the position (under MPI: this rank) */
    int replica, k;             /* p = replica * K + k */
    int device;                 /* plan device: mp_pipeline_device_of(c, p) */
    int unit;                   /* what the backend runs on: the core (cpu, pinned; -1
                                   unpinned) or the GPU (cuda, through the map) */
    mp_backend *be;             /* open on `unit` while position() runs, until release() */
    int host_mem;               /* the backend's memory is host memory (cpu) */
} mp_pipeline_pos;

typedef struct {
    /* The position's work on its own thread (threads) or this rank's calling
     * thread (MPI), its backend open: set up, run the op loop, return. On
     * failure: the status, with the cause in err; the driver names the stage
     * and brings every position down. Required. */
    mp_status (*position)(void *mode, mp_pipeline_pos *pos, mp_error *err);
    /* Optional: runs on a thread of its own beside the positions (under MPI
     * started before this rank's position, so that it keeps the process's
     * CPU affinity); the driver joins it after the positions. */
    void (*host)(void *mode, mp_pipeline *pl);
    const char *host_name;      /* in "cannot start NAME thread", e.g. "the load generator" */
    /* Optional: called once, by the thread that failed first, after the
     * failure is latched and before the transport is aborted (wake whatever
     * the mode's own threads wait on). */
    void (*on_fail)(void *mode);
    /* Optional, MPI after every position ended well: on rank p > 0 called
     * with p (send its parts: mp_pipeline_send_part), on rank 0 with
     * p = 1..K-1 in turn (receive them: mp_pipeline_recv_part). */
    mp_status (*gather)(void *mode, mp_pipeline *pl, int p, mp_error *err);
    /* Optional: where the results are held (threads; MPI rank 0), after
     * gather, with every position's backend still open: the whole result. */
    mp_status (*collect)(void *mode, mp_pipeline *pl, mp_error *err);
    /* Optional: frees what the mode built on position p's backend; called
     * for every position that ran here, also after a failure, before the
     * driver closes the backend. */
    void (*release)(void *mode, mp_pipeline_pos *pos);
} mp_pipeline_mode;

/* Open between mp_pipeline_open and mp_pipeline_close; the mode's callbacks
 * read c, t, K and rank. The rest is the driver's. */
struct mp_pipeline {
    const mp_pipeline_config *c;
    mp_transport *t;
    int K;
    int rank;                   /* this process's MPI rank; -1: threads, every position here */
    const mp_pipeline_mode *mode;
    void *ctx;
    mp_pipeline_pos *pos;       /* [K] (MPI: only pos[rank] runs here) */
    pthread_t *th;              /* [K] */
    pthread_mutex_t mu;
    int failed;
    mp_error first_err;
};

/* The checks before any work, for positions 0..K-1 (pipeline_check.c):
 * transport compiled in (MP_ERR_USAGE "started by mpirun, but this mprun was
 * built without MPI ..." when mpirun started us without it), a core for each
 * stage's device when pinned on cpu, the GPU map well formed (MP_ERR_USAGE),
 * and with cuda a usable GPU (MP_ERR_BACKEND "--backend cuda: no CUDA device
 * available (...)") for every position's mapped device (MP_ERR_INPUT). */
mp_status mp_pipeline_check(const mp_pipeline_config *c, mp_error *err);

/* The GPU that plan device `dev` maps to: the map's entry (config, else
 * $MPKIT_GPUS), or dev itself without a map; -1 when the map has no entry
 * for dev, -2 when the map is malformed. */
int mp_pipeline_gpu_of(const mp_pipeline_config *c, int dev);

/* The plan device of position p: replica p / K's device for stage p % K
 * (mp_plan_replica_device), K = num_positions / replicas. */
int mp_pipeline_device_of(const mp_pipeline_config *c, int p);

/* Position p's name in messages: "stage K", or "replica R stage K" when the
 * config has replicas (written to buf, n bytes; returns buf). */
const char *mp_pipeline_name(const mp_pipeline_config *c, int p, char *buf, size_t n);

/* MP_ERR_INPUT "stage S does not fit on device D: it needs N bytes (WHAT),
 * the device has M" when `need` exceeds what the config gives device D;
 * MP_OK when it fits or the config gives no memory for D. */
mp_status mp_pipeline_check_fit(const mp_pipeline_config *c, int stage, int dev, double need, const char *what,
                                mp_error *err);

/* Opens the transport c->transport for c->num_positions positions; c must
 * outlive the pipeline. MP_ERR_BACKEND when the transport cannot open (MPI:
 * the rank count must equal K). */
mp_status mp_pipeline_open(const mp_pipeline_config *c, mp_pipeline **out, mp_error *err);

/* Runs every position of this process with `mode` (ctx is passed to every
 * callback), then gather, collect and release as described above. Returns
 * MP_OK, or the first failure with its message in err. Call once. */
mp_status mp_pipeline_run(mp_pipeline *pl, const mp_pipeline_mode *mode, void *ctx, mp_error *err);

/* Closes the transport (aborting an MPI job when the run failed) and frees;
 * safe on NULL. */
void mp_pipeline_close(mp_pipeline *pl);

/* Records position p's failure e (the first one wins), calls the mode's
 * on_fail and aborts the transport, which wakes every wait. For the mode's
 * own threads; the driver calls it for the positions. */
void mp_pipeline_fail(mp_pipeline *pl, int p, const mp_error *e);

/* 1 once any position failed. */
int mp_pipeline_failed(mp_pipeline *pl);

/* A barrier of every position (the transport's agree), bounded by the
 * timeout. */
mp_status mp_pipeline_barrier(mp_pipeline *pl, int p, mp_error *err);

/* Part k of rank p's result, rank p -> rank 0 under MP_TAG(MP_TAG_RESULT, p,
 * k), bounded by the timeout. send_part is called on rank p, recv_part on
 * rank 0. */
mp_status mp_pipeline_send_part(mp_pipeline *pl, int p, int k, const void *buf, size_t bytes, mp_error *err);
mp_status mp_pipeline_recv_part(mp_pipeline *pl, int p, int k, void *buf, size_t bytes, mp_error *err);

#endif
