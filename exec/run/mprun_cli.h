/* mprun_cli.h — the options mprun's training and serving modes share (the
 * plan, --model, --seed, --backend, --profile, the devices and links,
 * --report, --trace, --timeout, --no-pin, --gpus, --help): one set of table
 * rows, one parser, one set of checks.
 * defines: MP_MPRUN_COMMON_OPTS, mp_mprun_args, mp_mprun_args_init,
 *          mp_mprun_args_opt, mp_mprun_args_finish, mp_mprun_args_parse,
 *          MP_MPRUN_ARGS_APPLY */
#ifndef MP_MPRUN_CLI_H
#define MP_MPRUN_CLI_H

#include "cli.h"
#include "cli_cluster.h"
#include "mp_status.h"

enum { MP_MPRUN_O_MODEL = 300, MP_MPRUN_O_SEED, MP_MPRUN_O_BACKEND, MP_MPRUN_O_PROFILE, MP_MPRUN_O_REPORT,
       MP_MPRUN_O_TRACE, MP_MPRUN_O_TIMEOUT, MP_MPRUN_O_NOPIN, MP_MPRUN_O_GPUS, MP_MPRUN_O_HELP };

/* The shared rows of an mprun option table. */
#define MP_MPRUN_COMMON_OPTS \
    { "model", 1, MP_MPRUN_O_MODEL, "M.json", "model spec (required)" }, \
    { "seed", 1, MP_MPRUN_O_SEED, "N", "seed of the data or arrivals and of the weights and inputs (default 1)" }, \
    { "backend", 1, MP_MPRUN_O_BACKEND, "cpu|cuda", "compute backend (default cpu)" }, \
    { "profile", 1, MP_MPRUN_O_PROFILE, "P.json", "predict the same run with the simulator and report the error" }, \
    MP_CLI_OPT_CLUSTER("devices and links (prediction; memory check)"), \
    MP_CLI_OPT_MEMORY("memory of every device (checked before any work)"), \
    MP_CLI_OPT_BANDWIDTH("link bandwidth for the prediction without --cluster"), \
    MP_CLI_OPT_LATENCY("link latency for the prediction without --cluster"), \
    { "report", 1, MP_MPRUN_O_REPORT, "R.json", "write the report as JSON" }, \
    { "trace", 1, MP_MPRUN_O_TRACE, "T.json", "write the measured timeline as Chrome trace JSON" }, \
    { "timeout", 1, MP_MPRUN_O_TIMEOUT, "T", "limit of every wait between stages (default 30s)" }, \
    { "no-pin", 0, MP_MPRUN_O_NOPIN, NULL, "cpu: do not pin stages to cores" }, \
    { "gpus", 1, MP_MPRUN_O_GPUS, "G0,G1,..", "cuda: plan device d runs on GPU Gd (e.g. 0,0: two stages on GPU 0)" }, \
    { "help", 0, MP_MPRUN_O_HELP, NULL, "this help" }

typedef struct {
    const char *plan_path, *model_path, *profile_path, *report_path, *trace_path, *backend, *gpu_map;
    const char *transport;  /* "mpi" when started by mpirun, else "threads" (set by finish) */
    unsigned long seed;
    double timeout_s;
    int pin, help;
    mp_cli_cluster devs;    /* --cluster, --memory, --bandwidth, --latency */
} mp_mprun_args;

/* The defaults: seed 1, backend cpu, timeout 30 s, pinned, the link defaults. */
void mp_mprun_args_init(mp_mprun_args *a);

/* Takes option id's value v into args (an mp_mprun_args) when id is a shared
 * one (or -h): 1 taken, 0 not shared, -1 a bad value (*err names the flag);
 * an mp_cli_group_fn. */
int mp_mprun_args_opt(void *args, int id, const char *v, mp_error *err);

/* After getopt_long: exactly one PLAN.json left (argv[optind]), --model
 * given, not both --memory and --cluster, a known backend compiled into
 * this build. MP_ERR_USAGE naming the flag. */
mp_status mp_mprun_args_finish(mp_mprun_args *a, int argc, char **argv, mp_error *err);

/* The whole command line: mp_cli_parse over the table o[0..n) (which holds
 * MP_MPRUN_COMMON_OPTS), the shared options into a (initialised here), the
 * others to fn(ctx, ...); then, unless --help, mp_mprun_args_finish. */
mp_status mp_mprun_args_parse(int argc, char **argv, const mp_cli_opt *o, int n, mp_mprun_args *a,
                              mp_cli_opt_fn fn, void *ctx, mp_error *err);

/* Copies the shared run settings into a run configuration (training's
 * mp_run_config or serving's mp_serve_run_config: the same field names). */
#define MP_MPRUN_ARGS_APPLY(run, args) \
    ((run).seed = (args).seed, (run).backend = (args).backend, (run).timeout_s = (args).timeout_s, \
     (run).pin = (args).pin, (run).gpu_map = (args).gpu_map, (run).transport = (args).transport)

#endif
