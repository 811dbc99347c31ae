/* prof_report.c — mpprof's outputs: the profile JSON (mpplan-profile/1 plus
 * fit, spread, machine, backend, library versions and settings, which mpplan
 * ignores), the nccl-tests style table, and the links table. */
#include "prof_report.h"

#include <gsl/gsl_version.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>
#include "json_util.h"

char *openblas_get_config(void);

/* ---------------------------------------------------------------- JSON */

static json_t *darr(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, mp_json_number(v[i]));
    return a;
}

static json_t *table(const mp_prof_settings *s, const double *ms)
{
    json_t *b = json_array();
    for (int i = 0; b && i < s->nb; i++) json_array_append_new(b, json_integer(s->batch[i]));
    return json_pack("{s:o,s:o}", "batch", b, "ms", darr(ms, s->nb));
}

static json_t *fit(const mp_fit *f)
{
    return json_pack("{s:o,s:o,s:o}", "alpha", mp_json_number(f->alpha),
                     "beta", mp_json_number(f->beta), "r2", mp_json_number(f->r2));
}

json_t *mp_prof_machine_json(void)
{
    return json_pack("{s:s,s:i,s:o}", "cpu", mp_machine_cpu_model(),
                     "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "mem_available_bytes", mp_json_number(mp_machine_mem_available()));
}

json_t *mp_prof_versions_json(void)
{
    return json_pack("{s:s,s:s,s:s}", "openblas", openblas_get_config(), "gsl", GSL_VERSION,
                     "jansson", JANSSON_VERSION);
}

json_t *mp_prof_profile_json(const mp_model *m, const mp_prof_layer *L, const mp_prof_settings *s,
                             const char *backend_desc, const char *backend_name, int device)
{
    json_t *layers = json_array();
    for (int i = 0; layers && i < m->num_layers; i++) {
        const mp_prof_layer *l = &L[i];
        json_t *o = json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:{s:o,s:o},s:{s:o,s:o,s:o,s:o},s:o,s:o}",
            "name", l->name,
            "fwd_ms", table(s, l->fwd_ms), "bwd_ms", table(s, l->bwd_ms),
            "param_bytes", mp_json_number(l->param_bytes),
            "out_bytes_per_sample", mp_json_number(l->out_bytes_per_sample),
            "stash_bytes_per_sample", mp_json_number(l->stash_bytes_per_sample),
            "fit", "fwd", fit(&l->fwd), "bwd", fit(&l->bwd),
            "spread", "fwd_sd_ms", darr(l->fwd_sd, s->nb), "bwd_sd_ms", darr(l->bwd_sd, s->nb),
                      "fwd_min_ms", darr(l->fwd_min, s->nb), "bwd_min_ms", darr(l->bwd_min, s->nb),
            "workspace_bytes", mp_json_number(l->workspace_bytes),
            "allocated_bytes", mp_json_number(l->allocated_bytes));
        if (!o) { json_decref(layers); return NULL; }
        json_object_set_new(o, "bwd_input_ms", table(s, l->bwd_in_ms));
        json_object_set_new(o, "bwd_weight_ms", table(s, l->bwd_w_ms));
        json_object_set_new(o, "wgrad_stash_bytes_per_sample", mp_json_number(l->wstash_bytes_per_sample));
        json_object_set_new(o, "type", json_string(mp_layer_type_name(m->layers[i].type)));
        json_array_append_new(layers, o);
    }
    json_t *batch = json_array();
    for (int i = 0; batch && i < s->nb; i++) json_array_append_new(batch, json_integer(s->batch[i]));
    json_t *doc = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s,s:o,s:{s:s,s:o,s:i,s:i,s:i}}",
        "format", "mpplan-profile/1", "model", m->name, "device", backend_desc,
        "input_bytes_per_sample", mp_json_number(4.0 * m->input_dim),
        "layers", layers, "machine", mp_prof_machine_json(), "backend", backend_name,
        "library_versions", mp_prof_versions_json(),
        "settings", "backend", backend_name, "batch", batch, "warmup", s->warmup,
        "repeat", s->repeat, "device", device);
    json_t *set = doc ? json_object_get(doc, "settings") : NULL;
    if (set) {
        json_object_set_new(set, "method", json_string(s->sequential ? "sequential" : "steps"));
        json_object_set_new(set, "threads", json_integer(s->threads > 1 ? s->threads : 1));
        json_object_set_new(set, "rotate", json_integer(s->rotate > 0 ? s->rotate : 1));
        json_object_set_new(set, "min_sample_ms", mp_json_number(s->min_sample_ms));
    }
    return doc;
}

/* ---------------------------------------------------------------- tables */

void mp_prof_print_header(FILE *f, const char *tool_line, const char *backend_desc)
{
    fprintf(f, "# mpprof: %s\n", tool_line);
    fprintf(f, "# machine: %s, %ld cores, %.1f GiB available\n", mp_machine_cpu_model(),
            sysconf(_SC_NPROCESSORS_ONLN), mp_machine_mem_available() / 1073741824.0);
    fprintf(f, "# backend: %s\n", backend_desc);
    fprintf(f, "# libraries: %s, GSL %s, jansson %s\n", openblas_get_config(), GSL_VERSION,
            JANSSON_VERSION);
}

void mp_prof_print_layers(FILE *f, const mp_model *m, const mp_prof_layer *L, const mp_prof_settings *s)
{
    fprintf(f, "# %-26s %5s", "layer", "b");
    fprintf(f, " %11s %11s %9s %9s\n", "fwd", "bwd", "fwd_sd", "bwd_sd");
    fprintf(f, "# %-26s %5s %11s %11s %9s %9s\n", "", "", "(ms)", "(ms)", "(ms)", "(ms)");
    for (int i = 0; i < m->num_layers; i++) {
        const mp_prof_layer *l = &L[i];
        for (int k = 0; k < s->nb; k++)
            fprintf(f, "  %-26s %5d %11.4f %11.4f %9.4f %9.4f\n", k ? "" : l->name, s->batch[k],
                    l->fwd_ms[k], l->bwd_ms[k], l->fwd_sd[k], l->bwd_sd[k]);
        fprintf(f, "  %-26s  fit  fwd %.4g + %.4g*b ms (R^2 %.4f)  bwd %.4g + %.4g*b ms (R^2 %.4f)\n", "",
                l->fwd.alpha, l->fwd.beta, l->fwd.r2, l->bwd.alpha, l->bwd.beta, l->bwd.r2);
    }
}

void mp_prof_print_links(FILE *f, const mp_link_fit *fit)
{
    fprintf(f, "# %12s %12s %12s\n", "size", "time", "bandwidth");
    fprintf(f, "# %12s %12s %12s\n", "(B)", "(us)", "(GB/s)");
    for (int k = 0; k < fit->n; k++)
        fprintf(f, "  %12.0f %12.3f %12.3f\n", fit->bytes[k], fit->ms[k] * 1e3,
                fit->bytes[k] / (fit->ms[k] / 1e3) / 1e9);
    fprintf(f, "# fit: latency %.3f us, bandwidth %.3f GB/s (R^2 %.4f)\n", fit->latency_s * 1e6,
            fit->bandwidth / 1e9, fit->r2);
}
