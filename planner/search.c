/* search.c — the planner's branch and bound (search.h).
 * defines: mp_search_opts_init, mp_search_run, mp_search_result_free
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
 *      T >= A_p + busy_p + U_p                        (interleaved position p)
 *    and with only stages 0..s placed, C >= (known part) + (remaining work) /
 *    (fastest remaining device) + latencies, and the remaining stages need
 *    m (remaining work) / (their total speed); for interleaved, the water
 *    level of the remaining work over the positions' current bases
 *    (mp_bound_waterfill), the recompute memory forces on a position's
 *    placed chunks (forced_recompute), and the parameter state of the layers
 *    left against the memory left on the positions that still get stages.
 * Configurations (planner/bounds.c has their bounds) are visited gpipe/1f1b
 * first, then interleaved, each by increasing bound, skipping those whose
 * bound reaches the incumbent; a gpipe/1f1b bound is sharpened by the split
 * relaxation (mp_bound_split) just before its visit. The reported lower
 * bound is the least bound of the configurations not fully searched. */
#include "search.h"
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "configs.h"
#include "top.h"
#include "evaluate.h"
#include "mem_states.h"
#include "memory.h"
#include "prefix.h"
#include "schedule.h"
#include "sim.h"

#define MAXV_EXACT 8          /* interleaved: all minimal recompute sets up to this v */
#define MAX_COMBOS 4096       /* interleaved: recompute combinations tried per split */
#define DEFAULT_NODES 200000L
#define DEFAULT_SIM_OPS 1.5e7
#define EXACT_RC_OPS 1024    /* interleaved: op-walk budget of the exact forced recompute per node */
#define GREEDY_FIRST 64       /* interleaved configurations whose greedy split is timed first */
#define INTERLEAVED_NEAR 0.10 /* relative gap below which interleaved configurations get less budget */
#define NODE_WORK 100.0       /* state-row work that counts as one extra node */

/* ---------------------------------------------------------------- state */

typedef struct {
    const mp_profile *prof;
    const mp_cluster *cl;
    const mp_search_opts *o;
    int L;
    double sf, latmin;        /* latmin: smallest link latency (ms) among used links */
    mp_prefix ps;             /* byte sums; time sums at the current b */
    mp_config c;
    mp_op_lists ops;
    int *last_stage;          /* [K] stage of each position's last op */
    int *hi, *rc;             /* [S] current split */
    double *F, *Bn, *B, *R, *act, *grad, *A, *U, *busy, *peak;
    double *held, *extra;     /* [S] interleaved: per stage, bytes per micro-batch (device_peak) */
    long node_weight;         /* budget units per node: 1, more when memory states are many */
    mp_mem_states ms;         /* interleaved in-flight states */
    double *rcx;              /* [K] interleaved: busy time added for recompute memory forces */
    double *spd_max_suf, *spd_sum_suf; /* [S+1]: over positions of stages s..S-1 */
    double *wf;               /* [3K] water-filling scratch: base, speed, sort space */
    mp_bound_data bd;
    mp_sim *sim;
    mp_top top;
    long nodes, sims, cfgs, searched, node_cap;
    double simops, sim_cap;
    int out_of_budget, inexact;
    double unproven;          /* min bound of anything not fully explored */
    double t0;
    int shown;
} ctx;

static double speed_of(const ctx *x, int s) { return x->cl->devices[s % x->c.K].speed; }
static double mem_of(const ctx *x, int p) { return x->cl->devices[p].memory_bytes; }
/* Peak of a gpipe/1f1b stage (the memory model's closed form). */
static double stage_peak(const ctx *x, int s, int lo, int hi, int rc)
{
    mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, hi);
    return mp_memory_peak_closed(&sb, mp_memory_inflight(x->c.kind, s, x->c.S, x->c.m), x->c.b, rc, x->sf);
}

/* Recompute choice for a gpipe/1f1b stage: 0/1, or -1 when it cannot fit. */
static int stage_rc(const ctx *x, int s, int lo, int hi)
{
    double cap = mem_of(x, s);
    int mode = x->o->recompute;
    if (mode != MP_RC_ON && stage_peak(x, s, lo, hi, 0) <= cap) return 0;
    if (mode != MP_RC_OFF && stage_peak(x, s, lo, hi, 1) <= cap) return 1;
    return -1;
}

/* Fills F, Bn, act, grad of stage s = [lo, hi] (B and R follow rc[s]). */
static void stage_times(ctx *x, int s, int lo, int hi)
{
    double sp = speed_of(x, s);
    x->F[s] = (x->ps.PF[hi + 1] - x->ps.PF[lo]) / sp;
    x->Bn[s] = (x->ps.PB[hi + 1] - x->ps.PB[lo]) / sp;
    if (s < x->c.S - 1) {
        int p = s % x->c.K, q = (s + 1) % x->c.K;
        double bytes = (double)x->c.b * x->prof->layers[hi].out_bytes_per_sample;
        x->act[s] = mp_cluster_transfer_ms(x->cl, p, q, bytes);
        x->grad[s] = mp_cluster_transfer_ms(x->cl, q, p, bytes);
    } else {
        x->act[s] = x->grad[s] = 0;
    }
}

