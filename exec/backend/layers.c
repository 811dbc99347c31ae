/* layers.c — layers, losses and stages on the backend primitive table (layers.h);
 * also attention's per-head backward that layers_split.c shares (layers_impl.h). */
#include "layers.h"
#include "backend_impl.h"
#include "layers_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ---------------------------------------------------------------- init */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-bound, bound) */
static void fill_uniform(float *p, size_t n, float bound, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
        p[i] = (float)((2.0 * u - 1.0) * bound);
    }
}

static void fill_const(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) p[i] = v;
}

size_t mp_layer_param_bytes(const mp_layer *l) { return l->nparams * F; }
size_t mp_layer_out_bytes_per_sample(const mp_layer *l) { return (size_t)l->out * F; }
size_t mp_layer_workspace_bytes(const mp_layer *l) { return l->ws_floats * F; }
size_t mp_layer_stash_bytes_per_sample(const mp_layer *l) { return l->stash_floats * F; }

/* Floats a layer keeps per sample from forward to backward (layouts in the
 * forward below; docs/model-format.md "What a layer keeps"). */
static size_t spec_stash_floats(const mp_model_layer *spec)
{
    size_t T = (size_t)spec->tokens, n = (size_t)spec->in_dim, h = (size_t)spec->hidden;
    switch (spec->type) {
    case MP_LAYER_LAYERNORM: return n + 2 * T;
    case MP_LAYER_RESIDUAL_MLP: return 2 * n + 2 * T + 2 * T * h;
    case MP_LAYER_ATTENTION: return 6 * n + 2 * T + (size_t)spec->heads * T * T;
    default: return n;   /* the input only */
    }
}

/* Backward scratch for max_batch samples. */
static size_t spec_ws_floats(const mp_model_layer *spec, int max_batch)
{
    size_t B = (size_t)max_batch, T = (size_t)spec->tokens, n = (size_t)spec->in_dim, h = (size_t)spec->hidden;
    switch (spec->type) {
    case MP_LAYER_RESIDUAL_MLP: return B * (2 * T * h + 2 * n);           /* dg, da, du, dx */
    case MP_LAYER_LAYERNORM: return B * n;                                /* dx when the caller passes NULL */
    case MP_LAYER_ATTENTION: return 4 * B * n + (size_t)spec->heads * T * T;   /* do|du, dqkv, dscores of one sample */
    default: return 0;
    }
}

size_t mp_layer_spec_stash_bytes_per_sample(const mp_model_layer *spec) { return spec_stash_floats(spec) * F; }
size_t mp_layer_spec_workspace_bytes(const mp_model_layer *spec, int max_batch) { return spec_ws_floats(spec, max_batch) * F; }

/* Initial parameters in the order of mp_layer_get_params. */
static void init_params(const mp_layer *l, float *host, uint64_t seed)
{
    size_t d = (size_t)l->din, h = (size_t)l->hidden;
    uint64_t s = seed;
    float *p = host;
    switch (l->type) {
    case MP_LAYER_LINEAR: {
        float bound = 1.0f / sqrtf((float)d);
        fill_uniform(p, (size_t)l->dout * d, bound, &s);
        if (l->bias) fill_uniform(p + (size_t)l->dout * d, (size_t)l->dout, bound, &s);
        break;
    }
    case MP_LAYER_LAYERNORM:
        fill_const(p, d, 1.0f);
        fill_const(p + d, d, 0.0f);
        break;
    case MP_LAYER_RESIDUAL_MLP:
        fill_const(p, d, 1.0f); p += d;
        fill_const(p, d, 0.0f); p += d;
        fill_uniform(p, h * d + h, 1.0f / sqrtf((float)d), &s); p += h * d + h;
        fill_uniform(p, d * h + d, 1.0f / sqrtf((float)h), &s);
        break;
    case MP_LAYER_EMBEDDING:   /* std 0.02 as GPT-2 (uniform: bound 0.02*sqrt(3)) */
        fill_uniform(p, l->nparams, 0.0346f, &s);
        break;
    case MP_LAYER_ATTENTION:
        fill_const(p, d, 1.0f); p += d;
        fill_const(p, d, 0.0f); p += d;
        fill_uniform(p, 4 * d * d + 4 * d, 1.0f / sqrtf((float)d), &s);   /* Wqkv, bqkv, Wo, bo */
        break;
    default:
        break;
    }
}

