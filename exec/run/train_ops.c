/* train_ops.c — a training position's op loop (train.h): its stages'
 * buffers on its backend, the forward and backward ops of its op list from
 * mp_schedule_build (the lists the simulator times) — the fused backward,
 * or the zero-bubble input gradient (BI) and weight gradient (W) — the
 * activations and gradients moved through the transport (or kept locally
 * between two stages of one position), the optimizer step, checkpoints,
 * and every op timed on the monotonic clock.
 * defines: mp_train_position, mp_train_release, mp_train_worker_free */
#include "train.h"
#include "checkpoint.h"
#include "clock.h"
#include "memory.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"

static int last_of(const mp_train_run *r) { return r->S - 1; }

/* The transport position of stage s in this worker's replica. */
/* The transport position that runs stage s in this worker's replica. */
static int position_of(const mp_train_worker *w, int s) { return w->replica * w->r->K + mp_train_pos_of(w->r, s); }

/* ---------------------------------------------------------------- stages */

static mp_status stage_setup(mp_train_worker *w, mp_train_stage *v, int s)
{
    mp_train_run *r = w->r;
    const mp_stage *ps = &r->plan->stages[s];
    mp_backend *be = w->be;
    memset(v, 0, sizeof *v);
    v->s = s;
    v->first = ps->first;
    v->last = ps->last;
    v->recompute = ps->recompute;
    v->is_first = s == 0;
    v->is_last = s == last_of(r);
    mp_status st = mp_stage_init(&v->net, be, r->model, ps->first, ps->last, r->b, r->c->seed, &w->err);
    if (st != MP_OK) return st;
    v->in_dim = v->net.in_dim;
    v->out_dim = v->net.out_dim;
    for (int i = 0; i < v->net.count; i++) v->nparams += v->net.layers[i].nparams;
    size_t b = (size_t)r->b;
    v->in_pool.bytes = b * (size_t)v->in_dim * sizeof(float);
    v->stash_pool.bytes = mp_stage_stash_bytes(&v->net, r->b);
    v->dl_pool.bytes = b * (size_t)v->out_dim * sizeof(float);
    v->wstash_pool.bytes = mp_stage_wstash_bytes(&v->net, r->b);
    if (!v->wstash_pool.bytes) v->wstash_pool.bytes = sizeof(float);
    v->wstash_slot = calloc((size_t)r->m, sizeof(float *));
    v->in_slot = calloc((size_t)r->m, sizeof(float *));
    v->stash_slot = calloc((size_t)r->m, sizeof(float *));
    v->dl_slot = calloc((size_t)r->m, sizeof(float *));
    v->loss_mb = calloc((size_t)r->m, sizeof(float));
    v->out = be->i->alloc(be, v->dl_pool.bytes);
    v->dy = be->i->alloc(be, v->dl_pool.bytes);
    v->dx = be->i->alloc(be, v->in_pool.bytes);
    if (v->recompute) v->stash_shared = be->i->alloc(be, v->stash_pool.bytes ? v->stash_pool.bytes : 1);
    if (v->is_last)
        v->target = be->i->alloc(be, r->model->loss == MP_LOSS_MSE ? v->dl_pool.bytes : b * (size_t)mp_model_labels_per_sample(r->model) * sizeof(int));
    if (!v->in_slot || !v->stash_slot || !v->dl_slot || !v->wstash_slot || !v->loss_mb || !v->out || !v->dy || !v->dx ||
        (v->recompute && !v->stash_shared) || (v->is_last && !v->target))
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of %s memory for its buffers", s, be->i->name);
    return MP_OK;
}

