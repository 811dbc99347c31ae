/* test_layers.c — every layer's forward against a double-precision reference,
 * its backward (input AND weight gradients) against central finite
 * differences of that reference, the losses, SGD/Adam against hand math,
 * micro-batch gradient accumulation, recompute and bitwise determinism; for
 * token models also the byte accounting of every layer, stages split at any
 * layer giving bitwise the same weights, the synthetic Markov-chain data,
 * and a tiny GPT trained until its loss is well below ln(vocab). */
#include "testutil.h"
#include "backend_impl.h"
#include "data.h"
#include "layers.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static uint64_t rng = 12345;
static double urand(void)   /* [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static mp_backend *open_cpu(void)
{
    mp_backend *be = NULL;
    mp_error err = {0};
    CU_ASSERT_FATAL(mp_backend_open("cpu", -1, &be, &err) == MP_OK);
    return be;
}

static void parse_model(const char *json, mp_model *m)
{
    mp_error err = {0};
    mp_status st = mp_model_parse(json, strlen(json), "test", m, &err);
    if (st) printf("\n%s\n", err.msg);
    CU_ASSERT_FATAL(st == MP_OK);
}

/* Double-precision reference forward of one layer: y = f(x; w). */
static double gelu_d(double v)
{
    return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
}

static void ln_d(const double *x, const double *g, const double *bt, double *y, int d)
{
    double mu = 0, var = 0;
    for (int c = 0; c < d; c++) mu += x[c];
    mu /= d;
    for (int c = 0; c < d; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= d;
    double rs = 1.0 / sqrt(var + 1e-5);
    for (int c = 0; c < d; c++) y[c] = (x[c] - mu) * rs * g[c] + bt[c];
}

/* Pre-LN multi-head self-attention with a residual, one sequence x[T, d]. */
static void ref_attention(const mp_layer *l, const double *x, const double *w, double *y)
{
    int T = l->tokens, d = l->din, H = l->heads, dh = d / H;
    const double *gam = w, *bet = w + d, *Wqkv = bet + d, *bqkv = Wqkv + 3 * d * d, *Wo = bqkv + 3 * d,
                 *bo = Wo + d * d;
    double *u = malloc(sizeof(double) * T * d), *qkv = malloc(sizeof(double) * T * 3 * d),
           *o = malloc(sizeof(double) * T * d), *p = malloc(sizeof(double) * T);
    for (int t = 0; t < T; t++) {
        ln_d(x + t * d, gam, bet, u + t * d, d);
        for (int j = 0; j < 3 * d; j++) {
            double s = bqkv[j];
            for (int k = 0; k < d; k++) s += Wqkv[j * d + k] * u[t * d + k];
            qkv[t * 3 * d + j] = s;
        }
    }
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            int n = l->causal ? t + 1 : T;
            double mx = -1e300, z = 0;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < dh; c++) s += qkv[t * 3 * d + h * dh + c] * qkv[j * 3 * d + d + h * dh + c];
                p[j] = s / sqrt((double)dh);
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j < n; j++) z += p[j] = exp(p[j] - mx);
            for (int c = 0; c < dh; c++) {
                double s = 0;
                for (int j = 0; j < n; j++) s += p[j] / z * qkv[j * 3 * d + 2 * d + h * dh + c];
                o[t * d + h * dh + c] = s;
            }
        }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < d; k++) {
            double s = x[t * d + k] + bo[k];
            for (int j = 0; j < d; j++) s += Wo[k * d + j] * o[t * d + j];
            y[t * d + k] = s;
        }
    free(u); free(qkv); free(o); free(p);
}

/* Double-precision reference forward of one layer on b samples: y = f(x; w).
 * Per-token layers act on every one of the b*tokens rows. */
static void ref_forward(const mp_layer *l, int b, const double *x, const double *w, double *y)
{
    int d = l->din, o = l->dout, h = l->hidden, T = l->tokens;
    if (l->type == MP_LAYER_ATTENTION) {
        for (int i = 0; i < b; i++) ref_attention(l, x + (size_t)i * l->in, w, y + (size_t)i * l->out);
        return;
    }
    for (int r = 0; r < b * T; r++) {
        const double *xr = x + (size_t)r * d;
        double *yr = y + (size_t)r * o;
        switch (l->type) {
        case MP_LAYER_LINEAR:
            for (int j = 0; j < o; j++) {
                double s = l->bias ? w[(size_t)o * d + j] : 0;
                for (int k = 0; k < d; k++) s += w[(size_t)j * d + k] * xr[k];
                yr[j] = s;
            }
            break;
        case MP_LAYER_RELU:
            for (int k = 0; k < d; k++) yr[k] = xr[k] > 0 ? xr[k] : 0;
            break;
        case MP_LAYER_GELU:
            for (int k = 0; k < d; k++) yr[k] = gelu_d(xr[k]);
            break;
        case MP_LAYER_LAYERNORM:
            ln_d(xr, w, w + d, yr, d);
            break;
        case MP_LAYER_RESIDUAL_MLP: {
            const double *W1 = w + 2 * d, *b1 = W1 + h * d, *W2 = b1 + h, *b2 = W2 + d * h;
            double u[64], g[64];
            ln_d(xr, w, w + d, u, d);
            for (int j = 0; j < h; j++) {
                double s = b1[j];
                for (int k = 0; k < d; k++) s += W1[j * d + k] * u[k];
                g[j] = gelu_d(s);
            }
            for (int k = 0; k < d; k++) {
                double s = xr[k] + b2[k];
                for (int j = 0; j < h; j++) s += W2[k * h + j] * g[j];
                yr[k] = s;
            }
            break;
        }
        case MP_LAYER_EMBEDDING: {   /* xr[0]: the token id */
            const double *e = w + (size_t)xr[0] * o, *p = w + (size_t)l->vocab * o + (size_t)(r % T) * o;
            for (int k = 0; k < o; k++) yr[k] = e[k] + p[k];
            break;
        }
        default:
            CU_FAIL("no reference for this layer type");
        }
    }
}

/* L = sum(r * f(x; w)) in double */
static double ref_objective(const mp_layer *l, int b, const double *x, const double *w,
                            const double *r)
{
    double y[4096];
    ref_forward(l, b, x, w, y);
    double s = 0;
    for (int i = 0; i < b * l->out; i++) s += r[i] * y[i];
    return s;
}

static int close_enough(double got, double want, double tol)
{
    return fabs(got - want) <= tol * (1.0 + fabs(want));
}

