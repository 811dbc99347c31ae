/* test_evaluate.c — mp_plan_evaluate / mp_plan_fits on small hand-built
 * profiles, clusters and plans; predictions worked out by hand. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.h"
#include "evaluate.h"
#include "memory.h"
#include "schedule.h"
#include "sim.h"
#include "testutil.h"

#define EPS 1e-9

static mp_time_fn lin(double beta)
{
    mp_time_fn f;
    memset(&f, 0, sizeof f);
    f.kind = MP_TIME_LINEAR;
    f.beta = beta;
    return f;
}

static mp_time_fn aff(double alpha, double beta)
{
    mp_time_fn f = lin(beta);
    f.kind = MP_TIME_AFFINE;
    f.alpha = alpha;
    return f;
}

/* Four layers. At b = 2:
 *   fwd: L0 0.25*2 = 0.5, L1 0.3+0.1*2 = 0.5, L2 2, L3 2
 *   bwd: L0 0.5*2 = 1, L1 table (1,0.5)-(4,2) at 2 = 1, L2 3, L3 3 */
static double tb_batch[] = { 1, 4 }, tb_ms[] = { 0.5, 2 };

static void make_profile(mp_profile *p)
{
    memset(p, 0, sizeof *p);
    p->num_layers = 4;
    p->input_bytes_per_sample = 500;
    p->layers = calloc(4, sizeof *p->layers);
    mp_layer_cost *L = p->layers;
    L[0].fwd = lin(0.25); L[0].bwd = lin(0.5);
    L[1].fwd = aff(0.3, 0.1);
    L[1].bwd.kind = MP_TIME_TABLE; L[1].bwd.n = 2; L[1].bwd.batch = tb_batch; L[1].bwd.ms = tb_ms;
    L[2].fwd = lin(1); L[2].bwd = lin(1.5);
    L[3].fwd = lin(1); L[3].bwd = lin(1.5);
    const double params[] = { 1000, 3000, 5000, 7000 }, out[] = { 300, 1000, 200, 50 },
                 stash[] = { 10, 20, 40, 60 };
    for (int i = 0; i < 4; i++) {
        L[i].param_bytes = params[i];
        L[i].out_bytes_per_sample = out[i];
        L[i].stash_bytes_per_sample = stash[i];
    }
}

/* Two devices: dev0 speed 1, dev1 speed 2. Link 0->1: 0.25 ms + 8 MB/s;
 * link 1->0: 0 ms + 4 MB/s. 2000 bytes take 0.5 ms either way. */
static mp_device devs[2] = { { "dev0", 20000, 1 }, { "dev1", 48000, 2 } };
static mp_link links[4] = { { 1e9, 0 }, { 8e6, 0.25e-3 }, { 4e6, 0 }, { 1e9, 0 } };

static void make_cluster(mp_cluster *c)
{
    memset(c, 0, sizeof *c);
    c->num_devices = 2;
    c->devices = devs;
    c->default_link = links[0];
    c->links = links;
}

static void make_plan(mp_plan *pl, mp_schedule_kind kind, int v, int S, const int *cuts,
                      int m, int b)
{
    memset(pl, 0, sizeof *pl);
    pl->mode = MP_MODE_TRAIN;
    pl->schedule = kind;
    pl->chunks_per_device = v;
    pl->microbatch_size = b;
    pl->num_microbatches = m;
    pl->global_batch = m * b;
    pl->num_stages = S;
    pl->stages = calloc((size_t)S, sizeof *pl->stages);
    for (int s = 0; s < S; s++) {
        pl->stages[s].first = cuts[s];
        pl->stages[s].last = cuts[s + 1] - 1;
        pl->stages[s].device = s % (S / v);
    }
}

/* 1F1B, stage 0 = L0..L1 on dev0, stage 1 = L2..L3 on dev1, b=2, m=3:
 * F = {1, 4/2}, B = {2, 6/2}, transfers 0.5 ms: the timeline of
 * test_sim.c's test_hand_1f1b_latency, 19 ms (docs/cost-model.md). */
