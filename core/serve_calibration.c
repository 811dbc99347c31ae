/* serve_calibration.c — reading a serving report's "calibration"
 * (serve_calibration.h). */
#include "serve_calibration.h"

#include <math.h>
#include <stdlib.h>
#include "json_util.h"

mp_serve_terms mp_serve_terms_default(void)
{
    return (mp_serve_terms){ .fwd_scale = 1 };
}

/* "fwd_spread_quantiles": absent (no spread) or 2..MAX numbers > 0, non-decreasing. */
static mp_status parse_spread(const mp_jctx *cx, const json_t *q, mp_serve_terms *v)
{
    v->n_spread = 0;
    if (!q) return MP_OK;
    const char *f = "calibration.fwd_spread_quantiles";
    size_t n = json_array_size(q);
    if (!json_is_array(q) || n < 2 || n > MP_SERVE_SPREAD_MAX)
        return mp_json_fail(cx, f, "must be an array of 2 to %d quantiles", MP_SERVE_SPREAD_MAX);
    for (size_t k = 0; k < n; k++) {
        const json_t *e = json_array_get(q, k);
        double x = json_number_value(e);
        if (!json_is_number(e) || !(x > 0) || !isfinite(x) || (k && x < v->spread[k - 1]))
            return mp_json_fail(cx, f, "entry %zu must be a finite number > 0, not below the one before", k);
        v->spread[k] = x;
    }
    v->n_spread = (int)n;
    return MP_OK;
}

/* The report's "calibration" into out (an mp_serve_terms, untouched on error). */
static mp_status decode(const mp_jctx *cx, const json_t *root, void *out)
{
    mp_serve_terms v;
    mp_status st = MP_OK;
    const json_t *cal = json_object_get(root, "calibration");
    if (!json_is_object(cal))
        st = mp_json_fail(cx, NULL, "no \"calibration\" object (write one with mprun PLAN.json --serve "
                                    "--profile P.json --report R.json)");
    if (st == MP_OK) st = mp_json_get_number(cx, cal, "calibration", "fwd_scale", 1, MP_JPOS, &v.fwd_scale);
    if (st == MP_OK)
        st = mp_json_get_number(cx, cal, "calibration", "batch_overhead_ms", 1, MP_JNONNEG, &v.batch_overhead_ms);
    if (st == MP_OK) st = mp_json_get_number(cx, cal, "calibration", "dispatch_ms", 1, MP_JNONNEG, &v.dispatch_ms);
    if (st == MP_OK) st = parse_spread(cx, json_object_get(cal, "fwd_spread_quantiles"), &v);
    if (st == MP_OK) *(mp_serve_terms *)out = v;
    return st;
}

mp_status mp_serve_calibration_load(const char *path, mp_serve_terms *t, mp_error *err)
{
    return mp_json_load(path, decode, t, err);
}

mp_status mp_serve_calibration_parse(const char *text, size_t len, const char *path, mp_serve_terms *t,
                                     mp_error *err)
{
    return mp_json_decode(text, len, path, decode, t, err);
}
