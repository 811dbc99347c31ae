/* test_serve_cli.c — `mpplan --serve` through mp_mpplan_serve_main (planner/
 * mpplan_serve.h) called in-process with constructed argvs, stdout and stderr
 * captured to files. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpplan_serve.h"
#include "testutil.h"

static const char *PROFILE =
    "{\"format\": \"mpplan-profile/1\", \"model\": \"toy\", \"device\": \"cpu\",\n"
    " \"input_bytes_per_sample\": 4096, \"layers\": [\n"
    "  {\"name\": \"l0\", \"fwd_ms\": {\"alpha\": 0.2, \"beta\": 0.1}, \"bwd_ms\": 0.2, \"param_bytes\": \"1MiB\", \"out_bytes_per_sample\": 4096, \"stash_bytes_per_sample\": 4096},\n"
    "  {\"name\": \"l1\", \"fwd_ms\": {\"alpha\": 0.2, \"beta\": 0.1}, \"bwd_ms\": 0.2, \"param_bytes\": \"1MiB\", \"out_bytes_per_sample\": 4096, \"stash_bytes_per_sample\": 4096},\n"
    "  {\"name\": \"l2\", \"fwd_ms\": {\"alpha\": 0.2, \"beta\": 0.1}, \"bwd_ms\": 0.2, \"param_bytes\": \"1MiB\", \"out_bytes_per_sample\": 4096, \"stash_bytes_per_sample\": 4096},\n"
    "  {\"name\": \"l3\", \"fwd_ms\": {\"alpha\": 0.2, \"beta\": 0.1}, \"bwd_ms\": 0.2, \"param_bytes\": \"1MiB\", \"out_bytes_per_sample\": 16, \"stash_bytes_per_sample\": 4096}\n"
    "]}\n";

static char *out_text, *err_text;

/* The file, or "" when it is missing (so string asserts fail cleanly). */
static char *slurp(const char *path)
{
    char *s = mp_test_slurp(path, NULL);
    return s ? s : strdup("");
}

/* Runs mp_mpplan_serve_main on a space-separated command line. */
static int cli(const char *line)
{
    char buf[4096], *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "mpplan %s", line);
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    char o[512], e[512];
    snprintf(o, sizeof o, "%s/cli.out", mp_test_tmpdir());
    snprintf(e, sizeof e, "%s/cli.err", mp_test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    FILE *fo = freopen(o, "w", stdout);
    FILE *fe = freopen(e, "w", stderr);
    int rc = mp_mpplan_serve_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    (void)fo;
    (void)fe;
    free(out_text);
    free(err_text);
    out_text = slurp(o);
    err_text = slurp(e);
    return rc;
}

static const char *prof_path(void)
{
    static char p[512];
    if (!p[0]) snprintf(p, sizeof p, "%s", mp_test_write_file("toy.json", PROFILE));
    return p;
}

static void test_search_json(void)
{
    char cmd[8192], plan[1024];
    snprintf(plan, sizeof plan, "%s/plan.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "--serve --profile %s --devices 2 --memory 1GiB --rate 500 --slo-ms 20 --requests 2000 --json -o %s",
             prof_path(), plan);
    int rc = cli(cmd);
    CU_ASSERT_EQUAL(rc, 0);
    json_error_t je;
    json_t *j = json_loads(out_text, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "mode")), "serve");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "format")), "mpplan-plan/1");
    json_t *pred = json_object_get(j, "predicted");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pred);
    const char *keys[] = { "throughput_rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "slo_ms",
                           "slo_attainment", "rate" };
    for (int i = 0; i < 8; i++) CU_ASSERT_TRUE(json_is_number(json_object_get(pred, keys[i])));
    CU_ASSERT_TRUE(json_number_value(json_object_get(pred, "p99_ms")) <= 20);
    CU_ASSERT_EQUAL(json_number_value(json_object_get(pred, "rate")), 500);
    int B = (int)json_integer_value(json_object_get(j, "max_batch"));
    CU_ASSERT_TRUE(B >= 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "global_batch")), B);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "num_microbatches")), 1);
    /* light load and a generous SLO: one device suffices */
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "stages")), 1);
    /* -o wrote the same object */
    char *w = slurp(plan);
    CU_ASSERT_STRING_EQUAL(w, out_text);
    free(w);
    json_decref(j);

    /* the human table */
    snprintf(cmd, sizeof cmd, "--profile %s --serve --devices 2 --memory 1GiB --rate 500 --slo-ms 20 --requests 2000",
             prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "p99_ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "0-3"));

    /* evaluate the written plan over rates: the exact sweep shape */
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --rates 100:1000:4 --requests 1000 --json",
             plan, prof_path());
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    j = json_loads(out_text, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_object_size(j), 2);
    CU_ASSERT_EQUAL(json_number_value(json_object_get(j, "slo_ms")), 20);  /* from the plan */
    json_t *pts = json_object_get(j, "points");
    CU_ASSERT_EQUAL_FATAL(json_array_size(pts), 4);
    double want[] = { 100, 400, 700, 1000 };
    for (int i = 0; i < 4; i++) {
        json_t *p = json_array_get(pts, i);
        CU_ASSERT_EQUAL(json_object_size(p), 6);
        CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(p, "rate")), want[i], 1e-9);
        const char *k[] = { "throughput", "p50_ms", "p90_ms", "p99_ms", "attainment" };
        for (int q = 0; q < 5; q++) CU_ASSERT_TRUE(json_is_number(json_object_get(p, k[q])));
    }
    /* p99 grows with the load */
    CU_ASSERT_TRUE(json_number_value(json_object_get(json_array_get(pts, 3), "p99_ms")) >=
                   json_number_value(json_object_get(json_array_get(pts, 0), "p99_ms")));
    json_decref(j);

    /* the table form */
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --rates 100:1000:4 --requests 500 --slo-ms 3",
             plan, prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "SLO 3.000 ms"));
}

