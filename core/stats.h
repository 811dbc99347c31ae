/* stats.h — small statistics shared by every module.
 * defines: mp_cmp_double, mp_median, mp_median_of */
#ifndef MP_STATS_H
#define MP_STATS_H

/* qsort comparator for doubles, ascending (NaN-free input). */
int mp_cmp_double(const void *a, const void *b);

/* Median of v[0..n) (mean of the middle two for even n); sorts v in place.
 * 0 when n <= 0. */
double mp_median(double *v, int n);

/* Median of v[0..n) without touching v (sorts a copy; 0 when n <= 0, v[0]
 * when the copy cannot be allocated). */
double mp_median_of(const double *v, int n);

#endif
