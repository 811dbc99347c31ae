/* serve_run.c — the serving runtime, the serving mode of the pipeline runner
 * (pipeline.h): one forward-only worker per stage, threads of this process
 * connected by the threads transport, or under mpirun one rank per stage
 * connected by the MPI transport; the load generator is the runner's host
 * thread and stage 0's worker runs the batcher (serve_batcher.c); at the end
 * serve_gather.c brings the stages' parts of the result to rank 0.
 * defines: mp_serve_run_config_default, mp_serve_run,
 *          mp_serve_run_result_free */
#include "serve_impl.h"
#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_impl.h"
#include "serve_gather.h"

/* ---------------------------------------------------------------- stages */

static size_t msg_bytes(const mp_serve_rt *sv, int s)
{
    return sizeof(mp_serve_batch_hdr) + (size_t)sv->B * (size_t)sv->w[s].net.out_dim * sizeof(float);
}

/* The stage's layers and batch buffers on its open backend; stage 0 also
 * makes the request inputs (request i is sample i of the synthetic data). */
static mp_status stage_setup(mp_serve_worker *w, const mp_pipeline_pos *pos)
{
    mp_serve_rt *sv = w->sv;
    const mp_serve_run_config *c = sv->c;
    const mp_stage *ps = &c->plan->stages[w->s];
    mp_status st;
    w->be = pos->be;
    if (w->s == 0) {
        if (!(sv->x = malloc((size_t)c->n * sv->in_dim * sizeof(float))))
            return mp_error_set(&w->err, MP_ERR_NOMEM, "stage 0: out of memory for %d requests", c->n);
        if ((st = mp_data_init(&sv->data, c->model, c->seed, &w->err)) != MP_OK) return st;
        mp_data_inputs(&sv->data, 0, c->n, sv->x);
    }
    if ((st = mp_stage_init(&w->net, w->be, c->model, ps->first, ps->last, sv->B, c->seed, &w->err)) != MP_OK)
        return st;
    w->has_net = 1;
    w->in = w->be->i->alloc(w->be, (size_t)sv->B * w->net.in_dim * sizeof(float));
    w->out = w->be->i->alloc(w->be, (size_t)sv->B * w->net.out_dim * sizeof(float));
    w->stash = w->be->i->alloc(w->be, mp_stage_stash_bytes(&w->net, sv->B) + 16);
    w->msg = malloc(sizeof(mp_serve_batch_hdr) + (size_t)sv->B * (w->net.in_dim > w->net.out_dim ? w->net.in_dim : w->net.out_dim) * sizeof(float));
    if (!w->in || !w->out || !w->stash || !w->msg)
        return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for batch buffers", w->s);
    return MP_OK;
}

/* The driver's release: what stage_setup built on the backend. */
static void stage_release(void *mode, mp_pipeline_pos *pos)
{
    mp_serve_worker *w = &((mp_serve_rt *)mode)->w[pos->p];
    if (w->be) {
        if (w->in) w->be->i->free(w->be, w->in);
        if (w->out) w->be->i->free(w->be, w->out);
        if (w->stash) w->be->i->free(w->be, w->stash);
        if (w->has_net) mp_stage_free(&w->net);
    }
    free(w->msg);
    w->be = NULL;
    w->msg = NULL;
}

/* One batch on this stage: forward, then send on or record completions. */
static mp_status stage_batch(mp_serve_worker *w, mp_serve_batch_hdr h, const float *host_in)
{
    mp_serve_rt *sv = w->sv;
    mp_serve_run_result *r = sv->res;
    mp_backend *be = w->be;
    int K = sv->K;
    double a = mp_now_ms();
    be->i->upload(be, w->in, host_in, (size_t)h.b * w->net.in_dim * sizeof(float));
    double up = mp_now_ms() - a;
    mp_status st = mp_stage_forward(&w->net, h.b, w->in, w->out, w->stash, &w->err);
    if (st == MP_OK) st = be->i->sync(be, &w->err);
    if (st != MP_OK) return st;
    float *rows = (float *)(w->msg + sizeof(mp_serve_batch_hdr));
    size_t ob = (size_t)h.b * w->net.out_dim * sizeof(float);
    double d0 = mp_now_ms();
    be->i->download(be, rows, w->out, ob);
    double e = mp_now_ms();
    r->copy_ms[w->s] += up + (e - d0);
    r->fwd_start_ms[(size_t)h.id * K + w->s] = a - sv->t0;
    r->fwd_end_ms[(size_t)h.id * K + w->s] = e - sv->t0;
    r->busy_ms[w->s] += e - a;
    w->batches++;
    if (w->s == K - 1) {
        /* >= 0: -1 means unfinished (across machines t0 may be a little late) */
        double done = e - sv->t0 > 0 ? e - sv->t0 : 0;
        for (int k = 0; k < h.b; k++) r->done_ms[h.first + k] = done;
        if (r->outputs) memcpy(r->outputs + (size_t)h.first * sv->out_dim, rows, ob);
        return MP_OK;
    }
    memcpy(w->msg, &h, sizeof h);
    if (sv->mpi) sv->unsent = 1;
    return sv->t->i->send(sv->t, w->s, w->s + 1, MP_TAG(MP_TAG_ACT, w->s, 0), w->msg, msg_bytes(sv, w->s),
                          sv->c->timeout_s + sv->idle_s, &w->err);
}

