/* backend_cpu.c — the CPU backend: OpenBLAS cblas_sgemm for GEMMs, plain C
 * loops for everything else. The reference every other backend is tested
 * against: single-threaded, fixed summation orders, so the same inputs give
 * bitwise the same outputs. */
#include "backend_impl.h"
#include "blas_core.h"
#include "cpu_math.h"
#include "machine.h"

#include <cblas.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS extensions (not in every cblas.h). */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);

#define ALIGN 64   /* allocation header size; keeps data 64-byte aligned */

typedef struct {
    size_t used;   /* bytes currently allocated through this backend */
} cpu_ctx;

/* ---------------------------------------------------------------- lifecycle */

static mp_status cpu_init(mp_backend *be, int device, mp_error *err)
{
    mp_blas_core_select();
    openblas_set_num_threads(1);
    if (device >= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (device >= ncpu || device >= CPU_SETSIZE)
            return mp_error_set(err, MP_ERR_BACKEND, "backend 'cpu': no core %d (this machine has %ld)", device, ncpu);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(device, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            return mp_error_set(err, MP_ERR_BACKEND, "backend 'cpu': cannot pin the thread to core %d", device);
    }
    be->ctx = calloc(1, sizeof(cpu_ctx));
    if (!be->ctx) return mp_error_set(err, MP_ERR_NOMEM, "backend 'cpu': out of memory");
    return MP_OK;
}

static void cpu_shutdown(mp_backend *be)
{
    free(be->ctx);
    be->ctx = NULL;
}

static void cpu_describe(mp_backend *be, char *buf, size_t n)
{
    char core[32];
    if (be->device >= 0) snprintf(core, sizeof core, "core %d", be->device);
    else snprintf(core, sizeof core, "unpinned");
    snprintf(buf, n, "cpu: %s, %s, %s (1 thread)%s", mp_machine_cpu_model(), core, openblas_get_config(),
             mp_blas_core_note());
}

/* ---------------------------------------------------------------- memory */

static void *cpu_alloc(mp_backend *be, size_t bytes)
{
    size_t total = ALIGN + ((bytes + ALIGN - 1) / ALIGN) * ALIGN;
    char *p = aligned_alloc(ALIGN, total);
    if (!p) return NULL;
    memset(p, 0, total);
    *(size_t *)p = bytes;
    ((cpu_ctx *)be->ctx)->used += bytes;
    return p + ALIGN;
}

static void cpu_free(mp_backend *be, void *p)
{
    if (!p) return;
    char *base = (char *)p - ALIGN;
    ((cpu_ctx *)be->ctx)->used -= *(size_t *)base;
    free(base);
}

static void cpu_copy(mp_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes) memmove(dst, src, bytes);
}

static void cpu_zero(mp_backend *be, void *p, size_t bytes)
{
    if (bytes) memset(p, 0, bytes);
}

static size_t cpu_mem_used(mp_backend *be)
{
    return ((cpu_ctx *)be->ctx)->used;
}

/* ---------------------------------------------------------------- linear algebra */

static void cpu_gemm(mp_backend *be, int trans_a, int trans_b, int M, int N, int K,
                     float alpha, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                beta, C, ldc);
}

static void cpu_gemm_batched(mp_backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                             const float *A, int lda, long long stride_a, const float *B, int ldb,
                             long long stride_b, float beta, float *C, int ldc, long long stride_c,
                             int batch)
{
    for (int i = 0; i < batch; i++)
        cpu_gemm(be, trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb,
                 beta, C + i * stride_c, ldc);
}

static void cpu_add_bias(mp_backend *be, float *y, const float *bias, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] += bias[c];
}

static void cpu_col_sum(mp_backend *be, float *out, const float *x, int rows, int cols, float beta)
{
    for (int c = 0; c < cols; c++) out[c] = beta == 0 ? 0 : beta * out[c];
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) out[c] += x[(size_t)r * cols + c];
}

static void cpu_axpy(mp_backend *be, float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---------------------------------------------------------------- activations */

static void cpu_relu_fwd(mp_backend *be, float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

static void cpu_relu_bwd(mp_backend *be, float *dx, const float *dy, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
}

#define GELU_K 0.7978845608028654f   /* sqrt(2/pi) */
#define GELU_C 0.044715f

MP_CPU_CLONES static void cpu_gelu_fwd(mp_backend *be, float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + mp_cpu_tanhf(GELU_K * (v + GELU_C * v * v * v)));
    }
}

