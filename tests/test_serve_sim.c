/* test_serve_sim.c — the serving simulator (sim/serve.h) against
 * hand-computed cases, percentiles against sorting, arrival processes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "serve_eval.h"
#include "testutil.h"

#define NEAR(a, b) CU_ASSERT_DOUBLE_EQUAL((a), (b), 1e-9)

/* One or two stages with affine times alpha + beta*b per stage/link. */
static mp_serve_result run(int K, int B, double W, const double *alpha, const double *beta,
                           const double *la, const double *lb, const double *arr, int n,
                           double slo, mp_serve_sim *s)
{
    double st[64], lk[64];
    for (int j = 0; j < K; j++)
        for (int b = 1; b <= B; b++) {
            st[j * B + b - 1] = alpha[j] + beta[j] * b;
            if (j < K - 1) lk[j * B + b - 1] = la[j] + lb[j] * b;
        }
    mp_serve_config cfg = { K, B, W, st, lk, 0, NULL, 0 };
    mp_serve_result r;
    mp_error err = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, arr, n, slo, &r, &err), MP_OK);
    return r;
}

static void test_batch_full(void)
{
    /* B=2, W=10, t(b) = 1 + b. Arrivals 0,1,2,3: batch {0,1} ready at 1
     * (full), ends 4; batch {2,3} ready at 3, waits for the stage until 4,
     * ends 7. Latencies 4,3,5,4. */
    mp_serve_sim *s = mp_serve_sim_new();
    double a[] = { 0, 1, 2, 3 }, al[] = { 1 }, be[] = { 1 };
    mp_serve_result r = run(1, 2, 10, al, be, NULL, NULL, a, 4, 4.0, s);
    const double *lat = mp_serve_sim_latencies(s);
    const int *bo = mp_serve_sim_batch_of(s);
    NEAR(lat[0], 4); NEAR(lat[1], 3); NEAR(lat[2], 5); NEAR(lat[3], 4);
    CU_ASSERT_EQUAL(bo[0], 0); CU_ASSERT_EQUAL(bo[1], 0); CU_ASSERT_EQUAL(bo[2], 1); CU_ASSERT_EQUAL(bo[3], 1);
    CU_ASSERT_EQUAL(r.num_batches, 2);
    NEAR(r.slo_attainment, 0.75);
    NEAR(r.max_ms, 5);
    NEAR(r.p50_ms, 4);  /* sorted 3,4,4,5: rank ceil(2) = 2 -> 4 */
    NEAR(r.p99_ms, 5);
    NEAR(r.mean_ms, 4);
    NEAR(r.throughput_rps, 1000.0 * 4 / 7);
    NEAR(mp_serve_sim_busy(s, 0), 6);
    NEAR(r.bubble_fraction, 1 - 6.0 / 7);
    mp_serve_sim_free(s);
}

static void test_batch_timeout(void)
{
    /* B=4, W=2, t(b) = 1 + b. Arrivals 0,1,5: batch {0,1} times out at 2,
     * ends 5; batch {5} times out at 7, ends 9. Latencies 5,4,4. */
    mp_serve_sim *s = mp_serve_sim_new();
    double a[] = { 0, 1, 5 }, al[] = { 1 }, be[] = { 1 };
    mp_serve_result r = run(1, 4, 2, al, be, NULL, NULL, a, 3, 4.5, s);
    const double *lat = mp_serve_sim_latencies(s);
    NEAR(lat[0], 5); NEAR(lat[1], 4); NEAR(lat[2], 4);
    CU_ASSERT_EQUAL(r.num_batches, 2);
    NEAR(r.mean_batch, 1.5);
    NEAR(r.slo_attainment, 2.0 / 3);
    mp_serve_sim_free(s);
}

static void test_queue_when_busy(void)
{
    /* B=4, W=0, t = 10 flat. Arrivals 0,1,2,3,20: {0} runs 0..10; 1,2,3
     * queue and leave together when the stage frees at 10, end 20; {20}
     * runs 20..30. */
    mp_serve_sim *s = mp_serve_sim_new();
    double a[] = { 0, 1, 2, 3, 20 }, al[] = { 10 }, be[] = { 0 };
    mp_serve_result r = run(1, 4, 0, al, be, NULL, NULL, a, 5, 100, s);
    const double *lat = mp_serve_sim_latencies(s);
    const int *bo = mp_serve_sim_batch_of(s);
    double want[] = { 10, 19, 18, 17, 10 };
    int wb[] = { 0, 1, 1, 1, 2 };
    for (int i = 0; i < 5; i++) {
        NEAR(lat[i], want[i]);
        CU_ASSERT_EQUAL(bo[i], wb[i]);
    }
    CU_ASSERT_EQUAL(r.queued_at_end, 0);
    NEAR(r.slo_attainment, 1.0);
    NEAR(r.capacity_rps, 400);
    mp_serve_sim_free(s);
}

