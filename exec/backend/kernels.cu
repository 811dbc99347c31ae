/* kernels.cu — mpkit's CUDA kernels and their C launchers; see kernels_cuda.h.
 *
 * Elementwise kernels use a grid-stride loop. Per-row work (layernorm, losses)
 * runs one block of MP_BLOCK threads per row and reduces through shared memory
 * in a fixed tree, and per-column sums use one thread per column walking the
 * rows in order: no atomics anywhere, so every result is bitwise repeatable. */
#include "kernels_cuda.h"

#include <cuda_runtime.h>
#include <math.h>

#define MP_BLOCK 256
#define MP_MAX_GRID 4096

static cudaStream_t S(void *stream) { return (cudaStream_t)stream; }

static unsigned grid_for(size_t n)
{
    size_t g = (n + MP_BLOCK - 1) / MP_BLOCK;
    if (g < 1) g = 1;
    if (g > MP_MAX_GRID) g = MP_MAX_GRID;
    return (unsigned)g;
}

static int last_error(void) { return (int)cudaGetLastError(); }

/* ---------------------------------------------------------------- helpers */

/* Sum of `v` over the block in a fixed tree order; every thread gets the
 * result. `sh` holds MP_BLOCK floats. blockDim.x must be MP_BLOCK. */
__device__ static float block_sum(float v, float *sh)
{
    unsigned t = threadIdx.x;
    __syncthreads();              /* sh may still be read from a previous call */
    sh[t] = v;
    __syncthreads();
    for (unsigned s = MP_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    return sh[0];
}

__device__ static float block_max(float v, float *sh)
{
    unsigned t = threadIdx.x;
    __syncthreads();
    sh[t] = v;
    __syncthreads();
    for (unsigned s = MP_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = fmaxf(sh[t], sh[t + s]);
        __syncthreads();
    }
    return sh[0];
}

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)blockDim.x * gridDim.x)

/* ---------------------------------------------------------------- basic ops */

__global__ static void k_add_bias(float *y, const float *bias, int rows, int cols)
{
    size_t n = (size_t)rows * cols;
    GRID_STRIDE(i, n) y[i] += bias[i % (size_t)cols];
}

__global__ static void k_col_sum(float *out, const float *x, int rows, int cols, float beta)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += x[(size_t)r * cols + c];
    out[c] = (beta == 0.0f ? 0.0f : beta * out[c]) + s;
}

__global__ static void k_axpy(float *y, float a, const float *x, size_t n)
{
    GRID_STRIDE(i, n) y[i] += a * x[i];
}

__global__ static void k_fill(float *p, float value, size_t n)
{
    GRID_STRIDE(i, n) p[i] = value;
}

extern "C" int mp_cuda_add_bias(void *stream, float *y, const float *bias, int rows, int cols)
{
    size_t n = (size_t)rows * cols;
    if (n == 0) return 0;
    k_add_bias<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(y, bias, rows, cols);
    return last_error();
}

extern "C" int mp_cuda_col_sum(void *stream, float *out, const float *x, int rows, int cols, float beta)
{
    if (cols <= 0) return 0;
    k_col_sum<<<(cols + MP_BLOCK - 1) / MP_BLOCK, MP_BLOCK, 0, S(stream)>>>(out, x, rows, cols, beta);
    return last_error();
}

extern "C" int mp_cuda_axpy(void *stream, float *y, float a, const float *x, size_t n)
{
    if (n == 0) return 0;
    k_axpy<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(y, a, x, n);
    return last_error();
}

extern "C" int mp_cuda_fill(void *stream, float *p, float value, size_t n)
{
    if (n == 0) return 0;
    k_fill<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(p, value, n);
    return last_error();
}

/* ---------------------------------------------------------------- activations */

#define GELU_K 0.7978845608028654f   /* sqrt(2/pi) */
#define GELU_C 0.044715f

__global__ static void k_relu_fwd(float *y, const float *x, size_t n)
{
    GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ static void k_relu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
    GRID_STRIDE(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ static void k_gelu_fwd(float *y, const float *x, size_t n)
{
    GRID_STRIDE(i, n) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        y[i] = 0.5f * v * (1.0f + t);
    }
}

__global__ static void k_gelu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
    GRID_STRIDE(i, n) {
        float v = x[i];
        float t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        float dt = GELU_K * (1.0f + 3.0f * GELU_C * v * v);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
    }
}

extern "C" int mp_cuda_relu_fwd(void *stream, float *y, const float *x, size_t n)
{
    if (n == 0) return 0;
    k_relu_fwd<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(y, x, n);
    return last_error();
}

extern "C" int mp_cuda_relu_bwd(void *stream, float *dx, const float *dy, const float *x, size_t n)
{
    if (n == 0) return 0;
    k_relu_bwd<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(dx, dy, x, n);
    return last_error();
}

