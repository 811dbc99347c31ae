/* test_profile.c — profile loading, validation, saving (core/profile.c) and
 * time functions (core/time_fn.c), plus the atomic writer in json_util. */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_util.h"
#include "profile.h"
#include "testutil.h"

#define MiB 1048576.0

/* ---------------------------------------------------------------- helpers */

static int same_time(const mp_time_fn *a, const mp_time_fn *b)
{
    if (a->kind != b->kind || a->alpha != b->alpha || a->beta != b->beta) return 0;
    if (a->kind != MP_TIME_TABLE) return 1;
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->batch[i] != b->batch[i] || a->ms[i] != b->ms[i]) return 0;
    return 1;
}

static int same_profile(const mp_profile *a, const mp_profile *b)
{
    if (strcmp(a->model, b->model) || strcmp(a->device, b->device)) return 0;
    if (a->input_bytes_per_sample != b->input_bytes_per_sample || a->num_layers != b->num_layers)
        return 0;
    for (int i = 0; i < a->num_layers; i++) {
        const mp_layer_cost *x = &a->layers[i], *y = &b->layers[i];
        if (strcmp(x->name, y->name) || !same_time(&x->fwd, &y->fwd) || !same_time(&x->bwd, &y->bwd) ||
            x->param_bytes != y->param_bytes || x->out_bytes_per_sample != y->out_bytes_per_sample ||
            x->stash_bytes_per_sample != y->stash_bytes_per_sample)
            return 0;
    }
    return 1;
}

static int is_zero(const mp_profile *p)
{
    static const mp_profile z;
    return memcmp(p, &z, sizeof z) == 0;
}

/* Parses `text`, expects MP_ERR_INPUT with a message containing each of the
 * NULL-terminated fragments, and a zeroed profile. */
static void expect_error(const char *text, ...)
{
    mp_profile p;
    mp_error e;
    mp_error_clear(&e);
    mp_status st = mp_profile_parse(text, strlen(text), "t.json", &p, &e);
    CU_ASSERT_EQUAL(st, MP_ERR_INPUT);
    CU_ASSERT_EQUAL(e.status, MP_ERR_INPUT);
    CU_ASSERT(is_zero(&p));
    CU_ASSERT_EQUAL(strncmp(e.msg, "t.json:", 7), 0);
    va_list ap;
    va_start(ap, text);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(e.msg, frag)) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e.msg, frag);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, frag));
    }
    va_end(ap);
    mp_profile_free(&p);
}

/* A one-layer profile with the given layer body (JSON members). */
static char *one_layer(const char *layer)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"format\": \"mpplan-profile/1\", \"model\": \"m\", \"device\": \"d\", \"layers\": [\n"
             "{\"name\": \"ok\", \"fwd_ms\": 1, \"bwd_ms\": 2, \"param_bytes\": 0, "
             "\"out_bytes_per_sample\": 0, \"stash_bytes_per_sample\": 0},\n{%s}]}",
             layer);
    return buf;
}

#define GOOD_REST "\"param_bytes\": 1, \"out_bytes_per_sample\": 2, \"stash_bytes_per_sample\": 3"

/* ---------------------------------------------------------------- time functions */

static void test_time_forms(void)
{
    mp_time_fn lin = {MP_TIME_LINEAR, 0, 0.5, 0, NULL, NULL};
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&lin, 4), 2.0, 1e-12);
    mp_time_fn aff = {MP_TIME_AFFINE, 0.1, 0.25, 0, NULL, NULL};
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&aff, 4), 1.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&aff, 1), 0.35, 1e-12);

    double xb[] = {1, 2, 4, 8}, xm[] = {1.0, 1.5, 2.5, 4.5};
    mp_time_fn tab = {MP_TIME_TABLE, 0, 0, 4, xb, xm};
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 1), 1.0, 1e-12);   /* knots */
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 2), 1.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 4), 2.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 8), 4.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 3), 2.0, 1e-12);   /* interpolation */
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 6), 3.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 16), 8.5, 1e-12);  /* last segment extended */
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&tab, 0.5), 0.75, 1e-12); /* first segment extended */

    double cb[] = {2, 4}, cm[] = {1, 5};   /* slope 2: at b=1 it would be -1 */
    mp_time_fn clamp = {MP_TIME_TABLE, 0, 0, 2, cb, cm};
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&clamp, 1), 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&clamp, 1.5), 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&clamp, 3), 3.0, 1e-12);
    double db[] = {1, 2}, dm[] = {5, 3};   /* decreasing time: clamped at 0 far out */
    mp_time_fn down = {MP_TIME_TABLE, 0, 0, 2, db, dm};
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&down, 4), 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&down, 3), 1.0, 1e-12);

    double sb[] = {4}, sm[] = {6};         /* one point: constant per-sample rate */
    mp_time_fn one = {MP_TIME_TABLE, 0, 0, 1, sb, sm};
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&one, 2), 3.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&one, 8), 12.0, 1e-12);
}

