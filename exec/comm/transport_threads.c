/* transport_threads.c — the in-process transport: one worker thread per
 * position, a bounded mailbox per destination (mutex + condvar with timed
 * waits on CLOCK_MONOTONIC), a generation barrier for agree, and an abort
 * flag that wakes every wait. Message buffers come from a pool (bufpool.h).
 * defines: mp_transport_threads_i */
#include "transport.h"
#include "bufpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct msg {
    struct msg *next;
    int src, tag;
    size_t bytes;
    unsigned char data[];
} msg;


typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    msg *head, *tail;
    int count, cap;
} mailbox;

typedef struct {
    int k;
    mailbox *box;
    pthread_mutex_t mu;      /* abort + barrier */
    pthread_cond_t cv;
    int aborted;
    char abort_msg[1024];
    int arrived, flag_acc, last_flag;
    unsigned long gen;
    mp_bufpool pool;         /* the messages' buffers */
} tctx;

static void deadline_after(struct timespec *ts, double s)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (s > 1e7) s = 1e7;
    long long ns = (long long)(s * 1e9);
    ts->tv_sec += (time_t)(ns / 1000000000LL);
    ts->tv_nsec += (long)(ns % 1000000000LL);
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

static int is_aborted(tctx *c, char *msg_out, size_t n)
{
    pthread_mutex_lock(&c->mu);
    int a = c->aborted;
    if (a && msg_out) snprintf(msg_out, n, "%s", c->abort_msg);
    pthread_mutex_unlock(&c->mu);
    return a;
}

static mp_status aborted_error(tctx *c, mp_error *err)
{
    char m[1024];
    is_aborted(c, m, sizeof m);
    return mp_error_set(err, MP_ERR_BACKEND, "%s", m);
}

static mp_status t_send(mp_transport *t, int self, int dst, int tag, const void *buf,
                        size_t bytes, double timeout_s, mp_error *err)
{
    tctx *c = t->ctx;
    if (dst < 0 || dst >= c->k)
        return mp_error_set(err, MP_ERR_INTERNAL, "transport: send to position %d of %d", dst, c->k);
    msg *m = mp_bufpool_get(&c->pool, sizeof *m + bytes);
    if (!m) return mp_error_set(err, MP_ERR_NOMEM, "position %d: out of memory sending %zu bytes", self, bytes);
    m->next = NULL;
    m->src = self;
    m->tag = tag;
    m->bytes = bytes;
    if (bytes) memcpy(m->data, buf, bytes);
    mailbox *b = &c->box[dst];
    struct timespec dl;
    deadline_after(&dl, timeout_s);
    pthread_mutex_lock(&b->mu);
    while (b->count >= b->cap) {
        if (is_aborted(c, NULL, 0)) { pthread_mutex_unlock(&b->mu); mp_bufpool_put(&c->pool, m); return aborted_error(c, err); }
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT) {
            pthread_mutex_unlock(&b->mu);
            mp_bufpool_put(&c->pool, m);
            return mp_error_set(err, MP_ERR_TIMEOUT,
                                "stage %d: timed out after %g s sending to stage %d (its mailbox stayed full)",
                                self, timeout_s, dst);
        }
    }
    if (b->tail) b->tail->next = m; else b->head = m;
    b->tail = m;
    b->count++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return MP_OK;
}

/* The oldest message from src to self with `tag` of exactly `bytes`, taken
 * off the mailbox (*out; put it back into the pool when done). */
static mp_status take(tctx *c, int self, int src, int tag, size_t bytes, double timeout_s, msg **out,
                      mp_error *err)
{
    mailbox *b = &c->box[self];
    struct timespec dl;
    deadline_after(&dl, timeout_s);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        msg *prev = NULL, *m = b->head;
        while (m && !(m->src == src && m->tag == tag)) { prev = m; m = m->next; }
        if (m) {
            if (prev) prev->next = m->next; else b->head = m->next;
            if (b->tail == m) b->tail = prev;
            b->count--;
            pthread_cond_broadcast(&b->cv);
            pthread_mutex_unlock(&b->mu);
            if (m->bytes != bytes) {
                mp_error_set(err, MP_ERR_INTERNAL, "stage %d: message from stage %d has %zu bytes, expected %zu",
                             self, src, m->bytes, bytes);
                mp_bufpool_put(&c->pool, m);
                return MP_ERR_INTERNAL;
            }
            *out = m;
            return MP_OK;
        }
        if (is_aborted(c, NULL, 0)) { pthread_mutex_unlock(&b->mu); return aborted_error(c, err); }
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT) {
            /* one last look before giving up */
            m = b->head;
            while (m && !(m->src == src && m->tag == tag)) m = m->next;
            if (m) continue;
            pthread_mutex_unlock(&b->mu);
            return mp_error_set(err, MP_ERR_TIMEOUT, "stage %d: timed out after %g s waiting for a message from stage %d",
                                self, timeout_s, src);
        }
    }
}

