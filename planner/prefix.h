/* prefix.h — prefix sums of a profile for the planner: a stage's bytes and
 * profile times in O(1), and the memory model (sim/memory.h) of a
 * gpipe/1f1b stage over them.
 * defines: mp_prefix, mp_prefix_init, mp_prefix_set_b, mp_prefix_free, mp_prefix_bytes,
 *          mp_prefix_set_allreduce, mp_prefix_allreduce_ms, mp_prefix_max_param, mp_stage_fit, mp_stage_fit_peak, mp_stage_fit_rc, MP_LAST_TRUE */
#ifndef MP_PREFIX_H
#define MP_PREFIX_H

#include "allreduce.h"
#include "cluster.h"
#include "memory.h"
#include "mp_status.h"
#include "profile.h"
#include "search.h"

typedef struct {
    const mp_profile *prof;
    int L;                     /* layers */
    double *PP, *PS;           /* [L+1] prefix sums of param bytes, stash bytes per sample */
    double *PF, *PB;           /* [L+1] prefix sums of fwd/bwd profile ms at micro-batch b */
    int *PN;                   /* [L+1] prefix counts of layers with param_bytes > 0 (all-reduce rings) */
    double *in;                /* [L+1] bytes per sample into layer l (in[0] the input, in[L] the output) */
    int b;                     /* the micro-batch of PF, PB (-1: not set yet) */
    double *mx;                /* [lg*L] mx[k*L + i]: largest param bytes of layers i .. i+2^k-1 */
    int lg;                    /* levels of mx */
    double *PA;                /* [L+1] prefix sums of the layers' all-reduce ms for pa_D replicas,
                                * with a cluster's measured points (mp_prefix_set_allreduce) */
    int pa_D;                  /* the replicas of PA (0: not set) */
} mp_prefix;

/* Allocates and fills the byte sums of prof (times not set yet); MP_ERR_NOMEM
 * (x is then freed). */
mp_status mp_prefix_init(mp_prefix *x, const mp_profile *prof);

/* Sets the time sums for micro-batch b (nothing when already set). */
void mp_prefix_set_b(mp_prefix *x, int b);

void mp_prefix_free(mp_prefix *x);

/* Sets PA for D replicas when cl has measured all-reduce points (nothing
 * otherwise, or when already set for D); the points must be the same for
 * every cluster x is then used with (placements only reorder devices).
 * MP_ERR_NOMEM. */
mp_status mp_prefix_set_allreduce(mp_prefix *x, const mp_cluster *cl, int D);

/* The all-reduce ms of the stage holding layers lo..hi over D replicas on
 * devices device + r * stride (sim/allreduce.h: mp_allreduce_stage_ms, in
 * O(1)); with measured points PA must be set for D. */
static inline double mp_prefix_allreduce_ms(const mp_prefix *x, const mp_cluster *cl, int device, int stride,
                                            int D, int lo, int hi)
{
    if (D <= 1) return 0;
    if (cl->allreduce_points > 0) return x->PA[hi + 1] - x->PA[lo];
    return mp_allreduce_ms(cl, device, stride, D, x->PP[hi + 1] - x->PP[lo], x->PN[hi + 1] - x->PN[lo]);
}

/* The bytes of the stage holding layers lo..hi. */
static inline mp_stage_bytes mp_prefix_bytes(const mp_prefix *x, int lo, int hi)
{
    mp_stage_bytes r = { x->PP[hi + 1] - x->PP[lo], x->PS[hi + 1] - x->PS[lo], x->in[lo] };
    return r;
}

/* The largest param_bytes among layers lo..hi (lo <= hi): the all-reduce
 * buffer of a stage with D > 1 replicas (mp_memory_allreduce_bytes). */
static inline double mp_prefix_max_param(const mp_prefix *x, int lo, int hi)
{
    int k = 0;
    while (2 << k <= hi - lo + 1) k++;
    double a = x->mx[(size_t)k * x->L + lo], c = x->mx[(size_t)k * x->L + hi + 1 - (1 << k)];
    return a > c ? a : c;
}

/* A gpipe/1f1b configuration's stage memory: stage s runs on device s. */
typedef struct {
    const mp_prefix *ps;
    const mp_cluster *cl;
    double sf;                 /* state factor */
    int mode;                  /* mp_recompute_mode */
    int kind, S, m, b;         /* schedule, stages, micro-batches, micro-batch size */
    int D;                     /* data-parallel replicas (0 or 1: none, no all-reduce buffer) */
} mp_stage_fit;

/* Peak of stage s holding layers lo..hi, recomputing or not (the closed
 * form, plus the all-reduce buffer when D > 1). */
static inline double mp_stage_fit_peak(const mp_stage_fit *f, int s, int lo, int hi, int rc)
{
    mp_stage_bytes x = mp_prefix_bytes(f->ps, lo, hi);
    double p = mp_memory_peak_closed(&x, mp_memory_inflight(f->kind, s, f->S, f->m), f->b, rc, f->sf);
    if (f->D <= 1) return p;
    double a = mp_prefix_max_param(f->ps, lo, hi);   /* mp_memory_allreduce_bytes */
    return p + (a > 4 ? a : 4);
}

/* The recompute choice for stage s holding layers lo..hi: 0 when it fits its
 * device without (and the mode allows), else 1 when it fits with, else -1.
 * For a fixed lo, -1 holds from some hi on (peaks grow with hi). */
static inline int mp_stage_fit_rc(const mp_stage_fit *f, int s, int lo, int hi)
{
    double cap = f->cl->devices[s].memory_bytes;
    if (f->mode != MP_RC_ON && mp_stage_fit_peak(f, s, lo, hi, 0) <= cap) return 0;
    if (f->mode != MP_RC_OFF && mp_stage_fit_peak(f, s, lo, hi, 1) <= cap) return 1;
    return -1;
}

/* Sets res to the largest hi in [lo, hmax] for which PRED (an expression in
 * hi) holds, lo - 1 when none; PRED must hold up to some hi and not after. */
#define MP_LAST_TRUE(res, lo, hmax, PRED)              \
    do {                                               \
        int a_ = (lo) - 1, b_ = (hmax);                \
        while (a_ < b_) {                              \
            int hi = (a_ + b_ + 1) / 2;                \
            if (PRED) a_ = hi; else b_ = hi - 1;       \
        }                                              \
        (res) = a_;                                    \
    } while (0)

#endif
