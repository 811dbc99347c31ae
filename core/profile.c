/* profile.c — load, validate, save and free per-layer profiles
 * ("format": "mpplan-profile/1", docs/formats.md). mp_time_eval lives in time_fn.c.
 * defines: mp_profile_load, mp_profile_parse, mp_profile_save, mp_profile_free */
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

#define PROFILE_FORMAT "mpplan-profile/1"

/* ---------------------------------------------------------------- freeing */

static void time_fn_free(mp_time_fn *f)
{
    free(f->batch);
    free(f->ms);
    memset(f, 0, sizeof *f);
}

int mp_profile_has_split(const mp_profile *p)
{
    for (int i = 0; i < p->num_layers; i++)
        if (!p->layers[i].has_split) return 0;
    return p->num_layers > 0;
}

void mp_profile_free(mp_profile *p)
{
    if (!p) return;
    for (int i = 0; i < p->num_layers && p->layers; i++) {
        free(p->layers[i].name);
        time_fn_free(&p->layers[i].fwd);
        time_fn_free(&p->layers[i].bwd);
        time_fn_free(&p->layers[i].bwd_in);
        time_fn_free(&p->layers[i].bwd_w);
    }
    free(p->layers);
    free(p->model);
    free(p->device);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- parsing */

static mp_status nomem(const mp_jctx *cx)
{
    return mp_error_set(cx->err, MP_ERR_NOMEM, "%s: out of memory", cx->name);
}

/* A table {"batch": [..], "ms": [..]}: batch strictly increasing and > 0,
 * ms >= 0, same length >= 1. */
static mp_status parse_table(const mp_jctx *cx, const json_t *v, const char *field, mp_time_fn *f)
{
    char fb[256], fm[256], fe[300];
    const json_t *jb = json_object_get(v, "batch"), *jm = json_object_get(v, "ms");
    mp_json_path(fb, sizeof fb, field, "batch");
    mp_json_path(fm, sizeof fm, field, "ms");
    if (!jb) return mp_json_fail(cx, fb, "missing");
    if (!jm) return mp_json_fail(cx, fm, "missing");
    if (!json_is_array(jb)) return mp_json_fail(cx, fb, "must be an array of batch sizes");
    if (!json_is_array(jm)) return mp_json_fail(cx, fm, "must be an array of times in ms");
    size_t n = json_array_size(jb);
    if (n == 0) return mp_json_fail(cx, fb, "must not be empty");
    if (json_array_size(jm) != n)
        return mp_json_fail(cx, fm, "has %zu entries but batch has %zu", json_array_size(jm), n);
    if (n > 1000000) return mp_json_fail(cx, fb, "too many entries (%zu)", n);
    f->kind = MP_TIME_TABLE;
    f->n = (int)n;
    f->batch = calloc(n, sizeof *f->batch);
    f->ms = calloc(n, sizeof *f->ms);
    if (!f->batch || !f->ms) return nomem(cx);
    for (size_t i = 0; i < n; i++) {
        snprintf(fe, sizeof fe, "%s[%zu]", fb, i);
        if (mp_json_number_value(cx, json_array_get(jb, i), fe, MP_JPOS, &f->batch[i]))
            return MP_ERR_INPUT;
        if (i > 0 && !(f->batch[i] > f->batch[i - 1]))
            return mp_json_fail(cx, fe, "batch sizes must be strictly increasing (%g after %g)",
                                f->batch[i], f->batch[i - 1]);
        snprintf(fe, sizeof fe, "%s[%zu]", fm, i);
        if (mp_json_number_value(cx, json_array_get(jm, i), fe, MP_JNONNEG, &f->ms[i]))
            return MP_ERR_INPUT;
    }
    return MP_OK;
}

/* A time: a number x (x*b ms), {"alpha", "beta"} or a table. */
static mp_status parse_time(const mp_jctx *cx, const json_t *layer, const char *prefix,
                            const char *key, mp_time_fn *f)
{
    char field[256];
    mp_json_path(field, sizeof field, prefix, key);
    const json_t *v = json_object_get(layer, key);
    if (!v) return mp_json_fail(cx, field, "missing");
    if (json_is_number(v)) {
        f->kind = MP_TIME_LINEAR;
        f->alpha = 0;
        return mp_json_number_value(cx, v, field, MP_JNONNEG, &f->beta);
    }
    if (!json_is_object(v))
        return mp_json_fail(cx, field, "must be a number (ms per sample), {\"alpha\": a, \"beta\": c} "
                                       "or {\"batch\": [...], \"ms\": [...]}");
    int has_table = json_object_get(v, "batch") || json_object_get(v, "ms");
    int has_affine = json_object_get(v, "alpha") || json_object_get(v, "beta");
    if (has_table && has_affine)
        return mp_json_fail(cx, field, "has both alpha/beta and batch/ms; use one form");
    if (has_table) return parse_table(cx, v, field, f);
    if (!has_affine)
        return mp_json_fail(cx, field, "object needs \"alpha\" and \"beta\", or \"batch\" and \"ms\"");
    f->kind = MP_TIME_AFFINE;
    if (mp_json_get_number(cx, v, field, "alpha", 1, MP_JNONNEG, &f->alpha)) return MP_ERR_INPUT;
    return mp_json_get_number(cx, v, field, "beta", 1, MP_JNONNEG, &f->beta);
}

static mp_status dup_string(const mp_jctx *cx, const char *s, char **out)
{
    *out = strdup(s);
    return *out ? MP_OK : nomem(cx);
}

static mp_status parse_layer(const mp_jctx *cx, const json_t *v, int i, mp_layer_cost *L)
{
    char pre[64];
    snprintf(pre, sizeof pre, "layers[%d]", i);
    if (!json_is_object(v)) return mp_json_fail(cx, pre, "must be an object");
    const char *name = NULL;
    if (mp_json_get_string(cx, v, pre, "name", 1, &name)) return MP_ERR_INPUT;
    if (dup_string(cx, name, &L->name)) return MP_ERR_NOMEM;
    mp_status st;
    if ((st = parse_time(cx, v, pre, "fwd_ms", &L->fwd))) return st;
    if ((st = parse_time(cx, v, pre, "bwd_ms", &L->bwd))) return st;
    int hi = json_object_get(v, "bwd_input_ms") != NULL, hw = json_object_get(v, "bwd_weight_ms") != NULL;
    if (hi != hw) {
        char f[96];
        snprintf(f, sizeof f, "%s.%s", pre, hi ? "bwd_weight_ms" : "bwd_input_ms");
        return mp_json_fail(cx, f, "missing (bwd_input_ms and bwd_weight_ms come together)");
    }
    if (hi) {
        if ((st = parse_time(cx, v, pre, "bwd_input_ms", &L->bwd_in))) return st;
        if ((st = parse_time(cx, v, pre, "bwd_weight_ms", &L->bwd_w))) return st;
        L->has_split = 1;
    }
    if (mp_json_get_bytes(cx, v, pre, "wgrad_stash_bytes_per_sample", 0, MP_JNONNEG, &L->wstash_bytes_per_sample))
        return MP_ERR_INPUT;
    if (mp_json_get_bytes(cx, v, pre, "param_bytes", 1, MP_JNONNEG, &L->param_bytes) ||
        mp_json_get_bytes(cx, v, pre, "out_bytes_per_sample", 1, MP_JNONNEG, &L->out_bytes_per_sample) ||
        mp_json_get_bytes(cx, v, pre, "stash_bytes_per_sample", 1, MP_JNONNEG, &L->stash_bytes_per_sample))
        return MP_ERR_INPUT;
    return MP_OK;
}

static mp_status parse_root(const mp_jctx *cx, const json_t *root, void *out)
{
    mp_profile *p = out;
    const char *s = NULL;
    if (mp_json_check_format(cx, root, PROFILE_FORMAT)) return MP_ERR_INPUT;
    if (mp_json_get_string(cx, root, "", "model", 1, &s)) return MP_ERR_INPUT;
    if (dup_string(cx, s, &p->model)) return MP_ERR_NOMEM;
    if (mp_json_get_string(cx, root, "", "device", 1, &s)) return MP_ERR_INPUT;
    if (dup_string(cx, s, &p->device)) return MP_ERR_NOMEM;
    p->input_bytes_per_sample = 0;
    if (mp_json_get_bytes(cx, root, "", "input_bytes_per_sample", 0, MP_JNONNEG,
                          &p->input_bytes_per_sample))
        return MP_ERR_INPUT;
    /* informational, written by mpprof: read when well formed, else ignored */
    const json_t *threads = json_object_get(json_object_get(root, "settings"), "threads");
    const char *backend = json_string_value(json_object_get(root, "backend"));
    if (backend && !strcmp(backend, "cpu") && json_is_integer(threads) && json_integer_value(threads) >= 1 &&
        json_integer_value(threads) <= 1000000)
        p->busy_cores = (int)json_integer_value(threads);
    const json_t *layers = json_object_get(root, "layers");
    if (!layers) return mp_json_fail(cx, "layers", "missing");
    if (!json_is_array(layers)) return mp_json_fail(cx, "layers", "must be an array");
    size_t n = json_array_size(layers);
    if (n == 0) return mp_json_fail(cx, "layers", "must not be empty");
    if (n > 10000000) return mp_json_fail(cx, "layers", "too many layers (%zu)", n);
    p->layers = calloc(n, sizeof *p->layers);
    if (!p->layers) return nomem(cx);
    p->num_layers = (int)n;  /* free walks all n zeroed entries */
    for (size_t i = 0; i < n; i++) {
        mp_status st = parse_layer(cx, json_array_get(layers, i), (int)i, &p->layers[i]);
        if (st) return st;
    }
    return MP_OK;
}

static void free_out(void *out)
{
    mp_profile_free(out);
}

static const mp_json_reader reader = { sizeof(mp_profile), parse_root, free_out };

mp_status mp_profile_parse(const char *text, size_t len, const char *name, mp_profile *p, mp_error *err)
{
    return mp_json_decode(text, len, name, &reader, p, err);
}

mp_status mp_profile_load(const char *path, mp_profile *p, mp_error *err)
{
    return mp_json_load(path, &reader, p, err);
}

/* ---------------------------------------------------------------- saving */

static json_t *time_to_json(const mp_time_fn *f)
{
    switch (f->kind) {
    case MP_TIME_LINEAR:
        return mp_json_number(f->beta);
    case MP_TIME_AFFINE:
        return json_pack("{s:o,s:o}", "alpha", mp_json_number(f->alpha),
                         "beta", mp_json_number(f->beta));
    case MP_TIME_TABLE:
    default: {
        json_t *b = json_array(), *m = json_array();
        for (int i = 0; b && m && i < f->n; i++) {
            json_array_append_new(b, mp_json_number(f->batch[i]));
            json_array_append_new(m, mp_json_number(f->ms[i]));
        }
        return json_pack("{s:o,s:o}", "batch", b, "ms", m);
    }
    }
}

static json_t *profile_to_json(const mp_profile *p)
{
    json_t *layers = json_array();
    for (int i = 0; layers && i < p->num_layers; i++) {
        const mp_layer_cost *L = &p->layers[i];
        json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:o,s:o}",
                              "name", L->name ? L->name : "",
                              "fwd_ms", time_to_json(&L->fwd),
                              "bwd_ms", time_to_json(&L->bwd),
                              "param_bytes", mp_json_number(L->param_bytes),
                              "out_bytes_per_sample", mp_json_number(L->out_bytes_per_sample),
                              "stash_bytes_per_sample", mp_json_number(L->stash_bytes_per_sample));
        if (o && L->has_split) {
            json_object_set_new(o, "bwd_input_ms", time_to_json(&L->bwd_in));
            json_object_set_new(o, "bwd_weight_ms", time_to_json(&L->bwd_w));
        }
        if (o && L->wstash_bytes_per_sample > 0)
            json_object_set_new(o, "wgrad_stash_bytes_per_sample", mp_json_number(L->wstash_bytes_per_sample));
        if (!o || json_array_append_new(layers, o)) {
            json_decref(layers);
            return NULL;
        }
    }
    json_t *root = json_pack("{s:s,s:s,s:s}", "format", PROFILE_FORMAT,
                             "model", p->model ? p->model : "",
                             "device", p->device ? p->device : "");
    if (!root || !layers) {
        json_decref(root);
        json_decref(layers);
        return NULL;
    }
    if (p->input_bytes_per_sample != 0)
        json_object_set_new(root, "input_bytes_per_sample", mp_json_number(p->input_bytes_per_sample));
    if (p->busy_cores > 0) {
        json_object_set_new(root, "backend", json_string("cpu"));
        json_object_set_new(root, "settings", json_pack("{s:i}", "threads", p->busy_cores));
    }
    json_object_set_new(root, "layers", layers);
    return root;
}

mp_status mp_profile_save(const char *path, const mp_profile *p, mp_error *err)
{
    json_t *root = profile_to_json(p);
    if (!root) return mp_error_set(err, MP_ERR_NOMEM, "%s: cannot encode the profile", path);
    mp_status st = mp_json_write(path, root, err);
    json_decref(root);
    return st;
}
