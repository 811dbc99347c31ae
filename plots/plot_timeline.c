/* plot_timeline.c — `mpplot timeline TRACE.json [TRACE2.json] -o IMAGE`:
 * Chrome trace JSON (as sim/trace.c and mprun write it: "X" events with ts and
 * dur in microseconds, one tid per position and per link, "M" thread_name and
 * thread_sort_index metadata) drawn as one row per stage and link. Kinds come
 * from "cat" (fwd, bwd, recompute, act, grad, allreduce) or else from the
 * name (F3, B3, R3, "act 3", "grad 3", "AR0"). Each trace starts at time 0; two traces are stacked
 * on one time axis (the first, "predicted", over the second, "measured"). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"

enum { O_NAMES = 256 };
static const mp_plot_opt opts[] = {
    MP_PLOT_OPT_OUTPUT,
    MP_PLOT_OPT_TITLE("the plot's title"),
    { "names", required_argument, O_NAMES, "A,B", "row prefixes of two traces (default predicted,measured)" },
    MP_PLOT_OPT_HELP,
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))
#define SYNOPSIS "timeline TRACE.json [TRACE2.json] -o IMAGE [--title TEXT] [--names A,B]"
#define ABOUT "One row per stage and per link of a Chrome trace (mpplan --trace, mprun);\n" \
              "forward, backward, recompute and transfers in distinct colours, idle in grey.\n" \
              "Two traces are stacked on one time axis (predicted over measured)."

enum { K_FWD, K_BWD, K_RECOMPUTE, K_ACT, K_GRAD, K_WGRAD, K_ALLREDUCE, K_OTHER };

typedef struct {
    long pid, tid;
    double sort;
    int has_sort;
    char *name;
    int old;        /* index before sorting */
} row;

typedef struct {
    int row, kind;
    double start, end;
    char label[16];
} op;

typedef struct {
    row *rows;
    int nrows;
    op *ops;
    int nops;
    double span_ms;
    double others_pct;   /* measured traces: other processes' CPU share during the run */
} trace;

static void trace_free(trace *t)
{
    for (int i = 0; i < t->nrows; i++) free(t->rows[i].name);
    free(t->rows);
    free(t->ops);
    memset(t, 0, sizeof *t);
}

static int find_row(trace *t, long pid, long tid)
{
    for (int i = 0; i < t->nrows; i++)
        if (t->rows[i].pid == pid && t->rows[i].tid == tid) return i;
    row *r = realloc(t->rows, (size_t)(t->nrows + 1) * sizeof *r);
    if (!r) return -1;
    t->rows = r;
    t->rows[t->nrows] = (row){ pid, tid, 0, 0, NULL, t->nrows };
    return t->nrows++;
}

static int kind_of(const char *cat, const char *name)
{
    static const char *cats[] = { "fwd", "bwd", "recompute", "act", "grad", "wgrad", "allreduce" };
    for (int k = 0; cat && k < 6; k++)
        if (!strcmp(cat, cats[k])) return k;
    if (!strncmp(name, "act", 3)) return K_ACT;
    if (!strncmp(name, "AR", 2)) return K_ALLREDUCE;
    if (!strncmp(name, "grad", 4)) return K_GRAD;
    if (isdigit((unsigned char)name[1]) || name[1] == 0) {
        if (name[0] == 'F') return K_FWD;
        if (name[0] == 'B') return K_BWD;
        if (name[0] == 'R') return K_RECOMPUTE;
        if (name[0] == 'W') return K_WGRAD;
    }
    return K_OTHER;
}

