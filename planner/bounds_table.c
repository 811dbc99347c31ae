/* bounds_table.c — an interleaved configuration's linear bound over the
 * stages of a split, as a table the split search reads at its nodes
 * (bounds.h: mp_bound_table).
 * defines: mp_bound_inflight, mp_bound_table_alloc, mp_bound_table_free, mp_bound_table_term,
 *          mp_bound_table_suffixes, mp_bound_table_swap
 *
 * Both interleaved bounds (the positions' Lagrangian, planner/bounds_positions.c,
 * and the critical-path mixtures, planner/bounds_paths.c) end in a bound
 * T >= cons + sum_t term_t that is linear in the stages of the split: stage
 * t = [j, e) on position q = t mod K with recompute r weighs
 *   cf_t F + cb_t B + r cr_t F                   (profile sums over [j, e) per speed)
 *   + mu_q (sf params + n_t b held)              (its bytes before q's first backward)
 *   + ca_t act_t(e) + cg_t grad_t(e)             (t < S-1: the transfers of its output)
 * held being b stash without recompute and b in[j] with it (sim/memory.h).
 * Every term is X_t(e) - Y_t(j), so the least sum over the stages that fit
 * their own memory (mp_bound_stage_fits_alone) is a shortest path with
 * sliding minima, O(S L): the admitted ends of a stage from j form a window
 * (j, emax(j)] with emax non-increasing as j falls. A stage that does not
 * fit alone fits no plan, so these least sums bound every fitting plan. */
#include "bounds.h"

#include <math.h>
#include <stdlib.h>

#include "schedule.h"

#define TABLE_WORK 4e6   /* (S+1)(L+1) above this: no table */

/* See bounds.h. */
int mp_bound_inflight(int K, int v, int m, int *n, int *nmax)
{
    mp_op_lists ops;
    if (mp_schedule_build(MP_SCHED_INTERLEAVED, K, v, m, &ops, NULL) != MP_OK) return 0;
    int S = K * v, *cur = calloc((size_t)S, sizeof *cur);
    if (!cur) {
        mp_op_lists_free(&ops);
        return 0;
    }
    for (int t = 0; t < S; t++) n[t] = nmax[t] = 0;
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops.len[p] && ops.ops[p][i].kind == MP_OP_FWD; i++) n[ops.ops[p][i].stage]++;
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops.len[p]; i++) {
            int t = ops.ops[p][i].stage;
            if (ops.ops[p][i].kind != MP_OP_FWD) cur[t]--;
            else if (++cur[t] > nmax[t]) nmax[t] = cur[t];
        }
    free(cur);
    mp_op_lists_free(&ops);
    return 1;
}

/* See bounds.h. */
double mp_bound_ring_lambda(const mp_bound_data *d, int K, int b)
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

/* Reallocates *a to `bytes`; 0 out of memory (*a kept). */
static int room(void **a, size_t bytes)
{
    void *p = realloc(*a, bytes);
    if (!p) return 0;
    *a = p;
    return 1;
}

/* See bounds.h. */
int mp_bound_table_alloc(mp_bound_table *tb, const mp_bound_data *d, int K, int b, int v, int m)
{
    int L = d->ps.L, S = K * v;
    size_t cells = (size_t)(S + 1) * (L + 1);   /* >= K (L+1): room for the transfer tables too */
    tb->S = 0;
    if ((double)cells > TABLE_WORK) return 0;
    if (cells > tb->cap_cells) {
        if (!room((void **)&tb->suf, cells * sizeof *tb->suf) || !room((void **)&tb->to, cells * sizeof *tb->to) ||
            !room((void **)&tb->rto, cells * sizeof *tb->rto) || !room((void **)&tb->tra, 2 * cells * sizeof *tb->tra) ||
            !room((void **)&tb->emax, 2 * cells * sizeof *tb->emax))
            return 0;
        tb->cap_cells = cells;
    }
    if ((size_t)S > tb->cap_S) {   /* K <= S: 6 S doubles hold 5 S coefficients and K multipliers */
        if (!room((void **)&tb->coef, 6 * (size_t)S * sizeof *tb->coef) || !room((void **)&tb->n, 2 * (size_t)S * sizeof *tb->n))
            return 0;
        tb->cap_S = (size_t)S;
    }
    tb->cf = tb->coef, tb->cb = tb->cf + S, tb->cr = tb->cb + S, tb->ca = tb->cr + S, tb->cg = tb->ca + S;
    tb->mu = tb->cg + S;
    tb->nmax = tb->n + S;
    tb->trg = tb->tra + (size_t)K * (L + 1);
    if (!mp_bound_inflight(K, v, m, tb->n, tb->nmax)) return 0;
    for (int q = 0; q < K; q++)
        for (int e = 0; e <= L; e++) {
            double bytes = (double)b * d->ps.in[e];
            tb->tra[(size_t)q * (L + 1) + e] = mp_cluster_transfer_ms(d->cl, q, (q + 1) % K, bytes);
            tb->trg[(size_t)q * (L + 1) + e] = mp_cluster_transfer_ms(d->cl, (q + 1) % K, q, bytes);
        }
    tb->K = K, tb->b = b, tb->v = v, tb->m = m, tb->L = L, tb->sf = d->sf;
    tb->r0 = d->mode == MP_RC_ON, tb->r1 = d->mode != MP_RC_OFF;
    tb->cons = 0, tb->value = -HUGE_VAL, tb->T = HUGE_VAL, tb->emax_ok = 0;
    for (int i = 0; i < 5 * S + K; i++) tb->coef[i] = 0;
    tb->S = S;
    return 1;
}