mp_status mp_layer_init(mp_layer *l, mp_backend *be, const mp_model_layer *spec,
                        int max_batch, uint64_t seed, mp_error *err)
{
    memset(l, 0, sizeof *l);
    l->type = spec->type;
    l->in = spec->in_dim;
    l->out = spec->out_dim;
    l->tokens = spec->tokens > 0 ? spec->tokens : 1;
    l->din = l->in / l->tokens;
    l->dout = l->out / l->tokens;
    l->hidden = spec->hidden;
    l->bias = spec->bias;
    l->heads = spec->heads;
    l->causal = spec->causal;
    l->vocab = spec->vocab;
    l->max_batch = max_batch;
    l->nparams = (size_t)spec->param_count;
    mp_model_layer sp = *spec;
    sp.tokens = l->tokens;
    l->stash_floats = spec_stash_floats(&sp);
    l->ws_floats = spec_ws_floats(&sp, max_batch);
    l->wstash_floats = mp_layer_spec_wstash_bytes_per_sample(&sp) / F;
    float *host = l->nparams ? malloc(l->nparams * F) : NULL;
    if (l->nparams && !host) return mp_error_set(err, MP_ERR_NOMEM, "layer: out of memory for %zu parameters", l->nparams);
    if (host) init_params(l, host, seed);
    if (l->nparams) {
        l->w = be->i->alloc(be, l->nparams * F);
        l->g = be->i->alloc(be, l->nparams * F);
    }
    if (l->ws_floats) l->ws = be->i->alloc(be, l->ws_floats * F);
    if ((l->nparams && (!l->w || !l->g)) || (l->ws_floats && !l->ws)) {
        free(host);
        mp_layer_free(l, be);
        return mp_error_set(err, MP_ERR_NOMEM, "layer %s: out of %s memory (%zu parameters, batch %d)",
                            mp_layer_type_name(spec->type), be->i->name, (size_t)spec->param_count, max_batch);
    }
    if (l->nparams) be->i->upload(be, l->w, host, l->nparams * F);
    free(host);
    return MP_OK;
}

void mp_layer_free(mp_layer *l, mp_backend *be)
{
    be->i->free(be, l->w);
    be->i->free(be, l->g);
    be->i->free(be, l->m);
    be->i->free(be, l->v);
    be->i->free(be, l->ws);
    be->i->free(be, l->bscr);
    memset(l, 0, sizeof *l);
}

void mp_layer_get_params(const mp_layer *l, mp_backend *be, float *host)
{
    if (l->nparams) be->i->download(be, host, l->w, l->nparams * F);
}

void mp_layer_set_params(mp_layer *l, mp_backend *be, const float *host)
{
    if (l->nparams) be->i->upload(be, l->w, host, l->nparams * F);
}

void mp_layer_get_grads(const mp_layer *l, mp_backend *be, float *host)
{
    if (l->nparams) be->i->download(be, host, l->g, l->nparams * F);
}

/* ---------------------------------------------------------------- forward */

mp_status mp_layer_check_batch(const mp_layer *l, int b, mp_error *err)
{
    if (b < 1 || b > l->max_batch)
        return mp_error_set(err, MP_ERR_INTERNAL, "layer %s: micro-batch %d outside 1..%d",
                            mp_layer_type_name(l->type), b, l->max_batch);
    return MP_OK;
}

/* y = x + Wo * MHA(LN(x)) + bo. Per sample, every head at once through the
 * batched GEMM: scores = scale * q k^T (head h: columns h*dh.. of q and k),
 * p = softmax(scores) in place, o_h = p v_h. */