/* Checks forward, dx and every weight gradient of layer `which` of `json`. */
static void check_layer(const char *json, int which, int relu_safe)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(json, &m);
    mp_layer l;
    mp_error err = {0};
    const int b = 3;
    CU_ASSERT_FATAL(mp_layer_init(&l, be, &m.layers[which], b, 7, &err) == MP_OK);
    int d = l.in, o = l.out;
    size_t np = l.nparams, nx = (size_t)b * d, ny = (size_t)b * o;
    float *xf = malloc(nx * 4), *wf = malloc((np + 1) * 4), *rf = malloc(ny * 4);
    double *xd = malloc(nx * 8), *wd = malloc((np + 1) * 8), *rd = malloc(ny * 8), *yd = malloc(ny * 8);
    int ids = l.type == MP_LAYER_EMBEDDING;   /* token ids, not differentiable: dx must be 0 */
    for (size_t i = 0; i < nx; i++) {
        double v = urand();
        if (relu_safe && fabs(v) < 0.05) v = v < 0 ? -0.1 : 0.1;   /* away from the kink */
        if (ids) v = (double)(i * 7 % (size_t)l.vocab);   /* repeated ids: rows of dE add up */
        xf[i] = (float)v; xd[i] = xf[i];
    }
    for (size_t i = 0; i < np; i++) { wf[i] = (float)(0.5 * urand()); wd[i] = wf[i]; }
    if (l.type == MP_LAYER_LAYERNORM || l.type == MP_LAYER_RESIDUAL_MLP || l.type == MP_LAYER_ATTENTION)
        for (int c = 0; c < l.din; c++) { wf[c] = (float)(1.0 + 0.3 * urand()); wd[c] = wf[c]; }
    for (size_t i = 0; i < ny; i++) { rf[i] = (float)urand(); rd[i] = rf[i]; }
    mp_layer_set_params(&l, be, wf);

    float *x = be->i->alloc(be, nx * 4), *y = be->i->alloc(be, ny * 4), *dy = be->i->alloc(be, ny * 4),
          *dx = be->i->alloc(be, nx * 4), *stash = be->i->alloc(be, b * mp_layer_stash_bytes_per_sample(&l));
    be->i->upload(be, x, xf, nx * 4);
    be->i->upload(be, dy, rf, ny * 4);
    CU_ASSERT(mp_layer_forward(&l, be, b, x, y, stash, &err) == MP_OK);
    CU_ASSERT(mp_layer_backward(&l, be, b, dy, dx, stash, &err) == MP_OK);

    /* forward against the double reference */
    ref_forward(&l, b, xd, wd, yd);
    float *yh = malloc(ny * 4), *dxh = malloc(nx * 4), *gh = malloc((np + 1) * 4);
    be->i->download(be, yh, y, ny * 4);
    be->i->download(be, dxh, dx, nx * 4);
    mp_layer_get_grads(&l, be, gh);
    int bad = 0;
    for (size_t i = 0; i < ny; i++) bad += !close_enough(yh[i], yd[i], 1e-5);
    CU_ASSERT_EQUAL(bad, 0);

    /* input gradient against central differences (double) */
    const double h = 1e-5;
    double maxerr = 0;
    for (size_t i = 0; i < nx && ids; i++) bad += dxh[i] != 0.0f;
    for (size_t i = 0; i < nx && !ids; i++) {
        double keep = xd[i];
        xd[i] = keep + h; double lp = ref_objective(&l, b, xd, wd, rd);
        xd[i] = keep - h; double lm = ref_objective(&l, b, xd, wd, rd);
        xd[i] = keep;
        double num = (lp - lm) / (2 * h);
        if (!close_enough(dxh[i], num, 1e-4)) { bad++; printf("\n dx[%zu] %g vs fd %g", i, dxh[i], num); }
        if (fabs(dxh[i] - num) > maxerr) maxerr = fabs(dxh[i] - num);
    }
    /* weight gradients against central differences (double) */
    for (size_t i = 0; i < np; i++) {
        double keep = wd[i];
        wd[i] = keep + h; double lp = ref_objective(&l, b, xd, wd, rd);
        wd[i] = keep - h; double lm = ref_objective(&l, b, xd, wd, rd);
        wd[i] = keep;
        double num = (lp - lm) / (2 * h);
        if (!close_enough(gh[i], num, 1e-4)) { bad++; printf("\n dw[%zu] %g vs fd %g", i, gh[i], num); }
        if (fabs(gh[i] - num) > maxerr) maxerr = fabs(gh[i] - num);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(maxerr < 1e-3);

    /* dx == NULL skips the input gradient but still accumulates weight gradients */
    float *gh2 = malloc((np + 1) * 4);
    CU_ASSERT(mp_layer_backward(&l, be, b, dy, NULL, stash, &err) == MP_OK);
    mp_layer_get_grads(&l, be, gh2);
    for (size_t i = 0; i < np; i++) bad += !close_enough(gh2[i], 2.0 * gh[i], 1e-5);
    CU_ASSERT_EQUAL(bad, 0);

    free(gh2);
    be->i->free(be, x); be->i->free(be, y); be->i->free(be, dy); be->i->free(be, dx); be->i->free(be, stash);
    free(xf); free(wf); free(rf); free(xd); free(wd); free(rd); free(yd); free(yh); free(dxh); free(gh);
    mp_layer_free(&l, be);
    CU_ASSERT_EQUAL(be->i->mem_used(be), 0);   /* everything allocated was freed */
    mp_model_free(&m);
    mp_backend_close(be);
}

#define ONE(layer) "{\"format\":\"mpkit-model/1\",\"input_dim\":5,\"layers\":[" layer "],\"loss\":\"mse\"}"

static void test_linear_grad(void) { check_layer(ONE("{\"type\":\"linear\",\"out\":4}"), 0, 0); }
static void test_linear_nobias_grad(void) { check_layer(ONE("{\"type\":\"linear\",\"out\":3,\"bias\":false}"), 0, 0); }
static void test_relu_grad(void) { check_layer(ONE("{\"type\":\"relu\"}"), 0, 1); }
static void test_gelu_grad(void) { check_layer(ONE("{\"type\":\"gelu\"}"), 0, 0); }
static void test_layernorm_grad(void) { check_layer(ONE("{\"type\":\"layernorm\"}"), 0, 0); }
static void test_residual_mlp_grad(void) { check_layer(ONE("{\"type\":\"residual_mlp\",\"hidden\":7}"), 0, 0); }

/* A token model of 4 tokens from a 5-token vocabulary: embedding (width 6), `layer`, a head. */
#define TOKENS(layer) "{\"format\":\"mpkit-model/1\",\"input\":{\"type\":\"tokens\",\"vocab\":5,\"seq_len\":4}," \
    "\"layers\":[{\"type\":\"embedding\",\"dim\":6}," layer ",{\"type\":\"linear\",\"out\":5}]," \
    "\"loss\":{\"type\":\"cross_entropy\",\"classes\":5}}"

