/* placement.c — the device orders the planner searches (placement.h).
 * defines: mp_cluster_classes, mp_placements_build, mp_placements_free */
#include "placement.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* The length of name's kind: without trailing digits and a '-' or '_' before them. */
static size_t kind_len(const char *name)
{
    size_t n = name ? strlen(name) : 0, k = n;
    while (k > 0 && isdigit((unsigned char)name[k - 1])) k--;
    if (k < n && k > 0 && (name[k - 1] == '-' || name[k - 1] == '_')) k--;
    return k;
}

static int same_kind(const char *a, const char *b)
{
    size_t la = kind_len(a), lb = kind_len(b);
    return la == lb && (la == 0 || memcmp(a, b, la) == 0);
}

static int same_link(mp_link a, mp_link b) { return a.bandwidth == b.bandwidth && a.latency_s == b.latency_s; }

/* 1 when swapping devices i and j maps the cluster onto itself. */
static int swappable(const mp_cluster *cl, int i, int j)
{
    const mp_device *a = &cl->devices[i], *b = &cl->devices[j];
    if (a->memory_bytes != b->memory_bytes || a->speed != b->speed || !same_kind(a->name, b->name)) return 0;
    if (!same_link(mp_cluster_link(cl, i, j), mp_cluster_link(cl, j, i))) return 0;
    for (int k = 0; k < cl->num_devices; k++) {
        if (k == i || k == j) continue;
        if (!same_link(mp_cluster_link(cl, i, k), mp_cluster_link(cl, j, k)) ||
            !same_link(mp_cluster_link(cl, k, i), mp_cluster_link(cl, k, j)))
            return 0;
    }
    return 1;
}

/* See placement.h. A class is closed under swaps with its least member:
 * (a b) and (a c) automorphisms make (b c) = (a b)(a c)(a b) one. */
int mp_cluster_classes(const mp_cluster *cl, int *class_of)
{
    int D = cl->num_devices, n = 0;
    for (int d = 0; d < D; d++) class_of[d] = -1;
    for (int d = 0; d < D; d++) {
        if (class_of[d] >= 0) continue;
        n++;
        class_of[d] = d;
        for (int e = d + 1; e < D; e++)
            if (class_of[e] < 0 && swappable(cl, d, e)) class_of[e] = d;
    }
    return n;
}

/* 1 when placements a and b put equal devices (kind, memory, speed) at
 * every position with equal links between them: every plan costs the same
 * on both. */
static int same_placement(const mp_placement *a, const mp_placement *b)
{
    int K = a->K;
    if (K != b->K) return 0;
    for (int i = 0; i < K; i++) {
        const mp_device *x = &a->cl.devices[i], *y = &b->cl.devices[i];
        if (x->memory_bytes != y->memory_bytes || x->speed != y->speed || !same_kind(x->name, y->name)) return 0;
    }
    for (int i = 0; i < K * K; i++)
        if (!same_link(a->cl.links[i], b->cl.links[i])) return 0;
    return 1;
}

/* Drops the placements equal to an earlier one (same_placement). */
static void dedupe(mp_placements *o)
{
    int n = 0;
    for (int i = 0; i < o->n; i++) {
        int dup = 0;
        for (int j = 0; j < n && !dup; j++) dup = same_placement(&o->p[j], &o->p[i]);
        if (dup) {
            free(o->p[i].dev);
            free(o->p[i].cl.devices);
            free(o->p[i].cl.links);
        } else {
            o->p[n++] = o->p[i];
        }
    }
    o->n = n;
}

typedef struct {
    const mp_cluster *cl;
    int nc, *rep, *size, *used;  /* classes: least device, members, members placed */
    int **members;               /* [nc] devices of each class, increasing */
    int *seq;                    /* the order being built */
    mp_placements *out;
    int cap, overflow;
} enum_ctx;

