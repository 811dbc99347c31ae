/* test_mpplan.c — the mpplan tool end to end: exit codes, --json shape, -o,
 * --evaluate round trip, --trace, the no-fit answer, no plan within the
 * limit, usage errors. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "plan.h"
#include "profile.h"
#include "synth.h"
#include "testutil.h"

static char cmd[4096];

static int run(char **out, char **err, const char *fmt, const char *extra)
{
    snprintf(cmd, sizeof cmd, "%s --profile %s %s %s", mp_test_tool("mpplan"),
             mp_test_fixture("planner_profile.json"), fmt, extra ? extra : "");
    return mp_test_run_cmd(cmd, out, err);
}

static const char *cluster_args(void)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "--cluster %s --global-batch 16", mp_test_fixture("planner_cluster.json"));
    return buf;
}

static void test_help(void)
{
    char *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s --help", mp_test_tool("mpplan"));
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, &out, &err), 0);
    CU_ASSERT((out && strstr(out, "--global-batch")) != 0);
    CU_ASSERT((out && strstr(out, "--evaluate")) != 0);
    free(out);
    free(err);
}

static void test_table(void)
{
    char *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL(run(&out, &err, cluster_args(), "--top 3"), 0);
    CU_ASSERT((out && strstr(out, "optimal")) != 0);
    CU_ASSERT((out && strstr(out, "layers:")) != 0);
    CU_ASSERT((out && strstr(out, " 3 ")) != 0);
    free(out);
    free(err);
}

/* A CPU profile measured with 2 busy cores: a 1-device plan gets one note on
 * stderr naming both numbers; the table profile (no settings) none. */
static void test_regime_note(void)
{
    char *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s --profile profiles/demo.cpu.profile.json --devices 1 --memory 8GiB --global-batch 8",
             mp_test_tool("mpplan"));
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, &out, &err), 0);
    CU_ASSERT((err && strstr(err, "note:") && strstr(err, "2 busy cores, the plan keeps 1 busy")) != 0);
    free(out);
    free(err);
    CU_ASSERT_EQUAL(run(&out, &err, cluster_args(), NULL), 0);
    CU_ASSERT((err && !strstr(err, "note:")) != 0);
    free(out);
    free(err);
}

/* Writes the fixture profile with times x f, measured with `busy` cores. */
static const char *regime_profile(const char *name, double f, int busy)
{
    static char path[8][600];
    static int next;
    char *out = path[next++ % 8];
    mp_profile p;
    mp_error e = {0};
    CU_ASSERT_FATAL(mp_profile_load(mp_test_fixture("planner_profile.json"), &p, &e) == MP_OK);
    for (int l = 0; l < p.num_layers; l++) {
        mp_time_fn *fn[2] = {&p.layers[l].fwd, &p.layers[l].bwd};
        for (int d = 0; d < 2; d++) {
            fn[d]->alpha *= f;
            fn[d]->beta *= f;
            for (int k = 0; fn[d]->kind == MP_TIME_TABLE && k < fn[d]->n; k++) fn[d]->ms[k] *= f;
        }
    }
    p.busy_cores = busy;
    snprintf(out, 600, "%s/%s", mp_test_tmpdir(), name);
    CU_ASSERT_FATAL(mp_profile_save(out, &p, &e) == MP_OK);
    mp_profile_free(&p);
    return out;
}

/* Several --profile: a 1-device plan is timed with the 1-busy-core profile
 * and others with the 2-core one; a solo profile 3x faster makes the 1-device
 * plan win, and its time is what --evaluate with that profile alone says. */
