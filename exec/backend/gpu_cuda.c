/* gpu_cuda.c — GPU facts from cudart; see gpu.h.
 * defines: mp_gpu_count, mp_gpu_info */
#include "gpu.h"
#include "cuda_check.h"

#include <cuda_runtime.h>
#include <stdio.h>

mp_status mp_gpu_count(int *count, mp_error *err)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        return mp_error_set(err, MP_ERR_BACKEND, "no CUDA device available (cudaGetDeviceCount: %s)",
                            cudaGetErrorString(e));
    }
    if (*count == 0)
        return mp_error_set(err, MP_ERR_BACKEND,
                            "no CUDA device available (cudaGetDeviceCount: 0 devices)");
    return MP_OK;
}

mp_status mp_gpu_info(int dev, char *name, size_t name_len, double *memory_bytes, mp_error *err)
{
    struct cudaDeviceProp p;
    if (CUDA_CHECK(err, cudaGetDeviceProperties(&p, dev))) return MP_ERR_BACKEND;
    if (name && name_len) snprintf(name, name_len, "%s", p.name);
    if (memory_bytes) *memory_bytes = (double)p.totalGlobalMem;
    return MP_OK;
}
