/* links_cuda.c — GPU-to-GPU copy timing with cudart; see links_gpu.h.
 * Peer and device-to-device copies are timed with CUDA events on one stream
 * of the source GPU; the median of the repeats is kept. */
#include "links_gpu.h"
#include "cuda_check.h"
#include "gpu.h"
#include "stats.h"

#include <cuda_runtime.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Peer copy (src != dst) or device-to-device copy (src == dst). */
static mp_status time_copy(int src, int dst, size_t bytes, int warmup, int repeat,
                           double *median_s, const char **method, mp_error *err)
{
    void *a = NULL, *b = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double *t = calloc((size_t)repeat, sizeof *t);
    mp_status st = MP_ERR_BACKEND;
    if (!t) return mp_error_set(err, MP_ERR_NOMEM, "links_cuda.c: out of host memory");
    if (bytes == 0) bytes = 1;
    *method = src == dst ? "cudaMemcpy D2D" : "cudaMemcpyPeer";
    if (src != dst) {
        int can = 0;
        if (CUDA_CHECK(err, cudaDeviceCanAccessPeer(&can, src, dst))) goto out;
        if (can) {
            if (CUDA_CHECK(err, cudaSetDevice(src))) goto out;
            cudaError_t e = cudaDeviceEnablePeerAccess(dst, 0);
            if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
            else if (CUDA_CHECK(err, e)) goto out;
        }
    }
    if (CUDA_CHECK(err, cudaSetDevice(dst)) || CUDA_CHECK(err, cudaMalloc(&b, bytes))) goto out;
    if (CUDA_CHECK(err, cudaSetDevice(src)) || CUDA_CHECK(err, cudaMalloc(&a, bytes))) goto out;
    if (CUDA_CHECK(err, cudaMemset(a, 1, bytes))) goto out;
    if (CUDA_CHECK(err, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking))) goto out;
    if (CUDA_CHECK(err, cudaEventCreate(&e0)) || CUDA_CHECK(err, cudaEventCreate(&e1))) goto out;
    for (int i = 0; i < warmup + repeat; i++) {
        if (CUDA_CHECK(err, cudaEventRecord(e0, s))) goto out;
        if (CUDA_CHECK(err, cudaMemcpyPeerAsync(b, dst, a, src, bytes, s))) goto out;
        if (CUDA_CHECK(err, cudaEventRecord(e1, s)) || CUDA_CHECK(err, cudaEventSynchronize(e1))) goto out;
        float ms = 0;
        if (CUDA_CHECK(err, cudaEventElapsedTime(&ms, e0, e1))) goto out;
        if (i >= warmup) t[i - warmup] = ms * 1e-3;
    }
    qsort(t, (size_t)repeat, sizeof *t, mp_cmp_double);
    *median_s = repeat % 2 ? t[repeat / 2] : 0.5 * (t[repeat / 2 - 1] + t[repeat / 2]);
    st = MP_OK;
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (s) cudaStreamDestroy(s);
    if (a) { cudaSetDevice(src); cudaFree(a); }
    if (b) { cudaSetDevice(dst); cudaFree(b); }
    free(t);
    return st;
}

mp_status mp_gpu_link_time(int src, int dst, size_t bytes, int warmup, int repeat,
                           double *median_s, const char **method, mp_error *err)
{
    int n = 0;
    if (mp_gpu_count(&n, err) != MP_OK) return MP_ERR_BACKEND;
    if (src < 0 || dst < 0 || src >= n || dst >= n)
        return mp_error_set(err, MP_ERR_BACKEND, "GPU pair %d->%d: only %d device%s present", src,
                            dst, n, n == 1 ? "" : "s");
    if (repeat < 1) repeat = 1;
    if (warmup < 0) warmup = 0;
#ifdef MP_HAVE_NCCL
    if (src != dst) {
        *method = "nccl send/recv";
        return mp_gpu_link_time_nccl(src, dst, bytes, warmup, repeat, median_s, err);
    }
#endif
    return time_copy(src, dst, bytes, warmup, repeat, median_s, method, err);
}
