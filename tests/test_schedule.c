/* test_schedule.c — the schedule generator against hand-written op lists and
 * structural invariants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "sim.h"
#include "testutil.h"

/* Compares position p's list with "F0:1 B0:1 ..." (kind stage:microbatch). */
static void expect_list(const mp_op_lists *l, int p, const char *want)
{
    char buf[2048];
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < l->len[p]; i++) {
        const mp_op *o = &l->ops[p][i];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%c%d:%d", i ? " " : "",
                              o->kind == MP_OP_FWD ? 'F' : 'B', o->stage, o->microbatch);
    }
    if (strcmp(buf, want) != 0)
        fprintf(stderr, "\nposition %d:\n  got  %s\n  want %s\n", p, buf, want);
    CU_ASSERT_STRING_EQUAL(buf, want);
}

static void test_gpipe_k2_m3(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_GPIPE, 2, 1, 3, &l, NULL), MP_OK);
    CU_ASSERT_EQUAL(l.num_stages, 2);
    expect_list(&l, 0, "F0:0 F0:1 F0:2 B0:0 B0:1 B0:2");
    expect_list(&l, 1, "F1:0 F1:1 F1:2 B1:0 B1:1 B1:2");
    mp_op_lists_free(&l);
}

static void test_1f1b_k3_m4(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 3, 1, 4, &l, NULL), MP_OK);
    expect_list(&l, 0, "F0:0 F0:1 F0:2 B0:0 F0:3 B0:1 B0:2 B0:3");
    expect_list(&l, 1, "F1:0 F1:1 B1:0 F1:2 B1:1 F1:3 B1:2 B1:3");
    expect_list(&l, 2, "F2:0 B2:0 F2:1 B2:1 F2:2 B2:2 F2:3 B2:3");
    mp_op_lists_free(&l);
}

static void test_1f1b_fewer_microbatches(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 4, 1, 2, &l, NULL), MP_OK);
    expect_list(&l, 0, "F0:0 F0:1 B0:0 B0:1");
    expect_list(&l, 1, "F1:0 F1:1 B1:0 B1:1");
    expect_list(&l, 2, "F2:0 F2:1 B2:0 B2:1");
    expect_list(&l, 3, "F3:0 B3:0 F3:1 B3:1");
    mp_op_lists_free(&l);
}

/* Megatron-LM forward_backward_pipelining_with_interleaving, p=2 ranks, 2
 * model chunks, 4 micro-batches: rank 0 warms up (2-0-1)*2+(2-1)*2 = 4
 * forwards, rank 1 warms up 2; chunk of the k-th forward (k/2)%2, of the
 * k-th backward 1-(k/2)%2; micro-batch (k/4)*2 + k%2. Written out by hand. */
static void test_interleaved_k2_v2_m4(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 2, 2, 4, &l, NULL), MP_OK);
    CU_ASSERT_EQUAL(l.num_stages, 4);
    expect_list(&l, 0,
                "F0:0 F0:1 F2:0 F2:1 "                       /* warm-up */
                "F0:2 B2:0 F0:3 B2:1 F2:2 B0:0 F2:3 B0:1 "   /* steady */
                "B2:2 B2:3 B0:2 B0:3");                      /* cool-down */
    expect_list(&l, 1,
                "F1:0 F1:1 "
                "F3:0 B3:0 F3:1 B3:1 F1:2 B1:0 F1:3 B1:1 F3:2 B3:2 F3:3 B3:3 "
                "B1:2 B1:3");
    mp_op_lists_free(&l);
}

/* Every (stage, micro-batch, kind) exactly once, on the right position,
 * F before B; and the lists run without deadlock in the simulator. */
static void check_invariants(mp_schedule_kind kind, int K, int v, int m)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, v, m, &l, NULL), MP_OK);
    int S = l.num_stages;
    CU_ASSERT_EQUAL(S, kind == MP_SCHED_INTERLEAVED ? K * v : K);
    int *pos = calloc((size_t)2 * S * m, sizeof *pos);
    for (int i = 0; i < 2 * S * m; i++) pos[i] = -1;
    for (int p = 0; p < K; p++) {
        CU_ASSERT_EQUAL(l.len[p], 2 * m * (S / K));
        for (int i = 0; i < l.len[p]; i++) {
            const mp_op *o = &l.ops[p][i];
            CU_ASSERT_EQUAL(o->stage % K, p);
            CU_ASSERT(o->microbatch >= 0 && o->microbatch < m);
            int key = 2 * (o->stage * m + o->microbatch) + o->kind;
            CU_ASSERT_EQUAL(pos[key], -1);
            pos[key] = i;
        }
    }
    for (int s = 0; s < S; s++)
        for (int i = 0; i < m; i++) {
            int f = pos[2 * (s * m + i)], b = pos[2 * (s * m + i) + 1];
            CU_ASSERT(f >= 0 && b >= 0 && f < b);
        }
    free(pos);
    double *t = malloc((size_t)S * sizeof *t);
    for (int s = 0; s < S; s++) t[s] = 1.0 + s % 3;
    mp_sim *sim = mp_sim_new();
    mp_sim_input in = { &l, t, t, NULL, t, t, NULL, NULL };
    mp_sim_result r;
    mp_error err;
    mp_error_clear(&err);
    mp_status st = mp_sim_run(sim, &in, &r, NULL, &err);
    if (st != MP_OK) fprintf(stderr, "\nK=%d v=%d m=%d: %s\n", K, v, m, err.msg);
    CU_ASSERT_EQUAL(st, MP_OK);
    mp_sim_free(sim);
    free(t);
    mp_op_lists_free(&l);
}

static void test_invariants(void)
{
    for (int K = 1; K <= 6; K++)
        for (int m = 1; m <= 9; m++) {
            check_invariants(MP_SCHED_GPIPE, K, 1, m);
            check_invariants(MP_SCHED_1F1B, K, 1, m);
        }
    for (int K = 2; K <= 5; K++)
        for (int v = 2; v <= 4; v++)
            for (int m = K; m <= 4 * K; m += K) check_invariants(MP_SCHED_INTERLEAVED, K, v, m);
}

static void test_bad_arguments(void)
{
    mp_op_lists l;
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 4, 2, 6, &l, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "multiple") != NULL);
    CU_ASSERT_EQUAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 4, 1, 8, &l, NULL), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 1, 2, 8, &l, NULL), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_schedule_build(MP_SCHED_1F1B, 0, 1, 8, &l, NULL), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_schedule_build(MP_SCHED_GPIPE, 2, 1, 0, &l, NULL), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(mp_schedule_build((mp_schedule_kind)7, 2, 1, 2, &l, NULL), MP_ERR_INPUT);
    /* chunks are ignored outside interleaved */
    CU_ASSERT_EQUAL(mp_schedule_build(MP_SCHED_1F1B, 2, 5, 3, &l, NULL), MP_OK);
    CU_ASSERT_EQUAL(l.num_stages, 2);
    mp_op_lists_free(&l);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_gpipe_k2_m3),
        MP_TEST(test_1f1b_k3_m4),
        MP_TEST(test_1f1b_fewer_microbatches),
        MP_TEST(test_interleaved_k2_v2_m4),
        MP_TEST(test_invariants),
        MP_TEST(test_bad_arguments),
    };
    return mp_test_main("schedule", cases, (int)(sizeof cases / sizeof cases[0]));
}
