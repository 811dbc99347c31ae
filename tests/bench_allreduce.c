/* bench_allreduce.c — data parallelism's cost in mprun: the ring all-reduce
 * of collective.h over the threads transport (2 threads, one vector per
 * call: time and algorithm bandwidth, median of several calls), and
 * mp_run's all-reduce time against the compute of a training step for
 * D = 2 replicas of one stage (models under profiles/; the all-reduce time
 * includes waiting for the slower replica). Medians; no targets. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "stats.h"
#include "collective.h"
#include "model.h"
#include "plan.h"
#include "runtime.h"

#define CALLS 21

typedef struct {
    mp_transport *t;
    int me;
    size_t len;
    float *data, *scratch;
    double ms[CALLS];
    mp_status st;
} member;

static void *member_main(void *arg)
{
    member *m = arg;
    mp_coll_host h = { m->t, m->me, 30 };
    mp_coll_io io = mp_coll_io_host(&h);
    int ring[2] = { 0, 1 };
    mp_error e;
    mp_error_clear(&e);
    int flag = 0;
    for (int i = 0; i < CALLS && m->st == MP_OK; i++) {
        m->st = m->t->i->agree(m->t, m->me, &flag, 30, &e);
        double t0 = mp_now_ms();
        if (m->st == MP_OK) m->st = mp_coll_allreduce(&io, ring, 2, m->me, 0, m->data, m->len, m->scratch, &e);
        m->ms[i] = mp_now_ms() - t0;
    }
    return NULL;
}

/* One row: the ring over 2 threads for `bytes`; 0 on failure. */
static int ring_row(size_t bytes)
{
    mp_transport *t = NULL;
    mp_error e;
    mp_error_clear(&e);
    if (mp_transport_open("threads", 2, 64, &t, &e) != MP_OK) return 0;
    member ms[2];
    memset(ms, 0, sizeof ms);
    pthread_t th[2];
    for (int j = 0; j < 2; j++) {
        ms[j].t = t;
        ms[j].me = j;
        ms[j].len = bytes / sizeof(float);
        ms[j].data = calloc(ms[j].len + 1, sizeof(float));
        ms[j].scratch = calloc(ms[j].len + 1, sizeof(float));
        pthread_create(&th[j], NULL, member_main, &ms[j]);
    }
    for (int j = 0; j < 2; j++) pthread_join(th[j], NULL);
    mp_transport_close(t, 0);
    int ok = ms[0].st == MP_OK && ms[1].st == MP_OK;
    qsort(ms[0].ms, CALLS, sizeof(double), mp_cmp_double);
    double med = ms[0].ms[CALLS / 2];
    if (ok) printf("%-26s %12zu %10.3f %10.2f\n", "ring, 2 threads", bytes, med, bytes / (med * 1e6));
    for (int j = 0; j < 2; j++) { free(ms[j].data); free(ms[j].scratch); }
    return ok;
}

/* One row: mp_run of `model` with D = 2 replicas of one stage, threads. */
static int run_row(const char *model_path, int b, int steps)
{
    mp_model m;
    mp_plan p;
    mp_error e;
    mp_error_clear(&e);
    if (mp_model_load(model_path, &m, &e) != MP_OK) { fprintf(stderr, "%s\n", e.msg); return 0; }
    char text[512];
    snprintf(text, sizeof text, "{\"format\":\"mpplan-plan/1\",\"mode\":\"train\",\"schedule\":\"gpipe\",\"data_parallel\":2,"
             "\"global_batch\":%d,\"microbatch_size\":%d,\"stages\":[{\"layers\":[0,%d],\"device\":0}]}",
             2 * b, b, m.num_layers - 1);
    if (mp_plan_parse(text, strlen(text), "bench plan", &p, &e) != MP_OK) { fprintf(stderr, "%s\n", e.msg); mp_model_free(&m); return 0; }
    mp_run_config c;
    mp_run_config_default(&c);
    c.plan = &p;
    c.model = &m;
    c.steps = steps;
    c.pin = 0;
    c.print_loss = 0;
    mp_run_result r;
    mp_status st = mp_run(&c, &r, &e);
    if (st == MP_OK) {
        double busy = r.busy_ms[0] > r.busy_ms[1] ? r.busy_ms[0] : r.busy_ms[1];
        printf("%-26s %12lld %10.3f %10.3f %9.1f%%\n", model_path, mp_model_param_count(&m) * 4, busy, r.allreduce_ms,
               busy > 0 ? 100.0 * r.allreduce_ms / busy : 0.0);
    } else
        fprintf(stderr, "%s\n", e.msg);
    mp_run_result_free(&r);
    mp_plan_free(&p);
    mp_model_free(&m);
    return st == MP_OK;
}

int main(void)
{
    printf("# mpkit data-parallel all-reduce (collective.h ring; median of %d calls)\n", CALLS);
    printf("%-26s %12s %10s %10s\n", "what", "bytes", "ms", "GB/s");
    int ok = 1;
    for (size_t bytes = 4096; bytes <= (size_t)16 << 20; bytes *= 8) ok &= ring_row(bytes);
    printf("# mprun, D = 2 replicas of one stage on threads (median per step after 1 warm-up step)\n");
    printf("%-26s %12s %10s %10s %10s\n", "model", "grad bytes", "compute_ms", "allred_ms", "overhead");
    ok &= run_row("profiles/mlp-small.model.json", 32, 5);
    ok &= run_row("profiles/demo.model.json", 16, 8);
    printf("# %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
