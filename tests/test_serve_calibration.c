/* test_serve_calibration.c — reading a serving report's "calibration"
 * (core/serve_calibration.h): good values, each bad input with a message that
 * names the file and the problem, and a report from a real `mprun --serve
 * --profile --report` run fed back to mprun and to `mpplan --serve`, which
 * predict the same arrivals with the same terms alike. Nothing here depends on
 * how fast the machine is: measured terms are only compared between tools. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_calibration.h"
#include "testutil.h"

static void test_load_good(void)
{
    const char *p = mp_test_write_file("good.json",
        "{\"format\": \"mprun-serve-report/1\", \"p50_ms\": 3,\n"
        " \"calibration\": {\"fwd_scale\": 0.5, \"batch_overhead_ms\": 0.25, \"dispatch_ms\": 0.125, \"forwards\": 9}}\n");
    mp_serve_terms t = mp_serve_terms_default();
    CU_ASSERT_EQUAL(t.fwd_scale, 1);
    CU_ASSERT_EQUAL(t.batch_overhead_ms, 0);
    CU_ASSERT_EQUAL(t.dispatch_ms, 0);
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_serve_calibration_load(p, &t, &err), MP_OK);
    CU_ASSERT_EQUAL(t.fwd_scale, 0.5);
    CU_ASSERT_EQUAL(t.batch_overhead_ms, 0.25);
    CU_ASSERT_EQUAL(t.dispatch_ms, 0.125);
    CU_ASSERT_EQUAL(t.n_spread, 0);
    /* integers are numbers too; zero overheads are allowed */
    p = mp_test_write_file("ints.json", "{\"calibration\": {\"fwd_scale\": 2, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0}}");
    CU_ASSERT_EQUAL_FATAL(mp_serve_calibration_load(p, &t, &err), MP_OK);
    CU_ASSERT_EQUAL(t.fwd_scale, 2);
    CU_ASSERT_EQUAL(t.batch_overhead_ms, 0);
    /* with a spread */
    p = mp_test_write_file("spread.json", "{\"calibration\": {\"fwd_scale\": 2, \"batch_overhead_ms\": 0, "
                                          "\"dispatch_ms\": 0, \"fwd_spread_quantiles\": [0.5, 1, 1, 1.5]}}");
    CU_ASSERT_EQUAL_FATAL(mp_serve_calibration_load(p, &t, &err), MP_OK);
    CU_ASSERT_EQUAL(t.n_spread, 4);
    CU_ASSERT(t.spread[0] == 0.5 && t.spread[3] == 1.5);
    CU_ASSERT_EQUAL(mp_serve_terms_default().n_spread, 0);
}

