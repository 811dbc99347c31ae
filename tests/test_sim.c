/* test_sim.c — the simulator against closed forms, hand-computed timelines,
 * and an independent event-driven reference (a (time, sequence) heap with
 * explicit FCFS link queues) on random instances; deadlock detection; the
 * Chrome trace writer. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.h"
#include "schedule.h"
#include "sim.h"
#include "testutil.h"
#include "trace.h"

#define EPS 1e-9

/* ---------------------------------------------------------------- reference */

typedef struct { double t; long seq; int type, a, b, c, d; } ref_ev;  /* type 0 op end, 1 xfer end */
typedef struct { ref_ev *h; int n; long seq; } ref_heap;

static int ev_less(const ref_ev *x, const ref_ev *y)
{
    return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void heap_push(ref_heap *H, double t, int type, int a, int b, int c, int d)
{
    ref_ev e = { t, H->seq++, type, a, b, c, d };
    int i = H->n++;
    H->h[i] = e;
    while (i > 0 && ev_less(&H->h[i], &H->h[(i - 1) / 2])) {
        ref_ev tmp = H->h[i]; H->h[i] = H->h[(i - 1) / 2]; H->h[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

static ref_ev heap_pop(ref_heap *H)
{
    ref_ev top = H->h[0];
    H->h[0] = H->h[--H->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < H->n && ev_less(&H->h[l], &H->h[s])) s = l;
        if (r < H->n && ev_less(&H->h[r], &H->h[s])) s = r;
        if (s == i) break;
        ref_ev tmp = H->h[i]; H->h[i] = H->h[s]; H->h[s] = tmp;
        i = s;
    }
    return top;
}

typedef struct {
    const mp_sim_input *in;
    int K, S, m;
    int *idx, *busyflag;
    double *busy, *op_end;   /* op_end[4*(s*m+i)+kind] */
    char *fdone, *actok, *gradok, *bdone;
    int *qhead, *qtail, *lbusy;  /* per link src*K+dst */
    int (*q)[3];                 /* per link, a queue of (kind, stage, mb) */
    int qcap;
    ref_heap H;
    double now;
} ref_sim;

static double xfer_dur(const ref_sim *R, int kind, int s)
{
    return kind == 0 ? R->in->act_ms[s] : R->in->grad_ms[s - 1];
}

static void try_link(ref_sim *R, int link)
{
    if (R->lbusy[link] || R->qhead[link] == R->qtail[link]) return;
    int *x = R->q[(size_t)link * R->qcap + R->qhead[link]++];
    R->lbusy[link] = 1;
    heap_push(&R->H, R->now + xfer_dur(R, x[0], x[1]), 1, link, x[0], x[1], x[2]);
}

static void try_pos(ref_sim *R, int p)
{
    const mp_op_lists *L = R->in->ops;
    if (R->busyflag[p] || R->idx[p] >= L->len[p]) return;
    const mp_op *o = &L->ops[p][R->idx[p]];
    int s = o->stage, i = o->microbatch;
    double dur;
    if (o->kind == MP_OP_FWD) {
        if (s > 0 && !R->actok[(s - 1) * R->m + i]) return;
        dur = R->in->fwd_ms[s];
    } else if (o->kind == MP_OP_BWD_W) {
        if (!R->bdone[s * R->m + i]) return;
        dur = R->in->bwd_w_ms[s];
    } else {
        if (!R->fdone[s * R->m + i]) return;
        if (s < R->S - 1 && !R->gradok[s * R->m + i]) return;
        dur = o->kind == MP_OP_BWD_IN ? R->in->bwd_in_ms[s] : R->in->bwd_ms[s];
    }
    R->busyflag[p] = 1;
    R->idx[p]++;
    R->busy[p] += dur;
    heap_push(&R->H, R->now + dur, 0, p, o->kind, s, i);
}

static void enqueue(ref_sim *R, int src, int dst, int kind, int s, int i)
{
    int link = src * R->K + dst;
    int *x = R->q[(size_t)link * R->qcap + R->qtail[link]++];
    x[0] = kind; x[1] = s; x[2] = i;
    try_link(R, link);
}

/* Returns 0 and fills iteration / busy / op_end, or -1 on deadlock. */
static int ref_run(const mp_sim_input *in, double *iter, double *busy, double *op_end)
{
    const mp_op_lists *L = in->ops;
    ref_sim R;
    memset(&R, 0, sizeof R);
    R.in = in; R.K = L->num_positions; R.S = L->num_stages; R.m = L->num_microbatches;
    int K = R.K, sm = R.S * R.m, total = 0;
    R.idx = calloc(K, sizeof(int)); R.busyflag = calloc(K, sizeof(int));
    R.busy = busy; R.op_end = op_end;
    for (int p = 0; p < K; p++) busy[p] = 0;
    R.fdone = calloc(sm, 1); R.actok = calloc(sm, 1); R.gradok = calloc(sm, 1); R.bdone = calloc(sm, 1);
    R.qcap = 2 * sm + 1;
    R.qhead = calloc(K * K, sizeof(int)); R.qtail = calloc(K * K, sizeof(int));
    R.lbusy = calloc(K * K, sizeof(int));
    R.q = calloc((size_t)K * K * R.qcap, sizeof *R.q);
    R.H.h = malloc(sizeof(ref_ev) * (size_t)(8 * sm + 16));
    for (int p = 0; p < K; p++) total += L->len[p];
    for (int p = 0; p < K; p++) try_pos(&R, p);
    int ndone = 0;
    *iter = 0;
    while (R.H.n > 0) {
        ref_ev e = heap_pop(&R.H);
        R.now = e.t;
        if (e.type == 0) {
            int p = e.a, kind = e.b, s = e.c, i = e.d;
            R.busyflag[p] = 0;
            op_end[4 * (s * R.m + i) + kind] = e.t;
            if (e.t > *iter) *iter = e.t;
            ndone++;
            const int *sp = L->stage_pos;   /* a hand-over on the position itself arrives at once */
            if (kind == MP_OP_FWD) {
                R.fdone[s * R.m + i] = 1;
                if (s < R.S - 1 && sp[s + 1] == p) R.actok[s * R.m + i] = 1;
                else if (s < R.S - 1) enqueue(&R, p, sp[s + 1], 0, s, i);
            } else if (kind != MP_OP_BWD_W) {
                R.bdone[s * R.m + i] = 1;
                if (s > 0 && sp[s - 1] == p) R.gradok[(s - 1) * R.m + i] = 1;
                else if (s > 0) enqueue(&R, p, sp[s - 1], 1, s, i);
            }
            try_pos(&R, p);
        } else {
            int link = e.a, kind = e.b, s = e.c, i = e.d, dst = link % K;
            if (kind == 0) R.actok[s * R.m + i] = 1;
            else R.gradok[(s - 1) * R.m + i] = 1;
            R.lbusy[link] = 0;
            try_link(&R, link);
            try_pos(&R, dst);
        }
    }
    free(R.idx); free(R.busyflag); free(R.fdone); free(R.actok); free(R.gradok); free(R.bdone);
    free(R.qhead); free(R.qtail); free(R.lbusy); free(R.q); free(R.H.h);
    return ndone == total ? 0 : -1;
}

/* ---------------------------------------------------------------- helpers */

static mp_status run_sim(const mp_op_lists *l, const double *F, const double *B,
                         const double *act, const double *grad, mp_sim_result *r)
{
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad };
    mp_error err;
    mp_error_clear(&err);
    mp_status st = mp_sim_run(s, &in, r, NULL, &err);
    mp_sim_free(s);
    return st;
}

static double frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return ((*seed >> 8) & 0xffff) / 65536.0;
}

/* ---------------------------------------------------------------- closed forms */

/* Uniform stages, free links: GPipe and 1F1B both take (m+K-1)(F+B); the
 * bubble is (K-1)/(m+K-1). (GPipe: the last stage's last forward ends at
 * (m+K-1)F, then m backwards there and K-1 hops of B back to stage 0.) */
static void test_uniform_closed_form(void)
{
    const double FB[][2] = { { 1, 1 }, { 1, 2 }, { 2.5, 1 }, { 0.75, 3.25 } };
    for (int f = 0; f < 4; f++)
        for (int K = 1; K <= 6; K++)
            for (int m = 1; m <= 10; m++)
                for (int kind = 0; kind < 2; kind++) {
                    double F[6], B[6], z[6] = { 0 };
                    for (int j = 0; j < K; j++) { F[j] = FB[f][0]; B[j] = FB[f][1]; }
                    mp_op_lists l;
                    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, 1, m, &l, NULL), MP_OK);
                    mp_sim_result r;
                    CU_ASSERT_EQUAL_FATAL(run_sim(&l, F, B, z, z, &r), MP_OK);
                    double want = (m + K - 1) * (FB[f][0] + FB[f][1]);
                    if (fabs(r.iteration_ms - want) > EPS)
                        fprintf(stderr, "\n%s K=%d m=%d F=%g B=%g: %g != %g\n",
                                kind ? "1f1b" : "gpipe", K, m, F[0], B[0], r.iteration_ms, want);
                    CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, want, EPS);
                    CU_ASSERT_DOUBLE_EQUAL(r.bubble_fraction, (K - 1.0) / (m + K - 1.0), EPS);
                    CU_ASSERT_EQUAL(r.bottleneck_position, 0);  /* all tie: lowest index */
                    mp_op_lists_free(&l);
                }
}

