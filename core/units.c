/* units.c — parse and print sizes, bandwidths and durations (see units.h).
 * defines: mp_parse_bytes, mp_parse_bandwidth, mp_parse_duration,
 *          mp_format_bytes, mp_format_bandwidth, mp_format_duration */
#include "units.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *suffix;
    double scale;
} unit;

/* ---------------------------------------------------------------- tables */

static const unit byte_units[] = {
    {"", 1.0}, {"B", 1.0},
    {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
    {"TiB", 1099511627776.0}, {"PiB", 1125899906842624.0},
    {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}, {"T", 1099511627776.0},
    {"KB", 1e3}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
    {NULL, 0}
};

static const unit bandwidth_units[] = {
    {"", 1.0}, {"B/s", 1.0},
    {"KB/s", 1e3}, {"kB/s", 1e3}, {"MB/s", 1e6}, {"GB/s", 1e9}, {"TB/s", 1e12},
    {"KiB/s", 1024.0}, {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0},
    {"TiB/s", 1099511627776.0},
    {"bit/s", 1.0 / 8}, {"Kbit/s", 1e3 / 8}, {"kbit/s", 1e3 / 8}, {"Mbit/s", 1e6 / 8},
    {"Gbit/s", 1e9 / 8}, {"Tbit/s", 1e12 / 8},
    {"b/s", 1.0 / 8}, {"Kb/s", 1e3 / 8}, {"kb/s", 1e3 / 8}, {"Mb/s", 1e6 / 8},
    {"Gb/s", 1e9 / 8}, {"Tb/s", 1e12 / 8},
    {NULL, 0}
};

static const unit duration_units[] = {
    {"", 1.0}, {"s", 1.0}, {"ms", 1e-3}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6},
    {"ns", 1e-9},
    {NULL, 0}
};

/* ---------------------------------------------------------------- parsing */

/* Length of a plain decimal number at s (digits, optional fraction, optional
 * exponent), or 0 when s does not start with one. No sign, no hex, no inf. */
static size_t number_span(const char *s)
{
    size_t i = 0, digits = 0;
    while (isdigit((unsigned char)s[i])) i++, digits++;
    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char)s[i])) i++, digits++;
    }
    if (digits == 0) return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-') j++;
        if (isdigit((unsigned char)s[j])) {
            while (isdigit((unsigned char)s[j])) j++;
            i = j;
        }
    }
    return i;
}

static mp_status parse_with(const char *s, const unit *units, const char *what,
                            double *out, mp_error *err)
{
    if (!s || !*s)
        return mp_error_set(err, MP_ERR_INPUT, "empty %s", what);
    size_t n = number_span(s);
    if (n == 0) {
        if (s[0] == '-')
            return mp_error_set(err, MP_ERR_INPUT, "invalid %s \"%s\": must not be negative", what, s);
        return mp_error_set(err, MP_ERR_INPUT, "invalid %s \"%s\": expected a number", what, s);
    }
    char num[64];
    if (n >= sizeof num)
        return mp_error_set(err, MP_ERR_INPUT, "invalid %s \"%s\": number too long", what, s);
    memcpy(num, s, n);
    num[n] = 0;
    double v = strtod(num, NULL);
    if (!isfinite(v))
        return mp_error_set(err, MP_ERR_INPUT, "invalid %s \"%s\": out of range", what, s);
    const char *u = s + n;
    if (*u == ' ' && u[1]) u++;  /* "1.50 GiB", as mp_format_* prints it */
    for (const unit *p = units; p->suffix; p++) {
        if (strcmp(u, p->suffix) == 0) {
            double r = v * p->scale;
            if (!isfinite(r))
                return mp_error_set(err, MP_ERR_INPUT, "invalid %s \"%s\": out of range", what, s);
            *out = r;
            return MP_OK;
        }
    }
    return mp_error_set(err, MP_ERR_INPUT, "invalid %s \"%s\": unknown unit \"%s\"", what, s, u);
}

mp_status mp_parse_bytes(const char *s, double *bytes, mp_error *err)
{
    return parse_with(s, byte_units, "size", bytes, err);
}

mp_status mp_parse_bandwidth(const char *s, double *bytes_per_s, mp_error *err)
{
    return parse_with(s, bandwidth_units, "bandwidth", bytes_per_s, err);
}

mp_status mp_parse_duration(const char *s, double *seconds, mp_error *err)
{
    return parse_with(s, duration_units, "duration", seconds, err);
}

/* ---------------------------------------------------------------- printing */

/* Writes v (>= 0) with three significant digits and the unit. */
static char *format3(char *buf, size_t n, const char *sign, double v, const char *u)
{
    if (v >= 99.95)
        snprintf(buf, n, "%s%.0f %s", sign, v, u);
    else if (v >= 9.995)
        snprintf(buf, n, "%s%.1f %s", sign, v, u);
    else
        snprintf(buf, n, "%s%.2f %s", sign, v, u);
    return buf;
}

/* Picks the largest unit of `steps` (ascending scales) not above |x|. */
static char *format_scaled(char *buf, size_t n, double x, const unit *steps, int nsteps)
{
    if (isnan(x)) {
        snprintf(buf, n, "nan");
        return buf;
    }
    const char *sign = x < 0 ? "-" : "";
    double a = fabs(x);
    int k = 0;
    for (int i = 0; i < nsteps; i++)
        if (a >= steps[i].scale * (1 - 5e-4)) k = i;  /* 1023.9 KiB prints as 1.00 MiB */
    return format3(buf, n, sign, a / steps[k].scale, steps[k].suffix);
}

char *mp_format_bytes(char *buf, size_t n, double bytes)
{
    static const unit steps[] = {
        {"B", 1.0}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0}, {"PiB", 1125899906842624.0}
    };
    if (fabs(bytes) < 1024.0 * (1 - 5e-4) && bytes == floor(bytes)) {
        snprintf(buf, n, "%.0f B", bytes);
        return buf;
    }
    return format_scaled(buf, n, bytes, steps, 6);
}

char *mp_format_bandwidth(char *buf, size_t n, double bytes_per_s)
{
    static const unit steps[] = {
        {"B/s", 1.0}, {"KB/s", 1e3}, {"MB/s", 1e6}, {"GB/s", 1e9}, {"TB/s", 1e12}
    };
    return format_scaled(buf, n, bytes_per_s, steps, 5);
}

char *mp_format_duration(char *buf, size_t n, double seconds)
{
    static const unit steps[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1.0}
    };
    if (seconds == 0) {
        snprintf(buf, n, "0 s");
        return buf;
    }
    return format_scaled(buf, n, seconds, steps, 4);
}
