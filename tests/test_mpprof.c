/* test_mpprof.c — bin/mpprof end to end: a profile of profiles/tiny.model.json
 * loads with mp_profile_load, has one layer per planning unit with positive
 * times growing with b and byte fields equal to the layer accounting; --links
 * output loads with mp_cluster_load (latency > 0 from the threads transport);
 * the methods (--sequential, steps, --threads/--rotate/--min-sample) agree
 * in shape; the weighted link fit recovers a known line; bad inputs exit 2
 * with one message. */
#include "testutil.h"
#include "backend.h"
#include "cluster.h"
#include "layers.h"
#include "model.h"
#include "profile.h"
#include "prof.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_profile_tiny(void)
{
    char cmd[2048], *out = NULL, *err = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.profile.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s --model profiles/tiny.model.json --batch 1,4,16 --warmup 1 --repeat 3 -o %s",
             mp_test_tool("mpprof"), path);
    int rc = mp_test_run_cmd(cmd, &out, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(strncmp(out, "# mpprof:", 9) == 0);
    CU_ASSERT(strstr(out, "# OK") != NULL);
    CU_ASSERT(strstr(err, "[10/10]") != NULL);   /* progress on stderr */
    free(out); free(err);

    mp_profile p;
    mp_error e = {0};
    mp_status st = mp_profile_load(path, &p, &e);
    if (st) printf("\n%s\n", e.msg);
    CU_ASSERT_FATAL(st == MP_OK);
    mp_model m;
    CU_ASSERT_FATAL(mp_model_load("profiles/tiny.model.json", &m, &e) == MP_OK);
    CU_ASSERT_EQUAL_FATAL(p.num_layers, m.num_layers);
    CU_ASSERT_STRING_EQUAL(p.model, "tiny");
    CU_ASSERT_DOUBLE_EQUAL(p.input_bytes_per_sample, 4.0 * 64, 1e-9);
    mp_backend *be;
    CU_ASSERT_FATAL(mp_backend_open("cpu", -1, &be, &e) == MP_OK);
    for (int i = 0; i < p.num_layers; i++) {
        const mp_layer_cost *c = &p.layers[i];
        CU_ASSERT_STRING_EQUAL(c->name, m.layers[i].name);
        CU_ASSERT_EQUAL(c->fwd.kind, MP_TIME_TABLE);
        CU_ASSERT_EQUAL(c->fwd.n, 3);
        CU_ASSERT_DOUBLE_EQUAL(c->fwd.batch[2], 16, 0);
        for (int k = 0; k < 3; k++) {
            CU_ASSERT(c->fwd.ms[k] > 0);
            CU_ASSERT(c->bwd.ms[k] > 0);
        }
        /* non-decreasing-ish: 16 samples never take less than half of 1 sample */
        CU_ASSERT(c->fwd.ms[2] > 0.5 * c->fwd.ms[0]);
        CU_ASSERT(c->bwd.ms[2] > 0.5 * c->bwd.ms[0]);
        mp_layer l;
        CU_ASSERT_FATAL(mp_layer_init(&l, be, &m.layers[i], 1, 1, &e) == MP_OK);
        CU_ASSERT_DOUBLE_EQUAL(c->param_bytes, (double)mp_layer_param_bytes(&l), 0);
        CU_ASSERT_DOUBLE_EQUAL(c->out_bytes_per_sample, (double)mp_layer_out_bytes_per_sample(&l), 0);
        CU_ASSERT_DOUBLE_EQUAL(c->stash_bytes_per_sample, (double)mp_layer_stash_bytes_per_sample(&l), 0);
        CU_ASSERT_DOUBLE_EQUAL(c->param_bytes, 4.0 * m.layers[i].param_count, 0);
        mp_layer_free(&l, be);
    }
    /* the sum of residual blocks dominates the elementwise layers at b = 16 */
    CU_ASSERT(p.layers[2].fwd.ms[2] > p.layers[1].fwd.ms[2]);
    mp_backend_close(be);
    mp_model_free(&m);
    mp_profile_free(&p);

    /* --json prints the same document on stdout */
    snprintf(cmd, sizeof cmd, "%s --model profiles/tiny.model.json --batch 2 --warmup 0 --repeat 1 --json -q",
             mp_test_tool("mpprof"));
    CU_ASSERT_EQUAL(mp_test_run_cmd(cmd, &out, &err), 0);
    CU_ASSERT(mp_profile_parse(out, strlen(out), "stdout", &p, &e) == MP_OK);
    CU_ASSERT_EQUAL(p.num_layers, 10);
    CU_ASSERT(strstr(out, "\"library_versions\"") && strstr(out, "\"fit\"") && strstr(out, "\"r2\""));
    mp_profile_free(&p);
    free(out); free(err);
}

