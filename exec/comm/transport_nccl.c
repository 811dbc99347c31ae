/* transport_nccl.c — MPI ranks (rank = position) with NCCL moving device
 * buffers GPU to GPU. Host messages, barriers and results go through the MPI
 * transport it wraps; the NCCL communicators are bootstrapped through it too
 * (rank 0 calls ncclGetUniqueId and sends the id to every rank over MPI).
 *
 * Two communicators, one per channel (activations, gradients), each with its
 * own non-blocking stream, so a gradient never queues behind an activation.
 * NCCL has no tags: device messages of one channel between a pair are matched
 * in posting order (see transport.h). Communicators are non-blocking
 * (config.blocking = 0): every NCCL call is followed by polling
 * ncclCommGetAsyncError, and every wait polls a CUDA event and the
 * communicators' async errors against a deadline; past it the communicators
 * are aborted (ncclCommAbort) and the call returns MP_ERR_TIMEOUT, as
 * nccl-tests does, so a lost peer never hangs the run.
 *
 * send_dev copies the caller's buffer into a transport-owned device slot on
 * a copy stream (a local copy, waited for) and queues ncclSend from the slot,
 * so the caller may reuse its buffer at once and the sender's compute never
 * waits for the receiver; a slot is reused when its send's event completed.
 * recv_dev queues ncclRecv straight into the caller's buffer and waits.
 * Built when NCCL is found; without MPI it only says that it needs MPI.
 * defines: mp_transport_nccl_i */
#include "transport.h"
#include "clock.h"
#include "cuda_check.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MP_HAVE_MPI

enum { CH_ACT = 0, CH_GRAD = 1, NCH = 2 };

typedef struct {
    void *buf;
    size_t cap;
    cudaEvent_t done;
    int busy;
} slot;

typedef struct {
    mp_transport mpi;           /* host messages, barriers, bootstrap */
    int k, rank, device, bound, aborted;
    ncclComm_t comm[NCH];
    cudaStream_t stream[NCH];
    cudaStream_t copy;
    cudaEvent_t recv_done[NCH];
    slot *slots;
    int nslots;
} nctx;

/* Aborts every communicator once (unblocks any NCCL kernel still waiting). */
static void abort_comms(nctx *c)
{
    if (c->aborted) return;
    c->aborted = 1;
    for (int ch = 0; ch < NCH; ch++)
        if (c->comm[ch]) ncclCommAbort(c->comm[ch]);
}

/* MP_OK, or MP_ERR_BACKEND (aborting the communicators) when any of them
 * reports an asynchronous error (a dead peer, a network failure). */
static mp_status async_errors(nctx *c, int self, mp_error *err)
{
    if (c->aborted)
        return mp_error_set(err, MP_ERR_BACKEND, "stage %d: the NCCL communicators were aborted", self);
    for (int ch = 0; ch < NCH; ch++) {
        ncclResult_t a = ncclSuccess;
        if (!c->comm[ch]) continue;
        ncclResult_t r = ncclCommGetAsyncError(c->comm[ch], &a);
        if (r != ncclSuccess) a = r;
        if (a != ncclSuccess && a != ncclInProgress) {
            abort_comms(c);
            return mp_error_set(err, MP_ERR_BACKEND, "stage %d: NCCL failed: %s", self, ncclGetErrorString(a));
        }
    }
    return MP_OK;
}

/* Waits until communicator ch has finished its non-blocking call (init or
 * enqueue): ncclCommGetAsyncError leaves ncclInProgress. */
static mp_status wait_ready(nctx *c, int ch, int self, double deadline, double timeout_s, const char *what,
                            mp_error *err)
{
    for (;;) {
        ncclResult_t a = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(c->comm[ch], &a);
        if (r != ncclSuccess) a = r;
        if (a == ncclSuccess) return MP_OK;
        if (a != ncclInProgress) {
            abort_comms(c);
            return mp_error_set(err, MP_ERR_BACKEND, "stage %d: NCCL %s failed: %s", self, what, ncclGetErrorString(a));
        }
        if (mp_now_s() > deadline) {
            abort_comms(c);
            return mp_error_set(err, MP_ERR_TIMEOUT, "stage %d: timed out after %g s in NCCL %s", self, timeout_s, what);
        }
        mp_sleep_us(20);   /* between polls */
    }
}

