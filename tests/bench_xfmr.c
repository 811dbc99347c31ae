/* bench_xfmr.c — transformer speed on the CPU backend (make bench):
 *  (a) one-stage gpt-mini: mprun's iteration time against the sum of the
 *      layer times mpprof measures (one busy core), overhead % (target <= 3%);
 *  (b) GFLOP/s of each layer type of gpt-mini (embedding, attention,
 *      residual_mlp, layernorm, linear head, cross-entropy), forward +
 *      backward, against OpenBLAS sgemm on the same core running exactly the
 *      GEMM calls (shapes, transposes, leading dimensions) of that layer;
 *  (c) when torch imports: mprun's one-stage step (with the optimizer step,
 *      OPENBLAS_NUM_THREADS=1) against PyTorch eager on one thread training
 *      the same model (tests/bench_torch_gpt.py), else "skipped: no torch".
 * Both parts alternate A and B measurements round by round and report
 * medians, so a noisy machine moves both alike. Prints a table; fails only
 * when something does not run (targets are reported, not asserted). Run from
 * the repository root (tools from $MPKIT_BIN, default bin/). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "stats.h"
#include "backend_impl.h"
#include "layers.h"
#include "model.h"
#include "profile.h"

#define MODEL "profiles/gpt-mini.model.json"
#define B 1          /* micro-batch: one sequence of seq_len tokens */
#define M_MICRO 4    /* micro-batches per step in (a) */
#define ROUNDS_A 7
#define ROUNDS_B 15

/* After mp_median(v, n): the smallest, what a busy machine disturbs least. */
static double least(const double *v) { return v[0]; }

/* ---------------------------------------------------------------- (a) */

static const char *bin_dir(void)
{
    const char *b = getenv("MPKIT_BIN");
    return b && *b ? b : "bin";
}

/* Runs cmd; returns the number after `key` on the first stdout line that
 * starts with it, or -1. */
static double run_and_read(const char *cmd, const char *key)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    double v = -1;
    while (fgets(line, sizeof line, p)) {
        if (v < 0 && strncmp(line, key, strlen(key)) == 0) sscanf(line + strlen(key), "%lf", &v);
    }
    if (pclose(p) != 0) return -1;
    return v;
}

/* m * sum over layers of fwd + bwd at micro-batch B, from mpprof's profile. */
static double profile_sum_ms(const char *path)
{
    mp_profile prof;
    mp_error err;
    if (mp_profile_load(path, &prof, &err) != MP_OK) {
        fprintf(stderr, "bench_xfmr: %s\n", err.msg);
        return -1;
    }
    double s = 0;
    for (int i = 0; i < prof.num_layers; i++)
        s += mp_time_eval(&prof.layers[i].fwd, B) + mp_time_eval(&prof.layers[i].bwd, B);
    mp_profile_free(&prof);
    return M_MICRO * s;
}

/* out/bench/gpt-mini.1stage.plan.json: every layer on core 0, b=B, m=M_MICRO. */
static int write_plan(void)
{
    mkdir("out", 0777);
    mkdir("out/bench", 0777);
    FILE *f = fopen("out/bench/gpt-mini.1stage.plan.json", "w");
    if (!f) return 1;
    fprintf(f, "{\"format\": \"mpplan-plan/1\", \"mode\": \"train\", \"schedule\": \"gpipe\", "
               "\"chunks_per_device\": 1, \"global_batch\": %d, \"microbatch_size\": %d, "
               "\"num_microbatches\": %d, \"stages\": [{\"layers\": [0, 18], \"device\": 0, "
               "\"recompute\": false}]}\n", B * M_MICRO, B, M_MICRO);
    return fclose(f) == 0 ? 0 : 1;
}