/* GPipe, K=2, m=3, a slow activation link (3 ms per transfer) on which the
 * sends queue, FCFS: worked by hand in docs/cost-model.md. */
static void test_hand_gpipe_contention(void)
{
    double F[] = { 1, 0.5 }, B[] = { 2, 1 }, act[] = { 3 }, grad[] = { 2 };
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_GPIPE, 2, 1, 3, &l, NULL), MP_OK);
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad };
    mp_sim_result r;
    mp_trace tr = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, &tr, NULL), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, 19.5, EPS);  /* 15.5 without queueing */
    CU_ASSERT_DOUBLE_EQUAL(mp_sim_busy(s, 0), 9.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(mp_sim_busy(s, 1), 4.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.bubble_fraction, 1.0 - 13.5 / 39.0, EPS);
    CU_ASSERT_EQUAL(r.bottleneck_position, 0);
    /* the activation transfers: [1,4], [4,7], [7,10]; grads [11.5,13.5], [13.5,15.5], [15.5,17.5] */
    const double act_se[3][2] = { { 1, 4 }, { 4, 7 }, { 7, 10 } };
    const double grad_se[3][2] = { { 11.5, 13.5 }, { 13.5, 15.5 }, { 15.5, 17.5 } };
    const double b0_se[3][2] = { { 13.5, 15.5 }, { 15.5, 17.5 }, { 17.5, 19.5 } };
    int nact = 0, ngrad = 0, nb0 = 0;
    for (int i = 0; i < tr.n; i++) {
        const mp_trace_event *e = &tr.ev[i];
        const double (*se)[2] = NULL;
        if (e->kind == MP_TEV_SEND_ACT) { se = act_se; nact++; CU_ASSERT_EQUAL(e->dst_position, 1); }
        if (e->kind == MP_TEV_SEND_GRAD) { se = grad_se; ngrad++; CU_ASSERT_EQUAL(e->dst_position, 0); }
        if (e->kind == MP_TEV_BWD && e->position == 0) { se = b0_se; nb0++; }
        if (!se) continue;
        CU_ASSERT_DOUBLE_EQUAL(e->start_ms, se[e->microbatch][0], EPS);
        CU_ASSERT_DOUBLE_EQUAL(e->end_ms, se[e->microbatch][1], EPS);
    }
    CU_ASSERT_EQUAL(nact, 3);
    CU_ASSERT_EQUAL(ngrad, 3);
    CU_ASSERT_EQUAL(nb0, 3);
    CU_ASSERT_EQUAL(tr.n, 12 + 6);
    mp_trace_free(&tr);
    mp_sim_free(s);
    mp_op_lists_free(&l);
}