/* Random tables: exact at knots, midpoints average their neighbours, and
 * outside the table the nearest segment extended (then clamped). */
static void test_time_table_random(void)
{
    srand(12345);
    for (int trial = 0; trial < 500; trial++) {
        int n = 2 + rand() % 8;
        double b[10], m[10];
        double x = 0.5 + rand() % 4;
        for (int i = 0; i < n; i++) {
            b[i] = x;
            m[i] = (rand() % 1000) / 10.0;
            x += 0.25 + rand() % 5;
        }
        mp_time_fn f = {MP_TIME_TABLE, 0, 0, n, b, m};
        for (int i = 0; i < n; i++) CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&f, b[i]), m[i], 1e-9);
        for (int i = 0; i + 1 < n; i++)
            CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&f, (b[i] + b[i + 1]) / 2), (m[i] + m[i + 1]) / 2, 1e-9);
        double hi = b[n - 1] + 3, lo = b[0] / 2;
        double want_hi = m[n - 1] + (m[n - 1] - m[n - 2]) / (b[n - 1] - b[n - 2]) * 3;
        double want_lo = m[0] - (m[1] - m[0]) / (b[1] - b[0]) * (b[0] - lo);
        CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&f, hi), want_hi > 0 ? want_hi : 0, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&f, lo), want_lo > 0 ? want_lo : 0, 1e-9);
    }
}

/* ---------------------------------------------------------------- loading */

static void test_load_fixture(void)
{
    mp_profile p;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(mp_test_fixture("profile_small.json"), &p, &e), MP_OK);
    CU_ASSERT_STRING_EQUAL(p.model, "mlp-4");
    CU_ASSERT_STRING_EQUAL(p.device, "cpu-test");
    CU_ASSERT_EQUAL(p.input_bytes_per_sample, 4096);
    CU_ASSERT_EQUAL_FATAL(p.num_layers, 4);
    CU_ASSERT_STRING_EQUAL(p.layers[0].name, "embed");
    CU_ASSERT_EQUAL(p.layers[0].fwd.kind, MP_TIME_LINEAR);
    CU_ASSERT_EQUAL(p.layers[0].fwd.beta, 0.5);
    CU_ASSERT_EQUAL(p.layers[0].param_bytes, 4 * MiB);
    CU_ASSERT_EQUAL(p.layers[1].fwd.kind, MP_TIME_AFFINE);
    CU_ASSERT_EQUAL(p.layers[1].bwd.alpha, 0.2);
    CU_ASSERT_EQUAL(p.layers[1].out_bytes_per_sample, 4096);
    CU_ASSERT_EQUAL(p.layers[1].stash_bytes_per_sample, 16384);
    CU_ASSERT_EQUAL(p.layers[2].fwd.kind, MP_TIME_TABLE);
    CU_ASSERT_EQUAL(p.layers[2].fwd.n, 4);
    CU_ASSERT_EQUAL(p.layers[2].bwd.n, 1);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&p.layers[2].fwd, 3), 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&p.layers[2].bwd, 2), 3.0, 1e-12);
    CU_ASSERT_EQUAL(p.layers[3].param_bytes, 1.5e6);
    CU_ASSERT_EQUAL(p.layers[3].stash_bytes_per_sample, 0);
    mp_profile_free(&p);
    CU_ASSERT(is_zero(&p));
    mp_profile_free(&p);  /* safe on a zeroed profile */
}

