/* plan.c — load, check, print, save, copy and free pipeline plans
 * ("format": "mpplan-plan/1", docs/formats.md).
 * defines: mp_schedule_name, mp_schedule_from_name, mp_plan_load, mp_plan_parse,
 *          mp_plan_check, mp_plan_to_json, mp_plan_save, mp_plan_copy, mp_plan_free,
 *          mp_plan_num_devices, mp_plan_num_positions, mp_plan_replica_device,
 *          mp_plan_json, mp_plan_slo_ms, mp_plan_check_serve */
#include "plan.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

#define PLAN_FORMAT "mpplan-plan/1"
#define MAX_STAGES 1000000

/* ---------------------------------------------------------------- names */

const char *mp_schedule_name(mp_schedule_kind k)
{
    switch (k) {
    case MP_SCHED_GPIPE: return "gpipe";
    case MP_SCHED_1F1B: return "1f1b";
    case MP_SCHED_INTERLEAVED: return "interleaved";
    case MP_SCHED_ZB_H1: return "zb-h1";
    case MP_SCHED_ZB_H2: return "zb-h2";
    case MP_SCHED_ZB_V: return "zb-v";
    }
    return "unknown";
}

mp_status mp_schedule_from_name(const char *s, mp_schedule_kind *k)
{
    static const mp_schedule_kind all[] = {MP_SCHED_GPIPE, MP_SCHED_1F1B, MP_SCHED_INTERLEAVED,
                                           MP_SCHED_ZB_H1, MP_SCHED_ZB_H2, MP_SCHED_ZB_V};
    for (int i = 0; s && i < MP_SCHED_COUNT; i++)
        if (strcmp(s, mp_schedule_name(all[i])) == 0) {
            *k = all[i];
            return MP_OK;
        }
    return MP_ERR_INPUT;
}

int mp_plan_num_devices(const mp_plan *p)
{
    int n = 0;
    for (int s = 0; s < p->num_stages; s++) {
        int seen = 0;
        for (int t = 0; t < s && !seen; t++) seen = p->stages[t].device == p->stages[s].device;
        n += !seen;
    }
    return n * mp_plan_replicas(p);
}

int mp_plan_replicas(const mp_plan *p)
{
    return p->data_parallel > 1 ? p->data_parallel : 1;
}

int mp_plan_replica_device(const mp_plan *p, int replica, int stage)
{
    return p->stages[stage].device + replica * mp_plan_num_positions(p);
}

