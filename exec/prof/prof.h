/* prof.h — the measuring parts of mpprof (private to exec/).
 * defines: mp_fit, mp_prof_settings, mp_prof_layer, mp_prof_fit, mp_prof_fit_weighted, mp_prof_layers,
 *          mp_prof_layers_free, mp_prof_links_cpu, mp_link_fit, mp_links_mpi_i,
 *          mp_links_mpi (machine facts: core/machine.h) */
#ifndef MP_PROF_H
#define MP_PROF_H

#include <stddef.h>
#include "backend.h"
#include "cluster.h"
#include "machine.h"
#include "model.h"

typedef struct { double alpha, beta, r2; } mp_fit;   /* time = alpha + beta*x */

typedef struct {
    int nb;
    int *batch;               /* strictly increasing, >= 1 */
    int warmup, repeat;       /* per (layer, batch) pair and profiling thread */
    int threads;              /* profiling threads at once, one per core (cpu); <= 1: one, on the caller's backend */
    int first_core;           /* thread t is pinned to core (first_core + t) % cores (-1: 0) */
    int rotate;               /* buffer sets (input, output, stash, gradients) used in turn (>= 1) */
    double min_sample_ms;     /* a sample repeats a short op until fwd+bwd last 2x this (0: once) */
    int sequential;           /* 1: layer by layer, all repeats of a pair back to back (the old order) */
} mp_prof_settings;

typedef struct {
    const char *name;         /* points into the model */
    double *fwd_ms, *bwd_ms;  /* medians per batch size (nb each) */
    double *fwd_sd, *bwd_sd;  /* standard deviations (ms) per batch size */
    double *fwd_min, *bwd_min;
    double *bwd_in_ms, *bwd_w_ms;   /* the split backward's medians: input and weight gradient */
    mp_fit fwd, bwd;
    double param_bytes, out_bytes_per_sample, stash_bytes_per_sample, workspace_bytes;
    double wstash_bytes_per_sample;   /* what the input gradient keeps for the weight gradient */
    double allocated_bytes;   /* backend mem_used for the layer at the largest batch (-1: unknown) */
} mp_prof_layer;

/* Least-squares fit y = alpha + beta*x over n points (GSL), with R^2
 * (1 when y is constant). n == 1: alpha = 0, beta = y/x, r2 = 1. */
mp_fit mp_prof_fit(const double *x, const double *y, int n);

/* Weighted least squares (GSL, weights 1/y^2: relative errors count, so a
 * small intercept is not lost to the large points), R^2 weighted alike. */
mp_fit mp_prof_fit_weighted(const double *x, const double *y, int n);

/* Progress callback: layer i of n done (name), for stderr lines. */
typedef void (*mp_prof_progress)(int i, int n, const char *name, void *ctx);

/* Times every layer of m at each batch size (warm-up, then `repeat` timed
 * runs of forward and of backward each per thread; medians and spread over
 * the samples of all threads via GSL). With s->threads > 1 each thread opens
 * its own backend named like be, pinned to its core, and all time the same
 * layers at once; else be is used by the calling thread. Layers are taken in
 * groups that fit a memory budget; each of `repeat` rounds runs, per batch
 * size, a training step through the group (every forward in order, every
 * backward in reverse, each timed; unless s->sequential) rotating s->rotate
 * buffer sets.
 * out: m->num_layers entries, freed with mp_prof_layers_free. A layer that
 * does not fit the device memory (mem_limit bytes; 0 = unknown) fails with
 * MP_ERR_INPUT naming the layer. */
mp_status mp_prof_layers(mp_backend *be, const mp_model *m, const mp_prof_settings *s,
                         double mem_limit, mp_prof_layer *out, mp_prof_progress cb,
                         void *cb_ctx, mp_error *err);
void mp_prof_layers_free(mp_prof_layer *l, int n);

/* One measured link: one-way times (ms, medians) at each size and the fit
 * latency + bytes/bandwidth. */
typedef struct {
    int n;
    double *bytes, *ms;
    double latency_s, bandwidth, r2;
} mp_link_fit;

/* CPU links: ping-pong between two worker threads pinned to cores 0 and 1
 * (when there are two) over the "threads" transport (exec/comm/transport.h) that
 * mprun uses; sizes[n] bytes; weighted fit (mp_prof_fit_weighted). */
mp_status mp_prof_links_cpu(const double *sizes, int n, int repeat, mp_link_fit *out, mp_error *err);

/* The ring all-reduce (exec/comm/collective.h) measured as ms[k] (whole
 * call, ms) at sizes bytes[k] (increasing) over D members, written into c:
 * the fit ms = 2(D-1)(latency + bytes/(D bandwidth)), weighted as
 * mp_prof_fit_weighted, into allreduce_latency_s / allreduce_bandwidth, and
 * the points themselves (at most MP_ALLREDUCE_POINTS) into allreduce_points,
 * which the cost model uses (sim/allreduce.h). */
void mp_prof_allreduce_fit(const double *bytes, const double *ms, int n, int D, mp_cluster *c);

/* Times the ring all-reduce over D (2..64) worker threads pinned to cores
 * 0..D-1 on the "threads" transport mprun uses, at each of sizes[n] bytes
 * (member 0's median after a barrier per call), and writes the fit and the
 * points into c (mp_prof_allreduce_fit). */
mp_status mp_prof_allreduce_threads(const double *sizes, int n, int repeat, int D, mp_cluster *c, mp_error *err);

/* MPI links, registered by links_mpi.c when MPI is compiled in (else NULL):
 * active() says whether this process runs under mpirun with >= 2 ranks;
 * measure() ping-pongs rank 0 with each other rank and fills a cluster (one
 * device per rank; on rank 0 only; *is_root says which rank writes). */
typedef struct {
    int (*active)(void);
    mp_status (*measure)(const double *sizes, int n, int repeat, mp_cluster *c,
                         mp_link_fit *fit01, int *is_root, mp_error *err);
    void (*finish)(void);
} mp_links_mpi_i;
extern const mp_links_mpi_i *const mp_links_mpi;


#endif