static int bench_step(void)
{
    if (write_plan()) return 1;
    char run[1024], prof[1024];
    snprintf(run, sizeof run, "%s/mprun out/bench/gpt-mini.1stage.plan.json --model " MODEL
             " --steps 4 --warmup 1 --quiet 2>/dev/null", bin_dir());
    snprintf(prof, sizeof prof, "%s/mpprof --model " MODEL " --batch %d --threads 1 --device 0 --quiet "
             "-o out/bench/gpt-mini.b1.profile.json >/dev/null 2>&1", bin_dir(), B);
    double a[ROUNDS_A], s[ROUNDS_A];
    printf("# (a) gpt-mini, one stage (core 0), b=%d x m=%d: mprun iteration vs m * sum of mpprof's layer times "
           "(--threads 1 --device 0), %d alternating rounds\n", B, M_MICRO, ROUNDS_A);
    printf("%6s %14s %14s %10s\n", "round", "mprun_ms", "profile_ms", "overhead");
    for (int r = 0; r < ROUNDS_A; r++) {
        a[r] = run_and_read(run, "iteration");
        s[r] = system(prof) == 0 ? profile_sum_ms("out/bench/gpt-mini.b1.profile.json") : -1;
        if (a[r] <= 0 || s[r] <= 0) {
            fprintf(stderr, "bench_xfmr: mprun or mpprof failed:\n  %s\n  %s\n", run, prof);
            return 1;
        }
        printf("%6d %14.3f %14.3f %9.2f%%\n", r + 1, a[r], s[r], 100 * (a[r] / s[r] - 1));
    }
    double ma = mp_median(a, ROUNDS_A), ms = mp_median(s, ROUNDS_A);
    printf("%6s %14.3f %14.3f %9.2f%%  (target <= 3%%: %s)\n", "median", ma, ms, 100 * (ma / ms - 1),
           ma / ms - 1 <= 0.03 ? "met" : "NOT met");
    printf("%6s %14.3f %14.3f %9.2f%%  (least of each: on a busy machine the steadier figure)\n", "min", least(a),
           least(s), 100 * (least(a) / least(s) - 1));
    return 0;
}

/* mprun's step (optimizer included) against tests/bench_torch_gpt.py. */
static int bench_torch(void)
{
    printf("# (c) gpt-mini, b=%d x m=%d, one thread: mprun one-stage step (with SGD) vs PyTorch eager "
           "(tests/bench_torch_gpt.py)\n", B, M_MICRO);
    if (system("python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("skipped: no torch\n");
        return 0;
    }
    if (write_plan()) return 1;
    char run[1024], torch[1024];
    snprintf(run, sizeof run, "OPENBLAS_NUM_THREADS=1 %s/mprun out/bench/gpt-mini.1stage.plan.json --model " MODEL
             " --steps 5 --warmup 1 --quiet 2>/dev/null", bin_dir());
    snprintf(torch, sizeof torch, "python3 tests/bench_torch_gpt.py --model " MODEL " --micro-batch %d "
             "--micro-batches %d --steps 4 --warmup 1 --threads 1 2>/dev/null", B, M_MICRO);
    enum { R = 5 };
    double a[R], t[R];
    printf("%6s %14s %14s %10s\n", "round", "mprun_ms", "torch_ms", "speedup");
    for (int r = 0; r < R; r++) {
        a[r] = run_and_read(run, "step ");
        t[r] = run_and_read(torch, "torch_step_ms");
        if (a[r] <= 0 || t[r] <= 0) {
            fprintf(stderr, "bench_xfmr: mprun or torch failed:\n  %s\n  %s\n", run, torch);
            return 1;
        }
        printf("%6d %14.3f %14.3f %9.2fx\n", r + 1, a[r], t[r], t[r] / a[r]);
    }
    double ma = mp_median(a, R), mt = mp_median(t, R);
    printf("%6s %14.3f %14.3f %9.2fx  (mprun at least as fast: %s)\n", "median", ma, mt, mt / ma,
           ma <= mt ? "yes" : "NO");
    printf("%6s %14.3f %14.3f %9.2fx  (least of each)\n", "min", least(a), least(t), least(t) / least(a));
    return 0;
}

/* ---------------------------------------------------------------- (b) */

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, count;
} gemm_call;

#define MAX_CALLS 16

typedef struct {
    const char *name;
    int layer;                 /* index in the model; -1: the loss */
    gemm_call calls[MAX_CALLS];
    int ncalls;
    double nominal_flops;      /* layers without GEMMs: elementwise flops (see the footnote) */
} layer_case;

