/* layers.c — layers, losses and stages on the backend primitive table (layers.h). */
#include "layers.h"
#include "backend_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f
#define F sizeof(float)

/* ---------------------------------------------------------------- init */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-bound, bound) */
static void fill_uniform(float *p, size_t n, float bound, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
        p[i] = (float)((2.0 * u - 1.0) * bound);
    }
}

static void fill_const(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) p[i] = v;
}

size_t mp_layer_param_bytes(const mp_layer *l) { return l->nparams * F; }
size_t mp_layer_out_bytes_per_sample(const mp_layer *l) { return (size_t)l->out * F; }
size_t mp_layer_workspace_bytes(const mp_layer *l) { return l->ws_floats * F; }

static size_t stash_floats(const mp_layer *l)
{
    switch (l->type) {
    case MP_LAYER_LAYERNORM: return (size_t)l->in + 2;
    case MP_LAYER_RESIDUAL_MLP: return 2 * (size_t)l->in + 2 + 2 * (size_t)l->hidden;
    default: return (size_t)l->in;
    }
}

size_t mp_layer_stash_bytes_per_sample(const mp_layer *l) { return stash_floats(l) * F; }

mp_status mp_layer_init(mp_layer *l, mp_backend *be, const mp_model_layer *spec,
                        int max_batch, uint64_t seed, mp_error *err)
{
    memset(l, 0, sizeof *l);
    l->type = spec->type;
    l->in = spec->in_dim;
    l->out = spec->out_dim;
    l->hidden = spec->hidden;
    l->bias = spec->bias;
    l->max_batch = max_batch;
    l->nparams = (size_t)spec->param_count;
    size_t d = (size_t)l->in, h = (size_t)l->hidden, B = (size_t)max_batch;
    if (l->type == MP_LAYER_RESIDUAL_MLP) l->ws_floats = B * (2 * h + 2 * d);
    else if (l->type == MP_LAYER_LAYERNORM) l->ws_floats = B * d;   /* dx when the caller passes NULL */
    float *host = l->nparams ? malloc(l->nparams * F) : NULL;
    if (l->nparams && !host) return mp_error_set(err, MP_ERR_NOMEM, "layer: out of memory for %zu parameters", l->nparams);
    uint64_t s = seed;
    switch (l->type) {
    case MP_LAYER_LINEAR: {
        float bound = 1.0f / sqrtf((float)l->in);
        fill_uniform(host, (size_t)l->out * d, bound, &s);
        if (l->bias) fill_uniform(host + (size_t)l->out * d, (size_t)l->out, bound, &s);
        break;
    }
    case MP_LAYER_LAYERNORM:
        fill_const(host, d, 1.0f);
        fill_const(host + d, d, 0.0f);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        float *p = host;
        fill_const(p, d, 1.0f); p += d;
        fill_const(p, d, 0.0f); p += d;
        fill_uniform(p, h * d + h, 1.0f / sqrtf((float)d), &s); p += h * d + h;
        fill_uniform(p, d * h + d, 1.0f / sqrtf((float)h), &s);
        break;
    }
    default:
        break;
    }
    if (l->nparams) {
        l->w = be->i->alloc(be, l->nparams * F);
        l->g = be->i->alloc(be, l->nparams * F);
    }
    if (l->ws_floats) l->ws = be->i->alloc(be, l->ws_floats * F);
    if ((l->nparams && (!l->w || !l->g)) || (l->ws_floats && !l->ws)) {
        free(host);
        mp_layer_free(l, be);
        return mp_error_set(err, MP_ERR_NOMEM, "layer %s: out of %s memory (%zu parameters, batch %d)",
                            mp_layer_type_name(spec->type), be->i->name, (size_t)spec->param_count, max_batch);
    }
    if (l->nparams) be->i->upload(be, l->w, host, l->nparams * F);
    free(host);
    return MP_OK;
}

void mp_layer_free(mp_layer *l, mp_backend *be)
{
    be->i->free(be, l->w);
    be->i->free(be, l->g);
    be->i->free(be, l->m);
    be->i->free(be, l->v);
    be->i->free(be, l->ws);
    memset(l, 0, sizeof *l);
}

