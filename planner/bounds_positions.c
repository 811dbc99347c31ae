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
 * multipliers that make the least value positive prove that no plan fits.
 *
 * Admitted stages (stage_allowed). A plan that fits has every stage t =
 * [j, e) on position q fit by itself: q holds sf params_t + nmax_t b stash_t
 * after the forward that puts nmax_t micro-batches of t in flight (its most,
 * from the op walk), and a recomputing backward holds sf params_t +
 * b stash_t on top of its input; the other stages of q only add. So the
 * shortest path runs over these stages only (the least value over fewer
 * splits stays a lower bound over the fitting plans). A plan of time <= T
 * also has, for every stage, T >= A_t + U_t + m (F_t + B_t): the path of
 * planner/bounds.c with c = c' = t's chunk gives T >= A_t + U_t + busy_q -
 * K sum_{d<c} (F + B)_{q+dK} and busy_q >= m (F_t + B_t) + m sum_{d<c}
 * (F + B)_{q+dK} with m >= K; A_t + U_t >= (f1 PF(j) + PB(j)) / smax +
 * 2 t lambda. Both conditions only get harder as the stage grows, so the
 * admitted first layers of stages ending at e form a window [lo(e), e) with
 * lo non-decreasing: sliding minima keep the path O(S L). The weights are
 * first found over every split (ITERS rounds), then refined in the
 * bisection on T
 * (BISECT steps, small S L, admitted stages only): when some weights make the least value over
 * the splits admitted at T exceed T, no plan has time <= T, so T is a
 * lower bound (only T: the value itself bounds just those plans). */
#include "bounds.h"

#include <math.h>
#include <stdlib.h>

#include "clock.h"
#include "memory.h"
#include "schedule.h"

#define ITERS 80
#define BISECT 12           /* bisection steps on T */
#define ITERS_T 16          /* weight updates per step */
#define BISECT_WORK 1e5     /* S * L above this: no bisection */
#define MAX_WORK 2e7          /* S * L above this: not computed */

typedef struct {
    const mp_bound_data *d;
    int K, S, L, b, m, *n, *nmax, *from, *rcat, *dq;
    double *dp, *coef, *mu;
    double smax, lam, f1;      /* fastest speed, least transfer, 2 when recompute is forced on */
    int rc_free;               /* 1: stage terms without their recompute time (it is added as R) */
    int admit;                 /* 1: only the stages stage_allowed admits (0: every stage) */
    double *table;             /* not NULL: the best bound whose weights tb holds */
    mp_bound_table *tb;        /* the data's table */
} pos_ctx;

/* 1 when stage t = [j, e) with recompute r can be part of a plan that fits
 * and (T finite) takes at most T (see the top: the stage's own memory at
 * its most micro-batches in flight, and T >= A_t + U_t + m (F_t + B_t)).
 * Never true for a larger stage if false for a smaller one ([j, e) inside
 * [j', e')). */
static int stage_allowed(const pos_ctx *x, int t, int r, int j, int e, double T)
{
    const mp_bound_data *d = x->d;
    const mp_prefix *ps = &d->ps;
    const mp_device *dev = &d->cl->devices[t % x->K];
    if (!x->admit) return 1;
    if (!mp_bound_stage_fits_alone(d, dev->memory_bytes, x->nmax[t], x->b, r, j, e)) return 0;
    return T == HUGE_VAL || mp_bound_stage_time_ok(ps, x->f1, x->smax, x->lam, x->m, dev->speed, t, r, j, e, T);
}

/* A stage's term over layers [j, e) with recompute r is X(e) - Y(j) (the
 * memory model's held bytes are b stash, a prefix difference, or b times the
 * bytes into layer j): the two ends at layer index i, for time coefficient c
 * (per speed), memory multiplier mu and nb = n_t b. */
static void ends(const mp_prefix *ps, double c, double mu, double nb, double sf, int r, int rc_free, int i,
                 double *X, double *Y)
{
    double a = c * ((1 + (r && !rc_free)) * ps->PF[i] + ps->PB[i]) + mu * sf * ps->PP[i];
    *X = a + (r ? 0 : mu * nb * ps->PS[i]);
    *Y = a - (r ? mu * nb * (i < ps->L ? ps->in[i] : 0) : -mu * nb * ps->PS[i]);
}

static void stage_ends(const pos_ctx *x, int t, int r, int i, double *X, double *Y)
{
    const mp_bound_data *d = x->d;
    int q = t % x->K;
    ends(&d->ps, x->coef[t] / d->cl->devices[q].speed, x->mu[q], (double)x->n[t] * x->b, d->sf, r, x->rc_free, i,
         X, Y);
}

/* The weights of the current bound as d->table (see bounds.h), its cons
 * the constant of the bound: the stage coefficients, multipliers (the
 * suffixes follow at the end of mp_bound_positions). */