static void add(layer_case *c, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc, int count)
{
    c->calls[c->ncalls++] = (gemm_call){ ta, tb, M, N, K, lda, ldb, ldc, count };
}

static double gemm_flops(const layer_case *c)
{
    double f = 0;
    for (int i = 0; i < c->ncalls; i++)
        f += 2.0 * c->calls[i].M * c->calls[i].N * c->calls[i].K * c->calls[i].count;
    return f;
}

/* The GEMM calls of layers.c's forward and backward, per layer type. */
static void build_cases(const mp_model *m, layer_case *cs, int *n)
{
    int T = m->seq_len, rows = B * T, V = m->vocab;
    int d = m->layers[0].out_dim / T, H = m->layers[1].heads, dh = d / H, h = m->layers[2].hidden;
    int BH = B * H;
    layer_case *c;
    *n = 0;
    c = &cs[(*n)++];
    *c = (layer_case){ .name = "embedding", .layer = 0, .nominal_flops = 3.0 * rows * d };
    c = &cs[(*n)++];
    *c = (layer_case){ .name = "attention", .layer = 1 };
    add(c, 0, 1, rows, 3 * d, d, d, d, 3 * d, 1);       /* qkv */
    add(c, 0, 1, T, T, dh, 3 * d, 3 * d, T, BH);       /* scores */
    add(c, 0, 0, T, dh, T, T, 3 * d, d, BH);           /* p v */
    add(c, 0, 1, rows, d, d, d, d, d, 1);              /* Wo */
    add(c, 1, 0, d, d, rows, d, d, d, 1);              /* dWo */
    add(c, 0, 0, rows, d, d, d, d, d, 1);              /* dout */
    add(c, 0, 1, T, T, dh, d, 3 * d, T, BH);           /* dp */
    add(c, 1, 0, T, dh, T, T, d, 3 * d, BH);           /* dv */
    add(c, 0, 0, T, dh, T, T, 3 * d, 3 * d, BH);       /* dq */
    add(c, 1, 0, T, dh, T, T, 3 * d, 3 * d, BH);       /* dk */
    add(c, 1, 0, 3 * d, d, rows, 3 * d, d, d, 1);      /* dWqkv */
    add(c, 0, 0, rows, d, 3 * d, 3 * d, d, d, 1);      /* du */
    c = &cs[(*n)++];
    *c = (layer_case){ .name = "residual_mlp", .layer = 2 };
    add(c, 0, 1, rows, h, d, d, d, h, 1);
    add(c, 0, 1, rows, d, h, h, h, d, 1);
    add(c, 1, 0, d, h, rows, d, h, h, 1);
    add(c, 0, 0, rows, h, d, d, h, h, 1);
    add(c, 1, 0, h, d, rows, h, d, d, 1);
    add(c, 0, 0, rows, d, h, h, d, d, 1);
    c = &cs[(*n)++];
    *c = (layer_case){ .name = "layernorm", .layer = m->num_layers - 2, .nominal_flops = 20.0 * rows * d };
    c = &cs[(*n)++];
    *c = (layer_case){ .name = "linear head", .layer = m->num_layers - 1 };
    add(c, 0, 1, rows, V, d, d, d, V, 1);
    add(c, 1, 0, V, d, rows, V, d, d, 1);
    add(c, 0, 0, rows, d, V, V, d, d, 1);
    c = &cs[(*n)++];
    *c = (layer_case){ .name = "xent", .layer = -1, .nominal_flops = 6.0 * rows * V };
}

static size_t floats_a(const gemm_call *g) { return (size_t)(g->ta ? g->K : g->M) * g->lda + 64; }
static size_t floats_b(const gemm_call *g) { return (size_t)(g->tb ? g->N : g->K) * g->ldb + 64; }
static size_t floats_c(const gemm_call *g) { return (size_t)g->M * g->ldc + 64; }

/* The layer's GEMM calls on plain buffers; ms. */
static double time_sgemm(const layer_case *c, float *A, float *Bm, float *C)
{
    double t0 = mp_now_ms();
    for (int i = 0; i < c->ncalls; i++) {
        const gemm_call *g = &c->calls[i];
        for (int k = 0; k < g->count; k++)
            cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                        g->M, g->N, g->K, 1.0f, A, g->lda, Bm, g->ldb, 0.0f, C, g->ldc);
    }
    return mp_now_ms() - t0;
}

