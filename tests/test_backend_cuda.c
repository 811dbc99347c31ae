/* test_backend_cuda.c — the CUDA backend against the CPU reference, op by op.
 *
 * Opens "cpu" (the reference) and "cuda" (the device under test), feeds both
 * the same random inputs, and prints for every primitive the max absolute and
 * relative difference, asserting |cuda - cpu| <= atol + rtol*|cpu| per element.
 * Without the cuda backend compiled in, or without a GPU, it says
 * "skipped: ..." and instead runs the same harness with a second CPU backend
 * as the device under test (a self-check of the harness: differences must be
 * exactly 0), so the test still passes and still exercises every code path.
 *
 * Then mprun's runtime on the GPU: a small model trained with a 1-stage plan
 * and a 2-stage plan with both stages on GPU 0 (threads transport, device
 * buffers staged through the host) against the CPU run of the same plan:
 * losses within a tolerance, the two GPU runs within a tight one; a plan
 * naming a GPU that does not exist and a malformed GPU map are refused before
 * any work. Without a GPU, --backend cuda must fail cleanly ("no CUDA device
 * available"). */
#include "testutil.h"
#include "backend_impl.h"
#include "layers.h"
#include "model.h"
#include "plan.h"
#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- harness */

static mp_backend *ref, *dut;   /* reference (cpu) and device under test */
static int self_check;          /* 1: dut is a second cpu backend */
static char skip_reason[1100];

typedef struct {
    float *r, *d;   /* the same tensor on ref and on dut */
    size_t n;
} pair;

static unsigned long long rng = 0x9e3779b97f4a7c15ull;

static float frand(void)   /* uniform in [-1, 1), deterministic */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static void open_backends(void)
{
    if (ref) return;
    mp_error err = {0};
    if (mp_backend_open("cpu", -1, &ref, &err) != MP_OK) {
        fprintf(stderr, "cannot open cpu backend: %s\n", err.msg);
        exit(2);
    }
    mp_error_clear(&err);
    if (mp_backend_open("cuda", 0, &dut, &err) != MP_OK) {
        snprintf(skip_reason, sizeof skip_reason, "%s", err.msg);
        printf("skipped: %s; running the harness cpu-vs-cpu as a self-check\n", err.msg);
        self_check = 1;
        mp_error_clear(&err);
        if (mp_backend_open("cpu", -1, &dut, &err) != MP_OK) {
            fprintf(stderr, "cannot open second cpu backend: %s\n", err.msg);
            exit(2);
        }
    } else {
        char a[512], b[512];
        printf("reference: %s\ndevice:    %s\n", mp_backend_describe(ref, a, sizeof a),
               mp_backend_describe(dut, b, sizeof b));
    }
}

/* A tensor of n floats on both backends: random in [lo, hi), or zero. */
static pair pair_new(size_t n, float lo, float hi, int zero)
{
    pair p = {0};
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = zero ? 0.0f : lo + (frand() + 1.0f) * 0.5f * (hi - lo);
    p.n = n;
    p.r = ref->i->alloc(ref, n * sizeof(float));
    p.d = dut->i->alloc(dut, n * sizeof(float));
    CU_ASSERT_FATAL(p.r != NULL && p.d != NULL);
    ref->i->upload(ref, p.r, h, n * sizeof(float));
    dut->i->upload(dut, p.d, h, n * sizeof(float));
    free(h);
    return p;
}

static pair rnd(size_t n) { return pair_new(n, -1.0f, 1.0f, 0); }

/* A tensor of n token ids in [0, vocab) (as floats) on both backends. */
static pair token_pair(size_t n, int vocab)
{
    pair p = pair_new(n, 0, 0, 1);
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (float)(int)((frand() + 1.0f) * 0.5f * (float)vocab * 0.999f);
    ref->i->upload(ref, p.r, h, n * sizeof(float));
    dut->i->upload(dut, p.d, h, n * sizeof(float));
    free(h);
    return p;
}

static void pair_free(pair *p)
{
    ref->i->free(ref, p->r);
    dut->i->free(dut, p->d);
    memset(p, 0, sizeof *p);
}

static void sync_both(void)
{
    mp_error err = {0};
    mp_status st = ref->i->sync(ref, &err);
    CU_ASSERT_EQUAL(st, MP_OK);
    st = dut->i->sync(dut, &err);
    if (st != MP_OK) printf("  sync failed: %s\n", err.msg);
    CU_ASSERT_EQUAL(st, MP_OK);
}

/* Compares two host arrays; prints one line; asserts the tolerance. */
static void check_host(const char *op, const float *a, const float *b, size_t n, double atol,
                       double rtol)
{
    double max_abs = 0, max_rel = 0;
    size_t bad = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i])) d = INFINITY;
        double rel = d / fmax(fabs((double)a[i]), 1e-6);
        if (d > max_abs) max_abs = d, worst = i;
        if (rel > max_rel && fabs((double)a[i]) > 1e-6) max_rel = rel;
        if (!(d <= atol + rtol * fabs((double)a[i]))) bad++;
    }
    printf("  %-28s n=%-8zu max_abs=%-10.3g max_rel=%-10.3g %s\n", op, n, max_abs, max_rel,
           bad ? "FAIL" : "ok");
    if (bad)
        printf("    %zu elements out of tolerance; worst [%zu]: cpu %.9g, dut %.9g\n", bad, worst,
               (double)a[worst], (double)b[worst]);
    CU_ASSERT_EQUAL(bad, 0);
    if (self_check) CU_ASSERT_EQUAL(max_abs, 0.0);
}

