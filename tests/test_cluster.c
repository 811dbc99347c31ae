/* test_cluster.c — cluster loading, validation, links, saving (core/cluster.c). */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster.h"
#include "testutil.h"

static int is_zero(const mp_cluster *c)
{
    static const mp_cluster z;
    return memcmp(c, &z, sizeof z) == 0;
}

static int same_cluster(const mp_cluster *a, const mp_cluster *b)
{
    if (a->num_devices != b->num_devices) return 0;
    if (a->default_link.bandwidth != b->default_link.bandwidth ||
        a->default_link.latency_s != b->default_link.latency_s)
        return 0;
    int k = a->num_devices;
    for (int i = 0; i < k; i++)
        if (strcmp(a->devices[i].name, b->devices[i].name) ||
            a->devices[i].memory_bytes != b->devices[i].memory_bytes ||
            a->devices[i].speed != b->devices[i].speed)
            return 0;
    for (int s = 0; s < k; s++)
        for (int d = 0; d < k; d++) {
            if (s == d) continue;
            mp_link x = mp_cluster_link(a, s, d), y = mp_cluster_link(b, s, d);
            if (x.bandwidth != y.bandwidth || x.latency_s != y.latency_s) return 0;
        }
    if (a->allreduce_points != b->allreduce_points || a->allreduce_members != b->allreduce_members) return 0;
    for (int k = 0; k < a->allreduce_points; k++)
        if (a->allreduce_chunk_bytes[k] != b->allreduce_chunk_bytes[k] || a->allreduce_step_ms[k] != b->allreduce_step_ms[k])
            return 0;
    return a->allreduce_latency_s == b->allreduce_latency_s && a->allreduce_bandwidth == b->allreduce_bandwidth;
}

static void expect_error(const char *text, ...)
{
    mp_cluster c;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_cluster_parse(text, strlen(text), "c.json", &c, &e), MP_ERR_INPUT);
    CU_ASSERT(is_zero(&c));
    CU_ASSERT_EQUAL(strncmp(e.msg, "c.json", 6), 0);
    va_list ap;
    va_start(ap, text);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(e.msg, frag)) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e.msg, frag);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, frag));
    }
    va_end(ap);
    mp_cluster_free(&c);
}

#define HDR "\"format\": \"mpplan-cluster/1\""
#define LINK "\"link\": {\"bandwidth\": \"25GB/s\", \"latency\": \"10us\"}"
#define TWO "\"devices\": [{\"name\": \"a\", \"memory\": \"1GiB\"}, {\"name\": \"b\", \"memory\": 1000}]"

