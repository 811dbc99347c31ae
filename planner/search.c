/* search.c — the planner's search (search.h): the configurations by
 * increasing lower bound, each with the branch and bound over its splits
 * under a share of the time limit; the best plans and what the search proved.
 * defines: mp_search_opts_init, mp_search_run, mp_search_result_free
 *
 * The parts: planner/configs.c lists the configurations with their bounds
 * (planner/bounds.c), planner/split.c searches the splits of one
 * (planner/split_interleaved.c for interleaved), planner/top.c keeps the
 * incumbents. Configurations are visited gpipe/1f1b first (cheap, and their
 * incumbent prunes the interleaved ones), then interleaved, each pass by
 * increasing bound, skipping those whose bound reaches the incumbent; a
 * gpipe/1f1b bound is sharpened by the split relaxation (mp_bound_split)
 * just before its visit, an interleaved one by the positions' Lagrangian
 * bound (mp_bound_positions, over the splits whose stages fit their own
 * memory, then bisected on T over stages that meet their own time bound: a
 * sweep over those below the incumbent before the interleaved pass), then
 * by the critical paths' bound (mp_bound_paths, once per configuration
 * unless a deadline cut it, in its visit or, least bound first, when the
 * bounds of what was left are sharpened); configurations a cap cut are searched
 * again when the interleaved pass leaves time. Time: gpipe/1f1b may use half of the time limit
 * (all of it when there are no interleaved configurations; every share
 * gives way until a first plan is found, so that one is), one
 * configuration at most an eighth (set_caps), one greedy split and one
 * critical paths' bound in a visit at most GREEDY_SHARE and PATHS_SHARE
 * (the paths' bound is anytime), the hill climbing from an interleaved
 * greedy split within 3% of the incumbent CLIMB_SHARE (with a limit only);
 * the search ends early enough
 * that the reference evaluation of the incumbents still fits the limit
 * (search_end). When a cap cut the search, POLISH_SHARE of the limit
 * polishes the incumbents (mp_split_polish: better plans, no proof) and the
 * last REFINE_SHARE sharpens the bounds of what was left (unproven_bound).
 * Optional work caps (node_budget, sim_op_budget) are shared
 * out the same way. The reported lower bound is the least bound of the
 * configurations not fully searched; a configuration whose split search a
 * cap stopped is bounded by the least bound of the subtrees it cut (each
 * bounded on its own, planner/split.c). An interleaved configuration's
 * positions' and critical paths' bounds leave the better of their weights
 * (mp_bound_table) to its split search as a node bound.
 * MPKIT_SEARCH_DIAG=N in the environment lists on stderr the N least-bound
 * configurations that hold the reported bound down (diagnose). */
#include "search.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "clock.h"
#include "configs.h"
#include "evaluate.h"
#include "schedule.h"
#include "placement.h"
#include "split.h"
#include "top.h"

#define GREEDY_FIRST 64       /* interleaved configurations (per D) whose greedy split is timed first ... */
#define GREEDY_PER_B 8        /* ... and per (D, micro-batch) */
#define GREEDY_SHARE (1.0 / 32) /* of the limit: at most for one greedy split and its recompute choices */
#define PATHS_SHARE (1.0 / 32)  /* ... and for one critical paths' bound before a split search */
#define CLIMB_SHARE (1.0 / 256) /* ... and for the hill climbing from an interleaved greedy split */
#define INTERLEAVED_NEAR 0.10 /* relative gap below which interleaved configurations get less time */
#define EVAL_FACTOR 6.0       /* a reference evaluation costs about this many fast simulations */
#define LIMIT_USE 0.95        /* the search and the evaluation aim at this share of the limit */
#define POLISH_SHARE 0.05     /* of the limit: kept for polishing the incumbents of a cut search ... */
#define REFINE_SHARE 0.15     /* ... and for the bounds of what it left (unproven_bound) */
#define SWEEP_SHARE 0.6       /* the interleaved configurations' bounds are sharpened until then, */
#define SWEEP_WEAK 0.005      /* the critical paths' too where the positions' raised the bound less than this */
#define LIST_SHARE 0.4        /* listing the configurations sharpens their bounds until then */

