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
#include "units.h"

enum { O_MODEL = 256, O_STEPS, O_SEED, O_OPT, O_LR, O_BACKEND, O_PROFILE, O_CLUSTER, O_MEMORY,
       O_BANDWIDTH, O_LATENCY, O_REPORT, O_TRACE, O_CKPT, O_CKPT_EVERY, O_RESUME, O_TIMEOUT,
       O_WARMUP, O_NOPIN, O_GPUS, O_QUIET, O_HELP };

/* One table drives both getopt_long and --help. */
static const mp_cli_opt opts[] = {
    { "model", 1, O_MODEL, "M.json", "model spec (required)" },
    { "steps", 1, O_STEPS, "S", "training steps (required)" },
    { "seed", 1, O_SEED, "N", "seed of the data task and the initial weights (default 1)" },
    { "optimizer", 1, O_OPT, "sgd|adam", "optimizer (default sgd)" },
    { "lr", 1, O_LR, "X", "learning rate (default 0.05)" },
    { "backend", 1, O_BACKEND, "cpu|cuda", "compute backend (default cpu)" },
    { "profile", 1, O_PROFILE, "P.json", "predict the plan with this profile and report the error" },
    { "cluster", 1, O_CLUSTER, "C.json", "devices and links (prediction; memory check)" },
    { "memory", 1, O_MEMORY, "SIZE", "memory of every device (checked before any work)" },
    { "bandwidth", 1, O_BANDWIDTH, "BW", "link bandwidth for the prediction without --cluster (default 25GB/s)" },
    { "latency", 1, O_LATENCY, "T", "link latency for the prediction without --cluster (default 10us)" },
    { "report", 1, O_REPORT, "R.json", "write the report as JSON" },
    { "trace", 1, O_TRACE, "T.json", "write the measured last step as Chrome trace JSON" },
    { "checkpoint", 1, O_CKPT, "DIR", "write checkpoints into DIR" },
    { "checkpoint-every", 1, O_CKPT_EVERY, "N", "checkpoint every N steps (default 1)" },
    { "resume", 0, O_RESUME, NULL, "continue from the latest checkpoint in DIR" },
    { "timeout", 1, O_TIMEOUT, "T", "limit of every wait (default 30s)" },
    { "warmup", 1, O_WARMUP, "N", "steps left out of the median (default 1)" },
    { "no-pin", 0, O_NOPIN, NULL, "cpu: do not pin stages to cores" },
    { "gpus", 1, O_GPUS, "G0,G1,..", "cuda: plan device d runs on GPU Gd (e.g. 0,0: two stages on GPU 0)" },
    { "quiet", 0, O_QUIET, NULL, "no per-step loss lines" },
    { "help", 0, O_HELP, NULL, "this help" },
};
#define NOPTS ((int)(sizeof opts / sizeof opts[0]))

typedef struct {
    const char *plan_path, *model_path, *profile_path, *cluster_path, *report_path, *trace_path;
    double memory, bandwidth, latency;
    mp_run_config run;
} cli;

static void usage(FILE *f)
{
    fprintf(f, "usage: mprun PLAN.json --model M.json --steps S [options]\n"
               "       mpirun -np K mprun PLAN.json ...   (one rank per pipeline position;\n"
               "                                          D*K with \"data_parallel\": D, rank r*K+k)\n\n");
    mp_cli_print_options(f, opts, NOPTS, "", 28);
}

