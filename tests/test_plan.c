/* test_plan.c — plan loading, consistency, checking, JSON, copying (core/plan.c). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plan.h"
#include "testutil.h"

static int is_zero(const mp_plan *p)
{
    static const mp_plan z;
    return memcmp(p, &z, sizeof z) == 0;
}

static int same_plan(const mp_plan *a, const mp_plan *b)
{
    if (a->mode != b->mode || a->schedule != b->schedule || a->chunks_per_device != b->chunks_per_device ||
        a->global_batch != b->global_batch || a->microbatch_size != b->microbatch_size ||
        a->num_microbatches != b->num_microbatches || a->num_stages != b->num_stages ||
        a->has_prediction != b->has_prediction || a->max_batch != b->max_batch ||
        a->max_wait_ms != b->max_wait_ms || mp_plan_replicas(a) != mp_plan_replicas(b))
        return 0;
    for (int s = 0; s < a->num_stages; s++)
        if (memcmp(&a->stages[s], &b->stages[s], sizeof a->stages[s])) return 0;
    if (!a->has_prediction) return 1;
    const mp_prediction *x = &a->predicted, *y = &b->predicted;
    if (x->iteration_ms != y->iteration_ms || x->samples_per_s != y->samples_per_s ||
        x->bubble_fraction != y->bubble_fraction || x->num_peaks != y->num_peaks ||
        x->bottleneck_stage != y->bottleneck_stage)
        return 0;
    for (int i = 0; i < x->num_peaks; i++)
        if (x->peak_memory_bytes[i] != y->peak_memory_bytes[i]) return 0;
    return 1;
}

static void expect_error(const char *text, ...)
{
    mp_plan p;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_plan_parse(text, strlen(text), "p.json", &p, &e), MP_ERR_INPUT);
    CU_ASSERT(is_zero(&p));
    CU_ASSERT_EQUAL(strncmp(e.msg, "p.json", 6), 0);
    va_list ap;
    va_start(ap, text);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(e.msg, frag)) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e.msg, frag);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, frag));
    }
    va_end(ap);
}

static mp_plan load(const char *fixture)
{
    mp_plan p;
    mp_error e;
    mp_error_clear(&e);
    if (mp_plan_load(mp_test_fixture(fixture), &p, &e)) fprintf(stderr, "%s\n", e.msg);
    CU_ASSERT_EQUAL(e.status, MP_OK);
    return p;
}

#define HDR "\"format\": \"mpplan-plan/1\""
#define ST(a, b, d) "{\"layers\": [" #a ", " #b "], \"device\": " #d ", \"recompute\": false}"

static void test_names(void)
{
    mp_schedule_kind k;
    CU_ASSERT_STRING_EQUAL(mp_schedule_name(MP_SCHED_GPIPE), "gpipe");
    CU_ASSERT_STRING_EQUAL(mp_schedule_name(MP_SCHED_1F1B), "1f1b");
    CU_ASSERT_STRING_EQUAL(mp_schedule_name(MP_SCHED_INTERLEAVED), "interleaved");
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(mp_schedule_from_name(mp_schedule_name((mp_schedule_kind)i), &k), MP_OK);
        CU_ASSERT_EQUAL(k, (mp_schedule_kind)i);
    }
    CU_ASSERT_EQUAL(mp_schedule_from_name("1F1B", &k), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_schedule_from_name("", &k), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_schedule_from_name(NULL, &k), MP_ERR_INPUT);
}

static void test_load_fixtures(void)
{
    mp_plan p = load("plan_1f1b.json");
    CU_ASSERT_EQUAL(p.mode, MP_MODE_TRAIN);
    CU_ASSERT_EQUAL(p.schedule, MP_SCHED_1F1B);
    CU_ASSERT_EQUAL(p.chunks_per_device, 1);
    CU_ASSERT_EQUAL(p.global_batch, 32);
    CU_ASSERT_EQUAL(p.microbatch_size, 4);
    CU_ASSERT_EQUAL(p.num_microbatches, 8);
    CU_ASSERT_EQUAL_FATAL(p.num_stages, 3);
    CU_ASSERT_EQUAL(p.stages[0].first, 0);
    CU_ASSERT_EQUAL(p.stages[0].last, 1);
    CU_ASSERT_EQUAL(p.stages[1].recompute, 1);
    CU_ASSERT_EQUAL(p.stages[2].device, 2);
    CU_ASSERT_EQUAL_FATAL(p.has_prediction, 1);
    CU_ASSERT_EQUAL(p.predicted.iteration_ms, 123.456);
    CU_ASSERT_EQUAL_FATAL(p.predicted.num_peaks, 3);
    CU_ASSERT_EQUAL(p.predicted.peak_memory_bytes[1], 9437184.5);
    CU_ASSERT_EQUAL(p.predicted.bottleneck_stage, 1);
    CU_ASSERT_EQUAL(p.max_batch, 0);
    CU_ASSERT_EQUAL(p.max_wait_ms, 0);
    mp_plan_free(&p);
    CU_ASSERT(is_zero(&p));
    mp_plan_free(&p);

    p = load("plan_interleaved.json");
    CU_ASSERT_EQUAL(p.schedule, MP_SCHED_INTERLEAVED);
    CU_ASSERT_EQUAL(p.chunks_per_device, 2);
    CU_ASSERT_EQUAL(p.num_stages, 4);
    CU_ASSERT_EQUAL(p.predicted.num_peaks, 2);   /* one per device */
    CU_ASSERT_EQUAL(p.mode, MP_MODE_TRAIN);      /* default */
    mp_plan_free(&p);

    p = load("plan_serve.json");
    CU_ASSERT_EQUAL(p.mode, MP_MODE_SERVE);
    CU_ASSERT_EQUAL(p.max_batch, 16);
    CU_ASSERT_EQUAL(p.max_wait_ms, 2.5);
    CU_ASSERT_EQUAL(p.predicted.samples_per_s, 4923.0769230769229);
    CU_ASSERT_EQUAL(p.predicted.serve.p50_ms, 4.1);
    CU_ASSERT_EQUAL(p.predicted.serve.p99_ms, 7.9);
    CU_ASSERT_EQUAL(mp_plan_slo_ms(&p), -1);     /* none recorded */
    CU_ASSERT_EQUAL(p.has_terms, 0);
    mp_plan_free(&p);
}

