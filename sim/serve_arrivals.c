/* serve_arrivals.c — request arrival processes for the serving simulator
 * (serve.h): seeded Poisson streams and trace files, replayable at any rate. */
#include "serve.h"

#include <errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mp_serve_arrivals_poisson(mp_serve_arrivals *a, int n, unsigned long seed)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->seed = seed;
}

static double trace_rate(const double *t, int n)
{
    return (n > 1 && t[n - 1] > t[0]) ? 1000.0 * (n - 1) / (t[n - 1] - t[0]) : 0;
}

void mp_serve_arrivals_trace(mp_serve_arrivals *a, double *t_ms, int n)
{
    memset(a, 0, sizeof *a);
    a->is_trace = 1;
    a->n = n;
    a->trace_ms = t_ms;
    a->trace_rps = trace_rate(t_ms, n);
}

mp_status mp_serve_arrivals_load(mp_serve_arrivals *a, const char *path, mp_error *err)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "r");
    if (!f) return mp_error_set(err, MP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int n = 0, cap = 0, lineno = 0;
    double *t = NULL;
    char line[512];
    mp_status st = MP_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || *p == 0 || *p == '#') continue;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
        if (end == p || *end != 0 || errno == ERANGE || !isfinite(v)) {
            st = mp_error_set(err, MP_ERR_INPUT, "%s:%d: not a number of seconds: %.40s", path, lineno, p);
            break;
        }
        if (v < 0) {
            st = mp_error_set(err, MP_ERR_INPUT, "%s:%d: arrival time %g is negative", path, lineno, v);
            break;
        }
        if (n > 0 && v * 1000.0 < t[n - 1]) {
            st = mp_error_set(err, MP_ERR_INPUT, "%s:%d: arrival time %g is earlier than the previous one",
                              path, lineno, v);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            double *nt = realloc(t, (size_t)cap * sizeof *nt);
            if (!nt) { st = mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path); break; }
            t = nt;
        }
        t[n++] = v * 1000.0;
    }
    fclose(f);
    if (st == MP_OK && n == 0) st = mp_error_set(err, MP_ERR_INPUT, "%s: no arrival times", path);
    if (st != MP_OK) { free(t); return st; }
    mp_serve_arrivals_trace(a, t, n);
    return MP_OK;
}

void mp_serve_arrivals_at_rate(const mp_serve_arrivals *a, double rate_rps, double *out)
{
    if (a->is_trace) {
        double scale = (rate_rps > 0 && a->trace_rps > 0) ? a->trace_rps / rate_rps : 1.0;
        for (int i = 0; i < a->n; i++) out[i] = a->trace_ms[i] * scale;
        return;
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, a->seed);
    double mean = 1000.0 / rate_rps, t = 0;
    for (int i = 0; i < a->n; i++) {
        t += gsl_ran_exponential(r, mean);
        out[i] = t;
    }
    gsl_rng_free(r);
}

void mp_serve_arrivals_free(mp_serve_arrivals *a)
{
    free(a->trace_ms);
    memset(a, 0, sizeof *a);
}
