/* split.h — the planner's branch and bound over the splits of one
 * configuration (planner/split.c; the interleaved parts in
 * planner/split_interleaved.c). The driver (planner/search.c) sets up a
 * configuration, times its greedy split, sets the caps and runs the search.
 * defines: mp_search_tally, MP_TALLY_TICK, mp_tally_charge, mp_tally_spent, mp_tally_sim_fits, mp_il_state,
 *          mp_split, mp_split_init, mp_split_free, mp_split_config, mp_split_greedy, mp_split_polish,
 *          mp_split_search, mp_split_try_leaf, the mp_split_il_* hooks of the interleaved search
 *          (mp_split_il_rest_fits among them),
 *          mp_split_zb_bound, mp_split_zb_search (zero-bubble, planner/split_zb.c) */
#ifndef MP_SPLIT_H
#define MP_SPLIT_H

#include <math.h>

#include "bounds.h"
#include "clock.h"
#include "cluster.h"
#include "configs.h"
#include "mem_states.h"
#include "mp_status.h"
#include "prefix.h"
#include "profile.h"
#include "schedule.h"
#include "search.h"
#include "sim.h"
#include "top.h"

/* What the search counts, and the caps of the configuration being searched
 * (the driver sets them before mp_split_search). Time is the cap that
 * always holds: t_cap is the wall clock (mp_now_s) at which the current
 * configuration's work stops; work caps are optional and deterministic. */
typedef struct {
    long nodes;                /* branch-and-bound nodes, each weighing mp_split.node_weight */
    long sims;                 /* simulator runs */
    double simops;             /* simulated ops */
    long node_cap;             /* the split search stops at nodes >= node_cap ... */
    double sim_cap;            /* ... or simops >= sim_cap ... */
    double t_cap;              /* ... or at wall time t_cap (HUGE_VAL: none) */
    long tick;                 /* work units left before the clock is read again */
    int out_of_budget;         /* 1: a cap (time or work) stopped a split search */
    int inexact;               /* 1: interleaved recompute sets were cut, optimality unproven */
    long searched;             /* configurations whose split search ran */
    int progress;              /* 1: a progress line on stderr once the search runs > 2 s */
    double t0;                 /* when the search started (mp_now_s) */
    double sim_s;              /* seconds spent in the simulator */
    int shown;                 /* 1: a progress line was printed ... */
    double shown_s;            /* ... the last at this many seconds after t0 */
    double cut_lb;             /* least bound of the subtrees a cap cut off (HUGE_VAL: none) */
} mp_search_tally;

#define MP_TALLY_TICK 64       /* work units (nodes, peak walks) between clock reads */

/* 1 when the current configuration's caps are reached (sticky: sets
 * out_of_budget). Charges `units` of work; reads the clock once every
 * MP_TALLY_TICK units. */
static inline int mp_tally_charge(mp_search_tally *t, long units)
{
    if (t->out_of_budget) return 1;
    if (t->nodes >= t->node_cap || t->simops >= t->sim_cap) return t->out_of_budget = 1;
    if ((t->tick -= units) > 0) return 0;
    t->tick = MP_TALLY_TICK;
    if (mp_now_s() >= t->t_cap) t->out_of_budget = 1;
    return t->out_of_budget;
}

/* 1 when the current configuration's caps are reached (no work charged
 * beyond one unit). */
static inline int mp_tally_spent(mp_search_tally *t) { return mp_tally_charge(t, 1); }

/* 1 when a simulation of `ops` ops fits the time left (at the rate
 * measured so far; before the first, an assumed 10^7 ops/s): else the
 * caps count as reached. */
static inline int mp_tally_sim_fits(mp_search_tally *t, double ops)
{
    if (mp_tally_spent(t)) return 0;
    double rate = t->sim_s > 1e-3 ? t->simops / t->sim_s : 1e7;
    if (t->t_cap < HUGE_VAL && mp_now_s() + ops / rate >= t->t_cap) return !(t->out_of_budget = 1);
    return 1;
}

