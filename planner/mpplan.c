/* mpplan.c — the planner tool: the fastest pipeline plan that fits.
 * defines: main
 *
 * mpplan --profile P.json [--profile P2.json ...] (--devices K --memory SIZE [--bandwidth BW] [--latency T] | --cluster C.json)
 *        --global-batch B [--microbatch b] [--schedule auto|gpipe|1f1b|interleaved|zb-h1|zb-h2|zb-v]
 *        [--recompute auto|on|off] [--data-parallel N|auto] [--positions K] [--state-factor F] [--top N]
 *        [--time-limit SECONDS] [--placement search|file] [--json] [-o PLAN.json]
 *        [--trace TRACE.json] [--evaluate PLAN.json]
 * Exit 0 on success, 1 when no plan fits, 2 for bad usage or input. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "version.h"
#include "allreduce.h"
#include "cli.h"
#include "cli_cluster.h"
#include "clock.h"
#include "cluster.h"
#include "evaluate.h"
#include "placement.h"
#include "plan.h"
#include "profile.h"
#include "profile_set.h"
#include "search.h"
#include "mpplan_serve.h"
#include "trace.h"
#include "units.h"

/* ---------------------------------------------------------------- options */

enum { O_PROFILE = 256, O_BATCH, O_MICRO, O_SCHED, O_RC, O_SF, O_TOP, O_JSON, O_TRACE, O_EVAL, O_HELP, O_DP,
       O_POS, O_TIME, O_PLACE, O_OUT = 'o' };


/* One table drives getopt_long and --help. */
static const mp_cli_opt OPTS[] = {
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile (required); on CPU repeat it, one per number of busy cores "
      "(mpprof --threads)" },
    MP_CLI_CLUSTER_OPTS,
    { "global-batch", required_argument, O_BATCH, "B", "samples per iteration, required" },
    { "microbatch", required_argument, O_MICRO, "b", "fix the micro-batch size (must divide B; default: searched)" },
    { "schedule", required_argument, O_SCHED, "S", "auto|gpipe|1f1b|interleaved|zb-h1|zb-h2|zb-v (default auto; the zero-bubble ones need a profile with bwd_input_ms/bwd_weight_ms)" },
    { "recompute", required_argument, O_RC, "R", "auto|on|off (default auto: only stages that need it)" },
    { "data-parallel", required_argument, O_DP, "D", "replicas of the pipeline, D x stages <= devices: a number, or "
      "auto to search every D with the rest (default auto; 1 pins one pipeline)" },
    { "positions", required_argument, O_POS, "K", "fix the pipeline positions of one replica (stages; interleaved: "
      "devices; default: searched)" },
    { "state-factor", required_argument, O_SF, "F", "bytes of state per parameter byte (default 4)" },
    { "top", required_argument, O_TOP, "N", "show the best N plans (default 5)" },
    { "time-limit", required_argument, O_TIME, "SECONDS", "stop searching after this many seconds with the best plan "
      "so far and its gap (default 1)" },
    { "placement", required_argument, O_PLACE, "P", "search: choose which devices run which stage (default); "
      "file: stage k on device k of the cluster" },
    { "json", no_argument, O_JSON, NULL, "print the best plan as one JSON object" },
    { "output", required_argument, O_OUT, "PLAN.json", "write the best plan (also -o)" },
    { "trace", required_argument, O_TRACE, "TRACE.json", "write the predicted timeline (Chrome trace)" },
    { "evaluate", required_argument, O_EVAL, "PLAN.json", "predict this plan instead of searching" },
    { "help", no_argument, O_HELP, NULL, "this help" },
};
#define NOPTS ((int)(sizeof OPTS / sizeof *OPTS))

typedef struct {
    const char *profiles[MP_PROFILE_SET_MAX];
    int nprof;
    const char *out, *trace, *evaluate;
    mp_cli_cluster devs;
    int batch, micro, schedule, recompute, top, json, help, file_order;
    int dp;                    /* --data-parallel: 0 auto, else D */
    int positions;             /* --positions: 0 searched */
    double sf, time_limit;
    double t_start;            /* when mpplan started (mp_now_s): the time limit counts from here */
} args;

