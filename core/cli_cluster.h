/* cli_cluster.h — the device/cluster option group every tool shares:
 * --devices K --memory SIZE [--bandwidth BW] [--latency T] | --cluster C.json,
 * with the link defaults defined here once.
 * defines: MP_CLI_DEFAULT_BANDWIDTH, MP_CLI_DEFAULT_LATENCY, MP_CLI_O_DEVICES,
 *          MP_CLI_OPT_DEVICES, MP_CLI_OPT_MEMORY, MP_CLI_OPT_BANDWIDTH,
 *          MP_CLI_OPT_LATENCY, MP_CLI_OPT_CLUSTER, MP_CLI_CLUSTER_OPTS, mp_cli_cluster,
 *          mp_cli_cluster_init, mp_cli_cluster_opt, mp_cli_cluster_check,
 *          mp_cli_cluster_build */
#ifndef MP_CLI_CLUSTER_H
#define MP_CLI_CLUSTER_H

#include "cli.h"
#include "cluster.h"
#include "mp_status.h"

#define MP_CLI_DEFAULT_BANDWIDTH "25GB/s"
#define MP_CLI_DEFAULT_LATENCY "10us"

enum { MP_CLI_O_DEVICES = 400, MP_CLI_O_MEMORY, MP_CLI_O_BANDWIDTH, MP_CLI_O_LATENCY, MP_CLI_O_CLUSTER };

/* The rows of the group for a tool's option table (help text: HELP). */
#define MP_CLI_OPT_DEVICES(help) { "devices", required_argument, MP_CLI_O_DEVICES, "K", help }
#define MP_CLI_OPT_MEMORY(help) { "memory", required_argument, MP_CLI_O_MEMORY, "SIZE", help }
#define MP_CLI_OPT_BANDWIDTH(help) \
    { "bandwidth", required_argument, MP_CLI_O_BANDWIDTH, "BW", help " (default " MP_CLI_DEFAULT_BANDWIDTH ")" }
#define MP_CLI_OPT_LATENCY(help) \
    { "latency", required_argument, MP_CLI_O_LATENCY, "T", help " (default " MP_CLI_DEFAULT_LATENCY ")" }
#define MP_CLI_OPT_CLUSTER(help) { "cluster", required_argument, MP_CLI_O_CLUSTER, "C.json", help }

/* The whole group, for tools that take K devices or a cluster file. */
#define MP_CLI_CLUSTER_OPTS \
    MP_CLI_OPT_DEVICES("K identical devices (with --memory)"), \
    MP_CLI_OPT_MEMORY("memory per device, e.g. 80GiB (with --devices)"), \
    MP_CLI_OPT_BANDWIDTH("link bandwidth with --devices"), \
    MP_CLI_OPT_LATENCY("link latency with --devices"), \
    MP_CLI_OPT_CLUSTER("cluster file (mpplan-cluster/1) instead of --devices")

typedef struct {
    const char *cluster;        /* --cluster (NULL: absent) */
    int devices;                /* --devices (0: absent) */
    double memory;              /* --memory bytes (0: absent) */
    const char *memory_arg;     /* --memory as given (NULL: absent) */
    double bandwidth, latency;  /* --bandwidth B/s, --latency s (the defaults when absent) */
    int has_bandwidth, has_latency;
} mp_cli_cluster;

/* No option given: the link defaults above. */
void mp_cli_cluster_init(mp_cli_cluster *a);

/* Takes option id's value v into group (an mp_cli_cluster) when id is one of
 * the group's: 1 taken, 0 not a group option, -1 a bad value (*err:
 * "--flag: expected ..."); an mp_cli_group_fn. */
int mp_cli_cluster_opt(void *group, int id, const char *v, mp_error *err);

/* The group's rules: --cluster excludes the other four; without it,
 * --devices and --memory go together and are required unless
 * default_devices > 0 (then neither may be given: default_devices devices
 * of unlimited memory). MP_ERR_USAGE naming the flags. */
mp_status mp_cli_cluster_check(const mp_cli_cluster *a, int default_devices, mp_error *err);

/* mp_cli_cluster_check, then the cluster: the file, or uniform devices
 * (mp_cluster_uniform) linked by --bandwidth/--latency. */
mp_status mp_cli_cluster_build(const mp_cli_cluster *a, int default_devices, mp_cluster *c, mp_error *err);

#endif