static void stage_free(mp_train_worker *w, mp_train_stage *v)
{
    mp_backend *be = w->be;
    if (!be) return;
    for (int i = 0; v->in_slot && i < w->r->m; i++) {
        be->i->free(be, v->in_slot[i]);
        be->i->free(be, v->stash_slot[i]);
        be->i->free(be, v->dl_slot[i]);
        if (v->wstash_slot) be->i->free(be, v->wstash_slot[i]);
    }
    mp_pool_free(&v->wstash_pool, be);
    mp_pool_free(&v->in_pool, be);
    mp_pool_free(&v->stash_pool, be);
    mp_pool_free(&v->dl_pool, be);
    be->i->free(be, v->stash_shared);
    be->i->free(be, v->out);
    be->i->free(be, v->dy);
    be->i->free(be, v->dx);
    be->i->free(be, v->target);
    free(v->in_slot);
    free(v->stash_slot);
    free(v->dl_slot);
    free(v->wstash_slot);
    free(v->loss_mb);
    mp_stage_free(&v->net);
}

/* Most micro-batches stage s holds between its forward and its backward (or
 * W, the end of a zero-bubble micro-batch). */
static int max_inflight(const mp_train_run *r, int p, int s)
{
    int cur = 0, best = 0;
    for (int k = 0; k < r->ops.len[p]; k++) {
        const mp_op *o = &r->ops.ops[p][k];
        if (o->stage != s || o->kind == MP_OP_BWD_IN) continue;
        cur += o->kind == MP_OP_FWD ? 1 : -1;
        if (cur > best) best = cur;
    }
    return best;
}

/* Before any work: what this position will allocate at its peak against the
 * device's memory (--cluster / --memory): what the backend holds after setup
 * (a backend that cannot tell: the weights and gradients), plus Adam's
 * moments and what the schedule keeps in flight (the op walk of
 * sim/memory.h over what mprun allocates per micro-batch). */
static mp_status check_fit(mp_train_worker *w)
{
    mp_train_run *r = w->r;
    const mp_run_config *c = r->c;
    double held = mp_backend_mem_used(w->be), need = held >= 0 ? held : 0;
    double *hb = calloc((size_t)3 * r->S, sizeof *hb);
    if (!hb) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->p);
    double *ex = hb + r->S, *wh = hb + 2 * r->S;
    int zb = mp_schedule_is_zb(r->plan->schedule);
    for (int k = 0; k < w->nst; k++) {
        mp_train_stage *v = &w->st[k];
        if (held < 0) need += 2.0 * (double)v->nparams * sizeof(float);
        if (c->optimizer == MP_OPT_ADAM) need += 2.0 * (double)v->nparams * sizeof(float);
        hb[v->s] = (double)(v->recompute ? v->in_pool.bytes : v->stash_pool.bytes) +
                   (v->is_last ? (double)v->dl_pool.bytes : 0);
        if (zb) {
            ex[v->s] = v->recompute ? (double)v->stash_pool.bytes : 0;
            wh[v->s] = (double)v->wstash_pool.bytes;
        }
    }
    need = mp_memory_walk_split(r->ops.ops[w->k], r->ops.len[w->k], need, hb, ex, wh);
    free(hb);
    if (r->D > 1 && held < 0) need += (double)w->ar_len * sizeof(float);   /* the all-reduce buffer */
    char what[128];
    snprintf(what, sizeof what, "parameters, optimizer state, %d micro-batches in flight%s", max_inflight(r, w->k, w->k),
             r->D > 1 ? ", the all-reduce buffer" : "");
    return mp_pipeline_check_fit(r->pl->c, w->k, mp_pipeline_device_of(r->pl->c, w->p), need, what, &w->err);
}

/* ---------------------------------------------------------------- ops */

static void note_peak(mp_train_worker *w)
{
    double u = mp_backend_mem_used(w->be);
    if (u > w->peak) w->peak = u;
}

static mp_status add_event(mp_train_worker *w, int kind, int dst, int stage, int mb, double a, double b)
{
    mp_trace_event e = { kind, w->k, dst, stage, mb, a, b };
    if (mp_trace_add(&w->trace, e) != MP_OK)
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for the trace", w->k);
    return MP_OK;
}

