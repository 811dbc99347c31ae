/* mpplan_serve.c — `mpplan --serve`: search a serving plan for a rate and an
 * SLO, or evaluate one over a range of rates (mpplan_serve.h, docs/serving.md).
 * defines: mp_mpplan_serve_main */
#include "mpplan_serve.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_cluster.h"
#include "cluster.h"
#include "json_util.h"
#include "profile.h"
#include "serve.h"
#include "serve_calibration.h"
#include "serve_search.h"
#include "units.h"

#define DEFAULT_REQUESTS 10000
#define DEFAULT_TOP 5

enum {
    O_SERVE = 256, O_PROFILE, O_RATE, O_SLO, O_MAXBATCH, O_MAXWAIT, O_REQUESTS, O_ARRIVALS, O_SEED, O_JSON,
    O_OUT, O_EVALUATE, O_RATES, O_TOP, O_CALIB, O_SCALE, O_OVERHEAD, O_DISPATCH, O_HELP
};

/* One table drives parsing and --help. */
static const mp_cli_opt opts[] = {
    { "serve", no_argument, O_SERVE, NULL, "plan for serving (this mode)" },
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile" },
    MP_CLI_CLUSTER_OPTS,
    { "rate", required_argument, O_RATE, "R", "offered load, requests per second" },
    { "slo-ms", required_argument, O_SLO, "L", "latency target in ms" },
    { "max-batch", required_argument, O_MAXBATCH, "auto|N", "batcher size (auto: 1,2,4..64)" },
    { "max-wait-ms", required_argument, O_MAXWAIT, "auto|X", "batcher timeout (auto: 0, L/8, L/4, L/2)" },
    { "requests", required_argument, O_REQUESTS, "N", "simulated requests (default 10000)" },
    { "arrivals", required_argument, O_ARRIVALS, "TRACE", "arrival times in seconds, one a line" },
    { "seed", required_argument, O_SEED, "N", "Poisson seed (default 1)" },
    { "json", no_argument, O_JSON, NULL, "one JSON object on stdout" },
    { "output", required_argument, O_OUT, "PLAN.json", "also write the plan (-o)" },
    { "evaluate", required_argument, O_EVALUATE, "PLAN.json", "predict a given serving plan" },
    { "rates", required_argument, O_RATES, "LO:HI:N", "with --evaluate: N rates from LO to HI" },
    { "top", required_argument, O_TOP, "N", "plans in the table (default 5)" },
    { "calibration", required_argument, O_CALIB, "R.json", "measured terms: the \"calibration\" of an mprun --serve --profile report" },
    { "fwd-scale", required_argument, O_SCALE, "F", "forward time = F x profile + overhead (default 1; overrides --calibration's)" },
    { "batch-overhead-ms", required_argument, O_OVERHEAD, "X", "fixed ms per batch per stage (default 0; overrides --calibration's)" },
    { "dispatch-ms", required_argument, O_DISPATCH, "X", "batcher wake-up delay of an idle stage 0 (default 0; overrides --calibration's)" },
    { "help", no_argument, O_HELP, NULL, "this text" },
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))

typedef struct {
    const char *profile, *arrivals, *out, *evaluate, *rates, *calibration;
    mp_cli_cluster devs;
    int requests, json, top, max_batch, help;     /* max_batch 0: auto */
    double rate, slo_ms, max_wait_ms;             /* rate/slo < 0: absent; wait < 0: auto */
    double fwd_scale, overhead_ms, dispatch_ms;   /* measured prediction terms (flags win over --calibration) */
    mp_serve_terms cal;                           /* --calibration's terms (its spread is used as is) */
    unsigned long seed;
    double rlo, rhi;
    int rn;
    int seen[O_HELP + 1];
} cli;

/* --calibration R.json's terms for those not given as flags. */
static mp_status load_terms(cli *c, mp_error *err)
{
    mp_serve_terms t;
    mp_error e = { 0 };
    if (!c->calibration) return MP_OK;
    if (mp_serve_calibration_load(c->calibration, &t, &e) != MP_OK)
        return mp_error_set(err, e.status, "--calibration %s", e.msg);
    c->cal = t;
    if (!c->seen[O_SCALE]) c->fwd_scale = t.fwd_scale;
    if (!c->seen[O_OVERHEAD]) c->overhead_ms = t.batch_overhead_ms;
    if (!c->seen[O_DISPATCH]) c->dispatch_ms = t.dispatch_ms;
    return MP_OK;
}

