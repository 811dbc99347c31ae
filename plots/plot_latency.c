/* plot_latency.c — `mpplot latency`: serving p50 and p99 latency against the
 * offered rate, the SLO as a line, measured points on top. Either
 *   SWEEP.json: {"slo_ms": L, "points": [{"rate": r, "p50_ms": a, "p99_ms": b,
 *               "throughput": t}, ...]}   (mpplan --serve --evaluate PLAN
 *               --rates A:B:N --json writes exactly this; slo_ms optional)
 * or --profile P.json --plan PLAN.json --rates A:B:N: the serving simulator
 * (sim/serve.h) run here on the serving plan at N rates, Poisson arrivals
 * (--requests, --seed; as mpplan --serve), with the measured terms of
 * --calibration R.json (as mpplan --serve --calibration). Measured files (--measured, any
 * number): {"rate": r, "p50_ms": a, "p99_ms": b}, an array of those, or
 * {"points": [...]}. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"
#include "serve.h"
#include "plan.h"
#include "serve_eval.h"

enum { O_PROFILE = 256, O_PLAN, O_RATES, O_SLO, O_MEASURED, O_REQUESTS, O_SEED, O_CALIB };
static const mp_plot_opt opts[] = {
    MP_PLOT_OPT_OUTPUT,
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile (with --plan, --rates)" },
    { "plan", required_argument, O_PLAN, "PLAN.json", "serving plan (mpplan --serve -o)" },
    { "rates", required_argument, O_RATES, "A:B:N", "N offered rates from A to B requests/s" },
    MP_CLI_OPT_DEVICES("K identical devices (default: one per stage)"),
    MP_CLI_OPT_MEMORY("memory per device"),
    MP_CLI_OPT_BANDWIDTH("link bandwidth"),
    MP_CLI_OPT_LATENCY("link latency"),
    MP_CLI_OPT_CLUSTER("cluster file"),
    { "requests", required_argument, O_REQUESTS, "N", "simulated requests per rate (default 10000)" },
    { "seed", required_argument, O_SEED, "N", "Poisson seed (default 1)" },
    { "calibration", required_argument, O_CALIB, "R.json", "prediction terms from a serving report's \"calibration\" (as mpplan --serve)" },
    { "slo-ms", required_argument, O_SLO, "L", "latency target in ms (default: from the input)" },
    { "measured", required_argument, O_MEASURED, "R.json", "measured point(s); repeatable" },
    MP_PLOT_OPT_TITLE("the plot's title"),
    MP_PLOT_OPT_HELP,
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))
#define MAX_MEASURED 64
#define SYNOPSIS "latency (SWEEP.json | --profile P.json --plan PLAN.json --rates A:B:N [--calibration R.json])\n" \
                 "                      [--slo-ms L] [--measured R.json]... -o IMAGE"
#define ABOUT "p50 and p99 latency against offered rate, the SLO as a line, measured points\n" \
              "on top. SWEEP.json is what mpplan --serve --evaluate PLAN --rates A:B:N --json\n" \
              "writes: {\"slo_ms\": L, \"points\": [{\"rate\", \"p50_ms\", \"p99_ms\", \"throughput\"}]}.\n" \
              "A measured file: {\"rate\", \"p50_ms\", \"p99_ms\"}, an array of them or {\"points\": [...]}."

typedef struct {
    mp_plot_base b;
    const char *sweep, *profile, *plan, *rates, *calibration;
    const char *measured[MAX_MEASURED];
    int nmeasured, requests;
    unsigned long seed;
    double slo_ms, rlo, rhi;
    int rn;
} args;

typedef struct {
    double rate, p50, p99, tput;
    double others_pct;   /* measured points: other processes' CPU share during the run */
} point;

/* One option's value into a (mp_cli_opt_fn). */
static mp_status take(void *ctx, int c, const char *v, mp_error *err)
{
    args *a = ctx;
    switch (c) {
    case O_PROFILE: a->profile = v; return MP_OK;
    case O_PLAN: a->plan = v; return MP_OK;
    case O_CALIB: a->calibration = v; return MP_OK;
    case O_RATES:
        a->rates = v;
        return mp_cli_rates("rates", v, 10000, 1, &a->rlo, &a->rhi, &a->rn, err);
    case O_SLO: return mp_cli_number("slo-ms", v, 1, &a->slo_ms, err);
    case O_REQUESTS: return mp_cli_int("requests", v, 1, 100000000, &a->requests, err);
    case O_SEED: return mp_cli_seed("seed", v, &a->seed, err);
    case O_MEASURED:
        if (a->nmeasured == MAX_MEASURED) return mp_error_set(err, MP_ERR_USAGE, "--measured: at most %d files", MAX_MEASURED);
        a->measured[a->nmeasured++] = v;
        return MP_OK;
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see mpplot latency --help)");
    }
}

