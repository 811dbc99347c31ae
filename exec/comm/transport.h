/* transport.h — moving activations, gradients and results between pipeline
 * positions: worker threads in one process, MPI ranks, or MPI ranks with
 * NCCL moving device buffers GPU to GPU.
 * defines: mp_transport, mp_transport_i, mp_transport_threads_i,
 *          mp_transport_mpi_i, mp_transport_nccl_i, mp_transport_open,
 *          mp_transport_close, mp_transport_mpi_detected,
 *          mp_transport_available, MP_TAG_*
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
 * MPI: one rank per position (rank = position); `self` must be the rank.
 * NCCL: MPI ranks as above (MPI carries host messages, barriers and the
 * NCCL bootstrap) plus send_dev/recv_dev, which move CUDA device buffers
 * with ncclSend/ncclRecv. NCCL has no tags: device messages between a pair
 * are matched in posting order, per direction and kind (ACT / GRAD), so the
 * caller must post them in the same order on both sides (the runtime checks
 * its op lists before choosing this transport).
 *
 * Host buffers go through send/recv on every transport; device buffers go
 * through send_dev/recv_dev where the table has them (NULL otherwise: the
 * caller stages through host memory). */
#ifndef MP_TRANSPORT_H
#define MP_TRANSPORT_H

#include <stddef.h>
#include "mp_status.h"

/* Tags: data tags are built with MP_TAG(kind, stage, microbatch). */
enum {
    MP_TAG_ACT = 0,     /* activation stage -> stage+1 */
    MP_TAG_GRAD = 1,    /* gradient stage+1 -> stage */
    MP_TAG_RESULT = 2,  /* end-of-run results to position 0 */
    MP_TAG_CKPT = 3,    /* checkpoint coordination */
    MP_TAG_ALLRED = 4   /* data parallelism: the ring all-reduce (collective.h) */
};
#define MP_TAG(kind, stage, mb) (((kind) << 28) | ((stage) << 18) | (mb))
#define MP_TAG_KIND(tag) ((tag) >> 28)

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
    /* Optional: position self's compute runs on CUDA device `device`; called
     * once per position before any send_dev/recv_dev (NCCL: builds the
     * communicators on that GPU, every wait bounded by timeout_s). */
    mp_status (*bind)(mp_transport *t, int self, int device, double timeout_s, mp_error *err);
    /* Optional (NULL: host buffers only): as send/recv, with buf in device
     * memory of the bound GPU, already computed (the caller synchronised its
     * stream). send_dev returns when buf may be reused; recv_dev returns when
     * the data is in buf. MP_TAG_KIND(tag) selects the channel (ACT / GRAD). */
    mp_status (*send_dev)(mp_transport *t, int self, int dst, int tag, const void *buf,
                          size_t bytes, double timeout_s, mp_error *err);
    mp_status (*recv_dev)(mp_transport *t, int self, int src, int tag, void *buf,
                          size_t bytes, double timeout_s, mp_error *err);
    /* Optional (NULL: recv into scratch, then add): as recv of a message of
     * n floats, added into buf instead of copied, buf[i] = buf[i] + msg[i]
     * in index order (the sum recv-then-add gives, bitwise, one copy less). */
    mp_status (*recv_add)(mp_transport *t, int self, int src, int tag, float *buf,
                          size_t n, double timeout_s, mp_error *err);
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
#ifdef MP_HAVE_NCCL
extern const mp_transport_i mp_transport_nccl_i;
#endif

/* 1 when the environment says we were started by mpirun/srun
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK, MPI_LOCALNRANKS). */
int mp_transport_mpi_detected(void);

/* 1 when transport `name` ("threads", "mpi", "nccl") was compiled in
 * (nccl: NCCL and MPI both found at build time). */
int mp_transport_available(const char *name);

/* Opens the transport: "threads" for K positions in this process, "mpi"
 * (MPI_Init; the world size must equal K), or "nccl" (MPI as for "mpi";
 * the NCCL communicators are built by bind). mailbox_cap bounds each threads
 * mailbox (messages). MP_ERR_BACKEND when MPI/NCCL was not compiled in or the
 * world size does not match. The single registration point of transports. */
mp_status mp_transport_open(const char *name, int num_positions, int mailbox_cap,
                            mp_transport **out, mp_error *err);

/* Closes (MPI: MPI_Finalize, or MPI_Abort when `failed`) and frees; safe on NULL. */
void mp_transport_close(mp_transport *t, int failed);

#endif