static void test_file_errors(void)
{
    mp_profile p;
    mp_error e;
    mp_error_clear(&e);
    const char *path = "/nonexistent-dir/none.json";
    CU_ASSERT_EQUAL(mp_profile_load(path, &p, &e), MP_ERR_IO);
    CU_ASSERT_STRING_EQUAL(e.msg, "/nonexistent-dir/none.json: cannot open: No such file or directory");
    CU_ASSERT(is_zero(&p));

    mp_error_clear(&e);
    const char *syn = mp_test_fixture("bad_profile_syntax.json");
    CU_ASSERT_EQUAL(mp_profile_load(syn, &p, &e), MP_ERR_INPUT);
    char want[512];
    snprintf(want, sizeof want, "%s:6:", syn);
    CU_ASSERT_EQUAL(strncmp(e.msg, want, strlen(want)), 0);
    int col = 0;
    CU_ASSERT_EQUAL(sscanf(e.msg + strlen(want), "%d:", &col), 1);
    CU_ASSERT(col > 20 && col < 40);
    CU_ASSERT(is_zero(&p));

    struct { const char *file, *frag; } cases[] = {
        {"bad_profile_table.json", ": layers[1].fwd_ms.batch[2]: batch sizes must be strictly increasing"},
        {"bad_profile_negative.json", ": layers[0].param_bytes: must be >= 0"},
        {"bad_profile_format.json", ": format: expected \"mpplan-profile/1\", got \"mpplan-cluster/1\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mp_error_clear(&e);
        const char *f = mp_test_fixture(cases[i].file);
        char fpath[512];
        snprintf(fpath, sizeof fpath, "%s", f);
        CU_ASSERT_EQUAL(mp_profile_load(fpath, &p, &e), MP_ERR_INPUT);
        CU_ASSERT_EQUAL(strncmp(e.msg, fpath, strlen(fpath)), 0);
        if (!strstr(e.msg, cases[i].frag)) fprintf(stderr, "got: %s\n", e.msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, cases[i].frag));
        CU_ASSERT(is_zero(&p));
    }
}