static void set_rc(ctx *x, int s, int rc)
{
    x->rc[s] = rc;
    x->R[s] = rc ? x->F[s] : 0;
    x->B[s] = x->Bn[s] + x->R[s];
}

/* ---------------------------------------------------------------- top list */

static double threshold(const ctx *x) { return mp_top_threshold(&x->top, &x->c); }

/* ---------------------------------------------------------------- leaves */

/* Interleaved peak of position p with the recompute bits `mask` over its
 * chunks (bit i: stage p + i*K): the memory model's op walk. */
static double device_peak(ctx *x, int p, unsigned mask)
{
    int K = x->c.K, S = x->c.S;
    double base = 0;
    for (int s = p, i = 0; s < S; s += K, i++) {
        int lo = s > 0 ? x->hi[s - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[s]);
        base += x->sf * sb.params;
        mp_memory_held(&sb, x->c.b, (mask >> i) & 1, &x->held[s], &x->extra[s]);
    }
    return mp_memory_walk(x->ops.ops[p], x->ops.len[p], base, x->held, x->extra);
}

/* Lower bound on position p's interleaved peak for any recompute choice,
 * with only stages <= smax placed (others count 0): each chunk holds at
 * least the smaller of b*stash and b*in_bytes the mode allows. */
/* Lower bound on position p's interleaved peak with only stages <= smax
 * placed (others count 0) and recompute as `mode` allows: each chunk holds
 * at least the smaller of b*stash and b*in_bytes the mode allows. Slightly
 * lowered so that rounding never makes it exceed the reference walk. */
static double device_peak_lb_mode(const ctx *x, int p, int smax, int mode)
{
    int K = x->c.K;
    double params = 0;
    double held[x->c.v];
    for (int s = p, i = 0; s < x->c.S; s += K, i++) {
        held[i] = 0;
        if (s > smax) continue;
        int lo = s > 0 ? x->hi[s - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[s]);
        double hs, hr, extra;
        mp_memory_held(&sb, x->c.b, 0, &hs, &extra);
        mp_memory_held(&sb, x->c.b, 1, &hr, &extra);
        params += x->sf * sb.params;
        held[i] = mode == MP_RC_OFF ? hs : mode == MP_RC_ON ? hr : (hs < hr ? hs : hr);
    }
    return mp_mem_states_peak(&x->ms, p, params, held, NULL) * (1 - 1e-12);
}

/* device_peak from the states, slightly lowered (a lower bound). */
static double device_peak_fast_lb(const ctx *x, int p, unsigned mask)
{
    int K = x->c.K;
    double params = 0, held[x->c.v], tr[x->c.v];
    for (int s = p, i = 0; s < x->c.S; s += K, i++) {
        int lo = s > 0 ? x->hi[s - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[s]);
        params += x->sf * sb.params;
        mp_memory_held(&sb, x->c.b, mask >> i & 1, &held[i], &tr[i]);
    }
    return mp_mem_states_peak(&x->ms, p, params, held, tr) * (1 - 1e-12);
}

static double device_peak_lb(const ctx *x, int p, int smax)
{
    return device_peak_lb_mode(x, p, smax, x->o->recompute);
}

/* The C-relative lower bound of placed stage s: T >= C + y with y the
 * schedule's term (mp_bound_stage_tail) or the m-1 transfers after the
 * first on its outgoing link, whichever is larger. */
static double stage_y(const ctx *x, int s)
{
    int m = x->c.m;
    double y = (m - 1) * (x->act[s] > x->grad[s] ? x->act[s] : x->grad[s]);
    double t = mp_bound_stage_tail(x->c.kind, x->c.K, s, m, x->F[s], x->B[s]);
    return t > y ? t : y;
}

/* Exact lower bound of the fully placed split (B as set). */
static double leaf_bound(const ctx *x)
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
    }
    for (int p = 0; p < K; p++) {
        double t = x->A[p] + busy[p] + U[x->last_stage[p]];
        if (t > lb) lb = t;
    }
    return lb;
}

static mp_status simulate(ctx *x, double *t)
{
    mp_sim_input in = { &x->ops, x->F, x->B, NULL, x->act, x->grad };
    mp_sim_result res;
    mp_error e;
    mp_error_clear(&e);
    x->sims++;
    x->simops += 2.0 * x->c.m * x->c.S;
    mp_status st = mp_sim_run(x->sim, &in, &res, NULL, &e);
    *t = res.iteration_ms;
    return st;
}

/* Bound, simulate, record. */
static mp_status try_leaf(ctx *x)
{
    double lb = leaf_bound(x), thr = threshold(x), t;
    if (lb >= thr) {
        return MP_OK;
    }
    mp_status st = simulate(x, &t);
    if (st != MP_OK) return st;
    if (t < thr) return mp_top_offer(&x->top, &x->c, x->hi, x->rc, t);
    return MP_OK;
}

