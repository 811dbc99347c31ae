/* bounds.h — split-independent lower bounds on the iteration time of one
 * configuration (K positions, micro-batch b, schedule, v chunks), used by the
 * planner's search (planner/configs.c, planner/search.c) to order and prune
 * configurations, and the per-stage and water-filling bounds used inside its
 * split search (planner/split.c). Every bound is at
 * most the least simulated iteration time of any plan of the configuration
 * that fits memory (proofs in planner/bounds.c; tests/test_search.c checks
 * them against brute force).
 * defines: mp_bound_data, mp_bound_data_init, mp_bound_data_set_b, mp_bound_data_free,
 *          mp_bound_quick, mp_bound_allreduce, mp_bound_forced_rc, mp_bound_split, mp_bound_positions, mp_bound_waterfill, mp_bound_stage_tail,
 *          mp_bound_round_trips, mp_bound_paths,
 *          mp_search_config_bound, mp_bound_table, mp_bound_inflight, mp_bound_table_alloc, mp_bound_table_free,
 *          mp_bound_table_swap, mp_bound_table_admit, mp_bound_table_suffixes, mp_bound_stage_time_ok, mp_bound_ring_lambda, mp_bound_table_term, mp_bound_table_suffix */
#ifndef MP_BOUNDS_H
#define MP_BOUNDS_H

#include "cluster.h"
#include "mp_status.h"
#include "prefix.h"
#include "profile.h"
#include "search.h"

/* An interleaved configuration's bound that is linear in the stages of a
 * split (planner/bounds_table.c; filled by mp_bound_positions and
 * mp_bound_paths when mp_bound_data.table_want is set) as a bound inside
 * the split search: for every plan of the configuration that fits,
 *   T >= cons + sum_t term_t,  term_t = mp_bound_table_term of stage t,
 * and suf[t (L+1) + j] is the least sum of the terms of stages t..S-1 over
 * the layers j..L-1 (stages that fit their own memory; to, rto: the end and
 * recompute of stage t in that least sum), so a node with stages 0..s
 * placed is bounded by cons + (their terms) + suf at stage s+1 and its
 * first layer. value = cons + suf[0]: the bound over every split. With
 * admission at a finite T (mp_bound_table_admit) the suffixes run over the
 * stages that also pass mp_bound_stage_time_ok at T, and bound only the
 * plans of time <= T: every plan then takes at least min(T, the bound). */
typedef struct {
    int K, b, v, m, S, L;      /* its configuration; S = 0: none */
    int r0, r1;                /* recompute choices of a stage */
    double cons, sf, value;
    double T, smax, lam, f1;   /* admission at T (HUGE_VAL: none; mp_bound_table_admit) */
    double *cf, *cb, *cr;      /* [S] per-speed coefficients of F, B and the recompute's F */
    double *ca, *cg;           /* [S] coefficients of the activation and gradient transfers out of stage t */
    double *mu;                /* [K] memory multipliers (ms per byte) */
    int *n, *nmax;             /* [S] micro-batches of stage t forwarded before its position's first backward, most in flight */
    double *tra, *trg;         /* [K (L+1)] position q's activation to q+1 / gradient back, of b in[e] bytes */
    double *suf;               /* [(S+1)(L+1)] */
    int *to, *rto;             /* [(S+1)(L+1)] */
    int *emax, emax_ok;        /* [2 (S+1)(L+1)] (r, t, j): the last end admitted for stage t from j (it
                                * depends on the admission alone, not the weights; 1: filled) */
    double *coef;              /* storage of cf..mu */
    size_t cap_cells, cap_S;   /* allocated */
} mp_bound_table;

typedef struct {
    mp_prefix ps;              /* the profile's sums (times at the last micro-batch set) */
    const mp_cluster *cl;
    int mode;                  /* mp_recompute_mode */
    double sf;                 /* state factor */
    double min_out;            /* min out_bytes_per_sample over layers 0..L-2 (inf when L = 1) */
    int n_param;               /* layers with parameters (each all-reduces its own) */
    double rho;                /* min over layers with stash > 0 of fwd(ps.b) / stash (inf: none) */
    int *order, n_order;       /* layers with stash > 0 by increasing fwd(ps.b) / stash */
    double *fwd;               /* [L] fwd(ps.b) per layer */
    double deadline;           /* wall time (mp_now_s) after which mp_bound_split stops refining
                                * and returns the best bound so far (HUGE_VAL: never) */
    int no_bisect;             /* 1: mp_bound_positions skips its bisection on T (cheaper) */
    int table_want;            /* 1: mp_bound_positions also fills table (S = 0 when it could not) */
    mp_bound_table table;
} mp_bound_data;

/* Allocates the prefix sums of prof (times at no micro-batch yet); MP_ERR_NOMEM
 * (d is then freed). */
mp_status mp_bound_data_init(mp_bound_data *d, const mp_profile *prof, const mp_cluster *cl,
                             int mode, double state_factor);
/* Sets the time prefix sums and rho for micro-batch b (nothing when already set). */
void mp_bound_data_set_b(mp_bound_data *d, int b);
void mp_bound_data_free(mp_bound_data *d);  /* frees what init allocated */

