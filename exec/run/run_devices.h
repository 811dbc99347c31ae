/* run_devices.h — the devices mprun runs a plan on, for training and
 * serving alike: --cluster C.json, or uniform devices with --memory and the
 * --bandwidth/--latency links; what the prediction uses and what the memory
 * check holds each stage against.
 * defines: mp_run_devices, mp_run_devices_load, mp_run_devices_free */
#ifndef MP_RUN_DEVICES_H
#define MP_RUN_DEVICES_H

#include "cluster.h"
#include "mp_status.h"
#include "plan.h"

typedef struct {
    mp_cluster cluster;         /* the cluster file, else (with_links) plan devices 0..max uniform */
    int has_cluster;            /* cluster is set */
    double *memory;             /* [num_devices] each device's bytes; NULL: no memory given */
    int num_devices;            /* devices in memory (0 without) */
} mp_run_devices;

/* With cluster_path: that cluster, and its devices' memory. Without: one
 * device per plan device index up to the largest the plan names, `memory`
 * bytes each (memory > 0; else no memory check) and, when with_links (a
 * prediction needs them), a uniform cluster of them (MP_CLUSTER_UNLIMITED_MEMORY without
 * memory) linked by `bandwidth` and `latency_s`. Errors name the file. */
mp_status mp_run_devices_load(mp_run_devices *d, const char *cluster_path, double memory, double bandwidth,
                              double latency_s, const mp_plan *plan, int with_links, mp_error *err);

/* Frees d and zeroes it; safe on a zeroed one. */
void mp_run_devices_free(mp_run_devices *d);

#endif