static void test_profile_per_regime(void)
{
    const char *solo = regime_profile("solo.json", 1.0 / 3, 1), *all = regime_profile("all.json", 1, 2);
    char *out = NULL, *err = NULL, args[2048];
    snprintf(args, sizeof args, "%s --profile %s --profile %s --devices 2 --memory 64GiB --global-batch 16 --json",
             mp_test_tool("mpplan"), all, solo);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(args, &out, &err), 0);
    mp_plan best;
    mp_error e = {0};
    CU_ASSERT_FATAL(mp_plan_parse(out, strlen(out), "stdout", &best, &e) == MP_OK);
    CU_ASSERT_EQUAL(mp_plan_num_devices(&best), 1);
    double t = best.predicted.iteration_ms;
    mp_plan_free(&best);
    free(out); free(err);
    char plan_path[700];
    snprintf(plan_path, sizeof plan_path, "%s/best1.json", mp_test_tmpdir());
    snprintf(args, sizeof args, "%s --profile %s --profile %s --devices 2 --memory 64GiB --global-batch 16 -o %s",
             mp_test_tool("mpplan"), solo, all, plan_path);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(args, &out, &err), 0);
    CU_ASSERT((out && strstr(out, "2 profiles") && strstr(out, "plans on 1 device timed with")) != 0);
    CU_ASSERT((err && !strstr(err, "note:")) != 0);
    free(out); free(err);
    snprintf(args, sizeof args, "%s --profile %s --evaluate %s --devices 2 --memory 64GiB --json", mp_test_tool("mpplan"),
             solo, plan_path);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(args, &out, &err), 0);
    CU_ASSERT_FATAL(mp_plan_parse(out, strlen(out), "stdout", &best, &e) == MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(best.predicted.iteration_ms, t, 1e-9 * t);
    mp_plan_free(&best);
    free(out); free(err);
    /* with the 2-core profile alone the 2-device plan wins */
    snprintf(args, sizeof args, "%s --profile %s --devices 2 --memory 64GiB --global-batch 16 --json",
             mp_test_tool("mpplan"), all);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(args, &out, &err), 0);
    CU_ASSERT_FATAL(mp_plan_parse(out, strlen(out), "stdout", &best, &e) == MP_OK);
    CU_ASSERT_EQUAL(mp_plan_num_devices(&best), 2);
    mp_plan_free(&best);
    free(out); free(err);
    /* bad sets: the same regime twice, a profile without a regime */
    const char *bad[][3] = { { all, all, "both measured with 2 busy cores" },
                             { all, mp_test_fixture("planner_profile.json"), "settings.threads" } };
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "%s --profile %s --profile %s --devices 2 --memory 1GiB --global-batch 16",
                 mp_test_tool("mpplan"), bad[i][0], bad[i][1]);
        CU_ASSERT_EQUAL(mp_test_run_cmd(args, &out, &err), 2);
        CU_ASSERT((err && strstr(err, bad[i][2])) != 0);
        free(out); free(err);
    }
}

/* --json is one plan object; -o writes the same text; --evaluate of the saved
 * plan reproduces iteration_ms; --trace writes a Chrome trace. */
static void test_json_output_evaluate_trace(void)
{
    char *out = NULL, *err = NULL, *out2 = NULL, *out3 = NULL;
    char extra[2048];
    const char *dir = mp_test_tmpdir();
    snprintf(extra, sizeof extra, "--json -o %s/plan.json --trace %s/trace.json", dir, dir);
    CU_ASSERT_EQUAL_FATAL(run(&out, &err, cluster_args(), extra), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "format")), "mpplan-plan/1");
    double it = json_number_value(json_object_get(json_object_get(j, "predicted"), "iteration_ms"));
    CU_ASSERT(it > 0);
    /* what the search did: a small instance is proven optimal, bound = time */
    json_t *sr = json_object_get(j, "search");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sr);
    CU_ASSERT(json_is_true(json_object_get(sr, "proven")));
    CU_ASSERT_EQUAL(json_number_value(json_object_get(sr, "gap")), 0);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(sr, "lower_bound_ms")), it, 1e-9 * it);
    CU_ASSERT(json_integer_value(json_object_get(sr, "configurations")) >= 1);
    CU_ASSERT(json_integer_value(json_object_get(sr, "searched")) >= 1);
    CU_ASSERT(json_number_value(json_object_get(sr, "seconds")) > 0);
    /* -o file equals the --json output */
    char path[1024];
    snprintf(path, sizeof path, "%s/plan.json", dir);
    json_t *f = json_load_file(path, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_TRUE(json_equal(j, f));
    /* the trace parses */
    snprintf(path, sizeof path, "%s/trace.json", dir);
    json_t *t = json_load_file(path, 0, &je);
    CU_ASSERT_PTR_NOT_NULL(t);
    json_decref(t);
    /* --evaluate reproduces the prediction */
    snprintf(extra, sizeof extra, "--json --evaluate %s/plan.json", dir);
    CU_ASSERT_EQUAL(run(&out2, NULL, cluster_args(), extra), 0);
    json_t *e = out2 ? json_loads(out2, 0, &je) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    double it2 = json_number_value(json_object_get(json_object_get(e, "predicted"), "iteration_ms"));
    CU_ASSERT_DOUBLE_EQUAL(it2, it, 1e-9 * it);
    /* the human table of --evaluate shows the same time */
    snprintf(extra, sizeof extra, "--evaluate %s/plan.json", dir);
    CU_ASSERT_EQUAL(run(&out3, NULL, cluster_args(), extra), 0);
    CU_ASSERT((out3 && strstr(out3, "layers:")) != 0);
    json_decref(j);
    json_decref(f);
    json_decref(e);
    free(out);
    free(err);
    free(out2);
    free(out3);
}