/* Downloads both sides of p and compares them. */
static void check(const char *op, const pair *p, double atol, double rtol)
{
    float *a = malloc(p->n * sizeof *a), *b = malloc(p->n * sizeof *b);
    sync_both();
    ref->i->download(ref, a, p->r, p->n * sizeof(float));
    dut->i->download(dut, b, p->d, p->n * sizeof(float));
    check_host(op, a, b, p->n, atol, rtol);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- cases */

static void test_open(void)
{
    open_backends();
    CU_ASSERT_TRUE(mp_backend_available("cpu"));
#ifdef MP_HAVE_CUDA
    CU_ASSERT_TRUE(mp_backend_available("cuda"));
#else
    CU_ASSERT_FALSE(mp_backend_available("cuda"));
#endif
    if (self_check) {
        /* the failure must be clean and say why */
        mp_backend *be = NULL;
        mp_error err = {0};
        CU_ASSERT_EQUAL(mp_backend_open("cuda", 0, &be, &err), MP_ERR_BACKEND);
        CU_ASSERT_PTR_NULL(be);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "CUDA"));
        printf("  cuda open error: %s\n", err.msg);
        return;
    }
    CU_ASSERT_STRING_EQUAL(mp_backend_name(dut), "cuda");
    /* a device index that cannot exist fails cleanly */
    mp_backend *be = NULL;
    mp_error err = {0};
    CU_ASSERT_EQUAL(mp_backend_open("cuda", 4096, &be, &err), MP_ERR_BACKEND);
    CU_ASSERT_PTR_NULL(be);
    printf("  bad device: %s\n", err.msg);
}

static void test_memory(void)
{
    open_backends();
    const size_t n = 1000;
    pair p = pair_new(n, 0, 0, 1);   /* alloc must return zeroed memory */
    float *h = malloc(n * sizeof *h);
    dut->i->download(dut, h, p.d, n * sizeof(float));
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) nz += h[i] != 0.0f;
    CU_ASSERT_EQUAL(nz, 0);
    pair q = rnd(n);
    ref->i->copy(ref, p.r, q.r, n * sizeof(float));
    dut->i->copy(dut, p.d, q.d, n * sizeof(float));
    check("copy", &p, 0, 0);
    ref->i->zero(ref, q.r, n / 2 * sizeof(float));
    dut->i->zero(dut, q.d, n / 2 * sizeof(float));
    check("zero (half)", &q, 0, 0);
    pair_free(&p);
    pair_free(&q);
    free(h);

    if (dut->i->mem_used && !self_check) {
        size_t before = dut->i->mem_used(dut);
        size_t bytes = (size_t)256 << 20;
        void *big = dut->i->alloc(dut, bytes);
        CU_ASSERT_PTR_NOT_NULL(big);
        size_t after = dut->i->mem_used(dut);
        printf("  mem_used: %zu -> %zu bytes after a 256 MiB alloc\n", before, after);
        CU_ASSERT_TRUE(after >= before + bytes);
        dut->i->free(dut, big);
        sync_both();
    }
}

static void gemm_case(int ta, int tb, int M, int N, int K, int pad)
{
    /* stored shapes: A is [M,K] or [K,M] (ta); B is [K,N] or [N,K] (tb); with padding */
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    pair A = rnd((size_t)ar * lda), B = rnd((size_t)br * ldb), C = rnd((size_t)M * ldc);
    ref->i->gemm(ref, ta, tb, M, N, K, 0.7f, A.r, lda, B.r, ldb, 0.3f, C.r, ldc);
    dut->i->gemm(dut, ta, tb, M, N, K, 0.7f, A.d, lda, B.d, ldb, 0.3f, C.d, ldc);
    char name[64];
    snprintf(name, sizeof name, "gemm %c%c %dx%dx%d ld+%d", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K,
             pad);
    check(name, &C, 2e-6 * K, 1e-4);
    pair_free(&A);
    pair_free(&B);
    pair_free(&C);
}

static void test_gemm(void)
{
    open_backends();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gemm_case(ta, tb, 37, 53, 29, ta + 2 * tb);
    gemm_case(0, 1, 8, 512, 1024, 0);    /* linear forward shape */
    gemm_case(1, 0, 1024, 512, 8, 0);    /* weight gradient shape */
    gemm_case(0, 0, 1, 1, 1, 0);
}

