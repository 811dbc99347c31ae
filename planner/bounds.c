/* bounds.c — configuration lower bounds for the planner's search (bounds.h).
 * defines: mp_bound_data_init, mp_bound_data_set_b, mp_bound_data_free, mp_bound_quick,
 *          mp_bound_split, mp_bound_waterfill, mp_search_config_bound
 *
 * Notation as in planner/search.c: F_s, B_s (B_s includes the recompute R_s),
 * act_s, grad_s, A_s = sum_{t<s} (F_t + act_t), U_s = sum_{t<s} (B_t + grad_t),
 * C = sum_s (F_s + B_s + act_s + grad_s). With P(l) = f1 PF(l) + PB(l) the
 * profile work of layers < l (f1 = 2 when recompute is forced on, else 1),
 * smax the fastest device and lambda a lower bound on any one transfer
 * (its link's latency plus b * (least out bytes) / bandwidth):
 *
 * quick:  C >= W/smax + 2(S-1) lambda, T >= C, and T >= m W / (sum of speeds)
 *   (every position's busy time m sum(F+B) is at most T). For interleaved,
 *   W includes the recompute that memory forces: just before position p's
 *   first backward it holds K forwarded micro-batches of each chunk c < v-1
 *   and one of chunk v-1 (the warm-up covers forwards 0..(v-1)K), so
 *   sum_p mem_p >= sf * params + b (K sigma(prefix) + sigma(suffix)) over
 *   non-recomputed layers, where the suffix (chunks v-1) starts at a layer
 *   j >= (v-1)K. Recomputing a layer of stash sigma_l costs fwd_l >= rho
 *   sigma_l; the least cost over layer sets and j is at j = (v-1)K (it is
 *   non-decreasing in j) and is rho (min(D, K sp)/K + max(0, D - K sp)) with
 *   D = K sp + ss - X, X = (sum mem - sf params) / b, sp/ss the prefix/
 *   suffix stash. sum_p mem_p < sf * params rules out every schedule.
 *
 * split (gpipe/1f1b; stage s on device s): for a split into K stages every
 * stage s = [lo, hi] satisfies, with Fw, Bw its times (Bw with the recompute
 * forced when it does not fit without, always when recompute is on),
 *   c1 = P(lo)/smax + 2 s lambda + m (Fw + Bw)                <= A_s + m(F_s+B_s) + U_s <= T
 *   c2 = P(lo)/smax + Fw + Bw + (P(L) - P(hi+1))/smax + 2(S-1) lambda + Y_s <= C + Y_s <= T
 *   with Y_s = (m-1)(Fw+Bw) (gpipe), max((m-1)Bw + r Fw, (m-1)Fw + r Bw) (1f1b,
 *   r = max(0, m-1-min(K-s-1, m))), and (m-1) lambda for s < K-1,
 * and fits its device (peak without recompute, or with it using the least
 * in-bytes any stage > 0 can have: input bytes for stage 0). Each constraint
 * is non-decreasing in hi and non-increasing in lo: moving a layer from the
 * stage into the prefix adds its work / smax to P(lo)/smax and removes at
 * least its work / speed_s >= work / smax from the stage terms (m >= 1); the
 * peaks are prefix sums; forced recompute switches on only as hi grows or lo
 * falls. Relax to splits with possibly empty stages: then the greedy that
 * gives each stage the most layers it can take reaches at least as far as
 * any feasible split after every stage (exchange argument: starting no
 * later, the same end is allowed), so "the greedy covers all layers" decides
 * the relaxation exactly, and the least such T (bisection) is a lower bound. */
#include "bounds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* See bounds.h. */
mp_status mp_bound_data_init(mp_bound_data *d, const mp_profile *prof, const mp_cluster *cl,
                             int mode, double state_factor)
{
    memset(d, 0, sizeof *d);
    int L = prof->num_layers;
    d->prof = prof;
    d->cl = cl;
    d->L = L;
    d->mode = mode;
    d->sf = state_factor;
    d->b = -1;
    double **arrs[] = { &d->PP, &d->PS, &d->PF, &d->PB };
    for (size_t i = 0; i < 4; i++) {
        *arrs[i] = calloc((size_t)L + 1, sizeof(double));
        if (!*arrs[i]) {
            mp_bound_data_free(d);
            return MP_ERR_NOMEM;
        }
    }
    d->min_out = HUGE_VAL;
    for (int l = 0; l < L; l++) {
        d->PP[l + 1] = d->PP[l] + prof->layers[l].param_bytes;
        d->PS[l + 1] = d->PS[l] + prof->layers[l].stash_bytes_per_sample;
        if (l < L - 1 && prof->layers[l].out_bytes_per_sample < d->min_out)
            d->min_out = prof->layers[l].out_bytes_per_sample;
    }
    return MP_OK;
}