extern "C" int mp_cuda_gelu_fwd(void *stream, float *y, const float *x, size_t n)
{
    if (n == 0) return 0;
    k_gelu_fwd<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(y, x, n);
    return last_error();
}

extern "C" int mp_cuda_gelu_bwd(void *stream, float *dx, const float *dy, const float *x, size_t n)
{
    if (n == 0) return 0;
    k_gelu_bwd<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(dx, dy, x, n);
    return last_error();
}

/* ---------------------------------------------------------------- layernorm */

__global__ static void k_layernorm_fwd(float *y, float *mean, float *rstd, const float *x,
                                       const float *gamma, const float *beta, int cols, float eps)
{
    __shared__ float sh[MP_BLOCK];
    const float *xr = x + (size_t)blockIdx.x * cols;
    float *yr = y + (size_t)blockIdx.x * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) s += xr[c];
    float mu = block_sum(s, sh) / (float)cols;
    float q = 0.0f;
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) {
        float d = xr[c] - mu;
        q += d * d;
    }
    float var = block_sum(q, sh) / (float)cols;
    float rs = 1.0f / sqrtf(var + eps);
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK)
        yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = mu;
        rstd[blockIdx.x] = rs;
    }
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma */
__global__ static void k_layernorm_bwd_dx(float *dx, const float *dy, const float *x,
                                          const float *mean, const float *rstd,
                                          const float *gamma, int cols)
{
    __shared__ float sh[MP_BLOCK];
    size_t off = (size_t)blockIdx.x * cols;
    float mu = mean[blockIdx.x], rs = rstd[blockIdx.x];
    float sg = 0.0f, sgx = 0.0f;
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) {
        float g = dy[off + c] * gamma[c];
        float xh = (x[off + c] - mu) * rs;
        sg += g;
        sgx += g * xh;
    }
    float mg = block_sum(sg, sh) / (float)cols;
    float mgx = block_sum(sgx, sh) / (float)cols;
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) {
        float g = dy[off + c] * gamma[c];
        float xh = (x[off + c] - mu) * rs;
        dx[off + c] = rs * (g - mg - xh * mgx);
    }
}

__global__ static void k_layernorm_bwd_params(float *dgamma, float *dbeta, const float *dy,
                                              const float *x, const float *mean,
                                              const float *rstd, int rows, int cols)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float sg = 0.0f, sb = 0.0f;
    for (int r = 0; r < rows; r++) {
        size_t i = (size_t)r * cols + c;
        sg += dy[i] * (x[i] - mean[r]) * rstd[r];
        sb += dy[i];
    }
    dgamma[c] += sg;
    dbeta[c] += sb;
}

extern "C" int mp_cuda_layernorm_fwd(void *stream, float *y, float *mean, float *rstd, const float *x,
                                     const float *gamma, const float *beta, int rows, int cols, float eps)
{
    if (rows <= 0 || cols <= 0) return 0;
    k_layernorm_fwd<<<rows, MP_BLOCK, 0, S(stream)>>>(y, mean, rstd, x, gamma, beta, cols, eps);
    return last_error();
}

extern "C" int mp_cuda_layernorm_bwd(void *stream, float *dx, float *dgamma, float *dbeta,
                                     const float *dy, const float *x, const float *mean, const float *rstd,
                                     const float *gamma, int rows, int cols)
{
    if (rows <= 0 || cols <= 0) return 0;
    k_layernorm_bwd_dx<<<rows, MP_BLOCK, 0, S(stream)>>>(dx, dy, x, mean, rstd, gamma, cols);
    int e = last_error();
    if (e) return e;
    k_layernorm_bwd_params<<<(cols + MP_BLOCK - 1) / MP_BLOCK, MP_BLOCK, 0, S(stream)>>>(
        dgamma, dbeta, dy, x, mean, rstd, rows, cols);
    return last_error();
}

/* ---------------------------------------------------------------- attention */

/* Columns of row `r` a softmax keeps. */
__device__ static int kept_cols(unsigned r, int cols, int causal)
{
    return causal ? (int)(r % (unsigned)cols) + 1 : cols;
}

/* In place is safe: each thread reads x only at the columns it writes, and
 * block_sum's barriers separate the reads of the other passes from the writes. */
__global__ static void k_softmax_fwd(float *y, const float *x, int cols, int causal)
{
    __shared__ float sh[MP_BLOCK];
    size_t off = (size_t)blockIdx.x * cols;
    int n = kept_cols(blockIdx.x, cols, causal);
    float m = -INFINITY;
    for (int c = threadIdx.x; c < n; c += MP_BLOCK) m = fmaxf(m, x[off + c]);
    m = block_max(m, sh);
    float s = 0.0f;
    for (int c = threadIdx.x; c < n; c += MP_BLOCK) s += expf(x[off + c] - m);
    float inv = 1.0f / block_sum(s, sh);
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) y[off + c] = c < n ? expf(x[off + c] - m) * inv : 0.0f;
}

