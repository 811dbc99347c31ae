/* mprun.c — train a model with a pipeline plan, on threads or under mpirun,
 * and report measured against predicted. main: parse, validate, run, report. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"
#include "cluster.h"
#include "backend.h"
#include "cli.h"
#include "mprun_cli.h"
#include "evaluate.h"
#include "replay.h"
#include "model.h"
#include "plan.h"
#include "profile.h"
#include "report.h"
#include "run_devices.h"
#include "runtime.h"
#include "mprun_serve.h"
#include "transport.h"

enum { O_STEPS = 256, O_OPT, O_LR, O_CKPT, O_CKPT_EVERY, O_RESUME, O_WARMUP, O_QUIET };

/* One table drives both getopt_long and --help. */
static const mp_cli_opt opts[] = {
    MP_MPRUN_COMMON_OPTS,
    { "steps", 1, O_STEPS, "S", "training steps (required)" },
    { "optimizer", 1, O_OPT, "sgd|adam", "optimizer (default sgd)" },
    { "lr", 1, O_LR, "X", "learning rate (default 0.05)" },
    { "checkpoint", 1, O_CKPT, "DIR", "write checkpoints into DIR" },
    { "checkpoint-every", 1, O_CKPT_EVERY, "N", "checkpoint every N steps (default 1)" },
    { "resume", 0, O_RESUME, NULL, "continue from the latest checkpoint in DIR" },
    { "warmup", 1, O_WARMUP, "N", "steps left out of the median (default 1)" },
    { "quiet", 0, O_QUIET, NULL, "no per-step loss lines" },
};
#define NOPTS ((int)(sizeof opts / sizeof opts[0]))

typedef struct {
    mp_mprun_args a;    /* the options shared with --serve */
    mp_run_config run;
} cli;

static void usage(FILE *f)
{
    fprintf(f, "usage: mprun PLAN.json --model M.json --steps S [options]\n"
               "       mpirun -np K mprun PLAN.json ...   (one rank per pipeline position;\n"
               "                                          D*K with \"data_parallel\": D, rank r*K+k)\n\n");
    mp_cli_print_options(f, opts, NOPTS, "", 28);
}

/* One training option's value into c (mp_cli_opt_fn). */
static mp_status parse_opt(void *ctx, int o, const char *v, mp_error *err)
{
    cli *c = ctx;
    static const char *const optimizers[] = { "sgd", "adam" };
    static const mp_optimizer_kind kinds[] = { MP_OPT_SGD, MP_OPT_ADAM };
    int k;
    double x;
    mp_status st = MP_OK;
    switch (o) {
    case O_STEPS: return mp_cli_int("steps", v, 1, INT_MAX, &c->run.steps, err);
    case O_OPT:
        if ((st = mp_cli_choice("optimizer", v, optimizers, 2, &k, err)) == MP_OK) c->run.optimizer = kinds[k];
        return st;
    case O_LR:
        if ((st = mp_cli_number("lr", v, 1, &x, err)) == MP_OK && x > 1e30)
            st = mp_error_set(err, MP_ERR_USAGE, "--lr: expected a number > 0 (at most 1e30), got \"%s\"", v);
        if (st == MP_OK) c->run.lr = (float)x;
        return st;
    case O_CKPT: c->run.checkpoint_dir = v; return MP_OK;
    case O_CKPT_EVERY: return mp_cli_int("checkpoint-every", v, 1, INT_MAX, &c->run.checkpoint_every, err);
    case O_RESUME: c->run.resume = 1; return MP_OK;
    case O_WARMUP: return mp_cli_int("warmup", v, 0, INT_MAX, &c->run.warmup, err);
    case O_QUIET: c->run.print_loss = 0; return MP_OK;
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see --help)");
    }
}

static mp_status parse_args(int argc, char **argv, cli *c, int *help, mp_error *err)
{
    memset(c, 0, sizeof *c);
    mp_run_config_default(&c->run);
    c->run.steps = 0;
    mp_status st = mp_mprun_args_parse(argc, argv, opts, NOPTS, &c->a, parse_opt, c, err);
    *help = c->a.help;
    if (st != MP_OK || *help) return st;
    if (!c->run.steps) return mp_error_set(err, MP_ERR_USAGE, "--steps S is required");
    if (c->run.resume && !c->run.checkpoint_dir)
        return mp_error_set(err, MP_ERR_USAGE, "--resume needs --checkpoint DIR");
    MP_MPRUN_ARGS_APPLY(c->run, c->a);
    c->run.fault = getenv("MPKIT_FAULT");
    return MP_OK;
}

typedef struct {
    mp_plan plan, pred;
    mp_model model;
    mp_profile prof;
    mp_run_devices dev;
    int has_pred;
} inputs;

