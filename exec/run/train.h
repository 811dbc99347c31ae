/* train.h — the training mode of the pipeline runner (private to exec/run):
 * the state of a run and of each position, shared by the files of one job
 * each. runtime.c checks a run and wires it to the driver (pipeline.h);
 * train_ops.c is a position's op loop (buffers, forward/backward ops,
 * transfers, steps); checkpoint_pack.c moves parameters between a stage's
 * layers and host buffers (checkpoints, checksum); train_results.c gathers
 * and summarises the results; train_transport.c picks the transport;
 * train_allreduce.c sums the stages' gradients over the data-parallel
 * replicas (collective.h).
 * defines: mp_train_stage, mp_train_worker, mp_train_run, mp_train_position,
 *          mp_train_release, mp_train_worker_free, mp_train_pack_params,
 *          mp_train_checkpoint, mp_train_hash_stage, mp_train_gather,
 *          mp_train_collect, mp_train_pick_transport, mp_train_allreduce */
#ifndef MP_TRAIN_H
#define MP_TRAIN_H

#include "buffer_pool.h"
#include "data.h"
#include "layers.h"
#include "pipeline.h"
#include "runtime.h"
#include "schedule.h"
#include "sha256.h"

/* One stage (of possibly several, interleaved) a position runs. */
typedef struct {
    int s, first, last, recompute, is_first, is_last;
    mp_stage_net net;
    int in_dim, out_dim;
    size_t nparams;
    mp_pool in_pool, stash_pool, dl_pool;
    float **in_slot, **stash_slot, **dl_slot;   /* [m] */
    float *stash_shared, *out, *dy, *dx;
    void *target;                               /* last stage: b targets */
    float *loss_mb;                             /* [m] host, scaled by 1/global batch */
    int next_bwd;
} mp_train_stage;

typedef struct mp_train_run mp_train_run;

/* One position: its stages and its per-step measurements. Under MPI rank 0
 * also holds the other positions' measurements here once gathered. */
typedef struct {
    mp_train_run *r;
    int p;                     /* transport position: replica * K + k */
    int replica, k;            /* data-parallel replica, pipeline position in it */
    mp_backend *be;            /* the driver's, open while the position runs */
    int host_mem;              /* backend memory is host memory (cpu) */
    int nst;
    mp_train_stage *st;
    float *stage_buf;          /* host staging for non-host backends */
    float *xdata;              /* first stage: [m][b*in] inputs of this step */
    float *ydata;              /* last stage mse: [m][b*out] */
    int *ldata;                /* last stage xent: [m][b] */
    double *end_ms, *busy_ms, *step_ms, *loss;  /* [nsteps]; loss: replica 0's is the global batch's */
    double *ar_ms;             /* [nsteps] time in the gradient all-reduce (D > 1) */
    float *ar_buf;             /* D > 1: the all-reduce buffer, on the backend: the largest
                                  layer's parameter count of the position's stages, floats */
    float *ar_host;            /* D > 1, non-host backends: host staging of the same size */
    size_t ar_len;             /* floats in ar_buf */
    double peak;
    mp_trace trace;
    mp_error err;
} mp_train_worker;

struct mp_train_run {
    const mp_run_config *c;
    const mp_plan *plan;
    const mp_model *model;
    mp_op_lists ops;
    int K, S, m, b;            /* K positions per replica */
    int D, P;                  /* replicas, transport positions P = D * K */
    mp_pipeline *pl;
    mp_transport *t;
    mp_data data;
    mp_train_worker *w;        /* [P] (MPI: w[rank] runs here; rank 0 gathers the others) */
    long long first_step;
    int nsteps;
    int hang_position;         /* fault hook: this position never sends */
    mp_run_result *res;        /* filled by mp_train_collect */
};

/* The driver's callbacks (pipeline.h): a position's whole run (setup, the
 * barrier, every step; train_ops.c) and the release of what it built on its
 * backend. */
mp_status mp_train_position(void *run, mp_pipeline_pos *pos, mp_error *err);
void mp_train_release(void *run, mp_pipeline_pos *pos);

/* Frees a worker's host memory (its stages must be released already). */
void mp_train_worker_free(mp_train_worker *w);

/* Copies stage v's parameters (and, when mbuf/vbuf are non-NULL, its Adam
 * moments, zeros where there are none) into host buffers of v->nparams
 * floats, in layer order. */
mp_status mp_train_pack_params(mp_train_worker *w, mp_train_stage *v, float *wbuf, float *mbuf, float *vbuf);

/* Saves (save = 1) or restores every stage of worker w at `step`. */
mp_status mp_train_checkpoint(mp_train_worker *w, long long step, int save);

/* Hashes stage v's parameters (layer order) into h. */
mp_status mp_train_hash_stage(mp_train_worker *w, mp_train_stage *v, mp_sha256 *h);

/* The driver's gather and collect (train_results.c): per-step times, losses,
 * peaks, traces to rank 0; then the medians, the trace and the parameters'
 * checksum in stage order into r->res. */
mp_status mp_train_gather(void *run, mp_pipeline *pl, int p, mp_error *err);
mp_status mp_train_collect(void *run, mp_pipeline *pl, mp_error *err);

/* The transport of the run (train_transport.c): the configured one, or nccl
 * for --backend cuda under MPI where that can work. */
const char *mp_train_pick_transport(const mp_train_run *r, const mp_pipeline_config *pc);

/* D > 1 (train_allreduce.c): after the position's last op of the step,
 * each of its stages' weight gradients, layer by layer, summed over the D
 * replicas of that stage by the ring of collective.h (positions
 * replica * K + k); then the step's loss (double, replica order) to replica
 * 0's position. Every wait is bounded by the timeout; a timeout names the
 * stage, layer and replica waited for. With `record`, each stage's ring is
 * a MP_TEV_ALLREDUCE event of the trace (times from t0). */
mp_status mp_train_allreduce(mp_train_worker *w, int idx, int record, double t0);

#endif