static void test_parse_errors(void)
{
    mp_plan p;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_plan_load("/nonexistent/p.json", &p, &e), MP_ERR_IO);
    CU_ASSERT_STRING_EQUAL(e.msg, "/nonexistent/p.json: cannot open: No such file or directory");
    CU_ASSERT(is_zero(&p));

    const char *files[][2] = {
        {"bad_plan_split.json", ": stages[1].layers: starts at layer 3, expected 2"},
        {"bad_plan_batch.json", ": num_microbatches: 2 micro-batches of 4 samples do not make the global batch 10"},
    };
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s", mp_test_fixture(files[i][0]));
        mp_error_clear(&e);
        CU_ASSERT_EQUAL(mp_plan_load(path, &p, &e), MP_ERR_INPUT);
        CU_ASSERT_EQUAL(strncmp(e.msg, path, strlen(path)), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, files[i][1]));
        CU_ASSERT(is_zero(&p));
    }

#define B8 "\"global_batch\": 8, \"microbatch_size\": 2"
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [" ST(0, 1, 0) "]", "p.json:1:", NULL);
    expect_error("{\"format\": \"mpplan-plan/2\"}", "p.json: format: expected \"mpplan-plan/1\", got \"mpplan-plan/2\"", NULL);
    expect_error("{" HDR ", \"mode\": \"infer\", \"schedule\": \"gpipe\"}", "p.json: mode: unknown mode \"infer\"", NULL);
    expect_error("{" HDR ", " B8 "}", "p.json: schedule: missing", NULL);
    expect_error("{" HDR ", \"schedule\": \"zb\", " B8 "}", "schedule: unknown schedule \"zb\" (expected gpipe, 1f1b or interleaved)", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", \"microbatch_size\": 2}", "global_batch: missing", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", \"global_batch\": 0, \"microbatch_size\": 2}", "global_batch: must be >= 1", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", \"global_batch\": 8.5, \"microbatch_size\": 2}", "global_batch: must be an integer", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", \"global_batch\": \"8\", \"microbatch_size\": 2}", "global_batch: must be an integer", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", \"global_batch\": 8, \"microbatch_size\": 3, \"stages\": [" ST(0, 0, 0) "]}",
                 "microbatch_size: 3 does not divide the global batch 8", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"num_microbatches\": 3, \"stages\": [" ST(0, 0, 0) "]}",
                 "num_microbatches: 3 micro-batches of 2 samples do not make the global batch 8", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 "}", "p.json: stages: missing", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": []}", "stages: must not be empty", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [" ST(1, 2, 0) "]}",
                 "stages[0].layers: starts at layer 1, expected 0", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [" ST(0, 2, 0) ", " ST(2, 3, 1) "]}",
                 "stages[1].layers: starts at layer 2, expected 3", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [" ST(0, 2, 0) ", " ST(3, 1, 1) "]}",
                 "stages[1].layers: [3, 1] is not a layer range", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [{\"layers\": [0], \"device\": 0}]}",
                 "stages[0].layers: must be [first, last]", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [{\"layers\": [0, -1], \"device\": 0}]}",
                 "stages[0].layers[1]: must be >= 0", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [{\"layers\": [0, 1]}]}",
                 "stages[0].device: missing", NULL);
    expect_error("{" HDR ", \"schedule\": \"gpipe\", " B8 ", \"stages\": [{\"layers\": [0, 1], \"device\": 0, \"recompute\": 1}]}",
                 "stages[0].recompute: must be true or false", NULL);
    expect_error("{" HDR ", \"schedule\": \"1f1b\", \"chunks_per_device\": 2, " B8 ", \"stages\": [" ST(0, 1, 0) "]}",
                 "chunks_per_device: must be 1 for schedule \"1f1b\"", NULL);
    /* interleaved shape */
    expect_error("{" HDR ", \"schedule\": \"interleaved\", " B8 ", \"stages\": [" ST(0, 0, 0) ", " ST(1, 1, 1) "]}",
                 "chunks_per_device: must be >= 2 for an interleaved schedule", NULL);
    expect_error("{" HDR ", \"schedule\": \"interleaved\", \"chunks_per_device\": 2, " B8 ", \"stages\": ["
                 ST(0, 0, 0) ", " ST(1, 1, 1) ", " ST(2, 2, 0) "]}",
                 "stages: 3 stages are not a multiple of chunks_per_device 2", NULL);
    expect_error("{" HDR ", \"schedule\": \"interleaved\", \"chunks_per_device\": 2, " B8 ", \"stages\": ["
                 ST(0, 0, 0) ", " ST(1, 1, 1) ", " ST(2, 2, 1) ", " ST(3, 3, 0) "]}",
                 "stages[2].device: is 1, but an interleaved plan runs stage 2 on the device of stage 0 (0)", NULL);
    expect_error("{" HDR ", \"schedule\": \"interleaved\", \"chunks_per_device\": 2, \"global_batch\": 6, \"microbatch_size\": 2, "
                 "\"stages\": [" ST(0, 0, 0) ", " ST(1, 1, 1) ", " ST(2, 2, 0) ", " ST(3, 3, 1) "]}",
                 "num_microbatches: must be a multiple of the 2 pipeline devices", NULL);
    /* predictions */
#define ONE "\"schedule\": \"gpipe\", " B8 ", \"stages\": [" ST(0, 1, 0) ", " ST(2, 3, 1) "]"
    expect_error("{" HDR ", " ONE ", \"predicted\": 3}", "predicted: must be an object", NULL);
    expect_error("{" HDR ", " ONE ", \"predicted\": {\"samples_per_s\": 1, \"bubble_fraction\": 0, "
                 "\"bottleneck_stage\": 0, \"peak_memory_bytes\": [1, 2]}}", "predicted.iteration_ms: missing", NULL);
    expect_error("{" HDR ", " ONE ", \"predicted\": {\"iteration_ms\": -1, \"samples_per_s\": 1, \"bubble_fraction\": 0, "
                 "\"bottleneck_stage\": 0, \"peak_memory_bytes\": [1, 2]}}", "predicted.iteration_ms: must be >= 0", NULL);
    expect_error("{" HDR ", " ONE ", \"predicted\": {\"iteration_ms\": 1, \"samples_per_s\": 1, \"bubble_fraction\": 0, "
                 "\"bottleneck_stage\": 2, \"peak_memory_bytes\": [1, 2]}}", "predicted.bottleneck_stage: is 2 but the plan has 2 stages", NULL);
    expect_error("{" HDR ", " ONE ", \"predicted\": {\"iteration_ms\": 1, \"samples_per_s\": 1, \"bubble_fraction\": 0, "
                 "\"bottleneck_stage\": 0, \"peak_memory_bytes\": [1]}}", "predicted.peak_memory_bytes: has 1 entries, expected 2 (one per stage)", NULL);
    expect_error("{" HDR ", " ONE ", \"predicted\": {\"iteration_ms\": 1, \"samples_per_s\": 1, \"bubble_fraction\": 0, "
                 "\"bottleneck_stage\": 0, \"peak_memory_bytes\": [1, -2]}}", "predicted.peak_memory_bytes[1]: must be >= 0", NULL);
    expect_error("{" HDR ", " ONE ", \"max_batch\": 0}", "max_batch: must be >= 1", NULL);
    expect_error("{" HDR ", " ONE ", \"max_wait_ms\": -0.5}", "max_wait_ms: must be >= 0", NULL);

    /* num_microbatches may be omitted; unknown fields are ignored */
    const char *ok = "{" HDR ", \"note\": \"hand-made\", " ONE ", \"stages_extra\": [1]}";
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(ok, strlen(ok), "p.json", &p, &e), MP_OK);
    CU_ASSERT_EQUAL(p.num_microbatches, 4);
    CU_ASSERT_EQUAL(p.has_prediction, 0);
    CU_ASSERT_EQUAL(p.stages[1].recompute, 0);
    mp_plan_free(&p);
}

static void expect_check(const mp_plan *p, int layers, int devices, mp_status want, const char *frag)
{
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_plan_check(p, layers, devices, "plan.json", &e), want);
    if (frag) {
        if (!strstr(e.msg, frag)) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e.msg, frag);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, frag));
        CU_ASSERT_EQUAL(strncmp(e.msg, "plan.json: ", 11), 0);
    }
}