/* Interleaved leaf: memory per device, recompute over minimal sets. */
static mp_status interleaved_leaf(ctx *x)
{
    int K = x->c.K, v = x->c.v, mode = x->o->recompute;
    unsigned full = (1u << (v < 31 ? v : 31)) - 1;
    int exact = v <= MAXV_EXACT;
    unsigned *cand[K];
    int ncand[K], idx[K];
    mp_status st = MP_OK;
    long combos = 1;
    for (int p = 0; p < K; p++) cand[p] = NULL;
    for (int p = 0; p < K; p++) {
        double cap = mem_of(x, p);
        int n = 0;
        unsigned nmask = exact ? (1u << v) : 0;
        cand[p] = malloc((exact ? (size_t)nmask : 2) * sizeof(unsigned));
        if (!cand[p]) { st = MP_ERR_NOMEM; goto out; }
        if (mode == MP_RC_OFF || mode == MP_RC_ON) {
            unsigned mk = mode == MP_RC_ON ? full : 0;
            if (device_peak(x, p, mk) <= cap) cand[p][n++] = mk;
        } else if (device_peak(x, p, 0) <= cap) {
            cand[p][n++] = 0;
        } else if (!exact) {
            if (device_peak(x, p, full) <= cap) cand[p][n++] = full;
            x->inexact = 1;
        } else {
            unsigned char *ok = calloc(nmask, 1);
            if (!ok) { st = MP_ERR_NOMEM; goto out; }
            for (unsigned mk = 1; mk < nmask; mk++) ok[mk] = device_peak(x, p, mk) <= cap;
            for (unsigned mk = 1; mk < nmask; mk++) {
                if (!ok[mk]) continue;
                int minimal = 1;   /* no feasible proper subset */
                for (unsigned sub = (mk - 1) & mk; sub && minimal; sub = (sub - 1) & mk)
                    if (ok[sub]) minimal = 0;
                if (minimal) cand[p][n++] = mk;
            }
            free(ok);
        }
        ncand[p] = n;
        if (n == 0) goto out;
        combos *= n;
        if (combos > MAX_COMBOS) { combos = MAX_COMBOS; x->inexact = 1; }
    }
    for (int p = 0; p < K; p++) idx[p] = 0;
    for (long c = 0; c < combos; c++) {
        for (int p = 0; p < K; p++)
            for (int s = p, i = 0; s < x->c.S; s += K, i++) set_rc(x, s, (cand[p][idx[p]] >> i) & 1);
        if ((st = try_leaf(x)) != MP_OK) goto out;
        for (int p = 0; p < K; p++) {  /* odometer */
            if (++idx[p] < ncand[p]) break;
            idx[p] = 0;
        }
    }
out:
    for (int p = 0; p < K; p++) free(cand[p]);
    return st;
}

/* ---------------------------------------------------------------- split DFS */

static int interleaved(const ctx *x) { return x->c.kind == MP_SCHED_INTERLEAVED; }

/* Work of layers [lo, L) in profile ms at the current b (recompute-on adds F). */
static double rem_work(const ctx *x, int lo)
{
    double w = x->ps.PF[x->L] - x->ps.PF[lo] + x->ps.PB[x->L] - x->ps.PB[lo];
    if (x->o->recompute == MP_RC_ON) w += x->ps.PF[x->L] - x->ps.PF[lo];
    return w;
}

/* Interleaved, stages 0..s-1 placed: base_p, a lower bound on A_p + U_p +
 * (placed busy time of p) for every final split (positions without a
 * placed chunk: A_s + U_s), and 1 when p still has a stage >= s. */
static void position_bases(const ctx *x, int s, double *base, double *spd)
{
    int K = x->c.K, S = x->c.S;
    for (int p = 0; p < K; p++) {
        int ls = x->last_stage[p] < s ? x->last_stage[p] : s;  /* U grows with the stage */
        base[p] = p < s ? x->A[p] + x->U[ls] + x->busy[p] : x->A[s] + x->U[s];
        int last = p + (S / K - 1) * K;  /* p's last stage */
        spd[p] = last >= s ? speed_of(x, p) : 0;
    }
}

/* Interleaved, stages 0..s-1 placed, work rw (profile ms) left: every
 * position p ends no sooner than base_p + m (its share of rw) / speed_p,
 * so T is at least the water level (mp_bound_waterfill). */
static double position_level(const ctx *x, int s, double rw)
{
    int K = x->c.K;
    double *base = x->wf, *spd = x->wf + K;
    position_bases(x, s, base, spd);
    return mp_bound_waterfill(base, spd, K, rw, x->c.m, x->wf + 2 * K);
}

/* Interleaved, stages 0..s-1 placed: the most remaining work (profile ms)
 * positions can take while each stays below thr. */
static double position_capacity(const ctx *x, int s, double thr)
{
    int K = x->c.K;
    double *base = x->wf, *spd = x->wf + K, cap = 0;
    position_bases(x, s, base, spd);
    for (int p = 0; p < K; p++)
        if (spd[p] > 0 && thr > base[p]) cap += (thr - base[p]) * spd[p] / x->c.m;
    return cap;
}

/* Interleaved, stages 0..s-1 placed: the memory left on positions that
 * still get a stage >= s. A position's final peak is at least its current
 * peak lower bound plus the parameter state of the chunks it still gets. */
static double memory_slack(const ctx *x, int s)
{
    int K = x->c.K, S = x->c.S;
    double slack = 0;
    for (int p = 0; p < K; p++) {
        int last = p + (S / K - 1) * K;
        double f = mem_of(x, p) - x->peak[p];
        if (last >= s && f > 0) slack += f;
    }
    return slack;
}