/* A message to this position itself: a backend copy kept under its tag. */
static mp_status send_local(mp_train_worker *w, int tag, const float *src, size_t n)
{
    if (w->nlocal == w->cap_local) {
        int cap = w->cap_local ? 2 * w->cap_local : 8;
        mp_train_local *l = realloc(w->local, (size_t)cap * sizeof *l);
        if (!l) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for a message", w->p);
        w->local = l;
        w->cap_local = cap;
    }
    float *buf = w->be->i->alloc(w->be, n ? n * sizeof(float) : 1);
    if (!buf) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of %s memory for a message", w->p, w->be->i->name);
    w->be->i->copy(w->be, buf, src, n * sizeof(float));
    w->local[w->nlocal++] = (mp_train_local){ tag, buf };
    return MP_OK;
}

static mp_status recv_local(mp_train_worker *w, int tag, float *dst, size_t n)
{
    for (int k = 0; k < w->nlocal; k++)
        if (w->local[k].tag == tag) {
            w->be->i->copy(w->be, dst, w->local[k].buf, n * sizeof(float));
            w->be->i->free(w->be, w->local[k].buf);
            w->local[k] = w->local[--w->nlocal];
            return MP_OK;
        }
    return mp_error_set(&w->err, MP_ERR_INTERNAL, "stage %d: a local message (tag %d) was never sent", w->p, tag);
}

/* Moves b*n floats of backend memory `src` to position dst. */
static mp_status send_floats(mp_train_worker *w, int dst, int tag, const float *src, size_t n)
{
    mp_train_run *r = w->r;
    if (dst == w->p) return send_local(w, tag, src, n);
    if (r->hang_position == w->p) return MP_OK;   /* fault hook: the message never leaves */
    const float *buf = src;
    if (!w->host_mem && r->t->i->send_dev)   /* device to device (NCCL) */
        return r->t->i->send_dev(r->t, w->p, dst, tag, src, n * sizeof(float), r->c->timeout_s, &w->err);
    if (!w->host_mem) {   /* device -> host staging -> transport */
        w->be->i->download(w->be, w->stage_buf, src, n * sizeof(float));
        buf = w->stage_buf;
    }
    return r->t->i->send(r->t, w->p, dst, tag, buf, n * sizeof(float), r->c->timeout_s, &w->err);
}

static mp_status recv_floats(mp_train_worker *w, int src, int tag, float *dst, size_t n, const char *what, int stage,
                             int from_stage, int mb)
{
    mp_train_run *r = w->r;
    if (src == w->p) return recv_local(w, tag, dst, n);
    int direct = !w->host_mem && r->t->i->recv_dev;   /* device to device (NCCL) */
    float *buf = w->host_mem || direct ? dst : w->stage_buf;
    mp_error e;
    mp_error_clear(&e);
    mp_status st = direct ? r->t->i->recv_dev(r->t, w->p, src, tag, buf, n * sizeof(float), r->c->timeout_s, &e)
                          : r->t->i->recv(r->t, w->p, src, tag, buf, n * sizeof(float), r->c->timeout_s, &e);
    if (st == MP_ERR_TIMEOUT)
        return mp_error_set(&w->err, st, "stage %d: timed out after %g s waiting for the %s of micro-batch %d from stage %d",
                            stage, r->c->timeout_s, what, mb, from_stage);
    if (st != MP_OK) return mp_error_set(&w->err, st, "%s", e.msg);
    if (!w->host_mem && !direct) w->be->i->upload(w->be, dst, buf, n * sizeof(float));   /* host -> device */
    return MP_OK;
}

