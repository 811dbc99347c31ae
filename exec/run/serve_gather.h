/* serve_gather.h — the end of a serving run under MPI: every rank s > 0
 * ships its stage's part of the result to rank 0, which merges them into the
 * one mp_serve_run_result the threads path produces.
 * defines: mp_serve_gather */
#ifndef MP_SERVE_GATHER_H
#define MP_SERVE_GATHER_H

#include "serve_run.h"
#include "transport.h"

/* Called by every rank (t->rank) after its stage's loop. Rank s > 0 sends the
 * forward start/end of stage s for each of the `batches` batches it ran, its
 * busy_ms, copy_ms and realtime thread count and, for the last stage, done_ms
 * of every request and, with keep_outputs, the outputs; then waits until its
 * sends are delivered. Rank 0 receives them in stage order into r (which
 * already holds the batches, releases and stage 0) and checks that every
 * stage ran the r->num_batches batches it dispatched. Every wait is bounded by
 * timeout_s; err names the stage. */
mp_status mp_serve_gather(mp_transport *t, mp_serve_run_result *r, int batches, int keep_outputs,
                          double timeout_s, mp_error *err);

#endif
