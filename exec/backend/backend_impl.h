/* backend_impl.h — the primitive table every backend fills (private to exec/).
 * defines: mp_backend_i, struct mp_backend, mp_backend_cpu_i, mp_backend_cuda_i
 *
 * All tensors are fp32, row-major, in the backend's memory (host memory for
 * cpu, device memory for cuda). Operations may be asynchronous; `sync` waits
 * for all of them and reports any error since the last sync. Layers
 * (exec/backend/layers.c) are written once in terms of these primitives, so the CPU
 * backend is the reference the CUDA one is tested against.
 * Entries may be NULL only where marked optional. */
#ifndef MP_BACKEND_IMPL_H
#define MP_BACKEND_IMPL_H

#include <stddef.h>
#include "backend.h"

typedef struct mp_backend_i {
    const char *name;
    mp_status (*init)(mp_backend *be, int device, mp_error *err);
    void (*shutdown)(mp_backend *be);
    void (*describe)(mp_backend *be, char *buf, size_t n);

    /* memory: alloc returns zeroed memory or NULL */
    void *(*alloc)(mp_backend *be, size_t bytes);
    void (*free)(mp_backend *be, void *p);
    void (*upload)(mp_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(mp_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(mp_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(mp_backend *be, void *p, size_t bytes);
    size_t (*mem_used)(mp_backend *be);   /* optional: bytes in use on the device */

    /* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C; row-major with leading dims */
    void (*gemm)(mp_backend *be, int trans_a, int trans_b, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);
    /* For i = 0..batch-1: C_i = alpha * op(A_i) op(B_i) + beta * C_i with
     * X_i = X + i*stride_x (floats), each product exactly as gemm. The
     * matrices of different i may interleave (a head's columns of a wider
     * row: stride < rows*ld) but no element of C belongs to two C_i. */
    void (*gemm_batched)(mp_backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const float *A, int lda, long long stride_a, const float *B, int ldb,
                         long long stride_b, float beta, float *C, int ldc, long long stride_c,
                         int batch);
    /* y[r,c] += bias[c] */
    void (*add_bias)(mp_backend *be, float *y, const float *bias, int rows, int cols);
    /* out[c] = beta*out[c] + sum_r x[r,c], summed in row order */
    void (*col_sum)(mp_backend *be, float *out, const float *x, int rows, int cols, float beta);
    /* y += a*x */
    void (*axpy)(mp_backend *be, float *y, float a, const float *x, size_t n);

    void (*relu_fwd)(mp_backend *be, float *y, const float *x, size_t n);
    void (*relu_bwd)(mp_backend *be, float *dx, const float *dy, const float *x, size_t n);
    /* tanh approximation of GELU */
    void (*gelu_fwd)(mp_backend *be, float *y, const float *x, size_t n);
    void (*gelu_bwd)(mp_backend *be, float *dx, const float *dy, const float *x, size_t n);
    /* per row: y = (x - mean) * rstd * gamma + beta; saves mean/rstd [rows] */
    void (*layernorm_fwd)(mp_backend *be, float *y, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int rows, int cols, float eps);
    /* dx = input gradient; dgamma/dbeta ACCUMULATE (+=) */
    void (*layernorm_bwd)(mp_backend *be, float *dx, float *dgamma, float *dbeta,
                          const float *dy, const float *x, const float *mean, const float *rstd,
                          const float *gamma, int rows, int cols);

    /* Row softmax over x[rows, cols]. causal: rows are stacked [cols, cols]
     * score matrices and row r keeps columns j <= r % cols (the rest of y is
     * 0); else every column. y may be x (in place). */
    void (*softmax_fwd)(mp_backend *be, float *y, const float *x, int rows, int cols, int causal);
    /* Its backward from y = softmax_fwd(...): per row, over the kept columns,
     * dx = y * (dy - sum_j y_j dy_j); dropped columns get 0. dx may be dy. */
    void (*softmax_bwd)(mp_backend *be, float *dx, const float *dy, const float *y, int rows,
                        int cols, int causal);

    /* Token embedding of b sequences of seq ids (ids[b*seq], token ids stored
     * as floats; an id outside [0, vocab) reads row 0): for row r = i*seq + t,
     * y[r, :] = table[ids[r], :] + pos[t, :] (table[vocab, dim], pos[seq, dim]). */
    void (*embedding_fwd)(mp_backend *be, float *y, const float *ids, const float *table,
                          const float *pos, int b, int seq, int dim, int vocab);
    /* Its backward, ACCUMULATING in a fixed order (bitwise repeatable, and the
     * same on every backend): dtable[ids[r], :] += dy[r, :] for r = 0, 1, ...
     * in order; dpos[t, :] += dy[i*seq + t, :] for i = 0, 1, ... in order. */
    void (*embedding_bwd)(mp_backend *be, float *dtable, float *dpos, const float *dy,
                          const float *ids, int b, int seq, int dim, int vocab);

    /* losses: write dpred = scale * d(loss)/d(pred); *loss_out (host) gets the
     * summed loss times scale (written by the next sync at the latest).
     * Per-row losses (the CPU backend is the reference):
     *   mse:  loss_r = (1/cols) * sum_c (pred - target)^2,
     *         dpred  = scale * 2 * (pred - target) / cols
     *   xent: loss_r = logsumexp(logits_r) - logits_r[label_r],
     *         dlogits = scale * (softmax(logits_r) - onehot(label_r))
     *   *loss_out = scale * sum_r loss_r (rows summed in order) */
    void (*mse_loss)(mp_backend *be, float *dpred, float *loss_out, const float *pred,
                     const float *target, int rows, int cols, float scale);
    void (*xent_loss)(mp_backend *be, float *dlogits, float *loss_out, const float *logits,
                      const int *labels, int rows, int classes, float scale);

    /* optimizers: sgd w -= lr*g. adam (step counts from 1):
     *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
     *   w -= lr * (m/(1-b1^step)) / (sqrt(v/(1-b2^step)) + eps) */
    void (*sgd_update)(mp_backend *be, float *w, const float *g, size_t n, float lr);
    void (*adam_update)(mp_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                        float lr, float beta1, float beta2, float eps, int step);

    /* waits for queued work; reports errors (e.g. a CUDA fault) */
    mp_status (*sync)(mp_backend *be, mp_error *err);
} mp_backend_i;

/* The table row of a token id stored as a float, as every backend reads it:
 * an id outside [0, vocab) (or NaN) reads row 0. */
static inline size_t mp_token_row(float id, int vocab)
{
    return id >= 0 && id < (float)vocab ? (size_t)id : 0;
}

struct mp_backend {
    const mp_backend_i *i;
    int device;
    void *ctx;   /* backend-private state */
};

extern const mp_backend_i mp_backend_cpu_i;
#ifdef MP_HAVE_CUDA
extern const mp_backend_i mp_backend_cuda_i;
#endif

#endif
