/* fuzz_evaluate.c — libFuzzer target for mp_plan_evaluate: any plan that
 * parses is checked against a fixed 8-layer profile with split backward
 * times (tests/fixtures/fuzz_eval.profile.json, read from the repo root as
 * `make fuzz` runs) and an 8-device cluster, and, when it passes, simulated
 * with a trace (every schedule, data parallelism, recompute); the
 * prediction must be finite and positive, a rejection must say why, nothing
 * may leak. Plans of more than 64 micro-batches or 16 stages are skipped
 * (speed). Seeds: tests/fixtures/fuzz_eval_*.json. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "evaluate.h"
#include "plan.h"
#include "profile.h"

static const char CLUSTER[] =
    "{\"format\": \"mpplan-cluster/1\", \"devices\": ["
    "{\"name\": \"a\", \"memory\": \"1GiB\", \"speed\": 1.5}, {\"name\": \"b\", \"memory\": \"1GiB\", \"speed\": 1},"
    "{\"name\": \"c\", \"memory\": \"512MiB\", \"speed\": 1}, {\"name\": \"d\", \"memory\": \"1GiB\", \"speed\": 0.5},"
    "{\"name\": \"e\", \"memory\": \"1GiB\", \"speed\": 1}, {\"name\": \"f\", \"memory\": \"2GiB\", \"speed\": 2},"
    "{\"name\": \"g\", \"memory\": \"1GiB\", \"speed\": 1}, {\"name\": \"h\", \"memory\": \"64MiB\", \"speed\": 1}],"
    "\"link\": {\"bandwidth\": \"10GB/s\", \"latency\": \"20us\"},"
    "\"links\": [{\"src\": 0, \"dst\": 1, \"bandwidth\": \"50GB/s\", \"latency\": \"5us\"}]}";

static mp_profile prof;
static mp_cluster cluster;

static void setup(void)
{
    static int done;
    if (done) return;
    mp_error e;
    mp_error_clear(&e);
    if (mp_profile_load("tests/fixtures/fuzz_eval.profile.json", &prof, &e) != MP_OK ||
        mp_cluster_parse(CLUSTER, sizeof CLUSTER - 1, "fuzz cluster", &cluster, &e) != MP_OK)
        abort();   /* run from the repo root */
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    mp_plan p;
    mp_error e;
    mp_error_clear(&e);
    if (mp_plan_parse((const char *)data, size, "fuzz", &p, &e) != MP_OK) return 0;
    if (p.num_microbatches > 64 || p.num_stages > 16) {
        mp_plan_free(&p);
        return 0;
    }
    mp_trace tr = { 0 };
    mp_error_clear(&e);
    if (mp_plan_evaluate(&p, &prof, &cluster, MP_DEFAULT_STATE_FACTOR, &tr, &e) == MP_OK) {
        if (!p.has_prediction || !(p.predicted.iteration_ms > 0) || !isfinite(p.predicted.iteration_ms) ||
            !(p.predicted.bubble_fraction >= 0 && p.predicted.bubble_fraction <= 1) || p.predicted.num_peaks < 1)
            abort();
        for (int i = 0; i < p.predicted.num_peaks; i++)
            if (!(p.predicted.peak_memory_bytes[i] >= 0)) abort();
        (void)mp_plan_fits(&p, &cluster);
    } else if (e.msg[0] == 0) {
        abort();   /* a rejection names its reason */
    }
    mp_trace_free(&tr);
    mp_plan_free(&p);
    return 0;
}