static long int_field(const json_t *e, const char *key)
{
    json_t *v = json_object_get(e, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : json_is_real(v) ? (long)json_real_value(v) : 0;
}

/* One event of the trace; returns MP_OK or MP_ERR_INPUT naming [i]. */
static mp_status read_event(const char *path, size_t i, const json_t *e, trace *t, mp_error *err)
{
    if (!json_is_object(e))
        return mp_error_set(err, MP_ERR_INPUT, "%s: traceEvents[%zu]: expected an object", path, i);
    const char *ph = json_string_value(json_object_get(e, "ph"));
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!ph) return mp_error_set(err, MP_ERR_INPUT, "%s: traceEvents[%zu].ph: missing", path, i);
    long pid = int_field(e, "pid"), tid = int_field(e, "tid");
    if (!strcmp(ph, "M")) {
        json_t *args = json_object_get(e, "args");
        if (!name || !json_object_get(e, "tid")) return MP_OK;
        if (!strcmp(name, "thread_name") && json_is_string(json_object_get(args, "name"))) {
            int r = find_row(t, pid, tid);
            if (r < 0) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
            free(t->rows[r].name);
            t->rows[r].name = strdup(json_string_value(json_object_get(args, "name")));
        } else if (!strcmp(name, "thread_sort_index")) {
            double s;
            if (mp_plot_json_num(args, "sort_index", &s) == 1) {
                int r = find_row(t, pid, tid);
                if (r < 0) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
                t->rows[r].sort = s;
                t->rows[r].has_sort = 1;
            }
        }
        return MP_OK;
    }
    if (strcmp(ph, "X")) return MP_OK;
    double ts, dur;
    if (mp_plot_json_num(e, "ts", &ts) != 1)
        return mp_error_set(err, MP_ERR_INPUT, "%s: traceEvents[%zu].ts: expected a number", path, i);
    if (mp_plot_json_num(e, "dur", &dur) != 1 || dur < 0)
        return mp_error_set(err, MP_ERR_INPUT, "%s: traceEvents[%zu].dur: expected a number >= 0", path, i);
    int r = find_row(t, pid, tid);
    op *o = realloc(t->ops, (size_t)(t->nops + 1) * sizeof *o);
    if (r < 0 || !o) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    t->ops = o;
    op *n = &t->ops[t->nops++];
    n->row = r;
    n->kind = kind_of(json_string_value(json_object_get(e, "cat")), name ? name : "");
    n->start = ts / 1000.0;
    n->end = (ts + dur) / 1000.0;
    snprintf(n->label, sizeof n->label, "%s", name ? name : "");
    return MP_OK;
}

static int row_cmp(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    double sx = x->has_sort ? x->sort : (double)x->tid, sy = y->has_sort ? y->sort : (double)y->tid;
    if (sx != sy) return sx < sy ? -1 : 1;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

/* Loads a trace, keeps the rows that have events, orders them and rebases
 * time so the first event starts at 0. */
static mp_status load_trace(const char *path, trace *t, mp_error *err)
{
    memset(t, 0, sizeof *t);
    json_t *j = NULL;
    mp_status st = mp_plot_load_json(path, &j, err);
    if (st != MP_OK) return st;
    json_t *ev = json_is_array(j) ? j : json_object_get(j, "traceEvents");
    if (!json_is_array(ev)) {
        json_decref(j);
        return mp_error_set(err, MP_ERR_INPUT, "%s: traceEvents: expected an array of trace events", path);
    }
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e) {
        if ((st = read_event(path, i, e, t, err)) != MP_OK) break;
    }
    mp_plot_busy_scan(j, &t->others_pct);
    json_decref(j);
    if (st == MP_OK && t->nops == 0)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: no \"X\" (complete) events to draw", path);
    if (st != MP_OK) return st;
    /* Drop rows without events, sort, remap. */
    int *used = calloc((size_t)t->nrows, sizeof *used);
    if (!used) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int k = 0; k < t->nops; k++) used[t->ops[k].row] = 1;
    int n = 0, total = t->nrows;
    for (int k = 0; k < total; k++) {
        if (used[k]) t->rows[n++] = t->rows[k];
        else free(t->rows[k].name);
    }
    t->nrows = n;
    qsort(t->rows, (size_t)n, sizeof *t->rows, row_cmp);
    int *map = calloc((size_t)total + 1, sizeof *map);
    if (!map) { free(used); return mp_error_set(err, MP_ERR_NOMEM, "out of memory"); }
    for (int k = 0; k < n; k++) map[t->rows[k].old] = k;
    double t0 = t->ops[0].start, t1 = t->ops[0].end;
    for (int k = 0; k < t->nops; k++) {
        if (t->ops[k].start < t0) t0 = t->ops[k].start;
        if (t->ops[k].end > t1) t1 = t->ops[k].end;
    }
    for (int k = 0; k < t->nops; k++) {
        op *o = &t->ops[k];
        o->row = map[o->row];
        o->start -= t0;
        o->end -= t0;
    }
    t->span_ms = t1 - t0;
    free(map);
    free(used);
    return MP_OK;
}

