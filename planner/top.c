/* top.c — the search's incumbents (top.h).
 * defines: mp_top_init, mp_top_free, mp_top_offer, mp_top_plan */
#include "top.h"

#include <stdlib.h>
#include <string.h>

#include "evaluate.h"

/* See top.h. */
mp_status mp_top_init(mp_top *t, int cap)
{
    t->n = 0;
    t->cap = cap;
    t->e = calloc((size_t)cap, sizeof *t->e);
    return t->e ? MP_OK : MP_ERR_NOMEM;
}

/* See top.h. */
void mp_top_free(mp_top *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->e[i].hi);
        free(t->e[i].rc);
    }
    free(t->e);
    memset(t, 0, sizeof *t);
}

static void swap(mp_top_entry *a, mp_top_entry *b)
{
    mp_top_entry tmp = *a;
    *a = *b;
    *b = tmp;
}

/* See top.h. */
mp_status mp_top_offer(mp_top *t, const mp_config *c, const int *hi, const int *rc, double time)
{
    int S = c->S, slot = -1;
    for (int i = 0; i < t->n; i++)
        if (mp_config_same(&t->e[i].c, c)) slot = i;
    if (slot < 0) {
        if (t->n < t->cap) {
            slot = t->n++;
            memset(&t->e[slot], 0, sizeof t->e[slot]);
        } else {
            slot = t->n - 1;
        }
    }
    mp_top_entry *e = &t->e[slot];
    if (!e->hi || e->c.S < S) {
        free(e->hi);
        free(e->rc);
        e->hi = malloc((size_t)S * sizeof(int));
        e->rc = malloc((size_t)S * sizeof(int));
        if (!e->hi || !e->rc) return MP_ERR_NOMEM;
    }
    e->t = time;
    e->c = *c;
    memcpy(e->hi, hi, (size_t)S * sizeof(int));
    memcpy(e->rc, rc, (size_t)S * sizeof(int));
    for (; slot > 0 && t->e[slot - 1].t > t->e[slot].t; slot--) swap(&t->e[slot - 1], &t->e[slot]);
    for (; slot + 1 < t->n && t->e[slot + 1].t < t->e[slot].t; slot++) swap(&t->e[slot + 1], &t->e[slot]);
    return MP_OK;
}

/* See top.h. */
mp_status mp_top_plan(const mp_top_entry *e, int G, const mp_profile *prof, const mp_cluster *cl,
                      const int *dev, double sf, mp_plan *p, mp_error *err)
{
    memset(p, 0, sizeof *p);
    p->mode = MP_MODE_TRAIN;
    p->schedule = e->c.kind;
    p->chunks_per_device = e->c.kind == MP_SCHED_INTERLEAVED || e->c.kind == MP_SCHED_ZB_V ? e->c.v : 1;
    p->global_batch = G;
    p->microbatch_size = e->c.b;
    p->num_microbatches = e->c.m;
    p->num_stages = e->c.S;
    p->data_parallel = e->c.D > 1 ? e->c.D : 1;
    p->stages = calloc((size_t)e->c.S, sizeof *p->stages);
    if (!p->stages) return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
    for (int s = 0, lo = 0; s < e->c.S; s++) {
        p->stages[s].first = lo;
        p->stages[s].last = e->hi[s];
        int K = e->c.K;   /* zb-v: the V, stage s >= K back on position 2K-1-s */
        int q = e->c.kind == MP_SCHED_ZB_V && s >= K ? 2 * K - 1 - s : s % K;
        p->stages[s].device = dev ? dev[q] : q;
        p->stages[s].recompute = e->rc[s];
        lo = e->hi[s] + 1;
    }
    return mp_plan_evaluate(p, prof, cl, sf, NULL, err);
}