/* Interleaved, recompute auto, stages <= s placed: a lower bound on the
 * forward time position p recomputes (per micro-batch), HUGE_VAL when no
 * recompute choice fits. With D = (peak without recompute) - memory > 0,
 * recomputing chunk c lowers the held bytes at any instant by at most
 * r_c = nmax_c b (stash_c - in_c) (nmax_c: most micro-batches of c in flight
 * on p), so any fitting set M has sum_{c in M} r_c >= D; the least
 * sum_{c in M} F_c is at least the fractional knapsack's, and at least
 * the least F_c (M is not empty). */
static double forced_recompute(const ctx *x, int p, int s)
{
    int K = x->c.K, v = x->c.v, n = 0;
    double D = device_peak_lb_mode(x, p, s, MP_RC_OFF) - mem_of(x, p);
    if (D <= 0) return 0;
    if (s >= p + (v - 1) * K && v <= MAXV_EXACT && (2.0 * x->c.m * v) * (1 << v) <= EXACT_RC_OPS) {
        /* every chunk of p placed: the least recompute set that fits, exactly */
        double best = HUGE_VAL;
        for (unsigned mk = 1; mk < (1u << v); mk++) {
            double cost = 0;
            for (int i = 0; i < v; i++)
                if (mk >> i & 1) cost += x->F[p + i * K];
            if (cost < best && device_peak_fast_lb(x, p, mk) <= mem_of(x, p)) best = cost;
        }
        return best;
    }
    double r[v], f[v];
    for (int t = p; t <= s; t += K) {
        int lo = t > 0 ? x->hi[t - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[t]);
        double gain = x->ms.nmax[t] * x->c.b * (sb.stash - sb.in_bytes);
        if (gain <= 0) continue;
        int j = n++;
        while (j > 0 && f[j - 1] * gain > x->F[t] * r[j - 1]) { r[j] = r[j - 1]; f[j] = f[j - 1]; j--; }
        r[j] = gain;
        f[j] = x->F[t];
    }
    double cost = 0, fmin = HUGE_VAL;  /* and at least one chunk recomputes */
    for (int i = 0; i < n; i++)
        if (f[i] < fmin) fmin = f[i];
    for (int i = 0; i < n && D > 0; i++) {
        double take = D < r[i] ? D : r[i];
        cost += f[i] * take / r[i];
        D -= take;
    }
    return D > 0 ? HUGE_VAL : cost > fmin ? cost : fmin;
}

/* device_peak_lb of stage s's position with stage s ending at hi. */
static double peak_lb_at(ctx *x, int s, int hi)
{
    x->hi[s] = hi;
    return device_peak_lb(x, s % x->c.K, s);
}

/* Lower bound with stages 0..s placed (s < S-1); maxY: max over placed
 * stages of the C-relative terms, maxbusy: max of the absolute terms. */
static double partial_bound(const ctx *x, int s, double maxY, double maxbusy)
{
    int S = x->c.S, lo = x->hi[s] + 1;
    double rw = rem_work(x, lo);
    double C = x->A[s + 1] + x->U[s + 1] + rw / x->spd_max_suf[s + 1] + 2.0 * (S - 2 - s) * x->latmin;
    double lb = C + maxY;
    if (maxbusy > lb) lb = maxbusy;
    if (!interleaved(x)) {
        double t = x->A[s + 1] + x->c.m * rw / x->spd_sum_suf[s + 1];
        if (t > lb) lb = t;
    } else if (lb < threshold(x)) {  /* the water level only when the rest does not prune */
        double t = position_level(x, s + 1, rw);
        if (t > lb) lb = t;
    }
    return lb;
}

static mp_status dfs(ctx *x, int s, double maxY, double maxbusy);

/* Places stage s = [lo, hi] and recurses. */
static mp_status place(ctx *x, int s, int lo, int hi, double maxY, double maxbusy)
{
    int S = x->c.S, K = x->c.K, m = x->c.m;
    x->hi[s] = hi;
    stage_times(x, s, lo, hi);
    if (!interleaved(x)) {
        int rc = stage_rc(x, s, lo, hi);
        if (rc < 0) return MP_OK;
        set_rc(x, s, rc);
    } else {
        set_rc(x, s, x->o->recompute == MP_RC_ON);
        if (s == S - 1 && device_peak_lb(x, s % K, s) > mem_of(x, s % K)) return MP_OK;
    }
    x->A[s + 1] = x->A[s] + x->F[s] + x->act[s];
    x->U[s + 1] = x->U[s] + x->B[s] + x->grad[s];
    if (s == S - 1) return interleaved(x) ? interleaved_leaf(x) : try_leaf(x);
    double y = stage_y(x, s), busy, add = 0, xsaved = 0;
    if (!interleaved(x)) {
        busy = x->A[s] + m * (x->F[s] + x->B[s]) + x->U[s];
    } else {
        /* recompute forced by memory: when p's placed chunks do not fit
         * without it, at least one of them recomputes (later chunks only add
         * memory), so p's busy time grows by m times the least of their F */
        int p = s % K;
        add = m * (x->F[s] + x->B[s]);
        xsaved = x->rcx[p];
        if (x->o->recompute == MP_RC_AUTO) {
            double extra = forced_recompute(x, p, s);
            if (extra == HUGE_VAL) return MP_OK;
            extra *= m;
            add += extra - xsaved;
            x->rcx[p] = extra;
        }
        x->busy[p] += add;
        busy = x->busy[p] + x->A[p] + (x->last_stage[p] <= s ? x->U[x->last_stage[p]] : 0);
    }
    if (y > maxY) maxY = y;
    if (busy > maxbusy) maxbusy = busy;
    mp_status st = MP_OK;
    double saved = 0;
    int go = 1;
    if (interleaved(x)) {  /* memory: this position's peak, then what the rest still needs */
        int p = s % K;
        saved = x->peak[p];
        x->peak[p] = device_peak_lb(x, p, s);
        go = x->sf * (x->ps.PP[x->L] - x->ps.PP[hi + 1]) <= memory_slack(x, s + 1);
    }
    if (go && partial_bound(x, s, maxY, maxbusy) < threshold(x)) st = dfs(x, s + 1, maxY, maxbusy);
    if (interleaved(x)) {
        x->busy[s % K] -= add;
        x->peak[s % K] = saved;
        x->rcx[s % K] = xsaved;
    }
    return st;
}

