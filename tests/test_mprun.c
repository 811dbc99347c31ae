/* test_mprun.c — the mprun tool end to end: loss falls, pipelined and
 * one-stage runs print the same weights checksum (threads and, when mpirun
 * works, MPI ranks), a run killed after a checkpoint and resumed ends with the
 * same weights as an uninterrupted one, report/trace files, and every failure
 * exits non-zero with one message naming the cause; data parallelism (D
 * replicas) bitwise across splits/schedules, close to D = 1, resumed, on
 * threads and mpirun -np D*K. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "testutil.h"


static char model_path[4096];

static const char *plan(const char *name, const char *schedule, int v, int gb, int b, const char *stages)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"%s\",\"chunks_per_device\":%d,"
             "\"global_batch\":%d,\"microbatch_size\":%d,\"stages\":[%s]}", schedule, v, gb, b, stages);
    return mp_test_write_file(name, text);
}

static void setup(void)
{
    if (!model_path[0]) snprintf(model_path, sizeof model_path, "%s", mp_test_fixture("small_model.json"));
}

/* Runs mprun with `args` after the plan; returns the exit status and the
 * checksum line's hash in sum (65 bytes). */
static int mprun(const char *prefix, const char *plan_path, const char *args, char *sum, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s %s --model %s %s", prefix, mp_test_tool("mprun"), plan_path, model_path, args);
    char *o = NULL, *e = NULL;
    int rc = mp_test_run_cmd(cmd, &o, &e);
    if (sum) {
        sum[0] = 0;
        const char *c = strstr(o, "checksum");
        if (c) sscanf(c, "checksum %64s", sum);
    }
    if (out) *out = o; else free(o);
    if (err) *err = e; else free(e);
    return rc;
}

static void test_loss_falls_and_report(void)
{
    setup();
    const char *p = plan("p2.json", "1f1b", 1, 32, 8, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}");
    char rep[4200], tr[4200], sum[65];
    snprintf(rep, sizeof rep, "%s/report.json", mp_test_tmpdir());
    snprintf(tr, sizeof tr, "%s/trace.json", mp_test_tmpdir());
    char args[9000], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "--steps 30 --optimizer adam --lr 0.003 --no-pin --report %s --trace %s", rep, tr);
    int rc = mprun("", p, args, sum, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "step 1 loss"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "step 30 loss"));
    CU_ASSERT_EQUAL(strlen(sum), 64);
    json_error_t je;
    json_t *j = json_load_file(rep, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *losses = json_object_get(j, "losses");
    CU_ASSERT_EQUAL(json_array_size(losses), 30);
    double l0 = json_number_value(json_array_get(losses, 0)), l29 = json_number_value(json_array_get(losses, 29));
    CU_ASSERT(l29 < 0.5 * l0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "weights_sha256")), sum);
    CU_ASSERT(json_number_value(json_object_get(j, "iteration_ms")) > 0);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "stages")), 2);
    /* the other processes' share of the CPUs while it ran, for the pictures:
     * unknown (no field, no line) only when the run was too short for the
     * kernel's CPU counters (ticks of 10 ms) to register it */
    const json_t *others = json_object_get(j, "others_pct");
    double busy = json_number_value(others), run_ms = 30 * json_number_value(json_object_get(j, "step_ms"));
    if (others || run_ms > 200) {
        CU_ASSERT(json_is_number(others) && busy >= 0 && busy <= 100);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "# machine: other processes took "));
    } else
        CU_ASSERT_PTR_NULL(strstr(out, "# machine: other processes took "));
    json_decref(j);
    j = json_load_file(tr, 0, &je);
    CU_ASSERT_PTR_NOT_NULL(j);
    json_t *od = json_object_get(json_object_get(j, "otherData"), "others_pct");
    CU_ASSERT(busy > 0 ? json_number_value(od) == busy : od == NULL);
    json_decref(j);
    free(out);
    free(err);
}

