/* mpplan_serve.h — `mpplan --serve`, the serving half of the mpplan tool
 * (docs/serving.md); planner/mpplan.c hands it the command line.
 * defines: mp_mpplan_serve_main */
#ifndef MP_MPPLAN_SERVE_H
#define MP_MPPLAN_SERVE_H

/* Runs `mpplan --serve ...` with the full argv (argv[0] the program name;
 * "--serve" may appear anywhere and is ignored). Parses with getopt_long
 * (resetting optind), prints the table or JSON on stdout and one message on
 * stderr. Returns the exit code: 0 a plan meets the SLO (or an evaluation
 * ran), 1 no plan meets the SLO / none fits memory, 2 bad usage or input. */
int mp_mpplan_serve_main(int argc, char **argv);

#endif
