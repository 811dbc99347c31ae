/* prefix.c — prefix sums of a profile (prefix.h).
 * defines: mp_prefix_init, mp_prefix_set_b, mp_prefix_set_allreduce, mp_prefix_free */
#include "prefix.h"

#include <stdlib.h>
#include <string.h>

/* See prefix.h. */
mp_status mp_prefix_init(mp_prefix *x, const mp_profile *prof)
{
    memset(x, 0, sizeof *x);
    int L = prof->num_layers;
    x->prof = prof;
    x->L = L;
    x->b = -1;
    double **arrs[] = { &x->PP, &x->PS, &x->PF, &x->PB, &x->in };
    for (size_t i = 0; i < sizeof arrs / sizeof *arrs; i++)
        if (!(*arrs[i] = calloc((size_t)L + 1, sizeof(double)))) {
            mp_prefix_free(x);
            return MP_ERR_NOMEM;
        }
    for (int l = 0; l < L; l++) {
        x->PP[l + 1] = x->PP[l] + prof->layers[l].param_bytes;
        x->PS[l + 1] = x->PS[l] + prof->layers[l].stash_bytes_per_sample;
        x->in[l + 1] = prof->layers[l].out_bytes_per_sample;
    }
    x->in[0] = prof->input_bytes_per_sample;
    if (!(x->PN = calloc((size_t)L + 1, sizeof(int)))) {
        mp_prefix_free(x);
        return MP_ERR_NOMEM;
    }
    for (int l = 0; l < L; l++) x->PN[l + 1] = x->PN[l] + (prof->layers[l].param_bytes > 0);
    x->lg = 1;
    while (1 << x->lg <= L) x->lg++;
    if (!(x->mx = malloc((size_t)x->lg * (L > 0 ? L : 1) * sizeof(double)))) {
        mp_prefix_free(x);
        return MP_ERR_NOMEM;
    }
    for (int l = 0; l < L; l++) x->mx[l] = prof->layers[l].param_bytes;
    for (int k = 1; k < x->lg; k++)
        for (int i = 0; i + (1 << k) <= L; i++) {
            double a = x->mx[(size_t)(k - 1) * L + i], c = x->mx[(size_t)(k - 1) * L + i + (1 << (k - 1))];
            x->mx[(size_t)k * L + i] = a > c ? a : c;
        }
    return MP_OK;
}

/* See prefix.h. */
void mp_prefix_set_b(mp_prefix *x, int b)
{
    if (x->b == b) return;
    x->b = b;
    for (int l = 0; l < x->L; l++) {
        x->PF[l + 1] = x->PF[l] + mp_time_eval(&x->prof->layers[l].fwd, b);
        x->PB[l + 1] = x->PB[l] + mp_time_eval(&x->prof->layers[l].bwd, b);
    }
}

/* See prefix.h. */
mp_status mp_prefix_set_allreduce(mp_prefix *x, const mp_cluster *cl, int D)
{
    if (cl->allreduce_points <= 0 || D <= 1 || x->pa_D == D) return MP_OK;
    if (!x->PA && !(x->PA = calloc((size_t)x->L + 1, sizeof(double)))) return MP_ERR_NOMEM;
    for (int l = 0; l < x->L; l++)
        x->PA[l + 1] = x->PA[l] + mp_allreduce_vector_ms(cl, 0, 1, D, x->prof->layers[l].param_bytes);
    x->pa_D = D;
    return MP_OK;
}

/* See prefix.h. */
void mp_prefix_free(mp_prefix *x)
{
    free(x->PP); free(x->PS); free(x->PF); free(x->PB); free(x->in); free(x->mx); free(x->PN); free(x->PA);
    x->PP = x->PS = x->PF = x->PB = x->in = x->mx = x->PA = NULL;
    x->pa_D = 0;
    x->PN = NULL;
}