static void test_evaluate_1f1b(void)
{
    mp_profile p;
    mp_cluster c;
    mp_plan pl;
    make_profile(&p);
    make_cluster(&c);
    const int cuts[] = { 0, 2, 4 };
    make_plan(&pl, MP_SCHED_1F1B, 1, 2, cuts, 3, 2);
    mp_error err;
    mp_error_clear(&err);
    mp_trace tr = { 0 };
    mp_status st = mp_plan_evaluate(&pl, &p, &c, MP_DEFAULT_STATE_FACTOR, &tr, &err);
    if (st != MP_OK) fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    CU_ASSERT(pl.has_prediction);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, 19.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.samples_per_s, 6 / 0.019, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.bubble_fraction, 1 - 24.0 / 38.0, EPS);
    CU_ASSERT_EQUAL(pl.predicted.bottleneck_stage, 1);
    CU_ASSERT_EQUAL_FATAL(pl.predicted.num_peaks, 2);
    /* stage 0: 4*4000 + min(2,3)*2*30 = 16120; stage 1: 4*12000 + 1*2*100 = 48200 */
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[0], 16120, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[1], 48200, EPS);
    CU_ASSERT_FALSE(mp_plan_fits(&pl, &c));  /* dev1 has 48000 */
    devs[1].memory_bytes = 50000;
    CU_ASSERT_TRUE(mp_plan_fits(&pl, &c));
    devs[1].memory_bytes = 48000;
    /* trace: 12 ops + 2*3 transfers, rows named after the devices */
    CU_ASSERT_EQUAL(tr.n, 18);
    CU_ASSERT_FATAL(tr.num_rows >= 2);
    CU_ASSERT_STRING_EQUAL(tr.row_names[0], "stage 0 (dev0)");
    CU_ASSERT_STRING_EQUAL(tr.row_names[1], "stage 1 (dev1)");
    char path[512];
    snprintf(path, sizeof path, "%s/eval_trace.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL(mp_trace_write_chrome(&tr, path, "mpplan prediction", &err), MP_OK);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CU_ASSERT_PTR_NOT_NULL(root);
    json_decref(root);
    mp_trace_free(&tr);

    /* Recompute on stage 1: B1 = 3 + 2 = 5, same as simulating by hand-built arrays. */
    pl.stages[1].recompute = 1;
    CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&pl, &p, &c, 4, NULL, &err), MP_OK);
    {
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 2, 1, 3, &l, NULL), MP_OK);
        double F[] = { 1, 2 }, B[] = { 2, 5 }, t[] = { 0.5 };
        mp_sim *s = mp_sim_new();
        mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = t, .grad_ms = t };
        mp_sim_result r;
        CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, NULL, NULL), MP_OK);
        CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, r.iteration_ms, EPS);
        mp_sim_free(s);
        mp_op_lists_free(&l);
    }
    /* 4*12000 + 1*2*1000 (in_bytes = out of L1) + 2*100 = 50200 */
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[1], 50200, EPS);
    free(pl.stages);
    free(pl.predicted.peak_memory_bytes);
    free(p.layers);
}

/* GPipe on the same split: (m+K-1) does not apply (stages differ), so check
 * against the simulator run on hand-computed arrays, and the state factor. */
static void test_evaluate_gpipe_state_factor(void)
{
    mp_profile p;
    mp_cluster c;
    mp_plan pl;
    make_profile(&p);
    make_cluster(&c);
    const int cuts[] = { 0, 2, 4 };
    make_plan(&pl, MP_SCHED_GPIPE, 1, 2, cuts, 3, 2);
    CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&pl, &p, &c, 2.0, NULL, NULL), MP_OK);
    /* GPipe K=2, m=3, F={1,2}, B={2,3}, 0.5 ms links, by hand:
     * S0 F [0,1][1,2][2,3]; acts land 1.5, 2.5, 3.5; S1 F [1.5,3.5][3.5,5.5][5.5,7.5],
     * B [7.5,10.5][10.5,13.5][13.5,16.5]; grads land 11, 14, 17; S0 B [11,13][14,16][17,19] */
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, 19.0, EPS);
    /* stage 0: 2*4000 + 3*2*30 = 8180; stage 1: 2*12000 + 3*2*100 = 24600 */
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[0], 8180, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[1], 24600, EPS);
    CU_ASSERT_TRUE(mp_plan_fits(&pl, &c));
    free(pl.stages);
    free(pl.predicted.peak_memory_bytes);
    free(p.layers);
}

/* Interleaved, one layer per virtual stage, stages 0,2 on dev0 and 1,3 on
 * dev1: peaks per device from the op walk, times equal to a hand-built run. */
