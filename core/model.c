/* model.c — loading and expanding model specs (model.h). */
#include "model.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM    (1 << 20)   /* widest layer accepted */
#define MAX_REPEAT 100000
#define MAX_UNITS  100000      /* planning units after expansion */
#define MAX_DEPTH  16          /* repeat nesting */
#define MAX_SEQ    (1 << 16)   /* tokens per sample */
#define MAX_FEATURES (1 << 30) /* values per sample (seq_len x width) */
/* token ids travel as floats: every id < MAX_DIM is exact (floats hold integers up to 2^24) */
_Static_assert(MAX_DIM <= (1 << 24), "token ids must be exact in a float");

typedef struct {
    const char *file;
    mp_model *m;
    int cap;
    int dim;                   /* current feature width (per token in token models) */
    int tokens;                /* rows per sample: seq_len, or 1 */
    mp_error *err;
} loader;

static const char *type_names[MP_LAYER_NUM_TYPES] = {"linear", "relu", "gelu", "layernorm",
                                                      "residual_mlp", "embedding", "attention"};
#define KNOWN "linear, relu, gelu, layernorm, residual_mlp, embedding, attention"
#define TOKEN_INPUT "\"input\": {\"type\": \"tokens\", \"vocab\": V, \"seq_len\": T}"

const char *mp_layer_type_name(mp_layer_type t)
{
    return (unsigned)t < MP_LAYER_NUM_TYPES ? type_names[t] : "?";
}

int mp_model_is_tokens(const mp_model *m)
{
    return m->seq_len > 0;
}

int mp_model_labels_per_sample(const mp_model *m)
{
    if (m->loss != MP_LOSS_XENT) return 0;
    return mp_model_is_tokens(m) ? m->seq_len : 1;
}

long long mp_model_param_count(const mp_model *m)
{
    long long s = 0;
    for (int i = 0; i < m->num_layers; i++) s += m->layers[i].param_count;
    return s;
}

void mp_model_free(mp_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->num_layers; i++) free(m->layers[i].name);
    free(m->layers);
    free(m->name);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- helpers */

static int type_from_name(const char *s)
{
    for (int t = 0; t < MP_LAYER_NUM_TYPES; t++)
        if (!strcmp(s, type_names[t])) return t;
    return -1;
}

/* A positive integer field <= max: 1 ok, 0 error set. */
static int get_pos_int(loader *L, json_t *obj, const char *key, const char *path,
                       long long max, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.%s: missing (a positive integer)", L->file, path, key);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v))
        ; /* 3.0 is fine; converted below */
    else if (!json_is_integer(v)) {
        mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.%s: must be a positive integer", L->file, path, key);
        return 0;
    }
    double d = json_number_value(v);
    if (d <= 0 || d > (double)max) {
        mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.%s: must be a positive integer <= %lld (got %g)",
                     L->file, path, key, max, d);
        return 0;
    }
    *out = (int)d;
    return 1;
}

/* Rejects keys not in the NULL-terminated list `ok`. */
static int check_keys(loader *L, json_t *obj, const char *path, const char *const *ok)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        int found = 0;
        for (int i = 0; ok[i]; i++)
            if (!strcmp(k, ok[i])) found = 1;
        if (!found) {
            mp_error_set(L->err, MP_ERR_INPUT, "%s: %s: unknown field '%s'", L->file, path, k);
            return 0;
        }
    }
    return 1;
}

static int push_unit(loader *L, const char *name, mp_model_layer u)
{
    mp_model *m = L->m;
    if (m->num_layers >= MAX_UNITS) {
        mp_error_set(L->err, MP_ERR_INPUT, "%s: layers: more than %d layers after expanding repeats",
                     L->file, MAX_UNITS);
        return 0;
    }
    if (m->num_layers == L->cap) {
        int nc = L->cap ? 2 * L->cap : 16;
        mp_model_layer *nl = realloc(m->layers, (size_t)nc * sizeof *nl);
        if (!nl) { mp_error_set(L->err, MP_ERR_NOMEM, "%s: out of memory", L->file); return 0; }
        m->layers = nl;
        L->cap = nc;
    }
    u.name = strdup(name);
    if (!u.name) { mp_error_set(L->err, MP_ERR_NOMEM, "%s: out of memory", L->file); return 0; }
    m->layers[m->num_layers++] = u;
    return 1;
}

/* ---------------------------------------------------------------- layers */

static int parse_list(loader *L, json_t *arr, const char *path, const char *prefix, int depth);

/* An optional boolean field: 1 ok (*out = its value, or dflt when absent), 0 error set. */
static int get_bool(loader *L, json_t *obj, const char *key, const char *path, int dflt, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_boolean(v))
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.%s: must be true or false", L->file, path, key), 0;
    *out = v ? json_is_true(v) : dflt;
    return 1;
}