typedef struct {
    const mp_search_opts *o;   /* with the budgets' defaults filled in */
    mp_bound_data bd;
    mp_top top;
    mp_search_tally tally;
    mp_split sp;
    int *from;                 /* mp_config_fits scratch */
    mp_placements pls;         /* the device orders searched (one replica) */
    const mp_cluster *cl;      /* the whole cluster (replicas run in its file order) */
    long cfgs;                 /* configurations considered */
    double unproven;           /* least bound of what was not fully explored */
    double t0, t_end;          /* start; end by the time limit (HUGE_VAL: none) */
    int stopped;               /* 1: a cap stopped some configuration's search */
    unsigned char *seen;       /* [configs] 1 greedy timed, 2 split search run; 4 paths' bound, 8 positions' bound done,
                                * 16 positions' bound cut by the visit's deadline */
    const mp_config *cfg0;     /* the configurations (seen's index) */
} search;

/* See search.h. */
void mp_search_opts_init(mp_search_opts *o, int global_batch)
{
    memset(o, 0, sizeof *o);
    o->global_batch = global_batch;
    o->schedule = -1;
    o->recompute = MP_RC_AUTO;
    o->state_factor = MP_DEFAULT_STATE_FACTOR;
    o->top = 5;
    o->data_parallel = 1;
    o->time_limit = MP_SEARCH_TIME_LIMIT;
}

static mp_status check_opts(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                            mp_error *err)
{
    if (o->global_batch < 1)
        return mp_error_set(err, MP_ERR_USAGE, "--global-batch must be >= 1 (got %d)", o->global_batch);
    if (o->microbatch < 0 || (o->microbatch && o->global_batch % o->microbatch))
        return mp_error_set(err, MP_ERR_USAGE, "--microbatch %d does not divide --global-batch %d",
                            o->microbatch, o->global_batch);
    if (!(o->state_factor >= 0) || isinf(o->state_factor))
        return mp_error_set(err, MP_ERR_USAGE, "--state-factor must be >= 0 (got %g)", o->state_factor);
    if (o->top < 1) return mp_error_set(err, MP_ERR_USAGE, "--top must be >= 1 (got %d)", o->top);
    if (o->data_parallel < 0 || o->data_parallel > cl->num_devices)
        return mp_error_set(err, MP_ERR_USAGE, "--data-parallel %d: must be auto or 1..%d (the cluster's devices)",
                            o->data_parallel, cl->num_devices);
    if (o->positions < 0 || o->positions > cl->num_devices)
        return mp_error_set(err, MP_ERR_USAGE, "--positions %d: must be 1..%d (the cluster's devices)",
                            o->positions, cl->num_devices);
    if (!(o->time_limit >= 0) || isinf(o->time_limit))
        return mp_error_set(err, MP_ERR_USAGE, "--time-limit must be a number of seconds > 0 (got %g)", o->time_limit);
    if (prof->num_layers < 1 || cl->num_devices < 1)
        return mp_error_set(err, MP_ERR_INPUT, "search: the profile has no layers or the cluster no devices");
    return MP_OK;
}

static void search_free(search *x)
{
    mp_bound_data_free(&x->bd);
    mp_top_free(&x->top);
    mp_split_free(&x->sp);
    free(x->from);
    free(x->seen);
    mp_placements_free(&x->pls);
}

/* The split search and the bounds work on c's devices from here on. */
static void use_config(search *x, const mp_config *c)
{
    x->sp.cl = x->bd.cl = mp_config_cluster(c, &x->pls, x->cl);
}

static mp_status search_init(search *x, const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                             double t0)
{
    memset(x, 0, sizeof *x);
    x->o = o;
    x->cl = cl;
    x->tally.progress = o->progress;
    x->tally.t0 = t0;
    x->unproven = HUGE_VAL;
    x->t0 = t0;
    x->t_end = o->time_limit > 0 ? t0 + LIMIT_USE * o->time_limit : HUGE_VAL;
    if (mp_top_init(&x->top, o->top) != MP_OK ||
        mp_split_init(&x->sp, prof, cl, o, &x->top, &x->tally) != MP_OK ||
        mp_bound_data_init(&x->bd, prof, cl, o->recompute, o->state_factor) != MP_OK ||
        !(x->from = malloc(mp_config_fits_scratch(&x->sp.ps, cl) * sizeof(int))))
        return MP_ERR_NOMEM;
    x->bd.deadline = x->t_end;
    int L = prof->num_layers, D = cl->num_devices;
    int kmin = o->min_devices > 1 ? o->min_devices : 1;
    int kmax = o->max_devices > 0 && o->max_devices < D ? o->max_devices : D;
    if (kmax > L) kmax = L;
    if (kmin > kmax) kmin = kmax;
    if (mp_placements_build(cl, kmin, kmax, o->file_order, &x->pls, NULL) != MP_OK) return MP_ERR_NOMEM;
    return MP_OK;
}

