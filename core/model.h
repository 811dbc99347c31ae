/* model.h — model specs ("format": "mpkit-model/1"), see docs/model-format.md.
 * defines: mp_layer_type, mp_loss_type, mp_model_layer, mp_model, mp_model_load,
 *          mp_model_parse, mp_model_free, mp_layer_type_name, mp_model_param_count,
 *          mp_model_is_tokens, mp_model_labels_per_sample
 *
 * A spec lists layers (linear, relu, gelu, layernorm, residual_mlp, and for
 * token models embedding and attention) and {"repeat": R, "layers": [...]}
 * groups (nestable). Loading expands every repeat, so each entry of
 * mp_model.layers is one planning unit (one profile layer) with its
 * input/output width and parameter count.
 *
 * Widths are features per SAMPLE everywhere, so every tool sizes buffers the
 * same way for both kinds of model. A token model's sample is one sequence of
 * seq_len tokens: its input is the seq_len token ids stored as floats (exact:
 * vocab <= 2^20 < 2^24), and a layer that acts per token of width w has
 * in_dim = seq_len * w; `tokens` (rows per sample) says how to split it. */
#ifndef MP_MODEL_H
#define MP_MODEL_H

#include <stddef.h>
#include "mp_status.h"

typedef enum {
    MP_LAYER_LINEAR,
    MP_LAYER_RELU,
    MP_LAYER_GELU,
    MP_LAYER_LAYERNORM,
    MP_LAYER_RESIDUAL_MLP,  /* y = x + W2*gelu(W1*layernorm(x) + b1) + b2 */
    MP_LAYER_EMBEDDING,     /* y[t] = E[token_t] + P[t] (token models, first layer only) */
    MP_LAYER_ATTENTION,     /* y = x + Wo*MHA(layernorm(x)) + bo, causal by default */
    MP_LAYER_NUM_TYPES
} mp_layer_type;

typedef enum { MP_LOSS_MSE, MP_LOSS_XENT } mp_loss_type;

typedef struct {
    char *name;          /* e.g. "block3.residual_mlp" */
    mp_layer_type type;
    int in_dim, out_dim; /* features per sample (token models: tokens * width; embedding in: the ids) */
    int tokens;          /* rows per sample: seq_len in token models, 1 otherwise */
    int hidden;          /* residual_mlp: hidden width; else 0 */
    int bias;            /* linear: 1 with a bias vector; else 0 */
    int heads, causal;   /* attention: number of heads, 1 for a causal mask; else 0 */
    int vocab;           /* embedding: rows of the token table; else 0 */
    long long param_count;
} mp_model_layer;

typedef struct {
    char *name;
    int input_dim;       /* features per input sample; token models: seq_len (the ids) */
    int vocab, seq_len;  /* token models ("input": {"type": "tokens", ...}); else 0 */
    mp_loss_type loss;
    int classes;         /* cross_entropy: classes per label (= final width per token); mse: 0 */
    int num_layers;
    mp_model_layer *layers;
} mp_model;

/* Loads, validates and expands a model spec. On error returns MP_ERR_IO or
 * MP_ERR_INPUT with one message naming the file and the field, e.g.
 * "m.json: layers[2].layers[0].hidden: must be a positive integer (got 0)";
 * *m is left zeroed. Free with mp_model_free. */
mp_status mp_model_load(const char *path, mp_model *m, mp_error *err);

/* Same as mp_model_load from a buffer; `name` is used in messages. */
mp_status mp_model_parse(const char *text, size_t len, const char *name,
                         mp_model *m, mp_error *err);

/* Frees everything m owns and zeroes it; safe on a zeroed model. */
void mp_model_free(mp_model *m);

/* "linear", "relu", "gelu", "layernorm", "residual_mlp", "embedding", "attention". */
const char *mp_layer_type_name(mp_layer_type t);

/* Sum of param_count over all layers. */
long long mp_model_param_count(const mp_model *m);

/* 1 for a token model ("input": {"type": "tokens"}), else 0. */
int mp_model_is_tokens(const mp_model *m);

/* Integer labels per sample the loss takes: cross_entropy 1 (token models:
 * seq_len, one next token per position), mse 0 (its targets are
 * out_dim floats per sample). */
int mp_model_labels_per_sample(const mp_model *m);

#endif