MP_CPU_CLONES static void cpu_gelu_bwd(mp_backend *be, float *dx, const float *dy, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float t = mp_cpu_tanhf(GELU_K * (v + GELU_C * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * v * v);
        dx[i] = dy[i] * d;
    }
}

/* ---------------------------------------------------------------- reductions */

/* Sum and max of x[0..n-1] in eight lanes (lane k takes the elements j with
 * j % 8 == k of the first n - n % 8), combined in a fixed order, then the
 * rest: independent chains that vectorise, and a result that depends only on
 * the values, never on the buffer's address. */
static double row_sum(const float *x, int n)
{
    double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) p[k] += x[j + k];
    double s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; j < n; j++) s += x[j];
    return s;
}

/* sum_j x[j] * y[j] in the lanes of row_sum. */
static double row_dot(const float *x, const float *y, int n)
{
    double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) p[k] += (double)x[j + k] * y[j + k];
    double s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; j < n; j++) s += (double)x[j] * y[j];
    return s;
}

/* sum_j (x[j] - mu)^2 in the lanes of row_sum. */
static double row_sq_dev(const float *x, double mu, int n)
{
    double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) p[k] += (x[j + k] - mu) * (x[j + k] - mu);
    double s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; j < n; j++) s += (x[j] - mu) * (x[j] - mu);
    return s;
}

static float row_max(const float *x, int n)
{
    float p[8];
    int j = 0;
    for (int k = 0; k < 8; k++) p[k] = x[0];
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) p[k] = x[j + k] > p[k] ? x[j + k] : p[k];
    float m = p[0];
    for (int k = 1; k < 8; k++) m = p[k] > m ? p[k] : m;
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

MP_CPU_CLONES static void cpu_layernorm_fwd(mp_backend *be, float *y, float *mean, float *rstd, const float *x,
                              const float *gamma, const float *beta, int rows, int cols, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        double mu = row_sum(xr, cols) / cols, ss = row_sq_dev(xr, mu, cols);
        float m = (float)mu, rs = (float)(1.0 / sqrt(ss / cols + eps));
        for (int c = 0; c < cols; c++) yr[c] = (xr[c] - m) * rs * gamma[c] + beta[c];
        mean[r] = m;
        rstd[r] = rs;
    }
}

MP_CPU_CLONES static void cpu_layernorm_bwd(mp_backend *be, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *mean, const float *rstd,
                              const float *gamma, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
        float *dxr = dx + (size_t)r * cols;
        float m = mean[r], rs = rstd[r];
        /* sum dxhat and sum dxhat*xhat in the lanes of row_sum (dx may be dy: written last) */
        double p[8] = {0, 0, 0, 0, 0, 0, 0, 0}, q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            for (int k = 0; k < 8; k++) {
                float xh = (xr[c + k] - m) * rs, dxh = dyr[c + k] * gamma[c + k];
                p[k] += dxh;
                q[k] += dxh * xh;
            }
        double sd = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        double sdx = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
        for (; c < cols; c++) {
            float xh = (xr[c] - m) * rs, dxh = dyr[c] * gamma[c];
            sd += dxh;
            sdx += dxh * xh;
        }
        for (int k = 0; k < cols; k++) {
            float xh = (xr[k] - m) * rs;
            dgamma[k] += dyr[k] * xh;
            dbeta[k] += dyr[k];
        }
        float md = (float)(sd / cols), mdx = (float)(sdx / cols);
        for (int k = 0; k < cols; k++) {
            float xh = (xr[k] - m) * rs;
            dxr[k] = rs * (dyr[k] * gamma[k] - md - xh * mdx);
        }
    }
}

/* ---------------------------------------------------------------- attention */

/* Columns of row r that a softmax keeps. */
static int kept(int r, int cols, int causal) { return causal ? r % cols + 1 : cols; }

MP_CPU_CLONES static void cpu_softmax_fwd(mp_backend *be, float *y, const float *x, int rows, int cols, int causal)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        int n = kept(r, cols, causal);
        float mx = row_max(xr, n);
        for (int j = 0; j < n; j++) yr[j] = mp_cpu_expf(xr[j] - mx);
        double s = row_sum(yr, n);
        float inv = (float)(1.0 / s);
        for (int j = 0; j < n; j++) yr[j] *= inv;
        for (int j = n; j < cols; j++) yr[j] = 0;
    }
}

MP_CPU_CLONES static void cpu_softmax_bwd(mp_backend *be, float *dx, const float *dy, const float *y, int rows,
                            int cols, int causal)
{
    for (int r = 0; r < rows; r++) {
        const float *dyr = dy + (size_t)r * cols, *yr = y + (size_t)r * cols;
        float *dxr = dx + (size_t)r * cols;
        int n = kept(r, cols, causal);
        float fs = (float)row_dot(yr, dyr, n);
        for (int j = 0; j < n; j++) dxr[j] = yr[j] * (dyr[j] - fs);
        for (int j = n; j < cols; j++) dxr[j] = 0;
    }
}