static void test_elementwise(void)
{
    open_backends();
    const int rows = 7, cols = 300;
    const size_t n = (size_t)rows * cols;
    pair y = rnd(n), b = rnd(cols), x = rnd(n), out = rnd(cols), dy = rnd(n);

    ref->i->add_bias(ref, y.r, b.r, rows, cols);
    dut->i->add_bias(dut, y.d, b.d, rows, cols);
    check("add_bias", &y, 1e-6, 1e-6);

    ref->i->col_sum(ref, out.r, x.r, rows, cols, 0.5f);
    dut->i->col_sum(dut, out.d, x.d, rows, cols, 0.5f);
    check("col_sum beta=0.5", &out, 1e-6, 1e-6);
    ref->i->col_sum(ref, out.r, x.r, rows, cols, 0.0f);
    dut->i->col_sum(dut, out.d, x.d, rows, cols, 0.0f);
    check("col_sum beta=0", &out, 1e-6, 1e-6);

    ref->i->axpy(ref, y.r, -0.25f, x.r, n);
    dut->i->axpy(dut, y.d, -0.25f, x.d, n);
    check("axpy", &y, 1e-6, 1e-6);

    pair a = pair_new(n, -4.0f, 4.0f, 0), o = rnd(n);
    ref->i->relu_fwd(ref, o.r, a.r, n);
    dut->i->relu_fwd(dut, o.d, a.d, n);
    check("relu_fwd", &o, 0, 0);
    ref->i->relu_bwd(ref, o.r, dy.r, a.r, n);
    dut->i->relu_bwd(dut, o.d, dy.d, a.d, n);
    check("relu_bwd", &o, 0, 0);
    ref->i->gelu_fwd(ref, o.r, a.r, n);
    dut->i->gelu_fwd(dut, o.d, a.d, n);
    check("gelu_fwd", &o, 1e-6, 1e-5);
    ref->i->gelu_bwd(ref, o.r, dy.r, a.r, n);
    dut->i->gelu_bwd(dut, o.d, dy.d, a.d, n);
    check("gelu_bwd", &o, 1e-6, 1e-5);

    pair_free(&y); pair_free(&b); pair_free(&x); pair_free(&out); pair_free(&dy);
    pair_free(&a); pair_free(&o);
}

static void layernorm_case(int rows, int cols)
{
    const size_t n = (size_t)rows * cols;
    pair x = pair_new(n, -2.0f, 3.0f, 0), g = pair_new(cols, 0.5f, 1.5f, 0), b = rnd(cols);
    pair y = rnd(n), mean = rnd(rows), rstd = rnd(rows), dy = rnd(n), dx = rnd(n);
    pair dg = rnd(cols), db = rnd(cols);   /* nonzero: the backward accumulates */
    char name[64];

    ref->i->layernorm_fwd(ref, y.r, mean.r, rstd.r, x.r, g.r, b.r, rows, cols, 1e-5f);
    dut->i->layernorm_fwd(dut, y.d, mean.d, rstd.d, x.d, g.d, b.d, rows, cols, 1e-5f);
    snprintf(name, sizeof name, "layernorm_fwd y %dx%d", rows, cols);
    check(name, &y, 1e-5, 1e-4);
    check("layernorm_fwd mean", &mean, 1e-6, 1e-5);
    check("layernorm_fwd rstd", &rstd, 1e-6, 1e-5);

    /* the backward from the reference's saved statistics on both sides */
    float *h = malloc(2 * rows * sizeof *h);
    ref->i->download(ref, h, mean.r, rows * sizeof(float));
    ref->i->download(ref, h + rows, rstd.r, rows * sizeof(float));
    dut->i->upload(dut, mean.d, h, rows * sizeof(float));
    dut->i->upload(dut, rstd.d, h + rows, rows * sizeof(float));
    free(h);
    ref->i->layernorm_bwd(ref, dx.r, dg.r, db.r, dy.r, x.r, mean.r, rstd.r, g.r, rows, cols);
    dut->i->layernorm_bwd(dut, dx.d, dg.d, db.d, dy.d, x.d, mean.d, rstd.d, g.d, rows, cols);
    snprintf(name, sizeof name, "layernorm_bwd dx %dx%d", rows, cols);
    check(name, &dx, 1e-5, 1e-4);
    check("layernorm_bwd dgamma (+=)", &dg, 1e-5, 1e-4);
    check("layernorm_bwd dbeta (+=)", &db, 1e-5, 1e-4);

    pair_free(&x); pair_free(&g); pair_free(&b); pair_free(&y); pair_free(&mean);
    pair_free(&rstd); pair_free(&dy); pair_free(&dx); pair_free(&dg); pair_free(&db);
}

static void test_layernorm(void)
{
    open_backends();
    layernorm_case(5, 300);    /* cols > one block's threads */
    layernorm_case(16, 4096);
    layernorm_case(3, 7);
}

/* The per-head products of attention: heads' columns interleave in rows of
 * q|k|v (ld 3d, stride dh), scores are contiguous [T, T] per head. */
static void gemm_batched_case(int ta, int tb, int T, int d, int H)
{
    int dh = d / H;
    long long TT = (long long)T * T;
    pair qkv = rnd((size_t)T * 3 * d), s = rnd((size_t)H * TT), o = rnd((size_t)T * d);
    char name[80];
    /* scores = q k^T (NT) or, with ta, s^T q (TN, as dk); o = s v (NN) */
    if (!ta) {
        ref->i->gemm_batched(ref, 0, 1, T, T, dh, 0.5f, qkv.r, 3 * d, dh, qkv.r + d, 3 * d, dh, 0.0f, s.r, T, TT, H);
        dut->i->gemm_batched(dut, 0, 1, T, T, dh, 0.5f, qkv.d, 3 * d, dh, qkv.d + d, 3 * d, dh, 0.0f, s.d, T, TT, H);
        snprintf(name, sizeof name, "gemm_batched NT %dx%dx%d x%d", T, T, dh, H);
        check(name, &s, 2e-6 * dh, 1e-4);
    }
    ref->i->gemm_batched(ref, ta, tb, T, dh, T, 1.0f, s.r, T, TT, qkv.r + 2 * d, 3 * d, dh, 0.3f, o.r, d, dh, H);
    dut->i->gemm_batched(dut, ta, tb, T, dh, T, 1.0f, s.d, T, TT, qkv.d + 2 * d, 3 * d, dh, 0.3f, o.d, d, dh, H);
    snprintf(name, sizeof name, "gemm_batched %c%c %dx%dx%d x%d", ta ? 'T' : 'N', tb ? 'T' : 'N', T, dh, T, H);
    check(name, &o, 2e-6 * T, 1e-4);
    pair_free(&qkv); pair_free(&s); pair_free(&o);
}