void mp_plan_free(mp_plan *p)
{
    if (!p) return;
    free(p->stages);
    free(p->predicted.peak_memory_bytes);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- consistency */

/* Internal consistency shared by parse and check: contiguous stages from layer
 * 0, m * b == B, interleaved shape. `cx` names the file. */
static mp_status check_shape(const mp_jctx *cx, const mp_plan *p)
{
    if (p->num_stages < 1 || !p->stages) return mp_json_fail(cx, "stages", "must not be empty");
    if (p->global_batch < 1) return mp_json_fail(cx, "global_batch", "must be >= 1");
    if (p->microbatch_size < 1) return mp_json_fail(cx, "microbatch_size", "must be >= 1");
    if (p->num_microbatches < 1) return mp_json_fail(cx, "num_microbatches", "must be >= 1");
    if (p->data_parallel < 0) return mp_json_fail(cx, "data_parallel", "must be >= 1");
    int D = mp_plan_replicas(p);
    if ((long long)p->num_microbatches * p->microbatch_size * D != p->global_batch) {
        if (D == 1)
            return mp_json_fail(cx, "num_microbatches",
                                "%d micro-batches of %d samples do not make the global batch %d",
                                p->num_microbatches, p->microbatch_size, p->global_batch);
        return mp_json_fail(cx, "num_microbatches",
                            "%d replicas x %d micro-batches of %d samples do not make the global batch %d",
                            D, p->num_microbatches, p->microbatch_size, p->global_batch);
    }
    char f[64];
    for (int s = 0; s < p->num_stages; s++) {
        const mp_stage *st = &p->stages[s];
        snprintf(f, sizeof f, "stages[%d].layers", s);
        if (st->first < 0 || st->last < st->first)
            return mp_json_fail(cx, f, "[%d, %d] is not a layer range (need 0 <= first <= last)",
                                st->first, st->last);
        int want = s == 0 ? 0 : p->stages[s - 1].last + 1;
        if (st->first != want)
            return mp_json_fail(cx, f, "starts at layer %d, expected %d (stages must be contiguous "
                                "and start at layer 0)", st->first, want);
        snprintf(f, sizeof f, "stages[%d].device", s);
        if (st->device < 0) return mp_json_fail(cx, f, "must be >= 0");
    }
    int v = p->chunks_per_device;
    if (p->schedule == MP_SCHED_ZB_V) {   /* the V: stage s >= K on the device of stage 2K-1-s */
        if (v != 2)
            return mp_json_fail(cx, "chunks_per_device", "must be 2 for schedule \"zb-v\" (got %d)", v);
        if (p->num_stages % 2 != 0)
            return mp_json_fail(cx, "stages", "%d stages: a zb-v plan has 2 stages per device", p->num_stages);
        int K = p->num_stages / 2;
        for (int s = K; s < p->num_stages; s++)
            if (p->stages[s].device != p->stages[2 * K - 1 - s].device) {
                snprintf(f, sizeof f, "stages[%d].device", s);
                return mp_json_fail(cx, f, "is %d, but a zb-v plan runs stage %d on the device of "
                                    "stage %d (%d)", p->stages[s].device, s, 2 * K - 1 - s,
                                    p->stages[2 * K - 1 - s].device);
            }
        return MP_OK;
    }
    if (p->schedule != MP_SCHED_INTERLEAVED) {
        if (v != 1)
            return mp_json_fail(cx, "chunks_per_device", "must be 1 for schedule \"%s\" (got %d)",
                                mp_schedule_name(p->schedule), v);
        return MP_OK;
    }
    if (v < 2)
        return mp_json_fail(cx, "chunks_per_device", "must be >= 2 for an interleaved schedule (got %d)", v);
    if (p->num_stages % v != 0)
        return mp_json_fail(cx, "stages", "%d stages are not a multiple of chunks_per_device %d",
                            p->num_stages, v);
    int K = p->num_stages / v;
    for (int s = K; s < p->num_stages; s++)
        if (p->stages[s].device != p->stages[s % K].device) {
            snprintf(f, sizeof f, "stages[%d].device", s);
            return mp_json_fail(cx, f, "is %d, but an interleaved plan runs stage %d on the device of "
                                "stage %d (%d)", p->stages[s].device, s, s % K, p->stages[s % K].device);
        }
    if (p->num_microbatches % K != 0)
        return mp_json_fail(cx, "num_microbatches", "must be a multiple of the %d pipeline devices "
                            "for an interleaved schedule (got %d)", K, p->num_microbatches);
    return MP_OK;
}

/* Number of peak_memory_bytes entries: stages, or devices when interleaved or zb-v. */
int mp_plan_num_positions(const mp_plan *p)
{
    if ((p->schedule == MP_SCHED_INTERLEAVED || p->schedule == MP_SCHED_ZB_V) && p->chunks_per_device >= 1)
        return p->num_stages / p->chunks_per_device;
    return p->num_stages;
}

/* ---------------------------------------------------------------- parsing */

static mp_status nomem(const mp_jctx *cx)
{
    return mp_error_set(cx->err, MP_ERR_NOMEM, "%s: out of memory", cx->name);
}

static mp_status parse_stage(const mp_jctx *cx, const json_t *v, int s, mp_stage *st)
{
    char pre[64], f[96];
    snprintf(pre, sizeof pre, "stages[%d]", s);
    if (!json_is_object(v)) return mp_json_fail(cx, pre, "must be an object");
    mp_json_path(f, sizeof f, pre, "layers");
    const json_t *L = json_object_get(v, "layers");
    if (!L) return mp_json_fail(cx, f, "missing");
    if (!json_is_array(L) || json_array_size(L) != 2)
        return mp_json_fail(cx, f, "must be [first, last]");
    char fe[128];
    snprintf(fe, sizeof fe, "%s[0]", f);
    if (mp_json_int_value(cx, json_array_get(L, 0), fe, 0, &st->first)) return MP_ERR_INPUT;
    snprintf(fe, sizeof fe, "%s[1]", f);
    if (mp_json_int_value(cx, json_array_get(L, 1), fe, 0, &st->last)) return MP_ERR_INPUT;
    st->recompute = 0;
    if (mp_json_get_int(cx, v, pre, "device", 1, 0, &st->device) ||
        mp_json_get_bool(cx, v, pre, "recompute", 0, &st->recompute))
        return MP_ERR_INPUT;
    return MP_OK;
}

static mp_status parse_prediction(const mp_jctx *cx, const json_t *v, mp_plan *p)
{
    const char *pre = "predicted";
    if (!json_is_object(v)) return mp_json_fail(cx, pre, "must be an object");
    mp_prediction *pr = &p->predicted;
    if (mp_json_get_number(cx, v, pre, "iteration_ms", 1, MP_JNONNEG, &pr->iteration_ms) ||
        mp_json_get_number(cx, v, pre, "samples_per_s", 1, MP_JNONNEG, &pr->samples_per_s) ||
        mp_json_get_number(cx, v, pre, "bubble_fraction", 1, MP_JANY, &pr->bubble_fraction) ||
        mp_json_get_int(cx, v, pre, "bottleneck_stage", 1, 0, &pr->bottleneck_stage))
        return MP_ERR_INPUT;
    if (pr->bottleneck_stage >= p->num_stages)
        return mp_json_fail(cx, "predicted.bottleneck_stage", "is %d but the plan has %d stages",
                            pr->bottleneck_stage, p->num_stages);
    const char *f = "predicted.peak_memory_bytes";
    const json_t *a = json_object_get(v, "peak_memory_bytes");
    if (!a) return mp_json_fail(cx, f, "missing");
    if (!json_is_array(a)) return mp_json_fail(cx, f, "must be an array of byte counts");
    int want = mp_plan_num_positions(p);
    if (json_array_size(a) != (size_t)want)
        return mp_json_fail(cx, f, "has %zu entries, expected %d (one per %s)", json_array_size(a),
                            want, mp_plan_num_positions(p) < p->num_stages ? "device" : "stage");
    pr->peak_memory_bytes = calloc((size_t)want, sizeof *pr->peak_memory_bytes);
    if (!pr->peak_memory_bytes) return nomem(cx);
    pr->num_peaks = want;
    for (int i = 0; i < want; i++) {
        char fe[96];
        snprintf(fe, sizeof fe, "%s[%d]", f, i);
        if (mp_json_number_value(cx, json_array_get(a, (size_t)i), fe, MP_JNONNEG,
                                 &pr->peak_memory_bytes[i]))
            return MP_ERR_INPUT;
    }
    p->has_prediction = 1;
    if (p->mode != MP_MODE_SERVE) return MP_OK;
    mp_serve_prediction *q = &pr->serve;
    if (mp_json_get_number(cx, v, pre, "rate", 0, MP_JNONNEG, &q->rate) ||
        mp_json_get_number(cx, v, pre, "throughput_rps", 0, MP_JNONNEG, &q->throughput_rps) ||
        mp_json_get_number(cx, v, pre, "p50_ms", 0, MP_JNONNEG, &q->p50_ms) ||
        mp_json_get_number(cx, v, pre, "p90_ms", 0, MP_JNONNEG, &q->p90_ms) ||
        mp_json_get_number(cx, v, pre, "p99_ms", 0, MP_JNONNEG, &q->p99_ms) ||
        mp_json_get_number(cx, v, pre, "max_ms", 0, MP_JNONNEG, &q->max_ms) ||
        mp_json_get_number(cx, v, pre, "slo_ms", 0, MP_JNONNEG, &q->slo_ms) ||
        mp_json_get_number(cx, v, pre, "slo_attainment", 0, MP_JNONNEG, &q->slo_attainment) ||
        mp_json_get_number(cx, v, pre, "capacity_rps", 0, MP_JNONNEG, &q->capacity_rps) ||
        mp_json_get_bool(cx, v, pre, "overloaded", 0, &q->overloaded) ||
        mp_json_get_int(cx, v, pre, "queued_at_end", 0, 0, &q->queued_at_end))
        return MP_ERR_INPUT;
    return MP_OK;
}

/* "search": {"seconds", "configurations", "searched", "lower_bound_ms", "gap", "proven"}. */
static mp_status parse_search(const mp_jctx *cx, const json_t *v, mp_plan *p)
{
    const char *pre = "search";
    mp_plan_search *s = &p->search;
    double cfgs = 0, searched = 0;
    if (!json_is_object(v)) return mp_json_fail(cx, pre, "must be an object");
    if (mp_json_get_number(cx, v, pre, "seconds", 1, MP_JNONNEG, &s->seconds) ||
        mp_json_get_number(cx, v, pre, "configurations", 1, MP_JNONNEG, &cfgs) ||
        mp_json_get_number(cx, v, pre, "searched", 1, MP_JNONNEG, &searched) ||
        mp_json_get_number(cx, v, pre, "lower_bound_ms", 1, MP_JNONNEG, &s->lower_bound_ms) ||
        mp_json_get_number(cx, v, pre, "gap", 1, MP_JNONNEG, &s->gap) ||
        mp_json_get_bool(cx, v, pre, "proven", 1, &s->proven))
        return MP_ERR_INPUT;
    if (cfgs != floor(cfgs) || searched != floor(searched) || searched > cfgs || cfgs > 9e15)
        return mp_json_fail(cx, "search.searched", "%.0f configurations searched of %.0f: must be whole numbers, "
                            "searched <= configurations", searched, cfgs);
    if (s->gap > 1) return mp_json_fail(cx, "search.gap", "is %g, must be in [0, 1]", s->gap);
    s->configurations = (long)cfgs;
    s->searched = (long)searched;
    p->has_search = 1;
    return MP_OK;
}

static mp_status parse_root(const mp_jctx *cx, const json_t *root, void *out)
{
    mp_plan *p = out;
    const char *s = "train";
    if (mp_json_check_format(cx, root, PLAN_FORMAT)) return MP_ERR_INPUT;
    if (mp_json_get_string(cx, root, "", "mode", 0, &s)) return MP_ERR_INPUT;
    if (strcmp(s, "train") == 0) p->mode = MP_MODE_TRAIN;
    else if (strcmp(s, "serve") == 0) p->mode = MP_MODE_SERVE;
    else return mp_json_fail(cx, "mode", "unknown mode \"%.100s\" (expected \"train\" or \"serve\")", s);
    if (mp_json_get_string(cx, root, "", "schedule", 1, &s)) return MP_ERR_INPUT;
    if (mp_schedule_from_name(s, &p->schedule))
        return mp_json_fail(cx, "schedule", "unknown schedule \"%.100s\" (expected gpipe, 1f1b or "
                            "interleaved), or a zero-bubble zb-h1, zb-h2 or zb-v", s);
    p->chunks_per_device = p->schedule == MP_SCHED_ZB_V ? 2 : 1;
    if (mp_json_get_int(cx, root, "", "chunks_per_device", 0, 1, &p->chunks_per_device) ||
        mp_json_get_int(cx, root, "", "global_batch", 1, 1, &p->global_batch) ||
        mp_json_get_int(cx, root, "", "microbatch_size", 1, 1, &p->microbatch_size))
        return MP_ERR_INPUT;
    p->data_parallel = 1;
    if (mp_json_get_int(cx, root, "", "data_parallel", 0, 1, &p->data_parallel)) return MP_ERR_INPUT;
    int per_step = p->data_parallel * p->microbatch_size;   /* samples per micro-batch index */
    p->num_microbatches = p->global_batch / per_step;
    if (!json_object_get(root, "num_microbatches") && p->global_batch % per_step) {
        if (p->data_parallel == 1)
            return mp_json_fail(cx, "microbatch_size", "%d does not divide the global batch %d",
                                p->microbatch_size, p->global_batch);
        return mp_json_fail(cx, "global_batch", "%d is not a multiple of data_parallel %d x "
                            "microbatch_size %d", p->global_batch, p->data_parallel, p->microbatch_size);
    }
    if (mp_json_get_int(cx, root, "", "num_microbatches", 0, 1, &p->num_microbatches) ||
        mp_json_get_int(cx, root, "", "max_batch", 0, 1, &p->max_batch) ||
        mp_json_get_number(cx, root, "", "max_wait_ms", 0, MP_JNONNEG, &p->max_wait_ms))
        return MP_ERR_INPUT;
    const json_t *stages = json_object_get(root, "stages");
    if (!stages) return mp_json_fail(cx, "stages", "missing");
    if (!json_is_array(stages)) return mp_json_fail(cx, "stages", "must be an array");
    size_t n = json_array_size(stages);
    if (n == 0) return mp_json_fail(cx, "stages", "must not be empty");
    if (n > MAX_STAGES) return mp_json_fail(cx, "stages", "too many stages (%zu)", n);
    p->stages = calloc(n, sizeof *p->stages);
    if (!p->stages) return nomem(cx);
    p->num_stages = (int)n;
    for (size_t i = 0; i < n; i++)
        if (parse_stage(cx, json_array_get(stages, i), (int)i, &p->stages[i])) return MP_ERR_INPUT;
    if (check_shape(cx, p)) return MP_ERR_INPUT;
    const json_t *terms = json_object_get(root, "prediction_terms");
    if (terms) {
        if (!json_is_object(terms)) return mp_json_fail(cx, "prediction_terms", "must be an object");
        if (mp_serve_terms_from_json(terms, cx->name, "prediction_terms", &p->terms, cx->err)) return MP_ERR_INPUT;
        p->has_terms = 1;
    }
    const json_t *srch = json_object_get(root, "search");
    if (srch && parse_search(cx, srch, p)) return MP_ERR_INPUT;
    const json_t *pred = json_object_get(root, "predicted");
    if (pred) return parse_prediction(cx, pred, p);
    return MP_OK;
}

static void free_out(void *out)
{
    mp_plan_free(out);
}

static const mp_json_reader reader = { sizeof(mp_plan), parse_root, free_out };

mp_status mp_plan_parse(const char *text, size_t len, const char *name, mp_plan *p, mp_error *err)
{
    return mp_json_decode(text, len, name, &reader, p, err);
}

mp_status mp_plan_load(const char *path, mp_plan *p, mp_error *err)
{
    return mp_json_load(path, &reader, p, err);
}

/* ---------------------------------------------------------------- checking */

mp_status mp_plan_check(const mp_plan *p, int num_layers, int num_devices,
                        const char *name, mp_error *err)
{
    mp_jctx cx = {name ? name : "plan", err};
    if (check_shape(&cx, p)) return MP_ERR_INPUT;
    if (p->num_stages > num_layers)
        return mp_json_fail(&cx, "stages", "more stages (%d) than layers (%d)", p->num_stages, num_layers);
    char f[64];
    const mp_stage *last = &p->stages[p->num_stages - 1];
    if (last->last != num_layers - 1) {
        snprintf(f, sizeof f, "stages[%d].layers", p->num_stages - 1);
        return mp_json_fail(&cx, f, "the last stage ends at layer %d, but the model's last layer is %d "
                            "(%d layers)", last->last, num_layers - 1, num_layers);
    }
    int K = mp_plan_num_positions(p);
    for (int s = 0; s < p->num_stages; s++) {
        int d = p->stages[s].device;
        snprintf(f, sizeof f, "stages[%d].device", s);
        if (d >= num_devices)
            return mp_json_fail(&cx, f, "device %d does not exist (the cluster has %d device%s)", d,
                                num_devices, num_devices == 1 ? "" : "s");
        for (int t = 0; t < s && s < K; t++)
            if (p->stages[t].device == d)
                return mp_json_fail(&cx, f, "device %d is already used by stage %d", d, t);
    }
    for (int r = 1; r < mp_plan_replicas(p); r++)
        for (int s = 0; s < K; s++) {
            int d = mp_plan_replica_device(p, r, s);
            snprintf(f, sizeof f, "stages[%d].device", s);
            if (d >= num_devices)
                return mp_json_fail(&cx, "data_parallel", "replica %d of stage %d runs on device %d, "
                                    "which does not exist (the cluster has %d device%s)", r, s, d,
                                    num_devices, num_devices == 1 ? "" : "s");
            for (int t = 0; t < K; t++)
                if (p->stages[t].device == d)
                    return mp_json_fail(&cx, "data_parallel", "replica %d of stage %d runs on device "
                                        "%d, which stage %d of replica 0 uses", r, s, d, t);
        }
    return MP_OK;
}

/* ---------------------------------------------------------------- writing */

static json_t *plan_to_json(const mp_plan *p)
{
    json_t *root = json_object(), *stages = json_array();
    if (!root || !stages) goto fail;
    json_object_set_new(root, "format", json_string(PLAN_FORMAT));
    json_object_set_new(root, "mode", json_string(p->mode == MP_MODE_SERVE ? "serve" : "train"));
    json_object_set_new(root, "schedule", json_string(mp_schedule_name(p->schedule)));
    json_object_set_new(root, "chunks_per_device", json_integer(p->chunks_per_device));
    json_object_set_new(root, "global_batch", json_integer(p->global_batch));
    json_object_set_new(root, "microbatch_size", json_integer(p->microbatch_size));
    json_object_set_new(root, "num_microbatches", json_integer(p->num_microbatches));
    if (p->data_parallel > 1) json_object_set_new(root, "data_parallel", json_integer(p->data_parallel));
    if (p->max_batch > 0) json_object_set_new(root, "max_batch", json_integer(p->max_batch));
    if (p->max_batch > 0 || p->max_wait_ms != 0)
        json_object_set_new(root, "max_wait_ms", mp_json_number(p->max_wait_ms));
    for (int s = 0; s < p->num_stages; s++) {
        const mp_stage *st = &p->stages[s];
        json_t *o = json_pack("{s:[i,i],s:i,s:b}", "layers", st->first, st->last,
                              "device", st->device, "recompute", st->recompute != 0);
        if (!o || json_array_append_new(stages, o)) goto fail;
    }
    json_object_set_new(root, "stages", stages);
    stages = NULL;
    if (p->has_prediction) {
        const mp_prediction *pr = &p->predicted;
        json_t *peaks = json_array();
        for (int i = 0; peaks && i < pr->num_peaks; i++)
            json_array_append_new(peaks, mp_json_number(pr->peak_memory_bytes[i]));
        json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:i}",
                              "iteration_ms", mp_json_number(pr->iteration_ms),
                              "samples_per_s", mp_json_number(pr->samples_per_s),
                              "bubble_fraction", mp_json_number(pr->bubble_fraction),
                              "peak_memory_bytes", peaks,
                              "bottleneck_stage", pr->bottleneck_stage);
        if (!o) goto fail;
        if (p->mode == MP_MODE_SERVE) {
            const mp_serve_prediction *q = &pr->serve;
            json_object_set_new(o, "rate", mp_json_number(q->rate));
            json_object_set_new(o, "throughput_rps", mp_json_number(q->throughput_rps));
            json_object_set_new(o, "p50_ms", mp_json_number(q->p50_ms));
            json_object_set_new(o, "p90_ms", mp_json_number(q->p90_ms));
            json_object_set_new(o, "p99_ms", mp_json_number(q->p99_ms));
            json_object_set_new(o, "max_ms", mp_json_number(q->max_ms));
            json_object_set_new(o, "slo_ms", mp_json_number(q->slo_ms));
            json_object_set_new(o, "slo_attainment", mp_json_number(q->slo_attainment));
            json_object_set_new(o, "capacity_rps", mp_json_number(q->capacity_rps));
            json_object_set_new(o, "overloaded", json_boolean(q->overloaded));
            json_object_set_new(o, "queued_at_end", json_integer(q->queued_at_end));
        }
        json_object_set_new(root, "predicted", o);
    }
    if (p->has_terms) json_object_set_new(root, "prediction_terms", mp_serve_terms_to_json(&p->terms));
    if (p->has_search) {
        const mp_plan_search *q = &p->search;
        json_t *o = json_pack("{s:o,s:I,s:I,s:o,s:o,s:b}", "seconds", mp_json_number(q->seconds),
                              "configurations", (json_int_t)q->configurations, "searched",
                              (json_int_t)q->searched, "lower_bound_ms", mp_json_number(q->lower_bound_ms),
                              "gap", mp_json_number(q->gap), "proven", q->proven != 0);
        if (!o) goto fail;
        json_object_set_new(root, "search", o);
    }
    return root;
