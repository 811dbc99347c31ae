/* schedule.h — THE schedule generator: per-device op lists for GPipe, 1F1B,
 * interleaved 1F1B and the zero-bubble ZB-H1, ZB-H2 and ZB-V. The simulator
 * times these lists and the executor runs exactly the same lists
 * (docs/cost-model.md).
 * defines: mp_op_kind, mp_op, mp_op_lists, mp_schedule_build, mp_op_lists_free, mp_schedule_interleaved_ahead,
 *          mp_schedule_is_zb, mp_schedule_chunks, mp_op_kind_name, mp_op_lists_check */
#ifndef MP_SCHEDULE_H
#define MP_SCHEDULE_H

#include "mp_status.h"
#include "plan.h"

/* F; the fused backward B (gpipe, 1f1b, interleved); the split backward of
 * the zero-bubble schedules: BI, the input gradient (sent upstream, what the
 * pipeline waits for), and W, the weight gradient (nothing waits for it). */
typedef enum { MP_OP_FWD = 0, MP_OP_BWD = 1, MP_OP_BWD_IN = 2, MP_OP_BWD_W = 3 } mp_op_kind;

/* "F", "B", "Bi", "W". */
const char *mp_op_kind_name(int kind);

typedef struct {
    int kind;        /* mp_op_kind */
    int microbatch;  /* 0 .. m-1 */
    int stage;       /* virtual stage 0 .. S-1; runs on position stage_pos[stage] */
} mp_op;

/* One op list per pipeline position (0..K-1). For gpipe/1f1b/zb-h1/zb-h2
 * S = K and position j runs stage j; for interleaved S = K*v and position p
 * runs the virtual stages p, p+K, p+2K, ...; for zb-v S = 2K in a V:
 * position p runs stages p and 2K-1-p. Every list holds 2 * m * (S/K) ops
 * (F and B per stage and micro-batch), or 3 * m * (S/K) for the zero-bubble
 * schedules (F, BI and W). */
typedef struct {
    mp_schedule_kind kind;
    int num_positions;     /* K */
    int num_stages;        /* S */
    int num_microbatches;  /* m */
    int *len;              /* [K] */
    mp_op **ops;           /* [K] lists */
    int *stage_pos;        /* [S] the position that runs each stage */
} mp_op_lists;

/* 1 for zb-h1, zb-h2 and zb-v (op kinds F, BI, W; no fused B). */
int mp_schedule_is_zb(mp_schedule_kind kind);

/* Virtual stages per position the kind runs: v for interleaved (the
 * plan's chunks_per_device), 2 for zb-v, else 1. */
int mp_schedule_chunks(mp_schedule_kind kind, int chunks_per_device);

/* Builds the op lists. chunks (v) is ignored unless kind is interleaved,
 * where it must be >= 2, K >= 2 and m a multiple of K (zb-v always has two
 * chunks). MP_ERR_INPUT with a message otherwise. Free with mp_op_lists_free. */
mp_status mp_schedule_build(mp_schedule_kind kind, int num_positions, int chunks,
                            int num_microbatches, mp_op_lists *out, mp_error *err);

void mp_op_lists_free(mp_op_lists *l);

/* Interleaved (K positions, v chunks, m micro-batches): the micro-batches
 * of chunk c (stage c K + p) that position p has forwarded before its first
 * backward, as mp_schedule_build lists them (for the planner's memory
 * bounds without building the lists); non-increasing in c. */
int mp_schedule_interleaved_ahead(int p, int c, int K, int v, int m);

/* Validity of op lists (schedule_check.c): every op on the position of its
 * stage, each of F and B (or F, BI and W for a zero-bubble kind) exactly once
 * per stage and micro-batch, backwards (B/BI) and W of each stage in
 * micro-batch order (so weight gradients accumulate in index order), and
 * the lists run to the end when every op waits only for its dependencies
 * (F(s,i) on F(s-1,i); B/BI(s,i) on F(s,i) and B/BI(s+1,i); W(s,i) on
 * BI(s,i)): no deadlock. MP_ERR_INPUT naming the first problem. */
mp_status mp_op_lists_check(const mp_op_lists *l, mp_error *err);

#endif
