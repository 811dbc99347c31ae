/* split.c — the branch and bound over one configuration's splits (split.h).
 * defines: mp_split_init, mp_split_free, mp_split_config, mp_split_greedy, mp_split_polish, mp_split_search,
 *          mp_split_try_leaf
 *
 * Why it is exact. Every directed link is fed by one position whose sends
 * leave in its op-list order, so the simulated times are a max-plus
 * expression of the op and transfer durations with fixed orders: monotone,
 * never decreasing when any duration grows. Hence:
 *  - recompute (only lengthens B_s, only changes stage s's memory) is taken
 *    exactly on stages that do not fit without it; for interleaved, on a
 *    minimal set of a device's chunks that makes the device fit (all minimal
 *    sets are tried when v <= MAXV_EXACT);
 *  - the following are lower bounds on the iteration time T (C: the round
 *    trip of micro-batch 0 through every stage and link, A_s/U_s: the chain
 *    before stage s's forward / after stage s's backward, m micro-batches,
 *    w = min(K-s-1, m) the 1F1B warm-up):
 *      T >= A_s + m (F_s + B_s) + U_s                 (stage s does all its work)
 *      T >= C + (m-1)(F_s + B_s)                      (gpipe: mb m-1 forward, then B0..)
 *      T >= C + (m-1) B_s + max(0, m-1-w) F_s         (1f1b: from B0 on stage s)
 *      T >= C + (m-1) F_s + max(0, m-1-w) B_s         (1f1b: up to F(m-1) on stage s)
 *      T >= C + (m-1) max(act_s, grad_s)              (each link sends m transfers)
 *      T >= A_s + U_s + n R_s,  n = ceil(m/(K-s))     (1f1b round trips: R_s = C - A_s - U_s,
 *                                                      stage s's F(i + K-s) follows its B(i) in
 *                                                      the list, B(i) ends >= F(i)'s start + R_s,
 *                                                      so F(m-1) starts >= A_s + (n-1) R_s)
 *      T >= A_p + busy_p + U_p                        (interleaved position p)
 *      T >= A_{p+cK} + busy_p - K sum_{d<c} F_{p+dK} - K sum_{d<c'} B_{p+dK} + U_{p+c'K}
 *                                                     (interleaved: planner/bounds.c, at the leaves)
 *    and with only stages 0..s placed, C >= (known part) + (remaining work) /
 *    (fastest remaining device) + latencies, and the remaining stages need
 *    m (remaining work) / (their total speed); for interleaved, the water
 *    level of the remaining work over the positions' current bases
 *    (mp_bound_waterfill), the recompute memory forces on a position's
 *    placed chunks, and the parameter state of the layers left against the
 *    memory left on the positions that still get stages
 *    (split_interleaved.c), and the positions' Lagrangian weights of
 *    planner/bounds_positions.c: T >= cons + sum_t term_t for every fitting
 *    plan, so the placed stages' terms plus the least terms of the rest
 *    over the layers left (mp_bound_table) bound every plan below a node.
 * Stages are placed depth first, each stage's last layer narrowed by binary
 * searches on these bounds (they grow with it) and tried from the balanced
 * share of the remaining work outwards; leaves are bounded, then simulated
 * with stage times from prefix sums, the run stopped once it passes the
 * time to beat (interleaved leaves test their recompute sets against memory
 * by the in-flight states, planner/mem_states.h). When a cap stops the search, every
 * child not tried yet (of the node where it stopped and of its ancestors)
 * is cut with its own bound (its node's, or its leaf's with the mode's
 * recompute), up to CUT_CHILD_BOUNDS of them; tally->cut_lb is the least. */
#include "split.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.h"
#include "bounds.h"
#include "clock.h"

#define POLISH_MOVES 3   /* the climb's compound moves: 2..POLISH_MOVES cuts at once ... */
#define POLISH_STALL 256 /* ... until this many per stage in a row gain nothing */
#define CLIMB_NEAR 0.03  /* a greedy split is polished when within this of the time to beat */
#define CUT_CHILD_BOUNDS 1024   /* children bounded on their own after a cap, per configuration search */

static int interleaved(const mp_split *x) { return x->c.kind == MP_SCHED_INTERLEAVED; }

/* The incumbent a plan of the current configuration must beat. */
static double threshold(const mp_split *x) { return mp_top_threshold(x->top, &x->c); }

/* ---------------------------------------------------------------- setup */

