/* test_serve_run.c — mprun --serve: the batcher forms the batches of
 * docs/serving.md on a trace with known times (checked on the batch sizes and
 * ids the runtime records, not on wall times), every request is answered once
 * with outputs bitwise equal to a one-stage forward of the same batch, the
 * metrics against hand-computed values, overload reported as such, bad input
 * exits 2, a run through bin/mprun writes a report with the fields, and
 * --cluster / --memory give the prediction's devices and the memory check. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "data.h"
#include "layers.h"
#include "model.h"
#include "plan.h"
#include "serve_run.h"
#include "testutil.h"

#define NL 6

static const char *serve_plan(const char *name, int B, double W, const char *stages)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"format\":\"mpplan-plan/1\",\"mode\":\"serve\",\"schedule\":\"gpipe\",\"chunks_per_device\":1,"
             "\"global_batch\":%d,\"microbatch_size\":%d,\"num_microbatches\":1,\"max_batch\":%d,"
             "\"max_wait_ms\":%g,\"stages\":[%s]}", B, B, B, W, stages);
    return mp_test_write_file(name, text);
}

static void load(const char *plan_path, mp_plan *p, mp_model *m)
{
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_FATAL(mp_plan_load(plan_path, p, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_model_load(mp_test_fixture("small_model.json"), m, &err) == MP_OK);
}

/* Groups of simultaneous requests far apart: B = 4, W = 20 ms.
 * 4 at 0 ms (full: one batch of 4); 3 at 100 ms (timeout at 120: batch of 3);
 * 6 at 200 ms (4 at once, then 2 at the timeout 220); 1 at 300 ms (alone at 320). */