static void test_value_errors(void)
{
    const char *hdr = "\"format\": \"mpplan-profile/1\", \"model\": \"m\", \"device\": \"d\"";
    char buf[1024];
    expect_error("[1, 2]", "t.json: expected a JSON object", NULL);
    expect_error("{\"model\": \"m\"}", "t.json: format: missing (expected \"mpplan-profile/1\")", NULL);
    expect_error("{\"format\": 1}", "format: expected \"mpplan-profile/1\", got a number", NULL);
    expect_error("{\"format\": \"mpplan-profile/1\", \"device\": \"d\", \"layers\": []}", "t.json: model: missing", NULL);
    expect_error("{\"format\": \"mpplan-profile/1\", \"model\": 3, \"device\": \"d\"}", "model: must be a string", NULL);
    snprintf(buf, sizeof buf, "{%s}", hdr);
    expect_error(buf, "t.json: layers: missing", NULL);
    snprintf(buf, sizeof buf, "{%s, \"layers\": []}", hdr);
    expect_error(buf, "layers: must not be empty", NULL);
    snprintf(buf, sizeof buf, "{%s, \"layers\": {}}", hdr);
    expect_error(buf, "layers: must be an array", NULL);
    snprintf(buf, sizeof buf, "{%s, \"input_bytes_per_sample\": -1, \"layers\": []}", hdr);
    expect_error(buf, "input_bytes_per_sample: must be >= 0", NULL);
    snprintf(buf, sizeof buf, "{%s, \"layers\": [1]}", hdr);
    expect_error(buf, "layers[0]: must be an object", NULL);
    snprintf(buf, sizeof buf, "{%s, \"a\": 1, \"a\": 2, \"layers\": []}", hdr);
    expect_error(buf, "t.json:1:", "duplicate", NULL);

    expect_error(one_layer("\"fwd_ms\": 1, \"bwd_ms\": 1, " GOOD_REST), "layers[1].name: missing", NULL);
    expect_error(one_layer("\"name\": \"x\", \"bwd_ms\": 1, " GOOD_REST), "layers[1].fwd_ms: missing", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, " GOOD_REST), "layers[1].bwd_ms: missing", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": -1, \"bwd_ms\": 1, " GOOD_REST),
                 "layers[1].fwd_ms: must be >= 0", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": \"1ms\", \"bwd_ms\": 1, " GOOD_REST),
                 "layers[1].fwd_ms: must be a number", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": {\"alpha\": 1}, \"bwd_ms\": 1, " GOOD_REST),
                 "layers[1].fwd_ms.beta: missing", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": {\"alpha\": -1, \"beta\": 1}, \"bwd_ms\": 1, " GOOD_REST),
                 "layers[1].fwd_ms.alpha: must be >= 0", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": {}, \"bwd_ms\": 1, " GOOD_REST),
                 "layers[1].fwd_ms: object needs", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": {\"alpha\": 1, \"beta\": 1, \"ms\": [1]}, \"bwd_ms\": 1, " GOOD_REST),
                 "layers[1].fwd_ms: has both", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": {\"batch\": [], \"ms\": []}, " GOOD_REST),
                 "layers[1].bwd_ms.batch: must not be empty", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": {\"batch\": [1, 2], \"ms\": [1]}, " GOOD_REST),
                 "layers[1].bwd_ms.ms: has 1 entries but batch has 2", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": {\"batch\": [1, 1], \"ms\": [1, 2]}, " GOOD_REST),
                 "layers[1].bwd_ms.batch[1]: batch sizes must be strictly increasing", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": {\"batch\": [0, 1], \"ms\": [1, 2]}, " GOOD_REST),
                 "layers[1].bwd_ms.batch[0]: must be > 0", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": {\"batch\": [1, 2], \"ms\": [1, -2]}, " GOOD_REST),
                 "layers[1].bwd_ms.ms[1]: must be >= 0", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": {\"batch\": 1, \"ms\": [1]}, " GOOD_REST),
                 "layers[1].bwd_ms.batch: must be an array", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": 1, \"param_bytes\": \"4XB\", "
                           "\"out_bytes_per_sample\": 0, \"stash_bytes_per_sample\": 0"),
                 "layers[1].param_bytes: invalid size \"4XB\": unknown unit", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": 1, \"param_bytes\": \"-4MiB\", "
                           "\"out_bytes_per_sample\": 0, \"stash_bytes_per_sample\": 0"),
                 "layers[1].param_bytes: invalid size \"-4MiB\"", "negative", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": 1, \"param_bytes\": true, "
                           "\"out_bytes_per_sample\": 0, \"stash_bytes_per_sample\": 0"),
                 "layers[1].param_bytes: must be a number or a string", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": 1, \"param_bytes\": 1, "
                           "\"stash_bytes_per_sample\": 0"),
                 "layers[1].out_bytes_per_sample: missing", NULL);
    expect_error(one_layer("\"name\": \"x\", \"fwd_ms\": 1, \"bwd_ms\": 1, \"param_bytes\": 1, "
                           "\"out_bytes_per_sample\": 0, \"stash_bytes_per_sample\": -0.5"),
                 "layers[1].stash_bytes_per_sample: must be >= 0", NULL);
    expect_error("{\"format\": \"mpplan-profile/1\", \"model\": \"m\", \"device\": \"d\", \"layers\": [{\"name\": \"x\", "
                 "\"fwd_ms\": 1e999, \"bwd_ms\": 1}]}", "t.json:1:", NULL);
    /* NULL err is allowed */
    mp_profile p;
    CU_ASSERT_EQUAL(mp_profile_parse("{}", 2, "x", &p, NULL), MP_ERR_INPUT);
    CU_ASSERT(is_zero(&p));
}

static void test_extra_fields_ignored(void)
{
    mp_profile p;
    mp_error e;
    mp_error_clear(&e);
    const char *t = one_layer("\"name\": \"x\", \"fwd_ms\": {\"alpha\": 1, \"beta\": 2, \"fit\": \"ols\", "
                              "\"r2\": 0.9}, \"bwd_ms\": {\"batch\": [1], \"ms\": [2], \"spread\": [0.1]}, "
                              "\"extra\": null, " GOOD_REST);
    CU_ASSERT_EQUAL_FATAL(mp_profile_parse(t, strlen(t), "t.json", &p, &e), MP_OK);
    CU_ASSERT_EQUAL(p.num_layers, 2);
    CU_ASSERT_EQUAL(p.layers[1].fwd.kind, MP_TIME_AFFINE);
    CU_ASSERT_EQUAL(p.layers[1].stash_bytes_per_sample, 3);
    CU_ASSERT_EQUAL(p.input_bytes_per_sample, 0);
    mp_profile_free(&p);
}