/* Where a layer type may stand: embedding first and only in token models,
 * attention only in token models, and a token model starts with embedding. */
static int check_position(loader *L, int t, const char *path)
{
    int tok = L->m->seq_len > 0, first = L->m->num_layers == 0;
    if ((t == MP_LAYER_EMBEDDING || t == MP_LAYER_ATTENTION) && !tok)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.type: %s needs a token model (" TOKEN_INPUT
                            " instead of input_dim)", L->file, path, type_names[t]), 0;
    if (tok && first && t != MP_LAYER_EMBEDDING)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.type: a token model's first layer must be embedding (got '%s')",
                            L->file, path, type_names[t]), 0;
    if (t == MP_LAYER_EMBEDDING && !first)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.type: embedding must be the model's first layer",
                            L->file, path), 0;
    return 1;
}

/* Fields that belong to one layer type only. */
static int check_foreign_fields(loader *L, json_t *e, int t, const char *path)
{
    static const struct { const char *key; mp_layer_type owner; const char *what; } own[] = {
        {"out", MP_LAYER_LINEAR, "only linear layers change the width"},
        {"hidden", MP_LAYER_RESIDUAL_MLP, "only residual_mlp has a hidden width"},
        {"bias", MP_LAYER_LINEAR, "only linear layers take 'bias'"},
        {"dim", MP_LAYER_EMBEDDING, "only embedding takes 'dim'"},
        {"heads", MP_LAYER_ATTENTION, "only attention takes 'heads'"},
        {"causal", MP_LAYER_ATTENTION, "only attention takes 'causal'"},
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if ((int)own[i].owner != t && json_object_get(e, own[i].key))
            return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.%s: %s", L->file, path, own[i].key, own[i].what), 0;
    return 1;
}

static int parse_layer(loader *L, json_t *e, const char *path, const char *fullname)
{
    static const char *const keys[] = {"type", "out", "bias", "hidden", "dim", "heads", "causal", "name", NULL};
    const char *ts = json_string_value(json_object_get(e, "type"));
    if (!ts) return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.type: missing (a string: " KNOWN ", or use \"repeat\")", L->file, path), 0;
    int t = type_from_name(ts);
    if (t < 0)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.type: unknown layer type '%s' (known: " KNOWN ")",
                            L->file, path, ts), 0;
    if (!check_keys(L, e, path, keys) || !check_position(L, t, path)) return 0;
    mp_model_layer u = {0};
    u.type = (mp_layer_type)t;
    u.tokens = L->tokens;
    long long d = L->dim;
    int w_in = L->dim, w_out = L->dim;   /* per token (per sample when tokens = 1) */
    switch (u.type) {
    case MP_LAYER_LINEAR: {
        if (!get_pos_int(L, e, "out", path, MAX_DIM, &w_out)) return 0;
        if (!get_bool(L, e, "bias", path, 1, &u.bias)) return 0;
        u.param_count = d * w_out + (u.bias ? w_out : 0);
        break;
    }
    case MP_LAYER_RESIDUAL_MLP: {
        if (!get_pos_int(L, e, "hidden", path, MAX_DIM, &u.hidden)) return 0;
        long long h = u.hidden;
        u.param_count = 2 * d + d * h + h + h * d + d;
        break;
    }
    case MP_LAYER_LAYERNORM:
        u.param_count = 2 * d;
        break;
    case MP_LAYER_EMBEDDING:
        if (!get_pos_int(L, e, "dim", path, MAX_DIM, &w_out)) return 0;
        u.vocab = L->m->vocab;
        u.param_count = ((long long)u.vocab + u.tokens) * w_out;
        break;
    case MP_LAYER_ATTENTION:
        if (!get_pos_int(L, e, "heads", path, MAX_DIM, &u.heads)) return 0;
        if (d % u.heads)
            return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.heads: width %lld is not divisible by %d heads",
                                L->file, path, d, u.heads), 0;
        if (!get_bool(L, e, "causal", path, 1, &u.causal)) return 0;
        u.param_count = 4 * d * d + 6 * d;
        break;
    default:
        break;
    }
    if (!check_foreign_fields(L, e, t, path)) return 0;
    if ((long long)u.tokens * w_out > MAX_FEATURES)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s: %lld values per sample (seq_len %d x width %d) is more than %d",
                            L->file, path, (long long)u.tokens * w_out, u.tokens, w_out, MAX_FEATURES), 0;
    u.in_dim = u.tokens * w_in;
    u.out_dim = u.tokens * w_out;
    if (!push_unit(L, fullname, u)) return 0;
    L->dim = w_out;
    return 1;
}