static mp_status op_forward(mp_train_worker *w, mp_train_stage *v, int i, int record, double t0, double *busy)
{
    mp_train_run *r = w->r;
    mp_backend *be = w->be;
    size_t b = (size_t)r->b;
    float *in = mp_pool_get(&v->in_pool, be);
    if (!in) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for an input (micro-batch %d)", v->s, i);
    v->in_slot[i] = in;
    mp_status st;
    if (v->is_first)
        be->i->upload(be, in, w->xdata + (size_t)i * b * v->in_dim, v->in_pool.bytes);
    else if ((st = recv_floats(w, position_of(w, v->s - 1), MP_TAG(MP_TAG_ACT, v->s - 1, i), in, b * v->in_dim,
                               "activation", v->s, v->s - 1, i)) != MP_OK)
        return st;
    double a = mp_now_ms();
    float *stash = v->recompute ? v->stash_shared : mp_pool_get(&v->stash_pool, be);
    if (!stash) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for a stash (micro-batch %d)", v->s, i);
    if (!v->recompute) v->stash_slot[i] = stash;
    if ((st = mp_stage_forward(&v->net, r->b, in, v->out, stash, &w->err)) != MP_OK) return st;
    if (v->is_last) {
        float *dl = mp_pool_get(&v->dl_pool, be);
        if (!dl) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory (micro-batch %d)", v->s, i);
        v->dl_slot[i] = dl;
        if (r->model->loss == MP_LOSS_MSE)
            be->i->upload(be, v->target, w->ydata + (size_t)i * b * v->out_dim, v->dl_pool.bytes);
        else {
            size_t L = (size_t)mp_model_labels_per_sample(r->model);
            be->i->upload(be, v->target, w->ldata + (size_t)i * b * L, b * L * sizeof(int));
        }
        float loss = 0;
        st = mp_loss_eval(be, r->model, r->b, v->out, v->target, dl, 1.0f / (float)r->plan->global_batch, &loss, &w->err);
        if (st != MP_OK) return st;
        v->loss_mb[i] = loss;
    }
    if ((st = be->i->sync(be, &w->err)) != MP_OK) return st;
    double e = mp_now_ms();
    *busy += e - a;
    note_peak(w);
    if (v->is_last && !isfinite(v->loss_mb[i]))
        return mp_error_set(&w->err, MP_ERR_BACKEND, "stage %d: the loss is %s at micro-batch %d (diverged: try a smaller --lr)",
                            v->s, isnan(v->loss_mb[i]) ? "NaN" : "infinite", i);
    if (record && (st = add_event(w, MP_TEV_FWD, -1, v->s, i, a - t0, e - t0)) != MP_OK) return st;
    if (!v->recompute) {   /* the stash holds a copy of the input */
        mp_pool_put(&v->in_pool, in);
        v->in_slot[i] = NULL;
    }
    if (!v->is_last) {
        int dst = mp_train_pos_of(r, v->s + 1);
        double sa = mp_now_ms();
        if ((st = send_floats(w, position_of(w, v->s + 1), MP_TAG(MP_TAG_ACT, v->s, i), v->out, b * v->out_dim)) != MP_OK)
            return st;
        if (record && dst != w->k && (st = add_event(w, MP_TEV_SEND_ACT, dst, v->s, i, sa - t0, mp_now_ms() - t0)) != MP_OK) return st;
    }
    return MP_OK;
}

/* The start of a backward (B or BI) of micro-batch i: in index order; *dy
 * the gradient from the next stage, or the loss's on the last. */
static mp_status bwd_begin(mp_train_worker *w, mp_train_stage *v, int i, const float **dy)
{
    mp_train_run *r = w->r;
    size_t b = (size_t)r->b;
    mp_status st;
    if (i != v->next_bwd)
        return mp_error_set(&w->err, MP_ERR_INTERNAL, "stage %d: backward of micro-batch %d before %d", v->s, i, v->next_bwd);
    v->next_bwd++;
    *dy = v->dl_slot[i];
    if (!v->is_last) {
        if ((st = recv_floats(w, position_of(w, v->s + 1), MP_TAG(MP_TAG_GRAD, v->s + 1, i), v->dy, b * v->out_dim,
                              "gradient", v->s, v->s + 1, i)) != MP_OK)
            return st;
        *dy = v->dy;
    }
    return MP_OK;
}