static void test_load_fixture(void)
{
    mp_cluster c;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(mp_test_fixture("cluster_hetero.json"), &c, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(c.num_devices, 3);
    CU_ASSERT_STRING_EQUAL(c.devices[0].name, "a100-0");
    CU_ASSERT_EQUAL(c.devices[0].memory_bytes, 80.0 * 1073741824);
    CU_ASSERT_EQUAL(c.devices[1].speed, 1.0);   /* default */
    CU_ASSERT_EQUAL(c.devices[2].memory_bytes, 34359738368.0);
    CU_ASSERT_EQUAL(c.devices[2].speed, 0.5);
    CU_ASSERT_EQUAL(c.default_link.bandwidth, 25e9);
    CU_ASSERT_DOUBLE_EQUAL(c.default_link.latency_s, 10e-6, 1e-20);
    mp_link l01 = mp_cluster_link(&c, 0, 1), l10 = mp_cluster_link(&c, 1, 0);
    mp_link l12 = mp_cluster_link(&c, 1, 2), l21 = mp_cluster_link(&c, 2, 1);
    CU_ASSERT_EQUAL(l01.bandwidth, 300e9);
    CU_ASSERT_DOUBLE_EQUAL(l01.latency_s, 2e-6, 1e-20);
    CU_ASSERT_EQUAL(l10.bandwidth, 300e9);      /* by device names */
    CU_ASSERT_EQUAL(l12.bandwidth, 100e9 / 8);  /* bandwidth only: latency from the default */
    CU_ASSERT_EQUAL(l12.latency_s, c.default_link.latency_s);
    CU_ASSERT_EQUAL(l21.bandwidth, 25e9);       /* directed: the reverse keeps the default */
    /* transfer time = 1000 * (latency + bytes / bandwidth) */
    CU_ASSERT_DOUBLE_EQUAL(mp_cluster_transfer_ms(&c, 0, 1, 3e9), 1000 * (2e-6 + 0.01), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_cluster_transfer_ms(&c, 2, 1, 25e6), 1000 * (10e-6 + 1e-3), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mp_cluster_transfer_ms(&c, 1, 2, 0), 1000 * 10e-6, 1e-15);
    mp_cluster_free(&c);
    CU_ASSERT(is_zero(&c));
    mp_cluster_free(&c);
}

static void test_uniform(void)
{
    mp_cluster c;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_uniform(&c, 4, 16e9, 10e9, 5e-6, &e), MP_OK);
    CU_ASSERT_EQUAL(c.num_devices, 4);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "dev%d", i);
        CU_ASSERT_STRING_EQUAL(c.devices[i].name, name);
        CU_ASSERT_EQUAL(c.devices[i].speed, 1);
        CU_ASSERT_EQUAL(c.devices[i].memory_bytes, 16e9);
        for (int j = 0; j < 4; j++) {
            mp_link l = mp_cluster_link(&c, i, j);
            CU_ASSERT_EQUAL(l.bandwidth, 10e9);
            CU_ASSERT_EQUAL(l.latency_s, 5e-6);
        }
    }
    CU_ASSERT_DOUBLE_EQUAL(mp_cluster_transfer_ms(&c, 3, 2, 1e9), 1000 * (5e-6 + 0.1), 1e-12);
    mp_cluster_free(&c);
    struct { int k; double mem, bw, lat; const char *frag; } bad[] = {
        {0, 1, 1, 0, "number of devices"}, {2, 0, 1, 0, "memory"}, {2, -1, 1, 0, "memory"},
        {2, 1, 0, 0, "bandwidth"}, {2, 1, NAN, 0, "bandwidth"}, {2, 1, 1, -1, "latency"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mp_error_clear(&e);
        CU_ASSERT_EQUAL(mp_cluster_uniform(&c, bad[i].k, bad[i].mem, bad[i].bw, bad[i].lat, &e), MP_ERR_INPUT);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, bad[i].frag));
        CU_ASSERT(is_zero(&c));
    }
}