/* Waits for event ev, polling the communicators; aborts them at the deadline. */
static mp_status wait_event(nctx *c, cudaEvent_t ev, int self, int peer, double deadline, double timeout_s,
                            mp_error *err)
{
    for (;;) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) return MP_OK;
        if (e != cudaErrorNotReady) {
            abort_comms(c);
            return mp_error_set(err, MP_ERR_BACKEND, "stage %d: CUDA error during an NCCL transfer: %s", self,
                                cudaGetErrorString(e));
        }
        mp_status st = async_errors(c, self, err);
        if (st != MP_OK) return st;
        if (mp_now_s() > deadline) {
            abort_comms(c);
            return mp_error_set(err, MP_ERR_TIMEOUT,
                                "stage %d: timed out after %g s waiting for an NCCL transfer with stage %d",
                                self, timeout_s, peer);
        }
        mp_sleep_us(20);   /* between polls */
    }
}

static int channel_of(int tag)
{
    int kind = MP_TAG_KIND(tag);
    return kind == MP_TAG_ACT ? CH_ACT : kind == MP_TAG_GRAD ? CH_GRAD : -1;
}

/* ---------------------------------------------------------------- lifecycle */

static mp_status n_open(mp_transport *t, int k, int cap, mp_error *err)
{
    nctx *c = calloc(1, sizeof *c);
    if (!c) return mp_error_set(err, MP_ERR_NOMEM, "transport nccl: out of memory");
    c->mpi.i = &mp_transport_mpi_i;
    c->mpi.num_positions = k;
    c->mpi.rank = -1;
    mp_status st = mp_transport_mpi_i.open(&c->mpi, k, cap, err);
    if (st != MP_OK) { free(c); return st; }
    c->k = k;
    c->rank = c->mpi.rank;
    c->device = -1;
    t->ctx = c;
    t->rank = c->rank;
    return MP_OK;
}

/* One tiny exchange per channel in its direction (ACT to the next position,
 * GRAD to the previous), grouped so it cannot deadlock: NCCL connects each
 * pair here, under the timeout, rather than at the first real transfer. */
static mp_status warm_up(nctx *c, int self, float *dbuf, double deadline, double timeout_s, mp_error *err)
{
    int next = (self + 1) % c->k, prev = (self + c->k - 1) % c->k;
    mp_status st;
    for (int ch = 0; ch < NCH; ch++) {
        int to = ch == CH_ACT ? next : prev, from = ch == CH_ACT ? prev : next;
        if (NCCL_CHECK_AT(err, self, ncclGroupStart())) return MP_ERR_BACKEND;
        if (NCCL_CHECK_AT(err, self, ncclSend(dbuf, 1, ncclFloat, to, c->comm[ch], c->stream[ch])) ||
            NCCL_CHECK_AT(err, self, ncclRecv(dbuf + 1, 1, ncclFloat, from, c->comm[ch], c->stream[ch]))) {
            ncclGroupEnd();
            abort_comms(c);
            return MP_ERR_BACKEND;
        }
        if (NCCL_CHECK_AT(err, self, ncclGroupEnd())) { abort_comms(c); return MP_ERR_BACKEND; }
        if ((st = wait_ready(c, ch, self, deadline, timeout_s, "warm-up", err)) != MP_OK) return st;
        if (CUDA_CHECK_AT(err, self, cudaEventRecord(c->recv_done[ch], c->stream[ch]))) return MP_ERR_BACKEND;
        if ((st = wait_event(c, c->recv_done[ch], self, from, deadline, timeout_s, err)) != MP_OK) return st;
    }
    return MP_OK;
}