/* See bounds.h. */
void mp_bound_table_free(mp_bound_table *tb)
{
    free(tb->suf);
    free(tb->to);
    free(tb->rto);
    free(tb->emax);
    free(tb->coef);
    free(tb->n);
    free(tb->tra);
    *tb = (mp_bound_table){ 0 };
}

/* See bounds.h. */
void mp_bound_table_swap(mp_bound_table *a, mp_bound_table *b)
{
    mp_bound_table t = *a;
    *a = *b, *b = t;
}

/* See bounds.h. */
void mp_bound_table_admit(mp_bound_table *tb, const mp_bound_data *d, double T)
{
    tb->T = T;
    tb->emax_ok = 0;
    tb->smax = 0;
    for (int p = 0; p < tb->K; p++)
        if (d->cl->devices[p].speed > tb->smax) tb->smax = d->cl->devices[p].speed;
    tb->lam = mp_bound_ring_lambda(d, tb->K, tb->b);
    tb->f1 = d->mode == MP_RC_ON ? 2 : 1;
}

/* 1 when stage t = [j, e) with recompute r is admitted (see bounds.h). */
static int admitted(const mp_bound_table *tb, const mp_bound_data *d, int t, int r, int j, int e)
{
    const mp_device *dev = &d->cl->devices[t % tb->K];
    if (!mp_bound_stage_fits_alone(d, dev->memory_bytes, tb->nmax[t], tb->b, r, j, e)) return 0;
    return tb->T == HUGE_VAL ||
           mp_bound_stage_time_ok(&d->ps, tb->f1, tb->smax, tb->lam, tb->m, dev->speed, t, r, j, e, tb->T);
}

/* Stage t's term with recompute r is X(e) - Y(j) (see the top). */
static double end_x(const mp_bound_table *tb, const mp_prefix *ps, int t, int r, int e)
{
    double f = tb->cf[t] + r * tb->cr[t], mu = tb->mu[t % tb->K], nb = (double)tb->n[t] * tb->b;
    double v = f * ps->PF[e] + tb->cb[t] * ps->PB[e];
    if (mu > 0) v += mu * (tb->sf * ps->PP[e] + (r ? 0 : nb * ps->PS[e]));
    if (t < tb->S - 1 && (tb->ca[t] != 0 || tb->cg[t] != 0)) {
        size_t at = (size_t)(t % tb->K) * (tb->L + 1) + e;
        v += tb->ca[t] * tb->tra[at] + tb->cg[t] * tb->trg[at];
    }
    return v;
}

static double start_y(const mp_bound_table *tb, const mp_prefix *ps, int t, int r, int j)
{
    double f = tb->cf[t] + r * tb->cr[t], mu = tb->mu[t % tb->K], nb = (double)tb->n[t] * tb->b;
    double v = f * ps->PF[j] + tb->cb[t] * ps->PB[j];
    if (mu > 0) v += mu * (tb->sf * ps->PP[j] + (r ? -nb * (j < ps->L ? ps->in[j] : 0) : nb * ps->PS[j]));
    return v;
}

/* See bounds.h. */
double mp_bound_table_term(const mp_bound_table *tb, const mp_prefix *ps, int t, int j, int e)
{
    double best = HUGE_VAL;
    for (int r = tb->r0; r <= tb->r1; r++) {
        double v = end_x(tb, ps, t, r, e) - start_y(tb, ps, t, r, j);
        if (v < best) best = v;
    }
    return best;
}

/* See bounds.h. */
double mp_bound_table_suffixes(mp_bound_table *tb, const mp_bound_data *d)
{
    const mp_prefix *ps = &d->ps;
    int S = tb->S, L = tb->L, dq[L + 1];
    double *suf = tb->suf, val[L + 1];
    for (size_t i = 0; i < (size_t)(S + 1) * (L + 1); i++) suf[i] = HUGE_VAL;
    suf[(size_t)S * (L + 1) + L] = 0;
    for (int t = S - 1; t >= 0; t--) {
        double *cur = suf + (size_t)t * (L + 1);
        const double *nx = suf + (size_t)(t + 1) * (L + 1);
        int *to = tb->to + (size_t)t * (L + 1), *rto = tb->rto + (size_t)t * (L + 1);
        int emax0 = L - (S - 1 - t), jmax = L - (S - t);
        for (int r = tb->r0; r <= tb->r1; r++) {
            int head = 0, tail = 0, ep = emax0;   /* dq[head..tail): candidate ends by decreasing e, increasing value */
            int *em = tb->emax + ((size_t)r * (S + 1) + t) * (L + 1);
            for (int j = jmax; j >= t; j--) {
                int e = j + 1;   /* e joins the candidates for this j */
                if (nx[e] < HUGE_VAL) {
                    val[e] = end_x(tb, ps, t, r, e) + nx[e];
                    while (tail > head && val[dq[tail - 1]] >= val[e]) tail--;
                    dq[tail++] = e;
                }
                if (tb->emax_ok) ep = em[j];
                else {
                    while (ep > j && !admitted(tb, d, t, r, j, ep)) ep--;
                    em[j] = ep;
                }
                while (head < tail && dq[head] > ep) head++;
                if (head == tail) continue;
                double v = val[dq[head]] - start_y(tb, ps, t, r, j);
                if (v < cur[j]) cur[j] = v, to[j] = dq[head], rto[j] = r;
            }
        }
    }
    tb->emax_ok = 1;
    tb->value = suf[0] == HUGE_VAL ? HUGE_VAL : tb->cons + suf[0];
    return tb->value;
}