static void softmax_case(int rows, int cols, int causal)
{
    const size_t n = (size_t)rows * cols;
    pair x = pair_new(n, -6.0f, 6.0f, 0), y = rnd(n), dy = rnd(n), dx = rnd(n);
    char name[80];
    ref->i->softmax_fwd(ref, y.r, x.r, rows, cols, causal);
    dut->i->softmax_fwd(dut, y.d, x.d, rows, cols, causal);
    snprintf(name, sizeof name, "softmax_fwd %dx%d%s", rows, cols, causal ? " causal" : "");
    check(name, &y, 1e-6, 1e-5);
    float *h = malloc(n * sizeof *h);   /* the backward from the reference's probabilities on both sides */
    ref->i->download(ref, h, y.r, n * sizeof(float));
    dut->i->upload(dut, y.d, h, n * sizeof(float));
    free(h);
    ref->i->softmax_bwd(ref, dx.r, dy.r, y.r, rows, cols, causal);
    dut->i->softmax_bwd(dut, dx.d, dy.d, y.d, rows, cols, causal);
    snprintf(name, sizeof name, "softmax_bwd %dx%d%s", rows, cols, causal ? " causal" : "");
    check(name, &dx, 1e-6, 1e-4);
    /* in place: y over x, dx over dy */
    ref->i->softmax_fwd(ref, x.r, x.r, rows, cols, causal);
    dut->i->softmax_fwd(dut, x.d, x.d, rows, cols, causal);
    check("softmax_fwd in place", &x, 1e-6, 1e-5);
    ref->i->softmax_bwd(ref, dy.r, dy.r, x.r, rows, cols, causal);
    dut->i->softmax_bwd(dut, dy.d, dy.d, x.d, rows, cols, causal);
    check("softmax_bwd in place", &dy, 1e-6, 1e-4);
    pair_free(&x); pair_free(&y); pair_free(&dy); pair_free(&dx);
}

/* Gather and the fixed-order scatter-add: every element sees the same float
 * additions in the same order on both backends, so they agree exactly. */
static void embedding_case(int b, int seq, int dim, int vocab)
{
    const size_t rows = (size_t)b * seq;
    pair ids = token_pair(rows, vocab), table = rnd((size_t)vocab * dim), pos = rnd((size_t)seq * dim);
    pair y = rnd(rows * dim), dy = rnd(rows * dim);
    pair dtable = rnd((size_t)vocab * dim), dpos = rnd((size_t)seq * dim);   /* nonzero: it accumulates */
    char name[80];
    ref->i->embedding_fwd(ref, y.r, ids.r, table.r, pos.r, b, seq, dim, vocab);
    dut->i->embedding_fwd(dut, y.d, ids.d, table.d, pos.d, b, seq, dim, vocab);
    snprintf(name, sizeof name, "embedding_fwd %dx%d d=%d V=%d", b, seq, dim, vocab);
    check(name, &y, 0, 0);
    for (int rep = 0; rep < 2; rep++) {   /* twice: accumulation onto the first result */
        ref->i->embedding_bwd(ref, dtable.r, dpos.r, dy.r, ids.r, b, seq, dim, vocab);
        dut->i->embedding_bwd(dut, dtable.d, dpos.d, dy.d, ids.d, b, seq, dim, vocab);
    }
    check("embedding_bwd dtable (+=, exact)", &dtable, 0, 0);
    check("embedding_bwd dpos (+=, exact)", &dpos, 0, 0);
    pair_free(&ids); pair_free(&table); pair_free(&pos); pair_free(&y); pair_free(&dy);
    pair_free(&dtable); pair_free(&dpos);
}

static void test_attention_primitives(void)
{
    open_backends();
    gemm_batched_case(0, 0, 64, 128, 4);   /* scores q k^T, then p v */
    gemm_batched_case(1, 0, 37, 96, 3);    /* s^T q (dk), s^T do (dv) */
    gemm_batched_case(0, 0, 256, 768, 12);
    softmax_case(4 * 64, 64, 1);
    softmax_case(3 * 37, 37, 0);
    softmax_case(2 * 1024, 1024, 1);       /* rows longer than a block */
    embedding_case(3, 64, 96, 1000);
    embedding_case(2, 128, 300, 50257);    /* columns past one block, large vocabulary */
    embedding_case(4, 16, 8, 3);           /* many rows per token */
}

