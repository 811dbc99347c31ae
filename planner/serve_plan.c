/* serve_plan.c — serving plans to and from JSON (serve_plan.h). */
#include "serve_plan.h"

#include <stdlib.h>
#include <string.h>
#include "json_util.h"

json_t *mp_serve_plan_json(const mp_serve_plan *p, const mp_serve_eval *c, double rate_rps)
{
    int K = p->num_stages, B = p->max_batch, L = c->prof->num_layers;
    const mp_serve_result *m = &p->metrics;
    json_t *stages = json_array(), *peaks = json_array();
    double iter = 0, worst = -1;
    int bottleneck = 0;
    for (int s = 0; s < K; s++) {
        int hi = s + 1 < K ? p->first[s + 1] - 1 : L - 1;
        json_array_append_new(stages, json_pack("{s:[i,i],s:i,s:b}", "layers", p->first[s], hi,
                                                "device", s, "recompute", 0));
        json_array_append_new(peaks, mp_json_number(p->memory_bytes[s]));
        double t = c->stage_ms[s * B + B - 1];
        iter += t + (s + 1 < K ? c->link_ms[s * B + B - 1] : 0);
        if (t > worst) { worst = t; bottleneck = s; }
    }
    json_t *pred = json_object();
    json_object_set_new(pred, "iteration_ms", mp_json_number(iter));
    json_object_set_new(pred, "samples_per_s", mp_json_number(m->throughput_rps));
    json_object_set_new(pred, "bubble_fraction", mp_json_number(m->bubble_fraction));
    json_object_set_new(pred, "peak_memory_bytes", peaks);
    json_object_set_new(pred, "bottleneck_stage", json_integer(bottleneck));
    json_object_set_new(pred, "rate", mp_json_number(rate_rps));
    json_object_set_new(pred, "throughput_rps", mp_json_number(m->throughput_rps));
    json_object_set_new(pred, "p50_ms", mp_json_number(m->p50_ms));
    json_object_set_new(pred, "p90_ms", mp_json_number(m->p90_ms));
    json_object_set_new(pred, "p99_ms", mp_json_number(m->p99_ms));
    json_object_set_new(pred, "max_ms", mp_json_number(m->max_ms));
    json_object_set_new(pred, "slo_ms", mp_json_number(m->slo_ms));
    json_object_set_new(pred, "slo_attainment", mp_json_number(m->slo_attainment));
    json_object_set_new(pred, "capacity_rps", mp_json_number(m->capacity_rps));
    json_object_set_new(pred, "overloaded", json_boolean(m->overloaded));
    json_object_set_new(pred, "queued_at_end", json_integer(m->queued_at_end));
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("mpplan-plan/1"));
    json_object_set_new(o, "mode", json_string("serve"));
    json_object_set_new(o, "schedule", json_string("gpipe"));
    json_object_set_new(o, "chunks_per_device", json_integer(1));
    json_object_set_new(o, "global_batch", json_integer(B));
    json_object_set_new(o, "microbatch_size", json_integer(B));
    json_object_set_new(o, "num_microbatches", json_integer(1));
    json_object_set_new(o, "max_batch", json_integer(B));
    json_object_set_new(o, "max_wait_ms", mp_json_number(p->max_wait_ms));
    json_object_set_new(o, "stages", stages);
    json_object_set_new(o, "predicted", pred);
    json_t *terms = json_object();
    json_object_set_new(terms, "fwd_scale", mp_json_number(c->terms.fwd_scale));
    json_object_set_new(terms, "batch_overhead_ms", mp_json_number(c->terms.batch_overhead_ms));
    json_object_set_new(terms, "dispatch_ms", mp_json_number(c->terms.dispatch_ms));
    if (c->terms.n_spread) {
        json_t *q = json_array();
        for (int k = 0; k < c->terms.n_spread; k++) json_array_append_new(q, mp_json_number(c->terms.spread[k]));
        json_object_set_new(terms, "fwd_spread_quantiles", q);
    }
    json_object_set_new(o, "prediction_terms", terms);
    return o;
}

mp_status mp_serve_plan_load(const char *path, mp_serve_plan *p, int *last_layer,
                             double *slo_ms, mp_error *err)
{
    memset(p, 0, sizeof *p);
    *slo_ms = -1;
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    mp_jctx cx = { path, err };
    mp_status st = mp_json_read_file(path, &text, &len, err);
    if (st == MP_OK) st = mp_json_parse(text, len, path, &root, err);
    free(text);
    if (st != MP_OK) return st;
    const char *mode = "serve";
    if ((st = mp_json_get_string(&cx, root, "", "mode", 0, &mode)) != MP_OK) goto done;
    if (strcmp(mode, "serve") != 0) {
        st = mp_json_fail(&cx, "mode", "expected \"serve\" for a serving plan, got \"%s\"", mode);
        goto done;
    }
    if ((st = mp_json_get_int(&cx, root, "", "max_batch", 1, 1, &p->max_batch)) != MP_OK) goto done;
    if ((st = mp_json_get_number(&cx, root, "", "max_wait_ms", 1, MP_JNONNEG, &p->max_wait_ms)) != MP_OK) goto done;
    json_t *stages = json_object_get(root, "stages");
    if (!json_is_array(stages) || json_array_size(stages) == 0) {
        st = mp_json_fail(&cx, "stages", "must be a non-empty array");
        goto done;
    }
    int K = (int)json_array_size(stages);
    p->num_stages = K;
    p->first = calloc((size_t)K, sizeof(int));
    if (!p->first) { st = mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path); goto done; }
    int next = 0;
    for (int s = 0; s < K; s++) {
        char field[64];
        snprintf(field, sizeof field, "stages[%d]", s);
        json_t *st_obj = json_array_get(stages, (size_t)s);
        json_t *layers = json_is_object(st_obj) ? json_object_get(st_obj, "layers") : NULL;
        int lo, hi, dev = s;
        if (!json_is_array(layers) || json_array_size(layers) != 2) {
            st = mp_json_fail(&cx, field, "layers must be [first, last]");
            goto done;
        }
        if ((st = mp_json_int_value(&cx, json_array_get(layers, 0), field, 0, &lo)) != MP_OK ||
            (st = mp_json_int_value(&cx, json_array_get(layers, 1), field, 0, &hi)) != MP_OK ||
            (st = mp_json_get_int(&cx, st_obj, field, "device", 0, 0, &dev)) != MP_OK)
            goto done;
        if (lo != next || hi < lo) {
            st = mp_json_fail(&cx, field, "layers [%d, %d]: stages must be contiguous from layer 0 and non-empty", lo, hi);
            goto done;
        }
        if (dev != s) {
            st = mp_json_fail(&cx, field, "device %d: a serving plan runs stage s on device s", dev);
            goto done;
        }
        p->first[s] = lo;
        next = hi + 1;
    }
    *last_layer = next - 1;
    json_t *pred = json_object_get(root, "predicted");
    if (json_is_object(pred) && json_is_number(json_object_get(pred, "slo_ms")))
        *slo_ms = json_number_value(json_object_get(pred, "slo_ms"));
done:
    json_decref(root);
    if (st != MP_OK) mp_serve_plan_free(p);
    return st;
}