/* The input gradient v->dx of micro-batch i to the previous stage. */
static mp_status send_grad(mp_train_worker *w, mp_train_stage *v, int i, int record, double t0)
{
    mp_train_run *r = w->r;
    mp_status st;
    if (v->is_first) return MP_OK;
    int dst = mp_train_pos_of(r, v->s - 1);
    double sa = mp_now_ms();
    if ((st = send_floats(w, position_of(w, v->s - 1), MP_TAG(MP_TAG_GRAD, v->s, i), v->dx, (size_t)r->b * v->in_dim)) != MP_OK)
        return st;
    if (record && dst != w->k && (st = add_event(w, MP_TEV_SEND_GRAD, dst, v->s, i, sa - t0, mp_now_ms() - t0)) != MP_OK) return st;
    return MP_OK;
}

/* The end of a backward (fused or BI) of micro-batch i that began at a, its
 * recompute (if any) ending at mid: waits for the device, counts the busy
 * time and the peak, records the recompute and backward events, frees the
 * stash when free_stash and the last stage's loss gradient, and sends the
 * input gradient on. */
static mp_status bwd_end(mp_train_worker *w, mp_train_stage *v, int i, int record, double t0, double a, double mid,
                         double *busy, int free_stash)
{
    mp_status st;
    if ((st = w->be->i->sync(w->be, &w->err)) != MP_OK) return st;
    double e = mp_now_ms();
    *busy += e - a;
    note_peak(w);
    if (record && v->recompute && (st = add_event(w, MP_TEV_RECOMPUTE, -1, v->s, i, a - t0, mid - t0)) != MP_OK) return st;
    if (record && (st = add_event(w, MP_TEV_BWD, -1, v->s, i, mid - t0, e - t0)) != MP_OK) return st;
    if (free_stash) { mp_pool_put(&v->stash_pool, v->stash_slot[i]); v->stash_slot[i] = NULL; }
    if (v->is_last) { mp_pool_put(&v->dl_pool, v->dl_slot[i]); v->dl_slot[i] = NULL; }
    return send_grad(w, v, i, record, t0);
}

static mp_status op_backward(mp_train_worker *w, mp_train_stage *v, int i, int record, double t0, double *busy)
{
    mp_train_run *r = w->r;
    mp_backend *be = w->be;
    mp_status st;
    const float *dy = NULL;
    if ((st = bwd_begin(w, v, i, &dy)) != MP_OK) return st;
    double a = mp_now_ms(), mid = a;
    float *stash = v->stash_slot[i];
    if (v->recompute) {
        if ((st = mp_stage_forward(&v->net, r->b, v->in_slot[i], NULL, v->stash_shared, &w->err)) != MP_OK) return st;
        if ((st = be->i->sync(be, &w->err)) != MP_OK) return st;
        mid = mp_now_ms();
        stash = v->stash_shared;
        mp_pool_put(&v->in_pool, v->in_slot[i]);
        v->in_slot[i] = NULL;
    }
    if ((st = mp_stage_backward(&v->net, r->b, dy, v->is_first ? NULL : v->dx, stash, &w->err)) != MP_OK) return st;
    return bwd_end(w, v, i, record, t0, a, mid, busy, !v->recompute);
}

/* Zero-bubble BI: the input gradient of micro-batch i (after its recompute),
 * filling its W-stash; the stash (also a recomputed one) and, with
 * recompute, the input stay until its W. */
