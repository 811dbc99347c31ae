/* test_memory.c — the memory model: closed form by hand, closed form against
 * the op-list walk (gpipe/1f1b, with and without recompute), interleaved peaks
 * worked by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "schedule.h"
#include "testutil.h"

/* A profile of n layers with the given bytes (times are irrelevant here). */
static void make_profile(mp_profile *p, int n, const double *params, const double *out,
                         const double *stash, double input_bytes)
{
    memset(p, 0, sizeof *p);
    p->num_layers = n;
    p->input_bytes_per_sample = input_bytes;
    p->layers = calloc((size_t)n, sizeof *p->layers);
    for (int i = 0; i < n; i++) {
        p->layers[i].fwd.kind = p->layers[i].bwd.kind = MP_TIME_LINEAR;
        p->layers[i].fwd.beta = 1;
        p->layers[i].bwd.beta = 2;
        p->layers[i].param_bytes = params[i];
        p->layers[i].out_bytes_per_sample = out[i];
        p->layers[i].stash_bytes_per_sample = stash[i];
    }
}

static void make_plan(mp_plan *pl, mp_schedule_kind kind, int v, int S, const int *cuts,
                      int m, int b, int recompute)
{
    memset(pl, 0, sizeof *pl);
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
        pl->stages[s].recompute = (recompute >> s) & 1;
    }
}

static void test_closed_form_by_hand(void)
{
    const double params[] = { 100, 200, 300, 400 }, out[] = { 8, 6, 4, 2 },
                 stash[] = { 20, 30, 40, 50 };
    mp_profile p;
    make_profile(&p, 4, params, out, stash, 16);
    /* stage 0 = layers 0..1 of 2 stages, b = 3, m = 5, state factor 4 */
    /* gpipe: 4*300 + 5*3*50 = 1950; 1f1b: inflight min(2,5)=2: 1200 + 2*3*50 = 1500 */
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 0, 1, 0, 2, MP_SCHED_GPIPE, 5, 3, 0, 4), 1950, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 0, 1, 0, 2, MP_SCHED_1F1B, 5, 3, 0, 4), 1500, 1e-9);
    /* recompute: 1200 + 2*3*16 (input) + 3*50 = 1446 */
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 0, 1, 0, 2, MP_SCHED_1F1B, 5, 3, 1, 4), 1446, 1e-9);
    /* stage 1 = layers 2..3: in_bytes = out[1] = 6; 1f1b inflight min(1,5)=1:
     * 4*700 + 1*3*90 = 3070; recompute 2800 + 1*3*6 + 3*90 = 3088 */
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 2, 3, 1, 2, MP_SCHED_1F1B, 5, 3, 0, 4), 3070, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 2, 3, 1, 2, MP_SCHED_1F1B, 5, 3, 1, 4), 3088, 1e-9);
    /* gpipe recompute: 2800 + 5*3*6 + 3*90 = 3160; fewer micro-batches than stages */
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 2, 3, 1, 2, MP_SCHED_GPIPE, 5, 3, 1, 4), 3160, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_stage_peak(&p, 0, 0, 0, 4, MP_SCHED_1F1B, 2, 1, 0, 1), 100 + 2 * 20, 1e-9);
    CU_ASSERT(isnan(mp_memory_stage_peak(&p, 0, 0, 0, 4, MP_SCHED_INTERLEAVED, 2, 1, 0, 1)));
    free(p.layers);
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffff;
}

/* The op walk over the generated lists equals the closed form. */
static void test_walk_equals_closed_form(void)
{
    unsigned seed = 7;
    for (int it = 0; it < 400; it++) {
        int n = 1 + rnd(&seed) % 10, K = 1 + rnd(&seed) % (n < 5 ? n : 5);
        int m = 1 + rnd(&seed) % 9, b = 1 + rnd(&seed) % 4;
        mp_schedule_kind kind = it % 2 ? MP_SCHED_1F1B : MP_SCHED_GPIPE;
        double params[10], out[10], stash[10];
        for (int i = 0; i < n; i++) {
            params[i] = rnd(&seed) % 1000;
            out[i] = rnd(&seed) % 50;
            stash[i] = rnd(&seed) % 200;
        }
        mp_profile p;
        make_profile(&p, n, params, out, stash, rnd(&seed) % 40);
        int cuts[6];  /* K contiguous non-empty stages */
        cuts[0] = 0;
        cuts[K] = n;
        for (int s = 1; s < K; s++) {
            int lo = cuts[s - 1] + 1, hi = n - (K - s);
            cuts[s] = lo + (int)(rnd(&seed) % (unsigned)(hi - lo + 1));
        }
        int recompute = (int)(rnd(&seed) % 32);
        mp_plan pl;
        make_plan(&pl, kind, 1, K, cuts, m, b, recompute);
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, 1, m, &l, NULL), MP_OK);
        double peaks[5];
        double sf = 1 + rnd(&seed) % 4;
        CU_ASSERT_EQUAL_FATAL(mp_memory_peaks(&p, &pl, &l, sf, peaks, NULL), MP_OK);
        for (int j = 0; j < K; j++) {
            double want = mp_memory_stage_peak(&p, cuts[j], cuts[j + 1] - 1, j, K, kind, m, b,
                                               pl.stages[j].recompute, sf);
            if (peaks[j] != want)
                fprintf(stderr, "\nit %d stage %d: walk %g closed %g\n", it, j, peaks[j], want);
            CU_ASSERT_DOUBLE_EQUAL(peaks[j], want, 1e-9 * (1 + want));
        }
        mp_op_lists_free(&l);
        free(pl.stages);
        free(p.layers);
    }
}

