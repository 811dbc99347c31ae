/* prof_links.c — CPU link measurement for mpprof --links: a buffer handed
 * between two worker threads (each copies it with memcpy, ping-pong), timed
 * at each size and fitted as latency + bytes/bandwidth. Also the single
 * registration point of the optional MPI link measurement. */
#include "prof.h"
#include "clock.h"
#include "transport.h"

#include <gsl/gsl_fit.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <pthread.h>
#include <sched.h>
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

/* Position 0 (ping, core 0) sends a buffer to position 1 (pong, core 1) over
 * the same "threads" transport mprun uses (buffered send, mailbox under a
 * mutex, condvar wake-up of the blocked receiver, copy out), pong sends it
 * back; one-way time = half the round trip. */
typedef struct {
    mp_transport *t;
    char *a, *b;              /* a: ping's buffer, b: pong's buffer */
    size_t size;
    int iters;                /* timed round trips (after 3 untimed) */
    double *samples;          /* round-trip times, ms */
    mp_status st;
    mp_error err;
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

#define PP_TIMEOUT_S 30.0

static void *pong_main(void *arg)
{
    pingpong *p = arg;
    mp_transport *t = p->t;
    pin(1);
    for (int i = 0; i < p->iters + 3 && !p->st; i++) {
        p->st = t->i->recv(t, 1, 0, MP_TAG(MP_TAG_ACT, 0, 0), p->b, p->size, PP_TIMEOUT_S, &p->err);
        if (!p->st) p->st = t->i->send(t, 1, 0, MP_TAG(MP_TAG_GRAD, 1, 0), p->b, p->size, PP_TIMEOUT_S, &p->err);
    }
    if (p->st) t->i->abort(t, 1, p->err.msg);
    return NULL;
}

static mp_status ping(pingpong *p, mp_error *err)
{
    mp_transport *t = p->t;
    mp_status st = MP_OK;
    for (int i = 0; i < p->iters + 3 && !st; i++) {
        double t0 = mp_now_ms();
        st = t->i->send(t, 0, 1, MP_TAG(MP_TAG_ACT, 0, 0), p->a, p->size, PP_TIMEOUT_S, err);
        if (!st) st = t->i->recv(t, 0, 1, MP_TAG(MP_TAG_GRAD, 1, 0), p->a, p->size, PP_TIMEOUT_S, err);
        if (i >= 3) p->samples[i - 3] = mp_now_ms() - t0;
    }
    if (st) t->i->abort(t, 0, err->msg);
    return st;
}

mp_fit mp_prof_fit_weighted(const double *x, const double *y, int n)
{
    mp_fit f = {0, 0, 1};
    if (n < 2) return mp_prof_fit(x, y, n);
    double *w = malloc((size_t)n * sizeof *w);
    if (!w) return mp_prof_fit(x, y, n);
    for (int i = 0; i < n; i++) w[i] = y[i] > 0 ? 1.0 / (y[i] * y[i]) : 1.0;
    double c0, c1, cov00, cov01, cov11, chisq;
    gsl_fit_wlinear(x, 1, w, 1, y, 1, (size_t)n, &c0, &c1, &cov00, &cov01, &cov11, &chisq);
    double wm = gsl_stats_wmean(w, 1, y, 1, (size_t)n), sst = 0;
    for (int i = 0; i < n; i++) sst += w[i] * (y[i] - wm) * (y[i] - wm);
    free(w);
    f.alpha = c0;
    f.beta = c1;
    f.r2 = sst > 0 ? 1.0 - chisq / sst : 1.0;
    return f;
}

mp_status mp_prof_links_cpu(const double *sizes, int n, int repeat, mp_link_fit *out, mp_error *err)
{
    memset(out, 0, sizeof *out);
    size_t maxs = 0;
    for (int k = 0; k < n; k++) if ((size_t)sizes[k] > maxs) maxs = (size_t)sizes[k];
    pingpong p = {0};
    p.a = malloc(maxs);
    p.b = malloc(maxs);
    int maxit = repeat > 200 ? repeat : 200;
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
    mp_status st = MP_OK;
    cpu_set_t saved;
    int have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
    for (int k = 0; k < n && !st; k++) {
        p.size = (size_t)sizes[k];
        /* more iterations for small sizes, at least `repeat`, about 64 MiB per size */
        long it = (long)((64.0 * 1048576) / (double)p.size);
        p.iters = (int)(it < repeat ? repeat : it > maxit ? maxit : it);
        p.st = MP_OK;
        if ((st = mp_transport_open("threads", 2, 4, &p.t, err))) break;
        pthread_t pong;
        if (pthread_create(&pong, NULL, pong_main, &p) != 0) {
            mp_transport_close(p.t, 1);
            st = mp_error_set(err, MP_ERR_BACKEND, "mpprof --links: cannot start a thread");
            break;
        }
        pin(0);
        st = ping(&p, err);
        pthread_join(pong, NULL);
        mp_transport_close(p.t, st != MP_OK);
        if (!st && p.st) { st = p.st; *err = p.err; }
        if (st) break;
        gsl_sort(p.samples, 1, (size_t)p.iters);
        out->bytes[k] = sizes[k];
        out->ms[k] = gsl_stats_median_from_sorted_data(p.samples, 1, (size_t)p.iters) / 2;   /* one way */
    }
    if (have_saved) sched_setaffinity(0, sizeof saved, &saved);
    free(p.a); free(p.b); free(p.samples);
    if (st) return st;
    /* relative (1/t^2) weights: the small sizes, which fix the latency, count as much as the large */
    mp_fit f = mp_prof_fit_weighted(out->bytes, out->ms, n);
    out->latency_s = f.alpha > 0 ? f.alpha / 1e3 : 0;
    out->bandwidth = f.beta > 0 ? 1e3 / f.beta : out->bytes[n - 1] / (out->ms[n - 1] / 1e3);
    out->r2 = f.r2;
    return MP_OK;
}