/* The measured prediction terms of the command line and --calibration. */
static mp_serve_terms terms_of(const cli *c)
{
    mp_serve_terms t = c->cal;
    t.fwd_scale = c->fwd_scale;
    t.batch_overhead_ms = c->overhead_ms;
    t.dispatch_ms = c->dispatch_ms;
    return t;
}

/* A "# prediction terms" line when they are not the profile's own. */
static void print_terms(const cli *c, FILE *f)
{
    if (!c->calibration && !c->seen[O_SCALE] && !c->seen[O_OVERHEAD] && !c->seen[O_DISPATCH]) return;
    char spread[96] = "";
    const mp_serve_terms *t = &c->cal;
    int lo = (int)(0.05 * t->n_spread);   /* the middle 90% or so, as mprun prints it */
    if (t->n_spread)
        snprintf(spread, sizeof spread, ", spread x%.2f..x%.2f", t->spread[lo], t->spread[t->n_spread - 1 - lo]);
    fprintf(f, "# prediction terms: forward = %.3f ms + %.3f x profile%s, dispatch %.3f ms%s%s%s\n", c->overhead_ms,
            c->fwd_scale, spread, c->dispatch_ms, c->calibration ? " (--calibration " : "",
            c->calibration ? c->calibration : "", c->calibration ? ")" : "");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mpplan --serve --profile P.json (--devices K --memory SIZE [--bandwidth BW] [--latency T] | --cluster C.json)\n"
               "              --rate R --slo-ms L [--max-batch auto|N] [--max-wait-ms auto|X] [--requests N]\n"
               "              [--arrivals TRACE] [--seed N] [--top N] [--calibration R.json] [--json] [-o PLAN.json]\n"
               "       mpplan --serve --evaluate PLAN.json --profile ... (--rate R | --rates LO:HI:N) [--slo-ms L]\n"
               "              [--calibration R.json] [--json]\n\n"
               "Measured terms: --calibration R.json takes fwd_scale, batch_overhead_ms and dispatch_ms from\n"
               "an mprun --serve --profile --report; --fwd-scale, --batch-overhead-ms, --dispatch-ms given\n"
               "on the command line override the file's values one by one.\n\n");
    mp_cli_print_options(f, opts, NOPTS, "", 28);
}

/* One option's value into c, the device/cluster group aside (mp_cli_opt_fn). */
static mp_status parse_opt(void *ctx, int ch, const char *v, mp_error *err)
{
    cli *c = ctx;
    if (ch == 'o') ch = O_OUT;
    if (ch == 'h') ch = O_HELP;
    c->seen[ch] = 1;
    switch (ch) {
    case O_SERVE: return MP_OK;
    case O_PROFILE: c->profile = v; return MP_OK;
    case O_ARRIVALS: c->arrivals = v; return MP_OK;
    case O_OUT: c->out = v; return MP_OK;
    case O_EVALUATE: c->evaluate = v; return MP_OK;
    case O_CALIB: c->calibration = v; return MP_OK;
    case O_JSON: c->json = 1; return MP_OK;
    case O_HELP: c->help = 1; return MP_OK;
    case O_RATE: return mp_cli_number("rate", v, 1, &c->rate, err);
    case O_SLO: return mp_cli_number("slo-ms", v, 1, &c->slo_ms, err);
    case O_MAXBATCH: return strcmp(v, "auto") ? mp_cli_int("max-batch", v, 1, 1 << 16, &c->max_batch, err) : MP_OK;
    case O_MAXWAIT: return strcmp(v, "auto") ? mp_cli_number("max-wait-ms", v, 0, &c->max_wait_ms, err) : MP_OK;
    case O_REQUESTS: return mp_cli_int("requests", v, 1, 100000000, &c->requests, err);
    case O_SEED: return mp_cli_seed("seed", v, &c->seed, err);
    case O_TOP: return mp_cli_int("top", v, 1, 1000, &c->top, err);
    case O_SCALE: return mp_cli_number("fwd-scale", v, 1, &c->fwd_scale, err);
    case O_OVERHEAD: return mp_cli_number("batch-overhead-ms", v, 0, &c->overhead_ms, err);
    case O_DISPATCH: return mp_cli_number("dispatch-ms", v, 0, &c->dispatch_ms, err);
    case O_RATES:
        c->rates = v;
        return mp_cli_rates("rates", v, 100000, 0, &c->rlo, &c->rhi, &c->rn, err);
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see mpplan --serve --help)");
    }
}