void mp_layer_get_params(const mp_layer *l, mp_backend *be, float *host)
{
    if (l->nparams) be->i->download(be, host, l->w, l->nparams * F);
}

void mp_layer_set_params(mp_layer *l, mp_backend *be, const float *host)
{
    if (l->nparams) be->i->upload(be, l->w, host, l->nparams * F);
}

void mp_layer_get_grads(const mp_layer *l, mp_backend *be, float *host)
{
    if (l->nparams) be->i->download(be, host, l->g, l->nparams * F);
}

/* ---------------------------------------------------------------- forward */

static mp_status check_batch(const mp_layer *l, int b, mp_error *err)
{
    if (b < 1 || b > l->max_batch)
        return mp_error_set(err, MP_ERR_INTERNAL, "layer %s: micro-batch %d outside 1..%d",
                            mp_layer_type_name(l->type), b, l->max_batch);
    return MP_OK;
}

mp_status mp_layer_forward(mp_layer *l, mp_backend *be, int b, const float *x, float *y,
                           float *stash, mp_error *err)
{
    mp_status bst = check_batch(l, b, err);
    if (bst != MP_OK) return bst;
    const mp_backend_i *I = be->i;
    int d = l->in, h = l->hidden;
    size_t n = (size_t)b * d;
    float *sx = stash;                          /* every layer keeps its input first */
    I->copy(be, sx, x, n * F);
    switch (l->type) {
    case MP_LAYER_LINEAR:
        I->gemm(be, 0, 1, b, l->out, d, 1.0f, sx, d, l->w, d, 0.0f, y, l->out);
        if (l->bias) I->add_bias(be, y, l->w + (size_t)l->out * d, b, l->out);
        break;
    case MP_LAYER_RELU:
        I->relu_fwd(be, y, sx, n);
        break;
    case MP_LAYER_GELU:
        I->gelu_fwd(be, y, sx, n);
        break;
    case MP_LAYER_LAYERNORM:
        I->layernorm_fwd(be, y, sx + n, sx + n + b, sx, l->w, l->w + d, b, d, LN_EPS);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        float *mean = sx + n, *rstd = mean + b, *u = rstd + b, *a = u + n, *g = a + (size_t)b * h;
        const float *gam = l->w, *bet = gam + d, *W1 = bet + d, *b1 = W1 + (size_t)h * d,
                    *W2 = b1 + h, *b2 = W2 + (size_t)d * h;
        I->layernorm_fwd(be, u, mean, rstd, sx, gam, bet, b, d, LN_EPS);
        I->gemm(be, 0, 1, b, h, d, 1.0f, u, d, W1, d, 0.0f, a, h);
        I->add_bias(be, a, b1, b, h);
        I->gelu_fwd(be, g, a, (size_t)b * h);
        I->copy(be, y, sx, n * F);
        I->gemm(be, 0, 1, b, d, h, 1.0f, g, h, W2, h, 1.0f, y, d);
        I->add_bias(be, y, b2, b, d);
        break;
    }
    }
    return MP_OK;
}

/* ---------------------------------------------------------------- backward */

