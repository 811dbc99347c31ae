/* layers_split.c — the split backward of every layer and stage (layers.h):
 * B (input gradient, keeping what W needs in the W-stash) and W (weight
 * gradients). Each runs exactly the primitive calls of the fused backward in
 * layers.c on the same values, so B then W is bitwise the fused backward; a
 * layernorm inside B sends its (discarded) dgamma/dbeta to scratch, and W
 * repeats it with the real gradients and a scratch dx.
 * defines: mp_layer_spec_wstash_bytes_per_sample, mp_layer_wstash_bytes_per_sample,
 *          mp_layer_backward_input, mp_layer_backward_weight, mp_stage_wstash_bytes,
 *          mp_stage_backward_input, mp_stage_backward_weight */
#include "layers.h"
#include "backend_impl.h"
#include "layers_impl.h"

#include <string.h>

/* See layers.h (the W-stash table). */
size_t mp_layer_spec_wstash_bytes_per_sample(const mp_model_layer *spec)
{
    size_t T = spec->tokens > 0 ? (size_t)spec->tokens : 1, n = (size_t)spec->in_dim,
           o = (size_t)spec->out_dim, h = (size_t)spec->hidden;
    switch (spec->type) {
    case MP_LAYER_LINEAR: return o * F;
    case MP_LAYER_LAYERNORM: return n * F;
    case MP_LAYER_RESIDUAL_MLP: return (2 * n + T * h) * F;
    case MP_LAYER_EMBEDDING: return o * F;
    case MP_LAYER_ATTENTION: return 5 * n * F;
    default: return 0;   /* relu, gelu: no weights */
    }
}

size_t mp_layer_wstash_bytes_per_sample(const mp_layer *l) { return l->wstash_floats * F; }

/* The B scratch for a layernorm's discarded dgamma/dbeta (2*din floats),
 * zeroed; allocated on first use. */
static float *b_scratch(mp_layer *l, mp_backend *be, mp_error *err)
{
    size_t bytes = 2 * (size_t)l->din * F;
    if (!l->bscr && !(l->bscr = be->i->alloc(be, bytes))) {
        mp_error_set(err, MP_ERR_NOMEM, "layer %s: out of %s memory for the split backward",
                     mp_layer_type_name(l->type), be->i->name);
        return NULL;
    }
    be->i->zero(be, l->bscr, bytes);
    return l->bscr;
}

static int has_layernorm(const mp_layer *l)
{
    return l->type == MP_LAYER_LAYERNORM || l->type == MP_LAYER_RESIDUAL_MLP || l->type == MP_LAYER_ATTENTION;
}

/* ---------------------------------------------------------------- B */

/* As attention_backward in layers.c, without the weight gradients; dqkv and
 * du go to the W-stash (dy, dqkv, du). */
static void attention_input(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                            const float *stash, float *wst, float *scr)
{
    const mp_backend_i *I = be->i;
    int d = l->din, rows = b * l->tokens;
    size_t n = (size_t)rows * d;
    attn_stash s = attn_stash_at(l, b, stash);
    attn_params w = attn_params_at(l, l->w);
    float *dout = l->ws, *ds = dout + 4 * n;
    float *wdy = wst, *dqkv = wst + n, *du = wst + 4 * n;
    I->copy(be, wdy, dy, n * F);
    I->gemm(be, 0, 0, rows, d, d, 1.0f, dy, d, w.Wo, d, 0.0f, dout, d);
    mp_attention_heads_backward(l, be, b, &s, dout, dqkv, ds);
    I->gemm(be, 0, 0, rows, d, 3 * d, 1.0f, dqkv, 3 * d, w.Wqkv, d, 0.0f, du, d);
    if (dx) {
        I->layernorm_bwd(be, dx, scr, scr + d, du, s.x, s.mean, s.rstd, w.gam, rows, d);
        I->axpy(be, dx, 1.0f, dy, n);
    }
}