static void test_evaluate_interleaved(void)
{
    mp_profile p;
    mp_cluster c;
    mp_plan pl;
    make_profile(&p);
    make_cluster(&c);
    const int cuts[] = { 0, 1, 2, 3, 4 };
    make_plan(&pl, MP_SCHED_INTERLEAVED, 2, 4, cuts, 4, 2);
    mp_error err;
    mp_error_clear(&err);
    mp_status st = mp_plan_evaluate(&pl, &p, &c, 4, NULL, &err);
    if (st != MP_OK) fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    CU_ASSERT_EQUAL_FATAL(pl.predicted.num_peaks, 2);
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 2, 2, 4, &l, NULL), MP_OK);
    /* F = {0.5, 0.5/2, 2, 2/2}, B = {1, 1/2, 3, 3/2} (odd stages on dev1,
     * speed 2); activations b*out:
     * 600 B on 0->1 (0.25 + 0.075 ms), 2000 B on 1->0 (0.5 ms), 400 B on 0->1
     * (0.25 + 0.05 ms); gradients the same sizes the other way. */
    double F[] = { 0.5, 0.25, 2, 1 }, B[] = { 1, 0.5, 3, 1.5 };
    double act[] = { 0.25 + 600 / 8e3, 2000 / 4e3, 0.25 + 400 / 8e3 };
    double grad[] = { 600 / 4e3, 0.25 + 2000 / 8e3, 400 / 4e3 };
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad };
    mp_sim_result r;
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, NULL, NULL), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, r.iteration_ms, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.bubble_fraction, r.bubble_fraction, EPS);
    double peaks[2];
    CU_ASSERT_EQUAL_FATAL(mp_memory_peaks(&p, &pl, &l, 4, peaks, NULL), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[0], peaks[0], EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[1], peaks[1], EPS);
    /* dev0: 4*(1000+5000) + 2*max(3*10+2*40, 4*10+40) = 24220 (see test_memory.c) */
    CU_ASSERT_DOUBLE_EQUAL(peaks[0], 24000 + 2 * fmax(3 * 10 + 2 * 40, 4 * 10 + 40), EPS);
    mp_sim_free(s);
    mp_op_lists_free(&l);
    free(pl.stages);
    free(pl.predicted.peak_memory_bytes);
    free(p.layers);
}

/* Two replicas of test_evaluate_1f1b's plan on devices {0,1} and {2,3}.
 * Ring links: 0->2 4 MB/s (2000 bytes, half of stage 0's 4000 parameter
 * bytes: 0.5 ms; 2->0 is faster), 3->1 2 MB/s (6000 bytes: 3 ms). So
 * AR0 = 2(D-1)*0.5 = 1 ms, AR1 = 6 ms; the lists end at 19 and 16.5, the
 * positions at 20 and 22.5 (docs/cost-model.md, "Data parallelism"). Peaks
 * add the largest layer's parameters: 3000 and 7000. With the cluster's
 * measured fit (1 ms, 1 MB/s), two layers (rings) per stage:
 * AR0 = 2(2*1 + 2) = 8, AR1 = 2(2*1 + 6) = 16. */
static void test_evaluate_data_parallel(void)
{
    mp_device d4[4] = { { "dev0", 20000, 1 }, { "dev1", 60000, 2 }, { "dev0", 20000, 1 }, { "dev1", 60000, 2 } };
    mp_link l4[16];
    for (int i = 0; i < 16; i++) l4[i] = (mp_link){ 1e9, 0 };
    l4[0 * 4 + 1] = l4[2 * 4 + 3] = (mp_link){ 8e6, 0.25e-3 };
    l4[1 * 4 + 0] = l4[3 * 4 + 2] = (mp_link){ 4e6, 0 };
    l4[0 * 4 + 2] = (mp_link){ 4e6, 0 };
    l4[2 * 4 + 0] = (mp_link){ 8e6, 0 };
    l4[3 * 4 + 1] = (mp_link){ 2e6, 0 };
    mp_cluster c = { 4, d4, { 1e9, 0 }, l4, 0, 0 };
    mp_profile p;
    mp_plan pl;
    make_profile(&p);
    const int cuts[] = { 0, 2, 4 };
    make_plan(&pl, MP_SCHED_1F1B, 1, 2, cuts, 3, 2);
    pl.data_parallel = 2;
    pl.global_batch = 12;
    mp_error err;
    mp_error_clear(&err);
    mp_trace tr = { 0 };
    mp_status st = mp_plan_evaluate(&pl, &p, &c, MP_DEFAULT_STATE_FACTOR, &tr, &err);
    if (st != MP_OK) fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(st, MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, 22.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.samples_per_s, 12 / 0.0225, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.bubble_fraction, 1 - 24.0 / 45.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[0], 16120 + 3000, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[1], 48200 + 7000, EPS);
    int nar = 0;
    for (int i = 0; i < tr.n; i++)
        if (tr.ev[i].kind == MP_TEV_ALLREDUCE) {
            nar++;
            CU_ASSERT_DOUBLE_EQUAL(tr.ev[i].end_ms - tr.ev[i].start_ms, tr.ev[i].stage ? 6 : 1, EPS);
        }
    CU_ASSERT_EQUAL(nar, 2);
    mp_trace_free(&tr);
    CU_ASSERT_TRUE(mp_plan_fits(&pl, &c));
    d4[3].memory_bytes = 50000;  /* replica 1's stage 1 no longer fits */
    CU_ASSERT_FALSE(mp_plan_fits(&pl, &c));
    d4[3].memory_bytes = 60000;

    c.allreduce_latency_s = 1e-3;
    c.allreduce_bandwidth = 1e6;
    CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&pl, &p, &c, 4, NULL, &err), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, 16.5 + 16, EPS);
    c.allreduce_latency_s = c.allreduce_bandwidth = 0;

    /* a slower replica: device 3 at speed 1 ends replica 1's lists later,
     * and the all-reduces wait for it */
    d4[3].speed = 1;
    CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&pl, &p, &c, 4, NULL, &err), MP_OK);
    {
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 2, 1, 3, &l, NULL), MP_OK);
        double F0[] = { 1, 2 }, B0[] = { 2, 3 }, F1[] = { 1, 4 }, B1[] = { 2, 6 }, t[] = { 0.5 };
        double AR[] = { 1, 6 }, ready[2];
        mp_sim *s = mp_sim_new();
        mp_sim_input in1 = { .ops = &l, .fwd_ms = F1, .bwd_ms = B1, .act_ms = t, .grad_ms = t };
        mp_sim_result r;
        CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in1, &r, NULL, NULL), MP_OK);
        ready[0] = mp_sim_list_end(s, 0);
        ready[1] = mp_sim_list_end(s, 1);
        CU_ASSERT(ready[0] > 19);
        mp_sim_input in0 = { .ops = &l, .fwd_ms = F0, .bwd_ms = B0, .act_ms = t, .grad_ms = t, .allreduce_ms = AR, .allreduce_ready_ms = ready };
        CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in0, &r, NULL, NULL), MP_OK);
        CU_ASSERT_EQUAL(pl.predicted.iteration_ms, r.iteration_ms);
        CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, fmax(ready[0] + 1, ready[1] + 6), EPS);
        mp_sim_free(s);
        mp_op_lists_free(&l);
    }
    /* D = 1 on the same cluster: no all-reduce, no buffer */
    pl.data_parallel = 1;
    pl.global_batch = 6;
    CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&pl, &p, &c, 4, NULL, &err), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.iteration_ms, 19.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pl.predicted.peak_memory_bytes[1], 48200, EPS);
    free(pl.stages);
    free(pl.predicted.peak_memory_bytes);
    free(p.layers);
}