mp_status mp_layer_backward(mp_layer *l, mp_backend *be, int b, const float *dy, float *dx,
                            const float *stash, mp_error *err)
{
    mp_status bst = check_batch(l, b, err);
    if (bst != MP_OK) return bst;
    const mp_backend_i *I = be->i;
    int d = l->in, h = l->hidden;
    size_t n = (size_t)b * d;
    const float *sx = stash;
    switch (l->type) {
    case MP_LAYER_LINEAR: {
        int o = l->out;
        I->gemm(be, 1, 0, o, d, b, 1.0f, dy, o, sx, d, 1.0f, l->g, d);
        if (l->bias) I->col_sum(be, l->g + (size_t)o * d, dy, b, o, 1.0f);
        if (dx) I->gemm(be, 0, 0, b, d, o, 1.0f, dy, o, l->w, d, 0.0f, dx, d);
        break;
    }
    case MP_LAYER_RELU:
        if (dx) I->relu_bwd(be, dx, dy, sx, n);
        break;
    case MP_LAYER_GELU:
        if (dx) I->gelu_bwd(be, dx, dy, sx, n);
        break;
    case MP_LAYER_LAYERNORM:
        I->layernorm_bwd(be, dx ? dx : l->ws, l->g, l->g + d, dy, sx, sx + n, sx + n + b, l->w, b, d);
        break;
    case MP_LAYER_RESIDUAL_MLP: {
        const float *mean = sx + n, *rstd = mean + b, *u = rstd + b, *a = u + n, *g = a + (size_t)b * h;
        const float *gam = l->w, *W1 = gam + 2 * (size_t)d, *W2 = W1 + (size_t)h * d + h;
        float *dgam = l->g, *dbet = dgam + d, *dW1 = dbet + d, *db1 = dW1 + (size_t)h * d,
              *dW2 = db1 + h, *db2 = dW2 + (size_t)d * h;
        float *dg = l->ws, *da = dg + (size_t)b * h, *du = da + (size_t)b * h, *dxt = du + n;
        I->gemm(be, 1, 0, d, h, b, 1.0f, dy, d, g, h, 1.0f, dW2, h);
        I->col_sum(be, db2, dy, b, d, 1.0f);
        I->gemm(be, 0, 0, b, h, d, 1.0f, dy, d, W2, h, 0.0f, dg, h);
        I->gelu_bwd(be, da, dg, a, (size_t)b * h);
        I->gemm(be, 1, 0, h, d, b, 1.0f, da, h, u, d, 1.0f, dW1, d);
        I->col_sum(be, db1, da, b, h, 1.0f);
        I->gemm(be, 0, 0, b, d, h, 1.0f, da, h, W1, d, 0.0f, du, d);
        float *out = dx ? dx : dxt;
        I->layernorm_bwd(be, out, dgam, dbet, du, sx, mean, rstd, gam, b, d);
        if (dx) I->axpy(be, dx, 1.0f, dy, n);
        break;
    }
    }
    return MP_OK;
}

void mp_layer_zero_grad(mp_layer *l, mp_backend *be)
{
    if (l->nparams) be->i->zero(be, l->g, l->nparams * F);
}

mp_status mp_layer_update(mp_layer *l, mp_backend *be, const mp_optim *opt, mp_error *err)
{
    if (!l->nparams) return MP_OK;
    if (opt->kind == MP_OPTIM_SGD) {
        be->i->sgd_update(be, l->w, l->g, l->nparams, opt->lr);
        return MP_OK;
    }
    if (opt->step < 1) return mp_error_set(err, MP_ERR_INTERNAL, "adam: step must count from 1 (got %d)", opt->step);
    if (!l->m) l->m = be->i->alloc(be, l->nparams * F);
    if (!l->v) l->v = be->i->alloc(be, l->nparams * F);
    if (!l->m || !l->v)
        return mp_error_set(err, MP_ERR_NOMEM, "adam: out of %s memory for %zu moments", be->i->name, l->nparams);
    be->i->adam_update(be, l->w, l->g, l->m, l->v, l->nparams, opt->lr, opt->beta1, opt->beta2,
                       opt->eps, opt->step);
    return MP_OK;
}

/* ---------------------------------------------------------------- loss */

mp_status mp_loss_eval(mp_backend *be, const mp_model *m, int b, const float *pred,
                       const void *target, float *dpred, float scale, float *loss,
                       mp_error *err)
{
    int cols = m->layers[m->num_layers - 1].out_dim;
    if (m->loss == MP_LOSS_MSE)
        be->i->mse_loss(be, dpred, loss, pred, target, b, cols, scale);
    else
        be->i->xent_loss(be, dpred, loss, pred, target, b, m->classes, scale);
    return be->i->sync(be, err);
}

/* ---------------------------------------------------------------- stages */