/* The profiling methods: --sequential (old order), and steps on 1 and on
 * all cores with rotated buffers give the same table shape, record their
 * settings, and agree on which layer is the most expensive. */
static void test_methods(void)
{
    const char *variants[] = {"--sequential", "--threads 1 --rotate 2 --min-sample 0",
                              "--rotate 3 --min-sample 0.05"};
    const char *method[] = {"sequential", "steps", "steps"};
    for (int v = 0; v < 3; v++) {
        char cmd[2048], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof cmd, "%s --model profiles/tiny.model.json --batch 2,8 --warmup 1 --repeat 3 %s --json -q",
                 mp_test_tool("mpprof"), variants[v]);
        CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out, &err), 0);
        mp_profile p;
        mp_error e = {0};
        CU_ASSERT_FATAL(mp_profile_parse(out, strlen(out), "stdout", &p, &e) == MP_OK);
        CU_ASSERT_EQUAL(p.num_layers, 10);
        int best = 0;
        for (int i = 0; i < p.num_layers; i++) {
            CU_ASSERT_EQUAL(p.layers[i].fwd.n, 2);
            CU_ASSERT(p.layers[i].fwd.ms[0] > 0 && p.layers[i].bwd.ms[1] > 0);
            if (p.layers[i].fwd.ms[1] + p.layers[i].bwd.ms[1] > p.layers[best].fwd.ms[1] + p.layers[best].bwd.ms[1])
                best = i;
        }
        /* tiny: the residual blocks (layers 2..7) dominate the elementwise layers */
        CU_ASSERT(best >= 1 && best <= 8);
        char want[64];
        snprintf(want, sizeof want, "\"method\": \"%s\"", method[v]);
        if (!strstr(out, want)) { printf("\n  %s lacks %s", variants[v], want); CU_FAIL("method"); }
        CU_ASSERT(strstr(out, "\"rotate\"") && strstr(out, "\"threads\"") && strstr(out, "\"min_sample_ms\""));
        if (v == 0) CU_ASSERT(strstr(out, "\"threads\": 1") != NULL);
        mp_profile_free(&p);
        free(out); free(err);
    }
}

/* The weighted fit recovers a line exactly, including a small intercept
 * that an unweighted fit over sizes spanning 1000x would lose in noise. */
static void test_weighted_fit(void)
{
    double x[8], y[8];
    for (int i = 0; i < 8; i++) { x[i] = 4096.0 * (1 << (2 * i)); y[i] = 0.015 + x[i] / 5e6; }
    mp_fit f = mp_prof_fit_weighted(x, y, 8);
    CU_ASSERT_DOUBLE_EQUAL(f.alpha, 0.015, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(f.beta, 1 / 5e6, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(f.r2, 1.0, 1e-9);
    /* +-5% relative noise alternating: the intercept stays within 10% */
    for (int i = 0; i < 8; i++) y[i] *= i % 2 ? 1.05 : 0.95;
    f = mp_prof_fit_weighted(x, y, 8);
    CU_ASSERT(fabs(f.alpha - 0.015) < 0.0015);
    CU_ASSERT(fabs(f.beta * 5e6 - 1) < 0.1);
}

static void test_links(void)
{
    char cmd[1024], path[512], *out = NULL, *err = NULL;
    snprintf(path, sizeof path, "%s/cluster.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s --links --sizes 4K:1M --repeat 3 -o %s", mp_test_tool("mpprof"), path);
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &out, &err), 0);
    CU_ASSERT(strstr(out, "# fit: latency") != NULL);
    free(out); free(err);
    mp_cluster c;
    mp_error e = {0};
    mp_status st = mp_cluster_load(path, &c, &e);
    if (st) printf("\n%s\n", e.msg);
    CU_ASSERT_FATAL(st == MP_OK);
    CU_ASSERT(c.num_devices >= 1);
    CU_ASSERT(c.devices[0].memory_bytes > 0);
    CU_ASSERT(strstr(c.devices[0].name, "core0") != NULL);
    CU_ASSERT(c.default_link.bandwidth > 1e6);     /* memcpy is faster than 1 MB/s */
    CU_ASSERT(c.default_link.latency_s < 0.1);
    CU_ASSERT(c.default_link.latency_s > 0);      /* a condvar wake-up costs something */
    mp_cluster_free(&c);
}