static void test_cannot_meet_slo(void)
{
    /* 4 layers of 0.2 + 0.1b ms: a lone request takes >= 1.2 ms; at
     * 20000 req/s nothing keeps p99 under 3 ms on 2 devices. */
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "--serve --profile %s --devices 2 --memory 1GiB --rate 20000 --slo-ms 3 --requests 1000 --json",
             prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "no plan meets the SLO"));
    json_error_t je;
    json_t *j = json_loads(out_text, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    double r = json_number_value(json_object_get(j, "max_sustainable_rps"));
    CU_ASSERT_TRUE(r > 0 && r < 20000);
    json_t *plan = json_object_get(j, "plan");
    CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
    CU_ASSERT_TRUE(json_number_value(json_object_get(json_object_get(plan, "predicted"), "p99_ms")) <= 3);
    /* re-evaluate that plan at that rate through --evaluate */
    char path[1024];
    snprintf(path, sizeof path, "%s/maxplan.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL(json_dump_file(plan, path, 0), 0);
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --rate %.17g --requests 1000 --json",
             path, prof_path(), r);
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    json_t *e = json_loads(out_text, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_TRUE(json_number_value(json_object_get(json_object_get(e, "predicted"), "p99_ms")) <= 3);
    json_decref(e);
    json_decref(j);
}

static void test_trace_arrivals(void)
{
    char cmd[8192];
    const char *t = mp_test_write_file("trace.txt", "0\n0.001\n0.002\n0.010\n0.011\n");
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 1 --memory 1GiB --arrivals %s --slo-ms 5 --max-batch 2 --max-wait-ms 0 --json",
             prof_path(), t);
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    json_error_t je;
    json_t *j = json_loads(out_text, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "max_batch")), 2);
    /* one stage: 4 layers -> 0.8 + 0.4b ms, 1.2 ms alone. Arrivals 0,1,2 ms:
     * 0..1.2, 1.2..2.4, 2.4..3.6 (latencies 1.2, 1.4, 1.6); arrivals 10, 11:
     * 10..11.2, 11.2..12.4 (1.2, 1.4). Sorted 1.2 1.2 1.4 1.4 1.6. */
    json_t *pred = json_object_get(j, "predicted");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pred, "p50_ms")), 1.4, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pred, "max_ms")), 1.6, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pred, "slo_attainment")), 1.0, 1e-12);
    json_decref(j);
}

