/* bounds_paths.c — the interleaved configuration bound from mixtures of
 * critical paths (bounds.h: mp_bound_paths).
 * defines: mp_bound_paths
 *
 * The op lists of a configuration (K, v, m) do not depend on the split, and
 * neither do the edges of the graph the simulator times (docs/cost-model.md
 * section 5): each op follows the previous op of its position, F(t, i) the
 * activation of F(t-1, i) (act_{t-1} after it), B(t, i) the gradient of
 * B(t+1, i) (grad_t after it), B(S-1, i) its F(S-1, i). Link queues and
 * all-reduces only delay, so for every plan and every path P of the graph
 *   T >= len_P = sum_t (nF_t F_t + nB_t B_t + nA_t act_t + nG_t grad_t),
 * n counting the ops and transfers of stage t on P. For weights lambda over
 * paths summing to 1, T >= sum_P lambda_P len_P: a sum over stages of
 * coefficients times F_t, B_t (with its recompute), act_t and grad_t (b
 * times the bytes out of t's last layer). Its least value over the splits
 * (contiguous, non-empty stages, recompute choices) whose stages fit their
 * own memory (the stage_allowed test of planner/bounds_positions.c at no
 * time limit: a stage that does not fit alone fits no plan) is a shortest
 * path over (stage, last layer), O(S L) with sliding minima, and a lower
 * bound on every plan of the configuration that fits.
 *
 * The weights: the double oracle. The rows are paths, the columns splits,
 * the entries len_P(split); the restricted game over the paths and splits
 * found so far is solved exactly (planner/matrix_game.h). Its path mixture
 * gives the bound above and, as the shortest path's split, a new column;
 * its split mixture (the averaged stage times) gives, as the longest path,
 * a new row, whose length bounds the game's value from above. It stops
 * when the two meet, at `stop`, at the deadline or at MAX_ROUNDS. */
#include "bounds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "matrix_game.h"
#include "memory.h"
#include "schedule.h"

#define MAX_ROUNDS 400
#define POOL(S) (4 * (S) + 8)   /* rows and columns at most: the game's support is at most 4S + 1 */
#define KEEP(S) ((S) + 8)        /* rows and columns kept before zero weights are dropped (more when needed) */
#define CONVERGED 1e-6        /* relative distance of the two bounds */

/* The graph: nodes are the ops, listed position by position. */
typedef struct {
    int S, N;
    int *order;          /* [N] topological */
    int *bwd, *stage;    /* [N] 1 for B; virtual stage */
    int *pdev, *pdat;    /* [N] previous op of the position, data input (-1: none) */
    int *nmax;           /* [S] most micro-batches of a stage in flight on its position */
    int *nfirst;         /* [S] micro-batches of a stage forwarded before its position's first backward */
} path_dag;

static void dag_free(path_dag *g)
{
    free(g->order);
    free(g->bwd);
    free(g->stage);
    free(g->pdev);
    free(g->pdat);
    free(g->nmax);
    free(g->nfirst);
}

