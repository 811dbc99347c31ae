/* bounds_positions.c — the interleaved configuration bound over splits by
 * Lagrangian weights on the positions' time and memory (bounds.h:
 * mp_bound_positions).
 * defines: mp_bound_positions
 *
 * Every position p of a plan bounds its time: T >= V_p = A_p + busy_p + U_p
 * (planner/split.c), and a plan that fits has mem_p <= M_p for
 * mem_p = sf params_p + sum_c n_pc held_c, the bytes p holds just before
 * its first backward (n_pc: micro-batches of its chunk c forwarded by then,
 * from the op lists; held_c per micro-batch as sim/memory.h has it, with or
 * without recompute). So for weights lambda_p >= 0 summing to 1 and
 * mu_p >= 0, every fitting plan has
 *   T >= sum_p lambda_p V_p + sum_p mu_p (mem_p - M_p).
 * The right side is a sum over stages t (position q = t mod K) of
 * coef_t (time of t, with its recompute) + mu_q (its memory term) plus
 * constants: stage t is in busy_q m times and, for t < K, in A_p and U_p of
 * every p > t once. Its least value over all splits (contiguous, non-empty
 * stages) and recompute choices is a shortest path over (stage, first
 * layer), exact; every (lambda, mu) gives a lower bound. Multiplicative
 * updates move lambda to the positions the best split overloads, projected
 * subgradient steps raise mu where it overfills memory. One more weight
 * goes to the bubble paths of planner/bounds.c (every (p, c, c') averaged:
 * stage t on position q weighs m/K + (K-1-q)/(Kv)); the weights start at
 * that file's mixture (bubble paths a, position q a q/(Kvm)), so that the
 * bubble and the positions' balance and memory are bounded together. Transfers count
 * their least time per link crossed. With mu = 0 the recompute that memory
 * forces overall (mp_bound_forced_rc, R profile ms) adds at least R / smax
 * times the least coefficient. With the time left out (memory_infeasible),
 * multipliers that make the least value positive prove that no plan fits. */
#include "bounds.h"

#include <math.h>
#include <stdlib.h>

#include "clock.h"
#include "memory.h"
#include "schedule.h"

#define ITERS 80
#define MAX_WORK 2e7          /* S * L above this: not computed */

/* Least transfer of one micro-batch on the ring's links. */
static double ring_lambda(const mp_bound_data *d, int K, int b)
{
    double lat = HUGE_VAL, bytes = isinf(d->min_out) ? 0 : (double)b * d->min_out;
    for (int p = 0; p < K; p++) {
        int q = (p + 1) % K;
        double a = mp_cluster_transfer_ms(d->cl, p, q, bytes), g = mp_cluster_transfer_ms(d->cl, q, p, bytes);
        if (a < lat) lat = a;
        if (g < lat) lat = g;
    }
    return lat == HUGE_VAL ? 0 : lat;
}

/* n[t]: micro-batches of stage t forwarded on its position before the
 * position's first backward. 0 on failure (n untouched). */
static int inflight(int K, int v, int m, int *n)
{
    mp_op_lists ops;
    if (mp_schedule_build(MP_SCHED_INTERLEAVED, K, v, m, &ops, NULL) != MP_OK) return 0;
    for (int t = 0; t < K * v; t++) n[t] = 0;
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops.len[p] && ops.ops[p][i].kind == MP_OP_FWD; i++) n[ops.ops[p][i].stage]++;
    mp_op_lists_free(&ops);
    return 1;
}

typedef struct {
    const mp_bound_data *d;
    int K, S, L, b, *n, *from, *rcat;
    double *dp, *coef, *mu;
} pos_ctx;

/* Stage t's term over layers [j, e) with recompute r is X(e) - Y(j) (the
 * memory model's held bytes are b stash, a prefix difference, or b times the
 * bytes into layer j): the two ends at layer index i. */
static void stage_ends(const pos_ctx *x, int t, int r, int i, double *X, double *Y)
{
    const mp_bound_data *d = x->d;
    const mp_prefix *ps = &d->ps;
    int q = t % x->K;
    double c = x->coef[t] / d->cl->devices[q].speed, mu = x->mu[q], nb = (double)x->n[t] * x->b;
    double a = c * ((1 + r) * ps->PF[i] + ps->PB[i]) + mu * d->sf * ps->PP[i];
    *X = a + (r ? 0 : mu * nb * ps->PS[i]);
    *Y = a - (r ? mu * nb * (i < ps->L ? ps->in[i] : 0) : -mu * nb * ps->PS[i]);
}

