/* matrix_game.c — a zero-sum matrix game by the simplex method (matrix_game.h).
 * defines: mp_matrix_game
 *
 * Tableau over the columns u_0..u_{c-1}, the slacks s_0..s_{r-1} and the
 * right-hand side; the start basis is the slacks (u = 0 is feasible as
 * the right-hand side is 1). Dantzig's entering column, ties in the ratio
 * test broken by the smallest basic index; A is scaled to max 1 first so
 * that the tolerances are relative. */
#include "matrix_game.h"

#include <math.h>
#include <stdlib.h>

#define EPS 1e-12
#define PIVOTS_PER_DIM 4     /* pivot budget per row and column (a few suffice in practice) */

/* See matrix_game.h. */
double mp_matrix_game(const double *A, int r, int c, double *x, double *y)
{
    int W = c + r + 1;
    double amax = 0;
    for (int i = 0; i < r * c; i++)
        if (A[i] > amax) amax = A[i];
    if (r < 1 || c < 1 || !(amax > 0)) return NAN;
    double *T = calloc((size_t)(r + 1) * W, sizeof *T);
    int *basis = malloc((size_t)r * sizeof *basis);
    if (!T || !basis) {
        free(T);
        free(basis);
        return NAN;
    }
    for (int i = 0; i < r; i++) {
        for (int j = 0; j < c; j++) T[(size_t)i * W + j] = A[(size_t)i * c + j] / amax;
        T[(size_t)i * W + c + i] = 1;
        T[(size_t)i * W + W - 1] = 1;
        basis[i] = c + i;
    }
    double *obj = T + (size_t)r * W;   /* reduced costs of max sum u */
    for (int j = 0; j < c; j++) obj[j] = -1;
    int done = 0;
    for (int it = 0; it < PIVOTS_PER_DIM * (r + c) + 64 && !done; it++) {
        int pc = -1, pr = -1;
        double best = -EPS, ratio = HUGE_VAL;
        for (int j = 0; j < c + r; j++)
            if (obj[j] < best) best = obj[j], pc = j;
        if (pc < 0) {
            done = 1;
            break;
        }
        for (int i = 0; i < r; i++) {
            double a = T[(size_t)i * W + pc];
            if (a <= EPS) continue;
            double q = T[(size_t)i * W + W - 1] / a;
            if (q < ratio - EPS || (q <= ratio + EPS && pr >= 0 && basis[i] < basis[pr])) ratio = q, pr = i;
        }
        if (pr < 0) break;   /* unbounded: not for A > 0 */
        double *P = T + (size_t)pr * W, piv = P[pc];
        for (int j = 0; j < W; j++) P[j] /= piv;
        for (int i = 0; i <= r; i++) {
            double *R = T + (size_t)i * W, f = R[pc];
            if (i != pr && f != 0)
                for (int j = 0; j < W; j++) R[j] -= f * P[j];
        }
        basis[pr] = pc;
    }
    double su = obj[W - 1], v = NAN;
    if (done && su > 0) {
        double sx = 0;
        v = 1 / su;
        for (int j = 0; j < c; j++) y[j] = 0;
        for (int i = 0; i < r; i++)
            if (basis[i] < c) y[basis[i]] = T[(size_t)i * W + W - 1] * v;
        for (int i = 0; i < r; i++) sx += x[i] = obj[c + i] > 0 ? obj[c + i] : 0;
        for (int i = 0; i < r; i++) x[i] = sx > 0 ? x[i] / sx : 1.0 / r;
        v *= amax;
    }
    free(T);
    free(basis);
    return v;
}
