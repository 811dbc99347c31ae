/* test_runtime.c — mprun's library parts: SHA-256 vectors, the threads
 * transport (matching, timeouts, abort), the synthetic data, checkpoints, and
 * the runtime's key property: pipelined runs end with bitwise the same weights
 * as a one-stage run of the same global batch and micro-batch size. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "checkpoint.h"
#include "data.h"
#include "model.h"
#include "plan.h"
#include "runtime.h"
#include "sha256.h"
#include "bufpool.h"
#include "testutil.h"
#include "transport.h"

/* ---------------------------------------------------------------- sha256 */

static void hex_of(const char *msg, size_t n, char hex[65])
{
    mp_sha256 s;
    unsigned char d[32];
    mp_sha256_init(&s);
    mp_sha256_update(&s, msg, n);
    mp_sha256_final(&s, d);
    mp_sha256_hex(d, hex);
}

static void test_sha256_vectors(void)
{
    char h[65];
    hex_of("", 0, h);
    CU_ASSERT_STRING_EQUAL(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    CU_ASSERT_STRING_EQUAL(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), h);
    CU_ASSERT_STRING_EQUAL(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces */
    mp_sha256 s;
    unsigned char d[32], buf[997];
    memset(buf, 'a', sizeof buf);
    mp_sha256_init(&s);
    size_t left = 1000000;
    while (left) { size_t k = left < sizeof buf ? left : sizeof buf; mp_sha256_update(&s, buf, k); left -= k; }
    mp_sha256_final(&s, d);
    CU_ASSERT_STRING_EQUAL(mp_sha256_hex(d, h), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* ---------------------------------------------------------------- transport */

static void test_transport_match_and_timeout(void)
{
    mp_transport *t;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_transport_open("threads", 2, 8, &t, &err), MP_OK);
    float a[3] = { 1, 2, 3 }, b[3] = { 4, 5, 6 }, got[3];
    CU_ASSERT_EQUAL(t->i->send(t, 0, 1, 7, a, sizeof a, 1, &err), MP_OK);
    CU_ASSERT_EQUAL(t->i->send(t, 0, 1, 9, b, sizeof b, 1, &err), MP_OK);
    /* receives by tag, not arrival order */
    CU_ASSERT_EQUAL(t->i->recv(t, 1, 0, 9, got, sizeof got, 1, &err), MP_OK);
    CU_ASSERT_EQUAL(got[0], 4);
    CU_ASSERT_EQUAL(t->i->recv(t, 1, 0, 7, got, sizeof got, 1, &err), MP_OK);
    CU_ASSERT_EQUAL(got[2], 3);
    /* nothing left: a short timeout, with a message naming the stages */
    CU_ASSERT_EQUAL(t->i->recv(t, 1, 0, 7, got, sizeof got, 0.05, &err), MP_ERR_TIMEOUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stage 1"));
    /* size mismatch is an internal error */
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(t->i->send(t, 0, 1, 1, a, sizeof a, 1, &err), MP_OK);
    CU_ASSERT_EQUAL(t->i->recv(t, 1, 0, 1, got, 2 * sizeof(float), 1, &err), MP_ERR_INTERNAL);
    /* bounded mailbox: the 9th message waits, then times out */
    mp_error_clear(&err);
    for (int i = 0; i < 8; i++) CU_ASSERT_EQUAL(t->i->send(t, 0, 1, 100 + i, a, sizeof a, 1, &err), MP_OK);
    CU_ASSERT_EQUAL(t->i->send(t, 0, 1, 200, a, sizeof a, 0.05, &err), MP_ERR_TIMEOUT);
    mp_transport_close(t, 0);
}

/* bufpool.h: a put block comes back for a request it fits (at most 4x too
 * large), the smallest fitting one; a full pool keeps the larger blocks. */
static void test_bufpool(void)
{
    mp_bufpool p;
    mp_bufpool_init(&p);
    char *a = mp_bufpool_get(&p, 1000), *b = mp_bufpool_get(&p, 4000), *c = mp_bufpool_get(&p, 100000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    memset(c, 7, 100000);   /* the whole block is usable */
    mp_bufpool_put(&p, a);
    mp_bufpool_put(&p, b);
    mp_bufpool_put(&p, c);
    CU_ASSERT_EQUAL(p.n, 3);
    CU_ASSERT_PTR_EQUAL(mp_bufpool_get(&p, 900), a);     /* a fits; b too but is larger */
    char *d = mp_bufpool_get(&p, 500);                   /* b is 8x too large: a new block */
    CU_ASSERT(d != b && d != c);
    CU_ASSERT_PTR_EQUAL(mp_bufpool_get(&p, 30000), c);
    CU_ASSERT_EQUAL(p.n, 1);
    mp_bufpool_put(&p, a);
    mp_bufpool_put(&p, c);
    mp_bufpool_put(&p, d);
    char *small[MP_BUFPOOL_COUNT];
    for (int i = 0; i < MP_BUFPOOL_COUNT; i++) small[i] = mp_bufpool_get(&p, 16);
    for (int i = 0; i < MP_BUFPOOL_COUNT; i++) mp_bufpool_put(&p, small[i]);
    CU_ASSERT_EQUAL(p.n, MP_BUFPOOL_COUNT);
    CU_ASSERT_PTR_EQUAL(mp_bufpool_get(&p, 100000), c);  /* kept over the small ones */
    mp_bufpool_put(&p, c);
    mp_bufpool_free(&p);
}

/* Recycled message buffers (the pool): messages of mixed sizes, sent in
 * rounds and received out of order, arrive intact; a buffer is never reused
 * for a larger message. */
static void test_transport_buffer_reuse(void)
{
    mp_transport *t;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_transport_open("threads", 2, 8, &t, &err), MP_OK);
    enum { N = 5 };
    size_t len[N] = { 1, 1000, 3, 250000, 17 };
    float *buf = malloc(250000 * sizeof *buf), *got = malloc(250000 * sizeof *got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    int bad = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = len[(i + round) % N];
            for (size_t j = 0; j < n; j++) buf[j] = (float)(round * 1000003 + i * 7919 + (int)j);
            CU_ASSERT_EQUAL(t->i->send(t, 0, 1, i, buf, n * sizeof *buf, 1, &err), MP_OK);
        }
        for (int i = N - 1; i >= 0; i--) {
            size_t n = len[(i + round) % N];
            CU_ASSERT_EQUAL(t->i->recv(t, 1, 0, i, got, n * sizeof *got, 1, &err), MP_OK);
            for (size_t j = 0; j < n; j++) bad += got[j] != (float)(round * 1000003 + i * 7919 + (int)j);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(buf);
    free(got);
    mp_transport_close(t, 0);
}

typedef struct { mp_transport *t; mp_status st; int flag; char msg[1024]; } waiter;

static void *wait_recv(void *arg)
{
    waiter *w = arg;
    mp_error err;
    mp_error_clear(&err);
    float x;
    w->st = w->t->i->recv(w->t, 1, 0, 5, &x, sizeof x, 30, &err);
    snprintf(w->msg, sizeof w->msg, "%s", err.msg);
    return NULL;
}

static void *wait_agree(void *arg)
{
    waiter *w = arg;
    mp_error err;
    mp_error_clear(&err);
    w->st = w->t->i->agree(w->t, 1, &w->flag, 30, &err);
    return NULL;
}

static void test_transport_abort_and_agree(void)
{
    mp_transport *t;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_transport_open("threads", 2, 4, &t, &err), MP_OK);
    /* agree ORs the flags */
    waiter w = { t, MP_OK, 0, "" };
    pthread_t th;
    pthread_create(&th, NULL, wait_agree, &w);
    int f = 1;
    CU_ASSERT_EQUAL(t->i->agree(t, 0, &f, 30, &err), MP_OK);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(w.st, MP_OK);
    CU_ASSERT_EQUAL(f, 1);
    CU_ASSERT_EQUAL(w.flag, 1);
    /* abort wakes a receiver waiting with a 30 s timeout at once */
    pthread_create(&th, NULL, wait_recv, &w);
    t->i->abort(t, 0, "stage 0: boom");
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(w.st, MP_ERR_BACKEND);
    CU_ASSERT_STRING_EQUAL(w.msg, "stage 0: boom");
    mp_transport_close(t, 1);
    CU_ASSERT_EQUAL(mp_transport_open("carrier-pigeon", 2, 4, &t, &err), MP_ERR_USAGE);
}

/* The registry: what was compiled in, and the optional device entries. */
static void test_transport_registry(void)
{
    CU_ASSERT_EQUAL(mp_transport_available("threads"), 1);
    CU_ASSERT_EQUAL(mp_transport_available("carrier-pigeon"), 0);
    CU_ASSERT_EQUAL(mp_transport_available(NULL), 0);
#ifdef MP_HAVE_MPI
    CU_ASSERT_EQUAL(mp_transport_available("mpi"), 1);
#else
    CU_ASSERT_EQUAL(mp_transport_available("mpi"), 0);
#endif
#if defined(MP_HAVE_MPI) && defined(MP_HAVE_NCCL)
    CU_ASSERT_EQUAL(mp_transport_available("nccl"), 1);
    CU_ASSERT_PTR_NOT_NULL(mp_transport_nccl_i.send_dev);
    CU_ASSERT_PTR_NOT_NULL(mp_transport_nccl_i.recv_dev);
    CU_ASSERT_PTR_NOT_NULL(mp_transport_nccl_i.bind);
#else
    CU_ASSERT_EQUAL(mp_transport_available("nccl"), 0);
    mp_transport *t = NULL;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_transport_open("nccl", 2, 4, &t, &err), MP_ERR_BACKEND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nccl"));
#endif
    /* host transports take host buffers only: the runtime stages device data */
    CU_ASSERT_PTR_NULL(mp_transport_threads_i.send_dev);
    CU_ASSERT_PTR_NULL(mp_transport_threads_i.recv_dev);
#ifdef MP_HAVE_MPI
    CU_ASSERT_PTR_NULL(mp_transport_mpi_i.send_dev);
#endif
    CU_ASSERT_EQUAL(MP_TAG_KIND(MP_TAG(MP_TAG_GRAD, 511, (1 << 18) - 1)), MP_TAG_GRAD);
    CU_ASSERT_EQUAL(MP_TAG_KIND(MP_TAG(MP_TAG_ACT, 3, 7)), MP_TAG_ACT);
}

/* ---------------------------------------------------------------- data */

static const char *TINY =
    "{\"format\": \"mpkit-model/1\", \"name\": \"t\", \"input_dim\": 16, \"layers\": ["
    "{\"type\": \"linear\", \"out\": 32}, {\"type\": \"gelu\"},"
    "{\"repeat\": 3, \"layers\": [{\"type\": \"residual_mlp\", \"hidden\": 48}]},"
    "{\"type\": \"layernorm\"}, {\"type\": \"linear\", \"out\": 4}],"
    "\"loss\": {\"type\": \"cross_entropy\", \"classes\": 4}}";
static const char *REG =
    "{\"format\": \"mpkit-model/1\", \"name\": \"r\", \"input_dim\": 12, \"layers\": ["
    "{\"type\": \"linear\", \"out\": 24}, {\"type\": \"relu\"}, {\"type\": \"linear\", \"out\": 24},"
    "{\"type\": \"gelu\"}, {\"type\": \"linear\", \"out\": 3}], \"loss\": \"mse\"}";

static void load_model(const char *text, mp_model *m)
{
    mp_error err;
    mp_error_clear(&err);
    mp_status st = mp_model_parse(text, strlen(text), "test-model", m, &err);
    if (st != MP_OK) fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
}

static void test_data_deterministic(void)
{
    mp_model m;
    load_model(TINY, &m);
    mp_data d;
    mp_error err;
    CU_ASSERT_EQUAL_FATAL(mp_data_init(&d, &m, 7, &err), MP_OK);
    float a[10 * 16], b[4 * 16];
    int la[10], lb[4], count[4] = { 0 };
    mp_data_inputs(&d, 100, 10, a);
    mp_data_inputs(&d, 103, 4, b);      /* samples 103..106 = rows 3..6 of a */
    CU_ASSERT_EQUAL(memcmp(a + 3 * 16, b, sizeof b), 0);
    mp_data_targets(&d, 100, 10, NULL, la);
    mp_data_targets(&d, 103, 4, NULL, lb);
    CU_ASSERT_EQUAL(memcmp(la + 3, lb, sizeof lb), 0);
    /* labels cover more than one class over 400 samples */
    int l400[400];
    mp_data_targets(&d, 0, 400, NULL, l400);
    for (int i = 0; i < 400; i++) { CU_ASSERT(l400[i] >= 0 && l400[i] < 4); count[l400[i]]++; }
    int used = 0;
    for (int c = 0; c < 4; c++) used += count[c] > 20;
    CU_ASSERT(used >= 2);
    /* inputs look standard normal */
    float x[400 * 16];
    mp_data_inputs(&d, 0, 400, x);
    double s = 0, s2 = 0;
    for (int i = 0; i < 400 * 16; i++) { s += x[i]; s2 += (double)x[i] * x[i]; }
    CU_ASSERT(fabs(s / 6400) < 0.05);
    CU_ASSERT(fabs(s2 / 6400 - 1) < 0.08);
    mp_data_free(&d);
    mp_model_free(&m);
}

/* ---------------------------------------------------------------- checkpoints */

static void test_checkpoint_roundtrip(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ckpt", mp_test_tmpdir());
    float w[5] = { 1, -2, 3.5f, 0, 1e-30f }, m[5] = { 9, 8, 7, 6, 5 }, v[5] = { .1f, .2f, .3f, .4f, .5f };
    float w2[5], m2[5], v2[5];
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_checkpoint_write(dir, 1, 3, 4, 6, w, m, v, 5, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_checkpoint_read(dir, 1, 3, 4, 6, w2, m2, v2, 5, &err), MP_OK);
    CU_ASSERT_EQUAL(memcmp(w, w2, sizeof w), 0);
    CU_ASSERT_EQUAL(memcmp(m, m2, sizeof m), 0);
    CU_ASSERT_EQUAL(memcmp(v, v2, sizeof v), 0);
    /* a different layer range or optimizer is refused with a message */
    CU_ASSERT_EQUAL(mp_checkpoint_read(dir, 1, 3, 4, 7, w2, m2, v2, 5, &err), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "layers 4..6"));
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_checkpoint_read(dir, 1, 3, 4, 6, w2, NULL, NULL, 5, &err), MP_ERR_INPUT);
    /* a flipped byte is caught by the checksum */
    char path[600];
    snprintf(path, sizeof path, "%s/stage-1.step-3.ckpt", dir);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fseek(f, 50, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 50, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_checkpoint_read(dir, 1, 3, 4, 6, w2, m2, v2, 5, &err), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "checksum"));
    /* commit: latest names the step, older steps are removed */
    CU_ASSERT_EQUAL(mp_checkpoint_write(dir, 1, 4, 4, 6, w, NULL, NULL, 5, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_checkpoint_commit(dir, 4, 2, &err), MP_OK);
    long long step = 0;
    int ns = 0;
    CU_ASSERT_EQUAL(mp_checkpoint_latest(dir, &step, &ns, &err), MP_OK);
    CU_ASSERT_EQUAL(step, 4);
    CU_ASSERT_EQUAL(ns, 2);
    CU_ASSERT_EQUAL(fopen(path, "rb"), NULL);
}

/* ---------------------------------------------------------------- runtime */

typedef struct { const char *schedule; int v, gb, b; int n; int first[8], rc[8]; } plan_spec;

/* A plan over `layers` layers; stage s gets layers first[s]..first[s+1]-1 and
 * device s % K. */
static void make_plan(const plan_spec *ps, int layers, mp_plan *p)
{
    char text[4096];
    int K = ps->n / ps->v, n = snprintf(text, sizeof text,
        "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"%s\",\"chunks_per_device\":%d,"
        "\"global_batch\":%d,\"microbatch_size\":%d,\"stages\":[", ps->schedule, ps->v, ps->gb, ps->b);
    for (int s = 0; s < ps->n; s++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"layers\":[%d,%d],\"device\":%d,\"recompute\":%s}",
                      s ? "," : "", ps->first[s], (s + 1 < ps->n ? ps->first[s + 1] : layers) - 1, s % K,
                      ps->rc[s] ? "true" : "false");
    snprintf(text + n, sizeof text - (size_t)n, "]}");
    mp_error err;
    mp_error_clear(&err);
    mp_status st = mp_plan_parse(text, strlen(text), "test-plan", p, &err);
    if (st != MP_OK) fprintf(stderr, "%s\n%s\n", text, err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
}

static mp_status run_plan(const mp_model *m, const plan_spec *ps, mp_optimizer_kind opt, int steps,
                          mp_run_result *res, mp_error *err)
{
    mp_plan p;
    make_plan(ps, m->num_layers, &p);
    mp_run_config c;
    mp_run_config_default(&c);
    c.plan = &p;
    c.model = m;
    c.steps = steps;
    c.seed = 3;
    c.optimizer = opt;
    c.lr = opt == MP_OPT_ADAM ? 0.003f : 0.1f;
    c.pin = 0;              /* more stages than this machine's cores */
    c.print_loss = 0;
    c.timeout_s = 20;
    mp_error_clear(err);
    mp_status st = mp_run(&c, res, err);
    if (st != MP_OK) fprintf(stderr, "%s\n", err->msg);
    mp_plan_free(&p);
    return st;
}

static void check_equivalence(const char *model_text, mp_optimizer_kind opt)
{
    mp_model m;
    load_model(model_text, &m);
    int L = m.num_layers;
    plan_spec one = { "gpipe", 1, 24, 4, 1, { 0 }, { 0 } };
    mp_run_result ref;
    mp_error err;
    CU_ASSERT_EQUAL_FATAL(run_plan(&m, &one, opt, 4, &ref, &err), MP_OK);
    CU_ASSERT_EQUAL(strlen(ref.checksum), 64);
    plan_spec cases[] = {
        { "gpipe", 1, 24, 4, 2, { 0, 2 }, { 0, 0 } },
        { "1f1b", 1, 24, 4, 2, { 0, L - 1 }, { 0, 1 } },
        { "1f1b", 1, 24, 4, 3, { 0, 1, 3 }, { 1, 0, 1 } },
        { "gpipe", 1, 24, 4, 4, { 0, 1, 2, 4 }, { 1, 1, 1, 1 } },
        { "interleaved", 2, 24, 4, 4, { 0, 1, 3, 4 }, { 0, 1, 0, 0 } },
        { "interleaved", 3, 24, 4, 6, { 0, 1, 2, 3, 4, 5 }, { 0, 0, 1, 0, 0, 1 } },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (cases[k].n > L) continue;
        mp_run_result r;
        CU_ASSERT_EQUAL_FATAL(run_plan(&m, &cases[k], opt, 4, &r, &err), MP_OK);
        if (strcmp(r.checksum, ref.checksum))
            fprintf(stderr, "case %zu (%s, %d stages): %s != %s\n", k, cases[k].schedule, cases[k].n, r.checksum, ref.checksum);
        CU_ASSERT_STRING_EQUAL(r.checksum, ref.checksum);
        for (int s = 0; s < 4; s++) CU_ASSERT_EQUAL(r.loss[s], ref.loss[s]);   /* bitwise, deterministic reduction */
        mp_run_result_free(&r);
    }
    /* a different micro-batch size changes the sums (sanity: the test can fail) */
    plan_spec other = { "gpipe", 1, 24, 8, 1, { 0 }, { 0 } };
    mp_run_result r2;
    CU_ASSERT_EQUAL_FATAL(run_plan(&m, &other, opt, 4, &r2, &err), MP_OK);
    CU_ASSERT(fabs(r2.loss[0] - ref.loss[0]) < 1e-5);   /* same weights at step 1: same loss up to rounding */
    CU_ASSERT(strcmp(r2.checksum, ref.checksum) != 0);
    mp_run_result_free(&r2);
    mp_run_result_free(&ref);
    mp_model_free(&m);
}

static void test_equivalence_sgd_xent(void) { check_equivalence(TINY, MP_OPT_SGD); }
static void test_equivalence_adam_mse(void) { check_equivalence(REG, MP_OPT_ADAM); }

static void test_loss_falls(void)
{
    mp_model m;
    load_model(REG, &m);
    plan_spec two = { "1f1b", 1, 32, 8, 2, { 0, 3 }, { 0, 0 } };
    mp_run_result r;
    mp_error err;
    CU_ASSERT_EQUAL_FATAL(run_plan(&m, &two, MP_OPT_ADAM, 40, &r, &err), MP_OK);
    double first = (r.loss[0] + r.loss[1]) / 2, last = (r.loss[38] + r.loss[39]) / 2;
    CU_ASSERT(last < 0.5 * first);
    CU_ASSERT(r.iteration_ms > 0);
    CU_ASSERT(r.busy_ms[0] > 0 && r.busy_ms[1] > 0);
    CU_ASSERT(r.peak_bytes[0] > 0);
    CU_ASSERT_STRING_EQUAL(r.transport, "threads");
    /* trace of the last step: every op of both positions */
    int fwd = 0, bwd = 0, act = 0, grad = 0;
    for (int e = 0; e < r.trace.n; e++) {
        fwd += r.trace.ev[e].kind == 0;
        bwd += r.trace.ev[e].kind == 1;
        act += r.trace.ev[e].kind == 3;
        grad += r.trace.ev[e].kind == 4;
    }
    CU_ASSERT_EQUAL(fwd, 2 * 4);
    CU_ASSERT_EQUAL(bwd, 2 * 4);
    CU_ASSERT_EQUAL(act, 4);
    CU_ASSERT_EQUAL(grad, 4);
    mp_run_result_free(&r);
    mp_model_free(&m);
}

/* Peak memory follows the schedule: gpipe keeps all m stashes, 1f1b fewer. */
static void test_peak_memory_follows_schedule(void)
{
    mp_model m;
    load_model(TINY, &m);
    plan_spec g = { "gpipe", 1, 64, 4, 2, { 0, 4 }, { 0, 0 } }, f = { "1f1b", 1, 64, 4, 2, { 0, 4 }, { 0, 0 } };
    mp_run_result rg, rf;
    mp_error err;
    CU_ASSERT_EQUAL_FATAL(run_plan(&m, &g, MP_OPT_SGD, 2, &rg, &err), MP_OK);
    CU_ASSERT_EQUAL_FATAL(run_plan(&m, &f, MP_OPT_SGD, 2, &rf, &err), MP_OK);
    CU_ASSERT(rf.peak_bytes[0] < rg.peak_bytes[0]);
    CU_ASSERT_STRING_EQUAL(rf.checksum, rg.checksum);
    mp_run_result_free(&rg);
    mp_run_result_free(&rf);
    mp_model_free(&m);
}

static void test_failures(void)
{
    mp_model m;
    load_model(REG, &m);
    mp_error err;
    mp_run_result r;
    /* a transfer that never arrives: stops within the timeout, names the stage */
    mp_plan p;
    plan_spec two = { "1f1b", 1, 16, 4, 2, { 0, 3 }, { 0, 0 } };
    make_plan(&two, m.num_layers, &p);
    mp_run_config c;
    mp_run_config_default(&c);
    c.plan = &p;
    c.model = &m;
    c.steps = 2;
    c.pin = 0;
    c.print_loss = 0;
    c.timeout_s = 0.2;
    c.fault = "hang:0";
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_run(&c, &r, &err), MP_ERR_TIMEOUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "timed out after 0.2 s"));
    /* NaN loss */
    c.fault = NULL;
    c.timeout_s = 10;
    c.lr = 1e30f;
    c.steps = 4;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_run(&c, &r, &err), MP_ERR_BACKEND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stage 1: the loss is"));
    /* a stage that does not fit the device memory: before any work */
    double mem[2] = { 1e9, 1000 };
    c.lr = 0.1f;
    c.num_devices = 2;
    c.device_memory = mem;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_run(&c, &r, &err), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stage 1 does not fit on device 1"));
    mp_plan_free(&p);
    /* a plan for a different model */
    plan_spec big = { "gpipe", 1, 16, 4, 2, { 0, 3 }, { 0, 0 } };
    make_plan(&big, m.num_layers + 2, &p);
    c.plan = &p;
    c.device_memory = NULL;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_run(&c, &r, &err), MP_ERR_INPUT);
    mp_plan_free(&p);
    /* --backend cuda: without a usable GPU, refused before any work with the
     * reason; with one, device indices must name GPUs */
    plan_spec far = { "gpipe", 1, 16, 4, 2, { 0, 3 }, { 0, 0 } };
    make_plan(&far, m.num_layers, &p);
    p.stages[1].device = 4095;
    c.plan = &p;
    c.backend = "cuda";
    c.num_devices = 0;      /* no cluster: device indices are checked against the GPUs */
    c.lr = 0.1f;
    mp_error_clear(&err);
    mp_status st = mp_run_check(&c, &err);
    if (strstr(err.msg, "no CUDA device available") || strstr(err.msg, "not compiled into this build")) {
        CU_ASSERT_EQUAL(st, MP_ERR_BACKEND);
    } else {
        CU_ASSERT_EQUAL(st, MP_ERR_INPUT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stage 1: device 4095 but only"));
    }
    mp_plan_free(&p);
    mp_model_free(&m);
}

