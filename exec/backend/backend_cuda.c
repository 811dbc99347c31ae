/* backend_cuda.c — the "cuda" backend: cuBLAS GEMMs and mpkit's kernels on one stream.
 * defines: mp_backend_cuda_i
 *
 * Host-side C only: cudart and cuBLAS are C APIs; the kernels live in
 * kernels.cu behind the plain-C launchers of kernels_cuda.h. Every backend
 * owns one non-blocking stream and one cuBLAS handle bound to it, so all work
 * it queues runs in order. Primitives return void (see backend_impl.h): a
 * failing CUDA/cuBLAS call is recorded, with its statement, file and line, as
 * the backend's pending error and reported by the next sync (first error
 * wins); nothing here exits. Losses go through pinned host slots and reach
 * the caller's float at sync. */
#include "backend_impl.h"
#include "cuda_check.h"
#include "gpu.h"
#include "kernels_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOSS_SLOTS 64

typedef struct {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    mp_error err;                   /* first failure since the last sync */
    float *d_rows;                  /* per-row loss scratch (device) */
    size_t d_rows_cap;              /* in floats */
    float *d_loss;                  /* LOSS_SLOTS device slots */
    float *h_loss;                  /* LOSS_SLOTS pinned host slots */
    float *pending[LOSS_SLOTS];     /* caller's loss floats, filled at sync */
    int npending;
    float *h_ids;                   /* embedding backward: the ids, on the host */
    int *h_count, *h_buckets;       /* per-token counts; the bucket table (kernels_cuda.h) */
    int *d_buckets;                 /* the bucket table on the device */
    size_t ids_cap, count_cap, buckets_cap, d_buckets_cap;   /* in elements */
} cuda_ctx;

/* The context, with this thread's current device set to the backend's GPU
 * (the current device is per thread; a pipeline may drive several GPUs). */
static cuda_ctx *enter(mp_backend *be)
{
    cuda_ctx *c = be->ctx;
    CUDA_CHECK(&c->err, cudaSetDevice(c->device));
    return c;
}

/* ---------------------------------------------------------------- lifecycle */

static void cu_shutdown(mp_backend *be);

static mp_status cu_init(mp_backend *be, int device, mp_error *err)
{
    int count = 0;
    mp_status st = mp_gpu_count(&count, err);   /* "no CUDA device available (...)" */
    if (st != MP_OK) return st;
    if (device < 0) device = 0;
    if (device >= count)
        return mp_error_set(err, MP_ERR_BACKEND, "CUDA device %d does not exist (%d device%s present)",
                            device, count, count == 1 ? "" : "s");

    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return mp_error_set(err, MP_ERR_NOMEM, "backend_cuda.c: out of host memory");
    c->device = device;
    be->ctx = c;
    be->device = device;
    if (CUDA_CHECK(err, cudaSetDevice(device))) goto fail;
    if (CUDA_CHECK(err, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking))) goto fail;
    if (CUBLAS_CHECK(err, cublasCreate(&c->blas))) goto fail;
    if (CUBLAS_CHECK(err, cublasSetStream(c->blas, c->stream))) goto fail;
    /* plain fp32 GEMMs: TF32 only if NVIDIA_TF32_OVERRIDE=1 asks for it */
    if (CUBLAS_CHECK(err, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH))) goto fail;
    if (CUDA_CHECK(err, cudaMalloc((void **)&c->d_loss, LOSS_SLOTS * sizeof(float)))) goto fail;
    if (CUDA_CHECK(err, cudaMallocHost((void **)&c->h_loss, LOSS_SLOTS * sizeof(float)))) goto fail;
    return MP_OK;
fail:
    cu_shutdown(be);
    return err ? err->status : MP_ERR_BACKEND;
}

static void cu_shutdown(mp_backend *be)
{
    cuda_ctx *c = be->ctx;
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    cudaFree(c->d_rows);
    cudaFree(c->d_loss);
    cudaFree(c->d_buckets);
    free(c->h_ids);
    free(c->h_count);
    free(c->h_buckets);
    if (c->h_loss) cudaFreeHost(c->h_loss);
    free(c);
    be->ctx = NULL;
}

static void cu_describe(mp_backend *be, char *buf, size_t n)
{
    cuda_ctx *c = enter(be);
    struct cudaDeviceProp p;
    int rt = 0, drv = 0, blas = 0;
    memset(&p, 0, sizeof p);
    cudaGetDeviceProperties(&p, c->device);
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    cublasGetVersion(c->blas, &blas);
    snprintf(buf, n,
             "cuda device %d: %s (sm_%d%d, %d SMs, %.1f GiB), CUDA runtime %d.%d, driver %d.%d, "
             "cuBLAS %d.%d.%d",
             c->device, p.name, p.major, p.minor, p.multiProcessorCount,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), rt / 1000, (rt % 1000) / 10,
             drv / 1000, (drv % 1000) / 10, blas / 10000, (blas / 100) % 100, blas % 100);
}

