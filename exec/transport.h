/* transport.h — moving activations, gradients and results between pipeline
 * positions: worker threads in one process, or MPI ranks.
 * defines: mp_transport, mp_transport_i, mp_transport_threads_i,
 *          mp_transport_mpi_i, mp_transport_open, mp_transport_close,
 *          mp_transport_mpi_detected, MP_TAG_*
 *
 * A transport connects K positions. Every message carries (src, dst, tag);
 * a receive names all three and takes the oldest matching message. Sends are
 * buffered: send returns as soon as the caller may reuse its buffer, so the
 * sender's compute never waits for the receiver (sends overlap compute).
 * Every wait has a timeout. Once any position calls abort, every pending and
 * future wait on every position returns MP_ERR_BACKEND with the aborting
 * position's message, so one failure brings the whole run down, never a hang.
 *
 * Threads: one process, one worker thread per position, a bounded mailbox per
 * destination (mutex + condvar, timed waits); `self` is the caller's position.
 * MPI: one rank per position (rank = position); `self` must be the rank. */
#ifndef MP_TRANSPORT_H
#define MP_TRANSPORT_H

#include <stddef.h>
#include "mp_status.h"

/* Tags: data tags are built with MP_TAG(kind, stage, microbatch). */
enum {
    MP_TAG_ACT = 0,     /* activation stage -> stage+1 */
    MP_TAG_GRAD = 1,    /* gradient stage+1 -> stage */
    MP_TAG_RESULT = 2,  /* end-of-run results to position 0 */
    MP_TAG_CKPT = 3     /* checkpoint coordination */
};
#define MP_TAG(kind, stage, mb) (((kind) << 28) | ((stage) << 18) | (mb))

typedef struct mp_transport mp_transport;

typedef struct mp_transport_i {
    const char *name;
    /* Sets up t->ctx (and t->rank) for K positions; cap bounds a mailbox. */
    mp_status (*open)(mp_transport *t, int num_positions, int mailbox_cap, mp_error *err);
    /* Sends `bytes` bytes from self to dst under `tag`; buffered (returns when
     * buf may be reused). Waits at most timeout_s when the mailbox is full. */
    mp_status (*send)(mp_transport *t, int self, int dst, int tag, const void *buf,
                      size_t bytes, double timeout_s, mp_error *err);
    /* Receives the oldest message from src to self with `tag` into buf, which
     * must hold exactly `bytes` bytes (a size mismatch is MP_ERR_INTERNAL).
     * MP_ERR_TIMEOUT after timeout_s seconds. */
    mp_status (*recv)(mp_transport *t, int self, int src, int tag, void *buf,
                      size_t bytes, double timeout_s, mp_error *err);
    /* Marks the run failed with `msg` (first abort wins) and wakes every wait. */
    void (*abort)(mp_transport *t, int self, const char *msg);
    /* Barrier that also ORs a flag over all positions: on return *flag is 1
     * when any position passed 1. MP_ERR_TIMEOUT / MP_ERR_BACKEND (aborted). */
    mp_status (*agree)(mp_transport *t, int self, int *flag, double timeout_s, mp_error *err);
    /* Waits until every send from self has been delivered (MPI: completed). */
    mp_status (*flush)(mp_transport *t, int self, double timeout_s, mp_error *err);
    /* Frees t->ctx. `failed`: MPI aborts the job instead of finalizing. */
    void (*close)(mp_transport *t, int failed);
} mp_transport_i;

struct mp_transport {
    const mp_transport_i *i;
    int num_positions;
    int rank;           /* MPI: this process's rank; threads: -1 (all local) */
    void *ctx;
};

extern const mp_transport_i mp_transport_threads_i;
#ifdef MP_HAVE_MPI
extern const mp_transport_i mp_transport_mpi_i;
#endif

/* 1 when the environment says we were started by mpirun/srun
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK, MPI_LOCALNRANKS). */
int mp_transport_mpi_detected(void);

/* Opens the transport: "threads" for K positions in this process, or "mpi"
 * (MPI_Init; the world size must equal K). mailbox_cap bounds each threads
 * mailbox (messages). MP_ERR_BACKEND when MPI was not compiled in or the
 * world size does not match. The single registration point of transports. */
mp_status mp_transport_open(const char *name, int num_positions, int mailbox_cap,
                            mp_transport **out, mp_error *err);

/* Closes (MPI: MPI_Finalize, or MPI_Abort when `failed`) and frees; safe on NULL. */
void mp_transport_close(mp_transport *t, int failed);

#endif
