/* test_pipeline.c — the one pipeline runner (exec/run/pipeline.h) and what
 * training and serving now share through it: the GPU map, the fit message,
 * the driver with a toy mode (every position runs with its backend, the
 * first failure is named by stage and wakes the others, the host thread,
 * collect and release), and, through bin/mprun, the same pre-check messages
 * and exit codes for training and serving (--backend cuda, a malformed GPU
 * map, mpirun without MPI built in). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "testutil.h"

/* A plan of `k` stages over `k` layers on devices 0..k-1. */
static void make_plan(int k, mp_plan *p)
{
    char text[2048];
    int n = snprintf(text, sizeof text, "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"gpipe\","
                     "\"chunks_per_device\":1,\"global_batch\":4,\"microbatch_size\":4,\"stages\":[");
    for (int s = 0; s < k; s++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"layers\":[%d,%d],\"device\":%d}", s ? "," : "", s, s, s);
    snprintf(text + n, sizeof text - (size_t)n, "]}");
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(text, strlen(text), "test-plan", p, &err), MP_OK);
}

static void config(const mp_plan *p, int k, mp_pipeline_config *c)
{
    memset(c, 0, sizeof *c);
    c->plan = p;
    c->num_positions = k;
    c->backend = "cpu";
    c->transport = "threads";
    c->timeout_s = 30;
    c->mailbox_cap = 4;
}

/* ---------------------------------------------------------------- checks */

static void test_gpu_map(void)
{
    mp_plan p;
    make_plan(3, &p);
    mp_pipeline_config c;
    config(&p, 3, &c);
    unsetenv("MPKIT_GPUS");
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 2), 2);          /* no map: device d is GPU d */
    c.gpu_map = "0,0";
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 0), 0);
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 1), 0);          /* two stages on GPU 0 */
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 2), -1);         /* no entry */
    c.gpu_map = "1,x";
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 0), -2);         /* malformed anywhere: malformed */
    c.gpu_map = "2,";
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 0), -2);
    c.gpu_map = NULL;
    setenv("MPKIT_GPUS", "3,1", 1);
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 1), 1);          /* the environment's map */
    c.gpu_map = "5";
    CU_ASSERT_EQUAL(mp_pipeline_gpu_of(&c, 0), 5);          /* the config's wins */
    unsetenv("MPKIT_GPUS");
    /* a malformed map is a usage error of cuda runs, whatever the machine */
    c.backend = "cuda";
    c.gpu_map = "0;1";
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_pipeline_check(&c, &err), MP_ERR_USAGE);
    CU_ASSERT_STRING_EQUAL(err.msg, "GPU map '0;1': expected GPU indices separated by commas, e.g. 0,0");
    mp_plan_free(&p);
}

static void test_check_fit(void)
{
    mp_plan p;
    make_plan(2, &p);
    mp_pipeline_config c;
    config(&p, 2, &c);
    double mem[2] = { 100, 1000 };
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_pipeline_check_fit(&c, 1, 1, 5000, "weights", &err), MP_OK);   /* no memory given */
    c.num_devices = 2;
    c.device_memory = mem;
    CU_ASSERT_EQUAL(mp_pipeline_check_fit(&c, 1, 1, 1000, "weights", &err), MP_OK);   /* exactly full fits */
    CU_ASSERT_EQUAL(mp_pipeline_check_fit(&c, 0, 7, 1e9, "weights", &err), MP_OK);    /* device not given */
    CU_ASSERT_EQUAL(mp_pipeline_check_fit(&c, 1, 1, 1001, "weights", &err), MP_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "stage 1 does not fit on device 1: it needs 1001 bytes (weights), the device has 1000");
    mp_plan_free(&p);
}

/* ---------------------------------------------------------------- the driver */

enum { K = 3 };

