/* test_search_limits.c — the planner's search under its time limit and
 * work caps on the memory-bound instances of planner/synth.h: anytime
 * answers (a plan that fits, a valid lower bound and its gap), work caps
 * that reproduce, the greedy incumbents a cap leaves, and the synthetic
 * instances themselves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "evaluate.h"
#include "plan.h"
#include "profile.h"
#include "search.h"
#include "synth.h"
#include "testutil.h"

static void synth(mp_profile *p, mp_cluster *c, int L, int D, double mem, int mixed)
{
    mp_error e;
    CU_ASSERT_EQUAL_FATAL(mp_synth_profile(p, L, 1, &e), MP_OK);
    if (mem <= 0) mem = mp_synth_tight_memory(p, D);
    CU_ASSERT_EQUAL_FATAL(mp_synth_cluster(c, D, mem, mixed, &e), MP_OK);
}

/* The instances vary several-fold in cost, carry 4..48 MiB per layer and
 * are deterministic. */
static void test_synth_instances(void)
{
    mp_profile a, b;
    mp_cluster ca, cb;
    synth(&a, &ca, 1000, 64, 0, 0);
    synth(&b, &cb, 1000, 64, 0, 1);
    double fmin = HUGE_VAL, fmax = 0, pmin = HUGE_VAL, pmax = 0;
    for (int l = 0; l < a.num_layers; l++) {
        double f = mp_time_eval(&a.layers[l].fwd, 8), p = a.layers[l].param_bytes;
        fmin = f < fmin ? f : fmin;
        fmax = f > fmax ? f : fmax;
        pmin = p < pmin ? p : pmin;
        pmax = p > pmax ? p : pmax;
        CU_ASSERT_EQUAL(f, mp_time_eval(&b.layers[l].fwd, 8));
    }
    CU_ASSERT(fmax > 4 * fmin);
    CU_ASSERT(pmin >= 4 * 1048576.0 && pmax <= 48 * 1048576.0 && pmax > 40 * 1048576.0);
    double mem = mp_synth_tight_memory(&a, 64);
    CU_ASSERT(mem > 1.3 * 1073741824.0 && mem < 1.7 * 1073741824.0);
    CU_ASSERT_EQUAL(cb.devices[0].speed, 0.5);
    CU_ASSERT_EQUAL(cb.devices[63].speed, 1.0);
    CU_ASSERT_EQUAL(cb.devices[0].memory_bytes, 2 * cb.devices[63].memory_bytes);
    mp_profile_free(&a);
    mp_profile_free(&b);
    mp_cluster_free(&ca);
    mp_cluster_free(&cb);
}

/* A short limit on a large instance: stopped, with the best plan so far
 * (fits), a lower bound below it and the gap between them; a plan even
 * when the configurations are many (a plan first, whatever the shares). */
static void test_time_limit_anytime(void)
{
    mp_profile p;
    mp_cluster c;
    synth(&p, &c, 1000, 64, 1.5 * 1073741824.0, 0);
    mp_search_opts o;
    mp_search_opts_init(&o, 1024);
    CU_ASSERT_EQUAL(o.time_limit, MP_SEARCH_TIME_LIMIT);
    o.state_factor = MP_SYNTH_STATE_FACTOR;
    o.top = 2;
    o.time_limit = 0.5;
    mp_search_result r;
    mp_error e;
    mp_error_clear(&e);
    mp_status st = mp_search_run(&p, &c, &o, &r, &e);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    CU_ASSERT(r.stopped);
    CU_ASSERT(!r.optimal);
    double t = r.plans[0].predicted.iteration_ms;
    CU_ASSERT(r.lower_bound_ms > 0 && r.lower_bound_ms <= t);
    CU_ASSERT(fabs(r.gap - (t - r.lower_bound_ms) / t) < 1e-9);
    for (int i = 0; i < r.num_plans; i++) CU_ASSERT(mp_plan_fits(&r.plans[i], &c));
    fprintf(stderr, "  1000x64 in %.3f s (limit 0.5 s): %.3f ms, gap %.2f%%\n", r.seconds, t, 100 * r.gap);
    mp_search_result_free(&r);
    o.data_parallel = 0;   /* 38446 configurations: their listing alone takes half of 0.3 s */
    o.time_limit = 0.3;
    CU_ASSERT_EQUAL_FATAL(mp_search_run(&p, &c, &o, &r, &e), MP_OK);
    CU_ASSERT(r.num_plans >= 1 && mp_plan_fits(&r.plans[0], &c));
    fprintf(stderr, "  ... every D: %ld configurations in %.3f s (limit 0.3 s): %.3f ms\n", r.configurations, r.seconds,
            r.plans[0].predicted.iteration_ms);
    mp_search_result_free(&r);
    o.time_limit = -1;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_search_run(&p, &c, &o, &r, &e), MP_ERR_USAGE);
    CU_ASSERT(strstr(e.msg, "--time-limit") != NULL);
    mp_profile_free(&p);
    mp_cluster_free(&c);
}