typedef struct {
    mp_backend *be;
    const mp_model *m;
    mp_layer l;
    float *x, *y, *dy, *dx, *stash;
    int *labels;
} layer_run;

static int layer_open(layer_run *r, mp_backend *be, const mp_model *m, int idx, mp_error *err)
{
    memset(r, 0, sizeof *r);
    r->be = be;
    r->m = m;
    const mp_backend_i *ops = be->i;
    int li = idx < 0 ? m->num_layers - 1 : idx;
    const mp_model_layer *spec = &m->layers[li];
    size_t in = (size_t)B * spec->in_dim, out = (size_t)B * spec->out_dim;
    r->x = ops->alloc(be, in * sizeof(float));
    r->y = ops->alloc(be, out * sizeof(float));
    r->dy = ops->alloc(be, out * sizeof(float));
    r->dx = ops->alloc(be, in * sizeof(float));
    if (!r->x || !r->y || !r->dy || !r->dx) return 1;
    float *host = malloc((in > out ? in : out) * sizeof *host);
    unsigned s = 7;
    for (size_t i = 0; i < in; i++) {
        s = s * 1664525u + 1013904223u;
        host[i] = spec->type == MP_LAYER_EMBEDDING ? (float)((s >> 8) % (unsigned)spec->vocab)
                                                   : (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    ops->upload(be, r->x, host, in * sizeof *host);
    for (size_t i = 0; i < out; i++) host[i] = 1e-3f * (float)(i % 13);
    ops->upload(be, r->dy, host, out * sizeof *host);
    free(host);
    if (idx < 0) {   /* the loss: logits = x-shaped output of the head, labels per token */
        int rows = B * m->seq_len;
        int *lab = malloc((size_t)rows * sizeof *lab);
        for (int i = 0; i < rows; i++) lab[i] = (i * 131) % m->classes;
        r->labels = ops->alloc(be, (size_t)rows * sizeof *lab);
        ops->upload(be, r->labels, lab, (size_t)rows * sizeof *lab);
        free(lab);
        return 0;
    }
    if (mp_layer_init(&r->l, be, spec, B, 1, err) != MP_OK) return 1;
    r->stash = ops->alloc(be, (size_t)B * mp_layer_stash_bytes_per_sample(&r->l));
    return r->stash ? 0 : 1;
}

/* Forward + backward of the layer (or the loss on y's logits); ms. */
static double layer_time(layer_run *r, mp_error *err)
{
    double t0 = mp_now_ms();
    if (!r->l.type && r->labels) {
        float loss;
        /* logits: the dy buffer (out-shaped), gradient into y */
        if (mp_loss_eval(r->be, r->m, B, r->dy, r->labels, r->y, 1.0f / B, &loss, err) != MP_OK) return -1;
        return mp_now_ms() - t0;
    }
    if (mp_layer_forward(&r->l, r->be, B, r->x, r->y, r->stash, err) != MP_OK) return -1;
    if (mp_layer_backward(&r->l, r->be, B, r->dy, r->dx, r->stash, err) != MP_OK) return -1;
    return mp_now_ms() - t0;
}

static void layer_close(layer_run *r)
{
    const mp_backend_i *ops = r->be->i;
    if (r->l.type || r->l.nparams) mp_layer_free(&r->l, r->be);
    ops->free(r->be, r->x);
    ops->free(r->be, r->y);
    ops->free(r->be, r->dy);
    ops->free(r->be, r->dx);
    ops->free(r->be, r->stash);
    ops->free(r->be, r->labels);
}

static int bench_layers(void)
{
    mp_model m;
    mp_error err;
    if (mp_model_load(MODEL, &m, &err) != MP_OK) {
        fprintf(stderr, "bench_xfmr: %s\n", err.msg);
        return 1;
    }
    mp_backend *be = NULL;
    if (mp_backend_open("cpu", 0, &be, &err) != MP_OK) {
        fprintf(stderr, "bench_xfmr: %s\n", err.msg);
        mp_model_free(&m);
        return 1;
    }
    layer_case cs[8];
    int n;
    build_cases(&m, cs, &n);
    size_t fa = 0, fb = 0, fc = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < cs[i].ncalls; k++) {
            if (floats_a(&cs[i].calls[k]) > fa) fa = floats_a(&cs[i].calls[k]);
            if (floats_b(&cs[i].calls[k]) > fb) fb = floats_b(&cs[i].calls[k]);
            if (floats_c(&cs[i].calls[k]) > fc) fc = floats_c(&cs[i].calls[k]);
        }
    float *A = calloc(fa, sizeof *A), *Bm = calloc(fb, sizeof *Bm), *C = calloc(fc, sizeof *C);
    for (size_t i = 0; i < fa; i++) A[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < fb; i++) Bm[i] = (float)(i % 11) * 0.01f;
    char desc[512];
    printf("# (b) gpt-mini layers, forward + backward, b=%d (%d tokens), core 0: %s\n", B, B * m.seq_len,
           mp_backend_describe(be, desc, sizeof desc));
    printf("#     the same GEMM calls as plain cblas_sgemm on the same core; medians of %d alternating rounds\n",
           ROUNDS_B);
    printf("%-14s %10s %10s %10s %12s %10s\n", "layer", "ms", "GFLOP", "GFLOP/s", "sgemm_GFLOP/s", "of_sgemm");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        layer_run r;
        if (layer_open(&r, be, &m, cs[i].layer, &err)) {
            fprintf(stderr, "bench_xfmr: %s: cannot set up (%s)\n", cs[i].name, err.msg);
            rc = 1;
            break;
        }
        double tl[ROUNDS_B], tg[ROUNDS_B];
        for (int w = 0; w < 2; w++) {
            layer_time(&r, &err);
            time_sgemm(&cs[i], A, Bm, C);
        }
        for (int k = 0; k < ROUNDS_B && !rc; k++) {
            tl[k] = layer_time(&r, &err);
            tg[k] = time_sgemm(&cs[i], A, Bm, C);
            if (tl[k] < 0) rc = 1;
        }
        if (!rc) {
            double ml = mp_median(tl, ROUNDS_B), mg = mp_median(tg, ROUNDS_B), fl = gemm_flops(&cs[i]);
            if (cs[i].ncalls)
                printf("%-14s %10.3f %10.4f %10.1f %12.1f %9.1f%%\n", cs[i].name, ml, fl / 1e9, fl / ml / 1e6,
                       fl / mg / 1e6, 100 * mg / ml);
            else
                printf("%-14s %10.3f %10.4f %10.2f %12s %10s\n", cs[i].name, ml, cs[i].nominal_flops / 1e9,
                       cs[i].nominal_flops / ml / 1e6, "-", "-");
        } else {
            fprintf(stderr, "bench_xfmr: %s: %s\n", cs[i].name, err.msg);
        }
        layer_close(&r);
    }
    printf("# GFLOP: the layer's GEMM flops (2MNK summed over its calls); of_sgemm = sgemm time / layer time.\n"
           "# No GEMM (nominal elementwise flops): embedding 3 per output element (gather+add, scatter-add),\n"
           "# layernorm 20 per element (fwd+bwd), xent 6 per logit (max, exp, sum, scale, one-hot).\n");
    free(A);
    free(Bm);
    free(C);
    mp_backend_close(be);
    mp_model_free(&m);
    return rc;
}

/* bench_xfmr [layers] [step] [torch]: the parts named (default all three). */
int main(int argc, char **argv)
{
    int want[3] = { argc < 2, argc < 2, argc < 2 };
    static const char *const parts[3] = { "layers", "step", "torch" };
    for (int i = 1; i < argc; i++)
        for (int k = 0; k < 3; k++)
            if (strcmp(argv[i], parts[k]) == 0) want[k] = 1;
    printf("# mpkit transformer speed (CPU backend, OPENBLAS_NUM_THREADS=%s)\n",
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "unset");
    if (want[0] && bench_layers()) return 1;
    if (want[1] && (printf("\n"), bench_step())) return 1;
    if (want[2] && (printf("\n"), bench_torch())) return 1;
    return 0;
}
