/* test_validate.c — plots/validate.sh end to end on the tiny model (one
 * round of 3 steps, no serving): it exits 0, prints the table and writes
 * out/validate.json with one entry per configuration whose error is the
 * run's own (measured - predicted) / predicted; with GPT=1 the token
 * model's rows join it; a missing model exits non-zero naming the file. Timing values are only checked for sanity. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int run_validate_env(const char *env, const char *model, const char *out_dir, char **out, char **err)
{
    char cmd[3072], bin[1024];
    snprintf(bin, sizeof bin, "%s", mp_test_tool("mpprof"));
    *strrchr(bin, '/') = 0;
    snprintf(cmd, sizeof cmd, "%s MPKIT_BIN=%s OUT=%s MODEL=%s STEPS=3 REPS=1 SERVE=0 ZB=0 DP=0 bash plots/validate.sh",
             env, bin, out_dir, model);
    return mp_test_run_cmd(cmd, out, err);
}

static int run_validate(const char *model, const char *out_dir, char **out, char **err)
{
    return run_validate_env("", model, out_dir, out, err);
}

static void test_tiny_round(void)
{
    char dir[600], path[700], *out = NULL, *err = NULL;
    snprintf(dir, sizeof dir, "%s/validate", mp_test_tmpdir());
    int rc = run_validate("profiles/tiny.model.json", dir, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(strstr(out, "config") && strstr(out, "mean |error|") && strstr(out, "other processes took"));
    free(out); free(err);

    snprintf(path, sizeof path, "%s/validate.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CU_ASSERT_FATAL(json_is_array(root));
    CU_ASSERT_EQUAL(json_array_size(root), 10);   /* 7 configurations + zb-h1, zb-h2, zb-v */
    size_t i;
    json_t *row;
    json_array_foreach(root, i, row) {
        double p = json_number_value(json_object_get(row, "predicted_ms"));
        double m = json_number_value(json_object_get(row, "measured_ms"));
        double e = json_number_value(json_object_get(row, "error_pct"));
        CU_ASSERT(json_is_string(json_object_get(row, "config")));
        CU_ASSERT(p > 0 && m > 0 && isfinite(e));
        CU_ASSERT(fabs(e - 100 * (m - p) / p) < 1e-6 * (1 + fabs(e)));   /* one run: its own error */
        CU_ASSERT(json_is_number(json_object_get(row, "replay_error_pct")));
        CU_ASSERT(json_is_number(json_object_get(row, "ops_pct")));
        CU_ASSERT_EQUAL(json_array_size(json_object_get(row, "runs_ms")), 1);
    }
    json_decref(root);
}

/* plots/validate_dp.sh on the tiny model: D=1xK=1, D=2xK=1, D=1xK=2 each
 * predicted and measured once, and mpplan's choice (devices limited to a
 * memory only a split fits, MEMSPLIT=1) judged against the measured fastest
 * that fits. */
static void test_dp_round(void)
{
    char bin[1024], dir[600], path[700], cmd[2400], *out = NULL, *err = NULL;
    snprintf(bin, sizeof bin, "%s", mp_test_tool("mpprof"));
    *strrchr(bin, '/') = 0;
    snprintf(dir, sizeof dir, "%s/validate-dp", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "MPKIT_BIN=%s OUT=%s MODELS=profiles/tiny.model.json GB=8 MEMSPLIT=1 STEPS=3 REPS=1 "
             "bash plots/validate_dp.sh", bin, dir);
    int rc = mp_test_run_cmd(cmd, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(strstr(out, "mpplan chooses D=") && strstr(out, "measured fastest") && strstr(out, "mean |error|"));
    free(out); free(err);
    snprintf(path, sizeof path, "%s/validate_dp.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je), *rows = json_object_get(root, "rows");
    CU_ASSERT_FATAL(json_is_array(rows));
    CU_ASSERT_EQUAL(json_array_size(rows), 3);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        double p = json_number_value(json_object_get(row, "predicted_ms"));
        double m = json_number_value(json_object_get(row, "measured_ms"));
        double e = json_number_value(json_object_get(row, "error_pct"));
        int D = (int)json_integer_value(json_object_get(row, "D")), K = (int)json_integer_value(json_object_get(row, "K"));
        CU_ASSERT(p > 0 && m > 0 && isfinite(e));
        CU_ASSERT(fabs(e - 100 * (m - p) / p) < 1e-3 * (1 + fabs(e)));
        CU_ASSERT(D * K <= 2 && D >= 1 && K >= 1);
        CU_ASSERT(D == 1 || json_number_value(json_object_get(row, "allreduce_measured_ms")) > 0);
        CU_ASSERT(json_is_boolean(json_object_get(row, "fits")));
    }
    json_t *ch = json_array_get(json_object_get(root, "choices"), 0);
    CU_ASSERT_FATAL(ch != NULL);
    CU_ASSERT(json_is_boolean(json_object_get(ch, "right")));
    json_decref(root);
}

/* The token-model block (make validate's gpt-mini rows), on the tiny GPT
 * fixture: its eight configurations join validate.json, named "tiny_gpt:...". */
static void test_token_rows(void)
{
    char dir[600], path[700], env[1024], *out = NULL, *err = NULL;
    snprintf(dir, sizeof dir, "%s/validate-gpt", mp_test_tmpdir());
    snprintf(env, sizeof env, "GPT=1 GPT_MODEL=%s GPT_STEPS=3 GPT_REPS=1 CONFIGS=1:gpipe:8",
             mp_test_fixture("tiny_gpt.model.json"));
    int rc = run_validate_env(env, "profiles/tiny.model.json", dir, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    free(out); free(err);
    snprintf(path, sizeof path, "%s/validate.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CU_ASSERT_FATAL(json_is_array(root));
    CU_ASSERT_EQUAL(json_array_size(root), 1 + 8);
    int tok = 0;
    size_t i;
    json_t *row;
    json_array_foreach(root, i, row) {
        const char *c = json_string_value(json_object_get(row, "config"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        if (strncmp(c, "tiny_gpt:", 9) == 0) {
            tok++;
            CU_ASSERT(json_number_value(json_object_get(row, "measured_ms")) > 0);
            CU_ASSERT(json_number_value(json_object_get(row, "predicted_ms")) > 0);
        }
    }
    CU_ASSERT_EQUAL(tok, 8);
    json_decref(root);
}

static void test_missing_model(void)
{
    char dir[600], *out = NULL, *err = NULL;
    snprintf(dir, sizeof dir, "%s/validate-bad", mp_test_tmpdir());
    int rc = run_validate("/nonexistent/model.json", dir, &out, &err);
    CU_ASSERT(rc != 0);
    CU_ASSERT(strstr(err, "/nonexistent/model.json") != NULL);
    free(out); free(err);
}

int main(void)
{
    static const mp_test_case cases[] = { MP_TEST(test_tiny_round), MP_TEST(test_dp_round), MP_TEST(test_token_rows),
                                          MP_TEST(test_missing_model) };
    return mp_test_main("validate", cases, sizeof cases / sizeof cases[0]);
}
