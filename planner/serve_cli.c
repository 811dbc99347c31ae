/* serve_cli.c — `mpplan --serve`: search a serving plan for a rate and an
 * SLO, or evaluate one over a range of rates (serve_cli.h, docs/serving.md). */
#include "serve_cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cluster.h"
#include "json_util.h"
#include "profile.h"
#include "serve.h"
#include "serve_calibration.h"
#include "serve_search.h"
#include "units.h"

#define DEFAULT_BANDWIDTH "25GB/s"
#define DEFAULT_LATENCY "10us"
#define DEFAULT_REQUESTS 10000
#define DEFAULT_TOP 5

enum {
    O_SERVE = 256, O_PROFILE, O_DEVICES, O_MEMORY, O_BANDWIDTH, O_LATENCY, O_CLUSTER,
    O_RATE, O_SLO, O_MAXBATCH, O_MAXWAIT, O_REQUESTS, O_ARRIVALS, O_SEED, O_JSON,
    O_OUT, O_EVALUATE, O_RATES, O_TOP, O_CALIB, O_SCALE, O_OVERHEAD, O_DISPATCH, O_HELP
};

/* One table drives parsing and --help. */
static const mp_cli_opt opts[] = {
    { "serve", no_argument, O_SERVE, NULL, "plan for serving (this mode)" },
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile" },
    { "devices", required_argument, O_DEVICES, "K", "K identical devices (with --memory)" },
    { "memory", required_argument, O_MEMORY, "SIZE", "memory per device, e.g. 80GiB" },
    { "bandwidth", required_argument, O_BANDWIDTH, "BW", "link bandwidth (default " DEFAULT_BANDWIDTH ")" },
    { "latency", required_argument, O_LATENCY, "T", "link latency (default " DEFAULT_LATENCY ")" },
    { "cluster", required_argument, O_CLUSTER, "C.json", "cluster file instead of --devices/--memory" },
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
    const char *profile, *cluster, *memory, *bandwidth, *latency, *arrivals, *out,
        *evaluate, *rates, *calibration;
    int devices, requests, json, top, max_batch;   /* max_batch 0: auto */
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

static int bad(const char *flag, const char *fmt, const char *val)
{
    fprintf(stderr, "mpplan --serve: %s: ", flag);
    fprintf(stderr, fmt, val);
    fputc('\n', stderr);
    return 2;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    if (!s || !*s) return 0;
    *out = strtod(s, &end);
    return *end == 0 && isfinite(*out);
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    if (!s || !*s) return 0;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

/* "LO:HI:N" with 0 < LO <= HI, N >= 1 (N = 1 only when LO == HI... or a
 * single point LO); HI > LO when N > 1. */
static int parse_rates(const char *s, cli *c)
{
    char buf[256], *a, *b, *n;
    if (strlen(s) >= sizeof buf) return 0;
    strcpy(buf, s);
    a = buf;
    if (!(b = strchr(a, ':'))) return 0;
    *b++ = 0;
    if (!(n = strchr(b, ':'))) return 0;
    *n++ = 0;
    if (!parse_double(a, &c->rlo) || !parse_double(b, &c->rhi) || !parse_int(n, 1, 100000, &c->rn)) return 0;
    if (!(c->rlo > 0) || c->rhi < c->rlo || (c->rn > 1 && !(c->rhi > c->rlo))) return 0;
    return 1;
}

static int parse_args(int argc, char **argv, cli *c)
{
    struct option lo[NOPTS + 1];
    mp_cli_longopts(opts, NOPTS, lo);
    memset(c, 0, sizeof *c);
    c->rate = c->slo_ms = -1;
    c->max_wait_ms = -1;
    c->requests = DEFAULT_REQUESTS;
    c->top = DEFAULT_TOP;
    c->fwd_scale = 1;
    c->seed = 1;
    c->bandwidth = DEFAULT_BANDWIDTH;
    c->latency = DEFAULT_LATENCY;
    optind = 0;  /* full re-initialisation: main may have run getopt before */
    int ch;
    while ((ch = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        const char *v = optarg;
        if (ch == 'o') ch = O_OUT;
        if (ch == 'h') ch = O_HELP;
        if (ch == '?' || ch == ':') { usage(stderr); return 2; }
        c->seen[ch] = 1;
        switch (ch) {
        case O_SERVE: break;
        case O_PROFILE: c->profile = v; break;
        case O_CLUSTER: c->cluster = v; break;
        case O_MEMORY: c->memory = v; break;
        case O_BANDWIDTH: c->bandwidth = v; break;
        case O_LATENCY: c->latency = v; break;
        case O_ARRIVALS: c->arrivals = v; break;
        case O_OUT: c->out = v; break;
        case O_EVALUATE: c->evaluate = v; break;
        case O_CALIB: c->calibration = v; break;
        case O_JSON: c->json = 1; break;
        case O_HELP: usage(stdout); return 0;
        case O_DEVICES:
            if (!parse_int(v, 1, 1 << 20, &c->devices)) return bad("--devices", "expected a positive integer, got \"%s\"", v);
            break;
        case O_RATE:
            if (!parse_double(v, &c->rate) || !(c->rate > 0)) return bad("--rate", "expected requests per second > 0, got \"%s\"", v);
            break;
        case O_SLO:
            if (!parse_double(v, &c->slo_ms) || !(c->slo_ms > 0)) return bad("--slo-ms", "expected milliseconds > 0, got \"%s\"", v);
            break;
        case O_MAXBATCH:
            if (strcmp(v, "auto") && !parse_int(v, 1, 1 << 16, &c->max_batch))
                return bad("--max-batch", "expected auto or a positive integer, got \"%s\"", v);
            break;
        case O_MAXWAIT:
            if (strcmp(v, "auto") && (!parse_double(v, &c->max_wait_ms) || c->max_wait_ms < 0))
                return bad("--max-wait-ms", "expected auto or milliseconds >= 0, got \"%s\"", v);
            break;
        case O_REQUESTS:
            if (!parse_int(v, 1, 100000000, &c->requests)) return bad("--requests", "expected a positive integer, got \"%s\"", v);
            break;
        case O_SEED: {
            char *end;
            c->seed = strtoul(v, &end, 10);
            if (!*v || *end || *v == '-') return bad("--seed", "expected a non-negative integer, got \"%s\"", v);
            break;
        }
        case O_TOP:
            if (!parse_int(v, 1, 1000, &c->top)) return bad("--top", "expected a positive integer, got \"%s\"", v);
            break;
        case O_SCALE:
            if (!parse_double(v, &c->fwd_scale) || !(c->fwd_scale > 0)) return bad("--fwd-scale", "expected a factor > 0, got \"%s\"", v);
            break;
        case O_OVERHEAD:
            if (!parse_double(v, &c->overhead_ms) || !(c->overhead_ms >= 0)) return bad("--batch-overhead-ms", "expected milliseconds >= 0, got \"%s\"", v);
            break;
        case O_DISPATCH:
            if (!parse_double(v, &c->dispatch_ms) || !(c->dispatch_ms >= 0)) return bad("--dispatch-ms", "expected milliseconds >= 0, got \"%s\"", v);
            break;
        case O_RATES:
            c->rates = v;
            if (!parse_rates(v, c)) return bad("--rates", "expected LO:HI:N with 0 < LO < HI (LO <= HI for N = 1) and N >= 1, got \"%s\"", v);
            break;
        }
    }
    if (optind < argc) return bad("mpplan --serve", "unexpected argument \"%s\"", argv[optind]);
    if (!c->profile) return bad("--profile", "%s", "required");
    if (c->cluster && (c->seen[O_DEVICES] || c->seen[O_MEMORY]))
        return bad("--cluster", "%s", "cannot be combined with --devices/--memory");
    if (!c->cluster && (!c->seen[O_DEVICES] || !c->memory))
        return bad("--devices", "%s", "give --devices K and --memory SIZE, or --cluster C.json");
    if (c->evaluate) {
        if (c->seen[O_MAXBATCH] || c->seen[O_MAXWAIT])
            return bad("--evaluate", "%s", "cannot be combined with --max-batch/--max-wait-ms (the plan fixes them)");
        if (c->rates && c->seen[O_RATE]) return bad("--rates", "%s", "cannot be combined with --rate");
        if (!c->rates && c->rate < 0 && !c->arrivals) return bad("--evaluate", "%s", "needs --rate R, --rates LO:HI:N or --arrivals");
    } else {
        if (c->rates) return bad("--rates", "%s", "only with --evaluate PLAN.json");
        if (c->rate < 0 && !c->arrivals) return bad("--rate", "%s", "required (or --arrivals TRACE)");
        if (c->slo_ms < 0) return bad("--slo-ms", "%s", "required");
    }
    return -1;
}

/* ------------------------------------------------------------ inputs */

static mp_status load_inputs(const cli *c, mp_profile *prof, mp_cluster *cl, mp_serve_arrivals *arr,
                             mp_error *err)
{
    mp_status st = mp_profile_load(c->profile, prof, err);
    if (st != MP_OK) return st;
    if (c->cluster) {
        st = mp_cluster_load(c->cluster, cl, err);
    } else {
        double mem, bw, lat;
        mp_error e2 = { 0 };
        if (mp_parse_bytes(c->memory, &mem, &e2) != MP_OK)
            return mp_error_set(err, MP_ERR_USAGE, "--memory: %s", e2.msg);
        if (mp_parse_bandwidth(c->bandwidth, &bw, &e2) != MP_OK || !(bw > 0))
            return mp_error_set(err, MP_ERR_USAGE, "--bandwidth: %s", e2.msg[0] ? e2.msg : "must be > 0");
        if (mp_parse_duration(c->latency, &lat, &e2) != MP_OK)
            return mp_error_set(err, MP_ERR_USAGE, "--latency: %s", e2.msg);
        if (!(mem > 0)) return mp_error_set(err, MP_ERR_USAGE, "--memory: must be > 0");
        st = mp_cluster_uniform(cl, c->devices, mem, bw, lat, err);
    }
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

static int emit_plan(const cli *c, mp_serve_candidate *p, mp_serve_eval *ctx, const double *arr, int n,
                     double rate, mp_error *err)
{
    /* Re-evaluate so ctx holds this plan's tables. */
    mp_plan pl;
    if (mp_serve_candidate_eval(ctx, p, arr, n, p->metrics.slo_ms, err) != MP_OK) return 0;
    if (mp_serve_candidate_plan(p, ctx, rate, &pl, err) != MP_OK) return 0;
    mp_status st = emit(c, &pl, err);
    mp_plan_free(&pl);
    return st == MP_OK;
}

/* ------------------------------------------------------------ modes */

static int run_search(const cli *c, const mp_profile *prof, const mp_cluster *cl,
                      const mp_serve_arrivals *arr, mp_error *err)
{
    double rate = c->rate > 0 ? c->rate : (arr->is_trace ? arr->trace_rps : 0);
    double *t = malloc((size_t)arr->n * sizeof *t);
    mp_serve_candidate *top = calloc((size_t)c->top, sizeof *top);
    int nb = c->max_batch, found = 0, code = 2;
    double w = c->max_wait_ms;
    mp_serve_terms terms = terms_of(c);
    mp_serve_search_opts o = { prof, cl, c->slo_ms, nb ? &nb : NULL, 1, w >= 0 ? &w : NULL, 1, 0, 0, terms };
    mp_serve_eval ctx = { 0 };
    if (!t || !top) { fprintf(stderr, "mpplan --serve: out of memory\n"); goto done; }
    mp_serve_arrivals_at_rate(arr, c->rate, t);
    mp_status st = mp_serve_search(&o, t, arr->n, top, c->top, &found, err);
    if (st == MP_ERR_NOFIT) {
        if (c->json) printf("{\"error\": \"no plan fits\"}\n");
        fprintf(stderr, "mpplan --serve: %s\n", err->msg);
        code = 1;
        goto done;
    }
    if (st != MP_OK) { fprintf(stderr, "mpplan --serve: %s\n", err->msg); code = mp_exit_code(st); goto done; }
    int bmax = top[0].max_batch;
    for (int i = 0; i < found; i++) if (top[i].max_batch > bmax) bmax = top[i].max_batch;
    if ((st = mp_serve_eval_init(&ctx, prof, cl, bmax, &terms, err)) != MP_OK) { fprintf(stderr, "mpplan --serve: %s\n", err->msg); code = 1; goto done; }
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
        code = emit_plan(c, &top[0], &ctx, t, arr->n, rate, err) ? 0 : 2;
        if (code) fprintf(stderr, "mpplan --serve: %s\n", err->msg);
        goto done;
    }
    /* No plan meets the SLO at this rate: find the highest rate that one does. */
    double best_rate = 0;
    mp_serve_candidate best = { 0 };
    st = mp_serve_max_rate(&o, arr, rate > 0 ? rate : 1, &best_rate, &best, err);
    if (st != MP_OK) { fprintf(stderr, "mpplan --serve: %s\n", err->msg); code = mp_exit_code(st); goto done; }
    code = 1;
    fprintf(stderr, "mpplan --serve: no plan meets the SLO (p99 <= %.3f ms) at %.1f req/s: the best attains %.2f%% with p99 %.3f ms\n",
            c->slo_ms, rate, 100 * top[0].metrics.slo_attainment, top[0].metrics.p99_ms);
    char sp[256] = "";
    if (best.num_stages) split_str(&best, prof->num_layers, sp, sizeof sp);
    if (best_rate > 0)
        fprintf(stderr, "mpplan --serve: the highest rate any plan sustains within the SLO is %.1f req/s "
                        "(split %s, max_batch %d, max_wait %.3f ms, p99 %.3f ms)\n",
                best_rate, sp, best.max_batch, best.max_wait_ms, best.metrics.p99_ms);
    else
        fprintf(stderr, "mpplan --serve: no plan meets the SLO at any rate (even a lone request takes longer)\n");
    if (c->json) {
        json_t *j = json_object();
        json_object_set_new(j, "error", json_string("slo not met"));
        json_object_set_new(j, "rate", mp_json_number(rate));
        json_object_set_new(j, "slo_ms", mp_json_number(c->slo_ms));
        json_object_set_new(j, "max_sustainable_rps", mp_json_number(best_rate));
        if (best.num_stages) {
            mp_serve_arrivals_at_rate(arr, best_rate, t);
            mp_plan pl;
            if (mp_serve_candidate_eval(&ctx, &best, t, arr->n, c->slo_ms, err) == MP_OK &&
                mp_serve_candidate_plan(&best, &ctx, best_rate, &pl, err) == MP_OK) {
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
    return code;
}

static int run_evaluate(const cli *c, const mp_profile *prof, const mp_cluster *cl,
                        const mp_serve_arrivals *arr, mp_error *err)
{
    mp_plan plan;
    mp_serve_candidate p = { 0 };
    int code = 2;
    if (mp_plan_load(c->evaluate, &plan, err) != MP_OK ||
        mp_plan_check_serve(&plan, prof->num_layers, c->evaluate, err) != MP_OK) {
        fprintf(stderr, "mpplan --serve: %s\n", err->msg);
        mp_plan_free(&plan);
        return 2;
    }
    double slo = c->slo_ms > 0 ? c->slo_ms : mp_plan_slo_ms(&plan);
    mp_serve_eval ctx = { 0 };
    mp_serve_terms terms = terms_of(c);
    double *t = malloc((size_t)arr->n * sizeof *t);
    int K = plan.num_stages;
    p.num_stages = K;
    p.max_batch = plan.max_batch;
    p.max_wait_ms = plan.max_wait_ms;
    p.first = malloc((size_t)K * sizeof *p.first);
    p.memory_bytes = calloc((size_t)K, sizeof *p.memory_bytes);
    if (!t || !p.first || !p.memory_bytes) goto done;
    for (int s = 0; s < K; s++) p.first[s] = plan.stages[s].first;
    if (slo <= 0) { fprintf(stderr, "mpplan --serve: --slo-ms: required (the plan records none)\n"); goto done; }
    if (mp_serve_eval_init(&ctx, prof, cl, p.max_batch, &terms, err) != MP_OK) goto fail;
    if (!c->rates) {
        double rate = c->rate > 0 ? c->rate : arr->trace_rps;
        mp_serve_arrivals_at_rate(arr, c->rate, t);
        if (mp_serve_eval_plan(&ctx, &plan, t, arr->n, slo, &p.metrics, p.memory_bytes, &p.fits, err) != MP_OK)
            goto fail;
        if (!c->json) {
            printf("# mpplan --serve --evaluate %s: rate %.1f req/s, SLO %.3f ms, %d requests\n", c->evaluate,
                   rate, slo, arr->n);
            print_terms(c, stdout);
            print_table(&p, 1, prof->num_layers, stdout);
            print_details(&p, stdout);
        }
        if (!p.fits) fprintf(stderr, "mpplan --serve: warning: %s does not fit the devices' memory\n", c->evaluate);
        mp_status st = mp_serve_eval_predict(&ctx, &plan, &p.metrics, p.memory_bytes, rate, err);
        if (st == MP_OK) st = emit(c, &plan, err);
        code = st == MP_OK ? 0 : 2;
        if (code) fprintf(stderr, "mpplan --serve: %s\n", err->msg);
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
        if (mp_serve_eval_plan(&ctx, &plan, t, arr->n, slo, &p.metrics, NULL, NULL, err) != MP_OK) {
            json_decref(pts);
            goto fail;
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
    code = 0;
    goto done;
fail:
    fprintf(stderr, "mpplan --serve: %s\n", err->msg);
    code = mp_exit_code(err->status);
done:
    free(t);
    mp_serve_eval_free(&ctx);
    mp_serve_candidate_free(&p);
    mp_plan_free(&plan);
    return code;
}

int mp_serve_cli_main(int argc, char **argv)
{
    cli c;
    int code = parse_args(argc, argv, &c);
    if (code >= 0) return code;
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_serve_arrivals arr = { 0 };
    mp_error err = { 0 };
    mp_status st = load_terms(&c, &err);
    if (st == MP_OK) st = load_inputs(&c, &prof, &cl, &arr, &err);
    if (st != MP_OK) {
        fprintf(stderr, "mpplan --serve: %s\n", err.msg);
        code = mp_exit_code(st);
    } else {
        code = c.evaluate ? run_evaluate(&c, &prof, &cl, &arr, &err) : run_search(&c, &prof, &cl, &arr, &err);
    }
    mp_serve_arrivals_free(&arr);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
    fflush(stdout);
    return code;
}
