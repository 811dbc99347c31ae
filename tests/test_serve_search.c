/* test_serve_search.c — the serving plan search (planner/serve_search.h)
 * against brute force on small random instances, the max-sustainable-rate
 * path, and no-fit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_search.h"
#include "testutil.h"

typedef struct {
    mp_layer_cost layers[8];
    mp_profile prof;
    mp_device dev[4];
    mp_link links[16];
    mp_cluster cl;
} instance;

static double urand(double lo, double hi) { return lo + (hi - lo) * rand() / (double)RAND_MAX; }

static void make_instance(instance *in, int L, int D, double mem)
{
    memset(in, 0, sizeof *in);
    for (int l = 0; l < L; l++) {
        double alpha = urand(0, 0.5);   /* one draw per statement: the same order for every compiler */
        in->layers[l].fwd = (mp_time_fn){ MP_TIME_AFFINE, alpha, urand(0.05, 0.5), 0, NULL, NULL };
        in->layers[l].param_bytes = urand(1e3, 1e4);
        in->layers[l].out_bytes_per_sample = urand(10, 1000);
    }
    in->prof = (mp_profile){ .model = "rand", .device = "cpu", .input_bytes_per_sample = 100, .num_layers = L,
                             .layers = in->layers };
    for (int d = 0; d < D; d++) {
        double m = mem * urand(0.5, 1.5);
        in->dev[d] = (mp_device){ "d", m, urand(0.5, 2) };
    }
    for (int i = 0; i < D * D; i++) {
        double bw = urand(1e5, 1e7);
        in->links[i] = (mp_link){ bw, urand(0, 1e-4) };
    }
    in->cl = (mp_cluster){ D, in->dev, in->links[0], in->links, 0, 0 };
}

/* The objective order the issue fixes: attainment, devices, p99. */
static int obj_better(const mp_serve_candidate *a, const mp_serve_candidate *b)
{
    if (a->metrics.slo_attainment != b->metrics.slo_attainment)
        return a->metrics.slo_attainment > b->metrics.slo_attainment;
    if (a->num_stages != b->num_stages) return a->num_stages < b->num_stages;
    return a->metrics.p99_ms < b->metrics.p99_ms;
}

/* Brute force: every stage count, every split (as cut bitmasks), every
 * candidate batch and wait; only plans that fit. Returns 0 if none fits. */
static int brute_force(instance *in, const double *arr, int n, double slo, const int *bs, int nb,
                       const double *ws, int nw, mp_serve_candidate *best)
{
    int L = in->prof.num_layers, D = in->cl.num_devices, have = 0;
    mp_serve_eval c;
    int bmax = 0;
    for (int i = 0; i < nb; i++) bmax = bs[i] > bmax ? bs[i] : bmax;
    CU_ASSERT_EQUAL_FATAL(mp_serve_eval_init(&c, &in->prof, &in->cl, bmax, NULL, NULL), MP_OK);
    int first[8];
    for (int mask = 0; mask < (1 << (L - 1)); mask++) {
        int K = 1;
        first[0] = 0;
        for (int l = 1; l < L; l++)
            if (mask & (1 << (l - 1))) first[K++] = l;
        if (K > D) continue;
        for (int i = 0; i < nb; i++)
            for (int w = 0; w < nw; w++) {
                mp_serve_candidate p = { K, first, bs[i], ws[w], NULL, 0, { 0 } };
                CU_ASSERT_EQUAL_FATAL(mp_serve_candidate_eval(&c, &p, arr, n, slo, NULL), MP_OK);
                if (p.fits && (!have || obj_better(&p, best))) {
                    if (have) mp_serve_candidate_free(best);
                    mp_serve_candidate_copy(best, &p);
                    have = 1;
                }
                free(p.memory_bytes);
            }
    }
    mp_serve_eval_free(&c);
    return have;
}