/* See layers.h. */
mp_status mp_layer_backward_input(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                                  const float *stash, float *wstash, mp_error *err)
{
    mp_status bst = mp_layer_check_batch(l, b, err);
    if (bst != MP_OK) return bst;
    const mp_backend_i *I = be->i;
    int d = l->din, h = l->hidden, rows = b * l->tokens;
    size_t n = (size_t)rows * d, ny = (size_t)rows * l->dout;
    const float *sx = stash;
    float *scr = NULL;
    if (has_layernorm(l) && dx && !(scr = b_scratch(l, be, err))) return MP_ERR_NOMEM;
    switch (l->type) {
    case MP_LAYER_LINEAR:
        I->copy(be, wstash, dy, ny * F);
        if (dx) I->gemm(be, 0, 0, rows, d, l->dout, 1.0f, dy, l->dout, l->w, d, 0.0f, dx, d);
        break;
    case MP_LAYER_RELU:
        if (dx) I->relu_bwd(be, dx, dy, sx, n);
        break;
    case MP_LAYER_GELU:
        if (dx) I->gelu_bwd(be, dx, dy, sx, n);
        break;
    case MP_LAYER_LAYERNORM:
        I->copy(be, wstash, dy, n * F);
        if (dx) I->layernorm_bwd(be, dx, scr, scr + d, dy, sx, sx + n, sx + n + rows, l->w, rows, d);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        mlp_stash s = mlp_stash_at(l, b, stash);
        mlp_params w = mlp_params_at(l, l->w);
        float *wdy = wstash, *da = wdy + n, *du = da + (size_t)rows * h, *dg = l->ws;
        I->copy(be, wdy, dy, n * F);
        I->gemm(be, 0, 0, rows, h, d, 1.0f, dy, d, w.W2, h, 0.0f, dg, h);
        I->gelu_bwd(be, da, dg, s.a, (size_t)rows * h);
        I->gemm(be, 0, 0, rows, d, h, 1.0f, da, h, w.W1, d, 0.0f, du, d);
        if (dx) {
            I->layernorm_bwd(be, dx, scr, scr + d, du, s.x, s.mean, s.rstd, w.gam, rows, d);
            I->axpy(be, dx, 1.0f, dy, n);
        }
        break;
    }
    case MP_LAYER_EMBEDDING:
        I->copy(be, wstash, dy, ny * F);
        if (dx) I->zero(be, dx, n * F);
        break;
    case MP_LAYER_ATTENTION:
        attention_input(l, be, b, dy, dx, stash, wstash, scr);
        break;
    default:
        return mp_error_set(err, MP_ERR_INTERNAL, "layer: unknown type %d", (int)l->type);
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- W */

static void attention_weight(mp_layer *l, mp_backend *be, int b, const float *stash, const float *wst)
{
    const mp_backend_i *I = be->i;
    int T = l->tokens, d = l->din, rows = b * T;
    size_t n = (size_t)rows * d;
    attn_stash s = attn_stash_at(l, b, stash);
    attn_params w = attn_params_at(l, l->w), g = attn_params_at(l, l->g);
    const float *dy = wst, *dqkv = wst + n, *du = wst + 4 * n;
    I->gemm(be, 1, 0, d, d, rows, 1.0f, dy, d, s.o, d, 1.0f, g.Wo, d);
    I->col_sum(be, g.bo, dy, rows, d, 1.0f);
    I->gemm(be, 1, 0, 3 * d, d, rows, 1.0f, dqkv, 3 * d, s.u, d, 1.0f, g.Wqkv, d);
    I->col_sum(be, g.bqkv, dqkv, rows, 3 * d, 1.0f);
    I->layernorm_bwd(be, l->ws, g.gam, g.bet, du, s.x, s.mean, s.rstd, w.gam, rows, d);
}

/* See layers.h. */
mp_status mp_layer_backward_weight(mp_layer *l, mp_backend *be, int b, const float *stash,
                                   const float *wstash, mp_error *err)
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
        I->gemm(be, 1, 0, o, d, rows, 1.0f, wstash, o, sx, d, 1.0f, l->g, d);
        if (l->bias) I->col_sum(be, l->g + (size_t)o * d, wstash, rows, o, 1.0f);
        break;
    }
    case MP_LAYER_RELU:
    case MP_LAYER_GELU:
        break;
    case MP_LAYER_LAYERNORM:
        I->layernorm_bwd(be, l->ws, l->g, l->g + d, wstash, sx, sx + n, sx + n + rows, l->w, rows, d);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        mlp_stash s = mlp_stash_at(l, b, stash);
        mlp_params g = mlp_params_at(l, l->g);
        const float *dy = wstash, *da = dy + n, *du = da + (size_t)rows * h;
        I->gemm(be, 1, 0, d, h, rows, 1.0f, dy, d, s.g, h, 1.0f, g.W2, h);
        I->col_sum(be, g.b2, dy, rows, d, 1.0f);
        I->gemm(be, 1, 0, h, d, rows, 1.0f, da, h, s.u, d, 1.0f, g.W1, d);
        I->col_sum(be, g.b1, da, rows, h, 1.0f);
        I->layernorm_bwd(be, l->ws, g.gam, g.bet, du, s.x, s.mean, s.rstd, l->w, rows, d);
        break;
    }
    case MP_LAYER_EMBEDDING:
        I->embedding_bwd(be, l->g, l->g + (size_t)l->vocab * l->dout, wstash, sx, b, l->tokens, l->dout, l->vocab);
        break;
    case MP_LAYER_ATTENTION:
        attention_weight(l, be, b, stash, wstash);
        break;
    default:
        return mp_error_set(err, MP_ERR_INTERNAL, "layer: unknown type %d", (int)l->type);
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- stages */

size_t mp_stage_wstash_bytes(const mp_stage_net *s, int b)
{
    return (size_t)b * s->wstash_per_sample * F;
}

/* See layers.h: the layers last to first, as mp_stage_backward. */
mp_status mp_stage_backward_input(mp_stage_net *s, int b, const float *dy, float *dx,
                                  const float *stash, float *wstash, mp_error *err)
{
    for (int i = s->count - 1; i >= 0; i--) {
        const float *gin = (i == s->count - 1) ? dy : s->grad[i % 2];
        float *gout = (i == 0) ? dx : s->grad[(i + 1) % 2];
        mp_status st = mp_layer_backward_input(&s->layers[i], s->be, b, gin, gout,
                                               stash + (size_t)b * s->stash_off[i],
                                               wstash + (size_t)b * s->wstash_off[i], err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

/* See layers.h. Each layer's gradients are its own, so the order is free. */
mp_status mp_stage_backward_weight(mp_stage_net *s, int b, const float *stash, const float *wstash,
                                   mp_error *err)
{
    for (int i = s->count - 1; i >= 0; i--) {
        mp_status st = mp_layer_backward_weight(&s->layers[i], s->be, b,
                                                stash + (size_t)b * s->stash_off[i],
                                                wstash + (size_t)b * s->wstash_off[i], err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}
