/* profile_merge.c — the per-point median of several profiles of one model
 * (mpprof --merge), to smooth out a machine whose speed drifts between
 * profiling runs.
 * defines: mp_profile_merge, mp_profile_same_model */
#include "profile.h"
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Checks that time function f (from profile `name`) has the shape of ref. */
static mp_status same_shape(const mp_time_fn *ref, const mp_time_fn *f, const char *name,
                            const char *layer, const char *dir, mp_error *err)
{
    if (f->kind != ref->kind)
        return mp_error_set(err, MP_ERR_INPUT, "%s: layer %s: %s_ms is of another form than in the first profile "
                            "(table vs number vs alpha/beta)", name, layer, dir);
    if (f->kind != MP_TIME_TABLE) return MP_OK;
    if (f->n != ref->n)
        return mp_error_set(err, MP_ERR_INPUT, "%s: layer %s: %s_ms has %d batch sizes, the first profile %d",
                            name, layer, dir, f->n, ref->n);
    for (int k = 0; k < f->n; k++)
        if (f->batch[k] != ref->batch[k])
            return mp_error_set(err, MP_ERR_INPUT, "%s: layer %s: %s_ms batch sizes differ from the first profile's "
                                "(%g vs %g)", name, layer, dir, f->batch[k], ref->batch[k]);
    return MP_OK;
}

/* out = the pointwise median of fn[0..n) (all the same shape). */
static mp_status merge_fn(const mp_time_fn *const *fn, int n, double *tmp, mp_time_fn *out, mp_error *err)
{
    *out = *fn[0];
    out->batch = out->ms = NULL;
    for (int i = 0; i < n; i++) tmp[i] = fn[i]->alpha;
    out->alpha = mp_median(tmp, n);
    for (int i = 0; i < n; i++) tmp[i] = fn[i]->beta;
    out->beta = mp_median(tmp, n);
    if (out->kind != MP_TIME_TABLE) return MP_OK;
    out->batch = malloc((size_t)out->n * sizeof *out->batch);
    out->ms = malloc((size_t)out->n * sizeof *out->ms);
    if (!out->batch || !out->ms) return mp_error_set(err, MP_ERR_NOMEM, "merging profiles: out of memory");
    memcpy(out->batch, fn[0]->batch, (size_t)out->n * sizeof *out->batch);
    for (int k = 0; k < out->n; k++) {
        for (int i = 0; i < n; i++) tmp[i] = fn[i]->ms[k];
        out->ms[k] = mp_median(tmp, n);
    }
    return MP_OK;
}

/* See profile.h. */
mp_status mp_profile_same_model(const mp_profile *p, const mp_profile *q, const char *name, mp_error *err)
{
    if (q->num_layers != p->num_layers)
        return mp_error_set(err, MP_ERR_INPUT, "%s: %d layers, the first profile has %d: not the same model",
                            name, q->num_layers, p->num_layers);
    if (q->input_bytes_per_sample != p->input_bytes_per_sample)
        return mp_error_set(err, MP_ERR_INPUT, "%s: input_bytes_per_sample differs from the first profile's", name);
    for (int l = 0; l < p->num_layers; l++) {
        const mp_layer_cost *a = &p->layers[l], *b = &q->layers[l];
        if (strcmp(a->name, b->name))
            return mp_error_set(err, MP_ERR_INPUT, "%s: layer %d is '%s', in the first profile '%s': not the same model",
                                name, l, b->name, a->name);
        if (a->param_bytes != b->param_bytes || a->out_bytes_per_sample != b->out_bytes_per_sample ||
            a->stash_bytes_per_sample != b->stash_bytes_per_sample)
            return mp_error_set(err, MP_ERR_INPUT, "%s: layer %s: its byte sizes differ from the first profile's: "
                                "not the same model", name, a->name);
        mp_status st = same_shape(&a->fwd, &b->fwd, name, a->name, "fwd", err);
        if (!st) st = same_shape(&a->bwd, &b->bwd, name, a->name, "bwd", err);
        if (!st && a->has_split && b->has_split) st = same_shape(&a->bwd_in, &b->bwd_in, name, a->name, "bwd_input", err);
        if (!st && a->has_split && b->has_split) st = same_shape(&a->bwd_w, &b->bwd_w, name, a->name, "bwd_weight", err);
        if (st) return st;
    }
    return MP_OK;
}

mp_status mp_profile_merge(const mp_profile *ps, const char *const *names, int n, mp_profile *out, mp_error *err)
{
    memset(out, 0, sizeof *out);
    if (n < 1) return mp_error_set(err, MP_ERR_INPUT, "merging profiles: no profile given");
    mp_status st = MP_OK;
    for (int i = 1; i < n && !st; i++) st = mp_profile_same_model(&ps[0], &ps[i], names[i], err);
    if (st) return st;
    double *tmp = malloc((size_t)n * sizeof *tmp);
    const mp_time_fn **fn = malloc((size_t)n * sizeof *fn);
    out->num_layers = ps[0].num_layers;
    out->layers = calloc((size_t)out->num_layers, sizeof *out->layers);
    out->model = dup_or_null(ps[0].model);
    out->device = dup_or_null(ps[0].device);
    out->input_bytes_per_sample = ps[0].input_bytes_per_sample;
    out->busy_cores = ps[0].busy_cores;
    for (int i = 1; i < n; i++)
        if (ps[i].busy_cores != out->busy_cores) out->busy_cores = 0;   /* regimes differ: unknown */
    if (!tmp || !fn || !out->layers || (ps[0].model && !out->model) || (ps[0].device && !out->device))
        st = mp_error_set(err, MP_ERR_NOMEM, "merging profiles: out of memory");
    for (int l = 0; l < out->num_layers && !st; l++) {
        const mp_layer_cost *a = &ps[0].layers[l];
        mp_layer_cost *o = &out->layers[l];
        o->param_bytes = a->param_bytes;
        o->out_bytes_per_sample = a->out_bytes_per_sample;
        o->stash_bytes_per_sample = a->stash_bytes_per_sample;
        if (!(o->name = dup_or_null(a->name))) st = mp_error_set(err, MP_ERR_NOMEM, "merging profiles: out of memory");
        for (int i = 0; i < n; i++) fn[i] = &ps[i].layers[l].fwd;
        if (!st) st = merge_fn(fn, n, tmp, &o->fwd, err);
        for (int i = 0; i < n; i++) fn[i] = &ps[i].layers[l].bwd;
        if (!st) st = merge_fn(fn, n, tmp, &o->bwd, err);
        int split = 1;   /* the split backward only when every profile has it */
        for (int i = 0; i < n; i++) split &= ps[i].layers[l].has_split;
        o->wstash_bytes_per_sample = a->wstash_bytes_per_sample;
        if (split) {
            for (int i = 0; i < n; i++) fn[i] = &ps[i].layers[l].bwd_in;
            if (!st) st = merge_fn(fn, n, tmp, &o->bwd_in, err);
            for (int i = 0; i < n; i++) fn[i] = &ps[i].layers[l].bwd_w;
            if (!st) st = merge_fn(fn, n, tmp, &o->bwd_w, err);
            o->has_split = !st;
        }
    }
    free(tmp);
    free(fn);
    if (st) mp_profile_free(out);
    return st;
}
