/* pipeline.c — the driver of pipeline.h: the transport, one position per
 * thread or this rank's position, the backend on the position's device, the
 * failure latch, and the results gathered to rank 0.
 * defines: mp_pipeline_open, mp_pipeline_run, mp_pipeline_close,
 *          mp_pipeline_fail, mp_pipeline_failed, mp_pipeline_barrier,
 *          mp_pipeline_send_part, mp_pipeline_recv_part */
#include "pipeline.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mp_status mp_pipeline_open(const mp_pipeline_config *c, mp_pipeline **out, mp_error *err)
{
    *out = NULL;
    mp_pipeline *pl = calloc(1, sizeof *pl);
    int K = c->num_positions;
    if (!pl || !(pl->pos = calloc((size_t)K, sizeof *pl->pos)) || !(pl->th = calloc((size_t)K, sizeof *pl->th))) {
        if (pl) free(pl->pos);
        free(pl);
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory for %d pipeline positions", K);
    }
    pl->c = c;
    pl->K = K;
    pthread_mutex_init(&pl->mu, NULL);
    mp_status st = mp_transport_open(c->transport, K, c->mailbox_cap, &pl->t, err);
    if (st != MP_OK) {
        mp_pipeline_close(pl);
        return st;
    }
    pl->rank = pl->t->rank;
    for (int p = 0; p < K; p++) {
        pl->pos[p].pl = pl;
        pl->pos[p].p = p;
        int Kr = K / (c->replicas > 1 ? c->replicas : 1);
        pl->pos[p].replica = p / Kr;
        pl->pos[p].k = p % Kr;
        pl->pos[p].device = mp_pipeline_device_of(c, p);
    }
    *out = pl;
    return MP_OK;
}

void mp_pipeline_close(mp_pipeline *pl)
{
    if (!pl) return;
    mp_transport_close(pl->t, pl->failed);
    pthread_mutex_destroy(&pl->mu);
    free(pl->pos);
    free(pl->th);
    free(pl);
}

void mp_pipeline_fail(mp_pipeline *pl, int p, const mp_error *e)
{
    pthread_mutex_lock(&pl->mu);
    int first = !pl->failed;
    if (first) {
        pl->failed = 1;
        pl->first_err = *e;
    }
    pthread_mutex_unlock(&pl->mu);
    if (!first) return;
    if (pl->mode && pl->mode->on_fail) pl->mode->on_fail(pl->ctx);
    pl->t->i->abort(pl->t, p, e->msg);
}

int mp_pipeline_failed(mp_pipeline *pl)
{
    pthread_mutex_lock(&pl->mu);
    int f = pl->failed;
    pthread_mutex_unlock(&pl->mu);
    return f;
}

mp_status mp_pipeline_barrier(mp_pipeline *pl, int p, mp_error *err)
{
    int flag = 0;
    return pl->t->i->agree(pl->t, p, &flag, pl->c->timeout_s, err);
}

mp_status mp_pipeline_send_part(mp_pipeline *pl, int p, int k, const void *buf, size_t bytes, mp_error *err)
{
    return pl->t->i->send(pl->t, p, 0, MP_TAG(MP_TAG_RESULT, p, k), buf, bytes, pl->c->timeout_s, err);
}

mp_status mp_pipeline_recv_part(mp_pipeline *pl, int p, int k, void *buf, size_t bytes, mp_error *err)
{
    return pl->t->i->recv(pl->t, 0, p, MP_TAG(MP_TAG_RESULT, p, k), buf, bytes, pl->c->timeout_s, err);
}

/* ---------------------------------------------------------------- a position */

/* Replaces err's message m with "PREFIX: m" (status st). */
static void rewrap(mp_error *err, mp_status st, const char *prefix)
{
    char m[1024];
    snprintf(m, sizeof m, "%s", err->msg);
    mp_error_clear(err);
    mp_error_set(err, st, "%s: %.900s", prefix, m);
}

/* Opens position p's backend on its device (cpu: the core, when pinned;
 * cuda: the mapped GPU) and binds the transport to a GPU. */
static mp_status open_backend(mp_pipeline *pl, mp_pipeline_pos *pos, mp_error *err)
{
    const mp_pipeline_config *c = pl->c;
    int is_cpu = !strcmp(c->backend, "cpu");
    int shown = is_cpu ? pos->device : mp_pipeline_gpu_of(c, pos->device);
    pos->unit = is_cpu && !c->pin ? -1 : shown;
    pos->host_mem = is_cpu;
    mp_status st = mp_backend_open(c->backend, pos->unit, &pos->be, err);
    if (st != MP_OK) {
        char at[96], nm[48];
        snprintf(at, sizeof at, "%s (device %d)", mp_pipeline_name(c, pos->p, nm, sizeof nm), shown);
        rewrap(err, st, at);
        return st;
    }
    if (!is_cpu && pl->t->i->bind) return pl->t->i->bind(pl->t, pos->p, pos->unit, c->timeout_s, err);
    return MP_OK;
}