/* Writes both blocks and the row variables for traces tr[0..nt-1]. */
static mp_status write_plot(mp_gp_out *o, trace *tr, int nt, char **prefix, const char *title,
                            mp_error *err)
{
    int nrows = 0, nops = 0, other = 0, wgrad = 0, allred = 0;
    double xmax = 0;
    for (int k = 0; k < nt; k++) {
        nrows += tr[k].nrows;
        nops += tr[k].nops;
        if (tr[k].span_ms > xmax) xmax = tr[k].span_ms;
    }
    char **names = calloc((size_t)nrows, sizeof *names);
    double *ys = calloc((size_t)nrows, sizeof *ys), sep = 0;
    if (!names || !ys) {
        free(names);
        free(ys);
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    }
    int ymax = nrows - 1 + (nt - 1);   /* one empty row between traces */
    int show = nops <= 400;
    for (int pass = 0; pass < 2; pass++) {
        fprintf(o->data, pass ? "\n\n# ops: kind x y xlow xhigh ylow yhigh label\n"
                              : "# idle bands: kind x y xlow xhigh ylow yhigh label\n");
        int r = 0, y = ymax;
        for (int k = 0; k < nt; k++) {
            for (int i = 0; i < tr[k].nrows; i++, r++, y--) {
                const row *w = &tr[k].rows[i];
                if (pass == 0) {
                    char buf[300];
                    if (w->name) snprintf(buf, sizeof buf, "%s%s%s", prefix[k], *prefix[k] ? ": " : "", w->name);
                    else snprintf(buf, sizeof buf, "%s%stid %ld", prefix[k], *prefix[k] ? ": " : "", w->tid);
                    names[r] = strdup(buf);
                    ys[r] = y;
                    fprintf(o->data, "-1 %.10g %d 0 %.10g %.3f %.3f \"\"\n", tr[k].span_ms / 2, y,
                            tr[k].span_ms, y - 0.42, y + 0.42);
                    continue;
                }
                for (int j = 0; j < tr[k].nops; j++) {
                    const op *p = &tr[k].ops[j];
                    if (p->row != i) continue;
                    int wide = p->end - p->start >= 0.02 * xmax;
                    fprintf(o->data, "%d %.10g %d %.10g %.10g %.3f %.3f ", p->kind, (p->start + p->end) / 2, y,
                            p->start, p->end, y - 0.36, y + 0.36);
                    mp_gp_put_field(o->data, wide ? p->label : "");
                    fputc('\n', o->data);
                    other |= p->kind == K_OTHER;
                    wgrad |= p->kind == K_WGRAD;
                    allred |= p->kind == K_ALLREDUCE;
                }
            }
            if (k == 0 && nt > 1) sep = y;   /* the empty row between the traces */
            y--;
        }
    }
    mp_gp_var_str(o, "title", title);
    mp_gp_var_num(o, "nrows", nrows);
    mp_gp_var_strs(o, "rowname", nrows, (const char *const *)names);
    mp_gp_var_nums(o, "rowy", nrows, ys);
    mp_gp_var_num(o, "xmax", xmax > 0 ? xmax * 1.01 : 1);
    mp_gp_var_num(o, "ymax", ymax);
    /* the legend: the five pipeline kinds, then those present of weight
     * gradient, all-reduce and other (timeline.gp draws kind k when
     * kshow[k:k] is "1") */
    char kshow[9] = "11111000";
    kshow[5] = wgrad ? '1' : '0';
    kshow[6] = allred ? '1' : '0';
    kshow[7] = other ? '1' : '0';
    mp_gp_var_str(o, "kshow", kshow);
    mp_gp_var_num(o, "show_labels", show);
    mp_gp_var_num(o, "nsep", nt > 1);
    mp_gp_var_nums(o, "sepy", 1, &sep);
    for (int i = 0; i < nrows; i++) free(names[i]);
    free(names);
    free(ys);
    return MP_OK;
}