__global__ static void k_softmax_bwd(float *dx, const float *dy, const float *y, int cols, int causal)
{
    __shared__ float sh[MP_BLOCK];
    size_t off = (size_t)blockIdx.x * cols;
    int n = kept_cols(blockIdx.x, cols, causal);
    float s = 0.0f;
    for (int c = threadIdx.x; c < n; c += MP_BLOCK) s += y[off + c] * dy[off + c];
    s = block_sum(s, sh);
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) dx[off + c] = c < n ? y[off + c] * (dy[off + c] - s) : 0.0f;
}

extern "C" int mp_cuda_softmax_fwd(void *stream, float *y, const float *x, int rows, int cols, int causal)
{
    if (rows <= 0 || cols <= 0) return 0;
    k_softmax_fwd<<<rows, MP_BLOCK, 0, S(stream)>>>(y, x, cols, causal);
    return last_error();
}

extern "C" int mp_cuda_softmax_bwd(void *stream, float *dx, const float *dy, const float *y, int rows, int cols,
                                   int causal)
{
    if (rows <= 0 || cols <= 0) return 0;
    k_softmax_bwd<<<rows, MP_BLOCK, 0, S(stream)>>>(dx, dy, y, cols, causal);
    return last_error();
}

/* ---------------------------------------------------------------- embedding */

/* The table row of an id stored as a float; out of range (or NaN) reads row 0, as on the CPU. */
__device__ static size_t token_row(float id, int vocab)
{
    return id >= 0.0f && id < (float)vocab ? (size_t)id : 0;
}

__global__ static void k_embedding_fwd(float *y, const float *ids, const float *table, const float *pos,
                                       int seq, int dim, int vocab, size_t n)
{
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)dim, c = i % (size_t)dim;
        y[i] = table[token_row(ids[r], vocab) * dim + c] + pos[(r % (size_t)seq) * dim + c];
    }
}

/* dpos[t, c] += dy[k*seq + t, c] for k = 0..b-1 in order; i = t*dim + c */
__global__ static void k_embedding_dpos(float *dpos, const float *dy, int b, size_t n)
{
    GRID_STRIDE(i, n) {
        float s = dpos[i];
        for (int k = 0; k < b; k++) s += dy[(size_t)k * n + i];
        dpos[i] = s;
    }
}

/* block (k, y): bucket k, columns y*MP_BLOCK ..; rows of the bucket in order */
__global__ static void k_embedding_dtable(float *dtable, const float *dy, const int *buckets, int nbuckets,
                                          int dim)
{
    int k = blockIdx.x, c = blockIdx.y * MP_BLOCK + threadIdx.x;
    if (c >= dim) return;
    const int *ids = buckets, *offs = buckets + nbuckets, *rows = offs + nbuckets + 1;
    float *de = dtable + (size_t)ids[k] * dim + c;
    float s = *de;
    for (int j = offs[k]; j < offs[k + 1]; j++) s += dy[(size_t)rows[j] * dim + c];
    *de = s;
}

extern "C" int mp_cuda_embedding_fwd(void *stream, float *y, const float *ids, const float *table,
                                     const float *pos, int b, int seq, int dim, int vocab)
{
    size_t n = (size_t)b * seq * dim;
    if (n == 0) return 0;
    k_embedding_fwd<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(y, ids, table, pos, seq, dim, vocab, n);
    return last_error();
}

extern "C" int mp_cuda_embedding_bwd(void *stream, float *dtable, float *dpos, const float *dy,
                                     const int *buckets, int nbuckets, int b, int seq, int dim)
{
    size_t n = (size_t)seq * dim;
    if (n == 0 || b <= 0) return 0;
    k_embedding_dpos<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(dpos, dy, b, n);
    int e = last_error();
    if (e || nbuckets <= 0) return e;
    dim3 grid((unsigned)nbuckets, (unsigned)((dim + MP_BLOCK - 1) / MP_BLOCK));
    k_embedding_dtable<<<grid, MP_BLOCK, 0, S(stream)>>>(dtable, dy, buckets, nbuckets, dim);
    return last_error();
}

/* ---------------------------------------------------------------- losses */

/* row loss = (1/cols) sum_c (p - t)^2; dpred = scale * 2 (p - t) / cols */
__global__ static void k_mse(float *dpred, float *row_loss, const float *pred, const float *target,
                             int cols, float scale)
{
    __shared__ float sh[MP_BLOCK];
    size_t off = (size_t)blockIdx.x * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += MP_BLOCK) {
        float d = pred[off + c] - target[off + c];
        s += d * d;
        dpred[off + c] = scale * 2.0f * d / (float)cols;
    }
    float tot = block_sum(s, sh);
    if (threadIdx.x == 0) row_loss[blockIdx.x] = tot / (float)cols;
}