/* The wall time by which the search must stop: the limit less the time
 * the reference evaluation of the incumbents will take (at the measured
 * simulation rate). */
static double search_end(const search *x)
{
    if (x->t_end == HUGE_VAL) return HUGE_VAL;
    const mp_search_tally *t = &x->tally;
    double rate = t->sim_s > 1e-3 ? t->simops / t->sim_s : 1e7, ops = 0;
    for (int i = 0; i < x->top.n; i++) ops += 2.0 * x->top.e[i].c.m * x->top.e[i].c.S;
    return x->t_end - EVAL_FACTOR * ops / rate;
}

/* The wall time by which the configurations' visits stop: search_end less
 * the polishing and refining shares (search_end while no plan is found). */
static double visit_end(const search *x)
{
    if (x->top.n == 0) return search_end(x);   /* a plan first, whatever the shares */
    return search_end(x) - (x->o->time_limit > 0 ? (POLISH_SHARE + REFINE_SHARE) * x->o->time_limit : 0);
}

/* The wall time by which polishing stops. */
static double polish_end(const search *x)
{
    return search_end(x) - (x->o->time_limit > 0 ? REFINE_SHARE * x->o->time_limit : 0);
}

/* Resets the tally's caps for the next piece of work: c's split search
 * (c not NULL) gets an eighth of the limit and of each work cap (of the
 * nodes a 32nd for an interleaved configuration whose bound is within
 * INTERLEAVED_NEAR of the incumbent: little can be gained there), at most
 * what is left; c NULL: all that is left. */
static void set_caps(search *x, const mp_config *c)
{
    mp_search_tally *t = &x->tally;
    const mp_search_opts *o = x->o;
    int near = c && c->kind == MP_SCHED_INTERLEAVED && mp_top_worst(&x->top) <= c->lb * (1 + INTERLEAVED_NEAR);
    t->out_of_budget = 0;
    t->tick = 0;
    t->cut_lb = HUGE_VAL;
    t->t_cap = visit_end(x);
    if (c && o->time_limit > 0) {
        double share = mp_now_s() + o->time_limit / 8;
        if (share < t->t_cap) t->t_cap = share;
    }
    t->node_cap = LONG_MAX;
    t->sim_cap = HUGE_VAL;
    if (o->node_budget > 0) {
        long left = o->node_budget - t->nodes, cap = !c ? left : o->node_budget / (near ? 32 : 8);
        t->node_cap = t->nodes + (left < cap ? left : cap);
    }
    if (o->sim_op_budget > 0) {
        double sleft = o->sim_op_budget - t->simops, scap = !c ? sleft : o->sim_op_budget / 8;
        t->sim_cap = t->simops + (sleft < scap ? sleft : scap);
    }
}

/* Interleaved and zero-bubble configurations come in the second pass. */
static int late(int kind) { return kind == MP_SCHED_INTERLEAVED || mp_schedule_is_zb((mp_schedule_kind)kind); }

/* 1 when pass `pass` (0: gpipe/1f1b, 1: interleaved and zero bubble) has used
 * its share: gpipe/1f1b half of the time and of the work caps, unless alone. */
static int pass_spent(const search *x, int pass, int alone)
{
    const mp_search_opts *o = x->o;
    const mp_search_tally *t = &x->tally;
    double share = pass || alone || x->top.n == 0 ? 1 : 0.5;
    if (o->time_limit > 0 && mp_now_s() >= x->t0 + share * LIMIT_USE * o->time_limit) return 1;
    if (mp_now_s() >= visit_end(x)) return 1;
    if (o->node_budget > 0 && t->nodes >= share * o->node_budget) return 1;
    return o->sim_op_budget > 0 && t->simops >= share * o->sim_op_budget;
}