static void test_load_bad(void)
{
    static const struct { const char *name, *text, *needle; mp_status st; } cases[] = {
        { "syntax.json", "{\n\"calibration\": {\"fwd_scale\": 1,,}\n}\n", "syntax.json:2:", MP_ERR_INPUT },
        { "overflow.json", "{\"calibration\":\n{\"fwd_scale\": 1e999, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0}}",
          "overflow.json:2:", MP_ERR_INPUT },
        { "array.json", "[1, 2]", "array.json", MP_ERR_INPUT },
        { "nocal.json", "{\"format\": \"mpplan-plan/1\"}", "no \"calibration\" object", MP_ERR_INPUT },
        { "calnum.json", "{\"calibration\": 3}", "no \"calibration\" object", MP_ERR_INPUT },
        { "noscale.json", "{\"calibration\": {\"batch_overhead_ms\": 0, \"dispatch_ms\": 0}}",
          "calibration.fwd_scale: missing", MP_ERR_INPUT },
        { "string.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": \"0.1\", \"dispatch_ms\": 0}}",
          "calibration.batch_overhead_ms: must be a number", MP_ERR_INPUT },
        { "nodisp.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": 0}}",
          "calibration.dispatch_ms: missing", MP_ERR_INPUT },
        { "negative.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": 0, \"dispatch_ms\": -0.5}}",
          "calibration.dispatch_ms: must be >= 0", MP_ERR_INPUT },
        { "negover.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": -1, \"dispatch_ms\": 0}}",
          "calibration.batch_overhead_ms: must be >= 0", MP_ERR_INPUT },
        { "zero.json", "{\"calibration\": {\"fwd_scale\": 0, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0}}",
          "calibration.fwd_scale: must be > 0", MP_ERR_INPUT },
        { "spread1.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0, "
          "\"fwd_spread_quantiles\": [1]}}", "fwd_spread_quantiles: must be an array of 2", MP_ERR_INPUT },
        { "spreaddown.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0, "
          "\"fwd_spread_quantiles\": [1.2, 0.8]}}", "entry 1 must be", MP_ERR_INPUT },
        { "spreadzero.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0, "
          "\"fwd_spread_quantiles\": [0, 1]}}", "entry 0 must be", MP_ERR_INPUT },
        { "spreadstr.json", "{\"calibration\": {\"fwd_scale\": 1, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0, "
          "\"fwd_spread_quantiles\": \"wide\"}}", "fwd_spread_quantiles", MP_ERR_INPUT },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = mp_test_write_file(cases[i].name, cases[i].text);
        mp_serve_terms t = { .fwd_scale = 7, .batch_overhead_ms = 7, .dispatch_ms = 7 };
        mp_error err;
        mp_error_clear(&err);
        mp_status st = mp_serve_calibration_load(p, &t, &err);
        CU_ASSERT_EQUAL(st, cases[i].st);
        CU_ASSERT(strncmp(err.msg, p, strlen(p)) == 0);  /* starts with the file */
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].needle));
        CU_ASSERT(t.fwd_scale == 7 && t.batch_overhead_ms == 7 && t.dispatch_ms == 7);  /* untouched */
        if (st != cases[i].st || !strstr(err.msg, cases[i].needle)) fprintf(stderr, "case %s: %s\n", cases[i].name, err.msg);
    }
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-such-report.json", mp_test_tmpdir());
    mp_serve_terms t;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_serve_calibration_load(missing, &t, &err), MP_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, missing));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot open"));
}

/* ------------------------------------------------------------ through the tools */


static char *out_text, *err_text;

/* Runs TOOL ARGS, output captured into out_text/err_text; the exit code. */
static int run_tool(const char *tool, const char *args)
{
    char cmd[16384];
    free(out_text);
    free(err_text);
    out_text = err_text = NULL;
    snprintf(cmd, sizeof cmd, "%s %s", mp_test_tool(tool), args);
    int rc = mp_test_run_cmd(cmd, &out_text, &err_text);
    if (!out_text) out_text = strdup("");
    if (!err_text) err_text = strdup("");
    return rc;
}