/* See split.h. */
mp_status mp_split_init(mp_split *x, const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                        mp_top *top, mp_search_tally *tally)
{
    memset(x, 0, sizeof *x);
    x->cl = cl;
    x->mode = o->recompute;
    x->sf = o->state_factor;
    x->top = top;
    x->tally = tally;
    int D = cl->num_devices, S = prof->num_layers + 1;
    x->last_stage = malloc((size_t)(D + 1) * sizeof(int));
    x->hi = malloc((size_t)S * sizeof(int));
    x->rc = malloc((size_t)S * sizeof(int));
    double **arrs[] = { &x->F, &x->Bn, &x->B, &x->R, &x->act, &x->grad, &x->ar, &x->A, &x->U,
                        &x->spd_max_suf, &x->spd_sum_suf, &x->il.held, &x->il.extra };
    for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++) *arrs[i] = calloc((size_t)S + 1, sizeof(double));
    x->il.busy = calloc((size_t)D + 1, sizeof(double));
    x->il.peak = calloc((size_t)D + 1, sizeof(double));
    x->il.wf = calloc(4 * ((size_t)D + 1), sizeof(double));
    x->il.rcx = calloc((size_t)D + 1, sizeof(double));
    x->il.arsum = calloc((size_t)D + 1, sizeof(double));
    x->lsum = calloc((size_t)S + 1, sizeof(double));
    x->sim = mp_sim_new();
    if (mp_prefix_init(&x->ps, prof) != MP_OK || !x->last_stage || !x->hi || !x->rc || !x->il.busy ||
        !x->il.peak || !x->il.wf || !x->il.rcx || !x->il.arsum || !x->lsum || !x->sim)
        return MP_ERR_NOMEM;
    for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++)
        if (!*arrs[i]) return MP_ERR_NOMEM;
    return MP_OK;
}

/* See split.h. */
void mp_split_free(mp_split *x)
{
    mp_prefix_free(&x->ps);
    free(x->last_stage); free(x->hi); free(x->rc);
    free(x->F); free(x->Bn); free(x->B); free(x->R); free(x->act); free(x->grad); free(x->ar);
    free(x->A); free(x->U); free(x->spd_max_suf); free(x->spd_sum_suf);
    free(x->il.held); free(x->il.extra); free(x->il.busy); free(x->il.peak); free(x->il.wf); free(x->il.rcx);
    free(x->lsum);
    free(x->il.arsum);
    free(x->il.room_n); free(x->il.room);
    mp_mem_states_free(&x->il.ms);
    mp_op_lists_free(&x->ops);
    mp_sim_free(x->sim);
    memset(x, 0, sizeof *x);
}

/* See split.h. */
mp_status mp_split_config(mp_split *x, const mp_config *c, mp_error *err)
{
    int S = c->S, K = c->K;
    x->c = *c;
    x->fit = (mp_stage_fit){ &x->ps, x->cl, x->sf, x->mode, c->kind, c->S, c->m, c->b, c->D };
    mp_prefix_set_b(&x->ps, c->b);
    if (mp_prefix_set_allreduce(&x->ps, x->cl, c->D) != MP_OK)
        return mp_error_set(err, MP_ERR_NOMEM, "mpplan: out of memory");
    mp_op_lists_free(&x->ops);
    mp_mem_states_free(&x->il.ms);   /* built again by mp_split_il_prepare, for these lists */
    mp_status st = mp_schedule_build(c->kind, K, c->v, c->m, &x->ops, err);
    if (st != MP_OK) return st;
    for (int p = 0; p < K; p++) x->last_stage[p] = x->ops.ops[p][x->ops.len[p] - 1].stage;
    /* spd_max_suf[s]: fastest, spd_sum_suf[s]: total speed of the distinct
     * positions of stages s..S-1 */
    x->spd_max_suf[S] = x->spd_sum_suf[S] = 0;
    for (int s = S - 1; s >= 0; s--) {
        double sp = mp_split_speed(x, s), sum = 0;
        x->spd_max_suf[s] = sp > x->spd_max_suf[s + 1] ? sp : x->spd_max_suf[s + 1];
        int n = S - s < K ? S - s : K;
        for (int i = 0; i < n; i++) sum += mp_split_speed(x, s + i);
        x->spd_sum_suf[s] = sum;
    }
    double lat = HUGE_VAL;
    for (int s = 0; s + 1 < S; s++) {
        int p = s % K, q = (s + 1) % K;
        double a = mp_cluster_transfer_ms(x->cl, p, q, 0), g = mp_cluster_transfer_ms(x->cl, q, p, 0);
        if (a < lat) lat = a;
        if (g < lat) lat = g;
    }
    x->latmin = lat == HUGE_VAL ? 0 : lat;
    return MP_OK;
}

