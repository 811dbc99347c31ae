/* configs.h — the configurations the planner's search visits: (K positions,
 * micro-batch b, schedule, v chunks, placement: which devices in which
 * order, planner/placement.h), each with a split-independent lower bound on
 * its iteration time (planner/bounds.h), best bound first. To add a
 * schedule or another dimension: a field here, compared in mp_config_same,
 * and a loop in mp_configs_list.
 * defines: mp_config, mp_config_same, mp_config_cluster, mp_config_fit, mp_config_fits,
 *          mp_configs_list */
#ifndef MP_CONFIGS_H
#define MP_CONFIGS_H

#include "bounds.h"
#include "cluster.h"
#include "mp_status.h"
#include "placement.h"
#include "prefix.h"
#include "search.h"

#define MP_BOUND_SLACK 1e-10  /* relative: bounds are lowered by it so that rounding never prunes an optimum */

typedef struct {
    int K, b, kind, v, S, m;   /* positions, micro-batch, mp_schedule_kind, chunks (1 unless
                                * interleaved), stages K*v, micro-batches per replica */
    double lb;                 /* lower bound on the iteration time of its plans */
    int pl;                    /* placement (index into the search's mp_placements; K devices), or
                                * -1 with replicas (D > 1: position k of replica r on device r*K + k
                                * of the cluster file); initialise mp_config by member names */
    int D;                     /* data-parallel replicas (>= 1); global batch D*m*b */
} mp_config;

/* 1 when a and b are the same configuration (their bounds aside). */
static inline int mp_config_same(const mp_config *a, const mp_config *b)
{
    return a->K == b->K && a->b == b->b && a->kind == b->kind && a->v == b->v && a->pl == b->pl && a->D == b->D;
}

/* 1 when D replicas of a pipeline on devices 0..K-1 may run on devices
 * r*K + k (the planner's replicas): every device r*K + k has the speed and
 * memory of device k, and every pipeline link of replica r (k to k+1 and
 * back; with ring, interleaved's wrap from K-1 to 0 and back too) the
 * bandwidth and latency of replica 0's; D*K <= devices. */
int mp_config_replicas_ok(const mp_cluster *cl, int K, int D, int ring);

/* The devices configuration c runs on, position k on device k: its
 * placement's, or with replicas (pl < 0) the whole cluster cl in file order. */
static inline const mp_cluster *mp_config_cluster(const mp_config *c, const mp_placements *pls,
                                                  const mp_cluster *cl)
{
    return c->pl >= 0 ? &pls->p[c->pl].cl : cl;
}

/* The stage memory of gpipe/1f1b configuration c under options o. */
static inline mp_stage_fit mp_config_fit(const mp_config *c, const mp_prefix *ps, const mp_cluster *cl,
                                         const mp_search_opts *o)
{
    mp_stage_fit f = { ps, cl, o->state_factor, o->recompute, c->kind, c->S, c->m, c->b, c->D };
    return f;
}

/* gpipe/1f1b: 1 when some split into f->S stages has every stage fit its
 * device (recompute as f->mode allows); exact. from: scratch of
 * mp_config_fits_scratch ints. With hi_out ([f->S]) not NULL, a fitting
 * split's last layers go there. */
int mp_config_fits(const mp_stage_fit *f, int *from, int *hi_out);

/* The ints of mp_config_fits's scratch for any configuration of ps on cl. */
static inline size_t mp_config_fits_scratch(const mp_prefix *ps, const mp_cluster *cl)
{
    int K = cl->num_devices < ps->L ? cl->num_devices : ps->L;
    return ((size_t)K + 1) * ((size_t)ps->L + 1);
}

/* Every configuration o allows, each with its bound (gpipe/1f1b sharpened
 * by mp_bound_split), by increasing bound (ties: fewer stages, then smaller
 * b, then placement, then fewer replicas) into *out (free it) and *n. One
 * replica (D = 1) runs on each placement of pls (bd->cl is set to each
 * placement's cluster in turn); D > 1 replicas run in the file order of the
 * whole cluster cl, D an outer dimension: their bound is one replica's
 * pipeline with m = G/(D b) (the all-reduces only add time, the buffer only
 * memory, so it stays a lower bound). When there are at most 64, the
 * gpipe/1f1b ones that fit no split are left out and counted in *dropped.
 * MP_ERR_NOMEM. */
mp_status mp_configs_list(const mp_search_opts *o, const mp_cluster *cl, const mp_placements *pls, const mp_prefix *ps,
                          mp_bound_data *bd, mp_config **out, int *n, long *dropped, mp_error *err);

#endif
