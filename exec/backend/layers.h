/* layers.h — trainable layers and stages written once on the backend primitives.
 * defines: mp_layer, mp_optim, mp_layer_init, mp_layer_free, mp_layer_forward,
 *          mp_layer_backward, mp_layer_zero_grad, mp_layer_update,
 *          mp_layer_param_bytes, mp_layer_out_bytes_per_sample,
 *          mp_layer_stash_bytes_per_sample, mp_layer_workspace_bytes,
 *          mp_layer_spec_stash_bytes_per_sample, mp_layer_spec_workspace_bytes,
 *          mp_layer_get_params, mp_layer_set_params, mp_layer_get_grads,
 *          mp_loss_eval, mp_stage_net, mp_stage_init, mp_stage_free,
 *          mp_stage_forward, mp_stage_backward, mp_stage_zero_grad,
 *          mp_stage_update, mp_stage_stash_bytes,
 *          mp_layer_backward_input, mp_layer_backward_weight,
 *          mp_layer_wstash_bytes_per_sample, mp_layer_spec_wstash_bytes_per_sample,
 *          mp_stage_backward_input, mp_stage_backward_weight, mp_stage_wstash_bytes
 *
 * All tensors are fp32 row-major [batch, features] in the backend's memory;
 * in token models a sample's features are its `tokens` rows of the layer's
 * per-token width ([batch, seq_len, width]), and per-token layers act on all
 * batch*seq_len rows.
 * A layer's forward writes everything its backward needs into a caller-owned
 * "stash" (stash_bytes_per_sample * b bytes per micro-batch), including a copy
 * of its input, so backward needs only (dy, stash) and recompute is simply
 * forward again from the saved input. Backward ACCUMULATES (+=) the weight
 * gradients, so calling it for micro-batches 0..m-1 sums their gradients in
 * index order; zero_grad resets them. See docs/model-format.md ("What a layer
 * keeps") for the exact stash layouts.
 * The backward also comes split in two (zero-bubble schedules): backward_input
 * (B) writes dx and keeps in a second caller-owned "W-stash" the gradients
 * the weight gradients need; backward_weight (W) then accumulates the weight
 * gradients from the stash and the W-stash. B then W gives bitwise the same
 * dx and weight gradients as the fused backward (layers_split.c). */
#ifndef MP_LAYERS_H
#define MP_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"
#include "model.h"

typedef struct {
    mp_layer_type type;
    int in, out;          /* features per sample */
    int tokens;           /* rows per sample (seq_len; 1 for input_dim models) */
    int din, dout;        /* features per row: in/tokens, out/tokens */
    int hidden, bias, heads, causal, vocab;
    int max_batch;        /* forward/backward accept 1 <= b <= max_batch */
    size_t stash_floats;  /* per sample */
    size_t nparams;       /* floats in w (and g, m, v) */
    float *w, *g;         /* parameters and their gradients, contiguous */
    float *m, *v;         /* Adam moments, allocated by the first Adam update */
    float *ws;            /* backward workspace for max_batch samples */
    size_t ws_floats;
    size_t wstash_floats; /* per sample: what backward_input keeps for backward_weight */
    float *bscr;          /* 2*din floats of B scratch, allocated by the first backward_input */
} mp_layer;

typedef enum { MP_OPTIM_SGD, MP_OPTIM_ADAM } mp_optim_kind;

typedef struct {
    mp_optim_kind kind;
    float lr, beta1, beta2, eps;  /* beta1/beta2/eps: Adam only */
    int step;                     /* Adam: the update's step number, from 1 */
} mp_optim;

/* Allocates the layer described by `spec` for micro-batches up to max_batch
 * and initialises its parameters deterministically from `seed` (uniform in
 * +-1/sqrt(fan_in) for weights and biases, layernorm gamma = 1, beta = 0);
 * gradients start at zero. */
mp_status mp_layer_init(mp_layer *l, mp_backend *be, const mp_model_layer *spec,
                        int max_batch, uint64_t seed, mp_error *err);
void mp_layer_free(mp_layer *l, mp_backend *be);

/* Byte accounting (what the layer actually allocates and keeps), with T rows
 * per sample of width d (T = 1 without tokens): param_bytes = 4*nparams;
 * out = 4*out; stash per sample: linear/relu/gelu 4*in (the input),
 * layernorm 4*T*(d+2) (input, mean, rstd), residual_mlp 4*T*(2d + 2 + 2h)
 * (input, mean, rstd, normalised input, pre- and post-GELU hidden),
 * embedding 4*T (the ids), attention 4*(T*(6d + 2) + heads*T*T) (input, mean,
 * rstd, normalised input, q|k|v, head outputs, attention probabilities).
 * workspace: transient backward scratch for max_batch B, allocated once:
 * residual_mlp 4*B*T*(2h + 2d), layernorm 4*B*T*d, attention
 * 4*(4*B*T*d + heads*T*T). docs/model-format.md has the table. */
size_t mp_layer_param_bytes(const mp_layer *l);
size_t mp_layer_out_bytes_per_sample(const mp_layer *l);
size_t mp_layer_stash_bytes_per_sample(const mp_layer *l);
size_t mp_layer_workspace_bytes(const mp_layer *l);
/* The same numbers from a spec, before allocating anything. */
size_t mp_layer_spec_stash_bytes_per_sample(const mp_model_layer *spec);
size_t mp_layer_spec_workspace_bytes(const mp_model_layer *spec, int max_batch);

/* y[b,out] = layer(x[b,in]); fills stash. x and y must not overlap. */
mp_status mp_layer_forward(mp_layer *l, mp_backend *be, int b, const float *x, float *y,
                           float *stash, mp_error *err);