static double num(const json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

/* Files for a one-stage serving run: model, plan (B = 4, W = 20 ms), a
 * profile of 0.01 ms per layer and sample, a trace of 3 batches. */
static void fixtures(const char **model, const char **plan, const char **prof, const char **trace)
{
    static char model_path[1024], prof_path[1024];   /* mp_test_fixture's buffer is reused */
    snprintf(model_path, sizeof model_path, "%s", mp_test_fixture("small_model.json"));
    snprintf(prof_path, sizeof prof_path, "%s", mp_test_fixture("small_model.profile.json"));
    *model = model_path;
    *plan = mp_test_write_file("plan.json",
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"serve\",\"schedule\":\"gpipe\",\"chunks_per_device\":1,"
        "\"global_batch\":4,\"microbatch_size\":4,\"num_microbatches\":1,\"max_batch\":4,\"max_wait_ms\":20,"
        "\"stages\":[{\"layers\":[0,5],\"device\":0}]}");
    *prof = prof_path;
    /* seconds: 4 at once (full), 2 (timeout), 1 alone (timeout) */
    *trace = mp_test_write_file("trace.txt", "0\n0\n0\n0\n0.05\n0.05\n0.1\n");
}

/* Enough forwards (60 full batches) for a measured spread: 41 factors of
 * mean 1, non-decreasing, read back by the loader; fed back with
 * --calibration, mprun predicts with it (prediction_terms). */
static void test_measured_spread(void)
{
    const char *model, *plan, *prof, *trace;
    fixtures(&model, &plan, &prof, &trace);
    char text[4096];
    int k = 0;
    for (int i = 0; i < 240; i++) k += snprintf(text + k, sizeof text - (size_t)k, "%g\n", 0.001 * (i / 4));
    trace = mp_test_write_file("trace60.txt", text);
    char r1[1024], r2[1024], args[8192];
    snprintf(r1, sizeof r1, "%s/spread_report.json", mp_test_tmpdir());
    snprintf(r2, sizeof r2, "%s/spread_report2.json", mp_test_tmpdir());
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --slo-ms 1000 --profile %s --report %s",
             plan, model, trace, prof, r1);
    CU_ASSERT_EQUAL_FATAL(run_tool("mprun", args), 0);
    mp_serve_terms t;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_serve_calibration_load(r1, &t, &err), MP_OK);
    CU_ASSERT_EQUAL_FATAL(t.n_spread, 41);
    double mean = 0;
    for (int q = 0; q < 41; q++) {
        mean += t.spread[q] / 41;
        CU_ASSERT(t.spread[q] > 0 && (q == 0 || t.spread[q] >= t.spread[q - 1]));
    }
    CU_ASSERT_DOUBLE_EQUAL(mean, 1, 1e-9);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "spread x"));
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --slo-ms 1000 --profile %s --calibration %s "
             "--report %s", plan, model, trace, prof, r1, r2);
    CU_ASSERT_EQUAL_FATAL(run_tool("mprun", args), 0);
    json_t *rep2 = json_load_file(r2, 0, NULL);
    const json_t *q = json_object_get(json_object_get(rep2, "prediction_terms"), "fwd_spread_quantiles");
    CU_ASSERT_EQUAL(json_array_size(q), 41);
    for (int i = 0; i < 41 && json_array_size(q) == 41; i++)
        CU_ASSERT_EQUAL(json_number_value(json_array_get(q, (size_t)i)), t.spread[i]);
    json_decref(rep2);
}

/* mprun --serve --profile --report writes a calibration the loader reads;
 * fed back, mprun records it as its prediction terms, and mpplan --serve
 * --calibration on the same arrivals uses the same terms, predicts what mprun
 * predicted, and the same as the terms given by hand. */
