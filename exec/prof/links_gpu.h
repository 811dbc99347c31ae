/* links_gpu.h — GPU-to-GPU transfer timing for mpprof --links --backend cuda
 * (GPU facts: exec/backend/gpu.h).
 * defines: mp_gpu_link_time, mp_gpu_link_time_nccl
 *
 * Plain C (no CUDA types). Implemented in links_cuda.c (built with CUDA) and
 * links_nccl.c (built with NCCL); callers wrap their use in one
 * #ifdef MP_HAVE_CUDA. mp_gpu_link_time picks the best method compiled in:
 * NCCL send/recv between two GPUs when NCCL is present, else a peer copy
 * (cudaMemcpyPeer); src == dst times a device-to-device copy on one GPU, which
 * is what a 1-GPU machine can measure. */
#ifndef MP_LINKS_GPU_H
#define MP_LINKS_GPU_H

#include <stddef.h>
#include "mp_status.h"

/* Median wall time in seconds of moving `bytes` from GPU src to GPU dst, over
 * `repeat` timed transfers after `warmup` untimed ones. *method (static
 * string) names what was timed: "nccl send/recv", "cudaMemcpyPeer" or
 * "cudaMemcpy D2D". */
mp_status mp_gpu_link_time(int src, int dst, size_t bytes, int warmup, int repeat,
                           double *median_s, const char **method, mp_error *err);

#ifdef MP_HAVE_NCCL
/* As mp_gpu_link_time with NCCL send/recv (src != dst), one process driving
 * both GPUs inside ncclGroupStart/End. */
mp_status mp_gpu_link_time_nccl(int src, int dst, size_t bytes, int warmup, int repeat,
                                double *median_s, mp_error *err);
#endif

#endif
