/* links_mpi.c — MPI ping-pong between ranks for mpprof --links under mpirun
 * (compiled only when MPI is found; registered in prof_links.c). Rank 0
 * ping-pongs with every other rank at each size; the fitted latency and
 * bandwidth become that pair's links (both directions), their average the
 * default link. One device per rank, memory = this host's MemAvailable
 * divided by the ranks on it. Then the ring all-reduce that mprun's data
 * parallelism runs (collective.h, over every rank) is timed at each size and
 * fitted as time = 2(D-1)(latency + bytes/(D bandwidth)): the cluster's
 * "allreduce" (docs/formats.md). */
#include "prof.h"
#include "collective.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mpi_active(void)
{
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    return s && atoi(s) >= 2;
}

static void mpi_finish(void)
{
    int on = 0;
    MPI_Initialized(&on);
    if (on) MPI_Finalize();
}

/* The collective's io over MPI directly: a send is posted (MPI_Isend) and
 * completed after the receive that the ring always posts next. */
typedef struct {
    MPI_Request pending;
    int has_pending;
} mpi_io;

static mp_status io_send(void *ctx, int dst, int tag, const float *buf, size_t n, mp_error *err)
{
    mpi_io *m = ctx;
    MPI_Isend(buf, (int)n, MPI_FLOAT, dst, tag & 0x7fff, MPI_COMM_WORLD, &m->pending);
    m->has_pending = 1;
    return MP_OK;
}

