/* kernels_cuda.h — C launchers for mpkit's own CUDA kernels (exec/backend/kernels.cu).
 * defines: mp_cuda_add_bias, mp_cuda_col_sum, mp_cuda_axpy, mp_cuda_relu_fwd,
 *          mp_cuda_relu_bwd, mp_cuda_gelu_fwd, mp_cuda_gelu_bwd,
 *          mp_cuda_layernorm_fwd, mp_cuda_layernorm_bwd, mp_cuda_mse_loss,
 *          mp_cuda_xent_loss, mp_cuda_sum_rows, mp_cuda_sgd_update,
 *          mp_cuda_adam_update, mp_cuda_fill, mp_cuda_softmax_fwd, mp_cuda_softmax_bwd,
 *          mp_cuda_embedding_fwd, mp_cuda_embedding_bwd
 *
 * Plain C: no CUDA headers needed. `stream` is a cudaStream_t passed as void *.
 * Every pointer except the scalars is device memory. Each launcher queues its
 * kernel(s) on `stream` and returns the cudaError_t of the launch as an int
 * (0 = cudaSuccess); execution errors show up at the next synchronisation.
 * Semantics match the primitive table in backend_impl.h (the CPU backend is
 * the reference); every reduction runs in a fixed order, so results are
 * bitwise repeatable from run to run. */
#ifndef MP_KERNELS_CUDA_H
#define MP_KERNELS_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[r,c] += bias[c] */
int mp_cuda_add_bias(void *stream, float *y, const float *bias, int rows, int cols);
/* out[c] = beta*out[c] + sum_r x[r,c], rows summed in order r = 0..rows-1 */
int mp_cuda_col_sum(void *stream, float *out, const float *x, int rows, int cols, float beta);
/* y += a*x */
int mp_cuda_axpy(void *stream, float *y, float a, const float *x, size_t n);
/* p[i] = value */
int mp_cuda_fill(void *stream, float *p, float value, size_t n);

int mp_cuda_relu_fwd(void *stream, float *y, const float *x, size_t n);
int mp_cuda_relu_bwd(void *stream, float *dx, const float *dy, const float *x, size_t n);
/* GELU, tanh approximation */
int mp_cuda_gelu_fwd(void *stream, float *y, const float *x, size_t n);
int mp_cuda_gelu_bwd(void *stream, float *dx, const float *dy, const float *x, size_t n);

/* One block per row; saves mean and rstd = 1/sqrt(var + eps) per row. */
int mp_cuda_layernorm_fwd(void *stream, float *y, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int rows, int cols, float eps);
/* dx (overwritten) per row; dgamma/dbeta accumulate (+=), rows in order. */
int mp_cuda_layernorm_bwd(void *stream, float *dx, float *dgamma, float *dbeta,
                          const float *dy, const float *x, const float *mean, const float *rstd,
                          const float *gamma, int rows, int cols);

/* Row softmax and its backward (causal: row r keeps columns j <= r % cols);
 * one block per row; in place allowed (y == x, dx == dy). */
int mp_cuda_softmax_fwd(void *stream, float *y, const float *x, int rows, int cols, int causal);
int mp_cuda_softmax_bwd(void *stream, float *dx, const float *dy, const float *y, int rows, int cols,
                        int causal);

/* y[i*seq + t, :] = table[ids[i*seq + t], :] + pos[t, :]; ids are floats, an
 * id outside [0, vocab) reads row 0. */
int mp_cuda_embedding_fwd(void *stream, float *y, const float *ids, const float *table,
                          const float *pos, int b, int seq, int dim, int vocab);
/* The embedding's backward without atomics. `buckets` (device) holds
 * nbuckets token ids in increasing order, then nbuckets + 1 offsets, then the
 * b*seq row indices grouped by token, each group in increasing row order:
 * bucket k's rows are rows[offsets[k] .. offsets[k+1]-1]. One block column
 * per bucket adds those rows of dy into dtable[id, :] in row order, and one
 * thread per (t, c) adds dy[i*seq + t, c] into dpos[t, c] for i in order, so
 * every element sees the same additions in the same order as the CPU. */
int mp_cuda_embedding_bwd(void *stream, float *dtable, float *dpos, const float *dy,
                          const int *buckets, int nbuckets, int b, int seq, int dim);

/* Losses (definitions in backend_impl.h): dpred = scale * dloss/dpred;
 * row_loss[r] = loss of row r, unscaled (reduce it with mp_cuda_sum_rows). */
int mp_cuda_mse_loss(void *stream, float *dpred, float *row_loss, const float *pred,
                     const float *target, int rows, int cols, float scale);
int mp_cuda_xent_loss(void *stream, float *dlogits, float *row_loss, const float *logits,
                      const int *labels, int rows, int classes, float scale);
/* *out = scale * sum_r v[r], summed in order r = 0..n-1 (one thread). */
int mp_cuda_sum_rows(void *stream, float *out, const float *v, int n, float scale);

/* w -= lr*g */
int mp_cuda_sgd_update(void *stream, float *w, const float *g, size_t n, float lr);
/* Adam with bias correction; step counts from 1. */
int mp_cuda_adam_update(void *stream, float *w, const float *g, float *m, float *v, size_t n,
                        float lr, float beta1, float beta2, float eps, int step);

#ifdef __cplusplus
}
#endif

#endif
