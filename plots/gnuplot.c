/* gnuplot.c — output paths, literals, scripts and running gnuplot (gnuplot.h). */
#include "gnuplot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json_util.h"

/* ---------------------------------------------------------------- paths */

static char *with_suffix(const char *base, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    char *s = malloc(n + m + 1);
    if (!s) return NULL;
    memcpy(s, base, n);
    memcpy(s + n, suffix, m + 1);
    return s;
}

/* See gnuplot.h. */
mp_status mp_gp_out_init(mp_gp_out *o, const char *image, int width, int height, mp_error *err)
{
    memset(o, 0, sizeof *o);
    const char *slash = strrchr(image, '/');
    const char *dot = strrchr(image, '.');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : image))
        return mp_error_set(err, MP_ERR_USAGE, "-o %s: the output must end in .png or .svg", image);
    if (strcasecmp(dot, ".svg") == 0) o->svg = 1;
    else if (strcasecmp(dot, ".png") != 0)
        return mp_error_set(err, MP_ERR_USAGE, "-o %s: the output must end in .png or .svg", image);
    size_t n = (size_t)(dot - image);
    o->image = strdup(image);
    o->dat = with_suffix(image, n, ".dat");
    o->gp = with_suffix(image, n, ".gp");
    o->width = width;
    o->height = height;
    o->data = open_memstream(&o->data_buf, &o->data_len);
    o->vars = open_memstream(&o->vars_buf, &o->vars_len);
    if (!o->image || !o->dat || !o->gp || !o->data || !o->vars) {
        mp_gp_out_free(o);
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    }
    return MP_OK;
}

/* See gnuplot.h. */
void mp_gp_out_free(mp_gp_out *o)
{
    if (o->data) fclose(o->data);
    if (o->vars) fclose(o->vars);
    free(o->data_buf);
    free(o->vars_buf);
    free(o->image);
    free(o->dat);
    free(o->gp);
    memset(o, 0, sizeof *o);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---------------------------------------------------------------- literals */

/* See gnuplot.h. */
void mp_gp_put_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'') fputs("''", f);
        else if (c < 0x20 || c == 0x7f) fputc(' ', f);
        else fputc(c, f);
    }
    fputc('\'', f);
}

/* See gnuplot.h. */
void mp_gp_put_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') fputc('\'', f);
        else if (c < 0x20 || c == 0x7f) fputc(' ', f);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void put_num(FILE *f, double x)
{
    if (isnan(x)) fputs("NaN", f);
    else if (isinf(x)) fputs(x > 0 ? "1e308" : "-1e308", f);
    else fprintf(f, "%.10g", x);
}

/* See gnuplot.h. */
void mp_gp_var_str(mp_gp_out *o, const char *name, const char *value)
{
    fprintf(o->vars, "%s = ", name);
    mp_gp_put_string(o->vars, value);
    fputc('\n', o->vars);
}

/* See gnuplot.h. */
void mp_gp_var_num(mp_gp_out *o, const char *name, double x)
{
    fprintf(o->vars, "%s = ", name);
    put_num(o->vars, x);
    fputc('\n', o->vars);
}

/* See gnuplot.h. */
void mp_gp_var_strs(mp_gp_out *o, const char *name, int n, const char *const *values)
{
    fprintf(o->vars, "array %s[%d] = [", name, n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", o->vars);
        mp_gp_put_string(o->vars, values[i]);
    }
    if (n <= 0) fputs("''", o->vars);
    fputs("]\n", o->vars);
}

/* See gnuplot.h. */
void mp_gp_var_nums(mp_gp_out *o, const char *name, int n, const double *values)
{
    fprintf(o->vars, "array %s[%d] = [", name, n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", o->vars);
        put_num(o->vars, values[i]);
    }
    if (n <= 0) fputs("0", o->vars);
    fputs("]\n", o->vars);
}

/* ---------------------------------------------------------------- templates */

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* See gnuplot.h. */
char *mp_gp_find_template(const char *name, mp_error *err)
{
    char exe[4096], dir[4096], path[8192];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    dir[0] = 0;
    if (n > 0) {
        exe[n] = 0;
        char *s = strrchr(exe, '/');
        if (s) {
            *s = 0;
            snprintf(dir, sizeof dir, "%s", exe);
        }
    }
    const char *env = getenv("MPPLOT_SCRIPTS");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/%s.gp", env, name);
        if (is_file(path)) return strdup(path);
    }
    if (dir[0]) {
        snprintf(path, sizeof path, "%s/../plots/%s.gp", dir, name);
        if (is_file(path)) return strdup(path);
        snprintf(path, sizeof path, "%s/../share/mpkit/plots/%s.gp", dir, name);
        if (is_file(path)) return strdup(path);
    }
    mp_error_set(err, MP_ERR_BACKEND,
                 "cannot find the gnuplot template %s.gp (looked in $MPPLOT_SCRIPTS, %s/../plots, "
                 "%s/../share/mpkit/plots)", name, dir[0] ? dir : "?", dir[0] ? dir : "?");
    return NULL;
}

