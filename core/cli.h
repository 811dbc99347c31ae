/* cli.h — one option table drives getopt_long and --help in every tool.
 * defines: mp_cli_opt, mp_cli_longopts, mp_cli_print_options */
#ifndef MP_CLI_H
#define MP_CLI_H

#include <getopt.h>
#include <stdio.h>

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

#endif
