/* prof_layers.c — timing each layer's forward and backward at each micro-batch
 * size (mpprof --model), with GSL statistics and least-squares fits. */
#include "prof.h"
#include "clock.h"
#include "backend_impl.h"
#include "layers.h"

#include <gsl/gsl_fit.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

/* ---------------------------------------------------------------- statistics */

mp_fit mp_prof_fit(const double *x, const double *y, int n)
{
    mp_fit f = {0, 0, 1};
    if (n < 1) return f;
    if (n == 1) {
        f.beta = y[0] / x[0];
        return f;
    }
    double c0, c1, cov00, cov01, cov11, sumsq;
    gsl_fit_linear(x, 1, y, 1, (size_t)n, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    double sst = gsl_stats_variance(y, 1, (size_t)n) * (n - 1);
    f.alpha = c0;
    f.beta = c1;
    f.r2 = sst > 0 ? 1.0 - sumsq / sst : 1.0;
    return f;
}

/* n random values in [-0.5, 0.5), or (vocab > 0) token ids in [0, vocab). */
static void fill_random(mp_backend *be, float *dst, size_t n, unsigned seed, int vocab)
{
    float *h = malloc(n * sizeof *h);
    if (!h) return;
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double u = (double)(s >> 11) / 9007199254740992.0;
        h[i] = vocab > 0 ? (float)(int)(u * vocab) : (float)(u - 0.5);
    }
    be->i->upload(be, dst, h, n * sizeof *h);
    free(h);
}

/* ---------------------------------------------------------------- layers in rounds
 *
 * One profiling thread per core in s->threads (each with its own backend,
 * pinned), all timing the same model at once so that shared caches and memory
 * bandwidth are contended as in a pipeline that keeps every core busy. Layers
 * are taken in groups (as many consecutive layers as fit a memory budget);
 * a round runs, for each batch size, a training step through the group: the
 * forward of every layer in order, then the backward of every layer in
 * reverse order, each op timed. So between two ops of one layer the thread
 * touches the rest of the group, as a stage touches its other layers, and a
 * layer's weights are as cold as in the run (timing all batch sizes of one
 * layer back to back kept them in the core's cache and made the profile
 * 15-35% faster than the run). `repeat` rounds spread slow drift of the
 * machine's speed evenly over all points; each micro-batch uses the next of
 * `rotate` buffer sets (input, output, stash, gradients), as the pipeline's
 * micro-batches do. A sample repeats a short op until it lasts min_sample_ms. */

typedef struct { float *x, *y, *dx, *dy, *stash, *wst; } bufset;

typedef struct prof_ctx prof_ctx;

/* A barrier that a failing thread can break, so that nobody waits forever. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, count, gen, broken;
} pbar;

static int pbar_wait(pbar *b)   /* 1 when broken */
{
    pthread_mutex_lock(&b->mu);
    int gen = b->gen;
    if (!b->broken && ++b->count == b->n) {
        b->count = 0;
        b->gen++;
        pthread_cond_broadcast(&b->cv);
    } else
        while (!b->broken && gen == b->gen) pthread_cond_wait(&b->cv, &b->mu);
    int r = b->broken;
    pthread_mutex_unlock(&b->mu);
    return r;
}

