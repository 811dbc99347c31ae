/* fuzz_model.c — libFuzzer target for the model spec loader (mp_model_parse).
 * Any input must either load (then every width and parameter count is
 * consistent) or fail with a message; never crash, leak or overflow. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_model m;
    mp_error err = {0};
    if (mp_model_parse((const char *)data, size, "fuzz", &m, &err) == MP_OK) {
        for (int i = 0; i < m.num_layers; i++) {
            if (m.layers[i].in_dim <= 0 || m.layers[i].out_dim <= 0 || m.layers[i].param_count < 0) abort();
            if (i > 0 && m.layers[i].in_dim != m.layers[i - 1].out_dim) abort();
        }
        mp_model_free(&m);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
