/* prof_allreduce.c — the ring all-reduce of data parallelism (collective.h)
 * for mpprof --links: its fit, and its measurement over worker threads on the
 * threads transport mprun uses (under mpirun, links_mpi.c measures it over
 * the ranks).
 * defines: mp_prof_allreduce_fit, mp_prof_allreduce_threads */
#include "prof.h"
#include "clock.h"
#include "collective.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mp_prof_allreduce_fit(const double *bytes, const double *ms, int n, int D, mp_cluster *c)
{
    c->allreduce_latency_s = c->allreduce_bandwidth = 0;
    c->allreduce_points = c->allreduce_members = 0;
    double *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x), *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    if (!x || !y || n < 1 || D < 2) { free(x); free(y); return; }
    for (int k = 0; k < n; k++) {
        x[k] = bytes[k] / D;                 /* one chunk */
        y[k] = ms[k] / (2.0 * (D - 1));      /* one ring step */
    }
    mp_fit f = mp_prof_fit_weighted(x, y, n);
    c->allreduce_latency_s = f.alpha > 0 ? f.alpha / 1e3 : 0;
    c->allreduce_bandwidth = f.beta > 0 ? 1e3 / f.beta : x[n - 1] / (y[n - 1] / 1e3);
    /* the points, at most MP_ALLREDUCE_POINTS of them evenly spread (the
     * largest always), sizes strictly increasing */
    int stride = (n + MP_ALLREDUCE_POINTS - 1) / MP_ALLREDUCE_POINTS, np = 0;
    for (int k = (n - 1) % stride; k < n; k += stride)
        if (y[k] > 0 && (np == 0 || x[k] > c->allreduce_chunk_bytes[np - 1])) {
            c->allreduce_chunk_bytes[np] = x[k];
            c->allreduce_step_ms[np++] = y[k];
        }
    c->allreduce_points = np;
    c->allreduce_members = np ? D : 0;
    free(x);
    free(y);
}

#define AR_TIMEOUT_S 30.0
#define AR_MAXIT 200

typedef struct {
    mp_transport *t;
    int D, me, iters;
    size_t len;
    float *data, *scratch;
    double *samples;           /* member 0: [iters] ms */
    mp_status st;
    mp_error err;
} member;

static void *member_main(void *arg)
{
    member *m = arg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 1) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(m->me % ncpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    mp_coll_host h = { m->t, m->me, AR_TIMEOUT_S };
    mp_coll_io io = mp_coll_io_host(&h);
    int ring[64];
    for (int q = 0; q < m->D; q++) ring[q] = q;
    for (int i = -2; i < m->iters && m->st == MP_OK; i++) {   /* two warm-up calls */
        int flag = 0;
        m->st = m->t->i->agree(m->t, m->me, &flag, AR_TIMEOUT_S, &m->err);
        double t0 = mp_now_ms();
        if (m->st == MP_OK) m->st = mp_coll_allreduce(&io, ring, m->D, m->me, 0, m->data, m->len, m->scratch, &m->err);
        if (m->st == MP_OK && i >= 0 && m->samples) m->samples[i] = mp_now_ms() - t0;
    }
    if (m->st != MP_OK) m->t->i->abort(m->t, m->me, m->err.msg);
    return NULL;
}

mp_status mp_prof_allreduce_threads(const double *sizes, int n, int repeat, int D, mp_cluster *c, mp_error *err)
{
    if (D < 2 || D > 64) return mp_error_set(err, MP_ERR_INTERNAL, "all-reduce measurement: %d threads", D);
    member *ms = calloc((size_t)D, sizeof *ms);
    double *samples = malloc(AR_MAXIT * sizeof *samples), *med = calloc((size_t)n, sizeof *med);
    size_t maxf = 1;
    for (int k = 0; k < n; k++) if ((size_t)sizes[k] / 4 > maxf) maxf = (size_t)sizes[k] / 4;
    mp_status st = ms && samples && med ? MP_OK : mp_error_set(err, MP_ERR_NOMEM, "mpprof --links: out of memory");
    for (int j = 0; st == MP_OK && j < D; j++)
        if (!(ms[j].data = calloc(maxf, sizeof(float))) || !(ms[j].scratch = calloc(maxf, sizeof(float))))
            st = mp_error_set(err, MP_ERR_NOMEM, "mpprof --links: cannot allocate %zu-float buffers", maxf);
    cpu_set_t saved;
    int have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
    pthread_t th[64];
    for (int k = 0; k < n && st == MP_OK; k++) {
        mp_transport *t = NULL;
        if ((st = mp_transport_open("threads", D, 4 * D, &t, err)) != MP_OK) break;
        long it = (long)((64.0 * 1048576) / sizes[k]);   /* about 64 MiB per size, at least `repeat` */
        int iters = (int)(it < repeat ? repeat : it > AR_MAXIT ? AR_MAXIT : it);
        int started = 0;
        for (int j = 0; j < D; j++) {
            ms[j].t = t;
            ms[j].D = D;
            ms[j].me = j;
            ms[j].iters = iters;
            ms[j].len = (size_t)sizes[k] / 4;
            ms[j].samples = j == 0 ? samples : NULL;
            ms[j].st = MP_OK;
            mp_error_clear(&ms[j].err);
        }
        for (; started < D; started++)
            if (pthread_create(&th[started], NULL, member_main, &ms[started]) != 0) break;
        if (started < D) {
            t->i->abort(t, 0, "mpprof --links: cannot start a thread");
            st = mp_error_set(err, MP_ERR_BACKEND, "mpprof --links: cannot start a thread");
        }
        for (int j = 0; j < started; j++) pthread_join(th[j], NULL);
        for (int j = 0; j < D && st == MP_OK; j++)
            if (ms[j].st != MP_OK) { st = ms[j].st; *err = ms[j].err; }
        mp_transport_close(t, st != MP_OK);
        if (st != MP_OK) break;
        gsl_sort(samples, 1, (size_t)iters);
        med[k] = gsl_stats_median_from_sorted_data(samples, 1, (size_t)iters);
    }
    if (have_saved) sched_setaffinity(0, sizeof saved, &saved);
    if (st == MP_OK) mp_prof_allreduce_fit(sizes, med, n, D, c);
    for (int j = 0; ms && j < D; j++) { free(ms[j].data); free(ms[j].scratch); }
    free(ms);
    free(samples);
    free(med);
    return st;
}
