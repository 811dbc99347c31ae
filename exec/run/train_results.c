/* train_results.c — a training run's results (train.h): under MPI every rank
 * ships its per-step arrays, peak, trace and parameters to rank 0 in the
 * driver's gather shape; where the results are held they become the medians,
 * the merged trace and the checksum of the final parameters in stage order.
 * defines: mp_train_gather, mp_train_collect
 *
 * Parts of rank p's result (mp_pipeline_send_part, tag k):
 *   k = 0       double[4]: peak bytes, trace events, the rank's CPU ticks, its boot id
 *   k = 1..5    double[nsteps]: end_ms, busy_ms, step_ms, loss, ar_ms
 *   k = 8       mp_trace_event[events]: the last step's trace
 *   k = 16 + j  float[params]: the parameters of its j-th stage (stage p + j*K),
 *               received by mp_train_collect in stage order (replica 0)
 *   k = 1024+j  unsigned char[32]: SHA-256 of its j-th stage's parameters
 *               (replicas 1..D-1: compared with replica 0's)
 * With D replicas, the loss is replica 0's (the global batch's, summed by
 * train_allreduce.c), the times are the maxima over all D * K positions, the
 * trace is replica 0's, and every replica's weights must equal replica 0's
 * bitwise (MP_ERR_INTERNAL naming the replica and stage otherwise). */
#include "train.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>

enum { PART_HEAD = 0, PART_ARRAYS = 1, NARRAYS = 5, PART_TRACE = 8, PART_PARAMS = 16, PART_DIGEST = 1024 };

static double **arrays_of(mp_train_worker *w, double *a[NARRAYS])
{
    a[0] = w->end_ms;
    a[1] = w->busy_ms;
    a[2] = w->step_ms;
    a[3] = w->loss;
    a[4] = w->ar_ms;
    return a;
}

/* SHA-256 of stage v's parameters alone. */
static mp_status stage_digest(mp_train_worker *w, mp_train_stage *v, unsigned char dg[32], mp_error *err)
{
    mp_sha256 h;
    mp_sha256_init(&h);
    mp_status st = mp_train_hash_stage(w, v, &h);
    if (st != MP_OK) return mp_error_set(err, st, "%s", w->err.msg);
    mp_sha256_final(&h, dg);
    return MP_OK;
}

static mp_status send_result(mp_train_run *r, mp_pipeline *pl, mp_train_worker *me, mp_error *err)
{
    size_t n = (size_t)r->nsteps;
    mp_cpu_sample now = mp_machine_cpu_sample();
    double head[4] = { me->peak, (double)me->trace.n, now.own - r->cpu0.own, (double)mp_machine_boot_id() };
    double *arr[NARRAYS];
    mp_status st = mp_pipeline_send_part(pl, me->p, PART_HEAD, head, sizeof head, err);
    arrays_of(me, arr);
    for (int a = 0; a < NARRAYS && st == MP_OK; a++)
        st = mp_pipeline_send_part(pl, me->p, PART_ARRAYS + a, arr[a], n * sizeof(double), err);
    if (st == MP_OK && me->trace.n)
        st = mp_pipeline_send_part(pl, me->p, PART_TRACE, me->trace.ev, (size_t)me->trace.n * sizeof(mp_trace_event), err);
    for (int k = 0; k < me->nst && st == MP_OK && me->replica > 0; k++) {
        unsigned char dg[32];
        if ((st = stage_digest(me, &me->st[k], dg, err)) == MP_OK)
            st = mp_pipeline_send_part(pl, me->p, PART_DIGEST + k, dg, sizeof dg, err);
    }
    for (int k = 0; k < me->nst && st == MP_OK && me->replica == 0; k++) {
        mp_train_stage *v = &me->st[k];
        float *buf = malloc((v->nparams ? v->nparams : 1) * sizeof(float));
        if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "stage %d: out of memory for its parameters", v->s);
        st = mp_train_pack_params(me, v, buf, NULL, NULL);
        if (st != MP_OK) mp_error_set(err, st, "%s", me->err.msg);
        else st = mp_pipeline_send_part(pl, me->p, PART_PARAMS + k, buf, v->nparams * sizeof(float), err);
        free(buf);
    }
    return st;
}

/* Rank 0: position p's measurements into r->w[p] (the parameters come in
 * mp_train_collect). */