static int dag_build(path_dag *g, int K, int v, int m)
{
    mp_op_lists ops;
    memset(g, 0, sizeof *g);
    if (mp_schedule_build(MP_SCHED_INTERLEAVED, K, v, m, &ops, NULL) != MP_OK) return 0;
    int S = ops.num_stages, N = 2 * m * S, ok = 0, n = 0;
    int *id = malloc((size_t)N * sizeof *id), *indeg = calloc((size_t)N, sizeof *indeg);
    int *succ = malloc(2 * (size_t)N * sizeof *succ), *nsucc = calloc((size_t)N, sizeof *nsucc);
    int *cur = calloc((size_t)S, sizeof *cur), *mb = malloc((size_t)N * sizeof *mb);
    g->S = S, g->N = N;
    g->order = malloc((size_t)N * sizeof *g->order);
    g->bwd = malloc((size_t)N * sizeof *g->bwd);
    g->stage = malloc((size_t)N * sizeof *g->stage);
    g->pdev = malloc((size_t)N * sizeof *g->pdev);
    g->pdat = malloc((size_t)N * sizeof *g->pdat);
    g->nmax = calloc((size_t)S, sizeof *g->nmax);
    g->nfirst = calloc((size_t)S, sizeof *g->nfirst);
    if (!id || !indeg || !succ || !nsucc || !cur || !mb || !g->order || !g->bwd || !g->stage || !g->pdev || !g->pdat ||
        !g->nmax || !g->nfirst)
        goto out;
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops.len[p] && ops.ops[p][i].kind == MP_OP_FWD; i++) g->nfirst[ops.ops[p][i].stage]++;
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops.len[p]; i++, n++) {
            const mp_op *o = &ops.ops[p][i];
            int t = o->stage;
            g->bwd[n] = o->kind == MP_OP_BWD, g->stage[n] = t, mb[n] = o->microbatch;
            g->pdev[n] = i ? n - 1 : -1;
            id[((size_t)g->bwd[n] * S + t) * m + o->microbatch] = n;
            if (g->bwd[n]) cur[t]--;
            else if (++cur[t] > g->nmax[t]) g->nmax[t] = cur[t];
        }
    for (int x = 0; x < N; x++) {
        int t = g->stage[x], i = mb[x];
        if (!g->bwd[x]) g->pdat[x] = t > 0 ? id[(size_t)(t - 1) * m + i] : -1;
        else g->pdat[x] = t < S - 1 ? id[((size_t)S + t + 1) * m + i] : id[(size_t)t * m + i];
        int pr[2] = { g->pdev[x], g->pdat[x] };
        for (int k = 0; k < 2; k++)
            if (pr[k] >= 0) succ[2 * (size_t)pr[k] + nsucc[pr[k]]++] = x, indeg[x]++;
    }
    int head = 0, tail = 0;
    for (int x = 0; x < N; x++)
        if (!indeg[x]) g->order[tail++] = x;
    while (head < tail) {
        int x = g->order[head++];
        for (int k = 0; k < nsucc[x]; k++)
            if (!--indeg[succ[2 * (size_t)x + k]]) g->order[tail++] = succ[2 * (size_t)x + k];
    }
    ok = tail == N;
out:
    free(id);
    free(indeg);
    free(succ);
    free(nsucc);
    free(cur);
    free(mb);
    mp_op_lists_free(&ops);
    if (!ok) dag_free(g);
    return ok;
}

/* Per-stage values in one vector of 4S: F, B, act, grad times (a split's)
 * or the path counts of each (a path's, or a mixture's). */
enum { VF, VB, VA, VG };
#define AT(vec, S, k, t) ((vec)[(size_t)(k) * (S) + (t)])

/* The longest path under the stage times du: its counts into cnt; returns
 * its length. end, arg: [N] scratch. */
static double longest(const path_dag *g, const double *du, double *cnt, double *end, int *arg)
{
    int S = g->S, last = 0;
    for (int k = 0; k < g->N; k++) {
        int x = g->order[k], t = g->stage[x];
        double s = 0;
        arg[x] = -1;
        if (g->pdev[x] >= 0) s = end[g->pdev[x]], arg[x] = g->pdev[x];
        if (g->pdat[x] >= 0) {
            double w = !g->bwd[x] ? AT(du, S, VA, t - 1) : t < S - 1 ? AT(du, S, VG, t) : 0;
            if (arg[x] < 0 || end[g->pdat[x]] + w > s) s = end[g->pdat[x]] + w, arg[x] = g->pdat[x];
        }
        end[x] = s + AT(du, S, g->bwd[x] ? VB : VF, t);
        if (end[x] > end[last]) last = x;
    }
    for (int i = 0; i < 4 * S; i++) cnt[i] = 0;
    for (int x = last; x >= 0; x = arg[x]) {
        int t = g->stage[x];
        AT(cnt, S, g->bwd[x] ? VB : VF, t) += 1;
        if (arg[x] >= 0 && arg[x] == g->pdat[x]) {
            if (!g->bwd[x]) AT(cnt, S, VA, t - 1) += 1;
            else if (t < S - 1) AT(cnt, S, VG, t) += 1;
        }
    }
    return end[last];
}

typedef struct {
    const mp_bound_data *d;
    const path_dag *g;
    int K, S, L, b;
    double *dp;          /* [(S+1)(L+1)] least sum of stages 0..t-1 ending at layer e */
    int *from, *rc;      /* [(S+1)(L+1)] its stage's first layer, recompute */
    int *dq;             /* [L+1] sliding-minimum queue */
    double *val;         /* [L+1] */
    double *tra, *trg;   /* [K (L+1)] position q's activation to q+1 / gradient back, b in[e] bytes */
    double *mu;          /* [K] memory multipliers (ms per byte) */
} split_dp;

/* 1 when stage t = [j, e) with recompute r fits its position by itself at
 * its most micro-batches in flight. */