static mp_status n_bind(mp_transport *t, int self, int device, double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    if (c->bound) return mp_error_set(err, MP_ERR_INTERNAL, "stage %d: NCCL transport bound twice", self);
    c->device = device;
    if (CUDA_CHECK_AT(err, self, cudaSetDevice(device))) return MP_ERR_BACKEND;
    for (int ch = 0; ch < NCH; ch++) {
        if (CUDA_CHECK_AT(err, self, cudaStreamCreateWithFlags(&c->stream[ch], cudaStreamNonBlocking))) return MP_ERR_BACKEND;
        if (CUDA_CHECK_AT(err, self, cudaEventCreateWithFlags(&c->recv_done[ch], cudaEventDisableTiming))) return MP_ERR_BACKEND;
    }
    if (CUDA_CHECK_AT(err, self, cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking))) return MP_ERR_BACKEND;
    double deadline = mp_now_s() + timeout_s;
    mp_status st;
    for (int ch = 0; ch < NCH; ch++) {
        ncclUniqueId id;
        memset(&id, 0, sizeof id);
        int tag = MP_TAG(MP_TAG_CKPT, 0, 1000 + ch);
        if (self == 0) {
            if (NCCL_CHECK_AT(err, self, ncclGetUniqueId(&id))) return MP_ERR_BACKEND;
            for (int p = 1; p < c->k; p++)
                if ((st = mp_transport_mpi_i.send(&c->mpi, 0, p, tag, &id, sizeof id, timeout_s, err)) != MP_OK)
                    return st;
        } else if ((st = mp_transport_mpi_i.recv(&c->mpi, self, 0, tag, &id, sizeof id, timeout_s, err)) != MP_OK)
            return st;
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        if (NCCL_CHECK_AT(err, self, ncclCommInitRankConfig(&c->comm[ch], c->k, id, self, &cfg))) return MP_ERR_BACKEND;
        if ((st = wait_ready(c, ch, self, deadline, timeout_s, "communicator init", err)) != MP_OK) return st;
    }
    float *dbuf = NULL;
    if (CUDA_CHECK_AT(err, self, cudaMalloc((void **)&dbuf, 2 * sizeof(float)))) return MP_ERR_BACKEND;
    st = cudaMemset(dbuf, 0, 2 * sizeof(float)) == cudaSuccess ? warm_up(c, self, dbuf, deadline, timeout_s, err)
                                                                 : mp_error_set(err, MP_ERR_BACKEND, "cudaMemset failed");
    cudaFree(dbuf);
    if (st != MP_OK) return st;
    c->bound = 1;
    return MP_OK;
}

/* Frees the slots whose sends completed; MP_OK or the first CUDA error. */
static mp_status reclaim(nctx *c, int self, mp_error *err)
{
    for (int i = 0; i < c->nslots; i++) {
        if (!c->slots[i].busy) continue;
        cudaError_t e = cudaEventQuery(c->slots[i].done);
        if (e == cudaSuccess) c->slots[i].busy = 0;
        else if (e != cudaErrorNotReady)
            return mp_error_set(err, MP_ERR_BACKEND, "stage %d: NCCL send failed: %s", self, cudaGetErrorString(e));
    }
    return MP_OK;
}

/* A free slot of at least `bytes` bytes (grown or added as needed), or NULL. */
static slot *get_slot(nctx *c, size_t bytes, mp_error *err)
{
    slot *best = NULL;
    for (int i = 0; i < c->nslots; i++)
        if (!c->slots[i].busy && (!best || c->slots[i].cap > best->cap)) best = &c->slots[i];
    if (!best) {
        slot *ns = realloc(c->slots, (size_t)(c->nslots + 1) * sizeof *ns);
        if (!ns) { mp_error_set(err, MP_ERR_NOMEM, "transport nccl: out of memory"); return NULL; }
        c->slots = ns;
        best = &c->slots[c->nslots];
        memset(best, 0, sizeof *best);
        if (CUDA_CHECK(err, cudaEventCreateWithFlags(&best->done, cudaEventDisableTiming))) return NULL;
        c->nslots++;
    }
    if (best->cap < bytes) {
        if (best->buf) cudaFree(best->buf);
        best->buf = NULL;
        best->cap = 0;
        if (CUDA_CHECK(err, cudaMalloc(&best->buf, bytes ? bytes : 1))) return NULL;
        best->cap = bytes;
    }
    return best;
}

