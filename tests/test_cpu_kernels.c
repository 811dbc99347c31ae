/* test_cpu_kernels.c — the CPU backend's fast paths: the branchless exp/tanh
 * (accuracy, clamps), the one-pass cross-entropy against a double reference,
 * results that do not depend on where a buffer starts (vectorised loops and
 * their scalar remainders agree bitwise), and the OpenBLAS kernel choice. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "blas_core.h"
#include "cpu_math.h"
#include "testutil.h"

char *openblas_get_corename(void);

static float ulp_of(double v)
{
    float f = (float)fabs(v);
    return nextafterf(f, INFINITY) - f;
}

static void test_exp_tanh_accuracy(void)
{
    double worst_ulp = 0, worst_tanh = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.00137f) {
        double e = exp((double)x);
        double u = fabs((double)mp_cpu_expf(x) - e) / ulp_of(e);
        if (u > worst_ulp) worst_ulp = u;
    }
    for (float z = -30.0f; z < 30.0f; z += 0.00031f) {
        double d = fabs((double)mp_cpu_tanhf(z) - tanh((double)z));
        if (d > worst_tanh) worst_tanh = d;
    }
    CU_ASSERT(worst_ulp <= 2.0);
    CU_ASSERT(worst_tanh <= 2e-7);
    CU_ASSERT_DOUBLE_EQUAL(mp_cpu_expf(0.0f), 1.0, 0.0);
    CU_ASSERT(mp_cpu_expf(-1000.0f) >= 0 && mp_cpu_expf(-1000.0f) < 1e-37f);   /* clamped, never NaN */
    CU_ASSERT(isfinite(mp_cpu_expf(1000.0f)));
    CU_ASSERT(isnan(mp_cpu_expf(NAN)) && isnan(mp_cpu_tanhf(NAN)));   /* a diverged run stays visible */
    CU_ASSERT_DOUBLE_EQUAL(mp_cpu_tanhf(100.0f), 1.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(mp_cpu_tanhf(-100.0f), -1.0, 0.0);
}

static mp_backend *open_cpu(void)
{
    mp_backend *be = NULL;
    mp_error err;
    CU_ASSERT_EQUAL_FATAL(mp_backend_open("cpu", -1, &be, &err), MP_OK);
    return be;
}