/* ---------------------------------------------------------------- memory */

static void *cu_alloc(mp_backend *be, size_t bytes)
{
    cuda_ctx *c = enter(be);
    void *p = NULL;
    if (bytes == 0) bytes = 1;   /* a real pointer even for empty tensors */
    if (CUDA_CHECK(&c->err, cudaMalloc(&p, bytes))) return NULL;
    if (CUDA_CHECK(&c->err, cudaMemsetAsync(p, 0, bytes, c->stream))) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cu_free(mp_backend *be, void *p)
{
    if (!p) return;
    cuda_ctx *c = enter(be);
    CUDA_CHECK(&c->err, cudaFree(p));
}

static void cu_upload(mp_backend *be, void *dst, const void *host_src, size_t bytes)
{
    cuda_ctx *c = enter(be);
    if (bytes == 0) return;
    /* synchronous for the caller: host_src may be reused on return */
    if (CUDA_CHECK(&c->err, cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, c->stream)))
        return;
    CUDA_CHECK(&c->err, cudaStreamSynchronize(c->stream));
}

static void cu_download(mp_backend *be, void *host_dst, const void *src, size_t bytes)
{
    cuda_ctx *c = enter(be);
    if (bytes == 0) return;
    if (CUDA_CHECK(&c->err, cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, c->stream)))
        return;
    CUDA_CHECK(&c->err, cudaStreamSynchronize(c->stream));
}

static void cu_copy(mp_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = enter(be);
    if (bytes == 0) return;
    CUDA_CHECK(&c->err, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
}

static void cu_zero(mp_backend *be, void *p, size_t bytes)
{
    cuda_ctx *c = enter(be);
    if (bytes == 0) return;
    CUDA_CHECK(&c->err, cudaMemsetAsync(p, 0, bytes, c->stream));
}

static size_t cu_mem_used(mp_backend *be)
{
    cuda_ctx *c = enter(be);
    size_t free_b = 0, total_b = 0;
    if (CUDA_CHECK(&c->err, cudaMemGetInfo(&free_b, &total_b))) return 0;
    return total_b - free_b;
}

/* ---------------------------------------------------------------- dense ops */

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a
 * row-major matrix with leading dim ld is its transpose in column-major with
 * the same ld, so swap the operands (and M/N) and keep the op flags. */
static void cu_gemm(mp_backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cuda_ctx *c = enter(be);
    if (M <= 0 || N <= 0) return;
    CUBLAS_CHECK(&c->err, cublasSgemm(c->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb,
                                      A, lda, &beta, C, ldc));
}

static void cu_gemm_batched(mp_backend *be, int trans_a, int trans_b, int M, int N, int K, float alpha,
                            const float *A, int lda, long long stride_a, const float *B, int ldb,
                            long long stride_b, float beta, float *C, int ldc, long long stride_c,
                            int batch)
{
    cuda_ctx *c = enter(be);
    if (M <= 0 || N <= 0 || batch <= 0) return;
    CUBLAS_CHECK(&c->err, cublasSgemmStridedBatched(c->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                    trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                                                    B, ldb, stride_b, A, lda, stride_a, &beta, C, ldc,
                                                    stride_c, batch));
}

static void cu_add_bias(mp_backend *be, float *y, const float *bias, int rows, int cols)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_add_bias(c->stream, y, bias, rows, cols));
}

static void cu_col_sum(mp_backend *be, float *out, const float *x, int rows, int cols, float beta)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_col_sum(c->stream, out, x, rows, cols, beta));
}

static void cu_axpy(mp_backend *be, float *y, float a, const float *x, size_t n)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_axpy(c->stream, y, a, x, n));
}

/* ---------------------------------------------------------------- activations */

static void cu_relu_fwd(mp_backend *be, float *y, const float *x, size_t n)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_relu_fwd(c->stream, y, x, n));
}

static void cu_relu_bwd(mp_backend *be, float *dx, const float *dy, const float *x, size_t n)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_relu_bwd(c->stream, dx, dy, x, n));
}

static void cu_gelu_fwd(mp_backend *be, float *y, const float *x, size_t n)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_gelu_fwd(c->stream, y, x, n));
}

static void cu_gelu_bwd(mp_backend *be, float *dx, const float *dy, const float *x, size_t n)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_gelu_bwd(c->stream, dx, dy, x, n));
}

static void cu_layernorm_fwd(mp_backend *be, float *y, float *mean, float *rstd, const float *x,
                             const float *gamma, const float *beta, int rows, int cols, float eps)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_layernorm_fwd(c->stream, y, mean, rstd, x, gamma, beta, rows,
                                                cols, eps));
}