/* Fills F, Bn, act, grad of stage s = [lo, hi] (B and R follow rc[s]). */
static void stage_times(mp_split *x, int s, int lo, int hi)
{
    double sp = mp_split_speed(x, s);
    x->F[s] = (x->ps.PF[hi + 1] - x->ps.PF[lo]) / sp;
    x->Bn[s] = (x->ps.PB[hi + 1] - x->ps.PB[lo]) / sp;
    x->ar[s] = mp_prefix_allreduce_ms(&x->ps, x->cl, s % x->c.K, x->c.K, x->c.D, lo, hi);
    if (s < x->c.S - 1) {
        int p = s % x->c.K, q = (s + 1) % x->c.K;
        double bytes = (double)x->c.b * x->ps.in[hi + 1];
        x->act[s] = mp_cluster_transfer_ms(x->cl, p, q, bytes);
        x->grad[s] = mp_cluster_transfer_ms(x->cl, q, p, bytes);
    } else {
        x->act[s] = x->grad[s] = 0;
    }
}

/* ---------------------------------------------------------------- leaves */

/* The C-relative lower bound of placed stage s: T >= C + y with y the
 * schedule's term (mp_bound_stage_tail) or the m-1 transfers after the
 * first on its outgoing link, whichever is larger. */
static inline double stage_y(const mp_split *x, int s)
{
    int m = x->c.m;
    double y = (m - 1) * (x->act[s] > x->grad[s] ? x->act[s] : x->grad[s]);
    double t = mp_bound_stage_tail(x->c.kind, x->c.K, s, m, x->F[s], x->B[s]);
    return t > y ? t : y;
}

/* Lower bound of the fully placed split (B as set). */
static double leaf_bound(const mp_split *x)
{
    int S = x->c.S, K = x->c.K, m = x->c.m;
    double C = 0, lb = 0;
    for (int s = 0; s < S; s++) C += x->F[s] + x->B[s] + x->act[s] + x->grad[s];
    double U[S + 1];
    U[0] = 0;
    for (int s = 0; s < S; s++) U[s + 1] = U[s] + x->B[s] + x->grad[s];
    double busy[K];
    for (int p = 0; p < K; p++) busy[p] = 0;
    for (int s = 0; s < S; s++) {
        double y = stage_y(x, s);
        busy[s % K] += m * (x->F[s] + x->B[s]);
        if (C + y > lb) lb = C + y;
        double n = mp_bound_round_trips(x->c.kind, K, s, m), t = n * C - (n - 1) * (x->A[s] + U[s]);
        if (t > lb) lb = t;   /* 1f1b: stage s's round trips */
    }
    for (int p = 0; p < K; p++) {
        double t = x->A[p] + busy[p] + U[x->last_stage[p]];
        if (t > lb) lb = t;
        /* gpipe/1f1b, D > 1: position p's list ends after A[p] + busy[p], then it all-reduces */
        if (!interleaved(x) && x->c.D > 1 && (t = x->A[p] + busy[p] + x->ar[p]) > lb) lb = t;
    }
    if (interleaved(x))  /* the paths of planner/bounds.c: from F(p+cK, 0) to the last B of p+c'K */
        for (int p = 0; p < K; p++) {
            double hF = -HUGE_VAL, hB = -HUGE_VAL, sF = 0, sB = 0, ar = 0;
            for (int s = p; s < S; s += K) {
                if (x->A[s] - K * sF > hF) hF = x->A[s] - K * sF;
                if (U[s] - K * sB > hB) hB = U[s] - K * sB;
                sF += x->F[s];
                sB += x->B[s];
                ar += x->ar[s];
            }
            if (hF + busy[p] + hB > lb) lb = hF + busy[p] + hB;
            /* D > 1: p's list ends no sooner than hF + busy_p (the path up to its
             * last op), then it all-reduces its stages one after the other */
            if (hF + busy[p] + ar > lb) lb = hF + busy[p] + ar;
        }
    return lb;
}

/* The split's simulated time *t, or a time above stop (> 0 and finite)
 * once the run passes it. */
static mp_status simulate(mp_split *x, double stop, double *t)
{
    double t1 = mp_now_s();
    mp_sim_input in = { .ops = &x->ops, .fwd_ms = x->F, .bwd_ms = x->B, .act_ms = x->act, .grad_ms = x->grad,
                        .allreduce_ms = x->c.D > 1 ? x->ar : NULL, .stop_ms = isfinite(stop) ? stop : 0,
                        .lists_built = 1 };
    mp_sim_result res;
    mp_error e;
    mp_error_clear(&e);
    x->tally->sims++;
    x->tally->simops += 2.0 * x->c.m * x->c.S;
    mp_status st = mp_sim_run(x->sim, &in, &res, NULL, &e);
    x->tally->sim_s += mp_now_s() - t1;
    *t = res.iteration_ms;
    return st;
}

