/* bounds.c — configuration lower bounds for the planner's search (bounds.h).
 * defines: mp_bound_data_init, mp_bound_data_set_b, mp_bound_data_free, mp_bound_quick, mp_bound_allreduce,
 *          mp_bound_split, mp_bound_waterfill, mp_search_config_bound
 *
 * Notation as in planner/split.c: F_s, B_s (B_s includes the recompute R_s),
 * act_s, grad_s, A_s = sum_{t<s} (F_t + act_t), U_s = sum_{t<s} (B_t + grad_t),
 * C = sum_s (F_s + B_s + act_s + grad_s). With P(l) = f1 PF(l) + PB(l) the
 * profile work of layers < l (f1 = 2 when recompute is forced on, else 1),
 * smax the fastest device and lambda a lower bound on any one transfer
 * (its link's latency plus b * (least out bytes) / bandwidth):
 *
 * quick:  C >= W/smax + 2(S-1) lambda, T >= C (1f1b: T >= ceil(m/K) C, stage
 *   0's round trips, mp_bound_round_trips), and T >= m W / (sum of speeds)
 *   (every position's busy time m sum(F+B) is at most T), with the fill and
 *   drain A_p + U_p of every position added (see mp_bound_quick). For interleaved,
 *   W includes the recompute that memory forces: just before position p's
 *   first backward it holds n_pc forwarded micro-batches of its chunk c
 *   (the op lists' counts, mp_schedule_interleaved_ahead: K of each chunk
 *   for m > K, fewer of chunk v-1 on the last positions, and K of every
 *   chunk, all m v forwards, for m = K). A layer before j0 = (v-1)K is in a
 *   stage of a chunk < v-1 (stage t holds layers >= t), so it counts at
 *   least a = min over p and c < v-1 of n_pc, any layer at least s = min
 *   over all n_pc, and sum_p mem_p >= sf * params + b (a sigma(prefix) +
 *   s sigma(suffix)) over the layers not recomputed, the prefix the layers
 *   before j0. Recomputing a layer of stash sigma_l costs fwd_l >= rho
 *   sigma_l and removes at most a sigma_l (prefix) or s sigma_l; so with
 *   D = a sp + s ss - X, X = (sum mem - sf params) / b, sp/ss the prefix/
 *   suffix stash, the recompute is >= rho (min(D, a sp)/a + max(0, D -
 *   a sp)/s). sum_p mem_p < sf * params rules out every schedule.
 *   Sharper, the same relaxation solved exactly (knapsack_rc): the least
 *   recompute time that removes D is at least the fractional knapsack's
 *   over the layers (value a sigma_l before j0, s sigma_l after, cost
 *   fwd_l), taken by increasing cost / value; it is >= the rho bound
 *   (every cost / value is >= rho / weight).
 *
 * interleaved bubble: on position p (stages p + dK, chunk d) the path that
 * takes micro-batch 0 forward to stage p+cK (A_{p+cK}), then runs p's ops
 * from F(p+cK, 0) to the last B of stage p+c'K (all of p's ops but the K c
 * forwards of chunks < c before it and the K c' backwards of chunks < c'
 * after it: the op lists put chunk d's K micro-batches of a group together,
 * forwards by increasing, backwards by decreasing chunk), then backward to
 * stage 0 (U_{p+c'K}), bounds T. Averaged over all (p, c, c') every stage
 * of position q gets weight m/K + (K-1-q)/(Kv) on its F and B; adding the
 * paths A_q + busy_q + U_q with weights q/(Kvm) (weight m on q's stages)
 * and normalising, every stage gets at least
 * g = (m/K + (K-1)/(Kv)) / (1 + (K-1)/(2vm)), so T >= g W / smax + the
 * transfers the averaged heads and tails cross (a (Kv-1) lambda, a the
 * normalisation): half the bubble (K-1)/(vm) of the closed form.
 *
 * split (gpipe/1f1b; stage s on device s): for a split into K stages every
 * stage s = [lo, hi] satisfies, with Fw, Bw its times (Bw with the recompute
 * forced when it does not fit without, always when recompute is on),
 *   c1 = P(lo)/smax + 2 s lambda + m (Fw + Bw)                <= A_s + m(F_s+B_s) + U_s <= T
 *   c2 = P(lo)/smax + Fw + Bw + (P(L) - P(hi+1))/smax + 2(S-1) lambda + Y_s <= C + Y_s <= T
 *   with Y_s = (m-1)(Fw+Bw) (gpipe), max((m-1)Bw + r Fw, (m-1)Fw + r Bw) (1f1b,
 *   r = max(0, m-1-min(K-s-1, m))), and (m-1) lambda for s < K-1,
 *   c3 = P(lo)/smax + 2 s lambda + n (Fw + Bw + (P(L) - P(hi+1))/smax + 2(K-1-s) lambda)
 *                                                <= A_s + U_s + n R_s <= T
 *   (1f1b, n = ceil(m/(K-s)) round trips R_s from stage s: mp_bound_round_trips),
 * and fits its device (peak without recompute, or with it using the least
 * in-bytes any stage > 0 can have: input bytes for stage 0). Each constraint
 * is non-decreasing in hi and non-increasing in lo: moving a layer from the
 * stage into the prefix adds its work / smax to P(lo)/smax and removes at
 * least its work / speed_s >= work / smax from the stage terms (m, n >= 1;
 * in c3 moving one from the suffix into the stage adds n (w/speed_s - w/smax)); the
 * peaks are prefix sums; forced recompute switches on only as hi grows or lo
 * falls. Relax to splits with possibly empty stages: then the greedy that
 * gives each stage the most layers it can take reaches at least as far as
 * any feasible split after every stage (exchange argument: starting no
 * later, the same end is allowed), so "the greedy covers all layers" decides
 * the relaxation exactly, and the least such T (bisection) is a lower bound. */