static void attention_forward(mp_layer *l, mp_backend *be, int b, float *y, float *stash)
{
    const mp_backend_i *I = be->i;
    int T = l->tokens, d = l->din, H = l->heads, dh = d / H, rows = b * T;
    size_t n = (size_t)rows * d, TT = (size_t)T * T;
    attn_stash s = attn_stash_at(l, b, stash);
    attn_params w = attn_params_at(l, l->w);
    float *mean = (float *)s.mean, *rstd = (float *)s.rstd, *u = (float *)s.u, *qkv = (float *)s.qkv,
          *o = (float *)s.o, *p = (float *)s.p;
    float scale = 1.0f / sqrtf((float)dh);
    I->layernorm_fwd(be, u, mean, rstd, s.x, w.gam, w.bet, rows, d, LN_EPS);
    I->gemm(be, 0, 1, rows, 3 * d, d, 1.0f, u, d, w.Wqkv, d, 0.0f, qkv, 3 * d);
    I->add_bias(be, qkv, w.bqkv, rows, 3 * d);
    for (int i = 0; i < b; i++) {
        const float *q = qkv + (size_t)i * T * 3 * d;
        I->gemm_batched(be, 0, 1, T, T, dh, scale, q, 3 * d, dh, q + d, 3 * d, dh, 0.0f,
                        p + (size_t)i * H * TT, T, (long long)TT, H);
    }
    I->softmax_fwd(be, p, p, b * H * T, T, l->causal);
    for (int i = 0; i < b; i++) {
        const float *v = qkv + (size_t)i * T * 3 * d + 2 * d;
        I->gemm_batched(be, 0, 0, T, dh, T, 1.0f, p + (size_t)i * H * TT, T, (long long)TT, v, 3 * d, dh,
                        0.0f, o + (size_t)i * T * d, d, dh, H);
    }
    I->copy(be, y, s.x, n * F);
    I->gemm(be, 0, 1, rows, d, d, 1.0f, o, d, w.Wo, d, 1.0f, y, d);
    I->add_bias(be, y, w.bo, rows, d);
}

/* See layers_impl.h. */
void mp_attention_heads_backward(const mp_layer *l, mp_backend *be, int b, const attn_stash *st,
                                 const float *dout, float *dqkv, float *ds)
{
    const mp_backend_i *I = be->i;
    int T = l->tokens, d = l->din, H = l->heads, dh = d / H;
    size_t TT = (size_t)T * T;
    float scale = 1.0f / sqrtf((float)dh);
    attn_stash s = *st;
    for (int i = 0; i < b; i++) {
        const float *q = s.qkv + (size_t)i * T * 3 * d, *k = q + d, *v = q + 2 * d;
        const float *pi = s.p + (size_t)i * H * TT, *doi = dout + (size_t)i * T * d;
        float *dq = dqkv + (size_t)i * T * 3 * d, *dk = dq + d, *dv = dq + 2 * d;
        I->gemm_batched(be, 0, 1, T, T, dh, 1.0f, doi, d, dh, v, 3 * d, dh, 0.0f, ds, T, (long long)TT, H);
        I->gemm_batched(be, 1, 0, T, dh, T, 1.0f, pi, T, (long long)TT, doi, d, dh, 0.0f, dv, 3 * d, dh, H);
        I->softmax_bwd(be, ds, ds, pi, H * T, T, l->causal);
        I->gemm_batched(be, 0, 0, T, dh, T, scale, ds, T, (long long)TT, k, 3 * d, dh, 0.0f, dq, 3 * d, dh, H);
        I->gemm_batched(be, 1, 0, T, dh, T, scale, ds, T, (long long)TT, q, 3 * d, dh, 0.0f, dk, 3 * d, dh, H);
    }
}

/* Workspace: dout|du [rows, d], dqkv [rows, 3d], dscores [H, T, T] (one
 * sample at a time). */
static void attention_backward(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                               const float *stash)
{
    const mp_backend_i *I = be->i;
    int d = l->din, rows = b * l->tokens;
    size_t n = (size_t)rows * d;
    attn_stash s = attn_stash_at(l, b, stash);
    attn_params w = attn_params_at(l, l->w), g = attn_params_at(l, l->g);
    float *dout = l->ws, *dqkv = dout + n, *ds = dqkv + 3 * n;
    I->gemm(be, 1, 0, d, d, rows, 1.0f, dy, d, s.o, d, 1.0f, g.Wo, d);
    I->col_sum(be, g.bo, dy, rows, d, 1.0f);
    I->gemm(be, 0, 0, rows, d, d, 1.0f, dy, d, w.Wo, d, 0.0f, dout, d);
    mp_attention_heads_backward(l, be, b, &s, dout, dqkv, ds);
    I->gemm(be, 1, 0, 3 * d, d, rows, 1.0f, dqkv, 3 * d, s.u, d, 1.0f, g.Wqkv, d);
    I->col_sum(be, g.bqkv, dqkv, rows, 3 * d, 1.0f);
    float *du = dout;   /* dout is spent */
    I->gemm(be, 0, 0, rows, d, 3 * d, 1.0f, dqkv, 3 * d, w.Wqkv, d, 0.0f, du, d);
    float *out = dx ? dx : dqkv;   /* so is dqkv */
    I->layernorm_bwd(be, out, g.gam, g.bet, du, s.x, s.mean, s.rstd, w.gam, rows, d);
    if (dx) I->axpy(be, dx, 1.0f, dy, n);
}

