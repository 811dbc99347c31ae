/* bench_planner.c — planner time for 32/128/1000 layers x 4/16/64 devices,
 * global batch 1024 (medians of several runs), with the search statistics;
 * once with one replica (data_parallel 1) and once with D searched too
 * (--data-parallel auto; "D" is the best plan's).
 * Synthetic transformer-like layers with table times (the same model cut
 * into L layers), 16 GiB devices, 25 GB/s links, 10 us latency. Then the
 * memory-bound instances of planner/synth.h (tight memory, most plans
 * recompute; one run each under the default time limit) and mixed
 * clusters: time, gap, proven. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "profile.h"
#include "search.h"
#include "stats.h"
#include "synth.h"

static void make_profile(mp_profile *p, int L)
{
    memset(p, 0, sizeof *p);
    p->model = strdup("bench");
    p->device = strdup("synthetic");
    p->input_bytes_per_sample = 8192;
    p->num_layers = L;
    p->layers = calloc((size_t)L, sizeof *p->layers);
    for (int l = 0; l < L; l++) {
        mp_layer_cost *c = &p->layers[l];
        double scale = 1.0 + 0.3 * ((l * 7919) % 13) / 13.0;  /* mildly uneven layers */
        for (int k = 0; k < 2; k++) {
            mp_time_fn *f = k ? &c->bwd : &c->fwd;
            f->kind = MP_TIME_TABLE;
            f->n = 4;
            f->batch = malloc(4 * sizeof(double));
            f->ms = malloc(4 * sizeof(double));
            static const double bs[4] = { 1, 4, 16, 64 }, ms[4] = { 0.21, 0.6, 2.2, 8.6 };
            for (int i = 0; i < 4; i++) {
                f->batch[i] = bs[i];
                f->ms[i] = ms[i] * scale * (k ? 2.0 : 1.0) * 32.0 / L;
            }
        }
        c->param_bytes = 25165824.0 * 32 / L;
        c->out_bytes_per_sample = 2097152;
        c->stash_bytes_per_sample = 8388608.0 * 32 / L;
    }
}

/* One memory-bound instance: L layers, D devices (mixed: two kinds), mem
 * bytes per device (0: mp_synth_tight_memory). */
static int bound_row(int L, int D, double mem, int mixed)
{
    mp_profile prof;
    mp_cluster cl;
    mp_error e;
    mp_error_clear(&e);
    if (mp_synth_profile(&prof, L, 1, &e) != MP_OK) return 1;
    if (mem <= 0) mem = mp_synth_tight_memory(&prof, D);
    if (mp_synth_cluster(&cl, D, mem, mixed, &e) != MP_OK) return 1;
    mp_search_opts o;
    mp_search_opts_init(&o, 1024);
    o.top = 1;
    o.state_factor = MP_SYNTH_STATE_FACTOR;
    mp_search_result r;
    double t0 = mp_now_s();
    mp_status st = mp_search_run(&prof, &cl, &o, &r, &e);
    double t = mp_now_s() - t0;
    if (st != MP_OK) { fprintf(stderr, "bench: status %d: %s\n", (int)st, e.msg); return 1; }
    int rc = 0;
    for (int s = 0; s < r.plans[0].num_stages; s++) rc += r.plans[0].stages[s].recompute;
    printf("  %6d %7d %6s %8.0f %8.3f %8ld %8ld %13.3f %8.3f %6s  %s v=%d b=%d, %d/%d stages recompute\n", L, D,
           mixed ? "mixed" : "same", mem / 1048576.0, t, r.configurations, r.searched,
           r.plans[0].predicted.iteration_ms, 100 * r.gap, r.optimal ? "yes" : "no",
           mp_schedule_name(r.plans[0].schedule), r.plans[0].chunks_per_device, r.plans[0].microbatch_size, rc,
           r.plans[0].num_stages);
    fflush(stdout);
    mp_search_result_free(&r);
    mp_profile_free(&prof);
    mp_cluster_free(&cl);
    return 0;
}

static int bound_table(void)
{
    static const struct { int L, D, mixed; double mem; } rows[] = {
        { 32, 8, 0, 0 }, { 128, 16, 0, 0 }, { 128, 64, 0, 0 }, { 1000, 16, 0, 0 },
        { 1000, 64, 0, 1.5 * 1073741824.0 }, { 32, 8, 1, 0 }, { 128, 16, 1, 0 },
    };
    printf("# memory-bound (planner/synth.h, state factor %g), global batch 1024, one run, time limit %g s\n",
           MP_SYNTH_STATE_FACTOR, MP_SEARCH_TIME_LIMIT);
    printf("# %6s %7s %6s %8s %8s %8s %8s %13s %8s %6s  plan\n", "layers", "devices", "kinds", "mem_MiB",
           "time_s", "configs", "searched", "iteration_ms", "gap_%", "proven");
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (bound_row(rows[i].L, rows[i].D, rows[i].mem, rows[i].mixed)) return 1;
    return 0;
}

/* The memory-bound instances as files for mpplan (--state-factor 1):
 * DIR/synth-L-D.profile.json and DIR/synth-L-D[-mixed].cluster.json. */