/* See split.h. */
mp_status mp_split_try_leaf(mp_split *x)
{
    double lb = leaf_bound(x), thr = threshold(x), t;
    if (lb >= thr) return MP_OK;
    if (!mp_tally_sim_fits(x->tally, 2.0 * x->c.m * x->c.S)) {  /* out of time: the leaf is cut */
        if (lb < x->tally->cut_lb) x->tally->cut_lb = lb;
        return MP_OK;
    }
    mp_status st = simulate(x, thr, &t);
    if (st != MP_OK) return st;
    if (t < thr) return mp_top_offer(x->top, &x->c, x->hi, x->rc, t);
    return MP_OK;
}

/* ---------------------------------------------------------------- depth first */

/* Lower bound with stages 0..s placed (s < S-1); maxY: max over placed
 * stages of the C-relative terms, maxbusy: max of the absolute terms. */
static double partial_bound(mp_split *x, int s, double maxY, double maxbusy)
{
    int S = x->c.S, lo = x->hi[s] + 1;
    double rw = mp_split_rem_work(x, lo);
    double C = x->A[s + 1] + x->U[s + 1] + rw / x->spd_max_suf[s + 1] + 2.0 * (S - 2 - s) * x->latmin;
    double lb = C + maxY;
    if (maxbusy > lb) lb = maxbusy;
    if (x->c.kind == MP_SCHED_1F1B)   /* the round trips of stages 0..s+1 (A, U known), C at least as above */
        for (int j = 0; j <= s + 1; j++) {
            double n = mp_bound_round_trips(x->c.kind, x->c.K, j, x->c.m), t = n * C - (n - 1) * (x->A[j] + x->U[j]);
            if (t > lb) lb = t;
        }
    if (!interleaved(x)) {
        double t = x->A[s + 1] + x->c.m * rw / x->spd_sum_suf[s + 1];
        if (t > lb) lb = t;
    } else if (lb < threshold(x)) {  /* the water level only when the rest does not prune */
        double t = mp_split_il_level(x, s + 1, rw), thr = threshold(x);
        if (t > lb) lb = t;
        if (lb < thr && !mp_split_il_rest_fits(x, s + 1, thr)) lb = thr;   /* nothing below thr */
    }
    return lb;
}

static mp_status dfs(mp_split *x, int s, double maxY, double maxbusy, double lbN);

/* Interleaved with the positions' weights (bounds.h: mp_bound_table):
 * stage s = [lo, hi] placed after stages 0..s-1, the bound
 * cons + (their terms) + (the least terms of the stages after over the
 * layers left), lowered by the rounding of its parts; -HUGE_VAL without. */
static double table_bound(mp_split *x, int s, int lo, int hi)
{
    if (!x->lt || !interleaved(x)) return -HUGE_VAL;
    x->lsum[s + 1] = x->lsum[s] + mp_bound_table_term(x->lt, &x->ps, s, lo, hi + 1);
    double suf = mp_bound_table_suffix(x->lt, s + 1, hi + 1);
    if (suf == HUGE_VAL) return HUGE_VAL;
    return x->lt->cons + x->lsum[s + 1] + suf - 1e-10 * (fabs(x->lt->cons) + fabs(x->lsum[s + 1]) + fabs(suf));
}

/* Places stage s = [lo, hi] and recurses; with *only set (not NULL), only
 * sets *only to a lower bound of every plan below (HUGE_VAL: none fits),
 * the node's bound or, for the last stage, the leaf's with the mode's
 * recompute (recompute only lengthens B: with auto, chunks that memory
 * forces to recompute only raise the leaf's time), and recurses not. */
static mp_status place(mp_split *x, int s, int lo, int hi, double maxY, double maxbusy, double *only)
{
    int S = x->c.S, m = x->c.m;
    if (only) *only = HUGE_VAL;
    x->hi[s] = hi;
    stage_times(x, s, lo, hi);
    if (!interleaved(x)) {
        int rc = mp_stage_fit_rc(&x->fit, s, lo, hi);
        if (rc < 0) return MP_OK;
        mp_split_set_rc(x, s, rc);
    } else {
        mp_split_set_rc(x, s, x->mode == MP_RC_ON);
        if (s == S - 1 && !mp_split_il_last_fits(x, s)) return MP_OK;
    }
    x->A[s + 1] = x->A[s] + x->F[s] + x->act[s];
    x->U[s + 1] = x->U[s] + x->B[s] + x->grad[s];
    double lg = table_bound(x, s, lo, hi);
    if (lg > x->node_lb) {
        if (!only && lg >= threshold(x)) return MP_OK;
        x->node_lb = lg;
    }
    if (s == S - 1 && only) {
        if (interleaved(x))  /* a leaf before may have left its recompute set */
            for (int t = 0; t < S; t++) mp_split_set_rc(x, t, x->mode == MP_RC_ON);
        double lb = leaf_bound(x);
        *only = lb > x->node_lb ? lb : x->node_lb;
        return MP_OK;
    }
    if (s == S - 1) return interleaved(x) ? mp_split_il_leaf(x) : mp_split_try_leaf(x);
    double y = stage_y(x, s), busy;
    int go = 1;
    mp_il_undo undo;
    if (!interleaved(x)) {
        busy = x->A[s] + m * (x->F[s] + x->B[s]) + x->U[s];
        double own = x->A[s] + m * (x->F[s] + x->B[s]) + x->ar[s];   /* its list, then its all-reduce */
        if (own > busy) busy = own;
    }
    else if (!mp_split_il_enter(x, s, hi, &busy, &go, &undo)) return MP_OK;
    if (y > maxY) maxY = y;
    if (busy > maxbusy) maxbusy = busy;
    mp_status st = MP_OK;
    double pb = go ? partial_bound(x, s, maxY, maxbusy) : HUGE_VAL;
    if (pb < x->node_lb) pb = x->node_lb;  /* the parent's bound holds here too */
    if (only) *only = pb;
    else if (go && pb < threshold(x)) st = dfs(x, s + 1, maxY, maxbusy, pb);
    if (interleaved(x)) mp_split_il_leave(x, s, &undo);
    return st;
}

