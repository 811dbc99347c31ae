/* cluster.c — load, build, query, save and free clusters
 * ("format": "mpplan-cluster/1", docs/formats.md).
 * defines: mp_cluster_load, mp_cluster_parse, mp_cluster_uniform, mp_cluster_link,
 *          mp_cluster_transfer_ms, mp_cluster_save, mp_cluster_free */
#include "cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

#define CLUSTER_FORMAT "mpplan-cluster/1"
#define MAX_DEVICES 65536

void mp_cluster_free(mp_cluster *c)
{
    if (!c) return;
    for (int i = 0; i < c->num_devices && c->devices; i++) free(c->devices[i].name);
    free(c->devices);
    free(c->links);
    memset(c, 0, sizeof *c);
}

/* Allocates k zeroed devices and k*k links set to `def`. */
static mp_status cluster_alloc(mp_cluster *c, int k, mp_link def)
{
    c->devices = calloc((size_t)k, sizeof *c->devices);
    c->links = malloc((size_t)k * (size_t)k * sizeof *c->links);
    c->num_devices = k;
    c->default_link = def;
    if (!c->devices || !c->links) return MP_ERR_NOMEM;
    for (size_t i = 0; i < (size_t)k * (size_t)k; i++) c->links[i] = def;
    return MP_OK;
}

/* ---------------------------------------------------------------- parsing */

static mp_status nomem(const mp_jctx *cx)
{
    return mp_error_set(cx->err, MP_ERR_NOMEM, "%s: out of memory", cx->name);
}

static mp_status parse_device(const mp_jctx *cx, const json_t *v, int i, mp_cluster *c)
{
    char pre[64];
    snprintf(pre, sizeof pre, "devices[%d]", i);
    if (!json_is_object(v)) return mp_json_fail(cx, pre, "must be an object");
    mp_device *d = &c->devices[i];
    char def[32];
    snprintf(def, sizeof def, "dev%d", i);
    const char *name = def;
    if (mp_json_get_string(cx, v, pre, "name", 0, &name)) return MP_ERR_INPUT;
    for (int j = 0; j < i; j++)
        if (strcmp(c->devices[j].name, name) == 0)
            return mp_json_fail(cx, pre, "name \"%.100s\" is already used by devices[%d]", name, j);
    if (!(d->name = strdup(name))) return nomem(cx);
    d->speed = 1;
    if (mp_json_get_bytes(cx, v, pre, "memory", 1, MP_JPOS, &d->memory_bytes) ||
        mp_json_get_number(cx, v, pre, "speed", 0, MP_JPOS, &d->speed))
        return MP_ERR_INPUT;
    return MP_OK;
}

/* src/dst of an override: an index or a device name. */
static mp_status parse_endpoint(const mp_jctx *cx, const json_t *o, const char *pre,
                                const char *key, const mp_cluster *c, int *out)
{
    char f[96];
    mp_json_path(f, sizeof f, pre, key);
    const json_t *v = json_object_get(o, key);
    if (!v) return mp_json_fail(cx, f, "missing");
    if (json_is_string(v)) {
        for (int j = 0; j < c->num_devices; j++)
            if (strcmp(c->devices[j].name, json_string_value(v)) == 0) {
                *out = j;
                return MP_OK;
            }
        return mp_json_fail(cx, f, "no device named \"%.100s\"", json_string_value(v));
    }
    if (mp_json_int_value(cx, v, f, 0, out)) return MP_ERR_INPUT;
    if (*out >= c->num_devices)
        return mp_json_fail(cx, f, "device %d does not exist (the cluster has %d devices)",
                            *out, c->num_devices);
    return MP_OK;
}

static mp_status parse_overrides(const mp_jctx *cx, const json_t *links, mp_cluster *c)
{
    if (!json_is_array(links)) return mp_json_fail(cx, "links", "must be an array");
    int k = c->num_devices;
    char *seen = calloc((size_t)k * (size_t)k, 1);
    if (!seen) return nomem(cx);
    mp_status st = MP_OK;
    for (size_t i = 0; i < json_array_size(links) && !st; i++) {
        char pre[64];
        snprintf(pre, sizeof pre, "links[%zu]", i);
        const json_t *o = json_array_get(links, i);
        int s, d;
        if (!json_is_object(o)) {
            st = mp_json_fail(cx, pre, "must be an object");
        } else if (!(st = parse_endpoint(cx, o, pre, "src", c, &s)) &&
                   !(st = parse_endpoint(cx, o, pre, "dst", c, &d))) {
            mp_link L = c->default_link;
            if (s == d)
                st = mp_json_fail(cx, pre, "src and dst are the same device (%d)", s);
            else if (seen[(size_t)s * k + d])
                st = mp_json_fail(cx, pre, "a second override for the link %d -> %d", s, d);
            else if (!(st = mp_json_get_bandwidth(cx, o, pre, "bandwidth", 0, &L.bandwidth)) &&
                     !(st = mp_json_get_duration(cx, o, pre, "latency", 0, &L.latency_s))) {
                seen[(size_t)s * k + d] = 1;
                c->links[(size_t)s * k + d] = L;
            }
        }
    }
    free(seen);
    return st;
}

