/* pipeline_check.c — what the runner checks before any work, for training and
 * serving alike: the transport compiled in, cores for pinned positions, the
 * GPU map and the CUDA devices, and whether a position fits its device's
 * memory (see pipeline.h).
 * defines: mp_pipeline_check, mp_pipeline_gpu_of, mp_pipeline_check_fit,
 *          mp_pipeline_device_of, mp_pipeline_name */
#include "pipeline.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MP_HAVE_CUDA
#include "gpu.h"
#endif

/* The GPU map (config, else $MPKIT_GPUS), or NULL for none. */
static const char *gpu_map_text(const mp_pipeline_config *c)
{
    const char *m = c->gpu_map ? c->gpu_map : getenv("MPKIT_GPUS");
    return m && *m ? m : NULL;
}

int mp_pipeline_gpu_of(const mp_pipeline_config *c, int dev)
{
    const char *m = gpu_map_text(c);
    if (!m) return dev;
    int g[4096], n = 0;   /* every entry is read, so a malformed tail is caught too */
    if (mp_cli_int_list("gpus", m, 0, 1 << 20, g, 4096, &n, NULL) != MP_OK) return -2;
    return dev >= 0 && dev < n ? g[dev] : -1;
}

static int replicas_of(const mp_pipeline_config *c) { return c->replicas > 1 ? c->replicas : 1; }

int mp_pipeline_device_of(const mp_pipeline_config *c, int p)
{
    int K = c->num_positions / replicas_of(c);
    if (K < 1) K = 1;
    return c->plan->stages[p % K].device + (p / K) * mp_plan_num_positions(c->plan);
}

const char *mp_pipeline_name(const mp_pipeline_config *c, int p, char *buf, size_t n)
{
    int K = c->num_positions / replicas_of(c);
    if (K < 1) K = 1;
    if (replicas_of(c) > 1) snprintf(buf, n, "replica %d stage %d", p / K, p % K);
    else snprintf(buf, n, "stage %d", p);
    return buf;
}

/* Training and serving started by mpirun need MPI compiled in. */
static mp_status check_transport(const mp_pipeline_config *c, mp_error *err)
{
    if (mp_transport_available(c->transport)) return MP_OK;
    if (strcmp(c->transport, "threads") && mp_transport_mpi_detected())
        return mp_error_set(err, MP_ERR_USAGE, "started by mpirun, but this mprun was built without MPI "
                                               "(rebuild with mpicc available, or start it without mpirun)");
    return MP_OK;   /* mp_transport_open says what is missing */
}

static mp_status check_cores(const mp_pipeline_config *c, mp_error *err)
{
    if (strcmp(c->backend, "cpu") || !c->pin) return MP_OK;
    const mp_plan *p = c->plan;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int s = 0; s < p->num_stages; s++)
        if (p->stages[s].device >= ncpu)
            return mp_error_set(err, MP_ERR_INPUT, "plan: stages[%d].device: no core %d on this machine (it has %ld; "
                                "--no-pin runs stages unpinned)", s, p->stages[s].device, ncpu);
    for (int q = 0; q < c->num_positions; q++) {
        int d = mp_pipeline_device_of(c, q);
        char nm[48];
        if (d >= ncpu)
            return mp_error_set(err, MP_ERR_INPUT, "plan: %s runs on device %d: no core %d on this machine (it has %ld; "
                                "--no-pin runs stages unpinned)", mp_pipeline_name(c, q, nm, sizeof nm), d, d, ncpu);
    }
    return MP_OK;
}

/* --backend cuda: the map well formed, a usable GPU, and every position's
 * device mapped to one. Positions may share a GPU (each gets its own stream
 * and cuBLAS handle): plans name distinct devices, and --gpus 0,0 runs two
 * on GPU 0. */
static mp_status check_cuda(const mp_pipeline_config *c, mp_error *err)
{
    if (strcmp(c->backend, "cuda")) return MP_OK;
    const char *map = gpu_map_text(c);
    if (map && mp_pipeline_gpu_of(c, 0) == -2)
        return mp_error_set(err, MP_ERR_USAGE, "GPU map '%s': expected GPU indices separated by commas, e.g. 0,0", map);
#ifdef MP_HAVE_CUDA
    int n = 0;
    mp_error e;
    mp_error_clear(&e);
    if (mp_gpu_count(&n, &e) != MP_OK) return mp_error_set(err, MP_ERR_BACKEND, "--backend cuda: %s", e.msg);
    for (int s = 0; s < c->num_positions; s++) {
        int d = mp_pipeline_device_of(c, s), g = mp_pipeline_gpu_of(c, d);
        if (g == -1)
            return mp_error_set(err, MP_ERR_INPUT, "stage %d: device %d has no entry in the GPU map '%s'", s, d, map);
        if (g >= n) {
            if (map)
                return mp_error_set(err, MP_ERR_INPUT, "stage %d: device %d maps to GPU %d but only %d CUDA device%s "
                                    "(GPU map '%s')", s, d, g, n, n == 1 ? "" : "s", map);
            return mp_error_set(err, MP_ERR_INPUT, "stage %d: device %d but only %d CUDA device%s (--gpus 0,0,... or "
                                "MPKIT_GPUS=0,0,... maps plan devices to GPUs, e.g. every stage on GPU 0)", s, d, n,
                                n == 1 ? "" : "s");
        }
    }
    return MP_OK;
#else
    return mp_error_set(err, MP_ERR_BACKEND, "--backend cuda: backend 'cuda' was not compiled into this build "
                        "(no CUDA toolkit found at build time)");
#endif
}

mp_status mp_pipeline_check(const mp_pipeline_config *c, mp_error *err)
{
    mp_status st;
    if ((st = check_transport(c, err)) != MP_OK) return st;
    if ((st = check_cores(c, err)) != MP_OK) return st;
    return check_cuda(c, err);
}

mp_status mp_pipeline_check_fit(const mp_pipeline_config *c, int stage, int dev, double need, const char *what,
                                mp_error *err)
{
    if (!c->device_memory || dev < 0 || dev >= c->num_devices || !(need > c->device_memory[dev])) return MP_OK;
    return mp_error_set(err, MP_ERR_INPUT, "stage %d does not fit on device %d: it needs %.0f bytes (%s), the device "
                        "has %.0f", stage, dev, need, what, c->device_memory[dev]);
}