static void test_bad_input(void)
{
    char cmd[8192];
    const char *bad_rates[] = { "5:1:3", "a:b:c", "0:10:3", "1:2", "1:2:0", "1:1:3" };
    for (int i = 0; i < 6; i++) {
        snprintf(cmd, sizeof cmd, "--serve --evaluate x.json --profile %s --devices 1 --memory 1GiB --rates %s",
                 prof_path(), bad_rates[i]);
        CU_ASSERT_EQUAL(cli(cmd), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "--rates"));
    }
    snprintf(cmd, sizeof cmd, "--serve --profile /nonexistent.json --devices 1 --memory 1GiB --rate 1 --slo-ms 1");
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "/nonexistent.json"));
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 1 --memory 1GiB --rate -3 --slo-ms 1", prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "--rate"));
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 1 --memory 1GiB --rate 3", prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "--slo-ms"));
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 1 --memory 12XB --rate 3 --slo-ms 1", prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "--memory"));
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 1 --memory 1GiB --rate 3 --slo-ms 1 --max-batch zero", prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 2);
    const char *t = mp_test_write_file("badtrace.txt", "0\n0.5\n0.2\n");
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 1 --memory 1GiB --arrivals %s --slo-ms 1", prof_path(), t);
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "badtrace.txt:3"));
    const char *p = mp_test_write_file("badplan.json", "{\"mode\": \"serve\", \"max_batch\": 0, \"max_wait_ms\": 1, \"stages\": []}");
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 1 --memory 1GiB --rate 10 --slo-ms 1", p, prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "badplan.json"));
    CU_ASSERT_EQUAL(cli("--serve --help"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "--max-wait-ms"));
}

/* --calibration R.json: the terms of the report's "calibration" in search,
 * --evaluate and --rates, exactly as if given by hand; flags override the
 * file's values one by one, in any order. */