static void test_against_brute_force(void)
{
    srand(12345);
    int agree = 0, nofit = 0, heur_same = 0;
    for (int trial = 0; trial < 120; trial++) {
        int L = 1 + rand() % 6, D = 1 + rand() % 3, n = 200 + rand() % 200;
        instance in;
        make_instance(&in, L, D, trial % 7 == 0 ? 3e3 : 1e5);
        double rate = urand(200, 5000), slo = urand(1, 10);
        mp_serve_arrivals a;
        mp_serve_arrivals_poisson(&a, n, (unsigned long)trial);
        double *arr = malloc(n * sizeof *arr);
        mp_serve_arrivals_at_rate(&a, rate, arr);
        int bs[] = { 1, 2, 4, 8 };
        double ws[] = { 0, slo / 4, slo / 2 };
        mp_serve_search_opts o = { &in.prof, &in.cl, slo, bs, 4, ws, 3, 0, 0, { 1, 0, 0, 0, { 0 } } };
        mp_serve_candidate top[3], bf = { 0 };
        int found = 0;
        mp_error err = { 0 };
        mp_status st = mp_serve_search(&o, arr, n, top, 3, &found, &err);
        int have = brute_force(&in, arr, n, slo, bs, 4, ws, 3, &bf);
        if (!have) {
            CU_ASSERT_EQUAL(st, MP_ERR_NOFIT);
            CU_ASSERT_EQUAL(found, 0);
            nofit++;
        } else {
            CU_ASSERT_EQUAL_FATAL(st, MP_OK);
            CU_ASSERT_TRUE(found >= 1);
            /* same objective value as the brute-force optimum */
            CU_ASSERT_EQUAL(top[0].metrics.slo_attainment, bf.metrics.slo_attainment);
            CU_ASSERT_EQUAL(top[0].num_stages, bf.num_stages);
            CU_ASSERT_DOUBLE_EQUAL(top[0].metrics.p99_ms, bf.metrics.p99_ms, 1e-12);
            agree += top[0].metrics.slo_attainment == bf.metrics.slo_attainment &&
                     top[0].num_stages == bf.num_stages;
            /* the top list is ordered and every entry fits */
            for (int i = 0; i < found; i++) {
                CU_ASSERT_TRUE(top[i].fits);
                if (i) CU_ASSERT_FALSE(mp_serve_candidate_better(&top[i], &top[i - 1]));
            }
            /* heuristic mode can only be as good or worse */
            o.exhaustive_limit = -1;
            mp_serve_candidate h;
            int hf = 0;
            if (mp_serve_search(&o, arr, n, &h, 1, &hf, NULL) == MP_OK) {
                CU_ASSERT_FALSE(obj_better(&h, &bf));
                heur_same += !obj_better(&bf, &h);
                mp_serve_candidate_free(&h);
            }
            mp_serve_candidate_free(&bf);
        }
        for (int i = 0; i < found; i++) mp_serve_candidate_free(&top[i]);
        free(arr);
    }
    printf("\n  brute force: %d agree, %d no-fit, heuristic optimal on %d\n", agree, nofit, heur_same);
    CU_ASSERT_TRUE(nofit < 60);
}

