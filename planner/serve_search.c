/* serve_search.c — serving plan search (serve_search.h, docs/serving.md). */
#include "serve_search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ plans */

void mp_serve_candidate_free(mp_serve_candidate *p)
{
    if (!p) return;
    free(p->first);
    free(p->memory_bytes);
    memset(p, 0, sizeof *p);
}

mp_status mp_serve_candidate_copy(mp_serve_candidate *dst, const mp_serve_candidate *src)
{
    *dst = *src;
    dst->first = NULL;
    dst->memory_bytes = NULL;
    size_t k = (size_t)(src->num_stages > 0 ? src->num_stages : 1);
    dst->first = malloc(k * sizeof(int));
    dst->memory_bytes = calloc(k, sizeof(double));
    if (!dst->first || !dst->memory_bytes) {
        mp_serve_candidate_free(dst);
        return MP_ERR_NOMEM;
    }
    if (src->num_stages > 0) {
        memcpy(dst->first, src->first, (size_t)src->num_stages * sizeof(int));
        if (src->memory_bytes)
            memcpy(dst->memory_bytes, src->memory_bytes, (size_t)src->num_stages * sizeof(double));
    }
    return MP_OK;
}

int mp_serve_candidate_better(const mp_serve_candidate *a, const mp_serve_candidate *b)
{
    const mp_serve_result *x = &a->metrics, *y = &b->metrics;
    if (x->slo_attainment != y->slo_attainment) return x->slo_attainment > y->slo_attainment;
    if (a->num_stages != b->num_stages) return a->num_stages < b->num_stages;
    if (x->p99_ms != y->p99_ms) return x->p99_ms < y->p99_ms;
    if (x->p50_ms != y->p50_ms) return x->p50_ms < y->p50_ms;
    if (a->max_batch != b->max_batch) return a->max_batch < b->max_batch;
    if (a->max_wait_ms != b->max_wait_ms) return a->max_wait_ms < b->max_wait_ms;
    for (int s = 0; s < a->num_stages; s++)
        if (a->first[s] != b->first[s]) return a->first[s] < b->first[s];
    return 0;
}

int mp_serve_meets_slo(const mp_serve_result *r)
{
    return r->p99_ms <= r->slo_ms + 1e-9;
}

/* ------------------------------------------------------------ costs */

static double stage_time(const mp_serve_eval *c, int b, int dev, int lo, int hi)
{
    return mp_serve_eval_stage_ms(c, b, dev, lo, hi);
}

static double link_time(const mp_serve_eval *c, int b, int dev, int hi)
{
    return mp_serve_eval_link_ms(c, b, dev, dev + 1, hi);
}

/* Fills memory and fits only (the check before simulating a candidate). */
static void plan_memory(const mp_serve_eval *c, mp_serve_candidate *p)
{
    int K = p->num_stages, L = c->prof->num_layers;
    p->fits = 1;
    for (int s = 0; s < K; s++) {
        int lo = p->first[s], hi = s + 1 < K ? p->first[s + 1] - 1 : L - 1;
        p->memory_bytes[s] = mp_serve_stage_memory(c->prof, lo, hi, p->max_batch);
        if (p->memory_bytes[s] > c->cluster->devices[s].memory_bytes) p->fits = 0;
    }
}

mp_status mp_serve_candidate_eval(mp_serve_eval *c, mp_serve_candidate *p, const double *arrival_ms, int n,
                             double slo_ms, mp_error *err)
{
    int K = p->num_stages > 0 ? p->num_stages : 1;
    if (!p->memory_bytes && !(p->memory_bytes = calloc((size_t)K, sizeof(double))))
        return mp_error_set(err, MP_ERR_NOMEM, "serving plan: out of memory");
    return mp_serve_eval_split(c, p->num_stages, p->first, NULL, p->max_batch, p->max_wait_ms, arrival_ms, n,
                               slo_ms, &p->metrics, p->memory_bytes, &p->fits, err);
}