/* No fit: exit 1, min_memory_bytes in JSON, and that memory makes a plan fit. */
static void test_no_fit(void)
{
    char *out = NULL, *err = NULL, *out2 = NULL;
    CU_ASSERT_EQUAL_FATAL(run(&out, &err, "--devices 2 --memory 100MiB --global-batch 16", "--json"), 1);
    json_error_t je;
    json_t *j = out ? json_loads(out, 0, &je) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "error")), "no plan fits");
    double M = json_number_value(json_object_get(j, "min_memory_bytes"));
    CU_ASSERT(M > 100.0 * 1048576);
    CU_ASSERT((err && strstr(err, "smallest memory")) != 0);
    char a[256];
    snprintf(a, sizeof a, "--devices 2 --memory %.0f --global-batch 16", M);
    CU_ASSERT_EQUAL(run(&out2, NULL, a, "--json"), 0);
    json_t *p = out2 ? json_loads(out2, 0, &je) : NULL;
    CU_ASSERT_PTR_NOT_NULL(p);
    json_decref(p);
    json_decref(j);
    free(out);
    free(err);
    free(out2);
}

/* A limit that the configurations' listing alone outlasts (1000 layers on
 * 64 devices, every D): exit 1 saying so, in JSON too, and no search for
 * the smallest memory past the limit (memory is not what is short); a
 * longer limit finds a plan. */
static void test_no_plan_in_time(void)
{
    mp_profile p;
    mp_cluster c;
    mp_error e;
    char pp[512], cp[512], *out = NULL, *err = NULL;
    snprintf(pp, sizeof pp, "%s/synth-1000.profile.json", mp_test_tmpdir());
    snprintf(cp, sizeof cp, "%s/synth-1000-64.cluster.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(mp_synth_profile(&p, 1000, 1, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_synth_cluster(&c, 64, 1.5 * 1073741824.0, 0, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_profile_save(pp, &p, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_save(cp, &c, &e), MP_OK);
    mp_profile_free(&p);
    mp_cluster_free(&c);
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s --profile %s --cluster %s --state-factor 1 --global-batch 1024 --json --time-limit %s",
                 mp_test_tool("mpplan"), pp, cp, k ? "0.5" : "0.001");
        int rc = mp_test_run_cmd(cmd, &out, &err);
        json_error_t je;
        json_t *j = out ? json_loads(out, 0, &je) : NULL;
        CU_ASSERT_PTR_NOT_NULL(j);
        if (k == 0) {
            CU_ASSERT_EQUAL(rc, 1);
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "error")), "no plan found within the time limit");
            CU_ASSERT(err && strstr(err, "--time-limit 0.001 s") && !strstr(err, "smallest memory"));
        } else {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT(json_object_get(json_object_get(j, "predicted"), "iteration_ms") != NULL);
        }
        json_decref(j);
        free(out);
        free(err);
        out = err = NULL;
    }
}

static double json_iteration(const char *out, int *D)
{
    json_error_t je;
    json_t *j = out ? json_loads(out, 0, &je) : NULL;
    if (!j) return -1;
    double it = json_number_value(json_object_get(json_object_get(j, "predicted"), "iteration_ms"));
    json_t *dp = json_object_get(j, "data_parallel");
    *D = dp ? (int)json_integer_value(dp) : 1;
    json_decref(j);
    return it;
}

/* --data-parallel: auto (the default) finds the best of every fixed D; the
 * table shows D; the plan round-trips through --evaluate. */