/* The shortest path: least sum of stage terms over splits and recompute
 * choices, O(S L) with running minima; from/rcat for the split. */
static double shortest(pos_ctx *x)
{
    int S = x->S, L = x->L, r0 = x->d->mode == MP_RC_ON, r1 = x->d->mode != MP_RC_OFF;
    for (int i = 0; i < (S + 1) * (L + 1); i++) x->dp[i] = HUGE_VAL;
    x->dp[0] = 0;
    for (int s = 0; s < S; s++) {
        const double *cur = x->dp + (size_t)s * (L + 1);
        double *nx = x->dp + (size_t)(s + 1) * (L + 1);
        int *fr = x->from + (size_t)(s + 1) * (L + 1), *rr = x->rcat + (size_t)(s + 1) * (L + 1);
        int jmax = L - (S - 1 - s);
        for (int r = r0; r <= r1; r++) {
            double best = HUGE_VAL, X, Y;
            int arg = -1;
            for (int e = s + 1; e <= jmax; e++) {
                int j = e - 1;  /* j joins the candidates for this e */
                if (cur[j] < HUGE_VAL) {
                    stage_ends(x, s, r, j, &X, &Y);
                    if (cur[j] - Y < best) best = cur[j] - Y, arg = j;
                }
                if (arg < 0) continue;
                stage_ends(x, s, r, e, &X, &Y);
                if (best + X < nx[e]) nx[e] = best + X, fr[e] = arg, rr[e] = r;
            }
        }
    }
    return x->dp[(size_t)S * (L + 1) + L];
}

/* mem[p] (bytes before p's first backward) of the split the last
 * shortest() chose. */
static void split_memory(const pos_ctx *x, double *mem)
{
    const mp_bound_data *d = x->d;
    int S = x->S, L = x->L;
    for (int p = 0; p < x->K; p++) mem[p] = 0;
    for (int s = S, e = L; s >= 1; s--) {
        size_t at = (size_t)s * (L + 1) + e;
        int j = x->from[at], r = x->rcat[at];
        mp_stage_bytes sb = mp_prefix_bytes(&d->ps, j, e - 1);
        double held, extra;
        mp_memory_held(&sb, x->b, r, &held, &extra);
        mem[(s - 1) % x->K] += d->sf * sb.params + x->n[s - 1] * held;
        e = j;
    }
}

/* 1 when multipliers mu >= 0 make sum_p mu_p (mem_p - M_p) > 0 for every
 * split and recompute choice (time left out): then some position
 * overfills on every plan, and none fits. Subgradient steps on mu. */
static int memory_infeasible(pos_ctx *x, double *mem, double *nu)
{
    const mp_bound_data *d = x->d;
    int K = x->K;
    for (int t = 0; t < x->S; t++) x->coef[t] = 0;
    for (int p = 0; p < K; p++) nu[p] = 1, x->mu[p] = 1 / d->cl->devices[p].memory_bytes;
    int found = 0;
    for (int it = 0; it < ITERS / 2 && !found; it++) {
        if (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline) break;
        double cons = 0, scale = 0;
        for (int p = 0; p < K; p++) {
            cons -= x->mu[p] * d->cl->devices[p].memory_bytes;
            scale += x->mu[p] * d->cl->devices[p].memory_bytes;
        }
        double val = shortest(x) + cons;
        if (val > 1e-9 * scale) found = 1;
        split_memory(x, mem);
        for (int p = 0; p < K; p++) {
            double M = d->cl->devices[p].memory_bytes;
            nu[p] += 0.5 / sqrt(it + 1.0) * (mem[p] - M) / M;
            if (nu[p] < 0) nu[p] = 0;
            x->mu[p] = nu[p] / M;
        }
    }
    for (int p = 0; p < K; p++) nu[p] = 0, x->mu[p] = 0;
    return found;
}