static void show_progress(mp_split *x)
{
    mp_search_tally *t = x->tally;
    if (!t->progress) return;
    double el = mp_now_s() - t->t0;
    if (el < 2.0 || (t->shown && el < t->shown_s + 1.0)) return;   /* after 2 s, once a second */
    t->shown_s = el;
    fprintf(stderr, "\rmpplan: searching %.0fs: %ld configurations, %ld simulations, best %.4g ms   ",
            el, t->searched, t->sims, x->top->n ? x->top->e[0].t : 0.0);
    t->shown = 1;
}

/* gpipe/1f1b: narrows stage s's last layer (first layer lo) to
 * [*hmin, *hmax] by memory, its own work and the work left. */
static void narrow(const mp_split *x, int s, int lo, double thr, int *hmin, int *hmax)
{
    /* memory: peak grows with hi for a fixed lo */
    int h;
    MP_LAST_TRUE(h, lo, *hmax, mp_stage_fit_rc(&x->fit, s, lo, hi) >= 0);
    *hmax = h;
    /* this stage's own work bound grows with hi */
    double sp = mp_split_speed(x, s), m = x->c.m, a = x->A[s], u = x->U[s];
    const double *PF = x->ps.PF, *PB = x->ps.PB;
    MP_LAST_TRUE(h, lo, *hmax,
                 a + u + m * ((PF[hi + 1] - PF[lo]) * (1 + (mp_stage_fit_rc(&x->fit, s, lo, hi) == 1)) +
                              PB[hi + 1] - PB[lo]) / sp < thr);
    *hmax = h;
    if (x->c.D > 1) {   /* the same work, then the stage's all-reduce (grows with hi too) */
        const int K = x->c.K, D = x->c.D;
        MP_LAST_TRUE(h, lo, *hmax,
                     a + m * ((PF[hi + 1] - PF[lo]) * (1 + (mp_stage_fit_rc(&x->fit, s, lo, hi) == 1)) +
                              PB[hi + 1] - PB[lo]) / sp +
                     mp_prefix_allreduce_ms(&x->ps, x->cl, s % K, K, D, lo, hi) < thr);
        *hmax = h;
    }
    /* the remaining stages need m * work / their speed */
    if (thr < HUGE_VAL) {
        double ss = x->spd_sum_suf[s + 1];
        int a2 = lo - 1, b2 = *hmax;  /* last hi where the rest is too much */
        while (a2 < b2) {
            int mid = (a2 + b2 + 1) / 2;
            if (m * mp_split_rem_work(x, mid + 1) / ss >= thr) a2 = mid; else b2 = mid - 1;
        }
        *hmin = a2 + 1;
    }
}

/* A cap cut off a subtree whose plans are all >= lb. */
static void cut(mp_split *x, double lb)
{
    if (lb < x->tally->cut_lb) x->tally->cut_lb = lb;
}

/* A cap stopped the search at the node of stage s (first layer lo, bound
 * lbN) before its children with last layers [hmin, h1] and [h2, hmax] were
 * tried: each is cut with its own bound (place with *only), while
 * CUT_CHILD_BOUNDS of them per configuration search are left, the rest
 * with lbN. */
static void cut_children(mp_split *x, int s, int lo, int h1, int hmin, int h2, int hmax, double maxY,
                         double maxbusy, double lbN)
{
    double least = HUGE_VAL;
    for (int h = hmin; h <= hmax; h++) {
        if (h > h1 && h < h2) continue;
        if (x->cut_children_left <= 0) { least = lbN; break; }
        x->cut_children_left--;
        double b;
        x->node_lb = lbN;
        place(x, s, lo, h, maxY, maxbusy, &b);
        if (b < least) least = b;
    }
    if (least < HUGE_VAL) cut(x, least);
}