/* See bounds.h. */
void mp_bound_data_set_b(mp_bound_data *d, int b)
{
    if (d->b == b) return;
    d->b = b;
    d->rho = HUGE_VAL;
    for (int l = 0; l < d->L; l++) {
        const mp_layer_cost *c = &d->prof->layers[l];
        double f = mp_time_eval(&c->fwd, b);
        d->PF[l + 1] = d->PF[l] + f;
        d->PB[l + 1] = d->PB[l] + mp_time_eval(&c->bwd, b);
        if (c->stash_bytes_per_sample > 0 && f / c->stash_bytes_per_sample < d->rho)
            d->rho = f / c->stash_bytes_per_sample;
    }
}

/* See bounds.h. */
void mp_bound_data_free(mp_bound_data *d)
{
    free(d->PP); free(d->PS); free(d->PF); free(d->PB);
    d->PP = d->PS = d->PF = d->PB = NULL;
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

/* See bounds.h. */
double mp_bound_quick(mp_bound_data *d, int K, int b, int kind, int v, int m)
{
    mp_bound_data_set_b(d, b);
    int L = d->L, S = kind == MP_SCHED_INTERLEAVED ? K * v : K;
    double f1 = d->mode == MP_RC_ON ? 2 : 1;
    double W = f1 * d->PF[L] + d->PB[L], smax = 0, ssum = 0, mem = 0;
    for (int p = 0; p < K; p++) {
        double sp = d->cl->devices[p].speed;
        if (sp > smax) smax = sp;
        ssum += sp;
        mem += d->cl->devices[p].memory_bytes;
    }
    double X = mem - d->sf * d->PP[L];
    if (X < 0) return HUGE_VAL;  /* the parameter state alone does not fit */
    if (kind == MP_SCHED_INTERLEAVED && d->mode != MP_RC_ON) {
        X /= b;
        int j0 = (v - 1) * K;
        double sp = d->PS[j0], ss = d->PS[L] - d->PS[j0], D = K * sp + ss - X;
        if (D > 0) {
            if (d->mode == MP_RC_OFF) return HUGE_VAL;
            double g = (D < K * sp ? D : K * sp) / K + (D > K * sp ? D - K * sp : 0);
            if (!isinf(d->rho)) W += d->rho * g;
        }
    }
    double lam = min_transfer(d, K, b, kind == MP_SCHED_INTERLEAVED);
    double C = W / smax + 2.0 * (S - 1) * lam, busy = m * W / ssum;
    return C > busy ? C : busy;
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
    int m = x->m, K = x->K, L = d->L, mode = d->mode;
    int infl = x->kind == MP_SCHED_1F1B && K - s < m ? K - s : m;
    double b = x->b, dP = d->PP[hi + 1] - d->PP[lo], dS = d->PS[hi + 1] - d->PS[lo];
    double in = s == 0 ? d->prof->input_bytes_per_sample : d->min_out;
    double p0 = d->sf * dP + (double)infl * b * dS, p1 = d->sf * dP + (double)infl * b * in + b * dS;
    int fit0 = mode != MP_RC_ON && p0 <= dev->memory_bytes;
    int fit1 = mode != MP_RC_OFF && p1 <= dev->memory_bytes;
    if (!fit0 && !fit1) return 0;
    if (T == HUGE_VAL) return 1;
    int forced = mode == MP_RC_ON || !fit0;
    double sp = dev->speed, dF = d->PF[hi + 1] - d->PF[lo], dB = d->PB[hi + 1] - d->PB[lo];
    double Fw = dF / sp, Bw = (dB + forced * dF) / sp;
    double pre = (x->f1 * d->PF[lo] + d->PB[lo]) / x->smax;
    double suf = (x->f1 * (d->PF[L] - d->PF[hi + 1]) + d->PB[L] - d->PB[hi + 1]) / x->smax;
    double c1 = pre + 2.0 * s * x->lam + m * (Fw + Bw);
    if (c1 > T) return 0;
    double C = pre + Fw + Bw + suf + 2.0 * (K - 1) * x->lam, y;
    if (x->kind == MP_SCHED_GPIPE) {
        y = (m - 1) * (Fw + Bw);
    } else {
        int w = K - s - 1 < m ? K - s - 1 : m, r = m - 1 - w > 0 ? m - 1 - w : 0;
        double t1 = (m - 1) * Bw + r * Fw, t2 = (m - 1) * Fw + r * Bw;
        y = t1 > t2 ? t1 : t2;
    }
    if (s < K - 1 && (m - 1) * x->lam > y) y = (m - 1) * x->lam;
    return C + y <= T;
}

/* 1 when the greedy (each stage as many layers as it can take) covers all layers. */
static int greedy_covers(const split_ctx *x, double T)
{
    int L = x->d->L, lo = 0;
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
        for (int i = 0; i < 200 && !greedy_covers(&x, hi); i++) lo = hi, hi *= 2;
    }
    for (int it = 0; it < 60 && hi - lo > 1e-6 * hi; it++) {
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
    *lb = mp_bound_split(&d, K, b, kind, m, q, HUGE_VAL);
    mp_bound_data_free(&d);
    return MP_OK;
}