static void test_two_stages_link(void)
{
    /* B=2, W=0; stage0 2b, link 1+b, stage1 3b. Arrivals 0,0,1.
     * Batch {0,0}: s0 0..4, link 4..7, s1 7..13.
     * Batch {1}: s0 4..6, link waits for the first transfer: 7..9,
     * s1 waits for the first batch: 13..16. Latencies 13,13,15. */
    mp_serve_sim *s = mp_serve_sim_new();
    double a[] = { 0, 0, 1 }, al[] = { 0, 0 }, be[] = { 2, 3 }, la[] = { 1 }, lb[] = { 1 };
    mp_serve_result r = run(2, 2, 0, al, be, la, lb, a, 3, 13, s);
    const double *lat = mp_serve_sim_latencies(s);
    NEAR(lat[0], 13); NEAR(lat[1], 13); NEAR(lat[2], 15);
    NEAR(mp_serve_sim_busy(s, 0), 6);
    NEAR(mp_serve_sim_busy(s, 1), 9);
    NEAR(r.throughput_rps, 1000.0 * 3 / 16);
    NEAR(r.capacity_rps, 1000.0 * 2 / 6);
    NEAR(r.slo_attainment, 2.0 / 3);
    NEAR(r.bubble_fraction, 1 - 15.0 / 32);
    mp_serve_sim_free(s);
}

static void test_overload(void)
{
    /* 1 request/ms into a stage serving 1 request per 2 ms (B=1). */
    mp_serve_sim *s = mp_serve_sim_new();
    double a[200], al[] = { 2 }, be[] = { 0 };
    for (int i = 0; i < 200; i++) a[i] = i;
    mp_serve_result r = run(1, 1, 0, al, be, NULL, NULL, a, 200, 10, s);
    CU_ASSERT_TRUE(r.overloaded);
    NEAR(r.offered_rps, 1000);
    NEAR(r.capacity_rps, 500);
    /* request i starts at 2i; those with 2i > 199 are still queued. */
    CU_ASSERT_EQUAL(r.queued_at_end, 100);
    NEAR(r.max_ms, 2 * 199 + 2 - 199);
    /* the same stream at a sustainable pace */
    for (int i = 0; i < 200; i++) a[i] = 3.0 * i;
    r = run(1, 1, 0, al, be, NULL, NULL, a, 200, 10, s);
    CU_ASSERT_FALSE(r.overloaded);
    CU_ASSERT_EQUAL(r.queued_at_end, 0);
    NEAR(r.max_ms, 2);
    mp_serve_sim_free(s);
}