/* ---------------------------------------------------------------- saving */

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void test_round_trip(void)
{
    mp_profile a, b;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(mp_test_fixture("profile_small.json"), &a, &e), MP_OK);
    /* awkward values must survive exactly */
    a.layers[0].fwd.beta = 0.1 + 0.2;
    a.layers[1].param_bytes = 1e300;
    a.layers[2].fwd.ms[1] = 1.0 / 3.0;
    a.input_bytes_per_sample = 123456789.123456789;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/rt-profile", mp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/p.json", dir);
    CU_ASSERT_EQUAL_FATAL(mp_profile_save(path, &a, &e), MP_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 1);  /* no temp file left behind */
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(path, &b, &e), MP_OK);
    CU_ASSERT(same_profile(&a, &b));
    /* save over an existing file, again no temp file */
    b.layers[3].fwd.beta = 7;
    CU_ASSERT_EQUAL(mp_profile_save(path, &b, &e), MP_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 1);
    mp_profile c;
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(path, &c, &e), MP_OK);
    CU_ASSERT(same_profile(&b, &c));
    CU_ASSERT_EQUAL(c.layers[3].fwd.beta, 7);
    mp_profile_free(&a);
    mp_profile_free(&b);
    mp_profile_free(&c);
}

static void test_atomic_write(void)
{
    mp_error e;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/atomic", mp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_json_write_text(path, "hello\n", 6, &e), MP_OK);
    CU_ASSERT_EQUAL(mp_json_write_text(path, "bye\n", 4, &e), MP_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 1);
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mp_json_read_file(path, &text, &len, &e), MP_OK);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_STRING_EQUAL(text, "bye\n");
    free(text);
    struct stat sb;
    CU_ASSERT_EQUAL(stat(path, &sb), 0);
    CU_ASSERT_EQUAL(sb.st_mode & 0777, 0644);
    /* a directory that does not exist: MP_ERR_IO naming the path, nothing created */
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_json_write_text("/nonexistent-dir/x.json", "x", 1, &e), MP_ERR_IO);
    CU_ASSERT_STRING_EQUAL(e.msg, "/nonexistent-dir/x.json: cannot write: No such file or directory");
    /* the target is a non-empty directory: rename fails, the temp file is removed */
    char sub[700], target[800], deeper[900];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(target, sizeof target, "%s/inner", sub);
    snprintf(deeper, sizeof deeper, "%s/deeper", target);
    CU_ASSERT_EQUAL(mkdir(sub, 0755) | mkdir(target, 0755) | mkdir(deeper, 0755), 0);
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_json_write_text(target, "x", 1, &e), MP_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, ": cannot write: "));
    CU_ASSERT_EQUAL(count_entries(sub), 1);
    /* a bare relative file name (no directory part) works too */
    char cwd[4096];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    CU_ASSERT_EQUAL_FATAL(chdir(sub), 0);
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_json_write_text("rel.txt", "x", 1, &e), MP_OK);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    CU_ASSERT_EQUAL(count_entries(sub), 2);
}

/* Scales every time of p by f (all three forms). */
static void scale_times(mp_profile *p, double f)
{
    for (int l = 0; l < p->num_layers; l++) {
        mp_time_fn *fn[2] = {&p->layers[l].fwd, &p->layers[l].bwd};
        for (int d = 0; d < 2; d++) {
            fn[d]->alpha *= f;
            fn[d]->beta *= f;
            for (int k = 0; fn[d]->kind == MP_TIME_TABLE && k < fn[d]->n; k++) fn[d]->ms[k] *= f;
        }
    }
}

/* mp_profile_merge: the pointwise median of 1, 2 and 3 profiles (every time
 * form), and one message naming the odd file out when models differ. */