#include "bounds.h"

#include "allreduce.h"
#include "clock.h"
#include "schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* See bounds.h. */
mp_status mp_bound_data_init(mp_bound_data *d, const mp_profile *prof, const mp_cluster *cl,
                             int mode, double state_factor)
{
    memset(d, 0, sizeof *d);
    if (mp_prefix_init(&d->ps, prof) != MP_OK) return MP_ERR_NOMEM;
    d->cl = cl;
    d->mode = mode;
    d->sf = state_factor;
    d->min_out = HUGE_VAL;
    d->deadline = HUGE_VAL;
    d->order = malloc((size_t)(prof->num_layers + 1) * sizeof *d->order);
    d->fwd = malloc((size_t)(prof->num_layers + 1) * sizeof *d->fwd);
    if (!d->order || !d->fwd) {
        mp_bound_data_free(d);
        return MP_ERR_NOMEM;
    }
    for (int l = 0; l < prof->num_layers - 1; l++)
        if (prof->layers[l].out_bytes_per_sample < d->min_out) d->min_out = prof->layers[l].out_bytes_per_sample;
    for (int l = 0; l < prof->num_layers; l++) d->n_param += prof->layers[l].param_bytes > 0;
    return MP_OK;
}

static const mp_bound_data *sort_d;  /* qsort's context (the search is single-threaded per bound data) */

static int cmp_ratio(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    const mp_layer_cost *L = sort_d->ps.prof->layers;
    double x = sort_d->fwd[i] * L[j].stash_bytes_per_sample, y = sort_d->fwd[j] * L[i].stash_bytes_per_sample;
    return x < y ? -1 : x > y ? 1 : i - j;
}

/* See bounds.h. */
void mp_bound_data_set_b(mp_bound_data *d, int b)
{
    if (d->ps.b == b) return;
    mp_prefix_set_b(&d->ps, b);
    d->rho = HUGE_VAL;
    d->n_order = 0;
    for (int l = 0; l < d->ps.L; l++) {
        const mp_layer_cost *c = &d->ps.prof->layers[l];
        double f = mp_time_eval(&c->fwd, b);
        d->fwd[l] = f;
        if (c->stash_bytes_per_sample > 0) d->order[d->n_order++] = l;
        if (c->stash_bytes_per_sample > 0 && f / c->stash_bytes_per_sample < d->rho)
            d->rho = f / c->stash_bytes_per_sample;
    }
    sort_d = d;
    qsort(d->order, (size_t)d->n_order, sizeof *d->order, cmp_ratio);
}

/* The least forward time (profile ms at d's b) whose recompute removes D
 * stash bytes per sample, layers before j0 counting a times, the others s
 * times (a >= s): the fractional knapsack by increasing fwd / value (see
 * the top). */
