/* trace.c — timelines of ops and transfers as Chrome trace JSON (trace.h).
 * defines: mp_trace_add, mp_trace_set_row_name, mp_trace_write_chrome, mp_trace_free
 *
 * Layout: pid 0; tid p for position p's compute; tid P + src*P + dst for the
 * directed link src->dst (P = number of positions). "X" events carry ts/dur
 * in microseconds and args {stage, microbatch}; "M" events name the process
 * and every row that has events (and order them: positions, then links). */
#include "trace.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* See trace.h. */
mp_status mp_trace_add(mp_trace *t, mp_trace_event e)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        mp_trace_event *ev = realloc(t->ev, (size_t)cap * sizeof *ev);
        if (!ev) return MP_ERR_NOMEM;
        t->ev = ev;
        t->cap = cap;
    }
    t->ev[t->n++] = e;
    if (e.position >= t->num_positions) t->num_positions = e.position + 1;
    if (e.dst_position >= t->num_positions) t->num_positions = e.dst_position + 1;
    return MP_OK;
}

/* See trace.h. */
mp_status mp_trace_set_row_name(mp_trace *t, int p, const char *name)
{
    if (p < 0) return MP_ERR_INPUT;
    if (p >= t->num_rows) {
        char **r = realloc(t->row_names, (size_t)(p + 1) * sizeof *r);
        if (!r) return MP_ERR_NOMEM;
        for (int i = t->num_rows; i <= p; i++) r[i] = NULL;
        t->row_names = r;
        t->num_rows = p + 1;
    }
    char *s = strdup(name);
    if (!s) return MP_ERR_NOMEM;
    free(t->row_names[p]);
    t->row_names[p] = s;
    if (p >= t->num_positions) t->num_positions = p + 1;
    return MP_OK;
}

/* ---------------------------------------------------------------- writing */

static const char *kind_cat(int k)
{
    switch (k) {
    case MP_TEV_FWD: return "fwd";
    case MP_TEV_BWD: return "bwd";
    case MP_TEV_RECOMPUTE: return "recompute";
    case MP_TEV_SEND_ACT: return "act";
    case MP_TEV_WGRAD: return "wgrad";
    case MP_TEV_ALLREDUCE: return "allreduce";
    default: return "grad";
    }
}

static void event_name(char *buf, size_t n, const mp_trace_event *e)
{
    switch (e->kind) {
    case MP_TEV_FWD: snprintf(buf, n, "F%d", e->microbatch); break;
    case MP_TEV_BWD: snprintf(buf, n, "B%d", e->microbatch); break;
    case MP_TEV_RECOMPUTE: snprintf(buf, n, "R%d", e->microbatch); break;
    case MP_TEV_SEND_ACT: snprintf(buf, n, "act %d", e->microbatch); break;
    case MP_TEV_WGRAD: snprintf(buf, n, "W%d", e->microbatch); break;
    case MP_TEV_ALLREDUCE: snprintf(buf, n, "AR%d", e->stage); break;
    default: snprintf(buf, n, "grad %d", e->microbatch); break;
    }
}

static int is_transfer(const mp_trace_event *e)
{
    return e->kind == MP_TEV_SEND_ACT || e->kind == MP_TEV_SEND_GRAD;
}

/* Appends an "M" metadata event; returns 0 on allocation failure. */
static int meta(json_t *arr, const char *what, int tid, json_t *args)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:o}", "name", what, "ph", "M", "pid", 0, "args", args);
    if (!o) return 0;
    if (tid >= 0) json_object_set_new(o, "tid", json_integer(tid));
    return json_array_append_new(arr, o) == 0;
}

static json_t *build_json(const mp_trace *t, const char *title)
{
    int P = t->num_positions > t->num_rows ? t->num_positions : t->num_rows;
    for (int i = 0; i < t->n; i++) {
        if (t->ev[i].position >= P) P = t->ev[i].position + 1;
        if (t->ev[i].dst_position >= P) P = t->ev[i].dst_position + 1;
    }
    json_t *root = json_object(), *arr = json_array();
    char *used = calloc((size_t)P * P + P + 1, 1);  /* rows with events */
    if (!root || !arr || !used) goto fail;
    json_object_set_new(root, "traceEvents", arr);
    json_object_set_new(root, "displayTimeUnit", json_string("ms"));
    if (t->others_pct > 0)
        json_object_set_new(root, "otherData", json_pack("{s:f}", "others_pct", t->others_pct));
    if (!meta(arr, "process_name", -1, json_pack("{s:s}", "name", title ? title : "mpkit")))
        goto fail;
    for (int i = 0; i < t->n; i++) {
        const mp_trace_event *e = &t->ev[i];
        if (e->position < 0) continue;
        int tid = e->position;
        if (is_transfer(e)) {
            if (e->dst_position < 0) continue;
            tid = P + e->position * P + e->dst_position;
        }
        used[tid] = 1;
        char name[48];
        event_name(name, sizeof name, e);
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:{s:i, s:i}}",
                              "name", name, "cat", kind_cat(e->kind), "ph", "X",
                              "pid", 0, "tid", tid, "ts", e->start_ms * 1000.0,
                              "dur", (e->end_ms - e->start_ms) * 1000.0, "args",
                              "stage", e->stage, "microbatch", e->microbatch);
        if (!o || json_array_append_new(arr, o) != 0) goto fail;
    }
    for (int p = 0; p < P; p++) {
        if (!used[p] && !(p < t->num_rows && t->row_names[p])) continue;
        char buf[64];
        const char *nm = p < t->num_rows && t->row_names[p] ? t->row_names[p] : NULL;
        if (!nm) { snprintf(buf, sizeof buf, "stage %d", p); nm = buf; }
        if (!meta(arr, "thread_name", p, json_pack("{s:s}", "name", nm))) goto fail;
        if (!meta(arr, "thread_sort_index", p, json_pack("{s:i}", "sort_index", p))) goto fail;
    }
    for (int a = 0; a < P; a++)
        for (int b = 0; b < P; b++) {
            int tid = P + a * P + b;
            if (!used[tid]) continue;
            char buf[64];
            snprintf(buf, sizeof buf, "link %d->%d", a, b);
            if (!meta(arr, "thread_name", tid, json_pack("{s:s}", "name", buf))) goto fail;
            if (!meta(arr, "thread_sort_index", tid, json_pack("{s:i}", "sort_index", tid)))
                goto fail;
        }
    free(used);
    return root;
fail:
    free(used);
    if (root) json_decref(root);
    else json_decref(arr);
    return NULL;
}

/* See trace.h. */
mp_status mp_trace_write_chrome(const mp_trace *t, const char *path,
                                const char *title, mp_error *err)
{
    json_t *root = build_json(t, title);
    if (!root) return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory building the trace", path);
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) {
        json_decref(root);
        return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, n + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd >= 0) (void)fchmod(fd, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) { close(fd); unlink(tmp); }
        json_decref(root);
        free(tmp);
        return mp_error_set(err, MP_ERR_IO, "%s: cannot create a temporary file next to it", path);
    }
    int bad = json_dumpf(root, f, JSON_COMPACT) != 0;
    bad |= fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    json_decref(root);
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        free(tmp);
        return mp_error_set(err, MP_ERR_IO, "%s: cannot write the trace", path);
    }
    free(tmp);
    return MP_OK;
}

/* See trace.h. Safe on a zeroed trace; leaves it zeroed. */
void mp_trace_free(mp_trace *t)
{
    if (!t) return;
    free(t->ev);
    for (int i = 0; i < t->num_rows; i++) free(t->row_names[i]);
    free(t->row_names);
    memset(t, 0, sizeof *t);
}
