/* matrix_game.h — the value and optimal mixtures of a small two-player
 * zero-sum matrix game (planner/matrix_game.c), for the critical-path
 * bounds of planner/bounds_paths.c.
 * defines: mp_matrix_game */
#ifndef MP_MATRIX_GAME_H
#define MP_MATRIX_GAME_H

/* A: r x c row-major, every entry > 0. The row player maximises, the column
 * player minimises: returns v = max_x min_y x^T A y with x[r], y[c] optimal
 * mixtures (each >= 0, summing to 1), by the simplex method on
 * max sum u s.t. A u <= 1, u >= 0 (v = 1 / sum u, y = v u, x = v times the
 * duals). NAN when out of memory or the simplex did not finish in its
 * pivot budget (x, y then undefined). */
double mp_matrix_game(const double *A, int r, int c, double *x, double *y);

#endif