/* ---------------------------------------------------------------- writing */

static void put_header(FILE *f, const mp_gp_out *o, const char *tname)
{
    fprintf(f, "# %s — written by mpplot from the template plots/%s.gp.\n", base_name(o->gp), tname);
    fputs("# Restyle freely, then rerun from anywhere: gnuplot THIS.gp (it reads and\n"
          "# writes the files next to itself).\n", f);
    fputs("here = ''\n"
          "i = strlen(ARG0); while (i > 0 && ARG0[i:i] ne '/') { i = i - 1 }\n"
          "if (i > 0) { here = ARG0[1:i] }\n", f);
    fputs("datafile = here.", f);
    mp_gp_put_string(f, base_name(o->dat));
    fputs("\nset datafile missing '?'\n", f);
    if (o->svg)
        fprintf(f, "set terminal svg size %d,%d noenhanced font 'sans,11' background rgb 'white'\n",
                o->width, o->height);
    else
        fprintf(f, "set terminal pngcairo size %d,%d noenhanced font 'sans,10' background rgb 'white'\n",
                o->width, o->height);
    fputs("set output here.", f);
    mp_gp_put_string(f, base_name(o->image));
    fputs("\n\n# ---- values from mpplot\n", f);
}

/* See gnuplot.h. */
mp_status mp_gp_finish(mp_gp_out *o, const char *template_name, mp_error *err)
{
    char *tpath = mp_gp_find_template(template_name, err);
    if (!tpath) return MP_ERR_BACKEND;
    char *tmpl = NULL, *script = NULL;
    size_t tlen = 0, slen = 0;
    mp_status st = mp_json_read_file(tpath, &tmpl, &tlen, err);
    free(tpath);
    if (st != MP_OK) return st;
    fflush(o->data);
    fflush(o->vars);
    FILE *f = open_memstream(&script, &slen);
    if (!f) {
        free(tmpl);
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    }
    put_header(f, o, template_name);
    fwrite(o->vars_buf, 1, o->vars_len, f);
    fprintf(f, "\n# ---- plots/%s.gp\n", template_name);
    fwrite(tmpl, 1, tlen, f);
    fclose(f);
    free(tmpl);
    st = mp_json_write_text(o->dat, o->data_buf, o->data_len, err);
    if (st == MP_OK) st = mp_json_write_text(o->gp, script, slen, err);
    free(script);
    if (st != MP_OK) return st;

    unlink(o->image);
    int code = 0;
    st = mp_gp_run(o->gp, &code, err);
    if (st != MP_OK) return st;
    if (code == 127)
        return mp_error_set(err, MP_ERR_BACKEND, "gnuplot not found (install it with make deps)");
    if (code != 0)
        return mp_error_set(err, MP_ERR_BACKEND, "gnuplot failed (exit %d) on %s", code, o->gp);
    struct stat sb;
    if (stat(o->image, &sb) != 0 || sb.st_size == 0)
        return mp_error_set(err, MP_ERR_BACKEND, "gnuplot ran %s but wrote no %s", o->gp, o->image);
    return MP_OK;
}

/* See gnuplot.h. */
mp_status mp_gp_run(const char *script, int *exit_code, mp_error *err)
{
    const char *prog = getenv("MPPLOT_GNUPLOT");
    if (!prog || !*prog) prog = "gnuplot";
    /* A relative script path gets "./" so it can never read as an option. */
    size_t n = strlen(script);
    char *arg = malloc(n + 3);
    if (!arg) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    snprintf(arg, n + 3, "%s%s", script[0] == '/' ? "" : "./", script);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        free(arg);
        return mp_error_set(err, MP_ERR_BACKEND, "cannot start gnuplot: %s", strerror(errno));
    }
    if (pid == 0) {
        char *argv[] = { (char *)prog, arg, NULL };
        execvp(prog, argv);
        _exit(127);
    }
    free(arg);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return mp_error_set(err, MP_ERR_BACKEND, "waiting for gnuplot: %s", strerror(errno));
    }
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return MP_OK;
}