static mp_status io_recv(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err)
{
    mpi_io *m = ctx;
    MPI_Recv(buf, (int)n, MPI_FLOAT, src, tag & 0x7fff, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (m->has_pending) MPI_Wait(&m->pending, MPI_STATUS_IGNORE);
    m->has_pending = 0;
    return MP_OK;
}

/* Times the ring all-reduce of sizes[k] bytes over all ranks (rank 0's
 * median after a barrier per call) and writes the fit and the points into c
 * (rank 0). */
static mp_status allreduce_fit(int rank, int size, const double *sizes, int n, int iters, double *samples,
                               mp_cluster *c, mp_error *err)
{
    size_t maxf = 1;
    for (int k = 0; k < n; k++) if ((size_t)sizes[k] / 4 > maxf) maxf = (size_t)sizes[k] / 4;
    float *data = calloc(maxf, sizeof(float)), *scratch = calloc(maxf, sizeof(float));
    double *x = calloc((size_t)n, sizeof *x), *y = calloc((size_t)n, sizeof *y);   /* bytes, ms */
    int *ring = malloc((size_t)size * sizeof *ring);
    mp_status st = MP_OK;
    if (!data || !scratch || !x || !y || !ring) st = mp_error_set(err, MP_ERR_NOMEM, "mpprof --links (MPI): out of memory");
    for (int q = 0; ring && q < size; q++) ring[q] = q;
    mpi_io m = { MPI_REQUEST_NULL, 0 };
    mp_coll_io io = { &m, io_send, io_recv, NULL, NULL };
    for (int k = 0; k < n && st == MP_OK; k++) {
        size_t len = (size_t)sizes[k] / 4;
        for (int i = -2; i < iters && st == MP_OK; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            st = mp_coll_allreduce(&io, ring, size, rank, 0, data, len, scratch, err);
            if (i >= 0) samples[i] = (MPI_Wtime() - t0) * 1e3;
        }
        gsl_sort(samples, 1, (size_t)iters);
        x[k] = (double)(len * sizeof(float));
        y[k] = gsl_stats_median_from_sorted_data(samples, 1, (size_t)iters);
    }
    if (st == MP_OK && rank == 0) mp_prof_allreduce_fit(x, y, n, size, c);
    free(data); free(scratch); free(x); free(y); free(ring);
    return st;
}

/* One-way time (ms, median) between rank 0 and `peer` for `bytes`. */
static double pingpong(int rank, int peer, char *buf, size_t bytes, int iters, double *samples)
{
    for (int i = -2; i < iters; i++) {   /* two warm-up rounds */
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, (int)bytes, MPI_BYTE, peer, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
        if (i >= 0) samples[i] = (MPI_Wtime() - t0) * 1e3 / 2;
    }
    gsl_sort(samples, 1, (size_t)iters);
    return gsl_stats_median_from_sorted_data(samples, 1, (size_t)iters);
}

static mp_status mpi_measure(const double *sizes, int n, int repeat, mp_cluster *c,
                             mp_link_fit *fit01, int *is_root, mp_error *err)
{
    int rank, size, local = 1;
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    *is_root = rank == 0;
    size_t maxs = 0;
    for (int k = 0; k < n; k++) if ((size_t)sizes[k] > maxs) maxs = (size_t)sizes[k];
    if (maxs > (size_t)1 << 30) maxs = (size_t)1 << 30;
    char *buf = calloc(1, maxs);
    int iters = repeat < 5 ? 5 : repeat;
    double *samples = malloc((size_t)iters * sizeof *samples);
    double *ms = calloc((size_t)n * size, sizeof *ms);
    double mem = mp_machine_mem_available() / local, *mems = calloc((size_t)size, sizeof *mems);
    if (!buf || !samples || !ms || !mems) {
        free(buf); free(samples); free(ms); free(mems);
        return mp_error_set(err, MP_ERR_NOMEM, "mpprof --links (MPI): out of memory");
    }
    for (int peer = 1; peer < size; peer++)
        for (int k = 0; k < n; k++)
            if (rank == 0 || rank == peer)
                ms[(size_t)peer * n + k] = pingpong(rank, peer, buf, (size_t)sizes[k], iters, samples);
    MPI_Gather(&mem, 1, MPI_DOUBLE, mems, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    mp_status st = MP_OK;
    if (rank == 0) {
        mp_link_fit *fits = calloc((size_t)size, sizeof *fits);
        double lat = 0, inv_bw = 0;
        for (int peer = 1; peer < size && fits; peer++) {
            mp_fit f = mp_prof_fit(sizes, ms + (size_t)peer * n, n);
            fits[peer].latency_s = f.alpha > 0 ? f.alpha / 1e3 : 0;
            fits[peer].bandwidth = f.beta > 0 ? 1e3 / f.beta : 1e12;
            fits[peer].r2 = f.r2;
            lat += fits[peer].latency_s / (size - 1);
            inv_bw += 1.0 / fits[peer].bandwidth / (size - 1);
        }
        st = fits ? mp_cluster_uniform(c, size, mems[0] > 0 ? mems[0] : 1e9, 1.0 / inv_bw, lat, err)
                  : mp_error_set(err, MP_ERR_NOMEM, "out of memory");
        for (int r = 0; st == MP_OK && r < size; r++) {
            char name[300];
            snprintf(name, sizeof name, "rank%d: %s", r, mp_machine_cpu_model());
            free(c->devices[r].name);
            c->devices[r].name = strdup(name);
            if (mems[r] > 0) c->devices[r].memory_bytes = mems[r];
            if (r > 0) {
                mp_link L = {fits[r].bandwidth, fits[r].latency_s};
                c->links[(size_t)r] = L;              /* 0 -> r */
                c->links[(size_t)r * size] = L;       /* r -> 0 */
            }
        }
        if (st == MP_OK) {
            fit01->n = n;
            fit01->bytes = malloc((size_t)n * sizeof(double));
            fit01->ms = malloc((size_t)n * sizeof(double));
            if (fit01->bytes && fit01->ms) {
                memcpy(fit01->bytes, sizes, (size_t)n * sizeof(double));
                memcpy(fit01->ms, ms + n, (size_t)n * sizeof(double));
            }
            fit01->latency_s = fits[1].latency_s;
            fit01->bandwidth = fits[1].bandwidth;
            fit01->r2 = fits[1].r2;
        }
        free(fits);
    }
    mp_status ast = allreduce_fit(rank, size, sizes, n, iters, samples, c, err);
    if (st == MP_OK) st = ast;
    free(buf); free(samples); free(ms); free(mems);
    return st;
}

const mp_links_mpi_i mp_links_mpi_impl = {
    .active = mpi_active,
    .measure = mpi_measure,
    .finish = mpi_finish,
};