static void test_data_parallel(void)
{
    const char *dev = "--devices 4 --memory 1GiB --global-batch 16";
    const char *ds[] = { "1", "2", "4", "auto" };
    double it[4];
    int got[4];
    for (int i = 0; i < 4; i++) {
        char *out = NULL, extra[256];
        snprintf(extra, sizeof extra, "--json --data-parallel %s", ds[i]);
        CU_ASSERT_EQUAL_FATAL(run(&out, NULL, dev, extra), 0);
        it[i] = json_iteration(out, &got[i]);
        CU_ASSERT(it[i] > 0);
        if (i < 3) CU_ASSERT_EQUAL(got[i], atoi(ds[i]));
        free(out);
    }
    double best = fmin(it[0], fmin(it[1], it[2]));
    CU_ASSERT_DOUBLE_EQUAL(it[3], best, 1e-9 * best);
    CU_ASSERT(got[3] > 1);   /* this small-parameter model is faster replicated */
    /* replicas of interleaved and zero-bubble pipelines are searched too */
    char *oi = NULL;
    CU_ASSERT_EQUAL_FATAL(run(&oi, NULL, dev, "--json --data-parallel 2 --schedule interleaved"), 0);
    json_t *ji = oi ? json_loads(oi, 0, NULL) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(ji);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(ji, "data_parallel")), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(ji, "schedule")), "interleaved");
    json_decref(ji);
    free(oi);
    /* the default is auto */
    char *od = NULL;
    int gotd = 0;
    CU_ASSERT_EQUAL_FATAL(run(&od, NULL, dev, "--json"), 0);
    double itd = json_iteration(od, &gotd);
    CU_ASSERT_DOUBLE_EQUAL(itd, it[3], 1e-9 * it[3]);
    CU_ASSERT_EQUAL(gotd, got[3]);
    free(od);
    /* --positions fixes K: 2 replicas x 2 positions */
    char *o2 = NULL;
    CU_ASSERT_EQUAL_FATAL(run(&o2, NULL, dev, "--json --data-parallel 2 --positions 2"), 0);
    json_error_t je;
    json_t *j = o2 ? json_loads(o2, 0, &je) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *st = json_object_get(j, "stages");   /* K = 2 positions (interleaved: 2 chunks each) */
    int pos_seen[8] = { 0 }, npos = 0;
    for (size_t s = 0; s < json_array_size(st); s++) {
        int d = (int)json_integer_value(json_object_get(json_array_get(st, s), "device"));
        if (d >= 0 && d < 8 && !pos_seen[d]++) npos++;
    }
    CU_ASSERT_EQUAL(npos, 2);
    json_decref(j);
    free(o2);
    char *out = NULL, extra[1024];
    const char *dir = mp_test_tmpdir();
    snprintf(extra, sizeof extra, "--data-parallel 2 --top 2 -o %s/dp_plan.json", dir);
    CU_ASSERT_EQUAL_FATAL(run(&out, NULL, dev, extra), 0);
    CU_ASSERT((out && strstr(out, "data parallel: D=2 replicas x K=")) != 0);
    free(out);
    out = NULL;
    snprintf(extra, sizeof extra, "--json --evaluate %s/dp_plan.json", dir);
    CU_ASSERT_EQUAL_FATAL(run(&out, NULL, dev, extra), 0);
    int D = 0;
    CU_ASSERT_DOUBLE_EQUAL(json_iteration(out, &D), it[1], 1e-9 * it[1]);
    CU_ASSERT_EQUAL(D, 2);
    free(out);
}

static void expect_exit2(const char *args, const char *extra, const char *needle)
{
    char *err = NULL;
    int rc = run(NULL, &err, args, extra);
    CU_ASSERT_EQUAL(rc, 2);
    if (needle) CU_ASSERT((err && strstr(err, needle)) != 0);
    if (rc != 2 || (needle && !(err && strstr(err, needle))))
        fprintf(stderr, "  expected exit 2 and \"%s\": rc %d, %s\n", needle ? needle : "", rc, err ? err : "");
    free(err);
}

/* A two-kind cluster whose file order puts the small devices first: the
 * searched order is faster and names other devices; --placement file keeps
 * the file's order. */