static void test_max_rate(void)
{
    /* 4 layers of 0.2 + 0.3b ms on 2 devices: at 5000 req/s nothing keeps
     * p99 under 5 ms; the reported rate must meet the SLO when re-evaluated. */
    srand(99);
    instance in;
    make_instance(&in, 4, 2, 1e9);
    for (int l = 0; l < 4; l++) in.layers[l].fwd = (mp_time_fn){ MP_TIME_AFFINE, 0.2, 0.3, 0, NULL, NULL };
    int n = 2000;
    mp_serve_arrivals a;
    mp_serve_arrivals_poisson(&a, n, 5);
    double *arr = malloc(n * sizeof *arr);
    mp_serve_arrivals_at_rate(&a, 5000, arr);
    mp_serve_search_opts o = { &in.prof, &in.cl, 5.0, NULL, 0, NULL, 0, 0, 0, { 1, 0, 0, 0, { 0 } } };
    mp_serve_candidate top;
    int found = 0;
    CU_ASSERT_EQUAL_FATAL(mp_serve_search(&o, arr, n, &top, 1, &found, NULL), MP_OK);
    CU_ASSERT_FALSE(mp_serve_meets_slo(&top.metrics));
    mp_serve_candidate_free(&top);

    double rate = 0;
    mp_serve_candidate best;
    CU_ASSERT_EQUAL_FATAL(mp_serve_max_rate(&o, &a, 5000, &rate, &best, NULL), MP_OK);
    printf("\n  max sustainable rate %.1f req/s (K=%d, B=%d, wait %.3f ms, p99 %.3f ms)\n", rate,
           best.num_stages, best.max_batch, best.max_wait_ms, best.metrics.p99_ms);
    CU_ASSERT_TRUE(rate > 0 && rate < 5000);
    /* re-evaluate independently at that rate */
    mp_serve_eval c;
    CU_ASSERT_EQUAL_FATAL(mp_serve_eval_init(&c, &in.prof, &in.cl, best.max_batch, NULL, NULL), MP_OK);
    mp_serve_arrivals_at_rate(&a, rate, arr);
    CU_ASSERT_EQUAL(mp_serve_candidate_eval(&c, &best, arr, n, 5.0, NULL), MP_OK);
    CU_ASSERT_TRUE(mp_serve_meets_slo(&best.metrics));
    CU_ASSERT_TRUE(best.metrics.p99_ms <= 5.0);
    /* and a clearly higher rate is not sustainable by any plan */
    mp_serve_arrivals_at_rate(&a, rate * 1.5, arr);
    CU_ASSERT_EQUAL(mp_serve_search(&o, arr, n, &top, 1, &found, NULL), MP_OK);
    CU_ASSERT_FALSE(mp_serve_meets_slo(&top.metrics));
    mp_serve_candidate_free(&top);
    mp_serve_eval_free(&c);
    mp_serve_candidate_free(&best);

    /* an SLO below a lone request's latency: no rate works */
    o.slo_ms = 0.1;
    CU_ASSERT_EQUAL(mp_serve_max_rate(&o, &a, 100, &rate, &best, NULL), MP_OK);
    CU_ASSERT_EQUAL(rate, 0);
    CU_ASSERT_EQUAL(best.num_stages, 0);
    free(arr);
}

static void test_nofit(void)
{
    srand(3);
    instance in;
    make_instance(&in, 3, 2, 10);  /* 10 bytes per device: nothing fits */
    double arr[] = { 0, 1, 2 };
    mp_serve_search_opts o = { &in.prof, &in.cl, 5.0, NULL, 0, NULL, 0, 0, 0, { 1, 0, 0, 0, { 0 } } };
    mp_serve_candidate top;
    int found = 5;
    mp_error err = { 0 };
    CU_ASSERT_EQUAL(mp_serve_search(&o, arr, 3, &top, 1, &found, &err), MP_ERR_NOFIT);
    CU_ASSERT_EQUAL(found, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "memory"));
}

static void test_fewest_devices(void)
{
    /* Light load, generous SLO: one device attains 100%, so the search
     * must not use more (the exact prune stops after K = 1). */
    srand(4);
    instance in;
    make_instance(&in, 6, 3, 1e9);
    int n = 500;
    double *arr = malloc(n * sizeof *arr);
    for (int i = 0; i < n; i++) arr[i] = 100.0 * i;
    mp_serve_search_opts o = { &in.prof, &in.cl, 1000.0, NULL, 0, NULL, 0, 0, 0, { 1, 0, 0, 0, { 0 } } };
    mp_serve_candidate top;
    int found = 0;
    CU_ASSERT_EQUAL_FATAL(mp_serve_search(&o, arr, n, &top, 1, &found, NULL), MP_OK);
    CU_ASSERT_EQUAL(top.num_stages, 1);
    CU_ASSERT_EQUAL(top.metrics.slo_attainment, 1.0);
    CU_ASSERT_EQUAL(top.max_batch, 1);  /* ties broken by p99, then smaller batch */
    mp_serve_candidate_free(&top);
    free(arr);
}