static void test_calibration(void)
{
    char *cal = strdup(mp_test_write_file("report.json",
        "{\"format\": \"mprun-serve-report/1\", \"p50_ms\": 9,\n"
        " \"calibration\": {\"fwd_scale\": 0.5, \"batch_overhead_ms\": 0.25, \"dispatch_ms\": 0.125, \"forwards\": 7}}\n"));
    char *t = strdup(mp_test_write_file("apart.txt", "0\n0.010\n0.020\n0.030\n"));
    const char *hand = "--fwd-scale 0.5 --batch-overhead-ms 0.25 --dispatch-ms 0.125";
    char plan[1024], cmd[8192], *a;
    snprintf(plan, sizeof plan, "%s/cal_plan.json", mp_test_tmpdir());
    /* requests 10 ms apart, max_batch 1, one stage of 4 layers (0.8 + 0.4b
     * ms): every latency is 0.125 + 0.5 x 1.2 + 0.25 = 0.975 ms */
    const char *search = "--serve --profile %s --devices 2 --memory 1GiB --arrivals %s --slo-ms 5 --max-batch 1 --max-wait-ms 0 --json -o %s %s";
    snprintf(cmd, sizeof cmd, search, prof_path(), t, plan, "");
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    json_t *j = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *terms = json_object_get(j, "prediction_terms");  /* the profile as is */
    CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "fwd_scale")), 1);
    CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "batch_overhead_ms")), 0);
    CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "dispatch_ms")), 0);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(json_object_get(j, "predicted"), "p50_ms")), 1.2, 1e-9);
    json_decref(j);
    char with[512];
    snprintf(with, sizeof with, "--calibration %s", cal);
    snprintf(cmd, sizeof cmd, search, prof_path(), t, plan, with);
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    a = strdup(out_text);
    j = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *pred = json_object_get(j, "predicted");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pred, "p50_ms")), 0.975, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(pred, "max_ms")), 0.975, 1e-9);
    terms = json_object_get(j, "prediction_terms");
    CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "fwd_scale")), 0.5);
    CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "batch_overhead_ms")), 0.25);
    CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "dispatch_ms")), 0.125);
    json_decref(j);
    snprintf(cmd, sizeof cmd, search, prof_path(), t, plan, hand);
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    CU_ASSERT_STRING_EQUAL(out_text, a);
    free(a);

    /* --evaluate at a rate and over rates: the file and the hand-given terms agree */
    const char *evals[] = {
        "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --rate 800 --requests 2000 --json %s",
        "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --rates 100:900:3 --requests 2000 --json %s",
    };
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, evals[i], plan, prof_path(), with);
        CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
        a = strdup(out_text);
        snprintf(cmd, sizeof cmd, evals[i], plan, prof_path(), hand);
        CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
        CU_ASSERT_STRING_EQUAL(out_text, a);
        snprintf(cmd, sizeof cmd, evals[i], plan, prof_path(), "");
        CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
        CU_ASSERT_STRING_NOT_EQUAL(out_text, a);  /* the terms matter */
        free(a);
    }

    /* a flag overrides the file's value, before or after --calibration:
     * 0.125 + 1.2 + 0.25 = 1.575 ms */
    const char *order[] = { "--calibration %s --fwd-scale 1", "--fwd-scale 1 --calibration %s" };
    for (int i = 0; i < 2; i++) {
        char o[512];
        snprintf(o, sizeof o, order[i], cal);
        snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --arrivals %s --json %s",
                 plan, prof_path(), t, o);
        CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
        j = json_loads(out_text, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(json_object_get(j, "predicted"), "p50_ms")), 1.575, 1e-9);
        terms = json_object_get(j, "prediction_terms");
        CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "fwd_scale")), 1);
        CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "batch_overhead_ms")), 0.25);
        CU_ASSERT_EQUAL(json_number_value(json_object_get(terms, "dispatch_ms")), 0.125);
        json_decref(j);
    }
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --arrivals %s "
                              "--calibration %s --batch-overhead-ms 0 --dispatch-ms 0 --json", plan, prof_path(), t, cal);
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    j = json_loads(out_text, 0, NULL);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(json_object_get(j, "predicted"), "p50_ms")), 0.6, 1e-9);
    json_decref(j);

    /* the table says which terms it used */
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --arrivals %s %s",
             plan, prof_path(), t, with);
    CU_ASSERT_EQUAL(cli(cmd), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "# prediction terms: forward = 0.250 ms + 0.500 x profile, dispatch 0.125 ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, cal));
    CU_ASSERT_EQUAL(cli("--serve --help"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "--calibration R.json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "override"));

    /* a spread {0.5, 1.5} scales the modelled stage time (0.5 x 1.2 + 0.25 =
     * 0.85 ms) to 0.425 or 1.275 ms, so every latency is 0.55 or 1.4 ms with
     * the dispatch; the terms record it and the table says so */
    char *sp = strdup(mp_test_write_file("report_spread.json",
        "{\"calibration\": {\"fwd_scale\": 0.5, \"batch_overhead_ms\": 0.25, \"dispatch_ms\": 0.125, "
        "\"fwd_spread_quantiles\": [0.5, 1.5]}}"));
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --arrivals %s "
                              "--calibration %s --json", plan, prof_path(), t, sp);
    CU_ASSERT_EQUAL_FATAL(cli(cmd), 0);
    j = json_loads(out_text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    pred = json_object_get(j, "predicted");
    double p50 = json_number_value(json_object_get(pred, "p50_ms")), mx = json_number_value(json_object_get(pred, "max_ms"));
    CU_ASSERT(fabs(p50 - 0.55) < 1e-9 || fabs(p50 - 1.4) < 1e-9);
    CU_ASSERT(fabs(mx - 0.55) < 1e-9 || fabs(mx - 1.4) < 1e-9);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(json_object_get(j, "prediction_terms"), "fwd_spread_quantiles")), 2);
    json_decref(j);
    snprintf(cmd, sizeof cmd, "--serve --evaluate %s --profile %s --devices 2 --memory 1GiB --arrivals %s --calibration %s",
             plan, prof_path(), t, sp);
    CU_ASSERT_EQUAL(cli(cmd), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "spread x0.50..x1.50"));
    free(sp);

    /* bad files: exit 2, the flag and the file named */
    const char *bad[][2] = {
        { "cal_none.json", "{\"p50_ms\": 1}" },
        { "cal_zero.json", "{\"calibration\": {\"fwd_scale\": 0, \"batch_overhead_ms\": 0, \"dispatch_ms\": 0}}" },
        { "cal_syntax.json", "{\"calibration\": \n" },
    };
    for (int i = 0; i < 3; i++) {
        const char *p = mp_test_write_file(bad[i][0], bad[i][1]);
        snprintf(cmd, sizeof cmd, search, prof_path(), t, plan, "--calibration ");
        strncat(cmd, p, sizeof cmd - strlen(cmd) - 1);
        CU_ASSERT_EQUAL(cli(cmd), 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "--calibration"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err_text, bad[i][0]));
    }
    snprintf(cmd, sizeof cmd, search, prof_path(), t, plan, "--calibration /nonexistent/r.json");
    CU_ASSERT_EQUAL(cli(cmd), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "/nonexistent/r.json"));
    free(cal);
    free(t);
}

static void test_nofit(void)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "--serve --profile %s --devices 2 --memory 1KiB --rate 10 --slo-ms 10 --json", prof_path());
    CU_ASSERT_EQUAL(cli(cmd), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out_text, "no plan fits"));
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_search_json), MP_TEST(test_cannot_meet_slo), MP_TEST(test_trace_arrivals),
        MP_TEST(test_bad_input),   MP_TEST(test_nofit),           MP_TEST(test_calibration),
    };
    int rc = mp_test_main("serve_cli", cases, (int)(sizeof cases / sizeof *cases));
    free(out_text);
    free(err_text);
    return rc;
}
