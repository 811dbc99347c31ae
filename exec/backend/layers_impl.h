/* layers_impl.h — what layers.c and layers_split.c share (private to exec/backend):
 * the layernorm epsilon and the attention and residual-MLP stash and parameter layouts.
 * defines: LN_EPS, attn_stash, attn_params, attn_stash_at, attn_params_at,
 *          mlp_stash, mlp_params, mlp_stash_at, mlp_params_at, mp_layer_check_batch,
 *          mp_attention_heads_backward */
#ifndef MP_LAYERS_IMPL_H
#define MP_LAYERS_IMPL_H

#include "layers.h"

#define LN_EPS 1e-5f
#define F sizeof(float)

/* Attention's stash for b samples (rows = b*T): x, mean, rstd, u = LN(x),
 * qkv (rows of q|k|v), o (heads' outputs side by side), p (probabilities,
 * [b][heads][T][T]). Parameters: gamma, beta, Wqkv, bqkv, Wo, bo. */
typedef struct {
    const float *x, *mean, *rstd, *u, *qkv, *o, *p;
} attn_stash;

typedef struct {
    float *gam, *bet, *Wqkv, *bqkv, *Wo, *bo;
} attn_params;

static inline attn_stash attn_stash_at(const mp_layer *l, int b, const float *stash)
{
    size_t rows = (size_t)b * l->tokens, n = rows * l->din;
    attn_stash a;
    a.x = stash;
    a.mean = a.x + n;
    a.rstd = a.mean + rows;
    a.u = a.rstd + rows;
    a.qkv = a.u + n;
    a.o = a.qkv + 3 * n;
    a.p = a.o + n;
    return a;
}

static inline attn_params attn_params_at(const mp_layer *l, float *w)
{
    size_t d = (size_t)l->din;
    attn_params a;
    a.gam = w;
    a.bet = a.gam + d;
    a.Wqkv = a.bet + d;
    a.bqkv = a.Wqkv + 3 * d * d;
    a.Wo = a.bqkv + 3 * d;
    a.bo = a.Wo + d * d;
    return a;
}

/* The residual MLP's stash for b samples (rows = b*T): x, mean, rstd,
 * u = LN(x), a = u W1 + b1 (rows x hidden), g = gelu(a). Parameters: gamma,
 * beta, W1 (hidden x d), b1, W2 (d x hidden), b2. */
typedef struct {
    const float *x, *mean, *rstd, *u, *a, *g;
} mlp_stash;

typedef struct {
    float *gam, *bet, *W1, *b1, *W2, *b2;
} mlp_params;

static inline mlp_stash mlp_stash_at(const mp_layer *l, int b, const float *stash)
{
    size_t rows = (size_t)b * l->tokens, n = rows * l->din;
    mlp_stash s;
    s.x = stash;
    s.mean = s.x + n;
    s.rstd = s.mean + rows;
    s.u = s.rstd + rows;
    s.a = s.u + n;
    s.g = s.a + rows * l->hidden;
    return s;
}

static inline mlp_params mlp_params_at(const mp_layer *l, float *w)
{
    size_t d = (size_t)l->din, h = (size_t)l->hidden;
    mlp_params p;
    p.gam = w;
    p.bet = p.gam + d;
    p.W1 = p.bet + d;
    p.b1 = p.W1 + h * d;
    p.W2 = p.b1 + h;
    p.b2 = p.W2 + d * h;
    return p;
}

/* MP_ERR_INTERNAL unless 1 <= b <= l->max_batch. */
mp_status mp_layer_check_batch(const mp_layer *l, int b, mp_error *err);

/* Attention's per-sample, per-head backward (in layers.c), shared by the
 * fused and the split backward: from dout (the gradient at the heads'
 * outputs, rows x d) and the stash, writes dqkv (rows of dq|dk|dv);
 * ds is T*T*heads floats of scratch. */
void mp_attention_heads_backward(const mp_layer *l, mp_backend *be, int b, const attn_stash *s,
                                 const float *dout, float *dqkv, float *ds);

#endif
