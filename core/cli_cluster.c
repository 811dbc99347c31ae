/* cli_cluster.c — see cli_cluster.h. */
#include "cli_cluster.h"

#include <limits.h>
#include <string.h>

#include "units.h"

void mp_cli_cluster_init(mp_cli_cluster *a)
{
    memset(a, 0, sizeof *a);
    mp_parse_bandwidth(MP_CLI_DEFAULT_BANDWIDTH, &a->bandwidth, NULL);
    mp_parse_duration(MP_CLI_DEFAULT_LATENCY, &a->latency, NULL);
}

int mp_cli_cluster_opt(void *group, int id, const char *v, mp_error *err)
{
    mp_cli_cluster *a = group;
    mp_status st;
    switch (id) {
    case MP_CLI_O_DEVICES: st = mp_cli_int("devices", v, 1, 1 << 16, &a->devices, err); break;
    case MP_CLI_O_MEMORY: st = mp_cli_size("memory", v, &a->memory, err); a->memory_arg = v; break;
    case MP_CLI_O_BANDWIDTH: st = mp_cli_bandwidth("bandwidth", v, &a->bandwidth, err); a->has_bandwidth = 1; break;
    case MP_CLI_O_LATENCY: st = mp_cli_duration("latency", v, &a->latency, err); a->has_latency = 1; break;
    case MP_CLI_O_CLUSTER: a->cluster = v; st = MP_OK; break;
    default: return 0;
    }
    return st == MP_OK ? 1 : -1;
}

mp_status mp_cli_cluster_check(const mp_cli_cluster *a, int default_devices, mp_error *err)
{
    if (a->cluster) {
        if (a->devices || a->memory > 0 || a->has_bandwidth || a->has_latency)
            return mp_error_set(err, MP_ERR_USAGE,
                                "--cluster: cannot be combined with --devices/--memory/--bandwidth/--latency "
                                "(the cluster file gives them)");
        return MP_OK;
    }
    if (default_devices > 0 && !a->devices && !(a->memory > 0)) return MP_OK;
    if (!a->devices || !(a->memory > 0))
        return mp_error_set(err, MP_ERR_USAGE, "--devices K and --memory SIZE go together; give both, or --cluster C.json");
    return MP_OK;
}

mp_status mp_cli_cluster_build(const mp_cli_cluster *a, int default_devices, mp_cluster *c, mp_error *err)
{
    memset(c, 0, sizeof *c);
    mp_status st = mp_cli_cluster_check(a, default_devices, err);
    if (st != MP_OK) return st;
    if (a->cluster) return mp_cluster_load(a->cluster, c, err);
    if (!a->devices) return mp_cluster_uniform(c, default_devices, MP_CLUSTER_UNLIMITED_MEMORY, a->bandwidth, a->latency, err);
    return mp_cluster_uniform(c, a->devices, a->memory, a->bandwidth, a->latency, err);
}