/* Everything checked before any work; exit 2 on failure. */
static mp_status load_inputs(cli *c, inputs *in, mp_error *err)
{
    mp_status st;
    const mp_mprun_args *a = &c->a;
    if ((st = mp_plan_load(a->plan_path, &in->plan, err)) != MP_OK) return st;
    if ((st = mp_model_load(a->model_path, &in->model, err)) != MP_OK) return st;
    if ((st = mp_run_devices_load(&in->dev, a->devs.cluster, a->devs.memory, a->devs.bandwidth, a->devs.latency,
                                  &in->plan, a->profile_path != NULL, err)) != MP_OK)
        return st;
    c->run.num_devices = in->dev.num_devices;
    c->run.device_memory = in->dev.memory;
    c->run.plan = &in->plan;
    c->run.model = &in->model;
    if ((st = mp_run_check(&c->run, err)) != MP_OK) return st;
    if (a->profile_path) {
        if ((st = mp_profile_load(a->profile_path, &in->prof, err)) != MP_OK) return st;
        if (in->prof.num_layers != in->model.num_layers)
            return mp_error_set(err, MP_ERR_INPUT, "%s: %d layers, but the model %s has %d", a->profile_path,
                                in->prof.num_layers, a->model_path, in->model.num_layers);
        int busy = mp_plan_num_devices(&in->plan);
        if (!strcmp(c->run.backend, "cpu") && in->prof.busy_cores > 0 && in->prof.busy_cores != busy)
            fprintf(stderr, "mprun: note: %s was measured with %d busy core%s, this plan keeps %d busy: "
                    "the prediction may be off by the difference (docs/profiling.md: mpprof --threads %d)\n",
                    a->profile_path, in->prof.busy_cores, in->prof.busy_cores > 1 ? "s" : "", busy, busy);
        if ((st = mp_plan_copy(&in->pred, &in->plan)) != MP_OK) return mp_error_set(err, st, "out of memory");
        if ((st = mp_plan_evaluate(&in->pred, &in->prof, &in->dev.cluster, MP_DEFAULT_STATE_FACTOR, NULL, err)) != MP_OK)
            return st;
        in->has_pred = 1;
    }
    return MP_OK;
}

static void free_inputs(inputs *in)
{
    mp_plan_free(&in->plan);
    mp_plan_free(&in->pred);
    mp_model_free(&in->model);
    mp_profile_free(&in->prof);
    mp_run_devices_free(&in->dev);
}

static mp_status report(cli *c, inputs *in, mp_run_result *res, mp_error *err)
{
    mp_report_info r;
    memset(&r, 0, sizeof r);
    r.config = &c->run;
    r.result = res;
    r.plan_path = c->a.plan_path;
    r.model_path = c->a.model_path;
    if (in->has_pred) {
        r.has_prediction = 1;
        r.prediction = in->pred.predicted;
        double p = in->pred.predicted.iteration_ms;
        r.error_pct = p > 0 ? 100.0 * (res->iteration_ms - p) / p : 0;
    }
    double last = res->steps > 0 ? res->iter_ms[res->steps - 1] : 0;
    mp_error rerr;
    mp_error_clear(&rerr);
    /* the replay: replica 0's measured ops and, for D > 1, its measured all-reduces */
    if (res->trace.n > 0 && last > 0 && mp_replay_trace(&in->plan, &res->trace, &r.replay_ms, &rerr) == MP_OK) {
        r.has_replay = 1;
        r.replay_error_pct = 100.0 * (last - r.replay_ms) / r.replay_ms;
    }
    mp_report_print(stdout, &r);
    mp_status st = MP_OK;
    if (c->a.report_path && (st = mp_report_write(c->a.report_path, &r, err)) != MP_OK) return st;
    if (c->a.trace_path) {
        for (int q = 0; q < res->trace.num_positions; q++) {
            char name[64];
            snprintf(name, sizeof name, "%sstage %d (core %d)", res->replicas > 1 ? "replica 0 " : "", q,
                     in->plan.stages[q].device);
            if (mp_trace_set_row_name(&res->trace, q, name) != MP_OK) break;
        }
        st = mp_trace_write_chrome(&res->trace, c->a.trace_path, "mprun measured", err);
    }
    return st;
}

static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], flag)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (mp_cli_version(argc, argv, "mprun")) return 0;
    if (has_flag(argc, argv, "--serve")) return mp_mprun_serve_main(argc, argv);
    cli c;
    inputs in;
    mp_error err;
    mp_error_clear(&err);
    memset(&in, 0, sizeof in);
    int help = 0;
    mp_status st = parse_args(argc, argv, &c, &help, &err);
    if (help) { usage(stdout); return 0; }
    if (st == MP_OK) st = load_inputs(&c, &in, &err);
    mp_run_result res;
    memset(&res, 0, sizeof res);
    if (st == MP_OK) st = mp_run(&c.run, &res, &err);
    if (st == MP_OK && res.is_root) st = report(&c, &in, &res, &err);
    if (st != MP_OK) fprintf(stderr, "mprun: %s\n", err.msg);
    mp_run_result_free(&res);
    free_inputs(&in);
    return mp_exit_code(st);
}