/* 1F1B, K=2, m=3, heterogeneous stages, 0.5 ms links (docs/cost-model.md). */
static void test_hand_1f1b_latency(void)
{
    double F[] = { 1, 2 }, B[] = { 2, 3 }, act[] = { 0.5 }, grad[] = { 0.5 };
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 2, 1, 3, &l, NULL), MP_OK);
    mp_sim_result r;
    CU_ASSERT_EQUAL_FATAL(run_sim(&l, F, B, act, grad, &r), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, 19.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.bubble_fraction, 1.0 - 24.0 / 38.0, EPS);
    CU_ASSERT_EQUAL(r.bottleneck_position, 1);
    mp_op_lists_free(&l);
}

/* ---------------------------------------------------------------- data parallelism */

/* 1F1B, K=2, m=3 of section 5.3 with all-reduces: the op lists end at 19
 * (position 0) and 16.5 (position 1); stage 0's all-reduce takes 2 ms, stage
 * 1's 6 ms, so the positions end at 21 and 22.5 (docs/cost-model.md,
 * "Data parallelism"). A replica whose position 1 ends its list at 18
 * delays that all-reduce: 18 + 6 = 24. */
static void test_hand_allreduce(void)
{
    double F[] = { 1, 2 }, B[] = { 2, 3 }, act[] = { 0.5 }, grad[] = { 0.5 }, AR[] = { 2, 6 };
    double ready[] = { 0, 18 };
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 2, 1, 3, &l, NULL), MP_OK);
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad, .allreduce_ms = AR };
    mp_sim_result r;
    mp_trace tr = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, &tr, NULL), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, 22.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(mp_sim_list_end(s, 0), 19, EPS);
    CU_ASSERT_DOUBLE_EQUAL(mp_sim_list_end(s, 1), 16.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.bubble_fraction, 1.0 - 24.0 / 45.0, EPS);  /* all-reduce is not busy */
    CU_ASSERT_EQUAL(r.bottleneck_position, 1);
    int nar = 0;
    for (int i = 0; i < tr.n; i++) {
        const mp_trace_event *e = &tr.ev[i];
        if (e->kind != MP_TEV_ALLREDUCE) continue;
        nar++;
        CU_ASSERT_EQUAL(e->stage, e->position);
        CU_ASSERT_DOUBLE_EQUAL(e->start_ms, e->position ? 16.5 : 19, EPS);
        CU_ASSERT_DOUBLE_EQUAL(e->end_ms, e->position ? 22.5 : 21, EPS);
    }
    CU_ASSERT_EQUAL(nar, 2);
    in.allreduce_ready_ms = ready;
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, NULL, NULL), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, 24, EPS);
    double bad[] = { 1, -1 };
    in.allreduce_ms = bad;
    CU_ASSERT_EQUAL(mp_sim_run(s, &in, &r, NULL, NULL), MP_ERR_INPUT);
    mp_trace_free(&tr);
    mp_sim_free(s);
    mp_op_lists_free(&l);
}

/* Uniform stages, free links, every all-reduce A: GPipe and 1F1B take
 * (m+K-1)(F+B) + A (stage 0 ends its list last; the others end theirs at
 * least B earlier... and all-reduce the same A). Interleaved: position p
 * runs its v all-reduces one after the other: its list end + v*A. */
/* The all-reduce cost from measured points (sim/allreduce.h), by hand: steps
 * of 2(D-1), the step time interpolated between points, flat below the
 * first, proportional above the last; per vector, so a stage's time is the
 * sum over its layers; the fit and links without points stay linear. */
static void test_allreduce_points_by_hand(void)
{
    mp_cluster c;
    CU_ASSERT_EQUAL_FATAL(mp_cluster_uniform(&c, 4, 1e9, 1e9, 0, NULL), MP_OK);
    c.allreduce_latency_s = 1e-3;
    c.allreduce_bandwidth = 1e6;
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_vector_ms(&c, 0, 1, 2, 2000), 2 * (1 + 1), 1e-12);   /* 2(lat + 1000 B / 1 MB/s) */
    c.allreduce_points = 3;
    c.allreduce_members = 2;
    double x[] = { 1000, 2000, 4000 }, y[] = { 1, 3, 4 };
    memcpy(c.allreduce_chunk_bytes, x, sizeof x);
    memcpy(c.allreduce_step_ms, y, sizeof y);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_step_ms(&c, 500), 1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_step_ms(&c, 1500), 2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_step_ms(&c, 3000), 3.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_step_ms(&c, 8000), 8, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_vector_ms(&c, 0, 1, 4, 6000), 6 * 2, 1e-12);  /* chunk 1500: 2 ms, 6 steps */
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_vector_ms(&c, 0, 1, 1, 6000), 0, 0);
    mp_profile p;
    memset(&p, 0, sizeof p);
    mp_layer_cost ly[3];
    memset(ly, 0, sizeof ly);
    ly[0].param_bytes = 6000;   /* 12 ms at D = 4 */
    ly[2].param_bytes = 16000;  /* chunk 4000: 4 ms a step, 24 ms */
    p.layers = ly;
    p.num_layers = 3;
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_stage_ms(&c, &p, 0, 2, 0, 1, 4), 12 + 24, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_stage_ms(&c, &p, 1, 1, 0, 1, 4), 0, 0);
    c.allreduce_points = 0;     /* the fit: linear in the sums */
    CU_ASSERT_DOUBLE_EQUAL(mp_allreduce_stage_ms(&c, &p, 0, 2, 0, 1, 4), 6 * (2 * 1 + 22000 / 4.0 / 1e3), 1e-9);
    mp_cluster_free(&c);
}

