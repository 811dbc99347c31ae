/* test_mpplot.c — bin/mpplot end to end: every subcommand on small fixtures
 * (exit 0, a PNG/SVG image, its .dat and .gp; rerunning gnuplot on the .gp
 * reproduces the image byte for byte), the numbers in the .dat files against
 * the library (mp_plan_evaluate, mp_search_run), bad inputs (exit 2, message
 * naming the file), gnuplot missing (exit 1), and titles/paths with quotes,
 * backquotes and $(...) that must not execute anything. Runs the tool with
 * fork/execvp, never a shell. */
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evaluate.h"
#include "search.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

/* Runs argv (argv[0] a path) with optional extra env "K=V", stdout and stderr
 * captured into *out / *err (malloc'd). Returns the exit status or -1. */
static int run(char *const argv[], const char *env, char **out, char **err)
{
    char o[512], e[512];
    snprintf(o, sizeof o, "%s/run.out", mp_test_tmpdir());
    snprintf(e, sizeof e, "%s/run.err", mp_test_tmpdir());
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        if (env) putenv((char *)env);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    char *so = mp_test_slurp(o, NULL), *se = mp_test_slurp(e, NULL);
    if (out) *out = so; else free(so);
    if (err) *err = se; else free(se);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *tool(void)
{
    static char path[4096];
    if (!path[0] && !realpath(mp_test_tool("mpplot"), path))
        snprintf(path, sizeof path, "%s", mp_test_tool("mpplot"));
    return path;
}

static char *fx(const char *name)
{
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s", mp_test_fixture(name));
    return buf[k];
}

static char *tmp(const char *name)
{
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", mp_test_tmpdir(), name);
    return buf[k];
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

static int is_png(const char *p)
{
    size_t n = 0;
    char *b = mp_test_slurp(p, &n);
    int ok = b && n > 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
    free(b);
    return ok;
}

static int is_svg(const char *p)
{
    char *b = mp_test_slurp(p, NULL);
    int ok = b && strstr(b, "<svg") != NULL;
    free(b);
    return ok;
}

/* IMAGE -> IMAGE minus extension + suffix. */
static char *sibling(const char *image, const char *suffix)
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s", image);
    char *dot = strrchr(buf[k], '.');
    snprintf(dot, sizeof buf[k] - (size_t)(dot - buf[k]), "%s", suffix);
    return buf[k];
}

/* The image, its .dat and .gp exist; the image is a PNG (or SVG); running
 * gnuplot on the .gp from another directory rewrites the same bytes. */
static void check_outputs(const char *image, int svg)
{
    CU_ASSERT(svg ? is_svg(image) : is_png(image));
    CU_ASSERT(exists(sibling(image, ".dat")));
    CU_ASSERT(exists(sibling(image, ".gp")));
    size_t n1 = 0, n2 = 0;
    char *before = mp_test_slurp(image, &n1);
    CU_ASSERT_FATAL(before != NULL);
    CU_ASSERT(unlink(image) == 0);
    char gp[4096];
    snprintf(gp, sizeof gp, "%s", sibling(image, ".gp"));
    char *argv[] = { "/usr/bin/env", "gnuplot", gp, NULL };
    char cwd[4096];
    CU_ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    CU_ASSERT(chdir("/") == 0);   /* the script finds its files from its own path */
    int rc = run(argv, NULL, NULL, NULL);
    CU_ASSERT(chdir(cwd) == 0);
    CU_ASSERT_EQUAL(rc, 0);
    char *after = mp_test_slurp(image, &n2);
    CU_ASSERT(after && n1 == n2 && !memcmp(before, after, n1));
    free(before);
    free(after);
}

/* Absolute path of a tmp file (the scripts are rerun from "/"). */
static char *abs_tmp(const char *name)
{
    return tmp(name);   /* mp_test_tmpdir() is absolute (/tmp/...) */
}

/* ---------------------------------------------------------------- cases */

static void test_accuracy(void)
{
    char *img = abs_tmp("acc.png"), *out = NULL;
    char *argv[] = { tool(), "accuracy", fx("plot_validate.json"), "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, &out, NULL), 0);
    /* mean |error| = (9.090909 + 100*1/19 + 9.090909) / 3 = 7.82 */
    CU_ASSERT(strstr(out, "mean |error| 7.8%") != NULL);
    char *gp = mp_test_slurp(sibling(img, ".gp"), NULL);
    CU_ASSERT(gp && strstr(gp, "mean |error| 7.8% over 3 configurations") != NULL);
    free(gp);
    check_outputs(img, 0);
    free(out);
}

static void test_memory(void)
{
    char *img = abs_tmp("mem.png");
    char *argv[] = { tool(), "memory", fx("plot_plan.json"), "--profile", fx("plot_profile.json"),
                     "--devices", "3", "--memory", "20MiB", "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, NULL, NULL), 0);
    check_outputs(img, 0);
    /* The .dat rows equal the library's peaks and the capacity. */
    mp_error err = { 0 };
    mp_plan p = { 0 };
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    CU_ASSERT_FATAL(mp_plan_load(fx("plot_plan.json"), &p, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_profile_load(fx("plot_profile.json"), &prof, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_cluster_uniform(&cl, 3, 20971520.0, 25e9, 1e-5, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_plan_evaluate(&p, &prof, &cl, MP_DEFAULT_STATE_FACTOR, NULL, &err) == MP_OK);
    char *dat = mp_test_slurp(sibling(img, ".dat"), NULL);
    CU_ASSERT_FATAL(dat != NULL);
    int rows = 0;
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *q = strrchr(line, '"');
        double peak = 0, cap = 0;
        int fits = 0;
        CU_ASSERT_FATAL(q && sscanf(q + 1, "%lf %lf %d", &peak, &cap, &fits) == 3);
        CU_ASSERT_FATAL(rows < p.predicted.num_peaks);
        CU_ASSERT(fabs(peak - p.predicted.peak_memory_bytes[rows]) <= 1e-6 * peak);
        CU_ASSERT_EQUAL(cap, 20971520.0);
        CU_ASSERT_EQUAL(fits, p.predicted.peak_memory_bytes[rows] <= 20971520.0);
        rows++;
    }
    CU_ASSERT_EQUAL(rows, 3);
    free(dat);
    mp_plan_free(&p);
    mp_profile_free(&prof);
    mp_cluster_free(&cl);
}

static void test_timeline(void)
{
    char *img = abs_tmp("tl.png"), *out = NULL;
    char *argv[] = { tool(), "timeline", fx("plot_trace.json"), "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, &out, NULL), 0);
    /* 3 stages + 4 directed links; the trace spans 98.248 ms (plan_1f1b). */
    CU_ASSERT(strstr(out, "7 rows, 98.248 ms") != NULL);
    check_outputs(img, 0);
    free(out);
    /* Each op row of the .dat keeps the trace's duration (us -> ms). */
    char *dat = mp_test_slurp(sibling(img, ".dat"), NULL);
    char *ops = dat ? strstr(dat, "# ops") : NULL;
    CU_ASSERT_FATAL(ops != NULL);
    int n = 0;
    for (char *line = strtok(ops, "\n"); line; line = strtok(NULL, "\n")) {
        int kind, y;
        double x, lo, hi;
        if (sscanf(line, "%d %lf %d %lf %lf", &kind, &x, &y, &lo, &hi) != 5) continue;
        CU_ASSERT(hi >= lo && fabs(x - (lo + hi) / 2) < 1e-6 && kind >= 0 && kind <= 4);
        n++;
    }
    CU_ASSERT(n > 0);
    free(dat);
}

/* A data-parallel trace: the all-reduce (cat "allreduce", name AR0) gets
 * its own kind (6, after the weight gradient) and legend entry, and the
 * legend has no weight gradient entry (there are none). */
static void test_timeline_allreduce(void)
{
    const char *tr = mp_test_write_file("dp_trace.json",
        "{\"traceEvents\": ["
        "{\"name\": \"F0\", \"cat\": \"fwd\", \"ph\": \"X\", \"pid\": 0, \"tid\": 0, \"ts\": 0, \"dur\": 1000},"
        "{\"name\": \"B0\", \"cat\": \"bwd\", \"ph\": \"X\", \"pid\": 0, \"tid\": 0, \"ts\": 1000, \"dur\": 2000},"
        "{\"name\": \"AR0\", \"cat\": \"allreduce\", \"ph\": \"X\", \"pid\": 0, \"tid\": 0, \"ts\": 3000, \"dur\": 500}"
        "], \"displayTimeUnit\": \"ms\"}");
    char *img = abs_tmp("tl_dp.png"), *out = NULL;
    char *argv[] = { tool(), "timeline", (char *)tr, "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, &out, NULL), 0);
    CU_ASSERT(out && strstr(out, "1 row, 3.500 ms"));
    char *dat = mp_test_slurp(sibling(img, ".dat"), NULL), *gp = mp_test_slurp(sibling(img, ".gp"), NULL);
    CU_ASSERT(dat && strstr(dat, "\n6 3.25 "));
    CU_ASSERT(gp && strstr(gp, "kshow = '11111010'"));
    free(dat);
    free(gp);
    free(out);
}

static void test_timeline_two_svg(void)
{
    char *img = abs_tmp("tl2.svg"), *out = NULL;
    char *argv[] = { tool(), "timeline", fx("plot_trace.json"), fx("plot_trace_measured.json"), "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, &out, NULL), 0);
    CU_ASSERT(strstr(out, "14 rows") != NULL);
    check_outputs(img, 1);
    char *svg = mp_test_slurp(img, NULL);
    CU_ASSERT(svg && strstr(svg, "measured: stage 0") && (strstr(svg, "predicted: link 0-&gt;1") || strstr(svg, "predicted: link 0->1")));
    /* measured = predicted * 1.1: 98.2477 * 1.1 = 108.0725 */
    char *gp = mp_test_slurp(sibling(img, ".gp"), NULL);
    CU_ASSERT(gp && strstr(gp, "predicted 98.248 ms (top) vs measured 108.07"));
    free(gp);
    free(svg);
    free(out);
}

/* Measurements taken on a busy machine say so in the picture's title; quiet
 * ones (<= 5% of the CPUs to other processes) do not. */
static void test_busy_title(void)
{
    char *tr = mp_test_slurp(fx("plot_trace_measured.json"), NULL);
    CU_ASSERT_FATAL(tr && tr[0] == '{');
    size_t n = strlen(tr);
    char *busy = malloc(n + 64);
    snprintf(busy, n + 64, "{\"otherData\": {\"others_pct\": 23.4}, %s", tr + 1);
    const char *bpath = mp_test_write_file("busy.trace.json", busy);
    const char *vpath = mp_test_write_file("busy.validate.json",
        "[{\"config\": \"a\", \"predicted_ms\": 10, \"measured_ms\": 11, \"others_pct\": 3},"
        " {\"config\": \"b\", \"predicted_ms\": 20, \"measured_ms\": 19, \"others_pct\": 41.2}]");
    const char *qpath = mp_test_write_file("quiet.validate.json",
        "[{\"config\": \"a\", \"predicted_ms\": 10, \"measured_ms\": 11, \"others_pct\": 4.9}]");
    struct { const char *sub, *in, *want; } cases[] = {
        { "timeline", bpath, "machine busy: other processes took 23% of the CPUs" },
        { "accuracy", vpath, "machine busy: other processes took 41% of the CPUs" },
        { "accuracy", qpath, NULL },
        { "timeline", fx("plot_trace_measured.json"), NULL },
    };
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "busy%d.png", i);
        char *img = abs_tmp(name), *out = NULL;
        char *argv[] = { tool(), (char *)cases[i].sub, (char *)cases[i].in, "-o", img, NULL };
        CU_ASSERT_EQUAL_FATAL(run(argv, NULL, &out, NULL), 0);
        char *gp = mp_test_slurp(sibling(img, ".gp"), NULL);
        CU_ASSERT_FATAL(gp != NULL);
        if (cases[i].want) {
            CU_ASSERT_PTR_NOT_NULL(strstr(gp, cases[i].want));
        } else {
            CU_ASSERT_PTR_NULL(strstr(gp, "machine busy"));
        }
        free(gp);
        free(out);
    }
    free(busy);
    free(tr);
}

static void test_latency_sweep(void)
{
    char *img = abs_tmp("lat.png");
    char *argv[] = { tool(), "latency", fx("plot_latency_sweep.json"), "--measured",
                     fx("plot_latency_measured.json"), "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, NULL, NULL), 0);
    check_outputs(img, 0);
    char *gp = mp_test_slurp(sibling(img, ".gp"), NULL);
    CU_ASSERT(gp && strstr(gp, "slo_ms = 20\n") && strstr(gp, "has_measured = 1\n"));
    free(gp);
}

static void test_latency_simulated(void)
{
    char *img = abs_tmp("lat2.svg");
    char *argv[] = { tool(), "latency", "--profile", fx("plot_profile.json"), "--plan", fx("plot_plan_serve.json"),
                     "--rates", "100:1500:5", "--requests", "2000", "--slo-ms", "20", "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, NULL, NULL), 0);
    check_outputs(img, 1);
    /* 5 rates 100, 450, ..., 1500; p99 >= p50 and latency grows with load. */
    char *dat = mp_test_slurp(sibling(img, ".dat"), NULL);
    CU_ASSERT_FATAL(dat != NULL);
    double r[5], p50[5], p99[5], t;
    int n = 0;
    for (char *line = strtok(dat, "\n"); line && n < 5; line = strtok(NULL, "\n"))
        if (line[0] != '#' && sscanf(line, "%lf %lf %lf %lf", &r[n], &p50[n], &p99[n], &t) == 4) n++;
    CU_ASSERT_EQUAL_FATAL(n, 5);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT(fabs(r[i] - (100 + 350 * i)) < 1e-9);
        CU_ASSERT(p99[i] >= p50[i] && p50[i] > 0);
    }
    CU_ASSERT(p99[4] > p99[0]);
    free(dat);
}

/* --calibration: the simulated curve with the report's terms is mpplan
 * --serve --evaluate --rates --calibration's (the one serving evaluator),
 * and differs from the curve without them. */
static void test_latency_calibration(void)
{
    const char *cal = mp_test_write_file("plot_cal.json",
        "{\"calibration\": {\"fwd_scale\": 2, \"batch_overhead_ms\": 0.5, \"dispatch_ms\": 0.25}}");
    char *img = abs_tmp("lat3.svg");
    char *argv[] = { tool(), "latency", "--profile", fx("plot_profile.json"), "--plan", fx("plot_plan_serve.json"),
                     "--rates", "100:400:3", "--requests", "500", "--slo-ms", "20", "--devices", "2", "--memory",
                     "1GiB", "--calibration", (char *)cal, "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, NULL, NULL), 0);
    char *dat = mp_test_slurp(sibling(img, ".dat"), NULL);
    CU_ASSERT_FATAL(dat != NULL);
    double r[3], p50[3], p99[3], t;
    int n = 0;
    for (char *line = strtok(dat, "\n"); line && n < 3; line = strtok(NULL, "\n"))
        if (line[0] != '#' && sscanf(line, "%lf %lf %lf %lf", &r[n], &p50[n], &p99[n], &t) == 4) n++;
    CU_ASSERT_EQUAL_FATAL(n, 3);
    free(dat);
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s --serve --evaluate %s --profile %s --devices 2 --memory 1GiB --rates 100:400:3 "
             "--requests 500 --slo-ms 20 --calibration %s --json", mp_test_tool("mpplan"), fx("plot_plan_serve.json"),
             fx("plot_profile.json"), cal);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out, NULL), 0);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    const json_t *pts = json_object_get(j, "points");
    CU_ASSERT_EQUAL_FATAL(json_array_size(pts), 3);
    for (int i = 0; i < 3; i++) {
        const json_t *q = json_array_get(pts, (size_t)i);
        CU_ASSERT(fabs(p50[i] - json_number_value(json_object_get(q, "p50_ms"))) <= 1e-8 * p50[i]);
        CU_ASSERT(fabs(p99[i] - json_number_value(json_object_get(q, "p99_ms"))) <= 1e-8 * p99[i]);
    }
    json_decref(j);
    /* without the terms: lower latency */
    char *a2[] = { tool(), "latency", "--profile", fx("plot_profile.json"), "--plan", fx("plot_plan_serve.json"),
                   "--rates", "100:400:3", "--requests", "500", "--slo-ms", "20", "--devices", "2", "--memory",
                   "1GiB", "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(a2, NULL, NULL, NULL), 0);
    dat = mp_test_slurp(sibling(img, ".dat"), NULL);
    CU_ASSERT_FATAL(dat != NULL);
    double r0, a50, a99;
    char *line = strtok(dat, "\n");
    while (line && line[0] == '#') line = strtok(NULL, "\n");
    CU_ASSERT_FATAL(line && sscanf(line, "%lf %lf %lf", &r0, &a50, &a99) == 3);
    CU_ASSERT(a50 < p50[0]);
    free(dat);
    /* a bad calibration names the file */
    char *err = NULL;
    const char *bad = mp_test_write_file("plot_badcal.json", "{\"calibration\": {\"fwd_scale\": -1}}");
    char *a3[] = { tool(), "latency", "--profile", fx("plot_profile.json"), "--plan", fx("plot_plan_serve.json"),
                   "--rates", "100:400:3", "--calibration", (char *)bad, "-o", img, NULL };
    CU_ASSERT_EQUAL(run(a3, NULL, NULL, &err), 2);
    CU_ASSERT(err && strstr(err, "plot_badcal.json"));
    free(err);
}

static void test_sweep(void)
{
    char *img = abs_tmp("sweep.png");
    char *argv[] = { tool(), "sweep", "--profile", fx("plot_profile.json"), "--devices", "3", "--memory", "64MiB",
                     "--global-batch", "32", "--measured", fx("plot_sweep_measured.json"), "-o", img, NULL };
    CU_ASSERT_EQUAL_FATAL(run(argv, NULL, NULL, NULL), 0);
    check_outputs(img, 0);
    /* The starred point is the planner's best plan. */
    mp_error err = { 0 };
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_search_opts so;
    mp_search_result r = { 0 };
    CU_ASSERT_FATAL(mp_profile_load(fx("plot_profile.json"), &prof, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_cluster_uniform(&cl, 3, 64.0 * 1048576, 25e9, 1e-5, &err) == MP_OK);
    mp_search_opts_init(&so, 32);
    CU_ASSERT_FATAL(mp_search_run(&prof, &cl, &so, &r, &err) == MP_OK);
    char *dat = mp_test_slurp(sibling(img, ".dat"), NULL);
    char *best = dat ? strstr(dat, "# best: b samples_per_s\n") : NULL;
    CU_ASSERT_FATAL(best != NULL);
    int b = 0;
    double sps = 0;
    CU_ASSERT(sscanf(best + strlen("# best: b samples_per_s\n"), "%d %lf", &b, &sps) == 2);
    CU_ASSERT_EQUAL(b, r.plans[0].microbatch_size);
    CU_ASSERT(fabs(sps - r.plans[0].predicted.samples_per_s) <= 1e-6 * sps);
    /* No series point beats the best plan; the measured point is there. */
    for (char *line = strtok(dat, "\n"); line; line = strtok(NULL, "\n")) {
        double x, y;
        if (line[0] != '#' && sscanf(line, "%lf %lf", &x, &y) == 2) CU_ASSERT(y <= sps * (1 + 1e-9) || y == 340.0);
    }
    char *gp = mp_test_slurp(sibling(img, ".gp"), NULL);
    CU_ASSERT(gp && strstr(gp, "has_measured = 1\n") && strstr(gp, "'1f1b, 2 stages'"));
    free(gp);
    free(dat);
    mp_search_result_free(&r);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
}

static void test_bad_inputs(void)
{
    char *err = NULL;
    char *a1[] = { tool(), "accuracy", fx("plot_bad_validate.json"), "-o", tmp("bad1.png"), NULL };
    CU_ASSERT_EQUAL(run(a1, NULL, NULL, &err), 2);
    CU_ASSERT(strstr(err, "plot_bad_validate.json: [1].measured_ms") != NULL);
    CU_ASSERT(!exists(tmp("bad1.png")));
    free(err);
    char *a2[] = { tool(), "timeline", fx("plot_bad_trace.json"), "-o", tmp("bad2.png"), NULL };
    CU_ASSERT_EQUAL(run(a2, NULL, NULL, &err), 2);
    CU_ASSERT(strstr(err, "plot_bad_trace.json:3:") != NULL);   /* line of the syntax error */
    free(err);
    char *a3[] = { tool(), "accuracy", fx("no_such_file.json"), "-o", tmp("bad3.png"), NULL };
    CU_ASSERT_EQUAL(run(a3, NULL, NULL, &err), 2);
    CU_ASSERT(strstr(err, "no_such_file.json") != NULL);
    free(err);
    char *a4[] = { tool(), "accuracy", fx("plot_validate.json"), "-o", tmp("bad4.jpg"), NULL };
    CU_ASSERT_EQUAL(run(a4, NULL, NULL, &err), 2);
    CU_ASSERT(strstr(err, ".png or .svg") != NULL);
    free(err);
    char *a5[] = { tool(), "memory", fx("plot_plan.json"), "--profile", fx("plot_profile.json"), "--devices", "2",
                   "--memory", "1GiB", "-o", tmp("bad5.png"), NULL };
    CU_ASSERT_EQUAL(run(a5, NULL, NULL, &err), 2);   /* the plan uses device 2 */
    CU_ASSERT(strstr(err, "plot_plan.json") != NULL);
    free(err);
    char *a6[] = { tool(), "latency", fx("plot_validate.json"), "-o", tmp("bad6.png"), NULL };
    CU_ASSERT_EQUAL(run(a6, NULL, NULL, &err), 2);
    CU_ASSERT(strstr(err, "plot_validate.json") != NULL);
    free(err);
    char *a7[] = { tool(), "frobnicate", NULL };
    CU_ASSERT_EQUAL(run(a7, NULL, NULL, NULL), 2);
    char *a8[] = { tool(), "sweep", "--profile", fx("plot_profile.json"), "--devices", "3", "-o", tmp("b.png"), NULL };
    CU_ASSERT_EQUAL(run(a8, NULL, NULL, NULL), 2);   /* no --global-batch */
    char *a9[] = { tool(), "latency", "--profile", fx("plot_profile.json"), "--plan", fx("plot_plan_serve.json"),
                   "--rates", "5:1:3", "-o", tmp("b.png"), NULL };
    CU_ASSERT_EQUAL(run(a9, NULL, NULL, NULL), 2);
}

static void test_help(void)
{
    static const char *subs[] = { "sweep", "timeline", "latency", "accuracy", "memory" };
    char *out = NULL;
    char *a0[] = { tool(), "--help", NULL };
    CU_ASSERT_EQUAL(run(a0, NULL, &out, NULL), 0);
    for (int i = 0; i < 5; i++) CU_ASSERT(strstr(out, subs[i]) != NULL);
    free(out);
    for (int i = 0; i < 5; i++) {
        char *a[] = { tool(), (char *)subs[i], "--help", NULL };
        CU_ASSERT_EQUAL(run(a, NULL, &out, NULL), 0);
        CU_ASSERT(strstr(out, "usage: mpplot") != NULL && strstr(out, "--output") != NULL);
        free(out);
    }
}

static void test_gnuplot_missing(void)
{
    char *err = NULL;
    char *argv[] = { tool(), "accuracy", fx("plot_validate.json"), "-o", tmp("nogp.png"), NULL };
    CU_ASSERT_EQUAL(run(argv, "MPPLOT_GNUPLOT=/nonexistent/gnuplot", NULL, &err), 1);
    CU_ASSERT(strstr(err, "mpplot: gnuplot not found (install it with make deps)") != NULL);
    CU_ASSERT(exists(tmp("nogp.dat")) && exists(tmp("nogp.gp")));
    free(err);
}

/* Quotes, backquotes, $(...), @macros and newlines in a title and in the
 * output's directory and name: nothing runs, the image is written, the text
 * is drawn as given. */
static void test_no_injection(void)
{
    char dir[1024], marker[1024], img[2048];
    snprintf(marker, sizeof marker, "%s/pwned", mp_test_tmpdir());
    snprintf(dir, sizeof dir, "%s/d'q\"$(touch pwned)`touch pwned`", mp_test_tmpdir());
    CU_ASSERT_FATAL(mkdir(dir, 0755) == 0 || errno == EEXIST);
    snprintf(img, sizeof img, "%s/x'$(touch pwned)@m.png", dir);
    char title[4096];
    snprintf(title, sizeof title, "it's \"$(touch %s)\" `touch %s` @x\nsystem('touch %s')", marker, marker, marker);
    char cwd[1024];
    CU_ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    char *argv[] = { tool(), "accuracy", fx("plot_validate.json"), "--title", title, "-o", img, NULL };
    char prof[4096], plan[4096], val[6000];
    snprintf(val, sizeof val, "%s/%s", cwd, fx("plot_validate.json"));
    argv[2] = val;
    CU_ASSERT(chdir(mp_test_tmpdir()) == 0);   /* a relative `touch pwned` would land here */
    int rc = run(argv, NULL, NULL, NULL);
    CU_ASSERT(chdir(cwd) == 0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(is_png(img));
    check_outputs(img, 0);
    /* Also through the memory plot's stage labels and title. */
    snprintf(prof, sizeof prof, "%s", fx("plot_profile.json"));
    snprintf(plan, sizeof plan, "%s", fx("plot_plan.json"));
    char svg[2048];
    snprintf(svg, sizeof svg, "%s/m`touch pwned`.svg", dir);
    char *a2[] = { tool(), "memory", plan, "--profile", prof, "--devices", "3", "--memory", "1GiB", "--title", title,
                   "-o", svg, NULL };
    CU_ASSERT_EQUAL(run(a2, NULL, NULL, NULL), 0);
    char *s = mp_test_slurp(svg, NULL);
    CU_ASSERT(s && strstr(s, "$(touch ") != NULL);   /* drawn literally */
    free(s);
    struct stat st;
    CU_ASSERT(stat(marker, &st) != 0);
    char m2[2048];
    snprintf(m2, sizeof m2, "%s/pwned", dir);
    CU_ASSERT(stat(m2, &st) != 0);
    CU_ASSERT(access("pwned", F_OK) != 0);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_accuracy),
        MP_TEST(test_memory),
        MP_TEST(test_timeline),
        MP_TEST(test_timeline_two_svg), MP_TEST(test_busy_title),
        MP_TEST(test_timeline_allreduce),
        MP_TEST(test_latency_sweep),
        MP_TEST(test_latency_simulated),
        MP_TEST(test_latency_calibration),
        MP_TEST(test_sweep),
        MP_TEST(test_bad_inputs),
        MP_TEST(test_help),
        MP_TEST(test_gnuplot_missing),
        MP_TEST(test_no_injection),
    };
    return mp_test_main("mpplot", cases, (int)(sizeof cases / sizeof *cases));
}