static int fits_alone(const split_dp *x, int t, int r, int j, int e)
{
    return mp_bound_stage_fits_alone(x->d, x->d->cl->devices[t % x->K].memory_bytes, x->g->nmax[t], x->b, r, j, e);
}

/* Stage t's term for layers [j, e) with recompute r is end_term(e) -
 * start_term(j): its weighted times and mu_q times its bytes before q's
 * first backward, sf params + nfirst_t held (b stash, or b in[j] with
 * recompute: sim/memory.h). */
static double start_term(const split_dp *x, const double *c, int t, int r, int j)
{
    const mp_prefix *ps = &x->d->ps;
    int S = x->S, q = t % x->K;
    double f = AT(c, S, VF, t) + r * AT(c, S, VB, t), nb = (double)x->g->nfirst[t] * x->b;
    double v = (f * ps->PF[j] + AT(c, S, VB, t) * ps->PB[j]) / x->d->cl->devices[q].speed;
    if (x->mu[q] > 0) v += x->mu[q] * (x->d->sf * ps->PP[j] + (r ? -nb * ps->in[j] : nb * ps->PS[j]));
    return v;
}

static double end_term(const split_dp *x, const double *c, int t, int r, int e)
{
    const mp_prefix *ps = &x->d->ps;
    int S = x->S, q = t % x->K;
    double f = AT(c, S, VF, t) + r * AT(c, S, VB, t), nb = (double)x->g->nfirst[t] * x->b;
    double v = (f * ps->PF[e] + AT(c, S, VB, t) * ps->PB[e]) / x->d->cl->devices[q].speed;
    if (x->mu[q] > 0) v += x->mu[q] * (x->d->sf * ps->PP[e] + (r ? 0 : nb * ps->PS[e]));
    if (t < S - 1) {
        size_t at = (size_t)q * (x->L + 1) + e;
        v += AT(c, S, VA, t) * x->tra[at] + AT(c, S, VG, t) * x->trg[at];
    }
    return v;
}

/* The least weighted sum under coefficients c over the admitted splits
 * (HUGE_VAL: none); from/rc hold the split. The admitted first layers of a
 * stage ending at e form a window [lo(e), e) with lo non-decreasing. */
static double shortest(split_dp *x, const double *c)
{
    int S = x->S, L = x->L, r0 = x->d->mode == MP_RC_ON, r1 = x->d->mode != MP_RC_OFF, *dq = x->dq;
    for (size_t i = 0; i < (size_t)(S + 1) * (L + 1); i++) x->dp[i] = HUGE_VAL;
    x->dp[0] = 0;
    for (int t = 0; t < S; t++) {
        const double *cur = x->dp + (size_t)t * (L + 1);
        double *nx = x->dp + (size_t)(t + 1) * (L + 1);
        int *fr = x->from + (size_t)(t + 1) * (L + 1), *rr = x->rc + (size_t)(t + 1) * (L + 1);
        int emax = L - (S - 1 - t);
        for (int r = r0; r <= r1; r++) {
            int head = 0, tail = 0, lo = 0;
            for (int e = t + 1; e <= emax; e++) {
                int j = e - 1;
                if (cur[j] < HUGE_VAL) {
                    x->val[j] = cur[j] - start_term(x, c, t, r, j);
                    while (tail > head && x->val[dq[tail - 1]] >= x->val[j]) tail--;
                    dq[tail++] = j;
                }
                while (lo < e && !fits_alone(x, t, r, lo, e)) lo++;
                while (head < tail && dq[head] < lo) head++;
                if (head == tail || (t == S - 1 && e != L)) continue;
                double tot = x->val[dq[head]] + end_term(x, c, t, r, e);
                if (tot < nx[e]) nx[e] = tot, fr[e] = dq[head], rr[e] = r;
            }
        }
    }
    return x->dp[(size_t)S * (L + 1) + L];
}

/* The stage times of the split shortest() chose into du, and each
 * position's bytes before its first backward less its memory into gm[K]. */