mp_status mp_serve_candidate_plan(const mp_serve_candidate *c, const mp_serve_eval *e, double rate_rps,
                                  mp_plan *out, mp_error *err)
{
    int K = c->num_stages, L = e->prof->num_layers;
    memset(out, 0, sizeof *out);
    out->mode = MP_MODE_SERVE;
    out->schedule = MP_SCHED_GPIPE;
    out->chunks_per_device = 1;
    out->global_batch = out->microbatch_size = out->max_batch = c->max_batch;
    out->num_microbatches = 1;
    out->data_parallel = 1;
    out->max_wait_ms = c->max_wait_ms;
    out->stages = calloc((size_t)(K > 0 ? K : 1), sizeof *out->stages);
    if (!out->stages) return mp_error_set(err, MP_ERR_NOMEM, "serving plan: out of memory");
    out->num_stages = K;
    for (int s = 0; s < K; s++)
        out->stages[s] = (mp_stage){ c->first[s], s + 1 < K ? c->first[s + 1] - 1 : L - 1, s, 0 };
    mp_status st = mp_serve_eval_predict(e, out, &c->metrics, c->memory_bytes, rate_rps, err);
    if (st != MP_OK) mp_plan_free(out);
    return st;
}

/* ------------------------------------------------------------ top list */

typedef struct {
    mp_serve_candidate *v;
    int n, cap;
} toplist;

static mp_status top_offer(toplist *t, const mp_serve_candidate *p)
{
    if (t->n == t->cap && !mp_serve_candidate_better(p, &t->v[t->n - 1])) return MP_OK;
    int pos = t->n < t->cap ? t->n : t->cap - 1;
    if (t->n == t->cap) mp_serve_candidate_free(&t->v[t->cap - 1]);
    else t->n++;
    while (pos > 0 && mp_serve_candidate_better(p, &t->v[pos - 1])) {
        t->v[pos] = t->v[pos - 1];
        pos--;
    }
    return mp_serve_candidate_copy(&t->v[pos], p);
}

/* ------------------------------------------------------------ splits */

/* Greedy "furthest reach" for bottleneck T at batch b: each stage takes the
 * longest run of layers whose time and outgoing link time are <= T. Returns
 * the number of stages used (<= K) with cuts in first[], or 0. */
static int greedy_split(const mp_serve_eval *c, int K, int b, double T, int *first)
{
    int L = c->prof->num_layers, pos = 0;
    for (int s = 0; s < K; s++) {
        first[s] = pos;
        if (stage_time(c, b, s, pos, L - 1) <= T) return s + 1;
        if (s == K - 1) return 0;
        int best = -1;
        for (int e = pos; e < L - 1 && stage_time(c, b, s, pos, e) <= T; e++)
            if (link_time(c, b, s, e) <= T) best = e;
        if (best < 0) return 0;
        pos = best + 1;
    }
    return 0;
}

/* Min-bottleneck split (heuristic, see docs/serving.md) padded to K stages by
 * halving the slowest multi-layer stage. */
static void balanced_split(const mp_serve_eval *c, int K, int b, int *first)
{
    int L = c->prof->num_layers;
    double hi = 0, lo = 0, minspeed = INFINITY;
    for (int s = 0; s < K; s++)
        if (c->cluster->devices[s].speed < minspeed) minspeed = c->cluster->devices[s].speed;
    hi = stage_time(c, b, 0, 0, L - 1) * c->cluster->devices[0].speed / minspeed;
    int k = 1;
    first[0] = 0;
    for (int it = 0; it < 100 && hi - lo > 1e-9 * hi; it++) {
        double mid = 0.5 * (lo + hi);
        if (greedy_split(c, K, b, mid, first)) hi = mid;
        else lo = mid;
    }
    k = greedy_split(c, K, b, hi, first);
    if (k == 0) { k = 1; first[0] = 0; }
    while (k < K) {
        int worst = -1;
        double wt = -1;
        for (int s = 0; s < k; s++) {
            int a = first[s], z = s + 1 < k ? first[s + 1] - 1 : L - 1;
            if (z > a && stage_time(c, b, s, a, z) > wt) { wt = stage_time(c, b, s, a, z); worst = s; }
        }
        if (worst < 0) break;
        int a = first[worst], z = worst + 1 < k ? first[worst + 1] - 1 : L - 1, cut = a + 1;
        double bestmax = INFINITY;
        for (int m = a + 1; m <= z; m++) {
            double l = stage_time(c, b, worst, a, m - 1), r = stage_time(c, b, worst, m, z);
            double mx = l > r ? l : r;
            if (mx < bestmax) { bestmax = mx; cut = m; }
        }
        memmove(first + worst + 2, first + worst + 1, (size_t)(k - worst - 1) * sizeof(int));
        first[worst + 1] = cut;
        k++;
    }
}

