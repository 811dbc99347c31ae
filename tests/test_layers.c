/* test_layers.c — every layer's forward against a double-precision reference,
 * its backward (input AND weight gradients) against central finite
 * differences of that reference, the losses, SGD/Adam against hand math,
 * micro-batch gradient accumulation, recompute and bitwise determinism. */
#include "testutil.h"
#include "backend_impl.h"
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

static void ref_forward(const mp_layer *l, int b, const double *x, const double *w, double *y)
{
    int d = l->in, o = l->out, h = l->hidden;
    for (int r = 0; r < b; r++) {
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

/* Checks forward, dx and every weight gradient of the single layer in `json`. */
static void check_layer(const char *json, int relu_safe)
{
    mp_backend *be = open_cpu();
    mp_model m;
    parse_model(json, &m);
    mp_layer l;
    mp_error err = {0};
    const int b = 3;
    CU_ASSERT_FATAL(mp_layer_init(&l, be, &m.layers[0], b, 7, &err) == MP_OK);
    int d = l.in, o = l.out;
    size_t np = l.nparams, nx = (size_t)b * d, ny = (size_t)b * o;
    float *xf = malloc(nx * 4), *wf = malloc((np + 1) * 4), *rf = malloc(ny * 4);
    double *xd = malloc(nx * 8), *wd = malloc((np + 1) * 8), *rd = malloc(ny * 8), *yd = malloc(ny * 8);
    for (size_t i = 0; i < nx; i++) {
        double v = urand();
        if (relu_safe && fabs(v) < 0.05) v = v < 0 ? -0.1 : 0.1;   /* away from the kink */
        xf[i] = (float)v; xd[i] = xf[i];
    }
    for (size_t i = 0; i < np; i++) { wf[i] = (float)(0.5 * urand()); wd[i] = wf[i]; }
    if (l.type == MP_LAYER_LAYERNORM || l.type == MP_LAYER_RESIDUAL_MLP)
        for (int c = 0; c < d; c++) { wf[c] = (float)(1.0 + 0.3 * urand()); wd[c] = wf[c]; }
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
    for (size_t i = 0; i < nx; i++) {
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

static void test_linear_grad(void) { check_layer(ONE("{\"type\":\"linear\",\"out\":4}"), 0); }
static void test_linear_nobias_grad(void) { check_layer(ONE("{\"type\":\"linear\",\"out\":3,\"bias\":false}"), 0); }
static void test_relu_grad(void) { check_layer(ONE("{\"type\":\"relu\"}"), 1); }
static void test_gelu_grad(void) { check_layer(ONE("{\"type\":\"gelu\"}"), 0); }
static void test_layernorm_grad(void) { check_layer(ONE("{\"type\":\"layernorm\"}"), 0); }
static void test_residual_mlp_grad(void) { check_layer(ONE("{\"type\":\"residual_mlp\",\"hidden\":7}"), 0); }

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
        MP_TEST(test_losses), MP_TEST(test_optimizers),
        MP_TEST(test_stage_microbatches_and_determinism), MP_TEST(test_stage_split_matches_whole),
        MP_TEST(test_byte_accounting), MP_TEST(test_backend_registry),
    };
    return mp_test_main("layers", cases, (int)(sizeof cases / sizeof cases[0]));
}
