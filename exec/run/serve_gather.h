/* serve_gather.h — the end of a serving run under MPI: every rank s > 0
 * ships its stage's part of the result to rank 0, which merges them into the
 * one mp_serve_run_result the threads path produces (the serving mode's
 * gather in the pipeline runner's shape, pipeline.h).
 * defines: mp_serve_gather_part */
#ifndef MP_SERVE_GATHER_H
#define MP_SERVE_GATHER_H

#include "pipeline.h"
#include "serve_run.h"

/* Stage s's part. On rank s (> 0) it sends the forward start/end of stage s
 * for each of the `batches` batches it ran, its busy_ms, copy_ms and
 * realtime thread count and, for the last stage, done_ms of every request
 * and, with keep_outputs, the outputs. On rank 0 it receives them into r
 * (which already holds the batches, releases and stage 0) and checks that
 * stage s ran the r->num_batches batches the batcher dispatched (`batches`
 * is not used there). Every wait is bounded by the runner's timeout; err
 * names the stage. */
mp_status mp_serve_gather_part(mp_pipeline *pl, mp_serve_run_result *r, int s, int batches, int keep_outputs,
                               mp_error *err);

#endif