static void split_times(const split_dp *x, double *du, double *gm)
{
    const mp_prefix *ps = &x->d->ps;
    int S = x->S, L = x->L;
    for (int p = 0; p < x->K; p++) gm[p] = -x->d->cl->devices[p].memory_bytes;
    for (int s = S, e = L; s >= 1; s--) {
        size_t at = (size_t)s * (L + 1) + e;
        int j = x->from[at], r = x->rc[at], t = s - 1, q = t % x->K;
        double sp = x->d->cl->devices[q].speed, f = (ps->PF[e] - ps->PF[j]) / sp;
        size_t tq = (size_t)q * (L + 1) + e;
        AT(du, S, VF, t) = f;
        AT(du, S, VB, t) = (ps->PB[e] - ps->PB[j]) / sp + r * f;
        AT(du, S, VA, t) = t < S - 1 ? x->tra[tq] : 0;
        AT(du, S, VG, t) = t < S - 1 ? x->trg[tq] : 0;
        mp_stage_bytes sb = mp_prefix_bytes(ps, j, e - 1);
        double held, extra;
        mp_memory_held(&sb, x->b, r, &held, &extra);
        gm[q] += x->d->sf * sb.params + x->g->nfirst[t] * held;
        e = j;
    }
}

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Moves mixture entry i to k in the pools (rows: P, the rows of full;
 * columns: Q, G, the columns of full). */
static void move_row(double *P, double *full, int R, int D4, int k, int i)
{
    memmove(P + (size_t)k * D4, P + (size_t)i * D4, (size_t)D4 * sizeof *P);
    memmove(full + (size_t)k * R, full + (size_t)i * R, (size_t)R * sizeof *full);
}

static void move_col(double *Q, double *G, double *full, int R, int D4, int K, int k, int i)
{
    memmove(Q + (size_t)k * D4, Q + (size_t)i * D4, (size_t)D4 * sizeof *Q);
    memmove(G + (size_t)k * K, G + (size_t)i * K, (size_t)K * sizeof *G);
    for (int o = 0; o < R; o++) full[(size_t)o * R + k] = full[(size_t)o * R + i];
}

/* The double oracle (see the top), with memory multipliers mu raised by
 * projected subgradient steps on the memory excess of each new split;
 * returns the best bound, >= lb (HUGE_VAL: no split fits). */
static double oracle(split_dp *x, double *end, int *arg, double lb, double stop, double *work)
{
    const path_dag *g = x->g;
    const mp_cluster *cl = x->d->cl;
    int S = x->S, K = x->K, D4 = 4 * S, np = 0, ns = 0, R = POOL(S), keep = KEEP(S);
    double *P = work, *Q = P + (size_t)R * D4;            /* rows (path counts), columns (split times) */
    double *full = Q + (size_t)R * D4, *A = full + (size_t)R * R;
    double *xw = A + (size_t)R * R, *yw = xw + R, *mix = yw + R, *G = mix + D4, *cj = G + (size_t)R * K;
    double *nu = cj + R;
    const double *deadline = &x->d->deadline;
    for (int p = 0; p < K; p++) nu[p] = x->mu[p] = 0;
    /* the first column: the split of least total time */
    for (int i = 0; i < D4; i++) mix[i] = i < 2 * S;
    if (shortest(x, mix) == HUGE_VAL) return HUGE_VAL;   /* no split fits */
    split_times(x, Q, G);
    ns = 1;
    longest(g, Q, P, end, arg);
    np = 1;
    full[0] = dot(P, Q, D4);
    for (int round = 1; round <= MAX_ROUNDS && lb < stop; round++) {
        if (*deadline < HUGE_VAL && mp_now_s() >= *deadline) break;
        /* the restricted game: entries len_i(split j) + mu . G_j, shifted > 0 */
        double amin = HUGE_VAL, mcons = 0;
        for (int p = 0; p < K; p++) mcons += x->mu[p] * cl->devices[p].memory_bytes;
        for (int j = 0; j < ns; j++) {
            cj[j] = 0;
            for (int p = 0; p < K; p++) cj[j] += x->mu[p] * G[(size_t)j * K + p];
        }
        for (int i = 0; i < np; i++)
            for (int j = 0; j < ns; j++) {
                double a = A[(size_t)i * ns + j] = full[(size_t)i * R + j] + cj[j];
                if (a < amin) amin = a;
            }
        double shift = amin - 1e-3 * fabs(amin) - 1e-9;
        for (int i = 0; i < np * ns; i++) A[i] -= shift;
        if (isnan(mp_matrix_game(A, np, ns, xw, yw))) break;
        for (int k = 0; k < D4; k++) mix[k] = 0;
        for (int i = 0; i < np; i++)
            for (int k = 0; k < D4; k++) mix[k] += xw[i] * P[(size_t)i * D4 + k];
        double low = shortest(x, mix) - mcons;   /* T >= this for every plan that fits */
        if (low > lb) lb = low;
        split_times(x, Q + (size_t)ns * D4, G + (size_t)ns * K);
        double high = 0;
        for (int k = 0; k < D4; k++) mix[k] = 0;
        for (int j = 0; j < ns; j++) {
            high += yw[j] * cj[j];
            for (int k = 0; k < D4; k++) mix[k] += yw[j] * Q[(size_t)j * D4 + k];
        }
        high += longest(g, mix, P + (size_t)np * D4, end, arg);
        int mem_ok = 1;
        for (int p = 0; p < K; p++) {   /* subgradient step on the new split's memory excess */
            double M = cl->devices[p].memory_bytes, ex = G[(size_t)ns * K + p] / M;
            if (ex > 0 || nu[p] > 0) mem_ok = 0;
            nu[p] += 0.5 / sqrt(round) * ex;
            if (nu[p] < 0) nu[p] = 0;
            x->mu[p] = nu[p] * (lb > 0 ? lb : high) / (K * M);
        }
        if (mem_ok && high - low <= CONVERGED * high) break;
        for (int i = 0; i <= np; i++) full[(size_t)i * R + ns] = dot(P + (size_t)i * D4, Q + (size_t)ns * D4, D4);
        for (int j = 0; j < ns; j++) full[(size_t)np * R + j] = dot(P + (size_t)np * D4, Q + (size_t)j * D4, D4);
        np++, ns++;
        if (np >= keep) {   /* drop the rows and columns of weight 0, keep the newest */
            int k = 0;
            for (int i = 0; i < np; i++)
                if (i == np - 1 || xw[i] > 0) move_row(P, full, R, D4, k++, i);
            np = k, k = 0;
            for (int j = 0; j < ns; j++)
                if (j == ns - 1 || yw[j] > 0) move_col(Q, G, full, R, D4, K, k++, j);
            ns = k;
            if (np == R || ns == R) break;
            if (np > keep - 4 || ns > keep - 4) keep = keep + 8 < R ? keep + 8 : R;   /* a larger support */
        }
    }
    return lb;
}