/* mpprof --links writes the fitted ring all-reduce ("allreduce") into the
 * cluster file besides the links: over worker threads (2 or more cores),
 * and under mpirun -np 2 over the ranks. */
static void test_links_allreduce(void)
{
    mp_cluster c;
    mp_error e = {0};
    char path[512], cmd[1400], *out = NULL, *err = NULL;
    snprintf(path, sizeof path, "%s/cluster.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(path, &c, &e), MP_OK);   /* test_links's, threads */
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        CU_ASSERT(c.allreduce_bandwidth > 1e6);
        CU_ASSERT(c.allreduce_latency_s >= 0 && c.allreduce_latency_s < 0.1);
    } else
        CU_ASSERT_EQUAL(c.allreduce_bandwidth, 0);
    mp_cluster_free(&c);
#ifndef MP_HAVE_MPI
    fprintf(stderr, "(built without MPI: all-reduce measurement skipped)\n");
#else
    if (mp_test_run_cmd("mpirun -np 2 --oversubscribe --allow-run-as-root true", NULL, NULL) != 0) {
        fprintf(stderr, "(mpirun not usable: all-reduce measurement skipped)\n");
        return;
    }
    snprintf(path, sizeof path, "%s/cluster_mpi.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "mpirun -np 2 --oversubscribe --allow-run-as-root %s --links --sizes 4K:256K --repeat 5 -o %s",
             mp_test_tool("mpprof"), path);
    int rc = mp_test_run_cmd(cmd, &out, &err);
    if (rc) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "allreduce    latency"));
    free(out); free(err);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(path, &c, &e), MP_OK);
    CU_ASSERT_EQUAL(c.num_devices, 2);
    CU_ASSERT(c.allreduce_bandwidth > 1e6);
    CU_ASSERT(c.allreduce_latency_s >= 0 && c.allreduce_latency_s < 0.1);
    mp_cluster_free(&c);
#endif
}

/* mpprof --merge: three copies of the shipped tiny profile with times x1,
 * x3, x2 merge into the x2 one; the table names each input. */