static void test_batches_from_trace(void)
{
    double t[14];
    int k = 0;
    for (int i = 0; i < 4; i++) t[k++] = 0;
    for (int i = 0; i < 3; i++) t[k++] = 100;
    for (int i = 0; i < 6; i++) t[k++] = 200;
    t[k++] = 300;
    mp_plan p;
    mp_model m;
    load(serve_plan("plan2.json", 4, 20, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}"), &p, &m);
    mp_serve_run_config c;
    mp_serve_run_config_default(&c);
    c.plan = &p;
    c.model = &m;
    c.pin = 0;
    c.seed = 7;
    c.arrival_ms = t;
    c.n = k;
    c.keep_outputs = 1;
    mp_serve_run_result r;
    mp_error err;
    mp_error_clear(&err);
    mp_status st = mp_serve_run(&c, &r, &err);
    if (st != MP_OK) fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_FATAL(st == MP_OK);
    const int want_size[] = { 4, 3, 4, 2, 1 }, want_first[] = { 0, 4, 7, 11, 13 };
    CU_ASSERT_EQUAL(r.num_batches, 5);
    for (int j = 0; j < 5 && j < r.num_batches; j++) {
        CU_ASSERT_EQUAL(r.batch_size[j], want_size[j]);
        CU_ASSERT_EQUAL(r.batch_first[j], want_first[j]);
    }
    /* every request answered exactly once, by the batch that holds it */
    int seen[14] = { 0 };
    for (int j = 0; j < r.num_batches; j++)
        for (int q = 0; q < r.batch_size[j]; q++) seen[r.batch_first[j] + q]++;
    for (int i = 0; i < k; i++) {
        CU_ASSERT_EQUAL(seen[i], 1);
        CU_ASSERT(r.done_ms[i] >= 0);
        CU_ASSERT(r.batch_of[i] >= 0 && r.batch_of[i] < r.num_batches);
        if (r.batch_of[i] >= 0) CU_ASSERT(i >= r.batch_first[r.batch_of[i]] && i < r.batch_first[r.batch_of[i]] + r.batch_size[r.batch_of[i]]);
        /* causality: never done before its scheduled arrival */
        CU_ASSERT(r.done_ms[i] >= r.arrival_ms[i]);
    }
    CU_ASSERT_EQUAL(r.unfinished, 0);
    CU_ASSERT_EQUAL(r.queued_at_end, 1);   /* request 13 starts at 320 ms, after the last arrival */
    /* outputs: one-stage forward of the same inputs in the same batches, bitwise */
    mp_backend *be;
    CU_ASSERT_FATAL(mp_backend_open("cpu", -1, &be, &err) == MP_OK);
    mp_stage_net net;
    CU_ASSERT_FATAL(mp_stage_init(&net, be, &m, 0, NL - 1, 4, 7, &err) == MP_OK);
    mp_data d;
    CU_ASSERT_FATAL(mp_data_init(&d, &m, 7, &err) == MP_OK);
    float x[4 * 12], y[4 * 3];
    float *stash = malloc(mp_stage_stash_bytes(&net, 4) + 16);
    int diff = 0;
    for (int j = 0; j < r.num_batches; j++) {
        mp_data_inputs(&d, r.batch_first[j], r.batch_size[j], x);
        CU_ASSERT(mp_stage_forward(&net, r.batch_size[j], x, y, stash, &err) == MP_OK);
        if (memcmp(y, r.outputs + (size_t)r.batch_first[j] * 3, (size_t)r.batch_size[j] * 3 * sizeof(float))) diff++;
    }
    CU_ASSERT_EQUAL(diff, 0);
    free(stash);
    mp_data_free(&d);
    mp_stage_free(&net);
    mp_backend_close(be);
    mp_serve_run_result_free(&r);
    mp_plan_free(&p);
    mp_model_free(&m);
}

/* Metrics on a hand-made result: 4 requests at 0, 1, 2, 3 ms done at
 * 2, 5, 5, -1 (unfinished). */
static void test_metrics_hand(void)
{
    double a[4] = { 0, 1, 2, 3 }, done[4] = { 2, 5, 5, -1 }, busy[1] = { 3 };
    mp_serve_run_result r;
    memset(&r, 0, sizeof r);
    r.n = 4;
    r.num_stages = 1;
    r.max_batch = 2;
    r.arrival_ms = a;
    r.done_ms = done;
    r.busy_ms = busy;
    r.num_batches = 2;
    r.unfinished = 1;
    r.queued_at_end = 1;
    mp_serve_result m;
    mp_error err;
    CU_ASSERT_FATAL(mp_serve_run_metrics(&r, 3.0, &m, &err) == MP_OK);
    /* latencies 2, 4, 3 -> sorted 2, 3, 4 */
    CU_ASSERT_DOUBLE_EQUAL(m.p50_ms, 3, 1e-12);   /* ceil(1.5) = 2nd */
    CU_ASSERT_DOUBLE_EQUAL(m.p99_ms, 4, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m.max_ms, 4, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m.mean_ms, 3, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m.throughput_rps, 1e3 * 3 / 5, 1e-9);  /* 3 finished in 5 ms */
    CU_ASSERT_DOUBLE_EQUAL(m.offered_rps, 1e3, 1e-9);             /* 3 gaps in 3 ms */
    CU_ASSERT_DOUBLE_EQUAL(m.slo_attainment, 0.5, 1e-12);         /* 2 and 3 of 4 requests */
    CU_ASSERT_DOUBLE_EQUAL(m.bubble_fraction, 1 - 3.0 / 5, 1e-12);
    CU_ASSERT_EQUAL(m.overloaded, 1);                             /* unfinished */
    done[3] = 6;
    r.unfinished = 0;
    CU_ASSERT_FATAL(mp_serve_run_metrics(&r, 3.0, &m, &err) == MP_OK);
    CU_ASSERT_EQUAL(m.overloaded, 0);
    /* latency runs from the release: released at 0.5, 1, 2.5, 3 -> 1.5, 4, 2.5, 3 */
    double rel[4] = { 0.5, 1, 2.5, 3 };
    r.release_ms = rel;
    CU_ASSERT_FATAL(mp_serve_run_metrics(&r, 3.0, &m, &err) == MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(m.p50_ms, 2.5, 1e-12);   /* sorted 1.5, 2.5, 3, 4 */
    CU_ASSERT_DOUBLE_EQUAL(m.mean_ms, 11.0 / 4, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m.slo_attainment, 0.75, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(m.offered_rps, 1e3, 1e-9);   /* offered: the schedule */
}

/* Overheads from hand-made timestamps: B = 2, W = 1; arrivals 0, 0.5, 3
 * released at 0.1, 0.7, 3.3 (late 0.1, 0.2, 0.3: p50 0.2, p99 0.3). Batch 0
 * = {0,1}, full at release 0.7, stage 0 waiting since 0, taken at 0.8:
 * wake-up 0.1. Batch 1 = {2}, ready at release 3.3 + W = 4.3 (the server's
 * clock starts at the release), stage 0 waiting since 2.5, taken at 4.6: 0.3.
 * Copies 0.4 ms over 2 batches. Then stage 0 comes back only at 4.5 for
 * batch 1: not idle, only batch 0 counts. */
static void test_overheads_hand(void)
{
    double a[3] = { 0, 0.5, 3 }, rel[3] = { 0.1, 0.7, 3.3 }, idle[2] = { 0, 2.5 }, take[2] = { 0.8, 4.6 },
           copy[1] = { 0.4 };
    int size[2] = { 2, 1 }, first[2] = { 0, 2 };
    mp_serve_run_result r;
    memset(&r, 0, sizeof r);
    r.n = 3;
    r.num_stages = 1;
    r.max_batch = 2;
    r.max_wait_ms = 1;
    r.arrival_ms = a;
    r.release_ms = rel;
    r.num_batches = 2;
    r.batch_size = size;
    r.batch_first = first;
    r.idle_ms = idle;
    r.take_ms = take;
    r.copy_ms = copy;
    mp_serve_overheads o;
    mp_serve_run_overheads(&r, &o);
    CU_ASSERT_DOUBLE_EQUAL(o.gen_late_p50_ms, 0.2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(o.gen_late_p99_ms, 0.3, 1e-12);
    CU_ASSERT_EQUAL(o.idle_batches, 2);
    CU_ASSERT_DOUBLE_EQUAL(o.dispatch_p50_ms, 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(o.dispatch_p99_ms, 0.3, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(o.copy_per_batch_ms, 0.2, 1e-12);
    idle[1] = 4.5;
    mp_serve_run_overheads(&r, &o);
    CU_ASSERT_EQUAL(o.idle_batches, 1);
    CU_ASSERT_DOUBLE_EQUAL(o.dispatch_p99_ms, 0.1, 1e-12);
}

/* 2000 requests in 2 ms (10^6 req/s) on B = 1 with no drain: far above any
 * capacity; the run says so and counts what it did not serve. */
static void test_overload(void)
{
    enum { N = 2000 };
    double *t = malloc(N * sizeof(double));
    for (int i = 0; i < N; i++) t[i] = i * 0.001;
    mp_plan p;
    mp_model m;
    load(serve_plan("plan1.json", 1, 0, "{\"layers\":[0,5],\"device\":0}"), &p, &m);
    mp_serve_run_config c;
    mp_serve_run_config_default(&c);
    c.plan = &p;
    c.model = &m;
    c.pin = 0;
    c.arrival_ms = t;
    c.n = N;
    c.drain_s = 0;
    mp_serve_run_result r;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_FATAL(mp_serve_run(&c, &r, &err) == MP_OK);
    CU_ASSERT(r.unfinished > 0);
    CU_ASSERT(r.queued_at_end >= r.unfinished);
    int done = 0;
    for (int i = 0; i < N; i++) done += r.done_ms[i] >= 0;
    CU_ASSERT_EQUAL(done + r.unfinished, N);
    for (int j = 0; j < r.num_batches; j++) CU_ASSERT_EQUAL(r.batch_size[j], 1);
    mp_serve_result met;
    CU_ASSERT(mp_serve_run_metrics(&r, 0, &met, &err) == MP_OK);
    CU_ASSERT_EQUAL(met.overloaded, 1);
    CU_ASSERT(met.slo_attainment < 1);
    mp_serve_run_result_free(&r);
    mp_plan_free(&p);
    mp_model_free(&m);
    free(t);
}

static int run_tool(const char *args, char **out, char **err)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s %s", mp_test_tool("mprun"), args);
    return mp_test_run_cmd(cmd, out, err);
}

static void test_cli_bad_input(void)
{
    char model[1024];   /* mp_test_fixture's buffer is reused */
    snprintf(model, sizeof model, "%s", mp_test_fixture("small_model.json"));
    const char *plan = serve_plan("plan_cli.json", 4, 1, "{\"layers\":[0,5],\"device\":0}");
    const char *train = mp_test_write_file("train.json",
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"gpipe\",\"chunks_per_device\":1,"
        "\"global_batch\":4,\"microbatch_size\":2,\"stages\":[{\"layers\":[0,5],\"device\":0}]}");
    const char *trace = mp_test_write_file("trace.txt", "0\n0.001\n");
    const char *badtrace = mp_test_write_file("bad.txt", "0\n-1\n");
    char args[4096], *out = NULL, *err = NULL;
    struct { const char *fmt, *p, *needle; } cases[] = {
        { "%s --model %s --serve --no-pin", plan, "--rate" },
        { "%s --model %s --serve --rate 100 --no-pin", plan, "--duration" },
        { "%s --model %s --serve --arrivals %s --duration 1 --no-pin", plan, "--duration" },
        { "%s --model %s --serve --arrivals %s --no-pin", train, "training plan" },
        { "%s --model %s --serve --arrivals %s --no-pin --backend tpu", plan, "--backend" },
        { "%s --model %s --serve --arrivals %s --no-pin --bogus", plan, "--bogus" },
        { "%s --model %s --serve --arrivals %s --no-pin --dispatch-ms -1", plan, "--dispatch-ms" },
        { "%s --model %s --serve --arrivals %s --no-pin --fwd-scale 0", plan, "--fwd-scale" },
        { "%s --model %s --serve --arrivals %s --no-pin --calibration %s", plan, "calibration" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, cases[i].fmt, cases[i].p, model, trace, trace);
        int rc = run_tool(args, &out, &err);
        CU_ASSERT_EQUAL(rc, 2);
        CU_ASSERT((err && strstr(err, cases[i].needle)) != 0);
        if (!(rc == 2 && err && strstr(err, cases[i].needle))) fprintf(stderr, "case %zu: rc %d: %s\n", i, rc, err ? err : "");
        free(out);
        free(err);
    }
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin", plan, model, badtrace);
    CU_ASSERT_EQUAL(run_tool(args, &out, &err), 2);
    CU_ASSERT((err && strstr(err, "bad.txt:2")) != 0);
    free(out);
    free(err);
}

/* A run through the tool: report fields, batches, and the prediction. */
static void test_cli_run(void)
{
    char model[1024];   /* mp_test_fixture's buffer is reused */
    snprintf(model, sizeof model, "%s", mp_test_fixture("small_model.json"));
    const char *plan = serve_plan("plan_run.json", 4, 20, "{\"layers\":[0,3],\"device\":0},{\"layers\":[4,5],\"device\":1}");
    /* seconds: 4 at 0 (full), 2 at 0.1 (timeout) */
    const char *trace = mp_test_write_file("trace_run.txt", "# test\n0\n0\n0\n0\n0.1\n0.1\n");
    char report[4096], args[8192], *out = NULL, *err = NULL;
    snprintf(report, sizeof report, "%s/serve_report.json", mp_test_tmpdir());
    /* a profile of the six layers: 0.01 ms each at any batch size, 128 B out */
    char prof_path[1024];
    snprintf(prof_path, sizeof prof_path, "%s", mp_test_fixture("small_model.profile.json"));
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --slo-ms 1000 --report %s --profile %s",
             plan, model, trace, report, prof_path);
    int rc = run_tool(args, &out, &err);
    json_t *root = NULL;
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT((out && strstr(out, "measured")) != 0);
    root = json_load_file(report, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    const char *fields[] = { "rate", "p50_ms", "p90_ms", "p99_ms", "throughput", "slo_attainment", "overloaded",
                             "queued_at_end", "unfinished", "stage_utilisation" };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        CU_ASSERT_PTR_NOT_NULL(json_object_get(root, fields[i]));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(root, "requests")), 6);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(root, "unfinished")), 0);
    CU_ASSERT(json_is_false(json_object_get(root, "overloaded")));
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(root, "slo_attainment")), 1.0, 1e-12);
    json_t *bs = json_object_get(root, "batch_sizes");
    CU_ASSERT_EQUAL(json_array_size(bs), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(bs, 0)), 4);
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(bs, 1)), 2);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(root, "stage_utilisation")), 2);
    /* the trace's own rate: 5 gaps in 0.1 s */
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(root, "rate")), 50.0, 1e-9);
    /* the prediction for the same arrivals (a plain fwd_ms is per sample):
     * 4 requests through 4 layers x 0.01 ms x 4, a link of 10 us + 4*128 B /
     * 25 GB/s and 2 x 0.01 x 4; the last 2 wait 20 ms, then go as a batch of 2 */
    json_t *pr = json_object_get(root, "predicted");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pr);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(root, "error_pct"));
    double full = 0.16 + 0.01 + 1e3 * 512 / 25e9 + 0.08, half = 20 + 0.08 + 0.01 + 1e3 * 256 / 25e9 + 0.04;
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pr, "p50_ms")), full, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pr, "p99_ms")), half, 1e-9);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(pr, "num_batches")), 2);
    json_decref(root);
    free(out);
    free(err);
}