mp_status mp_stage_init(mp_stage_net *s, mp_backend *be, const mp_model *m, int first,
                        int last, int max_batch, uint64_t seed, mp_error *err)
{
    memset(s, 0, sizeof *s);
    if (first < 0 || last < first || last >= m->num_layers || max_batch < 1)
        return mp_error_set(err, MP_ERR_INTERNAL, "stage: bad layer range %d..%d of %d (batch %d)",
                            first, last, m->num_layers, max_batch);
    s->be = be;
    s->first = first;
    s->count = last - first + 1;
    s->max_batch = max_batch;
    s->in_dim = m->layers[first].in_dim;
    s->out_dim = m->layers[last].out_dim;
    s->layers = calloc((size_t)s->count, sizeof *s->layers);
    s->stash_off = calloc((size_t)s->count, sizeof *s->stash_off);
    if (!s->layers || !s->stash_off) {
        mp_stage_free(s);
        return mp_error_set(err, MP_ERR_NOMEM, "stage: out of memory");
    }
    size_t width = 1;
    for (int i = 0; i < s->count; i++) {
        const mp_model_layer *spec = &m->layers[first + i];
        uint64_t ls = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(first + i + 1));
        mp_status st = mp_layer_init(&s->layers[i], be, spec, max_batch, ls, err);
        if (st != MP_OK) {
            s->count = i;
            mp_stage_free(s);
            return st;
        }
        s->stash_off[i] = s->stash_per_sample;
        s->stash_per_sample += stash_floats(&s->layers[i]);
        if ((size_t)spec->in_dim > width) width = (size_t)spec->in_dim;
        if ((size_t)spec->out_dim > width) width = (size_t)spec->out_dim;
    }
    for (int k = 0; k < 2; k++) {
        s->act[k] = be->i->alloc(be, (size_t)max_batch * width * F);
        s->grad[k] = be->i->alloc(be, (size_t)max_batch * width * F);
        if (!s->act[k] || !s->grad[k]) {
            mp_stage_free(s);
            return mp_error_set(err, MP_ERR_NOMEM, "stage: out of %s memory for activations", be->i->name);
        }
    }
    return MP_OK;
}

void mp_stage_free(mp_stage_net *s)
{
    if (s->be) {
        for (int i = 0; s->layers && i < s->count; i++) mp_layer_free(&s->layers[i], s->be);
        for (int k = 0; k < 2; k++) {
            s->be->i->free(s->be, s->act[k]);
            s->be->i->free(s->be, s->grad[k]);
        }
    }
    free(s->layers);
    free(s->stash_off);
    memset(s, 0, sizeof *s);
}

size_t mp_stage_stash_bytes(const mp_stage_net *s, int b)
{
    return (size_t)b * s->stash_per_sample * F;
}

mp_status mp_stage_forward(mp_stage_net *s, int b, const float *x, float *y, float *stash,
                           mp_error *err)
{
    const float *in = x;
    for (int i = 0; i < s->count; i++) {
        float *out = (i == s->count - 1 && y) ? y : s->act[i % 2];
        mp_status st = mp_layer_forward(&s->layers[i], s->be, b, in, out,
                                        stash + (size_t)b * s->stash_off[i], err);
        if (st != MP_OK) return st;
        in = out;
    }
    return MP_OK;
}

mp_status mp_stage_backward(mp_stage_net *s, int b, const float *dy, float *dx,
                            const float *stash, mp_error *err)
{
    for (int i = s->count - 1; i >= 0; i--) {
        const float *gin = (i == s->count - 1) ? dy : s->grad[i % 2];
        float *gout = (i == 0) ? dx : s->grad[(i + 1) % 2];
        mp_status st = mp_layer_backward(&s->layers[i], s->be, b, gin, gout,
                                         stash + (size_t)b * s->stash_off[i], err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}

void mp_stage_zero_grad(mp_stage_net *s)
{
    for (int i = 0; i < s->count; i++) mp_layer_zero_grad(&s->layers[i], s->be);
}

mp_status mp_stage_update(mp_stage_net *s, const mp_optim *opt, mp_error *err)
{
    for (int i = 0; i < s->count; i++) {
        mp_status st = mp_layer_update(&s->layers[i], s->be, opt, err);
        if (st != MP_OK) return st;
    }
    return MP_OK;
}
