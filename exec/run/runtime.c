/* runtime.c — see runtime.h. One worker per pipeline position (a thread, or
 * this MPI rank) runs its op list from mp_schedule_build; activations and
 * gradients move through an mp_transport; every op is timed on the
 * monotonic clock.
 * defines: mp_run_config_default, mp_run_check, mp_run, mp_run_result_free */
#include "runtime.h"
#include "stats.h"
#include "clock.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_impl.h"
#include "checkpoint.h"
#include "data.h"
#include "layers.h"
#include "schedule.h"
#include "sha256.h"
#include "transport.h"
#ifdef MP_HAVE_CUDA
#include "gpu.h"
#endif

/* ---------------------------------------------------------------- helpers */

/* A free list of equal-sized backend buffers: stash and input slots are taken
 * at a forward and given back at the matching backward, so the backend's
 * allocated bytes peak at what the schedule keeps in flight. */
typedef struct {
    size_t bytes;
    void **items;
    int n, cap;
} pool;

static void *pool_get(pool *pl, mp_backend *be)
{
    if (pl->n) return pl->items[--pl->n];
    return be->i->alloc(be, pl->bytes ? pl->bytes : 1);
}

static int pool_put(pool *pl, void *p)
{
    if (!p) return 1;
    if (pl->n == pl->cap) {
        int nc = pl->cap ? 2 * pl->cap : 8;
        void **ni = realloc(pl->items, (size_t)nc * sizeof *ni);
        if (!ni) return 0;
        pl->items = ni;
        pl->cap = nc;
    }
    pl->items[pl->n++] = p;
    return 1;
}

static void pool_free(pool *pl, mp_backend *be)
{
    for (int i = 0; i < pl->n; i++) be->i->free(be, pl->items[i]);
    free(pl->items);
    memset(pl, 0, sizeof *pl);
}

/* ---------------------------------------------------------------- state */

typedef struct {
    int s, first, last, recompute, is_first, is_last;
    mp_stage_net net;
    int in_dim, out_dim;
    size_t nparams;
    pool in_pool, stash_pool, dl_pool;
    float **in_slot, **stash_slot, **dl_slot;   /* [m] */
    float *stash_shared, *out, *dy, *dx;
    void *target;                               /* last stage: b targets */
    float *loss_mb;                             /* [m] host, scaled by 1/global batch */
    int next_bwd;
} vstage;

typedef struct run run;

typedef struct {
    run *r;
    int p;
    pthread_t th;
    mp_backend *be;
    int nst;
    vstage *st;
    int host_mem;              /* backend memory is host memory (cpu) */
    float *stage_buf;          /* host staging for non-host backends */
    float *xdata;              /* first stage: [m][b*in] inputs of this step */
    float *ydata;              /* last stage mse: [m][b*out] */
    int *ldata;                /* last stage xent: [m][b] */
    double *end_ms, *busy_ms, *step_ms, *loss;  /* [nsteps] */
    double peak;
    mp_trace trace;
    mp_error err;
    mp_status status;
} worker;

struct run {
    const mp_run_config *c;
    const mp_plan *plan;
    const mp_model *model;
    mp_op_lists ops;
    int K, S, m, b;
    mp_transport *t;
    mp_data data;
    worker *w;                 /* [K] (MPI: only w[rank] is used) */
    long long first_step;
    int nsteps;
    int hang_position;         /* fault hook: this position never sends */
    pthread_mutex_t mu;
    mp_error first_err;
};

static int last_of(const run *r) { return r->S - 1; }

/* Records a worker's failure once, and brings the other positions down. */
static mp_status fail(worker *w, mp_status st)
{
    run *r = w->r;
    pthread_mutex_lock(&r->mu);
    int first = r->first_err.status == MP_OK;
    if (first) r->first_err = w->err;
    pthread_mutex_unlock(&r->mu);
    w->status = st;
    if (first) r->t->i->abort(r->t, w->p, w->err.msg);
    return st;
}

/* ---------------------------------------------------------------- config */

void mp_run_config_default(mp_run_config *c)
{
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->transport = "threads";
    c->pin = 1;
    c->steps = 10;
    c->seed = 1;
    c->optimizer = MP_OPT_SGD;
    c->lr = 0.05f;
    c->timeout_s = 30;
    c->warmup = 1;
    c->checkpoint_every = 1;
    c->print_loss = 1;
}

static int positions_of(const mp_plan *p)
{
    int v = p->schedule == MP_SCHED_INTERLEAVED ? p->chunks_per_device : 1;
    return v > 0 ? p->num_stages / v : p->num_stages;
}

/* The GPU map (config, else $MPKIT_GPUS): "G0,G1,..." sends plan device d
 * to GPU Gd; NULL or "": plan device d is GPU d. */
static const char *gpu_map_text(const mp_run_config *c)
{
    const char *m = c->gpu_map ? c->gpu_map : getenv("MPKIT_GPUS");
    return m && *m ? m : NULL;
}

/* The GPU of plan device `dev`: -1 when the map has no entry for it, -2
 * when the map is malformed. */
static int gpu_of(const mp_run_config *c, int dev)
{
    const char *m = gpu_map_text(c);
    if (!m) return dev;
    for (int d = 0;; d++) {
        char *end;
        long g = strtol(m, &end, 10);
        if (end == m || g < 0 || g > 1 << 20 || (*end && *end != ',')) return -2;
        if (d == dev) return (int)g;
        if (!*end) return -1;
        m = end + 1;
    }
}

/* --backend cuda: a usable GPU, and every position's device maps to one.
 * Positions may share a GPU (each gets its own stream and cuBLAS handle):
 * plans name distinct devices, and MPKIT_GPUS=0,0 runs two on GPU 0. */