static float *random_floats(size_t n, float amp, unsigned seed)
{
    float *p = malloc((n + 16) * sizeof *p);
    for (size_t i = 0; i < n + 16; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = amp * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
    return p;
}

/* Loss and gradient of the one-pass kernel against logsumexp in double. */
static void test_xent_against_double(void)
{
    mp_backend *be = open_cpu();
    const int rows = 7, classes = 5003;
    float *logits = random_floats((size_t)rows * classes, 30.0f, 11);
    float *d = calloc((size_t)rows * classes, sizeof *d);
    int labels[7] = {0, 5002, 17, 2500, 4999, 1, 333};
    float loss = 0, scale = 0.25f;
    be->i->xent_loss(be, d, &loss, logits, labels, rows, classes, scale);
    double total = 0, worst = 0;
    for (int r = 0; r < rows; r++) {
        const float *l = logits + (size_t)r * classes;
        double mx = l[0], s = 0, rowsum = 0;
        for (int c = 1; c < classes; c++) mx = l[c] > mx ? l[c] : mx;
        for (int c = 0; c < classes; c++) s += exp(l[c] - mx);
        double lse = mx + log(s);
        total += scale * (lse - l[labels[r]]);
        for (int c = 0; c < classes; c++) {
            double want = scale * (exp(l[c] - lse) - (c == labels[r]));
            double err = fabs(d[(size_t)r * classes + c] - want);
            if (err > worst) worst = err;
            rowsum += d[(size_t)r * classes + c];
        }
        CU_ASSERT(fabs(rowsum) < 1e-5);   /* softmax minus one-hot sums to 0 */
    }
    CU_ASSERT(fabs(loss - total) <= 1e-5 * fabs(total));
    CU_ASSERT(worst < 1e-7);
    free(logits);
    free(d);
    mp_backend_close(be);
}

/* The same values at every offset of a buffer: a vectorised loop's peeled
 * and remainder elements (scalar code) equal its vector body bitwise. */
static void test_alignment_independent(void)
{
    mp_backend *be = open_cpu();
    const size_t n = 1031;
    float *x = random_floats(n, 12.0f, 5), *dy = random_floats(n, 2.0f, 6);
    float *ref = calloc(n + 16, sizeof *ref), *got = calloc(n + 16, sizeof *got);
    float *refb = calloc(n + 16, sizeof *refb), *gotb = calloc(n + 16, sizeof *gotb);
    float *xs = calloc(n + 16, sizeof *xs), *dys = calloc(n + 16, sizeof *dys);
    be->i->gelu_fwd(be, ref, x, n);
    be->i->gelu_bwd(be, refb, dy, x, n);
    int same = 1;
    for (int off = 1; off < 16; off++) {
        memcpy(xs + off, x, n * sizeof *x);
        memcpy(dys + off, dy, n * sizeof *dy);
        be->i->gelu_fwd(be, got + off, xs + off, n);
        be->i->gelu_bwd(be, gotb + off, dys + off, xs + off, n);
        same &= memcmp(got + off, ref, n * sizeof *ref) == 0 && memcmp(gotb + off, refb, n * sizeof *refb) == 0;
    }
    CU_ASSERT(same);
    /* causal softmax: row r keeps r % cols + 1 columns, so every remainder length occurs */
    const int cols = 37, rows = 2 * cols;
    float *s = random_floats((size_t)rows * cols, 20.0f, 9), *p0 = calloc((size_t)rows * cols + 16, sizeof *p0);
    float *p1 = calloc((size_t)rows * cols + 16, sizeof *p1), *s1 = calloc((size_t)rows * cols + 16, sizeof *s1);
    be->i->softmax_fwd(be, p0, s, rows, cols, 1);
    memcpy(s1 + 3, s, (size_t)rows * cols * sizeof *s);
    be->i->softmax_fwd(be, p1 + 3, s1 + 3, rows, cols, 1);
    CU_ASSERT(memcmp(p0, p1 + 3, (size_t)rows * cols * sizeof *p0) == 0);
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        int k = r % cols + 1;
        double mx = s[(size_t)r * cols], sum = 0;
        for (int j = 1; j < k; j++) mx = fmax(mx, s[(size_t)r * cols + j]);
        for (int j = 0; j < k; j++) sum += exp(s[(size_t)r * cols + j] - mx);
        for (int j = 0; j < cols; j++) {
            double want = j < k ? exp(s[(size_t)r * cols + j] - mx) / sum : 0;
            worst = fmax(worst, fabs(p0[(size_t)r * cols + j] - want));
        }
    }
    CU_ASSERT(worst < 1e-6);
    free(x); free(dy); free(ref); free(got); free(refb); free(gotb); free(xs); free(dys);
    free(s); free(p0); free(p1); free(s1);
    mp_backend_close(be);
}

/* After the CPU backend opened, OpenBLAS runs no generic fallback core on a
 * CPU with AVX (unless the user chose one with OPENBLAS_CORETYPE). */
static void test_blas_core(void)
{
    int user_choice = getenv("OPENBLAS_CORETYPE") != NULL;
    mp_backend *be = open_cpu();
    const char *core = openblas_get_corename();
    CU_ASSERT_PTR_NOT_NULL_FATAL(core);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!user_choice && __builtin_cpu_supports("avx")) {
        CU_ASSERT(strcmp(core, "Prescott") != 0 && strcmp(core, "Core2") != 0 && strcmp(core, "Nehalem") != 0);
        if (strcmp(core, "Prescott") == 0) fprintf(stderr, "OpenBLAS still on %s\n", core);
    }
#endif
    mp_blas_core_select();   /* idempotent */
    CU_ASSERT_STRING_EQUAL(openblas_get_corename(), core);
    char buf[512];
    mp_backend_describe(be, buf, sizeof buf);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, core));
    mp_backend_close(be);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_exp_tanh_accuracy),
        MP_TEST(test_xent_against_double),
        MP_TEST(test_alignment_independent),
        MP_TEST(test_blas_core),
    };
    return mp_test_main("cpu_kernels", cases, sizeof cases / sizeof cases[0]);
}
