/* split_zb.c — the search over the splits of a zero-bubble configuration
 * (zb-h1, zb-h2, zb-v; split.h).
 * defines: mp_split_zb_bound, mp_split_zb_search
 *
 * Depth first over every split (each stage's last layer tried from the
 * balanced share of the remaining work outwards), pruned by a simple valid
 * bound: no position can end before it has run its ops, T >= m * (F + BI +
 * W) summed over its placed stages (recompute only adds). Each leaf is
 * timed by the reference itself (mp_plan_evaluate: the same op lists,
 * simulator and memory walk as `mpplan --evaluate`), so the times and the
 * fit are exact. Recompute (auto): none when that fits (recompute only
 * lengthens the backwards, so nothing with it is faster); else every set of
 * stages when there are at most ZB_RC_EXACT, else the stages of the
 * positions that do not fit (optimality then unproven). */
#include "split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evaluate.h"

#define ZB_RC_EXACT 8

typedef struct {
    mp_split *x;
    const mp_profile *prof;
    int S, K, L, m;
    int *pos;          /* [S] position of each stage */
    double *work;      /* [L+1] prefix sums of fwd + bwd_input + bwd_weight at b (profile ms) */
    double *busy;      /* [K] placed m*(F+BI+W) per position */
    mp_plan plan;      /* the leaf being timed */
    mp_status st;
} zb_ctx;

/* See split.h. */
double mp_split_zb_bound(const mp_profile *prof, const mp_cluster *cl, int K, int b, int m)
{
    double w = 0, sp = 0;
    for (int l = 0; l < prof->num_layers; l++) {
        const mp_layer_cost *c = &prof->layers[l];
        w += mp_time_eval(&c->fwd, b) + mp_time_eval(&c->bwd_in, b) + mp_time_eval(&c->bwd_w, b);
    }
    for (int p = 0; p < K && p < cl->num_devices; p++) sp += cl->devices[p].speed;
    return sp > 0 ? m * w / sp : HUGE_VAL;
}

/* Times the leaf with recompute rc (plan.stages[].recompute); *t = its
 * iteration, HUGE_VAL when it does not fit; *misfit (optional) marks the
 * positions that do not. */
static mp_status time_leaf(zb_ctx *z, double *t, unsigned char *misfit)
{
    mp_error e;
    mp_error_clear(&e);
    if (!mp_tally_sim_fits(z->x->tally, 3.0 * z->m * z->S)) { *t = HUGE_VAL; return MP_OK; }   /* the time limit */
    z->x->tally->sims++;
    z->x->tally->simops += 3.0 * z->m * z->S;
    double t1 = mp_now_s();
    mp_status st = mp_plan_evaluate(&z->plan, z->prof, z->x->cl, z->x->sf, NULL, &e);
    z->x->tally->sim_s += mp_now_s() - t1;
    if (st == MP_ERR_NOMEM) return st;
    if (st != MP_OK) { *t = HUGE_VAL; return MP_OK; }
    int fits = 1;
    for (int p = 0; p < z->K; p++) {
        int bad = !(z->plan.predicted.peak_memory_bytes[p] <= mp_split_mem(z->x, p));
        if (misfit) misfit[p] = (unsigned char)bad;
        fits &= !bad;
    }
    *t = fits ? z->plan.predicted.iteration_ms : HUGE_VAL;
    return MP_OK;
}

/* All stages placed (z->x->hi): the best recompute, offered to the incumbents. */
static mp_status leaf(zb_ctx *z)
{
    mp_split *x = z->x;
    int S = z->S;
    for (int s = 0, lo = 0; s < S; s++) {
        z->plan.stages[s].first = lo;
        z->plan.stages[s].last = x->hi[s];
        lo = x->hi[s] + 1;
    }
    double best = HUGE_VAL, t;
    int *rc = x->rc;
    mp_status st;
    unsigned char misfit[64] = { 0 };
    for (int s = 0; s < S; s++) z->plan.stages[s].recompute = x->mode == MP_RC_ON;
    if ((st = time_leaf(z, &t, z->K <= 64 ? misfit : NULL)) != MP_OK) return st;
    best = t;
    if (t == HUGE_VAL && x->mode == MP_RC_AUTO) {
        /* recompute only lengthens backwards: without it is best when it fits; else every set */
        if (S <= ZB_RC_EXACT) {
            int brc[ZB_RC_EXACT] = { 0 };
            for (unsigned set = 1; set < (1u << S); set++) {
                for (int s = 0; s < S; s++) z->plan.stages[s].recompute = (set >> s) & 1;
                if ((st = time_leaf(z, &t, NULL)) != MP_OK) return st;
                if (t < best) {
                    best = t;
                    for (int s = 0; s < S; s++) brc[s] = (set >> s) & 1;
                }
            }
            for (int s = 0; s < S; s++) z->plan.stages[s].recompute = brc[s];
        } else if (z->K <= 64) {   /* the stages of the positions that do not fit */
            for (int s = 0; s < S; s++) z->plan.stages[s].recompute = misfit[z->pos[s]];
            if ((st = time_leaf(z, &best, NULL)) != MP_OK) return st;
            x->tally->inexact = 1;
        }
    }
    for (int s = 0; s < S; s++) rc[s] = z->plan.stages[s].recompute;
    if (best < mp_top_threshold(x->top, &x->c)) return mp_top_offer(x->top, &x->c, x->hi, rc, best);
    return MP_OK;
}

