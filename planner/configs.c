/* configs.c — the search's configurations (configs.h).
 * defines: mp_config_fits, mp_configs_list */
#include "configs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* See configs.h. A stage's peak grows with its last layer, so the layers
 * reachable after stage s form intervals, each marked once. */
int mp_config_fits(const mp_stage_fit *f, int *from, int *hi_out)
{
    int L = f->ps->L, S = f->S;
    for (int i = 0; i < (S + 1) * (L + 1); i++) from[i] = -1;
    from[0] = 0;
    for (int s = 0; s < S; s++) {
        int marked = -1, any = 0, *cur = from + (size_t)s * (L + 1), *next = cur + L + 1;
        for (int lo = 0; lo < L; lo++) {
            if (cur[lo] < 0) continue;
            int h, hmax = L - 1 - (S - 1 - s);
            MP_LAST_TRUE(h, lo, hmax, mp_stage_fit_rc(f, s, lo, hi) >= 0);
            for (int k = (lo > marked + 1 ? lo : marked + 1); k <= h; k++) next[k + 1] = lo, any = 1;
            if (h > marked) marked = h;
        }
        if (!any) return 0;
    }
    if (from[(size_t)S * (L + 1) + L] < 0) return 0;
    for (int s = S, end = L; hi_out && s >= 1; s--) {
        hi_out[s - 1] = end - 1;
        end = from[(size_t)s * (L + 1) + end];
    }
    return 1;
}

static int cmp_config(const void *a, const void *b)
{
    const mp_config *x = a, *y = b;
    if (x->lb != y->lb) return x->lb < y->lb ? -1 : 1;
    if (x->S != y->S) return x->S - y->S;
    if (x->b != y->b) return x->b - y->b;
    return x->pl - y->pl;
}

/* See configs.h. */
mp_status mp_configs_list(const mp_search_opts *o, const mp_placements *pls, const mp_prefix *ps,
                          mp_bound_data *bd, mp_config **out, int *n, long *dropped, mp_error *err)
{
    int G = o->global_batch, L = ps->L, cap = 64, cnt = 0, D = 1;
    for (int i = 0; i < pls->n; i++)
        if (pls->p[i].K > D) D = pls->p[i].K;
    mp_config *v = malloc((size_t)cap * sizeof *v);
    int *from = malloc(((size_t)D + 1) * ((size_t)L + 1) * sizeof(int));
    *out = NULL;
    *n = 0;
    if (!v || !from) goto nomem;
    for (int b = 1; b <= G; b++) {
        if (G % b || (o->microbatch && b != o->microbatch)) continue;
        int m = G / b;
        for (int pl = 0; pl < pls->n; pl++) {
            int K = pls->p[pl].K;
            if (K > L || K < o->min_devices || (o->max_devices > 0 && K > o->max_devices)) continue;
            bd->cl = &pls->p[pl].cl;
            for (int kind = 0; kind < 3; kind++) {
                if (o->schedule >= 0 && kind != o->schedule) continue;
                int vmin = kind == MP_SCHED_INTERLEAVED ? 2 : 1, vmax = 1;
                if (kind == MP_SCHED_INTERLEAVED) {
                    if (K < 2 || m % K) continue;
                    vmax = L / K;
                }
                for (int vv = vmin; vv <= vmax; vv++) {
                    if (cnt == cap) {
                        mp_config *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
                        if (!nv) goto nomem;
                        v = nv;
                    }
                    mp_config c = { .K = K, .b = b, .kind = kind, .v = vv, .S = K * vv, .m = m, .pl = pl };
                    c.lb = mp_bound_quick(bd, K, b, kind, vv, m);
                    if (kind != MP_SCHED_INTERLEAVED)  /* the split relaxation orders them well */
                        c.lb = mp_bound_split(bd, K, b, kind, m, c.lb, HUGE_VAL) * (1 - MP_BOUND_SLACK);
                    v[cnt++] = c;
                }
            }
        }
    }
    for (int i = 0; i < cnt && cnt <= 64; i++) {  /* small lists: drop infeasible ones up front */
        mp_stage_fit f = mp_config_fit(&v[i], ps, &pls->p[v[i].pl].cl, o);
        if (v[i].kind != MP_SCHED_INTERLEAVED && !mp_config_fits(&f, from, NULL)) {
            v[i--] = v[--cnt];
            (*dropped)++;
        }
    }
    free(from);
    qsort(v, (size_t)cnt, sizeof *v, cmp_config);
    *out = v;
    *n = cnt;
    return MP_OK;
nomem:
    free(v);
    free(from);
    return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory");
}