static mp_status check_cuda_devices(const mp_run_config *c, int K, mp_error *err)
{
    if (strcmp(c->backend, "cuda")) return MP_OK;
#ifdef MP_HAVE_CUDA
    int n = 0;
    mp_error e;
    mp_error_clear(&e);
    if (mp_gpu_count(&n, &e) != MP_OK)
        return mp_error_set(err, MP_ERR_BACKEND, "--backend cuda: %s", e.msg);
    const char *map = gpu_map_text(c);
    for (int s = 0; s < K; s++) {
        int d = c->plan->stages[s].device, g = gpu_of(c, d);
        if (g == -2)
            return mp_error_set(err, MP_ERR_USAGE, "GPU map '%s': expected GPU indices separated by commas, e.g. 0,0", map);
        if (g == -1)
            return mp_error_set(err, MP_ERR_INPUT, "stage %d: device %d has no entry in the GPU map '%s'", s, d, map);
        if (g >= n) {
            if (map)
                return mp_error_set(err, MP_ERR_INPUT, "stage %d: device %d maps to GPU %d but only %d CUDA device%s "
                                    "(GPU map '%s')", s, d, g, n, n == 1 ? "" : "s", map);
            return mp_error_set(err, MP_ERR_INPUT, "stage %d: device %d but only %d CUDA device%s (MPKIT_GPUS=0,0,... "
                                "maps plan devices to GPUs, e.g. every stage on GPU 0)", s, d, n, n == 1 ? "" : "s");
        }
    }
    return MP_OK;
#else
    (void)K;
    return mp_error_set(err, MP_ERR_BACKEND, "--backend cuda: backend 'cuda' was not compiled into this build "
                        "(no CUDA toolkit found at build time)");
#endif
}

mp_status mp_run_check(const mp_run_config *c, mp_error *err)
{
    const mp_plan *p = c->plan;
    const mp_model *m = c->model;
    int ndev = c->num_devices > 0 ? c->num_devices : 1 << 20;
    mp_status st = mp_plan_check(p, m->num_layers, ndev, "plan", err);
    if (st != MP_OK) return st;
    if (!strcmp(c->backend, "cpu") && c->pin) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        for (int s = 0; s < p->num_stages; s++)
            if (p->stages[s].device >= ncpu)
                return mp_error_set(err, MP_ERR_INPUT, "plan: stages[%d].device: no core %d on this machine (it has %ld; "
                                    "--no-pin runs stages unpinned)", s, p->stages[s].device, ncpu);
    }
    if (p->mode != MP_MODE_TRAIN)
        return mp_error_set(err, MP_ERR_INPUT, "plan: a serving plan; mprun runs training plans");
    int K = positions_of(p);
    for (int s = 0; s < p->num_stages; s++) {
        if (p->stages[s].device != p->stages[s % K].device)
            return mp_error_set(err, MP_ERR_INPUT, "plan: stages[%d].device is %d but it runs on position %d with device %d",
                                s, p->stages[s].device, s % K, p->stages[s % K].device);
    }
    if ((st = check_cuda_devices(c, K, err)) != MP_OK) return st;
    if (c->steps < 1) return mp_error_set(err, MP_ERR_USAGE, "--steps must be >= 1");
    if (!(c->lr > 0) || !isfinite(c->lr)) return mp_error_set(err, MP_ERR_USAGE, "--lr must be a positive number");
    if (!(c->timeout_s > 0)) return mp_error_set(err, MP_ERR_USAGE, "--timeout must be positive");
    if (p->microbatch_size < 1 || p->num_microbatches < 1)
        return mp_error_set(err, MP_ERR_INPUT, "plan: micro-batch size and count must be positive");
    if ((long long)p->num_microbatches > (1 << 18) || p->num_stages > (1 << 9))
        return mp_error_set(err, MP_ERR_INPUT, "plan: too many micro-batches or stages for mprun's message tags");
    mp_op_lists ops;
    st = mp_schedule_build(p->schedule, K, p->chunks_per_device, p->num_microbatches, &ops, err);
    if (st != MP_OK) return st == MP_ERR_NOMEM ? st : MP_ERR_INPUT;
    /* backwards of each stage in micro-batch index order (see runtime.h) */
    int *next = calloc((size_t)ops.num_stages, sizeof *next);
    if (!next) { mp_op_lists_free(&ops); return mp_error_set(err, MP_ERR_NOMEM, "out of memory"); }
    for (int q = 0; q < K && st == MP_OK; q++)
        for (int k = 0; k < ops.len[q]; k++) {
            const mp_op *o = &ops.ops[q][k];
            if (o->kind != MP_OP_BWD) continue;
            if (o->microbatch != next[o->stage]++) {
                st = mp_error_set(err, MP_ERR_INTERNAL,
                                  "schedule %s: stage %d runs backward of micro-batch %d out of index order; "
                                  "mprun would not be deterministic", mp_schedule_name(p->schedule), o->stage, o->microbatch);
                break;
            }
        }
    free(next);
    mp_op_lists_free(&ops);
    return st;
}

/* ---------------------------------------------------------------- setup */