static void test_embedding_grad(void) { check_layer(TOKENS("{\"type\":\"relu\"}"), 0, 0); }
static void test_attention_grad(void)
{
    check_layer(TOKENS("{\"type\":\"attention\",\"heads\":3}"), 1, 0);                  /* causal, 3 heads of 2 */
    check_layer(TOKENS("{\"type\":\"attention\",\"heads\":2,\"causal\":false}"), 1, 0);
    check_layer(TOKENS("{\"type\":\"attention\",\"heads\":1}"), 1, 0);
}
/* per-token layers act on every row */
static void test_per_token_grad(void)
{
    check_layer(TOKENS("{\"type\":\"residual_mlp\",\"hidden\":7}"), 1, 0);
    check_layer(TOKENS("{\"type\":\"layernorm\"}"), 1, 0);
    check_layer(TOKENS("{\"type\":\"gelu\"}"), 1, 0);
    check_layer(TOKENS("{\"type\":\"relu\"}"), 2, 0);   /* the head: linear 6 -> 5 per token */
}

/* ---------------------------------------------------------------- losses */

static double mse_ref(const double *p, const double *t, int rows, int cols)
{
    double s = 0;
    for (int r = 0; r < rows; r++) {
        double row = 0;
        for (int c = 0; c < cols; c++) row += (p[r * cols + c] - t[r * cols + c]) * (p[r * cols + c] - t[r * cols + c]);
        s += row / cols;
    }
    return s;
}

static double xent_ref(const double *p, const int *lab, int rows, int k)
{
    double s = 0;
    for (int r = 0; r < rows; r++) {
        double mx = p[r * k], z = 0;
        for (int c = 1; c < k; c++) mx = fmax(mx, p[r * k + c]);
        for (int c = 0; c < k; c++) z += exp(p[r * k + c] - mx);
        s += mx + log(z) - p[r * k + lab[r]];
    }
    return s;
}

