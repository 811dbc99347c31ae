/* data.c — see data.h. Counter-based random numbers (splitmix64 of seed,
 * stream and index), Box-Muller normals, the teacher evaluated in double with
 * plain loops: bitwise the same on every run and every split. */
#include "data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TEACHER_HIDDEN 32

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A standard normal determined by (seed, stream, index). */
static double normal_at(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t a = mix(seed ^ mix(stream * 0x100000001b3ULL ^ mix(index)));
    uint64_t b = mix(a);
    double u1 = ((double)(a >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(b >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Uniform in [0, 1) determined by (seed, stream, index). */
static double uniform_at(uint64_t seed, uint64_t stream, uint64_t index)
{
    return (double)(mix(seed ^ mix(stream * 0x100000001b3ULL ^ mix(index))) >> 11) / 9007199254740992.0;
}

/* Token models: nsucc distinct successors per token, drawn from the seed,
 * with probabilities 2^-k normalised (the same for every token). */
static mp_status chain_init(mp_data *d, const mp_model *m, mp_error *err)
{
    int V = m->vocab, K = V < MP_DATA_SUCCESSORS ? V : MP_DATA_SUCCESSORS;
    d->vocab = V;
    d->seq_len = m->seq_len;
    d->nsucc = K;
    d->succ = malloc((size_t)V * (size_t)K * sizeof *d->succ);
    if (!d->succ) return mp_error_set(err, MP_ERR_NOMEM, "data: out of memory for a %d-token chain", V);
    double z = 0;
    for (int k = 0; k < K; k++) z += d->prob[k] = ldexp(1.0, -k);
    for (int k = 0; k < K; k++) d->prob[k] /= z;
    for (int v = 0; v < V; v++) {
        int *s = d->succ + (size_t)v * K;
        for (int k = 0, tries = 0; k < K; tries++) {
            int c = (int)(uniform_at(d->seed, 7, (uint64_t)v * 1024 + (uint64_t)tries) * V);
            if (tries >= 256) c = (s[k - 1] + 1 + tries - 256) % V;   /* tiny vocabularies: the next free id */
            int dup = 0;
            for (int j = 0; j < k; j++) dup |= s[j] == c;
            if (!dup) s[k++] = c;
        }
    }
    return MP_OK;
}

/* Token t (0..seq_len) of sample `sample`, given token t-1 (`prev`; unused for t = 0). */
static int chain_next(const mp_data *d, long long sample, int t, int prev)
{
    if (t == 0) return (int)(uniform_at(d->seed, 5, (uint64_t)sample) * d->vocab);
    double u = uniform_at(d->seed, 6, (uint64_t)sample * (uint64_t)(d->seq_len + 1) + (uint64_t)t);
    int k = 0;
    for (double acc = d->prob[0]; k < d->nsucc - 1 && u >= acc; acc += d->prob[++k])
        ;
    return d->succ[(size_t)prev * d->nsucc + k];
}

double mp_data_entropy_rate(const mp_data *d)
{
    double h = 0;
    for (int k = 0; d->succ && k < d->nsucc; k++) h -= d->prob[k] * log(d->prob[k]);
    return h;
}

mp_status mp_data_init(mp_data *d, const mp_model *m, uint64_t seed, mp_error *err)
{
    memset(d, 0, sizeof *d);
    if (!m->num_layers) return mp_error_set(err, MP_ERR_INPUT, "model %s has no layers", m->name ? m->name : "");
    d->seed = seed;
    if (mp_model_is_tokens(m)) {
        d->input_dim = m->input_dim;
        d->loss = m->loss;
        mp_status st = chain_init(d, m, err);
        if (st != MP_OK) mp_data_free(d);
        return st;
    }
    d->input_dim = m->input_dim;
    d->out_dim = m->layers[m->num_layers - 1].out_dim;
    d->hidden = TEACHER_HIDDEN;
    d->loss = m->loss;
    size_t h = (size_t)d->hidden;
    d->w1 = malloc(h * (size_t)d->input_dim * sizeof(double));
    d->b1 = malloc(h * sizeof(double));
    d->w2 = malloc((size_t)d->out_dim * h * sizeof(double));
    if (!d->w1 || !d->b1 || !d->w2) { mp_data_free(d); return mp_error_set(err, MP_ERR_NOMEM, "data: out of memory"); }
    double s1 = 1.0 / sqrt((double)d->input_dim), s2 = (d->loss == MP_LOSS_XENT ? 3.0 : 1.0) / sqrt((double)h);
    for (size_t i = 0; i < h * (size_t)d->input_dim; i++) d->w1[i] = s1 * normal_at(seed, 1, i);
    for (size_t i = 0; i < h; i++) d->b1[i] = 0.1 * normal_at(seed, 2, i);
    for (size_t i = 0; i < (size_t)d->out_dim * h; i++) d->w2[i] = s2 * normal_at(seed, 3, i);
    return MP_OK;
}

void mp_data_inputs(const mp_data *d, long long first, int rows, float *x)
{
    if (d->succ) {
        for (int r = 0; r < rows; r++)
            for (int t = 0, tok = 0; t < d->seq_len; t++)
                x[(size_t)r * d->seq_len + t] = (float)(tok = chain_next(d, first + r, t, tok));
        return;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < d->input_dim; c++)
            x[(size_t)r * d->input_dim + c] =
                (float)normal_at(d->seed, 4, (uint64_t)(first + r) * (uint64_t)d->input_dim + (uint64_t)c);
}

void mp_data_targets(const mp_data *d, long long first, int rows, float *y, int *labels)
{
    if (d->succ) {
        for (int r = 0; r < rows && labels; r++)
            for (int t = 0, tok = chain_next(d, first + r, 0, 0); t < d->seq_len; t++)
                labels[(size_t)r * d->seq_len + t] = tok = chain_next(d, first + r, t + 1, tok);
        return;
    }
    double *x = malloc((size_t)d->input_dim * sizeof(double));
    double *hid = malloc((size_t)d->hidden * sizeof(double));
    if (!x || !hid) { free(x); free(hid); return; }
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < d->input_dim; c++) {
            /* the same float the model sees */
            float xf = (float)normal_at(d->seed, 4, (uint64_t)(first + r) * (uint64_t)d->input_dim + (uint64_t)c);
            x[c] = xf;
        }
        for (int j = 0; j < d->hidden; j++) {
            double a = d->b1[j];
            for (int c = 0; c < d->input_dim; c++) a += d->w1[(size_t)j * d->input_dim + c] * x[c];
            hid[j] = tanh(a);
        }
        int best = 0;
        double bestv = -INFINITY;
        for (int o = 0; o < d->out_dim; o++) {
            double a = 0;
            for (int j = 0; j < d->hidden; j++) a += d->w2[(size_t)o * d->hidden + j] * hid[j];
            if (d->loss == MP_LOSS_MSE && y) y[(size_t)r * d->out_dim + o] = (float)a;
            if (a > bestv) { bestv = a; best = o; }
        }
        if (d->loss == MP_LOSS_XENT && labels) labels[r] = best;
    }
    free(x);
    free(hid);
}

void mp_data_free(mp_data *d)
{
    free(d->w1);
    free(d->b1);
    free(d->w2);
    free(d->succ);
    memset(d, 0, sizeof *d);
}