static double knapsack_rc(const mp_bound_data *d, int j0, double a, double s, double D)
{
    const mp_layer_cost *Ly = d->ps.prof->layers;
    int n = d->n_order, i = 0, k = 0;
    double cost = 0;
    while (D > 0) {
        while (i < n && d->order[i] >= j0) i++;   /* next prefix layer */
        while (k < n && d->order[k] < j0) k++;    /* next suffix layer */
        if (i >= n && k >= n) break;
        int l, pre;
        if (k >= n) pre = 1;
        else if (i >= n) pre = 0;
        else {
            int x = d->order[i], c = d->order[k];
            pre = s * d->fwd[x] * Ly[c].stash_bytes_per_sample <= a * d->fwd[c] * Ly[x].stash_bytes_per_sample;
        }
        l = pre ? d->order[i++] : d->order[k++];
        double val = (pre ? a : s) * Ly[l].stash_bytes_per_sample;
        if (val >= D) {
            cost += d->fwd[l] * D / val;
            D = 0;
        } else {
            cost += d->fwd[l];
            D -= val;
        }
    }
    return cost;
}

/* See bounds.h. */
void mp_bound_data_free(mp_bound_data *d)
{
    mp_prefix_free(&d->ps);
    free(d->order);
    free(d->fwd);
    mp_bound_table_free(&d->table);
    d->order = NULL;
    d->fwd = NULL;
}

/* Least time of one transfer on the links a configuration uses. */
static double min_transfer(const mp_bound_data *d, int K, int b, int ring)
{
    double lat = HUGE_VAL, bytes = isinf(d->min_out) ? 0 : (double)b * d->min_out;
    for (int p = 0; p < K; p++) {
        int q = (p + 1) % K;
        if (K < 2 || (p + 1 == K && !ring)) continue;
        double a = mp_cluster_transfer_ms(d->cl, p, q, bytes), g = mp_cluster_transfer_ms(d->cl, q, p, bytes);
        if (a < lat) lat = a;
        if (g < lat) lat = g;
    }
    return lat == HUGE_VAL ? 0 : lat;
}

/* The most stash (bytes per sample) the positions can hold without
 * recompute (see the top): position q holds its stash at n_q, the least
 * count of its chunks, and its parameters, so its stash is <= (M_q -
 * sf P_q) / (b n_q) (n[q] >= 1); the parameters go first to the
 * positions of most count, which maximises the sum over any split of them. */
static double stash_room(const mp_bound_data *d, int K, int b, const int *n)
{
    int ord[K];
    for (int q = 0; q < K; q++) {   /* insertion: ord by decreasing count */
        int i = q;
        while (i > 0 && n[ord[i - 1]] < n[q]) ord[i] = ord[i - 1], i--;
        ord[i] = q;
    }
    double left = d->sf * d->ps.PP[d->ps.L], room = 0;
    for (int i = 0; i < K; i++) {
        double M = d->cl->devices[ord[i]].memory_bytes, take = left < M ? left : M;
        left -= take;
        room += (M - take) / ((double)b * n[ord[i]]);
    }
    return room;
}

/* See bounds.h. */
double mp_bound_forced_rc(mp_bound_data *d, int K, int b, int v, int m)
{
    mp_bound_data_set_b(d, b);
    int L = d->ps.L;
    double mem = 0;
    for (int p = 0; p < K; p++) mem += d->cl->devices[p].memory_bytes;
    double X = mem - d->sf * d->ps.PP[L];
    if (X < 0) return HUGE_VAL;
    if (d->mode == MP_RC_ON) return 0;
    X /= b;
    /* a: the least micro-batches of a chunk < v-1 forwarded before their
     * position's first backward, s: of any chunk (sim/schedule.h) */
    int a = m, s = m, j0 = (v - 1) * K, nq[K];   /* nq: each position's least count */
    for (int p = 0; p < K; p++) {   /* the counts fall with the chunk: least at v-1, and at v-2 below it */
        int n = v >= 2 ? mp_schedule_interleaved_ahead(p, v - 2, K, v, m) : m;
        if (n < a) a = n;
        nq[p] = mp_schedule_interleaved_ahead(p, v - 1, K, v, m);
        if (nq[p] < 1) nq[p] = 1;
        if (nq[p] < s) s = nq[p];
    }
    double sp = d->ps.PS[j0], ss = d->ps.PS[L] - d->ps.PS[j0], D = a * sp + s * ss - X;
    double need = d->ps.PS[L] - stash_room(d, K, b, nq);   /* stash no position can hold */
    if (D <= 0 && need <= 1e-9 * d->ps.PS[L]) return 0;
    if (d->mode == MP_RC_OFF) return HUGE_VAL;
    double rc = 0;
    if (D > 0) {
        double g = (D < a * sp ? D : a * sp) / a + (D > a * sp ? D - a * sp : 0) / s;
        rc = isinf(d->rho) ? 0 : d->rho * g;
        double ks = knapsack_rc(d, j0, a, s, D);
        if (ks > rc) rc = ks;
    }
    if (need > 0) {
        double kn = knapsack_rc(d, 0, 1, 1, need);
        if (kn > rc) rc = kn;
    }
    return rc;
}

