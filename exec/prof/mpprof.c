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
#include "units.h"

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
    int links, merge, device, json, quiet, threads, rotate, sequential;
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

static int bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "mpprof: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 2;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* "1,2,4" -> sorted distinct positive ints; 0 on success, else exit code. */
static int parse_batch(const char *s, mp_prof_settings *st)
{
    static int buf[64];
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > (1 << 20) || (*end && *end != ',') || n == 64)
            return bad("--batch '%s': want a comma-separated list of up to 64 positive integers, e.g. 1,2,4,8%s", s, "");
        buf[n++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) return bad("--batch '%s': trailing comma%s", s, "");
    }
    if (n == 0) return bad("--batch '%s': empty list%s", s, "");
    qsort(buf, (size_t)n, sizeof *buf, cmp_int);
    for (int i = 1; i < n; i++)
        if (buf[i] == buf[i - 1]) return bad("--batch '%s': a batch size appears twice%s", s, "");
    st->batch = buf;
    st->nb = n;
    return 0;
}

/* --opt's integer value in [min, 1000000]; 0, else the message and exit code 2. */
static int parse_count(const char *opt, const char *s, int min, int *out)
{
    mp_error err = {0};
    if (mp_cli_int(opt, s, min, 1000000, out, &err) == MP_OK) return 0;
    fprintf(stderr, "mpprof: %s\n", err.msg);
    return 2;
}

static int parse_args(int argc, char **argv, args *a)
{
    static int defb[] = {1, 2, 4, 8, 16};
    struct option lo[NOPTS + 1];
    mp_cli_longopts(OPTS, NOPTS, lo);
    *a = (args){.backend = "cpu", .device = -2, .s = {5, defb, 3, 10, 0, -1, 4, 0.2, 0},
                .threads = -1, .rotate = -1, .min_sample = -1, .smin = 4096, .smax = 64 << 20};
    int c, rc = 0;
    mp_error err = {0};
    while (!rc && (c = getopt_long(argc, argv, "o:hjq", lo, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'l': a->links = 1; break;
        case 'g': a->merge = 1; break;
        case 'b': a->backend = optarg; break;
        case 'd': rc = parse_count("device", optarg, 0, &a->device); break;
        case 'B': rc = parse_batch(optarg, &a->s); break;
        case 'w': rc = parse_count("warmup", optarg, 0, &a->s.warmup); break;
        case 'r': rc = parse_count("repeat", optarg, 1, &a->s.repeat); break;
        case 'T': rc = parse_count("threads", optarg, 1, &a->threads); break;
        case 'R': rc = parse_count("rotate", optarg, 1, &a->rotate); break;
        case 'S': a->sequential = 1; break;
        case 'M': {
            char *end;
            a->min_sample = strtod(optarg, &end);
            if (!*optarg || *end || !(a->min_sample >= 0) || a->min_sample > 1000)
                return bad("--min-sample '%s': want milliseconds in [0, 1000]%s", optarg, "");
            break;
        }
        case 's': {
            char lo_s[64], hi_s[64];
            const char *colon = strchr(optarg, ':');
            if (!colon || colon - optarg >= 63 || strlen(colon + 1) >= 63)
                return bad("--sizes '%s': want MIN:MAX, e.g. 4K:64M%s", optarg, "");
            snprintf(lo_s, sizeof lo_s, "%.*s", (int)(colon - optarg), optarg);
            snprintf(hi_s, sizeof hi_s, "%s", colon + 1);
            if (mp_parse_bytes(lo_s, &a->smin, &err) || mp_parse_bytes(hi_s, &a->smax, &err))
                return bad("--sizes: %s%s", err.msg, "");
            if (a->smin < 1 || a->smax < a->smin || a->smax > (double)(1u << 31))
                return bad("--sizes '%s': want 1 <= MIN <= MAX <= 2G%s", optarg, "");
            break;
        }
        case 'o': a->out = optarg; break;
        case 'j': a->json = 1; break;
        case 'q': a->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (rc) return rc;
    if (a->merge) {
        if (a->links || a->model) return bad("--merge: give only profiles to merge, not --links or --model%s%s", "", "");
        if (optind == argc) return bad("--merge: give the profiles to merge as arguments%s%s", "", "");
        if (!a->out) return bad("--merge: give the output file with -o P.json%s%s", "", "");
        a->inputs = argv + optind;
        a->ninputs = argc - optind;
        return 0;
    }
    if (optind < argc) return bad("unexpected argument '%s'%s", argv[optind], "");
    if (a->links && a->model) return bad("--links and --model %s: choose one%s", a->model, "");
    if (!a->links && !a->model) { usage(stderr); return bad("give --model M.json or --links%s%s", "", ""); }
    if (!mp_backend_available(a->backend) && strcmp(a->backend, "cuda"))
        return bad("--backend '%s': unknown (known: cpu, cuda)%s", a->backend, "");
    if (a->device == -2) a->device = strcmp(a->backend, "cpu") ? 0 : -1;
    int cpu = !strcmp(a->backend, "cpu");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (a->threads > 1 && !cpu) return bad("--threads: more than one profiling thread needs --backend cpu, not %s%s", a->backend, "");
    if (a->threads > ncpu) {
        fprintf(stderr, "mpprof: --threads %d: this machine has %ld cores\n", a->threads, ncpu);
        return 2;
    }
    a->s.sequential = a->sequential;
    a->s.threads = a->threads > 0 ? a->threads : a->sequential || !cpu ? 1 : (int)ncpu;
    a->s.rotate = a->rotate > 0 ? a->rotate : a->sequential ? 1 : 4;
    a->s.min_sample_ms = a->min_sample >= 0 ? a->min_sample : a->sequential ? 0 : 0.2;
    a->s.first_core = a->device;
    return 0;
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
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    return a.merge ? run_merge(&a) : a.links ? run_links(&a) : run_model(&a);
}