static void test_round_trip(void)
{
    const char *model, *plan, *prof, *trace;
    fixtures(&model, &plan, &prof, &trace);
    char r1[1024], r2[1024], args[8192];
    snprintf(r1, sizeof r1, "%s/cal_report.json", mp_test_tmpdir());
    snprintf(r2, sizeof r2, "%s/cal_report2.json", mp_test_tmpdir());
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --slo-ms 1000 --profile %s --report %s", plan, model,
             trace, prof, r1);
    CU_ASSERT_EQUAL_FATAL(run_tool("mprun", args), 0);
    mp_serve_terms t;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_serve_calibration_load(r1, &t, &err), MP_OK);
    json_t *rep = json_load_file(r1, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
    CU_ASSERT_EQUAL(t.fwd_scale, num(rep, "calibration", "fwd_scale"));
    CU_ASSERT_EQUAL(t.batch_overhead_ms, num(rep, "calibration", "batch_overhead_ms"));
    CU_ASSERT_EQUAL(t.dispatch_ms, num(rep, "calibration", "dispatch_ms"));
    /* the spread: 41 equiprobable factors of mean 1 once there are 41 forwards */
    const json_t *q = json_object_get(json_object_get(rep, "calibration"), "fwd_spread_quantiles");
    if (num(rep, "calibration", "forwards") >= 41) {
        CU_ASSERT_EQUAL_FATAL(json_array_size(q), 41);
        double mean = 0;
        for (int k = 0; k < 41; k++) mean += json_number_value(json_array_get(q, k)) / 41;
        CU_ASSERT_DOUBLE_EQUAL(mean, 1, 1e-9);
        CU_ASSERT_EQUAL(t.n_spread, 41);
    } else {
        CU_ASSERT_PTR_NULL(q);
    }
    json_decref(rep);

    /* mprun --calibration: the same arrivals predicted with those terms */
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --slo-ms 1000 --profile %s --calibration %s --report %s",
             plan, model, trace, prof, r1, r2);
    CU_ASSERT_EQUAL_FATAL(run_tool("mprun", args), 0);
    json_t *rep2 = json_load_file(r2, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep2);
    CU_ASSERT_EQUAL(num(rep2, "prediction_terms", "fwd_scale"), t.fwd_scale);
    CU_ASSERT_EQUAL(num(rep2, "prediction_terms", "batch_overhead_ms"), t.batch_overhead_ms);
    CU_ASSERT_EQUAL(num(rep2, "prediction_terms", "dispatch_ms"), t.dispatch_ms);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(rep2, "prediction_terms"), "fwd_spread_quantiles")),
                    (size_t)t.n_spread);

    /* mpplan --serve --evaluate --calibration on the same trace */
    const char *eval = "--serve --evaluate %s --profile %s --devices 1 --memory 1GiB --arrivals %s --slo-ms 1000 --json";
    int k = snprintf(args, sizeof args, eval, plan, prof, trace);
    snprintf(args + k, sizeof args - (size_t)k, " --calibration %s", r1);
    CU_ASSERT_EQUAL_FATAL(run_tool("mpplan", args), 0);
    json_t *pl = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
    CU_ASSERT_EQUAL(num(pl, "prediction_terms", "fwd_scale"), t.fwd_scale);
    CU_ASSERT_EQUAL(num(pl, "prediction_terms", "batch_overhead_ms"), t.batch_overhead_ms);
    CU_ASSERT_EQUAL(num(pl, "prediction_terms", "dispatch_ms"), t.dispatch_ms);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(pl, "prediction_terms"), "fwd_spread_quantiles")),
                    (size_t)t.n_spread);
    /* (mprun predicts on the times its generator released the requests, which
     * lag the trace by the generator's wake-up: the numbers are not compared) */
    /* the same terms by hand */
    k = snprintf(args, sizeof args, eval, plan, prof, trace);
    snprintf(args + k, sizeof args - (size_t)k, " --fwd-scale %.17g --batch-overhead-ms %.17g --dispatch-ms %.17g",
             t.fwd_scale, t.batch_overhead_ms, t.dispatch_ms);
    char *with_file = strdup(out_text);
    CU_ASSERT_EQUAL_FATAL(run_tool("mpplan", args), 0);
    CU_ASSERT_STRING_EQUAL(out_text, with_file);
    free(with_file);
    json_decref(pl);
    json_decref(rep2);
}

/* One serving evaluator: mprun --serve's prediction equals mpplan --serve
 * --evaluate for the same plan (two stages on devices of a --cluster file,
 * speeds 1 and 0.5, a 1 GB/s link), the same terms (--calibration) and the
 * same arrivals (all at 0, so the generator releases them at one instant
 * and the prediction, relative to it, is the trace's). The terms and the
 * cluster change the numbers, so a tool that dropped either would differ. */
