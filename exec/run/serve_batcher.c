/* serve_batcher.c — the serving runtime's load generator (the runner's host
 * thread), the batcher (run by stage 0's worker, which is exactly "stage 0
 * becomes free") and the clock they share with the stages (serve_impl.h).
 * defines: mp_serve_precise_timers, mp_serve_go_realtime, mp_serve_on_fail,
 *          mp_serve_generator, mp_serve_next_batch, mp_serve_stage_clock
 *
 * Batcher (docs/serving.md §1): with a_i the oldest queued request's arrival
 * (when the generator released it to the server: a server knows nothing of
 * the schedule), a batch is ready when B requests are queued or at a_i + W;
 * stage 0 takes it when it is free: every queued request (at most B) in
 * arrival order.
 * Sleeps are absolute on CLOCK_MONOTONIC (clock_nanosleep / timed condvar
 * waits) with the thread's timer slack set to 1 ns, never spins. */
#include "serve_impl.h"
#include "clock.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- clock */

static struct timespec ts_of_ms(double ms)
{
    struct timespec ts;
    if (ms < 0) ms = 0;
    double s = floor(ms / 1e3);
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((ms - s * 1e3) * 1e6);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    if (ts.tv_nsec < 0) ts.tv_nsec = 0;
    return ts;
}

void mp_serve_precise_timers(void) { prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); }

/* cpu with pinning: keep the generator off the stages' cores when a core is
 * left. Off by default (MPKIT_SERVE_PIN_GENERATOR=1 turns it on): on the
 * 2-core test VM it made the served throughput lower, not higher. */
static void pin_generator(const mp_serve_run_config *c)
{
    if (!c->pin || strcmp(c->backend, "cpu")) return;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    int any = 0;
    for (long core = 0; core < ncpu && core < CPU_SETSIZE; core++) {
        int used = 0;
        for (int s = 0; s < c->plan->num_stages; s++) used |= c->plan->stages[s].device == core;
        if (!used) { CPU_SET(core, &set); any = 1; }
    }
    if (any) sched_setaffinity(0, sizeof set, &set);
}

/* The failure is latched already (mp_pipeline_fail). */
void mp_serve_on_fail(void *mode)
{
    mp_serve_rt *sv = mode;
    pthread_mutex_lock(&sv->mu);
    sv->failed = 1;
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
}

/* --realtime: SCHED_FIFO at a low real-time priority, so that other
 * processes on a shared machine do not preempt the generator or a stage for a
 * whole time slice (the p99 tail). The kernel's RT throttling still leaves
 * them 5% of each core. Counts the threads that got it. */
void mp_serve_go_realtime(mp_serve_rt *sv)
{
    if (!sv->c->realtime) return;
    struct sched_param sp = { .sched_priority = 10 };
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) {
        pthread_mutex_lock(&sv->mu);
        sv->res->realtime_threads++;
        pthread_mutex_unlock(&sv->mu);
    }
}

/* ---------------------------------------------------------------- generator */

/* Sets the clock: every time recorded is relative to t0 on this process's
 * CLOCK_MONOTONIC; the batcher gives up at deadline; go releases the
 * generator and the stages. */
static void start_clock_at(mp_serve_rt *sv, double t0)
{
    sv->t0 = t0;
    sv->deadline = sv->t0 + sv->c->arrival_ms[sv->c->n - 1] + 1e3 * sv->c->drain_s;
    sv->go = 1;
    pthread_cond_broadcast(&sv->cv);
}

/* Releases request i at t0 + arrival_ms[i]; every request already due is
 * queued under one lock, so requests with equal times are seen together. On
 * threads it starts the clock once every stage is set up; under MPI the
 * stages start it (start_clock_mpi). */
void mp_serve_generator(void *mode, mp_pipeline *pl)
{
    mp_serve_rt *sv = mode;
    if (pl->rank > 0) return;
    mp_serve_precise_timers();
    mp_serve_go_realtime(sv);
    if (getenv("MPKIT_SERVE_PIN_GENERATOR")) pin_generator(sv->c);
    pthread_mutex_lock(&sv->mu);
    while (!sv->mpi && sv->ready < sv->K && !sv->failed) pthread_cond_wait(&sv->cv, &sv->mu);
    if (!sv->mpi && !sv->failed) start_clock_at(sv, mp_now_ms() + 20);
    while (!sv->go && !sv->failed) pthread_cond_wait(&sv->cv, &sv->mu);
    pthread_mutex_unlock(&sv->mu);
    const double *a = sv->c->arrival_ms;
    int n = sv->c->n, i = 0;
    while (i < n) {
        double due = sv->t0 + a[i];
        if (mp_now_ms() < due) {
            struct timespec ts = ts_of_ms(due);
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
        }
        double now = mp_now_ms();
        pthread_mutex_lock(&sv->mu);
        if (sv->failed) { pthread_mutex_unlock(&sv->mu); break; }
        while (i < n && sv->t0 + a[i] <= now) sv->res->release_ms[i++] = now - sv->t0;
        sv->pushed = i;
        pthread_cond_broadcast(&sv->cv);
        pthread_mutex_unlock(&sv->mu);
    }
    pthread_mutex_lock(&sv->mu);
    sv->gen_done = 1;
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
}

/* ---------------------------------------------------------------- batcher */

