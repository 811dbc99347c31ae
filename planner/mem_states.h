/* mem_states.h — the memory model's op walk (sim/memory.h) of an interleaved
 * schedule summarized as in-flight states, so that the planner bounds a
 * position's peak by a max over a few rows instead of walking its ops: the
 * states depend on the op lists only, the bytes of a split enter as
 * per-chunk weights.
 * defines: mp_mem_states, mp_mem_states_build, mp_mem_states_build_by, mp_mem_states_peak,
 *          mp_mem_states_free
 *
 * A row of position p is e, n_0..n_{v-1}: the micro-batches of each of p's
 * chunks (chunk c: stage p + c*K) in flight after a forward (e = -1) or just
 * before a backward of chunk e. Only the rows that no other row with the
 * same e dominates are kept. The walk's peak is then
 *   params + max over rows of (sum_c n_c held_c + extra_e)
 * with held, extra of each chunk as mp_memory_held gives them (extra_e only
 * for rows before a backward). */
#ifndef MP_MEM_STATES_H
#define MP_MEM_STATES_H

#include "mp_status.h"
#include "schedule.h"

typedef struct {
    int K, v;                  /* positions, chunks per position */
    int *rows;                 /* rows of v+1 ints, position p's from row_off[p] */
    int *row_off;              /* [K+1] */
    int *nmax;                 /* [K*v] most micro-batches of stage s in flight on its position */
} mp_mem_states;

/* The states of op lists ops with v chunks per position (ms freed first;
 * zero it before the first call). MP_ERR_NOMEM. */
mp_status mp_mem_states_build(mp_mem_states *ms, const mp_op_lists *ops, int v);

/* The same, stopping with MP_ERR_TIMEOUT (ms freed) once the wall clock
 * (mp_now_s) passes deadline (HUGE_VAL: never). */
mp_status mp_mem_states_build_by(mp_mem_states *ms, const mp_op_lists *ops, int v, double deadline);

/* params + the most position p holds over its rows, with held[c] per
 * micro-batch of chunk c and extra[c] during a backward of chunk c
 * (extra NULL: only the rows after a forward, the most a position holds
 * whatever its backwards add). Equal to the walk up to rounding. */
double mp_mem_states_peak(const mp_mem_states *ms, int p, double params, const double *held,
                          const double *extra);

void mp_mem_states_free(mp_mem_states *ms);

#endif
