/* fuzz_model.c — libFuzzer target for the model spec loader (mp_model_parse).
 * Any input must either load (then every width and parameter count is
 * consistent, and a token model starts with its embedding, splits every
 * width into whole tokens and every attention width into whole heads) or
 * fail with a message; never crash, leak or overflow. Seeds: tests/fixtures
 * and profiles (token models among them). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "model.h"

static int consistent(const mp_model *m)
{
    int tok = mp_model_is_tokens(m);
    if (tok && (m->layers[0].type != MP_LAYER_EMBEDDING || m->input_dim != m->seq_len || m->classes != m->vocab))
        return 0;
    for (int i = 0; i < m->num_layers; i++) {
        const mp_model_layer *l = &m->layers[i];
        if (l->in_dim <= 0 || l->out_dim <= 0 || l->param_count < 0) return 0;
        if (i > 0 && l->in_dim != m->layers[i - 1].out_dim) return 0;
        if (l->tokens != (tok ? m->seq_len : 1) || l->in_dim % l->tokens || l->out_dim % l->tokens) return 0;
        if (l->type == MP_LAYER_EMBEDDING && (i > 0 || l->in_dim != l->tokens)) return 0;
        if (l->type == MP_LAYER_ATTENTION && (!tok || l->heads < 1 || (l->in_dim / l->tokens) % l->heads)) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_model m;
    mp_error err = {0};
    if (mp_model_parse((const char *)data, size, "fuzz", &m, &err) == MP_OK) {
        if (!consistent(&m)) abort();
        mp_model_free(&m);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