/* MPI: a send completes only while its sender drives MPI (a large message
 * waits for the receiver, then for the sender's next MPI call). Stage 0
 * spends its idle time in the batcher's condition wait, so while one of its
 * sends is not yet delivered it wakes every SEND_POLL_MS to drive it (a
 * flush with no wait); otherwise it sleeps as on threads. */
#define SEND_POLL_MS 0.05

static void poll_sends(mp_serve_rt *sv)
{
    mp_error e;
    mp_error_clear(&e);
    sv->unsent = sv->t->i->flush(sv->t, 0, 0, &e) != MP_OK;
}

void mp_serve_next_batch(mp_serve_rt *sv, int *first, int *b)
{
    const double *a = sv->res->release_ms;   /* written by the generator under sv->mu */
    *b = 0;
    pthread_mutex_lock(&sv->mu);
    for (;;) {
        if (sv->unsent) {
            pthread_mutex_unlock(&sv->mu);
            poll_sends(sv);
            pthread_mutex_lock(&sv->mu);
        }
        if (sv->failed) break;
        double now = mp_now_ms();
        int q = sv->pushed - sv->head;
        if (sv->gen_done && sv->head < sv->c->n && sv->pushed == sv->c->n && now > sv->deadline) break;
        if (q >= sv->B || (q > 0 && now >= sv->t0 + a[sv->head] + sv->W)) {
            *first = sv->head;
            *b = q < sv->B ? q : sv->B;
            sv->head += *b;
            break;
        }
        if (q == 0 && sv->gen_done) break;
        double until = q > 0 ? sv->t0 + a[sv->head] + sv->W : now + 1e3 * sv->idle_s;
        if (q > 0 && sv->gen_done && until > sv->deadline) until = sv->deadline + 1e-3;
        double wake = sv->unsent && until > now + SEND_POLL_MS ? now + SEND_POLL_MS : until;
        struct timespec ts = ts_of_ms(wake);
        int rc = pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
        if (rc == ETIMEDOUT && wake == until && q == 0 && !sv->gen_done && sv->pushed == sv->head) {
            /* nothing arrived in idle_s: the generator is stuck */
            mp_error e;
            mp_error_clear(&e);
            mp_error_set(&e, MP_ERR_TIMEOUT, "stage 0: no request for %.1f s", sv->idle_s);
            pthread_mutex_unlock(&sv->mu);
            mp_pipeline_fail(sv->pl, 0, &e);
            return;
        }
    }
    pthread_mutex_unlock(&sv->mu);
}

/* ---------------------------------------------------------------- the stages' clock */

/* Identifies this process's CLOCK_MONOTONIC: the boot id and the time
 * namespace; "" when unknown. Two processes with the same non-empty id read
 * the same clock. */
static void clock_id(char id[96])
{
    char boot[48] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) boot[0] = 0;
        fclose(f);
    }
    boot[strcspn(boot, "\n")] = 0;
    struct stat ns;
    unsigned long long ino = stat("/proc/self/ns/time", &ns) == 0 ? (unsigned long long)ns.st_ino : 0;
    memset(id, 0, 96);
    if (boot[0]) snprintf(id, 96, "%s/%llu", boot, ino);
}

/* Threads: waits until every stage is set up and the generator has started
 * the clock. */
static void wait_for_clock(mp_serve_worker *w)
{
    mp_serve_rt *sv = w->sv;
    pthread_mutex_lock(&sv->mu);
    sv->ready++;
    pthread_cond_broadcast(&sv->cv);
    while (!sv->go && !sv->failed) pthread_cond_wait(&sv->cv, &sv->mu);
    pthread_mutex_unlock(&sv->mu);
}

/* MPI: every rank set up (a rank that failed has brought the job down by
 * then), a barrier, then rank 0 sets t0 = now + 20 ms and sends it with its
 * clock's identity to every rank. A rank on the same clock (same machine)
 * takes rank 0's t0 as is, so all times share one origin; a rank on another
 * machine sets t0 = its own now + 20 ms on receipt, off by the message's
 * one-way latency (tens of microseconds). */
typedef struct { double t0; char id[96]; } clock_msg;

static mp_status start_clock_mpi(mp_serve_worker *w)
{
    mp_serve_rt *sv = w->sv;
    mp_status st = mp_pipeline_barrier(sv->pl, w->s, &w->err);
    if (st != MP_OK) return st;
    clock_msg m, mine;
    clock_id(mine.id);
    if (w->s == 0) {
        m = mine;
        m.t0 = mp_now_ms() + 20;
        for (int s = 1; s < sv->K && st == MP_OK; s++)
            st = sv->t->i->send(sv->t, 0, s, MP_TAG(MP_TAG_RESULT, s, 8), &m, sizeof m, sv->c->timeout_s, &w->err);
    } else {
        st = sv->t->i->recv(sv->t, w->s, 0, MP_TAG(MP_TAG_RESULT, w->s, 8), &m, sizeof m, sv->c->timeout_s, &w->err);
        if (st == MP_OK && (!mine.id[0] || strcmp(m.id, mine.id))) m.t0 = mp_now_ms() + 20;
    }
    if (st != MP_OK) return st;
    pthread_mutex_lock(&sv->mu);
    start_clock_at(sv, m.t0);
    pthread_mutex_unlock(&sv->mu);
    return MP_OK;
}

mp_status mp_serve_stage_clock(mp_serve_worker *w)
{
    if (w->sv->mpi) return start_clock_mpi(w);
    wait_for_clock(w);
    return MP_OK;
}
