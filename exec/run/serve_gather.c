/* serve_gather.c — the stages' parts of an MPI serving run meet on rank 0
 * (the serving counterpart of train_results.c), in the runner's gather shape.
 * defines: mp_serve_gather_part
 *
 * Messages, rank s -> 0, tags MP_TAG(MP_TAG_RESULT, s, k):
 *   k = 0  double[6]: batches run, busy_ms, copy_ms, realtime threads, the rank's CPU
 *          ticks since its start, its boot id (mp_machine_boot_id)
 *   k = 1  double[2 * batches]: forward starts, then forward ends, batch order
 *   k = 2  (last stage) double[n]: done_ms of every request
 *   k = 3  (last stage, keep_outputs) float[n * out_dim]: the outputs
 * (k = 8, rank 0 -> s, is the clock start of serve_run.c.)
 * Times are relative to the sending rank's clock start, which is rank 0's on
 * one machine (docs/serving.md §7, "MPI"), merged as they are. */
#include "serve_gather.h"

#include <stdlib.h>
#include <string.h>

static mp_status send_part(mp_pipeline *pl, mp_serve_run_result *r, int s, int nb, int keep, mp_error *err)
{
    int K = r->num_stages;
    double head[6] = { nb, r->busy_ms[s], r->copy_ms[s], r->realtime_threads,
                       mp_machine_cpu_sample().own - r->cpu_start.own, (double)mp_machine_boot_id() };
    mp_status st = mp_pipeline_send_part(pl, s, 0, head, sizeof head, err);
    if (st != MP_OK) return st;
    double *fwd = malloc((size_t)(2 * nb + 1) * sizeof(double));
    if (!fwd) return mp_error_set(err, MP_ERR_NOMEM, "stage %d: out of memory for the results", s);
    for (int j = 0; j < nb; j++) {
        fwd[j] = r->fwd_start_ms[(size_t)j * K + s];
        fwd[nb + j] = r->fwd_end_ms[(size_t)j * K + s];
    }
    st = mp_pipeline_send_part(pl, s, 1, fwd, (size_t)(2 * nb) * sizeof(double), err);
    free(fwd);
    if (st == MP_OK && s == K - 1)
        st = mp_pipeline_send_part(pl, s, 2, r->done_ms, (size_t)r->n * sizeof(double), err);
    if (st == MP_OK && s == K - 1 && keep)
        st = mp_pipeline_send_part(pl, s, 3, r->outputs, (size_t)r->n * (size_t)r->out_dim * sizeof(float), err);
    return st;
}

static mp_status recv_part(mp_pipeline *pl, mp_serve_run_result *r, int s, int keep, mp_error *err)
{
    int K = r->num_stages, nb = r->num_batches;
    double head[6];
    mp_status st = mp_pipeline_recv_part(pl, s, 0, head, sizeof head, err);
    if (st != MP_OK) return st;
    if ((int)head[0] != nb)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage %d ran %d batches, the batcher dispatched %d", s,
                            (int)head[0], nb);
    r->busy_ms[s] = head[1];
    r->copy_ms[s] = head[2];
    r->realtime_threads += (int)head[3];
    unsigned boot = mp_machine_boot_id();
    if (boot && (unsigned)head[5] == boot) r->peer_ticks += head[4];
    double *fwd = malloc((size_t)(2 * nb + 1) * sizeof(double));
    if (!fwd) return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results of stage %d", s);
    st = mp_pipeline_recv_part(pl, s, 1, fwd, (size_t)(2 * nb) * sizeof(double), err);
    for (int j = 0; st == MP_OK && j < nb; j++) {
        r->fwd_start_ms[(size_t)j * K + s] = fwd[j];
        r->fwd_end_ms[(size_t)j * K + s] = fwd[nb + j];
    }
    free(fwd);
    if (st == MP_OK && s == K - 1)
        st = mp_pipeline_recv_part(pl, s, 2, r->done_ms, (size_t)r->n * sizeof(double), err);
    if (st == MP_OK && s == K - 1 && keep)
        st = mp_pipeline_recv_part(pl, s, 3, r->outputs, (size_t)r->n * (size_t)r->out_dim * sizeof(float), err);
    return st;
}

mp_status mp_serve_gather_part(mp_pipeline *pl, mp_serve_run_result *r, int s, int batches, int keep_outputs,
                               mp_error *err)
{
    return pl->rank == s ? send_part(pl, r, s, batches, keep_outputs, err) : recv_part(pl, r, s, keep_outputs, err);
}