/* mp_allreduce_ms: 2(D-1) steps of bytes/D over the slowest ring link, or
 * the measured fit; 0 for one replica. */
static void test_allreduce_cost(void)
{
    mp_cluster c;
    CU_ASSERT_EQUAL_FATAL(mp_cluster_uniform(&c, 6, 1e9, 1e6, 1e-3, NULL), MP_OK);
    CU_ASSERT_EQUAL(mp_allreduce_ms(&c, 0, 2, 1, 1e6, 1), 0);
    CU_ASSERT_EQUAL(mp_allreduce_ms(&c, 0, 2, 3, 0, 0), 0);   /* no parameters, no ring */
    /* D = 3 on devices 1, 3, 5: 4 steps of (1 ms + 3000/1e6 s); two vectors: 2 latencies */
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_ms(&c, 1, 2, 3, 9000, 1), 4 * (1 + 3), EPS);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_ms(&c, 1, 2, 3, 9000, 2), 4 * (2 + 3), EPS);
    c.links[5 * 6 + 1].bandwidth = 0.5e6;  /* the ring's closing link 5 -> 1 */
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_ms(&c, 1, 2, 3, 9000, 1), 4 * (1 + 6), EPS);
    c.allreduce_latency_s = 2e-3;
    c.allreduce_bandwidth = 3e6;
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_ms(&c, 1, 2, 3, 9000, 1), 4 * (2 + 1), EPS);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_ms(&c, 1, 2, 3, 9000, 3), 4 * (6 + 1), EPS);
    mp_cluster_free(&c);
}

static void test_evaluate_rejects_bad_plan(void)
{
    mp_profile p;
    mp_cluster c;
    mp_plan pl;
    make_profile(&p);
    make_cluster(&c);
    const int cuts[] = { 0, 2, 5 };  /* past the last layer */
    make_plan(&pl, MP_SCHED_1F1B, 1, 2, cuts, 3, 2);
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_plan_evaluate(&pl, &p, &c, 4, NULL, &err), MP_ERR_INPUT);
    CU_ASSERT_FALSE(pl.has_prediction);
    free(pl.stages);
    free(p.layers);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_evaluate_1f1b),
        MP_TEST(test_evaluate_gpipe_state_factor),
        MP_TEST(test_evaluate_interleaved),
        MP_TEST(test_evaluate_data_parallel),
        MP_TEST(test_allreduce_cost),
        MP_TEST(test_evaluate_rejects_bad_plan),
    };
    return mp_test_main("evaluate", cases, (int)(sizeof cases / sizeof cases[0]));
}
