/* cli.c — see cli.h. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

void mp_cli_longopts(const mp_cli_opt *o, int n, struct option *out)
{
    for (int i = 0; i < n; i++) out[i] = (struct option){ o[i].name, o[i].has_arg, NULL, o[i].id };
    out[n] = (struct option){ NULL, 0, NULL, 0 };
}

void mp_cli_print_options(FILE *f, const mp_cli_opt *o, int n, const char *shorts, int width)
{
    for (int i = 0; i < n; i++) {
        char left[96];
        int k = 0;
        if (o[i].id > 0 && o[i].id < 128 && strchr(shorts, o[i].id)) k = snprintf(left, sizeof left, "-%c, ", o[i].id);
        snprintf(left + k, sizeof left - (size_t)k, "--%s%s%s", o[i].name, o[i].arg ? " " : "",
                 o[i].arg ? o[i].arg : "");
        fprintf(f, "  %-*s %s\n", width, left, o[i].help);
    }
}

mp_status mp_cli_parse(int argc, char **argv, const mp_cli_opt *o, int n, const char *shorts, mp_cli_opt_fn fn,
                       void *ctx, mp_error *err)
{
    struct option *lo = malloc((size_t)(n + 1) * sizeof *lo);
    if (!lo) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    mp_cli_longopts(o, n, lo);
    mp_status st = MP_OK;
    int c;
    opterr = 0;
    optind = 0;   /* full re-initialisation: another loop may have run before */
    while (st == MP_OK && (c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        if (c == '?' || c == ':') st = mp_cli_unknown(argv, err);
        else if (fn(ctx, c, optarg, err) != MP_OK) st = err && err->status ? err->status : MP_ERR_USAGE;
    }
    free(lo);
    return st == MP_ERR_INPUT ? MP_ERR_USAGE : st;
}

typedef struct {
    mp_cli_group_fn group;
    void *gctx;
    mp_cli_opt_fn fn;
    void *ctx;
} grouped;

/* The group first, then the tool's own (mp_cli_opt_fn). */
static mp_status take_grouped(void *ctx, int id, const char *v, mp_error *err)
{
    grouped *g = ctx;
    int r = g->group(g->gctx, id, v, err);
    if (r) return r < 0 ? MP_ERR_USAGE : MP_OK;
    return g->fn(g->ctx, id, v, err);
}

mp_status mp_cli_parse_group(int argc, char **argv, const mp_cli_opt *o, int n, const char *shorts,
                             mp_cli_group_fn group, void *gctx, mp_cli_opt_fn fn, void *ctx, mp_error *err)
{
    grouped g = { group, gctx, fn, ctx };
    return mp_cli_parse(argc, argv, o, n, shorts, take_grouped, &g, err);
}

mp_status mp_cli_unknown(char **argv, mp_error *err)
{
    return mp_error_set(err, MP_ERR_USAGE, "unknown or incomplete option \"%s\" (see --help)", argv[optind - 1]);
}

/* The one message form. */
static mp_status expected(const char *flag, const char *what, const char *s, mp_error *err)
{
    return mp_error_set(err, MP_ERR_USAGE, "--%s: expected %s, got \"%s\"", flag, what, s);
}

mp_status mp_cli_int(const char *flag, const char *s, int min, int max, int *out, mp_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) {
        char what[96];
        if (max == INT_MAX) snprintf(what, sizeof what, "an integer >= %d", min);
        else snprintf(what, sizeof what, "an integer from %d to %d", min, max);
        return expected(flag, what, s, err);
    }
    *out = (int)v;
    return MP_OK;
}

mp_status mp_cli_seed(const char *flag, const char *s, unsigned long *out, mp_error *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-' || *s == '+' || v > 4294967295ULL)
        return expected(flag, "an integer >= 0", s, err);
    *out = (unsigned long)v;
    return MP_OK;
}

mp_status mp_cli_number(const char *flag, const char *s, int positive, double *out, mp_error *err)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || !(positive ? v > 0 : v >= 0))
        return expected(flag, positive ? "a number > 0" : "a number >= 0", s, err);
    *out = v;
    return MP_OK;
}

mp_status mp_cli_size(const char *flag, const char *s, double *bytes, mp_error *err)
{
    double v;
    if (mp_parse_bytes(s, &v, NULL) != MP_OK || !(v > 0))
        return expected(flag, "a size > 0 such as 80GiB, 16GB or a byte count", s, err);
    *bytes = v;
    return MP_OK;
}

mp_status mp_cli_bandwidth(const char *flag, const char *s, double *bytes_per_s, mp_error *err)
{
    double v;
    if (mp_parse_bandwidth(s, &v, NULL) != MP_OK || !(v > 0))
        return expected(flag, "a bandwidth > 0 such as 25GB/s or 100Gbit/s", s, err);
    *bytes_per_s = v;
    return MP_OK;
}

mp_status mp_cli_duration(const char *flag, const char *s, double *seconds, mp_error *err)
{
    double v;
    if (mp_parse_duration(s, &v, NULL) != MP_OK)
        return expected(flag, "a duration such as 10us, 1.5ms or 2s", s, err);
    *seconds = v;
    return MP_OK;
}

mp_status mp_cli_choice(const char *flag, const char *s, const char *const *names, int n, int *out,
                        mp_error *err)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return MP_OK;
        }
    char what[256];
    size_t k = 0;
    what[0] = 0;
    for (int i = 0; i < n && k < sizeof what; i++)
        k += (size_t)snprintf(what + k, sizeof what - k, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " or ", names[i]);
    return expected(flag, what, s, err);
}

mp_status mp_cli_rates(const char *flag, const char *s, int max_n, int allow_flat, double *lo, double *hi,
                       int *n, mp_error *err)
{
    char buf[256], *b, *c, *e1, *e2, *e3;
    char what[160];
    snprintf(what, sizeof what, "LO:HI:N with 0 < LO %s HI%s and 1 <= N <= %d", allow_flat ? "<=" : "<",
             allow_flat ? "" : " (LO = HI for N = 1)", max_n);
    if (strlen(s) >= sizeof buf) return expected(flag, what, s, err);
    strcpy(buf, s);
    if (!(b = strchr(buf, ':')) || !(c = strchr(b + 1, ':'))) return expected(flag, what, s, err);
    *b++ = 0;
    *c++ = 0;
    double a = strtod(buf, &e1), z = strtod(b, &e2);
    long k = strtol(c, &e3, 10);
    if (!*buf || *e1 || !*b || *e2 || !*c || *e3 || !isfinite(a) || !isfinite(z) || !(a > 0) || z < a || k < 1 ||
        k > max_n || (!allow_flat && k > 1 && !(z > a)))
        return expected(flag, what, s, err);
    *lo = a;
    *hi = z;
    *n = (int)k;
    return MP_OK;
}

mp_status mp_cli_int_list(const char *flag, const char *s, int min, int max, int *out, int cap, int *n,
                          mp_error *err)
{
    char what[128];
    snprintf(what, sizeof what, "a list of at most %d integers from %d to %d such as 1,2,4", cap, min, max);
    int k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < min || v > max || k == cap || (*end && *end != ',') || (*end == ',' && !end[1]))
            return expected(flag, what, s, err);
        out[k++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (k == 0) return expected(flag, what, s, err);
    *n = k;
    return MP_OK;
}