static void test_check(void)
{
    mp_plan p = load("plan_1f1b.json");   /* layers 0-1, 2, 3 on devices 0, 1, 2 */
    expect_check(&p, 4, 3, MP_OK, NULL);
    expect_check(&p, 4, 8, MP_OK, NULL);
    expect_check(&p, 2, 3, MP_ERR_INPUT, "stages: more stages (3) than layers (2)");
    expect_check(&p, 5, 3, MP_ERR_INPUT, "stages[2].layers: the last stage ends at layer 3, but the model's last layer is 4");
    expect_check(&p, 3, 3, MP_ERR_INPUT, "stages[2].layers: the last stage ends at layer 3, but the model's last layer is 2");
    expect_check(&p, 4, 2, MP_ERR_INPUT, "stages[2].device: device 2 does not exist (the cluster has 2 devices)");
    p.stages[2].device = 0;
    expect_check(&p, 4, 3, MP_ERR_INPUT, "stages[2].device: device 0 is already used by stage 0");
    p.stages[2].device = 2;
    p.stages[1].first = 3;   /* programmatic plans are re-checked for shape */
    expect_check(&p, 4, 3, MP_ERR_INPUT, "stages[1].layers: [3, 2] is not a layer range");
    mp_plan_free(&p);

    p = load("plan_interleaved.json");    /* devices 1, 0, 1, 0 */
    expect_check(&p, 4, 2, MP_OK, NULL);
    expect_check(&p, 3, 2, MP_ERR_INPUT, "more stages (4) than layers (3)");
    expect_check(&p, 4, 1, MP_ERR_INPUT, "stages[0].device: device 1 does not exist (the cluster has 1 device)");
    p.stages[1].device = 1;
    p.stages[3].device = 1;
    expect_check(&p, 4, 2, MP_ERR_INPUT, "stages[1].device: device 1 is already used by stage 0");
    mp_plan_free(&p);
}