static int add(enum_ctx *x, const int *dev, int K)
{
    mp_placements *o = x->out;
    if (o->n == MP_MAX_PLACEMENTS) return x->overflow = 1, 0;
    if (o->n == x->cap) {
        int nc = x->cap ? 2 * x->cap : 16;
        mp_placement *np = realloc(o->p, (size_t)nc * sizeof *np);
        if (!np) return -1;
        o->p = np;
        x->cap = nc;
    }
    mp_placement *p = &o->p[o->n];
    memset(p, 0, sizeof *p);
    p->K = K;
    p->dev = malloc((size_t)K * sizeof *p->dev);
    p->cl.devices = malloc((size_t)K * sizeof *p->cl.devices);
    p->cl.links = malloc((size_t)K * K * sizeof *p->cl.links);
    o->n++;
    if (!p->dev || !p->cl.devices || !p->cl.links) return -1;
    memcpy(p->dev, dev, (size_t)K * sizeof *dev);
    p->cl.num_devices = K;
    p->cl.default_link = x->cl->default_link;
    for (int i = 0; i < K; i++) {
        p->cl.devices[i] = x->cl->devices[dev[i]];
        for (int j = 0; j < K; j++) p->cl.links[(size_t)i * K + j] = mp_cluster_link(x->cl, dev[i], dev[j]);
    }
    return 1;
}

/* Extends seq[0..k) by one device of each class with one left. */
static int extend(enum_ctx *x, int k, int kmin, int kmax)
{
    if (k >= kmin) {
        int r = add(x, x->seq, k);
        if (r <= 0) return r;
    }
    if (k == kmax) return 1;
    for (int c = 0; c < x->nc; c++) {
        if (x->used[c] == x->size[c]) continue;
        x->seq[k] = x->members[c][x->used[c]++];
        int r = extend(x, k + 1, kmin, kmax);
        x->used[c]--;
        if (r <= 0) return r;
    }
    return 1;
}

/* See placement.h. */
mp_status mp_placements_build(const mp_cluster *cl, int kmin, int kmax, int file_only, mp_placements *out,
                              mp_error *err)
{
    int D = cl->num_devices;
    memset(out, 0, sizeof *out);
    enum_ctx x = { cl, 0, NULL, NULL, NULL, NULL, NULL, out, 0, 0 };
    int *class_of = malloc((size_t)D * sizeof *class_of), r = 1;
    x.rep = malloc((size_t)D * sizeof *x.rep);
    x.size = calloc((size_t)D, sizeof *x.size);
    x.used = calloc((size_t)D, sizeof *x.used);
    x.members = calloc((size_t)D, sizeof *x.members);
    x.seq = malloc((size_t)D * sizeof *x.seq);
    if (!class_of || !x.rep || !x.size || !x.used || !x.members || !x.seq) { r = -1; goto done; }
    out->classes = x.nc = mp_cluster_classes(cl, class_of);
    for (int d = 0, c = 0; d < D; d++)
        if (class_of[d] == d) x.rep[c++] = d;
    for (int c = 0; c < x.nc && r > 0; c++) {
        if (!(x.members[c] = malloc((size_t)D * sizeof(int)))) r = -1;
        for (int d = 0; r > 0 && d < D; d++)
            if (class_of[d] == x.rep[c]) x.members[c][x.size[c]++] = d;
    }
    if (r > 0 && !file_only) r = extend(&x, 0, kmin, kmax);
    out->complete = r > 0 && !x.overflow && !file_only;
    if (out->complete) dedupe(out);
    if (r >= 0 && !out->complete) {  /* asked for or too many: the file order's prefixes */
        mp_placements_free(out);
        x.cap = 0;
        x.overflow = 0;
        for (int k = 0; k < D; k++) x.seq[k] = k;
        r = 1;
        for (int k = kmin; k <= kmax && r > 0; k++) r = add(&x, x.seq, k);
        out->classes = x.nc;
    }
done:
    free(class_of);
    free(x.rep);
    free(x.size);
    free(x.used);
    for (int c = 0; x.members && c < x.nc; c++) free(x.members[c]);
    free(x.members);
    free(x.seq);
    if (r < 0) {
        mp_placements_free(out);
        return mp_error_set(err, MP_ERR_NOMEM, "search: out of memory for the device orders");
    }
    return MP_OK;
}

/* See placement.h. */
void mp_placements_free(mp_placements *ps)
{
    for (int i = 0; i < ps->n; i++) {
        free(ps->p[i].dev);
        free(ps->p[i].cl.devices);
        free(ps->p[i].cl.links);
    }
    free(ps->p);
    int cl = ps->classes;
    memset(ps, 0, sizeof *ps);
    ps->classes = cl;
}