static void test_bitwise_threads(void)
{
    setup();
    char ref[65], sum[65];
    const char *args = "--steps 4 --no-pin --quiet --seed 5";
    CU_ASSERT_EQUAL_FATAL(mprun("", plan("one.json", "gpipe", 1, 24, 4, "{\"layers\":[0,5],\"device\":0}"), args, ref, NULL, NULL), 0);
    const char *plans[] = {
        plan("a.json", "gpipe", 1, 24, 4, "{\"layers\":[0,0],\"device\":0},{\"layers\":[1,5],\"device\":1,\"recompute\":true}"),
        plan("b.json", "1f1b", 1, 24, 4, "{\"layers\":[0,3],\"device\":0,\"recompute\":true},{\"layers\":[4,5],\"device\":1}"),
        plan("c.json", "1f1b", 1, 24, 4, "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,3],\"device\":1},{\"layers\":[4,5],\"device\":2}"),
        plan("d.json", "interleaved", 2, 24, 4,
             "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,2],\"device\":1},"
             "{\"layers\":[3,4],\"device\":0,\"recompute\":true},{\"layers\":[5,5],\"device\":1}"),
    };
    for (int i = 0; i < 4; i++) {
        char *err = NULL;
        int rc = mprun("", plans[i], args, sum, NULL, &err);
        if (rc) fprintf(stderr, "%s", err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(err);
    }
}

static int have_mpirun(void)
{
    return mp_test_run_cmd("mpirun --version", NULL, NULL) == 0 &&
           mp_test_run_cmd("mpirun -np 2 --oversubscribe --allow-run-as-root true", NULL, NULL) == 0;
}

static void test_bitwise_mpi(void)
{
    setup();
#ifndef MP_HAVE_MPI
    fprintf(stderr, "(built without MPI: MPI equivalence skipped)\n");
    return;
#endif
    if (!have_mpirun()) { fprintf(stderr, "(mpirun not usable: MPI equivalence skipped)\n"); return; }
    char ref[65], sum[65];
    const char *args = "--steps 3 --no-pin --quiet --seed 9";
    CU_ASSERT_EQUAL_FATAL(mprun("", plan("one9.json", "gpipe", 1, 16, 4, "{\"layers\":[0,5],\"device\":0}"), args, ref, NULL, NULL), 0);
    const char *pl[] = {
        plan("m2.json", "1f1b", 1, 16, 4, "{\"layers\":[0,2],\"device\":0,\"recompute\":true},{\"layers\":[3,5],\"device\":1}"),
        plan("mi.json", "interleaved", 2, 16, 4,
             "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,2],\"device\":1},{\"layers\":[3,4],\"device\":0},{\"layers\":[5,5],\"device\":1}"),
    };
    for (int i = 0; i < 2; i++) {
        char *out = NULL, *err = NULL;
        int rc = mprun("mpirun -np 2 --oversubscribe --allow-run-as-root", pl[i], args, sum, &out, &err);
        if (rc) fprintf(stderr, "%s%s", out, err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "mpi transport"));
        free(out);
        free(err);
    }
    /* wrong rank count: a clear message, non-zero exit */
    char *err = NULL;
    CU_ASSERT_NOT_EQUAL(mprun("mpirun -np 3 --oversubscribe --allow-run-as-root", pl[0], args, NULL, NULL, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "mpirun -np 2"));
    free(err);
}

static void test_kill_and_resume(void)
{
    setup();
    const char *p = plan("k.json", "1f1b", 1, 16, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}");
    const int steps = 120;
    char ref[65], sum[65], args[512], dir[512], cmd[8192];
    snprintf(args, sizeof args, "--steps %d --optimizer adam --lr 0.003 --no-pin --quiet", steps);
    CU_ASSERT_EQUAL_FATAL(mprun("", p, args, ref, NULL, NULL), 0);
    snprintf(dir, sizeof dir, "%s/ck", mp_test_tmpdir());
    /* start, wait for the first committed checkpoint, kill -9 */
    snprintf(cmd, sizeof cmd,
             "rm -rf %s; %s %s --model %s %s --checkpoint %s --checkpoint-every 1 & pid=$!; "
             "i=0; while [ ! -f %s/latest ] && [ $i -lt 2000 ]; do sleep 0.005; i=$((i+1)); done; "
             "kill -9 $pid; wait $pid; cat %s/latest",
             dir, mp_test_tool("mprun"), p, model_path, args, dir, dir, dir);
    char *out = NULL;
    mp_test_run_cmd(cmd, &out, NULL);
    long long at = -1;
    const char *s = strstr(out, "step ");
    if (s) sscanf(s, "step %lld", &at);
    free(out);
    CU_ASSERT(at >= 1);
    CU_ASSERT(at < steps);      /* really interrupted */
    fprintf(stderr, "(killed after the checkpoint of step %lld of %d)\n", at, steps);
    snprintf(cmd, sizeof cmd, "%s --checkpoint %s --checkpoint-every 1 --resume", args, dir);
    char *err = NULL;
    int rc = mprun("", p, cmd, sum, &out, &err);
    if (rc) fprintf(stderr, "%s", err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(sum, ref);
    free(out);
    free(err);
    /* resuming a different split is refused */
    const char *q = plan("k2.json", "1f1b", 1, 16, 4, "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,5],\"device\":1}");
    rc = mprun("", q, cmd, NULL, NULL, &err);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "layers"));
    free(err);
}

