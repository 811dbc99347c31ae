/* fuzz_plan.c — libFuzzer target for mp_plan_parse: a plan that parses must
 * print (mp_plan_to_json) to text that parses again to the same shape, and
 * mp_plan_check must not crash; a rejected input leaves the plan zeroed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_plan p, q;
    mp_error e;
    mp_error_clear(&e);
    if (mp_plan_parse((const char *)data, size, "fuzz", &p, &e) != MP_OK) {
        static const mp_plan z;
        if (memcmp(&p, &z, sizeof z) != 0 || e.msg[0] == 0) abort();
        return 0;
    }
    mp_error_clear(&e);
    (void)mp_plan_check(&p, p.stages[p.num_stages - 1].last + 1, 8, "fuzz", &e);
    char *s = mp_plan_to_json(&p);
    if (!s) abort();
    mp_error_clear(&e);
    if (mp_plan_parse(s, strlen(s), "again", &q, &e) != MP_OK) abort();
    if (q.num_stages != p.num_stages || q.global_batch != p.global_batch ||
        q.has_prediction != p.has_prediction || q.max_wait_ms != p.max_wait_ms ||
        memcmp(q.stages, p.stages, (size_t)p.num_stages * sizeof *p.stages) != 0)
        abort();
    free(s);
    mp_plan_free(&q);
    mp_plan_free(&p);
    return 0;
}
