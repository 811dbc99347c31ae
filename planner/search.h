/* search.h — the planner: the plan of least simulated iteration time whose
 * every stage (device, for interleaved) fits its device's memory, searched
 * jointly over the number of stages, contiguous splits, micro-batch sizes,
 * schedules (gpipe, 1f1b, interleaved with v chunks) and recompute.
 * defines: mp_search_opts, mp_search_opts_init, mp_search_result, mp_search_run,
 *          mp_search_result_free, mp_search_min_memory
 *
 * Method (docs/cost-model.md; planner/split.c has the proofs in comments):
 * configurations (K, b, schedule, v) are visited in increasing order of a
 * split-independent lower bound; inside each, a depth-first branch and bound
 * places the cut points, pruning with per-stage lower bounds on the
 * iteration time and with memory; leaves are timed by the simulator with
 * stage times from prefix sums. Recompute is chosen per stage as the stages
 * that do not fit without it (the simulation is monotone in op times, so
 * recomputing a stage that fits never helps). The result is proven optimal
 * unless a node/simulation budget ran out; then `optimal` is 0 and
 * `lower_bound_ms` bounds every plan the search did not rule out. */
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
    long node_budget;          /* branch-and-bound nodes in all (0: default) */
    double sim_op_budget;      /* simulated ops in all (0: default) */
    int progress;              /* 1: report progress on stderr when a search runs > 2 s */
    int min_devices;           /* plans use at least this many devices (0: 1) */
    int max_devices;           /* ... and at most this many (0: all of the cluster) */
    int data_parallel;         /* replicas D: 1 (default) none; 0 every D with D*K <= devices
                                * (any schedule; replicas on devices of the same
                                * kind: docs/cost-model.md); N: exactly N */
    int positions;             /* pipeline positions K of one replica: 0 searched, else exactly K */
} mp_search_opts;

/* Defaults: auto everything but data_parallel (1), state factor
 * MP_DEFAULT_STATE_FACTOR, top 5. */
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
} mp_search_result;

/* Runs the search. MP_OK with num_plans >= 1, or MP_ERR_NOFIT (message
 * says so) when no plan fits; MP_ERR_USAGE for impossible options (a
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