static void test_merge(void)
{
    mp_profile p[4], m, want;
    mp_error e = {0};
    const char *names[] = {"a.json", "b.json", "c.json", "d.json"};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(mp_profile_load(mp_test_fixture("profile_small.json"), &p[i], &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(mp_test_fixture("profile_small.json"), &want, &e), MP_OK);
    scale_times(&p[0], 3);   /* medians: of {3, 1, 2} -> 2; of {3, 1} -> 2 */
    scale_times(&p[2], 2);
    scale_times(&want, 2);
    CU_ASSERT_EQUAL_FATAL(mp_profile_merge(p, names, 3, &m, &e), MP_OK);
    CU_ASSERT(same_profile(&m, &want));
    mp_profile_free(&m);
    CU_ASSERT_EQUAL_FATAL(mp_profile_merge(p, names, 2, &m, &e), MP_OK);
    CU_ASSERT(same_profile(&m, &want));
    mp_profile_free(&m);
    CU_ASSERT_EQUAL_FATAL(mp_profile_merge(p + 1, names, 1, &m, &e), MP_OK);   /* one: itself */
    CU_ASSERT(same_profile(&m, &p[1]));
    mp_profile_free(&m);

    /* differences that make it another model: each message names d.json */
    p[3].layers[1].param_bytes += 4;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_profile_merge(p, names, 4, &m, &e), MP_ERR_INPUT);
    CU_ASSERT(strstr(e.msg, "d.json") && strstr(e.msg, "block1") && strstr(e.msg, "byte sizes"));
    CU_ASSERT(is_zero(&m));
    p[3].layers[1].param_bytes -= 4;
    p[3].layers[2].fwd.batch[3] = 16;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_profile_merge(p, names, 4, &m, &e), MP_ERR_INPUT);
    CU_ASSERT(strstr(e.msg, "d.json") && strstr(e.msg, "block2") && strstr(e.msg, "batch sizes"));
    p[3].layers[2].fwd.batch[3] = 8;
    p[3].layers[0].bwd.kind = MP_TIME_AFFINE;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_profile_merge(p, names, 4, &m, &e), MP_ERR_INPUT);
    CU_ASSERT(strstr(e.msg, "d.json") && strstr(e.msg, "embed") && strstr(e.msg, "bwd_ms"));
    p[3].layers[0].bwd.kind = MP_TIME_LINEAR;
    free(p[3].layers[3].name);
    p[3].layers[3].name = strdup("tail");
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_profile_merge(p, names, 4, &m, &e), MP_ERR_INPUT);
    CU_ASSERT(strstr(e.msg, "d.json") && strstr(e.msg, "'tail'"));
    p[3].num_layers--;   /* freed as 3 layers below: restore first */
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_profile_merge(p, names, 4, &m, &e), MP_ERR_INPUT);
    CU_ASSERT(strstr(e.msg, "d.json") && strstr(e.msg, "3 layers"));
    p[3].num_layers++;
    CU_ASSERT_EQUAL(mp_profile_merge(p, names, 0, &m, &e), MP_ERR_INPUT);
    for (int i = 0; i < 4; i++) mp_profile_free(&p[i]);
    mp_profile_free(&want);
}

/* The split backward: bwd_input_ms and bwd_weight_ms are optional and come
 * together; they and wgrad_stash_bytes_per_sample survive save/load and a
 * merge of profiles that all have them; an old profile has none. */
