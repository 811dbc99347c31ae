/* model.h — model specs ("format": "mpkit-model/1"), see docs/model-format.md.
 * defines: mp_layer_type, mp_loss_type, mp_model_layer, mp_model, mp_model_load,
 *          mp_model_parse, mp_model_free, mp_layer_type_name, mp_model_param_count
 *
 * A spec lists layers (linear, relu, gelu, layernorm, residual_mlp) and
 * {"repeat": R, "layers": [...]} groups (nestable). Loading expands every
 * repeat, so each entry of mp_model.layers is one planning unit (one profile
 * layer) with its input/output width and parameter count. */
#ifndef MP_MODEL_H
#define MP_MODEL_H

#include <stddef.h>
#include "mp_status.h"

typedef enum {
    MP_LAYER_LINEAR,
    MP_LAYER_RELU,
    MP_LAYER_GELU,
    MP_LAYER_LAYERNORM,
    MP_LAYER_RESIDUAL_MLP   /* y = x + W2*gelu(W1*layernorm(x) + b1) + b2 */
} mp_layer_type;

typedef enum { MP_LOSS_MSE, MP_LOSS_XENT } mp_loss_type;

typedef struct {
    char *name;          /* e.g. "block3.residual_mlp" */
    mp_layer_type type;
    int in_dim, out_dim; /* features per sample */
    int hidden;          /* residual_mlp: hidden width; else 0 */
    int bias;            /* linear: 1 with a bias vector; else 0 */
    long long param_count;
} mp_model_layer;

typedef struct {
    char *name;
    int input_dim;
    mp_loss_type loss;
    int classes;         /* cross_entropy: number of classes (= final out_dim); mse: 0 */
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

/* "linear", "relu", "gelu", "layernorm", "residual_mlp". */
const char *mp_layer_type_name(mp_layer_type t);

/* Sum of param_count over all layers. */
long long mp_model_param_count(const mp_model *m);

#endif