/* "allreduce"."points" (optional, with "members"): [[bytes, ms], ...] of
 * whole calls over `members` members, sizes increasing; stored per ring step. */
static mp_status parse_allreduce_points(const mp_jctx *cx, const json_t *ar, mp_cluster *c)
{
    const json_t *pts = json_object_get(ar, "points");
    if (!pts) return MP_OK;
    if (!json_is_array(pts) || json_array_size(pts) < 1 || json_array_size(pts) > MP_ALLREDUCE_POINTS)
        return mp_json_fail(cx, "allreduce.points", "must be an array of 1 to %d [bytes, ms] pairs", MP_ALLREDUCE_POINTS);
    int members = 0;
    if (mp_json_get_int(cx, ar, "allreduce", "members", 1, 2, &members)) return MP_ERR_INPUT;
    for (size_t k = 0; k < json_array_size(pts); k++) {
        const json_t *p = json_array_get(pts, k);
        char field[64];
        snprintf(field, sizeof field, "allreduce.points[%zu]", k);
        double bytes, ms;
        if (!json_is_array(p) || json_array_size(p) != 2) return mp_json_fail(cx, field, "must be a [bytes, ms] pair");
        if (mp_json_number_value(cx, json_array_get(p, 0), field, MP_JPOS, &bytes) ||
            mp_json_number_value(cx, json_array_get(p, 1), field, MP_JPOS, &ms))
            return MP_ERR_INPUT;
        if (k > 0 && bytes / members <= c->allreduce_chunk_bytes[k - 1])
            return mp_json_fail(cx, field, "sizes must increase");
        c->allreduce_chunk_bytes[k] = bytes / members;
        c->allreduce_step_ms[k] = ms / (2.0 * (members - 1));
    }
    c->allreduce_members = members;
    c->allreduce_points = (int)json_array_size(pts);
    return MP_OK;
}

static mp_status parse_root(const mp_jctx *cx, const json_t *root, void *out)
{
    mp_cluster *c = out;
    if (mp_json_check_format(cx, root, CLUSTER_FORMAT)) return MP_ERR_INPUT;
    const json_t *devs = json_object_get(root, "devices");
    if (!devs) return mp_json_fail(cx, "devices", "missing");
    if (!json_is_array(devs)) return mp_json_fail(cx, "devices", "must be an array");
    size_t k = json_array_size(devs);
    if (k == 0) return mp_json_fail(cx, "devices", "must not be empty");
    if (k > MAX_DEVICES) return mp_json_fail(cx, "devices", "too many devices (%zu)", k);
    const json_t *link = json_object_get(root, "link");
    mp_link def = {0, 0};
    if (!link) return mp_json_fail(cx, "link", "missing");
    if (!json_is_object(link)) return mp_json_fail(cx, "link", "must be an object");
    if (mp_json_get_bandwidth(cx, link, "link", "bandwidth", 1, &def.bandwidth) ||
        mp_json_get_duration(cx, link, "link", "latency", 1, &def.latency_s))
        return MP_ERR_INPUT;
    if (cluster_alloc(c, (int)k, def)) return nomem(cx);
    for (size_t i = 0; i < k; i++) {
        mp_status st = parse_device(cx, json_array_get(devs, i), (int)i, c);
        if (st) return st;
    }
    const json_t *ar = json_object_get(root, "allreduce");
    if (ar) {   /* the measured all-reduce fit: both members required */
        if (!json_is_object(ar)) return mp_json_fail(cx, "allreduce", "must be an object");
        if (mp_json_get_bandwidth(cx, ar, "allreduce", "bandwidth", 1, &c->allreduce_bandwidth) ||
            mp_json_get_duration(cx, ar, "allreduce", "latency", 1, &c->allreduce_latency_s))
            return MP_ERR_INPUT;
        mp_status st = parse_allreduce_points(cx, ar, c);
        if (st) return st;
    }
    const json_t *links = json_object_get(root, "links");
    if (links) return parse_overrides(cx, links, c);
    return MP_OK;
}

static void free_out(void *out)
{
    mp_cluster_free(out);
}

static const mp_json_reader reader = { sizeof(mp_cluster), parse_root, free_out };

mp_status mp_cluster_parse(const char *text, size_t len, const char *name, mp_cluster *c, mp_error *err)
{
    return mp_json_decode(text, len, name, &reader, c, err);
}

mp_status mp_cluster_load(const char *path, mp_cluster *c, mp_error *err)
{
    return mp_json_load(path, &reader, c, err);
}

/* ---------------------------------------------------------------- building */