mp_status mp_layer_forward(mp_layer *l, mp_backend *be, int b, const float *x, float *y,
                           float *stash, mp_error *err)
{
    mp_status bst = mp_layer_check_batch(l, b, err);
    if (bst != MP_OK) return bst;
    const mp_backend_i *I = be->i;
    int d = l->din, h = l->hidden, rows = b * l->tokens;
    size_t n = (size_t)rows * d;
    float *sx = stash;                          /* every layer keeps its input first */
    I->copy(be, sx, x, n * F);
    switch (l->type) {
    case MP_LAYER_LINEAR:
        I->gemm(be, 0, 1, rows, l->dout, d, 1.0f, sx, d, l->w, d, 0.0f, y, l->dout);
        if (l->bias) I->add_bias(be, y, l->w + (size_t)l->dout * d, rows, l->dout);
        break;
    case MP_LAYER_RELU:
        I->relu_fwd(be, y, sx, n);
        break;
    case MP_LAYER_GELU:
        I->gelu_fwd(be, y, sx, n);
        break;
    case MP_LAYER_LAYERNORM:
        I->layernorm_fwd(be, y, sx + n, sx + n + rows, sx, l->w, l->w + d, rows, d, LN_EPS);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        float *mean = sx + n, *rstd = mean + rows, *u = rstd + rows, *a = u + n, *g = a + (size_t)rows * h;
        const float *gam = l->w, *bet = gam + d, *W1 = bet + d, *b1 = W1 + (size_t)h * d,
                    *W2 = b1 + h, *b2 = W2 + (size_t)d * h;
        I->layernorm_fwd(be, u, mean, rstd, sx, gam, bet, rows, d, LN_EPS);
        I->gemm(be, 0, 1, rows, h, d, 1.0f, u, d, W1, d, 0.0f, a, h);
        I->add_bias(be, a, b1, rows, h);
        I->gelu_fwd(be, g, a, (size_t)rows * h);
        I->copy(be, y, sx, n * F);
        I->gemm(be, 0, 1, rows, d, h, 1.0f, g, h, W2, h, 1.0f, y, d);
        I->add_bias(be, y, b2, rows, d);
        break;
    }
    case MP_LAYER_EMBEDDING:   /* sx: the ids, one per row */
        I->embedding_fwd(be, y, sx, l->w, l->w + (size_t)l->vocab * l->dout, b, l->tokens, l->dout, l->vocab);
        break;
    case MP_LAYER_ATTENTION:
        attention_forward(l, be, b, y, stash);
        break;
    default:
        return mp_error_set(err, MP_ERR_INTERNAL, "layer: unknown type %d", (int)l->type);
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- backward */

mp_status mp_layer_backward(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                            const float *stash, mp_error *err)
{
    mp_status bst = mp_layer_check_batch(l, b, err);
    if (bst != MP_OK) return bst;
    const mp_backend_i *I = be->i;
    int d = l->din, h = l->hidden, rows = b * l->tokens;
    size_t n = (size_t)rows * d;
    const float *sx = stash;
    switch (l->type) {
    case MP_LAYER_LINEAR: {
        int o = l->dout;
        I->gemm(be, 1, 0, o, d, rows, 1.0f, dy, o, sx, d, 1.0f, l->g, d);
        if (l->bias) I->col_sum(be, l->g + (size_t)o * d, dy, rows, o, 1.0f);
        if (dx) I->gemm(be, 0, 0, rows, d, o, 1.0f, dy, o, l->w, d, 0.0f, dx, d);
        break;
    }
    case MP_LAYER_RELU:
        if (dx) I->relu_bwd(be, dx, dy, sx, n);
        break;
    case MP_LAYER_GELU:
        if (dx) I->gelu_bwd(be, dx, dy, sx, n);
        break;
    case MP_LAYER_LAYERNORM:
        I->layernorm_bwd(be, dx ? dx : l->ws, l->g, l->g + d, dy, sx, sx + n, sx + n + rows, l->w, rows, d);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        mlp_stash s = mlp_stash_at(l, b, stash);
        mlp_params w = mlp_params_at(l, l->w), g = mlp_params_at(l, l->g);
        float *dg = l->ws, *da = dg + (size_t)rows * h, *du = da + (size_t)rows * h, *dxt = du + n;
        I->gemm(be, 1, 0, d, h, rows, 1.0f, dy, d, s.g, h, 1.0f, g.W2, h);
        I->col_sum(be, g.b2, dy, rows, d, 1.0f);
        I->gemm(be, 0, 0, rows, h, d, 1.0f, dy, d, w.W2, h, 0.0f, dg, h);
        I->gelu_bwd(be, da, dg, s.a, (size_t)rows * h);
        I->gemm(be, 1, 0, h, d, rows, 1.0f, da, h, s.u, d, 1.0f, g.W1, d);
        I->col_sum(be, g.b1, da, rows, h, 1.0f);
        I->gemm(be, 0, 0, rows, d, h, 1.0f, da, h, w.W1, d, 0.0f, du, d);
        float *out = dx ? dx : dxt;
        I->layernorm_bwd(be, out, g.gam, g.bet, du, s.x, s.mean, s.rstd, w.gam, rows, d);
        if (dx) I->axpy(be, dx, 1.0f, dy, n);
        break;
    }
    case MP_LAYER_EMBEDDING:   /* the ids get no gradient */
        I->embedding_bwd(be, l->g, l->g + (size_t)l->vocab * l->dout, dy, sx, b, l->tokens, l->dout, l->vocab);
        if (dx) I->zero(be, dx, n * F);
        break;
    case MP_LAYER_ATTENTION:
        attention_backward(l, be, b, dy, dx, stash);
        break;
    default:
        return mp_error_set(err, MP_ERR_INTERNAL, "layer: unknown type %d", (int)l->type);
    }
    return MP_OK;
}

