/* plot_memory.c — `mpplot memory PLAN.json --profile P.json (--devices K
 * --memory SIZE | --cluster C.json) -o IMAGE`: each stage's peak memory
 * (interleaved: each device's), predicted by mp_plan_evaluate, against its
 * device's capacity. */
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"
#include "gnuplot.h"
#include "plot.h"

enum { O_PROFILE = 256, O_STATE };
static const mp_plot_opt opts[] = {
    MP_PLOT_OPT_OUTPUT,
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile (required)" },
    MP_CLI_CLUSTER_OPTS,
    { "state-factor", required_argument, O_STATE, "F", "bytes of state per parameter byte (default 4)" },
    MP_PLOT_OPT_TITLE("the plot's title"),
    MP_PLOT_OPT_HELP,
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))
#define SYNOPSIS "memory PLAN.json --profile P.json (--devices K --memory SIZE | --cluster C.json) -o IMAGE"
#define ABOUT "Each stage's peak memory (interleaved: each device's), from the cost model,\n" \
              "against its device's capacity; a peak over capacity is drawn red."

typedef struct {
    mp_plot_base b;
    const char *plan, *profile;
    double state_factor;
} args;

/* One option's value into a (mp_cli_opt_fn). */
static mp_status take(void *ctx, int c, const char *v, mp_error *err)
{
    args *a = ctx;
    switch (c) {
    case O_PROFILE: a->profile = v; return MP_OK;
    case O_STATE: return mp_plot_state_factor(v, &a->state_factor, err);
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see mpplot memory --help)");
    }
}

static int parse(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->state_factor = MP_DEFAULT_STATE_FACTOR;
    int code = mp_plot_parse(argc, argv, "memory", SYNOPSIS, ABOUT, opts, NOPTS, take, a, &a->b);
    if (code >= 0) return code;
    if (optind != argc - 1 || !a->b.out || !a->profile) {
        fprintf(stderr, "usage: mpplot " SYNOPSIS "\n");
        return 2;
    }
    a->plan = argv[optind];
    return -1;
}

/* Writes the rows and the script's variables. */
static void write_plot(mp_gp_out *o, const args *a, const mp_plan *p, const mp_cluster *cl,
                       const mp_profile *prof)
{
    int inter = p->schedule == MP_SCHED_INTERLEAVED;
    int n = p->predicted.num_peaks;
    double maxb = 0, worst = 0;
    int over = 0;
    fputs("# label peak_bytes capacity_bytes fits\n", o->data);
    for (int i = 0; i < n; i++) {
        int dev = inter ? i : p->stages[i].device;
        double peak = p->predicted.peak_memory_bytes[i];
        double cap = cl->devices[dev].memory_bytes;
        char label[320];
        if (inter) snprintf(label, sizeof label, "device %d (%s)", dev, cl->devices[dev].name);
        else snprintf(label, sizeof label, "stage %d (%s)", i, cl->devices[dev].name);
        mp_gp_put_field(o->data, label);
        fprintf(o->data, " %.10g %.10g %d\n", peak, cap, peak <= cap);
        if (peak > maxb) maxb = peak;
        if (cap > maxb) maxb = cap;
        if (peak / cap > worst) worst = peak / cap;
        over += peak > cap;
    }
    double scale;
    const char *unit = mp_plot_bytes_unit(maxb, &scale);
    char t[1400];
    snprintf(t, sizeof t, "%s%s%s %s, b=%d, m=%d: fullest device at %.0f%% of its memory%s",
             a->b.title ? a->b.title : "", a->b.title ? " — " : "", prof->model ? prof->model : "model",
             mp_schedule_name(p->schedule), p->microbatch_size, p->num_microbatches, 100 * worst,
             over ? " (does not fit)" : "");
    mp_gp_var_str(o, "title", t);
    mp_gp_var_num(o, "scale", scale);
    mp_gp_var_str(o, "unit", unit);
    mp_gp_var_num(o, "ymax", maxb * 1.25);
    mp_gp_var_num(o, "n", n);
}

int mp_plot_memory_main(int argc, char **argv)
{
    args a;
    int code = parse(argc, argv, &a);
    if (code >= 0) return code;
    mp_error err = { 0 };
    mp_plan plan = { 0 };
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_gp_out o = { 0 };
    mp_status st = mp_gp_out_init(&o, a.b.out, 900, 560, &err);
    if (st == MP_OK) st = mp_plan_load(a.plan, &plan, &err);
    if (st == MP_OK) st = mp_profile_load(a.profile, &prof, &err);
    if (st == MP_OK) st = mp_cli_cluster_build(&a.b.ca, 0, &cl, &err);
    if (st == MP_OK) st = mp_plan_check(&plan, prof.num_layers, cl.num_devices, a.plan, &err);
    if (st == MP_OK) st = mp_plan_evaluate(&plan, &prof, &cl, a.state_factor, NULL, &err);
    if (st == MP_OK) {
        write_plot(&o, &a, &plan, &cl, &prof);
        st = mp_gp_finish(&o, "memory", &err);
    }
    if (st == MP_OK)
        printf("mpplot memory: %d %s, %s: wrote %s\n", plan.predicted.num_peaks,
               plan.schedule == MP_SCHED_INTERLEAVED ? "devices" : "stages",
               mp_plan_fits(&plan, &cl) ? "fits" : "does not fit", a.b.out);
    mp_gp_out_free(&o);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
    mp_plan_free(&plan);
    return st == MP_OK ? 0 : mp_plot_fail("memory", st, err.msg);
}