static void usage(FILE *f)
{
    fprintf(f, "usage: mpplan --profile P.json (--devices K --memory SIZE [--bandwidth BW] [--latency T]"
               " | --cluster C.json)\n"
               "              --global-batch B [options]\n"
               "Finds the pipeline plan (stages, micro-batch, schedule, recompute) of least predicted\n"
               "iteration time that fits every device's memory.\n"
               "Serving (latency under an SLO): mpplan --serve --help.\n\n");
    mp_cli_print_options(f, OPTS, NOPTS, "", 26);
    fprintf(f, "\nUnits: memory 80GiB / 16GB / bytes; bandwidth 25GB/s / 100Gbit/s; latency 10us / 1.5ms.\n"
               "Exit: 0 ok, 1 no plan fits (prints the smallest memory that would fit), 2 bad usage or input.\n");
}

static const char *const SCHEDULES[] = { "auto", "gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "zb-v" };
static const char *const RECOMPUTE[] = { "auto", "on", "off" };
static const int RECOMPUTE_MODE[] = { MP_RC_AUTO, MP_RC_ON, MP_RC_OFF };

/* One option's value into a, the device/cluster group aside (mp_cli_opt_fn). */
static mp_status parse_opt(void *ctx, int c, const char *v, mp_error *err)
{
    args *a = ctx;
    int k = 0;
    mp_status st = MP_OK;
    switch (c) {
    case O_PROFILE:
        if (a->nprof == MP_PROFILE_SET_MAX)
            return mp_error_set(err, MP_ERR_USAGE, "--profile: at most %d profiles", MP_PROFILE_SET_MAX);
        a->profiles[a->nprof++] = v;
        return MP_OK;
    case O_OUT: a->out = v; return MP_OK;
    case O_TRACE: a->trace = v; return MP_OK;
    case O_EVAL: a->evaluate = v; return MP_OK;
    case O_JSON: a->json = 1; return MP_OK;
    case O_HELP: a->help = 1; return MP_OK;
    case O_BATCH: return mp_cli_int("global-batch", v, 1, INT_MAX, &a->batch, err);
    case O_MICRO: return mp_cli_int("microbatch", v, 0, INT_MAX, &a->micro, err);
    case O_TOP: return mp_cli_int("top", v, 1, INT_MAX, &a->top, err);
    case O_SF: return mp_cli_number("state-factor", v, 0, &a->sf, err);
    case O_SCHED: {
        mp_schedule_kind kind = MP_SCHED_GPIPE;
        if ((st = mp_cli_choice("schedule", v, SCHEDULES, (int)(sizeof SCHEDULES / sizeof *SCHEDULES), &k, err)))
            return st;
        a->schedule = k == 0 ? -1 : mp_schedule_from_name(v, &kind) == MP_OK ? (int)kind : -1;
        return MP_OK;
    }
    case O_POS: return mp_cli_int("positions", v, 1, 1000000, &a->positions, err);
    case O_TIME:
        if ((st = mp_cli_number("time-limit", v, 0, &a->time_limit, err)) != MP_OK) return st;
        if (!(a->time_limit > 0))
            return mp_error_set(err, MP_ERR_USAGE, "--time-limit: expected a number of seconds > 0, got \"%s\"", v);
        return MP_OK;
    case O_PLACE: {
        static const char *const PLACEMENTS[] = { "search", "file" };
        if ((st = mp_cli_choice("placement", v, PLACEMENTS, 2, &k, err)) == MP_OK) a->file_order = k;
        return st;
    }
    case O_DP:
        if (strcmp(v, "auto") == 0) {
            a->dp = 0;
            return MP_OK;
        }
        return mp_cli_int("data-parallel", v, 1, 1000000, &a->dp, err);
    case O_RC:
        if ((st = mp_cli_choice("recompute", v, RECOMPUTE, 3, &k, err)) == MP_OK) a->recompute = RECOMPUTE_MODE[k];
        return st;
    default: return MP_ERR_USAGE;
    }
}

static mp_status parse_args(int argc, char **argv, args *a, mp_error *err)
{
    memset(a, 0, sizeof *a);
    a->schedule = -1;
    a->recompute = MP_RC_AUTO;
    a->top = 5;
    a->dp = 0;                 /* auto: D searched with the rest */
    a->sf = MP_DEFAULT_STATE_FACTOR;
    a->time_limit = MP_SEARCH_TIME_LIMIT;
    mp_cli_cluster_init(&a->devs);
    mp_status st = mp_cli_parse_group(argc, argv, OPTS, NOPTS, "o:", mp_cli_cluster_opt, &a->devs, parse_opt, a, err);
    if (st == MP_OK && optind < argc)
        st = mp_error_set(err, MP_ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
    return st;
}

/* Cross-option checks, naming the flags involved. */
static mp_status validate(const args *a, mp_error *err)
{
    if (!a->nprof) return mp_error_set(err, MP_ERR_USAGE, "--profile is required (see --help)");
    mp_status st = mp_cli_cluster_check(&a->devs, 0, err);
    if (st != MP_OK) return st;
    if (!a->evaluate && a->batch < 1)
        return mp_error_set(err, MP_ERR_USAGE, "--global-batch B (>= 1) is required");
    if (a->micro && a->batch > 0 && a->batch % a->micro)
        return mp_error_set(err, MP_ERR_USAGE, "--microbatch %d does not divide --global-batch %d", a->micro,
                            a->batch);
    return MP_OK;
}

static mp_status load_inputs(const args *a, mp_profile_set *ps, mp_cluster *cl, mp_error *err)
{
    mp_status st = mp_profile_set_load(ps, a->profiles, a->nprof, err);
    if (st != MP_OK) return st;
    return mp_cli_cluster_build(&a->devs, 0, cl, err);
}

/* ---------------------------------------------------------------- report */

/* What bounds the plan: the busiest stage or link, and memory if recomputing. */
static void bound_label(const mp_plan *p, const mp_profile *prof, const mp_cluster *cl, char *buf, size_t n)
{
    double best = -1, b = p->microbatch_size, m = p->num_microbatches;
    int K = p->predicted.num_peaks, kind = 0, who = 0;
    double *busy = calloc((size_t)K, sizeof *busy);
    if (!busy) { snprintf(buf, n, "?"); return; }
    for (int s = 0; s < p->num_stages; s++) {
        const mp_stage *st = &p->stages[s];
        double f = 0, g = 0;
        for (int l = st->first; l <= st->last; l++) {
            f += mp_time_eval(&prof->layers[l].fwd, b);
            g += mp_time_eval(&prof->layers[l].bwd, b);
        }
        int q = p->schedule == MP_SCHED_ZB_V && s >= K ? 2 * K - 1 - s : s % K;   /* zb-v: the V */
        busy[q] += m * (f * (1 + st->recompute) + g) / cl->devices[st->device].speed;
    }
    for (int q = 0; q < K; q++)
        if (busy[q] > best) { best = busy[q]; kind = 0; who = q; }
    for (int s = 0; s + 1 < p->num_stages; s++) {
        int d0 = p->stages[s].device, d1 = p->stages[s + 1].device;
        double t = m * mp_cluster_transfer_ms(cl, d0, d1, b * prof->layers[p->stages[s].last].out_bytes_per_sample);
        if (t > best) { best = t; kind = 1; who = s; }
    }
    int rc = 0;
    for (int s = 0; s < p->num_stages; s++) rc |= p->stages[s].recompute;
    if (kind == 0) snprintf(buf, n, "compute %s %d%s", mp_plan_num_positions(p) < p->num_stages ? "device" : "stage",
                            who, rc ? " + memory (recompute)" : "");
    else snprintf(buf, n, "link %d->%d%s", p->stages[who].device, p->stages[who + 1].device,
                  rc ? " + memory (recompute)" : "");
    free(busy);
}

/* The split as "0-5 | 6-11 | ..." and the recomputing stages as "s0,s2" (or
 * "none"); both truncated to their buffers. */
static void format_split(const mp_plan *p, char *split, size_t ns, char *rcs, size_t nr)
{
    size_t o1 = 0, o2 = 0;
    split[0] = 0;
    snprintf(rcs, nr, "none");
    for (int s = 0; s < p->num_stages && o1 + 32 < ns; s++) {
        o1 += snprintf(split + o1, ns - o1, "%s%d-%d", s ? " | " : "", p->stages[s].first, p->stages[s].last);
        if (p->stages[s].recompute && o2 + 16 < nr)
            o2 += snprintf(rcs + o2, nr - o2, "%ss%d", o2 ? "," : "", s);
    }
}

static void print_plan_row(int rank, const mp_plan *p, const mp_profile *prof, const mp_cluster *cl)
{
    char split[512], rcs[256], bnd[128];
    format_split(p, split, sizeof split, rcs, sizeof rcs);
    char sched[32];
    if (p->schedule == MP_SCHED_INTERLEAVED) snprintf(sched, sizeof sched, "interleaved v=%d", p->chunks_per_device);
    else snprintf(sched, sizeof sched, "%s", mp_schedule_name(p->schedule));
    bound_label(p, prof, cl, bnd, sizeof bnd);
    printf("%2d  %12.4f  %12.1f  %6.1f%%  b=%-4d m=%-5d %-16s recompute: %s\n", rank, p->predicted.iteration_ms,
           p->predicted.samples_per_s, 100 * p->predicted.bubble_fraction, p->microbatch_size,
           p->num_microbatches, sched, rcs);
    int D = mp_plan_replicas(p), K = mp_plan_num_positions(p);
    if (D > 1) {
        printf("    data parallel: D=%d replicas x K=%d positions on %d devices; all-reduce per stage (ms):", D, K, D * K);
        for (int s = 0; s < p->num_stages && s < 8; s++)
            printf("%s %.4g", s ? "," : "", mp_allreduce_stage_ms(cl, prof, p->stages[s].first, p->stages[s].last,
                                                                p->stages[s].device, K, D));
        printf("%s\n", p->num_stages > 8 ? ", ..." : "");
    }
    printf("    layers: %s\n", split);
    int moved = 0;
    for (int s = 0; s < K; s++) moved |= p->stages[s].device != s;
    if (moved) {  /* placed: which device runs each position */
        printf("    devices:");
        for (int s = 0; s < K; s++) printf("%s %s", s ? "," : "", cl->devices[p->stages[s].device].name);
        printf("\n");
    }
    printf("    bound: %s\n    memory:", bnd);
    for (int q = 0; q < p->predicted.num_peaks; q++) {
        char a[32], c[32];
        int d = p->stages[q].device;
        printf("%s %s/%s", q ? "," : "", mp_format_bytes(a, sizeof a, p->predicted.peak_memory_bytes[q]),
               mp_format_bytes(c, sizeof c, cl->devices[d].memory_bytes));
        if (q >= 7 && p->predicted.num_peaks > 9) { printf(", ... (%d more)", p->predicted.num_peaks - q - 1); break; }
    }
    printf("\n");
}

static void print_header(const args *a, const mp_profile_set *ps, const mp_cluster *cl, const mp_search_result *r)
{
    const mp_profile *prof = &ps->p[0];
    char what[64];
    snprintf(what, sizeof what, "%d profiles", ps->n);
    printf("# mpplan: %s%s (%s, %d layers), %s (%d devices), global batch %d\n", ps->n > 1 ? "" : "profile ",
           ps->n > 1 ? what : ps->path[0], prof->model ? prof->model : "?", prof->num_layers,
           a->devs.cluster ? a->devs.cluster : "uniform devices", cl->num_devices, a->batch);
    for (int i = 0; ps->n > 1 && i < ps->n; i++) {
        int lo, hi;
        char range[32];
        mp_profile_set_range(ps, i, &lo, &hi);
        if (hi == lo) snprintf(range, sizeof range, "%d device%s", lo, lo > 1 ? "s" : "");
        else if (hi) snprintf(range, sizeof range, "%d-%d devices", lo, hi);
        else snprintf(range, sizeof range, "%d or more devices", lo);
        printf("#   plans on %s timed with %s (measured with %d busy core%s)\n", range, ps->path[i],
               ps->p[i].busy_cores, ps->p[i].busy_cores > 1 ? "s" : "");
    }
    if (r && !r->placements_complete && !a->file_order && cl->num_devices > 1)
        printf("# placement: more than %d device orders, searched in cluster-file order only\n", MP_MAX_PLACEMENTS);
    if (r) {
        if (r->optimal)
            printf("# search: %ld configurations (%ld searched), %ld nodes, %ld simulations, %.3f s: optimal\n",
                   r->configurations, r->searched, r->nodes, r->simulations, r->seconds);
        else
            printf("# search: %ld configurations (%ld searched), %ld nodes, %ld simulations, %.3f s: "
                   "best found, gap %.2f%% (time limit reached)\n",
                   r->configurations, r->searched, r->nodes, r->simulations, r->seconds, 100 * r->gap);
    }
    printf("#   iteration_ms     samples/s   bubble\n");
    if (a->schedule < 0 && !mp_profile_has_split(prof))
        fprintf(stderr, "# zero-bubble schedules (zb-h1, zb-h2, zb-v) not considered: the profile lacks "
                        "bwd_input_ms/bwd_weight_ms (profile again with this mpprof)\n");
}

/* Writes -o, --trace and stdout for the best plan (and the table); each plan
 * is timed with the profile of its number of devices (profile_set.h). */
static mp_status report(const args *a, const mp_profile_set *ps, const mp_cluster *cl, mp_plan *plans, int n,
                        const mp_search_result *r, mp_error *err)
{
    mp_status st;
    int busy = mp_plan_num_devices(&plans[0]), pi = mp_profile_set_pick(ps, busy);
    const mp_profile *prof = &ps->p[pi];
    if (prof->busy_cores > 0 && prof->busy_cores != busy)   /* a CPU profile of another regime */
        fprintf(stderr, "mpplan: note: %s was measured with %d busy core%s, the plan keeps %d busy: its time "
                "may be off by the difference; profile with mpprof --threads %d and compare (docs/profiling.md)\n",
                ps->path[pi], prof->busy_cores, prof->busy_cores > 1 ? "s" : "", busy, busy);
    if (a->out && (st = mp_plan_save(a->out, &plans[0], err)) != MP_OK) return st;
    if (a->trace) {
        mp_trace tr;
        memset(&tr, 0, sizeof tr);
        st = mp_plan_evaluate(&plans[0], prof, cl, a->sf, &tr, err);
        if (st == MP_OK) st = mp_trace_write_chrome(&tr, a->trace, "mpplan predicted timeline", err);
        mp_trace_free(&tr);
        if (st != MP_OK) return st;
    }
    if (a->json) {
        char *s = mp_plan_to_json(&plans[0]);
        if (!s) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
        fputs(s, stdout);
        free(s);
        return MP_OK;
    }
    print_header(a, ps, cl, r);
    for (int i = 0; i < n; i++)
        print_plan_row(i + 1, &plans[i], &ps->p[mp_profile_set_pick(ps, mp_plan_num_devices(&plans[i]))], cl);
    return MP_OK;
}

/* No plan: the smallest memory that fits one; stopped: the search ran out
 * of time before finding one, which the message says (memory may not be
 * what is short: no second search past the limit). */
static mp_status no_fit(const args *a, const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                        int stopped, mp_error *err)
{
    const char *why = "no plan fits the devices' memory";
    mp_error_clear(err);   /* replace the search's shorter message */
    if (stopped) {
        if (a->json) printf("{\"error\": \"no plan found within the time limit\", \"time_limit_s\": %g}\n", a->time_limit);
        return mp_error_set(err, MP_ERR_NOFIT, "no plan that fits the devices' memory was found within --time-limit %g s "
                            "(a longer limit may find one)", a->time_limit);
    }
    double M = 0;
    mp_plan p;
    mp_error e2;
    mp_error_clear(&e2);
    mp_status st = mp_search_min_memory(prof, cl, o, &M, &p, &e2);
    if (a->json) {
        if (st == MP_OK) printf("{\"error\": \"no plan fits\", \"min_memory_bytes\": %.0f}\n", M);
        else printf("{\"error\": \"no plan fits\"}\n");
    }
    if (st != MP_OK) return mp_error_set(err, MP_ERR_NOFIT, "%s", why);
    char mb[32], split[400], rcs[160], dps[64] = "";
    format_split(&p, split, sizeof split, rcs, sizeof rcs);
    if (mp_plan_replicas(&p) > 1) snprintf(dps, sizeof dps, ", D=%d replicas", mp_plan_replicas(&p));
    mp_error_set(err, MP_ERR_NOFIT,
                 "%s. The smallest memory per device with which a plan fits is "
                 "%.0f bytes (%s): %s%s%s, b=%d, m=%d, layers %s, recompute %s",
                 why, M, mp_format_bytes(mb, sizeof mb, M), p.schedule == MP_SCHED_INTERLEAVED ? "interleaved" :
                 mp_schedule_name(p.schedule), p.schedule == MP_SCHED_INTERLEAVED ? " (v>=2)" : "", dps,
                 p.microbatch_size, p.num_microbatches, split, rcs);
    mp_plan_free(&p);
    return MP_ERR_NOFIT;
}

/* ---------------------------------------------------------------- run */

static mp_status run_evaluate(const args *a, const mp_profile_set *ps, const mp_cluster *cl, mp_error *err)
{
    mp_plan p;
    mp_status st = mp_plan_load(a->evaluate, &p, err);
    if (st != MP_OK) return st;
    const mp_profile *prof = &ps->p[mp_profile_set_pick(ps, mp_plan_num_devices(&p))];
    if ((st = mp_plan_check(&p, prof->num_layers, cl->num_devices, a->evaluate, err)) == MP_OK &&
        (st = mp_plan_evaluate(&p, prof, cl, a->sf, NULL, err)) == MP_OK) {
        if (!mp_plan_fits(&p, cl)) {
            st = mp_error_set(err, MP_ERR_NOFIT, "%s: the plan does not fit the devices' memory", a->evaluate);
            if (a->json) printf("{\"error\": \"plan does not fit\"}\n");
        } else {
            args b = *a;
            b.batch = p.global_batch;
            st = report(&b, ps, cl, &p, 1, NULL, err);
        }
    }
    mp_plan_free(&p);
    return st;
}

static int cmp_plan_time(const void *x, const void *y)
{
    double a = ((const mp_plan *)x)->predicted.iteration_ms, b = ((const mp_plan *)y)->predicted.iteration_ms;
    return (a > b) - (a < b);
}

/* Adds r's counters and plans (moved) to *all; *all's bound is the least. */
static mp_status merge_result(mp_search_result *all, mp_search_result *r, mp_error *err)
{
    mp_plan *np = realloc(all->plans, (size_t)(all->num_plans + r->num_plans) * sizeof *np);
    if (!np) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    all->plans = np;
    memcpy(all->plans + all->num_plans, r->plans, (size_t)r->num_plans * sizeof *np);
    all->num_plans += r->num_plans;
    free(r->plans);
    free(r->fast_ms);
    r->plans = NULL;
    r->fast_ms = NULL;
    r->num_plans = 0;
    all->optimal = all->optimal && r->optimal;
    all->gap = r->gap;   /* right for one search; recomputed for several */
    if (r->lower_bound_ms < all->lower_bound_ms) all->lower_bound_ms = r->lower_bound_ms;
    all->configurations += r->configurations;
    all->searched += r->searched;
    all->nodes += r->nodes;
    all->simulations += r->simulations;
    all->seconds += r->seconds;
    all->placements += r->placements;
    all->placements_complete = all->placements_complete && r->placements_complete;
    return MP_OK;
}

/* The search, once per profile over the device counts it times
 * (profile_set.h), the best plans of all. */
static mp_status run_search(const args *a, const mp_profile_set *ps, const mp_cluster *cl, mp_error *err)
{
    mp_search_opts o;
    mp_search_opts_init(&o, a->batch);
    o.microbatch = a->micro;
    o.schedule = a->schedule;
    o.recompute = a->recompute;
    o.state_factor = a->sf;
    o.data_parallel = a->dp;
    o.positions = a->positions;
    o.top = a->json ? 1 : a->top;
    o.progress = isatty(STDERR_FILENO);   /* a terminal: one line, rewritten once a second; a log: none */
    o.file_order = a->file_order;
    mp_search_result all;
    memset(&all, 0, sizeof all);
    all.optimal = 1;
    all.placements_complete = 1;
    all.lower_bound_ms = HUGE_VAL;
    mp_status st = MP_OK, first = MP_OK;
    int stopped = 0;
    mp_error e1;
    mp_error_clear(&e1);
    double t0 = a->t_start;
    for (int i = 0; i < ps->n && st == MP_OK; i++) {
        mp_search_opts oi = o;
        oi.time_limit = (a->time_limit - (mp_now_s() - t0)) / (ps->n - i);  /* the rest, shared out */
        if (oi.time_limit < 1e-3) oi.time_limit = 1e-3;
        if (ps->n > 1) mp_profile_set_range(ps, i, &oi.min_devices, &oi.max_devices);
        if (oi.min_devices > cl->num_devices) continue;
        mp_search_result r;
        mp_error ei;
        mp_error_clear(&ei);
        mp_status si = mp_search_run(&ps->p[i], cl, &oi, &r, &ei);
        if (si == MP_OK) st = merge_result(&all, &r, err);
        else if (si == MP_ERR_NOMEM) st = mp_error_set(err, si, "%s", ei.msg);
        else if (first == MP_OK || (first != MP_ERR_NOFIT && si == MP_ERR_NOFIT)) { first = si; e1 = ei; }
        if (si == MP_ERR_NOFIT) stopped |= r.stopped;
        if (si == MP_OK) mp_search_result_free(&r);
    }
    if (st == MP_OK && all.num_plans == 0) {
        if (first == MP_ERR_NOFIT) {
            mp_search_result_free(&all);
            return no_fit(a, &ps->p[0], cl, &o, stopped, err);
        }
        st = mp_error_set(err, first != MP_OK ? first : MP_ERR_USAGE, "%s", e1.msg);
    }
    if (st == MP_OK && ps->n > 1) {
        qsort(all.plans, (size_t)all.num_plans, sizeof *all.plans, cmp_plan_time);
        for (int i = o.top; i < all.num_plans; i++) mp_plan_free(&all.plans[i]);
        if (all.num_plans > o.top) all.num_plans = o.top;
        double best = all.plans[0].predicted.iteration_ms;
        if (all.lower_bound_ms > best) all.lower_bound_ms = best;
        all.gap = all.optimal ? 0 : (best - all.lower_bound_ms) / best;
    }
    if (st == MP_OK) {  /* what the search did, in the written plan */
        mp_plan_search *q = &all.plans[0].search;
        all.plans[0].has_search = 1;
        q->seconds = mp_now_s() - t0;
        q->configurations = all.configurations;
        q->searched = all.searched;
        q->lower_bound_ms = all.lower_bound_ms;
        q->gap = all.optimal ? 0 : all.gap;
        q->proven = all.optimal;
        st = report(a, ps, cl, all.plans, all.num_plans, &all, err);
    }
    mp_search_result_free(&all);
    return st;
}

int main(int argc, char **argv)
{
    if (mp_cli_version(argc, argv, "mpplan")) return 0;
    for (int i = 1; i < argc; i++)   /* serving plans have their own options */
        if (strcmp(argv[i], "--serve") == 0) return mp_mpplan_serve_main(argc, argv);
    args a;
    mp_error err;
    mp_profile_set ps;
    mp_cluster cl;
    mp_error_clear(&err);
    memset(&ps, 0, sizeof ps);
    memset(&cl, 0, sizeof cl);
    double t_start = mp_now_s();
    mp_status st = parse_args(argc, argv, &a, &err);
    a.t_start = t_start;
    if (st == MP_OK && a.help) {
        usage(stdout);
        return 0;
    }
    if (st == MP_OK) st = validate(&a, &err);
    if (st == MP_OK) st = load_inputs(&a, &ps, &cl, &err);
    if (st == MP_OK) st = a.evaluate ? run_evaluate(&a, &ps, &cl, &err) : run_search(&a, &ps, &cl, &err);
    if (st != MP_OK) fprintf(stderr, "mpplan: %s\n", err.msg);
    mp_profile_set_free(&ps);
    mp_cluster_free(&cl);
    return mp_exit_code(st);
}