/* Interleaved: what the placed stages hold per position, and scratch. */
typedef struct {
    double *busy;              /* [K] placed busy time (m (F + B) of its chunks, + forced recompute) */
    double *peak;              /* [K] lower bound on the peak of its placed chunks */
    double *rcx;               /* [K] busy time added for the recompute memory forces */
    double *arsum;             /* [K] all-reduce time of its placed stages (D > 1; after its list ends) */
    double *wf;                /* [3K] water-filling scratch: base, speed, sort space */
    double *held, *extra;      /* [S] per-stage bytes of one device walk */
    mp_mem_states ms;          /* the configuration's in-flight states */
    int *room_n;               /* [K (v+1) v] (p, d, c): micro-batches of p's chunk c >= d in flight at its row, */
    double *room;              /* ... and the bytes its stage may hold there, p's chunks < d placed (stage_room) */
    size_t room_cap;           /* entries allocated */
    double pmin, hmin;         /* least param bytes of a layer; least held bytes per sample of a stage */
} mp_il_state;

typedef struct {
    /* the search's */
    const mp_cluster *cl;
    int mode;                  /* mp_recompute_mode */
    double sf;                 /* state factor */
    mp_prefix ps;              /* byte sums; time sums at c.b */
    mp_top *top;               /* incumbents: what a leaf must beat */
    mp_search_tally *tally;
    mp_sim *sim;
    /* the configuration's */
    mp_config c;
    mp_stage_fit fit;          /* gpipe/1f1b stage memory */
    mp_op_lists ops;
    int *last_stage;           /* [K] stage of each position's last op */
    double *spd_max_suf, *spd_sum_suf; /* [S+1]: over positions of stages s..S-1 */
    double latmin;             /* smallest link latency (ms) among the used links */
    long node_weight;          /* work units per node: 1, more when memory states are many */
    double polish_s;           /* interleaved: seconds that polishing a greedy split may take
                                * (mp_split_greedy; 0: none, HUGE_VAL: the caps only) */
    double node_lb;            /* bound of the node whose children are being placed */
    long cut_children_left;    /* children a cap cut that may still get their own bound */
    const mp_bound_table *lt;  /* interleaved: the positions' weights of the configuration (NULL: none) */
    double *lsum;              /* [S+1] lsum[s]: their terms of stages 0..s-1 */
    /* the split: stages 0..s placed */
    int *hi, *rc;              /* [S] last layer, recompute */
    double *F, *Bn, *B, *R;    /* [S] forward, backward without / with recompute, recompute */
    double *act, *grad;        /* [S] transfer times to the next stage, back from it */
    double *ar;                /* [S] all-reduce times among the c.D replicas (0 when D = 1) */
    double *A, *U;             /* [S+1] chain before stage s's forward / after its backward */
    mp_il_state il;
} mp_split;

/* Allocates for any configuration of prof on cl under o; the incumbents
 * go to top, the counts to tally. MP_ERR_NOMEM (free x anyway). */
mp_status mp_split_init(mp_split *x, const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                        mp_top *top, mp_search_tally *tally);
void mp_split_free(mp_split *x);

/* Sets up configuration c: op lists, time sums, device speeds. MP_ERR_INPUT
 * (message) when its schedule cannot be built. */
mp_status mp_split_config(mp_split *x, const mp_config *c, mp_error *err);

/* Times the greedy split of the configuration (balanced stage times, the
 * least largest one found by bisection) and offers it to the incumbents,
 * interleaved polished first when near it (mp_split_polish, for x->polish_s
 * at most);
 * gpipe/1f1b under auto recompute also the split balanced with the
 * recompute that each stage's memory forces counted in its time. */
mp_status mp_split_greedy(mp_split *x, mp_error *err);

/* Hill climbing from the split start (last layers of its stages; NULL:
 * the configuration's incumbent, nothing when it has none), when its time
 * is below (1 + near) times the time to beat: one cut moved by one layer
 * while that lowers the time, then a few cuts at once, within the tally's
 * caps; the best split found (start itself at least) is offered to the
 * incumbents. Finds better plans; proves nothing. */
mp_status mp_split_polish(mp_split *x, const int *start, double near, mp_error *err);

/* The branch and bound over every split of the configuration, within the
 * tally's caps (tally->out_of_budget set when they stopped it). */
mp_status mp_split_search(mp_split *x, mp_error *err);

