/* time_fn.c — evaluating a layer's time function (profile.h: mp_time_eval). */
#include "profile.h"

double mp_time_eval(const mp_time_fn *f, double b)
{
    double t;
    switch (f->kind) {
    case MP_TIME_LINEAR:
        t = f->beta * b;
        break;
    case MP_TIME_AFFINE:
        t = f->alpha + f->beta * b;
        break;
    case MP_TIME_TABLE:
    default:
        if (f->n == 1) {
            t = f->ms[0] * b / f->batch[0];
        } else {
            int i = 0;  /* segment [i, i+1] containing b, or the nearest one */
            while (i < f->n - 2 && b > f->batch[i + 1]) i++;
            double x0 = f->batch[i], x1 = f->batch[i + 1];
            t = f->ms[i] + (f->ms[i + 1] - f->ms[i]) * (b - x0) / (x1 - x0);
        }
        break;
    }
    return t > 0 ? t : 0;
}
