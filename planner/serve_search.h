/* serve_search.h — serving plan search: stage count, contiguous split,
 * max_batch and max_wait for the highest SLO attainment at a rate, then the
 * fewest devices, then the lowest p99 (docs/serving.md).
 * defines: mp_serve_candidate, mp_serve_candidate_free, mp_serve_candidate_better,
 *          mp_serve_meets_slo, mp_serve_candidate_eval, mp_serve_candidate_plan,
 *          mp_serve_search_opts,
 *          mp_serve_search, mp_serve_max_rate */
#ifndef MP_SERVE_SEARCH_H
#define MP_SERVE_SEARCH_H

#include "cluster.h"
#include "mp_status.h"
#include "profile.h"
#include "serve.h"
#include "serve_calibration.h"
#include "serve_eval.h"

/* A serving plan: stage s holds layers first[s] .. first[s+1]-1 (the last
 * stage up to the last layer) on cluster device s. */
typedef struct {
    int num_stages;
    int *first;              /* owned [num_stages], first[0] = 0 */
    int max_batch;
    double max_wait_ms;
    double *memory_bytes;    /* owned [num_stages], mp_serve_stage_memory */
    int fits;                /* every stage fits its device's memory */
    mp_serve_result metrics; /* from the last evaluation */
} mp_serve_candidate;

void mp_serve_candidate_free(mp_serve_candidate *p);
/* Deep copy into dst (which must not own memory). */
mp_status mp_serve_candidate_copy(mp_serve_candidate *dst, const mp_serve_candidate *src);

/* 1 when a is strictly better than b: higher SLO attainment, then fewer
 * devices, then lower p99, then lower p50, then smaller max_batch, then
 * smaller max_wait, then lexicographically smaller first[]. */
int mp_serve_candidate_better(const mp_serve_candidate *a, const mp_serve_candidate *b);

/* "Meets the SLO": p99 <= slo (equivalently, with nearest-rank percentiles,
 * attainment >= 99%). */
int mp_serve_meets_slo(const mp_serve_result *r);

/* Evaluates p (num_stages, first, max_batch <= e->bmax, max_wait_ms set;
 * stage s on device s) with the serving evaluator on the arrivals: fills
 * memory_bytes (allocated if NULL), fits and metrics; e's tables then hold
 * the plan's. MP_ERR_INPUT when the split is not valid for the profile and
 * cluster. */
mp_status mp_serve_candidate_eval(mp_serve_eval *e, mp_serve_candidate *p, const double *arrival_ms,
                             int n, double slo_ms, mp_error *err);

/* The serving plan (core/plan.h, mode serve) of c after its evaluation by e
 * (e's tables hold c's, as mp_serve_candidate_eval leaves them): schedule
 * gpipe, global_batch = microbatch_size = max_batch, one micro-batch, stage s
 * on device s, the prediction at rate_rps (mp_serve_eval_predict). out must
 * not own memory; free it with mp_plan_free. */
mp_status mp_serve_candidate_plan(const mp_serve_candidate *c, const mp_serve_eval *e, double rate_rps,
                                  mp_plan *out, mp_error *err);

typedef struct {
    const mp_profile *prof;
    const mp_cluster *cluster;
    double slo_ms;
    const int *batches;      /* candidate max_batch values; NULL: 1,2,4,...,64 */
    int num_batches;
    const double *waits_ms;  /* candidate max_wait values; NULL: 0, slo/8, slo/4, slo/2 */
    int num_waits;
    int max_stages;          /* 0: min(devices, layers) */
    long exhaustive_limit;   /* all splits when there are at most this many
                                (over every stage count); 0: 2000; < 0: never */
    mp_serve_terms terms;    /* the measured prediction terms; fwd_scale 0: 1 */
} mp_serve_search_opts;

/* Searches plans for the arrivals; writes the best (up to top) plans, best
 * first, into out[0..*found-1] (caller frees each with mp_serve_candidate_free).
 * Only plans whose every stage fits its device are considered; none fitting:
 * MP_ERR_NOFIT with *found = 0. */
mp_status mp_serve_search(const mp_serve_search_opts *o, const double *arrival_ms, int n,
                          mp_serve_candidate *out, int top, int *found, mp_error *err);

/* The highest rate (within 1%) at which the search finds a plan that meets
 * the SLO, for arrivals replayed at that rate (mp_serve_arrivals_at_rate),
 * by doubling/halving from rate_hint then bisection; assumes feasibility is
 * monotone in the rate. *rate = 0 and best->num_stages = 0 when none is found
 * down to rate_hint / 2^20. Otherwise best holds the plan found at *rate
 * (verified there). */
mp_status mp_serve_max_rate(const mp_serve_search_opts *o, const mp_serve_arrivals *arr,
                            double rate_hint, double *rate, mp_serve_candidate *best,
                            mp_error *err);

#endif
