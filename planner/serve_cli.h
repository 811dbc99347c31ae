/* serve_cli.h — the `mpplan --serve` command line (docs/serving.md).
 * defines: mp_serve_cli_main */
#ifndef MP_SERVE_CLI_H
#define MP_SERVE_CLI_H

/* Runs `mpplan --serve ...` with the full argv (argv[0] the program name;
 * "--serve" may appear anywhere and is ignored). Parses with getopt_long
 * (resetting optind), prints the table or JSON on stdout and messages on
 * stderr. Returns the exit code: 0 a plan meets the SLO (or an evaluation
 * ran), 1 no plan meets the SLO / none fits memory, 2 bad usage or input. */
int mp_serve_cli_main(int argc, char **argv);

#endif