/* See bounds.h. */
double mp_bound_quick(mp_bound_data *d, int K, int b, int kind, int v, int m)
{
    mp_bound_data_set_b(d, b);
    int L = d->ps.L, S = kind == MP_SCHED_INTERLEAVED ? K * v : K;
    double f1 = d->mode == MP_RC_ON ? 2 : 1;
    double W = f1 * d->ps.PF[L] + d->ps.PB[L], smax = 0, ssum = 0, mem = 0;
    for (int p = 0; p < K; p++) {
        double sp = d->cl->devices[p].speed;
        if (sp > smax) smax = sp;
        ssum += sp;
        mem += d->cl->devices[p].memory_bytes;
    }
    if (mem - d->sf * d->ps.PP[L] < 0) return HUGE_VAL;  /* the parameter state alone does not fit */
    if (kind == MP_SCHED_INTERLEAVED) {
        double rc = mp_bound_forced_rc(d, K, b, v, m);
        if (rc == HUGE_VAL) return HUGE_VAL;
        W += rc;
    }
    double lam = min_transfer(d, K, b, kind == MP_SCHED_INTERLEAVED);
    double C = W / smax + 2.0 * (S - 1) * lam, busy = m * W / ssum;
    C *= mp_bound_round_trips(kind, K, 0, m);   /* 1f1b: stage 0's ceil(m/K) round trips, A_0 = U_0 = 0 */
    /* the fill and drain: T >= A_p + busy_p + U_p on every position p, so
     * T sum(speed) >= m W + sum_p speed_p (A_p + U_p) and sum_p (A_p + U_p)
     * >= sum_{t<K-1} (K-1-t) (work of stage t / smax + 2 lambda); the layers
     * of stages 0..K-2 form a prefix, layer l in stage t <= l, so the work
     * part is >= sum_{l<K-1} (K-1-l) w_l. */
    double smin = HUGE_VAL, fill = 0;
    for (int p = 0; p < K; p++)
        if (d->cl->devices[p].speed < smin) smin = d->cl->devices[p].speed;
    for (int l = 0; l + 1 < K; l++)
        fill += (K - 1 - l) * (f1 * (d->ps.PF[l + 1] - d->ps.PF[l]) + d->ps.PB[l + 1] - d->ps.PB[l]);
    double drain = (m * W + smin * (fill / smax + (double)K * (K - 1) * lam)) / ssum;
    if (drain > busy) busy = drain;
    if (kind == MP_SCHED_INTERLEAVED) {  /* the bubble: a mixture of paths (see the top) */
        double a = 1 / (1 + (K - 1) / (2.0 * v * m)), g = a * ((double)m / K + (K - 1) / ((double)K * v));
        double t = g * W / smax + a * (K * v - 1.0) * lam;
        if (t > busy) busy = t;
    }
    return C > busy ? C : busy;
}

/* See bounds.h. Why: position p's op list ends no sooner than its busy
 * time m sum_{s on p} (F_s + B_s) >= m W_p / speed_p (W_p: the profile
 * work of its layers, f1 as above; recompute only adds), and then it
 * all-reduces its stages one after the other (docs/cost-model.md 8a), so
 * T >= m W_p / speed_p + AR_p. With measured points AR_s is the sum of its
 * layers' rings and with a measured fit linear in its bytes and vectors:
 * a_l is layer l's term; on rings AR_s = 2(D-1) max_r 1000 (n_s lat_r +
 * P_s / (D bw_r)) is at least that of p's first ring link (device p to
 * p + K), so at least the sum over its layers of
 * a_l = 2000 (D-1) ([P_l > 0] lat* + P_l / (D bw*)) with lat*, bw* the least
 * latency and most bandwidth of the positions' first ring links. Summing
 * speed_p times p's inequality over the positions:
 * T sum(speed) >= m W + sum_p speed_p AR_p >= m W + smin sum_l a_l.
 * The list starts no sooner than A_p too (micro-batch 0's forward up to
 * p), and sum_p A_p >= sum_{l<K-1} (K-1-l) fwd_l / smax + K(K-1)/2
 * lambda (mp_bound_quick's fill, forwards only: A holds no recompute). */