static void show_progress(ctx *x)
{
    if (!x->o->progress) return;
    double el = mp_now_s() - x->t0;
    if (el < 2.0) return;
    fprintf(stderr, "\rmpplan: searching %.0fs: %ld configurations, %ld simulations, best %.4g ms   ",
            el, x->searched, x->sims, x->top.n ? x->top.e[0].t : 0.0);
    x->shown = 1;
}

/* Places stages s..S-1 after stage s-1. */
static mp_status dfs(ctx *x, int s, double maxY, double maxbusy)
{
    int S = x->c.S, L = x->L, lo = s > 0 ? x->hi[s - 1] + 1 : 0;
    int hmax = L - 1 - (S - 1 - s);
    x->nodes += x->node_weight;
    if (x->nodes % 4096 < x->node_weight) show_progress(x);
    if (threshold(x) <= x->c.lb) return MP_OK;  /* nothing here beats what we have */
    if (x->nodes >= x->node_cap || x->simops >= x->sim_cap) {
        x->out_of_budget = 1;
        return MP_OK;
    }
    if (s == S - 1) return place(x, s, lo, L - 1, maxY, maxbusy);
    double thr = threshold(x);
    int hmin = lo;
    if (!interleaved(x)) {
        /* memory: peak grows with hi for a fixed lo */
        int h;
        MP_LAST_TRUE(h, lo, hmax, stage_rc(x, s, lo, hi) >= 0);
        hmax = h;
        /* this stage's own work bound grows with hi */
        double sp = speed_of(x, s), m = x->c.m, a = x->A[s], u = x->U[s];
        MP_LAST_TRUE(h, lo, hmax,
                  a + u + m * ((x->ps.PF[hi + 1] - x->ps.PF[lo]) * (1 + (stage_rc(x, s, lo, hi) == 1)) +
                               x->ps.PB[hi + 1] - x->ps.PB[lo]) / sp < thr);
        hmax = h;
        /* the remaining stages need m * work / their speed */
        if (thr < HUGE_VAL) {
            double ss = x->spd_sum_suf[s + 1];
            int a2 = lo - 1, b2 = hmax;  /* last hi where the rest is too much */
            while (a2 < b2) {
                int mid = (a2 + b2 + 1) / 2;
                if (m * rem_work(x, mid + 1) / ss >= thr) a2 = mid; else b2 = mid - 1;
            }
            hmin = a2 + 1;
        }
    }
    if (interleaved(x)) {
        int p = s % x->c.K, h;
        /* memory: the position's peak lower bound grows with hi */
        MP_LAST_TRUE(h, lo, hmax, peak_lb_at(x, s, hi) <= mem_of(x, p));
        hmax = h;
        /* the parameter state of the layers after hi must fit the memory left
         * on the positions of stages > s (p's peak before stage s: an upper bound) */
        double m_rest = memory_slack(x, s + 1);
        int a2 = lo - 1, b2 = hmax;  /* last hi whose rest cannot fit */
        while (a2 < b2) {
            int mid = (a2 + b2 + 1) / 2;
            if (x->sf * (x->ps.PP[x->L] - x->ps.PP[mid + 1]) > m_rest) a2 = mid; else b2 = mid - 1;
        }
        if (a2 + 1 > hmin) hmin = a2 + 1;
    }
    if (interleaved(x) && thr < HUGE_VAL) {
        int p = s % x->c.K, h, ls = x->last_stage[p] < s ? x->last_stage[p] : s;
        double sp = speed_of(x, s), m = x->c.m, a = x->A[p] + x->busy[p] + x->U[ls];
        double f1 = 1 + (x->o->recompute == MP_RC_ON);
        MP_LAST_TRUE(h, lo, hmax, a + m * ((x->ps.PF[hi + 1] - x->ps.PF[lo]) * f1 + x->ps.PB[hi + 1] - x->ps.PB[lo]) / sp < thr);
        hmax = h;
        /* the work left must fit below thr on the positions that still get stages */
        double cap = position_capacity(x, s, thr);
        int a2 = lo - 1, b2 = hmax;
        while (a2 < b2) {
            int mid = (a2 + b2 + 1) / 2;
            if (rem_work(x, mid + 1) > cap) a2 = mid; else b2 = mid - 1;
        }
        if (a2 + 1 > hmin) hmin = a2 + 1;
    }
    if (hmin > hmax) return MP_OK;
    /* start near the balanced share of the remaining work, then alternate */
    double share = (rem_work(x, lo)) * speed_of(x, s) / x->spd_sum_suf[s];
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
            if ((st = place(x, s, lo, h1, maxY, maxbusy)) != MP_OK) return st;
        }
        if (h2 <= hmax) {
            any = 1;
            if ((st = place(x, s, lo, h2, maxY, maxbusy)) != MP_OK) return st;
        }
        if (!any || x->out_of_budget) break;
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- configurations */

