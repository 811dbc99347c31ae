/* run_devices.c — see run_devices.h.
 * defines: mp_run_devices_load, mp_run_devices_free */
#include "run_devices.h"

#include <stdlib.h>
#include <string.h>

mp_status mp_run_devices_load(mp_run_devices *d, const char *cluster_path, double memory, double bandwidth,
                              double latency_s, const mp_plan *plan, int with_links, mp_error *err)
{
    memset(d, 0, sizeof *d);
    int maxdev = 0;
    for (int r = 0; r < mp_plan_replicas(plan); r++)
        for (int s = 0; s < plan->num_stages; s++)
            if (mp_plan_replica_device(plan, r, s) > maxdev) maxdev = mp_plan_replica_device(plan, r, s);
    mp_status st = MP_OK;
    if (cluster_path) st = mp_cluster_load(cluster_path, &d->cluster, err);
    else if (with_links)
        st = mp_cluster_uniform(&d->cluster, maxdev + 1, memory > 0 ? memory : MP_CLUSTER_UNLIMITED_MEMORY, bandwidth, latency_s, err);
    if (st != MP_OK) return st;
    d->has_cluster = cluster_path || with_links;
    if (!cluster_path && !(memory > 0)) return MP_OK;
    d->num_devices = cluster_path ? d->cluster.num_devices : maxdev + 1;
    if (!(d->memory = malloc((size_t)d->num_devices * sizeof *d->memory)))
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < d->num_devices; i++) d->memory[i] = cluster_path ? d->cluster.devices[i].memory_bytes : memory;
    return MP_OK;
}

void mp_run_devices_free(mp_run_devices *d)
{
    if (d->has_cluster) mp_cluster_free(&d->cluster);
    free(d->memory);
    memset(d, 0, sizeof *d);
}