/* See bounds.h. */
double mp_bound_positions(mp_bound_data *d, int K, int b, int v, int m, double quick, double stop)
{
    int L = d->ps.L, S = K * v;
    if (quick == HUGE_VAL || quick >= stop || S > L || (double)S * L > MAX_WORK) return quick;
    if (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline) return quick;
    mp_bound_data_set_b(d, b);
    double lam = ring_lambda(d, K, b), best = quick, R = mp_bound_forced_rc(d, K, b, v), smax = 0;
    if (R == HUGE_VAL) return HUGE_VAL;
    for (int p = 0; p < K; p++)
        if (d->cl->devices[p].speed > smax) smax = d->cl->devices[p].speed;
    pos_ctx x = { d, K, S, L, b, NULL, NULL, NULL, NULL, NULL, NULL };
    size_t cells = (size_t)(S + 1) * (L + 1);
    x.n = malloc((size_t)S * sizeof *x.n);
    x.from = malloc(cells * sizeof *x.from);
    x.rcat = malloc(cells * sizeof *x.rcat);
    x.dp = malloc(cells * sizeof *x.dp);
    x.coef = malloc((size_t)S * sizeof *x.coef);
    x.mu = calloc((size_t)K, sizeof *x.mu);
    double *w = malloc((size_t)(K + 1) * sizeof *w), *val = malloc((size_t)(K + 1) * sizeof *val);
    double *mem = malloc((size_t)K * sizeof *mem), *nu = calloc((size_t)K, sizeof *nu);
    if (!x.n || !x.from || !x.rcat || !x.dp || !x.coef || !x.mu || !w || !val || !mem || !nu ||
        !inflight(K, v, m, x.n))
        goto out;
    if (memory_infeasible(&x, mem, nu)) {
        best = HUGE_VAL;
        goto out;
    }
    w[K] = 1 / (1 + (K - 1) / (2.0 * v * m));
    for (int p = 0; p < K; p++) w[p] = w[K] * p / ((double)K * v * m);
    for (int it = 0; it < ITERS; it++) {
        double tail = 0, cons = 0, cmin = HUGE_VAL;
        for (int p = 0; p < K; p++) {
            cons += w[p] * 2.0 * p * lam - x.mu[p] * d->cl->devices[p].memory_bytes;
        }
        cons += w[K] * (K * v - 1.0) * lam;
        for (int t = K - 1; t >= 0; t--) {
            x.coef[t] = m * w[t] + (t + 1 < K ? tail : 0);
            tail += w[t];
        }
        for (int t = K; t < S; t++) x.coef[t] = m * w[t % K];
        for (int t = 0; t < S; t++) x.coef[t] += w[K] * ((double)m / K + (K - 1.0 - t % K) / ((double)K * v));
        for (int t = 0; t < S; t++)
            if (x.coef[t] < cmin) cmin = x.coef[t];
        int mu0 = 1;
        for (int p = 0; p < K; p++) mu0 &= x.mu[p] == 0;
        if (mu0 && d->mode == MP_RC_AUTO) cons += cmin * R / smax;  /* the DP then recomputes nothing */
        double bound = shortest(&x) + cons;
        if (bound > best) best = bound;
        if (best >= stop || (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline)) break;
        /* the positions' values and memory at the best split */
        for (int p = 0; p < K; p++) val[p] = 2.0 * p * lam, mem[p] = 0;
        val[K] = (K * v - 1.0) * lam;
        for (int s = S, e = L; s >= 1; s--) {
            size_t at = (size_t)s * (L + 1) + e;
            int j = x.from[at], r = x.rcat[at], t = s - 1, q = t % K;
            double sp = d->cl->devices[q].speed;
            double tm = ((1 + r) * (d->ps.PF[e] - d->ps.PF[j]) + d->ps.PB[e] - d->ps.PB[j]) / sp;
            mp_stage_bytes sb = mp_prefix_bytes(&d->ps, j, e - 1);
            double held, extra;
            mp_memory_held(&sb, b, r, &held, &extra);
            mem[q] += d->sf * sb.params + x.n[t] * held;
            val[q] += m * tm;
            val[K] += ((double)m / K + (K - 1.0 - q) / ((double)K * v)) * tm;
            for (int p = t + 1; t < K && p < K; p++) val[p] += tm;
            e = j;
        }
        double eta = 0.3 / sqrt(it + 1.0), sum = 0, scale = best > 0 ? best : 1;
        for (int p = 0; p <= K; p++) sum += w[p] = (w[p] + 1e-6) * exp(eta * (val[p] - scale) / scale);
        w[K] /= sum;
        for (int p = 0; p < K; p++) {
            double M = d->cl->devices[p].memory_bytes;
            w[p] /= sum;
            nu[p] += 0.1 / sqrt(it + 1.0) * (mem[p] - M) / M;
            if (nu[p] < 0) nu[p] = 0;
            x.mu[p] = nu[p] * scale / (K * M);
        }
    }
out:
    free(x.n);
    free(x.from);
    free(x.rcat);
    free(x.dp);
    free(x.coef);
    free(x.mu);
    free(w);
    free(val);
    free(mem);
    free(nu);
    return best;
}
