/* mprun_serve.h — `mprun PLAN.json --model M.json --serve ...` (docs/serving.md §7).
 * defines: mp_mprun_serve_main */
#ifndef MP_MPRUN_SERVE_H
#define MP_MPRUN_SERVE_H

/* mprun's serving command line: parses its own options, runs the serving
 * runtime (serve_run.h), predicts and reports. Only this and mprun's main
 * print. Returns the exit code (0, 1 failure, 2 bad input). */
int mp_mprun_serve_main(int argc, char **argv);

#endif