static void test_placement(void)
{
    char *out = NULL, *out2 = NULL;
    const char *args = "--cluster profiles/mixed-4.cluster.json --global-batch 64 --schedule 1f1b --json";
    snprintf(cmd, sizeof cmd, "%s --profile profiles/example-transformer.profile.json %s", mp_test_tool("mpplan"), args);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s --profile profiles/example-transformer.profile.json %s --placement file",
             mp_test_tool("mpplan"), args);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out2, NULL), 0);
    json_error_t je;
    json_t *a = json_loads(out, 0, &je), *b = json_loads(out2, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    double ta = json_number_value(json_object_get(json_object_get(a, "predicted"), "iteration_ms"));
    double tb = json_number_value(json_object_get(json_object_get(b, "predicted"), "iteration_ms"));
    CU_ASSERT(ta > 0 && ta < tb * 0.99);
    json_t *sa = json_object_get(a, "stages"), *sb = json_object_get(b, "stages");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(sb, 0), "device")), 0);
    CU_ASSERT_NOT_EQUAL(json_integer_value(json_object_get(json_array_get(sa, 0), "device")), 0);
    CU_ASSERT(json_is_true(json_object_get(json_object_get(a, "search"), "proven")));
    json_decref(a);
    json_decref(b);
    free(out);
    free(out2);
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--placement random", "--placement");
}

static void test_usage_errors(void)
{
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--schedule zigzag", "--schedule");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--microbatch 5", "--microbatch");
    expect_exit2("--devices 0 --memory 1GiB --global-batch 16", NULL, "--devices");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--state-factor -1", "--state-factor");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--cluster x.json", "--cluster");
    expect_exit2("--global-batch 16", NULL, "--cluster");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--memory 12XB", "12XB");
    expect_exit2("--devices 2 --memory 1GiB", NULL, "--global-batch");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--data-parallel 0", "--data-parallel");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--data-parallel x", "--data-parallel");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--data-parallel 3", "--data-parallel 3");
    /* D = 2 on 2 devices leaves one position, too few for interleaved */
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--data-parallel 2 --schedule interleaved",
                 "--data-parallel 2");
    expect_exit2(cluster_args(), "--data-parallel 2", "same kind");  /* three different devices */
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--positions 3", "--positions");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--positions 0", "--positions");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--time-limit 0", "--time-limit");
    expect_exit2("--devices 2 --memory 1GiB --global-batch 16", "--time-limit 1x", "--time-limit");
    /* forced interleaved, m = 5: only K = 5 divides m, and 5 x 2 chunks > 8 layers */
    expect_exit2("--devices 9 --memory 1GiB --global-batch 5", "--microbatch 1 --schedule interleaved",
                 "interleaved");
    /* a bad profile: exit 2 naming the file */
    char *err = NULL;
    snprintf(cmd, sizeof cmd, "%s --profile %s --devices 2 --memory 1GiB --global-batch 4",
             mp_test_tool("mpplan"), mp_test_fixture("planner_bad_profile.json"));
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, NULL, &err), 2);
    CU_ASSERT((err && strstr(err, "planner_bad_profile.json")) != 0);
    free(err);
    err = NULL;
    snprintf(cmd, sizeof cmd, "%s --profile %s --devices 2 --memory 1GiB --global-batch 4",
             mp_test_tool("mpplan"), "/nonexistent/p.json");
    CU_ASSERT_NOT_EQUAL(mp_test_run_cmd(cmd, NULL, &err), 0);
    CU_ASSERT((err && strstr(err, "/nonexistent/p.json")) != 0);
    free(err);
}

/* Zero-bubble schedules from the command line: a profile without split
 * backward times says so (--schedule zb-*, --evaluate of a zb plan) and
 * auto leaves them out with a line on stderr; with them, zb-v plans in the V
 * and the plan evaluates to the same prediction. */
