/* serve_calibration.c — reading a serving report's "calibration"
 * (serve_calibration.h). */
#include "serve_calibration.h"

#include <stdlib.h>
#include "json_util.h"

mp_serve_terms mp_serve_terms_default(void)
{
    return (mp_serve_terms){ 1, 0, 0 };
}

mp_status mp_serve_calibration_load(const char *path, mp_serve_terms *t, mp_error *err)
{
    char *text = NULL;
    size_t len = 0;
    mp_status st = mp_json_read_file(path, &text, &len, err);
    if (st == MP_OK) st = mp_serve_calibration_parse(text, len, path, t, err);
    free(text);
    return st;
}

mp_status mp_serve_calibration_parse(const char *text, size_t len, const char *path, mp_serve_terms *t,
                                     mp_error *err)
{
    json_t *root = NULL;
    mp_jctx cx = { path, err };
    mp_serve_terms v;
    mp_status st = mp_json_parse(text, len, path, &root, err);
    if (st != MP_OK) return st;
    const json_t *cal = json_object_get(root, "calibration");
    if (!json_is_object(cal))
        st = mp_json_fail(&cx, NULL, "no \"calibration\" object (write one with mprun PLAN.json --serve "
                                     "--profile P.json --report R.json)");
    if (st == MP_OK) st = mp_json_get_number(&cx, cal, "calibration", "fwd_scale", 1, MP_JPOS, &v.fwd_scale);
    if (st == MP_OK)
        st = mp_json_get_number(&cx, cal, "calibration", "batch_overhead_ms", 1, MP_JNONNEG, &v.batch_overhead_ms);
    if (st == MP_OK) st = mp_json_get_number(&cx, cal, "calibration", "dispatch_ms", 1, MP_JNONNEG, &v.dispatch_ms);
    if (st == MP_OK) *t = v;
    json_decref(root);
    return st;
}
