/* prof_links.c — CPU link measurement for mpprof --links: a buffer handed
 * between two worker threads (each copies it with memcpy, ping-pong), timed
 * at each size and fitted as latency + bytes/bandwidth. Also the single
 * registration point of the optional MPI link measurement. */
#include "prof.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- registration */

#ifdef MP_HAVE_MPI
extern const mp_links_mpi_i mp_links_mpi_impl;
const mp_links_mpi_i *const mp_links_mpi = &mp_links_mpi_impl;
#else
const mp_links_mpi_i *const mp_links_mpi = NULL;
#endif

/* ---------------------------------------------------------------- ping-pong */

typedef struct {
    char *a, *b;              /* a: ping's buffer, b: pong's buffer */
    size_t size;
    atomic_int turn;          /* 0: ping's turn, 1: pong's, -1: stop */
    int iters;
    double *samples;          /* round-trip times, ms */
} pingpong;

static void pin(int core)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core % n, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static void *pong_main(void *arg)
{
    pingpong *p = arg;
    pin(1);
    for (;;) {
        int t;
        while ((t = atomic_load_explicit(&p->turn, memory_order_acquire)) == 0) ;
        if (t < 0) return NULL;
        memcpy(p->b, p->a, p->size);   /* receive: pull the sender's buffer */
        atomic_store_explicit(&p->turn, 0, memory_order_release);
    }
}

/* One round: ping copies b -> a (receive the reply), hands a over. */
static void *ping_main(void *arg)
{
    pingpong *p = arg;
    pin(0);
    for (int i = 0; i < p->iters; i++) {
        double t0 = now_ms();
        atomic_store_explicit(&p->turn, 1, memory_order_release);
        while (atomic_load_explicit(&p->turn, memory_order_acquire) != 0) ;
        memcpy(p->a, p->b, p->size);
        p->samples[i] = now_ms() - t0;
    }
    return NULL;
}

mp_status mp_prof_links_cpu(const double *sizes, int n, int repeat, mp_link_fit *out, mp_error *err)
{
    memset(out, 0, sizeof *out);
    size_t maxs = 0;
    for (int k = 0; k < n; k++) if ((size_t)sizes[k] > maxs) maxs = (size_t)sizes[k];
    pingpong p = {0};
    p.a = malloc(maxs);
    p.b = malloc(maxs);
    int maxit = repeat + 3 > 200 ? repeat + 3 : 200;
    p.samples = malloc((size_t)maxit * sizeof(double));
    out->bytes = malloc((size_t)n * sizeof(double));
    out->ms = malloc((size_t)n * sizeof(double));
    if (!p.a || !p.b || !p.samples || !out->bytes || !out->ms) {
        free(p.a); free(p.b); free(p.samples);
        return mp_error_set(err, MP_ERR_NOMEM, "mpprof --links: cannot allocate %zu-byte buffers", maxs);
    }
    memset(p.a, 1, maxs);
    memset(p.b, 2, maxs);
    out->n = n;
    for (int k = 0; k < n; k++) {
        p.size = (size_t)sizes[k];
        /* more iterations for small sizes, at least `repeat`, about 64 MiB per size */
        long it = (long)((64.0 * 1048576) / (double)p.size);
        p.iters = (int)(it < repeat ? repeat : it > maxit ? maxit : it);
        atomic_store(&p.turn, 0);
        pthread_t pong, ping;
        pthread_create(&pong, NULL, pong_main, &p);
        int warm_iters = p.iters;
        p.iters = 3 < warm_iters ? 3 : warm_iters;    /* warm-up round */
        pthread_create(&ping, NULL, ping_main, &p);
        pthread_join(ping, NULL);
        p.iters = warm_iters;
        pthread_create(&ping, NULL, ping_main, &p);
        pthread_join(ping, NULL);
        atomic_store(&p.turn, -1);
        pthread_join(pong, NULL);
        gsl_sort(p.samples, 1, (size_t)p.iters);
        out->bytes[k] = sizes[k];
        out->ms[k] = gsl_stats_median_from_sorted_data(p.samples, 1, (size_t)p.iters) / 2;   /* one way */
    }
    free(p.a); free(p.b); free(p.samples);
    mp_fit f = mp_prof_fit(out->bytes, out->ms, n);
    out->latency_s = f.alpha > 0 ? f.alpha / 1e3 : 0;
    out->bandwidth = f.beta > 0 ? 1e3 / f.beta : out->bytes[n - 1] / (out->ms[n - 1] / 1e3);
    out->r2 = f.r2;
    return MP_OK;
}