/* data_parallel: D replicas, global batch D*m*b, replica r on devices + r*K. */
static void test_data_parallel(void)
{
    const char *text = "{" HDR ", \"schedule\": \"1f1b\", \"global_batch\": 16, \"microbatch_size\": 2, "
                       "\"data_parallel\": 2, \"stages\": [" ST(0, 1, 0) ", " ST(2, 3, 1) "]}";
    mp_plan p, q;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(text, strlen(text), "p.json", &p, &e), MP_OK);
    CU_ASSERT_EQUAL(mp_plan_replicas(&p), 2);
    CU_ASSERT_EQUAL(p.num_microbatches, 4);
    CU_ASSERT_EQUAL(mp_plan_num_positions(&p), 2);
    CU_ASSERT_EQUAL(mp_plan_num_devices(&p), 4);
    CU_ASSERT_EQUAL(mp_plan_replica_device(&p, 1, 0), 2);
    CU_ASSERT_EQUAL(mp_plan_replica_device(&p, 1, 1), 3);
    expect_check(&p, 4, 4, MP_OK, NULL);
    expect_check(&p, 4, 3, MP_ERR_INPUT, "data_parallel: replica 1 of stage 1 runs on device 3, which does not exist");
    char *json = mp_plan_to_json(&p);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"data_parallel\": 2"));
    CU_ASSERT_EQUAL(mp_plan_parse(json, strlen(json), "rt.json", &q, &e), MP_OK);
    CU_ASSERT(same_plan(&p, &q));
    free(json);
    mp_plan_free(&q);
    p.stages[1].device = 2;   /* replica 1's stage 0 would land on device 2 */
    expect_check(&p, 4, 4, MP_ERR_INPUT, "data_parallel: replica 1 of stage 0 runs on device 2, which stage 1 of replica 0 uses");
    mp_plan_free(&p);
    /* a plan without data_parallel is one replica and is written without it */
    p = load("plan_1f1b.json");
    CU_ASSERT_EQUAL(mp_plan_replicas(&p), 1);
    json = mp_plan_to_json(&p);
    CU_ASSERT_PTR_NULL(strstr(json, "data_parallel"));
    free(json);
    mp_plan_free(&p);
    expect_error("{" HDR ", \"schedule\": \"1f1b\", \"global_batch\": 10, \"microbatch_size\": 2, "
                 "\"data_parallel\": 2, \"stages\": [" ST(0, 3, 0) "]}",
                 "global_batch: 10 is not a multiple of data_parallel 2 x microbatch_size 2", NULL);
    expect_error("{" HDR ", \"schedule\": \"1f1b\", \"global_batch\": 8, \"microbatch_size\": 2, "
                 "\"data_parallel\": 0, \"stages\": [" ST(0, 3, 0) "]}", "data_parallel", NULL);
}