fail:
    json_decref(root);
    json_decref(stages);
    return NULL;
}

json_t *mp_plan_json(const mp_plan *p)
{
    return plan_to_json(p);
}

double mp_plan_slo_ms(const mp_plan *p)
{
    double slo = p->has_prediction ? p->predicted.serve.slo_ms : 0;
    return slo > 0 ? slo : -1;
}

mp_status mp_plan_check_serve(const mp_plan *p, int num_layers, const char *name, mp_error *err)
{
    mp_jctx cx = {name ? name : "plan", err};
    if (p->mode != MP_MODE_SERVE)
        return mp_json_fail(&cx, "mode", "expected \"serve\" for a serving plan (from mpplan --serve -o PLAN.json)");
    if (p->max_batch < 1) return mp_json_fail(&cx, "max_batch", "missing (a serving plan needs one >= 1)");
    int last = p->stages[p->num_stages - 1].last;
    if (last != num_layers - 1)
        return mp_json_fail(&cx, "stages", "cover layers 0..%d but the model has %d layers", last, num_layers);
    return MP_OK;
}

char *mp_plan_to_json(const mp_plan *p)
{
    json_t *root = plan_to_json(p);
    if (!root) return NULL;
    char *s = mp_json_dump(root);
    json_decref(root);
    return s;
}