/* Cross-option checks, naming the flags involved. */
static mp_status validate(const cli *c, mp_error *err)
{
    if (!c->profile) return mp_error_set(err, MP_ERR_USAGE, "--profile: required");
    mp_status st = mp_cli_cluster_check(&c->devs, 0, err);
    if (st != MP_OK) return st;
    if (c->evaluate) {
        if (c->seen[O_MAXBATCH] || c->seen[O_MAXWAIT])
            return mp_error_set(err, MP_ERR_USAGE, "--evaluate: cannot be combined with --max-batch/--max-wait-ms "
                                                   "(the plan fixes them)");
        if (c->rates && c->seen[O_RATE]) return mp_error_set(err, MP_ERR_USAGE, "--rates: cannot be combined with --rate");
        if (!c->rates && c->rate < 0 && !c->arrivals)
            return mp_error_set(err, MP_ERR_USAGE, "--evaluate: needs --rate R, --rates LO:HI:N or --arrivals");
    } else {
        if (c->rates) return mp_error_set(err, MP_ERR_USAGE, "--rates: only with --evaluate PLAN.json");
        if (c->rate < 0 && !c->arrivals) return mp_error_set(err, MP_ERR_USAGE, "--rate: required (or --arrivals TRACE)");
        if (c->slo_ms < 0) return mp_error_set(err, MP_ERR_USAGE, "--slo-ms: required");
    }
    return MP_OK;
}