double mp_bound_allreduce(mp_bound_data *d, int K, int b, int m, int D)
{
    if (D <= 1) return 0;
    mp_bound_data_set_b(d, b);
    const mp_cluster *cl = d->cl;
    const mp_profile *prof = d->ps.prof;
    int L = d->ps.L;
    double f1 = d->mode == MP_RC_ON ? 2 : 1, W = f1 * d->ps.PF[L] + d->ps.PB[L], ssum = 0, smin = HUGE_VAL;
    double lat = HUGE_VAL, bw = 0, ar = 0;   /* ar: the fill, then the all-reduces */
    for (int p = 0; p < K; p++) {
        double sp = cl->devices[p].speed;
        ssum += sp;
        if (sp < smin) smin = sp;
        mp_link l = mp_cluster_link(cl, p, p + K);
        if (l.latency_s < lat) lat = l.latency_s;
        if (l.bandwidth > bw) bw = l.bandwidth;
    }
    double smax = 0, fill = 0, lam = min_transfer(d, K, b, 1);
    for (int p = 0; p < K; p++)
        if (cl->devices[p].speed > smax) smax = cl->devices[p].speed;
    for (int l = 0; l + 1 < K && l < L; l++) fill += (K - 1 - l) * (d->ps.PF[l + 1] - d->ps.PF[l]);
    ar += fill / smax + K * (K - 1) / 2.0 * lam;
    if (cl->allreduce_points > 0 || cl->allreduce_bandwidth > 0) {
        for (int l = 0; l < L; l++)
            if (prof->layers[l].param_bytes > 0) ar += mp_allreduce_stage_ms(cl, prof, l, l, 0, K, D);
    } else {   /* the ring's sum over the layers with parameters, l by l: 2000 (D-1) (lat + P_l / (D bw)) */
        ar += 2000.0 * (D - 1) * (d->n_param * lat + d->ps.PP[L] / (D * bw));
    }
    return (m * W + smin * ar) / ssum;
}

/* ---------------------------------------------------------------- split bound */

typedef struct {
    const mp_bound_data *d;
    int K, b, kind, m;
    double smax, lam, f1;
} split_ctx;

/* Stage s = [lo, hi] meets memory and (T finite) the per-stage bounds <= T. */
static int stage_ok(const split_ctx *x, int s, int lo, int hi, double T)
{
    const mp_bound_data *d = x->d;
    const mp_device *dev = &d->cl->devices[s];
    int m = x->m, K = x->K, L = d->ps.L, mode = d->mode, infl = mp_memory_inflight(x->kind, s, K, m);
    mp_stage_bytes sb = mp_prefix_bytes(&d->ps, lo, hi);
    sb.in_bytes = s == 0 ? d->ps.prof->input_bytes_per_sample : d->min_out;  /* the least it can have */
    double p0 = mp_memory_peak_closed(&sb, infl, x->b, 0, d->sf), p1 = mp_memory_peak_closed(&sb, infl, x->b, 1, d->sf);
    int fit0 = mode != MP_RC_ON && p0 <= dev->memory_bytes;
    int fit1 = mode != MP_RC_OFF && p1 <= dev->memory_bytes;
    if (!fit0 && !fit1) return 0;
    if (T == HUGE_VAL) return 1;
    int forced = mode == MP_RC_ON || !fit0;
    double sp = dev->speed, dF = d->ps.PF[hi + 1] - d->ps.PF[lo], dB = d->ps.PB[hi + 1] - d->ps.PB[lo];
    double Fw = dF / sp, Bw = (dB + forced * dF) / sp;
    double pre = (x->f1 * d->ps.PF[lo] + d->ps.PB[lo]) / x->smax;
    double suf = (x->f1 * (d->ps.PF[L] - d->ps.PF[hi + 1]) + d->ps.PB[L] - d->ps.PB[hi + 1]) / x->smax;
    double c1 = pre + 2.0 * s * x->lam + m * (Fw + Bw);
    if (c1 > T) return 0;
    int n = mp_bound_round_trips(x->kind, K, s, m);   /* 1f1b: n round trips from stage s */
    if (n > 1 && pre + 2.0 * s * x->lam + n * (Fw + Bw + suf + 2.0 * (K - 1 - s) * x->lam) > T) return 0;
    double C = pre + Fw + Bw + suf + 2.0 * (K - 1) * x->lam, y = mp_bound_stage_tail(x->kind, K, s, m, Fw, Bw);
    if (s < K - 1 && (m - 1) * x->lam > y) y = (m - 1) * x->lam;
    return C + y <= T;
}