static void pbar_break(pbar *b)
{
    pthread_mutex_lock(&b->mu);
    b->broken = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

typedef struct {
    prof_ctx *c;
    int t, core;
    pthread_t th;
    mp_backend *be;
    mp_status st;
    mp_error err;
} prof_thread;

struct prof_ctx {
    const mp_model *m;
    const mp_prof_settings *s;
    const char *backend;
    mp_backend *be0;            /* the caller's backend (used when threads == 1) */
    mp_prof_layer *out;
    double *fs, *bs;            /* samples [layer][batch][thread*repeat + r] */
    double *is, *ws;            /* the same for the split backward: input, weight gradient */
    int nsamp;                  /* threads * repeat */
    double budget;              /* bytes of layers + buffers per group and thread */
    pbar bar;
    mp_prof_progress cb;
    void *cb_ctx;
};

/* Bytes a layer takes on one thread: parameters and gradients, its
 * workspace, and `rotate` buffer sets (x, dx, y, dy, stash) at batch bmax. */
static double layer_need(const mp_model_layer *spec, int bmax, int rotate)
{
    double per = (double)bmax * (4.0 * (2.0 * spec->in_dim + 2.0 * spec->out_dim) +
                                 (double)mp_layer_spec_stash_bytes_per_sample(spec) +
                                 (double)mp_layer_spec_wstash_bytes_per_sample(spec));
    return 2.0 * 4 * (double)spec->param_count + (double)mp_layer_spec_workspace_bytes(spec, bmax) +
           per * (rotate > 0 ? rotate : 1);
}

static size_t idx(const prof_ctx *c, int layer, int k) { return ((size_t)layer * c->s->nb + k) * c->nsamp; }

/* One sample: the forward (fwd = 1), the fused backward (0), the input
 * gradient (2) or the weight gradient (3) of layer l at batch b, rp times
 * on buffer sets B[(*rot + j) % R]; *out = the mean ms per run. */
static mp_status time_op(prof_thread *pt, mp_layer *l, bufset *B, int R, const int *rot, int fwd, int b, int rp,
                         double *out)
{
    mp_backend *be = pt->be;
    mp_status st = MP_OK;
    double t0 = mp_now_ms();
    for (int j = 0; j < rp && !st; j++) {
        bufset *q = &B[(*rot + j) % R];
        if (fwd == 1) st = mp_layer_forward(l, be, b, q->x, q->y, q->stash, &pt->err);
        else if (fwd == 2) st = mp_layer_backward_input(l, be, b, q->dy, q->dx, q->stash, q->wst, &pt->err);
        else if (fwd == 3) st = mp_layer_backward_weight(l, be, b, q->stash, q->wst, &pt->err);
        else st = mp_layer_backward(l, be, b, q->dy, q->dx, q->stash, &pt->err);
    }
    if (!st) st = be->i->sync(be, &pt->err);
    *out = (mp_now_ms() - t0) / rp;
    return st;
}

/* Times layers [g0, g1) on this thread's backend; samples into c->fs/bs. */
static mp_status time_group(prof_thread *pt, int g0, int g1)
{
    prof_ctx *c = pt->c;
    const mp_prof_settings *s = c->s;
    mp_backend *be = pt->be;
    const mp_backend_i *I = be->i;
    int n = g1 - g0, nb = s->nb, bmax = s->batch[nb - 1], R = s->rotate > 0 ? s->rotate : 1;
    mp_layer *L = calloc((size_t)n, sizeof *L);
    bufset *B = calloc((size_t)n * R, sizeof *B);
    int *reps = calloc((size_t)n * nb, sizeof *reps);
    int *inited = calloc((size_t)n, sizeof *inited);
    mp_status st = MP_OK;
    mp_error *err = &pt->err;
    if (!L || !B || !reps || !inited) { st = mp_error_set(err, MP_ERR_NOMEM, "mpprof: out of memory"); goto out; }
    for (int i = 0; i < n && !st; i++) {
        const mp_model_layer *spec = &c->m->layers[g0 + i];
        size_t used0 = I->mem_used ? I->mem_used(be) : 0;
        mp_error e2 = {0};
        if (mp_layer_init(&L[i], be, spec, bmax, 1234, &e2) != MP_OK) {
            st = mp_error_set(err, MP_ERR_INPUT, "layer %s does not fit in %s memory at batch %d (%s)",
                              spec->name, I->name, bmax, e2.msg);
            break;
        }
        inited[i] = 1;
        size_t nx = (size_t)bmax * spec->in_dim, ny = (size_t)bmax * spec->out_dim;
        size_t sb = mp_layer_stash_bytes_per_sample(&L[i]) * (size_t)bmax;
        size_t wb = mp_layer_wstash_bytes_per_sample(&L[i]) * (size_t)bmax;
        for (int r = 0; r < R && !st; r++) {
            bufset *q = &B[i * R + r];
            q->x = I->alloc(be, nx * 4); q->dx = I->alloc(be, nx * 4);
            q->y = I->alloc(be, ny * 4); q->dy = I->alloc(be, ny * 4);
            q->stash = I->alloc(be, sb ? sb : 4);
            q->wst = I->alloc(be, wb ? wb : 4);
            if (!q->x || !q->dx || !q->y || !q->dy || !q->stash || !q->wst) {
                st = mp_error_set(err, MP_ERR_INPUT, "layer %s does not fit in %s memory at batch %d",
                                  spec->name, I->name, bmax);
                break;
            }
            fill_random(be, q->x, nx, 1 + 2 * (unsigned)r, spec->type == MP_LAYER_EMBEDDING ? spec->vocab : 0);
            fill_random(be, q->dy, ny, 2 + 2 * (unsigned)r, 0);
            if (r == 0 && pt->t == 0) {
                mp_prof_layer *o = &c->out[g0 + i];
                o->param_bytes = (double)mp_layer_param_bytes(&L[i]);
                o->out_bytes_per_sample = (double)mp_layer_out_bytes_per_sample(&L[i]);
                o->stash_bytes_per_sample = (double)mp_layer_stash_bytes_per_sample(&L[i]);
                o->workspace_bytes = (double)mp_layer_workspace_bytes(&L[i]);
                o->allocated_bytes = I->mem_used ? (double)(I->mem_used(be) - used0) : -1;
            }
        }
    }
    int rot = 0;
    /* warm-up of every pair; its last run decides the repetitions per sample */
    for (int i = 0; i < n && !st; i++)
        for (int k = 0; k < nb && !st; k++) {
            int b = s->batch[k];
            double t = 0;
            for (int w = 0; w < s->warmup + 1 && !st; w++) {
                bufset *q = &B[i * R + rot++ % R];
                double t0 = mp_now_ms();
                st = mp_layer_forward(&L[i], be, b, q->x, q->y, q->stash, err);
                if (!st) st = mp_layer_backward(&L[i], be, b, q->dy, q->dx, q->stash, err);
                if (!st) st = I->sync(be, err);
                t = mp_now_ms() - t0;
                if (!st) st = mp_layer_backward_input(&L[i], be, b, q->dy, q->dx, q->stash, q->wst, err);
                if (!st) st = mp_layer_backward_weight(&L[i], be, b, q->stash, q->wst, err);
                if (!st) st = I->sync(be, err);
            }
            int rp = 1;
            while (s->min_sample_ms > 0 && rp < 1000 && rp * t < 2 * s->min_sample_ms) rp++;   /* fwd+bwd ~ 2 ops */
            reps[i * nb + k] = rp;
            mp_layer_zero_grad(&L[i], be);
        }
    /* samples: rounds of training steps, or layer by layer (sequential) */
    if (s->sequential) {
        for (int pair = 0; pair < n * nb && !st; pair++)
            for (int r = 0; r < s->repeat && !st; r++) {
                int i = pair / nb, k = pair % nb;
                st = time_op(pt, &L[i], B + i * R, R, &rot, 1, s->batch[k], reps[pair], &c->fs[idx(c, g0 + i, k) + (size_t)pt->t * s->repeat + r]);
                if (!st) st = time_op(pt, &L[i], B + i * R, R, &rot, 0, s->batch[k], reps[pair], &c->bs[idx(c, g0 + i, k) + (size_t)pt->t * s->repeat + r]);
                if (!st) st = time_op(pt, &L[i], B + i * R, R, &rot, 2, s->batch[k], reps[pair], &c->is[idx(c, g0 + i, k) + (size_t)pt->t * s->repeat + r]);
                if (!st) st = time_op(pt, &L[i], B + i * R, R, &rot, 3, s->batch[k], reps[pair], &c->ws[idx(c, g0 + i, k) + (size_t)pt->t * s->repeat + r]);
                rot += reps[pair];
                mp_layer_zero_grad(&L[i], be);
            }
    }
    for (int r = 0; r < s->repeat && !s->sequential && !st; r++) {
        if (s->threads > 1 && pbar_wait(&c->bar)) break;   /* another thread failed */
        for (int k = 0; k < nb && !st; k++) {
            size_t at = (size_t)pt->t * s->repeat + (size_t)r;
            for (int i = 0; i < n && !st; i++)   /* forward through the group, as a stage does... */
                st = time_op(pt, &L[i], B + i * R, R, &rot, 1, s->batch[k], reps[i * nb + k], &c->fs[idx(c, g0 + i, k) + at]);
            for (int i = n - 1; i >= 0 && !st; i--)   /* ...and backward through it */
                st = time_op(pt, &L[i], B + i * R, R, &rot, 0, s->batch[k], reps[i * nb + k], &c->bs[idx(c, g0 + i, k) + at]);
            for (int i = n - 1; i >= 0 && !st; i--)   /* ...and the split backward: input gradients... */
                st = time_op(pt, &L[i], B + i * R, R, &rot, 2, s->batch[k], reps[i * nb + k], &c->is[idx(c, g0 + i, k) + at]);
            for (int i = n - 1; i >= 0 && !st; i--)   /* ...then weight gradients */
                st = time_op(pt, &L[i], B + i * R, R, &rot, 3, s->batch[k], reps[i * nb + k], &c->ws[idx(c, g0 + i, k) + at]);
            rot++;
        }
        for (int i = 0; i < n; i++) mp_layer_zero_grad(&L[i], be);   /* keep accumulated gradients bounded */
    }
out:
    for (int i = 0; B && i < n * R; i++) {
        I->free(be, B[i].x); I->free(be, B[i].dx); I->free(be, B[i].y);
        I->free(be, B[i].dy); I->free(be, B[i].stash); I->free(be, B[i].wst);
    }
    for (int i = 0; L && inited && i < n; i++) if (inited[i]) mp_layer_free(&L[i], be);
    free(L); free(B); free(reps); free(inited);
    return st;
}
static void *thread_main(void *arg)
{
    prof_thread *pt = arg;
    prof_ctx *c = pt->c;
    const mp_model *m = c->m;
    int bmax = c->s->batch[c->s->nb - 1], R = c->s->rotate > 0 ? c->s->rotate : 1;
    mp_status st = MP_OK;
    if (c->s->threads > 1) st = mp_backend_open(c->backend, pt->core, &pt->be, &pt->err);
    else pt->be = c->be0;
    for (int g0 = 0; g0 < m->num_layers && !st;) {
        double need = 0;
        int g1 = g0;
        while (g1 < m->num_layers && (g1 == g0 || need + layer_need(&m->layers[g1], bmax, R) <= c->budget))
            need += layer_need(&m->layers[g1++], bmax, R);
        if (c->s->threads > 1 && pbar_wait(&c->bar)) break;
        st = time_group(pt, g0, g1);
        if (!st && pt->t == 0 && c->cb)
            for (int i = g0; i < g1; i++) c->cb(i, m->num_layers, m->layers[i].name, c->cb_ctx);
        g0 = g1;
    }
    if (st) pbar_break(&c->bar);
    if (c->s->threads > 1) mp_backend_close(pt->be);
    pt->st = st;
    return NULL;
}

static void summarize(const double *v, int n, double *med, double *sd, double *mn)
{
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) return;
    memcpy(t, v, (size_t)n * sizeof *t);
    *sd = n > 1 ? gsl_stats_sd(t, 1, (size_t)n) : 0;
    gsl_sort(t, 1, (size_t)n);
    *med = gsl_stats_median_from_sorted_data(t, 1, (size_t)n);
    *mn = t[0];
    free(t);
}