static void test_allreduce_closed_form(void)
{
    for (int K = 1; K <= 5; K++)
        for (int m = 1; m <= 8; m++)
            for (int kind = 0; kind < 2; kind++) {
                double F[5], B[5], z[5] = { 0 }, AR[5];
                for (int j = 0; j < K; j++) { F[j] = 1.5; B[j] = 2.25; AR[j] = 0.75 * (1 + m % 3); }
                mp_op_lists l;
                CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, 1, m, &l, NULL), MP_OK);
                mp_sim *s = mp_sim_new();
                mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = z, .grad_ms = z, .allreduce_ms = AR };
                mp_sim_result r;
                CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, NULL, NULL), MP_OK);
                CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, (m + K - 1) * 3.75 + AR[0], EPS);
                for (int p = 0; p < K; p++)  /* GPipe/1F1B: stage p ends at (m+K-1)F + (m+K-1-p)B */
                    CU_ASSERT_DOUBLE_EQUAL(mp_sim_list_end(s, p), (m + K - 1) * 1.5 + (m + K - 1 - p) * 2.25, EPS);
                mp_sim_free(s);
                mp_op_lists_free(&l);
            }
    double F[6], B[6], z[6] = { 0 }, AR[6];
    for (int j = 0; j < 6; j++) { F[j] = 1; B[j] = 2; AR[j] = 0.5 + j; }
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_INTERLEAVED, 2, 3, 4, &l, NULL), MP_OK);
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = z, .grad_ms = z };
    mp_sim_result r0, r;
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r0, NULL, NULL), MP_OK);
    double e0 = mp_sim_list_end(s, 0), e1 = mp_sim_list_end(s, 1);
    in.allreduce_ms = AR;
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, NULL, NULL), MP_OK);
    double want = fmax(e0 + AR[0] + AR[2] + AR[4], e1 + AR[1] + AR[3] + AR[5]);
    CU_ASSERT_DOUBLE_EQUAL(r.iteration_ms, want, EPS);
    CU_ASSERT_EQUAL(r0.iteration_ms, fmax(e0, e1));
    mp_sim_free(s);
    mp_op_lists_free(&l);
}

/* The reference for data parallelism: D replicas, each with its own random
 * stage and transfer times, run by the event-driven reference; then the
 * ring all-reduces step by step: each position's stages in order, every
 * replica entering a stage's ring once all have (a barrier), step k of
 * replica r over its link r -> r+1 ending at max(its step k-1, the step
 * k-1 of replica r-1 it forwards) + the link's time. The simulator, fed
 * replica 0's times, the other replicas' list ends and 2(D-1) times the
 * ring's slowest link, must give the same end of every position. */
static void test_allreduce_vs_reference(void)
{
    unsigned seed = 777;
    mp_sim *sim = mp_sim_new();
    for (int it = 0; it < 300; it++) {
        int kind = it % 3, K, v = 1, m, D = 2 + (int)(frand(&seed) * 3);
        if (kind == MP_SCHED_INTERLEAVED) {
            K = 2 + (int)(frand(&seed) * 3);
            v = 2;
            m = K * (1 + (int)(frand(&seed) * 2));
        } else {
            K = 1 + (int)(frand(&seed) * 4);
            m = 1 + (int)(frand(&seed) * 6);
        }
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, v, m, &l, NULL), MP_OK);
        int S = l.num_stages, same = it % 4 == 0;  /* identical replicas now and then */
        double F[4][16], B[4][16], act[4][16], grad[4][16], link[16][4], AR[16];
        double lend[4][8], ready[8] = { 0 };
        for (int r = 0; r < D; r++)
            for (int st = 0; st < S; st++) {
                int src = same ? 0 : r;
                if (same && r > 0) { F[r][st] = F[src][st]; B[r][st] = B[src][st];
                                     act[r][st] = act[src][st]; grad[r][st] = grad[src][st]; continue; }
                F[r][st] = (int)(frand(&seed) * 3);
                B[r][st] = (int)(frand(&seed) * 4);
                act[r][st] = (int)(frand(&seed) * 2);
                grad[r][st] = (int)(frand(&seed) * 2);
            }
        for (int st = 0; st < S; st++) {
            double mx = 0;
            for (int r = 0; r < D; r++) {
                link[st][r] = 0.25 * (int)(frand(&seed) * 8);
                if (link[st][r] > mx) mx = link[st][r];
            }
            AR[st] = 2.0 * (D - 1) * mx;
        }
        /* the reference: replicas' op lists ... */
        for (int r = 0; r < D; r++) {
            double busy[8], op_end[4 * 16 * 12], iter;
            mp_sim_input in = { .ops = &l, .fwd_ms = F[r], .bwd_ms = B[r], .act_ms = act[r], .grad_ms = grad[r] };
            CU_ASSERT_EQUAL_FATAL(ref_run(&in, &iter, busy, op_end), 0);
            for (int p = 0; p < K; p++) {
                const mp_op *last = &l.ops[p][l.len[p] - 1];
                lend[r][p] = op_end[4 * (last->stage * m + last->microbatch) + last->kind];
            }
        }
        /* ... then the rings, step by step */
        double want = 0;
        for (int p = 0; p < K; p++) {
            double t = 0;
            for (int r = 0; r < D; r++) if (lend[r][p] > t) t = lend[r][p];
            for (int st = p; st < S; st += K) {
                double e[4], ne[4];
                for (int r = 0; r < D; r++) e[r] = t;
                for (int k = 0; k < 2 * (D - 1); k++) {
                    for (int r = 0; r < D; r++) {
                        double prev = e[(r + D - 1) % D] > e[r] ? e[(r + D - 1) % D] : e[r];
                        ne[r] = prev + link[st][r];
                    }
                    memcpy(e, ne, sizeof e);
                }
                t = 0;
                for (int r = 0; r < D; r++) if (e[r] > t) t = e[r];
            }
            if (t > want) want = t;
        }
        for (int r = 1; r < D; r++)
            for (int p = 0; p < K; p++) if (lend[r][p] > ready[p]) ready[p] = lend[r][p];
        mp_sim_input in = { .ops = &l, .fwd_ms = F[0], .bwd_ms = B[0], .act_ms = act[0], .grad_ms = grad[0], .allreduce_ms = AR, .allreduce_ready_ms = ready };
        mp_sim_result res;
        CU_ASSERT_EQUAL_FATAL(mp_sim_run(sim, &in, &res, NULL, NULL), MP_OK);
        CU_ASSERT_DOUBLE_EQUAL(res.iteration_ms, want, 1e-9);
        for (int p = 0; p < K; p++) CU_ASSERT_EQUAL(mp_sim_list_end(sim, p), lend[0][p]);
        mp_op_lists_free(&l);
    }
    mp_sim_free(sim);
}