static mp_status recv_result(mp_train_run *r, mp_pipeline *pl, mp_train_worker *w, mp_error *err)
{
    size_t n = (size_t)r->nsteps;
    double head[4], *arr[NARRAYS];
    mp_status st = mp_pipeline_recv_part(pl, w->p, PART_HEAD, head, sizeof head, err);
    if (st != MP_OK) return st;
    w->peak = head[0];
    w->cpu_ticks = head[2];
    w->boot_id = (unsigned)head[3];
    w->end_ms = calloc(n + 1, sizeof(double));
    w->busy_ms = calloc(n + 1, sizeof(double));
    w->step_ms = calloc(n + 1, sizeof(double));
    w->loss = calloc(n + 1, sizeof(double));
    w->ar_ms = calloc(n + 1, sizeof(double));
    if (!w->end_ms || !w->busy_ms || !w->step_ms || !w->loss || !w->ar_ms)
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results of stage %d", w->k);
    arrays_of(w, arr);
    for (int a = 0; a < NARRAYS && st == MP_OK; a++)
        st = mp_pipeline_recv_part(pl, w->p, PART_ARRAYS + a, arr[a], n * sizeof(double), err);
    int ne = (int)head[1];
    for (int e = 0; e < ne && st == MP_OK; e++) {
        mp_trace_event z;
        memset(&z, 0, sizeof z);
        if ((st = mp_trace_add(&w->trace, z)) != MP_OK) mp_error_set(err, st, "out of memory for the trace");
    }
    if (ne && st == MP_OK)
        st = mp_pipeline_recv_part(pl, w->p, PART_TRACE, w->trace.ev, (size_t)ne * sizeof(mp_trace_event), err);
    return st;
}

mp_status mp_train_gather(void *run, mp_pipeline *pl, int p, mp_error *err)
{
    mp_train_run *r = run;
    return pl->rank == p ? send_result(r, pl, &r->w[p], err) : recv_result(r, pl, &r->w[p], err);
}

/* Every stage's parameters (replica 0's) into h in stage order: hashed here
 * where the stage ran here, received from its rank otherwise; dg[s]: the
 * stage's own digest. */