/* Greedy split: binary search on the largest per-stage time; the greedy
 * split for the smallest feasible one becomes a first leaf. */
static mp_status greedy(ctx *x)
{
    int S = x->c.S, L = x->L;
    double hiT = 0, loT = 0;
    for (int s = 0; s < S; s++) {
        double t = rem_work(x, 0) / speed_of(x, s);
        if (t > hiT) hiT = t;
    }
    int found = 0;
    int *best = malloc((size_t)S * sizeof(int));
    if (!best) return MP_ERR_NOMEM;
    for (int it = 0; it < 40; it++) {
        double th = it == 0 ? hiT : 0.5 * (loT + hiT);
        int lo = 0, ok = 1;
        for (int s = 0; s < S && ok; s++) {
            int hmax = L - 1 - (S - 1 - s), h;
            if (s == S - 1) h = L - 1;
            else {
                double sp = speed_of(x, s);
                MP_LAST_TRUE(h, lo, hmax, (x->ps.PF[hi + 1] - x->ps.PF[lo] + x->ps.PB[hi + 1] - x->ps.PB[lo]) / sp <= th &&
                                       (interleaved(x) || stage_rc(x, s, lo, hi) >= 0));
                if (h < lo) h = lo;
            }
            if ((x->ps.PF[h + 1] - x->ps.PF[lo] + x->ps.PB[h + 1] - x->ps.PB[lo]) / speed_of(x, s) > th * (1 + 1e-12) ||
                (!interleaved(x) && stage_rc(x, s, lo, h) < 0))
                ok = 0;
            x->hi[s] = h;
            lo = h + 1;
        }
        if (ok) { found = 1; hiT = th; memcpy(best, x->hi, (size_t)S * sizeof(int)); }
        else if (it == 0) break;
        else loT = th;
    }
    mp_status st = MP_OK;
    if (found) {
        /* walk the greedy split through place() so A/U/bounds are set */
        for (int s = 0; s < S; s++) x->hi[s] = best[s];
        int lo = 0;
        for (int s = 0; s < S - 1; s++) {
            stage_times(x, s, lo, best[s]);
            int rc = interleaved(x) ? x->o->recompute == MP_RC_ON : stage_rc(x, s, lo, best[s]);
            set_rc(x, s, rc < 0 ? 0 : rc);
            x->A[s + 1] = x->A[s] + x->F[s] + x->act[s];
            x->U[s + 1] = x->U[s] + x->B[s] + x->grad[s];
            lo = best[s] + 1;
        }
        for (int p = 0; p < x->c.K; p++) x->busy[p] = 0;
        x->hi[S - 1] = L - 1;
        stage_times(x, S - 1, lo, L - 1);
        if (interleaved(x)) st = interleaved_leaf(x);
        else {
            int rc = stage_rc(x, S - 1, lo, L - 1);
            if (rc >= 0) {
                set_rc(x, S - 1, rc);
                st = try_leaf(x);
            }
        }
    }
    free(best);
    return st;
}

/* Sets up configuration c and times its greedy split; with dfs, then runs
 * the branch and bound over every split. */