static void table_save(pos_ctx *x, double cons)
{
    mp_bound_table *tb = x->tb;
    const mp_bound_data *d = x->d;
    tb->cons = cons;
    for (int t = 0; t < x->S; t++) {
        double c = x->coef[t] / d->cl->devices[t % x->K].speed;
        tb->cf[t] = tb->cb[t] = c;
        tb->cr[t] = x->rc_free ? 0 : c;
        tb->ca[t] = tb->cg[t] = 0;
    }
    for (int p = 0; p < x->K; p++) tb->mu[p] = x->mu[p];
}

/* The shortest path: least sum of stage terms over splits and recompute
 * choices whose stages stage_allowed admits at T, O(S L) with sliding
 * minima (the admitted first layers of a stage ending at e form a window
 * [lo(e), e) with lo non-decreasing in e); from/rcat for the split. */
static double shortest(pos_ctx *x, double T)
{
    int S = x->S, L = x->L, r0 = x->d->mode == MP_RC_ON, r1 = x->d->mode != MP_RC_OFF, *dq = x->dq;
    for (int i = 0; i < (S + 1) * (L + 1); i++) x->dp[i] = HUGE_VAL;
    x->dp[0] = 0;
    for (int s = 0; s < S; s++) {
        const double *cur = x->dp + (size_t)s * (L + 1);
        double *nx = x->dp + (size_t)(s + 1) * (L + 1);
        int *fr = x->from + (size_t)(s + 1) * (L + 1), *rr = x->rcat + (size_t)(s + 1) * (L + 1);
        int jmax = L - (S - 1 - s);
        for (int r = r0; r <= r1; r++) {
            int head = 0, tail = 0, lo = 0;   /* dq[head..tail): candidates j by increasing cur[j] - Y(j) */
            double X, Y, Yj, val[L + 1];
            stage_ends(x, s, r, s, &X, &Yj);   /* Y at the first j; each e's ends give the next j's Y */
            for (int e = s + 1; e <= jmax; e++) {
                int j = e - 1;  /* j joins the candidates for this e */
                if (cur[j] < HUGE_VAL) {
                    val[j] = cur[j] - Yj;
                    while (tail > head && val[dq[tail - 1]] >= val[j]) tail--;
                    dq[tail++] = j;
                }
                stage_ends(x, s, r, e, &X, &Y);
                Yj = Y;
                while (lo < e && !stage_allowed(x, s, r, lo, e, T)) lo++;
                while (head < tail && dq[head] < lo) head++;
                if (head == tail) continue;
                double best = val[dq[head]];
                if (best + X < nx[e]) nx[e] = best + X, fr[e] = dq[head], rr[e] = r;
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
        double val = shortest(x, HUGE_VAL) + cons;
        if (val > 1e-9 * scale) {
            found = 1;
            break;
        }
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

/* The weighted bound: positions' weights w[0..K) and the bubble paths'
 * w[K], memory multipliers nu; `its` rounds of updates (multiplicative on
 * w, subgradient on nu) over the splits stage_allowed admits at T. Returns
 * the best bound found (>= best), stopping once it passes `enough`.
 * R: the forced recompute (profile ms) of mp_bound_forced_rc. */
static double lagrange(pos_ctx *x, double T, int its, double *w, double *nu, double *val, double *mem,
                       double R, double best, double enough)
{
    const mp_bound_data *d = x->d;
    int K = x->K, S = x->S, L = x->L, m = x->m, v = S / K;
    double lam = x->lam;
    for (int it = 0; it < its; it++) {
        double tail = 0, cons = 0, cmin = HUGE_VAL;
        for (int p = 0; p < K; p++) cons += w[p] * 2.0 * p * lam - x->mu[p] * d->cl->devices[p].memory_bytes;
        cons += w[K] * (K * v - 1.0) * lam;
        for (int t = K - 1; t >= 0; t--) {
            x->coef[t] = m * w[t] + (t + 1 < K ? tail : 0);
            tail += w[t];
        }
        for (int t = K; t < S; t++) x->coef[t] = m * w[t % K];
        for (int t = 0; t < S; t++) x->coef[t] += w[K] * ((double)m / K + (K - 1.0 - t % K) / ((double)K * v));
        for (int t = 0; t < S; t++)
            if (x->coef[t] < cmin) cmin = x->coef[t];
        int mu0 = 1;
        for (int p = 0; p < K; p++) mu0 &= x->mu[p] == 0;
        /* mu = 0: the least time over the admitted splits without their recompute, plus
         * the least the recompute that memory forces adds (a stage admitted only with
         * recompute then counts no recompute time of its own: no double count) */
        x->rc_free = mu0 && d->mode == MP_RC_AUTO;
        if (x->rc_free) cons += cmin * R / x->smax;
        double sp0 = shortest(x, T);
        if (sp0 == HUGE_VAL) return HUGE_VAL;  /* no admitted split */
        double bound = sp0 + cons;
        if (T == HUGE_VAL && x->table && bound > *x->table) {   /* over every split: the node bound's weights */
            *x->table = bound;
            table_save(x, cons);
        }
        if (bound > best) best = bound;
        if (best > enough || (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline)) break;
        /* the positions' values and memory at the best split */
        for (int p = 0; p < K; p++) val[p] = 2.0 * p * lam, mem[p] = 0;
        val[K] = (K * v - 1.0) * lam;
        for (int s = S, e = L; s >= 1; s--) {
            size_t at = (size_t)s * (L + 1) + e;
            int j = x->from[at], r = x->rcat[at], t = s - 1, q = t % K;
            double sp = d->cl->devices[q].speed;
            double tm = ((1 + r) * (d->ps.PF[e] - d->ps.PF[j]) + d->ps.PB[e] - d->ps.PB[j]) / sp;
            mp_stage_bytes sb = mp_prefix_bytes(&d->ps, j, e - 1);
            double held, extra;
            mp_memory_held(&sb, x->b, r, &held, &extra);
            mem[q] += d->sf * sb.params + x->n[t] * held;
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
            x->mu[p] = nu[p] * scale / (K * M);
        }
    }
    return best;
}

/* See bounds.h. */
double mp_bound_positions(mp_bound_data *d, int K, int b, int v, int m, double quick, double stop)
{
    int L = d->ps.L, S = K * v;
    if (quick == HUGE_VAL || quick >= stop || S > L || (double)S * L > MAX_WORK) return quick;
    if (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline) return quick;
    mp_bound_data_set_b(d, b);
    double best = quick, R = mp_bound_forced_rc(d, K, b, v, m);
    if (R == HUGE_VAL) return HUGE_VAL;
    pos_ctx x = { d, K, S, L, b, m, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, mp_bound_ring_lambda(d, K, b),
                  d->mode == MP_RC_ON ? 2 : 1, 0, 0, NULL, &d->table };
    double table_best = -HUGE_VAL;
    d->table.S = 0;
    if (d->table_want && mp_bound_table_alloc(&d->table, d, K, b, v, m)) x.table = &table_best;
    for (int p = 0; p < K; p++)
        if (d->cl->devices[p].speed > x.smax) x.smax = d->cl->devices[p].speed;
    size_t cells = (size_t)(S + 1) * (L + 1);
    x.n = malloc((size_t)S * sizeof *x.n);
    x.nmax = malloc((size_t)S * sizeof *x.nmax);
    x.from = malloc(cells * sizeof *x.from);
    x.rcat = malloc(cells * sizeof *x.rcat);
    x.dq = malloc(((size_t)L + 1) * sizeof *x.dq);
    x.dp = malloc(cells * sizeof *x.dp);
    x.coef = malloc((size_t)S * sizeof *x.coef);
    x.mu = calloc((size_t)K, sizeof *x.mu);
    double *w = malloc((size_t)(K + 1) * sizeof *w), *val = malloc((size_t)(K + 1) * sizeof *val);
    double *mem = malloc((size_t)K * sizeof *mem), *nu = calloc((size_t)K, sizeof *nu);
    double *w0 = malloc((size_t)(K + 1) * sizeof *w0), *nu0 = malloc((size_t)K * sizeof *nu0);
    if (!x.n || !x.nmax || !x.from || !x.rcat || !x.dq || !x.dp || !x.coef || !x.mu || !w || !val || !mem || !nu ||
        !w0 || !nu0 || !mp_bound_inflight(K, v, m, x.n, x.nmax))
        goto out;
    if (memory_infeasible(&x, mem, nu)) {
        best = HUGE_VAL;
        goto out;
    }
    w[K] = 1 / (1 + (K - 1) / (2.0 * v * m));
    for (int p = 0; p < K; p++) w[p] = w[K] * p / ((double)K * v * m);
    best = lagrange(&x, HUGE_VAL, ITERS, w, nu, val, mem, R, best, stop);
    x.table = NULL;
    if (d->table.S && table_best > -HUGE_VAL) mp_bound_table_suffixes(&d->table, d);
    else d->table.S = 0;
    /* bisection on T (see the top): a T whose admitted splits all weigh more
     * than T is below every plan's time */
    double lo = best, hi = stop < HUGE_VAL ? stop : 2 * best;
    x.admit = 1;   /* the first weights over every split (the bound without admission), then admitted ones */
    for (int k = 0; k < BISECT && !d->no_bisect && (double)S * L <= BISECT_WORK && best < stop && hi - lo > 1e-4 * lo; k++) {
        if (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline) break;
        double T = 0.5 * (lo + hi);
        for (int p = 0; p <= K; p++) w0[p] = w[p];
        for (int p = 0; p < K; p++) nu0[p] = nu[p];
        double lb = lagrange(&x, T, ITERS_T, w0, nu0, val, mem, R, lo, T);
        if (lb > T) {
            lo = T;
            if (T > best) best = T;   /* lb > T: no plan of time <= T (lb itself bounds only those) */
        } else {
            hi = T;
        }
    }
out:
    if (x.table) d->table.S = 0;   /* stopped before its weights */
    free(x.n);
    free(x.nmax);
    free(x.from);
    free(x.rcat);
    free(x.dq);
    free(x.dp);
    free(x.coef);
    free(x.mu);
    free(w);
    free(val);
    free(mem);
    free(nu);
    free(w0);
    free(nu0);
    return best;
}
