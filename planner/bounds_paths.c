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
 * own memory (a stage that does not fit alone fits no plan) is a shortest
 * path, O(S L) with sliding minima, and a lower bound on every plan of the
 * configuration that fits: the table of planner/bounds_table.c, which the
 * split search then reads at its nodes (the best mixture's, when
 * mp_bound_data.table_want is set and it beats the table there). With stop
 * finite, only the stages a plan of time <= stop can have are admitted
 * (mp_bound_stage_time_ok): the least value v then bounds those plans, so
 * min(stop, v) bounds every plan.
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

/* The graph: nodes are the ops, numbered in a topological order (every
 * edge from a lower number to a higher). */
typedef struct {
    int S, N;
    int *bwd, *stage;    /* [N] 1 for B; virtual stage */
    int *pdev, *pdat;    /* [N] previous op of the position, data input (-1: none) */
} path_dag;

static void dag_free(path_dag *g)
{
    free(g->bwd);
    free(g->stage);
    free(g->pdev);
    free(g->pdat);
}

static int dag_build(path_dag *g, int K, int v, int m)
{
    mp_op_lists ops;
    memset(g, 0, sizeof *g);
    if (mp_schedule_build(MP_SCHED_INTERLEAVED, K, v, m, &ops, NULL) != MP_OK) return 0;
    int S = ops.num_stages, N = 2 * m * S, ok = 0, n = 0;
    int *id = malloc((size_t)N * sizeof *id), *indeg = calloc((size_t)N, sizeof *indeg);
    int *succ = malloc(2 * (size_t)N * sizeof *succ), *nsucc = calloc((size_t)N, sizeof *nsucc);
    int *mb = malloc((size_t)N * sizeof *mb);
    g->S = S, g->N = N;
    int *order = malloc((size_t)N * sizeof *order);
    g->bwd = malloc((size_t)N * sizeof *g->bwd);
    g->stage = malloc((size_t)N * sizeof *g->stage);
    g->pdev = malloc((size_t)N * sizeof *g->pdev);
    g->pdat = malloc((size_t)N * sizeof *g->pdat);
    if (!id || !indeg || !succ || !nsucc || !mb || !order || !g->bwd || !g->stage || !g->pdev || !g->pdat) goto out;
    for (int p = 0; p < K; p++)
        for (int i = 0; i < ops.len[p]; i++, n++) {
            const mp_op *o = &ops.ops[p][i];
            int t = o->stage;
            g->bwd[n] = o->kind == MP_OP_BWD, g->stage[n] = t, mb[n] = o->microbatch;
            g->pdev[n] = i ? n - 1 : -1;
            id[((size_t)g->bwd[n] * S + t) * m + o->microbatch] = n;
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
        if (!indeg[x]) order[tail++] = x;
    while (head < tail) {
        int x = order[head++];
        for (int k = 0; k < nsucc[x]; k++)
            if (!--indeg[succ[2 * (size_t)x + k]]) order[tail++] = succ[2 * (size_t)x + k];
    }
    ok = tail == N;
    if (ok) {   /* numbered in that order: the longest path walks the arrays in sequence */
        int *rank = indeg, *tmp = mb, *arr[4] = { g->bwd, g->stage, g->pdev, g->pdat };
        for (int k = 0; k < N; k++) rank[order[k]] = k;
        for (int a = 0; a < 4; a++) {
            for (int x = 0; x < N; x++) tmp[rank[x]] = a < 2 || arr[a][x] < 0 ? arr[a][x] : rank[arr[a][x]];
            memcpy(arr[a], tmp, (size_t)N * sizeof *tmp);
        }
    }
out:
    free(order);
    free(id);
    free(indeg);
    free(succ);
    free(nsucc);
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
    for (int x = 0; x < g->N; x++) {
        int t = g->stage[x];
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
    mp_bound_table work, best;   /* the last split DP's (planner/bounds_table.c), the best bound's */
    double *mu;                  /* [K] memory multipliers (ms per byte) */
} split_dp;

/* The least weighted sum under the mixture c (path counts) and x->mu, less
 * mcons, over the admitted splits (HUGE_VAL: none), in x->work. */
static double shortest(split_dp *x, const double *c, double mcons)
{
    mp_bound_table *tb = &x->work;
    int S = x->S;
    for (int t = 0; t < S; t++) {
        double sp = x->d->cl->devices[t % x->K].speed;
        tb->cf[t] = AT(c, S, VF, t) / sp;
        tb->cb[t] = tb->cr[t] = AT(c, S, VB, t) / sp;   /* the recompute lengthens B */
        tb->ca[t] = AT(c, S, VA, t), tb->cg[t] = AT(c, S, VG, t);
    }
    for (int p = 0; p < x->K; p++) tb->mu[p] = x->mu[p];
    tb->cons = -mcons;
    return mp_bound_table_suffixes(tb, x->d);
}

/* The stage times of the split the last shortest() chose into du, and each
 * position's bytes before its first backward less its memory into gm[K]. */
static void split_times(const split_dp *x, double *du, double *gm)
{
    const mp_prefix *ps = &x->d->ps;
    const mp_bound_table *tb = &x->work;
    int S = x->S, L = x->L;
    for (int p = 0; p < x->K; p++) gm[p] = -x->d->cl->devices[p].memory_bytes;
    for (int t = 0, j = 0; t < S; t++) {
        size_t at = (size_t)t * (L + 1) + j;
        int e = tb->to[at], r = tb->rto[at], q = t % x->K;
        double sp = x->d->cl->devices[q].speed, f = (ps->PF[e] - ps->PF[j]) / sp;
        size_t tq = (size_t)q * (L + 1) + e;
        AT(du, S, VF, t) = f;
        AT(du, S, VB, t) = (ps->PB[e] - ps->PB[j]) / sp + r * f;
        AT(du, S, VA, t) = t < S - 1 ? tb->tra[tq] : 0;
        AT(du, S, VG, t) = t < S - 1 ? tb->trg[tq] : 0;
        mp_stage_bytes sb = mp_prefix_bytes(ps, j, e - 1);
        double held, extra;
        mp_memory_held(&sb, x->b, r, &held, &extra);
        gm[q] += x->d->sf * sb.params + tb->n[t] * held;
        j = e;
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
    if (shortest(x, mix, 0) == HUGE_VAL) return HUGE_VAL;   /* no split fits */
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
        double low = shortest(x, mix, mcons);   /* T >= this for every plan that fits */
        split_times(x, Q + (size_t)ns * D4, G + (size_t)ns * K);
        if (low > lb) lb = low;
        if (low > x->best.value) mp_bound_table_swap(&x->work, &x->best);
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
    size_t D4 = 4 * (size_t)S;
    split_dp x = { d, &g, K, S, L, b, { 0 }, { 0 }, malloc((size_t)K * sizeof(double)) };
    double *end = malloc((size_t)g.N * sizeof *end);
    int *arg = malloc((size_t)g.N * sizeof *arg);
    double *work = malloc((2 * R * D4 + 2 * (size_t)R * R + 3 * (size_t)R + D4 + (size_t)R * K + K) * sizeof *work);
    if (x.mu && end && arg && work && mp_bound_table_alloc(&x.work, d, K, b, v, m) &&
        mp_bound_table_alloc(&x.best, d, K, b, v, m)) {
        mp_bound_table_admit(&x.work, d, stop);   /* a plan of time > stop is bounded by stop */
        mp_bound_table_admit(&x.best, d, stop);
        lb = oracle(&x, end, arg, lb, stop, work);
        if (lb > stop) lb = stop;
        const mp_bound_table *t = &d->table;   /* the best mixture bounds the split search's nodes */
        int same = t->S == S && t->K == K && t->b == b && t->v == v && t->m == m;
        if (d->table_want && x.best.value > -HUGE_VAL && (!same || x.best.value > t->value))
            mp_bound_table_swap(&d->table, &x.best);
    }
    mp_bound_table_free(&x.work);
    mp_bound_table_free(&x.best);
    free(x.mu);
    dag_free(&g);
    free(end);
    free(arg);
    free(work);
    return lb;
}
