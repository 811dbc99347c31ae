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

/* mp_schedule_interleaved_ahead equals the count of each chunk's forwards
 * before the first backward in the built lists (a count off by one in
 * either direction fails it), and falls with the chunk (the planner's
 * memory bound reads only the last two chunks' counts). */
static void test_interleaved_ahead(void)
{
    int bad = 0, n = 0;
    for (int K = 2; K <= 9; K++)
        for (int v = 2; v <= 5; v++)
            for (int m = K; m <= 5 * K; m += K) {
                mp_op_lists l;
                CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_INTERLEAVED, K, v, m, &l, NULL), MP_OK);
                for (int p = 0; p < K; p++)
                    for (int c = 0; c < v; c++) {
                        int cnt = 0;
                        for (int i = 0; i < l.len[p] && l.ops[p][i].kind == MP_OP_FWD; i++) cnt += l.ops[p][i].stage == c * K + p;
                        bad += cnt != mp_schedule_interleaved_ahead(p, c, K, v, m);
                        bad += c > 0 && cnt > mp_schedule_interleaved_ahead(p, c - 1, K, v, m);
                        n++;
                    }
                mp_op_lists_free(&l);
            }
    CU_ASSERT(n > 1000);
    CU_ASSERT_EQUAL(bad, 0);
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
    mp_sim_input in = { .ops = &l, .fwd_ms = t, .bwd_ms = t, .act_ms = t, .grad_ms = t };
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

/* ---------------------------------------------------------------- zero bubble */

/* Compares position p's list with "F0:1 Bi0:1 W0:1 ..." (kind stage:microbatch). */
static void expect_zb(const mp_op_lists *l, int p, const char *want)
{
    char buf[4096];
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < l->len[p]; i++) {
        const mp_op *o = &l->ops[p][i];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s%d:%d", i ? " " : "", mp_op_kind_name(o->kind),
                              o->stage, o->microbatch);
    }
    if (strcmp(buf, want) != 0) fprintf(stderr, "\nposition %d:\n  got  %s\n  want %s\n", p, buf, want);
    CU_ASSERT_STRING_EQUAL(buf, want);
}

/* ZB-H1, K=3, m=4 (docs/cost-model.md): position j warms up K-j-1 F, runs j
 * rounds of (F, Bi), then (F, Bi, W-oldest), (Bi, W), the remaining W. */
static void test_zb_h1_k3_m4(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_ZB_H1, 3, 1, 4, &l, NULL), MP_OK);
    CU_ASSERT_EQUAL(l.num_stages, 3);
    expect_zb(&l, 0, "F0:0 F0:1 F0:2 Bi0:0 W0:0 F0:3 Bi0:1 W0:1 Bi0:2 W0:2 Bi0:3 W0:3");
    expect_zb(&l, 1, "F1:0 F1:1 Bi1:0 F1:2 Bi1:1 W1:0 F1:3 Bi1:2 W1:1 Bi1:3 W1:2 W1:3");
    expect_zb(&l, 2, "F2:0 Bi2:0 F2:1 Bi2:1 F2:2 Bi2:2 W2:0 F2:3 Bi2:3 W2:1 W2:2 W2:3");
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, NULL), MP_OK);
    mp_op_lists_free(&l);
}

/* ZB-H2, K=2, m=4: 2(K-j)-1 warm-up forwards, j rounds of (Bi, F), then
 * (Bi, F, W), (Bi, W), the remaining W. */
static void test_zb_h2_k2_m4(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_ZB_H2, 2, 1, 4, &l, NULL), MP_OK);
    expect_zb(&l, 0, "F0:0 F0:1 F0:2 Bi0:0 F0:3 W0:0 Bi0:1 W0:1 Bi0:2 W0:2 Bi0:3 W0:3");
    expect_zb(&l, 1, "F1:0 Bi1:0 F1:1 Bi1:1 F1:2 W1:0 Bi1:2 F1:3 W1:1 Bi1:3 W1:2 W1:3");
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, NULL), MP_OK);
    mp_op_lists_free(&l);
}

/* ZB-V, K=2, m=4 (PyTorch's ScheduleZBVZeroBubble, worked by hand): 4
 * stages in a V, position 0 runs stages 0 and 3, position 1 stages 1 and 2. */