static int write_instances(const char *dir)
{
    static const int rows[][3] = { { 32, 8, 0 }, { 128, 16, 0 }, { 128, 64, 0 }, { 1000, 16, 0 }, { 1000, 64, 0 },
                                   { 32, 8, 1 }, { 128, 16, 1 } };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        int L = rows[i][0], D = rows[i][1], mixed = rows[i][2];
        mp_profile prof;
        mp_cluster cl;
        mp_error e;
        mp_error_clear(&e);
        char pp[512], cp[512];
        snprintf(pp, sizeof pp, "%s/synth-%d-%d.profile.json", dir, L, D);
        snprintf(cp, sizeof cp, "%s/synth-%d-%d%s.cluster.json", dir, L, D, mixed ? "-mixed" : "");
        double mem = L == 1000 && D == 64 ? 1.5 * 1073741824.0 : 0;
        if (mp_synth_profile(&prof, L, 1, &e) != MP_OK) return 1;
        if (mem <= 0) mem = mp_synth_tight_memory(&prof, D);
        if (mp_synth_cluster(&cl, D, mem, mixed, &e) != MP_OK || mp_profile_save(pp, &prof, &e) != MP_OK ||
            mp_cluster_save(cp, &cl, &e) != MP_OK) {
            fprintf(stderr, "bench: %s\n", e.msg);
            return 1;
        }
        printf("%s %s\n", pp, cp);
        mp_profile_free(&prof);
        mp_cluster_free(&cl);
    }
    return 0;
}

/* One row of the first table, one run: L layers, D devices, dp replicas (0: auto). */
static int one_row(int L, int D, int dp, double limit)
{
    mp_profile prof;
    mp_cluster cl;
    mp_error e;
    mp_error_clear(&e);
    make_profile(&prof, L);
    mp_cluster_uniform(&cl, D, 16.0 * 1073741824.0, 25e9, 10e-6, &e);
    mp_search_opts o;
    mp_search_opts_init(&o, 1024);
    o.top = 1;
    o.data_parallel = dp;
    if (limit > 0) o.time_limit = limit;
    mp_search_result r;
    double t0 = mp_now_s();
    mp_status st = mp_search_run(&prof, &cl, &o, &r, &e);
    double t = mp_now_s() - t0;
    if (st != MP_OK) { fprintf(stderr, "bench: status %d: %s\n", (int)st, e.msg); return 1; }
    printf("  %6d %7d %4s %10.4f %8ld %8ld %10ld %12ld %13.3f %8.3f %3d\n", L, D, dp ? "1" : "auto", t,
           r.configurations, r.searched, r.nodes, r.simulations, r.plans[0].predicted.iteration_ms, 100 * r.gap,
           mp_plan_replicas(&r.plans[0]));
    mp_search_result_free(&r);
    mp_profile_free(&prof);
    mp_cluster_free(&cl);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bound-only") == 0) return bound_table();
    /* --row L D dp (0: auto) [time limit] / --bound-row L D mem_MiB (0: tight) mixed: one row, one run */
    if (argc > 4 && strcmp(argv[1], "--row") == 0)
        return one_row(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argc > 5 ? atof(argv[5]) : 0);
    if (argc > 5 && strcmp(argv[1], "--bound-row") == 0)
        return bound_row(atoi(argv[2]), atoi(argv[3]), atof(argv[4]) * 1048576.0, atoi(argv[5]));
    if (argc > 2 && strcmp(argv[1], "--write-instances") == 0) return write_instances(argv[2]);
    static const int Ls[] = { 32, 128, 1000 }, Ds[] = { 4, 16, 64 };
    enum { RUNS = 3 };
    printf("# mpplan search, global batch 1024, one core; median of %d runs\n", RUNS);
    printf("# %6s %7s %4s %10s %8s %8s %10s %12s %13s %8s %3s\n", "layers", "devices", "dp", "time_s", "configs",
           "searched", "nodes", "simulations", "iteration_ms", "gap_%", "D");
    for (int dp = 1; dp >= 0; dp--)
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            mp_profile prof;
            mp_cluster cl;
            mp_error e;
            mp_error_clear(&e);
            make_profile(&prof, Ls[i]);
            mp_cluster_uniform(&cl, Ds[j], 16.0 * 1073741824.0, 25e9, 10e-6, &e);
            mp_search_opts o;
            mp_search_opts_init(&o, 1024);
            o.top = 1;
            o.data_parallel = dp;
            double t[RUNS];
            mp_search_result r;
            memset(&r, 0, sizeof r);
            for (int k = 0; k < RUNS; k++) {
                mp_search_result_free(&r);
                double t0 = mp_now_s();
                mp_status st = mp_search_run(&prof, &cl, &o, &r, &e);
                t[k] = mp_now_s() - t0;
                if (st != MP_OK) { fprintf(stderr, "bench: status %d: %s\n", (int)st, e.msg); return 1; }
            }
            printf("  %6d %7d %4s %10.4f %8ld %8ld %10ld %12ld %13.3f %8.3f %3d\n", Ls[i], Ds[j], dp ? "1" : "auto",
                   mp_median(t, RUNS), r.configurations, r.searched, r.nodes, r.simulations,
                   r.plans[0].predicted.iteration_ms, 100 * r.gap, mp_plan_replicas(&r.plans[0]));
            fflush(stdout);
            mp_search_result_free(&r);
            mp_profile_free(&prof);
            mp_cluster_free(&cl);
        }
    return bound_table();
}
