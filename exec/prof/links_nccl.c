/* links_nccl.c — NCCL send/recv timing between two GPUs of this process; see links_gpu.h.
 * One thread drives both GPUs: ncclCommInitAll builds a 2-rank communicator
 * (kept for the next call on the same pair),
 * and each transfer is an ncclSend on src's stream and an ncclRecv on dst's
 * inside one ncclGroupStart/End. A transfer is timed on the host from launch
 * until both streams are idle (it includes the launch cost, as a pipeline's
 * transfers do); the median of the repeats is kept. */
#include "links_gpu.h"
#include "cuda_check.h"
#include "stats.h"
#include "clock.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <time.h>

/* The communicator of the last pair measured: mpprof times one pair at many
 * sizes in a row, and ncclCommInitAll is far slower than a transfer. */
static int cached_src = -1, cached_dst = -1;
static ncclComm_t cached[2];

static mp_status pair_comm(int src, int dst, ncclComm_t comm[2], mp_error *err)
{
    if (src != cached_src || dst != cached_dst) {
        int devs[2] = {src, dst};
        for (int k = 0; k < 2 && cached_src >= 0; k++) ncclCommDestroy(cached[k]);
        cached_src = cached_dst = -1;
        if (NCCL_CHECK(err, ncclCommInitAll(cached, 2, devs))) return MP_ERR_BACKEND;
        cached_src = src;
        cached_dst = dst;
    }
    comm[0] = cached[0];
    comm[1] = cached[1];
    return MP_OK;
}

mp_status mp_gpu_link_time_nccl(int src, int dst, size_t bytes, int warmup, int repeat,
                                double *median_s, mp_error *err)
{
    int devs[2] = {src, dst};
    ncclComm_t comm[2] = {NULL, NULL};
    cudaStream_t s[2] = {NULL, NULL};
    void *buf[2] = {NULL, NULL};
    double *t = calloc((size_t)(repeat > 0 ? repeat : 1), sizeof *t);
    mp_status st = MP_ERR_BACKEND;
    if (!t) return mp_error_set(err, MP_ERR_NOMEM, "links_nccl.c: out of host memory");
    if (src == dst) {
        free(t);
        return mp_error_set(err, MP_ERR_BACKEND, "nccl send/recv needs two different GPUs (got %d->%d)", src, dst);
    }
    if (bytes == 0) bytes = 1;
    if (pair_comm(src, dst, comm, err) != MP_OK) goto out;
    for (int k = 0; k < 2; k++) {
        if (CUDA_CHECK(err, cudaSetDevice(devs[k]))) goto out;
        if (CUDA_CHECK(err, cudaStreamCreateWithFlags(&s[k], cudaStreamNonBlocking))) goto out;
        if (CUDA_CHECK(err, cudaMalloc(&buf[k], bytes))) goto out;
    }
    for (int i = 0; i < warmup + repeat; i++) {
        double t0 = mp_now_s();
        if (NCCL_CHECK(err, ncclGroupStart())) goto out;
        if (NCCL_CHECK(err, ncclSend(buf[0], bytes, ncclChar, 1, comm[0], s[0])) ||
            NCCL_CHECK(err, ncclRecv(buf[1], bytes, ncclChar, 0, comm[1], s[1]))) {
            ncclGroupEnd();
            goto out;
        }
        if (NCCL_CHECK(err, ncclGroupEnd())) goto out;
        for (int k = 0; k < 2; k++) {
            if (CUDA_CHECK(err, cudaSetDevice(devs[k])) || CUDA_CHECK(err, cudaStreamSynchronize(s[k])))
                goto out;
        }
        if (i >= warmup) t[i - warmup] = mp_now_s() - t0;
    }
    qsort(t, (size_t)repeat, sizeof *t, mp_cmp_double);
    *median_s = repeat % 2 ? t[repeat / 2] : 0.5 * (t[repeat / 2 - 1] + t[repeat / 2]);
    st = MP_OK;
out:
    for (int k = 0; k < 2; k++) {
        cudaSetDevice(devs[k]);
        if (buf[k]) cudaFree(buf[k]);
        if (s[k]) cudaStreamDestroy(s[k]);
    }
    free(t);
    return st;
}