static void test_split_backward_fields(void)
{
    static const char *hdr = "{\"format\":\"mpplan-profile/1\",\"model\":\"x\",\"device\":\"d\",\"layers\":[";
    static const char *base = "{\"name\":\"a\",\"fwd_ms\":1,\"bwd_ms\":2,\"param_bytes\":4,"
                              "\"out_bytes_per_sample\":4,\"stash_bytes_per_sample\":4";
    char text[1024];
    mp_profile p, q, m;
    mp_error e = {0};
    snprintf(text, sizeof text, "%s%s}]}", hdr, base);
    CU_ASSERT_EQUAL_FATAL(mp_profile_parse(text, strlen(text), "old.json", &p, &e), MP_OK);
    CU_ASSERT_EQUAL(p.layers[0].has_split, 0);
    CU_ASSERT_EQUAL(mp_profile_has_split(&p), 0);
    mp_profile_free(&p);
    snprintf(text, sizeof text, "%s%s,\"bwd_input_ms\":1.25}]}", hdr, base);
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_profile_parse(text, strlen(text), "half.json", &p, &e), MP_ERR_INPUT);
    CU_ASSERT(strstr(e.msg, "half.json") && strstr(e.msg, "layers[0].bwd_weight_ms") && strstr(e.msg, "missing"));
    snprintf(text, sizeof text, "%s%s,\"bwd_input_ms\":{\"alpha\":0.5,\"beta\":1.25},\"bwd_weight_ms\":0.75,"
             "\"wgrad_stash_bytes_per_sample\":16}]}", hdr, base);
    CU_ASSERT_EQUAL_FATAL(mp_profile_parse(text, strlen(text), "new.json", &p, &e), MP_OK);
    CU_ASSERT(mp_profile_has_split(&p));
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&p.layers[0].bwd_in, 2), 3.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&p.layers[0].bwd_w, 2), 1.5, 1e-12);
    CU_ASSERT_EQUAL(p.layers[0].wstash_bytes_per_sample, 16);
    char path[600];
    snprintf(path, sizeof path, "%s/split.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(mp_profile_save(path, &p, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(path, &q, &e), MP_OK);
    CU_ASSERT(mp_profile_has_split(&q));
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&q.layers[0].bwd_in, 3), 4.25, 1e-12);
    CU_ASSERT_EQUAL(q.layers[0].wstash_bytes_per_sample, 16);
    const char *names[] = {"a", "b"};
    mp_profile two[2] = {p, q};
    CU_ASSERT_EQUAL_FATAL(mp_profile_merge(two, names, 2, &m, &e), MP_OK);
    CU_ASSERT(mp_profile_has_split(&m));
    CU_ASSERT_DOUBLE_EQUAL(mp_time_eval(&m.layers[0].bwd_w, 2), 1.5, 1e-12);
    mp_profile_free(&m);
    mp_profile_free(&p);
    mp_profile_free(&q);
}

/* busy_cores: read from an mpprof CPU profile's settings.threads, ignored
 * when malformed or not CPU, kept by save/load and by merge when all agree. */
static void test_busy_cores(void)
{
    static const char *layer = "\"layers\":[{\"name\":\"a\",\"fwd_ms\":1,\"bwd_ms\":2,\"param_bytes\":4,"
                               "\"out_bytes_per_sample\":4,\"stash_bytes_per_sample\":4}]";
    struct { const char *extra; int want; } cases[] = {
        {"\"backend\":\"cpu\",\"settings\":{\"threads\":2},", 2},
        {"\"backend\":\"cuda\",\"settings\":{\"threads\":1},", 0},
        {"\"backend\":\"cpu\",\"settings\":{\"threads\":\"two\"},", 0},
        {"\"backend\":\"cpu\",\"settings\":{\"threads\":0},", 0},
        {"\"backend\":\"cpu\",\"settings\":7,", 0},
        {"", 0},
    };
    mp_profile p[6], m;
    mp_error e = {0};
    for (int i = 0; i < 6; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{\"format\":\"mpplan-profile/1\",\"model\":\"x\",\"device\":\"d\",%s%s}",
                 cases[i].extra, layer);
        CU_ASSERT_EQUAL_FATAL(mp_profile_parse(text, strlen(text), "t.json", &p[i], &e), MP_OK);
        CU_ASSERT_EQUAL(p[i].busy_cores, cases[i].want);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/busy.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(mp_profile_save(path, &p[0], &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(path, &m, &e), MP_OK);
    CU_ASSERT_EQUAL(m.busy_cores, 2);
    mp_profile_free(&m);
    const char *names[] = {"a", "b"};
    mp_profile two[2] = {p[0], p[0]};
    CU_ASSERT_EQUAL_FATAL(mp_profile_merge(two, names, 2, &m, &e), MP_OK);
    CU_ASSERT_EQUAL(m.busy_cores, 2);
    mp_profile_free(&m);
    two[1] = p[5];
    CU_ASSERT_EQUAL_FATAL(mp_profile_merge(two, names, 2, &m, &e), MP_OK);
    CU_ASSERT_EQUAL(m.busy_cores, 0);
    mp_profile_free(&m);
    for (int i = 0; i < 6; i++) mp_profile_free(&p[i]);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_time_forms), MP_TEST(test_time_table_random), MP_TEST(test_load_fixture),
        MP_TEST(test_file_errors), MP_TEST(test_value_errors), MP_TEST(test_extra_fields_ignored),
        MP_TEST(test_round_trip), MP_TEST(test_atomic_write), MP_TEST(test_merge), MP_TEST(test_busy_cores),
        MP_TEST(test_split_backward_fields),
    };
    return mp_test_main("profile", cases, (int)(sizeof cases / sizeof *cases));
}
