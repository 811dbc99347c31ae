/* gpu.h — facts about this machine's GPUs, for the runner's device checks
 * and the profiler.
 * defines: mp_gpu_count, mp_gpu_info
 *
 * Plain C (no CUDA types). Implemented in gpu_cuda.c, built only with CUDA:
 * callers wrap their use in #ifdef MP_HAVE_CUDA. */
#ifndef MP_GPU_H
#define MP_GPU_H

#include <stddef.h>
#include "mp_status.h"

/* Number of visible CUDA devices; MP_ERR_BACKEND "no CUDA device available
 * (cudaGetDeviceCount: REASON)" when none can be used. */
mp_status mp_gpu_count(int *count, mp_error *err);

/* Name (e.g. "NVIDIA H200") and total memory in bytes of GPU `dev`; either
 * output may be NULL. */
mp_status mp_gpu_info(int dev, char *name, size_t name_len, double *memory_bytes, mp_error *err);

#endif