/* ---------------------------------------------------------------- embedding */

static void cpu_embedding_fwd(mp_backend *be, float *y, const float *ids, const float *table,
                              const float *pos, int b, int seq, int dim, int vocab)
{
    for (int r = 0; r < b * seq; r++) {
        const float *e = table + mp_token_row(ids[r], vocab) * dim, *p = pos + (size_t)(r % seq) * dim;
        float *yr = y + (size_t)r * dim;
        for (int c = 0; c < dim; c++) yr[c] = e[c] + p[c];
    }
}

static void cpu_embedding_bwd(mp_backend *be, float *dtable, float *dpos, const float *dy,
                              const float *ids, int b, int seq, int dim, int vocab)
{
    for (int r = 0; r < b * seq; r++) {
        float *de = dtable + mp_token_row(ids[r], vocab) * dim, *dp = dpos + (size_t)(r % seq) * dim;
        const float *g = dy + (size_t)r * dim;
        for (int c = 0; c < dim; c++) de[c] += g[c];
        for (int c = 0; c < dim; c++) dp[c] += g[c];
    }
}

/* ---------------------------------------------------------------- losses */

static void cpu_mse_loss(mp_backend *be, float *dpred, float *loss_out, const float *pred,
                         const float *target, int rows, int cols, float scale)
{
    double total = 0;
    for (int r = 0; r < rows; r++) {
        double row = 0;
        for (int c = 0; c < cols; c++) {
            size_t k = (size_t)r * cols + c;
            float d = pred[k] - target[k];
            row += (double)d * d;
            dpred[k] = scale * 2.0f * d / cols;
        }
        total += (float)(scale * (row / cols));
    }
    *loss_out = (float)total;
}

/* One exp per logit: e = exp(l - max) goes into dlogits while its sum is
 * taken (double), then dlogits = scale * (e / sum - onehot). */
MP_CPU_CLONES static void cpu_xent_loss(mp_backend *be, float *dlogits, float *loss_out, const float *logits,
                          const int *labels, int rows, int classes, float scale)
{
    double total = 0;
    for (int r = 0; r < rows; r++) {
        const float *lr = logits + (size_t)r * classes;
        float *dr = dlogits + (size_t)r * classes;
        float mx = row_max(lr, classes);
        for (int c = 0; c < classes; c++) dr[c] = mp_cpu_expf(lr[c] - mx);
        double s = row_sum(dr, classes);
        int y = labels[r];
        if (y < 0 || y >= classes) y = 0;   /* callers validate labels; never read out of bounds */
        float inv = (float)(scale / s);
        for (int c = 0; c < classes; c++) dr[c] *= inv;
        dr[y] -= scale;
        total += (float)(scale * (mx + log(s) - lr[y]));
    }
    *loss_out = (float)total;
}

/* ---------------------------------------------------------------- optimizers */

static void cpu_sgd_update(mp_backend *be, float *w, const float *g, size_t n, float lr)
{
    for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
}

static void cpu_adam_update(mp_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                            float lr, float beta1, float beta2, float eps, int step)
{
    float c1 = 1.0f - powf(beta1, (float)step), c2 = 1.0f - powf(beta2, (float)step);
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

static mp_status cpu_sync(mp_backend *be, mp_error *err)
{
    return MP_OK;
}

const mp_backend_i mp_backend_cpu_i = {
    .name = "cpu",
    .init = cpu_init,
    .shutdown = cpu_shutdown,
    .describe = cpu_describe,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .mem_used = cpu_mem_used,
    .gemm = cpu_gemm,
    .gemm_batched = cpu_gemm_batched,
    .add_bias = cpu_add_bias,
    .col_sum = cpu_col_sum,
    .axpy = cpu_axpy,
    .relu_fwd = cpu_relu_fwd,
    .relu_bwd = cpu_relu_bwd,
    .gelu_fwd = cpu_gelu_fwd,
    .gelu_bwd = cpu_gelu_bwd,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .softmax_fwd = cpu_softmax_fwd,
    .softmax_bwd = cpu_softmax_bwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .mse_loss = cpu_mse_loss,
    .xent_loss = cpu_xent_loss,
    .sgd_update = cpu_sgd_update,
    .adam_update = cpu_adam_update,
    .sync = cpu_sync,
};
