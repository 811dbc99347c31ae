/* plot_sweep.c — `mpplot sweep`: predicted samples/s against micro-batch size,
 * one line per schedule and stage count (each point the best plan the
 * planner finds for that schedule, stage count K and b: planner/search.h
 * keeps one plan per configuration), the best plan starred, measured points
 * from mprun reports on top. A measured report:
 *   {"plan": {...a plan: schedule, microbatch_size, stages, chunks_per_device...},
 *    "measured": {"iteration_ms": x, "samples_per_s": y}} */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"
#include "gnuplot.h"
#include "plot.h"
#include "search.h"

enum { O_PROFILE = 256, O_BATCH, O_MEASURED, O_SCHEDULES, O_STAGES, O_RECOMPUTE, O_STATE };
static const mp_plot_opt opts[] = {
    MP_PLOT_OPT_OUTPUT,
    { "profile", required_argument, O_PROFILE, "P.json", "per-layer profile (required)" },
    MP_CLI_CLUSTER_OPTS,
    { "global-batch", required_argument, O_BATCH, "B", "samples per iteration (required)" },
    { "schedules", required_argument, O_SCHEDULES, "LIST", "e.g. gpipe,1f1b (default: all three)" },
    { "stages", required_argument, O_STAGES, "LIST", "stage counts, e.g. 1,2,4 (default: 1..8, then powers of 2)" },
    { "recompute", required_argument, O_RECOMPUTE, "auto|on|off", "as mpplan (default auto)" },
    { "state-factor", required_argument, O_STATE, "F", "bytes of state per parameter byte (default 4)" },
    { "measured", required_argument, O_MEASURED, "R.json", "an mprun report; repeatable" },
    MP_PLOT_OPT_TITLE("the plot's title"),
    MP_PLOT_OPT_HELP,
};
#define NOPTS ((int)(sizeof opts / sizeof *opts))
#define MAX_MEASURED 64
#define MAX_STAGES 4096
#define SYNOPSIS "sweep --profile P.json (--devices K --memory SIZE | --cluster C.json) --global-batch B\n" \
                 "                    [--measured R.json]... -o IMAGE"
#define ABOUT "Predicted samples/s against micro-batch size (log2 axis), one line per\n" \
              "schedule and stage count, each point the best plan the planner finds for it;\n" \
              "the best plan overall is starred. A measured point: an mprun --report file, or\n" \
              "{\"plan\": {...plan...}, \"measured\": {\"iteration_ms\": x, \"samples_per_s\": y}}"

typedef struct {
    mp_plot_base b;
    const char *profile;
    const char *measured[MAX_MEASURED];
    int nmeasured, global_batch, recompute;
    int sched[3];               /* 1: draw this schedule */
    char *stages_on;            /* [MAX_STAGES + 1], NULL: default */
    double state_factor;
} args;

static int parse_schedules(const char *s, int *on)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    on[0] = on[1] = on[2] = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        mp_schedule_kind k;
        if (mp_schedule_from_name(t, &k) != MP_OK) return 0;
        on[k] = 1;
    }
    return on[0] || on[1] || on[2];
}

/* One option's value into a (mp_cli_opt_fn). */
static mp_status take(void *ctx, int c, const char *v, mp_error *err)
{
    static const char *const names[] = { "auto", "on", "off" };
    static const int modes[] = { MP_RC_AUTO, MP_RC_ON, MP_RC_OFF };
    args *a = ctx;
    int k, nk, ks[MAX_STAGES];
    mp_status st = MP_OK;
    switch (c) {
    case O_PROFILE: a->profile = v; break;
    case O_BATCH: st = mp_cli_int("global-batch", v, 1, 1 << 24, &a->global_batch, err); break;
    case O_SCHEDULES:
        if (!parse_schedules(v, a->sched))
            st = mp_error_set(err, MP_ERR_USAGE, "--schedules: expected a list of gpipe, 1f1b, interleaved, got \"%s\"", v);
        break;
    case O_STAGES:
        if (!a->stages_on && !(a->stages_on = calloc(MAX_STAGES + 1, 1))) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
        if ((st = mp_cli_int_list("stages", v, 1, MAX_STAGES, ks, MAX_STAGES, &nk, err)) == MP_OK)
            for (int i = 0; i < nk; i++) a->stages_on[ks[i]] = 1;
        break;
    case O_RECOMPUTE:
        if ((st = mp_cli_choice("recompute", v, names, 3, &k, err)) == MP_OK) a->recompute = modes[k];
        break;
    case O_STATE: st = mp_plot_state_factor(v, &a->state_factor, err); break;
    case O_MEASURED:
        if (a->nmeasured == MAX_MEASURED) return mp_error_set(err, MP_ERR_USAGE, "--measured: at most %d files", MAX_MEASURED);
        a->measured[a->nmeasured++] = v;
        break;
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see mpplot sweep --help)");
    }
    return st;
}