mp_status mp_plan_save(const char *path, const mp_plan *p, mp_error *err)
{
    char *s = mp_plan_to_json(p);
    if (!s) return mp_error_set(err, MP_ERR_NOMEM, "%s: cannot encode the plan", path);
    mp_status st = mp_json_write_text(path, s, strlen(s), err);
    free(s);
    return st;
}

mp_status mp_plan_copy(mp_plan *dst, const mp_plan *src)
{
    mp_plan q = *src;
    q.stages = NULL;
    q.predicted.peak_memory_bytes = NULL;
    if (src->num_stages > 0 && src->stages) {
        q.stages = malloc((size_t)src->num_stages * sizeof *q.stages);
        if (!q.stages) goto nomem;
        memcpy(q.stages, src->stages, (size_t)src->num_stages * sizeof *q.stages);
    }
    if (src->predicted.num_peaks > 0 && src->predicted.peak_memory_bytes) {
        size_t n = (size_t)src->predicted.num_peaks * sizeof *q.predicted.peak_memory_bytes;
        q.predicted.peak_memory_bytes = malloc(n);
        if (!q.predicted.peak_memory_bytes) goto nomem;
        memcpy(q.predicted.peak_memory_bytes, src->predicted.peak_memory_bytes, n);
    }
    *dst = q;
    return MP_OK;
nomem:
    mp_plan_free(&q);
    memset(dst, 0, sizeof *dst);
    return MP_ERR_NOMEM;
}