static void test_large_heuristic(void)
{
    /* 200 layers, 8 devices: heuristic mode, must return a valid plan fast. */
    static mp_layer_cost L[200];
    mp_device dev[8];
    mp_link links[64];
    for (int l = 0; l < 200; l++) {
        L[l] = (mp_layer_cost){ 0 };
        L[l].fwd = (mp_time_fn){ MP_TIME_AFFINE, 0.01, 0.02 + 0.01 * (l % 7), 0, NULL, NULL };
        L[l].param_bytes = 1e6;
        L[l].out_bytes_per_sample = 1e4;
    }
    for (int d = 0; d < 8; d++) dev[d] = (mp_device){ "d", 1e10, 1 };
    for (int i = 0; i < 64; i++) links[i] = (mp_link){ 1e10, 1e-5 };
    mp_profile prof = { .model = "big", .device = "cpu", .input_bytes_per_sample = 1e4, .num_layers = 200, .layers = L };
    mp_cluster cl = { 8, dev, links[0], links, 0, 0 };
    int n = 2000;
    mp_serve_arrivals a;
    mp_serve_arrivals_poisson(&a, n, 1);
    double *arr = malloc(n * sizeof *arr);
    mp_serve_arrivals_at_rate(&a, 400, arr);
    mp_serve_search_opts o = { &prof, &cl, 50.0, NULL, 0, NULL, 0, 0, 0, { 1, 0, 0, 0, { 0 } } };
    mp_serve_candidate top[3];
    int found = 0;
    CU_ASSERT_EQUAL_FATAL(mp_serve_search(&o, arr, n, top, 3, &found, NULL), MP_OK);
    CU_ASSERT_TRUE(found == 3);
    CU_ASSERT_TRUE(top[0].metrics.slo_attainment > 0.9);
    printf("\n  200 layers x 8 devices: K=%d B=%d attainment %.4f p99 %.3f ms\n", top[0].num_stages,
           top[0].max_batch, top[0].metrics.slo_attainment, top[0].metrics.p99_ms);
    for (int i = 0; i < found; i++) mp_serve_candidate_free(&top[i]);
    free(arr);
}

/* The measured terms: on a one-stage plan with max_batch 1 and arrivals far
 * apart, every latency is dispatch + scale * fwd(1) / speed + overhead. */
static void test_measured_terms(void)
{
    instance in;
    make_instance(&in, 3, 1, 1e12);
    mp_error err;
    mp_error_clear(&err);
    mp_serve_eval c;
    CU_ASSERT_EQUAL_FATAL(mp_serve_eval_init(&c, &in.prof, &in.cl, 1, NULL, &err), MP_OK);
    CU_ASSERT_EQUAL(c.terms.fwd_scale, 1);
    c.terms.fwd_scale = 0.6;
    c.terms.batch_overhead_ms = 0.25;
    c.terms.dispatch_ms = 0.125;
    int first = 0;
    mp_serve_candidate p = { 0 };
    p.num_stages = 1;
    p.first = &first;
    p.max_batch = 1;
    p.max_wait_ms = 0;
    double arr[4] = { 0, 1000, 2000, 3000 }, f = 0;
    for (int l = 0; l < 3; l++) f += mp_time_eval(&in.prof.layers[l].fwd, 1);
    double want = 0.125 + 0.6 * f / in.dev[0].speed + 0.25;
    CU_ASSERT_EQUAL_FATAL(mp_serve_candidate_eval(&c, &p, arr, 4, 1e6, &err), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(p.metrics.p50_ms, want, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(p.metrics.max_ms, want, 1e-9);
    free(p.memory_bytes);
    mp_serve_eval_free(&c);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_against_brute_force), MP_TEST(test_max_rate), MP_TEST(test_nofit),
        MP_TEST(test_fewest_devices),      MP_TEST(test_large_heuristic), MP_TEST(test_measured_terms),
    };
    return mp_test_main("serve_search", cases, (int)(sizeof cases / sizeof *cases));
}
