/* test_serve_mpi.c — mprun --serve with one MPI rank per stage (mpirun -np 2)
 * and, for comparison, on threads: a 2-stage serving plan of
 * profiles/tiny.model.json on an --arrivals trace answers every request, in
 * batches of at most max_batch that cover the requests in order, with outputs
 * (--checksum) bitwise equal to a one-stage forward of the batches the run
 * formed; only rank 0 reports; a rank count other than the plan's stages exits
 * non-zero with a message, never a hang. Nothing here depends on how fast the
 * machine is: the reference is computed from the batches the run reports.
 * Skipped when MPI was not built or mpirun cannot start two ranks. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "data.h"
#include "layers.h"
#include "model.h"
#include "sha256.h"
#include "testutil.h"

#define MODEL_PATH "profiles/tiny.model.json"
#define SEED 7
#define B 4
#define N 14

static char plan_path[1024], trace_path[1024];

static void setup(void)
{
    if (plan_path[0]) return;
    snprintf(plan_path, sizeof plan_path, "%s", mp_test_write_file("serve2.json",
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"serve\",\"schedule\":\"gpipe\",\"chunks_per_device\":1,"
        "\"global_batch\":4,\"microbatch_size\":4,\"num_microbatches\":1,\"max_batch\":4,\"max_wait_ms\":20,"
        "\"stages\":[{\"layers\":[0,4],\"device\":0},{\"layers\":[5,9],\"device\":1}]}"));
    /* seconds: 4 at once, 3, 6, 1: groups far apart (14 requests) */
    snprintf(trace_path, sizeof trace_path, "%s", mp_test_write_file("serve2.txt",
        "0\n0\n0\n0\n0.1\n0.1\n0.1\n0.2\n0.2\n0.2\n0.2\n0.2\n0.2\n0.3\n"));
}

static int have_mpirun(void)
{
    return mp_test_run_cmd("mpirun --version", NULL, NULL) == 0 &&
           mp_test_run_cmd("mpirun -np 2 --oversubscribe --allow-run-as-root true", NULL, NULL) == 0;
}

/* Runs `prefix mprun PLAN --serve ... --report R` under a 120 s timeout. */
static int serve(const char *prefix, const char *report, char **out, char **err)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "timeout 120 %s %s %s --model %s --serve --arrivals %s --no-pin --seed %d "
             "--slo-ms 1000 --checksum --timeout 20s --report %s", prefix, mp_test_tool("mprun"), plan_path,
             MODEL_PATH, trace_path, SEED, report);
    return mp_test_run_cmd(cmd, out, err);
}

/* SHA-256 of a one-stage forward of the requests in the batches `sizes`
 * (in order, from request 0), as the server hashes its outputs. */
static void reference_sha(json_t *sizes, char hex[65])
{
    mp_model m;
    mp_error err;
    mp_error_clear(&err);
    hex[0] = 0;
    CU_ASSERT_FATAL(mp_model_load(MODEL_PATH, &m, &err) == MP_OK);
    mp_backend *be;
    CU_ASSERT_FATAL(mp_backend_open("cpu", -1, &be, &err) == MP_OK);
    mp_stage_net net;
    CU_ASSERT_FATAL(mp_stage_init(&net, be, &m, 0, m.num_layers - 1, B, SEED, &err) == MP_OK);
    mp_data d;
    CU_ASSERT_FATAL(mp_data_init(&d, &m, SEED, &err) == MP_OK);
    float *x = malloc((size_t)B * net.in_dim * sizeof(float)), *y = malloc((size_t)B * net.out_dim * sizeof(float));
    float *stash = malloc(mp_stage_stash_bytes(&net, B) + 16);
    mp_sha256 h;
    mp_sha256_init(&h);
    int first = 0;
    for (size_t j = 0; j < json_array_size(sizes); j++) {
        int b = (int)json_integer_value(json_array_get(sizes, j));
        if (b < 1 || b > B || first + b > N) break;
        mp_data_inputs(&d, first, b, x);
        CU_ASSERT(mp_stage_forward(&net, b, x, y, stash, &err) == MP_OK);
        mp_sha256_update(&h, y, (size_t)b * net.out_dim * sizeof(float));
        first += b;
    }
    unsigned char dg[32];
    mp_sha256_final(&h, dg);
    mp_sha256_hex(dg, hex);
    free(x);
    free(y);
    free(stash);
    mp_data_free(&d);
    mp_stage_free(&net);
    mp_backend_close(be);
    mp_model_free(&m);
}