static int cmpd(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void test_percentiles(void)
{
    double v[100];
    for (int i = 0; i < 100; i++) v[i] = (double)((i * 37) % 100 + 1);  /* 1..100 shuffled */
    CU_ASSERT_EQUAL(mp_serve_percentile(v, 100, 50), 50);
    CU_ASSERT_EQUAL(mp_serve_percentile(v, 100, 90), 90);
    CU_ASSERT_EQUAL(mp_serve_percentile(v, 100, 99), 99);
    CU_ASSERT_EQUAL(mp_serve_percentile(v, 100, 100), 100);
    double w[10] = { 5, 3, 9, 1, 7, 2, 8, 10, 4, 6 };
    CU_ASSERT_EQUAL(mp_serve_percentile(w, 10, 99), 10);  /* ceil(9.9) = 10th */
    CU_ASSERT_EQUAL(mp_serve_percentile(w, 10, 50), 5);
    CU_ASSERT_EQUAL(mp_serve_percentile(w, 10, 91), 10);
    CU_ASSERT_EQUAL(mp_serve_percentile(w, 10, 90), 9);

    /* the simulator's percentiles against sorting its latencies, on random
     * streams with many ties */
    mp_serve_sim *s = mp_serve_sim_new();
    srand(7);
    for (int trial = 0; trial < 50; trial++) {
        int n = 1 + rand() % 500;
        double *a = malloc(n * sizeof *a), *sorted = malloc(n * sizeof *a);
        double t = 0;
        for (int i = 0; i < n; i++) { t += (rand() % 4) * 0.5; a[i] = t; }
        double al[] = { 1 + rand() % 3, 0.5 }, be[] = { 0.5, 1 }, la[] = { 0.25 }, lb[] = { 0.25 };
        int B = 1 + rand() % 8;
        mp_serve_result r = run(2, B, rand() % 3, al, be, la, lb, a, n, 5, s);
        memcpy(sorted, mp_serve_sim_latencies(s), n * sizeof *a);
        qsort(sorted, n, sizeof *sorted, cmpd);
        CU_ASSERT_EQUAL(r.p50_ms, sorted[(50 * n + 99) / 100 - 1]);
        CU_ASSERT_EQUAL(r.p90_ms, sorted[(90 * n + 99) / 100 - 1]);
        CU_ASSERT_EQUAL(r.p99_ms, sorted[(99 * n + 99) / 100 - 1]);
        CU_ASSERT_EQUAL(r.max_ms, sorted[n - 1]);
        int within = 0;
        for (int i = 0; i < n; i++) within += sorted[i] <= 5 + 1e-9;
        NEAR(r.slo_attainment, (double)within / n);
        /* p99 <= SLO exactly when attainment >= 99% */
        CU_ASSERT_EQUAL(r.p99_ms <= 5 + 1e-9, r.slo_attainment >= 0.99);
        free(a);
        free(sorted);
    }
    mp_serve_sim_free(s);
}

static void test_poisson(void)
{
    int n = 100000;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    mp_serve_arrivals p;
    mp_serve_arrivals_poisson(&p, n, 42);
    mp_serve_arrivals_at_rate(&p, 500, a);
    mp_serve_arrivals_at_rate(&p, 500, b);
    CU_ASSERT_EQUAL(memcmp(a, b, n * sizeof *a), 0);
    int sorted = 1;
    for (int i = 1; i < n; i++) sorted &= a[i] >= a[i - 1];
    CU_ASSERT_TRUE(sorted);
    /* mean gap 2 ms; the sample mean's relative sd is 1/sqrt(n) = 0.3% */
    double rate = 1000.0 * n / a[n - 1];
    CU_ASSERT_TRUE(fabs(rate - 500) < 500 * 0.02);
    /* coefficient of variation of the gaps is 1 for an exponential */
    double m = a[n - 1] / n, var = 0;
    for (int i = 0; i < n; i++) {
        double g = a[i] - (i ? a[i - 1] : 0) - m;
        var += g * g;
    }
    CU_ASSERT_TRUE(fabs(sqrt(var / n) / m - 1) < 0.03);
    mp_serve_arrivals q;
    mp_serve_arrivals_poisson(&q, n, 43);
    mp_serve_arrivals_at_rate(&q, 500, b);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, n * sizeof *a), 0);
    free(a);
    free(b);
}

static void test_trace_file(void)
{
    mp_error err = { 0 };
    mp_serve_arrivals t;
    const char *p = mp_test_write_file("ok.txt", "# seconds\n0\n0.001\n\n0.001\n0.003\n");
    CU_ASSERT_EQUAL_FATAL(mp_serve_arrivals_load(&t, p, &err), MP_OK);
    CU_ASSERT_EQUAL(t.n, 4);
    NEAR(t.trace_ms[3], 3);
    NEAR(t.trace_rps, 1000.0);
    double out[4];
    mp_serve_arrivals_at_rate(&t, 0, out);
    NEAR(out[1], 1);
    mp_serve_arrivals_at_rate(&t, 2000, out);  /* twice as fast */
    NEAR(out[3], 1.5);
    mp_serve_arrivals_free(&t);

    const char *bad[] = { "0\n-1\n", "0\n2\n1\n", "0\nabc\n", "1e999\n", "", "0.5x\n" };
    for (int i = 0; i < 6; i++) {
        mp_error e = { 0 };
        char name[32];
        snprintf(name, sizeof name, "bad%d.txt", i);
        p = mp_test_write_file(name, bad[i]);
        CU_ASSERT_EQUAL(mp_serve_arrivals_load(&t, p, &e), MP_ERR_INPUT);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, name));
    }
    mp_error e = { 0 };
    CU_ASSERT_EQUAL(mp_serve_arrivals_load(&t, "/nonexistent/trace", &e), MP_ERR_IO);
}

static void test_bad_input(void)
{
    mp_serve_sim *s = mp_serve_sim_new();
    double st[2] = { 1, 1 }, a[] = { 1, 0 };
    mp_serve_config cfg = { 1, 2, 0, st, NULL, 0, NULL, 0 };
    mp_serve_result r;
    mp_error err = { 0 };
    CU_ASSERT_EQUAL(mp_serve_sim_run(s, &cfg, a, 2, 1, &r, &err), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_serve_sim_run(s, &cfg, a, 0, 1, &r, NULL), MP_ERR_INPUT);
    cfg.max_wait_ms = -1;
    CU_ASSERT_EQUAL(mp_serve_sim_run(s, &cfg, a, 1, 1, &r, NULL), MP_ERR_INPUT);
    mp_serve_sim_free(s);
}

