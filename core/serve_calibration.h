/* serve_calibration.h — the measured serving prediction terms (docs/serving.md
 * §1 "Overhead terms", §7 "Overheads and calibration") and reading them back
 * from the "calibration" of an `mprun --serve --profile P.json --report R.json`
 * report; used by `mprun --serve --calibration` and `mpplan --serve --calibration`.
 * defines: mp_serve_terms, mp_serve_terms_default, mp_serve_calibration_load,
 *          mp_serve_calibration_parse, mp_serve_terms_from_json, mp_serve_terms_to_json */
#ifndef MP_SERVE_CALIBRATION_H
#define MP_SERVE_CALIBRATION_H

#include <stddef.h>
#include "mp_status.h"

#define MP_SERVE_SPREAD_MAX 41   /* most quantiles of the forward-time spread */

/* Stage time = fwd_scale x profile + batch_overhead_ms, times a draw from the
 * spread when it has n_spread >= 2 quantiles; an idle stage 0 takes a ready
 * batch dispatch_ms late. */
typedef struct {
    double fwd_scale;          /* > 0 */
    double batch_overhead_ms;  /* >= 0, per batch per stage */
    double dispatch_ms;        /* >= 0 */
    int n_spread;              /* 0: forward times as modelled; else 2..MP_SERVE_SPREAD_MAX */
    double spread[MP_SERVE_SPREAD_MAX];  /* equiprobable factors: the quantiles at probabilities
                                            (k+0.5)/n_spread of measured / modelled forward time,
                                            scaled to mean 1; > 0, non-decreasing */
} mp_serve_terms;

/* The terms that leave the model as profiled: {1, 0, 0, no spread}. */
mp_serve_terms mp_serve_terms_default(void);

/* Reads PATH's "calibration" {fwd_scale > 0, batch_overhead_ms >= 0,
 * dispatch_ms >= 0}, all required and finite, and the optional
 * "fwd_spread_quantiles" (2..MP_SERVE_SPREAD_MAX numbers > 0, non-decreasing)
 * into *t (untouched on error);
 * messages name PATH and the problem (MP_ERR_IO unreadable, MP_ERR_INPUT else). */
mp_status mp_serve_calibration_load(const char *path, mp_serve_terms *t, mp_error *err);

/* The same from the report's text; path names it in messages. */
mp_status mp_serve_calibration_parse(const char *text, size_t len, const char *path, mp_serve_terms *t,
                                     mp_error *err);

struct json_t;

/* The terms object obj (a report's "calibration", a plan's
 * "prediction_terms"), the same fields and rules as above, into *t
 * (untouched on error); messages "NAME: FIELD.fwd_scale: ...". */
mp_status mp_serve_terms_from_json(const struct json_t *obj, const char *name, const char *field,
                                   mp_serve_terms *t, mp_error *err);

/* The terms as a new JSON object {fwd_scale, batch_overhead_ms, dispatch_ms
 * [, fwd_spread_quantiles]}. */
struct json_t *mp_serve_terms_to_json(const mp_serve_terms *t);

#endif