static void test_zb_v_k2_m4(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_ZB_V, 2, 1, 4, &l, NULL), MP_OK);
    CU_ASSERT_EQUAL(l.num_stages, 4);
    CU_ASSERT(l.stage_pos[0] == 0 && l.stage_pos[1] == 1 && l.stage_pos[2] == 1 && l.stage_pos[3] == 0);
    expect_zb(&l, 0, "F0:0 F0:1 F0:2 F3:0 Bi3:0 W3:0 F3:1 Bi3:1 W3:1 F0:3 Bi0:0 W0:0 F3:2 Bi3:2 W3:2 "
                     "Bi0:1 W0:1 F3:3 Bi3:3 W3:3 Bi0:2 W0:2 Bi0:3 W0:3");
    expect_zb(&l, 1, "F1:0 F2:0 F1:1 F2:1 Bi2:0 W2:0 F1:2 Bi1:0 W1:0 F2:2 Bi2:1 W2:1 F1:3 Bi1:1 W1:1 "
                     "F2:3 Bi2:2 W2:2 Bi1:2 Bi2:3 Bi1:3 W1:2 W2:3 W1:3");
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, NULL), MP_OK);
    mp_op_lists_free(&l);
}

/* Every schedule, K 1..6, m 1..14 (interleaved: where it is defined) passes
 * the validity checker: each op once on its position, backwards and W in
 * micro-batch order, no deadlock; and the simulator runs the same lists. */
static void test_zb_lists_valid(void)
{
    static const mp_schedule_kind kinds[] = { MP_SCHED_GPIPE, MP_SCHED_1F1B, MP_SCHED_INTERLEAVED,
                                              MP_SCHED_ZB_H1, MP_SCHED_ZB_H2, MP_SCHED_ZB_V };
    int bad = 0, built = 0;
    for (int k = 0; k < 6; k++)
        for (int K = 1; K <= 6; K++)
            for (int m = 1; m <= 14; m++) {
                mp_op_lists l;
                mp_error err;
                mp_error_clear(&err);
                if (mp_schedule_build(kinds[k], K, 2, m, &l, &err) != MP_OK) {
                    bad += kinds[k] != MP_SCHED_INTERLEAVED;
                    continue;
                }
                built++;
                if (mp_op_lists_check(&l, &err) != MP_OK) {
                    bad++;
                    fprintf(stderr, "\n%s K=%d m=%d: %s", mp_schedule_name(kinds[k]), K, m, err.msg);
                }
                mp_op_lists_free(&l);
            }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(built > 400);
}

/* The checker finds a deadlock, a W before its Bi, a W out of order. */
static void test_check_rejects(void)
{
    mp_op_lists l;
    mp_error err;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_ZB_H1, 2, 1, 3, &l, NULL), MP_OK);
    mp_op *o = l.ops[0];   /* F0:0 F0:1 Bi0:0 W0:0 F0:2 ... */
    mp_op keep = o[1];
    o[1] = o[2]; o[2] = keep;   /* F0:0 Bi0:0 F0:1: fine for the checker (deps hold) */
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, NULL), MP_OK);
    o[2] = o[1]; o[1] = keep;
    keep = o[2]; o[2] = o[3]; o[3] = keep;   /* W0:0 before Bi0:0 */
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "deadlock") != NULL);
    keep = o[2]; o[2] = o[3]; o[3] = keep;
    /* position 1 runs Bi1:0 before its F1:0 */
    mp_op *q = l.ops[1];
    keep = q[0]; q[0] = q[1]; q[1] = keep;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "deadlock") != NULL);
    keep = q[0]; q[0] = q[1]; q[1] = keep;
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, NULL), MP_OK);
    /* W of micro-batch 1 before 0 */
    int a = -1, b = -1;
    for (int i = 0; i < l.len[1]; i++) {
        if (q[i].kind == MP_OP_BWD_W && q[i].microbatch == 0) a = i;
        if (q[i].kind == MP_OP_BWD_W && q[i].microbatch == 1) b = i;
    }
    keep = q[a]; q[a] = q[b]; q[b] = keep;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL(mp_op_lists_check(&l, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "before micro-batch 0") != NULL);
    mp_op_lists_free(&l);
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
        MP_TEST(test_interleaved_ahead),
        MP_TEST(test_invariants),
        MP_TEST(test_bad_arguments),
        MP_TEST(test_zb_h1_k3_m4),
        MP_TEST(test_zb_h2_k2_m4),
        MP_TEST(test_zb_v_k2_m4),
        MP_TEST(test_zb_lists_valid),
        MP_TEST(test_check_rejects),
    };
    return mp_test_main("schedule", cases, (int)(sizeof cases / sizeof cases[0]));
}
