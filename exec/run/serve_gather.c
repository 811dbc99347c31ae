/* serve_gather.c — the stages' parts of an MPI serving run meet on rank 0
 * (the serving counterpart of the "result" sends in runtime.c).
 * defines: mp_serve_gather
 *
 * Messages, rank s -> 0, tags MP_TAG(MP_TAG_RESULT, s, k):
 *   k = 0  double[4]: batches run, busy_ms, copy_ms, realtime threads
 *   k = 1  double[2 * batches]: forward starts, then forward ends, batch order
 *   k = 2  (last stage) double[n]: done_ms of every request
 *   k = 3  (last stage, keep_outputs) float[n * out_dim]: the outputs
 * (k = 8, rank 0 -> s, is the clock start of serve_run.c.)
 * Times are relative to the sending rank's clock start, which is rank 0's on
 * one machine (docs/serving.md §7, "MPI"), merged as they are. */
#include "serve_gather.h"

#include <stdlib.h>
#include <string.h>

static mp_status send_part(mp_transport *t, mp_serve_run_result *r, int s, int nb, int keep, double to,
                           mp_error *err)
{
    int K = r->num_stages;
    double head[4] = { nb, r->busy_ms[s], r->copy_ms[s], r->realtime_threads };
    mp_status st = t->i->send(t, s, 0, MP_TAG(MP_TAG_RESULT, s, 0), head, sizeof head, to, err);
    if (st != MP_OK) return st;
    double *fwd = malloc((size_t)(2 * nb + 1) * sizeof(double));
    if (!fwd) return mp_error_set(err, MP_ERR_NOMEM, "stage %d: out of memory for the results", s);
    for (int j = 0; j < nb; j++) {
        fwd[j] = r->fwd_start_ms[(size_t)j * K + s];
        fwd[nb + j] = r->fwd_end_ms[(size_t)j * K + s];
    }
    st = t->i->send(t, s, 0, MP_TAG(MP_TAG_RESULT, s, 1), fwd, (size_t)(2 * nb) * sizeof(double), to, err);
    free(fwd);
    if (st == MP_OK && s == K - 1)
        st = t->i->send(t, s, 0, MP_TAG(MP_TAG_RESULT, s, 2), r->done_ms, (size_t)r->n * sizeof(double), to, err);
    if (st == MP_OK && s == K - 1 && keep)
        st = t->i->send(t, s, 0, MP_TAG(MP_TAG_RESULT, s, 3), r->outputs,
                        (size_t)r->n * (size_t)r->out_dim * sizeof(float), to, err);
    if (st == MP_OK) st = t->i->flush(t, s, to, err);
    return st;
}

static mp_status recv_part(mp_transport *t, mp_serve_run_result *r, int s, int keep, double to, mp_error *err)
{
    int K = r->num_stages, nb = r->num_batches;
    double head[4];
    mp_status st = t->i->recv(t, 0, s, MP_TAG(MP_TAG_RESULT, s, 0), head, sizeof head, to, err);
    if (st != MP_OK) return st;
    if ((int)head[0] != nb)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage %d ran %d batches, the batcher dispatched %d", s,
                            (int)head[0], nb);
    r->busy_ms[s] = head[1];
    r->copy_ms[s] = head[2];
    r->realtime_threads += (int)head[3];
    double *fwd = malloc((size_t)(2 * nb + 1) * sizeof(double));
    if (!fwd) return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results of stage %d", s);
    st = t->i->recv(t, 0, s, MP_TAG(MP_TAG_RESULT, s, 1), fwd, (size_t)(2 * nb) * sizeof(double), to, err);
    for (int j = 0; st == MP_OK && j < nb; j++) {
        r->fwd_start_ms[(size_t)j * K + s] = fwd[j];
        r->fwd_end_ms[(size_t)j * K + s] = fwd[nb + j];
    }
    free(fwd);
    if (st == MP_OK && s == K - 1)
        st = t->i->recv(t, 0, s, MP_TAG(MP_TAG_RESULT, s, 2), r->done_ms, (size_t)r->n * sizeof(double), to, err);
    if (st == MP_OK && s == K - 1 && keep)
        st = t->i->recv(t, 0, s, MP_TAG(MP_TAG_RESULT, s, 3), r->outputs,
                        (size_t)r->n * (size_t)r->out_dim * sizeof(float), to, err);
    return st;
}

mp_status mp_serve_gather(mp_transport *t, mp_serve_run_result *r, int batches, int keep_outputs,
                          double timeout_s, mp_error *err)
{
    if (t->rank > 0) return send_part(t, r, t->rank, batches, keep_outputs, timeout_s, err);
    mp_status st = MP_OK;
    for (int s = 1; s < r->num_stages && st == MP_OK; s++) st = recv_part(t, r, s, keep_outputs, timeout_s, err);
    return st;
}