static void test_zero_bubble_cli(void)
{
    char *out = NULL, *err = NULL;
    CU_ASSERT_NOT_EQUAL(run(&out, &err, cluster_args(), "--schedule zb-h1"), 0);
    CU_ASSERT((err && strstr(err, "zb-h1") && strstr(err, "bwd_input_ms")) != 0);
    free(out); free(err);
    CU_ASSERT_EQUAL(run(&out, &err, cluster_args(), NULL), 0);
    CU_ASSERT((err && strstr(err, "zero-bubble schedules")) != 0);
    free(out); free(err);
    char prof[700], plan[700];
    snprintf(prof, sizeof prof, "%s/zb.profile.json", mp_test_tmpdir());
    snprintf(plan, sizeof plan, "%s/zb.plan.json", mp_test_tmpdir());
    FILE *f = fopen(prof, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("{\"format\":\"mpplan-profile/1\",\"model\":\"z\",\"device\":\"d\",\"layers\":[", f);
    for (int l = 0; l < 6; l++)
        fprintf(f, "%s{\"name\":\"l%d\",\"fwd_ms\":%g,\"bwd_ms\":%g,\"bwd_input_ms\":%g,\"bwd_weight_ms\":%g,"
                "\"param_bytes\":1000,\"out_bytes_per_sample\":100,\"stash_bytes_per_sample\":400,"
                "\"wgrad_stash_bytes_per_sample\":100}", l ? "," : "", l, 1.0 + l % 2, 2.0 + l % 3, 1.0 + l % 3 * 0.5,
                1.0 + l % 3 * 0.5);
    fputs("]}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --profile %s --devices 2 --memory 1GiB --global-batch 8 --schedule zb-v --data-parallel 1 --json -o %s",
             mp_test_tool("mpplan"), prof, plan);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out, &err), 0);
    free(out); free(err);
    mp_plan p, q;
    mp_error e = {0};
    CU_ASSERT_EQUAL_FATAL(mp_plan_load(plan, &p, &e), MP_OK);
    CU_ASSERT_EQUAL(p.schedule, MP_SCHED_ZB_V);
    CU_ASSERT_EQUAL(p.chunks_per_device, 2);
    CU_ASSERT_EQUAL_FATAL(p.num_stages, 4);
    CU_ASSERT(p.stages[0].device == 0 && p.stages[1].device == 1 && p.stages[2].device == 1 && p.stages[3].device == 0);
    CU_ASSERT_EQUAL(p.predicted.num_peaks, 2);
    snprintf(cmd, sizeof cmd, "%s --evaluate %s --profile %s --devices 2 --memory 1GiB --json -o %s.2",
             mp_test_tool("mpplan"), plan, prof, plan);
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, &out, &err), 0);
    free(out); free(err);
    char plan2[720];
    snprintf(plan2, sizeof plan2, "%s.2", plan);
    CU_ASSERT_EQUAL_FATAL(mp_plan_load(plan2, &q, &e), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(q.predicted.iteration_ms, p.predicted.iteration_ms, 1e-9 * p.predicted.iteration_ms);
    mp_plan_free(&q);
    /* D searched (the default): replicas of zb-v pipelines are candidates, never slower than D = 1 */
    snprintf(cmd, sizeof cmd, "%s --profile %s --devices 2 --memory 1GiB --global-batch 8 --schedule zb-v --json -o %s.3",
             mp_test_tool("mpplan"), prof, plan);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out, &err), 0);
    free(out); free(err);
    snprintf(plan2, sizeof plan2, "%s.3", plan);
    CU_ASSERT_EQUAL_FATAL(mp_plan_load(plan2, &q, &e), MP_OK);
    CU_ASSERT_EQUAL(q.schedule, MP_SCHED_ZB_V);
    CU_ASSERT(q.predicted.iteration_ms <= p.predicted.iteration_ms * (1 + 1e-12));
    CU_ASSERT_EQUAL(mp_plan_replicas(&q), 2);   /* this model: two one-device Vs beat one across both */
    mp_plan_free(&q);
    char old[700];   /* the same model profiled without the split backward */
    snprintf(old, sizeof old, "%s/zb.old.profile.json", mp_test_tmpdir());
    f = fopen(old, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("{\"format\":\"mpplan-profile/1\",\"model\":\"z\",\"device\":\"d\",\"layers\":[", f);
    for (int l = 0; l < 6; l++)
        fprintf(f, "%s{\"name\":\"l%d\",\"fwd_ms\":1,\"bwd_ms\":2,\"param_bytes\":1000,\"out_bytes_per_sample\":100,"
                "\"stash_bytes_per_sample\":400}", l ? "," : "", l);
    fputs("]}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --evaluate %s --profile %s --devices 2 --memory 1GiB", mp_test_tool("mpplan"), plan, old);
    CU_ASSERT_NOT_EQUAL(mp_test_run_cmd(cmd, &out, &err), 0);
    CU_ASSERT((err && strstr(err, "bwd_input_ms")) != 0);
    free(out); free(err);
    mp_plan_free(&p);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_help),
        MP_TEST(test_table),
        MP_TEST(test_json_output_evaluate_trace),
        MP_TEST(test_no_fit),
        MP_TEST(test_no_plan_in_time),
        MP_TEST(test_usage_errors),
        MP_TEST(test_data_parallel),
        MP_TEST(test_placement),
        MP_TEST(test_regime_note),
        MP_TEST(test_profile_per_regime),
        MP_TEST(test_zero_bubble_cli),
    };
    return mp_test_main("mpplan", cases, (int)(sizeof cases / sizeof *cases));
}
