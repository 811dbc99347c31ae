/* cluster.h — devices and links ("format": "mpplan-cluster/1"), see docs/formats.md.
 * defines: mp_device, mp_link, mp_cluster, mp_cluster_load, mp_cluster_parse,
 *          mp_cluster_uniform, mp_cluster_link, mp_cluster_save, mp_cluster_free,
 *          MP_CLUSTER_UNLIMITED_MEMORY */
#ifndef MP_CLUSTER_H
#define MP_CLUSTER_H

#include <stddef.h>
#include "mp_status.h"

/* The memory of a device no memory was given for (a prediction without a
 * memory check). */
#define MP_CLUSTER_UNLIMITED_MEMORY 1e18

typedef struct {
    char *name;
    double memory_bytes;  /* > 0 */
    double speed;         /* relative compute speed > 0: stage time = profile time / speed */
} mp_device;

#define MP_ALLREDUCE_POINTS 48   /* measured all-reduce sizes kept at most */

typedef struct {
    double bandwidth;     /* bytes per second, > 0 */
    double latency_s;     /* seconds, >= 0 */
} mp_link;

typedef struct {
    int num_devices;
    mp_device *devices;
    mp_link default_link;
    mp_link *links;       /* num_devices^2, links[src * num_devices + dst]; overrides applied */
    /* Measured ring all-reduce fit ("allreduce", mpprof --links):
     * time(bytes, D) = 2(D-1) * (allreduce_latency_s + bytes / (D * allreduce_bandwidth));
     * both 0 when the file has none. */
    double allreduce_latency_s;
    double allreduce_bandwidth;
    /* Its measured points ("allreduce"."points", optional; allreduce_points 0:
     * none), as one ring step each: a chunk of allreduce_chunk_bytes[k] bytes
     * took allreduce_step_ms[k] ms, from a whole call over
     * allreduce_members members of chunk * members bytes taking
     * step * 2(members-1) ms; by increasing chunk. Where present they
     * replace the fit (sim/allreduce.h). */
    int allreduce_points, allreduce_members;
    double allreduce_chunk_bytes[MP_ALLREDUCE_POINTS];
    double allreduce_step_ms[MP_ALLREDUCE_POINTS];
} mp_cluster;

/* Loads and validates a cluster file (messages as in mp_profile_load). */
mp_status mp_cluster_load(const char *path, mp_cluster *c, mp_error *err);
mp_status mp_cluster_parse(const char *text, size_t len, const char *name,
                           mp_cluster *c, mp_error *err);

/* k identical devices "dev0".."dev{k-1}" of speed 1 and the given memory,
 * every directed link the same. */
mp_status mp_cluster_uniform(mp_cluster *c, int k, double memory_bytes,
                             double bandwidth, double latency_s, mp_error *err);

/* The directed link src -> dst. */
mp_link mp_cluster_link(const mp_cluster *c, int src, int dst);

/* Time in ms to move `bytes` over the directed link src -> dst:
 * 1000 * (latency + bytes / bandwidth). */
double mp_cluster_transfer_ms(const mp_cluster *c, int src, int dst, double bytes);

/* Writes c in the cluster format, atomically. Per-pair links that differ from
 * the default are written as overrides. */
mp_status mp_cluster_save(const char *path, const mp_cluster *c, mp_error *err);

void mp_cluster_free(mp_cluster *c);

#endif