static mp_status stage_setup(worker *w, vstage *v, int s)
{
    run *r = w->r;
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
    v->in_slot = calloc((size_t)r->m, sizeof(float *));
    v->stash_slot = calloc((size_t)r->m, sizeof(float *));
    v->dl_slot = calloc((size_t)r->m, sizeof(float *));
    v->loss_mb = calloc((size_t)r->m, sizeof(float));
    v->out = be->i->alloc(be, v->dl_pool.bytes);
    v->dy = be->i->alloc(be, v->dl_pool.bytes);
    v->dx = be->i->alloc(be, v->in_pool.bytes);
    if (v->recompute) v->stash_shared = be->i->alloc(be, v->stash_pool.bytes ? v->stash_pool.bytes : 1);
    if (v->is_last)
        v->target = be->i->alloc(be, r->model->loss == MP_LOSS_MSE ? v->dl_pool.bytes : b * sizeof(int));
    if (!v->in_slot || !v->stash_slot || !v->dl_slot || !v->loss_mb || !v->out || !v->dy || !v->dx ||
        (v->recompute && !v->stash_shared) || (v->is_last && !v->target))
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of %s memory for its buffers", s, be->i->name);
    return MP_OK;
}

static void stage_free(worker *w, vstage *v)
{
    mp_backend *be = w->be;
    if (!be) return;
    for (int i = 0; v->in_slot && i < w->r->m; i++) {
        be->i->free(be, v->in_slot[i]);
        be->i->free(be, v->stash_slot[i]);
        be->i->free(be, v->dl_slot[i]);
    }
    pool_free(&v->in_pool, be);
    pool_free(&v->stash_pool, be);
    pool_free(&v->dl_pool, be);
    be->i->free(be, v->stash_shared);
    be->i->free(be, v->out);
    be->i->free(be, v->dy);
    be->i->free(be, v->dx);
    be->i->free(be, v->target);
    free(v->in_slot);
    free(v->stash_slot);
    free(v->dl_slot);
    free(v->loss_mb);
    mp_stage_free(&v->net);
}

/* Most micro-batches stage s holds between its forward and backward. */
static int max_inflight(const run *r, int p, int s)
{
    int cur = 0, best = 0;
    for (int k = 0; k < r->ops.len[p]; k++) {
        const mp_op *o = &r->ops.ops[p][k];
        if (o->stage != s) continue;
        cur += o->kind == MP_OP_FWD ? 1 : -1;
        if (cur > best) best = cur;
    }
    return best;
}

/* Before any work: what this position will allocate at its peak against the
 * device's memory (--cluster / --memory). */
static mp_status check_fit(worker *w)
{
    run *r = w->r;
    const mp_run_config *c = r->c;
    int dev = r->plan->stages[w->p].device;
    if (!c->device_memory || dev < 0 || dev >= c->num_devices) return MP_OK;
    double need = (double)w->be->i->mem_used(w->be);
    for (int k = 0; k < w->nst; k++) {
        vstage *v = &w->st[k];
        int inflight = max_inflight(r, w->p, v->s);
        if (c->optimizer == MP_OPT_ADAM) need += 2.0 * (double)v->nparams * sizeof(float);
        if (v->recompute) need += (double)inflight * (double)v->in_pool.bytes;
        else need += (double)inflight * (double)v->stash_pool.bytes;
        if (v->is_last) need += (double)inflight * (double)v->dl_pool.bytes;
    }
    double have = c->device_memory[dev];
    if (need > have)
        return mp_error_set(&w->err, MP_ERR_INPUT,
                            "stage %d does not fit on device %d: it needs %.0f bytes (parameters, optimizer state, "
                            "%d micro-batches in flight), the device has %.0f", w->p, dev, need,
                            max_inflight(r, w->p, w->p), have);
    return MP_OK;
}

/* ---------------------------------------------------------------- ops */

static void note_peak(worker *w)
{
    if (w->be->i->mem_used) {
        double u = (double)w->be->i->mem_used(w->be);
        if (u > w->peak) w->peak = u;
    }
}

static mp_status add_event(worker *w, int kind, int dst, int stage, int mb, double a, double b)
{
    mp_trace_event e = { kind, w->p, dst, stage, mb, a, b };
    if (mp_trace_add(&w->trace, e) != MP_OK)
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for the trace", w->p);
    return MP_OK;
}