/* --cluster: the prediction runs on the cluster's devices (speed) and links
 * instead of uniform ones, the plan's devices must exist in it, and a stage
 * that does not fit its device's memory (the serving bound of sim/serve.h) is
 * refused before any work, as training refuses it; --memory likewise. */
static void test_cli_cluster(void)
{
    char model[1024], prof_path[1024];
    snprintf(model, sizeof model, "%s", mp_test_fixture("small_model.json"));
    snprintf(prof_path, sizeof prof_path, "%s", mp_test_fixture("small_model.profile.json"));
    const char *plan = serve_plan("plan_cl.json", 4, 20, "{\"layers\":[0,3],\"device\":0},{\"layers\":[4,5],\"device\":1}");
    const char *trace = mp_test_write_file("trace_cl.txt", "0\n0\n0\n0\n0.1\n0.1\n");
    const char *two = mp_test_write_file("two.cluster.json",
        "{\"format\": \"mpplan-cluster/1\", \"devices\": [{\"name\": \"fast\", \"memory\": \"1GiB\", \"speed\": 2},"
        " {\"name\": \"slow\", \"memory\": \"1GiB\", \"speed\": 0.5}], \"link\": {\"bandwidth\": \"1GB/s\", \"latency\": \"1ms\"}}");
    char report[4096], args[8192], *out = NULL, *err = NULL;
    snprintf(report, sizeof report, "%s/serve_cl.json", mp_test_tmpdir());
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --slo-ms 1000 --report %s --profile %s "
             "--cluster %s", plan, model, trace, report, prof_path, two);
    CU_ASSERT_EQUAL_FATAL(run_tool(args, &out, &err), 0);
    json_t *root = json_load_file(report, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    /* stage 0: 4 layers x 0.01 ms x 4 at speed 2; the link 1 ms + 512 B at
     * 1 GB/s; stage 1: 2 x 0.01 x 4 at speed 0.5; the last 2 wait 20 ms */
    json_t *pr = json_object_get(root, "predicted");
    double full = 0.08 + 1 + 1e3 * 512 / 1e9 + 0.16, half = 20 + 0.04 + 1 + 1e3 * 256 / 1e9 + 0.08;
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pr, "p50_ms")), full, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pr, "p99_ms")), half, 1e-9);
    json_decref(root);
    free(out);
    free(err);
    struct { const char *cluster, *opts, *needle; } bad[] = {
        { "{\"format\": \"mpplan-cluster/1\", \"devices\": [{\"name\": \"only\", \"memory\": \"1GiB\"}],"
          " \"link\": {\"bandwidth\": \"1GB/s\", \"latency\": \"1ms\"}}", "", "device 1 does not exist" },
        { "{\"format\": \"mpplan-cluster/1\", \"devices\": [{\"name\": \"a\", \"memory\": \"1GiB\"},"
          " {\"name\": \"b\", \"memory\": \"1KiB\"}], \"link\": {\"bandwidth\": \"1GB/s\", \"latency\": \"1ms\"}}", "",
          "stage 1 does not fit on device 1: it needs" },
        { NULL, "--memory 10KiB", "stage 0 does not fit on device 0: it needs" },
        { NULL, "--memory 1GiB --cluster x.json", "--memory and --cluster" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char with[1200] = "";
        if (bad[i].cluster) snprintf(with, sizeof with, "--cluster %s", mp_test_write_file("bad.cluster.json", bad[i].cluster));
        snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin %s %s", plan, model, trace, with,
                 bad[i].opts);
        CU_ASSERT_EQUAL(run_tool(args, &out, &err), 2);
        CU_ASSERT((err && strstr(err, bad[i].needle)) != 0);
        CU_ASSERT((out && strstr(out, "measured")) == 0);   /* before any work */
        if (!(err && strstr(err, bad[i].needle))) fprintf(stderr, "case %zu: %s\n", i, err ? err : "");
        free(out);
        free(err);
    }
}

int main(void)
{
    const mp_test_case cases[] = {
        MP_TEST(test_batches_from_trace), MP_TEST(test_metrics_hand), MP_TEST(test_overload),
        MP_TEST(test_cli_bad_input), MP_TEST(test_cli_run), MP_TEST(test_overheads_hand),
        MP_TEST(test_cli_cluster),
    };
    return mp_test_main("serve_run", cases, (int)(sizeof cases / sizeof cases[0]));
}
