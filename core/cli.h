/* cli.h — one option table drives getopt_long and --help in every tool.
 * defines: mp_cli_opt, mp_cli_longopts, mp_cli_print_options, mp_cli_int, mp_cli_number */
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

/* Fills out[0..n) from o and terminates it with a zero entry at out[n]. */
void mp_cli_longopts(const mp_cli_opt *o, int n, struct option *out);

/* One "  --name ARG   help" line per option ("-c, --name ARG" when the id
 * is a character in `shorts`, the tool's short options), the help starting
 * after a column of `width` characters. */
void mp_cli_print_options(FILE *f, const mp_cli_opt *o, int n, const char *shorts, int width);

/* The value s of option --flag as an integer in [min, max], else
 * MP_ERR_USAGE "--flag: expected an integer >= min, got 's'". */
mp_status mp_cli_int(const char *flag, const char *s, int min, int max, int *out, mp_error *err);

/* The value s of --flag as a finite number > 0 (positive) or >= 0, else
 * MP_ERR_USAGE naming the flag and the value. */
mp_status mp_cli_number(const char *flag, const char *s, int positive, double *out, mp_error *err);

#endif