/* The report of a run of the 14 requests: all answered, batches of 1..B
 * covering them, two stages busy, outputs equal to the reference. */
static void check_report(const char *path, const char *transport)
{
    json_t *r = json_load_file(path, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "transport")), transport);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "requests")), N);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "completed")), N);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "unfinished")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "max_batch")), B);
    json_t *sizes = json_object_get(r, "batch_sizes");
    int sum = 0, ok = 1;
    for (size_t j = 0; j < json_array_size(sizes); j++) {
        json_int_t b = json_integer_value(json_array_get(sizes, j));
        ok &= b >= 1 && b <= B;
        sum += (int)b;
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(sum, N);
    CU_ASSERT_EQUAL((size_t)json_integer_value(json_object_get(r, "num_batches")), json_array_size(sizes));
    CU_ASSERT(json_array_size(sizes) >= (N + B - 1) / B);
    json_t *busy = json_object_get(r, "stage_busy_ms");
    CU_ASSERT_EQUAL(json_array_size(busy), 2);
    for (size_t s = 0; s < json_array_size(busy); s++) CU_ASSERT(json_number_value(json_array_get(busy, s)) > 0);
    CU_ASSERT(json_number_value(json_object_get(r, "p99_ms")) > 0);
    char ref[65];
    reference_sha(sizes, ref);
    const char *got = json_string_value(json_object_get(r, "outputs_sha256"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, ref);
    json_decref(r);
}

static void test_threads(void)
{
    setup();
    char report[4200], *out = NULL, *err = NULL;
    snprintf(report, sizeof report, "%s/threads.json", mp_test_tmpdir());
    int rc = serve("", report, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "(threads transport)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "# outputs sha256 "));
    check_report(report, "threads");
    free(out);
    free(err);
}

static void test_mpi(void)
{
    setup();
#ifndef MP_HAVE_MPI
    fprintf(stderr, "(built without MPI: MPI serving skipped)\n");
    return;
#endif
    if (!have_mpirun()) { fprintf(stderr, "(mpirun not usable: MPI serving skipped)\n"); return; }
    char report[4200], trace[4200], *out = NULL, *err = NULL;
    snprintf(report, sizeof report, "%s/mpi.json", mp_test_tmpdir());
    snprintf(trace, sizeof trace, "%s/mpi.trace.json", mp_test_tmpdir());
    char prefix[128];
    snprintf(prefix, sizeof prefix, "mpirun -np 2 --oversubscribe --allow-run-as-root");
    int rc = serve(prefix, report, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "(mpi transport)"));
    /* only rank 0 prints the summary */
    const char *m = strstr(out, "\nmeasured");
    CU_ASSERT_PTR_NOT_NULL(m);
    if (m) CU_ASSERT_PTR_NULL(strstr(m + 1, "\nmeasured"));
    check_report(report, "mpi");
    free(out);
    free(err);
    /* --trace from the merged result */
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "timeout 120 %s %s %s --model %s --serve --arrivals %s --no-pin --trace %s",
             prefix, mp_test_tool("mprun"), plan_path, MODEL_PATH, trace_path, trace);
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, NULL, NULL), 0);
    json_t *t = json_load_file(trace, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(t);
    json_decref(t);
    /* wrong rank count: a clear message, non-zero exit, no hang (124: timeout) */
    snprintf(prefix, sizeof prefix, "mpirun -np 3 --oversubscribe --allow-run-as-root");
    rc = serve(prefix, report, NULL, &err);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT_NOT_EQUAL(rc, 124);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "mpirun -np 2"));
    free(err);
}

int main(void)
{
    const mp_test_case cases[] = { MP_TEST(test_threads), MP_TEST(test_mpi) };
    return mp_test_main("serve_mpi", cases, (int)(sizeof cases / sizeof cases[0]));
}