/* See bounds.h. */
double mp_bound_paths(mp_bound_data *d, int K, int b, int v, int m, double lb, double stop)
{
    int L = d->ps.L, S = K * v, R = POOL(S);
    if (lb >= stop || !mp_bound_paths_applies(S, L, m)) return lb;
    if (d->deadline < HUGE_VAL && mp_now_s() >= d->deadline) return lb;
    mp_bound_data_set_b(d, b);
    path_dag g;
    if (!dag_build(&g, K, v, m)) return lb;
    size_t cells = (size_t)(S + 1) * (L + 1), D4 = 4 * (size_t)S;
    split_dp x = { d, &g, K, S, L, b, malloc(cells * sizeof(double)), malloc(cells * sizeof(int)),
                   malloc(cells * sizeof(int)), malloc(((size_t)L + 1) * sizeof(int)),
                   malloc(((size_t)L + 1) * sizeof(double)), NULL, NULL, NULL };
    double *end = malloc((size_t)g.N * sizeof *end);
    int *arg = malloc((size_t)g.N * sizeof *arg);
    double *work = malloc((2 * R * D4 + 2 * (size_t)R * R + 3 * (size_t)R + D4 + (size_t)R * K + K) * sizeof *work);
    x.tra = malloc((size_t)K * (L + 1) * sizeof *x.tra);
    x.trg = malloc((size_t)K * (L + 1) * sizeof *x.trg);
    x.mu = malloc((size_t)K * sizeof *x.mu);
    if (x.dp && x.from && x.rc && x.dq && x.val && end && arg && work && x.tra && x.trg && x.mu) {
        for (int q = 0; q < K; q++)
            for (int e = 0; e <= L; e++) {
                double bytes = (double)b * d->ps.in[e];
                x.tra[(size_t)q * (L + 1) + e] = mp_cluster_transfer_ms(d->cl, q, (q + 1) % K, bytes);
                x.trg[(size_t)q * (L + 1) + e] = mp_cluster_transfer_ms(d->cl, (q + 1) % K, q, bytes);
            }
        lb = oracle(&x, end, arg, lb, stop, work);
    }
    free(x.tra);
    free(x.trg);
    free(x.mu);
    dag_free(&g);
    free(x.dp);
    free(x.from);
    free(x.rc);
    free(x.dq);
    free(x.val);
    free(end);
    free(arg);
    free(work);
    return lb;
}
