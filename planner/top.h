/* top.h — the search's incumbents: the best plans found, at most one per
 * configuration, fastest first, and the time a new plan must beat.
 * defines: mp_top_entry, mp_top, mp_top_init, mp_top_free, mp_top_worst, mp_top_threshold,
 *          mp_top_offer, mp_top_plan */
#ifndef MP_TOP_H
#define MP_TOP_H

#include <math.h>

#include "cluster.h"
#include "configs.h"
#include "mp_status.h"
#include "plan.h"
#include "profile.h"

typedef struct {
    double t;                  /* the search's (fast path) iteration time */
    mp_config c;
    int *hi, *rc;              /* [c.S] last layer and recompute of each stage */
} mp_top_entry;

typedef struct {
    mp_top_entry *e;           /* [cap], e[0..n) by increasing t */
    int n, cap;
} mp_top;

/* An empty list keeping at most cap >= 1 plans; MP_ERR_NOMEM. */
mp_status mp_top_init(mp_top *t, int cap);
void mp_top_free(mp_top *t);

/* The time a plan of a configuration not yet in the list must beat
 * (HUGE_VAL while the list is not full). */
static inline double mp_top_worst(const mp_top *t)
{
    return t->n < t->cap ? HUGE_VAL : t->e[t->n - 1].t;
}

/* The time a plan of configuration c must beat to enter the list. */
static inline double mp_top_threshold(const mp_top *t, const mp_config *c)
{
    for (int i = 0; i < t->n; i++)
        if (mp_config_same(&t->e[i].c, c)) return t->e[i].t;
    return mp_top_worst(t);
}

/* Records the split hi/rc of c with time `time` (< mp_top_threshold(t, c)):
 * it replaces c's entry, or the slowest when the list is full. MP_ERR_NOMEM. */
mp_status mp_top_offer(mp_top *t, const mp_config *c, const int *hi, const int *rc, double time);

/* Entry e as a training plan of global batch G (D replicas of m
 * micro-batches of b), position k on cluster device dev[k] (dev NULL:
 * device k), evaluated by the reference (mp_plan_evaluate) on cl with state
 * factor sf; free p with mp_plan_free. */
mp_status mp_top_plan(const mp_top_entry *e, int G, const mp_profile *prof, const mp_cluster *cl,
                      const int *dev, double sf, mp_plan *p, mp_error *err);

#endif