/* Times c's greedy split; with split_too, then searches its splits (a cap
 * that stops it raises c's bound to the least bound of what it cut). Sets
 * *cut when a cap stopped either. */
static mp_status search_config(search *x, mp_config *c, int split_too, int *cut, mp_error *err)
{
    mp_search_tally *t = &x->tally;
    use_config(x, c);
    set_caps(x, NULL);
    if (x->o->time_limit > 0 && mp_now_s() + GREEDY_SHARE * x->o->time_limit < t->t_cap)
        t->t_cap = mp_now_s() + GREEDY_SHARE * x->o->time_limit;   /* one split (and its recompute sets) */
    *cut = 1;
    if (x->seen) x->seen[c - x->cfg0] |= split_too ? 2 : 1;
    if (!mp_tally_sim_fits(t, 2.0 * c->m * c->S)) return MP_OK;  /* not even its op lists */
    mp_status st = mp_split_config(&x->sp, c, err);
    if (st == MP_OK && mp_schedule_is_zb((mp_schedule_kind)c->kind)) {   /* planner/split_zb.c: the search only */
        if (!split_too) return MP_OK;
        set_caps(x, c);
        t->searched++;
        st = mp_split_zb_search(&x->sp, err);
        *cut = t->out_of_budget;
        return st;
    }
    x->sp.polish_s = x->o->time_limit > 0 ? CLIMB_SHARE * x->o->time_limit : 0;   /* none without a limit */
    if (st == MP_OK) st = mp_split_greedy(&x->sp, err);
    *cut = t->out_of_budget;
    if (st != MP_OK || !split_too) return st;
    set_caps(x, c);
    if (c->kind == MP_SCHED_INTERLEAVED && !mp_tally_sim_fits(t, 2.0 * c->m * c->S * (c->v + 1)))
        return MP_OK;  /* its memory states would not be built in time */
    t->searched++;
    st = mp_split_search(&x->sp, err);
    *cut = t->out_of_budget;
    if (*cut && t->cut_lb > c->lb) c->lb = t->cut_lb;
    return st;
}

/* Interleaved c's critical-paths bound (planner/bounds_paths.c), once per
 * configuration unless the deadline cut it (then again, when the bounds of
 * what was left are sharpened, with what time is left; c->lb when done
 * before); stops at stop, and after PATHS_SHARE of the limit when share is
 * set. */
static double paths_bound(search *x, mp_config *c, double stop, int share)
{
    unsigned char *seen = x->seen ? &x->seen[c - x->cfg0] : NULL;
    if (seen && (*seen & 4)) return c->lb;
    double keep = x->bd.deadline, slice = mp_now_s() + PATHS_SHARE * x->o->time_limit;
    if (share && x->o->time_limit > 0 && slice < keep) x->bd.deadline = slice;
    double lb = mp_bound_paths(&x->bd, c->K, c->b, c->v, c->m, c->lb, stop) * (1 - MP_BOUND_SLACK);
    if (seen && mp_now_s() < x->bd.deadline) *seen |= 4;   /* not cut */
    x->bd.deadline = keep;
    return lb;
}

/* Before the interleaved pass: the positions' bound (planner/bounds_positions.c)
 * of the interleaved configurations by increasing bound, those below the
 * incumbent, each then by the critical paths' (PATHS_SHARE at most) when still
 * below and the positions' added less than SWEEP_WEAK (roomy memory: there the
 * paths' are the stronger, and where memory binds the positions' bounds of
 * more configurations do more), until SWEEP_SHARE of the limit is used (nothing without a
 * limit: the visits compute them for the configurations they search). */