static mp_status op_backward_input(mp_train_worker *w, mp_train_stage *v, int i, int record, double t0, double *busy)
{
    mp_train_run *r = w->r;
    mp_backend *be = w->be;
    mp_status st;
    const float *dy = NULL;
    if ((st = bwd_begin(w, v, i, &dy)) != MP_OK) return st;
    double a = mp_now_ms(), mid = a;
    if (v->recompute) {
        float *stash = mp_pool_get(&v->stash_pool, be);
        if (!stash) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for a stash (micro-batch %d)", v->s, i);
        v->stash_slot[i] = stash;
        if ((st = mp_stage_forward(&v->net, r->b, v->in_slot[i], NULL, stash, &w->err)) != MP_OK) return st;
        if ((st = be->i->sync(be, &w->err)) != MP_OK) return st;
        mid = mp_now_ms();
    }
    float *wst = mp_pool_get(&v->wstash_pool, be);
    if (!wst) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for a W-stash (micro-batch %d)", v->s, i);
    v->wstash_slot[i] = wst;
    if ((st = mp_stage_backward_input(&v->net, r->b, dy, v->is_first ? NULL : v->dx, v->stash_slot[i], wst, &w->err)) != MP_OK)
        return st;
    return bwd_end(w, v, i, record, t0, a, mid, busy, 0);
}

/* Zero-bubble W: the weight gradients of micro-batch i (in index order, so
 * they accumulate as the fused backward's do); frees its buffers. */
static mp_status op_backward_weight(mp_train_worker *w, mp_train_stage *v, int i, int record, double t0, double *busy)
{
    mp_train_run *r = w->r;
    mp_backend *be = w->be;
    mp_status st;
    if (i != v->next_w || !v->wstash_slot[i])
        return mp_error_set(&w->err, MP_ERR_INTERNAL, "stage %d: weight gradient of micro-batch %d before %d or its input gradient",
                            v->s, i, v->next_w);
    v->next_w++;
    double a = mp_now_ms();
    if ((st = mp_stage_backward_weight(&v->net, r->b, v->stash_slot[i], v->wstash_slot[i], &w->err)) != MP_OK) return st;
    if ((st = be->i->sync(be, &w->err)) != MP_OK) return st;
    double e = mp_now_ms();
    *busy += e - a;
    note_peak(w);
    if (record && (st = add_event(w, MP_TEV_WGRAD, -1, v->s, i, a - t0, e - t0)) != MP_OK) return st;
    mp_pool_put(&v->stash_pool, v->stash_slot[i]);
    v->stash_slot[i] = NULL;
    mp_pool_put(&v->wstash_pool, v->wstash_slot[i]);
    v->wstash_slot[i] = NULL;
    if (v->recompute) { mp_pool_put(&v->in_pool, v->in_slot[i]); v->in_slot[i] = NULL; }
    return MP_OK;
}

/* ---------------------------------------------------------------- a position */

static mp_status prepare_data(mp_train_worker *w, long long step)
{
    mp_train_run *r = w->r;
    long long base = step * r->plan->global_batch;   /* replica q takes micro-batches q*m .. q*m+m-1 */
    for (int k = 0; k < w->nst; k++) {
        mp_train_stage *v = &w->st[k];
        for (int i = 0; i < r->m; i++) {
            long long first = base + ((long long)w->replica * r->m + i) * r->b;
            if (v->is_first) mp_data_inputs(&r->data, first, r->b, w->xdata + (size_t)i * r->b * v->in_dim);
            if (v->is_last)
                mp_data_targets(&r->data, first, r->b, w->ydata ? w->ydata + (size_t)i * r->b * v->out_dim : NULL,
                                w->ldata ? w->ldata + (size_t)i * r->b * (size_t)mp_model_labels_per_sample(r->model) : NULL);
        }
    }
    return MP_OK;
}

/* The position's stages, data and measurement arrays on its open backend;
 * the fit check; the restored checkpoint with --resume. */