/* ---------------------------------------------------------------- reference */

static void compare_with_reference_zb(const mp_op_lists *l, const double *F, const double *B,
                                      const double *act, const double *grad, const double *BI,
                                      const double *W, mp_sim *sim)
{
    int K = l->num_positions, S = l->num_stages, m = l->num_microbatches, zb = mp_schedule_is_zb(l->kind);
    double *busy = calloc(K, sizeof *busy), *op_end = calloc(4 * S * m, sizeof *op_end);
    double iter;
    mp_sim_input in = { .ops = l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad, .bwd_in_ms = BI, .bwd_w_ms = W };
    CU_ASSERT_EQUAL_FATAL(ref_run(&in, &iter, busy, op_end), 0);
    mp_sim_result r;
    mp_trace tr = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(sim, &in, &r, &tr, NULL), MP_OK);
    CU_ASSERT_EQUAL(r.iteration_ms, iter);  /* exact: same arithmetic */
    double sum = 0, best = -1;
    int bn = 0;
    for (int p = 0; p < K; p++) {
        CU_ASSERT_EQUAL(mp_sim_busy(sim, p), busy[p]);
        sum += busy[p];
        if (busy[p] > best) { best = busy[p]; bn = p; }
    }
    CU_ASSERT_EQUAL(r.bottleneck_position, bn);
    CU_ASSERT_DOUBLE_EQUAL(r.bubble_fraction, iter > 0 ? 1 - sum / (K * iter) : 0, EPS);
    int nops = 0;
    for (int i = 0; i < tr.n; i++) {
        const mp_trace_event *e = &tr.ev[i];
        if (e->kind != MP_TEV_FWD && e->kind != MP_TEV_BWD && e->kind != MP_TEV_WGRAD) continue;
        nops++;
        int kind = e->kind == MP_TEV_FWD ? MP_OP_FWD : e->kind == MP_TEV_WGRAD ? MP_OP_BWD_W
                 : zb ? MP_OP_BWD_IN : MP_OP_BWD;
        CU_ASSERT_EQUAL(e->end_ms, op_end[4 * (e->stage * m + e->microbatch) + kind]);
    }
    CU_ASSERT_EQUAL(nops, (zb ? 3 : 2) * S * m);
    mp_trace_free(&tr);
    free(busy);
    free(op_end);
}

static void compare_with_reference(const mp_op_lists *l, const double *F, const double *B,
                                   const double *act, const double *grad, mp_sim *sim)
{
    compare_with_reference_zb(l, F, B, act, grad, NULL, NULL, sim);
}

static void test_random_vs_reference(void)
{
    unsigned seed = 12345;
    mp_sim *sim = mp_sim_new();  /* one workspace for all: exercises reuse */
    for (int it = 0; it < 600; it++) {
        int kind = it % 3, K, v = 1, m;
        if (kind == MP_SCHED_INTERLEAVED) {
            K = 2 + (int)(frand(&seed) * 4);
            v = 2 + (int)(frand(&seed) * 2);
            m = K * (1 + (int)(frand(&seed) * 3));
        } else {
            K = 1 + (int)(frand(&seed) * 6);
            m = 1 + (int)(frand(&seed) * 9);
        }
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, v, m, &l, NULL), MP_OK);
        int S = l.num_stages;
        double F[32], B[32], act[32], grad[32];
        int coarse = it % 2;  /* coarse times make ties (FCFS by sequence) common */
        for (int s = 0; s < S; s++) {
            F[s] = coarse ? (int)(frand(&seed) * 3) : 0.1 + 3 * frand(&seed);
            B[s] = coarse ? (int)(frand(&seed) * 4) : 0.1 + 5 * frand(&seed);
            act[s] = coarse ? (int)(frand(&seed) * 3) : 4 * frand(&seed);
            grad[s] = coarse ? (int)(frand(&seed) * 3) : 4 * frand(&seed);
        }
        compare_with_reference(&l, F, B, act, grad, sim);
        mp_op_lists_free(&l);
    }
    mp_sim_free(sim);
}

/* stop_ms: a run that stops reports a time above stop_ms and at most the
 * full run's, and exactly the full run's when that is <= stop_ms;
 * lists_built gives the full run's numbers bit for bit. Random instances of
 * all three schedules, stops below, at and above the full time. */
static void test_stop_and_built_lists(void)
{
    unsigned seed = 777;
    mp_sim *sim = mp_sim_new();
    int stopped = 0;
    for (int it = 0; it < 300; it++) {
        int kind = it % 3, K = 2 + (int)(frand(&seed) * 4), v = kind == MP_SCHED_INTERLEAVED ? 2 : 1;
        int m = kind == MP_SCHED_INTERLEAVED ? K * (1 + (int)(frand(&seed) * 3)) : 1 + (int)(frand(&seed) * 9);
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, v, m, &l, NULL), MP_OK);
        double F[32], B[32], act[32], grad[32];
        for (int s = 0; s < l.num_stages; s++) {
            F[s] = 0.1 + 3 * frand(&seed);
            B[s] = 0.1 + 5 * frand(&seed);
            act[s] = 2 * frand(&seed);
            grad[s] = 2 * frand(&seed);
        }
        mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad };
        mp_sim_result full, r;
        CU_ASSERT_EQUAL_FATAL(mp_sim_run(sim, &in, &full, NULL, NULL), MP_OK);
        in.lists_built = 1;
        CU_ASSERT_EQUAL_FATAL(mp_sim_run(sim, &in, &r, NULL, NULL), MP_OK);
        CU_ASSERT_EQUAL(r.iteration_ms, full.iteration_ms);
        CU_ASSERT_EQUAL(r.bubble_fraction, full.bubble_fraction);
        CU_ASSERT_EQUAL(r.bottleneck_position, full.bottleneck_position);
        static const double frac[] = { 0.3, 0.9, 0.999, 1.0, 1.2 };
        for (int k = 0; k < 5; k++) {
            in.stop_ms = frac[k] * full.iteration_ms;
            CU_ASSERT_EQUAL_FATAL(mp_sim_run(sim, &in, &r, NULL, NULL), MP_OK);
            CU_ASSERT(r.iteration_ms <= full.iteration_ms);
            if (full.iteration_ms <= in.stop_ms) CU_ASSERT_EQUAL(r.iteration_ms, full.iteration_ms);
            if (full.iteration_ms > in.stop_ms) CU_ASSERT(r.iteration_ms > in.stop_ms);
            stopped += r.iteration_ms < full.iteration_ms;
        }
        in.stop_ms = 0;
        mp_op_lists_free(&l);
    }
    CU_ASSERT(stopped > 100);  /* the stops do cut runs short */
    mp_sim_free(sim);
}