static int parse(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->state_factor = MP_DEFAULT_STATE_FACTOR;
    a->recompute = MP_RC_AUTO;
    a->sched[0] = a->sched[1] = a->sched[2] = 1;
    int code = mp_plot_parse(argc, argv, "sweep", SYNOPSIS, ABOUT, opts, NOPTS, take, a, &a->b);
    if (code >= 0) return code;
    if (optind != argc || !a->b.out || !a->profile || !a->global_batch) {
        fprintf(stderr, "usage: mpplot " SYNOPSIS "\n");
        return 2;
    }
    return -1;
}

/* ---------------------------------------------------------------- series */

typedef struct {
    int kind, K;
    double *sps;    /* [nb] best samples/s at bvals[i]; 0 where none fits */
} series;

static int plan_stages(const mp_plan *p)
{
    return mp_plan_num_positions(p);   /* devices for interleaved and zb-v */
}

static int default_stage(int K)
{
    return K <= 8 || (K & (K - 1)) == 0;
}

/* Groups the search's plans into series; *bv gets the sorted b values. */
static mp_status build_series(const args *a, const mp_search_result *r, int ndev, series **sv, int *ns,
                              int **bv, int *nb, int *best, mp_error *err)
{
    int B = a->global_batch;
    *nb = 0;
    *ns = 0;
    *bv = malloc(sizeof **bv * 64);
    int cap = 64;
    if (!*bv) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int b = 1; b <= B; b++) {
        if (B % b) continue;
        int seen = 0;
        for (int i = 0; i < r->num_plans && !seen; i++) seen = r->plans[i].microbatch_size == b;
        if (!seen) continue;
        if (*nb == cap) {
            int *g = realloc(*bv, sizeof **bv * (size_t)(cap *= 2));
            if (!g) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
            *bv = g;
        }
        (*bv)[(*nb)++] = b;
    }
    *sv = calloc((size_t)(3 * ndev), sizeof **sv);
    if (!*sv) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    /* Series in schedule order, then stage count. */
    for (int kind = 0; kind < 3; kind++) {
        for (int K = 1; K <= ndev; K++) {
            if (!a->sched[kind]) continue;
            if (a->stages_on ? !(K <= MAX_STAGES && a->stages_on[K]) : !default_stage(K)) continue;
            series s = { kind, K, NULL };
            int any = 0;
            for (int i = 0; i < r->num_plans; i++) {
                const mp_plan *p = &r->plans[i];
                if ((int)p->schedule != kind || plan_stages(p) != K) continue;
                if (!s.sps && !(s.sps = calloc((size_t)*nb, sizeof *s.sps)))
                    return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
                for (int j = 0; j < *nb; j++)
                    if ((*bv)[j] == p->microbatch_size && p->predicted.samples_per_s > s.sps[j])
                        s.sps[j] = p->predicted.samples_per_s;
                any = 1;
                if (i == 0) *best = *ns;
            }
            if (any) (*sv)[(*ns)++] = s;
        }
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- measured */

static mp_status write_measured(const args *a, FILE *f, int *n, double *max_sps, double *busy, mp_error *err)
{
    *n = 0;
    fputs("\n\n# measured: b samples_per_s label\n", f);
    for (int i = 0; i < a->nmeasured; i++) {
        const char *path = a->measured[i];
        json_t *j = NULL;
        mp_status st = mp_plot_load_json(path, &j, err);
        if (st != MP_OK) return st;
        json_t *plan = json_object_get(j, "plan"), *m = json_object_get(j, "measured");
        mp_plot_busy_scan(j, busy);
        mp_plot_busy_scan(m, busy);
        double b = 0, sps = 0, chunks = 1, positions = 0;
        if (!json_is_object(plan) && json_is_number(json_object_get(j, "num_positions"))) {
            plan = m = j;   /* an mprun report: the plan's fields and the measurement at top level */
            mp_plot_json_num(j, "num_positions", &positions);
        }
        const char *sched = json_string_value(json_object_get(plan, "schedule"));
        json_t *stages = json_object_get(plan, "stages");
        mp_schedule_kind k;
        if (!json_is_object(plan)) st = mp_error_set(err, MP_ERR_INPUT, "%s: plan: expected the plan object", path);
        else if (mp_plot_json_num(plan, "microbatch_size", &b) != 1 || b < 1)
            st = mp_error_set(err, MP_ERR_INPUT, "%s: plan.microbatch_size: expected a number >= 1", path);
        else if (!sched || mp_schedule_from_name(sched, &k) != MP_OK)
            st = mp_error_set(err, MP_ERR_INPUT, "%s: plan.schedule: expected gpipe, 1f1b or interleaved", path);
        else if (!json_is_array(stages) || json_array_size(stages) == 0)
            st = mp_error_set(err, MP_ERR_INPUT, "%s: plan.stages: expected a non-empty array", path);
        else if (mp_plot_json_num(plan, "chunks_per_device", &chunks) < 0 || chunks < 1)
            st = mp_error_set(err, MP_ERR_INPUT, "%s: plan.chunks_per_device: expected a number >= 1", path);
        else if (!json_is_object(m) || mp_plot_json_num(m, "samples_per_s", &sps) != 1 || !(sps > 0))
            st = mp_error_set(err, MP_ERR_INPUT, "%s: measured.samples_per_s: expected a positive number", path);
        if (st == MP_OK) {
            char label[96];
            int K = positions > 0 ? (int)positions
                                  : (int)json_array_size(stages) / (k == MP_SCHED_INTERLEAVED ? (int)chunks : 1);
            snprintf(label, sizeof label, "%s K=%d", mp_schedule_name(k), K);
            fprintf(f, "%.10g %.10g ", b, sps);
            if (sps > *max_sps) *max_sps = sps;
            mp_gp_put_field(f, label);
            fputc('\n', f);
            (*n)++;
        }
        json_decref(j);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- plot */

static mp_status write_plot(mp_gp_out *o, const args *a, const mp_search_result *r, const mp_profile *prof,
                            const mp_cluster *cl, mp_error *err)
{
    series *sv = NULL;
    int *bv = NULL, ns = 0, nb = 0, best = -1, nm = 0;
    mp_status st = build_series(a, r, cl->num_devices, &sv, &ns, &bv, &nb, &best, err);
    if (st == MP_OK && ns == 0)
        st = mp_error_set(err, MP_ERR_USAGE, "no plan fits with the chosen --schedules and --stages");
    const char **names = calloc((size_t)ns + 1, sizeof *names);
    double *colors = calloc((size_t)ns + 1, sizeof *colors), *dashes = calloc((size_t)ns + 1, sizeof *dashes);
    double *bd = calloc((size_t)nb + 1, sizeof *bd);
    char (*nbuf)[48] = calloc((size_t)ns + 1, sizeof *nbuf);
    if (st == MP_OK && (!names || !colors || !dashes || !bd || !nbuf))
        st = mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MP_OK && i < ns; i++) {
        fprintf(o->data, "%s# %s K=%d: b samples_per_s\n", i ? "\n\n" : "", mp_schedule_name(sv[i].kind), sv[i].K);
        for (int j = 0; j < nb; j++) {
            if (sv[i].sps[j] > 0) fprintf(o->data, "%d %.10g\n", bv[j], sv[i].sps[j]);
            else fputc('\n', o->data);   /* no plan fits: break the line */
        }
        snprintf(nbuf[i], sizeof nbuf[i], "%s, %d stage%s", mp_schedule_name(sv[i].kind), sv[i].K,
                 sv[i].K == 1 ? "" : "s");
        names[i] = nbuf[i];
        colors[i] = sv[i].K - 1;
        dashes[i] = sv[i].kind + 1;
    }
    const mp_plan *bp = &r->plans[0];
    double ymax = 0, busy = 0;
    char bl[160], t[1400];
    if (st == MP_OK) {
        fprintf(o->data, "\n\n# best: b samples_per_s\n%d %.10g\n", bp->microbatch_size, bp->predicted.samples_per_s);
        st = write_measured(a, o->data, &nm, &ymax, &busy, err);
    }
    if (st == MP_OK) {
        for (int j = 0; j < nb; j++) bd[j] = bv[j];
        snprintf(bl, sizeof bl, "best: %s, %d stages, b=%d: %.4g samples/s", mp_schedule_name(bp->schedule),
                 plan_stages(bp), bp->microbatch_size, bp->predicted.samples_per_s);
        if (a->b.title) snprintf(t, sizeof t, "%s", a->b.title);
        else if (a->b.ca.cluster) snprintf(t, sizeof t, "%s: predicted throughput, global batch %d, %s",
                                         prof->model ? prof->model : "model", a->global_batch, a->b.ca.cluster);
        else snprintf(t, sizeof t, "%s: predicted throughput, global batch %d, %d devices of %s",
                      prof->model ? prof->model : "model", a->global_batch, cl->num_devices,
                      a->b.ca.memory_arg ? a->b.ca.memory_arg : "?");
        if (!a->b.title) mp_plot_busy_title(t, sizeof t, busy);
        mp_gp_var_str(o, "title", t);
        mp_gp_var_num(o, "nseries", ns);
        mp_gp_var_strs(o, "series_name", ns, names);
        mp_gp_var_nums(o, "series_color", ns, colors);
        mp_gp_var_nums(o, "series_dash", ns, dashes);
        mp_gp_var_num(o, "nb", nb);
        mp_gp_var_nums(o, "bvals", nb, bd);
        mp_gp_var_str(o, "best_label", bl);
        mp_gp_var_num(o, "has_measured", nm > 0);
        mp_gp_var_num(o, "ymax", 1.15 * fmax(ymax, bp->predicted.samples_per_s));
    }
    for (int i = 0; i < ns; i++) free(sv[i].sps);
    free(sv);
    free(bv);
    free(names);
    free(colors);
    free(dashes);
    free(bd);
    free(nbuf);
    return st;
}

static int count_divisors(int B)
{
    int n = 0;
    for (int b = 1; b <= B; b++) n += B % b == 0;
    return n;
}

int mp_plot_sweep_main(int argc, char **argv)
{
    args a;
    int code = parse(argc, argv, &a);
    if (code >= 0) {
        free(a.stages_on);
        return code;
    }
    mp_error err = { 0 };
    mp_profile prof = { 0 };
    mp_cluster cl = { 0 };
    mp_search_result r = { 0 };
    mp_gp_out o = { 0 };
    mp_status st = mp_gp_out_init(&o, a.b.out, 1100, 620, &err);
    if (st == MP_OK) st = mp_profile_load(a.profile, &prof, &err);
    if (st == MP_OK) st = mp_cli_cluster_build(&a.b.ca, 0, &cl, &err);
    if (st == MP_OK) {
        mp_search_opts so;
        mp_search_opts_init(&so, a.global_batch);
        so.recompute = a.recompute;
        so.state_factor = a.state_factor;
        /* Enough slots to keep one plan for every configuration (K, b, schedule, v). */
        long top = (long)cl.num_devices * count_divisors(a.global_batch) * 3 * 9 + 16;
        so.top = (int)(top > 200000 ? 200000 : top);
        st = mp_search_run(&prof, &cl, &so, &r, &err);
    }
    if (st == MP_OK) {
        st = write_plot(&o, &a, &r, &prof, &cl, &err);
        if (st == MP_OK) st = mp_gp_finish(&o, "sweep", &err);
    }
    if (st == MP_OK)
        printf("mpplot sweep: %d plans, best %s %d stages b=%d at %.4g samples/s: wrote %s\n", r.num_plans,
               mp_schedule_name(r.plans[0].schedule), plan_stages(&r.plans[0]), r.plans[0].microbatch_size,
               r.plans[0].predicted.samples_per_s, a.b.out);
    mp_search_result_free(&r);
    mp_gp_out_free(&o);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
    free(a.stages_on);
    return st == MP_OK ? 0 : mp_plot_fail("sweep", st, err.msg);
}