/* The serving fields (predicted serving metrics, prediction_terms) read,
 * written and read back unchanged; mp_plan_slo_ms and mp_plan_check_serve. */
static void test_serve_fields(void)
{
    const char *text = "{\"format\": \"mpplan-plan/1\", \"mode\": \"serve\", \"schedule\": \"gpipe\", "
        "\"global_batch\": 4, \"microbatch_size\": 4, \"max_batch\": 4, \"max_wait_ms\": 0.5, \"stages\": ["
        ST(0, 1, 0) ", " ST(2, 3, 1) "], \"predicted\": {\"iteration_ms\": 1, \"samples_per_s\": 9, "
        "\"bubble_fraction\": 0.5, \"peak_memory_bytes\": [1, 2], \"bottleneck_stage\": 1, \"rate\": 10, "
        "\"throughput_rps\": 9.5, \"p50_ms\": 1.25, \"p90_ms\": 2, \"p99_ms\": 3, \"max_ms\": 4, \"slo_ms\": 3.5, "
        "\"slo_attainment\": 0.99, \"capacity_rps\": 100, \"overloaded\": true, \"queued_at_end\": 7}, "
        "\"prediction_terms\": {\"fwd_scale\": 1.5, \"batch_overhead_ms\": 0.25, \"dispatch_ms\": 0.125, "
        "\"fwd_spread_quantiles\": [0.5, 1.5]}}";
    mp_plan a, b;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(text, strlen(text), "s.json", &a, &e), MP_OK);
    const mp_serve_prediction *q = &a.predicted.serve;
    CU_ASSERT(q->rate == 10 && q->throughput_rps == 9.5 && q->p50_ms == 1.25 && q->p90_ms == 2 && q->p99_ms == 3 &&
              q->max_ms == 4 && q->slo_ms == 3.5 && q->slo_attainment == 0.99 && q->capacity_rps == 100 &&
              q->overloaded == 1 && q->queued_at_end == 7);
    CU_ASSERT_EQUAL(mp_plan_slo_ms(&a), 3.5);
    CU_ASSERT(a.has_terms && a.terms.fwd_scale == 1.5 && a.terms.batch_overhead_ms == 0.25 &&
              a.terms.dispatch_ms == 0.125 && a.terms.n_spread == 2 && a.terms.spread[1] == 1.5);
    CU_ASSERT_EQUAL(mp_plan_check_serve(&a, 4, "s.json", &e), MP_OK);
    CU_ASSERT_EQUAL(mp_plan_check_serve(&a, 5, "s.json", &e), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "s.json: stages"));
    char *s = mp_plan_to_json(&a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(s, strlen(s), "mem", &b, &e), MP_OK);
    CU_ASSERT_EQUAL(memcmp(&a.predicted.serve, &b.predicted.serve, sizeof a.predicted.serve), 0);
    CU_ASSERT_EQUAL(memcmp(&a.terms, &b.terms, sizeof a.terms), 0);
    CU_ASSERT(strstr(s, "\"prediction_terms\"") > strstr(s, "\"predicted\""));
    free(s);
    mp_plan_free(&b);
    mp_plan_free(&a);
    /* a training plan is not a serving plan; a bad term names its field */
    expect_error("{" HDR ", \"mode\": \"serve\", " ONE ", \"prediction_terms\": {\"fwd_scale\": 0, "
                 "\"batch_overhead_ms\": 0, \"dispatch_ms\": 0}}", "prediction_terms.fwd_scale: must be > 0", NULL);
    const char *train = "{" HDR ", " ONE "}";
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(train, strlen(train), "t.json", &a, &e), MP_OK);
    CU_ASSERT_EQUAL(mp_plan_check_serve(&a, 4, "t.json", &e), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "t.json: mode"));
    mp_plan_free(&a);
}