static int parse_repeat(loader *L, json_t *e, const char *path, const char *prefix,
                        const char *rname, int depth)
{
    static const char *const keys[] = {"repeat", "layers", "name", NULL};
    if (!check_keys(L, e, path, keys)) return 0;
    if (depth >= MAX_DEPTH)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s: repeats nested deeper than %d", L->file, path, MAX_DEPTH), 0;
    int r;
    if (!get_pos_int(L, e, "repeat", path, MAX_REPEAT, &r)) return 0;
    json_t *body = json_object_get(e, "layers");
    if (!json_is_array(body) || json_array_size(body) == 0)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.layers: must be a non-empty array", L->file, path), 0;
    char sub[520], pre[512];   /* path is at most 512 bytes: ".layers" always fits */
    snprintf(sub, sizeof sub, "%.511s.layers", path);
    for (int i = 0; i < r; i++) {
        snprintf(pre, sizeof pre, "%s%s%d.", prefix, rname, i);
        if (!parse_list(L, body, sub, pre, depth + 1)) return 0;
    }
    return 1;
}

static int parse_list(loader *L, json_t *arr, const char *path, const char *prefix, int depth)
{
    size_t n = json_array_size(arr);
    int type_count[MP_LAYER_NUM_TYPES] = {0}, type_seen[MP_LAYER_NUM_TYPES] = {0}, unnamed_repeats = 0, repeat_seen = 0;
    for (size_t i = 0; i < n; i++) {   /* counts decide whether names need ordinals */
        json_t *e = json_array_get(arr, i);
        if (!json_is_object(e)) continue;
        if (json_object_get(e, "repeat")) {
            if (!json_is_string(json_object_get(e, "name"))) unnamed_repeats++;
            continue;
        }
        int t = type_from_name(json_string_value(json_object_get(e, "type")) ? json_string_value(json_object_get(e, "type")) : "");
        if (t >= 0 && !json_is_string(json_object_get(e, "name"))) type_count[t]++;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        char p[512], name[768];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (!json_is_object(e))
            return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s: must be an object (a layer or a repeat)", L->file, p), 0;
        json_t *nm = json_object_get(e, "name");
        if (nm && (!json_is_string(nm) || !json_string_length(nm) || json_string_length(nm) > 100))
            return mp_error_set(L->err, MP_ERR_INPUT, "%s: %s.name: must be a non-empty string of at most 100 characters", L->file, p), 0;
        if (json_object_get(e, "repeat")) {
            char rname[128];
            if (nm) snprintf(rname, sizeof rname, "%s", json_string_value(nm));
            else if (unnamed_repeats > 1) snprintf(rname, sizeof rname, "block%d_", repeat_seen++);
            else snprintf(rname, sizeof rname, "block");
            if (!parse_repeat(L, e, p, prefix, rname, depth)) return 0;
            continue;
        }
        const char *ts = json_string_value(json_object_get(e, "type"));
        int t = ts ? type_from_name(ts) : -1;
        if (nm) snprintf(name, sizeof name, "%s%s", prefix, json_string_value(nm));
        else if (t >= 0 && type_count[t] > 1) snprintf(name, sizeof name, "%s%s%d", prefix, ts, type_seen[t]++);
        else snprintf(name, sizeof name, "%s%s", prefix, ts ? ts : "?");
        if (!parse_layer(L, e, p, name)) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- top level */

static int parse_loss(loader *L, json_t *v)
{
    mp_model *m = L->m;
    const char *s = json_string_value(v);
    int classes = 0;
    if (!v) s = "mse";
    if (json_is_object(v)) {
        static const char *const keys[] = {"type", "classes", NULL};
        if (!check_keys(L, v, "loss", keys)) return 0;
        s = json_string_value(json_object_get(v, "type"));
        if (!s) return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss.type: missing (\"mse\" or \"cross_entropy\")", L->file), 0;
        if (json_object_get(v, "classes") && !get_pos_int(L, v, "classes", "loss", MAX_DIM, &classes)) return 0;
    } else if (!s) {
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss: must be \"mse\", \"cross_entropy\" or an object {\"type\": ..., \"classes\": N}", L->file), 0;
    }
    int tok = mp_model_is_tokens(m);
    if (!strcmp(s, "mse")) {
        if (classes) return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss.classes: only cross_entropy takes classes", L->file), 0;
        if (tok)
            return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss: a token model needs {\"type\": \"cross_entropy\", "
                                "\"classes\": %d} (the next token of each position; got mse)", L->file, m->vocab), 0;
        m->loss = MP_LOSS_MSE;
        return 1;
    }
    if (strcmp(s, "cross_entropy"))
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss: unknown loss '%s' (known: mse, cross_entropy)", L->file, s), 0;
    m->loss = MP_LOSS_XENT;
    if (tok && classes && classes != m->vocab)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss.classes: %d classes but the vocabulary has %d tokens",
                            L->file, classes, m->vocab), 0;
    if (tok && L->dim != m->vocab)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss: the last layer outputs %d values per token but "
                            "cross_entropy over the vocabulary needs %d", L->file, L->dim, m->vocab), 0;
    if (classes && classes != L->dim)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss.classes: %d classes but the last layer outputs %d values",
                            L->file, classes, L->dim), 0;
    if (L->dim < 2)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: loss: cross_entropy needs at least 2 outputs (the last layer outputs %d)", L->file, L->dim), 0;
    m->classes = L->dim;
    return 1;
}

