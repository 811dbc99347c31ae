/* plot.h — mpplot's subcommands and the command-line helpers they share.
 * defines: mp_plot_opt, mp_plot_longopts, mp_plot_usage, mp_plot_fail,
 *          mp_plot_cluster_args, mp_plot_cluster_opt, mp_plot_load_cluster,
 *          mp_plot_load_json, mp_plot_json_num, mp_plot_bytes_unit,
 *          mp_plot_busy_scan, mp_plot_busy_title,
 *          mp_plot_sweep_main, mp_plot_timeline_main, mp_plot_latency_main,
 *          mp_plot_accuracy_main, mp_plot_memory_main
 *
 * Each subcommand main takes argv with argv[0] the subcommand's name and
 * returns the exit code: 0 done, 1 gnuplot missing or failing, 2 bad usage
 * or input (one message on stderr naming the file and the problem). */
#ifndef MP_PLOT_H
#define MP_PLOT_H

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include "cli.h"
#include "cluster.h"
#include "mp_status.h"

/* One table drives both getopt_long and --help (core/cli.h); id: a short
 * option char or a value >= 256. */
typedef mp_cli_opt mp_plot_opt;

#define MP_PLOT_MAX_OPTS 32

/* Fills out[0..n] (n <= MP_PLOT_MAX_OPTS, terminated) for getopt_long. */
void mp_plot_longopts(const mp_plot_opt *o, int n, struct option *out);
/* "usage: mpplot SYNOPSIS" then one line per option. */
void mp_plot_usage(FILE *f, const char *synopsis, const char *about, const mp_plot_opt *o, int n);
/* Prints "mpplot SUB: MSG" (for MP_ERR_BACKEND: "mpplot: MSG") and returns
 * mp_exit_code(st). */
int mp_plot_fail(const char *sub, mp_status st, const char *msg);

/* --devices K --memory SIZE [--bandwidth BW] [--latency T] | --cluster C.json */
typedef struct {
    const char *cluster, *memory, *bandwidth, *latency;
    int devices;   /* 0: absent */
} mp_plot_cluster_args;

enum { MP_PLOT_O_DEVICES = 400, MP_PLOT_O_MEMORY, MP_PLOT_O_BANDWIDTH, MP_PLOT_O_LATENCY,
       MP_PLOT_O_CLUSTER };

/* Handles one of the cluster options (id as above): returns 1 when taken,
 * 0 when id is not a cluster option, -1 with *err set for a bad value. */
int mp_plot_cluster_opt(mp_plot_cluster_args *a, int id, const char *value, mp_error *err);

/* Builds the cluster: from the file, or K identical devices (bandwidth
 * default 25GB/s, latency 10us, as mpplan). When neither is given and
 * default_devices > 0, that many devices with unlimited memory. */
mp_status mp_plot_load_cluster(const mp_plot_cluster_args *a, int default_devices,
                               mp_cluster *c, mp_error *err);

/* Reads a JSON file (any top-level value) with "PATH:LINE:COL:" syntax messages. */
mp_status mp_plot_load_json(const char *path, json_t **out, mp_error *err);

/* Measurements taken while other processes used more than this share of the
 * CPUs (percent) are marked busy on the picture. */
#define MP_PLOT_BUSY_PCT 5.0

/* Raises *max to the "others_pct" of a measured file's object j (an mprun
 * report, a validate row, or a trace's otherData), if it has one. */
void mp_plot_busy_scan(const json_t *j, double *max);

/* Appends " — machine busy: other processes took N% of the CPUs" to the
 * title t (capacity n) when max is above MP_PLOT_BUSY_PCT. */
void mp_plot_busy_title(char *t, size_t n, double max);

/* obj[key] as a finite number (also a numeric string is refused): 1 found, 0
 * absent, -1 present but not a finite number. */
int mp_plot_json_num(const json_t *obj, const char *key, double *out);

/* A byte unit for values up to max: sets *scale (bytes per unit) and returns
 * "GiB", "MiB", "KiB" or "bytes". */
const char *mp_plot_bytes_unit(double max, double *scale);

int mp_plot_sweep_main(int argc, char **argv);
int mp_plot_timeline_main(int argc, char **argv);
int mp_plot_latency_main(int argc, char **argv);
int mp_plot_accuracy_main(int argc, char **argv);
int mp_plot_memory_main(int argc, char **argv);

#endif
