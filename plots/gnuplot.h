/* gnuplot.h — what every mpplot subcommand shares: the files written next to
 * the image (IMAGE minus extension + ".dat" and ".gp"), gnuplot string
 * literals, the script (a generated header of variables followed by the
 * template plots/<name>.gp) and running gnuplot with fork/execvp.
 * defines: mp_gp_out, mp_gp_out_init, mp_gp_out_free, mp_gp_put_string,
 *          mp_gp_put_field, mp_gp_var_str, mp_gp_var_num, mp_gp_var_strs,
 *          mp_gp_var_nums, mp_gp_find_template, mp_gp_finish, mp_gp_run
 *
 * Safety: nothing goes through a shell. Strings from the user (titles, labels,
 * paths) reach the script only as single-quoted gnuplot literals, inside which
 * gnuplot does no backquote or macro substitution ('' stands for a quote;
 * control characters become spaces), and the terminal is `noenhanced`, so
 * they print as written. Strings in the data file are double-quoted fields
 * with '"' replaced by '\''. */
#ifndef MP_GNUPLOT_H
#define MP_GNUPLOT_H

#include <stdio.h>
#include "mp_status.h"

typedef struct {
    char *image;     /* the output as given: *.png or *.svg */
    char *dat, *gp;  /* the data file and the script next to it */
    int svg;         /* 1 for .svg, 0 for .png */
    int width, height;
    FILE *data;      /* memory stream: write the data here */
    char *data_buf;
    size_t data_len;
    FILE *vars;      /* memory stream: the script's variables */
    char *vars_buf;
    size_t vars_len;
} mp_gp_out;

/* Checks the output's extension (.png or .svg, any case), derives the .dat
 * and .gp paths and opens the two memory streams. MP_ERR_USAGE for another
 * extension, MP_ERR_NOMEM. Free with mp_gp_out_free. */
mp_status mp_gp_out_init(mp_gp_out *o, const char *image, int width, int height, mp_error *err);
void mp_gp_out_free(mp_gp_out *o);

/* Writes s as a gnuplot single-quoted string literal. */
void mp_gp_put_string(FILE *f, const char *s);
/* Writes s as a double-quoted data-file field. */
void mp_gp_put_field(FILE *f, const char *s);

/* Script variables: `name = 'value'`, `name = x` (NaN as NaN), and arrays
 * `array name[n] = [...]` (n >= 1; n = 0 writes a one-element array). */
void mp_gp_var_str(mp_gp_out *o, const char *name, const char *value);
void mp_gp_var_num(mp_gp_out *o, const char *name, double x);
void mp_gp_var_strs(mp_gp_out *o, const char *name, int n, const char *const *values);
void mp_gp_var_nums(mp_gp_out *o, const char *name, int n, const double *values);

/* Finds plots/<name>.gp: in $MPPLOT_SCRIPTS, then next to the executable
 * (<bin>/../plots, <bin>/../share/mpkit/plots). Returns a malloc'd path or
 * NULL with MP_ERR_BACKEND naming the places looked in. */
char *mp_gp_find_template(const char *name, mp_error *err);

/* Writes the data file and the script (header: where it runs from, terminal,
 * output, datafile, the variables; then the template <name>.gp) atomically,
 * then runs gnuplot on the script and checks the image was written.
 * MP_ERR_IO for unwritable files, MP_ERR_BACKEND when gnuplot is missing
 * ("gnuplot not found (install it with make deps)") or fails. */
mp_status mp_gp_finish(mp_gp_out *o, const char *template_name, mp_error *err);

/* Runs `gnuplot SCRIPT` (program from $MPPLOT_GNUPLOT, default "gnuplot")
 * with fork/execvp, no shell; *exit_code gets its status (127: not found). */
mp_status mp_gp_run(const char *script, int *exit_code, mp_error *err);

#endif
