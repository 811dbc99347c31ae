/* search.h — the planner: the plan of least simulated iteration time whose
 * every stage (device, for interleaved) fits its device's memory, searched
 * jointly over the number of stages, which devices run them in which order
 * (planner/placement.h: one order per sequence of device classes),
 * contiguous splits, micro-batch sizes, schedules (gpipe, 1f1b, interleaved
 * with v chunks) and recompute.
 * defines: mp_search_opts, MP_SEARCH_TIME_LIMIT, mp_search_opts_init, mp_search_result, mp_search_run,
 *          mp_search_result_free, mp_search_min_memory
 *
 * Method (docs/cost-model.md; planner/split.c has the proofs in comments):
 * configurations (K, b, schedule, v, placement) are visited in increasing order of a
 * split-independent lower bound; inside each, a depth-first branch and bound
 * places the cut points, pruning with per-stage lower bounds on the
 * iteration time and with memory; leaves are timed by the simulator with
 * stage times from prefix sums. Recompute is chosen per stage as the stages
 * that do not fit without it (the simulation is monotone in op times, so
 * recomputing a stage that fits never helps). The search is anytime: it
 * stops at its time limit (wall clock, all work counted: bounds, split
 * search, memory walks, simulations, the final evaluation) with the best
 * plans so far. The result is proven optimal unless the limit (or an
 * optional work cap) stopped it; then `optimal` is 0 and `lower_bound_ms`
 * bounds every plan the search did not rule out. */
#ifndef MP_SEARCH_H
#define MP_SEARCH_H

#include "cluster.h"
#include "mp_status.h"
#include "plan.h"
#include "profile.h"

typedef enum { MP_RC_AUTO = -1, MP_RC_OFF = 0, MP_RC_ON = 1 } mp_recompute_mode;

typedef struct {
    int global_batch;          /* > 0 */
    int microbatch;            /* 0: search every divisor of global_batch */
    int schedule;              /* -1: every schedule; else an mp_schedule_kind */
    int recompute;             /* mp_recompute_mode */
    double state_factor;       /* >= 0 */
    int top;                   /* keep the best `top` plans, one per configuration (>= 1) */
    double time_limit;         /* seconds of wall time for the whole search (default
                                * MP_SEARCH_TIME_LIMIT; 0: no limit) */
    long node_budget;          /* optional deterministic cap: branch-and-bound nodes in all (0: none) */
    double sim_op_budget;      /* optional deterministic cap: simulated ops in all (0: none) */
    int progress;              /* 1: a progress line on stderr (rewritten once a second) when a search runs > 2 s */
    int min_devices;           /* plans use at least this many devices (0: 1) */
    int max_devices;           /* ... and at most this many (0: all of the cluster) */
    int data_parallel;         /* replicas D: 1 (default) none; 0 every D with D*K <= devices
                                * (any schedule; replicas on devices of the same
                                * kind: docs/cost-model.md); N: exactly N */
    int positions;             /* pipeline positions K of one replica: 0 searched, else exactly K */
    int file_order;            /* 1: position k on device k, as in the cluster file (no placement
                                * search; replicas always run in the file order) */
} mp_search_opts;

#define MP_SEARCH_TIME_LIMIT 1.0  /* seconds */

/* Defaults: auto everything but data_parallel (1), state factor
 * MP_DEFAULT_STATE_FACTOR, top 5, time limit MP_SEARCH_TIME_LIMIT, no work
 * caps. */
void mp_search_opts_init(mp_search_opts *o, int global_batch);

typedef struct {
    int num_plans;             /* 0 when nothing fits */
    mp_plan *plans;            /* best first; predicted filled by the reference mp_plan_evaluate */
    double *fast_ms;           /* [num_plans] the search's own (fast path) iteration time */
    int optimal;               /* 1: plans[0] is proven optimal for the cost model */
    double lower_bound_ms;     /* no plan is faster than this */
    double gap;                /* (plans[0] time - lower bound) / plans[0] time; 0 when optimal */
    long configurations;       /* configurations considered (bound computed) */
    long searched;             /* configurations whose split search ran */
    long nodes;                /* branch-and-bound nodes */
    long simulations;          /* simulator runs */
    double seconds;            /* wall time of the search */
    int stopped;               /* 1: the time limit (or a work cap) stopped the search */
    int placements;            /* device orders searched (planner/placement.h) */
    int placements_complete;   /* 1: every order of device classes; 0: too many, the file
                                * order only (the result holds for that order) */
} mp_search_result;

/* Runs the search. MP_OK with num_plans >= 1, or MP_ERR_NOFIT (message
 * says so) when no plan fits or, with r->stopped, none was found within the
 * time limit; MP_ERR_USAGE for impossible options (a
 * microbatch that does not divide the global batch, a schedule that cannot
 * run on this cluster/model); MP_ERR_NOMEM. Free r with mp_search_result_free. */
mp_status mp_search_run(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                        mp_search_result *r, mp_error *err);

void mp_search_result_free(mp_search_result *r);

/* The smallest memory M such that, with every device's memory set to M, some
 * plan allowed by `o` fits: min over plans of the largest peak, over every D
 * that o->data_parallel allows. *plan gets one such plan (evaluated). For interleaved-only searches the split search
 * is used with a budget, so M may then be an upper bound. o->min_devices and
 * o->max_devices are not applied here. */
mp_status mp_search_min_memory(const mp_profile *prof, const mp_cluster *cl,
                               const mp_search_opts *o, double *min_bytes, mp_plan *plan,
                               mp_error *err);

#endif