/* 1 when msg already names a stage ("stage 3: ...", "stage 3 (device 1): ..."). */
static int names_a_stage(const char *msg)
{
    return !strncmp(msg, "stage ", 6) && isdigit((unsigned char)msg[6]);
}

/* 1 when msg already names a replica ("replica 1 stage 0: ..."). */
static int names_a_replica(const char *msg)
{
    return !strncmp(msg, "replica ", 8) && isdigit((unsigned char)msg[8]);
}

static void *position_main(void *arg)
{
    mp_pipeline_pos *pos = arg;
    mp_pipeline *pl = pos->pl;
    mp_error e;
    mp_error_clear(&e);
    mp_status st = open_backend(pl, pos, &e);
    if (st == MP_OK) st = pl->mode->position(pl->ctx, pos, &e);
    if (st != MP_OK) {
        if (e.status == MP_OK) mp_error_set(&e, st, "failed (%s)", mp_status_str(st));
        char at[48];
        if (pl->c->replicas > 1 && names_a_stage(e.msg)) {   /* "stage S: m" -> "replica R stage S: m" */
            snprintf(at, sizeof at, "replica %d", pos->replica);
            char m[1024];
            snprintf(m, sizeof m, "%s", e.msg);
            mp_error_clear(&e);
            mp_error_set(&e, st, "%s %.900s", at, m);
        } else if (!names_a_stage(e.msg) && !names_a_replica(e.msg))
            rewrap(&e, st, mp_pipeline_name(pl->c, pos->p, at, sizeof at));
        mp_pipeline_fail(pl, pos->p, &e);
    }
    return NULL;
}

static void *host_main(void *arg)
{
    mp_pipeline *pl = arg;
    pl->mode->host(pl->ctx, pl);
    return NULL;
}

/* Starts the host thread, if the mode has one; 1 when it runs. */
static int start_host(mp_pipeline *pl, pthread_t *th)
{
    if (!pl->mode->host) return 0;
    if (pthread_create(th, NULL, host_main, pl) == 0) return 1;
    mp_error e;
    mp_error_clear(&e);
    mp_error_set(&e, MP_ERR_BACKEND, "cannot start %s thread", pl->mode->host_name ? pl->mode->host_name : "the host");
    mp_pipeline_fail(pl, pl->rank > 0 ? pl->rank : 0, &e);
    return 0;
}

/* Every position here, on threads or (MPI) this rank's on the calling thread;
 * returns how many ran (their backends may be open). */
static int run_positions(mp_pipeline *pl)
{
    pthread_t host;
    int host_up = start_host(pl, &host), started = 0;
    if (pl->rank >= 0) {
        if (!mp_pipeline_failed(pl)) position_main(&pl->pos[pl->rank]);
    } else {
        for (; started < pl->K && !mp_pipeline_failed(pl); started++)
            if (pthread_create(&pl->th[started], NULL, position_main, &pl->pos[started]) != 0) {
                mp_error e;
                mp_error_clear(&e);
                char nm[48];
                mp_error_set(&e, MP_ERR_BACKEND, "%s: cannot start its thread", mp_pipeline_name(pl->c, started, nm, sizeof nm));
                mp_pipeline_fail(pl, started, &e);
                break;
            }
        for (int p = 0; p < started; p++) pthread_join(pl->th[p], NULL);
    }
    if (host_up) pthread_join(host, NULL);
    return pl->rank >= 0 ? 1 : started;
}

/* ---------------------------------------------------------------- results */

/* MPI: the parts to rank 0 in one shape, then this rank's sends delivered;
 * then the whole result where it is held. A failure here aborts the job. */
static mp_status finish(mp_pipeline *pl, mp_error *err)
{
    const mp_pipeline_mode *m = pl->mode;
    mp_status st = MP_OK;
    if (pl->rank > 0 && m->gather) st = m->gather(pl->ctx, pl, pl->rank, err);
    for (int p = 1; pl->rank == 0 && m->gather && p < pl->K && st == MP_OK; p++) st = m->gather(pl->ctx, pl, p, err);
    if (st == MP_OK && pl->rank <= 0 && m->collect) st = m->collect(pl->ctx, pl, err);
    if (st == MP_OK && pl->rank >= 0) st = pl->t->i->flush(pl->t, pl->rank, pl->c->timeout_s, err);
    if (st != MP_OK) mp_pipeline_fail(pl, pl->rank > 0 ? pl->rank : 0, err);
    return st;
}

mp_status mp_pipeline_run(mp_pipeline *pl, const mp_pipeline_mode *mode, void *ctx, mp_error *err)
{
    pl->mode = mode;
    pl->ctx = ctx;
    int ran = run_positions(pl);
    mp_status st = MP_OK;
    if (!mp_pipeline_failed(pl)) st = finish(pl, err);
    else st = mp_error_set(err, pl->first_err.status, "%s", pl->first_err.msg);
    for (int k = 0; k < ran; k++) {
        mp_pipeline_pos *pos = &pl->pos[pl->rank >= 0 ? pl->rank : k];
        if (mode->release) mode->release(ctx, pos);
        mp_backend_close(pos->be);
        pos->be = NULL;
    }
    return st;
}