/* "search" (what the planner did) round-trips; plans without it load with
 * has_search 0 and are written without it; bad values are named. */
static void test_search_section(void)
{
#define SRCH(x) "{" HDR ", \"schedule\": \"1f1b\", \"global_batch\": 4, \"microbatch_size\": 2, " \
                "\"stages\": [" ST(0, 3, 0) "], \"search\": " x "}"
    const char *text = SRCH("{\"seconds\": 0.25, \"configurations\": 153, \"searched\": 13, "
                            "\"lower_bound_ms\": 1715.5, \"gap\": 0.125, \"proven\": false}");
    mp_plan p, q;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(text, strlen(text), "p.json", &p, &e), MP_OK);
    CU_ASSERT(p.has_search);
    CU_ASSERT_EQUAL(p.search.seconds, 0.25);
    CU_ASSERT_EQUAL(p.search.configurations, 153);
    CU_ASSERT_EQUAL(p.search.searched, 13);
    CU_ASSERT_EQUAL(p.search.lower_bound_ms, 1715.5);
    CU_ASSERT_EQUAL(p.search.gap, 0.125);
    CU_ASSERT_EQUAL(p.search.proven, 0);
    char *json = mp_plan_to_json(&p);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(json, strlen(json), "rt.json", &q, &e), MP_OK);
    CU_ASSERT(q.has_search && memcmp(&p.search, &q.search, sizeof p.search) == 0);
    free(json);
    mp_plan_free(&q);
    mp_plan_free(&p);
    p = load("plan_1f1b.json");   /* an old plan: no search */
    CU_ASSERT_EQUAL(p.has_search, 0);
    json = mp_plan_to_json(&p);
    CU_ASSERT_PTR_NULL(strstr(json, "\"search\""));
    free(json);
    mp_plan_free(&p);
    expect_error(SRCH("[]"), "search: must be an object", NULL);
    expect_error(SRCH("{\"seconds\": 1, \"configurations\": 3, \"searched\": 1, \"lower_bound_ms\": 1, "
                      "\"gap\": 0.5}"), "search.proven", NULL);
    expect_error(SRCH("{\"seconds\": 1, \"configurations\": 3, \"searched\": 1, \"lower_bound_ms\": 1, "
                      "\"gap\": -0.5, \"proven\": true}"), "search.gap", NULL);
    expect_error(SRCH("{\"seconds\": 1, \"configurations\": 3, \"searched\": 4, \"lower_bound_ms\": 1, "
                      "\"gap\": 0, \"proven\": true}"), "search.searched", NULL);
