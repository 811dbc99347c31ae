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
static mp_status parse_spread(const mp_jctx *cx, const json_t *q, const char *field, mp_serve_terms *v)
{
    v->n_spread = 0;
    if (!q) return MP_OK;
    char f[128];
    mp_json_path(f, sizeof f, field, "fwd_spread_quantiles");
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

mp_status mp_serve_terms_from_json(const json_t *obj, const char *name, const char *field, mp_serve_terms *t,
                                   mp_error *err)
{
    mp_jctx cx = { name, err };
    mp_serve_terms v = { 0 };
    mp_status st = mp_json_get_number(&cx, obj, field, "fwd_scale", 1, MP_JPOS, &v.fwd_scale);
    if (st == MP_OK) st = mp_json_get_number(&cx, obj, field, "batch_overhead_ms", 1, MP_JNONNEG, &v.batch_overhead_ms);
    if (st == MP_OK) st = mp_json_get_number(&cx, obj, field, "dispatch_ms", 1, MP_JNONNEG, &v.dispatch_ms);
    if (st == MP_OK) st = parse_spread(&cx, json_object_get(obj, "fwd_spread_quantiles"), field, &v);
    if (st == MP_OK) *t = v;
    return st;
}

json_t *mp_serve_terms_to_json(const mp_serve_terms *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "fwd_scale", mp_json_number(t->fwd_scale));
    json_object_set_new(o, "batch_overhead_ms", mp_json_number(t->batch_overhead_ms));
    json_object_set_new(o, "dispatch_ms", mp_json_number(t->dispatch_ms));
    if (t->n_spread) {
        json_t *q = json_array();
        for (int k = 0; k < t->n_spread; k++) json_array_append_new(q, mp_json_number(t->spread[k]));
        json_object_set_new(o, "fwd_spread_quantiles", q);
    }
    return o;
}

/* The report's "calibration" into out (an mp_serve_terms, untouched on error). */
static mp_status decode(const mp_jctx *cx, const json_t *root, void *out)
{
    const json_t *cal = json_object_get(root, "calibration");
    if (!json_is_object(cal))
        return mp_json_fail(cx, NULL, "no \"calibration\" object (write one with mprun PLAN.json --serve "
                                      "--profile P.json --report R.json)");
    return mp_serve_terms_from_json(cal, cx->name, "calibration", out, cx->err);
}

static const mp_json_reader reader = { 0, decode, NULL };   /* *t untouched on error */

mp_status mp_serve_calibration_load(const char *path, mp_serve_terms *t, mp_error *err)
{
    return mp_json_load(path, &reader, t, err);
}

mp_status mp_serve_calibration_parse(const char *text, size_t len, const char *path, mp_serve_terms *t,
                                     mp_error *err)
{
    return mp_json_decode(text, len, path, &reader, t, err);
}