/* Places stages s..S-1 after stage s-1; lbN bounds every plan below. */
static mp_status dfs(mp_split *x, int s, double maxY, double maxbusy, double lbN)
{
    mp_search_tally *tl = x->tally;
    int S = x->c.S, L = x->ps.L, lo = s > 0 ? x->hi[s - 1] + 1 : 0;
    int hmax = L - 1 - (S - 1 - s), hmin = lo;
    tl->nodes += x->node_weight;
    if (tl->nodes % 4096 < x->node_weight) show_progress(x);
    if (threshold(x) <= x->c.lb) return MP_OK;  /* nothing here beats what we have */
    int capped = mp_tally_charge(tl, x->node_weight);
    if (capped && x->cut_children_left <= 0) {
        cut(x, lbN);
        return MP_OK;
    }
    x->node_lb = lbN;
    if (s == S - 1 && capped) {   /* the cap cuts this node: its one child, bounded on its own */
        cut_children(x, s, lo, L - 1, L - 1, L, L - 1, maxY, maxbusy, lbN);
        return MP_OK;
    }
    if (s == S - 1) return place(x, s, lo, L - 1, maxY, maxbusy, NULL);
    double thr = threshold(x);
    if (!interleaved(x)) narrow(x, s, lo, thr, &hmin, &hmax);
    else mp_split_il_narrow(x, s, lo, thr, &hmin, &hmax);
    if (hmin > hmax) return MP_OK;
    if (capped) {   /* the cap cuts this node: its children, each bounded on its own */
        cut_children(x, s, lo, hmax, hmin, hmax + 1, hmax, maxY, maxbusy, lbN);
        return MP_OK;
    }
    /* start near the balanced share of the remaining work, then alternate */
    double share = (mp_split_rem_work(x, lo)) * mp_split_speed(x, s) / x->spd_sum_suf[s];
    double base = x->ps.PF[lo] + x->ps.PB[lo];
    int t;
    {
        int a2 = lo, b2 = hmax;
        while (a2 < b2) {
            int mid = (a2 + b2) / 2;
            if (x->ps.PF[mid + 1] + x->ps.PB[mid + 1] - base >= share) b2 = mid; else a2 = mid + 1;
        }
        t = a2 < hmin ? hmin : a2;
    }
    mp_status st;
    for (int d = 0;; d++) {
        int h1 = t - d, h2 = t + d + 1, any = 0;
        if (h1 >= hmin) {
            any = 1;
            x->node_lb = lbN;
            if ((st = place(x, s, lo, h1, maxY, maxbusy, NULL)) != MP_OK) return st;
        }
        if (h2 <= hmax) {
            any = 1;
            x->node_lb = lbN;
            if ((st = place(x, s, lo, h2, maxY, maxbusy, NULL)) != MP_OK) return st;
        }
        if (!any) break;
        if (tl->out_of_budget) {  /* the children not tried yet are cut, each with its own bound */
            cut_children(x, s, lo, t - d - 1, hmin, t + d + 2, hmax, maxY, maxbusy, lbN);
            break;
        }
    }
    return MP_OK;
}

static mp_status split_error(mp_error *err, mp_status st)
{
    return mp_error_set(err, st, "search: %s", st == MP_ERR_NOMEM ? "out of memory" : "simulation failed");
}

/* Times the split whose stages end at hi[0..S) (non-empty, hi[S-1] = L-1):
 * stage times, recompute as the mode and memory give it (gpipe/1f1b: none
 * when a stage fits no choice), then the leaf, offered to the incumbents
 * when it beats them. */
static mp_status try_split(mp_split *x, const int *hi)
{
    int S = x->c.S, lo = 0;
    x->A[0] = x->U[0] = 0;
    for (int p = 0; p < x->c.K; p++) x->il.busy[p] = 0;
    for (int s = 0; s < S; s++) {
        x->hi[s] = hi[s];
        stage_times(x, s, lo, hi[s]);
        int rc = interleaved(x) ? x->mode == MP_RC_ON : mp_stage_fit_rc(&x->fit, s, lo, hi[s]);
        if (rc < 0) return MP_OK;
        mp_split_set_rc(x, s, rc);
        x->A[s + 1] = x->A[s] + x->F[s] + x->act[s];
        x->U[s + 1] = x->U[s] + x->B[s] + x->grad[s];
        lo = hi[s] + 1;
    }
    return interleaved(x) ? mp_split_il_leaf(x) : mp_split_try_leaf(x);
}