static int parse(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->slo_ms = -1;
    a->requests = 10000;
    a->seed = 1;
    int code = mp_plot_parse(argc, argv, "latency", SYNOPSIS, ABOUT, opts, NOPTS, take, a, &a->b);
    if (code >= 0) return code;
    if (optind < argc) a->sweep = argv[optind++];
    int sim = a->profile || a->plan || a->rates || a->calibration;
    if (optind != argc || !a->b.out || (sim && a->sweep) || (!sim && !a->sweep) ||
        (sim && (!a->profile || !a->plan || !a->rates))) {
        fprintf(stderr, "usage: mpplot " SYNOPSIS "\n");
        return 2;
    }
    return -1;
}

/* Reads one point object; `where` names it in messages. */
static mp_status read_point(const char *path, const char *where, const json_t *o, point *p,
                            mp_error *err)
{
    if (!json_is_object(o)) return mp_error_set(err, MP_ERR_INPUT, "%s: %s: expected an object", path, where);
    static const char *keys[] = { "rate", "p50_ms", "p99_ms" };
    double *dst[] = { &p->rate, &p->p50, &p->p99 };
    for (int k = 0; k < 3; k++)
        if (mp_plot_json_num(o, keys[k], dst[k]) != 1 || *dst[k] < 0)
            return mp_error_set(err, MP_ERR_INPUT, "%s: %s.%s: expected a number >= 0", path, where, keys[k]);
    p->tput = NAN;
    p->others_pct = 0;
    mp_plot_busy_scan(o, &p->others_pct);
    int t = mp_plot_json_num(o, "throughput", &p->tput);
    if (t < 0)
        return mp_error_set(err, MP_ERR_INPUT, "%s: %s.throughput: expected a number", path, where);
    return MP_OK;
}

/* Appends the points of a sweep or measured file to *v (grown). */
static mp_status read_points(const char *path, int sweep, point **v, int *n, double *slo, mp_error *err)
{
    json_t *j = NULL;
    mp_status st = mp_plot_load_json(path, &j, err);
    if (st != MP_OK) return st;
    json_t *arr = json_is_array(j) ? j : json_object_get(j, "points");
    if (sweep && !json_is_object(j)) {
        json_decref(j);
        return mp_error_set(err, MP_ERR_INPUT, "%s: expected {\"slo_ms\": L, \"points\": [...]}", path);
    }
    if (sweep) {
        double s;
        int h = mp_plot_json_num(j, "slo_ms", &s);
        if (h < 0 || (h && s <= 0)) st = mp_error_set(err, MP_ERR_INPUT, "%s: slo_ms: expected a positive number", path);
        else if (h) *slo = s;
    }
    size_t cnt = arr ? json_array_size(arr) : 1;
    if (st == MP_OK && sweep && (!json_is_array(arr) || cnt == 0))
        st = mp_error_set(err, MP_ERR_INPUT, "%s: points: expected a non-empty array", path);
    if (st == MP_OK && arr && !json_is_array(arr))
        st = mp_error_set(err, MP_ERR_INPUT, "%s: points: expected an array", path);
    point *g = st == MP_OK ? realloc(*v, (size_t)(*n + (int)cnt + 1) * sizeof *g) : NULL;
    if (st == MP_OK && !g) st = mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    if (g) *v = g;
    for (size_t i = 0; st == MP_OK && i < cnt; i++) {
        char where[48];
        snprintf(where, sizeof where, arr ? "points[%zu]" : "measured", i);
        st = read_point(path, where, arr ? json_array_get(arr, i) : j, &(*v)[*n], err);
        if (st == MP_OK) (*n)++;
    }
    json_decref(j);
    return st;
}

