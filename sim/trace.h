/* trace.h — a timeline of ops and transfers, written as Chrome trace JSON
 * (opens in Perfetto / chrome://tracing). Used for the simulator's predicted
 * timeline and for mprun's measured one, in the same shape.
 * defines: mp_trace_event_kind, mp_trace_event, mp_trace, mp_trace_add,
 *          mp_trace_set_row_name, mp_trace_write_chrome, mp_trace_free */
#ifndef MP_TRACE_H
#define MP_TRACE_H

#include "mp_status.h"

typedef enum {
    MP_TEV_FWD = 0,
    MP_TEV_BWD = 1,        /* backward proper (without recompute) */
    MP_TEV_RECOMPUTE = 2,  /* the recomputed forward at the start of a backward */
    MP_TEV_SEND_ACT = 3,   /* activation transfer on a link */
    MP_TEV_SEND_GRAD = 4,  /* gradient transfer on a link */
    MP_TEV_WGRAD = 5,      /* weight gradient W of a zero-bubble schedule (its input gradient: BWD) */
    MP_TEV_ALLREDUCE = 6   /* a stage's gradient all-reduce among its replicas (on its position's row) */
} mp_trace_event_kind;

typedef struct {
    int kind;            /* mp_trace_event_kind */
    int position;        /* compute: pipeline position; transfer: sending position */
    int dst_position;    /* transfer: receiving position; compute: -1 */
    int stage;           /* virtual stage */
    int microbatch;
    double start_ms, end_ms;
} mp_trace_event;

typedef struct {
    int num_positions;
    int n, cap;
    mp_trace_event *ev;
    char **row_names;    /* optional, owned: [num_rows] names of the position rows
                            (e.g. "stage 0 (dev0)"); NULL entries: "stage p" */
    int num_rows;
    double others_pct;   /* measured traces: % of the CPUs other processes took during
                            the run, written as otherData.others_pct when > 0 */
} mp_trace;

/* Appends an event (grows the array). MP_ERR_NOMEM on failure. */
mp_status mp_trace_add(mp_trace *t, mp_trace_event e);

/* Names position p's row (copied); grows num_positions to p+1 if needed.
 * MP_ERR_NOMEM on failure. */
mp_status mp_trace_set_row_name(mp_trace *t, int p, const char *name);

/* Writes the trace atomically as Chrome trace JSON: one row ("tid") per
 * position named "stage j" / "device d", one per directed link named
 * "link a->b"; times in microseconds; `title` names the process row. */
mp_status mp_trace_write_chrome(const mp_trace *t, const char *path,
                                const char *title, mp_error *err);

void mp_trace_free(mp_trace *t);

#endif
