/* serve_plan.h — serving plans in the plan format ("mpplan-plan/1" with
 * "mode": "serve"): writing with the predicted serving metrics, reading back
 * for --evaluate (docs/serving.md).
 * defines: mp_serve_plan_json, mp_serve_plan_load */
#ifndef MP_SERVE_PLAN_H
#define MP_SERVE_PLAN_H

#include <jansson.h>
#include "mp_status.h"
#include "serve_search.h"

/* The plan as a JSON object (new reference): schedule "gpipe", global_batch =
 * microbatch_size = max_batch, num_microbatches 1, stage s on device s,
 * max_batch, max_wait_ms, and "predicted" with the training fields
 * (iteration_ms = one full batch through the empty pipeline, samples_per_s =
 * throughput, bubble_fraction, peak_memory_bytes, bottleneck_stage) plus
 * throughput_rps, p50_ms, p90_ms, p99_ms, max_ms, slo_ms, slo_attainment,
 * rate, capacity_rps, overloaded, queued_at_end; then "prediction_terms"
 * {fwd_scale, batch_overhead_ms, dispatch_ms}, c's measured terms (as in
 * mprun --serve's report). c must hold the tables of the plan's last
 * evaluation (mp_serve_plan_eval). */
json_t *mp_serve_plan_json(const mp_serve_plan *p, const mp_serve_eval *c, double rate_rps);

/* Reads a serving plan: stages (contiguous from layer 0, stage s on device
 * s), max_batch >= 1, max_wait_ms >= 0, mode "serve" when present.
 * *last_layer receives the last stage's last layer, *slo_ms the predicted
 * slo_ms (or -1). Messages name PATH and the field. */
mp_status mp_serve_plan_load(const char *path, mp_serve_plan *p, int *last_layer,
                             double *slo_ms, mp_error *err);

#endif
