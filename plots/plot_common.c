/* plot_common.c — command-line helpers shared by mpplot's subcommands (plot.h). */
#include "plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

/* See plot.h. */
int mp_plot_base_opt(void *base, int id, const char *v, mp_error *err)
{
    mp_plot_base *b = base;
    int g = mp_cli_cluster_opt(&b->ca, id, v, err);
    if (g) return g;
    switch (id) {
    case 'o': b->out = v; return 1;
    case MP_PLOT_O_TITLE: b->title = v; return 1;
    case MP_PLOT_O_HELP: b->help = 1; return 1;
    default: return 0;
    }
}

/* See plot.h. */
int mp_plot_parse(int argc, char **argv, const char *sub, const char *synopsis, const char *about,
                  const mp_plot_opt *o, int n, mp_cli_opt_fn fn, void *ctx, mp_plot_base *base)
{
    mp_error err = { 0 };
    mp_cli_cluster_init(&base->ca);
    mp_status st = mp_cli_parse_group(argc, argv, o, n, "o:", mp_plot_base_opt, base, fn, ctx, &err);
    if (st != MP_OK) return mp_plot_fail(sub, st, err.msg);
    if (base->help) {
        mp_plot_usage(stdout, synopsis, about, o, n);
        return 0;
    }
    return -1;
}

/* See plot.h. */
void mp_plot_usage(FILE *f, const char *synopsis, const char *about, const mp_plot_opt *o, int n)
{
    fprintf(f, "usage: mpplot %s\n\n%s\n\n", synopsis, about);
    mp_cli_print_options(f, o, n, "o", 28);
    fputs("\nThe image is PNG or SVG by its extension; IMAGE-without-extension.dat and\n"
          ".gp are written next to it (rerun: gnuplot NAME.gp).\n", f);
}

/* See plot.h. */
int mp_plot_fail(const char *sub, mp_status st, const char *msg)
{
    if (st == MP_ERR_BACKEND) fprintf(stderr, "mpplot: %s\n", msg);
    else fprintf(stderr, "mpplot %s: %s\n", sub, msg);
    return mp_exit_code(st);
}

/* See plot.h. */
mp_status mp_plot_state_factor(const char *v, double *out, mp_error *err)
{
    double x;
    mp_status st = mp_cli_number("state-factor", v, 0, &x, err);
    if (st == MP_OK && x > 1e6)
        st = mp_error_set(err, MP_ERR_USAGE, "--state-factor: expected a number from 0 to 1e6, got \"%s\"", v);
    if (st == MP_OK) *out = x;
    return st;
}

/* ---------------------------------------------------------------- JSON */

/* See plot.h. */
mp_status mp_plot_load_json(const char *path, json_t **out, mp_error *err)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    mp_status st = mp_json_read_file(path, &text, &len, err);
    if (st != MP_OK) return st;
    json_error_t je;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    free(text);
    if (!*out)
        return mp_error_set(err, MP_ERR_INPUT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return MP_OK;
}

/* See plot.h. */
int mp_plot_json_num(const json_t *obj, const char *key, double *out)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return -1;
    double x = json_number_value(v);
    if (!isfinite(x)) return -1;
    *out = x;
    return 1;
}

/* See plot.h. */
const char *mp_plot_bytes_unit(double max, double *scale)
{
    static const struct { double s; const char *n; } u[] = {
        { 1073741824.0, "GiB" }, { 1048576.0, "MiB" }, { 1024.0, "KiB" } };
    for (int i = 0; i < 3; i++)
        if (max >= u[i].s) { *scale = u[i].s; return u[i].n; }
    *scale = 1;
    return "bytes";
}