typedef struct {
    pthread_mutex_t mu;
    int fail_at;                /* this position fails; -1: none */
    int ran, host_ran, on_fail_calls, collected, released;
    int unit[K], host_mem[K], had_backend[K];
    mp_status waited[K];        /* what the others' wait returned */
} toy;

static mp_status toy_position(void *mode, mp_pipeline_pos *pos, mp_error *err)
{
    toy *t = mode;
    pthread_mutex_lock(&t->mu);
    t->ran++;
    t->unit[pos->p] = pos->unit;
    t->host_mem[pos->p] = pos->host_mem;
    t->had_backend[pos->p] = pos->be != NULL;
    pthread_mutex_unlock(&t->mu);
    if (t->fail_at < 0) return mp_pipeline_barrier(pos->pl, pos->p, err);
    if (pos->p == t->fail_at) return mp_error_set(err, MP_ERR_INPUT, "boom");
    /* a message that never comes: the failure must wake this wait */
    float x;
    mp_status st = pos->pl->t->i->recv(pos->pl->t, pos->p, (pos->p + 1) % K, 5, &x, sizeof x, 30, err);
    t->waited[pos->p] = st;
    return st;
}

static void toy_host(void *mode, mp_pipeline *pl)
{
    toy *t = mode;
    pthread_mutex_lock(&t->mu);
    t->host_ran++;
    pthread_mutex_unlock(&t->mu);
}

static void toy_on_fail(void *mode) { ((toy *)mode)->on_fail_calls++; }

static mp_status toy_collect(void *mode, mp_pipeline *pl, mp_error *err)
{
    ((toy *)mode)->collected++;
    return MP_OK;
}

static void toy_release(void *mode, mp_pipeline_pos *pos)
{
    toy *t = mode;
    pthread_mutex_lock(&t->mu);
    t->released += pos->be != NULL;
    pthread_mutex_unlock(&t->mu);
}

static const mp_pipeline_mode toy_mode = {
    .position = toy_position, .host = toy_host, .host_name = "the toy", .on_fail = toy_on_fail,
    .collect = toy_collect, .release = toy_release,
};

static mp_status run_toy(const mp_pipeline_config *c, toy *t, mp_error *err)
{
    mp_pipeline *pl = NULL;
    mp_error_clear(err);
    mp_status st = mp_pipeline_open(c, &pl, err);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    CU_ASSERT_EQUAL(pl->rank, -1);
    st = mp_pipeline_run(pl, &toy_mode, t, err);
    mp_pipeline_close(pl);
    return st;
}

static void test_driver(void)
{
    mp_plan p;
    make_plan(K, &p);
    mp_pipeline_config c;
    config(&p, K, &c);
    mp_error err;
    toy t;
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.mu, NULL);
    t.fail_at = -1;
    /* every position ran with its backend, unpinned: unit -1 */
    CU_ASSERT_EQUAL(run_toy(&c, &t, &err), MP_OK);
    CU_ASSERT_EQUAL(t.ran, K);
    CU_ASSERT_EQUAL(t.host_ran, 1);
    CU_ASSERT_EQUAL(t.collected, 1);
    CU_ASSERT_EQUAL(t.released, K);
    CU_ASSERT_EQUAL(t.on_fail_calls, 0);
    for (int q = 0; q < K; q++) {
        CU_ASSERT_EQUAL(t.unit[q], -1);
        CU_ASSERT_EQUAL(t.host_mem[q], 1);
        CU_ASSERT_EQUAL(t.had_backend[q], 1);
    }
    /* pinned: the unit is the plan device (core 0 exists everywhere) */
    mp_plan one;
    make_plan(1, &one);
    mp_pipeline_config c1;
    config(&one, 1, &c1);
    c1.pin = 1;
    memset(t.unit, 0xff, sizeof t.unit);
    CU_ASSERT_EQUAL(run_toy(&c1, &t, &err), MP_OK);
    CU_ASSERT_EQUAL(t.unit[0], 0);
    /* position 1 fails: its message names it, the others' waits are woken
     * by the abort (not timed out), on_fail once, no collect, all released */
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.mu, NULL);
    t.fail_at = 1;
    CU_ASSERT_EQUAL(run_toy(&c, &t, &err), MP_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "stage 1: boom");
    CU_ASSERT_EQUAL(t.on_fail_calls, 1);
    CU_ASSERT_EQUAL(t.collected, 0);
    CU_ASSERT_EQUAL(t.released, t.ran);
    for (int q = 0; q < K; q++)
        if (q != 1 && t.had_backend[q]) CU_ASSERT_EQUAL(t.waited[q], MP_ERR_BACKEND);
    /* a backend that cannot open: "stage P (device D): ..." */
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.mu, NULL);
    t.fail_at = -1;
    c.backend = "tpu";
    CU_ASSERT_EQUAL(run_toy(&c, &t, &err), MP_ERR_BACKEND);
    CU_ASSERT(strncmp(err.msg, "stage ", 6) == 0 && strstr(err.msg, " (device ") && strstr(err.msg, "unknown backend 'tpu'"));
    CU_ASSERT_EQUAL(t.ran, 0);
    mp_plan_free(&one);
    mp_plan_free(&p);
}