static mp_status search_config(ctx *x, const mp_config *c, int dfs_too, mp_error *err)
{
    int S = c->S, K = c->K;
    x->c = *c;
    mp_prefix_set_b(&x->ps, c->b);
    mp_op_lists_free(&x->ops);
    mp_status st = mp_schedule_build(c->kind, K, c->v, c->m, &x->ops, err);
    if (st != MP_OK) return st;
    for (int p = 0; p < K; p++) x->last_stage[p] = x->ops.ops[p][x->ops.len[p] - 1].stage;
    x->spd_max_suf[S] = 0;
    x->spd_sum_suf[S] = 0;
    for (int s = S - 1; s >= 0; s--) {
        double sp = speed_of(x, s);
        x->spd_max_suf[s] = sp > x->spd_max_suf[s + 1] ? sp : x->spd_max_suf[s + 1];
        x->spd_sum_suf[s] = x->spd_sum_suf[s + 1] + (s >= S - K ? sp : 0);
    }
    /* spd_sum_suf[s]: total speed of the distinct positions of stages s..S-1 */
    for (int s = S - 1; s >= 0; s--) {
        double sum = 0;
        int n = S - s < K ? S - s : K;
        for (int i = 0; i < n; i++) sum += speed_of(x, s + i);
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
    x->A[0] = x->U[0] = 0;
    for (int p = 0; p < K; p++) x->busy[p] = 0;
    if ((st = greedy(x)) != MP_OK) return mp_error_set(err, st, "search: out of memory");
    if (!dfs_too) return MP_OK;
    if (c->kind == MP_SCHED_INTERLEAVED && mp_mem_states_build(&x->ms, &x->ops, c->v) != MP_OK)
        return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    /* a node costs about (log L + 4) peak evaluations over a position's
     * states: charge the budget for that so that time stays bounded */
    x->node_weight = 1;
    if (c->kind == MP_SCHED_INTERLEAVED) {
        double per = (double)x->ms.row_off[K] / K * c->v, lg = 4;
        for (int l = x->L; l > 1; l /= 2) lg++;
        x->node_weight = 1 + (long)(per * lg / NODE_WORK);
    }
    x->A[0] = x->U[0] = 0;
    for (int p = 0; p < K; p++) x->busy[p] = x->peak[p] = x->rcx[p] = 0;
    long left = x->o->node_budget - x->nodes, cap = x->o->node_budget / 8;
    /* interleaved: when the incumbent is already within INTERLEAVED_NEAR of
     * this configuration's bound, little can be gained: a smaller share */
    if (c->kind == MP_SCHED_INTERLEAVED && mp_top_worst(&x->top) <= c->lb * (1 + INTERLEAVED_NEAR))
        cap = x->o->node_budget / 32;
    x->node_cap = x->nodes + (left < cap ? left : cap);
    double sleft = x->o->sim_op_budget - x->simops, scap = x->o->sim_op_budget / 8;
    x->sim_cap = x->simops + (sleft < scap ? sleft : scap);
    st = dfs(x, 0, 0, 0);
    if (st != MP_OK) return mp_error_set(err, st, "search: %s", st == MP_ERR_NOMEM ? "out of memory"
                                                                                    : "simulation failed");
    return MP_OK;
}

/* ---------------------------------------------------------------- public */

/* See search.h. */
void mp_search_opts_init(mp_search_opts *o, int global_batch)
{
    memset(o, 0, sizeof *o);
    o->global_batch = global_batch;
    o->schedule = -1;
    o->recompute = MP_RC_AUTO;
    o->state_factor = MP_DEFAULT_STATE_FACTOR;
    o->top = 5;
}

static void ctx_free(ctx *x)
{
    mp_prefix_free(&x->ps);
    free(x->held); free(x->extra);
    free(x->last_stage); free(x->hi); free(x->rc);
    free(x->F); free(x->Bn); free(x->B); free(x->R); free(x->act); free(x->grad);
    free(x->A); free(x->U); free(x->busy); free(x->peak);
    free(x->spd_max_suf); free(x->spd_sum_suf); free(x->wf); free(x->rcx);
    mp_mem_states_free(&x->ms);
    mp_bound_data_free(&x->bd);
    mp_op_lists_free(&x->ops);
    mp_sim_free(x->sim);
    mp_top_free(&x->top);
}

static mp_status ctx_init(ctx *x, const mp_profile *prof, const mp_cluster *cl,
                          const mp_search_opts *o)
{
    memset(x, 0, sizeof *x);
    x->prof = prof; x->cl = cl; x->o = o;
    int L = x->L = prof->num_layers, D = cl->num_devices, S = L + 1;
    x->sf = o->state_factor;
    x->last_stage = malloc((size_t)(D + 1) * sizeof(int));
    x->hi = malloc((size_t)S * sizeof(int));
    x->rc = malloc((size_t)S * sizeof(int));
    double **arrs[] = { &x->F, &x->Bn, &x->B, &x->R, &x->act, &x->grad, &x->A, &x->U,
                        &x->spd_max_suf, &x->spd_sum_suf, &x->held, &x->extra };
    for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++) *arrs[i] = calloc((size_t)S + 1, sizeof(double));
    x->busy = calloc((size_t)D + 1, sizeof(double));
    x->peak = calloc((size_t)D + 1, sizeof(double));
    x->wf = calloc(4 * ((size_t)D + 1), sizeof(double));
    x->rcx = calloc((size_t)D + 1, sizeof(double));
    x->sim = mp_sim_new();
    if (mp_prefix_init(&x->ps, prof) != MP_OK || !x->last_stage || !x->hi || !x->rc ||
        !x->busy || !x->peak || !x->wf || !x->rcx || mp_top_init(&x->top, o->top) != MP_OK || !x->sim ||
        mp_bound_data_init(&x->bd, prof, cl, o->recompute, o->state_factor) != MP_OK)
        return MP_ERR_NOMEM;
    for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++)
        if (!*arrs[i]) return MP_ERR_NOMEM;
    x->unproven = HUGE_VAL;
    return MP_OK;
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
    if (prof->num_layers < 1 || cl->num_devices < 1)
        return mp_error_set(err, MP_ERR_INPUT, "search: the profile has no layers or the cluster no devices");
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
    if (o.node_budget <= 0) o.node_budget = DEFAULT_NODES;
    if (o.sim_op_budget <= 0) o.sim_op_budget = DEFAULT_SIM_OPS;
    ctx x;
    mp_config *cfg = NULL;
    unsigned char *done = NULL;
    int ncfg = 0;
    double t0 = mp_now_s();
    if (ctx_init(&x, prof, cl, &o) != MP_OK) {
        ctx_free(&x);
        return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    }
    x.t0 = t0;
    if ((st = mp_configs_list(&o, cl, &x.ps, &x.bd, &cfg, &ncfg, &x.cfgs, err)) != MP_OK) goto out;
    if (ncfg == 0 && x.cfgs > 0) {
        st = mp_error_set(err, MP_ERR_NOFIT, "no plan fits the devices' memory");
        r->configurations = x.cfgs;
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
    if (!done) { st = mp_error_set(err, MP_ERR_NOMEM, "search: out of memory"); goto out; }
    /* gpipe/1f1b first (cheap, and their incumbent prunes the interleaved
     * ones), each pass by increasing bound */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)  /* incumbents from the greedy splits of the most promising interleaved ones */
            for (int i = 0, n = 0; i < ncfg && n < GREEDY_FIRST; i++) {
                if (cfg[i].kind != MP_SCHED_INTERLEAVED) continue;
                if (cfg[i].lb >= mp_top_worst(&x.top)) break;
                n++;
                if ((st = search_config(&x, &cfg[i], 0, err)) != MP_OK) goto out;
            }
        for (int i = 0; i < ncfg; i++) {
            mp_config *c = &cfg[i];
            if ((c->kind == MP_SCHED_INTERLEAVED) != pass) continue;
            double thr = mp_top_worst(&x.top);
            if (c->lb >= thr) break;
            /* gpipe/1f1b may use half of the budget: interleaved gets the rest */
            long nb = pass ? o.node_budget : o.node_budget / 2;
            if (x.nodes >= nb || x.simops >= (pass ? 1 : 0.5) * o.sim_op_budget) {
                x.out_of_budget = 1;
                break;
            }
            if (!pass) {
                double lb = mp_bound_split(&x.bd, c->K, c->b, c->kind, c->m, c->lb, thr) * (1 - MP_BOUND_SLACK);
                if (lb > c->lb) c->lb = lb;
                if (c->lb >= thr) continue;
                /* proven infeasible: skip */
                unsigned char *r1 = malloc((size_t)x.L + 1), *r2 = malloc((size_t)x.L + 1);
                mp_stage_fit f = mp_config_fit(c, &x.ps, cl, &o);
                int fits = r1 && r2 && mp_config_fits(&f, r1, r2);
                free(r1);
                free(r2);
                if (!fits) { done[i] = 1; continue; }
            }
            x.searched++;
            int before = x.out_of_budget;
            x.out_of_budget = 0;
            if ((st = search_config(&x, c, 1, err)) != MP_OK) goto out;
            done[i] = !x.out_of_budget;
            x.out_of_budget |= before;
        }
    }
    /* what the search did not rule out: the least bound of the configurations
     * not fully searched (gpipe/1f1b bounds refined where it matters) */
    if (x.top.n > 0) {
        double best = x.top.e[0].t;
        for (int i = 0; i < ncfg; i++) {
            mp_config *c = &cfg[i];
            if (done[i] || c->lb >= best || c->lb >= x.unproven) continue;
            if (c->kind != MP_SCHED_INTERLEAVED) {
                double stop = x.unproven < best ? x.unproven : best;
                double lb = mp_bound_split(&x.bd, c->K, c->b, c->kind, c->m, c->lb, stop) * (1 - MP_BOUND_SLACK);
                if (lb > c->lb) c->lb = lb;
            }
            if (c->lb < x.unproven) x.unproven = c->lb;
        }
    }
    if (x.shown) fprintf(stderr, "\n");
    if (x.top.n == 0) {
        st = mp_error_set(err, MP_ERR_NOFIT, "no plan fits the devices' memory");
        r->configurations = x.cfgs;
        goto out;
    }
    r->plans = calloc((size_t)x.top.n, sizeof *r->plans);
    r->fast_ms = calloc((size_t)x.top.n, sizeof *r->fast_ms);
    if (!r->plans || !r->fast_ms) { st = mp_error_set(err, MP_ERR_NOMEM, "search: out of memory"); goto out; }
    for (int k = 0; k < x.top.n; k++) {
        if ((st = mp_top_plan(&x.top.e[k], o.global_batch, prof, cl, o.state_factor, &r->plans[k], err)) != MP_OK) {
            mp_plan_free(&r->plans[k]);
            goto out;
        }
        r->fast_ms[k] = x.top.e[k].t;
        r->num_plans++;
    }
    double best = x.top.e[0].t;
    r->optimal = !x.inexact && x.unproven >= best;
    r->lower_bound_ms = r->optimal ? best : (x.unproven < best ? x.unproven : best);
    if (x.inexact && x.unproven >= best) r->lower_bound_ms = best; /* unknown; gap reported 0 */
    r->gap = (best - r->lower_bound_ms) / best;
    r->configurations = x.cfgs;
    r->searched = x.searched;
    r->nodes = x.nodes;
    r->simulations = x.sims;
out:
    r->seconds = mp_now_s() - t0;
    free(cfg);
    free(done);
    ctx_free(&x);
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