/* Interleaved K=2, v=2, m=4, one layer per virtual stage, b=2, sf=4. The op
 * lists are those of test_schedule.c (Megatron's order). In flight on
 * position 0 (stash a of stage 0, c of stage 2) after each op:
 *   F0:0 a, F0:1 2a, F2:0 2a+c, F2:1 2a+2c, F0:2 3a+2c, B2:0 3a+c, F0:3 4a+c,
 *   B2:1 4a, F2:2 4a+c, B0:0 3a+c, F2:3 3a+2c, ... then only backwards:
 * peak max(3a+2c, 4a+c). Position 1 (d of stage 1, e of stage 3):
 *   d, 2d, 2d+e, 2d, 2d+e, 2d, 3d, 2d, 3d, 2d, 2d+e, ...: peak max(2d+e, 3d). */
static void test_interleaved_by_hand(void)
{
    const double params[] = { 100, 200, 300, 400 }, out[] = { 2, 5, 7, 1 },
                 stash[] = { 10, 1, 1, 10 };
    mp_profile p;
    make_profile(&p, 4, params, out, stash, 3);
    const int cuts[] = { 0, 1, 2, 3, 4 };
    mp_plan pl;
    make_plan(&pl, MP_SCHED_INTERLEAVED, 2, 4, cuts, 4, 2, 0);
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 2, 2, 4, &l, NULL), MP_OK);
    double peaks[2];
    CU_ASSERT_EQUAL_FATAL(mp_memory_peaks(&p, &pl, &l, 4, peaks, NULL), MP_OK);
    double a = 10, c = 1, d = 1, e = 10;
    CU_ASSERT_DOUBLE_EQUAL(peaks[0], 4 * (100 + 300) + 2 * fmax(3 * a + 2 * c, 4 * a + c), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(peaks[0], 1682, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(peaks[1], 4 * (200 + 400) + 2 * fmax(2 * d + e, 3 * d), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(peaks[1], 2424, 1e-9);
    /* two replicas: each position also holds one all-reduce buffer, its
     * chunks' largest layer: 300 bytes (stages 0, 2), 400 (stages 1, 3) */
    pl.data_parallel = 2;
    pl.global_batch *= 2;
    CU_ASSERT_EQUAL_FATAL(mp_memory_peaks(&p, &pl, &l, 4, peaks, NULL), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(peaks[0], 1682 + 300, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(peaks[1], 2424 + 400, 1e-9);
    CU_ASSERT_EQUAL(mp_memory_allreduce_bytes(&p, 0, 1, 1), 0);
    CU_ASSERT_EQUAL(mp_memory_allreduce_bytes(&p, 0, 1, 2), 200);
    p.layers[0].param_bytes = 0;
    CU_ASSERT_EQUAL(mp_memory_allreduce_bytes(&p, 0, 0, 2), 4);   /* one float at least */
    p.layers[0].param_bytes = 100;
    pl.data_parallel = 1;
    free(pl.stages);

    /* Recompute everywhere: a forward keeps b*in_bytes, a backward holds
     * its stage's stash on top while it runs. Position 0: ia = 3 (input
     * bytes, stage 0), ic = out[1] = 5 (stage 2); per sample, after each op
     * (transient in brackets):
     *   F0:0 3, F0:1 6, F2:0 11, F2:1 16, F0:2 19, B2:0 [20] 14, F0:3 17,
     *   B2:1 [18] 12, F2:2 17, B0:0 [27] 14, F2:3 19, B0:1 [29] 16,
     *   B2:2 [17] 11, B2:3 [12] 6, B0:2 [16] 3, B0:3 [13] 0
     * peak 29 = 3ia + 2ic + a. */
    make_plan(&pl, MP_SCHED_INTERLEAVED, 2, 4, cuts, 4, 2, 0xf);
    CU_ASSERT_EQUAL_FATAL(mp_memory_peaks(&p, &pl, &l, 4, peaks, NULL), MP_OK);
    double ia = 3, ic = 5;
    double want0 = 3 * ia + 2 * ic + a;
    CU_ASSERT_DOUBLE_EQUAL(want0, 29, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(peaks[0], 1600 + 2 * want0, 1e-9);
    /* Position 1: id = out[0] = 2 (stage 1), ie = out[2] = 7 (stage 3):
     *   F1:0 2, F1:1 4, F3:0 11, B3:0 [21] 4, F3:1 11, B3:1 [21] 4, F1:2 6,
     *   B1:0 [7] 4, F1:3 6, B1:1 [7] 4, F3:2 11, B3:2 [21] 4, F3:3 11,
     *   B3:3 [21] 4, B1:2 [5] 2, B1:3 [3] 0
     * peak 21 = 2id + ie + e. */
    CU_ASSERT_DOUBLE_EQUAL(peaks[1], 2400 + 2 * 21.0, 1e-9);
    free(pl.stages);
    mp_op_lists_free(&l);
    free(p.layers);
}

static void test_stage_mismatch(void)
{
    const double params[] = { 1, 1 }, out[] = { 1, 1 }, stash[] = { 1, 1 };
    mp_profile p;
    make_profile(&p, 2, params, out, stash, 1);
    const int cuts[] = { 0, 1, 2 };
    mp_plan pl;
    make_plan(&pl, MP_SCHED_1F1B, 1, 2, cuts, 2, 1, 0);
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 3, 1, 2, &l, NULL), MP_OK);
    double peaks[3];
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_memory_peaks(&p, &pl, &l, 4, peaks, &err), MP_ERR_INPUT);
    mp_op_lists_free(&l);
    free(pl.stages);
    free(p.layers);
}

/* Zero-bubble lists: a micro-batch's stash (10 bytes) is live from its F
 * to its W, its W-stash (1 byte) from its BI to its W. ZB-H1 K=3, m=4 by
 * hand: position 0 F0 F1 F2 (30) Bi0 (31) W0 (20) F3 (30) Bi1 (31) ...:
 * 31; position 1 F0 F1 Bi0 F2 (31) Bi1 (32): 32; position 2 F0 Bi0 F1 Bi1
 * F2 Bi2 (33): 33 - K micro-batches on every position, as 1F1B's first. */
static void test_zb_walk_by_hand(void)
{
    mp_op_lists l;
    CU_ASSERT_FATAL(mp_schedule_build(MP_SCHED_ZB_H1, 3, 1, 4, &l, NULL) == MP_OK);
    double held[3] = { 10, 10, 10 }, extra[3] = { 0, 0, 0 }, w[3] = { 1, 1, 1 };
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_walk_split(l.ops[0], l.len[0], 0, held, extra, w), 31, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_walk_split(l.ops[1], l.len[1], 0, held, extra, w), 32, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_walk_split(l.ops[2], l.len[2], 5, held, extra, w), 38, 1e-12);
    /* recompute: the stash (extra) comes with the BI and goes with the W */
    double in[3] = { 2, 2, 2 }, st[3] = { 10, 10, 10 };
    /* position 2: F0 (2) Bi0 (13) F1 (15) Bi1 (26) F2 (28) Bi2 (39) W0 (28) ... */
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_walk_split(l.ops[2], l.len[2], 0, in, st, w), 39, 1e-12);
    mp_op_lists_free(&l);
    /* ZB-H2 keeps about twice as much on position 0: 2K-1 forwards, Bi0, F: 2K in flight */
    CU_ASSERT_FATAL(mp_schedule_build(MP_SCHED_ZB_H2, 3, 1, 8, &l, NULL) == MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(mp_memory_walk_split(l.ops[0], l.len[0], 0, held, extra, NULL), 60, 1e-12);
    mp_op_lists_free(&l);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_closed_form_by_hand),
        MP_TEST(test_walk_equals_closed_form),
        MP_TEST(test_interleaved_by_hand),
        MP_TEST(test_zb_walk_by_hand),
        MP_TEST(test_stage_mismatch),
    };
    return mp_test_main("memory", cases, (int)(sizeof cases / sizeof cases[0]));
}
