/* prof_layers.c — timing each layer's forward and backward at each micro-batch
 * size (mpprof --model), with GSL statistics and least-squares fits. */
#include "prof.h"
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

/* ---------------------------------------------------------------- machine */

const char *mp_machine_cpu_model(void)
{
    static char model[256];
    if (model[0]) return model;
    snprintf(model, sizeof model, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return model;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && c) {
            snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    }
    fclose(f);
    return model;
}

double mp_machine_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024.0;
}

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

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static void fill_random(mp_backend *be, float *dst, size_t n, unsigned seed)
{
    float *h = malloc(n * sizeof *h);
    if (!h) return;
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        h[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    be->i->upload(be, dst, h, n * sizeof *h);
    free(h);
}

/* ---------------------------------------------------------------- one layer */

static mp_status time_layer(mp_backend *be, const mp_model_layer *spec, const mp_prof_settings *s,
                            double mem_limit, mp_prof_layer *o, mp_error *err)
{
    const mp_backend_i *I = be->i;
    int bmax = s->batch[s->nb - 1];
    size_t used0 = I->mem_used ? I->mem_used(be) : 0;
    mp_layer l;
    /* what the layer will need at the largest batch, before allocating it */
    double need = 2.0 * 4 * (double)spec->param_count + 4.0 * bmax *
        (2.0 * spec->in_dim + 2.0 * spec->out_dim + 2 * spec->in_dim + 2 * spec->hidden + 2 + 2 * spec->hidden);
    if (mem_limit > 0 && need > mem_limit)
        return mp_error_set(err, MP_ERR_INPUT, "layer %s needs about %.3g GB at batch %d, more than the %.3g GB "
                            "of %s memory available", spec->name, need / 1e9, bmax, mem_limit / 1e9, I->name);
    mp_error e2 = {0};
    if (mp_layer_init(&l, be, spec, bmax, 1234, &e2) != MP_OK)
        return mp_error_set(err, MP_ERR_INPUT, "layer %s does not fit in %s memory at batch %d (%s)",
                            spec->name, I->name, bmax, e2.msg);
    size_t nx = (size_t)bmax * spec->in_dim, ny = (size_t)bmax * spec->out_dim;
    size_t sb = mp_layer_stash_bytes_per_sample(&l) * (size_t)bmax;
    float *x = I->alloc(be, nx * 4), *dx = I->alloc(be, nx * 4), *y = I->alloc(be, ny * 4),
          *dy = I->alloc(be, ny * 4), *stash = I->alloc(be, sb);
    mp_status st = MP_OK;
    double *ft = malloc((size_t)s->repeat * sizeof *ft), *bt = malloc((size_t)s->repeat * sizeof *bt);
    if (!x || !dx || !y || !dy || !stash || !ft || !bt) {
        st = mp_error_set(err, MP_ERR_INPUT, "layer %s does not fit in %s memory at batch %d", spec->name, I->name, bmax);
        goto out;
    }
    o->param_bytes = (double)mp_layer_param_bytes(&l);
    o->out_bytes_per_sample = (double)mp_layer_out_bytes_per_sample(&l);
    o->stash_bytes_per_sample = (double)mp_layer_stash_bytes_per_sample(&l);
    o->workspace_bytes = (double)mp_layer_workspace_bytes(&l);
    o->allocated_bytes = I->mem_used ? (double)(I->mem_used(be) - used0) : -1;
    fill_random(be, x, nx, 1);
    fill_random(be, dy, ny, 2);
    for (int k = 0; k < s->nb && st == MP_OK; k++) {
        int b = s->batch[k];
        for (int w = 0; w < s->warmup && st == MP_OK; w++) {
            st = mp_layer_forward(&l, be, b, x, y, stash, err);
            if (!st) st = mp_layer_backward(&l, be, b, dy, dx, stash, err);
            if (!st) st = I->sync(be, err);
        }
        for (int r = 0; r < s->repeat && st == MP_OK; r++) {
            double t0 = now_ms();
            st = mp_layer_forward(&l, be, b, x, y, stash, err);
            if (!st) st = I->sync(be, err);
            double t1 = now_ms();
            if (!st) st = mp_layer_backward(&l, be, b, dy, dx, stash, err);
            if (!st) st = I->sync(be, err);
            double t2 = now_ms();
            ft[r] = t1 - t0;
            bt[r] = t2 - t1;
        }
        mp_layer_zero_grad(&l, be);   /* keep accumulated gradients bounded */
        if (st) break;
        o->fwd_sd[k] = s->repeat > 1 ? gsl_stats_sd(ft, 1, (size_t)s->repeat) : 0;
        o->bwd_sd[k] = s->repeat > 1 ? gsl_stats_sd(bt, 1, (size_t)s->repeat) : 0;
        gsl_sort(ft, 1, (size_t)s->repeat);
        gsl_sort(bt, 1, (size_t)s->repeat);
        o->fwd_ms[k] = gsl_stats_median_from_sorted_data(ft, 1, (size_t)s->repeat);
        o->bwd_ms[k] = gsl_stats_median_from_sorted_data(bt, 1, (size_t)s->repeat);
        o->fwd_min[k] = ft[0];
        o->bwd_min[k] = bt[0];
    }
    if (st == MP_OK) {
        double *xb = malloc((size_t)s->nb * sizeof *xb);
        if (xb) {
            for (int k = 0; k < s->nb; k++) xb[k] = s->batch[k];
            o->fwd = mp_prof_fit(xb, o->fwd_ms, s->nb);
            o->bwd = mp_prof_fit(xb, o->bwd_ms, s->nb);
            free(xb);
        }
    }
out:
    free(ft);
    free(bt);
    I->free(be, x); I->free(be, dx); I->free(be, y); I->free(be, dy); I->free(be, stash);
    mp_layer_free(&l, be);
    return st;
}

/* ---------------------------------------------------------------- all layers */

mp_status mp_prof_layers(mp_backend *be, const mp_model *m, const mp_prof_settings *s,
                         double mem_limit, mp_prof_layer *out, mp_prof_progress cb,
                         void *cb_ctx, mp_error *err)
{
    memset(out, 0, (size_t)m->num_layers * sizeof *out);
    for (int i = 0; i < m->num_layers; i++) {
        mp_prof_layer *o = &out[i];
        o->name = m->layers[i].name;
        double **arrs[] = {&o->fwd_ms, &o->bwd_ms, &o->fwd_sd, &o->bwd_sd, &o->fwd_min, &o->bwd_min};
        for (size_t a = 0; a < sizeof arrs / sizeof arrs[0]; a++)
            if (!(*arrs[a] = calloc((size_t)s->nb, sizeof(double))))
                return mp_error_set(err, MP_ERR_NOMEM, "mpprof: out of memory");
    }
    /* every planning unit is timed on its own, even identical blocks */
    for (int i = 0; i < m->num_layers; i++) {
        mp_status st = time_layer(be, &m->layers[i], s, mem_limit, &out[i], err);
        if (st) return st;
        if (cb) cb(i, m->num_layers, m->layers[i].name, cb_ctx);
    }
    return MP_OK;
}

void mp_prof_layers_free(mp_prof_layer *l, int n)
{
    for (int i = 0; l && i < n; i++) {
        free(l[i].fwd_ms); free(l[i].bwd_ms); free(l[i].fwd_sd);
        free(l[i].bwd_sd); free(l[i].fwd_min); free(l[i].bwd_min);
    }
}