static void cu_layernorm_bwd(mp_backend *be, float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *mean, const float *rstd,
                             const float *gamma, int rows, int cols)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_layernorm_bwd(c->stream, dx, dgamma, dbeta, dy, x, mean, rstd,
                                                gamma, rows, cols));
}

/* ---------------------------------------------------------------- attention */

static void cu_softmax_fwd(mp_backend *be, float *y, const float *x, int rows, int cols, int causal)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_softmax_fwd(c->stream, y, x, rows, cols, causal));
}

static void cu_softmax_bwd(mp_backend *be, float *dx, const float *dy, const float *y, int rows, int cols,
                           int causal)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_softmax_bwd(c->stream, dx, dy, y, rows, cols, causal));
}

/* ---------------------------------------------------------------- embedding */

static void cu_embedding_fwd(mp_backend *be, float *y, const float *ids, const float *table,
                             const float *pos, int b, int seq, int dim, int vocab)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_embedding_fwd(c->stream, y, ids, table, pos, b, seq, dim, vocab));
}

/* Room for n elements of size sz in the host buffer *p (grown, never shrunk). */
static int host_room(cuda_ctx *c, void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap) return 1;
    void *q = realloc(*p, n * sz);
    if (!q) {
        mp_error_set(&c->err, MP_ERR_NOMEM, "backend_cuda.c: out of host memory for %zu embedding rows", n);
        return 0;
    }
    *p = q;
    *cap = n;
    return 1;
}

/* The bucket table of kernels_cuda.h from the host ids: a stable counting
 * sort of the rows by token. Returns the number of buckets. */
static int build_buckets(cuda_ctx *c, size_t nrows, int vocab)
{
    int *count = c->h_count, nb = 0;
    memset(count, 0, (size_t)vocab * sizeof *count);
    for (size_t r = 0; r < nrows; r++) count[mp_token_row(c->h_ids[r], vocab)]++;
    for (int v = 0; v < vocab; v++) nb += count[v] > 0;
    int *ids = c->h_buckets, *offs = ids + nb, *rows = offs + nb + 1, k = 0, at = 0;
    for (int v = 0; v < vocab; v++) {
        if (!count[v]) continue;
        ids[k] = v;
        offs[k++] = at;
        at += count[v];
        count[v] = offs[k - 1];   /* from here on: where v's next row goes */
    }
    offs[nb] = at;
    for (size_t r = 0; r < nrows; r++) rows[count[mp_token_row(c->h_ids[r], vocab)]++] = (int)r;
    return nb;
}

/* Deterministic without atomics: the ids come to the host (the stream is
 * synchronised), are bucketed by token there, and the table goes back with
 * the kernels that add each bucket's rows in order (as llm.c's encoder). */
static void cu_embedding_bwd(mp_backend *be, float *dtable, float *dpos, const float *dy,
                             const float *ids, int b, int seq, int dim, int vocab)
{
    cuda_ctx *c = enter(be);
    size_t nrows = (size_t)b * seq, need = 3 * nrows + 1;
    if (nrows == 0 || dim <= 0 || vocab <= 0) return;
    if (!host_room(c, (void **)&c->h_ids, &c->ids_cap, nrows, sizeof(float)) ||
        !host_room(c, (void **)&c->h_count, &c->count_cap, (size_t)vocab, sizeof(int)) ||
        !host_room(c, (void **)&c->h_buckets, &c->buckets_cap, need, sizeof(int)))
        return;
    cu_download(be, c->h_ids, ids, nrows * sizeof(float));   /* synchronous: the stream is idle after it */
    if (c->err.status != MP_OK) return;
    int nb = build_buckets(c, nrows, vocab);
    size_t n = 2 * (size_t)nb + 1 + nrows;
    if (n > c->d_buckets_cap) {
        cudaFree(c->d_buckets);
        c->d_buckets = NULL;
        c->d_buckets_cap = 0;
        if (CUDA_CHECK(&c->err, cudaMalloc((void **)&c->d_buckets, need * sizeof(int)))) return;
        c->d_buckets_cap = need;
    }
    /* pageable source: staged before the call returns, so h_buckets may be reused */
    if (CUDA_CHECK(&c->err, cudaMemcpyAsync(c->d_buckets, c->h_buckets, n * sizeof(int),
                                            cudaMemcpyHostToDevice, c->stream)))
        return;
    KERNEL_CHECK(&c->err, mp_cuda_embedding_bwd(c->stream, dtable, dpos, dy, c->d_buckets, nb, b, seq, dim));
}

/* ---------------------------------------------------------------- losses */

/* Copies every pending loss slot to its caller's float; the stream must be idle. */
static void flush_losses(cuda_ctx *c)
{
    for (int i = 0; i < c->npending; i++) *c->pending[i] = c->h_loss[i];
    c->npending = 0;
}