/* Without a time limit, work caps stop the search at the same place every
 * time. */
static void test_work_caps_reproduce(void)
{
    mp_profile p;
    mp_cluster c;
    synth(&p, &c, 128, 16, 0, 0);
    mp_search_opts o;
    mp_search_opts_init(&o, 1024);
    o.state_factor = MP_SYNTH_STATE_FACTOR;
    o.top = 1;
    o.time_limit = 0;
    o.node_budget = 20000;
    o.sim_op_budget = 2e6;
    mp_search_result r1, r2;
    mp_error e;
    CU_ASSERT_EQUAL_FATAL(mp_search_run(&p, &c, &o, &r1, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_search_run(&p, &c, &o, &r2, &e), MP_OK);
    CU_ASSERT_EQUAL(r1.nodes, r2.nodes);
    CU_ASSERT_EQUAL(r1.simulations, r2.simulations);
    CU_ASSERT_EQUAL(r1.plans[0].predicted.iteration_ms, r2.plans[0].predicted.iteration_ms);
    CU_ASSERT_EQUAL(r1.lower_bound_ms, r2.lower_bound_ms);
    CU_ASSERT(r1.nodes <= o.node_budget + 1000);
    mp_search_result_free(&r1);
    mp_search_result_free(&r2);
    mp_profile_free(&p);
    mp_cluster_free(&c);
}

/* A cap that stops the split search at once leaves the greedy incumbents.
 * Twelve equal layers on two devices, gpipe: the first device holds the
 * stash of five layers' micro-batches, not six. The split balanced by F + B
 * (6 | 6) must recompute its first stage; the one balanced with the
 * recompute that memory forces counted (5 | 7) need not, and is the best
 * of every split (each tried here with the recompute it needs). */
static void test_greedy_counts_forced_recompute(void)
{
    enum { L = 12, G = 4 };
    const double stash = 1048576.0;
    mp_profile p;
    memset(&p, 0, sizeof p);
    p.model = strdup("equal");
    p.device = strdup("synthetic");
    p.input_bytes_per_sample = 100;
    p.num_layers = L;
    p.layers = calloc(L, sizeof *p.layers);
    for (int l = 0; l < L; l++) {
        p.layers[l].fwd = (mp_time_fn){ .kind = MP_TIME_LINEAR, .beta = 1.0 };
        p.layers[l].bwd = (mp_time_fn){ .kind = MP_TIME_LINEAR, .beta = 2.0 };
        p.layers[l].param_bytes = 1000;
        p.layers[l].out_bytes_per_sample = 100;
        p.layers[l].stash_bytes_per_sample = stash;
    }
    mp_cluster c;
    mp_error e;
    CU_ASSERT_EQUAL_FATAL(mp_cluster_uniform(&c, 2, 1073741824.0, 1e9, 1e-5, &e), MP_OK);
    c.devices[0].memory_bytes = G * 5.5 * stash;
    mp_search_opts o;
    mp_search_opts_init(&o, G);
    o.top = 1;
    o.microbatch = 1;
    o.positions = 2;
    o.schedule = MP_SCHED_GPIPE;
    o.file_order = 1;
    o.time_limit = 0;
    o.node_budget = 1;
    mp_search_result r;
    CU_ASSERT_EQUAL_FATAL(mp_search_run(&p, &c, &o, &r, &e), MP_OK);
    mp_stage st[2] = { { 0, 0, 0, 0 }, { 0, L - 1, 1, 0 } };
    mp_plan plan = { .schedule = MP_SCHED_GPIPE, .chunks_per_device = 1, .global_batch = G, .microbatch_size = 1,
                     .num_microbatches = G, .num_stages = 2, .stages = st, .data_parallel = 1 };
    double best = HUGE_VAL;
    for (int h = 0; h + 1 < L; h++)
        for (int rc = 0; rc <= 1; rc++) {
            st[0].last = h, st[1].first = h + 1, st[0].recompute = rc;
            CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&plan, &p, &c, o.state_factor, NULL, &e), MP_OK);
            if (mp_plan_fits(&plan, &c) && plan.predicted.iteration_ms < best) best = plan.predicted.iteration_ms;
            CU_ASSERT_EQUAL(mp_plan_fits(&plan, &c), rc || h < 5);
        }
    free(plan.predicted.peak_memory_bytes);
    CU_ASSERT(r.stopped && !r.optimal);
    CU_ASSERT_EQUAL(r.plans[0].stages[0].last, 4);
    CU_ASSERT_EQUAL(r.plans[0].stages[0].recompute, 0);
    CU_ASSERT_DOUBLE_EQUAL(r.plans[0].predicted.iteration_ms, best, 1e-9 * best);
    mp_search_result_free(&r);
    mp_profile_free(&p);
    mp_cluster_free(&c);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_synth_instances),
        MP_TEST(test_time_limit_anytime),
        MP_TEST(test_work_caps_reproduce),
        MP_TEST(test_greedy_counts_forced_recompute),
    };
    return mp_test_main("search_limits", cases, (int)(sizeof cases / sizeof *cases));
}