static void sweep(search *x, mp_config *cfg, int n)
{
    if (!(x->o->time_limit > 0)) return;
    double end = x->t0 + SWEEP_SHARE * LIMIT_USE * x->o->time_limit;
    if (end > visit_end(x)) end = visit_end(x);
    double keep = x->bd.deadline;
    x->bd.deadline = end;
    x->bd.no_bisect = 1;   /* many configurations: the cheaper bound; their visits bisect */
    for (int i = 0; i < n && mp_now_s() < end; i++) {
        mp_config *c = &cfg[i];
        double thr = mp_top_worst(&x->top);
        if (c->kind != MP_SCHED_INTERLEAVED || c->lb >= thr) continue;
        use_config(x, c);
        double lb = mp_bound_positions(&x->bd, c->K, c->b, c->v, c->m, c->lb, thr) * (1 - MP_BOUND_SLACK);
        int weak = lb < c->lb * (1 + SWEEP_WEAK);   /* the positions' bound added little: roomy, the paths' may */
        if (lb > c->lb) c->lb = lb;
        if (weak && c->lb < thr && mp_bound_paths_applies(c->S, x->sp.ps.L, c->m)) {
            lb = paths_bound(x, c, thr, 1);
            if (lb > c->lb) c->lb = lb;
        }
    }
    x->bd.deadline = keep;
    x->bd.no_bisect = 0;
}

/* Before the interleaved pass: incumbents from the greedy splits of the
 * most promising interleaved configurations, by bound, GREEDY_FIRST per D:
 * first GREEDY_PER_B per (D, b) with their v a quarter apart or more, then
 * the others. The bounds of neighbouring v are close, and the least
 * bounds' v are often not the best plans' (1000 x 16 memory-bound: bounds
 * least at v = 18, the best plan at v = 7), so the spread comes first. */
static mp_status greedy_first(search *x, mp_config *cfg, int n, int alone, mp_error *err)
{
    enum { PAIRS = 256 };
    int N = x->cl->num_devices, *k = calloc((size_t)N + 1, sizeof *k), pd[PAIRS], pb[PAIRS], pk[PAIRS], np = 0, cut;
    int pv[PAIRS][GREEDY_PER_B];
    if (!k) return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    mp_status st = MP_OK;
    for (int spread = 1; spread >= 0; spread--)
        for (int i = 0; i < n && st == MP_OK; i++) {
            mp_config *c = &cfg[i];
            if (c->kind != MP_SCHED_INTERLEAVED || k[c->D] >= GREEDY_FIRST || (x->seen[i] & 1)) continue;
            if (c->lb >= mp_top_worst(&x->top) || pass_spent(x, 1, alone)) break;
            int j = 0;
            while (spread && j < np && (pd[j] != c->D || pb[j] != c->b)) j++;
            if (spread && j == np && np < PAIRS) pd[np] = c->D, pb[np] = c->b, pk[np++] = 0;
            if (spread && j < np) {
                int near = pk[j] >= GREEDY_PER_B;
                for (int u = 0; u < pk[j] && !near; u++) near = 4 * abs(pv[j][u] - c->v) < (c->v > 4 ? c->v : 4);
                if (near) continue;
                pv[j][pk[j]++] = c->v;
            }
            k[c->D]++;
            st = search_config(x, c, 0, &cut, err);
            x->stopped |= cut;
        }
    free(k);
    return st;
}

/* The passes over cfg[0..n) (sorted by bound): gpipe/1f1b, interleaved,
 * then again those a cap cut while time is left (gpipe/1f1b, and the
 * others whose split search ran); done[i] set for the configurations
 * searched in full or proven not to fit. */