/* ---------------------------------------------------------------- device messages */

static mp_status n_send_dev(mp_transport *t, int self, int dst, int tag, const void *buf, size_t bytes,
                            double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    int ch = channel_of(tag);
    if (!c->bound || ch < 0)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage %d: NCCL send before bind or with tag kind %d", self,
                            MP_TAG_KIND(tag));
    mp_status st;
    if ((st = async_errors(c, self, err)) != MP_OK) return st;
    if (CUDA_CHECK_AT(err, self, cudaSetDevice(c->device))) return MP_ERR_BACKEND;
    if ((st = reclaim(c, self, err)) != MP_OK) return st;
    slot *s = get_slot(c, bytes, err);
    if (!s) return err && err->status != MP_OK ? err->status : MP_ERR_BACKEND;
    if (bytes && (CUDA_CHECK_AT(err, self, cudaMemcpyAsync(s->buf, buf, bytes, cudaMemcpyDeviceToDevice, c->copy)) ||
                  CUDA_CHECK_AT(err, self, cudaStreamSynchronize(c->copy))))
        return MP_ERR_BACKEND;
    double deadline = mp_now_s() + timeout_s;
    if (NCCL_CHECK_AT(err, self, ncclGroupStart())) return MP_ERR_BACKEND;
    if (NCCL_CHECK_AT(err, self, ncclSend(s->buf, bytes, ncclChar, dst, c->comm[ch], c->stream[ch]))) {
        ncclGroupEnd();
        abort_comms(c);
        return MP_ERR_BACKEND;
    }
    if (NCCL_CHECK_AT(err, self, ncclGroupEnd())) { abort_comms(c); return MP_ERR_BACKEND; }
    if ((st = wait_ready(c, ch, self, deadline, timeout_s, "send", err)) != MP_OK) return st;
    if (CUDA_CHECK_AT(err, self, cudaEventRecord(s->done, c->stream[ch]))) return MP_ERR_BACKEND;
    s->busy = 1;
    return MP_OK;
}

static mp_status n_recv_dev(mp_transport *t, int self, int src, int tag, void *buf, size_t bytes,
                            double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    int ch = channel_of(tag);
    if (!c->bound || ch < 0)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage %d: NCCL receive before bind or with tag kind %d", self,
                            MP_TAG_KIND(tag));
    mp_status st;
    if ((st = async_errors(c, self, err)) != MP_OK) return st;
    if (CUDA_CHECK_AT(err, self, cudaSetDevice(c->device))) return MP_ERR_BACKEND;
    double deadline = mp_now_s() + timeout_s;
    if (NCCL_CHECK_AT(err, self, ncclGroupStart())) return MP_ERR_BACKEND;
    if (NCCL_CHECK_AT(err, self, ncclRecv(buf, bytes, ncclChar, src, c->comm[ch], c->stream[ch]))) {
        ncclGroupEnd();
        abort_comms(c);
        return MP_ERR_BACKEND;
    }
    if (NCCL_CHECK_AT(err, self, ncclGroupEnd())) { abort_comms(c); return MP_ERR_BACKEND; }
    if ((st = wait_ready(c, ch, self, deadline, timeout_s, "receive", err)) != MP_OK) return st;
    if (CUDA_CHECK_AT(err, self, cudaEventRecord(c->recv_done[ch], c->stream[ch]))) return MP_ERR_BACKEND;
    return wait_event(c, c->recv_done[ch], self, src, deadline, timeout_s, err);
}

/* ---------------------------------------------------------------- host side (MPI) */

static mp_status n_send(mp_transport *t, int self, int dst, int tag, const void *buf, size_t bytes,
                        double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    return mp_transport_mpi_i.send(&c->mpi, self, dst, tag, buf, bytes, timeout_s, err);
}