/* ---------------------------------------------------------------- entry points */

/* Greedy stage s = [lo, hi]'s time per speed: F + B, with aware (gpipe/1f1b
 * under auto recompute) also the recompute its memory forces; HUGE_VAL when
 * it fits no recompute choice (gpipe/1f1b). Non-decreasing in hi. (For
 * interleaved, a stage's recompute depends on the other stages of its
 * position; the shares of its memory tried were worse than F + B.) */
static double greedy_cost(const mp_split *x, int s, int lo, int hi, int aware)
{
    double f = x->ps.PF[hi + 1] - x->ps.PF[lo], w = f + x->ps.PB[hi + 1] - x->ps.PB[lo];
    if (!interleaved(x)) {
        int rc = mp_stage_fit_rc(&x->fit, s, lo, hi);
        if (rc < 0) return HUGE_VAL;
        if (aware && rc) w += f;
    }
    return w / mp_split_speed(x, s);
}

/* The split of least largest greedy_cost, found by bisection (each stage in
 * turn as many layers as the threshold allows) into best; 0 when none. */
static int greedy_split(mp_split *x, int aware, int *best)
{
    int S = x->c.S, L = x->ps.L, found = 0;
    double hiT = 0, loT = 0;
    for (int s = 0; s < S; s++) {
        double t = (mp_split_rem_work(x, 0) + (aware ? x->ps.PF[L] : 0)) / mp_split_speed(x, s);
        if (t > hiT) hiT = t;
    }
    for (int it = 0; it < 40; it++) {
        double th = it == 0 ? hiT : 0.5 * (loT + hiT);
        int lo = 0, ok = 1;
        for (int s = 0; s < S && ok; s++) {
            int hmax = L - 1 - (S - 1 - s), h;
            if (s == S - 1) h = L - 1;
            else {
                MP_LAST_TRUE(h, lo, hmax, greedy_cost(x, s, lo, hi, aware) <= th);
                if (h < lo) h = lo;
            }
            if (greedy_cost(x, s, lo, h, aware) > th * (1 + 1e-12)) ok = 0;
            x->hi[s] = h;
            lo = h + 1;
        }
        if (ok) { found = 1; hiT = th; memcpy(best, x->hi, (size_t)S * sizeof(int)); }
        else if (it == 0) break;
        else loT = th;
    }
    best[S - 1] = L - 1;
    return found;
}

/* See split.h. */
mp_status mp_split_greedy(mp_split *x, mp_error *err)
{
    int S = x->c.S;
    x->A[0] = x->U[0] = 0;
    for (int p = 0; p < x->c.K; p++) x->il.busy[p] = 0;
    int *best = malloc((size_t)S * sizeof(int));
    if (!best) return split_error(err, MP_ERR_NOMEM);
    mp_status st = MP_OK;
    int both = !interleaved(x) && x->mode == MP_RC_AUTO;   /* the recompute-aware split too */
    int polish = interleaved(x) && x->polish_s > 0;   /* gpipe/1f1b: their split search follows */
    mp_search_tally *t = x->tally;
    double keep = t->t_cap, cap = polish && mp_now_s() + x->polish_s < keep ? mp_now_s() + x->polish_s : keep;
    for (int aware = 0; aware <= both && st == MP_OK; aware++) {
        if (!greedy_split(x, aware, best)) continue;
        if (!polish) {
            if ((st = try_split(x, best)) != MP_OK) st = split_error(err, st);
            continue;
        }
        t->t_cap = cap;   /* the tally's clock stops the climb, its simulations and recompute sets alike */
        st = mp_split_polish(x, best, CLIMB_NEAR, err);
        t->t_cap = keep;   /* the polish's own cap reached is not the caps reached */
        t->out_of_budget = t->nodes >= t->node_cap || t->simops >= t->sim_cap || mp_now_s() >= keep;
    }
    free(best);
    return st;
}

/* The configuration's entry in the incumbents (NULL: none). */
static const mp_top_entry *own_entry(const mp_split *x)
{
    for (int i = 0; i < x->top->n; i++)
        if (mp_config_same(&x->top->e[i].c, &x->c)) return &x->top->e[i];
    return NULL;
}

static double own_time(const mp_split *x)
{
    const mp_top_entry *e = own_entry(x);
    return e ? e->t : HUGE_VAL;
}

