/* plot_latency.c — `mpplot latency`: serving p50 and p99 latency against the
 * offered rate, the SLO as a line, measured points on top. Either
 *   SWEEP.json: {"slo_ms": L, "points": [{"rate": r, "p50_ms": a, "p99_ms": b,
 *               "throughput": t}, ...]}   (mpplan --serve --evaluate PLAN
 *               --rates A:B:N --json writes exactly this; slo_ms optional)
 * or --profile P.json --plan PLAN.json --rates A:B:N: the serving simulator
 * (sim/serve.h) run here on the serving plan at N rates, Poisson arrivals
 * (--requests, --seed; as mpplan --serve). Measured files (--measured, any
 * number): {"rate": r, "p50_ms": a, "p99_ms": b}, an array of those, or
 * {"points": [...]}. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"
#include "serve.h"
#include "serve_plan.h"
#include "serve_search.h"

enum { O_PROFILE = 256, O_PLAN, O_RATES, O_SLO, O_MEASURED, O_REQUESTS, O_SEED, O_TITLE, O_HELP };
static const mp_plot_opt opts[] = {
    { "output", required_argument, 'o', "IMAGE", "the image: .png or .svg (required)" },
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile (with --plan, --rates)" },
    { "plan", required_argument, O_PLAN, "PLAN.json", "serving plan (mpplan --serve -o)" },
    { "rates", required_argument, O_RATES, "A:B:N", "N offered rates from A to B requests/s" },
    { "devices", required_argument, MP_PLOT_O_DEVICES, "K", "K identical devices (default: one per stage)" },
    { "memory", required_argument, MP_PLOT_O_MEMORY, "SIZE", "memory per device" },
    { "bandwidth", required_argument, MP_PLOT_O_BANDWIDTH, "BW", "link bandwidth (default 25GB/s)" },
    { "latency", required_argument, MP_PLOT_O_LATENCY, "T", "link latency (default 10us)" },
    { "cluster", required_argument, MP_PLOT_O_CLUSTER, "C.json", "cluster file" },
    { "requests", required_argument, O_REQUESTS, "N", "simulated requests per rate (default 10000)" },
    { "seed", required_argument, O_SEED, "N", "Poisson seed (default 1)" },
    { "slo-ms", required_argument, O_SLO, "L", "latency target in ms (default: from the input)" },
    { "measured", required_argument, O_MEASURED, "R.json", "measured point(s); repeatable" },
    { "title", required_argument, O_TITLE, "TEXT", "the plot's title" },
    { "help", no_argument, O_HELP, NULL, "this text" },
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))
#define MAX_MEASURED 64
#define SYNOPSIS "latency (SWEEP.json | --profile P.json --plan PLAN.json --rates A:B:N) [--slo-ms L]\n" \
                 "                      [--measured R.json]... -o IMAGE"
#define ABOUT "p50 and p99 latency against offered rate, the SLO as a line, measured points\n" \
              "on top. SWEEP.json is what mpplan --serve --evaluate PLAN --rates A:B:N --json\n" \
              "writes: {\"slo_ms\": L, \"points\": [{\"rate\", \"p50_ms\", \"p99_ms\", \"throughput\"}]}.\n" \
              "A measured file: {\"rate\", \"p50_ms\", \"p99_ms\"}, an array of them or {\"points\": [...]}."

typedef struct {
    const char *sweep, *profile, *plan, *rates, *out, *title;
    const char *measured[MAX_MEASURED];
    int nmeasured, requests;
    unsigned long seed;
    double slo_ms, rlo, rhi;
    int rn;
    mp_plot_cluster_args ca;
} args;

typedef struct {
    double rate, p50, p99, tput;
    double others_pct;   /* measured points: other processes' CPU share during the run */
} point;

static int bad(const char *fmt, const char *v)
{
    fprintf(stderr, "mpplot latency: ");
    fprintf(stderr, fmt, v);
    fputc('\n', stderr);
    return 2;
}