static mp_status checksum(mp_train_run *r, mp_pipeline *pl, mp_sha256 *h, unsigned char (*dg)[32], mp_error *err)
{
    for (int s = 0; s < r->S; s++) {
        int p = mp_train_pos_of(r, s);
        mp_train_worker *w = &r->w[p];
        mp_status st;
        if (pl->rank < 0 || p == pl->rank) {
            if ((st = mp_train_hash_stage(w, &w->st[s / r->K], h)) != MP_OK) return mp_error_set(err, st, "%s", w->err.msg);
            if (r->D > 1 && (st = stage_digest(w, &w->st[s / r->K], dg[s], err)) != MP_OK) return st;
            continue;
        }
        const mp_stage *ps = &r->plan->stages[s];
        long long np = 0;
        for (int l = ps->first; l <= ps->last; l++) np += r->model->layers[l].param_count;
        float *buf = malloc((size_t)(np ? np : 1) * sizeof(float));
        if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the parameters of stage %d", s);
        st = mp_pipeline_recv_part(pl, p, PART_PARAMS + s / r->K, buf, (size_t)np * sizeof(float), err);
        if (st == MP_OK) mp_sha256_update(h, buf, (size_t)np * sizeof(float));
        if (st == MP_OK && r->D > 1) {
            mp_sha256 one;
            mp_sha256_init(&one);
            mp_sha256_update(&one, buf, (size_t)np * sizeof(float));
            mp_sha256_final(&one, dg[s]);
        }
        free(buf);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

/* The share of the machine's CPUs that processes outside this run took since
 * mp_run began: under MPI the ranks on this machine (same boot id) are ours. */
static double others_pct(mp_train_run *r, mp_pipeline *pl)
{
    mp_cpu_sample now = mp_machine_cpu_sample();
    double ours = 0;
    unsigned boot = mp_machine_boot_id();
    for (int p = 0; p < r->P && pl->rank >= 0; p++)
        if (p != pl->rank && boot && r->w[p].boot_id == boot) ours += r->w[p].cpu_ticks;
    return mp_machine_others_pct(&r->cpu0, &now, ours);
}

/* Replicas 1..D-1 hold bitwise replica 0's weights (dg: replica 0's stage
 * digests): hashed here (threads) or received from their ranks. */
static mp_status check_replicas(mp_train_run *r, mp_pipeline *pl, unsigned char (*dg)[32], mp_error *err)
{
    for (int q = 1; q < r->D; q++)
        for (int s = 0; s < r->S; s++) {
            int p = q * r->K + mp_train_pos_of(r, s);
            mp_train_worker *w = &r->w[p];
            unsigned char got[32];
            mp_status st = pl->rank < 0 ? stage_digest(w, &w->st[s / r->K], got, err)
                                        : mp_pipeline_recv_part(pl, p, PART_DIGEST + s / r->K, got, sizeof got, err);
            if (st != MP_OK) return st;
            if (memcmp(got, dg[s], 32))
                return mp_error_set(err, MP_ERR_INTERNAL, "replica %d stage %d: its weights differ from replica 0's "
                                    "after the run (the all-reduce did not keep the replicas equal)", q, s);
        }
    return MP_OK;
}

mp_status mp_train_collect(void *run, mp_pipeline *pl, mp_error *err)
{
    mp_train_run *r = run;
    mp_run_result *res = r->res;
    int n = r->nsteps, K = r->K, P = r->P;
    mp_sha256 h;
    mp_sha256_init(&h);
    unsigned char (*dg)[32] = calloc((size_t)r->S, 32);
    if (!dg) return mp_error_set(err, MP_ERR_NOMEM, "out of memory");
    mp_status st = checksum(r, pl, &h, dg, err);
    if (st == MP_OK) st = check_replicas(r, pl, dg, err);
    free(dg);
    if (st != MP_OK) return st;
    res->is_root = 1;
    res->num_positions = P;
    res->replicas = r->D;
    res->first_step = r->first_step;
    res->steps = n;
    res->param_count = mp_model_param_count(r->model);
    res->entropy_rate = mp_data_entropy_rate(&r->data);
    res->loss = calloc((size_t)n + 1, sizeof(double));
    res->iter_ms = calloc((size_t)n + 1, sizeof(double));
    res->step_ms = calloc((size_t)n + 1, sizeof(double));
    res->busy_ms = calloc((size_t)P, sizeof(double));
    res->peak_bytes = calloc((size_t)P, sizeof(double));
    double *ar = calloc((size_t)n + 1, sizeof(double));
    if (!res->loss || !res->iter_ms || !res->step_ms || !res->busy_ms || !res->peak_bytes || !ar) {
        free(ar);
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results");
    }
    int lastp = mp_train_pos_of(r, r->S - 1);
    for (int k = 0; k < n; k++) {
        res->loss[k] = r->w[lastp].loss[k];
        for (int p = 0; p < P; p++) {
            if (r->w[p].end_ms[k] > res->iter_ms[k]) res->iter_ms[k] = r->w[p].end_ms[k];
            if (r->w[p].step_ms[k] > res->step_ms[k]) res->step_ms[k] = r->w[p].step_ms[k];
            if (r->w[p].ar_ms[k] > ar[k]) ar[k] = r->w[p].ar_ms[k];
        }
    }
    int warm = r->c->warmup < n ? r->c->warmup : n - 1;
    if (warm < 0) warm = 0;
    res->iteration_ms = mp_median_of(res->iter_ms + warm, n - warm);
    res->step_median_ms = mp_median_of(res->step_ms + warm, n - warm);
    res->samples_per_s = res->iteration_ms > 0 ? r->plan->global_batch / (res->iteration_ms / 1e3) : 0;
    res->allreduce_ms = r->D > 1 ? mp_median_of(ar + warm, n - warm) : 0;
    free(ar);
    for (int p = 0; p < P; p++) {
        res->busy_ms[p] = mp_median_of(r->w[p].busy_ms + warm, n - warm);
        res->peak_bytes[p] = r->w[p].peak;
        for (int e = 0; p < K && e < r->w[p].trace.n && st == MP_OK; e++) st = mp_trace_add(&res->trace, r->w[p].trace.ev[e]);
    }
    res->trace.num_positions = K;
    res->others_pct = others_pct(r, pl);
    res->trace.others_pct = res->others_pct;
    unsigned char sum[32];
    mp_sha256_final(&h, sum);
    mp_sha256_hex(sum, res->checksum);
    return st == MP_OK ? MP_OK : mp_error_set(err, st, "out of memory for the trace");
}