static void test_errors(void)
{
    mp_cluster c;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL(mp_cluster_load("/nonexistent/c.json", &c, &e), MP_ERR_IO);
    CU_ASSERT_STRING_EQUAL(e.msg, "/nonexistent/c.json: cannot open: No such file or directory");
    CU_ASSERT(is_zero(&c));

    expect_error("{" HDR ", " TWO ", " LINK ",}", "c.json:1:", NULL);
    expect_error("{\"format\": \"mpplan-profile/1\"}", "c.json: format: expected \"mpplan-cluster/1\", got \"mpplan-profile/1\"", NULL);
    expect_error("{" HDR ", " LINK "}", "c.json: devices: missing", NULL);
    expect_error("{" HDR ", \"devices\": [], " LINK "}", "devices: must not be empty", NULL);
    expect_error("{" HDR ", " TWO "}", "c.json: link: missing", NULL);
    expect_error("{" HDR ", " TWO ", \"link\": {\"latency\": 0}}", "link.bandwidth: missing", NULL);
    expect_error("{" HDR ", " TWO ", \"link\": {\"bandwidth\": 1}}", "link.latency: missing", NULL);
    expect_error("{" HDR ", " TWO ", \"link\": {\"bandwidth\": 0, \"latency\": 0}}", "link.bandwidth: must be > 0", NULL);
    expect_error("{" HDR ", " TWO ", \"link\": {\"bandwidth\": \"25GB\", \"latency\": 0}}",
                 "link.bandwidth: invalid bandwidth \"25GB\": unknown unit \"GB\"", NULL);
    expect_error("{" HDR ", " TWO ", \"link\": {\"bandwidth\": 1, \"latency\": -1}}", "link.latency: must be >= 0", NULL);
    expect_error("{" HDR ", " TWO ", \"link\": {\"bandwidth\": 1, \"latency\": \"5 parsecs\"}}",
                 "link.latency: invalid duration \"5 parsecs\"", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": \"a\"}], " LINK "}", "devices[0].memory: missing", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": \"a\", \"memory\": 0}], " LINK "}", "devices[0].memory: must be > 0", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": \"a\", \"memory\": \"80XB\"}], " LINK "}",
                 "devices[0].memory: invalid size \"80XB\": unknown unit", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": \"a\", \"memory\": 1, \"speed\": 0}], " LINK "}",
                 "devices[0].speed: must be > 0", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": \"a\", \"memory\": 1, \"speed\": \"fast\"}], " LINK "}",
                 "devices[0].speed: must be a number", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": 1, \"memory\": 1}], " LINK "}", "devices[0].name: must be a string", NULL);
    expect_error("{" HDR ", \"devices\": [{\"name\": \"a\", \"memory\": 1}, {\"name\": \"a\", \"memory\": 1}], " LINK "}",
                 "devices[1]: name \"a\" is already used by devices[0]", NULL);
    expect_error("{" HDR ", \"devices\": [3], " LINK "}", "devices[0]: must be an object", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": {}}", "c.json: links: must be an array", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"dst\": 1}]}", "links[0].src: missing", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": 0, \"dst\": 2}]}",
                 "links[0].dst: device 2 does not exist (the cluster has 2 devices)", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": -1, \"dst\": 1}]}", "links[0].src: must be >= 0", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": 0.5, \"dst\": 1}]}", "links[0].src: must be an integer", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": \"a\", \"dst\": \"zz\"}]}",
                 "links[0].dst: no device named \"zz\"", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": 1, \"dst\": \"b\"}]}",
                 "links[0]: src and dst are the same device (1)", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": 0, \"dst\": 1, \"bandwidth\": -3}]}",
                 "links[0].bandwidth: must be > 0", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"links\": [{\"src\": 0, \"dst\": 1, \"latency\": 1}, "
                 "{\"src\": \"a\", \"dst\": \"b\", \"latency\": 2}]}",
                 "links[1]: a second override for the link 0 -> 1", NULL);

    const char *files[][2] = {
        {"bad_cluster_unit.json", ": devices[0].memory: invalid size \"80XB\": unknown unit \"XB\""},
        {"bad_cluster_link.json", ": links[0].dst: device 2 does not exist"},
    };
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s", mp_test_fixture(files[i][0]));
        mp_error_clear(&e);
        CU_ASSERT_EQUAL(mp_cluster_load(path, &c, &e), MP_ERR_INPUT);
        CU_ASSERT_EQUAL(strncmp(e.msg, path, strlen(path)), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, files[i][1]));
        CU_ASSERT(is_zero(&c));
    }
}

static void test_defaults_and_extras(void)
{
    const char *t = "{" HDR ", \"site\": \"lab\", \"devices\": [{\"memory\": \"2GB\", \"vendor\": \"x\"}, "
                    "{\"memory\": \"1K\"}], \"link\": {\"bandwidth\": 8, \"latency\": 0, \"kind\": \"pcie\"}}";
    mp_cluster c;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_parse(t, strlen(t), "c.json", &c, &e), MP_OK);
    CU_ASSERT_STRING_EQUAL(c.devices[0].name, "dev0");
    CU_ASSERT_STRING_EQUAL(c.devices[1].name, "dev1");
    CU_ASSERT_EQUAL(c.devices[0].memory_bytes, 2e9);
    CU_ASSERT_EQUAL(c.devices[1].memory_bytes, 1024);
    CU_ASSERT_DOUBLE_EQUAL(mp_cluster_transfer_ms(&c, 0, 1, 4), 500.0, 1e-12);
    mp_cluster_free(&c);
}