#undef SRCH
}

static void test_json_and_round_trip(void)
{
    const char *fixtures[] = {"plan_1f1b.json", "plan_interleaved.json", "plan_serve.json"};
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/rt-plan", mp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/p.json", dir);
    for (int i = 0; i < 3; i++) {
        mp_plan a = load(fixtures[i]), b, c;
        if (a.has_prediction) {
            a.predicted.iteration_ms = 0.1 + 0.2;
            a.predicted.bubble_fraction = 1.0 / 3.0;
            a.predicted.peak_memory_bytes[0] = 12345678901234567.0;
        }
        mp_error e;
        mp_error_clear(&e);
        CU_ASSERT_EQUAL_FATAL(mp_plan_save(path, &a, &e), MP_OK);
        CU_ASSERT_EQUAL_FATAL(mp_plan_load(path, &b, &e), MP_OK);
        CU_ASSERT(same_plan(&a, &b));
        /* to_json is what save writes; keys in the stable order */
        char *s = mp_plan_to_json(&a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(s[strlen(s) - 1], '\n');
        const char *keys[] = {"\"format\"", "\"mode\"", "\"schedule\"", "\"chunks_per_device\"", "\"global_batch\"",
                              "\"microbatch_size\"", "\"num_microbatches\"", "\"stages\"", "\"predicted\""};
        const char *prev = s;
        for (int k = 0; k < 9; k++) {
            const char *at = strstr(s, keys[k]);
            CU_ASSERT_PTR_NOT_NULL_FATAL(at);
            CU_ASSERT(at >= prev);
            prev = at;
        }
        CU_ASSERT_EQUAL(strstr(s, "\"max_batch\"") != NULL, a.max_batch > 0);
        mp_error_clear(&e);
        CU_ASSERT_EQUAL_FATAL(mp_plan_parse(s, strlen(s), "mem", &c, &e), MP_OK);
        CU_ASSERT(same_plan(&a, &c));
        free(s);
        mp_plan_free(&c);
        /* deep copy: equal, and independent of the source */
        CU_ASSERT_EQUAL_FATAL(mp_plan_copy(&c, &a), MP_OK);
        CU_ASSERT(same_plan(&a, &c));
        CU_ASSERT(c.stages != a.stages);
        mp_plan_free(&a);
        CU_ASSERT(same_plan(&b, &c));
        mp_plan_free(&b);
        mp_plan_free(&c);
    }
    /* no temp file left behind */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    char *out = NULL;
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, &out, NULL), 0);
    CU_ASSERT_EQUAL(atoi(out), 1);
    free(out);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_names), MP_TEST(test_load_fixtures), MP_TEST(test_parse_errors),
        MP_TEST(test_check), MP_TEST(test_data_parallel), MP_TEST(test_search_section), MP_TEST(test_json_and_round_trip),
        MP_TEST(test_serve_fields),
    };
    return mp_test_main("plan", cases, (int)(sizeof cases / sizeof *cases));
}
