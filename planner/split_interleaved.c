/* split_interleaved.c — the interleaved parts of the split branch and bound
 * (split.h: mp_split_il_*): memory per position (the op walk of
 * sim/memory.h at the leaves, the in-flight states of planner/mem_states.h
 * for bounds inside the tree), the recompute that memory forces, and the
 * positions' time bounds.
 * defines: mp_split_il_prepare, mp_split_il_narrow, mp_split_il_last_fits, mp_split_il_enter,
 *          mp_split_il_level, mp_split_il_leaf */
#include "split.h"

#include <math.h>
#include <stdlib.h>

#include "bounds.h"
#include "memory.h"

#define MAXV_EXACT 8          /* all minimal recompute sets up to this v */
#define MAX_COMBOS 4096       /* recompute combinations tried per split */
#define EXACT_RC_OPS 1024     /* op-walk budget of the exact forced recompute per node */
#define NODE_WORK 100.0       /* state-row work that counts as one extra node */

/* ---------------------------------------------------------------- memory */

/* Chunk i's recompute bit in `mask`: bit i, and bit 31 for every chunk from
 * 31 on (beyond MAXV_EXACT masks are only none or all, so a mask stays
 * 32 bits for any v and no shift reaches the width). */
static int rc_bit(unsigned mask, int i) { return (mask >> (i < 31 ? i : 31)) & 1; }

/* Position p's peak with the recompute bits `mask` over its chunks (bit i:
 * stage p + i*K, see rc_bit): the memory model's op walk (charged to the tally), plus
 * with D > 1 replicas the all-reduce buffer (the largest of its stages',
 * mp_memory_allreduce_bytes). */
static double device_peak(mp_split *x, int p, unsigned mask)
{
    int K = x->c.K, S = x->c.S;
    mp_tally_charge(x->tally, 1 + x->ops.len[p] / 1024);
    double base = 0, buf = 0;
    for (int s = p, i = 0; s < S; s += K, i++) {
        int lo = s > 0 ? x->hi[s - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[s]);
        base += x->sf * sb.params;
        mp_memory_held(&sb, x->c.b, rc_bit(mask, i), &x->il.held[s], &x->il.extra[s]);
        double a = mp_prefix_max_param(&x->ps, lo, x->hi[s]);
        if (x->c.D > 1 && (a > 4 ? a : 4) > buf) buf = a > 4 ? a : 4;
    }
    return mp_memory_walk(x->ops.ops[p], x->ops.len[p], base + buf, x->il.held, x->il.extra);
}

/* Lower bound on position p's peak with only stages <= smax placed (others
 * count 0) and recompute as `mode` allows: each chunk holds at least the
 * smaller of its held bytes with and without recompute that the mode
 * allows. Slightly lowered so that rounding never makes it exceed the walk. */
static double device_peak_lb_mode(const mp_split *x, int p, int smax, int mode)
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
    return mp_mem_states_peak(&x->il.ms, p, params, held, NULL) * (1 - 1e-12);
}

/* device_peak from the in-flight states (mp_mem_states_peak, equal to the
 * walk up to rounding), with the all-reduce buffer when with_buf. */
static double device_peak_states(const mp_split *x, int p, unsigned mask, int with_buf)
{
    int K = x->c.K;
    double params = 0, buf = 0, held[x->c.v], tr[x->c.v];
    for (int s = p, i = 0; s < x->c.S; s += K, i++) {
        int lo = s > 0 ? x->hi[s - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[s]);
        params += x->sf * sb.params;
        mp_memory_held(&sb, x->c.b, rc_bit(mask, i), &held[i], &tr[i]);
        double a = with_buf && x->c.D > 1 ? mp_prefix_max_param(&x->ps, lo, x->hi[s]) : 0;
        if (a > 0 && (a > 4 ? a : 4) > buf) buf = a > 4 ? a : 4;
    }
    return mp_mem_states_peak(&x->il.ms, p, params + buf, held, tr);
}

/* device_peak from the states, slightly lowered (a lower bound). */
static double device_peak_fast_lb(const mp_split *x, int p, unsigned mask)
{
    return device_peak_states(x, p, mask, 0) * (1 - 1e-12);
}