/* 1 when the greedy (each stage as many layers as it can take) covers all layers. */
static int greedy_covers(const split_ctx *x, double T)
{
    int L = x->d->ps.L, lo = 0;
    for (int s = 0; s < x->K && lo < L; s++) {
        int a = lo - 1, bb = L - 1;
        while (a < bb) {
            int mid = (a + bb + 1) / 2;
            if (stage_ok(x, s, lo, mid, T)) a = mid; else bb = mid - 1;
        }
        lo = a + 1;
    }
    return lo >= L;
}

/* See bounds.h. */
double mp_bound_split(mp_bound_data *d, int K, int b, int kind, int m, double quick, double stop)
{
    if (kind == MP_SCHED_INTERLEAVED || quick == HUGE_VAL || quick >= stop) return quick;
    int timed = d->deadline < HUGE_VAL;
    if (timed && mp_now_s() >= d->deadline) return quick;
    mp_bound_data_set_b(d, b);
    split_ctx x = { d, K, b, kind, m, 0, min_transfer(d, K, b, 0), d->mode == MP_RC_ON ? 2 : 1 };
    for (int p = 0; p < K; p++)
        if (d->cl->devices[p].speed > x.smax) x.smax = d->cl->devices[p].speed;
    if (!greedy_covers(&x, HUGE_VAL)) return HUGE_VAL;   /* memory alone rules it out */
    if (stop < HUGE_VAL && !greedy_covers(&x, stop)) return stop;
    if (greedy_covers(&x, quick)) return quick;
    double lo = quick, hi = stop;
    if (hi == HUGE_VAL) {
        hi = quick > 0 ? 2 * quick : 1;
        for (int i = 0; i < 200 && !greedy_covers(&x, hi); i++) {
            lo = hi, hi *= 2;
            if (timed && mp_now_s() >= d->deadline) return lo;
        }
    }
    for (int it = 0; it < 60 && hi - lo > 1e-6 * hi; it++) {
        if (timed && mp_now_s() >= d->deadline) return lo;
        double mid = 0.5 * (lo + hi);
        if (greedy_covers(&x, mid)) hi = mid; else lo = mid;
    }
    return lo;
}

/* See bounds.h. */
double mp_bound_waterfill(const double *base, const double *speed, int n, double work, double m,
                          double *scratch)
{
    double *bs = scratch, *sp = scratch + n;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!(speed[i] > 0)) continue;
        int j = k++;
        while (j > 0 && bs[j - 1] > base[i]) { bs[j] = bs[j - 1]; sp[j] = sp[j - 1]; j--; }
        bs[j] = base[i];
        sp[j] = speed[i];
    }
    if (k == 0) return work > 0 ? HUGE_VAL : -HUGE_VAL;
    double num = m * work, den = 0, T = bs[0];
    for (int i = 0; i < k; i++) {
        num += bs[i] * sp[i];
        den += sp[i];
        T = num / den;
        if (i + 1 == k || T <= bs[i + 1]) break;
    }
    return T;
}

/* See bounds.h. */
mp_status mp_search_config_bound(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                                 int K, int b, int kind, int v, double *lb, mp_error *err)
{
    mp_bound_data d;
    if (K < 1 || K > cl->num_devices || b < 1 || o->global_batch % b)
        return mp_error_set(err, MP_ERR_USAGE, "bounds: configuration K=%d b=%d not possible", K, b);
    if (mp_bound_data_init(&d, prof, cl, o->recompute, o->state_factor) != MP_OK)
        return mp_error_set(err, MP_ERR_NOMEM, "bounds: out of memory");
    int m = o->global_batch / b;
    double q = mp_bound_quick(&d, K, b, kind, kind == MP_SCHED_INTERLEAVED ? v : 1, m);
    *lb = kind == MP_SCHED_INTERLEAVED ? mp_bound_positions(&d, K, b, v, m, q, HUGE_VAL)
                                       : mp_bound_split(&d, K, b, kind, m, q, HUGE_VAL);
    if (kind == MP_SCHED_INTERLEAVED) *lb = mp_bound_paths(&d, K, b, v, m, *lb, HUGE_VAL);
    mp_bound_data_free(&d);
    return MP_OK;
}
