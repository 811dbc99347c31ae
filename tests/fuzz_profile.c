/* fuzz_profile.c — libFuzzer target for mp_profile_parse: any input either
 * parses (and every layer's time functions evaluate to finite values >= 0)
 * or fails with a zeroed profile and a message; nothing leaks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_profile p;
    mp_error e;
    mp_error_clear(&e);
    if (mp_profile_parse((const char *)data, size, "fuzz", &p, &e) == MP_OK) {
        if (p.num_layers < 1) abort();
        for (int i = 0; i < p.num_layers; i++) {
            double a = mp_time_eval(&p.layers[i].fwd, 1), b = mp_time_eval(&p.layers[i].bwd, 3.5);
            if (!(a >= 0) || !(b >= 0)) abort();
        }
        mp_profile_free(&p);
    } else {
        static const mp_profile z;
        if (memcmp(&p, &z, sizeof z) != 0 || e.msg[0] == 0) abort();
    }
    return 0;
}