/* Replicas: D = 3 replicas of a 1-stage plan on 3 positions; position p runs
 * on device p (mp_plan_replica_device) and is named "replica p stage 0"; a
 * failure of replica 2 is named so, a mode's "stage S: ..." gets the replica
 * in front. */
static void test_replicas(void)
{
    const char *text = "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"gpipe\",\"data_parallel\":3,"
                       "\"global_batch\":12,\"microbatch_size\":4,\"stages\":[{\"layers\":[0,0],\"device\":0}]}";
    mp_plan p;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_plan_parse(text, strlen(text), "test-plan", &p, &err), MP_OK);
    mp_pipeline_config c;
    config(&p, K, &c);
    c.replicas = 3;
    char nm[48];
    for (int q = 0; q < K; q++) {
        CU_ASSERT_EQUAL(mp_pipeline_device_of(&c, q), q);
        char want[48];
        snprintf(want, sizeof want, "replica %d stage 0", q);
        CU_ASSERT_STRING_EQUAL(mp_pipeline_name(&c, q, nm, sizeof nm), want);
    }
    toy t;
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.mu, NULL);
    t.fail_at = 2;
    CU_ASSERT_EQUAL(run_toy(&c, &t, &err), MP_ERR_INPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "replica 2 stage 0: boom");
    /* without replicas: the plain stage names */
    c.replicas = 0;
    CU_ASSERT_STRING_EQUAL(mp_pipeline_name(&c, 2, nm, sizeof nm), "stage 2");
    mp_plan_free(&p);
}

/* ---------------------------------------------------------------- training and serving alike */

static char model_path[1024], train_plan[1024], serve_plan[1024], trace_path[1024];

static void setup(void)
{
    if (model_path[0]) return;
    snprintf(model_path, sizeof model_path, "%s", mp_test_fixture("small_model.json"));
    snprintf(train_plan, sizeof train_plan, "%s", mp_test_write_file("train2.json",
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"1f1b\",\"chunks_per_device\":1,"
        "\"global_batch\":16,\"microbatch_size\":4,\"stages\":[{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}]}"));
    snprintf(serve_plan, sizeof serve_plan, "%s", mp_test_write_file("serve2.json",
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"serve\",\"schedule\":\"gpipe\",\"chunks_per_device\":1,"
        "\"global_batch\":4,\"microbatch_size\":4,\"num_microbatches\":1,\"max_batch\":4,\"max_wait_ms\":1,"
        "\"stages\":[{\"layers\":[0,2],\"device\":0},{\"layers\":[3,5],\"device\":1}]}"));
    snprintf(trace_path, sizeof trace_path, "%s", mp_test_write_file("serve2.txt", "0\n0.001\n"));
}

