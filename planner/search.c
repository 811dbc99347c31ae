/* search.c — the planner's search (search.h): the configurations by
 * increasing lower bound, each with the branch and bound over its splits
 * under a share of the budget; the best plans and what the search proved.
 * defines: mp_search_opts_init, mp_search_run, mp_search_result_free
 *
 * The parts: planner/configs.c lists the configurations with their bounds
 * (planner/bounds.c), planner/split.c searches the splits of one
 * (planner/split_interleaved.c for interleaved), planner/top.c keeps the
 * incumbents. Configurations are visited gpipe/1f1b first (cheap, and their
 * incumbent prunes the interleaved ones), then interleaved, each pass by
 * increasing bound, skipping those whose bound reaches the incumbent; a
 * gpipe/1f1b bound is sharpened by the split relaxation (mp_bound_split)
 * just before its visit. gpipe/1f1b may use half of the budgets, one
 * configuration at most an eighth (set_caps). The reported lower bound is
 * the least bound of the configurations not fully searched. */
#include "search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "clock.h"
#include "configs.h"
#include "evaluate.h"
#include "schedule.h"
#include "split.h"
#include "top.h"

#define DEFAULT_NODES 200000L
#define DEFAULT_SIM_OPS 1.5e7
#define GREEDY_FIRST 64       /* interleaved configurations (per D) whose greedy split is timed first */
#define INTERLEAVED_NEAR 0.10 /* relative gap below which interleaved configurations get less budget */

typedef struct {
    const mp_search_opts *o;   /* with the budgets' defaults filled in */
    mp_bound_data bd;
    mp_top top;
    mp_search_tally tally;
    mp_split sp;
    int *from;                 /* mp_config_fits scratch */
    long cfgs;                 /* configurations considered */
    double unproven;           /* least bound of what was not fully explored */
} search;

/* See search.h. */
void mp_search_opts_init(mp_search_opts *o, int global_batch)
{
    memset(o, 0, sizeof *o);
    o->global_batch = global_batch;
    o->schedule = -1;
    o->recompute = MP_RC_AUTO;
    o->state_factor = MP_DEFAULT_STATE_FACTOR;
    o->top = 5;
    o->data_parallel = 1;
}

static mp_status check_opts(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                            mp_error *err)
{
    if (o->global_batch < 1)
        return mp_error_set(err, MP_ERR_USAGE, "--global-batch must be >= 1 (got %d)", o->global_batch);
    if (o->microbatch < 0 || (o->microbatch && o->global_batch % o->microbatch))
        return mp_error_set(err, MP_ERR_USAGE, "--microbatch %d does not divide --global-batch %d",
                            o->microbatch, o->global_batch);
    if (!(o->state_factor >= 0) || isinf(o->state_factor))
        return mp_error_set(err, MP_ERR_USAGE, "--state-factor must be >= 0 (got %g)", o->state_factor);
    if (o->top < 1) return mp_error_set(err, MP_ERR_USAGE, "--top must be >= 1 (got %d)", o->top);
    if (o->data_parallel < 0 || o->data_parallel > cl->num_devices)
        return mp_error_set(err, MP_ERR_USAGE, "--data-parallel %d: must be auto or 1..%d (the cluster's devices)",
                            o->data_parallel, cl->num_devices);
    if (o->positions < 0 || o->positions > cl->num_devices)
        return mp_error_set(err, MP_ERR_USAGE, "--positions %d: must be 1..%d (the cluster's devices)",
                            o->positions, cl->num_devices);
    if (prof->num_layers < 1 || cl->num_devices < 1)
        return mp_error_set(err, MP_ERR_INPUT, "search: the profile has no layers or the cluster no devices");
    return MP_OK;
}

static void search_free(search *x)
{
    mp_bound_data_free(&x->bd);
    mp_top_free(&x->top);
    mp_split_free(&x->sp);
    free(x->from);
}

static mp_status search_init(search *x, const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                             double t0)
{
    memset(x, 0, sizeof *x);
    x->o = o;
    x->tally.progress = o->progress;
    x->tally.t0 = t0;
    x->unproven = HUGE_VAL;
    if (mp_top_init(&x->top, o->top) != MP_OK ||
        mp_split_init(&x->sp, prof, cl, o, &x->top, &x->tally) != MP_OK ||
        mp_bound_data_init(&x->bd, prof, cl, o->recompute, o->state_factor) != MP_OK ||
        !(x->from = malloc(mp_config_fits_scratch(&x->sp.ps, cl) * sizeof(int))))
        return MP_ERR_NOMEM;
    return MP_OK;
}

/* The caps of c's split search: an eighth of each budget (of the nodes a
 * 32nd for an interleaved configuration whose bound is within
 * INTERLEAVED_NEAR of the incumbent: little can be gained there), at most
 * what is left. */