void mp_layer_zero_grad(mp_layer *l, mp_backend *be)
{
    if (l->nparams) be->i->zero(be, l->g, l->nparams * F);
}

mp_status mp_layer_update(mp_layer *l, mp_backend *be, const mp_optim *opt, mp_error *err)
{
    if (!l->nparams) return MP_OK;
    if (opt->kind == MP_OPTIM_SGD) {
        be->i->sgd_update(be, l->w, l->g, l->nparams, opt->lr);
        return MP_OK;
    }
    if (opt->step < 1) return mp_error_set(err, MP_ERR_INTERNAL, "adam: step must count from 1 (got %d)", opt->step);
    if (!l->m) l->m = be->i->alloc(be, l->nparams * F);
    if (!l->v) l->v = be->i->alloc(be, l->nparams * F);
    if (!l->m || !l->v)
        return mp_error_set(err, MP_ERR_NOMEM, "adam: out of %s memory for %zu moments", be->i->name, l->nparams);
    be->i->adam_update(be, l->w, l->g, l->m, l->v, l->nparams, opt->lr, opt->beta1, opt->beta2,
                       opt->eps, opt->step);
    return MP_OK;
}

/* ---------------------------------------------------------------- loss */

mp_status mp_loss_eval(mp_backend *be, const mp_model *m, int b, const float *pred,
                       const void *target, float *dpred, float scale, float *loss,
                       mp_error *err)
{
    int cols = m->layers[m->num_layers - 1].out_dim;
    int per = mp_model_labels_per_sample(m);   /* token models: a label per position, the mean of their losses */
    if (m->loss == MP_LOSS_MSE)
        be->i->mse_loss(be, dpred, loss, pred, target, b, cols, scale);
    else
        be->i->xent_loss(be, dpred, loss, pred, target, b * per, m->classes, scale / (float)per);
    return be->i->sync(be, err);
}

/* ---------------------------------------------------------------- stages */

