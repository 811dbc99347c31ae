/* train_allreduce.c — data parallelism in a training step (train.h): the
 * weight gradients of each stage summed over its D replicas, layer by layer,
 * by the ring all-reduce of collective.h, and the replicas' losses summed on
 * replica 0. Host backends reduce in place: received chunks are added into
 * the gradient as they arrive where the transport can (recv_add: threads),
 * else with the all-reduce buffer (ar_buf, allocated either way) as the
 * ring's receive buffer; other backends stage every message
 * through host memory (ar_host) and add on the device (axpy with 1).
 * defines: mp_train_allreduce */
#include "train.h"
#include "clock.h"
#include "collective.h"

#include <stdlib.h>

#include "backend_impl.h"

/* The io's context: the worker and what it reduces now (for messages). */
typedef struct {
    mp_train_worker *w;
    int stage, layer;
} ar_io;

static mp_status io_send(void *ctx, int dst, int tag, const float *buf, size_t n, mp_error *err)
{
    ar_io *a = ctx;
    mp_train_worker *w = a->w;
    mp_train_run *r = w->r;
    if (r->hang_position == w->p) return MP_OK;   /* fault hook: the message never leaves */
    const float *src = buf;
    if (!w->host_mem) {
        w->be->i->download(w->be, w->ar_host, buf, n * sizeof(float));
        src = w->ar_host;
    }
    return r->t->i->send(r->t, w->p, dst, tag, src, n * sizeof(float), r->c->timeout_s, err);
}

/* A receive's status as the step reports it: a timeout names the stage,
 * layer and replica waited for; other failures keep the transport's message. */
static mp_status recv_status(const ar_io *a, int src, mp_status st, const mp_error *e, mp_error *err)
{
    const mp_train_run *r = a->w->r;
    if (st == MP_ERR_TIMEOUT)
        return mp_error_set(err, st, "stage %d: timed out after %g s waiting for the gradient all-reduce of layer %d "
                            "from replica %d", a->stage, r->c->timeout_s, a->layer, src / r->K);
    if (st != MP_OK) return mp_error_set(err, st, "%s", e->msg);
    return MP_OK;
}

static mp_status io_recv(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err)
{
    ar_io *a = ctx;
    mp_train_worker *w = a->w;
    mp_train_run *r = w->r;
    mp_error e;
    mp_error_clear(&e);
    mp_status st = r->t->i->recv(r->t, w->p, src, tag, w->host_mem ? buf : w->ar_host, n * sizeof(float),
                                 r->c->timeout_s, &e);
    if ((st = recv_status(a, src, st, &e, err)) != MP_OK) return st;
    if (!w->host_mem) w->be->i->upload(w->be, buf, w->ar_host, n * sizeof(float));
    return MP_OK;
}

/* Host backends: the chunk added into the gradient as it arrives. */
static mp_status io_recv_add(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err)
{
    ar_io *a = ctx;
    mp_train_run *r = a->w->r;
    mp_error e;
    mp_error_clear(&e);
    mp_status st = r->t->i->recv_add(r->t, a->w->p, src, tag, buf, n, r->c->timeout_s, &e);
    return recv_status(a, src, st, &e, err);
}

static mp_status io_add(void *ctx, float *y, const float *x, size_t n, mp_error *err)
{
    ar_io *a = ctx;
    a->w->be->i->axpy(a->w->be, y, 1.0f, x, n);   /* y + 1*x: the sum y + x exactly rounded */
    return MP_OK;
}

/* Replicas' losses of step idx to replica 0's position (double, replica order). */
static mp_status sum_loss(mp_train_worker *w, int idx)
{
    mp_train_run *r = w->r;
    int tag = MP_TAG(MP_TAG_ALLRED, 1023, 0), last = (r->S - 1) % r->K;
    if (w->k != last) return MP_OK;
    if (w->replica > 0) {
        if (r->hang_position == w->p) return MP_OK;
        return r->t->i->send(r->t, w->p, last, tag, &w->loss[idx], sizeof(double), r->c->timeout_s, &w->err);
    }
    double sum = w->loss[idx];
    for (int q = 1; q < r->D; q++) {
        double x = 0;
        mp_error e;
        mp_error_clear(&e);
        mp_status st = r->t->i->recv(r->t, w->p, q * r->K + last, tag, &x, sizeof x, r->c->timeout_s, &e);
        if (st == MP_ERR_TIMEOUT)
            return mp_error_set(&w->err, st, "stage %d: timed out after %g s waiting for the loss of replica %d",
                                r->S - 1, r->c->timeout_s, q);
        if (st != MP_OK) return mp_error_set(&w->err, st, "%s", e.msg);
        sum += x;
    }
    w->loss[idx] = sum;
    return MP_OK;
}

mp_status mp_train_allreduce(mp_train_worker *w, int idx, int record, double t0)
{
    mp_train_run *r = w->r;
    if (r->D < 2) return MP_OK;
    double a0 = mp_now_ms();
    int ring[1 << 10];
    for (int q = 0; q < r->D; q++) ring[q] = q * r->K + w->k;
    ar_io a = { w, 0, 0 };
    mp_coll_io io = { &a, io_send, io_recv, w->host_mem ? NULL : io_add,
                      w->host_mem && r->t->i->recv_add ? io_recv_add : NULL };
    mp_status st = MP_OK;
    for (int j = 0; j < w->nst && st == MP_OK; j++) {
        mp_train_stage *v = &w->st[j];
        double sa = mp_now_ms();
        a.stage = v->s;
        for (int i = 0; i < v->net.count && st == MP_OK; i++) {
            mp_layer *l = &v->net.layers[i];
            if (!l->nparams) continue;
            a.layer = v->first + i;
            st = mp_coll_allreduce(&io, ring, r->D, w->replica, v->s, l->g, l->nparams, w->ar_buf, &w->err);
        }
        if (st == MP_OK && !w->host_mem) st = w->be->i->sync(w->be, &w->err);
        mp_trace_event e = { MP_TEV_ALLREDUCE, w->k, -1, v->s, -1, sa - t0, mp_now_ms() - t0 };
        if (st == MP_OK && record && mp_trace_add(&w->trace, e) != MP_OK)
            st = mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for the trace", v->s);
    }
    if (st == MP_OK) st = sum_loss(w, idx);
    w->ar_ms[idx] = mp_now_ms() - a0;
    return st;
}