/* input_dim (features per sample), or "input": {"type": "tokens", "vocab": V,
 * "seq_len": T}: a sample is T token ids, carried as T floats. */
static int parse_input(loader *L, json_t *root)
{
    static const char *const keys[] = {"type", "vocab", "seq_len", NULL};
    mp_model *m = L->m;
    json_t *in = json_object_get(root, "input");
    L->tokens = 1;
    if (!in) {
        if (!get_pos_int(L, root, "input_dim", "model", MAX_DIM, &m->input_dim)) return 0;
        L->dim = m->input_dim;
        return 1;
    }
    if (json_object_get(root, "input_dim"))
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: input_dim: give either input_dim or input, not both", L->file), 0;
    if (!json_is_object(in))
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: input: must be an object, " TOKEN_INPUT, L->file), 0;
    if (!check_keys(L, in, "input", keys)) return 0;
    const char *t = json_string_value(json_object_get(in, "type"));
    if (!t) return mp_error_set(L->err, MP_ERR_INPUT, "%s: input.type: missing (\"tokens\")", L->file), 0;
    if (strcmp(t, "tokens"))
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: input.type: unknown input type '%s' (known: tokens)", L->file, t), 0;
    if (!get_pos_int(L, in, "vocab", "input", MAX_DIM, &m->vocab)) return 0;
    if (m->vocab < 2)
        return mp_error_set(L->err, MP_ERR_INPUT, "%s: input.vocab: must be at least 2 (got %d)", L->file, m->vocab), 0;
    if (!get_pos_int(L, in, "seq_len", "input", MAX_SEQ, &m->seq_len)) return 0;
    m->input_dim = m->seq_len;
    L->tokens = m->seq_len;
    L->dim = 1;   /* one id per token */
    return 1;
}

mp_status mp_model_parse(const char *text, size_t len, const char *name,
                         mp_model *m, mp_error *err)
{
    static const char *const keys[] = {"format", "name", "input_dim", "input", "layers", "loss",
                                       "description", "comment", NULL};
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return mp_error_set(err, MP_ERR_INPUT, "%s:%d:%d: %s", name, je.line, je.column, je.text);
    loader L = {.file = name, .m = m, .err = err};
    mp_status st = MP_ERR_INPUT;
    if (!json_is_object(root)) {
        mp_error_set(err, MP_ERR_INPUT, "%s: top level must be an object", name);
        goto out;
    }
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!fmt || strcmp(fmt, "mpkit-model/1")) {
        mp_error_set(err, MP_ERR_INPUT, "%s: format: must be \"mpkit-model/1\"%s", name,
                     fmt ? " (this file has another format)" : " (missing)");
        goto out;
    }
    if (!check_keys(&L, root, "top level", keys)) goto out;
    const char *mname = json_string_value(json_object_get(root, "name"));
    if (json_object_get(root, "name") && !mname) {
        mp_error_set(err, MP_ERR_INPUT, "%s: name: must be a string", name);
        goto out;
    }
    m->name = strdup(mname ? mname : "model");
    if (!parse_input(&L, root)) goto out;
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0) {
        mp_error_set(err, MP_ERR_INPUT, "%s: layers: must be a non-empty array", name);
        goto out;
    }
    if (!parse_list(&L, layers, "layers", "", 0)) goto out;
    if (!parse_loss(&L, json_object_get(root, "loss"))) goto out;
    st = MP_OK;
out:
    json_decref(root);
    if (st != MP_OK) {
        mp_model_free(m);
        if (err && err->status != MP_OK) st = err->status;
    }
    return st;
}

mp_status mp_model_load(const char *path, mp_model *m, mp_error *err)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return mp_error_set(err, MP_ERR_IO, "%s: cannot open model spec", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return mp_error_set(err, MP_ERR_IO, "%s: read error", path); }
    mp_status st = mp_model_parse(buf, len, path, m, err);
    free(buf);
    return st;
}