mp_status mp_prof_layers(mp_backend *be, const mp_model *m, const mp_prof_settings *s,
                         double mem_limit, mp_prof_layer *out, mp_prof_progress cb,
                         void *cb_ctx, mp_error *err)
{
    memset(out, 0, (size_t)m->num_layers * sizeof *out);
    int T = s->threads > 1 ? s->threads : 1, bmax = s->batch[s->nb - 1];
    int R = s->rotate > 0 ? s->rotate : 1;
    for (int i = 0; i < m->num_layers; i++) {
        mp_prof_layer *o = &out[i];
        o->name = m->layers[i].name;
        double **arrs[] = {&o->fwd_ms, &o->bwd_ms, &o->fwd_sd, &o->bwd_sd, &o->fwd_min, &o->bwd_min,
                           &o->bwd_in_ms, &o->bwd_w_ms};
        for (size_t a = 0; a < sizeof arrs / sizeof arrs[0]; a++)
            if (!(*arrs[a] = calloc((size_t)s->nb, sizeof(double))))
                return mp_error_set(err, MP_ERR_NOMEM, "mpprof: out of memory");
        /* what the layer will need at the largest batch on every thread, before allocating it */
        double need = T * layer_need(&m->layers[i], bmax, R);
        if (mem_limit > 0 && need > mem_limit)
            return mp_error_set(err, MP_ERR_INPUT, "layer %s needs about %.3g GB at batch %d (%d profiling thread%s, "
                                "%d buffer sets), more than the %.3g GB of %s memory available", m->layers[i].name,
                                need / 1e9, bmax, T, T > 1 ? "s" : "", R, mem_limit / 1e9, be->i->name);
    }
    prof_ctx c = {.m = m, .s = s, .backend = mp_backend_name(be), .be0 = be, .out = out,
                  .nsamp = T * s->repeat, .cb = cb, .cb_ctx = cb_ctx};
    /* a group of layers on one thread: up to 1/4 of the memory per thread, at most 256 MB */
    c.budget = 256e6;
    if (mem_limit > 0 && mem_limit / (4.0 * T) < c.budget) c.budget = mem_limit / (4.0 * T);
    size_t ns = (size_t)m->num_layers * s->nb * c.nsamp;
    c.fs = malloc(ns * sizeof(double));
    c.bs = malloc(ns * sizeof(double));
    c.is = malloc(ns * sizeof(double));
    c.ws = malloc(ns * sizeof(double));
    prof_thread *pt = calloc((size_t)T, sizeof *pt);
    if (!c.fs || !c.bs || !c.is || !c.ws || !pt) {
        free(c.fs); free(c.bs); free(c.is); free(c.ws); free(pt);
        return mp_error_set(err, MP_ERR_NOMEM, "mpprof: out of memory");
    }
    pthread_mutex_init(&c.bar.mu, NULL);
    pthread_cond_init(&c.bar.cv, NULL);
    c.bar.n = T;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int first = s->first_core >= 0 ? s->first_core : 0;
    int started = 0;
    for (int t = 0; t < T; t++) {
        pt[t] = (prof_thread){.c = &c, .t = t, .core = (int)((first + t) % (ncpu > 0 ? ncpu : 1))};
        if (T == 1) { thread_main(&pt[t]); started++; continue; }
        if (pthread_create(&pt[t].th, NULL, thread_main, &pt[t]) != 0) {
            pt[t].st = mp_error_set(&pt[t].err, MP_ERR_BACKEND, "mpprof: cannot start profiling thread %d", t);
            pbar_break(&c.bar);
            break;
        }
        started++;
    }
    mp_status st = MP_OK;
    for (int t = 0; t < T; t++) {
        if (T > 1 && t < started) pthread_join(pt[t].th, NULL);
        if (pt[t].st && !st) { st = pt[t].st; *err = pt[t].err; }
    }
    pthread_mutex_destroy(&c.bar.mu);
    pthread_cond_destroy(&c.bar.cv);
    double *xb = malloc((size_t)s->nb * sizeof *xb);
    for (int i = 0; !st && i < m->num_layers; i++) {
        mp_prof_layer *o = &out[i];
        for (int k = 0; k < s->nb; k++) {
            summarize(c.fs + idx(&c, i, k), c.nsamp, &o->fwd_ms[k], &o->fwd_sd[k], &o->fwd_min[k]);
            summarize(c.bs + idx(&c, i, k), c.nsamp, &o->bwd_ms[k], &o->bwd_sd[k], &o->bwd_min[k]);
            double sd, mn;
            summarize(c.is + idx(&c, i, k), c.nsamp, &o->bwd_in_ms[k], &sd, &mn);
            summarize(c.ws + idx(&c, i, k), c.nsamp, &o->bwd_w_ms[k], &sd, &mn);
        }
        o->wstash_bytes_per_sample = (double)mp_layer_spec_wstash_bytes_per_sample(&m->layers[i]);
        if (xb) {
            for (int k = 0; k < s->nb; k++) xb[k] = s->batch[k];
            o->fwd = mp_prof_fit(xb, o->fwd_ms, s->nb);
            o->bwd = mp_prof_fit(xb, o->bwd_ms, s->nb);
        }
    }
    free(xb);
    free(c.fs); free(c.bs); free(c.is); free(c.ws); free(pt);
    return st;
}

void mp_prof_layers_free(mp_prof_layer *l, int n)
{
    for (int i = 0; l && i < n; i++) {
        free(l[i].fwd_ms); free(l[i].bwd_ms); free(l[i].fwd_sd);
        free(l[i].bwd_sd); free(l[i].fwd_min); free(l[i].bwd_min);
        free(l[i].bwd_in_ms); free(l[i].bwd_w_ms);
    }
}