static mp_status parse_args(int argc, char **argv, cli *c, int *help, mp_error *err)
{
    struct option lo[NOPTS + 1];
    mp_cli_longopts(opts, NOPTS, lo);
    memset(c, 0, sizeof *c);
    mp_run_config_default(&c->run);
    c->run.steps = 0;
    c->bandwidth = 25e9;
    c->latency = 10e-6;
    int o, v;
    mp_status st = MP_OK;
    opterr = 0;
    while (st == MP_OK && (o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (o) {
        case O_MODEL: c->model_path = optarg; break;
        case O_STEPS: st = mp_cli_int("steps", optarg, 1, INT_MAX, &c->run.steps, err); break;
        case O_SEED: st = mp_cli_int("seed", optarg, 0, INT_MAX, &v, err); c->run.seed = (uint64_t)v; break;
        case O_OPT:
            if (!strcmp(optarg, "sgd")) c->run.optimizer = MP_OPT_SGD;
            else if (!strcmp(optarg, "adam")) c->run.optimizer = MP_OPT_ADAM;
            else st = mp_error_set(err, MP_ERR_USAGE, "--optimizer: expected sgd or adam, got '%s'", optarg);
            break;
        case O_LR: {
            char *end;
            double x = strtod(optarg, &end);
            if (!*optarg || *end || !(x > 0) || x > 1e30)
                st = mp_error_set(err, MP_ERR_USAGE, "--lr: expected a positive number, got '%s'", optarg);
            c->run.lr = (float)x;
            break;
        }
        case O_BACKEND: c->run.backend = optarg; break;
        case O_PROFILE: c->profile_path = optarg; break;
        case O_CLUSTER: c->cluster_path = optarg; break;
        case O_MEMORY: st = mp_parse_bytes(optarg, &c->memory, err); break;
        case O_BANDWIDTH: st = mp_parse_bandwidth(optarg, &c->bandwidth, err); break;
        case O_LATENCY: st = mp_parse_duration(optarg, &c->latency, err); break;
        case O_REPORT: c->report_path = optarg; break;
        case O_TRACE: c->trace_path = optarg; break;
        case O_CKPT: c->run.checkpoint_dir = optarg; break;
        case O_CKPT_EVERY: st = mp_cli_int("checkpoint-every", optarg, 1, INT_MAX, &c->run.checkpoint_every, err); break;
        case O_RESUME: c->run.resume = 1; break;
        case O_TIMEOUT: st = mp_parse_duration(optarg, &c->run.timeout_s, err); break;
        case O_WARMUP: st = mp_cli_int("warmup", optarg, 0, INT_MAX, &c->run.warmup, err); break;
        case O_NOPIN: c->run.pin = 0; break;
        case O_GPUS: c->run.gpu_map = optarg; break;
        case O_QUIET: c->run.print_loss = 0; break;
        case 'h': case O_HELP: *help = 1; return MP_OK;
        default:
            return mp_error_set(err, MP_ERR_USAGE, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (st != MP_OK) return st == MP_ERR_INPUT ? MP_ERR_USAGE : st;
    if (optind != argc - 1) return mp_error_set(err, MP_ERR_USAGE, "expected exactly one PLAN.json (see --help)");
    c->plan_path = argv[optind];
    if (!c->model_path) return mp_error_set(err, MP_ERR_USAGE, "--model M.json is required");
    if (!c->run.steps) return mp_error_set(err, MP_ERR_USAGE, "--steps S is required");
    if (c->run.resume && !c->run.checkpoint_dir)
        return mp_error_set(err, MP_ERR_USAGE, "--resume needs --checkpoint DIR");
    if (c->memory > 0 && c->cluster_path)
        return mp_error_set(err, MP_ERR_USAGE, "--memory and --cluster both give device memory; use one");
    if (strcmp(c->run.backend, "cpu") && strcmp(c->run.backend, "cuda"))
        return mp_error_set(err, MP_ERR_USAGE, "--backend: expected cpu or cuda, got '%s'", c->run.backend);
    if (!mp_backend_available(c->run.backend))
        return mp_error_set(err, MP_ERR_USAGE, "--backend %s: not compiled into this build", c->run.backend);
    c->run.transport = mp_transport_mpi_detected() ? "mpi" : "threads";
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
    if ((st = mp_plan_load(c->plan_path, &in->plan, err)) != MP_OK) return st;
    if ((st = mp_model_load(c->model_path, &in->model, err)) != MP_OK) return st;
    if ((st = mp_run_devices_load(&in->dev, c->cluster_path, c->memory, c->bandwidth, c->latency, &in->plan,
                                  c->profile_path != NULL, err)) != MP_OK)
        return st;
    c->run.num_devices = in->dev.num_devices;
    c->run.device_memory = in->dev.memory;
    c->run.plan = &in->plan;
    c->run.model = &in->model;
    if ((st = mp_run_check(&c->run, err)) != MP_OK) return st;
    if (c->profile_path) {
        if ((st = mp_profile_load(c->profile_path, &in->prof, err)) != MP_OK) return st;
        if (in->prof.num_layers != in->model.num_layers)
            return mp_error_set(err, MP_ERR_INPUT, "%s: %d layers, but the model %s has %d", c->profile_path,
                                in->prof.num_layers, c->model_path, in->model.num_layers);
        int busy = mp_plan_num_devices(&in->plan);
        if (!strcmp(c->run.backend, "cpu") && in->prof.busy_cores > 0 && in->prof.busy_cores != busy)
            fprintf(stderr, "mprun: note: %s was measured with %d busy core%s, this plan keeps %d busy: "
                    "the prediction may be off by the difference (docs/profiling.md: mpprof --threads %d)\n",
                    c->profile_path, in->prof.busy_cores, in->prof.busy_cores > 1 ? "s" : "", busy, busy);
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
    r.plan_path = c->plan_path;
    r.model_path = c->model_path;
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
    if (c->report_path && (st = mp_report_write(c->report_path, &r, err)) != MP_OK) return st;
    if (c->trace_path) {
        for (int q = 0; q < res->trace.num_positions; q++) {
            char name[64];
            snprintf(name, sizeof name, "%sstage %d (core %d)", res->replicas > 1 ? "replica 0 " : "", q,
                     in->plan.stages[q].device);
            if (mp_trace_set_row_name(&res->trace, q, name) != MP_OK) break;
        }
        st = mp_trace_write_chrome(&res->trace, c->trace_path, "mprun measured", err);
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