static double span(const zb_ctx *z, int lo, int hi) { return z->work[hi + 1] - z->work[lo]; }

/* Places stage s from layer lo on. */
static mp_status dfs(zb_ctx *z, int s, int lo)
{
    mp_split *x = z->x;
    if (mp_tally_spent(x->tally)) { x->tally->out_of_budget = 1; return MP_OK; }
    x->tally->nodes++;
    int S = z->S, L = z->L, p = z->pos[s];
    double sp = x->cl->devices[p].speed;
    if (s == S - 1) {
        x->hi[s] = L - 1;
        double b = z->busy[p] + z->m * span(z, lo, L - 1) / sp;
        if (b >= mp_top_threshold(x->top, &x->c)) return MP_OK;
        return leaf(z);
    }
    int hmax = L - 1 - (S - 1 - s);
    /* the balanced share of what is left, then outwards */
    double share = span(z, lo, L - 1) / (S - s);
    int mid = lo;
    while (mid < hmax && span(z, lo, mid) < share) mid++;
    for (int d = 0; d <= hmax - lo; d++)
        for (int side = 0; side < 2; side++) {
            int h = side ? mid + d : mid - d - 1;
            if (h < lo || h > hmax || (side && d > hmax - mid)) continue;
            double add = z->m * span(z, lo, h) / sp;
            if (z->busy[p] + add >= mp_top_threshold(x->top, &x->c)) continue;
            z->busy[p] += add;
            x->hi[s] = h;
            mp_status st = dfs(z, s + 1, h + 1);
            z->busy[p] -= add;
            if (st != MP_OK) return st;
            if (x->tally->out_of_budget) return MP_OK;
        }
    return MP_OK;
}

/* See split.h. */
mp_status mp_split_zb_search(mp_split *x, mp_error *err)
{
    const mp_config *c = &x->c;
    zb_ctx z;
    memset(&z, 0, sizeof z);
    z.x = x;
    z.prof = x->ps.prof;
    z.S = c->S;
    z.K = c->K;
    z.L = x->ps.L;
    z.m = c->m;
    z.pos = malloc((size_t)z.S * sizeof *z.pos);
    z.work = malloc(((size_t)z.L + 1) * sizeof *z.work);
    z.busy = calloc((size_t)z.K, sizeof *z.busy);
    z.plan.stages = calloc((size_t)z.S, sizeof *z.plan.stages);
    mp_status st = MP_OK;
    if (!z.pos || !z.work || !z.busy || !z.plan.stages) {
        st = mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
        goto out;
    }
    for (int s = 0; s < z.S; s++) z.pos[s] = x->ops.stage_pos[s];
    z.work[0] = 0;
    for (int l = 0; l < z.L; l++) {
        const mp_layer_cost *lc = &z.prof->layers[l];
        z.work[l + 1] = z.work[l] + mp_time_eval(&lc->fwd, c->b) + mp_time_eval(&lc->bwd_in, c->b) +
                        mp_time_eval(&lc->bwd_w, c->b);
    }
    z.plan.mode = MP_MODE_TRAIN;
    z.plan.schedule = (mp_schedule_kind)c->kind;
    z.plan.chunks_per_device = mp_schedule_chunks(z.plan.schedule, c->v);
    z.plan.microbatch_size = c->b;
    z.plan.num_microbatches = c->m;
    z.plan.data_parallel = c->D > 1 ? c->D : 1;   /* the reference times the replicas' all-reduces too */
    z.plan.global_batch = z.plan.data_parallel * c->b * c->m;
    z.plan.num_stages = z.S;
    for (int s = 0; s < z.S; s++) z.plan.stages[s].device = z.pos[s];
    if (z.S <= z.L) st = dfs(&z, 0, 0);
    if (st != MP_OK) st = mp_error_set(err, st, "search: out of memory");
out:
    free(z.plan.predicted.peak_memory_bytes);
    free(z.plan.stages);
    free(z.pos);
    free(z.work);
    free(z.busy);
    return st;
}