/* Runs `env mprun` for training and for serving with the same extra options;
 * returns both exit codes and stderrs. */
static void both(const char *env, const char *opts, int rc[2], char *err[2], char *out[2])
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s %s --model %s --steps 2 --no-pin %s", env, mp_test_tool("mprun"), train_plan,
             model_path, opts);
    rc[0] = mp_test_run_cmd(cmd, &out[0], &err[0]);
    snprintf(cmd, sizeof cmd, "%s %s %s --model %s --serve --arrivals %s --no-pin %s", env, mp_test_tool("mprun"),
             serve_plan, model_path, trace_path, opts);
    rc[1] = mp_test_run_cmd(cmd, &out[1], &err[1]);
}

static void free_both(char *err[2], char *out[2])
{
    for (int i = 0; i < 2; i++) { free(err[i]); free(out[i]); }
}

/* --backend cuda: serving refuses exactly as training does, before any work,
 * on this machine whatever it has (no CUDA built, no GPU, one GPU for two
 * plan devices); the GPU map: malformed maps get training's message. */
static void test_same_cuda_checks(void)
{
    setup();
    const char *cases[][2] = {
        { "", "--backend cuda" },
        { "", "--backend cuda --gpus 0,x" },
        { "MPKIT_GPUS=0,,", "--backend cuda" },
    };
    for (int i = 0; i < 3; i++) {
        int rc[2];
        char *err[2], *out[2];
        both(cases[i][0], cases[i][1], rc, err, out);
        if (rc[0] == 0 && rc[1] == 0) {   /* a machine with the GPUs: both ran */
            free_both(err, out);
            continue;
        }
        CU_ASSERT_EQUAL(rc[0], rc[1]);
        CU_ASSERT_STRING_EQUAL(err[0], err[1]);
        CU_ASSERT_PTR_NULL(strstr(out[0], "step 1"));
        CU_ASSERT_PTR_NULL(strstr(out[1], "measured"));
        if (i > 0) {   /* the malformed map */
#ifdef MP_HAVE_CUDA
            CU_ASSERT_EQUAL(rc[0], 2);
            CU_ASSERT_PTR_NOT_NULL(strstr(err[0], "expected GPU indices separated by commas"));
#else
            CU_ASSERT_PTR_NOT_NULL(strstr(err[0], "not compiled"));
#endif
        } else
            CU_ASSERT(strstr(err[0], "mprun: --backend cuda") || strstr(err[0], "CUDA device"));
        if (strcmp(err[0], err[1])) fprintf(stderr, "case %d:\n  %s  %s", i, err[0], err[1]);
        free_both(err, out);
    }
}

/* Started by mpirun (OMPI_COMM_WORLD_SIZE set) but built without MPI:
 * training says what serving says, with exit 2. Runs in `make asan`, whose
 * build has no MPI; skipped where MPI is built in. */
static void test_mpi_not_built(void)
{
#ifdef MP_HAVE_MPI
    fprintf(stderr, "(MPI built in: the no-MPI message is checked in make asan)\n");
#else
    setup();
    int rc[2];
    char *err[2], *out[2];
    both("OMPI_COMM_WORLD_SIZE=2", "", rc, err, out);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(rc[i], 2);
        CU_ASSERT_PTR_NOT_NULL(strstr(err[i], "mprun: started by mpirun, but this mprun was built without MPI"));
    }
    CU_ASSERT_STRING_EQUAL(err[0], err[1]);
    free_both(err, out);
#endif
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_gpu_map), MP_TEST(test_check_fit), MP_TEST(test_driver), MP_TEST(test_replicas),
        MP_TEST(test_same_cuda_checks), MP_TEST(test_mpi_not_built),
    };
    return mp_test_main("pipeline", cases, (int)(sizeof cases / sizeof cases[0]));
}