/* Stage s's device speed (stage s runs on position s % K). */
static inline double mp_split_speed(const mp_split *x, int s) { return x->cl->devices[s % x->c.K].speed; }

/* Position p's memory. */
static inline double mp_split_mem(const mp_split *x, int p) { return x->cl->devices[p].memory_bytes; }

/* Work of layers [lo, L) in profile ms at b (with recompute on, F twice). */
static inline double mp_split_rem_work(const mp_split *x, int lo)
{
    int L = x->ps.L;
    double w = x->ps.PF[L] - x->ps.PF[lo] + x->ps.PB[L] - x->ps.PB[lo];
    if (x->mode == MP_RC_ON) w += x->ps.PF[L] - x->ps.PF[lo];
    return w;
}

/* Sets stage s's recompute (B and R follow). */
static inline void mp_split_set_rc(mp_split *x, int s, int rc)
{
    x->rc[s] = rc;
    x->R[s] = rc ? x->F[s] : 0;
    x->B[s] = x->Bn[s] + x->R[s];
}

/* All stages placed with their recompute: bound, simulate, offer. */
mp_status mp_split_try_leaf(mp_split *x);

/* Zero bubble (split_zb.c): a valid lower bound of any zb configuration of
 * K positions at micro-batch b with m micro-batches, the positions' total
 * work over their total speed, m * sum_l (fwd + bwd_input + bwd_weight) /
 * sum_p speed_p (the profile must have the split times). */
double mp_split_zb_bound(const mp_profile *prof, const mp_cluster *cl, int K, int b, int m);

/* The search over every split of the zero-bubble configuration set up by
 * mp_split_config, each leaf timed by mp_plan_evaluate, within the tally's
 * caps; MP_ERR_NOMEM. */
mp_status mp_split_zb_search(mp_split *x, mp_error *err);

/* ---------------------------------------------------------------- interleaved (split_interleaved.c) */

/* Undo record of mp_split_il_enter. */
typedef struct {
    double add, rcx, peak, ar;
} mp_il_undo;

/* Before the branch and bound: the in-flight states, the node weight, and
 * nothing placed. MP_ERR_NOMEM; MP_ERR_TIMEOUT when the states are not
 * built by the tally's t_cap. */
mp_status mp_split_il_prepare(mp_split *x);

/* Narrows the last layer of stage s (first layer lo) to [*hmin, *hmax]:
 * memory (the position's peak bound, the parameter state left against the
 * memory left) and, when thr is finite, the position's work and the work
 * left against the positions' capacity below thr. */
void mp_split_il_narrow(mp_split *x, int s, int lo, double thr, int *hmin, int *hmax);

/* Last stage s placed with the mode's recompute: 0 when its position's
 * peak bound already exceeds its memory. */
int mp_split_il_last_fits(mp_split *x, int s);

/* Stage s (not the last) placed: adds its busy time (and the recompute
 * that memory forces) to its position and updates the position's peak
 * bound; *busy gets the position's time bound, *go 0 when the parameter
 * state left cannot fit. Returns 0 (nothing changed) when no recompute
 * choice fits; else undo with mp_split_il_leave. */
int mp_split_il_enter(mp_split *x, int s, int hi, double *busy, int *go, mp_il_undo *u);
static inline void mp_split_il_leave(mp_split *x, int s, const mp_il_undo *u)
{
    int p = s % x->c.K;
    x->il.busy[p] -= u->add;
    x->il.arsum[p] -= u->ar;
    x->il.peak[p] = u->peak;
    x->il.rcx[p] = u->rcx;
}

/* Stages 0..s-1 placed and work rw (profile ms) left: the water level of
 * rw over the positions (a lower bound on T). */
double mp_split_il_level(mp_split *x, int s, double rw);

/* Stages 0..s-1 placed: 0 when no completion can take less than thr by
 * the relaxation of stage_room (each stage left by itself: its own memory
 * at its row and its own time on its position); 1 otherwise. */
int mp_split_il_rest_fits(mp_split *x, int s, double thr);

/* All stages placed: the recompute choices per position (every minimal
 * fitting set when v <= MAXV_EXACT), each tried as a leaf. */
mp_status mp_split_il_leaf(mp_split *x);

#endif