static mp_status n_recv(mp_transport *t, int self, int src, int tag, void *buf, size_t bytes,
                        double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    return mp_transport_mpi_i.recv(&c->mpi, self, src, tag, buf, bytes, timeout_s, err);
}

static void n_abort(mp_transport *t, int self, const char *text)
{
    nctx *c = t->ctx;
    abort_comms(c);
    mp_transport_mpi_i.abort(&c->mpi, self, text);   /* MPI_Abort: every rank goes down */
}

static mp_status n_agree(mp_transport *t, int self, int *flag, double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    mp_status st = c->bound ? async_errors(c, self, err) : MP_OK;
    if (st != MP_OK) return st;
    return mp_transport_mpi_i.agree(&c->mpi, self, flag, timeout_s, err);
}

/* Every queued NCCL send has completed, then every MPI send. */
static mp_status n_flush(mp_transport *t, int self, double timeout_s, mp_error *err)
{
    nctx *c = t->ctx;
    double deadline = mp_now_s() + timeout_s;
    mp_status st;
    if (c->bound) {
        if (CUDA_CHECK_AT(err, self, cudaSetDevice(c->device))) return MP_ERR_BACKEND;
        for (int i = 0; i < c->nslots; i++)
            if (c->slots[i].busy) {
                if ((st = wait_event(c, c->slots[i].done, self, -1, deadline, timeout_s, err)) != MP_OK) return st;
                c->slots[i].busy = 0;
            }
    }
    return mp_transport_mpi_i.flush(&c->mpi, self, timeout_s, err);
}

static void n_close(mp_transport *t, int failed)
{
    nctx *c = t->ctx;
    if (!c) return;
    if (c->device >= 0) cudaSetDevice(c->device);
    if (failed) abort_comms(c);
    if (!c->aborted) {
        double deadline = mp_now_s() + 10;
        for (int ch = 0; ch < NCH; ch++) {
            if (!c->comm[ch]) continue;
            ncclCommFinalize(c->comm[ch]);
            ncclResult_t a = ncclInProgress;
            while (a == ncclInProgress && mp_now_s() < deadline) {
                if (ncclCommGetAsyncError(c->comm[ch], &a) != ncclSuccess) break;
                if (a == ncclInProgress) mp_sleep_us(20);   /* between polls */
            }
            if (a == ncclSuccess) ncclCommDestroy(c->comm[ch]);
            else ncclCommAbort(c->comm[ch]);
        }
    }
    for (int i = 0; i < c->nslots; i++) {
        if (c->slots[i].buf) cudaFree(c->slots[i].buf);
        if (c->slots[i].done) cudaEventDestroy(c->slots[i].done);
    }
    free(c->slots);
    for (int ch = 0; ch < NCH; ch++) {
        if (c->recv_done[ch]) cudaEventDestroy(c->recv_done[ch]);
        if (c->stream[ch]) cudaStreamDestroy(c->stream[ch]);
    }
    if (c->copy) cudaStreamDestroy(c->copy);
    mp_transport_mpi_i.close(&c->mpi, failed);   /* MPI_Finalize, or MPI_Abort when failed */
    free(c);
    t->ctx = NULL;
}

const mp_transport_i mp_transport_nccl_i = {
    .name = "nccl",
    .open = n_open,
    .send = n_send,
    .recv = n_recv,
    .abort = n_abort,
    .agree = n_agree,
    .flush = n_flush,
    .close = n_close,
    .bind = n_bind,
    .send_dev = n_send_dev,
    .recv_dev = n_recv_dev,
};

#else /* no MPI: the table exists so the registry links, and says why it cannot run */

static mp_status n_open(mp_transport *t, int k, int cap, mp_error *err)
{
    return mp_error_set(err, MP_ERR_BACKEND, "transport nccl: the NCCL transport needs MPI (NCCL is bootstrapped "
                        "through MPI) and this build has none (rebuild with mpicc available)");
}

static void n_close(mp_transport *t, int failed) { (void)t; (void)failed; }

const mp_transport_i mp_transport_nccl_i = {
    .name = "nccl",
    .open = n_open,
    .close = n_close,
};

#endif