/* Simulates the serving plan at the requested rates. */
static mp_status simulate(const args *a, point **v, int *n, double *slo, mp_error *err)
{
    mp_plan p = { 0 };
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_serve_eval ctx = { 0 };
    mp_serve_arrivals arr = { 0 };
    mp_serve_result m;
    double *t = NULL;
    mp_status st = mp_plan_load(a->plan, &p, err);
    if (st == MP_OK) st = mp_profile_load(a->profile, &prof, err);
    if (st == MP_OK) st = mp_plan_check_serve(&p, prof.num_layers, a->plan, err);
    if (st == MP_OK) st = mp_cli_cluster_build(&a->b.ca, p.num_stages, &cl, err);
    if (st == MP_OK && p.num_stages > cl.num_devices)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: %d stages but only %d devices", a->plan, p.num_stages,
                          cl.num_devices);
    double pslo = a->slo_ms > 0 ? a->slo_ms : mp_plan_slo_ms(&p);
    *slo = pslo;
    mp_serve_terms terms = mp_serve_terms_default();
    if (st == MP_OK && a->calibration) st = mp_serve_calibration_load(a->calibration, &terms, err);
    if (st == MP_OK) st = mp_serve_eval_init(&ctx, &prof, &cl, p.max_batch, &terms, err);
    mp_serve_arrivals_poisson(&arr, a->requests, a->seed);
    if (st == MP_OK && !(t = malloc((size_t)a->requests * sizeof *t)))
        st = mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    if (st == MP_OK && !(*v = malloc((size_t)a->rn * sizeof **v)))
        st = mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MP_OK && i < a->rn; i++) {
        double r = a->rn > 1 ? a->rlo + i * (a->rhi - a->rlo) / (a->rn - 1) : a->rlo;
        mp_serve_arrivals_at_rate(&arr, r, t);
        st = mp_serve_eval_plan(&ctx, &p, t, a->requests, pslo > 0 ? pslo : 1e300, &m, NULL, NULL, err);
        if (st == MP_OK) (*v)[(*n)++] = (point){ r, m.p50_ms, m.p99_ms, m.throughput_rps, 0 };
    }
    free(t);
    mp_serve_arrivals_free(&arr);
    mp_serve_eval_free(&ctx);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
    mp_plan_free(&p);
    return st;
}

static void write_block(FILE *f, const point *v, int n)
{
    fputs("# rate p50_ms p99_ms throughput\n", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%.10g %.10g %.10g ", v[i].rate, v[i].p50, v[i].p99);
        if (isnan(v[i].tput)) fputs("?\n", f);
        else fprintf(f, "%.10g\n", v[i].tput);
    }
}

static void write_plot(mp_gp_out *o, const args *a, const point *pv, int np, const point *mv, int nm,
                       double slo)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < np + nm; i++) {
        const point *q = i < np ? &pv[i] : &mv[i - np];
        if (q->p50 > 0 && q->p50 < lo) lo = q->p50;
        if (q->p99 > hi) hi = q->p99;
    }
    if (slo > 0) {
        if (slo > hi) hi = slo;
        if (slo < lo) lo = slo;
    }
    if (!isfinite(lo)) lo = hi > 0 ? hi / 10 : 0.1;
    if (hi <= 0) hi = 1;
    int logy = hi / lo > 50;
    write_block(o->data, pv, np);
    fputs("\n\n# measured\n", o->data);
    write_block(o->data, mv, nm);
    char t[1200];
    if (a->b.title) snprintf(t, sizeof t, "%s", a->b.title);
    else if (a->sweep) snprintf(t, sizeof t, "serving latency: %s", a->sweep);
    else snprintf(t, sizeof t, "serving latency: %s (%d Poisson requests per rate)", a->plan, a->requests);
    double busy = 0;
    for (int i = 0; i < nm; i++)
        if (mv[i].others_pct > busy) busy = mv[i].others_pct;
    if (!a->b.title) mp_plot_busy_title(t, sizeof t, busy);
    mp_gp_var_str(o, "title", t);
    mp_gp_var_num(o, "has_slo", slo > 0);
    mp_gp_var_num(o, "slo_ms", slo > 0 ? slo : 0);
    mp_gp_var_num(o, "has_measured", nm > 0);
    mp_gp_var_num(o, "logy", logy);
    mp_gp_var_num(o, "ylo", logy ? lo / 1.5 : 0);
    mp_gp_var_num(o, "yhi", logy ? hi * 1.5 : hi * 1.15);
}

int mp_plot_latency_main(int argc, char **argv)
{
    args a;
    int code = parse(argc, argv, &a);
    if (code >= 0) return code;
    mp_error err = { 0 };
    mp_gp_out o = { 0 };
    point *pv = NULL, *mv = NULL;
    int np = 0, nm = 0;
    double slo = -1, unused = -1;
    mp_status st = mp_gp_out_init(&o, a.b.out, 900, 600, &err);
    if (st == MP_OK) st = a.sweep ? read_points(a.sweep, 1, &pv, &np, &slo, &err) : simulate(&a, &pv, &np, &slo, &err);
    if (a.slo_ms > 0) slo = a.slo_ms;
    for (int i = 0; st == MP_OK && i < a.nmeasured; i++) st = read_points(a.measured[i], 0, &mv, &nm, &unused, &err);
    if (st == MP_OK) {
        write_plot(&o, &a, pv, np, mv, nm, slo);
        st = mp_gp_finish(&o, "latency", &err);
    }
    if (st == MP_OK)
        printf("mpplot latency: %d rates, %d measured points: wrote %s\n", np, nm, a.b.out);
    free(pv);
    free(mv);
    mp_gp_out_free(&o);
    return st == MP_OK ? 0 : mp_plot_fail("latency", st, err.msg);
}
