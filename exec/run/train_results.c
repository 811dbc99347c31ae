/* train_results.c — a training run's results (train.h): under MPI every rank
 * ships its per-step arrays, peak, trace and parameters to rank 0 in the
 * driver's gather shape; where the results are held they become the medians,
 * the merged trace and the checksum of the final parameters in stage order.
 * defines: mp_train_gather, mp_train_collect
 *
 * Parts of rank p's result (mp_pipeline_send_part, tag k):
 *   k = 0       double[4]: peak bytes, trace events, the rank's CPU ticks, its boot id
 *   k = 1..4    double[nsteps]: end_ms, busy_ms, step_ms, loss
 *   k = 5       mp_trace_event[events]: the last step's trace
 *   k = 16 + j  float[params]: the parameters of its j-th stage (stage p + j*K),
 *               received by mp_train_collect in stage order */
#include "train.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>

enum { PART_HEAD = 0, PART_ARRAYS = 1, PART_TRACE = 5, PART_PARAMS = 16 };

static double **arrays_of(mp_train_worker *w, double *a[4])
{
    a[0] = w->end_ms;
    a[1] = w->busy_ms;
    a[2] = w->step_ms;
    a[3] = w->loss;
    return a;
}

static mp_status send_result(mp_train_run *r, mp_pipeline *pl, mp_train_worker *me, mp_error *err)
{
    size_t n = (size_t)r->nsteps;
    mp_cpu_sample now = mp_machine_cpu_sample();
    double head[4] = { me->peak, (double)me->trace.n, now.own - r->cpu0.own, (double)mp_machine_boot_id() };
    double *arr[4];
    mp_status st = mp_pipeline_send_part(pl, me->p, PART_HEAD, head, sizeof head, err);
    arrays_of(me, arr);
    for (int a = 0; a < 4 && st == MP_OK; a++)
        st = mp_pipeline_send_part(pl, me->p, PART_ARRAYS + a, arr[a], n * sizeof(double), err);
    if (st == MP_OK && me->trace.n)
        st = mp_pipeline_send_part(pl, me->p, PART_TRACE, me->trace.ev, (size_t)me->trace.n * sizeof(mp_trace_event), err);
    for (int k = 0; k < me->nst && st == MP_OK; k++) {
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
    double head[4], *arr[4];
    mp_status st = mp_pipeline_recv_part(pl, w->p, PART_HEAD, head, sizeof head, err);
    if (st != MP_OK) return st;
    w->peak = head[0];
    w->cpu_ticks = head[2];
    w->boot_id = (unsigned)head[3];
    w->end_ms = calloc(n + 1, sizeof(double));
    w->busy_ms = calloc(n + 1, sizeof(double));
    w->step_ms = calloc(n + 1, sizeof(double));
    w->loss = calloc(n + 1, sizeof(double));
    if (!w->end_ms || !w->busy_ms || !w->step_ms || !w->loss)
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results of stage %d", w->p);
    arrays_of(w, arr);
    for (int a = 0; a < 4 && st == MP_OK; a++)
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

/* Every stage's parameters into h in stage order: hashed here where the
 * stage ran here, received from its rank otherwise. */
static mp_status checksum(mp_train_run *r, mp_pipeline *pl, mp_sha256 *h, mp_error *err)
{
    for (int s = 0; s < r->S; s++) {
        int p = mp_train_pos_of(r, s);
        mp_train_worker *w = &r->w[p];
        mp_status st;
        if (pl->rank < 0 || p == pl->rank) {
            if ((st = mp_train_hash_stage(w, &w->st[s / r->K], h)) != MP_OK) return mp_error_set(err, st, "%s", w->err.msg);
            continue;
        }
        const mp_stage *ps = &r->plan->stages[s];
        long long np = 0;
        for (int l = ps->first; l <= ps->last; l++) np += r->model->layers[l].param_count;
        float *buf = malloc((size_t)(np ? np : 1) * sizeof(float));
        if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the parameters of stage %d", s);
        st = mp_pipeline_recv_part(pl, p, PART_PARAMS + s / r->K, buf, (size_t)np * sizeof(float), err);
        if (st == MP_OK) mp_sha256_update(h, buf, (size_t)np * sizeof(float));
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
    for (int p = 0; p < r->K && pl->rank >= 0; p++)
        if (p != pl->rank && boot && r->w[p].boot_id == boot) ours += r->w[p].cpu_ticks;
    return mp_machine_others_pct(&r->cpu0, &now, ours);
}

mp_status mp_train_collect(void *run, mp_pipeline *pl, mp_error *err)
{
    mp_train_run *r = run;
    mp_run_result *res = r->res;
    int n = r->nsteps, K = r->K;
    mp_sha256 h;
    mp_sha256_init(&h);
    mp_status st = checksum(r, pl, &h, err);
    if (st != MP_OK) return st;
    res->is_root = 1;
    res->num_positions = K;
    res->first_step = r->first_step;
    res->steps = n;
    res->param_count = mp_model_param_count(r->model);
    res->entropy_rate = mp_data_entropy_rate(&r->data);
    res->loss = calloc((size_t)n + 1, sizeof(double));
    res->iter_ms = calloc((size_t)n + 1, sizeof(double));
    res->step_ms = calloc((size_t)n + 1, sizeof(double));
    res->busy_ms = calloc((size_t)K, sizeof(double));
    res->peak_bytes = calloc((size_t)K, sizeof(double));
    if (!res->loss || !res->iter_ms || !res->step_ms || !res->busy_ms || !res->peak_bytes)
        return mp_error_set(err, MP_ERR_NOMEM, "out of memory for the results");
    int lastp = mp_train_pos_of(r, r->S - 1);
    for (int k = 0; k < n; k++) {
        res->loss[k] = r->w[lastp].loss[k];
        for (int p = 0; p < K; p++) {
            if (r->w[p].end_ms[k] > res->iter_ms[k]) res->iter_ms[k] = r->w[p].end_ms[k];
            if (r->w[p].step_ms[k] > res->step_ms[k]) res->step_ms[k] = r->w[p].step_ms[k];
        }
    }
    int warm = r->c->warmup < n ? r->c->warmup : n - 1;
    if (warm < 0) warm = 0;
    res->iteration_ms = mp_median_of(res->iter_ms + warm, n - warm);
    res->step_median_ms = mp_median_of(res->step_ms + warm, n - warm);
    res->samples_per_s = res->iteration_ms > 0 ? r->plan->global_batch / (res->iteration_ms / 1e3) : 0;
    for (int p = 0; p < K; p++) {
        res->busy_ms[p] = mp_median_of(r->w[p].busy_ms + warm, n - warm);
        res->peak_bytes[p] = r->w[p].peak;
        for (int e = 0; e < r->w[p].trace.n && st == MP_OK; e++) st = mp_trace_add(&res->trace, r->w[p].trace.ev[e]);
    }
    res->trace.num_positions = K;
    res->others_pct = others_pct(r, pl);
    res->trace.others_pct = res->others_pct;
    unsigned char dg[32];
    mp_sha256_final(&h, dg);
    mp_sha256_hex(dg, res->checksum);
    return st == MP_OK ? MP_OK : mp_error_set(err, st, "out of memory for the trace");
}