static mp_status stage0_loop(mp_serve_worker *w)
{
    mp_serve_rt *sv = w->sv;
    mp_serve_run_result *r = sv->res;
    mp_status st = MP_OK;
    for (;;) {
        int first = 0, b = 0;
        double idle = mp_now_ms() - sv->t0;
        mp_serve_next_batch(sv, &first, &b);
        if (b == 0) break;
        mp_serve_batch_hdr h = { r->num_batches, b, first, 0 };
        r->idle_ms[h.id] = idle;
        r->take_ms[h.id] = mp_now_ms() - sv->t0;
        r->batch_size[h.id] = b;
        r->batch_first[h.id] = first;
        for (int k = 0; k < b; k++) r->batch_of[first + k] = h.id;
        r->num_batches++;
        if ((st = stage_batch(w, h, sv->x + (size_t)first * sv->in_dim)) != MP_OK) return st;
    }
    pthread_mutex_lock(&sv->mu);
    int failed = sv->failed;
    pthread_mutex_unlock(&sv->mu);
    if (failed || sv->K == 1) return MP_OK;
    mp_serve_batch_hdr end = { -1, 0, 0, 0 };
    memcpy(w->msg, &end, sizeof end);
    return sv->t->i->send(sv->t, 0, 1, MP_TAG(MP_TAG_ACT, 0, 0), w->msg, msg_bytes(sv, 0), sv->c->timeout_s, &w->err);
}

static mp_status stage_loop(mp_serve_worker *w)
{
    mp_serve_rt *sv = w->sv;
    int s = w->s;
    /* stage s-1's message: its output rows are this stage's input (under MPI
     * stage s-1 is on another rank: w[s-1] is not set up here) */
    size_t bytes = sizeof(mp_serve_batch_hdr) + (size_t)sv->B * (size_t)w->net.in_dim * sizeof(float);
    mp_status st;
    for (;;) {
        if ((st = sv->t->i->recv(sv->t, s, s - 1, MP_TAG(MP_TAG_ACT, s - 1, 0), w->msg, bytes,
                                 sv->c->timeout_s + sv->idle_s, &w->err)) != MP_OK)
            return st;
        mp_serve_batch_hdr h;
        memcpy(&h, w->msg, sizeof h);
        if (h.b == 0) break;
        float *rows = (float *)(w->msg + sizeof(mp_serve_batch_hdr));
        if ((st = stage_batch(w, h, rows)) != MP_OK) return st;
    }
    if (s < sv->K - 1) {
        mp_serve_batch_hdr end = { -1, 0, 0, 0 };
        memcpy(w->msg, &end, sizeof end);
        return sv->t->i->send(sv->t, s, s + 1, MP_TAG(MP_TAG_ACT, s, 0), w->msg, msg_bytes(sv, s), sv->c->timeout_s, &w->err);
    }
    return MP_OK;
}

/* The driver's position: a stage, set up, started with the clock, then its
 * loop until the end marker (stage 0: until the batcher has no more). */
static mp_status stage_main(void *mode, mp_pipeline_pos *pos, mp_error *err)
{
    mp_serve_rt *sv = mode;
    mp_serve_worker *w = &sv->w[pos->p];
    mp_serve_precise_timers();
    mp_serve_go_realtime(sv);
    mp_status st = stage_setup(w, pos);
    if (st == MP_OK) st = mp_serve_stage_clock(w);
    if (st == MP_OK) st = w->s == 0 ? stage0_loop(w) : stage_loop(w);
    if (st != MP_OK) mp_error_set(err, st, "%s", w->err.msg);
    return st;
}

/* The driver's gather (MPI): stage p's part of the result to rank 0. */
static mp_status gather(void *mode, mp_pipeline *pl, int p, mp_error *err)
{
    mp_serve_rt *sv = mode;
    return mp_serve_gather_part(pl, sv->res, p, sv->w[p].batches, sv->c->keep_outputs, err);
}

/* The driver's collect (threads; MPI rank 0, after gather): the queue at the
 * last arrival (requests not started on stage 0 by then) and the unfinished. */