/* 1 when position p's peak under recompute bits mask fits cap: the states
 * decide, the op walk (device_peak) only within rounding of cap, so the
 * answer is the walk's. */
static int device_fits(mp_split *x, int p, unsigned mask, double cap)
{
    mp_tally_charge(x->tally, 1);
    if (x->il.ms.rows) {   /* states built (mp_split_il_prepare) */
        double est = device_peak_states(x, p, mask, 1);
        if (fabs(est - cap) > 1e-9 * cap) return est <= cap;
    }
    return device_peak(x, p, mask) <= cap;
}

static double device_peak_lb(const mp_split *x, int p, int smax)
{
    return device_peak_lb_mode(x, p, smax, x->mode);
}

/* device_peak_lb of stage s's position with stage s ending at hi. */
static double peak_lb_at(mp_split *x, int s, int hi)
{
    x->hi[s] = hi;
    return device_peak_lb(x, s % x->c.K, s);
}

/* Stages 0..s-1 placed: the memory left on positions that still get a
 * stage >= s. A position's final peak is at least its current peak lower
 * bound plus the parameter state of the chunks it still gets. */
static double memory_slack(const mp_split *x, int s)
{
    int K = x->c.K, S = x->c.S;
    double slack = 0;
    for (int p = 0; p < K; p++) {
        int last = p + (S / K - 1) * K;
        double f = mp_split_mem(x, p) - x->il.peak[p];
        if (last >= s && f > 0) slack += f;
    }
    return slack;
}

/* Recompute auto, stages <= s placed: a lower bound on the forward time
 * position p recomputes (per micro-batch), HUGE_VAL when no recompute
 * choice fits. With D = (peak without recompute) - memory > 0, recomputing
 * chunk c lowers the held bytes at any instant by at most
 * r_c = nmax_c b (stash_c - in_c) (nmax_c: most micro-batches of c in flight
 * on p), so any fitting set M has sum_{c in M} r_c >= D; the least
 * sum_{c in M} F_c is at least the fractional knapsack's, and at least
 * the least F_c (M is not empty). */
