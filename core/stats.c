/* stats.c — see stats.h. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

int mp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mp_median(double *v, int n)
{
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, mp_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mp_median_of(const double *v, int n)
{
    if (n <= 0) return 0;
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) return v[0];
    memcpy(t, v, (size_t)n * sizeof *t);
    double r = mp_median(t, n);
    free(t);
    return r;
}