static void test_tables_memory(void)
{
    /* 3 layers: fwd 1*b, 2+1*b (affine), 3*b; out bytes 10, 20, 30; input 5;
     * params 100 each. Two stages [0..1] on dev0 (speed 2), [2] on dev1. */
    mp_layer_cost L[3];
    memset(L, 0, sizeof L);
    L[0].fwd = (mp_time_fn){ MP_TIME_LINEAR, 0, 1, 0, NULL, NULL };
    L[1].fwd = (mp_time_fn){ MP_TIME_AFFINE, 2, 1, 0, NULL, NULL };
    L[2].fwd = (mp_time_fn){ MP_TIME_LINEAR, 0, 3, 0, NULL, NULL };
    for (int i = 0; i < 3; i++) {
        L[i].param_bytes = 100;
        L[i].out_bytes_per_sample = 10.0 * (i + 1);
    }
    mp_profile prof = { .model = "m", .device = "d", .input_bytes_per_sample = 5, .num_layers = 3, .layers = L };
    mp_device dev[2] = { { "a", 1e9, 2 }, { "b", 1e9, 1 } };
    mp_link links[4] = { { 1e3, 0.001 }, { 1e3, 0.001 }, { 1e3, 0.001 }, { 1e3, 0.001 } };
    mp_cluster cl = { 2, dev, { 1e3, 0.001 }, links, 0, 0 };
    int first[] = { 0, 2 }, d[] = { 0, 1 };
    double arr[1] = { 0 };
    mp_serve_result r;
    mp_serve_eval ev;
    CU_ASSERT_EQUAL_FATAL(mp_serve_eval_init(&ev, &prof, &cl, 3, NULL, NULL), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_serve_eval_split(&ev, 2, first, d, 3, 0, arr, 1, 1e9, &r, NULL, NULL, NULL), MP_OK);
    const double *st = ev.stage_ms, *lk = ev.link_ms;
    for (int b = 1; b <= 3; b++) {
        NEAR(st[b - 1], (b + 2 + b) / 2.0);
        NEAR(st[3 + b - 1], 3.0 * b);
        NEAR(lk[b - 1], 1000 * (0.001 + b * 20 / 1e3));
    }
    /* stage [0..1]: params 200, max(in+out) = max(5+10, 10+20) = 30 */
    NEAR(mp_serve_stage_memory(&prof, 0, 1, 4), 200 + 2 * 4 * 30);
    NEAR(mp_serve_stage_memory(&prof, 2, 2, 1), 100 + 2 * 1 * 50);
    mp_serve_eval_free(&ev);
}

/* The batcher wake-up term: B = 2, W = 1, t(b) = 2b, dispatch 0.5.
 * Arrivals 0, 0.2, 3: batch {0,1} full at 0.2 with stage 0 idle -> leaves at
 * 0.7, ends 4.7 (latencies 4.7, 4.5); request 2 is ready at 4 while stage 0
 * is busy -> leaves when it is free at 4.7 (no wake-up), ends 6.7 (3.7).
 * With the third at 5 instead: ready at 6, stage idle -> 6.5, ends 8.5 (3.5).
 * dispatch 0: 4.2, 4.0. */
static void test_dispatch_term(void)
{
    mp_serve_sim *s = mp_serve_sim_new();
    double st[2] = { 2, 4 }, a[3] = { 0, 0.2, 3 };
    mp_serve_config cfg = { 1, 2, 1.0, st, NULL, 0.5, NULL, 0 };
    mp_serve_result r;
    mp_error err = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, 3, 100, &r, &err), MP_OK);
    const double *lat = mp_serve_sim_latencies(s);
    NEAR(lat[0], 4.7);
    NEAR(lat[1], 4.5);
    NEAR(lat[2], 3.7);
    CU_ASSERT_EQUAL(r.num_batches, 2);
    a[2] = 5;
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, 3, 100, &r, &err), MP_OK);
    NEAR(lat[2], 3.5);
    NEAR(r.throughput_rps, 1e3 * 3 / 8.5);
    cfg.dispatch_ms = 0;
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, 3, 100, &r, &err), MP_OK);
    NEAR(lat[0], 4.2);
    NEAR(lat[1], 4.0);
    cfg.dispatch_ms = -1;
    CU_ASSERT_EQUAL(mp_serve_sim_run(s, &cfg, a, 3, 100, &r, &err), MP_ERR_INPUT);
    mp_serve_sim_free(s);
}