static mp_status worker_setup(mp_train_worker *w, const mp_pipeline_pos *pos)
{
    mp_train_run *r = w->r;
    const mp_run_config *c = r->c;
    mp_status st;
    w->be = pos->be;
    w->host_mem = pos->host_mem;
    w->nst = r->S / r->K;
    w->st = calloc((size_t)w->nst, sizeof *w->st);
    if (!w->st) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->k);
    size_t widest = 1;
    for (int k = 0; k < w->nst; k++) {
        if ((st = stage_setup(w, &w->st[k], mp_train_stage_at(r, w->k, k))) != MP_OK) return st;
        mp_train_stage *v = &w->st[k];
        size_t b = (size_t)r->b;
        if (b * v->in_dim > widest) widest = b * v->in_dim;
        if (b * v->out_dim > widest) widest = b * v->out_dim;
        if (v->is_first && !(w->xdata = malloc((size_t)r->m * b * v->in_dim * sizeof(float))))
            return mp_error_set(&w->err, MP_ERR_NOMEM, "stage 0: out of memory for the data");
        if (v->is_last) {
            if (r->model->loss == MP_LOSS_MSE) w->ydata = malloc((size_t)r->m * b * v->out_dim * sizeof(float));
            else w->ldata = malloc((size_t)r->m * b * (size_t)mp_model_labels_per_sample(r->model) * sizeof(int));
            if (!w->ydata && !w->ldata) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for targets", v->s);
        }
    }
    if (!w->host_mem && !(w->stage_buf = malloc(widest * sizeof(float))))
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->k);
    if (r->D > 1) {   /* the all-reduce buffer: the largest layer's parameters (train_allreduce.c) */
        for (int k = 0; k < w->nst; k++)
            for (int i = 0; i < w->st[k].net.count; i++)
                if (w->st[k].net.layers[i].nparams > w->ar_len) w->ar_len = w->st[k].net.layers[i].nparams;
        size_t bytes = (w->ar_len ? w->ar_len : 1) * sizeof(float);
        w->ar_buf = w->be->i->alloc(w->be, bytes);
        if (!w->ar_buf || (!w->host_mem && !(w->ar_host = malloc(bytes))))
            return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for the all-reduce buffer", w->k);
    }
    size_t n = (size_t)r->nsteps ? (size_t)r->nsteps : 1;
    w->end_ms = calloc(n, sizeof(double));
    w->busy_ms = calloc(n, sizeof(double));
    w->step_ms = calloc(n, sizeof(double));
    w->loss = calloc(n, sizeof(double));
    w->ar_ms = calloc(n, sizeof(double));
    if (!w->end_ms || !w->busy_ms || !w->step_ms || !w->loss || !w->ar_ms)
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->k);
    w->trace.num_positions = r->K;
    note_peak(w);
    if ((st = check_fit(w)) != MP_OK) return st;
    if (c->resume && r->first_step > 0 && (st = mp_train_checkpoint(w, r->first_step, 0)) != MP_OK) return st;
    return MP_OK;
}