/* Room for `rows` per-row losses and a free loss slot; returns the slot or -1. */
static int loss_prepare(cuda_ctx *c, int rows)
{
    if (c->npending == LOSS_SLOTS || (size_t)rows > c->d_rows_cap) {
        if (CUDA_CHECK(&c->err, cudaStreamSynchronize(c->stream))) return -1;
        flush_losses(c);
    }
    if ((size_t)rows > c->d_rows_cap) {
        size_t cap = c->d_rows_cap ? c->d_rows_cap : 64;
        while (cap < (size_t)rows) cap *= 2;
        cudaFree(c->d_rows);
        c->d_rows = NULL;
        c->d_rows_cap = 0;
        if (CUDA_CHECK(&c->err, cudaMalloc((void **)&c->d_rows, cap * sizeof(float)))) return -1;
        c->d_rows_cap = cap;
    }
    return c->npending;
}

/* Queues the reduction of the per-row losses into slot `s` and its copy to the host. */
static void loss_finish(cuda_ctx *c, int s, float *loss_out, int rows, float scale)
{
    if (KERNEL_CHECK(&c->err, mp_cuda_sum_rows(c->stream, c->d_loss + s, c->d_rows, rows, scale)))
        return;
    if (CUDA_CHECK(&c->err, cudaMemcpyAsync(c->h_loss + s, c->d_loss + s, sizeof(float),
                                            cudaMemcpyDeviceToHost, c->stream)))
        return;
    c->pending[s] = loss_out;
    c->npending++;
}

static void cu_mse_loss(mp_backend *be, float *dpred, float *loss_out, const float *pred,
                        const float *target, int rows, int cols, float scale)
{
    cuda_ctx *c = enter(be);
    int s = loss_prepare(c, rows);
    if (s < 0) return;
    if (KERNEL_CHECK(&c->err, mp_cuda_mse_loss(c->stream, dpred, c->d_rows, pred, target, rows,
                                               cols, scale)))
        return;
    loss_finish(c, s, loss_out, rows, scale);
}

static void cu_xent_loss(mp_backend *be, float *dlogits, float *loss_out, const float *logits,
                         const int *labels, int rows, int classes, float scale)
{
    cuda_ctx *c = enter(be);
    int s = loss_prepare(c, rows);
    if (s < 0) return;
    if (KERNEL_CHECK(&c->err, mp_cuda_xent_loss(c->stream, dlogits, c->d_rows, logits, labels,
                                                rows, classes, scale)))
        return;
    loss_finish(c, s, loss_out, rows, scale);
}

/* ---------------------------------------------------------------- optimizers */

static void cu_sgd_update(mp_backend *be, float *w, const float *g, size_t n, float lr)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_sgd_update(c->stream, w, g, n, lr));
}

static void cu_adam_update(mp_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                           float lr, float beta1, float beta2, float eps, int step)
{
    cuda_ctx *c = enter(be);
    KERNEL_CHECK(&c->err, mp_cuda_adam_update(c->stream, w, g, m, v, n, lr, beta1, beta2, eps, step));
}

/* ---------------------------------------------------------------- sync */

static mp_status cu_sync(mp_backend *be, mp_error *err)
{
    cuda_ctx *c = enter(be);
    if (!CUDA_CHECK(&c->err, cudaStreamSynchronize(c->stream))) flush_losses(c);
    CUDA_CHECK(&c->err, cudaGetLastError());
    mp_status st = c->err.status;
    if (st != MP_OK) {
        mp_error_set(err, st, "cuda device %d: %s", c->device, c->err.msg);
        mp_error_clear(&c->err);
        c->npending = 0;
    }
    return st;
}

const mp_backend_i mp_backend_cuda_i = {
    .name = "cuda",
    .init = cu_init,
    .shutdown = cu_shutdown,
    .describe = cu_describe,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .zero = cu_zero,
    .mem_used = cu_mem_used,
    .gemm = cu_gemm,
    .gemm_batched = cu_gemm_batched,
    .add_bias = cu_add_bias,
    .col_sum = cu_col_sum,
    .axpy = cu_axpy,
    .relu_fwd = cu_relu_fwd,
    .relu_bwd = cu_relu_bwd,
    .gelu_fwd = cu_gelu_fwd,
    .gelu_bwd = cu_gelu_bwd,
    .layernorm_fwd = cu_layernorm_fwd,
    .layernorm_bwd = cu_layernorm_bwd,
    .softmax_fwd = cu_softmax_fwd,
    .softmax_bwd = cu_softmax_bwd,
    .embedding_fwd = cu_embedding_fwd,
    .embedding_bwd = cu_embedding_bwd,
    .mse_loss = cu_mse_loss,
    .xent_loss = cu_xent_loss,
    .sgd_update = cu_sgd_update,
    .adam_update = cu_adam_update,
    .sync = cu_sync,
};