mp_status mp_stage_init(mp_stage_net *s, mp_backend *be, const mp_model *m, int first,
                        int last, int max_batch, uint64_t seed, mp_error *err)
{
    memset(s, 0, sizeof *s);
    if (first < 0 || last < first || last >= m->num_layers || max_batch < 1)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage: bad layer range %d..%d of %d (batch %d)",
                            first, last, m->num_layers, max_batch);
    s->be = be;
    s->first = first;
    s->count = last - first + 1;
    s->max_batch = max_batch;
    s->in_dim = m->layers[first].in_dim;
    s->out_dim = m->layers[last].out_dim;
    s->layers = calloc((size_t)s->count, sizeof *s->layers);
    s->stash_off = calloc((size_t)s->count, sizeof *s->stash_off);
    s->wstash_off = calloc((size_t)s->count, sizeof *s->wstash_off);
    if (!s->layers || !s->stash_off || !s->wstash_off) {
        mp_stage_free(s);
        return mp_error_set(err, MP_ERR_NOMEM, "stage: out of memory");
    }
    size_t width = 1;
    for (int i = 0; i < s->count; i++) {
        const mp_model_layer *spec = &m->layers[first + i];
        uint64_t ls = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(first + i + 1));
        mp_status st = mp_layer_init(&s->layers[i], be, spec, max_batch, ls, err);
        if (st != MP_OK) {
            s->count = i;
            mp_stage_free(s);
            return st;
        }
        s->stash_off[i] = s->stash_per_sample;
        s->stash_per_sample += s->layers[i].stash_floats;
        s->wstash_off[i] = s->wstash_per_sample;
        s->wstash_per_sample += s->layers[i].wstash_floats;
        if ((size_t)spec->in_dim > width) width = (size_t)spec->in_dim;
        if ((size_t)spec->out_dim > width) width = (size_t)spec->out_dim;
    }
    for (int k = 0; k < 2; k++) {
        s->act[k] = be->i->alloc(be, (size_t)max_batch * width * F);
        s->grad[k] = be->i->alloc(be, (size_t)max_batch * width * F);
        if (!s->act[k] || !s->grad[k]) {
            mp_stage_free(s);
            return mp_error_set(err, MP_ERR_NOMEM, "stage: out of %s memory for activations", be->i->name);
        }
    }
    return MP_OK;
}

void mp_stage_free(mp_stage_net *s)
{
    if (s->be) {
        for (int i = 0; s->layers && i < s->count; i++) mp_layer_free(&s->layers[i], s->be);
        for (int k = 0; k < 2; k++) {
            s->be->i->free(s->be, s->act[k]);
            s->be->i->free(s->be, s->grad[k]);
        }
    }
    free(s->layers);
    free(s->stash_off);
    free(s->wstash_off);
    memset(s, 0, sizeof *s);
}

size_t mp_stage_stash_bytes(const mp_stage_net *s, int b)
{
    return (size_t)b * s->stash_per_sample * F;
}

mp_status mp_stage_forward(mp_stage_net *s, int b, const float *x, float *y, float *stash,
                           mp_error *err)
{
    const float *in = x;
    for (int i = 0; i < s->count; i++) {
        float *out = (i == s->count - 1 && y) ? y : s->act[i % 2];
        mp_status st = mp_layer_forward(&s->layers[i], s->be, b, in, out,
                                        stash + (size_t)b * s->stash_off[i], err);
        if (st != MP_OK) return st;
        in = out;
    }
    return MP_OK;
}

mp_status mp_stage_backward(mp_stage_net *s, int b, const float *dy, float *dx,
                            const float *stash, mp_error *err)
{
    for (int i = s->count - 1; i >= 0; i--) {
        const float *gin = (i == s->count - 1) ? dy : s->grad[i % 2];
        float *gout = (i == 0) ? dx : s->grad[(i + 1) % 2];
        mp_status st = mp_layer_backward(&s->layers[i], s->be, b, gin, gout,
                                         stash + (size_t)b * s->stash_off[i], err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

void mp_stage_zero_grad(mp_stage_net *s)
{
    for (int i = 0; i < s->count; i++) mp_layer_zero_grad(&s->layers[i], s->be);
}

mp_status mp_stage_update(mp_stage_net *s, const mp_optim *opt, mp_error *err)
{
    for (int i = 0; i < s->count; i++) {
        mp_status st = mp_layer_update(&s->layers[i], s->be, opt, err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}