static void test_merge_cli(void)
{
    mp_profile p;
    mp_error e = {0};
    CU_ASSERT_EQUAL_FATAL(mp_profile_load("profiles/tiny.cpu.profile.json", &p, &e), MP_OK);
    char in[3][512], out[512], cmd[3000];
    const double scale[3] = {1, 3, 2};
    for (int i = 0; i < 3; i++) {
        double f = i ? scale[i] / scale[i - 1] : 1;
        for (int l = 0; l < p.num_layers; l++)
            for (int k = 0; k < p.layers[l].fwd.n; k++) p.layers[l].fwd.ms[k] *= f;
        snprintf(in[i], sizeof in[i], "%s/merge-in%d.json", mp_test_tmpdir(), i);
        CU_ASSERT_EQUAL_FATAL(mp_profile_save(in[i], &p, &e), MP_OK);
    }
    snprintf(out, sizeof out, "%s/merged.json", mp_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s --merge -o %s %s %s %s", mp_test_tool("mpprof"), out, in[0], in[1], in[2]);
    char *so = NULL, *se = NULL;
    CU_ASSERT_EQUAL_FATAL(mp_test_run_cmd(cmd, &so, &se), 0);
    CU_ASSERT(strstr(so, "merged 3 profiles of tiny") && strstr(so, "merge-in2.json"));
    free(so); free(se);
    mp_profile m;
    CU_ASSERT_EQUAL_FATAL(mp_profile_load(out, &m, &e), MP_OK);   /* p holds the x2 times now */
    CU_ASSERT_EQUAL_FATAL(m.num_layers, p.num_layers);
    for (int l = 0; l < p.num_layers; l++)
        for (int k = 0; k < p.layers[l].fwd.n; k++) {
            CU_ASSERT_DOUBLE_EQUAL(m.layers[l].fwd.ms[k], p.layers[l].fwd.ms[k], 1e-12 * p.layers[l].fwd.ms[k]);
            CU_ASSERT_EQUAL(m.layers[l].bwd.ms[k], p.layers[l].bwd.ms[k]);
        }
    mp_profile_free(&m);
    mp_profile_free(&p);
}

/* Runs mpprof with `args`, expects exit 2 and `want` in one stderr message. */
static void expect_exit2(const char *args, const char *want)
{
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s %s", mp_test_tool("mpprof"), args);
    int rc = mp_test_run_cmd(cmd, &out, &err);
    CU_ASSERT_EQUAL(rc, 2);
    if (!strstr(err, want)) {
        printf("\n  '%s': stderr '%s' lacks '%s'", args, err, want);
        CU_FAIL("message");
    }
    free(out); free(err);
}

static void test_bad_inputs(void)
{
    char a[1024];   /* mp_test_write_file returns a static buffer: use each path at once */
    snprintf(a, sizeof a, "--model %s", mp_test_write_file("unk.json",
        "{\"format\":\"mpkit-model/1\",\"input_dim\":4,\"layers\":[{\"type\":\"conv\"}]}"));
    expect_exit2(a, "unknown layer type 'conv'");
    snprintf(a, sizeof a, "--model %s", mp_test_write_file("zero.json",
        "{\"format\":\"mpkit-model/1\",\"input_dim\":4,\"layers\":[{\"type\":\"linear\",\"out\":0}]}"));
    expect_exit2(a, "layers[0].out");
    snprintf(a, sizeof a, "--model %s --batch 1", mp_test_write_file("huge.json",
        "{\"format\":\"mpkit-model/1\",\"input_dim\":1000000,\"layers\":[{\"type\":\"linear\",\"out\":1000000}]}"));
    expect_exit2(a, "more than");
    expect_exit2("--model profiles/tiny.model.json --batch 0,2", "--batch '0,2'");
    expect_exit2("--model profiles/tiny.model.json --batch a", "--batch 'a'");
    expect_exit2("--model profiles/tiny.model.json --batch 2,2", "twice");
    expect_exit2("--model profiles/tiny.model.json --repeat 0", "--repeat");
    expect_exit2("--model profiles/tiny.model.json --links", "choose one");
    expect_exit2("--model /nonexistent.json", "/nonexistent.json");
    expect_exit2("--model profiles/tiny.model.json --backend tpu", "tpu");
    expect_exit2("--links --sizes 64M:4K", "--sizes");
    expect_exit2("", "--model");
    expect_exit2("--model profiles/tiny.model.json --threads 0", "--threads");
    expect_exit2("--model profiles/tiny.model.json --threads 4096", "cores");
    expect_exit2("--model profiles/tiny.model.json --rotate 0", "--rotate");
    expect_exit2("--model profiles/tiny.model.json --min-sample x", "--min-sample");
    expect_exit2("--model profiles/tiny.model.json --min-sample -1", "--min-sample");
    expect_exit2("--merge profiles/tiny.cpu.profile.json", "-o P.json");
    expect_exit2("--merge -o /tmp/x.json", "give the profiles");
    expect_exit2("--merge -o /tmp/x.json /nonexistent.json", "/nonexistent.json");
    expect_exit2("--merge -o /tmp/x.json profiles/tiny.cpu.profile.json profiles/demo.cpu.profile.json",
                 "profiles/demo.cpu.profile.json");
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_profile_tiny), MP_TEST(test_methods), MP_TEST(test_weighted_fit), MP_TEST(test_links),
        MP_TEST(test_links_allreduce),        MP_TEST(test_bad_inputs), MP_TEST(test_merge_cli),
    };
    return mp_test_main("mpprof", cases, (int)(sizeof cases / sizeof cases[0]));
}
