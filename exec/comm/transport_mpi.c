/* transport_mpi.c — one MPI rank per pipeline position (rank = position).
 * Sends copy the buffer (into one from a pool, bufpool.h) and post
 * MPI_Isend (the sender's compute goes on);
 * receives post MPI_Irecv and poll MPI_Test with a deadline, driving pending
 * sends forward. Abort prints the message and calls MPI_Abort, which brings
 * every rank down at once (never a hang). Built only with MPI (MP_HAVE_MPI).
 * defines: mp_transport_mpi_i */
#include "transport.h"
#include "bufpool.h"
#include "clock.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pending {
    struct pending *next;
    MPI_Request req;
    void *buf;
} pending;

typedef struct {
    int k, rank, tag_ub;
    pending *sends;
    mp_bufpool pool;          /* the send copies */
} mctx;

/* Completes finished sends, freeing their buffers. */
static void progress(mctx *c)
{
    pending **pp = &c->sends;
    while (*pp) {
        int done = 0;
        MPI_Test(&(*pp)->req, &done, MPI_STATUS_IGNORE);
        if (done) {
            pending *d = *pp;
            *pp = d->next;
            mp_bufpool_put(&c->pool, d->buf);
            free(d);
        } else
            pp = &(*pp)->next;
    }
}

static mp_status m_open(mp_transport *t, int k, int cap, mp_error *err)
{
    int inited = 0, provided = 0, size = 0, rank = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return mp_error_set(err, MP_ERR_BACKEND, "transport mpi: MPI_Init failed");
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size != k) {
        if (rank == 0)
            fprintf(stderr, "mprun: the plan has %d pipeline positions but mpirun started %d ranks (use mpirun -np %d)\n",
                    k, size, k);
        MPI_Abort(MPI_COMM_WORLD, 2);
        return mp_error_set(err, MP_ERR_INPUT, "plan needs %d ranks, mpirun started %d", k, size);
    }
    mctx *c = calloc(1, sizeof *c);
    if (!c) return mp_error_set(err, MP_ERR_NOMEM, "transport mpi: out of memory");
    c->k = k;
    c->rank = rank;
    mp_bufpool_init(&c->pool);
    int *ub = NULL, flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
    c->tag_ub = flag && ub ? *ub : 32767;
    t->ctx = c;
    t->rank = rank;
    return MP_OK;
}

static mp_status m_send(mp_transport *t, int self, int dst, int tag, const void *buf,
                        size_t bytes, double timeout_s, mp_error *err)
{
    mctx *c = t->ctx;
    if (tag > c->tag_ub)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage %d: MPI tag %d above MPI_TAG_UB %d", self, tag, c->tag_ub);
    if (bytes > (size_t)0x7fffffff)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage %d: message of %zu bytes too large for MPI", self, bytes);
    pending *p = malloc(sizeof *p);
    void *copy = mp_bufpool_get(&c->pool, bytes);
    if (!p || !copy) { free(p); mp_bufpool_put(&c->pool, copy); return mp_error_set(err, MP_ERR_NOMEM, "stage %d: out of memory sending", self); }
    if (bytes) memcpy(copy, buf, bytes);
    p->buf = copy;
    if (MPI_Isend(copy, (int)bytes, MPI_BYTE, dst, tag, MPI_COMM_WORLD, &p->req) != MPI_SUCCESS) {
        mp_bufpool_put(&c->pool, copy); free(p);
        return mp_error_set(err, MP_ERR_BACKEND, "stage %d: MPI_Isend to stage %d failed", self, dst);
    }
    p->next = c->sends;
    c->sends = p;
    progress(c);
    return MP_OK;
}

static mp_status m_recv(mp_transport *t, int self, int src, int tag, void *buf,
                        size_t bytes, double timeout_s, mp_error *err)
{
    mctx *c = t->ctx;
    MPI_Request req;
    if (MPI_Irecv(buf, (int)bytes, MPI_BYTE, src, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return mp_error_set(err, MP_ERR_BACKEND, "stage %d: MPI_Irecv from stage %d failed", self, src);
    double deadline = mp_now_s() + timeout_s;
    for (;;) {
        int done = 0;
        MPI_Status stt;
        MPI_Test(&req, &done, &stt);
        if (done) {
            int count = 0;
            MPI_Get_count(&stt, MPI_BYTE, &count);
            if ((size_t)count != bytes)
                return mp_error_set(err, MP_ERR_INTERNAL, "stage %d: message from stage %d has %d bytes, expected %zu",
                                    self, src, count, bytes);
            return MP_OK;
        }
        progress(c);
        if (mp_now_s() > deadline) {
            MPI_Cancel(&req);
            MPI_Request_free(&req);
            return mp_error_set(err, MP_ERR_TIMEOUT, "stage %d: timed out after %g s waiting for a message from stage %d",
                                self, timeout_s, src);
        }
        mp_sleep_us(20);   /* between polls */
    }
}

static void m_abort(mp_transport *t, int self, const char *text)
{
    fprintf(stderr, "mprun: %s\n", text);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static mp_status m_agree(mp_transport *t, int self, int *flag, double timeout_s, mp_error *err)
{
    mctx *c = t->ctx;
    int in = *flag != 0, outv = 0;
    MPI_Request req;
    MPI_Iallreduce(&in, &outv, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD, &req);
    double deadline = mp_now_s() + timeout_s;
    for (;;) {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) { *flag = outv; return MP_OK; }
        progress(c);
        if (mp_now_s() > deadline)
            return mp_error_set(err, MP_ERR_TIMEOUT, "stage %d: timed out after %g s waiting for the other ranks at a barrier",
                                self, timeout_s);
        mp_sleep_us(20);   /* between polls */
    }
}

static mp_status m_flush(mp_transport *t, int self, double timeout_s, mp_error *err)
{
    mctx *c = t->ctx;
    double deadline = mp_now_s() + timeout_s;
    for (;;) {
        progress(c);
        if (!c->sends) return MP_OK;
        if (mp_now_s() > deadline)
            return mp_error_set(err, MP_ERR_TIMEOUT, "stage %d: timed out after %g s waiting for sends to complete",
                                self, timeout_s);
        mp_sleep_us(20);   /* between polls */
    }
}

static void m_close(mp_transport *t, int failed)
{
    mctx *c = t->ctx;
    if (failed) MPI_Abort(MPI_COMM_WORLD, 1);
    if (c) {
        pending *p = c->sends;
        while (p) { pending *n = p->next; MPI_Cancel(&p->req); MPI_Request_free(&p->req); mp_bufpool_put(&c->pool, p->buf); free(p); p = n; }
        mp_bufpool_free(&c->pool);
        free(c);
        t->ctx = NULL;
    }
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

const mp_transport_i mp_transport_mpi_i = {
    .name = "mpi",
    .open = m_open,
    .send = m_send,
    .recv = m_recv,
    .abort = m_abort,
    .agree = m_agree,
    .flush = m_flush,
    .close = m_close,
};