static mp_status visit(search *x, mp_config *cfg, int n, unsigned char *done, mp_error *err)
{
    const mp_search_opts *o = x->o;
    mp_status st;
    int alone = 1, cut;
    for (int i = 0; i < n; i++) alone &= !late(cfg[i].kind);
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1 && (st = greedy_first(x, cfg, n, alone, err)) != MP_OK) return st;
        if (pass == 1) sweep(x, cfg, n);
        for (int i = 0; i < n; i++) {
            mp_config *c = &cfg[i];
            x->sp.lt = NULL;
            if (pass == 2 ? done[i] || (late(c->kind) && !(x->seen[i] & 2)) : late(c->kind) != (pass == 1))
                continue;   /* pass 2: what a cap cut (interleaved and zero bubble: once searched), again */
            double thr = mp_top_worst(&x->top);
            if (c->lb >= thr && pass == 0) break;  /* later passes: bounds raised since, not sorted */
            if (c->lb >= thr) continue;
            if (pass_spent(x, pass, alone)) {
                x->stopped = 1;
                break;
            }
            if (pass >= 1 && c->kind == MP_SCHED_INTERLEAVED) {  /* the positions' bound first (planner/bounds_positions.c) */
                use_config(x, c);
                x->bd.table_want = 1;   /* their weights bound the split search's nodes too */
                double dl = x->bd.deadline;
                x->bd.deadline = visit_end(x);   /* the last shares stay the polish's and the refinement's */
                double lb = mp_bound_positions(&x->bd, c->K, c->b, c->v, c->m, c->lb, thr) * (1 - MP_BOUND_SLACK);
                x->seen[c - x->cfg0] |= mp_now_s() < x->bd.deadline ? 8 : 16;   /* done, or cut: the refinement skips both */
                x->bd.deadline = dl;
                if (lb > c->lb) c->lb = lb;
                if (c->lb < thr) lb = paths_bound(x, c, thr, 1);   /* then the critical paths', anytime */
                x->bd.table_want = 0;
                if (lb > c->lb) c->lb = lb;
                if (c->lb >= thr) continue;
                const mp_bound_table *tb = &x->bd.table;
                x->sp.lt = tb->S == c->S && tb->K == c->K && tb->b == c->b && tb->v == c->v && tb->m == c->m ? tb : NULL;
            }
            if (pass == 0) {
                use_config(x, c);
                double lb = mp_bound_split(&x->bd, c->K, c->b, c->kind, c->m, c->lb, thr) * (1 - MP_BOUND_SLACK);
                if (lb > c->lb) c->lb = lb;
                if (c->lb >= thr) continue;
                mp_stage_fit f = mp_config_fit(c, &x->sp.ps, x->sp.cl, o);
                if (!mp_config_fits(&f, x->from, NULL)) {  /* proven infeasible: skip */
                    done[i] = 1;
                    continue;
                }
            }
            if ((st = search_config(x, c, 1, &cut, err)) != MP_OK) return st;
            done[i] = !cut;
            x->stopped |= cut;
        }
    }
    x->sp.lt = NULL;
    return MP_OK;
}

/* A cut search: hill climbing from each incumbent, best first, until
 * search_end. */
