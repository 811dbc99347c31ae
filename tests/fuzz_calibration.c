/* fuzz_calibration.c — libFuzzer target for mp_serve_calibration_parse: any
 * input either yields terms within their documented ranges or fails with a
 * message and leaves the terms untouched; nothing leaks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve_calibration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_serve_terms t = { -1, -1, -1 };
    mp_error e;
    mp_error_clear(&e);
    if (mp_serve_calibration_parse((const char *)data, size, "fuzz", &t, &e) == MP_OK) {
        if (!(t.fwd_scale > 0) || !isfinite(t.fwd_scale) || !(t.batch_overhead_ms >= 0) ||
            !isfinite(t.batch_overhead_ms) || !(t.dispatch_ms >= 0) || !isfinite(t.dispatch_ms))
            abort();
        if (t.n_spread != 0 && (t.n_spread < 2 || t.n_spread > MP_SERVE_SPREAD_MAX)) abort();
        for (int k = 0; k < t.n_spread; k++)
            if (!(t.spread[k] > 0) || !isfinite(t.spread[k]) || (k && t.spread[k] < t.spread[k - 1])) abort();
    } else if (t.fwd_scale != -1 || t.batch_overhead_ms != -1 || t.dispatch_ms != -1 || e.msg[0] == 0) {
        abort();
    }
    return 0;
}
