/* plot.h — mpplot's subcommands and the command-line helpers they share.
 * defines: mp_plot_opt, MP_PLOT_OPT_OUTPUT, MP_PLOT_OPT_TITLE, MP_PLOT_OPT_HELP,
 *          mp_plot_base, mp_plot_base_opt, mp_plot_parse, mp_plot_usage, mp_plot_fail,
 *          mp_plot_state_factor, mp_plot_load_json, mp_plot_json_num, mp_plot_bytes_unit,
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
#include "cli_cluster.h"
#include "cluster.h"
#include "mp_status.h"

/* One table drives both getopt_long and --help (core/cli.h); id: a short
 * option char or a value >= 256. */
typedef mp_cli_opt mp_plot_opt;

/* The options every subcommand has: -o/--output, --title, --help. */
enum { MP_PLOT_O_TITLE = 390, MP_PLOT_O_HELP };
#define MP_PLOT_OPT_OUTPUT { "output", required_argument, 'o', "IMAGE", "the image: .png or .svg (required)" }
#define MP_PLOT_OPT_TITLE(help) { "title", required_argument, MP_PLOT_O_TITLE, "TEXT", help }
#define MP_PLOT_OPT_HELP { "help", no_argument, MP_PLOT_O_HELP, NULL, "this text" }

typedef struct {
    const char *out, *title;
    int help;
    mp_cli_cluster ca;   /* the device/cluster group, for subcommands whose table has it */
} mp_plot_base;

/* Takes one of the common options (or of the device/cluster group) into
 * base (an mp_plot_base): 1 taken, 0 not one of them, -1 a bad value (*err
 * set); an mp_cli_group_fn. */
int mp_plot_base_opt(void *base, int id, const char *v, mp_error *err);

/* A subcommand's option loop: base's cluster group initialised, then
 * mp_cli_parse over o[0..n) (short option -o): the common options into base
 * (mp_plot_base_opt), fn(ctx, ...) for each other one. Returns -1 to go on; else the exit code to
 * return: 0 after --help (the usage is printed), 2 after a bad option
 * ("mpplot SUB: MSG"). */
int mp_plot_parse(int argc, char **argv, const char *sub, const char *synopsis, const char *about,
                  const mp_plot_opt *o, int n, mp_cli_opt_fn fn, void *ctx, mp_plot_base *base);
/* "usage: mpplot SYNOPSIS" then one line per option. */
void mp_plot_usage(FILE *f, const char *synopsis, const char *about, const mp_plot_opt *o, int n);
/* Prints "mpplot SUB: MSG" (for MP_ERR_BACKEND: "mpplot: MSG") and returns
 * mp_exit_code(st). */
int mp_plot_fail(const char *sub, mp_status st, const char *msg);

/* The device/cluster options (--devices K --memory SIZE [--bandwidth BW]
 * [--latency T] | --cluster C.json) are core/cli_cluster.h's. */

/* --state-factor F: a number from 0 to 1e6 (core/cli message form). */
mp_status mp_plot_state_factor(const char *v, double *out, mp_error *err);

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