static unsigned long long xorshift(unsigned long long *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

/* Moves cut s of cur by d when every stage stays non-empty; 1 when moved. */
static int move_cut(int *cur, int s, int d)
{
    int lo = s > 0 ? cur[s - 1] + 1 : 0, h = cur[s] + d;
    if (h < lo || h >= cur[s + 1]) return 0;
    cur[s] = h;
    return 1;
}

/* Times cur with cut s moved by d (when it can move); keeps the move when
 * it lowered the time below *best, else undoes it. */
static mp_status try_move(mp_split *x, int *cur, int s, int d, double *best, int *improved)
{
    if (!move_cut(cur, s, d)) return MP_OK;
    mp_status st = try_split(x, cur);
    double t = own_time(x);
    if (t < *best) *best = t, *improved = 1;
    else cur[s] -= d;
    return st;
}

/* Hill climbing from cur (time *best) in x->top, within the tally's caps:
 * one cut by one layer while that helps, then random moves of 2 to
 * POLISH_MOVES cuts at once by one or two layers, kept when they help, until
 * POLISH_STALL per stage in a row have not (a fixed sequence per
 * configuration, so work caps reproduce). */
static mp_status climb(mp_split *x, int *cur, double *best)
{
    int S = x->c.S;
    mp_status st = MP_OK;
    for (int improved = 1; improved && st == MP_OK && !mp_tally_spent(x->tally);) {
        improved = 0;
        for (int s = 0; s + 1 < S && st == MP_OK && !mp_tally_spent(x->tally); s++)
            for (int d = -1; d <= 1 && st == MP_OK; d += 2) st = try_move(x, cur, s, d, best, &improved);
    }
    unsigned long long r = 0x9E3779B97F4A7C15ULL ^ ((unsigned long long)x->c.K << 40 ^ (unsigned long long)x->c.b << 20 ^
                                                   (unsigned long long)x->c.v);
    int *keep = malloc((size_t)S * sizeof *keep);
    if (!keep) return MP_ERR_NOMEM;
    for (long stall = 0; stall < (long)POLISH_STALL * S && st == MP_OK && !mp_tally_spent(x->tally); stall++) {
        memcpy(keep, cur, (size_t)S * sizeof *cur);
        int moves = 2 + (int)(xorshift(&r) % (POLISH_MOVES - 1));
        for (int k = 0; k < moves; k++) {   /* cuts moved by +-1 or +-2, timed once */
            int c = (int)(xorshift(&r) % (unsigned)(S - 1)), d = xorshift(&r) % 2 ? 1 : -1;
            move_cut(cur, c, d * (1 + (int)(xorshift(&r) % 2)));
        }
        st = try_split(x, cur);
        double t = own_time(x);
        if (t < *best) *best = t, stall = -1;
        else memcpy(cur, keep, (size_t)S * sizeof *cur);
    }
    free(keep);
    return st;
}

/* See split.h. */
mp_status mp_split_polish(mp_split *x, const int *start, double near, mp_error *err)
{
    int S = x->c.S;
    const mp_top_entry *e = own_entry(x);
    if ((!start && !e) || S < 1) return MP_OK;
    mp_top mine, *all = x->top;   /* the climb's own incumbent, whatever the others' */
    int *cur = malloc((size_t)S * sizeof *cur);
    if (!cur || mp_top_init(&mine, 1) != MP_OK) {
        free(cur);
        return split_error(err, MP_ERR_NOMEM);
    }
    double beat = threshold(x);
    x->top = &mine;
    mp_status st = start ? try_split(x, start) : mp_top_offer(&mine, &x->c, e->hi, e->rc, e->t);
    double best = own_time(x);
    if (st == MP_OK && best < HUGE_VAL && S >= 2 && (beat == HUGE_VAL || best < (1 + near) * beat)) {
        memcpy(cur, mine.e[0].hi, (size_t)S * sizeof *cur);
        st = climb(x, cur, &best);
    }
    x->top = all;
    if (st == MP_OK && mine.n && mine.e[0].t < threshold(x))
        st = mp_top_offer(all, &x->c, mine.e[0].hi, mine.e[0].rc, mine.e[0].t);
    mp_top_free(&mine);
    free(cur);
    return st == MP_OK ? MP_OK : split_error(err, st);
}

/* See split.h. */
mp_status mp_split_search(mp_split *x, mp_error *err)
{
    x->node_weight = 1;
    mp_status sp = interleaved(x) ? mp_split_il_prepare(x) : MP_OK;
    if (sp == MP_ERR_TIMEOUT) {  /* out of time before the first node: all of it is cut */
        x->tally->out_of_budget = 1;
        if (x->c.lb < x->tally->cut_lb) x->tally->cut_lb = x->c.lb;
        return MP_OK;
    }
    if (sp != MP_OK) return split_error(err, MP_ERR_NOMEM);
    x->A[0] = x->U[0] = 0;
    x->node_lb = x->c.lb;
    x->cut_children_left = CUT_CHILD_BOUNDS;
    x->lsum[0] = 0;
    mp_status st = dfs(x, 0, 0, 0, x->c.lb);
    return st == MP_OK ? MP_OK : split_error(err, st);
}