static void set_caps(search *x, const mp_config *c)
{
    mp_search_tally *t = &x->tally;
    long left = x->o->node_budget - t->nodes, cap = x->o->node_budget / 8;
    if (c->kind == MP_SCHED_INTERLEAVED && mp_top_worst(&x->top) <= c->lb * (1 + INTERLEAVED_NEAR))
        cap = x->o->node_budget / 32;
    t->node_cap = t->nodes + (left < cap ? left : cap);
    double sleft = x->o->sim_op_budget - t->simops, scap = x->o->sim_op_budget / 8;
    t->sim_cap = t->simops + (sleft < scap ? sleft : scap);
}

/* Interleaved and zero-bubble configurations come in the second pass. */
static int late(int kind) { return kind == MP_SCHED_INTERLEAVED || mp_schedule_is_zb((mp_schedule_kind)kind); }

/* Times c's greedy split; with split_too, then searches its splits
 * (zero bubble: only the search, planner/split_zb.c). */
static mp_status search_config(search *x, const mp_config *c, int split_too, mp_error *err)
{
    mp_status st = mp_split_config(&x->sp, c, err);
    if (st == MP_OK && mp_schedule_is_zb((mp_schedule_kind)c->kind)) {
        if (!split_too) return MP_OK;
        set_caps(x, c);
        return mp_split_zb_search(&x->sp, err);
    }
    if (st == MP_OK) st = mp_split_greedy(&x->sp, err);
    if (st != MP_OK || !split_too) return st;
    set_caps(x, c);
    return mp_split_search(&x->sp, err);
}

/* Both passes over cfg[0..n) (sorted by bound); done[i] set for the
 * configurations searched in full or proven not to fit. */
static mp_status visit(search *x, mp_config *cfg, int n, unsigned char *done, mp_error *err)
{
    const mp_search_opts *o = x->o;
    mp_search_tally *t = &x->tally;
    mp_status st;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {  /* incumbents from the greedy splits of the most promising interleaved ones, per D */
            int N = x->sp.cl->num_devices, *k = calloc((size_t)N + 1, sizeof *k);
            if (!k) return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
            for (int i = 0; i < n; i++) {
                if (cfg[i].kind != MP_SCHED_INTERLEAVED || k[cfg[i].D] >= GREEDY_FIRST) continue;
                if (cfg[i].lb >= mp_top_worst(&x->top)) break;
                k[cfg[i].D]++;
                if ((st = search_config(x, &cfg[i], 0, err)) != MP_OK) { free(k); return st; }
            }
            free(k);
        }
        for (int i = 0; i < n; i++) {
            mp_config *c = &cfg[i];
            if (late(c->kind) != pass) continue;
            double thr = mp_top_worst(&x->top);
            if (c->lb >= thr) break;
            long nb = pass ? o->node_budget : o->node_budget / 2;
            if (t->nodes >= nb || t->simops >= (pass ? 1 : 0.5) * o->sim_op_budget) {
                t->out_of_budget = 1;
                break;
            }
            if (!pass) {
                double lb = mp_bound_split(&x->bd, c->K, c->b, c->kind, c->m, c->lb, thr) * (1 - MP_BOUND_SLACK);
                if (lb > c->lb) c->lb = lb;
                if (c->lb >= thr) continue;
                mp_stage_fit f = mp_config_fit(c, &x->sp.ps, x->sp.cl, o);
                if (!mp_config_fits(&f, x->from, NULL)) {  /* proven infeasible: skip */
                    done[i] = 1;
                    continue;
                }
            }
            t->searched++;
            int before = t->out_of_budget;
            t->out_of_budget = 0;
            if ((st = search_config(x, c, 1, err)) != MP_OK) return st;
            done[i] = !t->out_of_budget;
            t->out_of_budget |= before;
        }
    }
    return MP_OK;
}

/* What the search did not rule out: the least bound of the configurations
 * not fully searched, gpipe/1f1b bounds refined where it matters. */
static void unproven_bound(search *x, mp_config *cfg, int n, const unsigned char *done)
{
    if (x->top.n == 0) return;
    double best = x->top.e[0].t;
    for (int i = 0; i < n; i++) {
        mp_config *c = &cfg[i];
        if (done[i] || c->lb >= best || c->lb >= x->unproven) continue;
        if (!late(c->kind)) {
            double stop = x->unproven < best ? x->unproven : best;
            double lb = mp_bound_split(&x->bd, c->K, c->b, c->kind, c->m, c->lb, stop) * (1 - MP_BOUND_SLACK);
            if (lb > c->lb) c->lb = lb;
        }
        if (c->lb < x->unproven) x->unproven = c->lb;
    }
}