/* The forward-time spread: all-ones factors change nothing (bitwise); factors
 * {0.5, 1.5} with requests far apart and B = 1 give latencies of exactly
 * 0.5 or 1.5 forward times, about half each, the same draws in every run;
 * two stages draw independently; bad spreads are refused. */
static void test_spread(void)
{
    enum { N = 2000 };
    mp_serve_sim *s = mp_serve_sim_new();
    double *a = malloc(N * sizeof *a), st[2] = { 2, 2 }, lk[1] = { 0 }, lat0[N];
    for (int i = 0; i < N; i++) a[i] = 10.0 * i;
    mp_serve_config cfg = { 1, 1, 0, st, NULL, 0, NULL, 0 };
    mp_serve_result r;
    mp_error err = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, N, 100, &r, &err), MP_OK);
    memcpy(lat0, mp_serve_sim_latencies(s), sizeof lat0);
    double ones[3] = { 1, 1, 1 }, two[2] = { 0.5, 1.5 };
    cfg.spread = ones;
    cfg.n_spread = 3;
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, N, 100, &r, &err), MP_OK);
    CU_ASSERT(memcmp(lat0, mp_serve_sim_latencies(s), sizeof lat0) == 0);
    cfg.spread = two;
    cfg.n_spread = 2;
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, N, 100, &r, &err), MP_OK);
    const double *lat = mp_serve_sim_latencies(s);
    int lo = 0, hi = 0;
    for (int i = 0; i < N; i++) {
        lo += lat[i] == 1;
        hi += lat[i] == 3;
    }
    CU_ASSERT_EQUAL(lo + hi, N);
    CU_ASSERT(lo > 0.45 * N && hi > 0.45 * N);
    double p50 = r.p50_ms;
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &cfg, a, N, 100, &r, &err), MP_OK);   /* the same draws again */
    CU_ASSERT_EQUAL(r.p50_ms, p50);
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(mp_serve_sim_latencies(s)[i], lat[i]);
    /* two stages: latency 0.5+0.5, 0.5+1.5 or 1.5+1.5 forwards: 2, 4 or 6 ms, all three occur */
    mp_serve_config two_st = { 2, 1, 0, (double[]){ 2, 2 }, lk, 0, two, 2 };
    CU_ASSERT_EQUAL_FATAL(mp_serve_sim_run(s, &two_st, a, N, 100, &r, &err), MP_OK);
    int seen[3] = { 0 };
    for (int i = 0; i < N; i++) {
        double l = mp_serve_sim_latencies(s)[i];
        CU_ASSERT(l == 2 || l == 4 || l == 6);
        seen[l == 2 ? 0 : l == 4 ? 1 : 2]++;
    }
    CU_ASSERT(seen[0] > 0.2 * N && seen[1] > 0.4 * N && seen[2] > 0.2 * N);
    double bad1[1] = { 1 }, bad2[2] = { 0, 1 }, bad3[2] = { 2, 1 };
    const double *bads[] = { bad1, bad2, bad3 };
    int nbad[] = { 1, 2, 2 };
    for (int k = 0; k < 3; k++) {
        cfg.spread = bads[k];
        cfg.n_spread = nbad[k];
        mp_error_clear(&err);
        CU_ASSERT_EQUAL(mp_serve_sim_run(s, &cfg, a, N, 100, &r, &err), MP_ERR_INPUT);
        CU_ASSERT(strstr(err.msg, "spread") != NULL);
    }
    free(a);
    mp_serve_sim_free(s);
}

/* forward = scale * profile + overhead on every entry; (1, 0) is the identity. */
static void test_tables_adjust(void)
{
    double st[4] = { 1, 2, 3, 4 };
    mp_serve_tables_adjust(2, 2, 1.5, 0.1, st);
    NEAR(st[0], 1.6);
    NEAR(st[1], 3.1);
    NEAR(st[2], 4.6);
    NEAR(st[3], 6.1);
    mp_serve_tables_adjust(2, 2, 1, 0, st);
    NEAR(st[3], 6.1);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_batch_full),     MP_TEST(test_batch_timeout), MP_TEST(test_queue_when_busy),
        MP_TEST(test_two_stages_link), MP_TEST(test_overload),     MP_TEST(test_percentiles),
        MP_TEST(test_poisson),        MP_TEST(test_trace_file),    MP_TEST(test_bad_input),
        MP_TEST(test_tables_memory),  MP_TEST(test_dispatch_term), MP_TEST(test_tables_adjust), MP_TEST(test_spread),
    };
    return mp_test_main("serve_sim", cases, (int)(sizeof cases / sizeof *cases));
}
