/* fuzz_cluster.c — libFuzzer target for mp_cluster_parse: any input either
 * parses into a cluster whose links all have positive bandwidth and
 * non-negative latency, or fails with a zeroed cluster; nothing leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_cluster c;
    mp_error e;
    mp_error_clear(&e);
    if (mp_cluster_parse((const char *)data, size, "fuzz", &c, &e) == MP_OK) {
        for (int s = 0; s < c.num_devices; s++) {
            if (!(c.devices[s].memory_bytes > 0) || !(c.devices[s].speed > 0)) abort();
            for (int d = 0; d < c.num_devices && d < 64; d++)
                if (!(mp_cluster_transfer_ms(&c, s, d, 1e6) >= 0)) abort();
        }
        mp_cluster_free(&c);
    } else {
        static const mp_cluster z;
        if (memcmp(&c, &z, sizeof z) != 0 || e.msg[0] == 0) abort();
    }
    return 0;
}
