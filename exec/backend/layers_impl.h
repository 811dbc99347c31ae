/* layers_impl.h — what layers.c and layers_split.c share (private to exec/backend):
 * the layernorm epsilon and attention's stash and parameter layouts.
 * defines: LN_EPS, attn_stash, attn_params, attn_stash_at, attn_params_at,
 *          mp_layer_check_batch */
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

/* MP_ERR_INTERNAL unless 1 <= b <= l->max_batch. */
mp_status mp_layer_check_batch(const mp_layer *l, int b, mp_error *err);

#endif