/* The backend's bytes in use, as the runtime reads them (its peak and fit
 * check): mem_used is optional, so a backend without it reads -1, never a
 * call through NULL. */
static void test_backend_mem_used(void)
{
    mp_backend *be;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_backend_open("cpu", -1, &be, &err), MP_OK);
    void *p = be->i->alloc(be, 4096);
    CU_ASSERT_EQUAL(mp_backend_mem_used(be), (double)be->i->mem_used(be));
    CU_ASSERT(mp_backend_mem_used(be) >= 4096);
    const mp_backend_i *cpu = be->i;
    mp_backend_i without = *cpu;
    without.mem_used = NULL;
    be->i = &without;
    CU_ASSERT_EQUAL(mp_backend_mem_used(be), -1);
    be->i = cpu;
    be->i->free(be, p);
    mp_backend_close(be);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_sha256_vectors),
        MP_TEST(test_transport_match_and_timeout),
        MP_TEST(test_transport_abort_and_agree),
        MP_TEST(test_transport_registry),
        MP_TEST(test_bufpool),
        MP_TEST(test_transport_buffer_reuse),
        MP_TEST(test_data_deterministic),
        MP_TEST(test_checkpoint_roundtrip),
        MP_TEST(test_equivalence_sgd_xent),
        MP_TEST(test_equivalence_adam_mse),
        MP_TEST(test_loss_falls),
        MP_TEST(test_peak_memory_follows_schedule),
        MP_TEST(test_failures),
        MP_TEST(test_backend_mem_used),
    };
    return mp_test_main("runtime", cases, (int)(sizeof cases / sizeof cases[0]));
}