static mp_status parse_args(int argc, char **argv, cli *c, mp_error *err)
{
    memset(c, 0, sizeof *c);
    c->rate = c->slo_ms = -1;
    c->max_wait_ms = -1;
    c->requests = DEFAULT_REQUESTS;
    c->top = DEFAULT_TOP;
    c->fwd_scale = 1;
    c->seed = 1;
    mp_cli_cluster_init(&c->devs);
    mp_status st = mp_cli_parse_group(argc, argv, opts, NOPTS, "o:h", mp_cli_cluster_opt, &c->devs, parse_opt, c, err);
    if (st != MP_OK || c->help) return st;
    if (optind < argc) return mp_error_set(err, MP_ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
    return validate(c, err);
}

/* ------------------------------------------------------------ inputs */

static mp_status load_inputs(const cli *c, mp_profile *prof, mp_cluster *cl, mp_serve_arrivals *arr,
                             mp_error *err)
{
    mp_status st = mp_profile_load(c->profile, prof, err);
    if (st == MP_OK) st = mp_cli_cluster_build(&c->devs, 0, cl, err);
    if (st != MP_OK) return st;
    if (c->arrivals) return mp_serve_arrivals_load(arr, c->arrivals, err);
    mp_serve_arrivals_poisson(arr, c->requests, c->seed);
    return MP_OK;
}

/* ------------------------------------------------------------ output */

static void split_str(const mp_serve_candidate *p, int L, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = 0;
    for (int s = 0; s < p->num_stages && off < n; s++) {
        int hi = s + 1 < p->num_stages ? p->first[s + 1] - 1 : L - 1;
        off += (size_t)snprintf(buf + off, n - off, "%s%d-%d", s ? "|" : "", p->first[s], hi);
    }
}

static void print_table(const mp_serve_candidate *v, int nv, int L, FILE *f)
{
    fprintf(f, "%4s  %-24s %6s %9s %11s %12s %9s %9s %9s %8s\n", "rank", "split", "devs", "max_batch",
            "max_wait_ms", "throughput/s", "p50_ms", "p90_ms", "p99_ms", "attain%");
    for (int i = 0; i < nv; i++) {
        char sp[256];
        const mp_serve_result *m = &v[i].metrics;
        split_str(&v[i], L, sp, sizeof sp);
        fprintf(f, "%4d  %-24s %6d %9d %11.3f %12.1f %9.3f %9.3f %9.3f %8.2f\n", i + 1, sp,
                v[i].num_stages, v[i].max_batch, v[i].max_wait_ms, m->throughput_rps, m->p50_ms,
                m->p90_ms, m->p99_ms, 100 * m->slo_attainment);
    }
}

static void print_details(const mp_serve_candidate *p, FILE *f)
{
    const mp_serve_result *m = &p->metrics;
    char b[64];
    fprintf(f, "# best: max latency %.3f ms, mean batch %.2f, capacity %.1f req/s%s, %d requests queued at the last arrival\n",
            m->max_ms, m->mean_batch, m->capacity_rps, m->overloaded ? " (OVERLOADED: offered rate exceeds it)" : "",
            m->queued_at_end);
    fprintf(f, "# memory per stage:");
    for (int s = 0; s < p->num_stages; s++) fprintf(f, " %s", mp_format_bytes(b, sizeof b, p->memory_bytes[s]));
    fprintf(f, "\n");
}

/* Prints pl as JSON (--json) and writes it to --out. */
static mp_status emit(const cli *c, const mp_plan *pl, mp_error *err)
{
    json_t *j = mp_plan_json(pl);
    if (!j) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    if (c->json) {
        char *s = mp_json_dump(j);
        fputs(s, stdout);
        free(s);
    }
    mp_status st = c->out ? mp_json_write(c->out, j, err) : MP_OK;
    json_decref(j);
    return st;
}

static mp_status emit_plan(const cli *c, mp_serve_candidate *p, mp_serve_eval *ctx, const double *arr, int n,
                     double rate, mp_error *err)
{
    /* Re-evaluate so ctx holds this plan's tables. */
    mp_plan pl;
    mp_status st = mp_serve_candidate_eval(ctx, p, arr, n, p->metrics.slo_ms, err);
    if (st == MP_OK) st = mp_serve_candidate_plan(p, ctx, rate, &pl, err);
    if (st != MP_OK) return st;
    st = emit(c, &pl, err);
    mp_plan_free(&pl);
    return st;
}

/* ------------------------------------------------------------ modes */

/* The search at --rate (or the trace's): the table, then the best plan (-o,
 * --json) when it meets the SLO; else the highest rate at which one does and
 * MP_ERR_NOFIT (exit 1) saying so; MP_ERR_NOFIT too when no plan fits. */
static mp_status run_search(const cli *c, const mp_profile *prof, const mp_cluster *cl,
                            const mp_serve_arrivals *arr, mp_error *err)
{
    double rate = c->rate > 0 ? c->rate : (arr->is_trace ? arr->trace_rps : 0);
    double *t = malloc((size_t)arr->n * sizeof *t);
    mp_serve_candidate *top = calloc((size_t)c->top, sizeof *top);
    int nb = c->max_batch, found = 0;
    double w = c->max_wait_ms;
    mp_serve_terms terms = terms_of(c);
    mp_serve_search_opts o = { prof, cl, c->slo_ms, nb ? &nb : NULL, 1, w >= 0 ? &w : NULL, 1, 0, 0, terms };
    mp_serve_eval ctx = { 0 };
    mp_status st = MP_OK;
    if (!t || !top) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto done; }
    mp_serve_arrivals_at_rate(arr, c->rate, t);
    st = mp_serve_search(&o, t, arr->n, top, c->top, &found, err);
    if (st == MP_ERR_NOFIT && c->json) printf("{\"error\": \"no plan fits\"}\n");
    if (st != MP_OK) goto done;
    int bmax = top[0].max_batch;
    for (int i = 0; i < found; i++) if (top[i].max_batch > bmax) bmax = top[i].max_batch;
    if ((st = mp_serve_eval_init(&ctx, prof, cl, bmax, &terms, err)) != MP_OK) goto done;
    int ok = mp_serve_meets_slo(&top[0].metrics);
    if (!c->json) {
        printf("# mpplan --serve: %s (%d layers), %d devices, rate %.1f req/s, SLO %.3f ms, %d requests (%s)\n",
               prof->model ? prof->model : c->profile, prof->num_layers, cl->num_devices, rate, c->slo_ms,
               arr->n, arr->is_trace ? c->arrivals : "Poisson");
        print_terms(c, stdout);
        print_table(top, found, prof->num_layers, stdout);
        print_details(&top[0], stdout);
    }
    if (ok) {
        st = emit_plan(c, &top[0], &ctx, t, arr->n, rate, err);
        goto done;
    }
    /* No plan meets the SLO at this rate: find the highest rate that one does. */
    double best_rate = 0;
    mp_serve_candidate best = { 0 };
    st = mp_serve_max_rate(&o, arr, rate > 0 ? rate : 1, &best_rate, &best, err);
    if (st != MP_OK) goto done;
    char sp[256] = "", rest[512];
    if (best.num_stages) split_str(&best, prof->num_layers, sp, sizeof sp);
    if (best_rate > 0)
        snprintf(rest, sizeof rest, "the highest rate any plan sustains within the SLO is %.1f req/s "
                                    "(split %s, max_batch %d, max_wait %.3f ms, p99 %.3f ms)",
                 best_rate, sp, best.max_batch, best.max_wait_ms, best.metrics.p99_ms);
    else
        snprintf(rest, sizeof rest, "no plan meets the SLO at any rate (even a lone request takes longer)");
    mp_error_set(err, MP_ERR_NOFIT, "no plan meets the SLO (p99 <= %.3f ms) at %.1f req/s: the best attains "
                 "%.2f%% with p99 %.3f ms; %s", c->slo_ms, rate, 100 * top[0].metrics.slo_attainment,
                 top[0].metrics.p99_ms, rest);
    st = MP_ERR_NOFIT;
    if (c->json) {
        json_t *j = json_object();
        json_object_set_new(j, "error", json_string("slo not met"));
        json_object_set_new(j, "rate", mp_json_number(rate));
        json_object_set_new(j, "slo_ms", mp_json_number(c->slo_ms));
        json_object_set_new(j, "max_sustainable_rps", mp_json_number(best_rate));
        if (best.num_stages) {
            mp_serve_arrivals_at_rate(arr, best_rate, t);
            mp_plan pl;
            mp_error e2 = { 0 };
            if (mp_serve_candidate_eval(&ctx, &best, t, arr->n, c->slo_ms, &e2) == MP_OK &&
                mp_serve_candidate_plan(&best, &ctx, best_rate, &pl, &e2) == MP_OK) {
                json_object_set_new(j, "plan", mp_plan_json(&pl));
                mp_plan_free(&pl);
            }
        }
        char *s = mp_json_dump(j);
        fputs(s, stdout);
        free(s);
        json_decref(j);
    }
    mp_serve_candidate_free(&best);
done:
    for (int i = 0; top && i < found; i++) mp_serve_candidate_free(&top[i]);
    free(top);
    free(t);
    mp_serve_eval_free(&ctx);
    return st;
}

