/* minmem.c — the smallest uniform per-device memory with which some plan fits
 * (search.h: mp_search_min_memory).
 * defines: mp_search_min_memory
 *
 * For gpipe/1f1b the smallest allowed micro-batch minimises every stage's
 * peak (gpipe: m*b = global batch / D; 1f1b: min(K-j, m)*b grows with b) and
 * 1f1b's peak never exceeds gpipe's (inflight min(K-j, m) <= m), so only
 * (D, K, smallest b, 1f1b if allowed else gpipe) are examined, D over the
 * replicas o allows (D*K <= devices, replicas on devices of the same kind,
 * D*b dividing the global batch; each replica's stages hold the all-reduce
 * buffer): a bisection on the memory M with the search's exact check that
 * some split into K stages fits (mp_config_fits, planner/configs.c).
 * Interleaved-only and the zero-bubble schedules: bisection with a budgeted
 * split search (which searches D as o says). */
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "configs.h"
#include "evaluate.h"
#include "memory.h"
#include "prefix.h"
#include "schedule.h"

typedef struct {
    const mp_search_opts *o;
    mp_prefix ps;
    mp_cluster cl;             /* the cluster with every device's memory set to M */
    int b, m, kind, D;         /* micro-batch, micro-batches per replica, schedule, replicas */
} mm_ctx;

/* *c: a copy of cl whose devices' memory set_memory changes (free
 * c->devices). */
static int copy_cluster(mp_cluster *c, const mp_cluster *cl)
{
    *c = *cl;
    c->devices = malloc((size_t)cl->num_devices * sizeof *c->devices);
    if (c->devices) memcpy(c->devices, cl->devices, (size_t)cl->num_devices * sizeof *c->devices);
    return c->devices != NULL;
}

static void set_memory(mp_cluster *c, double M)
{
    for (int d = 0; d < c->num_devices; d++) c->devices[d].memory_bytes = M;
}

/* The stage memory of K stages on x's cluster. */
static mp_stage_fit fit_of(const mm_ctx *x, int K)
{
    mp_stage_fit f = { &x->ps, &x->cl, x->o->state_factor, x->o->recompute, x->kind, K, x->m, x->b, x->D };
    return f;
}

/* Smallest allowed peak of stage s of f holding lo..hi; *rc the recompute
 * choice that gives it. */
static double peak(const mp_stage_fit *f, int s, int lo, int hi, int *rc)
{
    double p0 = mp_stage_fit_peak(f, s, lo, hi, 0), p1 = mp_stage_fit_peak(f, s, lo, hi, 1);
    if (f->mode == MP_RC_OFF) { *rc = 0; return p0; }
    if (f->mode == MP_RC_ON) { *rc = 1; return p1; }
    *rc = p1 < p0;
    return p1 < p0 ? p1 : p0;
}

/* 1 when K stages can hold the model with every peak <= M; fills hi/rc. */
static int feasible(mm_ctx *x, int K, double M, int *from, int *hi_out, int *rc_out)
{
    set_memory(&x->cl, M);
    mp_stage_fit f = fit_of(x, K);
    if (!mp_config_fits(&f, from, hi_out)) return 0;
    for (int s = 0, lo = 0; s < K; s++) {
        peak(&f, s, lo, hi_out[s], &rc_out[s]);
        lo = hi_out[s] + 1;
    }
    return 1;
}

/* 1 when some (D, K) that x->o allows (D*K <= devices, replicas on devices of
 * the same kind, D*b dividing the global batch; K <= Kmax) holds the model
 * with every peak <= M; the first such (fewest replicas, then stages) into
 * *bestD, *bestK with its split in bhi/brc. */
static int any_feasible(mm_ctx *x, double M, int Kmax, int *from, int *hi, int *rc, int *bestD, int *bestK,
                        int *bhi, int *brc)
{
    const mp_search_opts *o = x->o;
    int N = x->cl.num_devices;
    for (int d = 1; d <= N; d++) {
        if ((o->data_parallel > 0 && d != o->data_parallel) || o->global_batch % (d * x->b)) continue;
        x->D = d;
        x->m = o->global_batch / (d * x->b);
        for (int K = 1; K <= Kmax && K * d <= N; K++) {
            if (d > 1 && !mp_config_replicas_ok(&x->cl, K, d, 0)) continue;
            if (feasible(x, K, M, from, hi, rc)) {
                *bestD = d;
                *bestK = K;
                memcpy(bhi, hi, (size_t)K * sizeof(int));
                memcpy(brc, rc, (size_t)K * sizeof(int));
                return 1;
            }
        }
    }
    return 0;
}

static mp_status fill_plan(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                           int kind, int b, int D, int K, const int *hi, const int *rc, mp_plan *p,
                           mp_error *err)
{
    memset(p, 0, sizeof *p);
    p->schedule = kind;
    p->chunks_per_device = 1;
    p->data_parallel = D;
    p->global_batch = o->global_batch;
    p->microbatch_size = b;
    p->num_microbatches = o->global_batch / (D * b);
    p->num_stages = K;
    p->stages = calloc((size_t)K, sizeof *p->stages);
    if (!p->stages) return mp_error_set(err, MP_ERR_NOMEM, "min memory: out of memory");
    for (int s = 0, lo = 0; s < K; s++) {
        p->stages[s] = (mp_stage){ lo, hi[s], s, rc[s] };
        lo = hi[s] + 1;
    }
    return mp_plan_evaluate(p, prof, cl, o->state_factor, NULL, err);
}