static void test_failures(void)
{
    setup();
    char *err = NULL;
    const char *two = plan("f.json", "1f1b", 1, 16, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}");
    /* a transfer that never arrives */
    CU_ASSERT_EQUAL(mprun("MPKIT_FAULT=hang:0", two, "--steps 3 --no-pin --timeout 200ms", NULL, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ": timed out after 0.2 s waiting for the"));
    free(err);
    /* diverging loss */
    CU_ASSERT_EQUAL(mprun("", two, "--steps 6 --no-pin --lr 1e30", NULL, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "loss is"));
    free(err);
    /* plan for another model: exit 2 before any work */
    const char *wrong = plan("w.json", "gpipe", 1, 16, 4, "{\"layers\":[0,3],\"device\":0},{\"layers\":[4,8],\"device\":1}");
    char *out = NULL;
    CU_ASSERT_EQUAL(mprun("", wrong, "--steps 3 --no-pin", NULL, &out, &err), 2);
    CU_ASSERT_PTR_NULL(strstr(out, "step 1"));
    free(out);
    free(err);
    /* a core that does not exist */
    const char *far = plan("far.json", "gpipe", 1, 16, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":4096}");
    CU_ASSERT_EQUAL(mprun("", far, "--steps 3", NULL, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "4096"));
    free(err);
    /* a stage that does not fit */
    CU_ASSERT_EQUAL(mprun("", two, "--steps 3 --no-pin --memory 10KiB", NULL, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not fit"));
    free(err);
    /* usage */
    CU_ASSERT_EQUAL(mprun("", two, "--no-pin", NULL, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--steps"));
    free(err);
    CU_ASSERT_EQUAL(mprun("", two, "--steps 2 --optimizer lion", NULL, NULL, &err), 2);
    free(err);
    /* every value through core/cli: one message form naming the flag and the value */
    static const char *const bad[][2] = {
        { "--steps 2 --lr abc", "--lr: expected a number > 0, got \"abc\"" },
        { "--steps 2 --lr -1", "--lr: expected a number > 0, got \"-1\"" },
        { "--steps 2 --optimizer lion", "--optimizer: expected sgd or adam, got \"lion\"" },
        { "--steps 2 --seed -3", "--seed: expected an integer >= 0, got \"-3\"" },
        { "--steps 2 --timeout soon", "--timeout: expected a duration" },
        { "--steps 2 --bandwidth fast", "--bandwidth: expected a bandwidth" },
        { "--steps 2 --memory 12XB", "--memory: expected a size" },
        { "--steps x", "--steps: expected an integer >= 1, got \"x\"" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(mprun("", two, bad[i][0], NULL, NULL, &err), 2);
        CU_ASSERT_PTR_NOT_NULL(err && strstr(err, bad[i][1]));
        if (!(err && strstr(err, bad[i][1]))) fprintf(stderr, "%s: %s\n", bad[i][0], err ? err : "");
        free(err);
    }
}

/* --profile measured with another number of busy cores than the plan keeps
 * busy: one note on stderr naming both (docs/profiling.md); none when equal. */
static void test_profile_regime_note(void)
{
    setup();
    char prof[4200], cmd[8400], *err = NULL;
    snprintf(prof, sizeof prof, "%s/solo.profile.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s --model %s --batch 8 --warmup 0 --repeat 1 --threads 1 -q -o %s",
             mp_test_tool("mpprof"), model_path, prof);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, NULL, NULL), 0);
    const char *p2 = plan("note2.json", "1f1b", 1, 16, 8, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}");
    snprintf(cmd, sizeof cmd, "--steps 1 --quiet --profile %s", prof);
    CU_ASSERT_EQUAL(mprun("", p2, cmd, NULL, NULL, &err), 0);
    CU_ASSERT(strstr(err, "note:") && strstr(err, "with 1 busy core, this plan keeps 2 busy"));
    free(err);
    const char *p1 = plan("note1.json", "gpipe", 1, 16, 8, "{\"layers\":[0,5],\"device\":0}");
    CU_ASSERT_EQUAL(mprun("", p1, cmd, NULL, NULL, &err), 0);
    CU_ASSERT(strstr(err, "note:") == NULL);
    free(err);
}

/* --backend cuda: on a machine without a usable GPU, one clear message and
 * exit 1 before any step; with a GPU, a 2-stage plan runs with both stages
 * on GPU 0 (MPKIT_GPUS=0,0) and prints a checksum. */
static void test_cuda_backend(void)
{
    setup();
    const char *two = plan("g.json", "1f1b", 1, 16, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}");
    char sum[65], *out = NULL, *err = NULL;
    int rc = mprun("MPKIT_GPUS=0,0", two, "--steps 2 --backend cuda", sum, &out, &err);
    if (strstr(err, "no CUDA device available") || strstr(err, "not compiled into this build")) {
        CU_ASSERT_EQUAL(rc, strstr(err, "not compiled") ? 2 : 1);   /* a bad option / a missing device */
        CU_ASSERT_PTR_NULL(strstr(out, "step 1"));      /* before any work */
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "mprun: --backend cuda"));
        CU_ASSERT_PTR_NULL(strchr(strchr(err, '\n') ? strchr(err, '\n') + 1 : "", 'm'));   /* one line */
        fprintf(stderr, "(no GPU here: %s", err);
    } else {
        if (rc) fprintf(stderr, "%s%s", out, err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "step 2 loss"));
        CU_ASSERT_EQUAL(strlen(sum), 64);
    }
    free(out);
    free(err);
}

