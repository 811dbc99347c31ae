/* mprun_cli.c — see mprun_cli.h. */
#include "mprun_cli.h"

#include <string.h>

#include "backend.h"
#include "transport.h"

void mp_mprun_args_init(mp_mprun_args *a)
{
    memset(a, 0, sizeof *a);
    a->seed = 1;
    a->backend = "cpu";
    a->timeout_s = 30;
    a->pin = 1;
    mp_cli_cluster_init(&a->devs);
}

int mp_mprun_args_opt(void *args, int id, const char *v, mp_error *err)
{
    mp_mprun_args *a = args;
    mp_status st = MP_OK;
    int g = mp_cli_cluster_opt(&a->devs, id, v, err);
    if (g) return g;
    switch (id) {
    case MP_MPRUN_O_MODEL: a->model_path = v; break;
    case MP_MPRUN_O_SEED: st = mp_cli_seed("seed", v, &a->seed, err); break;
    case MP_MPRUN_O_BACKEND: a->backend = v; break;
    case MP_MPRUN_O_PROFILE: a->profile_path = v; break;
    case MP_MPRUN_O_REPORT: a->report_path = v; break;
    case MP_MPRUN_O_TRACE: a->trace_path = v; break;
    case MP_MPRUN_O_TIMEOUT: st = mp_cli_duration("timeout", v, &a->timeout_s, err); break;
    case MP_MPRUN_O_NOPIN: a->pin = 0; break;
    case MP_MPRUN_O_GPUS: a->gpu_map = v; break;
    case 'h': case MP_MPRUN_O_HELP: a->help = 1; break;
    default: return 0;
    }
    return st == MP_OK ? 1 : -1;
}

mp_status mp_mprun_args_finish(mp_mprun_args *a, int argc, char **argv, mp_error *err)
{
    if (optind != argc - 1) return mp_error_set(err, MP_ERR_USAGE, "expected exactly one PLAN.json (see --help)");
    a->plan_path = argv[optind];
    if (!a->model_path) return mp_error_set(err, MP_ERR_USAGE, "--model M.json is required");
    if (a->devs.memory > 0 && a->devs.cluster)
        return mp_error_set(err, MP_ERR_USAGE, "--memory and --cluster both give device memory; use one");
    static const char *const backends[] = { "cpu", "cuda" };
    int k;
    if (mp_cli_choice("backend", a->backend, backends, 2, &k, err) != MP_OK) return MP_ERR_USAGE;
    if (!mp_backend_available(a->backend))
        return mp_error_set(err, MP_ERR_USAGE, "--backend %s: not compiled into this build", a->backend);
    a->transport = mp_transport_mpi_detected() ? "mpi" : "threads";   /* the runner checks it is built in */
    return MP_OK;
}

mp_status mp_mprun_args_parse(int argc, char **argv, const mp_cli_opt *o, int n, mp_mprun_args *a,
                              mp_cli_opt_fn fn, void *ctx, mp_error *err)
{
    mp_mprun_args_init(a);
    mp_status st = mp_cli_parse_group(argc, argv, o, n, "h", mp_mprun_args_opt, a, fn, ctx, err);
    if (st != MP_OK || a->help) return st;
    return mp_mprun_args_finish(a, argc, argv, err);
}