/* Running (max, sum of exp(z - max)) of a row, merged in a fixed order. */
__device__ static void lse_merge(float *m, float *s, float m2, float s2)
{
    if (m2 == -INFINITY) return;
    if (*m == -INFINITY) { *m = m2; *s = s2; return; }
    float M = fmaxf(*m, m2);
    *s = *s * expf(*m - M) + s2 * expf(m2 - M);
    *m = M;
}

/* row loss = logsumexp(z) - z[label]; dz = scale * (softmax(z) - onehot).
 * One pass for the log-sum-exp (online max and sum per thread, merged in a
 * fixed tree), one for the gradient: a large vocabulary is read twice. */
__global__ static void k_xent(float *dlogits, float *row_loss, const float *logits, const int *labels,
                              int classes, float scale)
{
    __shared__ float shm[MP_BLOCK], shs[MP_BLOCK];
    size_t off = (size_t)blockIdx.x * classes;
    unsigned t = threadIdx.x;
    int label = labels[blockIdx.x];
    if (label < 0 || label >= classes) label = 0;   /* as the CPU reference: never read out of bounds */
    float m = -INFINITY, s = 0.0f;
    for (int c = t; c < classes; c += MP_BLOCK) {
        float z = logits[off + c];
        if (z > m) {
            s = s * expf(m - z) + 1.0f;
            m = z;
        } else if (z != -INFINITY) {
            s += expf(z - m);
        }
    }
    shm[t] = m;
    shs[t] = s;
    __syncthreads();
    for (unsigned st = MP_BLOCK / 2; st > 0; st >>= 1) {
        if (t < st) {
            float a = shm[t], b = shs[t];
            lse_merge(&a, &b, shm[t + st], shs[t + st]);
            shm[t] = a;
            shs[t] = b;
        }
        __syncthreads();
    }
    float lse = shm[0] + logf(shs[0]);
    for (int c = t; c < classes; c += MP_BLOCK) {
        float p = expf(logits[off + c] - lse);
        dlogits[off + c] = scale * (p - (c == label ? 1.0f : 0.0f));
    }
    if (t == 0) row_loss[blockIdx.x] = lse - logits[off + label];
}

/* one thread, rows in order, like the CPU reference (rows = a micro-batch) */
__global__ static void k_sum_rows(float *out, const float *v, int n, float scale)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += v[i];
    *out = scale * s;
}

extern "C" int mp_cuda_mse_loss(void *stream, float *dpred, float *row_loss, const float *pred,
                                const float *target, int rows, int cols, float scale)
{
    if (rows <= 0 || cols <= 0) return 0;
    k_mse<<<rows, MP_BLOCK, 0, S(stream)>>>(dpred, row_loss, pred, target, cols, scale);
    return last_error();
}

extern "C" int mp_cuda_xent_loss(void *stream, float *dlogits, float *row_loss, const float *logits,
                                 const int *labels, int rows, int classes, float scale)
{
    if (rows <= 0 || classes <= 0) return 0;
    k_xent<<<rows, MP_BLOCK, 0, S(stream)>>>(dlogits, row_loss, logits, labels, classes, scale);
    return last_error();
}

extern "C" int mp_cuda_sum_rows(void *stream, float *out, const float *v, int n, float scale)
{
    k_sum_rows<<<1, 1, 0, S(stream)>>>(out, v, n, scale);
    return last_error();
}

/* ---------------------------------------------------------------- optimizers */

__global__ static void k_sgd(float *w, const float *g, size_t n, float lr)
{
    GRID_STRIDE(i, n) w[i] -= lr * g[i];
}

__global__ static void k_adam(float *w, const float *g, float *m, float *v, size_t n, float lr,
                              float beta1, float beta2, float eps, float bc1, float bc2)
{
    GRID_STRIDE(i, n) {
        float gi = g[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    }
}

extern "C" int mp_cuda_sgd_update(void *stream, float *w, const float *g, size_t n, float lr)
{
    if (n == 0) return 0;
    k_sgd<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(w, g, n, lr);
    return last_error();
}

extern "C" int mp_cuda_adam_update(void *stream, float *w, const float *g, float *m, float *v, size_t n,
                                   float lr, float beta1, float beta2, float eps, int step)
{
    if (n == 0) return 0;
    if (step < 1) step = 1;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    k_adam<<<grid_for(n), MP_BLOCK, 0, S(stream)>>>(w, g, m, v, n, lr, beta1, beta2, eps, bc1, bc2);
    return last_error();
}