/* Moves b*n floats of backend memory `src` to position dst. */
static mp_status send_floats(worker *w, int dst, int tag, const float *src, size_t n)
{
    run *r = w->r;
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

static mp_status recv_floats(worker *w, int src, int tag, float *dst, size_t n, const char *what, int stage,
                             int from_stage, int mb)
{
    run *r = w->r;
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

static mp_status op_forward(worker *w, vstage *v, int i, int record, double t0, double *busy)
{
    run *r = w->r;
    mp_backend *be = w->be;
    size_t b = (size_t)r->b;
    float *in = pool_get(&v->in_pool, be);
    if (!in) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for an input (micro-batch %d)", v->s, i);
    v->in_slot[i] = in;
    mp_status st;
    if (v->is_first)
        be->i->upload(be, in, w->xdata + (size_t)i * b * v->in_dim, v->in_pool.bytes);
    else if ((st = recv_floats(w, (v->s - 1) % r->K, MP_TAG(MP_TAG_ACT, v->s - 1, i), in, b * v->in_dim,
                               "activation", v->s, v->s - 1, i)) != MP_OK)
        return st;
    double a = mp_now_ms();
    float *stash = v->recompute ? v->stash_shared : pool_get(&v->stash_pool, be);
    if (!stash) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for a stash (micro-batch %d)", v->s, i);
    if (!v->recompute) v->stash_slot[i] = stash;
    if ((st = mp_stage_forward(&v->net, r->b, in, v->out, stash, &w->err)) != MP_OK) return st;
    if (v->is_last) {
        float *dl = pool_get(&v->dl_pool, be);
        if (!dl) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory (micro-batch %d)", v->s, i);
        v->dl_slot[i] = dl;
        if (r->model->loss == MP_LOSS_MSE)
            be->i->upload(be, v->target, w->ydata + (size_t)i * b * v->out_dim, v->dl_pool.bytes);
        else
            be->i->upload(be, v->target, w->ldata + (size_t)i * b, b * sizeof(int));
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
        pool_put(&v->in_pool, in);
        v->in_slot[i] = NULL;
    }
    if (!v->is_last) {
        int dst = (v->s + 1) % r->K;
        double sa = mp_now_ms();
        if ((st = send_floats(w, dst, MP_TAG(MP_TAG_ACT, v->s, i), v->out, b * v->out_dim)) != MP_OK) return st;
        if (record && (st = add_event(w, MP_TEV_SEND_ACT, dst, v->s, i, sa - t0, mp_now_ms() - t0)) != MP_OK) return st;
    }
    return MP_OK;
}

static mp_status op_backward(worker *w, vstage *v, int i, int record, double t0, double *busy)
{
    run *r = w->r;
    mp_backend *be = w->be;
    size_t b = (size_t)r->b;
    mp_status st;
    if (i != v->next_bwd)
        return mp_error_set(&w->err, MP_ERR_INTERNAL, "stage %d: backward of micro-batch %d before %d", v->s, i, v->next_bwd);
    v->next_bwd++;
    const float *dy = v->dl_slot[i];
    if (!v->is_last) {
        if ((st = recv_floats(w, (v->s + 1) % r->K, MP_TAG(MP_TAG_GRAD, v->s + 1, i), v->dy, b * v->out_dim,
                              "gradient", v->s, v->s + 1, i)) != MP_OK)
            return st;
        dy = v->dy;
    }
    double a = mp_now_ms(), mid = a;
    float *stash = v->stash_slot[i];
    if (v->recompute) {
        if ((st = mp_stage_forward(&v->net, r->b, v->in_slot[i], NULL, v->stash_shared, &w->err)) != MP_OK) return st;
        if ((st = be->i->sync(be, &w->err)) != MP_OK) return st;
        mid = mp_now_ms();
        stash = v->stash_shared;
        pool_put(&v->in_pool, v->in_slot[i]);
        v->in_slot[i] = NULL;
    }
    if ((st = mp_stage_backward(&v->net, r->b, dy, v->is_first ? NULL : v->dx, stash, &w->err)) != MP_OK) return st;
    if ((st = be->i->sync(be, &w->err)) != MP_OK) return st;
    double e = mp_now_ms();
    *busy += e - a;
    note_peak(w);
    if (record && v->recompute && (st = add_event(w, MP_TEV_RECOMPUTE, -1, v->s, i, a - t0, mid - t0)) != MP_OK) return st;
    if (record && (st = add_event(w, MP_TEV_BWD, -1, v->s, i, mid - t0, e - t0)) != MP_OK) return st;
    if (!v->recompute) { pool_put(&v->stash_pool, v->stash_slot[i]); v->stash_slot[i] = NULL; }
    if (v->is_last) { pool_put(&v->dl_pool, v->dl_slot[i]); v->dl_slot[i] = NULL; }
    if (!v->is_first) {
        int dst = (v->s - 1) % r->K;
        double sa = mp_now_ms();
        if ((st = send_floats(w, dst, MP_TAG(MP_TAG_GRAD, v->s, i), v->dx, b * v->in_dim)) != MP_OK) return st;
        if (record && (st = add_event(w, MP_TEV_SEND_GRAD, dst, v->s, i, sa - t0, mp_now_ms() - t0)) != MP_OK) return st;
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- checkpoints */

static mp_status pack_params(worker *w, vstage *v, float *wbuf, float *mbuf, float *vbuf)
{
    size_t off = 0;
    for (int i = 0; i < v->net.count; i++) {
        mp_layer *l = &v->net.layers[i];
        if (!l->nparams) continue;
        mp_layer_get_params(l, w->be, wbuf + off);
        if (mbuf && l->m) w->be->i->download(w->be, mbuf + off, l->m, l->nparams * sizeof(float));
        else if (mbuf) memset(mbuf + off, 0, l->nparams * sizeof(float));
        if (vbuf && l->v) w->be->i->download(w->be, vbuf + off, l->v, l->nparams * sizeof(float));
        else if (vbuf) memset(vbuf + off, 0, l->nparams * sizeof(float));
        off += l->nparams;
    }
    return w->be->i->sync(w->be, &w->err);
}

static mp_status unpack_params(worker *w, vstage *v, const float *wbuf, const float *mbuf, const float *vbuf)
{
    size_t off = 0;
    for (int i = 0; i < v->net.count; i++) {
        mp_layer *l = &v->net.layers[i];
        if (!l->nparams) continue;
        mp_layer_set_params(l, w->be, wbuf + off);
        if (mbuf) {
            size_t bytes = l->nparams * sizeof(float);
            if (!l->m) l->m = w->be->i->alloc(w->be, bytes);
            if (!l->v) l->v = w->be->i->alloc(w->be, bytes);
            if (!l->m || !l->v) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for Adam moments", v->s);
            w->be->i->upload(w->be, l->m, mbuf + off, bytes);
            w->be->i->upload(w->be, l->v, vbuf + off, bytes);
        }
        off += l->nparams;
    }
    return w->be->i->sync(w->be, &w->err);
}

/* Saves (save = 1) or restores every stage of this worker at `step`. */
static mp_status ckpt_stages(worker *w, long long step, int save)
{
    run *r = w->r;
    int adam = r->c->optimizer == MP_OPT_ADAM;
    mp_status st = MP_OK;
    for (int k = 0; k < w->nst && st == MP_OK; k++) {
        vstage *v = &w->st[k];
        size_t n = v->nparams;
        float *wb = malloc((n ? n : 1) * sizeof(float));
        float *mb = adam ? malloc((n ? n : 1) * sizeof(float)) : NULL;
        float *vb = adam ? malloc((n ? n : 1) * sizeof(float)) : NULL;
        if (!wb || (adam && (!mb || !vb))) st = mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", v->s);
        else if (save) {
            st = pack_params(w, v, wb, mb, vb);
            if (st == MP_OK)
                st = mp_checkpoint_write(r->c->checkpoint_dir, v->s, step, v->first, v->last, wb, mb, vb, n, &w->err);
        } else {
            st = mp_checkpoint_read(r->c->checkpoint_dir, v->s, step, v->first, v->last, wb, mb, vb, n, &w->err);
            if (st == MP_OK) st = unpack_params(w, v, wb, mb, vb);
        }
        free(wb);
        free(mb);
        free(vb);
    }
    return st;
}

/* ---------------------------------------------------------------- worker */

static mp_status prepare_data(worker *w, long long step)
{
    run *r = w->r;
    long long base = step * r->plan->global_batch;
    for (int k = 0; k < w->nst; k++) {
        vstage *v = &w->st[k];
        for (int i = 0; i < r->m; i++) {
            long long first = base + (long long)i * r->b;
            if (v->is_first) mp_data_inputs(&r->data, first, r->b, w->xdata + (size_t)i * r->b * v->in_dim);
            if (v->is_last)
                mp_data_targets(&r->data, first, r->b, w->ydata ? w->ydata + (size_t)i * r->b * v->out_dim : NULL,
                                w->ldata ? w->ldata + (size_t)i * r->b : NULL);
        }
    }
    return MP_OK;
}

static mp_status worker_setup(worker *w)
{
    run *r = w->r;
    const mp_run_config *c = r->c;
    mp_status st;
    int is_cpu = !strcmp(c->backend, "cpu");
    int dev = is_cpu ? r->plan->stages[w->p].device : gpu_of(c, r->plan->stages[w->p].device);
    if ((st = mp_backend_open(c->backend, is_cpu && !c->pin ? -1 : dev, &w->be, &w->err)) != MP_OK) {
        char m[1024];
        snprintf(m, sizeof m, "%s", w->err.msg);
        mp_error_clear(&w->err);
        return mp_error_set(&w->err, st, "stage %d (device %d): %s", w->p, dev, m);
    }
    w->host_mem = is_cpu;
    if (!is_cpu && r->t->i->bind && (st = r->t->i->bind(r->t, w->p, dev, c->timeout_s, &w->err)) != MP_OK)
        return st;
    w->nst = r->S / r->K;
    w->st = calloc((size_t)w->nst, sizeof *w->st);
    if (!w->st) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->p);
    size_t widest = 1;
    for (int k = 0; k < w->nst; k++) {
        if ((st = stage_setup(w, &w->st[k], w->p + k * r->K)) != MP_OK) return st;
        vstage *v = &w->st[k];
        size_t b = (size_t)r->b;
        if (b * v->in_dim > widest) widest = b * v->in_dim;
        if (b * v->out_dim > widest) widest = b * v->out_dim;
        if (v->is_first && !(w->xdata = malloc((size_t)r->m * b * v->in_dim * sizeof(float))))
            return mp_error_set(&w->err, MP_ERR_NOMEM, "stage 0: out of memory for the data");
        if (v->is_last) {
            if (r->model->loss == MP_LOSS_MSE) w->ydata = malloc((size_t)r->m * b * v->out_dim * sizeof(float));
            else w->ldata = malloc((size_t)r->m * b * sizeof(int));
            if (!w->ydata && !w->ldata) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for targets", v->s);
        }
    }
    if (!w->host_mem && !(w->stage_buf = malloc(widest * sizeof(float))))
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->p);
    size_t n = (size_t)r->nsteps ? (size_t)r->nsteps : 1;
    w->end_ms = calloc(n, sizeof(double));
    w->busy_ms = calloc(n, sizeof(double));
    w->step_ms = calloc(n, sizeof(double));
    w->loss = calloc(n, sizeof(double));
    if (!w->end_ms || !w->busy_ms || !w->step_ms || !w->loss)
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", w->p);
    w->trace.num_positions = r->K;
    note_peak(w);
    if ((st = check_fit(w)) != MP_OK) return st;
    if (c->resume && r->first_step > 0 && (st = ckpt_stages(w, r->first_step, 0)) != MP_OK) return st;
    return MP_OK;
}

static mp_status worker_step(worker *w, long long step, int idx)
{
    run *r = w->r;
    const mp_run_config *c = r->c;
    mp_status st;
    int record = step == (long long)c->steps - 1;
    if ((st = prepare_data(w, step)) != MP_OK) return st;
    int flag = 0;
    if ((st = r->t->i->agree(r->t, w->p, &flag, c->timeout_s, &w->err)) != MP_OK) return st;
    double t0 = mp_now_ms(), busy = 0, end;
    for (int k = 0; k < w->nst; k++) w->st[k].next_bwd = 0;
    for (int k = 0; k < r->ops.len[w->p]; k++) {
        const mp_op *o = &r->ops.ops[w->p][k];
        vstage *v = &w->st[o->stage / r->K];
        st = o->kind == MP_OP_FWD ? op_forward(w, v, o->microbatch, record, t0, &busy)
                                  : op_backward(w, v, o->microbatch, record, t0, &busy);
        if (st != MP_OK) return st;
    }
    end = mp_now_ms() - t0;   /* the last op (and its send) has ended */
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
        if (w->st[k].is_last) {
            double sum = 0;
            for (int i = 0; i < r->m; i++) sum += (double)w->st[k].loss_mb[i];
            w->loss[idx] = sum;
            if (c->print_loss) { printf("step %lld loss %.6f\n", step + 1, sum); fflush(stdout); }
        }
    long long done = step + 1;
    if (c->checkpoint_dir && c->checkpoint_every > 0 && (done % c->checkpoint_every == 0 || done == c->steps)) {
        if ((st = ckpt_stages(w, done, 1)) != MP_OK) return st;
        flag = 0;
        if ((st = r->t->i->agree(r->t, w->p, &flag, c->timeout_s, &w->err)) != MP_OK) return st;
        if (w->p == 0 && (st = mp_checkpoint_commit(c->checkpoint_dir, done, r->S, &w->err)) != MP_OK) return st;
    }
    return MP_OK;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->r;
    mp_status st = worker_setup(w);
    if (st != MP_OK) { fail(w, st); return NULL; }
    int flag = 0;
    if ((st = r->t->i->agree(r->t, w->p, &flag, r->c->timeout_s, &w->err)) != MP_OK) { fail(w, st); return NULL; }
    for (int k = 0; k < r->nsteps; k++)
        if ((st = worker_step(w, r->first_step + k, k)) != MP_OK) { fail(w, st); return NULL; }
    w->status = MP_OK;
    return NULL;
}

static void worker_free(worker *w)
{
    for (int k = 0; w->st && k < w->nst; k++) stage_free(w, &w->st[k]);
    free(w->st);
    free(w->stage_buf);
    free(w->xdata);
    free(w->ydata);
    free(w->ldata);
    free(w->end_ms);
    free(w->busy_ms);
    free(w->step_ms);
    free(w->loss);
    mp_trace_free(&w->trace);
    if (w->be) mp_backend_close(w->be);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- results */

/* Hashes stage s's parameters (layer order) into h. */
static mp_status hash_stage(worker *w, vstage *v, mp_sha256 *h)
{
    float *buf = malloc((v->nparams ? v->nparams : 1) * sizeof(float));
    if (!buf) return mp_error_set(&w->err, MP_ERR_NOMEM, "out of memory for the checksum");
    mp_status st = pack_params(w, v, buf, NULL, NULL);
    if (st == MP_OK) mp_sha256_update(h, buf, v->nparams * sizeof(float));
    free(buf);
    return st;
}

/* MPI: every rank ships its per-step arrays, peak, trace and parameters to
 * rank 0, which then holds them in r->w[p] (parameters hashed on arrival). */
static mp_status gather_mpi(run *r, worker *me, mp_sha256 *h, mp_error *err)
{
    mp_transport *t = r->t;
    double to = r->c->timeout_s;
    int n = r->nsteps, K = r->K;
    int tag = MP_TAG(MP_TAG_RESULT, 0, 0);
    mp_status st = MP_OK;
    if (me->p != 0) {
        double head[2] = { me->peak, (double)me->trace.n };
        if ((st = t->i->send(t, me->p, 0, tag, head, sizeof head, to, err)) != MP_OK) return st;
        double *arrs[4] = { me->end_ms, me->busy_ms, me->step_ms, me->loss };
        for (int a = 0; a < 4; a++)
            if ((st = t->i->send(t, me->p, 0, tag + 1 + a, arrs[a], (size_t)n * sizeof(double), to, err)) != MP_OK) return st;
        if (me->trace.n &&
            (st = t->i->send(t, me->p, 0, tag + 5, me->trace.ev, (size_t)me->trace.n * sizeof(mp_trace_event), to, err)) != MP_OK)
            return st;
        for (int k = 0; k < me->nst; k++) {
            vstage *v = &me->st[k];
            float *buf = malloc((v->nparams ? v->nparams : 1) * sizeof(float));
            if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
            st = pack_params(me, v, buf, NULL, NULL);
            if (st == MP_OK) st = t->i->send(t, me->p, 0, MP_TAG(MP_TAG_RESULT, v->s, 1), buf, v->nparams * sizeof(float), to, err);
            free(buf);
            if (st != MP_OK) return st;
        }
        return t->i->flush(t, me->p, to, err);
    }
    for (int p = 1; p < K; p++) {
        worker *w = &r->w[p];
        double head[2];
        if ((st = t->i->recv(t, 0, p, tag, head, sizeof head, to, err)) != MP_OK) return st;
        w->p = p;
        w->peak = head[0];
        w->end_ms = calloc((size_t)n, sizeof(double));
        w->busy_ms = calloc((size_t)n, sizeof(double));
        w->step_ms = calloc((size_t)n, sizeof(double));
        w->loss = calloc((size_t)n, sizeof(double));
        if (!w->end_ms || !w->busy_ms || !w->step_ms || !w->loss) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
        double *arrs[4] = { w->end_ms, w->busy_ms, w->step_ms, w->loss };
        for (int a = 0; a < 4; a++)
            if ((st = t->i->recv(t, 0, p, tag + 1 + a, arrs[a], (size_t)n * sizeof(double), to, err)) != MP_OK) return st;
        int ne = (int)head[1];
        for (int e = 0; e < ne && st == MP_OK; e++) { mp_trace_event z; memset(&z, 0, sizeof z); st = mp_trace_add(&w->trace, z); }
        if (ne && st == MP_OK)
            st = t->i->recv(t, 0, p, tag + 5, w->trace.ev, (size_t)ne * sizeof(mp_trace_event), to, err);
        if (st != MP_OK) return st;
    }
    /* parameters in stage order */
    for (int s = 0; s < r->S; s++) {
        int p = s % K;
        if (p == 0) {
            if ((st = hash_stage(me, &me->st[s / K], h)) != MP_OK) return mp_error_set(err, st, "%s", me->err.msg);
            continue;
        }
        const mp_stage *ps = &r->plan->stages[s];
        long long np = 0;
        for (int l = ps->first; l <= ps->last; l++) np += r->model->layers[l].param_count;
        float *buf = malloc((size_t)(np ? np : 1) * sizeof(float));
        if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
        st = t->i->recv(t, 0, p, MP_TAG(MP_TAG_RESULT, s, 1), buf, (size_t)np * sizeof(float), to, err);
        if (st == MP_OK) mp_sha256_update(h, buf, (size_t)np * sizeof(float));
        free(buf);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

static mp_status collect(run *r, mp_run_result *res, mp_error *err)
{
    int n = r->nsteps, K = r->K;
    mp_sha256 h;
    mp_sha256_init(&h);
    mp_status st = MP_OK;
    if (r->t->rank >= 0) {
        st = gather_mpi(r, &r->w[r->t->rank], &h, err);
        if (st != MP_OK || r->t->rank != 0) return st;
    } else {
        for (int s = 0; s < r->S && st == MP_OK; s++) {
            worker *w = &r->w[s % K];
            st = hash_stage(w, &w->st[s / K], &h);
            if (st != MP_OK) mp_error_set(err, st, "%s", w->err.msg);
        }
        if (st != MP_OK) return st;
    }
    res->is_root = 1;
    res->num_positions = K;
    res->first_step = r->first_step;
    res->steps = n;
    res->param_count = mp_model_param_count(r->model);
    res->loss = calloc((size_t)n + 1, sizeof(double));
    res->iter_ms = calloc((size_t)n + 1, sizeof(double));
    res->step_ms = calloc((size_t)n + 1, sizeof(double));
    res->busy_ms = calloc((size_t)K, sizeof(double));
    res->peak_bytes = calloc((size_t)K, sizeof(double));
    double *tmp = calloc((size_t)n + 1, sizeof(double));
    if (!res->loss || !res->iter_ms || !res->step_ms || !res->busy_ms || !res->peak_bytes || !tmp) {
        free(tmp);
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results");
    }
    int lastp = (r->S - 1) % K;
    for (int k = 0; k < n; k++) {
        res->loss[k] = r->w[lastp].loss[k];
        for (int p = 0; p < K; p++) {
            if (r->w[p].end_ms[k] > res->iter_ms[k]) res->iter_ms[k] = r->w[p].end_ms[k];
            if (r->w[p].step_ms[k] > res->step_ms[k]) res->step_ms[k] = r->w[p].step_ms[k];
        }
    }
    int warm = r->c->warmup < n ? r->c->warmup : n - 1;
    if (warm < 0) warm = 0;
    res->iteration_ms = mp_median_of(res->iter_ms + warm, n - warm);
    res->step_median_ms = mp_median_of(res->step_ms + warm, n - warm);
    res->samples_per_s = res->iteration_ms > 0 ? r->plan->global_batch / (res->iteration_ms / 1e3) : 0;
    for (int p = 0; p < K; p++) {
        res->busy_ms[p] = mp_median_of(r->w[p].busy_ms + warm, n - warm);
        res->peak_bytes[p] = r->w[p].peak;
        for (int e = 0; e < r->w[p].trace.n; e++)
            if ((st = mp_trace_add(&res->trace, r->w[p].trace.ev[e])) != MP_OK) break;
    }
    free(tmp);
    res->trace.num_positions = K;
    unsigned char dg[32];
    mp_sha256_final(&h, dg);
    mp_sha256_hex(dg, res->checksum);
    return st == MP_OK ? MP_OK : mp_error_set(err, st, "out of memory for the trace");
}

/* ---------------------------------------------------------------- transport choice */

/* The tags of the device messages of `kind` that position pos sends to
 * (sending) or receives from (!sending) position peer, in pos's op order;
 * writes them to out when non-NULL and returns how many. */
static int message_tags(const run *r, int pos, int peer, int kind, int sending, int *out)
{
    int n = 0;
    for (int k = 0; k < r->ops.len[pos]; k++) {
        const mp_op *o = &r->ops.ops[pos][k];
        int s = o->stage, i = o->microbatch, from = -1, to = -1, rtag = 0, stag = 0;
        if (o->kind == MP_OP_FWD && kind == MP_TAG_ACT) {
            if (s > 0) { from = (s - 1) % r->K; rtag = MP_TAG(MP_TAG_ACT, s - 1, i); }
            if (s < r->S - 1) { to = (s + 1) % r->K; stag = MP_TAG(MP_TAG_ACT, s, i); }
        } else if (o->kind == MP_OP_BWD && kind == MP_TAG_GRAD) {
            if (s < r->S - 1) { from = (s + 1) % r->K; rtag = MP_TAG(MP_TAG_GRAD, s + 1, i); }
            if (s > 0) { to = (s - 1) % r->K; stag = MP_TAG(MP_TAG_GRAD, s, i); }
        }
        if (!sending && from == peer) { if (out) out[n] = rtag; n++; }
        if (sending && to == peer) { if (out) out[n] = stag; n++; }
    }
    return n;
}

/* 1 when, for every ordered pair of positions and each kind, the receiver
 * posts its receives in the order the sender posts its sends (what a
 * tag-less transport such as NCCL needs). */
static int messages_in_order(const run *r)
{
    int ok = 1;
    for (int p = 0; p < r->K && ok; p++)
        for (int q = 0; q < r->K && ok; q++)
            for (int kind = MP_TAG_ACT; kind <= MP_TAG_GRAD && ok; kind++) {
                int ns = message_tags(r, p, q, kind, 1, NULL), nr = message_tags(r, q, p, kind, 0, NULL);
                if (ns != nr) { ok = 0; break; }
                if (!ns) continue;
                int *a = malloc((size_t)ns * sizeof *a), *b = malloc((size_t)nr * sizeof *b);
                if (!a || !b) ok = 0;
                else {
                    message_tags(r, p, q, kind, 1, a);
                    message_tags(r, q, p, kind, 0, b);
                    ok = !memcmp(a, b, (size_t)ns * sizeof *a);
                }
                free(a);
                free(b);
            }
    return ok;
}

/* The transport of this run: the configured one, except that --backend cuda
 * under MPI ("mpi") moves device buffers with NCCL ("nccl") when NCCL was
 * built in, there are at least two positions, they are on distinct GPUs
 * (NCCL allows one rank per GPU in a communicator), and every pair posts its
 * messages in the same order on both sides (NCCL has no tags). Otherwise MPI
 * with host staging. MPKIT_NCCL=0 in the environment keeps MPI. */
static const char *pick_transport(const run *r)
{
    const mp_run_config *c = r->c;
    if (strcmp(c->transport, "mpi") || strcmp(c->backend, "cuda") || !mp_transport_available("nccl") || r->K < 2)
        return c->transport;
    const char *env = getenv("MPKIT_NCCL");
    if (env && !strcmp(env, "0")) return c->transport;
    for (int p = 0; p < r->K; p++)
        for (int q = 0; q < p; q++)
            if (gpu_of(c, r->plan->stages[p].device) == gpu_of(c, r->plan->stages[q].device)) return c->transport;
    return messages_in_order(r) ? "nccl" : c->transport;
}

/* ---------------------------------------------------------------- run */

mp_status mp_run(const mp_run_config *c, mp_run_result *res, mp_error *err)
{
    memset(res, 0, sizeof *res);
    mp_status st = mp_run_check(c, err);
    if (st != MP_OK) return st;
    run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.plan = c->plan;
    r.model = c->model;
    r.K = positions_of(c->plan);
    r.S = c->plan->num_stages;
    r.m = c->plan->num_microbatches;
    r.b = c->plan->microbatch_size;
    r.hang_position = -1;
    if (c->fault && !strncmp(c->fault, "hang:", 5)) r.hang_position = atoi(c->fault + 5);
    pthread_mutex_init(&r.mu, NULL);
    if (c->resume) {
        int ns = 0;
        if (!c->checkpoint_dir) { st = mp_error_set(err, MP_ERR_USAGE, "--resume needs --checkpoint DIR"); goto out; }
        if ((st = mp_checkpoint_latest(c->checkpoint_dir, &r.first_step, &ns, err)) != MP_OK) goto out;
        if (ns != r.S) {
            st = mp_error_set(err, MP_ERR_INPUT, "%s: the checkpoint has %d stages, the plan %d", c->checkpoint_dir, ns, r.S);
            goto out;
        }
        if (r.first_step > c->steps) r.first_step = c->steps;
    }
    r.nsteps = (int)(c->steps - r.first_step);
    if ((st = mp_schedule_build(c->plan->schedule, r.K, c->plan->chunks_per_device, r.m, &r.ops, err)) != MP_OK) goto out;
    if ((st = mp_data_init(&r.data, c->model, c->seed, err)) != MP_OK) goto out;
    int cap = 4 * r.m * (r.S / r.K) + 16;
    const char *tname = pick_transport(&r);
    if ((st = mp_transport_open(tname, r.K, cap, &r.t, err)) != MP_OK) goto out;
    r.w = calloc((size_t)r.K, sizeof *r.w);
    if (!r.w) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto out; }
    for (int p = 0; p < r.K; p++) { r.w[p].r = &r; r.w[p].p = p; }
    if (r.t->rank >= 0) {
        worker_main(&r.w[r.t->rank]);
    } else {
        int started = 0;
        for (int p = 0; p < r.K; p++, started++)
            if (pthread_create(&r.w[p].th, NULL, worker_main, &r.w[p]) != 0) {
                mp_error_set(&r.w[p].err, MP_ERR_BACKEND, "stage %d: cannot start its thread", p);
                fail(&r.w[p], MP_ERR_BACKEND);
                break;
            }
        for (int p = 0; p < started; p++) pthread_join(r.w[p].th, NULL);
    }
    if (r.first_err.status != MP_OK) {
        st = mp_error_set(err, r.first_err.status, "%s", r.first_err.msg);
        goto out;
    }
    st = collect(&r, res, err);
    if (st == MP_OK) snprintf(res->transport, sizeof res->transport, "%s", tname);
out:
    if (r.w)
        for (int p = 0; p < r.K; p++) worker_free(&r.w[p]);
    free(r.w);
    mp_transport_close(r.t, st != MP_OK);
    mp_data_free(&r.data);
    mp_op_lists_free(&r.ops);
    pthread_mutex_destroy(&r.mu);
    return st;
}

void mp_run_result_free(mp_run_result *r)
{
    free(r->loss);
    free(r->iter_ms);
    free(r->step_ms);
    free(r->busy_ms);
    free(r->peak_bytes);
    mp_trace_free(&r->trace);
    memset(r, 0, sizeof *r);
}