static double forced_recompute(const mp_split *x, int p, int s)
{
    int K = x->c.K, v = x->c.v, n = 0;
    double D = device_peak_lb_mode(x, p, s, MP_RC_OFF) - mp_split_mem(x, p);
    if (D <= 0) return 0;
    if (s >= p + (v - 1) * K && v <= MAXV_EXACT && (2.0 * x->c.m * v) * (1 << v) <= EXACT_RC_OPS) {
        /* every chunk of p placed: the least recompute set that fits, exactly */
        double best = HUGE_VAL;
        for (unsigned mk = 1; mk < (1u << v); mk++) {
            double cost = 0;
            for (int i = 0; i < v; i++)
                if (mk >> i & 1) cost += x->F[p + i * K];
            if (cost < best && device_peak_fast_lb(x, p, mk) <= mp_split_mem(x, p)) best = cost;
        }
        return best;
    }
    double r[v], f[v];
    for (int t = p; t <= s; t += K) {
        int lo = t > 0 ? x->hi[t - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, lo, x->hi[t]);
        double gain = x->il.ms.nmax[t] * x->c.b * (sb.stash - sb.in_bytes);
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

/* ---------------------------------------------------------------- each stage left by itself */

/* Entry (p, d, c) of il.room / il.room_n. */
static size_t room_at(const mp_split *x, int p, int d, int c)
{
    int v = x->c.v;
    return ((size_t)p * (v + 1) + d) * v + c;
}

/* Position p with its chunks c < d placed (stages p + cK): for each chunk
 * c >= d not placed, the bytes its stage t = p + cK may hold (its
 * parameter state and n micro-batches of held bytes) at one row of p's
 * in-flight states (mem_states.h) at which every unplaced chunk has a
 * micro-batch in flight (there is one: just before p's first backward, of
 * chunk v-1, every chunk has forwarded micro-batch 0 and none has run a
 * backward; a row dominating it has counts as large). At any such row r
 * the walk's peak is at least
 *   sf params_p + sum_{placed c'} n_c'(r) held_c' + sum_{unplaced c'} n_c'(r) held_c',
 * with held_c' at least the least the mode allows (placed) and, for an
 * unplaced chunk (at least one layer), sf pmin of parameter state and
 * b hmin per micro-batch in flight; so a fitting completion has
 *   sf params_t + n_c(r) held_t <= M_p - sf params(placed) - placed part(r)
 *                                  - sum_{unplaced c' != c} (sf pmin + n_c'(r) b hmin).
 * The row: the most micro-batches n_c, then the least bytes left. */
static void stage_room(mp_split *x, int p, int d)
{
    int K = x->c.K, v = x->c.v, w = v + 1;
    const mp_mem_states *ms = &x->il.ms;
    double params = 0, hm[v], M = mp_split_mem(x, p), other = x->sf * x->il.pmin, hb = x->c.b * x->il.hmin;
    for (int c = 0; c < d; c++) {
        int t = p + c * K, tlo = t > 0 ? x->hi[t - 1] + 1 : 0;
        mp_stage_bytes sb = mp_prefix_bytes(&x->ps, tlo, x->hi[t]);
        double hs, hr, extra;
        mp_memory_held(&sb, x->c.b, 0, &hs, &extra);
        mp_memory_held(&sb, x->c.b, 1, &hr, &extra);
        params += x->sf * sb.params;
        hm[c] = x->mode == MP_RC_OFF ? hs : x->mode == MP_RC_ON ? hr : (hs < hr ? hs : hr);
    }
    for (int c = d; c < v; c++) {
        int bn = 0;
        double room = M - params;
        for (int r = ms->row_off[p]; r < ms->row_off[p + 1]; r++) {
            const int *row = ms->rows + (size_t)r * w + 1;
            double h = 0;
            int ok = 1;
            for (int c2 = 0; c2 < v && ok; c2++) {
                if (c2 < d) h += row[c2] * hm[c2];
                else if (row[c2] < 1) ok = 0;
                else if (c2 != c) h += other + row[c2] * hb;
            }
            if (ok && (row[c] > bn || (row[c] == bn && M - params - h < room))) bn = row[c], room = M - params - h;
        }
        if (bn < 1) bn = 1, room = M - params;   /* (no such row: cannot happen; the weakest) */
        x->il.room_n[room_at(x, p, d, c)] = bn;
        x->il.room[room_at(x, p, d, c)] = room + 1e-9 * M;   /* rounding never excludes a fitting stage */
    }
}

/* Stage t = layers [j, e) (e > j) by itself at T < thr: it fits its room
 * without recompute (the mode allowing) and base + m (F + B) / speed < thr,
 * or with recompute (held >= 0) and base + m (2F + B) / speed < thr. Holds
 * for [j', e') inside [j, e) whenever for [j, e) (every term grows). */
static int stage_alone(const mp_split *x, int t, int d, int j, int e, double base, double thr)
{
    const mp_prefix *ps = &x->ps;
    int p = t % x->c.K, c = t / x->c.K;
    double room = x->il.room[room_at(x, p, d, c)], n = x->il.room_n[room_at(x, p, d, c)];
    double par = x->sf * (ps->PP[e] - ps->PP[j]), f = ps->PF[e] - ps->PF[j], bw = ps->PB[e] - ps->PB[j];
    double k = x->c.m / mp_split_speed(x, t);
    if (x->mode != MP_RC_ON && par + n * x->c.b * (ps->PS[e] - ps->PS[j]) <= room && base + k * (f + bw) < thr)
        return 1;
    return x->mode != MP_RC_OFF && par <= room && base + k * (2 * f + bw) < thr;
}

/* ---------------------------------------------------------------- time */

/* Stages 0..s-1 placed: base_p, a lower bound on A_p + U_p + (placed busy
 * time of p) for every final split (positions without a placed chunk:
 * A_s + U_s), and spd_p, p's speed when p still has a stage >= s, else 0. */
static void position_bases(const mp_split *x, int s, double *base, double *spd)
{
    int K = x->c.K, S = x->c.S;
    for (int p = 0; p < K; p++) {
        int ls = x->last_stage[p] < s ? x->last_stage[p] : s;  /* U grows with the stage */
        base[p] = p < s ? x->A[p] + x->U[ls] + x->il.busy[p] : x->A[s] + x->U[s];
        /* D > 1: p's list ends no sooner than A_p + busy_p, then its all-reduces */
        if (p < s && x->A[p] + x->il.busy[p] + x->il.arsum[p] > base[p]) base[p] = x->A[p] + x->il.busy[p] + x->il.arsum[p];
        int last = p + (S / K - 1) * K;  /* p's last stage */
        spd[p] = last >= s ? mp_split_speed(x, p) : 0;
    }
}

/* See split.h. Why: relax every stage t >= s to its own constraints (the
 * memory of stage_room, T >= base_p + m (its time) / speed_p with base_p of
 * position_bases: p's final busy time has it) and allow empty stages; each
 * constraint holds on the layers inside any interval where it holds, so
 * the greedy that gives each stage in turn the most layers it can take
 * reaches at least as far after every stage as any split that meets them
 * (starting no later, the same end is allowed: bounds.c's exchange
 * argument). When it does not reach the last layer, no completion has
 * T < thr. */
int mp_split_il_rest_fits(mp_split *x, int s, double thr)
{
    int K = x->c.K, S = x->c.S, L = x->ps.L, j = s > 0 ? x->hi[s - 1] + 1 : 0;
    if (!(thr < HUGE_VAL) || s >= S) return 1;
    double *base = x->il.wf, *spd = x->il.wf + K;
    position_bases(x, s, base, spd);
    for (int t = s; t < S && j < L; t++) {
        int p = t % K, d = s > p ? (s - 1 - p) / K + 1 : 0, a = j, b = L;   /* last end that fits: a */
        while (a < b) {
            int mid = (a + b + 1) / 2;
            if (stage_alone(x, t, d, j, mid, base[p], thr)) a = mid; else b = mid - 1;
        }
        j = a;
    }
    return j >= L;
}

/* See split.h. Every position p ends no sooner than base_p + m (its share
 * of rw) / speed_p, so T is at least the water level (mp_bound_waterfill). */
double mp_split_il_level(mp_split *x, int s, double rw)
{
    int K = x->c.K;
    double *base = x->il.wf, *spd = x->il.wf + K;
    position_bases(x, s, base, spd);
    return mp_bound_waterfill(base, spd, K, rw, x->c.m, x->il.wf + 2 * K);
}

/* Stages 0..s-1 placed: the most remaining work (profile ms) positions can
 * take while each stays below thr. */
static double position_capacity(mp_split *x, int s, double thr)
{
    int K = x->c.K;
    double *base = x->il.wf, *spd = x->il.wf + K, cap = 0;
    position_bases(x, s, base, spd);
    for (int p = 0; p < K; p++)
        if (spd[p] > 0 && thr > base[p]) cap += (thr - base[p]) * spd[p] / x->c.m;
    return cap;
}

/* ---------------------------------------------------------------- hooks */

/* See split.h. A node costs about (log L + 4) peak evaluations over a
 * position's states: the tally is charged for that so that time stays
 * bounded. */
mp_status mp_split_il_prepare(mp_split *x)
{
    int K = x->c.K;
    mp_status st = mp_mem_states_build_by(&x->il.ms, &x->ops, x->c.v, x->tally->t_cap);
    if (st != MP_OK) return st;
    double per = (double)x->il.ms.row_off[K] / K * x->c.v, lg = 4;
    for (int l = x->ps.L; l > 1; l /= 2) lg++;
    x->node_weight = 1 + (long)(per * lg / NODE_WORK);
    for (int p = 0; p < K; p++) x->il.busy[p] = x->il.peak[p] = x->il.rcx[p] = x->il.arsum[p] = 0;
    int v = x->c.v, L = x->ps.L;
    size_t n = (size_t)K * (v + 1) * v;
    if (n > x->il.room_cap) {
        free(x->il.room_n);
        free(x->il.room);
        x->il.room_n = malloc(n * sizeof *x->il.room_n);
        x->il.room = malloc(n * sizeof *x->il.room);
        x->il.room_cap = x->il.room_n && x->il.room ? n : 0;
        if (!x->il.room_cap) return MP_ERR_NOMEM;
    }
    x->il.pmin = x->il.hmin = HUGE_VAL;
    for (int l = 0; l < L; l++) {
        double pr = x->ps.PP[l + 1] - x->ps.PP[l], st = x->ps.PS[l + 1] - x->ps.PS[l], in = x->ps.in[l];
        double h = x->mode == MP_RC_OFF ? st : x->mode == MP_RC_ON ? in : (st < in ? st : in);
        if (pr < x->il.pmin) x->il.pmin = pr;
        if (h < x->il.hmin) x->il.hmin = h;
    }
    if (x->il.hmin < 0) x->il.hmin = 0;
    for (int p = 0; p < K; p++) stage_room(x, p, 0);
    return MP_OK;
}

/* See split.h. */
void mp_split_il_narrow(mp_split *x, int s, int lo, double thr, int *hmin, int *hmax)
{
    int p = s % x->c.K, h, L = x->ps.L;
    const double *PP = x->ps.PP, *PF = x->ps.PF, *PB = x->ps.PB;
    /* memory: the position's peak lower bound grows with hi */
    MP_LAST_TRUE(h, lo, *hmax, peak_lb_at(x, s, hi) <= mp_split_mem(x, p));
    *hmax = h;
    /* the parameter state of the layers after hi must fit the memory left
     * on the positions of stages > s (p's peak before stage s: an upper bound) */
    double m_rest = memory_slack(x, s + 1);
    int a2 = lo - 1, b2 = *hmax;  /* last hi whose rest cannot fit */
    while (a2 < b2) {
        int mid = (a2 + b2 + 1) / 2;
        if (x->sf * (PP[L] - PP[mid + 1]) > m_rest) a2 = mid; else b2 = mid - 1;
    }
    if (a2 + 1 > *hmin) *hmin = a2 + 1;
    if (!(thr < HUGE_VAL)) return;
    int ls = x->last_stage[p] < s ? x->last_stage[p] : s;
    double sp = mp_split_speed(x, s), m = x->c.m, a = x->A[p] + x->il.busy[p] + x->U[ls];
    double f1 = 1 + (x->mode == MP_RC_ON);
    MP_LAST_TRUE(h, lo, *hmax, a + m * ((PF[hi + 1] - PF[lo]) * f1 + PB[hi + 1] - PB[lo]) / sp < thr);
    *hmax = h;
    if (x->c.D > 1) {   /* p's list, then its all-reduces (the stage's grows with hi) */
        double a2 = x->A[p] + x->il.busy[p] + x->il.arsum[p];
        int K = x->c.K, D = x->c.D;
        MP_LAST_TRUE(h, lo, *hmax, a2 + m * ((PF[hi + 1] - PF[lo]) * f1 + PB[hi + 1] - PB[lo]) / sp +
                                       mp_prefix_allreduce_ms(&x->ps, x->cl, p, K, D, lo, hi) < thr);
        *hmax = h;
    }
    /* the work left must fit below thr on the positions that still get stages */
    double cap = position_capacity(x, s, thr);
    a2 = lo - 1;
    b2 = *hmax;
    while (a2 < b2) {
        int mid = (a2 + b2 + 1) / 2;
        if (mp_split_rem_work(x, mid + 1) > cap) a2 = mid; else b2 = mid - 1;
    }
    if (a2 + 1 > *hmin) *hmin = a2 + 1;
}

/* See split.h. */
int mp_split_il_last_fits(mp_split *x, int s)
{
    int p = s % x->c.K;
    return !(device_peak_lb(x, p, s) > mp_split_mem(x, p));
}

/* See split.h. Recompute forced by memory: when p's placed chunks do not
 * fit without it, at least one of them recomputes (later chunks only add
 * memory), so p's busy time grows by m times the least of their F. */
int mp_split_il_enter(mp_split *x, int s, int hi, double *busy, int *go, mp_il_undo *u)
{
    int K = x->c.K, m = x->c.m, p = s % K, L = x->ps.L;
    u->add = m * (x->F[s] + x->B[s]);
    u->rcx = x->il.rcx[p];
    if (x->mode == MP_RC_AUTO) {
        double extra = forced_recompute(x, p, s);
        if (extra == HUGE_VAL) return 0;
        extra *= m;
        u->add += extra - u->rcx;
        x->il.rcx[p] = extra;
    }
    x->il.busy[p] += u->add;
    u->ar = x->ar[s];
    x->il.arsum[p] += u->ar;
    *busy = x->il.busy[p] + x->A[p] + (x->last_stage[p] <= s ? x->U[x->last_stage[p]] : 0);
    if (x->il.busy[p] + x->A[p] + x->il.arsum[p] > *busy) *busy = x->il.busy[p] + x->A[p] + x->il.arsum[p];
    stage_room(x, p, s / K + 1);   /* its unplaced chunks, stages 0..s placed */
    /* memory: this position's peak, then what the rest still needs */
    u->peak = x->il.peak[p];
    x->il.peak[p] = device_peak_lb(x, p, s);
    *go = x->sf * (x->ps.PP[L] - x->ps.PP[hi + 1]) <= memory_slack(x, s + 1);
    return 1;
}

/* See split.h. */
mp_status mp_split_il_leaf(mp_split *x)
{
    int K = x->c.K, v = x->c.v, mode = x->mode;
    unsigned full = v < 32 ? (1u << v) - 1 : ~0u;   /* every chunk (rc_bit) */
    int exact = v <= MAXV_EXACT;
    unsigned *cand[K];
    int ncand[K], idx[K];
    mp_status st = MP_OK;
    long combos = 1;
    for (int p = 0; p < K; p++) cand[p] = NULL;
    for (int p = 0; p < K; p++) {
        double cap = mp_split_mem(x, p);
        int n = 0;
        unsigned nmask = exact ? (1u << v) : 0;
        cand[p] = malloc((exact ? (size_t)nmask : 2) * sizeof(unsigned));
        if (!cand[p]) { st = MP_ERR_NOMEM; goto out; }
        if (mode == MP_RC_OFF || mode == MP_RC_ON) {
            unsigned mk = mode == MP_RC_ON ? full : 0;
            if (device_fits(x, p, mk, cap)) cand[p][n++] = mk;
        } else if (device_fits(x, p, 0, cap)) {
            cand[p][n++] = 0;
        } else if (!exact) {
            if (device_fits(x, p, full, cap)) cand[p][n++] = full;
            x->tally->inexact = 1;
        } else {
            unsigned char *ok = calloc(nmask, 1);
            if (!ok) { st = MP_ERR_NOMEM; goto out; }
            for (unsigned mk = 1; mk < nmask && !x->tally->out_of_budget; mk++) ok[mk] = device_fits(x, p, mk, cap);
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
        if (x->tally->out_of_budget) {  /* out of time: this leaf is cut */
            if (x->node_lb < x->tally->cut_lb) x->tally->cut_lb = x->node_lb;
            goto out;
        }
        if (n == 0) goto out;
        combos *= n;
        if (combos > MAX_COMBOS) { combos = MAX_COMBOS; x->tally->inexact = 1; }
    }
    for (int p = 0; p < K; p++) idx[p] = 0;
    long c = 0;
    for (; c < combos && !x->tally->out_of_budget; c++) {
        for (int p = 0; p < K; p++)
            for (int s = p, i = 0; s < x->c.S; s += K, i++) mp_split_set_rc(x, s, rc_bit(cand[p][idx[p]], i));
        if ((st = mp_split_try_leaf(x)) != MP_OK) goto out;
        for (int p = 0; p < K; p++) {  /* odometer */
            if (++idx[p] < ncand[p]) break;
            idx[p] = 0;
        }
    }
    if (c < combos && x->node_lb < x->tally->cut_lb) x->tally->cut_lb = x->node_lb;  /* combos cut */
out:
    for (int p = 0; p < K; p++) free(cand[p]);
    return st;
}