mp_status mp_cluster_uniform(mp_cluster *c, int k, double memory_bytes,
                             double bandwidth, double latency_s, mp_error *err)
{
    memset(c, 0, sizeof *c);
    if (k < 1 || k > MAX_DEVICES)
        return mp_error_set(err, MP_ERR_INPUT, "number of devices must be 1..%d (got %d)", MAX_DEVICES, k);
    if (!(memory_bytes > 0) || !isfinite(memory_bytes))
        return mp_error_set(err, MP_ERR_INPUT, "device memory must be > 0 (got %g)", memory_bytes);
    if (!(bandwidth > 0) || !isfinite(bandwidth))
        return mp_error_set(err, MP_ERR_INPUT, "link bandwidth must be > 0 (got %g)", bandwidth);
    if (!(latency_s >= 0) || !isfinite(latency_s))
        return mp_error_set(err, MP_ERR_INPUT, "link latency must be >= 0 (got %g)", latency_s);
    mp_link def = {bandwidth, latency_s};
    mp_cluster q;
    memset(&q, 0, sizeof q);
    if (cluster_alloc(&q, k, def)) goto nomem;
    for (int i = 0; i < k; i++) {
        char name[32];
        snprintf(name, sizeof name, "dev%d", i);
        if (!(q.devices[i].name = strdup(name))) goto nomem;
        q.devices[i].memory_bytes = memory_bytes;
        q.devices[i].speed = 1;
    }
    *c = q;
    return MP_OK;
nomem:
    mp_cluster_free(&q);
    return mp_error_set(err, MP_ERR_NOMEM, "out of memory building a %d-device cluster", k);
}

/* ---------------------------------------------------------------- queries */

mp_link mp_cluster_link(const mp_cluster *c, int src, int dst)
{
    if (!c->links || src < 0 || dst < 0 || src >= c->num_devices || dst >= c->num_devices)
        return c->default_link;
    return c->links[(size_t)src * c->num_devices + dst];
}

double mp_cluster_transfer_ms(const mp_cluster *c, int src, int dst, double bytes)
{
    mp_link L = mp_cluster_link(c, src, dst);
    return 1000.0 * (L.latency_s + bytes / L.bandwidth);
}

/* ---------------------------------------------------------------- saving */

static json_t *cluster_to_json(const mp_cluster *c)
{
    json_t *devs = json_array(), *links = json_array();
    json_t *root = json_pack("{s:s}", "format", CLUSTER_FORMAT);
    if (!devs || !links || !root) goto fail;
    for (int i = 0; i < c->num_devices; i++) {
        const mp_device *d = &c->devices[i];
        json_t *o = json_pack("{s:s,s:o,s:o}", "name", d->name ? d->name : "",
                              "memory", mp_json_number(d->memory_bytes),
                              "speed", mp_json_number(d->speed));
        if (!o || json_array_append_new(devs, o)) goto fail;
    }
    const mp_link *def = &c->default_link;
    for (int s = 0; c->links && s < c->num_devices; s++)
        for (int d = 0; d < c->num_devices; d++) {
            const mp_link *L = &c->links[(size_t)s * c->num_devices + d];
            if (s == d || (L->bandwidth == def->bandwidth && L->latency_s == def->latency_s))
                continue;
            json_t *o = json_pack("{s:i,s:i,s:o,s:o}", "src", s, "dst", d,
                                  "bandwidth", mp_json_number(L->bandwidth),
                                  "latency", mp_json_number(L->latency_s));
            if (!o || json_array_append_new(links, o)) goto fail;
        }
    json_object_set_new(root, "devices", devs);
    json_object_set_new(root, "link", json_pack("{s:o,s:o}",
                                                "bandwidth", mp_json_number(def->bandwidth),
                                                "latency", mp_json_number(def->latency_s)));
    if (c->allreduce_bandwidth > 0) {
        json_t *ar = json_pack("{s:o,s:o}", "latency", mp_json_number(c->allreduce_latency_s),
                               "bandwidth", mp_json_number(c->allreduce_bandwidth));
        if (ar && c->allreduce_points > 0) {
            json_t *pts = json_array();
            int D = c->allreduce_members;
            for (int k = 0; pts && k < c->allreduce_points; k++)
                json_array_append_new(pts, json_pack("[o,o]", mp_json_number(c->allreduce_chunk_bytes[k] * D),
                                                     mp_json_number(c->allreduce_step_ms[k] * 2.0 * (D - 1))));
            json_object_set_new(ar, "members", json_integer(D));
            json_object_set_new(ar, "points", pts);
        }
        json_object_set_new(root, "allreduce", ar);
    }
    if (json_array_size(links))
        json_object_set_new(root, "links", links);
    else
        json_decref(links);
    return root;
fail:
    json_decref(devs);
    json_decref(links);
    json_decref(root);
    return NULL;
}

mp_status mp_cluster_save(const char *path, const mp_cluster *c, mp_error *err)
{
    json_t *root = cluster_to_json(c);
    if (!root) return mp_error_set(err, MP_ERR_NOMEM, "%s: cannot encode the cluster", path);
    mp_status st = mp_json_write(path, root, err);
    json_decref(root);
    return st;
}