/* Cheap bound of configuration (K, b, kind, v) with m = global/b micro-
 * batches: critical path, work over total speed, the least largest stage
 * time (gpipe/1f1b) and, for interleaved, the recompute that memory forces.
 * HUGE_VAL when memory proves no plan of the configuration fits.
 * Sets d's micro-batch to b. */
double mp_bound_quick(mp_bound_data *d, int K, int b, int kind, int v, int m);

/* D > 1 replicas of a K-position pipeline (any schedule of fused
 * backwards) at micro-batch b with m micro-batches each: the positions'
 * work and all-reduces, (m W + smin sum_l a_l) / sum of speeds, with a_l a
 * lower bound on layer l's share of its stage's all-reduce (proof in
 * planner/bounds.c); 0 when D = 1. Sets d's micro-batch to b. */
double mp_bound_allreduce(mp_bound_data *d, int K, int b, int m, int D);

/* Stronger bound for gpipe/1f1b (returns `quick` unchanged for interleaved):
 * the least T for which some split of the layers into <= K stages has every
 * stage fit its device and meet the per-stage bounds <= T; found by
 * bisection on T with a greedy that is exact for the relaxation; never below
 * `quick`. HUGE_VAL when no split fits memory. When the bound reaches
 * `stop`, returns a value >= stop at once (HUGE_VAL: compute it fully).
 * Past d->deadline it returns the best bound proven so far (>= quick).
 * Sets d's micro-batch to b. */
double mp_bound_split(mp_bound_data *d, int K, int b, int kind, int m, double quick, double stop);

/* Interleaved (K, b, v) with m micro-batches: a lower bound on the forward
 * time (profile ms at b, per micro-batch) that every fitting plan
 * recomputes (the memory relaxation of planner/bounds.c over the micro-
 * batches each chunk holds before its position's first backward); 0 when
 * none is forced, HUGE_VAL when no plan fits. Sets d's micro-batch to b. */
double mp_bound_forced_rc(mp_bound_data *d, int K, int b, int v, int m);

/* Stronger bound for interleaved configuration (K, b, v) with m micro-
 * batches (planner/bounds_positions.c): the best over position weights of
 * the least weighted sum of the positions' time bounds over the splits
 * whose stages fit their own memory, raised by bisection on T (small S L);
 * never below `quick`. Returns at once (>= stop) when it reaches stop,
 * `quick` when too large to compute (S L > 2e7) or past d->deadline.
 * Sets d's micro-batch to b. */
double mp_bound_positions(mp_bound_data *d, int K, int b, int v, int m, double quick, double stop);

/* 1 when a stage of layers [j, e) with recompute r, nmax of its micro-
 * batches (of size b) in flight at most, fits device memory M by itself:
 * sf params + b (stash, times nmax without recompute) <= M (the memory
 * model's held bytes at its most in flight; a stage that does not fit
 * alone fits no plan). */
static inline int mp_bound_stage_fits_alone(const mp_bound_data *d, double M, int nmax, int b, int r, int j, int e)
{
    const mp_prefix *ps = &d->ps;
    double stash = ps->PS[e] - ps->PS[j];
    return d->sf * (ps->PP[e] - ps->PP[j]) + b * (r ? stash : nmax * stash) <= M;
}

/* 1 when interleaved stage t = [j, e) with recompute r, on a position of
 * speed `speed` with m micro-batches, can be part of a plan of time <= T:
 * such a plan has T >= A_t + U_t + m (F_t + B_t) (proof in
 * planner/bounds_positions.c), A_t + U_t >= (f1 PF(j) + PB(j)) / smax +
 * 2 t lam (f1 = 2 when recompute is forced on, smax the fastest speed, lam
 * the least transfer). Never true for a larger stage if false for a
 * smaller one (m >= 2). */
static inline int mp_bound_stage_time_ok(const mp_prefix *ps, double f1, double smax, double lam, int m, double speed,
                                         int t, int r, int j, int e, double T)
{
    double pre = (f1 * ps->PF[j] + ps->PB[j]) / smax + 2.0 * t * lam;
    double own = m * ((1 + r) * (ps->PF[e] - ps->PF[j]) + ps->PB[e] - ps->PB[j]) / speed;
    return pre + own <= T;
}

/* The least time of one transfer of b out_bytes_per_sample (the least of
 * the layers 0..L-2) on the links of a ring of K positions (0: none). */
double mp_bound_ring_lambda(const mp_bound_data *d, int K, int b);

/* Stronger bound for interleaved configuration (K, b, v) with m micro-
 * batches (planner/bounds_paths.c): the least weighted length of a mixture
 * of the paths of its split-independent graph over the splits whose stages
 * fit their own memory, the mixture found by the double oracle; never below
 * lb, returns at once (>= stop) when it reaches stop, lb when too large or
 * past d->deadline, HUGE_VAL when no split fits. Sets d's micro-batch to b. */
double mp_bound_paths(mp_bound_data *d, int K, int b, int v, int m, double lb, double stop);

