/* plot_accuracy.c — `mpplot accuracy VALIDATE.json -o IMAGE`: predicted
 * against measured iteration time with the y = x line, the mean error in the
 * title. VALIDATE.json (what `make validate` writes to out/validate.json):
 *   [{"config": "1f1b K=2 b=8", "predicted_ms": p, "measured_ms": m, "error_pct": e}, ...]
 * config and error_pct are optional (error = 100 * (p - m) / m). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"

static const mp_plot_opt opts[] = {
    MP_PLOT_OPT_OUTPUT,
    MP_PLOT_OPT_TITLE("title before the mean error"),
    MP_PLOT_OPT_HELP,
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))
#define SYNOPSIS "accuracy VALIDATE.json -o IMAGE [--title TEXT]"
#define ABOUT "Predicted against measured iteration time, one point per configuration,\n" \
              "with the y = x line and the mean |error| in the title. VALIDATE.json:\n" \
              "[{\"config\": \"...\", \"predicted_ms\": p, \"measured_ms\": m, \"error_pct\": e}, ...]"

/* Writes the data rows; returns the number of points or -1 with err set. */
static int write_points(const char *path, const json_t *arr, FILE *f, double *mean_err,
                        double *max_ms, mp_error *err)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        mp_error_set(err, MP_ERR_INPUT, "%s: expected a non-empty array of "
                     "{\"config\", \"predicted_ms\", \"measured_ms\", \"error_pct\"}", path);
        return -1;
    }
    fputs("# config predicted_ms measured_ms error_pct\n", f);
    double sum = 0;
    *max_ms = 0;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        double p = 0, m = 0, pct = 0;
        if (!json_is_object(e)) {
            mp_error_set(err, MP_ERR_INPUT, "%s: [%zu]: expected an object", path, i);
            return -1;
        }
        if (mp_plot_json_num(e, "predicted_ms", &p) != 1 || p <= 0) {
            mp_error_set(err, MP_ERR_INPUT, "%s: [%zu].predicted_ms: expected a positive number", path, i);
            return -1;
        }
        if (mp_plot_json_num(e, "measured_ms", &m) != 1 || m <= 0) {
            mp_error_set(err, MP_ERR_INPUT, "%s: [%zu].measured_ms: expected a positive number", path, i);
            return -1;
        }
        int has = mp_plot_json_num(e, "error_pct", &pct);
        if (has < 0) {
            mp_error_set(err, MP_ERR_INPUT, "%s: [%zu].error_pct: expected a number", path, i);
            return -1;
        }
        if (!has) pct = 100.0 * (p - m) / m;
        json_t *c = json_object_get(e, "config");
        if (c && !json_is_string(c)) {
            mp_error_set(err, MP_ERR_INPUT, "%s: [%zu].config: expected a string", path, i);
            return -1;
        }
        char def[32];
        snprintf(def, sizeof def, "#%zu", i);
        mp_gp_put_field(f, c ? json_string_value(c) : def);
        fprintf(f, " %.10g %.10g %.10g\n", p, m, pct);
        sum += fabs(pct);
        if (p > *max_ms) *max_ms = p;
        if (m > *max_ms) *max_ms = m;
    }
    *mean_err = sum / (double)json_array_size(arr);
    return (int)json_array_size(arr);
}

/* No options but the common ones (mp_cli_opt_fn). */
static mp_status take(void *ctx, int c, const char *v, mp_error *err)
{
    (void)ctx;
    (void)c;
    (void)v;
    return mp_error_set(err, MP_ERR_USAGE, "unknown option (see mpplot accuracy --help)");
}

int mp_plot_accuracy_main(int argc, char **argv)
{
    mp_plot_base b = { 0 };   /* the only options: -o, --title, --help */
    int code = mp_plot_parse(argc, argv, "accuracy", SYNOPSIS, ABOUT, opts, NOPTS, take, NULL, &b);
    if (code >= 0) return code;
    const char *out = b.out, *title = b.title;
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "usage: mpplot " SYNOPSIS "\n");
        return 2;
    }
    const char *path = argv[optind];
    mp_error err = { 0 };
    json_t *j = NULL;
    mp_gp_out o;
    mp_status st = mp_gp_out_init(&o, out, 800, 760, &err);
    if (st != MP_OK) return mp_plot_fail("accuracy", st, err.msg);
    st = mp_plot_load_json(path, &j, &err);
    double mean = 0, maxv = 0;
    int n = 0;
    if (st == MP_OK && (n = write_points(path, j, o.data, &mean, &maxv, &err)) < 0) st = err.status;
    if (st == MP_OK) {
        char t[1200];
        snprintf(t, sizeof t, "%s%spredicted vs measured: mean |error| %.1f%% over %d configuration%s",
                 title ? title : "", title ? " — " : "", mean, n, n == 1 ? "" : "s");
        double busy = 0;
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) mp_plot_busy_scan(e, &busy);
        mp_plot_busy_title(t, sizeof t, busy);
        mp_gp_var_str(&o, "title", t);
        mp_gp_var_num(&o, "axis_max", maxv * 1.1);
        mp_gp_var_num(&o, "show_labels", n <= 16);
        mp_gp_var_num(&o, "mean_error_pct", mean);
        st = mp_gp_finish(&o, "accuracy", &err);
    }
    json_decref(j);
    mp_gp_out_free(&o);
    if (st != MP_OK) return mp_plot_fail("accuracy", st, err.msg);
    printf("mpplot accuracy: %d configurations, mean |error| %.1f%%: wrote %s\n", n, mean, out);
    return 0;
}
