/* serve_impl.h — the serving runtime's state (private to exec/run), shared
 * by serve_run.c (the stages, the run; the serving mode of pipeline.h) and
 * serve_batcher.c (the load generator, the batcher, the clock).
 * defines: mp_serve_worker, mp_serve_batch_hdr, mp_serve_rt,
 *          mp_serve_precise_timers, mp_serve_go_realtime, mp_serve_on_fail,
 *          mp_serve_generator, mp_serve_next_batch, mp_serve_stage_clock */
#ifndef MP_SERVE_IMPL_H
#define MP_SERVE_IMPL_H

#include <pthread.h>
#include "data.h"
#include "layers.h"
#include "pipeline.h"
#include "serve_run.h"

typedef struct mp_serve_rt mp_serve_rt;

/* One stage's worker (a position of the runner). */
typedef struct {
    mp_serve_rt *sv;
    int s;
    mp_backend *be;              /* the driver's, open while the stage runs */
    mp_stage_net net;
    int has_net;
    float *in, *out, *stash;     /* backend memory, max_batch rows */
    unsigned char *msg;          /* host message: header + max_batch rows of out_dim */
    int batches;                 /* batches this stage has run */
    mp_error err;
} mp_serve_worker;

/* What goes ahead of a batch's rows from stage to stage (b = 0: the end). */
typedef struct { int id, b, first, pad; } mp_serve_batch_hdr;

/* A serving run: the queue the generator fills and the batcher empties,
 * the clock, and the stages. */
struct mp_serve_rt {
    const mp_serve_run_config *c;
    mp_serve_run_result *res;
    int K, B, in_dim, out_dim;
    double W, t0, deadline, idle_s;
    float *x;                    /* [n * in_dim] request inputs (stage 0 makes them) */
    mp_data data;
    mp_pipeline *pl;
    mp_transport *t;
    mp_serve_worker *w;
    pthread_mutex_t mu;          /* queue + failure */
    pthread_cond_t cv;
    int pushed, head, gen_done, failed;
    int ready, go;               /* stages set up / clock started */
    int mpi;                     /* one rank per stage: this process runs stage t->rank */
    int unsent;                  /* MPI: stage 0 has a send not yet delivered (poll_sends) */
};

/* Sets this thread's timer slack to 1 ns (sleeps wake on time). */
void mp_serve_precise_timers(void);

/* --realtime: this thread under SCHED_FIFO where allowed (counted). */
void mp_serve_go_realtime(mp_serve_rt *sv);

/* The driver's on_fail: wakes the generator, the batcher and the stages
 * waiting for the clock. */
void mp_serve_on_fail(void *mode);

/* The driver's host thread: the load generator (under MPI on rank 0 only). */
void mp_serve_generator(void *mode, mp_pipeline *pl);

/* Stage 0, whenever it is free: blocks until a batch is due and takes it:
 * *first, *b (0: no more batches). */
void mp_serve_next_batch(mp_serve_rt *sv, int *first, int *b);

/* A stage once set up: waits for the clock to start (threads: the generator
 * starts it when every stage is ready; MPI: rank 0 sends it to every rank). */
mp_status mp_serve_stage_clock(mp_serve_worker *w);

#endif
