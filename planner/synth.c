/* synth.c — synthetic memory-bound instances (synth.h).
 * defines: mp_synth_profile, mp_synth_tight_memory, mp_synth_cluster */
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB 1048576.0

/* A uniform number in [0, 1) from the state (xorshift32). */
static double next_u(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (*s >> 8) / 16777216.0;
}

/* See synth.h. */
mp_status mp_synth_profile(mp_profile *p, int L, unsigned seed, mp_error *err)
{
    unsigned s = seed * 2654435761u + 12345u;
    if (!s) s = 1;
    memset(p, 0, sizeof *p);
    p->model = strdup("synthetic");
    p->device = strdup("synthetic");
    p->layers = calloc((size_t)(L > 0 ? L : 1), sizeof *p->layers);
    if (!p->model || !p->device || !p->layers) {
        mp_profile_free(p);
        return mp_error_set(err, MP_ERR_NOMEM, "synth: out of memory");
    }
    p->num_layers = L;
    p->input_bytes_per_sample = 0.25 * MIB;
    for (int l = 0; l < L; l++) {
        mp_layer_cost *c = &p->layers[l];
        double scale = 0.5 + 2.5 * next_u(&s);
        c->fwd.kind = c->bwd.kind = MP_TIME_AFFINE;
        c->fwd.alpha = 0.05 * scale;   /* a fixed cost per op: larger micro-batches pay off */
        c->fwd.beta = 0.02 * scale;
        c->bwd.alpha = 2 * c->fwd.alpha;
        c->bwd.beta = 2 * c->fwd.beta;
        c->param_bytes = (4 + 44 * next_u(&s)) * MIB;
        c->stash_bytes_per_sample = (0.5 + 1.5 * next_u(&s)) * MIB;
        c->out_bytes_per_sample = 0.25 * MIB;
    }
    return MP_OK;
}

/* See synth.h. */
double mp_synth_tight_memory(const mp_profile *prof, int D)
{
    double P = 0;
    for (int l = 0; l < prof->num_layers; l++) P += prof->layers[l].param_bytes;
    return 3.7 * MP_SYNTH_STATE_FACTOR * P / D;
}

/* See synth.h. */
mp_status mp_synth_cluster(mp_cluster *c, int D, double mem, int mixed, mp_error *err)
{
    mp_status st = mp_cluster_uniform(c, D, mem, 25e9, 10e-6, err);
    if (st != MP_OK || !mixed) return st;
    for (int d = 0; d < D; d++) {
        int slow = d < D / 2;
        free(c->devices[d].name);
        char nm[32];
        snprintf(nm, sizeof nm, "%s-%d", slow ? "slow" : "fast", d);
        c->devices[d].name = strdup(nm);
        if (!c->devices[d].name) {
            mp_cluster_free(c);
            return mp_error_set(err, MP_ERR_NOMEM, "synth: out of memory");
        }
        c->devices[d].speed = slow ? 0.5 : 1.0;
        c->devices[d].memory_bytes = slow ? 2 * mem : mem;
    }
    return MP_OK;
}