static void test_round_trip(void)
{
    mp_cluster a, b;
    mp_error e;
    mp_error_clear(&e);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(mp_test_fixture("cluster_hetero.json"), &a, &e), MP_OK);
    a.devices[1].speed = 1.0 / 3.0;
    a.links[2 * 3 + 0].latency_s = 0.1 + 0.2;   /* 2 -> 0 becomes an override */
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/rt-cluster", mp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/c.json", dir);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_save(path, &a, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(path, &b, &e), MP_OK);
    CU_ASSERT(same_cluster(&a, &b));
    CU_ASSERT_EQUAL(mp_cluster_link(&b, 2, 0).latency_s, 0.1 + 0.2);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");  /* temp files count */
    if (d) closedir(d);
    CU_ASSERT_EQUAL(n, 1);
    mp_cluster_free(&a);
    mp_cluster_free(&b);

    /* a uniform cluster round-trips too, with no overrides written */
    CU_ASSERT_EQUAL_FATAL(mp_cluster_uniform(&a, 3, 1e9, 2e9, 0, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_save(path, &a, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(path, &b, &e), MP_OK);
    CU_ASSERT(same_cluster(&a, &b));
    FILE *f = fopen(path, "r");
    char buf[4096] = {0};
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    CU_ASSERT_PTR_NULL(strstr(buf, "\"links\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"format\": \"mpplan-cluster/1\""));
    mp_cluster_free(&a);
    mp_cluster_free(&b);
}

/* The measured all-reduce fit: parsed with units, 0 when absent, both
 * members required, round-tripped. */
static void test_allreduce_fit(void)
{
    mp_cluster c, d;
    mp_error e;
    mp_error_clear(&e);
    const char *with = "{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": \"12us\", \"bandwidth\": \"5GB/s\"}}";
    CU_ASSERT_EQUAL_FATAL(mp_cluster_parse(with, strlen(with), "c.json", &c, &e), MP_OK);
    CU_ASSERT_DOUBLE_EQUAL(c.allreduce_latency_s, 12e-6, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(c.allreduce_bandwidth, 5e9, 1e-3);
    char path[600];
    snprintf(path, sizeof path, "%s/ar-cluster.json", mp_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(mp_cluster_save(path, &c, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(path, &d, &e), MP_OK);
    CU_ASSERT(same_cluster(&c, &d));
    mp_cluster_free(&c);
    mp_cluster_free(&d);
    const char *without = "{" HDR ", " TWO ", " LINK "}";
    CU_ASSERT_EQUAL_FATAL(mp_cluster_parse(without, strlen(without), "c.json", &c, &e), MP_OK);
    CU_ASSERT_EQUAL(c.allreduce_latency_s, 0);
    CU_ASSERT_EQUAL(c.allreduce_bandwidth, 0);
    mp_cluster_free(&c);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": \"1us\"}}", "allreduce.bandwidth: missing", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": 3}", "allreduce: must be an object", NULL);
    /* measured points: whole calls over `members`, stored per ring step */
    const char *pts = "{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": \"1us\", \"bandwidth\": \"5GB/s\", "
                      "\"members\": 4, \"points\": [[4096, 0.6], [1048576, 3]]}}";
    CU_ASSERT_EQUAL_FATAL(mp_cluster_parse(pts, strlen(pts), "c.json", &c, &e), MP_OK);
    CU_ASSERT_EQUAL(c.allreduce_points, 2);
    CU_ASSERT_EQUAL(c.allreduce_members, 4);
    CU_ASSERT_DOUBLE_EQUAL(c.allreduce_chunk_bytes[1], 262144, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(c.allreduce_step_ms[0], 0.1, 1e-12);   /* 0.6 ms / 2(4-1) steps */
    CU_ASSERT_EQUAL_FATAL(mp_cluster_save(path, &c, &e), MP_OK);
    CU_ASSERT_EQUAL_FATAL(mp_cluster_load(path, &d, &e), MP_OK);
    CU_ASSERT(same_cluster(&c, &d));
    mp_cluster_free(&c);
    mp_cluster_free(&d);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": 0, \"bandwidth\": 1e9, \"points\": [[4096, 1]]}}",
                 "allreduce.members: missing", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": 0, \"bandwidth\": 1e9, \"members\": 2, "
                 "\"points\": [[8192, 1], [4096, 2]]}}", "allreduce.points[1]", "sizes must increase", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": 0, \"bandwidth\": 1e9, \"members\": 2, "
                 "\"points\": [[8192, -1]]}}", "allreduce.points[0]", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": 0, \"bandwidth\": 1e9, \"members\": 2, "
                 "\"points\": [8192]}}", "allreduce.points[0]", "pair", NULL);
    expect_error("{" HDR ", " TWO ", " LINK ", \"allreduce\": {\"latency\": \"1us\", \"bandwidth\": 0}}",
                 "allreduce.bandwidth", NULL);
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_load_fixture), MP_TEST(test_uniform), MP_TEST(test_errors),
        MP_TEST(test_defaults_and_extras), MP_TEST(test_round_trip), MP_TEST(test_allreduce_fit),
    };
    return mp_test_main("cluster", cases, (int)(sizeof cases / sizeof *cases));
}
