/* cuda_check.h — the one check of a CUDA, cuBLAS or NCCL call: a failing call
 * is recorded in an mp_error (MP_ERR_BACKEND; the first error wins) as
 * "FILE:LINE: STATEMENT: REASON (NAME)", after "stage S: " where the caller
 * knows its stage or rank, and the check evaluates to nonzero. Nothing here
 * exits or prints.
 * defines: CUDA_CHECK, CUDA_CHECK_AT, KERNEL_CHECK, CUBLAS_CHECK, NCCL_CHECK,
 *          NCCL_CHECK_AT, mp_cuda_check, mp_cublas_check, mp_nccl_check
 *
 * Plain C. Included only by files built with the CUDA toolkit (*_cuda.c,
 * *_nccl.c); the NCCL check exists where NCCL was found (MP_HAVE_NCCL). */
#ifndef MP_CUDA_CHECK_H
#define MP_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#ifdef MP_HAVE_NCCL
#include <nccl.h>
#endif
#include "mp_status.h"

/* Records that `stmt` at file:line failed with `reason` (and `name` when
 * non-NULL) in err, after "stage S: " when stage >= 0. Returns 1. */
static inline int mp_gpu_call_failed(mp_error *err, int stage, const char *file, int line, const char *stmt,
                                     const char *reason, const char *name)
{
    char at[32] = "";
    if (stage >= 0) snprintf(at, sizeof at, "stage %d: ", stage);
    mp_error_set(err, MP_ERR_BACKEND, "%s%s:%d: %s: %s%s%s%s", at, file, line, stmt, reason, name ? " (" : "",
                 name ? name : "", name ? ")" : "");
    return 1;
}

/* 0 when e is cudaSuccess; else records it (above) and returns 1. */
static inline int mp_cuda_check(mp_error *err, int stage, cudaError_t e, const char *stmt, const char *file, int line)
{
    if (e == cudaSuccess) return 0;
    return mp_gpu_call_failed(err, stage, file, line, stmt, cudaGetErrorString(e), cudaGetErrorName(e));
}

/* 0 when s is CUBLAS_STATUS_SUCCESS; else records it and returns 1. */
static inline int mp_cublas_check(mp_error *err, int stage, cublasStatus_t s, const char *stmt, const char *file,
                                  int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return mp_gpu_call_failed(err, stage, file, line, stmt, cublasGetStatusString(s), cublasGetStatusName(s));
}

#ifdef MP_HAVE_NCCL
/* 0 when r is ncclSuccess or ncclInProgress (a non-blocking communicator's
 * call under way, not a failure); else records it and returns 1. */
static inline int mp_nccl_check(mp_error *err, int stage, ncclResult_t r, const char *stmt, const char *file, int line)
{
    if (r == ncclSuccess || r == ncclInProgress) return 0;
    return mp_gpu_call_failed(err, stage, file, line, stmt, ncclGetErrorString(r), NULL);
}
#endif

/* Each evaluates to nonzero when `call` failed, after recording it in err;
 * the _AT forms name the caller's stage (or rank) `stage`. KERNEL_CHECK takes
 * a launcher of kernels_cuda.h, which returns its cudaError_t as an int. */
#define CUDA_CHECK(err, call) mp_cuda_check((err), -1, (call), #call, __FILE__, __LINE__)
#define CUDA_CHECK_AT(err, stage, call) mp_cuda_check((err), (stage), (call), #call, __FILE__, __LINE__)
#define KERNEL_CHECK(err, call) mp_cuda_check((err), -1, (cudaError_t)(call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(err, call) mp_cublas_check((err), -1, (call), #call, __FILE__, __LINE__)
#define NCCL_CHECK(err, call) mp_nccl_check((err), -1, (call), #call, __FILE__, __LINE__)
#define NCCL_CHECK_AT(err, stage, call) mp_nccl_check((err), (stage), (call), #call, __FILE__, __LINE__)

#endif