static int parse(int argc, char **argv, args *a)
{
    struct option lo[MP_PLOT_MAX_OPTS + 1];
    mp_plot_longopts(opts, NOPTS, lo);
    memset(a, 0, sizeof *a);
    a->slo_ms = -1;
    a->requests = 10000;
    a->seed = 1;
    mp_error err = { 0 };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
        int r = mp_plot_cluster_opt(&a->ca, c, optarg, &err);
        if (r < 0) return mp_plot_fail("latency", err.status, err.msg);
        if (r) continue;
        char *end;
        switch (c) {
        case 'o': a->out = optarg; break;
        case O_PROFILE: a->profile = optarg; break;
        case O_PLAN: a->plan = optarg; break;
        case O_TITLE: a->title = optarg; break;
        case O_RATES: {
            char tail;
            a->rates = optarg;
            if (sscanf(optarg, "%lf:%lf:%d%c", &a->rlo, &a->rhi, &a->rn, &tail) != 3 || !(a->rlo > 0) ||
                !(a->rhi >= a->rlo) || !isfinite(a->rhi) || a->rn < 1 || a->rn > 10000)
                return bad("--rates: expected A:B:N with 0 < A <= B and 1 <= N <= 10000, got \"%s\"", optarg);
            break;
        }
        case O_SLO:
            a->slo_ms = strtod(optarg, &end);
            if (*optarg == 0 || *end || !(a->slo_ms > 0) || !isfinite(a->slo_ms))
                return bad("--slo-ms: expected a positive number, got \"%s\"", optarg);
            break;
        case O_REQUESTS: {
            long n = strtol(optarg, &end, 10);
            if (*optarg == 0 || *end || n < 1 || n > 100000000)
                return bad("--requests: expected a count >= 1, got \"%s\"", optarg);
            a->requests = (int)n;
            break;
        }
        case O_SEED:
            a->seed = strtoul(optarg, &end, 10);
            if (*optarg == 0 || *end) return bad("--seed: expected a number, got \"%s\"", optarg);
            break;
        case O_MEASURED:
            if (a->nmeasured == MAX_MEASURED) return bad("--measured: at most 64 files%s", "");
            a->measured[a->nmeasured++] = optarg;
            break;
        case O_HELP: mp_plot_usage(stdout, SYNOPSIS, ABOUT, opts, NOPTS); return 0;
        default: return bad("bad option %s (see mpplot latency --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) a->sweep = argv[optind++];
    int sim = a->profile || a->plan || a->rates;
    if (optind != argc || !a->out || (sim && a->sweep) || (!sim && !a->sweep) ||
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
    mp_serve_plan p = { 0 };
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_serve_ctx ctx = { 0 };
    mp_serve_arrivals arr = { 0 };
    double *t = NULL;
    int last = -1;
    double pslo = -1;
    mp_status st = mp_serve_plan_load(a->plan, &p, &last, &pslo, err);
    if (st == MP_OK) st = mp_profile_load(a->profile, &prof, err);
    if (st == MP_OK) st = mp_plot_load_cluster(&a->ca, p.num_stages, &cl, err);
    if (st == MP_OK && last != prof.num_layers - 1)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: stages cover layers 0..%d but %s has %d layers", a->plan,
                          last, a->profile, prof.num_layers);
    if (st == MP_OK && p.num_stages > cl.num_devices)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: %d stages but only %d devices", a->plan, p.num_stages,
                          cl.num_devices);
    if (a->slo_ms > 0) pslo = a->slo_ms;
    *slo = pslo;
    if (st == MP_OK) st = mp_serve_ctx_init(&ctx, &prof, &cl, p.max_batch, err);
    mp_serve_arrivals_poisson(&arr, a->requests, a->seed);
    if (st == MP_OK && !(t = malloc((size_t)a->requests * sizeof *t)))
        st = mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    if (st == MP_OK && !(*v = malloc((size_t)a->rn * sizeof **v)))
        st = mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MP_OK && i < a->rn; i++) {
        double r = a->rn > 1 ? a->rlo + i * (a->rhi - a->rlo) / (a->rn - 1) : a->rlo;
        mp_serve_arrivals_at_rate(&arr, r, t);
        st = mp_serve_ctx_eval(&ctx, &p, t, a->requests, pslo > 0 ? pslo : 1e300, err);
        if (st == MP_OK)
            (*v)[(*n)++] = (point){ r, p.metrics.p50_ms, p.metrics.p99_ms, p.metrics.throughput_rps, 0 };
    }
    free(t);
    mp_serve_arrivals_free(&arr);
    mp_serve_ctx_free(&ctx);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
    mp_serve_plan_free(&p);
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
    if (a->title) snprintf(t, sizeof t, "%s", a->title);
    else if (a->sweep) snprintf(t, sizeof t, "serving latency: %s", a->sweep);
    else snprintf(t, sizeof t, "serving latency: %s (%d Poisson requests per rate)", a->plan, a->requests);
    double busy = 0;
    for (int i = 0; i < nm; i++)
        if (mv[i].others_pct > busy) busy = mv[i].others_pct;
    if (!a->title) mp_plot_busy_title(t, sizeof t, busy);
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
    mp_status st = mp_gp_out_init(&o, a.out, 900, 600, &err);
    if (st == MP_OK) st = a.sweep ? read_points(a.sweep, 1, &pv, &np, &slo, &err) : simulate(&a, &pv, &np, &slo, &err);
    if (a.slo_ms > 0) slo = a.slo_ms;
    for (int i = 0; st == MP_OK && i < a.nmeasured; i++) st = read_points(a.measured[i], 0, &mv, &nm, &unused, &err);
    if (st == MP_OK) {
        write_plot(&o, &a, pv, np, mv, nm, slo);
        st = mp_gp_finish(&o, "latency", &err);
    }
    if (st == MP_OK)
        printf("mpplot latency: %d rates, %d measured points: wrote %s\n", np, nm, a.out);
    free(pv);
    free(mv);
    mp_gp_out_free(&o);
    return st == MP_OK ? 0 : mp_plot_fail("latency", st, err.msg);
}