/* The zero-bubble lists (Bi, W, zb-v's V with its local turn) against the
 * event-driven reference, random times with many ties. */
static void test_zb_random_vs_reference(void)
{
    unsigned seed = 4242;
    mp_sim *sim = mp_sim_new();
    static const mp_schedule_kind kinds[] = { MP_SCHED_ZB_H1, MP_SCHED_ZB_H2, MP_SCHED_ZB_V };
    for (int it = 0; it < 450; it++) {
        int K = 1 + (int)(frand(&seed) * 5), m = 1 + (int)(frand(&seed) * 10);
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kinds[it % 3], K, 1, m, &l, NULL), MP_OK);
        int S = l.num_stages;
        double F[32], B[32], BI[32], W[32], act[32], grad[32];
        int coarse = it % 2;
        for (int s = 0; s < S; s++) {
            F[s] = coarse ? (int)(frand(&seed) * 3) : 0.1 + 3 * frand(&seed);
            BI[s] = coarse ? (int)(frand(&seed) * 3) : 0.1 + 3 * frand(&seed);
            W[s] = coarse ? (int)(frand(&seed) * 3) : 0.1 + 3 * frand(&seed);
            B[s] = BI[s] + W[s];
            act[s] = coarse ? (int)(frand(&seed) * 3) : 4 * frand(&seed);
            grad[s] = coarse ? (int)(frand(&seed) * 3) : 4 * frand(&seed);
        }
        compare_with_reference_zb(&l, F, B, act, grad, BI, W, sim);
        mp_op_lists_free(&l);
    }
    mp_sim_free(sim);
}

/* Longer ops never make an iteration shorter (max-plus monotonicity). */
static void test_monotone(void)
{
    unsigned seed = 99;
    for (int it = 0; it < 200; it++) {
        int kind = it % 3, K = 2 + it % 3, v = kind == 2 ? 2 : 1, m = K * (1 + it % 3);
        mp_op_lists l;
        CU_ASSERT_EQUAL_FATAL(mp_schedule_build(kind, K, v, m, &l, NULL), MP_OK);
        int S = l.num_stages;
        double F[16], B[16], act[16], grad[16];
        for (int s = 0; s < S; s++) {
            F[s] = frand(&seed); B[s] = 2 * frand(&seed);
            act[s] = frand(&seed); grad[s] = frand(&seed);
        }
        mp_sim_result r0, r1;
        CU_ASSERT_EQUAL_FATAL(run_sim(&l, F, B, act, grad, &r0), MP_OK);
        int which = (int)(frand(&seed) * 4), s = (int)(frand(&seed) * (S - 1));
        double *arr[] = { F, B, act, grad };
        arr[which][s] += frand(&seed);
        CU_ASSERT_EQUAL_FATAL(run_sim(&l, F, B, act, grad, &r1), MP_OK);
        CU_ASSERT(r1.iteration_ms >= r0.iteration_ms);
        mp_op_lists_free(&l);
    }
}

/* ---------------------------------------------------------------- bad input */

static mp_op op(int kind, int stage, int mb)
{
    mp_op o = { kind, mb, stage };
    return o;
}

static mp_status run_hand(mp_op *l0, mp_op *l1, int m, mp_error *err)
{
    int len[2] = { 2 * m, 2 * m };
    mp_op *ops[2] = { l0, l1 };
    mp_op_lists l = { MP_SCHED_GPIPE, 2, 2, m, len, ops, NULL };
    double F[] = { 1, 1 }, B[] = { 1, 1 }, t[] = { 0.5 };
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = t, .grad_ms = t };
    mp_sim_result r;
    mp_error_clear(err);
    mp_status st = mp_sim_run(s, &in, &r, NULL, err);
    mp_sim_free(s);
    return st;
}

static void test_deadlock(void)
{
    mp_error err;
    /* stage 1 wants B before its own F */
    mp_op a0[] = { op(0, 0, 0), op(1, 0, 0) }, a1[] = { op(1, 1, 0), op(0, 1, 0) };
    CU_ASSERT_EQUAL(run_hand(a0, a1, 1, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "deadlock") != NULL);
    /* stage 0 wants the gradient of micro-batch 0 before sending it forward */
    mp_op b0[] = { op(1, 0, 0), op(0, 0, 0) }, b1[] = { op(0, 1, 0), op(1, 1, 0) };
    CU_ASSERT_EQUAL(run_hand(b0, b1, 1, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "deadlock") != NULL);
    /* crossed orders with two micro-batches */
    mp_op c0[] = { op(0, 0, 1), op(0, 0, 0), op(1, 0, 0), op(1, 0, 1) };
    mp_op c1[] = { op(0, 1, 0), op(1, 1, 0), op(0, 1, 1), op(1, 1, 1) };
    CU_ASSERT_EQUAL(run_hand(c0, c1, 2, &err), MP_OK);  /* legal, just a different order */
    mp_op d0[] = { op(0, 0, 0), op(1, 0, 1), op(0, 0, 1), op(1, 0, 0) };
    CU_ASSERT_EQUAL(run_hand(d0, c1, 2, &err), MP_ERR_INPUT);
    /* duplicates and wrong positions are rejected before running */
    mp_op e0[] = { op(0, 0, 0), op(0, 0, 0) }, e1[] = { op(0, 1, 0), op(1, 1, 0) };
    CU_ASSERT_EQUAL(run_hand(e0, e1, 1, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "twice") != NULL);
    mp_op f0[] = { op(0, 1, 0), op(1, 0, 0) };
    CU_ASSERT_EQUAL(run_hand(f0, e1, 1, &err), MP_ERR_INPUT);
}