static void loss_case(int xent, int rows, int cols, float scale)
{
    const size_t n = (size_t)rows * cols;
    pair pred = pair_new(n, -3.0f, 3.0f, 0), grad = rnd(n);
    int *lab_r = NULL, *lab_d = NULL;
    pair target = {0};
    float loss_r = -1, loss_d = -2;
    if (xent) {
        int *h = malloc(rows * sizeof *h);
        for (int r = 0; r < rows; r++) h[r] = (r * 7919 + 13) % cols;
        lab_r = ref->i->alloc(ref, rows * sizeof(int));
        lab_d = dut->i->alloc(dut, rows * sizeof(int));
        ref->i->upload(ref, lab_r, h, rows * sizeof(int));
        dut->i->upload(dut, lab_d, h, rows * sizeof(int));
        free(h);
        ref->i->xent_loss(ref, grad.r, &loss_r, pred.r, lab_r, rows, cols, scale);
        dut->i->xent_loss(dut, grad.d, &loss_d, pred.d, lab_d, rows, cols, scale);
    } else {
        target = rnd(n);
        ref->i->mse_loss(ref, grad.r, &loss_r, pred.r, target.r, rows, cols, scale);
        dut->i->mse_loss(dut, grad.d, &loss_d, pred.d, target.d, rows, cols, scale);
    }
    char name[64];
    snprintf(name, sizeof name, "%s grad %dx%d", xent ? "xent" : "mse", rows, cols);
    check(name, &grad, 1e-6, 1e-4);   /* syncs both: loss values are in now */
    snprintf(name, sizeof name, "%s loss (scale %g)", xent ? "xent" : "mse", scale);
    check_host(name, &loss_r, &loss_d, 1, 1e-5, 1e-5);
    pair_free(&pred);
    pair_free(&grad);
    if (xent) {
        ref->i->free(ref, lab_r);
        dut->i->free(dut, lab_d);
    } else {
        pair_free(&target);
    }
}

static void test_losses(void)
{
    open_backends();
    loss_case(0, 8, 33, 1.0f);
    loss_case(0, 32, 4096, 0.125f);
    loss_case(1, 8, 10, 1.0f);
    loss_case(1, 5, 1000, 0.25f);
    loss_case(1, 64, 50257, 1.0f / 64);   /* token-level loss over GPT-2's vocabulary */

    /* more queued losses than the backend has staging slots: all arrive */
    enum { K = 100 };
    const int rows = 4, cols = 16;
    pair pred = rnd((size_t)rows * cols), tgt = rnd((size_t)rows * cols), grad = rnd((size_t)rows * cols);
    float lr[K], ld[K];
    for (int k = 0; k < K; k++) {
        lr[k] = -1.0f;
        ld[k] = -2.0f;
        float s = 1.0f + (float)k;
        ref->i->mse_loss(ref, grad.r, &lr[k], pred.r, tgt.r, rows, cols, s);
        dut->i->mse_loss(dut, grad.d, &ld[k], pred.d, tgt.d, rows, cols, s);
    }
    sync_both();
    check_host("mse loss x100 queued", lr, ld, K, 1e-5, 1e-5);
    pair_free(&pred); pair_free(&tgt); pair_free(&grad);
}

static void test_optimizers(void)
{
    open_backends();
    const size_t n = 5000;
    pair w = rnd(n), g = rnd(n), m = pair_new(n, 0, 0, 1), v = pair_new(n, 0, 0, 1);
    ref->i->sgd_update(ref, w.r, g.r, n, 0.01f);
    dut->i->sgd_update(dut, w.d, g.d, n, 0.01f);
    check("sgd_update", &w, 1e-7, 1e-6);
    for (int step = 1; step <= 3; step++) {
        ref->i->adam_update(ref, w.r, g.r, m.r, v.r, n, 1e-3f, 0.9f, 0.999f, 1e-8f, step);
        dut->i->adam_update(dut, w.d, g.d, m.d, v.d, n, 1e-3f, 0.9f, 0.999f, 1e-8f, step);
    }
    check("adam_update w (3 steps)", &w, 1e-6, 1e-5);
    check("adam_update m", &m, 1e-7, 1e-5);
    check("adam_update v", &v, 1e-8, 1e-5);
    pair_free(&w); pair_free(&g); pair_free(&m); pair_free(&v);
}

/* The device's reductions run in a fixed order: the same call twice gives
 * bitwise the same result. */
static void test_determinism(void)
{
    open_backends();
    const int rows = 64, cols = 1024;
    const size_t n = (size_t)rows * cols;
    pair x = rnd(n), dy = rnd(n), g = rnd(cols), b = rnd(cols), y = rnd(n);
    pair mean = rnd(rows), rstd = rnd(rows), dx = rnd(n), dg = pair_new(cols, 0, 0, 1),
         db = pair_new(cols, 0, 0, 1), cs = rnd(cols);
    float *first = malloc((2 * n + 2 * (size_t)cols) * sizeof *first);
    float *again = malloc((2 * n + 2 * (size_t)cols) * sizeof *again);
    float *outs[2] = {first, again};
    for (int rep = 0; rep < 2; rep++) {
        float *o = outs[rep];
        dut->i->zero(dut, dg.d, cols * sizeof(float));
        dut->i->layernorm_fwd(dut, y.d, mean.d, rstd.d, x.d, g.d, b.d, rows, cols, 1e-5f);
        dut->i->layernorm_bwd(dut, dx.d, dg.d, db.d, dy.d, x.d, mean.d,
                              rstd.d, g.d, rows, cols);
        dut->i->col_sum(dut, cs.d, dy.d, rows, cols, 0.0f);
        dut->i->gemm(dut, 0, 0, rows, cols, cols / 16, 1.0f, x.d, cols, dy.d, cols, 0.0f, dx.d, cols);
        sync_both();
        dut->i->download(dut, o, y.d, n * sizeof(float));
        dut->i->download(dut, o + n, dx.d, n * sizeof(float));
        dut->i->download(dut, o + 2 * n, dg.d, cols * sizeof(float));
        dut->i->download(dut, o + 2 * n + cols, cs.d, cols * sizeof(float));
    }
    int same = !memcmp(first, again, (2 * n + 2 * (size_t)cols) * sizeof(float));
    printf("  repeat run bitwise identical: %s\n", same ? "yes" : "NO");
    CU_ASSERT_TRUE(same);
    free(first);
    free(again);
    pair_free(&x); pair_free(&dy); pair_free(&g); pair_free(&b); pair_free(&y); pair_free(&mean);
    pair_free(&rstd); pair_free(&dx); pair_free(&dg); pair_free(&db); pair_free(&cs);
}