/* A token model (embedding, causal attention, per-token layers, LM head):
 * its loss falls from about ln(vocab) toward the data's entropy rate, and
 * every schedule, split and recompute setting, on threads and under mpirun,
 * ends with bitwise the weights of a one-stage run. */
static void test_token_model(void)
{
    char saved[sizeof model_path];
    setup();
    memcpy(saved, model_path, sizeof saved);
    snprintf(model_path, sizeof model_path, "%s", mp_test_fixture("tiny_gpt.model.json"));
    char ref[65], sum[65], *out = NULL, *err = NULL;
    const char *args = "--steps 40 --optimizer adam --lr 0.01 --no-pin --quiet --seed 3";
    int rc = mprun("", plan("t1.json", "gpipe", 1, 8, 2, "{\"layers\":[0,6],\"device\":0}"), args, ref, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    double final = 0, floor_ = 0;
    const char *f = strstr(out, "final loss"), *e = strstr(out, "entropy rate");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    sscanf(f, "final loss %lf", &final);
    sscanf(e, "entropy rate %lf", &floor_);
    CU_ASSERT(final < 0.85 * 4.1589);   /* ln 64 */
    CU_ASSERT(final > floor_);
    free(out);
    free(err);
    const char *plans[] = {
        plan("t2.json", "gpipe", 1, 8, 2, "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,6],\"device\":1,\"recompute\":true}"),
        plan("t3.json", "1f1b", 1, 8, 2,
             "{\"layers\":[0,2],\"device\":0,\"recompute\":true},{\"layers\":[3,4],\"device\":1},{\"layers\":[5,6],\"device\":2}"),
        plan("t4.json", "interleaved", 2, 8, 2,
             "{\"layers\":[0,0],\"device\":0},{\"layers\":[1,2],\"device\":1,\"recompute\":true},"
             "{\"layers\":[3,4],\"device\":0},{\"layers\":[5,6],\"device\":1}"),
    };
    for (int i = 0; i < 3; i++) {
        rc = mprun("", plans[i], args, sum, NULL, &err);
        if (rc) fprintf(stderr, "%s", err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(err);
    }
#ifdef MP_HAVE_MPI
    if (have_mpirun()) {
        rc = mprun("mpirun -np 2 --oversubscribe --allow-run-as-root", plans[0], args, sum, &out, &err);
        if (rc) fprintf(stderr, "%s%s", out, err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(out);
        free(err);
    }
#endif
    memcpy(model_path, saved, sizeof saved);
}

/* The zero-bubble schedules (split backward: BI and W ops; zb-v's V with a
 * local hand-over at its turn) end with bitwise the weights of one stage and
 * of 1F1B, for several splits, recompute on and off, on threads and under
 * mpirun, for the MLP and the tiny_gpt token model. */
static void test_zero_bubble_bitwise(void)
{
    setup();
    char ref[65], sum[65];
    const char *args = "--steps 4 --no-pin --quiet --seed 5";
    CU_ASSERT_EQUAL_FATAL(mprun("", plan("zone.json", "gpipe", 1, 24, 4, "{\"layers\":[0,5],\"device\":0}"), args, ref, NULL, NULL), 0);
    const char *plans[] = {
        plan("z0.json", "1f1b", 1, 24, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}"),
        plan("z1.json", "zb-h1", 1, 24, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}"),
        plan("z2.json", "zb-h1", 1, 24, 4, "{\"layers\":[0,0],\"device\":0,\"recompute\":true},{\"layers\":[1,3],\"device\":1},"
                                           "{\"layers\":[4,5],\"device\":2,\"recompute\":true}"),
        plan("z3.json", "zb-h2", 1, 24, 4, "{\"layers\":[0,3],\"device\":0,\"recompute\":true},{\"layers\":[4,5],\"device\":1}"),
        plan("z4.json", "zb-h2", 1, 24, 4, "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,3],\"device\":1},{\"layers\":[4,5],\"device\":2}"),
        plan("z5.json", "zb-v", 2, 24, 4, "{\"layers\":[0,0],\"device\":0},{\"layers\":[1,2],\"device\":1},"
                                          "{\"layers\":[3,4],\"device\":1,\"recompute\":true},{\"layers\":[5,5],\"device\":0}"),
        plan("z6.json", "zb-v", 2, 24, 4, "{\"layers\":[0,0],\"device\":0,\"recompute\":true},{\"layers\":[1,1],\"device\":1},"
                                          "{\"layers\":[2,2],\"device\":2},{\"layers\":[3,3],\"device\":2},"
                                          "{\"layers\":[4,4],\"device\":1},{\"layers\":[5,5],\"device\":0}"),
    };
    for (int i = 0; i < 7; i++) {
        char *err = NULL;
        int rc = mprun("", plans[i], args, sum, NULL, &err);
        if (rc) fprintf(stderr, "%s", err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(err);
    }
#ifdef MP_HAVE_MPI
    if (have_mpirun()) {
        const int mpi[] = { 1, 5 };
        for (int i = 0; i < 2; i++) {
            char *out = NULL, *err = NULL;
            int rc = mprun("mpirun -np 2 --oversubscribe --allow-run-as-root", plans[mpi[i]], args, sum, &out, &err);
            if (rc) fprintf(stderr, "%s%s", out, err);
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_STRING_EQUAL(sum, ref);
            free(out);
            free(err);
        }
    }
#endif
    /* the token model */
    char saved[sizeof model_path];
    memcpy(saved, model_path, sizeof saved);
    snprintf(model_path, sizeof model_path, "%s", mp_test_fixture("tiny_gpt.model.json"));
    const char *targs = "--steps 3 --optimizer adam --lr 0.01 --no-pin --quiet --seed 3";
    CU_ASSERT_EQUAL_FATAL(mprun("", plan("zt0.json", "gpipe", 1, 8, 2, "{\"layers\":[0,6],\"device\":0}"), targs, ref, NULL, NULL), 0);
    const char *tplans[] = {
        plan("zt1.json", "zb-h1", 1, 8, 2, "{\"layers\":[0,2],\"device\":0,\"recompute\":true},{\"layers\":[3,4],\"device\":1},"
                                           "{\"layers\":[5,6],\"device\":2}"),
        plan("zt2.json", "zb-h2", 1, 8, 2, "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,6],\"device\":1,\"recompute\":true}"),
        plan("zt3.json", "zb-v", 2, 8, 2, "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,3],\"device\":1,\"recompute\":true},"
                                          "{\"layers\":[4,4],\"device\":1},{\"layers\":[5,6],\"device\":0}"),
    };
    for (int i = 0; i < 3; i++) {
        char *err = NULL;
        int rc = mprun("", tplans[i], targs, sum, NULL, &err);
        if (rc) fprintf(stderr, "%s", err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(err);
    }
#ifdef MP_HAVE_MPI
    if (have_mpirun()) {
        char *out = NULL, *err = NULL;
        int rc = mprun("mpirun -np 2 --oversubscribe --allow-run-as-root", tplans[2], targs, sum, &out, &err);
        if (rc) fprintf(stderr, "%s%s", out, err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(out);
        free(err);
    }
#endif
    memcpy(model_path, saved, sizeof saved);
}

/* ------------------------------------------------------------ data parallelism */

/* A plan with "data_parallel": D. */
static const char *dp_plan(const char *name, const char *schedule, int v, int D, int gb, int b, const char *stages)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"%s\",\"chunks_per_device\":%d,"
             "\"data_parallel\":%d,\"global_batch\":%d,\"microbatch_size\":%d,\"stages\":[%s]}",
             schedule, v, D, gb, b, stages);
    return mp_test_write_file(name, text);
}

/* The parameters of stage-0.step-N.ckpt in dir (after its 40-byte header);
 * *n floats, malloc'd. */
static float *ckpt_params(const char *dir, int steps, size_t *n)
{
    char path[4400];
    snprintf(path, sizeof path, "%.4200s/stage-0.step-%d.ckpt", dir, steps);
    size_t len = 0;
    char *raw = mp_test_slurp(path, &len);
    *n = 0;
    if (!raw || len < 40 + 32) { free(raw); return NULL; }
    unsigned long long cnt;
    memcpy(&cnt, raw + 32, sizeof cnt);
    float *w = malloc(cnt * sizeof(float) + 1);
    memcpy(w, raw + 40, cnt * sizeof(float));
    free(raw);
    *n = (size_t)cnt;
    return w;
}

/* D replicas: the same weights (bitwise) for every split, schedule and
 * recompute setting with the same D, run after run; within max rel diff 1e-5
 * of the D = 1 run of the same global batch (only the order of summing the
 * replicas' partial gradients differs); the report shows D. */
static void test_data_parallel_threads(void)
{
    setup();
    char ref[65], sum[65], *out = NULL, *err = NULL;
    const char *args = "--steps 5 --no-pin --quiet --seed 5";
    const char *one = dp_plan("dp1.json", "gpipe", 1, 2, 48, 4, "{\"layers\":[0,5],\"device\":0}");
    int rc = mprun("", one, args, ref, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "data parallel: 2 replicas x 1 stages on 2 positions"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "all-reduce "));
    free(out);
    free(err);
    CU_ASSERT_EQUAL(mprun("", one, args, sum, NULL, NULL), 0);   /* repeatable */
    CU_ASSERT_STRING_EQUAL(sum, ref);
    /* the report shows D and the cost model's prediction of the D x K plan */
    char rep[4200], a2[8800];
    snprintf(rep, sizeof rep, "%s/dp-report.json", mp_test_tmpdir());
    snprintf(a2, sizeof a2, "%s --report %s --profile %s", args, rep, mp_test_fixture("small_model.profile.json"));
    rc = mprun("", one, a2, sum, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(sum, ref);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "predicted "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "r1 s0"));
    free(out);
    free(err);
    json_error_t je;
    json_t *j = json_load_file(rep, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "data_parallel")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "num_positions")), 2);
    CU_ASSERT(json_number_value(json_object_get(j, "allreduce_ms")) > 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(json_object_get(j, "stages"), 1), "replica")), 1);
    CU_ASSERT(json_number_value(json_object_get(json_object_get(j, "predicted"), "iteration_ms")) > 0);
    json_decref(j);
    const char *plans[] = {
        dp_plan("dp2.json", "1f1b", 1, 2, 48, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}"),
        dp_plan("dp3.json", "gpipe", 1, 2, 48, 4,
                "{\"layers\":[0,0],\"device\":0},{\"layers\":[1,5],\"device\":1,\"recompute\":true}"),
        dp_plan("dp4.json", "interleaved", 2, 2, 48, 4,
                "{\"layers\":[0,1],\"device\":0},{\"layers\":[2,2],\"device\":1},"
                "{\"layers\":[3,4],\"device\":0,\"recompute\":true},{\"layers\":[5,5],\"device\":1}"),
    };
    for (int i = 0; i < 3; i++) {
        rc = mprun("", plans[i], args, sum, NULL, &err);
        if (rc) fprintf(stderr, "%s", err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        free(err);
    }
    /* D = 2 and D = 3 against D = 1 with the same global batch */
    const char *base = plan("dp0.json", "gpipe", 1, 48, 4, "{\"layers\":[0,5],\"device\":0}");
    const char *three = dp_plan("dp5.json", "gpipe", 1, 3, 48, 4, "{\"layers\":[0,5],\"device\":0}");
    const char *which[3] = { base, one, three };
    float *w[3] = { NULL, NULL, NULL };
    size_t n[3] = { 0, 0, 0 };
    for (int k = 0; k < 3; k++) {
        char dir[4200], a[8400];
        snprintf(dir, sizeof dir, "%s/dpck%d", mp_test_tmpdir(), k);
        snprintf(a, sizeof a, "%s --checkpoint-every 5 --checkpoint %s", args, dir);
        CU_ASSERT_EQUAL(mprun("", which[k], a, NULL, NULL, NULL), 0);
        w[k] = ckpt_params(dir, 5, &n[k]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(w[k]);
    }
    for (int k = 1; k < 3; k++) {
        CU_ASSERT_EQUAL_FATAL(n[k], n[0]);
        double worst = 0, big = 0, absd = 0;
        int differ = 0;
        for (size_t i = 0; i < n[0]; i++)
            if (fabs((double)w[0][i]) > big) big = fabs((double)w[0][i]);
        for (size_t i = 0; i < n[0]; i++) {   /* relative, weights below 1e-3 of the largest counted as 1e-3 of it */
            double d = fabs((double)w[k][i] - w[0][i]), scale = fmax(fabs((double)w[0][i]), 1e-3 * big);
            if (d / scale > worst) worst = d / scale;
            if (d > absd) absd = d;
            if (w[k][i] != w[0][i]) differ = 1;
        }
        fprintf(stderr, "(D=%d vs D=1: max rel diff %.3g, max abs diff %.3g, largest weight %.3g%s)\n", k + 1, worst,
                absd, big, differ ? "" : ", bitwise equal");
        CU_ASSERT(worst < 1e-5);
    }
    for (int k = 0; k < 3; k++) free(w[k]);
}

/* --resume with replicas: a run stopped after step 3 and resumed to step 7
 * ends with the uninterrupted run's weights; a hung replica stops every
 * position within --timeout with a message naming replica and stage. */
static void test_data_parallel_resume_and_failures(void)
{
    setup();
    const char *p = dp_plan("dpr.json", "1f1b", 1, 2, 16, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}");
    char ref[65], sum[65], dir[4200], a[8400], *err = NULL;
    CU_ASSERT_EQUAL_FATAL(mprun("", p, "--steps 7 --optimizer adam --lr 0.003 --no-pin --quiet", ref, NULL, NULL), 0);
    snprintf(dir, sizeof dir, "%s/dpres", mp_test_tmpdir());
    snprintf(a, sizeof a, "--steps 3 --optimizer adam --lr 0.003 --no-pin --quiet --checkpoint %s", dir);
    CU_ASSERT_EQUAL_FATAL(mprun("", p, a, NULL, NULL, NULL), 0);
    snprintf(a, sizeof a, "--steps 7 --optimizer adam --lr 0.003 --no-pin --quiet --checkpoint %s --resume", dir);
    int rc = mprun("", p, a, sum, NULL, &err);
    if (rc) fprintf(stderr, "%s", err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(sum, ref);
    free(err);
    /* replica 1 never sends: a replica times out in the all-reduce (replica 0
     * waiting for replica 1's chunk, or replica 1 for the all-gather) */
    const char *one = dp_plan("dph.json", "gpipe", 1, 2, 16, 4, "{\"layers\":[0,5],\"device\":0}");
    CU_ASSERT_EQUAL(mprun("MPKIT_FAULT=hang:1", one, "--steps 3 --no-pin --timeout 200ms", NULL, NULL, &err), 1);
    CU_ASSERT(strstr(err, "mprun: replica 0 stage 0: timed out after 0.2 s waiting for the gradient all-reduce of layer 0 "
                          "from replica 1") ||
              strstr(err, "mprun: replica 1 stage 0: timed out after 0.2 s waiting for the gradient all-reduce of layer 0 "
                          "from replica 0"));
    free(err);
    /* replica 1's last stage never sends: whoever waits first names its replica and stage */
    CU_ASSERT_EQUAL(mprun("MPKIT_FAULT=hang:3", p, "--steps 3 --no-pin --timeout 200ms", NULL, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "mprun: replica "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ": timed out after 0.2 s waiting for the"));
    free(err);
    /* a replica on a core that does not exist */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char st[128], want[128];
    snprintf(st, sizeof st, "{\"layers\":[0,5],\"device\":%ld}", ncpu - 1);
    snprintf(want, sizeof want, "replica 1 stage 0 runs on device %ld: no core %ld", ncpu, ncpu);
    const char *far = dp_plan("dpf.json", "gpipe", 1, 2, 16, 4, st);
    CU_ASSERT_EQUAL(mprun("", far, "--steps 2", NULL, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    free(err);
}

/* The memory of data parallelism as docs/cost-model.md counts it: each
 * position's peak grows by exactly one all-reduce buffer, its stages' largest
 * layer's parameters (D = 2 x K = 2 against D = 1 x K = 2, same m). */
static void test_data_parallel_memory(void)
{
    setup();
    mp_model m;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_model_load(model_path, &m, &e), MP_OK);
    const char *st = "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}";
    const char *pl[2] = { plan("mem1.json", "1f1b", 1, 12, 4, st), dp_plan("mem2.json", "1f1b", 1, 2, 24, 4, st) };
    double peak[2][4] = { { 0 } };
    for (int k = 0; k < 2; k++) {
        char rep[4200], a[8600];
        snprintf(rep, sizeof rep, "%s/mem%d.report.json", mp_test_tmpdir(), k);
        snprintf(a, sizeof a, "--steps 2 --no-pin --quiet --report %s", rep);
        CU_ASSERT_EQUAL_FATAL(mprun("", pl[k], a, NULL, NULL, NULL), 0);
        json_error_t je;
        json_t *j = json_load_file(rep, 0, &je);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        json_t *sts = json_object_get(j, "stages");
        for (size_t q = 0; q < json_array_size(sts) && q < 4; q++)
            peak[k][q] = json_number_value(json_object_get(json_array_get(sts, q), "peak_memory_bytes"));
        json_decref(j);
    }
    const int lo[2] = { 0, 3 }, hi[2] = { 2, 5 };
    for (int q = 0; q < 4; q++) {
        long long big = 1;
        for (int l = lo[q % 2]; l <= hi[q % 2]; l++)
            if (m.layers[l].param_count > big) big = m.layers[l].param_count;
        CU_ASSERT_DOUBLE_EQUAL(peak[1][q] - peak[0][q % 2], 4.0 * (double)big, 0.5);
    }
    mp_model_free(&m);
}

/* mpirun -np D*K: the threads run's weights (D=2 K=1 on 2 ranks, D=2 K=2 on 4). */
/* --profile with a data-parallel plan: mprun predicts it (the cost model
 * times the all-reduce), in the summary and the report's "predicted". */
static void test_data_parallel_prediction(void)
{
    setup();
    char prof[4200], rep[4200], cmd[12800], *out = NULL;
    snprintf(prof, sizeof prof, "%s/dp.profile.json", mp_test_tmpdir());
    snprintf(rep, sizeof rep, "%s/dp.report.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s --model %s --batch 4 --warmup 0 --repeat 1 --threads 2 -q -o %s",
             mp_test_tool("mpprof"), model_path, prof);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, NULL, NULL), 0);
    const char *p = dp_plan("dppred.json", "gpipe", 1, 2, 16, 4, "{\"layers\":[0,5],\"device\":0}");
    snprintf(cmd, sizeof cmd, "--steps 2 --quiet --no-pin --profile %s --report %s", prof, rep);
    CU_ASSERT_EQUAL_FATAL(mprun("", p, cmd, NULL, &out, NULL), 0);
    CU_ASSERT(out && strstr(out, "predicted") && strstr(out, "error"));
    json_error_t je;
    json_t *j = json_load_file(rep, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT(json_number_value(json_object_get(json_object_get(j, "predicted"), "iteration_ms")) > 0);
    CU_ASSERT_PTR_NULL(json_object_get(j, "prediction_unavailable"));
    json_decref(j);
    free(out);
}

static void test_data_parallel_mpi(void)
{
#ifndef MP_HAVE_MPI
    fprintf(stderr, "(built without MPI: data-parallel MPI equivalence skipped)\n");
#else
    setup();
    if (!have_mpirun()) { fprintf(stderr, "(mpirun not usable: data-parallel MPI equivalence skipped)\n"); return; }
    const char *args = "--steps 4 --no-pin --quiet --seed 2";
    const char *pl[2] = {
        dp_plan("dpm1.json", "gpipe", 1, 2, 24, 4, "{\"layers\":[0,5],\"device\":0}"),
        dp_plan("dpm2.json", "1f1b", 1, 2, 24, 4, "{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}"),
    };
    char ref[65], sum[65], *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL_FATAL(mprun("", pl[0], args, ref, NULL, NULL), 0);
    const char *np[2] = { "mpirun -np 2 --oversubscribe --allow-run-as-root", "mpirun -np 4 --oversubscribe --allow-run-as-root" };
    for (int i = 0; i < 2; i++) {
        int rc = mprun(np[i], pl[i], args, sum, &out, &err);
        if (rc) fprintf(stderr, "%s%s", out, err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(sum, ref);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "mpi transport"));
        free(out);
        free(err);
    }
    CU_ASSERT_NOT_EQUAL(mprun(np[0], pl[1], args, NULL, NULL, &err), 0);   /* 2 ranks for 4 positions */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "mpirun -np 4"));
    free(err);
    /* rank 1 (replica 1) never sends: every rank stops, a message names replica and stage */
    CU_ASSERT_NOT_EQUAL(mprun("MPKIT_FAULT=hang:1 mpirun -x MPKIT_FAULT -np 2 --oversubscribe --allow-run-as-root", pl[0],
                              "--steps 3 --no-pin --timeout 500ms", NULL, NULL, &err), 0);
    CU_ASSERT(strstr(err, "mprun: replica 0 stage 0: timed out after 0.5 s waiting for the gradient all-reduce") ||
              strstr(err, "mprun: replica 1 stage 0: timed out after 0.5 s waiting for the gradient all-reduce"));
    free(err);
#endif
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_loss_falls_and_report),
        MP_TEST(test_bitwise_threads),
        MP_TEST(test_bitwise_mpi),
        MP_TEST(test_kill_and_resume),
        MP_TEST(test_failures),
        MP_TEST(test_cuda_backend),
        MP_TEST(test_profile_regime_note),
        MP_TEST(test_token_model),
        MP_TEST(test_zero_bubble_bitwise),
        MP_TEST(test_data_parallel_threads),
        MP_TEST(test_data_parallel_resume_and_failures),
        MP_TEST(test_data_parallel_mpi),
        MP_TEST(test_data_parallel_memory),
        MP_TEST(test_data_parallel_prediction),
    };
    return mp_test_main("mprun", cases, (int)(sizeof cases / sizeof cases[0]));
}
