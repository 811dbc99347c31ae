/* test_replay.c — mp_replay_trace: replaying the simulator's own predicted
 * timeline must give back the predicted iteration time exactly (every stage's
 * op durations are constant over micro-batches), for every schedule, with
 * recompute, with slow links and with data parallelism (the all-reduces
 * replayed); a scaled trace scales the result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"
#include "replay.h"
#include "testutil.h"

static void make_profile(mp_profile *p, int L)
{
    memset(p, 0, sizeof *p);
    p->num_layers = L;
    p->input_bytes_per_sample = 1000;
    p->layers = calloc((size_t)L, sizeof *p->layers);
    for (int l = 0; l < L; l++) {
        mp_layer_cost *c = &p->layers[l];
        c->fwd.kind = MP_TIME_AFFINE;
        c->fwd.alpha = 0.1 * (l % 3);
        c->fwd.beta = 0.2 + 0.05 * l;
        c->bwd.kind = MP_TIME_LINEAR;
        c->bwd.beta = 0.5 + 0.1 * (l % 2);
        c->param_bytes = 1e6;
        c->out_bytes_per_sample = 2e5 * (1 + l % 2);
        c->stash_bytes_per_sample = 1e5;
    }
}

static void make_plan(mp_plan *p, mp_schedule_kind kind, int K, int v, int L, int b, int m, int recompute)
{
    memset(p, 0, sizeof *p);
    p->schedule = kind;
    p->chunks_per_device = v;
    p->microbatch_size = b;
    p->num_microbatches = m;
    p->global_batch = b * m;
    p->num_stages = K * v;
    p->stages = calloc((size_t)p->num_stages, sizeof *p->stages);
    for (int s = 0; s < p->num_stages; s++) {
        p->stages[s].first = s * L / p->num_stages;
        p->stages[s].last = (s + 1) * L / p->num_stages - 1;
        p->stages[s].device = s % K;
        p->stages[s].recompute = recompute && s % 2 == 0;
    }
}

static void check_roundtrip_dp(mp_schedule_kind kind, int K, int v, int recompute, double bandwidth, int D)
{
    const int L = 12, b = 2, m = 8;
    mp_profile prof;
    mp_cluster cl;
    mp_plan plan;
    mp_trace tr;
    mp_error err;
    mp_error_clear(&err);
    memset(&tr, 0, sizeof tr);
    make_profile(&prof, L);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_uniform(&cl, K * D, 1e12, bandwidth, 20e-6, &err), MP_OK);
    make_plan(&plan, kind, K, v, L, b, m, recompute);
    plan.data_parallel = D;
    plan.global_batch = D * b * m;
    CU_ASSERT_EQUAL_FATAL(mp_plan_evaluate(&plan, &prof, &cl, 4.0, &tr, &err), MP_OK);
    double replay = 0;
    CU_ASSERT_EQUAL_FATAL(mp_replay_trace(&plan, &tr, &replay, &err), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(replay, plan.predicted.iteration_ms, 1e-9 * plan.predicted.iteration_ms);
    if (D > 1) {   /* the all-reduces are in the trace and in the replay */
        int nar = 0;
        for (int i = 0; i < tr.n; i++) nar += tr.ev[i].kind == MP_TEV_ALLREDUCE;
        CU_ASSERT_EQUAL(nar, plan.num_stages);
    }
    /* every duration twice as long: the max-plus system scales linearly */
    for (int i = 0; i < tr.n; i++) {
        tr.ev[i].start_ms *= 2;
        tr.ev[i].end_ms *= 2;
    }
    CU_ASSERT_EQUAL(mp_replay_trace(&plan, &tr, &replay, &err), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(replay, 2 * plan.predicted.iteration_ms, 1e-9 * plan.predicted.iteration_ms);
    mp_trace_free(&tr);
    mp_plan_free(&plan);
    mp_cluster_free(&cl);
    mp_profile_free(&prof);
}

static void check_roundtrip(mp_schedule_kind kind, int K, int v, int recompute, double bandwidth)
{
    check_roundtrip_dp(kind, K, v, recompute, bandwidth, 1);
}

static void test_gpipe(void) { check_roundtrip(MP_SCHED_GPIPE, 3, 1, 0, 25e9); }
static void test_data_parallel(void)
{
    check_roundtrip_dp(MP_SCHED_1F1B, 2, 1, 0, 1e8, 2);
    check_roundtrip_dp(MP_SCHED_INTERLEAVED, 2, 2, 1, 1e9, 3);
}
static void test_1f1b_recompute(void) { check_roundtrip(MP_SCHED_1F1B, 4, 1, 1, 25e9); }
static void test_1f1b_slow_link(void) { check_roundtrip(MP_SCHED_1F1B, 3, 1, 0, 1e8); }
static void test_interleaved(void) { check_roundtrip(MP_SCHED_INTERLEAVED, 2, 2, 1, 1e9); }

static void test_missing_stage(void)
{
    mp_plan plan;
    mp_trace tr;
    mp_error err;
    mp_error_clear(&err);
    memset(&tr, 0, sizeof tr);
    make_plan(&plan, MP_SCHED_1F1B, 2, 1, 4, 1, 2, 0);
    mp_trace_event e = { MP_TEV_FWD, 0, -1, 0, 0, 0, 1 };
    CU_ASSERT_EQUAL(mp_trace_add(&tr, e), MP_OK);
    double replay = -1;
    CU_ASSERT_EQUAL(mp_replay_trace(&plan, &tr, &replay, &err), MP_ERR_INPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stage 0"));
    CU_ASSERT_EQUAL(replay, -1);
    mp_trace_free(&tr);
    mp_plan_free(&plan);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_gpipe), MP_TEST(test_1f1b_recompute), MP_TEST(test_1f1b_slow_link),
        MP_TEST(test_interleaved), MP_TEST(test_data_parallel), MP_TEST(test_missing_stage),
    };
    return mp_test_main("replay", cases, (int)(sizeof cases / sizeof cases[0]));
}