static mp_status t_recv(mp_transport *t, int self, int src, int tag, void *buf,
                        size_t bytes, double timeout_s, mp_error *err)
{
    tctx *c = t->ctx;
    msg *m;
    mp_status st = take(c, self, src, tag, bytes, timeout_s, &m, err);
    if (st != MP_OK) return st;
    if (bytes) memcpy(buf, m->data, bytes);
    mp_bufpool_put(&c->pool, m);
    return MP_OK;
}

static mp_status t_recv_add(mp_transport *t, int self, int src, int tag, float *buf,
                            size_t n, double timeout_s, mp_error *err)
{
    tctx *c = t->ctx;
    msg *m;
    mp_status st = take(c, self, src, tag, n * sizeof(float), timeout_s, &m, err);
    if (st != MP_OK) return st;
    const float *x = (const float *)m->data;
    for (size_t i = 0; i < n; i++) buf[i] = buf[i] + x[i];
    mp_bufpool_put(&c->pool, m);
    return MP_OK;
}

static void t_abort(mp_transport *t, int self, const char *text)
{
    tctx *c = t->ctx;
    pthread_mutex_lock(&c->mu);
    if (!c->aborted) {
        c->aborted = 1;
        snprintf(c->abort_msg, sizeof c->abort_msg, "%s", text);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->k; i++) {
        pthread_mutex_lock(&c->box[i].mu);
        pthread_cond_broadcast(&c->box[i].cv);
        pthread_mutex_unlock(&c->box[i].mu);
    }
}

static mp_status t_agree(mp_transport *t, int self, int *flag, double timeout_s, mp_error *err)
{
    tctx *c = t->ctx;
    struct timespec dl;
    deadline_after(&dl, timeout_s);
    pthread_mutex_lock(&c->mu);
    if (c->aborted) { pthread_mutex_unlock(&c->mu); return aborted_error(c, err); }
    unsigned long gen = c->gen;
    c->flag_acc |= (*flag != 0);
    if (++c->arrived == c->k) {
        c->last_flag = c->flag_acc;
        c->flag_acc = 0;
        c->arrived = 0;
        c->gen++;
        pthread_cond_broadcast(&c->cv);
    }
    while (c->gen == gen) {
        if (c->aborted) { pthread_mutex_unlock(&c->mu); return aborted_error(c, err); }
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT && c->gen == gen) {
            pthread_mutex_unlock(&c->mu);
            return mp_error_set(err, MP_ERR_TIMEOUT, "stage %d: timed out after %g s waiting for the other stages at a barrier",
                                self, timeout_s);
        }
    }
    *flag = c->last_flag;
    pthread_mutex_unlock(&c->mu);
    return MP_OK;
}

static mp_status t_flush(mp_transport *t, int self, double timeout_s, mp_error *err)
{
    return MP_OK;   /* sends are copied into the mailbox: already delivered */
}

static void t_close(mp_transport *t, int failed)
{
    tctx *c = t->ctx;
    if (!c) return;
    for (int i = 0; i < c->k; i++) {
        msg *m = c->box[i].head;
        while (m) { msg *n = m->next; mp_bufpool_put(&c->pool, m); m = n; }
        pthread_mutex_destroy(&c->box[i].mu);
        pthread_cond_destroy(&c->box[i].cv);
    }
    mp_bufpool_free(&c->pool);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->box);
    free(c);
    t->ctx = NULL;
}

static mp_status t_open(mp_transport *t, int k, int cap, mp_error *err)
{
    tctx *c = calloc(1, sizeof *c);
    if (!c) return mp_error_set(err, MP_ERR_NOMEM, "transport: out of memory");
    c->k = k;
    c->box = calloc((size_t)k, sizeof *c->box);
    if (!c->box) { free(c); return mp_error_set(err, MP_ERR_NOMEM, "transport: out of memory"); }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    mp_bufpool_init(&c->pool);
    pthread_cond_init(&c->cv, &ca);
    for (int i = 0; i < k; i++) {
        pthread_mutex_init(&c->box[i].mu, NULL);
        pthread_cond_init(&c->box[i].cv, &ca);
        c->box[i].cap = cap > 0 ? cap : 1;
    }
    pthread_condattr_destroy(&ca);
    t->ctx = c;
    t->rank = -1;
    return MP_OK;
}

const mp_transport_i mp_transport_threads_i = {
    .name = "threads",
    .open = t_open,
    .send = t_send,
    .recv = t_recv,
    .abort = t_abort,
    .agree = t_agree,
    .flush = t_flush,
    .close = t_close,
    .recv_add = t_recv_add,
};