static void test_bad_times(void)
{
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, 2, 1, 2, &l, NULL), MP_OK);
    double F[] = { 1, -1 }, B[] = { 1, 1 }, t[] = { 0 }, nan_[] = { NAN };
    mp_sim_result r;
    CU_ASSERT_EQUAL(run_sim(&l, F, B, t, t, &r), MP_ERR_INPUT);
    F[1] = 1;
    CU_ASSERT_EQUAL(run_sim(&l, F, B, nan_, t, &r), MP_ERR_INPUT);
    CU_ASSERT_EQUAL(run_sim(&l, F, B, t, t, &r), MP_OK);
    mp_op_lists_free(&l);
}

/* ---------------------------------------------------------------- traces */

static void test_trace_json(void)
{
    int K = 3, m = 4;
    mp_op_lists l;
    CU_ASSERT_EQUAL_FATAL(mp_schedule_build(MP_SCHED_1F1B, K, 1, m, &l, NULL), MP_OK);
    double F[] = { 1, 2, 1 }, B[] = { 2, 5, 2 }, R[] = { 0, 2, 0 }, t[] = { 0.25, 0.5 };
    mp_sim *s = mp_sim_new();
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .recompute_ms = R, .act_ms = t, .grad_ms = t };
    mp_sim_result r;
    mp_trace tr = { 0 };
    CU_ASSERT_EQUAL_FATAL(mp_trace_set_row_name(&tr, 0, "stage 0 (dev0)"), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_sim_run(s, &in, &r, &tr, NULL), MP_OK);
    /* ops + recompute slices of stage 1 + one transfer per (link hop, mb) each way */
    int want = 2 * K * m + m + 2 * (K - 1) * m;
    CU_ASSERT_EQUAL(tr.n, want);
    int nrec = 0;
    for (int i = 0; i < tr.n; i++)
        if (tr.ev[i].kind == MP_TEV_RECOMPUTE) {
            nrec++;
            CU_ASSERT_EQUAL(tr.ev[i].stage, 1);
            CU_ASSERT_DOUBLE_EQUAL(tr.ev[i].end_ms - tr.ev[i].start_ms, 2.0, EPS);
        }
    CU_ASSERT_EQUAL(nrec, m);
    char path[512];
    snprintf(path, sizeof path, "%s/trace.json", mp_test_tmpdir());
    mp_error err;
    mp_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(mp_trace_write_chrome(&tr, path, "predicted", &err), MP_OK);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    json_t *evs = json_object_get(root, "traceEvents");
    CU_ASSERT_FATAL(json_is_array(evs));
    int nx = 0, nthread = 0, found_row0 = 0, found_link = 0, found_f0 = 0;
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *e = json_array_get(evs, i);
        const char *ph = json_string_value(json_object_get(e, "ph"));
        const char *name = json_string_value(json_object_get(e, "name"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(ph);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(e, "pid")), 0);
        if (!strcmp(ph, "X")) {
            nx++;
            if (!strcmp(name, "F0") && json_integer_value(json_object_get(e, "tid")) == 1) {
                /* F0 on stage 1: starts when the activation lands at 1.25 ms */
                found_f0 = 1;
                CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(e, "ts")), 1250.0, 1e-6);
                CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(e, "dur")), 2000.0, 1e-6);
                json_t *a = json_object_get(e, "args");
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "stage")), 1);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "microbatch")), 0);
            }
        } else if (!strcmp(ph, "M") && !strcmp(name, "thread_name")) {
            nthread++;
            const char *rn = json_string_value(json_object_get(json_object_get(e, "args"), "name"));
            if (rn && !strcmp(rn, "stage 0 (dev0)")) found_row0 = 1;
            if (rn && !strcmp(rn, "link 2->1")) found_link = 1;
        }
    }
    CU_ASSERT_EQUAL(nx, want);
    CU_ASSERT_EQUAL(nthread, K + 2 * (K - 1));  /* 3 stages + links 0->1 1->2 2->1 1->0 */
    CU_ASSERT(found_row0 && found_link && found_f0);
    json_decref(root);
    mp_trace_free(&tr);
    mp_sim_free(s);
    mp_op_lists_free(&l);
}

/* ---------------------------------------------------------------- zero bubble */

/* Iteration of kind on K positions, m micro-batches, every stage of a
 * position taking F = BI = W = u/(S/K) (fused B = BI + W), free transfers;
 * *tr (optional) gets the trace. */
static double zb_iter(mp_schedule_kind kind, int K, int m, double u, mp_trace *tr, double *bubble)
{
    mp_op_lists l;
    CU_ASSERT_FATAL(mp_schedule_build(kind, K, 2, m, &l, NULL) == MP_OK);
    int S = l.num_stages;
    double *t = calloc((size_t)5 * S, sizeof *t), *F = t, *B = t + S, *BI = t + 2 * S, *W = t + 3 * S, *z = t + 4 * S;
    for (int s = 0; s < S; s++) { F[s] = BI[s] = W[s] = u * K / S; B[s] = 2 * F[s]; }
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = z, .grad_ms = z, .bwd_in_ms = BI, .bwd_w_ms = W };
    mp_sim_result r;
    mp_sim *sim = mp_sim_new();
    CU_ASSERT(mp_sim_run(sim, &in, &r, tr, NULL) == MP_OK);
    if (bubble) *bubble = r.bubble_fraction;
    mp_sim_free(sim);
    mp_op_lists_free(&l);
    free(t);
    return r.iteration_ms;
}