static void test_losses(void)
{
    mp_backend *be = open_cpu();
    enum { R = 4, C = 6 };
    float pf[R * C], tf[R * C], dp[R * C], loss = 0;
    double pd[R * C], td[R * C];
    int lab[R] = {0, 5, 2, 3};
    for (int i = 0; i < R * C; i++) {
        pf[i] = (float)(2 * urand()); pd[i] = pf[i];
        tf[i] = (float)urand(); td[i] = tf[i];
    }
    const float scale = 0.25f;
    const double h = 1e-6;
    /* mse */
    be->i->mse_loss(be, dp, &loss, pf, tf, R, C, scale);
    CU_ASSERT(close_enough(loss, scale * mse_ref(pd, td, R, C), 1e-6));
    for (int i = 0; i < R * C; i++) {
        double keep = pd[i];
        pd[i] = keep + h; double lp = mse_ref(pd, td, R, C);
        pd[i] = keep - h; double lm = mse_ref(pd, td, R, C);
        pd[i] = keep;
        CU_ASSERT(close_enough(dp[i], scale * (lp - lm) / (2 * h), 1e-5));
    }
    /* cross entropy */
    be->i->xent_loss(be, dp, &loss, pf, lab, R, C, scale);
    CU_ASSERT(close_enough(loss, scale * xent_ref(pd, lab, R, C), 1e-6));
    for (int i = 0; i < R * C; i++) {
        double keep = pd[i];
        pd[i] = keep + h; double lp = xent_ref(pd, lab, R, C);
        pd[i] = keep - h; double lm = xent_ref(pd, lab, R, C);
        pd[i] = keep;
        CU_ASSERT(close_enough(dp[i], scale * (lp - lm) / (2 * h), 1e-5));
    }
    /* hand case: uniform logits over 4 classes -> loss log 4, d = 1/4 - onehot */
    float z[4] = {0, 0, 0, 0}, dz[4];
    int y = 2;
    be->i->xent_loss(be, dz, &loss, z, &y, 1, 4, 1.0f);
    CU_ASSERT_DOUBLE_EQUAL(loss, log(4.0), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(dz[2], -0.75, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(dz[0], 0.25, 1e-7);
    /* mp_loss_eval dispatches on the model's loss */
    mp_model m;
    parse_model("{\"format\":\"mpkit-model/1\",\"input_dim\":3,\"layers\":[{\"type\":\"linear\",\"out\":4}],"
                "\"loss\":{\"type\":\"cross_entropy\",\"classes\":4}}", &m);
    mp_error err = {0};
    loss = -1;
    CU_ASSERT(mp_loss_eval(be, &m, 1, z, &y, dz, 1.0f, &loss, &err) == MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, log(4.0), 1e-6);
    mp_model_free(&m);
    mp_backend_close(be);
}

/* The token-level loss: scale = 1/b gives the mean over all b*T tokens. */
static void test_token_loss(void)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(TOKENS("{\"type\":\"relu\"}"), &m);
    enum { B = 3, T = 4, V = 5, N = B * T * V };
    float pf[N], dp[N], loss = 0;
    double pd[N];
    int lab[B * T];
    for (int i = 0; i < N; i++) { pf[i] = (float)(3 * urand()); pd[i] = pf[i]; }
    for (int r = 0; r < B * T; r++) lab[r] = (r * 3 + 1) % V;
    mp_error err = {0};
    CU_ASSERT_EQUAL(mp_model_labels_per_sample(&m), T);
    CU_ASSERT(mp_loss_eval(be, &m, B, pf, lab, dp, 1.0f / B, &loss, &err) == MP_OK);
    CU_ASSERT(close_enough(loss, xent_ref(pd, lab, B * T, V) / (B * T), 1e-6));
    const double h = 1e-6;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double keep = pd[i];
        pd[i] = keep + h; double lp = xent_ref(pd, lab, B * T, V);
        pd[i] = keep - h; double lm = xent_ref(pd, lab, B * T, V);
        pd[i] = keep;
        bad += !close_enough(dp[i], (lp - lm) / (2 * h) / (B * T), 1e-5);
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* uniform logits: ln V per token, whatever the batch */
    memset(pf, 0, sizeof pf);
    CU_ASSERT(mp_loss_eval(be, &m, 2, pf, lab, dp, 0.5f, &loss, &err) == MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, log((double)V), 1e-6);
    mp_model_free(&m);
    mp_backend_close(be);
}

/* ---------------------------------------------------------------- optimizers */

static void test_optimizers(void)
{
    mp_backend *be = open_cpu();
    float w[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, -1.0f, 0.0f};
    be->i->sgd_update(be, w, g, 3, 0.1f);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 0.95, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(w[1], -1.9, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(w[2], 0.5, 1e-7);
    /* Adam step 1: m = 0.1g, v = 0.001g^2, mhat = g, vhat = g^2 -> w -= lr*g/(|g|+eps) */
    float w2[3] = {1.0f, -2.0f, 0.5f}, m[3] = {0}, v[3] = {0};
    be->i->adam_update(be, w2, g, m, v, 3, 0.01f, 0.9f, 0.999f, 1e-8f, 1);
    CU_ASSERT_DOUBLE_EQUAL(w2[0], 1.0 - 0.01 * 0.5 / (0.5 + 1e-8), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(w2[1], -2.0 + 0.01, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(w2[2], 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(m[0], 0.05, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(v[1], 0.001, 1e-7);   /* (1 - 0.999f) in float */
    /* step 2 with g again: m = 0.19*0.5 = 0.095, v = 0.001999*0.25; bias-corrected */
    be->i->adam_update(be, w2, g, m, v, 3, 0.01f, 0.9f, 0.999f, 1e-8f, 2);
    double mh = 0.095 / (1 - 0.81), vh = (0.001999 * 0.25) / (1 - 0.998001);
    CU_ASSERT_DOUBLE_EQUAL(w2[0], 1.0 - 0.01 - 0.01 * mh / (sqrt(vh) + 1e-8), 1e-6);

    /* through a layer: SGD moves w by -lr*g exactly as the gradients say */
    mp_model mo;
    parse_model(ONE("{\"type\":\"linear\",\"out\":2}"), &mo);
    mp_layer l;
    mp_error err = {0};
    CU_ASSERT_FATAL(mp_layer_init(&l, be, &mo.layers[0], 2, 1, &err) == MP_OK);
    float x[10], dy[4] = {1, -1, 0.5f, 2}, y[4], stash[10], w0[12], w1[12], gr[12];
    for (int i = 0; i < 10; i++) x[i] = (float)urand();
    CU_ASSERT(mp_layer_forward(&l, be, 2, x, y, stash, &err) == MP_OK);
    CU_ASSERT(mp_layer_backward(&l, be, 2, dy, NULL, stash, &err) == MP_OK);
    mp_layer_get_params(&l, be, w0);
    mp_layer_get_grads(&l, be, gr);
    mp_optim sgd = {.kind = MP_OPTIM_SGD, .lr = 0.5f};
    CU_ASSERT(mp_layer_update(&l, be, &sgd, &err) == MP_OK);
    mp_layer_get_params(&l, be, w1);
    for (int i = 0; i < 12; i++) CU_ASSERT_DOUBLE_EQUAL(w1[i], w0[i] - 0.5 * gr[i], 1e-6);
    mp_optim adam = {.kind = MP_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
    CU_ASSERT(mp_layer_update(&l, be, &adam, &err) == MP_OK);
    mp_layer_get_params(&l, be, w0);
    for (int i = 0; i < 12; i++)
        CU_ASSERT_DOUBLE_EQUAL(w0[i], w1[i] - (gr[i] == 0 ? 0 : 0.01 * (gr[i] > 0 ? 1 : -1)), 1e-5);
    mp_layer_zero_grad(&l, be);
    mp_layer_get_grads(&l, be, gr);
    for (int i = 0; i < 12; i++) CU_ASSERT_EQUAL(gr[i], 0.0f);
    mp_layer_free(&l, be);
    mp_model_free(&mo);
    mp_backend_close(be);
}

/* ---------------------------------------------------------------- stages */

static const char *STAGE_MODEL =
    "{\"format\":\"mpkit-model/1\",\"input_dim\":8,\"layers\":["
    "{\"type\":\"linear\",\"out\":12},{\"type\":\"gelu\"},"
    "{\"repeat\":2,\"layers\":[{\"type\":\"residual_mlp\",\"hidden\":16}]},"
    "{\"type\":\"layernorm\"},{\"type\":\"relu\"},{\"type\":\"linear\",\"out\":5}],"
    "\"loss\":{\"type\":\"cross_entropy\",\"classes\":5}}";

/* Runs forward+backward of micro-batches of size mb over 8 samples and
 * returns the stage's gradients (host, n floats) plus the final dx. */
static void run_stage(int mb, float *grads, size_t *ngrads, float *dx_out, float *y_out)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(STAGE_MODEL, &m);
    mp_stage_net s;
    mp_error err = {0};
    CU_ASSERT_FATAL(mp_stage_init(&s, be, &m, 0, m.num_layers - 1, 8, 99, &err) == MP_OK);
    float x[64], y[40], dy[40], dx[64], loss;
    uint64_t keep = rng;
    rng = 777;
    for (int i = 0; i < 64; i++) x[i] = (float)urand();
    rng = keep;
    int lab[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    float *stash = malloc(mp_stage_stash_bytes(&s, 8));
    for (int i0 = 0; i0 < 8; i0 += mb) {
        CU_ASSERT(mp_stage_forward(&s, mb, x + i0 * 8, y + i0 * 5, stash, &err) == MP_OK);
        CU_ASSERT(mp_loss_eval(be, &m, mb, y + i0 * 5, lab + i0, dy + i0 * 5, 1.0f / 8, &loss, &err) == MP_OK);
        /* recompute: forward again without output into a fresh stash gives the same stash */
        float *st2 = malloc(mp_stage_stash_bytes(&s, mb));
        CU_ASSERT(mp_stage_forward(&s, mb, x + i0 * 8, NULL, st2, &err) == MP_OK);
        CU_ASSERT(memcmp(st2, stash, mp_stage_stash_bytes(&s, mb)) == 0);
        CU_ASSERT(mp_stage_backward(&s, mb, dy + i0 * 5, dx + i0 * 8, st2, &err) == MP_OK);
        free(st2);
    }
    size_t n = 0;
    for (int i = 0; i < s.count; i++) {
        mp_layer_get_grads(&s.layers[i], be, grads + n);
        n += s.layers[i].nparams;
    }
    *ngrads = n;
    memcpy(dx_out, dx, sizeof dx);
    memcpy(y_out, y, sizeof y);
    free(stash);
    mp_stage_free(&s);
    CU_ASSERT_EQUAL(be->i->mem_used(be), 0);
    mp_model_free(&m);
    mp_backend_close(be);
}

static void test_stage_microbatches_and_determinism(void)
{
    static float g1[4096], g2[4096], g8[4096], dx1[64], dx2[64], dx8[64], y1[40], y2[40], y8[40];
    size_t n1, n2, n8;
    run_stage(2, g1, &n1, dx1, y1);
    run_stage(2, g2, &n2, dx2, y2);
    /* bitwise determinism of repeated runs */
    CU_ASSERT_EQUAL(n1, n2);
    CU_ASSERT(memcmp(g1, g2, n1 * 4) == 0);
    CU_ASSERT(memcmp(dx1, dx2, sizeof dx1) == 0);
    CU_ASSERT(memcmp(y1, y2, sizeof y1) == 0);
    /* gradients summed over 4 micro-batches of 2 == gradients of one batch of 8 */
    run_stage(8, g8, &n8, dx8, y8);
    CU_ASSERT_EQUAL(n1, n8);
    int bad = 0;
    for (size_t i = 0; i < n1; i++) bad += !close_enough(g1[i], g8[i], 1e-4);
    for (int i = 0; i < 64; i++) bad += !close_enough(dx1[i], dx8[i], 1e-4);
    for (int i = 0; i < 40; i++) bad += !close_enough(y1[i], y8[i], 1e-5);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_stage_split_matches_whole(void)
{
    /* two stages 0..2 and 3..end give the same output as one stage 0..end */
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(STAGE_MODEL, &m);
    mp_stage_net a, b, w;
    mp_error err = {0};
    int L = m.num_layers;
    CU_ASSERT_FATAL(mp_stage_init(&a, be, &m, 0, 2, 4, 5, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_stage_init(&b, be, &m, 3, L - 1, 4, 5, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_stage_init(&w, be, &m, 0, L - 1, 4, 5, &err) == MP_OK);
    CU_ASSERT_EQUAL(a.out_dim, b.in_dim);
    CU_ASSERT_EQUAL(mp_stage_stash_bytes(&a, 4) + mp_stage_stash_bytes(&b, 4), mp_stage_stash_bytes(&w, 4));
    float x[32], mid[48], ya[20], yw[20];
    for (int i = 0; i < 32; i++) x[i] = (float)urand();
    float *sa = malloc(mp_stage_stash_bytes(&a, 4)), *sb = malloc(mp_stage_stash_bytes(&b, 4)),
          *sw = malloc(mp_stage_stash_bytes(&w, 4));
    CU_ASSERT(mp_stage_forward(&a, 4, x, mid, sa, &err) == MP_OK);
    CU_ASSERT(mp_stage_forward(&b, 4, mid, ya, sb, &err) == MP_OK);
    CU_ASSERT(mp_stage_forward(&w, 4, x, yw, sw, &err) == MP_OK);
    CU_ASSERT(memcmp(ya, yw, sizeof ya) == 0);
    /* batch larger than max_batch is refused */
    CU_ASSERT(mp_stage_forward(&w, 5, x, yw, sw, &err) != MP_OK);
    free(sa); free(sb); free(sw);
    mp_stage_free(&a); mp_stage_free(&b); mp_stage_free(&w);
    mp_model_free(&m);
    mp_backend_close(be);
}

static void test_byte_accounting(void)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(STAGE_MODEL, &m);
    mp_error err = {0};
    /* residual_mlp d=12 h=16: params 2d + dh + h + hd + d = 24+192+16+192+12 */
    mp_layer l;
    CU_ASSERT_FATAL(mp_layer_init(&l, be, &m.layers[2], 4, 1, &err) == MP_OK);
    CU_ASSERT_EQUAL(mp_layer_param_bytes(&l), 4u * 436);
    CU_ASSERT_EQUAL(mp_layer_out_bytes_per_sample(&l), 4u * 12);
    CU_ASSERT_EQUAL(mp_layer_stash_bytes_per_sample(&l), 4u * (2 * 12 + 2 + 2 * 16));
    /* allocation matches the accounting: params + grads + workspace */
    CU_ASSERT_EQUAL(be->i->mem_used(be), 2 * mp_layer_param_bytes(&l) + mp_layer_workspace_bytes(&l));
    mp_layer_free(&l, be);
    CU_ASSERT_FATAL(mp_layer_init(&l, be, &m.layers[0], 4, 1, &err) == MP_OK);   /* linear 8->12 */
    CU_ASSERT_EQUAL(mp_layer_param_bytes(&l), 4u * (8 * 12 + 12));
    CU_ASSERT_EQUAL(mp_layer_stash_bytes_per_sample(&l), 4u * 8);
    mp_layer_free(&l, be);
    mp_model_free(&m);
    mp_backend_close(be);
}

/* ---------------------------------------------------------------- token models */

static const char *TOKEN_MODEL =
    "{\"format\":\"mpkit-model/1\",\"input\":{\"type\":\"tokens\",\"vocab\":11,\"seq_len\":6},\"layers\":["
    "{\"type\":\"embedding\",\"dim\":8},{\"type\":\"attention\",\"heads\":2},"
    "{\"type\":\"residual_mlp\",\"hidden\":12},{\"type\":\"layernorm\"},"
    "{\"type\":\"linear\",\"out\":11,\"bias\":false}],\"loss\":{\"type\":\"cross_entropy\",\"classes\":11}}";

/* Random inputs for a layer: token ids for the embedding. */
static void fill_input(const mp_layer *l, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = l->type == MP_LAYER_EMBEDDING ? (float)(int)((urand() + 1) * 0.5 * l->vocab) : (float)urand();
}

/* What every layer of TOKEN_MODEL allocates and keeps is the documented
 * formula (docs/model-format.md, "What a layer keeps"), and the forward
 * fills its stash up to the last float and not one float further. */
static void test_token_byte_accounting(void)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(TOKEN_MODEL, &m);
    const size_t B = 3, T = 6, d = 8, H = 2, h = 12, V = 11;
    const struct { size_t params, out, stash, ws; } want[] = {
        {(V + T) * d, T * d, T, 0},                                                   /* embedding */
        {4 * d * d + 6 * d, T * d, T * (6 * d + 2) + H * T * T, 4 * B * T * d + H * T * T},   /* attention */
        {2 * d + 2 * d * h + h + d, T * d, T * (2 * d + 2 + 2 * h), B * T * (2 * h + 2 * d)}, /* residual_mlp */
        {2 * d, T * d, T * (d + 2), B * T * d},                                       /* layernorm */
        {d * V, T * V, T * d, 0},                                                     /* linear head */
    };
    mp_error err = {0};
    for (int i = 0; i < m.num_layers; i++) {
        mp_layer l;
        CU_ASSERT_FATAL(mp_layer_init(&l, be, &m.layers[i], (int)B, 1, &err) == MP_OK);
        CU_ASSERT_EQUAL(mp_layer_param_bytes(&l), 4 * want[i].params);
        CU_ASSERT_EQUAL(mp_layer_out_bytes_per_sample(&l), 4 * want[i].out);
        CU_ASSERT_EQUAL(mp_layer_stash_bytes_per_sample(&l), 4 * want[i].stash);
        CU_ASSERT_EQUAL(mp_layer_workspace_bytes(&l), 4 * want[i].ws);
        CU_ASSERT_EQUAL(mp_layer_spec_stash_bytes_per_sample(&m.layers[i]), 4 * want[i].stash);
        CU_ASSERT_EQUAL(mp_layer_spec_workspace_bytes(&m.layers[i], (int)B), 4 * want[i].ws);
        CU_ASSERT_EQUAL(be->i->mem_used(be), 2 * mp_layer_param_bytes(&l) + mp_layer_workspace_bytes(&l));
        /* the stash of B samples, then a guard */
        size_t ns = B * want[i].stash, guard = 64, nx = B * (size_t)l.in;
        float *stash = malloc((ns + guard) * 4), *x = malloc(nx * 4), *y = malloc(B * 4 * want[i].out);
        for (size_t k = 0; k < ns + guard; k++) stash[k] = 12345.0f;
        fill_input(&l, x, nx);
        CU_ASSERT(mp_layer_forward(&l, be, (int)B, x, y, stash, &err) == MP_OK);
        CU_ASSERT(stash[ns - 1] != 12345.0f);
        size_t touched = 0;
        for (size_t k = ns; k < ns + guard; k++) touched += stash[k] != 12345.0f;
        CU_ASSERT_EQUAL(touched, 0);
        free(stash); free(x); free(y);
        mp_layer_free(&l, be);
    }
    CU_ASSERT_EQUAL(be->i->mem_used(be), 0);
    mp_model_free(&m);
    mp_backend_close(be);
}

/* Trains `steps` Adam steps on Markov-chain data, 6 samples per step in
 * micro-batches of 2, through nst stages (stage k = layers cuts[k] ..
 * cuts[k+1]-1), GPipe order: every forward, then every backward in
 * micro-batch order, each stage recomputing its stash before its backward
 * (which must give bitwise the stash of the first forward). Writes every
 * parameter into params and returns how many. */
static size_t train_token_stages(const int *cuts, int nst, int steps, float *params)
{
    enum { N = 6, MB = 2, NM = N / MB, MAXST = 4 };
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(TOKEN_MODEL, &m);
    mp_error err = {0};
    mp_data data;
    CU_ASSERT_FATAL(mp_data_init(&data, &m, 3, &err) == MP_OK);
    int T = m.seq_len;
    mp_stage_net st[MAXST];
    float *act[MAXST][NM], *grad[MAXST][NM], *stash[MAXST][NM], *re[MAXST];
    for (int k = 0; k < nst; k++) {
        CU_ASSERT_FATAL(mp_stage_init(&st[k], be, &m, cuts[k], cuts[k + 1] - 1, MB, 21, &err) == MP_OK);
        re[k] = malloc(mp_stage_stash_bytes(&st[k], MB));
        for (int i = 0; i < NM; i++) {
            act[k][i] = malloc((size_t)MB * st[k].out_dim * 4);
            grad[k][i] = malloc((size_t)MB * st[k].in_dim * 4);
            stash[k][i] = malloc(mp_stage_stash_bytes(&st[k], MB));
        }
    }
    float x[N * 6], dl[NM][MB * 6 * 11], loss;
    int lab[N * 6];
    CU_ASSERT_FATAL(T == 6);
    int same = 1;
    for (int step = 0; step < steps; step++) {
        mp_data_inputs(&data, (long long)step * N, N, x);
        mp_data_targets(&data, (long long)step * N, N, NULL, lab);
        for (int k = 0; k < nst; k++) mp_stage_zero_grad(&st[k]);
        for (int i = 0; i < NM; i++) {
            const float *in = x + i * MB * T;
            for (int k = 0; k < nst; k++) {
                CU_ASSERT(mp_stage_forward(&st[k], MB, in, act[k][i], stash[k][i], &err) == MP_OK);
                in = act[k][i];
            }
            CU_ASSERT(mp_loss_eval(be, &m, MB, act[nst - 1][i], lab + i * MB * T, dl[i], 1.0f / N, &loss, &err) == MP_OK);
        }
        for (int i = 0; i < NM; i++) {
            const float *g = dl[i];
            for (int k = nst - 1; k >= 0; k--) {
                const float *in = k ? act[k - 1][i] : x + i * MB * T;
                CU_ASSERT(mp_stage_forward(&st[k], MB, in, NULL, re[k], &err) == MP_OK);   /* recompute */
                same &= !memcmp(re[k], stash[k][i], mp_stage_stash_bytes(&st[k], MB));
                CU_ASSERT(mp_stage_backward(&st[k], MB, g, k ? grad[k][i] : NULL, re[k], &err) == MP_OK);
                g = grad[k][i];
            }
        }
        mp_optim adam = {.kind = MP_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = step + 1};
        for (int k = 0; k < nst; k++) CU_ASSERT(mp_stage_update(&st[k], &adam, &err) == MP_OK);
    }
    CU_ASSERT(same);
    size_t n = 0;
    for (int k = 0; k < nst; k++) {
        for (int i = 0; i < st[k].count; i++) {
            mp_layer_get_params(&st[k].layers[i], be, params + n);
            n += st[k].layers[i].nparams;
        }
        for (int i = 0; i < NM; i++) { free(act[k][i]); free(grad[k][i]); free(stash[k][i]); }
        free(re[k]);
        mp_stage_free(&st[k]);
    }
    CU_ASSERT_EQUAL(be->i->mem_used(be), 0);
    mp_data_free(&data);
    mp_model_free(&m);
    mp_backend_close(be);
    return n;
}

static void test_token_stage_split_bitwise(void)
{
    static float whole[8192], two[8192], three[8192];
    const int c1[] = {0, 5}, c2[] = {0, 2, 5}, c3[] = {0, 1, 3, 5};
    size_t n1 = train_token_stages(c1, 1, 3, whole);
    size_t n2 = train_token_stages(c2, 2, 3, two);
    size_t n3 = train_token_stages(c3, 3, 3, three);
    CU_ASSERT_EQUAL(n1, 17 * 8 + (4 * 64 + 48) + (16 + 2 * 96 + 12 + 8) + 16 + 88);   /* every layer's parameters */
    CU_ASSERT_EQUAL(n1, n2);
    CU_ASSERT_EQUAL(n1, n3);
    CU_ASSERT(memcmp(whole, two, n1 * 4) == 0);
    CU_ASSERT(memcmp(whole, three, n1 * 4) == 0);
    /* and the training moved them: a 1-step run differs */
    static float one[8192];
    train_token_stages(c1, 1, 1, one);
    CU_ASSERT(memcmp(whole, one, n1 * 4) != 0);
}

/* The Markov-chain data: a pure function of (seed, sample), labels are the
 * next tokens, every transition is one of the chain's, drawn with its
 * probabilities, and the entropy rate is that of those probabilities. */
static void test_token_data(void)
{
    mp_model m;
    parse_model(TOKEN_MODEL, &m);
    mp_error err = {0};
    mp_data d, e;
    CU_ASSERT_FATAL(mp_data_init(&d, &m, 5, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_data_init(&e, &m, 6, &err) == MP_OK);
    enum { R = 2000, T = 6, V = 11 };
    float *x = malloc(R * T * 4), xs[4 * T], xe[10 * T];
    int *lab = malloc(R * T * sizeof(int)), ls[4 * T];
    mp_data_inputs(&d, 0, R, x);
    mp_data_targets(&d, 0, R, NULL, lab);
    mp_data_inputs(&d, 3, 4, xs);
    mp_data_targets(&d, 3, 4, NULL, ls);
    CU_ASSERT(memcmp(xs, x + 3 * T, sizeof xs) == 0);
    CU_ASSERT(memcmp(ls, lab + 3 * T, sizeof ls) == 0);
    mp_data_inputs(&e, 0, 10, xe);
    CU_ASSERT(memcmp(xe, x, sizeof xe) != 0);   /* another seed, other data */
    long hits[MP_DATA_SUCCESSORS] = {0}, total = 0, bad = 0;
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float v = x[r * T + t];
            bad += v != (float)(int)v || v < 0 || v >= V;
            int cur = (int)v, next = lab[r * T + t], k = 0;
            if (t + 1 < T) bad += (float)next != x[r * T + t + 1];
            while (k < d.nsucc && d.succ[cur * d.nsucc + k] != next) k++;
            bad += k == d.nsucc;   /* not a transition of the chain */
            if (k < d.nsucc) hits[k]++;
            total++;
        }
    CU_ASSERT_EQUAL(bad, 0);
    double h = 0;
    for (int k = 0; k < d.nsucc; k++) {
        CU_ASSERT(fabs((double)hits[k] / total - d.prob[k]) < 0.02);
        h -= d.prob[k] * log(d.prob[k]);
    }
    CU_ASSERT_EQUAL(d.nsucc, 4);
    CU_ASSERT_DOUBLE_EQUAL(mp_data_entropy_rate(&d), h, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(h, -(8 * log(8 / 15.0) + 4 * log(4 / 15.0) + 2 * log(2 / 15.0) + log(1 / 15.0)) / 15, 1e-12);
    for (int v = 0; v < V; v++)   /* distinct successors */
        for (int a = 0; a < d.nsucc; a++)
            for (int b = a + 1; b < d.nsucc; b++) CU_ASSERT(d.succ[v * d.nsucc + a] != d.succ[v * d.nsucc + b]);
    free(x); free(lab);
    mp_data_free(&d);
    mp_data_free(&e);
    mp_model_free(&m);
    /* a 2-token vocabulary: both tokens follow each other */
    parse_model("{\"format\":\"mpkit-model/1\",\"input\":{\"type\":\"tokens\",\"vocab\":2,\"seq_len\":3},\"layers\":["
                "{\"type\":\"embedding\",\"dim\":2},{\"type\":\"linear\",\"out\":2}],\"loss\":\"cross_entropy\"}", &m);
    CU_ASSERT_FATAL(mp_data_init(&d, &m, 1, &err) == MP_OK);
    CU_ASSERT_EQUAL(d.nsucc, 2);
    CU_ASSERT(d.succ[0] != d.succ[1] && d.succ[2] != d.succ[3]);
    CU_ASSERT_DOUBLE_EQUAL(mp_data_entropy_rate(&d), -(2 * log(2 / 3.0) + log(1 / 3.0)) / 3, 1e-12);
    mp_data_free(&d);
    mp_model_free(&m);
}

/* One stage of the tiny GPT (tests/fixtures/tiny_gpt.model.json) trained on
 * the chain: the mean loss starts near ln(vocab) and ends well below it. */
static void test_token_training(void)
{
    mp_backend *be = open_cpu();
    mp_model m;
    mp_error err = {0};
    CU_ASSERT_FATAL(mp_model_load(mp_test_fixture("tiny_gpt.model.json"), &m, &err) == MP_OK);
    mp_data data;
    CU_ASSERT_FATAL(mp_data_init(&data, &m, 11, &err) == MP_OK);
    enum { B = 8, STEPS = 150 };
    mp_stage_net s;
    CU_ASSERT_FATAL(mp_stage_init(&s, be, &m, 0, m.num_layers - 1, B, 2, &err) == MP_OK);
    int T = m.seq_len, V = m.vocab;
    float *x = malloc((size_t)B * T * 4), *y = malloc((size_t)B * T * V * 4), *dy = malloc((size_t)B * T * V * 4);
    float *stash = malloc(mp_stage_stash_bytes(&s, B));
    int *lab = malloc((size_t)B * T * sizeof(int));
    double first = 0, last = 0;
    for (int step = 0; step < STEPS; step++) {
        mp_data_inputs(&data, (long long)step * B, B, x);
        mp_data_targets(&data, (long long)step * B, B, NULL, lab);
        float loss = 0;
        mp_stage_zero_grad(&s);
        CU_ASSERT(mp_stage_forward(&s, B, x, y, stash, &err) == MP_OK);
        CU_ASSERT(mp_loss_eval(be, &m, B, y, lab, dy, 1.0f / B, &loss, &err) == MP_OK);
        CU_ASSERT(mp_stage_backward(&s, B, dy, NULL, stash, &err) == MP_OK);
        mp_optim adam = {.kind = MP_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = step + 1};
        CU_ASSERT(mp_stage_update(&s, &adam, &err) == MP_OK);
        if (step == 0) first = loss;
        if (step >= STEPS - 10) last += loss / 10;
    }
    double lnv = log((double)V), h = mp_data_entropy_rate(&data);
    printf("\n  tiny-gpt: loss %.3f -> %.3f in %d steps (ln(vocab) %.3f, entropy rate %.3f) ", first, last, STEPS, lnv, h);
    CU_ASSERT(fabs(first - lnv) < 0.3 * lnv);
    CU_ASSERT(last < 0.5 * (lnv + h));
    CU_ASSERT(last > h - 0.1);   /* nothing beats the chain's entropy rate */
    free(x); free(y); free(dy); free(stash); free(lab);
    mp_stage_free(&s);
    mp_data_free(&data);
    mp_model_free(&m);
    mp_backend_close(be);
}

/* ---------------------------------------------------------------- split backward */

/* The whole model as one stage, twice from the same seed: micro-batches of 2
 * through the fused backward on one, and on the other every forward, then
 * every B (backward_input) and only then every W (backward_weight), as a
 * zero-bubble schedule defers them. Input gradients and the accumulated
 * weight gradients must be bitwise equal, with or without dx; each layer's
 * B fills exactly its documented W-stash, not one float further. */
static void check_split_bitwise(const char *json, int with_dx)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(json, &m);
    mp_error err = {0};
    mp_stage_net a, z;
    const int mb = 2, nmb = 3;
    CU_ASSERT_FATAL(mp_stage_init(&a, be, &m, 0, m.num_layers - 1, mb, 5, &err) == MP_OK);
    CU_ASSERT_FATAL(mp_stage_init(&z, be, &m, 0, m.num_layers - 1, mb, 5, &err) == MP_OK);
    size_t nin = (size_t)mb * a.in_dim, nout = (size_t)mb * a.out_dim;
    size_t sb = mp_stage_stash_bytes(&a, mb), wb = mp_stage_wstash_bytes(&z, mb);
    float *x = malloc(nmb * nin * 4), *y = malloc(nout * 4), *dy = malloc(nmb * nout * 4);
    float *dxa = calloc(nmb * nin, 4), *dxz = calloc(nmb * nin, 4), *st = malloc(sb);
    float *zst = malloc(nmb * sb), *zw = malloc(nmb * wb + 64 * 4);
    for (size_t k = 0; k < nmb * wb / 4 + 64; k++) zw[k] = 12345.0f;
    for (int i = 0; i < nmb; i++) fill_input(&a.layers[0], x + i * nin, nin);
    for (size_t k = 0; k < nmb * nout; k++) dy[k] = (float)urand();
    for (int i = 0; i < nmb; i++) {
        CU_ASSERT(mp_stage_forward(&a, mb, x + i * nin, y, st, &err) == MP_OK);
        CU_ASSERT(mp_stage_backward(&a, mb, dy + i * nout, with_dx ? dxa + i * nin : NULL, st, &err) == MP_OK);
    }
    for (int i = 0; i < nmb; i++)
        CU_ASSERT(mp_stage_forward(&z, mb, x + i * nin, y, zst + i * sb / 4, &err) == MP_OK);
    for (int i = 0; i < nmb; i++)
        CU_ASSERT(mp_stage_backward_input(&z, mb, dy + i * nout, with_dx ? dxz + i * nin : NULL, zst + i * sb / 4,
                                          zw + i * wb / 4, &err) == MP_OK);
    size_t touched = 0;
    for (size_t k = nmb * wb / 4; k < nmb * wb / 4 + 64; k++) touched += zw[k] != 12345.0f;
    CU_ASSERT_EQUAL(touched, 0);
    /* no weight gradient yet */
    for (int l = 0; l < z.count; l++) {
        size_t np = z.layers[l].nparams, bad = 0;
        float *g = malloc((np + 1) * 4);
        mp_layer_get_grads(&z.layers[l], be, g);
        for (size_t k = 0; k < np; k++) bad += g[k] != 0.0f;
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(mp_layer_wstash_bytes_per_sample(&z.layers[l]),
                        mp_layer_spec_wstash_bytes_per_sample(&m.layers[l]));
        free(g);
    }
    for (int i = 0; i < nmb; i++)
        CU_ASSERT(mp_stage_backward_weight(&z, mb, zst + i * sb / 4, zw + i * wb / 4, &err) == MP_OK);
    CU_ASSERT(memcmp(dxa, dxz, nmb * nin * 4) == 0);
    for (int l = 0; l < a.count; l++) {
        size_t np = a.layers[l].nparams;
        float *ga = malloc((np + 1) * 4), *gz = malloc((np + 1) * 4);
        mp_layer_get_grads(&a.layers[l], be, ga);
        mp_layer_get_grads(&z.layers[l], be, gz);
        if (memcmp(ga, gz, np * 4) != 0) printf("\n layer %d (%s): split gradients differ", l, mp_layer_type_name(a.layers[l].type));
        CU_ASSERT(memcmp(ga, gz, np * 4) == 0);
        free(ga); free(gz);
    }
    free(x); free(y); free(dy); free(dxa); free(dxz); free(st); free(zst); free(zw);
    mp_stage_free(&a);
    mp_stage_free(&z);
    CU_ASSERT_EQUAL(be->i->mem_used(be), 0);
    mp_model_free(&m);
    mp_backend_close(be);
}

static const char *CAUSAL_OFF_MODEL =
    "{\"format\":\"mpkit-model/1\",\"input\":{\"type\":\"tokens\",\"vocab\":7,\"seq_len\":5},\"layers\":["
    "{\"type\":\"embedding\",\"dim\":6},{\"type\":\"attention\",\"heads\":3,\"causal\":false},"
    "{\"type\":\"gelu\"},{\"type\":\"linear\",\"out\":7}],\"loss\":{\"type\":\"cross_entropy\",\"classes\":7}}";

/* every layer type: linear (bias and not), relu, gelu, layernorm,
 * residual_mlp, embedding, attention (causal and not) */
static void test_split_backward_bitwise(void)
{
    for (int with_dx = 0; with_dx < 2; with_dx++) {
        check_split_bitwise(STAGE_MODEL, with_dx);
        check_split_bitwise(TOKEN_MODEL, with_dx);
        check_split_bitwise(CAUSAL_OFF_MODEL, with_dx);
    }
}

static void test_backend_registry(void)
{
    mp_backend *be = NULL;
    mp_error err = {0};
    CU_ASSERT(mp_backend_available("cpu"));
    CU_ASSERT(!mp_backend_available("tpu"));
    CU_ASSERT(mp_backend_open("tpu", 0, &be, &err) == MP_ERR_BACKEND);
    CU_ASSERT(be == NULL);
    CU_ASSERT(strstr(err.msg, "tpu") != NULL);
    if (!mp_backend_available("cuda")) {
        mp_error_clear(&err);
        CU_ASSERT(mp_backend_open("cuda", 0, &be, &err) == MP_ERR_BACKEND);
        CU_ASSERT(strstr(err.msg, "not compiled") != NULL);
    }
    mp_error_clear(&err);
    CU_ASSERT(mp_backend_open("cpu", 100000, &be, &err) == MP_ERR_BACKEND);
    CU_ASSERT_FATAL(mp_backend_open("cpu", -1, &be, &err) == MP_OK);
    char buf[512];
    CU_ASSERT(strncmp(mp_backend_describe(be, buf, sizeof buf), "cpu:", 4) == 0);
    CU_ASSERT_STRING_EQUAL(mp_backend_name(be), "cpu");
    mp_backend_close(be);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_linear_grad), MP_TEST(test_linear_nobias_grad), MP_TEST(test_relu_grad),
        MP_TEST(test_gelu_grad), MP_TEST(test_layernorm_grad), MP_TEST(test_residual_mlp_grad),
        MP_TEST(test_embedding_grad), MP_TEST(test_attention_grad), MP_TEST(test_per_token_grad),
        MP_TEST(test_losses), MP_TEST(test_token_loss), MP_TEST(test_optimizers),
        MP_TEST(test_stage_microbatches_and_determinism), MP_TEST(test_stage_split_matches_whole),
        MP_TEST(test_byte_accounting), MP_TEST(test_token_byte_accounting),
        MP_TEST(test_token_stage_split_bitwise), MP_TEST(test_token_data), MP_TEST(test_token_training),
        MP_TEST(test_split_backward_bitwise), MP_TEST(test_backend_registry),
    };
    return mp_test_main("layers", cases, (int)(sizeof cases / sizeof cases[0]));
}