typedef struct {
    mp_plot_base b;
    const char *names;
} args;

/* One option's value into a (mp_cli_opt_fn). */
static mp_status take(void *ctx, int c, const char *v, mp_error *err)
{
    args *a = ctx;
    switch (c) {
    case O_NAMES: a->names = v; return MP_OK;
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see mpplot timeline --help)");
    }
}

int mp_plot_timeline_main(int argc, char **argv)
{
    args a = { .names = "predicted,measured" };
    int code = mp_plot_parse(argc, argv, "timeline", SYNOPSIS, ABOUT, opts, NOPTS, take, &a, &a.b);
    if (code >= 0) return code;
    const char *out = a.b.out, *title = a.b.title, *names = a.names;
    int nt = argc - optind;
    if (nt < 1 || nt > 2 || !out) {
        fprintf(stderr, "usage: mpplot " SYNOPSIS "\n");
        return 2;
    }
    char pa[128] = "", pb[128] = "";
    const char *comma = strchr(names, ',');
    if (nt == 2) {
        if (!comma) {
            fprintf(stderr, "mpplot timeline: --names: expected A,B, got \"%s\"\n", names);
            return 2;
        }
        snprintf(pa, sizeof pa, "%.*s", (int)(comma - names), names);
        snprintf(pb, sizeof pb, "%s", comma + 1);
    }
    char *prefix[2] = { pa, pb };
    trace tr[2] = { { 0 }, { 0 } };
    mp_error err = { 0 };
    mp_gp_out o = { 0 };
    mp_status st = mp_gp_out_init(&o, out, 1200, 10, &err);
    for (int k = 0; k < nt && st == MP_OK; k++) st = load_trace(argv[optind + k], &tr[k], &err);
    if (st == MP_OK) {
        int rows = tr[0].nrows + tr[1].nrows + (nt - 1);
        o.height = 150 + 30 * rows;
        char t[1200];
        if (title) snprintf(t, sizeof t, "%s", title);
        else if (nt == 1) snprintf(t, sizeof t, "%s: %.3f ms", argv[optind], tr[0].span_ms);
        else snprintf(t, sizeof t, "%s %.3f ms (top) vs %s %.3f ms (bottom)", pa, tr[0].span_ms, pb, tr[1].span_ms);
        if (!title) mp_plot_busy_title(t, sizeof t, tr[0].others_pct > tr[1].others_pct ? tr[0].others_pct : tr[1].others_pct);
        st = write_plot(&o, tr, nt, prefix, t, &err);
    }
    if (st == MP_OK) st = mp_gp_finish(&o, "timeline", &err);
    if (st == MP_OK)
        printf("mpplot timeline: %d row%s, %.3f ms: wrote %s\n", tr[0].nrows + tr[1].nrows,
               tr[0].nrows + tr[1].nrows == 1 ? "" : "s", tr[0].span_ms, out);
    trace_free(&tr[0]);
    trace_free(&tr[1]);
    mp_gp_out_free(&o);
    return st == MP_OK ? 0 : mp_plot_fail("timeline", st, err.msg);
}