typedef struct {
    int *v;      /* n splits of K ints */
    int n, cap, K;  /* cap: ints allocated */
} splitpool;

static int pool_add(splitpool *p, const int *first)
{
    for (int i = 0; i < p->n; i++)
        if (!memcmp(p->v + (size_t)i * p->K, first, (size_t)p->K * sizeof(int))) return 1;
    if ((p->n + 1) * p->K > p->cap) {  /* cap counts ints: K changes between uses */
        int cap = 2 * (p->n + 1) * p->K + 64;
        int *v = realloc(p->v, (size_t)cap * sizeof(int));
        if (!v) return 0;
        p->v = v;
        p->cap = cap;
    }
    memcpy(p->v + (size_t)p->n * p->K, first, (size_t)p->K * sizeof(int));
    p->n++;
    return 1;
}

static int valid_split(const int *first, int K, int L)
{
    if (first[0] != 0) return 0;
    for (int s = 1; s < K; s++)
        if (first[s] <= first[s - 1] || first[s] >= L) return 0;
    return 1;
}

/* The heuristic pool for K stages: the balanced split at every candidate
 * batch size, and each of those with one cut moved by one layer. */
static int heuristic_pool(const mp_serve_eval *c, int K, const int *batches, int nb, splitpool *pool)
{
    int *f = malloc((size_t)K * sizeof(int));
    if (!f) return 0;
    pool->K = K;
    pool->n = 0;
    int L = c->prof->num_layers;
    for (int i = 0; i < nb; i++) {
        balanced_split(c, K, batches[i], f);
        if (!valid_split(f, K, L)) continue;
        if (!pool_add(pool, f)) { free(f); return 0; }
        for (int s = 1; s < K; s++)
            for (int d = -1; d <= 1; d += 2) {
                f[s] += d;
                if (valid_split(f, K, L) && !pool_add(pool, f)) { free(f); return 0; }
                f[s] -= d;
            }
    }
    free(f);
    return 1;
}

/* C(n, k) saturated at cap. */
static long choose_sat(int n, int k, long cap)
{
    if (k < 0 || k > n) return 0;
    double r = 1;
    for (int i = 1; i <= k; i++) {
        r = r * (n - k + i) / i;
        if (r > (double)cap) return cap + 1;
    }
    return (long)(r + 0.5);
}

/* Next composition of L layers into K stages (cuts first[1..K-1] increasing
 * in 1..L-1) in lexicographic order; 0 after the last. */