static double max_peak(const mp_plan *p)
{
    double m = 0;
    for (int i = 0; i < p->predicted.num_peaks; i++)
        if (p->predicted.peak_memory_bytes[i] > m) m = p->predicted.peak_memory_bytes[i];
    return m;
}

/* Interleaved only: bisection with the budgeted search on a uniform copy. */
static mp_status interleaved_min(const mp_profile *prof, const mp_cluster *cl, const mp_search_opts *o,
                                 double *min_bytes, mp_plan *plan, mp_error *err)
{
    mp_cluster c;
    if (!copy_cluster(&c, cl)) return mp_error_set(err, MP_ERR_NOMEM, "min memory: out of memory");
    mp_search_opts so = *o;
    so.top = 1;
    so.node_budget = 20000;     /* deterministic work caps, no time limit */
    so.sim_op_budget = 1.5e7;
    so.time_limit = 0;
    so.progress = 0;
    double lo = 0, hi = 1;
    int have = 0;
    mp_status st = MP_OK;
    for (int it = 0; it < 200 && (!have || hi - lo > 1e-9 * hi); it++) {
        double M = have ? 0.5 * (lo + hi) : hi;
        set_memory(&c, M);
        mp_search_result r;
        mp_error e;
        mp_error_clear(&e);
        st = mp_search_run(prof, &c, &so, &r, &e);
        if (st == MP_OK) {
            mp_plan_free(plan);
            mp_plan_copy(plan, &r.plans[0]);
            hi = max_peak(plan);
            have = 1;
        } else if (st == MP_ERR_NOFIT) {
            if (have) lo = M; else { lo = hi; hi *= 4; }
        } else {
            *err = e;
            mp_search_result_free(&r);
            break;
        }
        mp_search_result_free(&r);
        st = MP_OK;
        if (!have && hi > 1e300) break;
    }
    free(c.devices);
    if (st != MP_OK) return st;
    if (!have) return mp_error_set(err, MP_ERR_NOFIT, "no plan fits with any memory");
    *min_bytes = ceil(hi);
    return MP_OK;
}

/* See search.h. */
mp_status mp_search_min_memory(const mp_profile *prof, const mp_cluster *cl,
                               const mp_search_opts *o, double *min_bytes, mp_plan *plan,
                               mp_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (o->schedule == MP_SCHED_INTERLEAVED || (o->schedule >= 0 && mp_schedule_is_zb((mp_schedule_kind)o->schedule)))
        return interleaved_min(prof, cl, o, min_bytes, plan, err);   /* zero bubble: the same bisection */
    mm_ctx x = { o, { 0 }, { 0 }, o->microbatch ? o->microbatch : 1, 0,
                 o->schedule == MP_SCHED_GPIPE ? MP_SCHED_GPIPE : MP_SCHED_1F1B, 1 };
    x.m = o->global_batch / x.b;
    int L = prof->num_layers, N = cl->num_devices, D = N < L ? N : L;
    copy_cluster(&x.cl, cl);
    int *from = malloc((size_t)(D + 1) * (L + 1) * sizeof(int));
    int *hi = malloc((size_t)(D + 1) * sizeof(int)), *rc = malloc((size_t)(D + 1) * sizeof(int));
    int *bhi = malloc((size_t)(D + 1) * sizeof(int)), *brc = malloc((size_t)(D + 1) * sizeof(int));
    mp_status st = MP_OK;
    if (!x.cl.devices || !from || !hi || !rc || !bhi || !brc || mp_prefix_init(&x.ps, prof) != MP_OK) {
        st = mp_error_set(err, MP_ERR_NOMEM, "min memory: out of memory");
        goto out;
    }
    /* upper: one stage holding everything fits at its own peak with D = 1;
     * doubled while no allowed (D, K) fits (a fixed D) */
    int r0, bestK = 1, bestD = 1;
    set_memory(&x.cl, 1);   /* uniform: the replicas' check compares speeds and links */
    mp_stage_fit one = fit_of(&x, 1);
    double hiM = peak(&one, 0, 0, L - 1, &r0), loM = 0;
    int up = 0;
    while (!any_feasible(&x, hiM, D, from, hi, rc, &bestD, &bestK, bhi, brc) && ++up < 200) hiM *= 2;
    if (up == 200) {
        st = mp_error_set(err, MP_ERR_NOFIT, "no plan fits with any memory");
        goto out;
    }
    while (hiM - loM > 1e-12 * hiM) {
        double M = 0.5 * (loM + hiM);
        int ok = any_feasible(&x, M, D, from, hi, rc, &bestD, &bestK, bhi, brc);
        if (ok) hiM = M; else loM = M;
        if (M == loM && M == hiM) break;
        if (hiM - loM <= 0.5) break;  /* bytes: half a byte is enough */
    }
    st = fill_plan(prof, cl, o, x.kind, x.b, bestD, bestK, bhi, brc, plan, err);
    if (st == MP_OK) *min_bytes = ceil(max_peak(plan));
out:
    mp_prefix_free(&x.ps);
    free(x.cl.devices); free(from); free(hi); free(rc); free(bhi); free(brc);
    return st;
}