/* By hand, K=2, m=4, F = BI = W = 1 (docs/cost-model.md): 1F1B 15 (fused B
 * = 2); ZB-H1 13: position 1 runs F0 B0 F1 B1 W0 F2 B2 W1 F3 B3 W2 W3 and
 * idles only [0,1], position 0 idles only [2,3] and ends B3 [11,12] W3
 * [12,13]; ZB-H2 13 as well; ZB-V 12.5 (4 stages of 0.5: position 1 waits
 * only for the first forward). The closed forms for F = BI = W = 1:
 * 1F1B (m+K-1)*3, ZB-H1 and ZB-H2 3m + (K-1) (a third of 1F1B's bubble
 * time: the last position's start), ZB-V 3m + (K-1)/2 (its chunks are half
 * as long): the bubble is almost gone. */
static void test_zb_hand_and_closed_forms(void)
{
    CU_ASSERT_DOUBLE_EQUAL(zb_iter(MP_SCHED_1F1B, 2, 4, 1, NULL, NULL), 15, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(zb_iter(MP_SCHED_ZB_H1, 2, 4, 1, NULL, NULL), 13, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(zb_iter(MP_SCHED_ZB_H2, 2, 4, 1, NULL, NULL), 13, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(zb_iter(MP_SCHED_ZB_V, 2, 4, 1, NULL, NULL), 12.5, 1e-9);
    static const int Ks[] = { 2, 3, 4, 6, 8 };
    int bad = 0;
    for (int a = 0; a < 5; a++)
        for (int f = 2; f <= 4; f++) {
            int K = Ks[a], m = f * K;
            double b1, bh1, bv;
            double t1 = zb_iter(MP_SCHED_1F1B, K, m, 1, NULL, &b1);
            double h1 = zb_iter(MP_SCHED_ZB_H1, K, m, 1, NULL, &bh1);
            double h2 = zb_iter(MP_SCHED_ZB_H2, K, m, 1, NULL, NULL);
            double v = zb_iter(MP_SCHED_ZB_V, K, m, 1, NULL, &bv);
            bad += fabs(t1 - 3.0 * (m + K - 1)) > 1e-9;
            bad += fabs(h1 - (3.0 * m + K - 1)) > 1e-9;
            bad += fabs(h2 - (3.0 * m + K - 1)) > 1e-9;
            bad += fabs(v - (3.0 * m + 0.5 * (K - 1))) > 1e-9;
            bad += fabs((h1 - 3.0 * m) - (t1 - 3.0 * m) / 3) > 1e-9;   /* a third of 1F1B's bubble time */
            bad += !(bv < bh1 && bh1 < b1);
            if (bad) { printf("\n K=%d m=%d: 1f1b %g zb-h1 %g zb-h2 %g zb-v %g", K, m, t1, h1, h2, v); break; }
        }
    CU_ASSERT_EQUAL(bad, 0);
}

/* The trace of zb-v K=3: F, B (the input gradient) and W slices of every
 * stage and micro-batch; no transfer at the turn of the V (stages 2 and 3
 * share position 2); ZB lists without BI/W times are refused. */
static void test_zb_trace_and_input(void)
{
    mp_trace tr = {0};
    int m = 6;
    zb_iter(MP_SCHED_ZB_V, 3, m, 1, &tr, NULL);
    int nf = 0, nb = 0, nw = 0, turn = 0;
    for (int i = 0; i < tr.n; i++) {
        const mp_trace_event *e = &tr.ev[i];
        nf += e->kind == MP_TEV_FWD;
        nb += e->kind == MP_TEV_BWD;
        nw += e->kind == MP_TEV_WGRAD;
        turn += (e->kind == MP_TEV_SEND_ACT && e->stage == 2) || (e->kind == MP_TEV_SEND_GRAD && e->stage == 3);
        if (e->kind == MP_TEV_WGRAD) CU_ASSERT_EQUAL(e->position, e->stage < 3 ? e->stage : 5 - e->stage);
    }
    CU_ASSERT_EQUAL(nf, 6 * m);
    CU_ASSERT_EQUAL(nb, 6 * m);
    CU_ASSERT_EQUAL(nw, 6 * m);
    CU_ASSERT_EQUAL(turn, 0);
    mp_trace_free(&tr);
    mp_op_lists l;
    CU_ASSERT_FATAL(mp_schedule_build(MP_SCHED_ZB_H1, 2, 1, 2, &l, NULL) == MP_OK);
    double t[2] = { 1, 1 };
    mp_sim_input in = { .ops = &l, .fwd_ms = t, .bwd_ms = t, .act_ms = t, .grad_ms = t };
    mp_sim_result r;
    mp_error err;
    mp_error_clear(&err);
    mp_sim *sim = mp_sim_new();
    CU_ASSERT_EQUAL(mp_sim_run(sim, &in, &r, NULL, &err), MP_ERR_INPUT);
    CU_ASSERT(strstr(err.msg, "zb-h1") != NULL);
    mp_sim_free(sim);
    mp_op_lists_free(&l);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_uniform_closed_form),
        MP_TEST(test_hand_gpipe_contention),
        MP_TEST(test_hand_1f1b_latency),
        MP_TEST(test_random_vs_reference),
        MP_TEST(test_stop_and_built_lists),
        MP_TEST(test_hand_allreduce),
        MP_TEST(test_allreduce_points_by_hand),
        MP_TEST(test_allreduce_closed_form),
        MP_TEST(test_allreduce_vs_reference),
        MP_TEST(test_monotone),
        MP_TEST(test_deadlock),
        MP_TEST(test_bad_times),
        MP_TEST(test_trace_json),
        MP_TEST(test_zb_hand_and_closed_forms),
        MP_TEST(test_zb_random_vs_reference),
        MP_TEST(test_zb_trace_and_input),
    };
    return mp_test_main("sim", cases, (int)(sizeof cases / sizeof cases[0]));
}