/* The incumbents as evaluated plans, and what was proven. */
static mp_status collect(const search *x, const mp_profile *prof, const mp_cluster *cl, mp_search_result *r,
                         mp_error *err)
{
    const mp_top *top = &x->top;
    r->plans = calloc((size_t)top->n, sizeof *r->plans);
    r->fast_ms = calloc((size_t)top->n, sizeof *r->fast_ms);
    if (!r->plans || !r->fast_ms) return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    for (int k = 0; k < top->n; k++) {
        mp_status st = mp_top_plan(&top->e[k], x->o->global_batch, prof, cl, x->o->state_factor,
                                   &r->plans[k], err);
        if (st != MP_OK) {
            mp_plan_free(&r->plans[k]);
            return st;
        }
        r->fast_ms[k] = top->e[k].t;
        r->num_plans++;
    }
    double best = top->e[0].t;
    int inexact = x->tally.inexact;
    r->optimal = !inexact && x->unproven >= best;
    r->lower_bound_ms = r->optimal ? best : (x->unproven < best ? x->unproven : best);
    if (inexact && x->unproven >= best) r->lower_bound_ms = best; /* unknown; gap reported 0 */
    r->gap = (best - r->lower_bound_ms) / best;
    r->configurations = x->cfgs;
    r->searched = x->tally.searched;
    r->nodes = x->tally.nodes;
    r->simulations = x->tally.sims;
    return MP_OK;
}

/* See search.h. */
mp_status mp_search_run(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o_in,
                        mp_search_result *r, mp_error *err)
{
    memset(r, 0, sizeof *r);
    mp_status st = check_opts(prof, cl, o_in, err);
    if (st != MP_OK) return st;
    mp_search_opts o = *o_in;
    if (o.node_budget <= 0) o.node_budget = DEFAULT_NODES;
    if (o.sim_op_budget <= 0) o.sim_op_budget = DEFAULT_SIM_OPS;
    search x;
    mp_config *cfg = NULL;
    unsigned char *done = NULL;
    int ncfg = 0;
    double t0 = mp_now_s();
    if (search_init(&x, prof, cl, &o, t0) != MP_OK) {
        search_free(&x);
        return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    }
    if ((st = mp_configs_list(&o, cl, &x.sp.ps, &x.bd, &cfg, &ncfg, &x.cfgs, err)) != MP_OK) goto out;
    if (ncfg == 0 && x.cfgs > 0) {
        st = mp_error_set(err, MP_ERR_NOFIT, "no plan fits the devices' memory");
        r->configurations = x.cfgs;
        goto out;
    }
    if (ncfg == 0 && o.schedule >= 0 && mp_schedule_is_zb((mp_schedule_kind)o.schedule) && !mp_profile_has_split(prof)) {
        st = mp_error_set(err, MP_ERR_INPUT,
                          "the %s schedule needs the split backward times bwd_input_ms and bwd_weight_ms of "
                          "every layer, which the profile lacks (profile the model again with this mpprof)",
                          mp_schedule_name(o.schedule));
        goto out;
    }
    if (ncfg == 0 && o.data_parallel > 1) {
        st = mp_error_set(err, MP_ERR_USAGE,
                          "no configuration is possible with --data-parallel %d: it must divide the global "
                          "batch %d over micro-batches, and replica r's stage k runs on device r*K + k, which "
                          "must be of the same kind as device k (speed, memory, pipeline links)",
                          o.data_parallel, o.global_batch);
        goto out;
    }
    if (ncfg == 0) {
        st = mp_error_set(err, MP_ERR_USAGE,
                          "no configuration is possible: the %s schedule needs %s",
                          o.schedule >= 0 ? mp_schedule_name(o.schedule) : "chosen",
                          o.schedule == MP_SCHED_INTERLEAVED
                              ? ">= 2 devices, a number of micro-batches divisible by the number of "
                                "devices and >= 2 layers per device"
                              : "at least one device and one layer");
        goto out;
    }
    x.cfgs += ncfg;
    done = calloc((size_t)ncfg, 1);
    if (!done) { st = mp_error_set(err, MP_ERR_NOMEM, "search: out of memory"); goto out; }
    if ((st = visit(&x, cfg, ncfg, done, err)) != MP_OK) goto out;
    unproven_bound(&x, cfg, ncfg, done);
    if (x.tally.shown) fprintf(stderr, "\n");
    if (x.top.n == 0) {
        st = mp_error_set(err, MP_ERR_NOFIT, "no plan fits the devices' memory");
        r->configurations = x.cfgs;
        goto out;
    }
    st = collect(&x, prof, cl, r, err);
out:
    r->seconds = mp_now_s() - t0;
    free(cfg);
    free(done);
    search_free(&x);
    if (st != MP_OK && st != MP_ERR_NOFIT) mp_search_result_free(r);
    return st;
}

/* See search.h. */
void mp_search_result_free(mp_search_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->num_plans; i++) mp_plan_free(&r->plans[i]);
    free(r->plans);
    free(r->fast_ms);
    memset(r, 0, sizeof *r);
}
