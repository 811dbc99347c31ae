/* cli.h — the command-line layer of every tool: one option table drives
 * getopt_long and --help, and every option value is parsed here, with one
 * message form: "--flag: expected WHAT, got \"VALUE\"" (MP_ERR_USAGE).
 * defines: mp_cli_opt, mp_cli_opt_fn, mp_cli_parse, mp_cli_group_fn,
 *          mp_cli_parse_group, mp_cli_longopts,
 *          mp_cli_print_options, mp_cli_unknown,
 *          mp_cli_int, mp_cli_seed, mp_cli_number, mp_cli_size, mp_cli_bandwidth,
 *          mp_cli_duration, mp_cli_choice, mp_cli_rates, mp_cli_int_list */
#ifndef MP_CLI_H
#define MP_CLI_H

#include <getopt.h>
#include <stdio.h>
#include "mp_status.h"

/* A long option: has_arg as getopt_long's; id is what getopt_long returns;
 * arg names the value in --help (NULL: none). */
typedef struct {
    const char *name;
    int has_arg, id;
    const char *arg, *help;
} mp_cli_opt;

/* Takes one option: id (the table's), its value (NULL for a flag). */
typedef mp_status (*mp_cli_opt_fn)(void *ctx, int id, const char *value, mp_error *err);

/* The option loop of every tool: getopt_long over the table o[0..n) and the
 * short options `shorts` (getopt syntax, e.g. "o:h"), from the start of argv
 * (optind reset, getopt's own messages off), fn(ctx, ...) for each option.
 * An unknown or incomplete option: mp_cli_unknown. Stops at the first
 * error (MP_ERR_USAGE). On return optind is the first operand. */
mp_status mp_cli_parse(int argc, char **argv, const mp_cli_opt *o, int n, const char *shorts, mp_cli_opt_fn fn,
                       void *ctx, mp_error *err);

/* A group of options several tools share: 1 taken, 0 not one of the
 * group's, -1 a bad value (*err set). */
typedef int (*mp_cli_group_fn)(void *group, int id, const char *value, mp_error *err);

/* mp_cli_parse where group(gctx, ...) sees every option first and fn(ctx,
 * ...) only those the group does not take. */
mp_status mp_cli_parse_group(int argc, char **argv, const mp_cli_opt *o, int n, const char *shorts,
                             mp_cli_group_fn group, void *gctx, mp_cli_opt_fn fn, void *ctx, mp_error *err);

/* Fills out[0..n) from o and terminates it with a zero entry at out[n]. */
void mp_cli_longopts(const mp_cli_opt *o, int n, struct option *out);

/* One "  --name ARG   help" line per option ("-c, --name ARG" when the id
 * is a character in `shorts`, the tool's short options), the help starting
 * after a column of `width` characters. */
void mp_cli_print_options(FILE *f, const mp_cli_opt *o, int n, const char *shorts, int width);

/* MP_ERR_USAGE "unknown or incomplete option \"ARG\" (see --help)" for the
 * argument getopt_long stopped at (argv[optind - 1]). */
mp_status mp_cli_unknown(char **argv, mp_error *err);

/* The value s of option --flag as an integer in [min, max], else
 * "--flag: expected an integer >= min, got \"s\"" (or "from min to max"
 * when max is not INT_MAX). */
mp_status mp_cli_int(const char *flag, const char *s, int min, int max, int *out, mp_error *err);

/* A seed: an integer 0 .. 2^32-1. */
mp_status mp_cli_seed(const char *flag, const char *s, unsigned long *out, mp_error *err);

/* A finite number > 0 (positive) or >= 0. */
mp_status mp_cli_number(const char *flag, const char *s, int positive, double *out, mp_error *err);

/* A size with units (core/units.h: 80GiB, 16GB, bytes), > 0. */
mp_status mp_cli_size(const char *flag, const char *s, double *bytes, mp_error *err);

/* A bandwidth with units (25GB/s, 100Gbit/s), > 0. */
mp_status mp_cli_bandwidth(const char *flag, const char *s, double *bytes_per_s, mp_error *err);

/* A duration with units (10us, 1.5ms, 2s; a bare number is seconds), >= 0. */
mp_status mp_cli_duration(const char *flag, const char *s, double *seconds, mp_error *err);

/* s as one of names[0..n) (*out its index), else "--flag: expected A, B or
 * C, got \"s\"". */
mp_status mp_cli_choice(const char *flag, const char *s, const char *const *names, int n, int *out,
                        mp_error *err);

/* "LO:HI:N": N (1..max_n) rates from LO to HI, 0 < LO <= HI, HI > LO when
 * N > 1 unless allow_flat. */
mp_status mp_cli_rates(const char *flag, const char *s, int max_n, int allow_flat, double *lo, double *hi,
                       int *n, mp_error *err);

/* "A,B,C": at most cap integers from min to max into out[0..*n). */
mp_status mp_cli_int_list(const char *flag, const char *s, int min, int max, int *out, int cap, int *n,
                          mp_error *err);

#endif