/* --evaluate PLAN.json at --rate (the table, the plan with its prediction to
 * -o / --json) or at each of --rates (a table or {"slo_ms", "points"}). */
static mp_status run_evaluate(const cli *c, const mp_profile *prof, const mp_cluster *cl,
                              const mp_serve_arrivals *arr, mp_error *err)
{
    mp_plan plan;
    mp_serve_candidate p = { 0 };
    mp_serve_eval ctx = { 0 };
    mp_serve_terms terms = terms_of(c);
    double *t = NULL;
    mp_status st = mp_plan_load(c->evaluate, &plan, err);
    if (st == MP_OK) st = mp_plan_check_serve(&plan, prof->num_layers, c->evaluate, err);
    if (st != MP_OK) goto done;
    double slo = c->slo_ms > 0 ? c->slo_ms : mp_plan_slo_ms(&plan);
    int K = plan.num_stages;
    p.num_stages = K;
    p.max_batch = plan.max_batch;
    p.max_wait_ms = plan.max_wait_ms;
    p.first = malloc((size_t)K * sizeof *p.first);
    p.memory_bytes = calloc((size_t)K, sizeof *p.memory_bytes);
    t = malloc((size_t)arr->n * sizeof *t);
    if (!t || !p.first || !p.memory_bytes) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto done; }
    for (int s = 0; s < K; s++) p.first[s] = plan.stages[s].first;
    if (slo <= 0) { st = mp_error_set(err, MP_ERR_USAGE, "--slo-ms: required (the plan records none)"); goto done; }
    if ((st = mp_serve_eval_init(&ctx, prof, cl, p.max_batch, &terms, err)) != MP_OK) goto done;
    if (!c->rates) {
        double rate = c->rate > 0 ? c->rate : arr->trace_rps;
        mp_serve_arrivals_at_rate(arr, c->rate, t);
        st = mp_serve_eval_plan(&ctx, &plan, t, arr->n, slo, &p.metrics, p.memory_bytes, &p.fits, err);
        if (st != MP_OK) goto done;
        if (!c->json) {
            printf("# mpplan --serve --evaluate %s: rate %.1f req/s, SLO %.3f ms, %d requests\n", c->evaluate,
                   rate, slo, arr->n);
            print_terms(c, stdout);
            print_table(&p, 1, prof->num_layers, stdout);
            print_details(&p, stdout);
        }
        if (!p.fits) fprintf(stderr, "mpplan --serve: warning: %s does not fit the devices' memory\n", c->evaluate);
        st = mp_serve_eval_predict(&ctx, &plan, &p.metrics, p.memory_bytes, rate, err);
        if (st == MP_OK) st = emit(c, &plan, err);
        goto done;
    }
    json_t *pts = json_array();
    if (!c->json) {
        printf("# mpplan --serve --evaluate %s: SLO %.3f ms, %d requests\n", c->evaluate, slo, arr->n);
        print_terms(c, stdout);
        printf("%12s %14s %10s %10s %10s %8s %s\n", "rate", "throughput", "p50_ms", "p90_ms", "p99_ms", "attain%", "");
    }
    for (int i = 0; i < c->rn; i++) {
        double r = c->rn > 1 ? c->rlo + i * (c->rhi - c->rlo) / (c->rn - 1) : c->rlo;
        mp_serve_arrivals_at_rate(arr, r, t);
        if ((st = mp_serve_eval_plan(&ctx, &plan, t, arr->n, slo, &p.metrics, NULL, NULL, err)) != MP_OK) {
            json_decref(pts);
            goto done;
        }
        const mp_serve_result *m = &p.metrics;
        json_array_append_new(pts, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "rate", mp_json_number(r),
                                             "throughput", mp_json_number(m->throughput_rps),
                                             "p50_ms", mp_json_number(m->p50_ms), "p90_ms", mp_json_number(m->p90_ms),
                                             "p99_ms", mp_json_number(m->p99_ms),
                                             "attainment", mp_json_number(m->slo_attainment)));
        if (!c->json)
            printf("%12.1f %14.1f %10.3f %10.3f %10.3f %8.2f %s\n", r, m->throughput_rps, m->p50_ms, m->p90_ms,
                   m->p99_ms, 100 * m->slo_attainment, m->overloaded ? "overloaded" : "");
    }
    if (c->json) {
        json_t *j = json_pack("{s:o,s:o}", "slo_ms", mp_json_number(slo), "points", pts);
        char *s = mp_json_dump(j);
        fputs(s, stdout);
        free(s);
        json_decref(j);
    } else {
        json_decref(pts);
    }
done:
    free(t);
    mp_serve_eval_free(&ctx);
    mp_serve_candidate_free(&p);
    mp_plan_free(&plan);
    return st;
}

int mp_mpplan_serve_main(int argc, char **argv)
{
    cli c;
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_serve_arrivals arr = { 0 };
    mp_error err = { 0 };
    mp_status st = parse_args(argc, argv, &c, &err);
    if (st == MP_OK && c.help) {
        usage(stdout);
        return 0;
    }
    if (st == MP_OK) st = load_terms(&c, &err);
    if (st == MP_OK) st = load_inputs(&c, &prof, &cl, &arr, &err);
    if (st == MP_OK) st = c.evaluate ? run_evaluate(&c, &prof, &cl, &arr, &err) : run_search(&c, &prof, &cl, &arr, &err);
    fflush(stdout);
    if (st != MP_OK) fprintf(stderr, "mpplan --serve: %s\n", err.msg);
    mp_serve_arrivals_free(&arr);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
    return mp_exit_code(st);
}
