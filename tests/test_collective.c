/* test_collective.c — the ring all-reduce of collective.h over the threads
 * transport: every member ends with bitwise the same vector, equal to the
 * documented summation order (chunk c summed from member c around the ring)
 * whether chunks are added as they arrive (recv_add) or through scratch,
 * close to the exact sum, for ring sizes 1..5 and lengths shorter than the
 * ring; repeated calls with the same id stay apart; a member that never
 * sends makes the others time out. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collective.h"
#include "testutil.h"

enum { MAXN = 5, MAXLEN = 1000 };

typedef struct {
    mp_transport *t;
    int n, me, len, rounds, silent;
    int copy;                  /* 1: receive into scratch, then add (the io without recv_add) */
    float data[MAXLEN], scratch[MAXLEN];
    mp_status st;
    mp_error err;
} member;

static void *member_main(void *arg)
{
    member *m = arg;
    mp_coll_host h = { m->t, m->me, 0.3 };
    mp_coll_io io = mp_coll_io_host(&h);
    if (m->copy) io.recv_add = NULL;
    int ring[MAXN];
    for (int i = 0; i < m->n; i++) ring[i] = i;
    mp_error_clear(&m->err);
    m->st = MP_OK;
    if (m->silent) return NULL;
    for (int k = 0; k < m->rounds && m->st == MP_OK; k++)
        m->st = mp_coll_allreduce(&io, ring, m->n, m->me, 7, m->data, (size_t)m->len, m->scratch, &m->err);
    return NULL;
}

static float value(int member_ix, int i) { return (float)sin(0.37 * i + 1.3 * member_ix) * (float)(1 + (i % 7)) * 1e-3f; }

/* The documented order: chunk c is x[c+n-1] + (... + (x[c+1] + x[c])). */
static float expected(int n, int len, int i)
{
    int c = 0;
    for (; c < n; c++) {
        size_t lo, hi;
        mp_coll_chunk((size_t)len, n, c, &lo, &hi);
        if ((size_t)i >= lo && (size_t)i < hi) break;
    }
    float acc = value(c, i);
    for (int k = 1; k < n; k++) acc = value((c + k) % n, i) + acc;
    return acc;
}

static void run_ring(int n, int len, int rounds, member *ms)
{
    mp_transport *t = NULL;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_transport_open("threads", n, 64, &t, &e), MP_OK);
    pthread_t th[MAXN];
    for (int j = 0; j < n; j++) {
        ms[j].t = t;
        ms[j].n = n;
        ms[j].me = j;
        ms[j].len = len;
        ms[j].rounds = rounds;
        for (int i = 0; i < len; i++) ms[j].data[i] = value(j, i);
        pthread_create(&th[j], NULL, member_main, &ms[j]);
    }
    for (int j = 0; j < n; j++) pthread_join(th[j], NULL);
    mp_transport_close(t, 0);
}

static void test_ring_sums(void)
{
    static member ms[MAXN];
    const int lens[] = { 0, 1, 3, 7, 64, 999 };
    for (int copy = 0; copy < 2; copy++)   /* added as received (threads' recv_add), and through scratch */
    for (int n = 1; n <= MAXN; n++)
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            int len = lens[k];
            memset(ms, 0, sizeof ms);
            for (int j = 0; j < MAXN; j++) ms[j].copy = copy;
            run_ring(n, len, 1, ms);
            int same = 1, order = 1, close = 1;
            for (int j = 0; j < n; j++) {
                CU_ASSERT_EQUAL(ms[j].st, MP_OK);
                if (ms[j].st != MP_OK) fprintf(stderr, "%s\n", ms[j].err.msg);
                if (memcmp(ms[j].data, ms[0].data, (size_t)len * sizeof(float))) same = 0;
            }
            for (int i = 0; i < len; i++) {
                float want = expected(n, len, i);
                if (memcmp(&ms[0].data[i], &want, sizeof want)) order = 0;
                double exact = 0;
                for (int j = 0; j < n; j++) exact += value(j, i);
                if (fabs(ms[0].data[i] - exact) > 1e-6 * (fabs(exact) + 1e-3)) close = 0;
            }
            CU_ASSERT(same);
            CU_ASSERT(order);
            CU_ASSERT(close);
        }
    CU_ASSERT_PTR_NOT_NULL(mp_transport_threads_i.recv_add);   /* so copy = 0 used it */
}

/* Three calls in a row with the same id: each sums what the one before left
 * (the messages of consecutive calls never mix): every member ends equal, and
 * equal bitwise to one call followed by two sums x + (x + x) by hand. */
static void test_repeated_calls(void)
{
    static member a[MAXN], b[MAXN];
    memset(a, 0, sizeof a);
    run_ring(3, 50, 3, a);
    for (int j = 0; j < 3; j++) CU_ASSERT_EQUAL(a[j].st, MP_OK);
    CU_ASSERT_EQUAL(memcmp(a[0].data, a[1].data, 50 * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(a[0].data, a[2].data, 50 * sizeof(float)), 0);
    /* reference: one call, then two more by hand on the (identical) results */
    memset(b, 0, sizeof b);
    run_ring(3, 50, 1, b);
    for (int i = 0; i < 50; i++) {
        float x = b[0].data[i];
        x = x + (x + x);    /* every member holds x: chunk sums x + (x + x) */
        x = x + (x + x);
        CU_ASSERT_EQUAL(memcmp(&x, &a[0].data[i], sizeof x), 0);
    }
}

static void test_silent_member_times_out(void)
{
    static member ms[MAXN];
    memset(ms, 0, sizeof ms);
    ms[2].silent = 1;
    run_ring(3, 30, 1, ms);
    CU_ASSERT_EQUAL(ms[0].st, MP_ERR_TIMEOUT);
    CU_ASSERT_EQUAL(ms[1].st, MP_ERR_TIMEOUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(ms[0].err.msg, "timed out"));
}

static void test_bad_ring(void)
{
    mp_error e;
    mp_error_clear(&e);
    mp_coll_host h = { NULL, 0, 1 };
    mp_coll_io io = mp_coll_io_host(&h);
    int ring[2] = { 0, 1 };
    float d[2], s[2];
    CU_ASSERT_EQUAL(mp_coll_allreduce(&io, ring, 2, 2, 0, d, 2, s, &e), MP_ERR_INTERNAL);
    CU_ASSERT_EQUAL(mp_coll_allreduce(&io, ring, 0, 0, 0, d, 2, s, &e), MP_ERR_INTERNAL);
    CU_ASSERT_EQUAL(mp_coll_allreduce(&io, ring, 1, 0, 0, d, 2, s, &e), MP_OK);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_ring_sums), MP_TEST(test_repeated_calls), MP_TEST(test_silent_member_times_out),
        MP_TEST(test_bad_ring),
    };
    return mp_test_main("collective", cases, (int)(sizeof cases / sizeof cases[0]));
}
