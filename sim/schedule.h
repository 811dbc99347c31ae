/* schedule.h — THE schedule generator: per-device op lists for GPipe, 1F1B and
 * interleaved 1F1B. The simulator times these lists and the executor runs
 * exactly the same lists (docs/cost-model.md).
 * defines: mp_op_kind, mp_op, mp_op_lists, mp_schedule_build, mp_op_lists_free */
#ifndef MP_SCHEDULE_H
#define MP_SCHEDULE_H

#include "mp_status.h"
#include "plan.h"

typedef enum { MP_OP_FWD = 0, MP_OP_BWD = 1 } mp_op_kind;

typedef struct {
    int kind;        /* mp_op_kind */
    int microbatch;  /* 0 .. m-1 */
    int stage;       /* virtual stage 0 .. S-1; runs on position stage % K */
} mp_op;

/* One op list per pipeline position (0..K-1). For gpipe/1f1b S = K and
 * position j runs stage j; for interleaved S = K*v and position p runs the
 * virtual stages p, p+K, p+2K, ... Every list holds 2 * m * (S/K) ops. */
typedef struct {
    mp_schedule_kind kind;
    int num_positions;     /* K */
    int num_stages;        /* S */
    int num_microbatches;  /* m */
    int *len;              /* [K] */
    mp_op **ops;           /* [K] lists */
} mp_op_lists;

/* Builds the op lists. chunks (v) is ignored unless kind is interleaved,
 * where it must be >= 2, K >= 2 and m a multiple of K. MP_ERR_INPUT with a
 * message otherwise. Free with mp_op_lists_free. */
mp_status mp_schedule_build(mp_schedule_kind kind, int num_positions, int chunks,
                            int num_microbatches, mp_op_lists *out, mp_error *err);

void mp_op_lists_free(mp_op_lists *l);

#endif