static mp_status worker_step(mp_train_worker *w, long long step, int idx)
{
    mp_train_run *r = w->r;
    const mp_run_config *c = r->c;
    mp_status st;
    int record = step == (long long)c->steps - 1;
    if ((st = prepare_data(w, step)) != MP_OK) return st;
    if ((st = mp_pipeline_barrier(r->pl, w->p, &w->err)) != MP_OK) return st;
    double t0 = mp_now_ms(), busy = 0, end;
    for (int k = 0; k < w->nst; k++) w->st[k].next_bwd = w->st[k].next_w = 0;
    for (int k = 0; k < r->ops.len[w->k]; k++) {
        const mp_op *o = &r->ops.ops[w->k][k];
        mp_train_stage *v = &w->st[o->stage / r->K];   /* the k-th stage of the position (k + jK; k, 2K-1-k) */
        switch (o->kind) {
        case MP_OP_FWD: st = op_forward(w, v, o->microbatch, record, t0, &busy); break;
        case MP_OP_BWD: st = op_backward(w, v, o->microbatch, record, t0, &busy); break;
        case MP_OP_BWD_IN: st = op_backward_input(w, v, o->microbatch, record, t0, &busy); break;
        default: st = op_backward_weight(w, v, o->microbatch, record, t0, &busy); break;
        }
        if (st != MP_OK) return st;
    }
    for (int k = 0; k < w->nst; k++)
        if (w->st[k].is_last) {
            double sum = 0;
            for (int i = 0; i < r->m; i++) sum += (double)w->st[k].loss_mb[i];
            w->loss[idx] = sum;
        }
    /* D > 1: the gradients summed over the replicas (and the loss to replica 0) */
    if ((st = mp_train_allreduce(w, idx, record, t0)) != MP_OK) return st;
    end = mp_now_ms() - t0;   /* the last op (and its send) and the all-reduce have ended */
    if ((st = r->t->i->flush(r->t, w->p, c->timeout_s, &w->err)) != MP_OK) return st;
    mp_optim opt = { c->optimizer == MP_OPT_ADAM ? MP_OPTIM_ADAM : MP_OPTIM_SGD, c->lr, 0.9f, 0.999f, 1e-8f, (int)step + 1 };
    for (int k = 0; k < w->nst; k++) {
        if ((st = mp_stage_update(&w->st[k].net, &opt, &w->err)) != MP_OK) return st;
        mp_stage_zero_grad(&w->st[k].net);
    }
    if ((st = w->be->i->sync(w->be, &w->err)) != MP_OK) return st;
    note_peak(w);
    w->end_ms[idx] = end;
    w->busy_ms[idx] = busy;
    w->step_ms[idx] = mp_now_ms() - t0;
    for (int k = 0; k < w->nst; k++)
        if (w->st[k].is_last && w->replica == 0 && c->print_loss) {
            printf("step %lld loss %.6f\n", step + 1, w->loss[idx]);
            fflush(stdout);
        }
    long long done = step + 1;
    if (c->checkpoint_dir && c->checkpoint_every > 0 && (done % c->checkpoint_every == 0 || done == c->steps)) {
        /* replica 0 writes: every replica holds the same weights (checked at the end) */
        if (w->replica == 0 && (st = mp_train_checkpoint(w, done, 1)) != MP_OK) return st;
        if ((st = mp_pipeline_barrier(r->pl, w->p, &w->err)) != MP_OK) return st;
        if (w->p == 0 && (st = mp_checkpoint_commit(c->checkpoint_dir, done, r->S, &w->err)) != MP_OK) return st;
    }
    return MP_OK;
}

mp_status mp_train_position(void *run, mp_pipeline_pos *pos, mp_error *err)
{
    mp_train_run *r = run;
    mp_train_worker *w = &r->w[pos->p];
    mp_status st = worker_setup(w, pos);
    if (st == MP_OK) st = mp_pipeline_barrier(r->pl, w->p, &w->err);
    for (int k = 0; k < r->nsteps && st == MP_OK; k++) st = worker_step(w, r->first_step + k, k);
    if (st != MP_OK) mp_error_set(err, st, "%s", w->err.msg);
    return st;
}

void mp_train_release(void *run, mp_pipeline_pos *pos)
{
    mp_train_run *r = run;
    mp_train_worker *w = &r->w[pos->p];
    for (int k = 0; w->st && k < w->nst; k++) stage_free(w, &w->st[k]);
    for (int k = 0; w->be && k < w->nlocal; k++) w->be->i->free(w->be, w->local[k].buf);   /* left by a failure */
    w->nlocal = 0;
    if (w->be) w->be->i->free(w->be, w->ar_buf);
    w->ar_buf = NULL;
    free(w->st);
    w->st = NULL;
    w->nst = 0;
    w->be = NULL;
}

void mp_train_worker_free(mp_train_worker *w)
{
    free(w->stage_buf);
    free(w->xdata);
    free(w->ydata);
    free(w->ldata);
    free(w->end_ms);
    free(w->busy_ms);
    free(w->step_ms);
    free(w->loss);
    free(w->ar_ms);
    free(w->ar_host);
    mp_trace_free(&w->trace);
    free(w->local);
    memset(w, 0, sizeof *w);
}