static mp_status collect(void *mode, mp_pipeline *pl, mp_error *err)
{
    mp_serve_rt *sv = mode;
    mp_serve_run_result *res = sv->res;
    const mp_serve_run_config *c = sv->c;
    double last = c->arrival_ms[c->n - 1];
    res->is_root = 1;
    for (int i = 0; i < c->n; i++) {
        int j = res->batch_of[i];
        if (j < 0 || res->fwd_start_ms[(size_t)j * sv->K] > last) res->queued_at_end++;
        if (res->done_ms[i] < 0) res->unfinished++;
    }
    return MP_OK;
}

static const mp_pipeline_mode serve_mode = {
    .position = stage_main,
    .host = mp_serve_generator,
    .host_name = "the load generator",
    .on_fail = mp_serve_on_fail,
    .gather = gather,
    .collect = collect,
    .release = stage_release,
};

/* ---------------------------------------------------------------- run */

void mp_serve_run_config_default(mp_serve_run_config *c)
{
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->transport = "threads";
    c->pin = 1;
    c->seed = 1;
    c->timeout_s = 30;
    c->drain_s = 2;
}

/* The runner's view of config c: one position per stage, every wait of the
 * driver bounded as the waits between stages are (timeout + idle_s). */
static void pipeline_config(const mp_serve_run_config *c, double idle_s, mp_pipeline_config *pc)
{
    memset(pc, 0, sizeof *pc);
    pc->plan = c->plan;
    pc->num_positions = c->plan->num_stages;
    pc->backend = c->backend;
    pc->transport = c->transport ? c->transport : "threads";
    pc->pin = c->pin;
    pc->gpu_map = c->gpu_map;
    pc->num_devices = c->num_devices;
    pc->device_memory = c->device_memory;
    pc->timeout_s = c->timeout_s + idle_s;
    pc->mailbox_cap = 2;
}

/* Every stage against its device's memory: the serving bound of sim/serve.h
 * (mp_serve_stage_memory) on the model's float32 sizes, which are what the
 * stages hold (weights; batches of max_batch rows in and out). */
static mp_status check_fit(const mp_serve_run_config *c, const mp_pipeline_config *pc, mp_error *err)
{
    const mp_model *m = c->model;
    const mp_plan *p = c->plan;
    if (!c->device_memory) return MP_OK;
    mp_profile bytes;
    memset(&bytes, 0, sizeof bytes);
    bytes.input_bytes_per_sample = 4.0 * m->input_dim;
    bytes.num_layers = m->num_layers;
    if (!(bytes.layers = calloc((size_t)m->num_layers, sizeof *bytes.layers)))
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int l = 0; l < m->num_layers; l++) {
        bytes.layers[l].param_bytes = 4.0 * (double)m->layers[l].param_count;
        bytes.layers[l].out_bytes_per_sample = 4.0 * m->layers[l].out_dim;
    }
    char what[96];
    snprintf(what, sizeof what, "parameters, batches of %d requests in and out", p->max_batch);
    mp_status st = MP_OK;
    for (int s = 0; s < p->num_stages && st == MP_OK; s++) {
        double need = mp_serve_stage_memory(&bytes, p->stages[s].first, p->stages[s].last, p->max_batch);
        st = mp_pipeline_check_fit(pc, s, p->stages[s].device, need, what, err);
    }
    free(bytes.layers);
    return st;
}

static mp_status check(const mp_serve_run_config *c, mp_error *err)
{
    const mp_plan *p = c->plan;
    if (p->mode != MP_MODE_SERVE || p->max_batch < 1)
        return mp_error_set(err, MP_ERR_INPUT, "the plan is a training plan; --serve needs a serving plan "
                                               "(\"mode\": \"serve\", \"max_batch\"), e.g. from mpplan --serve -o");
    if (p->schedule == MP_SCHED_INTERLEAVED)
        return mp_error_set(err, MP_ERR_INPUT, "a serving plan has one stage per device (not interleaved)");
    if (p->stages[p->num_stages - 1].last != c->model->num_layers - 1)
        return mp_error_set(err, MP_ERR_INPUT, "the plan covers layers 0..%d but the model has %d layers",
                            p->stages[p->num_stages - 1].last, c->model->num_layers);
    if (c->n < 1) return mp_error_set(err, MP_ERR_INPUT, "no requests to serve");
    for (int i = 0; i < c->n; i++)
        if (!(c->arrival_ms[i] >= 0) || (i && c->arrival_ms[i] < c->arrival_ms[i - 1]))
            return mp_error_set(err, MP_ERR_INPUT, "arrival %d: times must be >= 0 and non-decreasing", i);
    mp_pipeline_config pc;
    pipeline_config(c, 0, &pc);
    mp_status st = mp_pipeline_check(&pc, err);
    return st == MP_OK ? check_fit(c, &pc, err) : st;
}