static mp_status polish(search *x, mp_error *err)
{
    int n = x->top.n;
    mp_config cs[n > 0 ? n : 1];
    for (int i = 0; i < n; i++) cs[i] = x->top.e[i].c;
    for (int i = 0; i < n; i++) {
        use_config(x, &cs[i]);
        set_caps(x, NULL);
        x->tally.t_cap = polish_end(x);
        if (mp_now_s() >= x->tally.t_cap) break;
        mp_status st = mp_split_config(&x->sp, &cs[i], err);
        if (st == MP_OK) st = mp_split_polish(&x->sp, NULL, HUGE_VAL, err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

/* Configuration indices by bound, for unproven_bound. */
typedef struct { double lb; int i; } lb_index;

static int cmp_lb_index(const void *a, const void *b)
{
    const lb_index *x = a, *y = b;
    return x->lb < y->lb ? -1 : x->lb > y->lb ? 1 : x->i - y->i;
}

/* What the search did not rule out: the least bound of the configurations
 * not fully searched, their bounds refined where it matters (the least
 * first, until search_end): gpipe/1f1b by the split relaxation,
 * interleaved by the positions' bound and then the critical paths'. */
static void unproven_bound(search *x, mp_config *cfg, int n, const unsigned char *done)
{
    if (x->top.n == 0) return;
    double best = x->top.e[0].t, keep = x->bd.deadline;
    lb_index *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    if (idx) {   /* out of memory: in list order */
        for (int k = 0; k < n; k++) idx[k].lb = cfg[k].lb, idx[k].i = k;
        qsort(idx, (size_t)n, sizeof *idx, cmp_lb_index);
    }
    x->bd.deadline = search_end(x);
    for (int k = 0; k < n; k++) {
        int i = idx ? idx[k].i : k;
        mp_config *c = &cfg[i];
        if (done[i] || c->lb >= best) continue;
        if (!mp_schedule_is_zb((mp_schedule_kind)c->kind) && mp_now_s() < search_end(x)) {
            use_config(x, c);
            double lb;
            if (c->kind == MP_SCHED_INTERLEAVED) {   /* the positions' bound (not tried before) half of the time left at most */
                double now = mp_now_s(), end = search_end(x);
                x->bd.deadline = end < HUGE_VAL ? now + 0.5 * (end - now) : end;
                lb = x->seen[i] & 24 ? c->lb
                                    : mp_bound_positions(&x->bd, c->K, c->b, c->v, c->m, c->lb, best) * (1 - MP_BOUND_SLACK);
                x->bd.deadline = end;
                if (lb > c->lb) c->lb = lb;
                lb = paths_bound(x, c, best, 0);
            } else {
                lb = mp_bound_split(&x->bd, c->K, c->b, c->kind, c->m, c->lb, best) * (1 - MP_BOUND_SLACK);
            }
            if (lb > c->lb) c->lb = lb;
        }
        if (c->lb < x->unproven) x->unproven = c->lb;
    }
    x->bd.deadline = keep;
    free(idx);
}

/* MPKIT_SEARCH_DIAG set: the configurations that hold the reported lower
 * bound down (not fully searched, bound below the best plan), least first,
 * on stderr: what to strengthen. */
static void diagnose(const search *x, const mp_config *cfg, int n, const unsigned char *done)
{
    const char *env = getenv("MPKIT_SEARCH_DIAG");
    if (!env || !*env || x->top.n == 0) return;
    int want = atoi(env) > 0 ? atoi(env) : 12;
    double best = x->top.e[0].t;
    const mp_config *b = &x->top.e[0].c;
    fprintf(stderr, "diag: best %.3f ms (%s K=%d v=%d b=%d D=%d), %.3f s, bound %.3f\n", best,
            mp_schedule_name(b->kind), b->K, b->v, b->b, b->D, mp_now_s() - x->t0, x->unproven);
    unsigned char *used = calloc((size_t)n + 1, 1);
    if (!used) return;
    for (int k = 0; k < want; k++) {
        int j = -1;
        for (int i = 0; i < n; i++)
            if (!used[i] && !done[i] && cfg[i].lb < best && (j < 0 || cfg[i].lb < cfg[j].lb)) j = i;
        if (j < 0) break;
        used[j] = 1;
        const mp_config *c = &cfg[j];
        fprintf(stderr, "diag:   lb %10.3f (gap %6.2f%%) %-11s K=%-3d v=%-2d b=%-4d m=%-4d D=%-2d %s\n", c->lb,
                100 * (best - c->lb) / best, mp_schedule_name(c->kind), c->K, c->v, c->b, c->m, c->D,
                x->seen[j] & 2 ? "split search cut" : x->seen[j] & 1 ? "greedy only" : "never visited");
    }
    long below = 0, never = 0;
    for (int i = 0; i < n; i++)
        if (!done[i] && cfg[i].lb < best) below++, never += !x->seen[i];
    fprintf(stderr, "diag: %ld configurations below the best not fully searched, %ld never visited\n", below, never);
    free(used);
}

/* The incumbents as evaluated plans, and what was proven. */
static mp_status collect(const search *x, const mp_profile *prof, const mp_cluster *cl, mp_search_result *r,
                         mp_error *err)
{
    const mp_top *top = &x->top;
    r->plans = calloc((size_t)top->n, sizeof *r->plans);
    r->fast_ms = calloc((size_t)top->n, sizeof *r->fast_ms);
    if (!r->plans || !r->fast_ms) return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    for (int k = 0; k < top->n; k++) {
        const mp_config *c = &top->e[k].c;
        mp_status st = mp_top_plan(&top->e[k], x->o->global_batch, prof, cl, c->pl >= 0 ? x->pls.p[c->pl].dev : NULL,
                                   x->o->state_factor,
                                   &r->plans[k], err);
        if (st != MP_OK) {
            mp_plan_free(&r->plans[k]);
            return st;
        }
        r->fast_ms[k] = top->e[k].t;
        r->num_plans++;
    }
    double best = top->e[0].t;
    int inexact = x->tally.inexact;
    r->optimal = !inexact && x->unproven >= best;
    r->lower_bound_ms = r->optimal ? best : (x->unproven < best ? x->unproven : best);
    if (inexact && x->unproven >= best) r->lower_bound_ms = best; /* unknown; gap reported 0 */
    r->gap = (best - r->lower_bound_ms) / best;
    r->configurations = x->cfgs;
    r->searched = x->tally.searched;
    r->nodes = x->tally.nodes;
    r->simulations = x->tally.sims;
    r->stopped = x->stopped;
    r->placements = x->pls.n;
    r->placements_complete = x->pls.complete;
    return MP_OK;
}

/* See search.h. */
mp_status mp_search_run(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o_in,
                        mp_search_result *r, mp_error *err)
{
    memset(r, 0, sizeof *r);
    mp_status st = check_opts(prof, cl, o_in, err);
    if (st != MP_OK) return st;
    mp_search_opts o = *o_in;
    search x;
    mp_config *cfg = NULL;
    unsigned char *done = NULL;
    int ncfg = 0;
    double t0 = mp_now_s();
    if (search_init(&x, prof, cl, &o, t0) != MP_OK) {
        search_free(&x);
        return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    }
    if (o.time_limit > 0)  /* the list's split bounds leave most of the time to finding plans */
        x.bd.deadline = t0 + LIST_SHARE * LIMIT_USE * o.time_limit;
    st = mp_configs_list(&o, cl, &x.pls, &x.sp.ps, &x.bd, &cfg, &ncfg, &x.cfgs, err);
    x.bd.deadline = x.t_end;
    if (st != MP_OK) goto out;
    if (ncfg == 0 && x.cfgs > 0) {
        st = mp_error_set(err, MP_ERR_NOFIT, "no plan fits the devices' memory");
        r->configurations = x.cfgs;
        goto out;
    }
    if (ncfg == 0 && o.schedule >= 0 && mp_schedule_is_zb((mp_schedule_kind)o.schedule) && !mp_profile_has_split(prof)) {
        st = mp_error_set(err, MP_ERR_INPUT,
                          "the %s schedule needs the split backward times bwd_input_ms and bwd_weight_ms of "
                          "every layer, which the profile lacks (profile the model again with this mpprof)",
                          mp_schedule_name(o.schedule));
        goto out;
    }
    if (ncfg == 0 && o.data_parallel > 1) {
        st = mp_error_set(err, MP_ERR_USAGE,
                          "no configuration is possible with --data-parallel %d: it must divide the global "
                          "batch %d over micro-batches, and replica r's stage k runs on device r*K + k, which "
                          "must be of the same kind as device k (speed, memory, pipeline links)",
                          o.data_parallel, o.global_batch);
        goto out;
    }
    if (ncfg == 0) {
        st = mp_error_set(err, MP_ERR_USAGE,
                          "no configuration is possible: the %s schedule needs %s",
                          o.schedule >= 0 ? mp_schedule_name(o.schedule) : "chosen",
                          o.schedule == MP_SCHED_INTERLEAVED
                              ? ">= 2 devices, a number of micro-batches divisible by the number of "
                                "devices and >= 2 layers per device"
                              : "at least one device and one layer");
        goto out;
    }
    x.cfgs += ncfg;
    done = calloc((size_t)ncfg, 1);
    x.seen = calloc((size_t)ncfg, 1);
    x.cfg0 = cfg;
    if (!done || !x.seen) { st = mp_error_set(err, MP_ERR_NOMEM, "search: out of memory"); goto out; }
    if ((st = visit(&x, cfg, ncfg, done, err)) != MP_OK) goto out;
    if (x.stopped && (st = polish(&x, err)) != MP_OK) goto out;
    unproven_bound(&x, cfg, ncfg, done);
    diagnose(&x, cfg, ncfg, done);
    if (x.tally.shown) fprintf(stderr, "\n");
    if (x.top.n == 0) {  /* stopped: none found in time, maybe none fits */
        st = x.stopped ? mp_error_set(err, MP_ERR_NOFIT, "no plan that fits the devices' memory was found within "
                                      "the time limit of %g s (raise --time-limit)", o.time_limit)
                       : mp_error_set(err, MP_ERR_NOFIT, "no plan fits the devices' memory");
        r->configurations = x.cfgs;
        r->stopped = x.stopped;
        goto out;
    }
    st = collect(&x, prof, cl, r, err);
out:
    r->seconds = mp_now_s() - t0;
    free(cfg);
    free(done);
    search_free(&x);
    if (st != MP_OK && st != MP_ERR_NOFIT) mp_search_result_free(r);
    return st;
}

/* See search.h. */
void mp_search_result_free(mp_search_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->num_plans; i++) mp_plan_free(&r->plans[i]);
    free(r->plans);
    free(r->fast_ms);
    memset(r, 0, sizeof *r);
}