static int next_split(int *first, int K, int L)
{
    for (int s = K - 1; s >= 1; s--) {
        if (first[s] < L - (K - s)) {
            first[s]++;
            for (int t = s + 1; t < K; t++) first[t] = first[t - 1] + 1;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ search */

static const int default_batches[] = { 1, 2, 4, 8, 16, 32, 64 };

static mp_status eval_split(mp_serve_eval *c, const mp_serve_search_opts *o, const int *batches,
                            int nb, const double *waits, int nw, int K, const int *first,
                            const double *arr, int n, mp_serve_candidate *tmp, toplist *top,
                            mp_error *err)
{
    tmp->num_stages = K;
    memcpy(tmp->first, first, (size_t)K * sizeof(int));
    for (int i = 0; i < nb; i++) {
        tmp->max_batch = batches[i];
        plan_memory(c, tmp);
        if (!tmp->fits) continue;
        for (int w = 0; w < nw; w++) {
            tmp->max_wait_ms = waits[w];
            mp_status st = mp_serve_candidate_eval(c, tmp, arr, n, o->slo_ms, err);
            if (st != MP_OK) return st;
            if ((st = top_offer(top, tmp)) != MP_OK)
                return mp_error_set(err, st, "serving search: out of memory");
        }
    }
    return MP_OK;
}

mp_status mp_serve_search(const mp_serve_search_opts *o, const double *arr, int n,
                          mp_serve_candidate *out, int top_n, int *found, mp_error *err)
{
    *found = 0;
    const mp_profile *prof = o->prof;
    const mp_cluster *cl = o->cluster;
    int L = prof->num_layers;
    int Kmax = cl->num_devices < L ? cl->num_devices : L;
    if (o->max_stages > 0 && o->max_stages < Kmax) Kmax = o->max_stages;
    const int *batches = o->batches ? o->batches : default_batches;
    int nb = o->batches ? o->num_batches : (int)(sizeof default_batches / sizeof *default_batches);
    double dw[4] = { 0, o->slo_ms / 8, o->slo_ms / 4, o->slo_ms / 2 };
    const double *waits = o->waits_ms ? o->waits_ms : dw;
    int nw = o->waits_ms ? o->num_waits : 4;
    if (top_n < 1 || nb < 1 || nw < 1 || L < 1)
        return mp_error_set(err, MP_ERR_INPUT, "serving search: nothing to search");
    int bmax = 0;
    for (int i = 0; i < nb; i++) {
        if (batches[i] < 1) return mp_error_set(err, MP_ERR_INPUT, "serving search: max_batch %d < 1", batches[i]);
        if (batches[i] > bmax) bmax = batches[i];
    }
    long limit = o->exhaustive_limit == 0 ? 2000 : o->exhaustive_limit;
    long total = 0;
    for (int K = 1; K <= Kmax && limit >= 0 && total <= limit; K++) total += choose_sat(L - 1, K - 1, limit);
    int exhaustive = limit >= 0 && total <= limit;

    mp_serve_eval c;
    mp_serve_terms terms = o->terms;
    if (!(terms.fwd_scale > 0)) terms.fwd_scale = 1;
    mp_status st = mp_serve_eval_init(&c, prof, cl, bmax, &terms, err);
    if (st != MP_OK) return st;
    toplist top = { out, 0, top_n };
    splitpool pool = { 0 };
    mp_serve_candidate tmp = { 0 };
    tmp.first = malloc((size_t)Kmax * sizeof(int));
    tmp.memory_bytes = calloc((size_t)Kmax, sizeof(double));
    if (!tmp.first || !tmp.memory_bytes) { st = mp_error_set(err, MP_ERR_NOMEM, "serving search: out of memory"); goto done; }

    for (int K = 1; K <= Kmax; K++) {
        if (exhaustive) {
            for (int s = 0; s < K; s++) tmp.first[s] = s;
            int *f = malloc((size_t)K * sizeof(int));
            if (!f) { st = mp_error_set(err, MP_ERR_NOMEM, "serving search: out of memory"); goto done; }
            memcpy(f, tmp.first, (size_t)K * sizeof(int));
            do {
                st = eval_split(&c, o, batches, nb, waits, nw, K, f, arr, n, &tmp, &top, err);
            } while (st == MP_OK && next_split(f, K, L));
            free(f);
        } else {
            if (!heuristic_pool(&c, K, batches, nb, &pool)) { st = mp_error_set(err, MP_ERR_NOMEM, "serving search: out of memory"); goto done; }
            for (int i = 0; i < pool.n && st == MP_OK; i++)
                st = eval_split(&c, o, batches, nb, waits, nw, K, pool.v + (size_t)i * K, arr, n, &tmp, &top, err);
        }
        if (st != MP_OK) goto done;
        /* Exact prune: nothing with more devices beats full attainment. */
        if (top.n > 0 && out[0].metrics.slo_attainment >= 1.0) break;
    }
    *found = top.n;
    if (top.n == 0)
        st = mp_error_set(err, MP_ERR_NOFIT,
                          "no serving plan fits: every split and max_batch exceeds some device's memory");
done:
    if (st != MP_OK && st != MP_ERR_NOFIT) {
        for (int i = 0; i < top.n; i++) mp_serve_candidate_free(&out[i]);
        *found = 0;
    }
    free(pool.v);
    mp_serve_candidate_free(&tmp);
    mp_serve_eval_free(&c);
    return st;
}

/* ------------------------------------------------------------ max rate */

/* 1 when some plan meets the SLO at rate r (best replaced by it), 0 when
 * none does, -1 on error. */
static int feasible(const mp_serve_search_opts *o, const mp_serve_arrivals *arr, double r,
                    double *buf, mp_serve_candidate *best, mp_status *st, mp_error *err)
{
    mp_serve_arrivals_at_rate(arr, r, buf);
    mp_serve_candidate p = { 0 };
    int found = 0;
    *st = mp_serve_search(o, buf, arr->n, &p, 1, &found, err);
    if (*st != MP_OK) return -1;
    int ok = mp_serve_meets_slo(&p.metrics);
    if (ok) {
        mp_serve_candidate_free(best);
        *best = p;
    } else {
        mp_serve_candidate_free(&p);
    }
    return ok;
}

mp_status mp_serve_max_rate(const mp_serve_search_opts *o, const mp_serve_arrivals *arr,
                            double rate_hint, double *rate, mp_serve_candidate *best, mp_error *err)
{
    *rate = 0;
    memset(best, 0, sizeof *best);
    if (!(rate_hint > 0)) return mp_error_set(err, MP_ERR_INPUT, "serving search: rate must be > 0");
    double *buf = malloc((size_t)arr->n * sizeof *buf);
    if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "serving search: out of memory");
    mp_status st = MP_OK;
    double lo = 0, hi = 0, r = rate_hint;
    int f = feasible(o, arr, r, buf, best, &st, err);
    if (f < 0) goto done;
    if (f) {
        lo = r;
        for (int i = 0; i < 40; i++) {
            r *= 2;
            int g = feasible(o, arr, r, buf, best, &st, err);
            if (g < 0) goto done;
            if (!g) { hi = r; break; }
            lo = r;
        }
        if (hi == 0) { *rate = lo; goto done; }  /* never saturates */
    } else {
        hi = r;
        for (int i = 0; i < 20 && lo == 0; i++) {
            r /= 2;
            int g = feasible(o, arr, r, buf, best, &st, err);
            if (g < 0) goto done;
            if (g) lo = r;
            else hi = r;
        }
        if (lo == 0) goto done;
    }
    /* best holds the plan found at lo (the last feasible probe). */
    mp_serve_candidate at_lo = { 0 };
    if (mp_serve_candidate_copy(&at_lo, best) != MP_OK) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto done; }
    while (hi - lo > 0.01 * lo) {
        double mid = 0.5 * (lo + hi);
        int g = feasible(o, arr, mid, buf, best, &st, err);
        if (g < 0) { mp_serve_candidate_free(&at_lo); goto done; }
        if (g) {
            lo = mid;
            mp_serve_candidate_free(&at_lo);
            if (mp_serve_candidate_copy(&at_lo, best) != MP_OK) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto done; }
        } else {
            hi = mid;
        }
    }
    mp_serve_candidate_free(best);
    *best = at_lo;
    *rate = lo;
done:
    free(buf);
    return st;
}