static mp_status alloc_result(mp_serve_run_result *r, const mp_serve_run_config *c, int K, int out_dim)
{
    size_t n = (size_t)c->n;
    memset(r, 0, sizeof *r);
    r->n = c->n;
    r->num_stages = K;
    r->max_batch = c->plan->max_batch;
    r->max_wait_ms = c->plan->max_wait_ms;
    r->out_dim = out_dim;
    r->arrival_ms = malloc(n * sizeof(double));
    r->release_ms = malloc(n * sizeof(double));
    r->done_ms = malloc(n * sizeof(double));
    r->batch_of = malloc(n * sizeof(int));
    r->batch_size = calloc(n, sizeof(int));
    r->batch_first = calloc(n, sizeof(int));
    r->fwd_start_ms = calloc(n * (size_t)K, sizeof(double));
    r->fwd_end_ms = calloc(n * (size_t)K, sizeof(double));
    r->busy_ms = calloc((size_t)K, sizeof(double));
    r->copy_ms = calloc((size_t)K, sizeof(double));
    r->idle_ms = calloc(n, sizeof(double));
    r->take_ms = calloc(n, sizeof(double));
    if (c->keep_outputs) r->outputs = calloc(n * (size_t)out_dim, sizeof(float));
    if (!r->arrival_ms || !r->release_ms || !r->done_ms || !r->batch_of || !r->batch_size || !r->batch_first ||
        !r->fwd_start_ms || !r->fwd_end_ms || !r->busy_ms || !r->copy_ms || !r->idle_ms || !r->take_ms ||
        (c->keep_outputs && !r->outputs))
        return MP_ERR_NOMEM;
    memcpy(r->arrival_ms, c->arrival_ms, n * sizeof(double));
    for (size_t i = 0; i < n; i++) { r->release_ms[i] = -1; r->done_ms[i] = -1; r->batch_of[i] = -1; }
    return MP_OK;
}

static int model_out_dim(const mp_model *m)
{
    return m->layers[m->num_layers - 1].out_dim;
}

mp_status mp_serve_run(const mp_serve_run_config *c, mp_serve_run_result *res, mp_error *err)
{
    mp_status st = check(c, err);
    if (st != MP_OK) return st;
    mp_serve_rt sv;
    memset(&sv, 0, sizeof sv);
    sv.c = c;
    sv.res = res;
    sv.K = c->plan->num_stages;
    sv.B = c->plan->max_batch;
    sv.W = c->plan->max_wait_ms;
    sv.in_dim = c->model->input_dim;
    sv.out_dim = model_out_dim(c->model);
    double gap = c->arrival_ms[0];
    for (int i = 1; i < c->n; i++)
        if (c->arrival_ms[i] - c->arrival_ms[i - 1] > gap) gap = c->arrival_ms[i] - c->arrival_ms[i - 1];
    sv.idle_s = c->timeout_s + (gap + sv.W) / 1e3;
    if (alloc_result(res, c, sv.K, sv.out_dim) != MP_OK) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    res->others_pct = -1;
    res->cpu_start = mp_machine_cpu_sample();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sv.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sv.mu, NULL);
    mp_pipeline_config pc;
    pipeline_config(c, sv.idle_s, &pc);
    if ((st = mp_pipeline_open(&pc, &sv.pl, err)) != MP_OK) goto out;
    sv.t = sv.pl->t;
    sv.mpi = sv.pl->rank >= 0;
    sv.w = calloc((size_t)sv.K, sizeof *sv.w);
    if (!sv.w) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto out; }
    for (int s = 0; s < sv.K; s++) {
        sv.w[s].sv = &sv;
        sv.w[s].s = s;
        mp_error_clear(&sv.w[s].err);
    }
    st = mp_pipeline_run(sv.pl, &serve_mode, &sv, err);
    if (st == MP_OK && res->is_root) {
        mp_cpu_sample now = mp_machine_cpu_sample();
        res->others_pct = mp_machine_others_pct(&res->cpu_start, &now, res->peer_ticks);
    }
out:
    free(sv.w);
    free(sv.x);
    mp_pipeline_close(sv.pl);
    mp_data_free(&sv.data);
    pthread_cond_destroy(&sv.cv);
    pthread_mutex_destroy(&sv.mu);
    return st;
}

void mp_serve_run_result_free(mp_serve_run_result *r)
{
    free(r->arrival_ms);
    free(r->release_ms);
    free(r->done_ms);
    free(r->batch_of);
    free(r->batch_size);
    free(r->batch_first);
    free(r->fwd_start_ms);
    free(r->fwd_end_ms);
    free(r->busy_ms);
    free(r->copy_ms);
    free(r->idle_ms);
    free(r->take_ms);
    free(r->outputs);
    memset(r, 0, sizeof *r);
}
