/* mpprof.c — measure per-layer costs (--model) or links (--links) on this
 * machine and write files mpplan reads. See docs/profiling.md. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "version.h"
#include "backend.h"
#include "cli.h"
#include "json_util.h"
#include "model.h"
#include "prof.h"
#include "prof_report.h"
#include "profile.h"

/* One table drives getopt_long and --help. */
static const mp_cli_opt OPTS[] = {
    {"model", 1, 'm', "M.json", "profile each planning unit of this model spec"},
    {"links", 0, 'l', NULL, "measure links instead (threads on CPU; ranks under mpirun)"},
    {"merge", 0, 'g', NULL, "write the pointwise median of the profiles given as arguments (one model) to -o"},
    {"backend", 1, 'b', "cpu|cuda", "compute backend (default cpu)"},
    {"device", 1, 'd', "N", "CPU core to pin to / GPU index (default: none / 0)"},
    {"batch", 1, 'B', "LIST", "micro-batch sizes, e.g. 1,2,4,8,16 (default)"},
    {"warmup", 1, 'w', "W", "untimed runs per batch size (default 3)"},
    {"repeat", 1, 'r', "R", "timed runs per batch size (default 10)"},
    {"threads", 1, 'T', "N", "profile on N cores at once, one pinned thread each (default: all cores on cpu, 1 on cuda)"},
    {"rotate", 1, 'R', "N", "buffer sets used in turn, as the pipeline's micro-batches (default 4)"},
    {"min-sample", 1, 'M', "MS", "repeat short ops inside one sample until it lasts MS ms (default 0.2; 0: off)"},
    {"sequential", 0, 'S', NULL, "old order: one thread, layer by layer, same buffers (implies --threads 1 --rotate 1 --min-sample 0)"},
    {"sizes", 1, 's', "A:B", "--links sizes, powers of two from A to B (default 4K:64M)"},
    {"output", 1, 'o', "FILE", "write the profile / cluster JSON here (atomically)"},
    {"json", 0, 'j', NULL, "print the JSON document on stdout instead of the table"},
    {"quiet", 0, 'q', NULL, "no progress on stderr"},
    {"help", 0, 'h', NULL, "this help"},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

typedef struct {
    const char *model, *backend, *out;
    int links, merge, device, json, quiet, threads, rotate, sequential, help;
    char **inputs;   /* --merge: the profiles */
    int ninputs;
    double min_sample;
    mp_prof_settings s;
    double smin, smax;
} args;

static void usage(FILE *f)
{
    fprintf(f, "usage: mpprof --model M.json [--backend cpu|cuda] [--device N] [--batch 1,2,4,8,16]\n"
               "              [--warmup W] [--repeat R] [-o P.json] [--json]\n"
               "       mpprof --links [--backend cpu|cuda] [--sizes 4K:64M] [-o C.json] [--json]\n"
               "       mpprof --merge -o P.json P1.json P2.json ...\n\n");
    mp_cli_print_options(f, OPTS, NOPTS, "", 24);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* "1,2,4" -> sorted distinct positive ints. */
static mp_status parse_batch(const char *s, mp_prof_settings *st, mp_error *err)
{
    static int buf[64];
    int n = 0;
    if (mp_cli_int_list("batch", s, 1, 1 << 20, buf, 64, &n, NULL) != MP_OK)
        return mp_error_set(err, MP_ERR_USAGE, "--batch '%s': want a comma-separated list of up to 64 positive "
                                               "integers, e.g. 1,2,4,8", s);
    qsort(buf, (size_t)n, sizeof *buf, cmp_int);
    for (int i = 1; i < n; i++)
        if (buf[i] == buf[i - 1]) return mp_error_set(err, MP_ERR_USAGE, "--batch '%s': a batch size appears twice", s);
    st->batch = buf;
    st->nb = n;
    return MP_OK;
}

/* --sizes MIN:MAX, 1 <= MIN <= MAX <= 2G. */
static mp_status parse_sizes(const char *s, args *a, mp_error *err)
{
    char lo_s[64], hi_s[64];
    const char *colon = strchr(s, ':');
    if (!colon || colon - s >= 63 || strlen(colon + 1) >= 63)
        return mp_error_set(err, MP_ERR_USAGE, "--sizes: expected MIN:MAX such as 4K:64M, got \"%s\"", s);
    snprintf(lo_s, sizeof lo_s, "%.*s", (int)(colon - s), s);
    snprintf(hi_s, sizeof hi_s, "%s", colon + 1);
    if (mp_cli_size("sizes", lo_s, &a->smin, err) || mp_cli_size("sizes", hi_s, &a->smax, err)) return MP_ERR_USAGE;
    if (a->smin < 1 || a->smax < a->smin || a->smax > (double)(1u << 31))
        return mp_error_set(err, MP_ERR_USAGE, "--sizes: expected 1 <= MIN <= MAX <= 2G, got \"%s\"", s);
    return MP_OK;
}

/* One option's value into a (mp_cli_opt_fn). */
static mp_status parse_opt(void *ctx, int c, const char *v, mp_error *err)
{
    args *a = ctx;
    switch (c) {
    case 'm': a->model = v; return MP_OK;
    case 'l': a->links = 1; return MP_OK;
    case 'g': a->merge = 1; return MP_OK;
    case 'b': a->backend = v; return MP_OK;
    case 'd': return mp_cli_int("device", v, 0, 1000000, &a->device, err);
    case 'B': return parse_batch(v, &a->s, err);
    case 'w': return mp_cli_int("warmup", v, 0, 1000000, &a->s.warmup, err);
    case 'r': return mp_cli_int("repeat", v, 1, 1000000, &a->s.repeat, err);
    case 'T': return mp_cli_int("threads", v, 1, 1000000, &a->threads, err);
    case 'R': return mp_cli_int("rotate", v, 1, 1000000, &a->rotate, err);
    case 'S': a->sequential = 1; return MP_OK;
    case 'M': {
        mp_status st = mp_cli_number("min-sample", v, 0, &a->min_sample, err);
        if (st == MP_OK && a->min_sample > 1000)
            st = mp_error_set(err, MP_ERR_USAGE, "--min-sample: expected milliseconds from 0 to 1000, got \"%s\"", v);
        return st;
    }
    case 's': return parse_sizes(v, a, err);
    case 'o': a->out = v; return MP_OK;
    case 'j': a->json = 1; return MP_OK;
    case 'q': a->quiet = 1; return MP_OK;
    case 'h': a->help = 1; return MP_OK;
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown or incomplete option (see --help)");
    }
}

static mp_status parse_args(int argc, char **argv, args *a, mp_error *err)
{
    static int defb[] = {1, 2, 4, 8, 16};
    *a = (args){.backend = "cpu", .device = -2, .s = {5, defb, 3, 10, 0, -1, 4, 0.2, 0},
                .threads = -1, .rotate = -1, .min_sample = -1, .smin = 4096, .smax = 64 << 20};
    mp_status st = mp_cli_parse(argc, argv, OPTS, NOPTS, "o:hjq", parse_opt, a, err);
    if (st != MP_OK || a->help) return st;
    if (a->merge) {
        if (a->links || a->model)
            return mp_error_set(err, MP_ERR_USAGE, "--merge: give only profiles to merge, not --links or --model");
        if (optind == argc) return mp_error_set(err, MP_ERR_USAGE, "--merge: give the profiles to merge as arguments");
        if (!a->out) return mp_error_set(err, MP_ERR_USAGE, "--merge: give the output file with -o P.json");
        a->inputs = argv + optind;
        a->ninputs = argc - optind;
        return MP_OK;
    }
    if (optind < argc) return mp_error_set(err, MP_ERR_USAGE, "unexpected argument '%s'", argv[optind]);
    if (a->links && a->model) return mp_error_set(err, MP_ERR_USAGE, "--links and --model %s: choose one", a->model);
    if (!a->links && !a->model) return mp_error_set(err, MP_ERR_USAGE, "give --model M.json or --links (see --help)");
    if (!mp_backend_available(a->backend) && strcmp(a->backend, "cuda"))
        return mp_error_set(err, MP_ERR_USAGE, "--backend '%s': unknown (known: cpu, cuda)", a->backend);
    if (a->device == -2) a->device = strcmp(a->backend, "cpu") ? 0 : -1;
    int cpu = !strcmp(a->backend, "cpu");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (a->threads > 1 && !cpu)
        return mp_error_set(err, MP_ERR_USAGE, "--threads: more than one profiling thread needs --backend cpu, not %s",
                            a->backend);
    if (a->threads > ncpu)
        return mp_error_set(err, MP_ERR_USAGE, "--threads %d: this machine has %ld cores", a->threads, ncpu);
    a->s.sequential = a->sequential;
    a->s.threads = a->threads > 0 ? a->threads : a->sequential || !cpu ? 1 : (int)ncpu;
    a->s.rotate = a->rotate > 0 ? a->rotate : a->sequential ? 1 : 4;
    a->s.min_sample_ms = a->min_sample >= 0 ? a->min_sample : a->sequential ? 0 : 0.2;
    a->s.first_core = a->device;
    return MP_OK;
}

/* ---------------------------------------------------------------- --model */

static void progress(int i, int n, const char *name, void *ctx)
{
    if (!*(int *)ctx) fprintf(stderr, "mpprof: [%d/%d] %s\n", i + 1, n, name);
}

static int run_model(const args *a)
{
    mp_error err = {0};
    mp_model m;
    mp_backend *be = NULL;
    mp_prof_layer *L = NULL;
    json_t *doc = NULL;
    mp_status st = mp_model_load(a->model, &m, &err);
    if (!st) st = mp_backend_open(a->backend, a->device, &be, &err);
    if (st) goto out;
    char desc[512], line[1024];
    mp_backend_describe(be, desc, sizeof desc);
    double mem = strcmp(a->backend, "cpu") ? 0 : mp_machine_mem_available();
    L = calloc((size_t)m.num_layers, sizeof *L);
    if (!L) { st = mp_error_set(&err, MP_ERR_NOMEM, "out of memory"); goto out; }
    int quiet = a->quiet;
    st = mp_prof_layers(be, &m, &a->s, mem, L, progress, &quiet, &err);
    if (st) goto out;
    doc = mp_prof_profile_json(&m, L, &a->s, desc, mp_backend_name(be), a->device);
    if (!doc) { st = mp_error_set(&err, MP_ERR_NOMEM, "cannot encode the profile"); goto out; }
    if (a->out && (st = mp_json_write(a->out, doc, &err))) goto out;
    if (a->json) {
        char *s = mp_json_dump(doc);
        if (s) fputs(s, stdout);
        free(s);
    } else {
        snprintf(line, sizeof line, "model %s (%d layers, %lld parameters), warmup %d, repeat %d, %s, "
                 "%d thread%s, %d buffer sets, min sample %g ms", m.name, m.num_layers, mp_model_param_count(&m),
                 a->s.warmup, a->s.repeat, a->s.sequential ? "sequential" : "steps", a->s.threads,
                 a->s.threads > 1 ? "s" : "", a->s.rotate, a->s.min_sample_ms);
        mp_prof_print_header(stdout, line, desc);
        mp_prof_print_layers(stdout, &m, L, &a->s);
        printf("# OK: %d layers profiled%s%s\n", m.num_layers, a->out ? ", written to " : "", a->out ? a->out : "");
    }
out:
    if (st) fprintf(stderr, "mpprof: %s\n", err.msg);
    json_decref(doc);
    if (L) mp_prof_layers_free(L, m.num_layers);
    free(L);
    mp_backend_close(be);
    mp_model_free(&m);
    return mp_exit_code(st);
}

/* ---------------------------------------------------------------- --links */

static int run_links(const args *a)
{
    mp_error err = {0};
    double sizes[40];
    int n = 0;
    for (double s = a->smin; s <= a->smax && n < 40; s *= 2) sizes[n++] = s;
    mp_link_fit fit = {0};
    mp_cluster c = {0};
    mp_status st = MP_OK;
    int root = 1;
    char desc[512];
    if (strcmp(a->backend, "cpu")) {
        st = mp_error_set(&err, MP_ERR_BACKEND, "--links --backend %s: GPU link measurement is done by "
                          "'make gpu-check' (exec/prof/links_cuda.c); mpprof --links measures CPU links", a->backend);
        goto out;
    }
    if (mp_links_mpi && mp_links_mpi->active()) {
        snprintf(desc, sizeof desc, "MPI ping-pong between ranks");
        st = mp_links_mpi->measure(sizes, n, a->s.repeat, &c, &fit, &root, &err);
    } else {
        snprintf(desc, sizeof desc, "ping-pong over the threads transport between two worker threads (cores 0 and 1)");
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        st = mp_prof_links_cpu(sizes, n, a->s.repeat, &fit, &err);
        double mem = mp_machine_mem_available();
        if (!st) st = mp_cluster_uniform(&c, (int)cores, mem > 0 ? mem / cores : 1e9, fit.bandwidth, fit.latency_s, &err);
        for (int i = 0; !st && i < c.num_devices; i++) {
            char name[300];
            snprintf(name, sizeof name, "core%d: %s", i, mp_machine_cpu_model());
            free(c.devices[i].name);
            c.devices[i].name = strdup(name);
        }
        /* the ring all-reduce of data parallelism over min(cores, 4) threads */
        if (!st && cores >= 2) st = mp_prof_allreduce_threads(sizes, n, a->s.repeat, cores < 4 ? (int)cores : 4, &c, &err);
    }
    if (st || !root) goto out;
    if (a->out && (st = mp_cluster_save(a->out, &c, &err))) goto out;
    if (a->json) {
        json_t *j = json_pack("{s:f,s:f,s:f,s:o,s:o}", "latency_s", fit.latency_s, "bandwidth", fit.bandwidth,
                              "r2", fit.r2, "machine", mp_prof_machine_json(), "library_versions", mp_prof_versions_json());
        if (j && c.allreduce_bandwidth > 0)
            json_object_set_new(j, "allreduce", json_pack("{s:f,s:f}", "latency_s", c.allreduce_latency_s,
                                                          "bandwidth", c.allreduce_bandwidth));
        char *s = j ? mp_json_dump(j) : NULL;
        if (s) fputs(s, stdout);
        free(s);
        json_decref(j);
    } else {
        char line[700];
        snprintf(line, sizeof line, "links: %s, %d sizes %.0f..%.0f bytes", desc, n, sizes[0], sizes[n - 1]);
        mp_prof_print_header(stdout, line, "cpu");
        mp_prof_print_links(stdout, &fit);
        if (c.allreduce_bandwidth > 0)
            printf("allreduce    latency %.3g us, bandwidth %.3g GB/s  (ring over %d %s: "
                   "2(D-1)(latency + bytes/(D bandwidth)))\n", c.allreduce_latency_s * 1e6, c.allreduce_bandwidth / 1e9,
                   mp_links_mpi && mp_links_mpi->active() ? c.num_devices : c.num_devices < 4 ? c.num_devices : 4,
                   mp_links_mpi && mp_links_mpi->active() ? "ranks" : "threads");
        printf("# OK: %d devices%s%s\n", c.num_devices, a->out ? ", written to " : "", a->out ? a->out : "");
    }
out:
    if (st) fprintf(stderr, "mpprof: %s\n", err.msg);
    if (mp_links_mpi) mp_links_mpi->finish();
    free(fit.bytes);
    free(fit.ms);
    mp_cluster_free(&c);
    return mp_exit_code(st);
}

/* ---------------------------------------------------------------- --merge */

/* Sum over layers of fwd + bwd at batch b. */
static double total_ms(const mp_profile *p, double b)
{
    double t = 0;
    for (int l = 0; l < p->num_layers; l++) t += mp_time_eval(&p->layers[l].fwd, b) + mp_time_eval(&p->layers[l].bwd, b);
    return t;
}

static int run_merge(const args *a)
{
    mp_error err = {0};
    int n = a->ninputs;
    mp_profile *ps = calloc((size_t)n, sizeof *ps), merged = {0};
    mp_status st = ps ? MP_OK : mp_error_set(&err, MP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && !st; i++) st = mp_profile_load(a->inputs[i], &ps[i], &err);
    if (!st) st = mp_profile_merge(ps, (const char *const *)a->inputs, n, &merged, &err);
    if (!st) st = mp_profile_save(a->out, &merged, &err);
    if (!st && !a->quiet) {
        const mp_time_fn *f = &merged.layers[0].fwd;
        double b = f->kind == MP_TIME_TABLE ? f->batch[f->n - 1] : 1;
        printf("# merged %d profiles of %s (%d layers): the median of each time\n", n,
               merged.model ? merged.model : "?", merged.num_layers);
        printf("%-40s %18s\n", "profile", "fwd+bwd_ms");
        for (int i = 0; i < n; i++) printf("%-40s %18.3f\n", a->inputs[i], total_ms(&ps[i], b));
        printf("%-40s %18.3f\n", a->out, total_ms(&merged, b));
        printf("# (all layers, micro-batch %g)\n", b);
    }
    if (st) fprintf(stderr, "mpprof: %s\n", err.msg);
    for (int i = 0; ps && i < n; i++) mp_profile_free(&ps[i]);
    free(ps);
    mp_profile_free(&merged);
    return mp_exit_code(st);
}

int main(int argc, char **argv)
{
    if (mp_cli_version(argc, argv, "mpprof")) return 0;
    args a;
    mp_error err = {0};
    mp_status st = parse_args(argc, argv, &a, &err);
    if (st == MP_OK && a.help) {
        usage(stdout);
        return 0;
    }
    if (st != MP_OK) {
        fprintf(stderr, "mpprof: %s\n", err.msg);
        return mp_exit_code(st);
    }
    return a.merge ? run_merge(&a) : a.links ? run_links(&a) : run_model(&a);
}
