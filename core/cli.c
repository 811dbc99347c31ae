/* cli.c — see cli.h. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

mp_status mp_cli_int(const char *flag, const char *s, int min, int max, int *out, mp_error *err)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max)
        return mp_error_set(err, MP_ERR_USAGE, "--%s: expected an integer >= %d, got '%s'", flag, min, s);
    *out = (int)v;
    return MP_OK;
}

mp_status mp_cli_number(const char *flag, const char *s, int positive, double *out, mp_error *err)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || !(positive ? v > 0 : v >= 0))
        return mp_error_set(err, MP_ERR_USAGE, "--%s: expected a %s, got '%s'", flag,
                            positive ? "positive number" : "number >= 0", s);
    *out = v;
    return MP_OK;
}