/* ---------------------------------------------------------------- layers */

/* One layer built on both backends with the same parameters: forward
 * output, input gradient, weight gradients and an Adam step compared.
 * Tolerances scale with the per-token width (the sums a value goes through). */
static void layer_check(const mp_model_layer *spec, int b)
{
    mp_layer lr, ld;
    mp_error err = {0};
    memset(&lr, 0, sizeof lr);
    memset(&ld, 0, sizeof ld);
    CU_ASSERT_EQUAL_FATAL(mp_layer_init(&lr, ref, spec, b, 42, &err), MP_OK);
    if (mp_layer_init(&ld, dut, spec, b, 42, &err) != MP_OK) {
        printf("  layer init failed: %s\n", err.msg);
        mp_layer_free(&lr, ref);
        CU_FAIL("layer init on the device");
        return;
    }
    CU_ASSERT_EQUAL(lr.nparams, ld.nparams);
    float *hp = malloc((lr.nparams + 1) * sizeof *hp), *hq = malloc((lr.nparams + 1) * sizeof *hq);
    if (lr.nparams) {   /* the same parameters on both sides (gamma, beta perturbed too) */
        for (size_t i = 0; i < lr.nparams; i++) hp[i] = 0.5f * frand();
        mp_layer_set_params(&lr, ref, hp);
        mp_layer_set_params(&ld, dut, hp);
    }
    int in = spec->in_dim, out = spec->out_dim, hidden = spec->hidden;
    int win = lr.din + (spec->type == MP_LAYER_ATTENTION ? 3 * lr.din + lr.tokens : 0);   /* sums per value */
    size_t sb = mp_layer_stash_bytes_per_sample(&lr) * (size_t)b;
    CU_ASSERT_EQUAL(sb, mp_layer_stash_bytes_per_sample(&ld) * (size_t)b);
    pair x = spec->type == MP_LAYER_EMBEDDING ? token_pair((size_t)b * in, spec->vocab) : rnd((size_t)b * in);
    pair y = rnd((size_t)b * out), dy = rnd((size_t)b * out);
    pair dx = rnd((size_t)b * in), st = pair_new(sb / sizeof(float) + 1, 0, 0, 1);
    char name[96];
    const char *tn = mp_layer_type_name(spec->type);

    CU_ASSERT_EQUAL(mp_layer_forward(&lr, ref, b, x.r, y.r, st.r, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_layer_forward(&ld, dut, b, x.d, y.d, st.d, &err), MP_OK);
    snprintf(name, sizeof name, "%s %d->%d fwd b=%d", tn, in, out, b);
    check(name, &y, 1e-5 * (win + hidden + 1), 1e-4);

    CU_ASSERT_EQUAL(mp_layer_backward(&lr, ref, b, dy.r, dx.r, st.r, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_layer_backward(&ld, dut, b, dy.d, dx.d, st.d, &err), MP_OK);
    snprintf(name, sizeof name, "%s bwd dx", tn);
    check(name, &dx, 1e-5 * (lr.dout + win + hidden + 1), 1e-4);
    {   /* the split backward on the device: B then W bitwise its fused backward */
        mp_layer l2;
        CU_ASSERT_EQUAL_FATAL(mp_layer_init(&l2, dut, spec, b, 42, &err), MP_OK);
        if (lr.nparams) mp_layer_set_params(&l2, dut, hp);
        size_t wb = mp_layer_wstash_bytes_per_sample(&l2) * (size_t)b, nx = (size_t)b * in * sizeof(float);
        float *st2 = dut->i->alloc(dut, sb + 4), *wst = dut->i->alloc(dut, wb + 4), *dx2 = dut->i->alloc(dut, nx),
              *y2 = dut->i->alloc(dut, (size_t)b * out * sizeof(float));
        CU_ASSERT_EQUAL(mp_layer_forward(&l2, dut, b, x.d, y2, st2, &err), MP_OK);
        CU_ASSERT_EQUAL(mp_layer_backward_input(&l2, dut, b, dy.d, dx2, st2, wst, &err), MP_OK);
        CU_ASSERT_EQUAL(mp_layer_backward_weight(&l2, dut, b, st2, wst, &err), MP_OK);
        sync_both();
        float *a = malloc(nx + (lr.nparams + 1) * sizeof(float)), *c = malloc(nx + (lr.nparams + 1) * sizeof(float));
        dut->i->download(dut, a, dx.d, nx);
        dut->i->download(dut, c, dx2, nx);
        CU_ASSERT(memcmp(a, c, nx) == 0);
        mp_layer_get_grads(&ld, dut, a);
        mp_layer_get_grads(&l2, dut, c);
        CU_ASSERT(memcmp(a, c, lr.nparams * sizeof(float)) == 0);
        free(a);
        free(c);
        dut->i->free(dut, st2); dut->i->free(dut, wst); dut->i->free(dut, dx2); dut->i->free(dut, y2);
        mp_layer_free(&l2, dut);
    }
    if (lr.nparams) {
        sync_both();
        mp_layer_get_grads(&lr, ref, hp);
        mp_layer_get_grads(&ld, dut, hq);
        snprintf(name, sizeof name, "%s bwd dW (%zu params)", tn, lr.nparams);
        check_host(name, hp, hq, lr.nparams, 1e-5 * (b * lr.tokens + 1) * (hidden || spec->heads ? 4 : 1), 1e-4);

        mp_optim opt = {MP_OPTIM_ADAM, 1e-3f, 0.9f, 0.999f, 1e-8f, 1};
        CU_ASSERT_EQUAL(mp_layer_update(&lr, ref, &opt, &err), MP_OK);
        CU_ASSERT_EQUAL(mp_layer_update(&ld, dut, &opt, &err), MP_OK);
        sync_both();
        mp_layer_get_params(&lr, ref, hp);
        mp_layer_get_params(&ld, dut, hq);
        snprintf(name, sizeof name, "%s adam step params", tn);
        /* Adam's first step moves each weight by ~lr*sign(g): a tiny gradient
         * difference near zero may flip it, so allow one step of lr */
        check_host(name, hp, hq, lr.nparams, 2.1e-3, 1e-4);
    }
    free(hp);
    free(hq);
    pair_free(&x); pair_free(&y); pair_free(&dy); pair_free(&dx); pair_free(&st);
    mp_layer_free(&lr, ref);
    mp_layer_free(&ld, dut);
}

/* A spec of this type named after it, one row per sample (the caller fills the rest). */
static mp_model_layer spec_of(mp_layer_type type)
{
    mp_model_layer spec = {0};
    spec.name = (char *)mp_layer_type_name(type);   /* read only */
    spec.type = type;
    spec.tokens = 1;
    return spec;
}

static void layer_case(mp_layer_type type, int in, int out, int hidden, int bias, int b)
{
    mp_model_layer spec = spec_of(type);
    spec.in_dim = in;
    spec.out_dim = out;
    spec.hidden = hidden;
    spec.bias = bias;
    switch (type) {
    case MP_LAYER_LINEAR: spec.param_count = (long long)in * out + (bias ? out : 0); break;
    case MP_LAYER_LAYERNORM: spec.param_count = 2LL * in; break;
    case MP_LAYER_RESIDUAL_MLP: spec.param_count = 2LL * in + 2LL * hidden * in + hidden + in; break;
    default: spec.param_count = 0;
    }
    layer_check(&spec, b);
}

/* embedding (vocab > 0: width d from ids) or attention (heads > 0) on seq tokens */
static void token_layer_case(mp_layer_type type, int vocab, int seq, int d, int heads, int causal, int b)
{
    mp_model_layer spec = spec_of(type);
    spec.tokens = seq;
    spec.out_dim = seq * d;
    if (type == MP_LAYER_EMBEDDING) {
        spec.in_dim = seq;
        spec.vocab = vocab;
        spec.param_count = ((long long)vocab + seq) * d;
    } else {
        spec.in_dim = seq * d;
        spec.heads = heads;
        spec.causal = causal;
        spec.param_count = 4LL * d * d + 6LL * d;
    }
    layer_check(&spec, b);
}

static void test_layers(void)
{
    open_backends();
    layer_case(MP_LAYER_LINEAR, 96, 40, 0, 1, 8);
    layer_case(MP_LAYER_LINEAR, 33, 17, 0, 0, 3);
    layer_case(MP_LAYER_RELU, 300, 300, 0, 0, 5);
    layer_case(MP_LAYER_GELU, 300, 300, 0, 0, 5);
    layer_case(MP_LAYER_LAYERNORM, 300, 300, 0, 0, 6);
    layer_case(MP_LAYER_RESIDUAL_MLP, 128, 128, 256, 0, 4);
    layer_case(MP_LAYER_RESIDUAL_MLP, 512, 512, 2048, 0, 3);
    token_layer_case(MP_LAYER_EMBEDDING, 1000, 64, 96, 0, 0, 3);
    token_layer_case(MP_LAYER_EMBEDDING, 50257, 128, 300, 0, 0, 2);
    token_layer_case(MP_LAYER_ATTENTION, 0, 64, 128, 4, 1, 3);
    token_layer_case(MP_LAYER_ATTENTION, 0, 37, 96, 3, 0, 2);
    token_layer_case(MP_LAYER_ATTENTION, 0, 256, 256, 8, 1, 2);
}

/* ---------------------------------------------------------------- runtime on the GPU */

static const char *RT_MODEL =
    "{\"format\": \"mpkit-model/1\", \"name\": \"g\", \"input_dim\": 16, \"layers\": ["
    "{\"type\": \"linear\", \"out\": 32}, {\"type\": \"gelu\"},"
    "{\"repeat\": 2, \"layers\": [{\"type\": \"residual_mlp\", \"hidden\": 64}]},"
    "{\"type\": \"layernorm\"}, {\"type\": \"linear\", \"out\": 3}], \"loss\": \"mse\"}";

/* Runs `steps` steps of a plan with stages split at `split` (0: one stage;
 * stage devices 0 and dev1) on `backend`. */
static mp_status rt_run(const mp_model *m, const char *backend, int split, int dev1, const char *map, int steps,
                        mp_run_result *res, mp_error *err)
{
    char text[1024];
    if (split)
        snprintf(text, sizeof text, "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"1f1b\","
                 "\"chunks_per_device\":1,\"global_batch\":32,\"microbatch_size\":8,\"stages\":["
                 "{\"layers\":[0,%d],\"device\":0},{\"layers\":[%d,%d],\"device\":%d,\"recompute\":true}]}",
                 split - 1, split, m->num_layers - 1, dev1);
    else
        snprintf(text, sizeof text, "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"1f1b\","
                 "\"chunks_per_device\":1,\"global_batch\":32,\"microbatch_size\":8,\"stages\":["
                 "{\"layers\":[0,%d],\"device\":0}]}", m->num_layers - 1);
    mp_plan p;
    mp_error_clear(err);
    mp_status st = mp_plan_parse(text, strlen(text), "gpu-plan", &p, err);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    mp_run_config c;
    mp_run_config_default(&c);
    c.plan = &p;
    c.model = m;
    c.backend = backend;
    c.steps = steps;
    c.seed = 4;
    c.optimizer = MP_OPT_ADAM;
    c.lr = 0.003f;
    c.pin = 0;
    c.print_loss = 0;
    c.timeout_s = 60;
    c.gpu_map = map;
    st = mp_run(&c, res, err);
    mp_plan_free(&p);
    return st;
}

static void test_runtime_gpu(void)
{
    open_backends();
    mp_model m;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_model_parse(RT_MODEL, strlen(RT_MODEL), "gpu-model", &m, &err), MP_OK);
    mp_run_result cpu, g1, g2;
    const int steps = 6;
    if (self_check) {
        /* no GPU: refused before any work, with the reason */
        mp_status st = rt_run(&m, "cuda", 3, 1, NULL, steps, &g1, &err);
        CU_ASSERT_EQUAL(st, MP_ERR_BACKEND);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, mp_backend_available("cuda") ? "no CUDA device available"
                                                                             : "not compiled into this build"));
        printf("  runtime on cuda: refused without a GPU: %s\n", err.msg);
        mp_model_free(&m);
        return;
    }
    CU_ASSERT_EQUAL_FATAL(rt_run(&m, "cpu", 3, 1, NULL, steps, &cpu, &err), MP_OK);
    mp_status st = rt_run(&m, "cuda", 0, 0, NULL, steps, &g1, &err);
    if (st != MP_OK) fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    st = rt_run(&m, "cuda", 3, 1, "0,0", steps, &g2, &err);   /* both stages on GPU 0 */
    if (st != MP_OK) fprintf(stderr, "%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    CU_ASSERT_STRING_EQUAL(g2.transport, "threads");
    double max_cpu = 0, max_split = 0;
    for (int k = 0; k < steps; k++) {
        double d = fabs(g2.loss[k] - cpu.loss[k]) / (fabs(cpu.loss[k]) + 1e-12);
        double e = fabs(g2.loss[k] - g1.loss[k]) / (fabs(g1.loss[k]) + 1e-12);
        if (d > max_cpu) max_cpu = d;
        if (e > max_split) max_split = e;
        printf("  step %d loss cpu %.7f  cuda 1-stage %.7f  cuda 2-stage %.7f\n", k + 1, cpu.loss[k], g1.loss[k], g2.loss[k]);
    }
    printf("  runtime: max rel loss diff cuda-vs-cpu %.2e (tol 1e-3), 2-stage-vs-1-stage on GPU %.2e (tol 1e-5); "
           "checksums %s\n", max_cpu, max_split, strcmp(g1.checksum, g2.checksum) ? "differ" : "bitwise equal");
    CU_ASSERT(max_cpu <= 1e-3);
    CU_ASSERT(max_split <= 1e-5);
    CU_ASSERT(g2.loss[steps - 1] < g2.loss[0]);
    CU_ASSERT(g2.peak_bytes[0] > 0 && g2.peak_bytes[1] > 0);
    mp_run_result_free(&cpu);
    mp_run_result_free(&g1);
    mp_run_result_free(&g2);
    /* a GPU that does not exist, and a malformed map: before any work */
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(rt_run(&m, "cuda", 3, 4095, NULL, steps, &g1, &err), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stage 1: device 4095 but only"));
    printf("  runtime: %s\n", err.msg);
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(rt_run(&m, "cuda", 3, 1, "0,x", steps, &g1, &err), MP_ERR_USAGE);
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(rt_run(&m, "cuda", 3, 1, "0", steps, &g1, &err), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no entry in the GPU map"));
    mp_model_free(&m);
}

static void test_close(void)
{
    open_backends();
    if (self_check) printf("skipped: %s\n", skip_reason);
    mp_backend_close(dut);
    mp_backend_close(ref);
    dut = ref = NULL;
    CU_PASS("closed");
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_open),       MP_TEST(test_memory),     MP_TEST(test_gemm),
        MP_TEST(test_elementwise), MP_TEST(test_layernorm), MP_TEST(test_attention_primitives),
        MP_TEST(test_losses),
        MP_TEST(test_optimizers), MP_TEST(test_determinism), MP_TEST(test_layers),
        MP_TEST(test_runtime_gpu), MP_TEST(test_close),
    };
    return mp_test_main("backend_cuda", cases, (int)(sizeof cases / sizeof cases[0]));
}