#define MP_PATHS_MAX_STAGES 256  /* mp_bound_paths computes nothing for more stages, */
#define MP_PATHS_MAX_CELLS 3e5   /* stages times layers, */
#define MP_PATHS_MAX_OPS 2.7e5   /* or ops */

/* 1 when mp_bound_paths computes a bound for S stages of L layers, m
 * micro-batches (within the limits above its setup and each of its rounds
 * take 25 ms at most on one core of the bench machine: the past deadline
 * it may overrun; about 25 MB for its pools at 256 stages). */
static inline int mp_bound_paths_applies(int S, int L, int m)
{
    return S <= MP_PATHS_MAX_STAGES && S <= L && (double)S * L <= MP_PATHS_MAX_CELLS && 2.0 * m * S <= MP_PATHS_MAX_OPS;
}

/* Stage t = layers [j, e) of the table's configuration: its least term
 * over its recompute choices (ps at the table's b). */
double mp_bound_table_term(const mp_bound_table *tb, const mp_prefix *ps, int t, int j, int e);

/* n[t]: micro-batches of stage t forwarded on its position before the
 * position's first backward; nmax[t]: the most of stage t in flight on its
 * position at any time of the interleaved op walk of (K, v, m); [K v]
 * each. 0 when it cannot be built (n, nmax then undefined). */
int mp_bound_inflight(int K, int v, int m, int *n, int *nmax);

/* Room and the configuration in tb for (K, b, v, m) under d (micro-batch
 * b set): every coefficient 0, cons 0, n, nmax and the transfer tables
 * filled, S = K v; 0 (S = 0) when too large or out of memory. */
int mp_bound_table_alloc(mp_bound_table *tb, const mp_bound_data *d, int K, int b, int v, int m);
void mp_bound_table_free(mp_bound_table *tb);                 /* frees, zeroes */
void mp_bound_table_swap(mp_bound_table *a, mp_bound_table *b);   /* exchanges the two (no copy) */

/* Admits, from the next mp_bound_table_suffixes on, only the stages that
 * pass mp_bound_stage_time_ok at T (HUGE_VAL: every stage that fits). */
void mp_bound_table_admit(mp_bound_table *tb, const mp_bound_data *d, double T);

/* Fills suf, to, rto from the coefficients (the stages that fit alone
 * under d); returns and sets value (HUGE_VAL: no split fits). */
double mp_bound_table_suffixes(mp_bound_table *tb, const mp_bound_data *d);

/* The table's least sum of the terms of stages t..S-1 over layers j..L-1
 * (HUGE_VAL: none fits). */
static inline double mp_bound_table_suffix(const mp_bound_table *tb, int t, int j)
{
    return tb->suf[(size_t)t * (tb->L + 1) + j];
}

/* The water level: the least T >= min base_i with
 * sum_i max(0, T - base_i) speed_i / m >= work, over the n entries with
 * speed_i > 0 (HUGE_VAL when none and work > 0). max(level, max base_i) is
 * min over w_i >= 0, sum w_i = work, of max_i (base_i + m w_i / speed_i),
 * so the level bounds that from below. scratch holds 2n doubles. */
double mp_bound_waterfill(const double *base, const double *speed, int n, double work, double m,
                          double *scratch);

/* The schedule's part y of T >= C + y for gpipe/1f1b stage s of K with
 * forward and backward times F, B per micro-batch (B with the recompute),
 * C the round trip of micro-batch 0 (proof in planner/split.c):
 * gpipe (m-1)(F+B); 1f1b max((m-1)B + rF, (m-1)F + rB) with
 * r = max(0, m-1-min(K-s-1, m)); 0 for interleaved. */
static inline double mp_bound_stage_tail(int kind, int K, int s, int m, double F, double B)
{
    if (kind == MP_SCHED_GPIPE) return (m - 1) * (F + B);
    if (kind != MP_SCHED_1F1B) return 0;
    int w = K - s - 1 < m ? K - s - 1 : m, r = m - 1 - w > 0 ? m - 1 - w : 0;
    double t1 = (m - 1) * B + r * F, t2 = (m - 1) * F + r * B;
    return t1 > t2 ? t1 : t2;
}

/* 1F1B round trips: on stage s of K, F(n) follows B(n - (K-s)) in its list
 * (the steady pairs), and B(i) ends no sooner than F(i) starts plus the
 * round trip R_s of micro-batch i through stages s..K-1 and back, so
 * T >= A_s + U_s + n R_s = n C - (n-1)(A_s + U_s) with n = ceil(m/(K-s))
 * (proof in planner/split.c); returns n for 1f1b, 1 for any other kind
 * (T >= C). */
static inline int mp_bound_round_trips(int kind, int K, int s, int m)
{
    return kind == MP_SCHED_1F1B ? (m + K - s - 1) / (K - s) : 1;
}

/* For tests: the best of mp_bound_quick and mp_bound_split (interleaved:
 * mp_bound_positions, then mp_bound_paths) for one configuration under
 * options o (o->recompute, o->state_factor, o->global_batch). */
mp_status mp_search_config_bound(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                                 int K, int b, int kind, int v, double *lb, mp_error *err);

#endif