/* dx[b,in] = input gradient (skipped when dx is NULL); weight gradients +=. */
mp_status mp_layer_backward(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                            const float *stash, mp_error *err);
/* The split backward. B: dx[b,in] (skipped when dx is NULL) and the
 * W-stash (wstash_bytes_per_sample * b bytes) filled; no weight gradient is
 * touched. W: weight gradients += from the stash and W-stash of the same
 * micro-batch. backward_input then backward_weight is bitwise the fused
 * mp_layer_backward. W-stash per sample (T rows of width d, out width o,
 * hidden h): linear 4*T*o (dy), relu/gelu 0, layernorm 4*T*d (dy),
 * residual_mlp 4*T*(2d + h) (dy, dGELU-input, dLN-output), embedding 4*T*o
 * (dy), attention 4*5*T*d (dy, dqkv, dLN-output). */
mp_status mp_layer_backward_input(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                                  const float *stash, float *wstash, mp_error *err);
mp_status mp_layer_backward_weight(mp_layer *l, mp_backend *be, int b, const float *stash,
                                   const float *wstash, mp_error *err);
size_t mp_layer_wstash_bytes_per_sample(const mp_layer *l);
size_t mp_layer_spec_wstash_bytes_per_sample(const mp_model_layer *spec);
void mp_layer_zero_grad(mp_layer *l, mp_backend *be);
/* One optimizer step over all of the layer's parameters with its gradients. */
mp_status mp_layer_update(mp_layer *l, mp_backend *be, const mp_optim *opt, mp_error *err);

/* Host copies of the parameters / gradients (nparams floats), in the order
 * linear: W[out,in], b[out]; layernorm: gamma[d], beta[d]; residual_mlp:
 * gamma[d], beta[d], W1[h,d], b1[h], W2[d,h], b2[d]; embedding: E[vocab,d],
 * P[seq_len,d]; attention: gamma[d], beta[d], Wqkv[3d,d], bqkv[3d], Wo[d,d],
 * bo[d] (q, k, v are rows 0..d-1, d..2d-1, 2d..3d-1 of Wqkv; head h uses
 * columns h*d/heads .. (h+1)*d/heads - 1 of each). */
void mp_layer_get_params(const mp_layer *l, mp_backend *be, float *host);
void mp_layer_set_params(mp_layer *l, mp_backend *be, const float *host);
void mp_layer_get_grads(const mp_layer *l, mp_backend *be, float *host);

/* The model's loss on pred[b, out]: target is float[b,out] (mse) or int
 * labels in [0, classes), mp_model_labels_per_sample(m) per sample
 * (cross_entropy), in backend memory. Writes dpred = scale * dloss/dpred and,
 * after a sync, *loss = scale * the sum over samples of each sample's loss
 * (definitions in backend_impl.h); a token model's sample loss is the mean
 * over its seq_len tokens, so scale = 1/batch gives the mean over all tokens
 * of the batch. Synchronises the backend. */
mp_status mp_loss_eval(mp_backend *be, const mp_model *m, int b, const float *pred,
                       const void *target, float *dpred, float scale, float *loss,
                       mp_error *err);

/* ---------------------------------------------------------------- stages */

/* A stage: model layers first..last on one backend (one worker thread). */
typedef struct {
    mp_backend *be;
    int first, count;
    int in_dim, out_dim, max_batch;
    mp_layer *layers;
    size_t *stash_off;            /* per layer: offset in floats per sample */
    size_t stash_per_sample;      /* floats */
    size_t *wstash_off;           /* per layer: W-stash offset in floats per sample */
    size_t wstash_per_sample;     /* floats */
    float *act[2], *grad[2];      /* transient activations between layers */
} mp_stage_net;

/* Builds layers first..last (inclusive) of m. Layer i's parameters are seeded
 * from (seed, i), so a layer's initial weights do not depend on the split. */
mp_status mp_stage_init(mp_stage_net *s, mp_backend *be, const mp_model *m, int first,
                        int last, int max_batch, uint64_t seed, mp_error *err);
void mp_stage_free(mp_stage_net *s);

/* Bytes of stash one micro-batch of b samples needs (sum over the layers). */
size_t mp_stage_stash_bytes(const mp_stage_net *s, int b);

/* Forward of micro-batch x[b,in_dim] -> y[b,out_dim] through every layer,
 * filling stash (mp_stage_stash_bytes(s, b) bytes). y may be NULL: that is
 * recompute (forward again from the saved input just to refill the stash). */
mp_status mp_stage_forward(mp_stage_net *s, int b, const float *x, float *y, float *stash,
                           mp_error *err);
/* Backward from dy[b,out_dim] with the stash of the same micro-batch; dx may
 * be NULL (first stage). Weight gradients accumulate. */
mp_status mp_stage_backward(mp_stage_net *s, int b, const float *dy, float *dx,
                            const float *stash, mp_error *err);
/* The split backward of the stage (see mp_layer_backward_input): B from
 * dy with the micro-batch's stash, filling its W-stash
 * (mp_stage_wstash_bytes(s, b) bytes); then W accumulates the weight
 * gradients. Together bitwise mp_stage_backward. */
size_t mp_stage_wstash_bytes(const mp_stage_net *s, int b);
mp_status mp_stage_backward_input(mp_stage_net *s, int b, const float *dy, float *dx,
                                  const float *stash, float *wstash, mp_error *err);
mp_status mp_stage_backward_weight(mp_stage_net *s, int b, const float *stash, const float *wstash,
                                   mp_error *err);
void mp_stage_zero_grad(mp_stage_net *s);
mp_status mp_stage_update(mp_stage_net *s, const mp_optim *opt, mp_error *err);

#endif