static void test_prediction_equals_evaluate(void)
{
    const char *model, *plan1, *prof, *trace;
    fixtures(&model, &plan1, &prof, &trace);
    char plan[1024], cluster[1024], cal[1024], arr[1024], rep[1024], args[8192];
    snprintf(plan, sizeof plan, "%s", mp_test_write_file("plan2.json",
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"serve\",\"schedule\":\"gpipe\",\"chunks_per_device\":1,"
        "\"global_batch\":4,\"microbatch_size\":4,\"num_microbatches\":1,\"max_batch\":4,\"max_wait_ms\":5,"
        "\"stages\":[{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}],"
        "\"predicted\":{\"iteration_ms\":1,\"samples_per_s\":1,\"bubble_fraction\":0,"
        "\"peak_memory_bytes\":[1,1],\"bottleneck_stage\":0,\"slo_ms\":50}}"));
    snprintf(cluster, sizeof cluster, "%s", mp_test_write_file("cluster2.json",
        "{\"format\":\"mpplan-cluster/1\",\"devices\":[{\"name\":\"a\",\"memory\":\"1GiB\",\"speed\":1},"
        "{\"name\":\"b\",\"memory\":\"1GiB\",\"speed\":0.5}],\"link\":{\"bandwidth\":\"1GB/s\",\"latency\":\"50us\"}}"));
    snprintf(cal, sizeof cal, "%s", mp_test_write_file("cal2.json",
        "{\"calibration\": {\"fwd_scale\": 1.5, \"batch_overhead_ms\": 0.25, \"dispatch_ms\": 0.125}}"));
    snprintf(arr, sizeof arr, "%s", mp_test_write_file("zero10.txt", "0\n0\n0\n0\n0\n0\n0\n0\n0\n0\n"));
    snprintf(rep, sizeof rep, "%s/eq_report.json", mp_test_tmpdir());
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --profile %s --cluster %s --calibration %s "
             "--report %s", plan, model, arr, prof, cluster, cal, rep);
    CU_ASSERT_EQUAL_FATAL(run_tool("mprun", args), 0);
    json_t *r = json_load_file(rep, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    snprintf(args, sizeof args, "--serve --evaluate %s --profile %s --cluster %s --arrivals %s --calibration %s --json",
             plan, prof, cluster, arr, cal);
    CU_ASSERT_EQUAL_FATAL(run_tool("mpplan", args), 0);
    json_t *e = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    double p50 = num(r, "predicted", "p50_ms"), p99 = num(r, "predicted", "p99_ms");
    CU_ASSERT(p50 > 0 && p99 >= p50);
    CU_ASSERT_DOUBLE_EQUAL(p50, num(e, "predicted", "p50_ms"), 1e-9 * p50);
    CU_ASSERT_DOUBLE_EQUAL(p99, num(e, "predicted", "p99_ms"), 1e-9 * p99);
    CU_ASSERT_DOUBLE_EQUAL(num(e, "predicted", "slo_ms"), 50, 0);   /* the plan's SLO, in both */
    json_decref(e);
    /* without the terms the numbers differ: the test can fail */
    snprintf(args, sizeof args, "--serve --evaluate %s --profile %s --cluster %s --arrivals %s --json", plan, prof,
             cluster, arr);
    CU_ASSERT_EQUAL_FATAL(run_tool("mpplan", args), 0);
    e = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT(fabs(num(e, "predicted", "p99_ms") - p99) > 1e-6 * p99);
    json_decref(e);
    /* nor does a uniform cluster (mprun without --cluster) give the same */
    snprintf(args, sizeof args, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --arrivals %s "
             "--calibration %s --json", plan, prof, arr, cal);
    CU_ASSERT_EQUAL_FATAL(run_tool("mpplan", args), 0);
    e = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT(fabs(num(e, "predicted", "p99_ms") - p99) > 1e-6 * p99);
    json_decref(e);
    json_decref(r);
}

/* Both tools refuse a bad calibration with exit 2, naming the file. */
static void test_tools_bad(void)
{
    const char *model, *plan, *prof, *trace;
    fixtures(&model, &plan, &prof, &trace);
    const char *bad = mp_test_write_file("bad_cal.json", "{\"calibration\": {\"fwd_scale\": -1}}");
    char args[8192];
    snprintf(args, sizeof args, "%s --model %s --serve --arrivals %s --no-pin --calibration %s", plan, model, trace, bad);
    CU_ASSERT_EQUAL(run_tool("mprun", args), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, bad));
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "fwd_scale"));
    snprintf(args, sizeof args, "--serve --evaluate %s --profile %s --devices 1 --memory 1GiB --arrivals %s --calibration %s",
             plan, prof, trace, bad);
    CU_ASSERT_EQUAL(run_tool("mpplan", args), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "--calibration"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, bad));
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "fwd_scale"));
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_load_good), MP_TEST(test_load_bad), MP_TEST(test_round_trip), MP_TEST(test_measured_spread), MP_TEST(test_tools_bad),
        MP_TEST(test_prediction_equals_evaluate),
    };
    int rc = mp_test_main("serve_calibration", cases, (int)(sizeof cases / sizeof *cases));
    free(out_text);
    free(err_text);
    return rc;
}
