/* test_units.c — unit parsing and formatting (core/units.h). */
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "units.h"

typedef mp_status (*parser)(const char *, double *, mp_error *);

/* Parses s and checks the value (relative 1e-15). */
static void expect(parser p, const char *s, double want)
{
    mp_error e;
    mp_error_clear(&e);
    double v = -1;
    mp_status st = p(s, &v, &e);
    if (st != MP_OK) fprintf(stderr, "unexpected failure for \"%s\": %s\n", s, e.msg);
    CU_ASSERT_EQUAL(st, MP_OK);
    CU_ASSERT(fabs(v - want) <= 1e-15 * fabs(want));
}

/* Parses s, expects MP_ERR_INPUT with a message quoting s (when non-empty). */
static void reject(parser p, const char *s)
{
    mp_error e;
    mp_error_clear(&e);
    double v = 12345;
    mp_status st = p(s, &v, &e);
    if (st == MP_OK) fprintf(stderr, "accepted bad value \"%s\" as %g\n", s, v);
    CU_ASSERT_EQUAL(st, MP_ERR_INPUT);
    CU_ASSERT_EQUAL(e.status, MP_ERR_INPUT);
    CU_ASSERT_EQUAL(v, 12345);
    if (s && *s) CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, s));
}

static void test_bytes(void)
{
    expect(mp_parse_bytes, "123", 123);
    expect(mp_parse_bytes, "0", 0);
    expect(mp_parse_bytes, "7B", 7);
    expect(mp_parse_bytes, "4KiB", 4096);
    expect(mp_parse_bytes, "512MiB", 512.0 * 1048576);
    expect(mp_parse_bytes, "80GiB", 80.0 * 1073741824);
    expect(mp_parse_bytes, "2TiB", 2.0 * 1099511627776.0);
    expect(mp_parse_bytes, "4K", 4096);
    expect(mp_parse_bytes, "3M", 3.0 * 1048576);
    expect(mp_parse_bytes, "1G", 1073741824);
    expect(mp_parse_bytes, "1T", 1099511627776.0);
    expect(mp_parse_bytes, "16GB", 16e9);
    expect(mp_parse_bytes, "1.5MB", 1.5e6);
    expect(mp_parse_bytes, "2KB", 2000);
    expect(mp_parse_bytes, "3TB", 3e12);
    expect(mp_parse_bytes, "1.5 GiB", 1.5 * 1073741824);
    expect(mp_parse_bytes, "1e3", 1000);
    expect(mp_parse_bytes, ".5KiB", 512);
    expect(mp_parse_bytes, "2.25e1MB", 22.5e6);
}

static void test_bandwidth(void)
{
    expect(mp_parse_bandwidth, "25GB/s", 25e9);
    expect(mp_parse_bandwidth, "100MiB/s", 100.0 * 1048576);
    expect(mp_parse_bandwidth, "200Gbit/s", 200e9 / 8);
    expect(mp_parse_bandwidth, "200Gb/s", 200e9 / 8);
    expect(mp_parse_bandwidth, "10Mbit/s", 10e6 / 8);
    expect(mp_parse_bandwidth, "1e9", 1e9);
    expect(mp_parse_bandwidth, "12B/s", 12);
    expect(mp_parse_bandwidth, "3KB/s", 3000);
    expect(mp_parse_bandwidth, "1GiB/s", 1073741824);
    expect(mp_parse_bandwidth, "2TB/s", 2e12);
}

static void test_duration(void)
{
    expect(mp_parse_duration, "10us", 10e-6);
    expect(mp_parse_duration, "1.5ms", 1.5e-3);
    expect(mp_parse_duration, "2s", 2);
    expect(mp_parse_duration, "300ns", 300e-9);
    expect(mp_parse_duration, "0.25", 0.25);
    expect(mp_parse_duration, "0", 0);
}

static void test_rejects(void)
{
    parser all[] = {mp_parse_bytes, mp_parse_bandwidth, mp_parse_duration};
    const char *bad[] = {"-1", "-4KiB", "nan", "NaN", "inf", "-inf", "infinity", "1e400",
                         "12abc", "4 KiB junk", "1..5", "+3", " 5", "5 ", "0x10", "KiB", "1e",
                         "1.5.GB", "GB", "e5"};
    for (int p = 0; p < 3; p++) {
        reject(all[p], "");
        reject(all[p], NULL);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) reject(all[p], bad[i]);
    }
    /* units of one kind are not accepted by another */
    reject(mp_parse_bytes, "25GB/s");
    reject(mp_parse_bytes, "10us");
    reject(mp_parse_bytes, "4kib");
    reject(mp_parse_bandwidth, "25GB");
    reject(mp_parse_bandwidth, "25gb/s");
    reject(mp_parse_duration, "10GB");
    reject(mp_parse_duration, "10m");
    /* overflow after scaling */
    reject(mp_parse_bytes, "1e300PB");
    /* messages say what is wrong */
    mp_error e;
    double v;
    mp_error_clear(&e);
    mp_parse_bytes("80XB", &v, &e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "unknown unit \"XB\""));
    mp_error_clear(&e);
    mp_parse_bytes("-4", &v, &e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "negative"));
    mp_error_clear(&e);
    mp_parse_duration("", &v, &e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "empty"));
}

static void test_format(void)
{
    char b[64];
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 1.5 * 1073741824), "1.50 GiB");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 512), "512 B");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 0), "0 B");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 4096), "4.00 KiB");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 80.0 * 1073741824), "80.0 GiB");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 300.0 * 1048576), "300 MiB");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 1048575), "1.00 MiB");
    CU_ASSERT_STRING_EQUAL(mp_format_bytes(b, sizeof b, 2.0 * 1099511627776.0), "2.00 TiB");
    CU_ASSERT_STRING_EQUAL(mp_format_bandwidth(b, sizeof b, 25e9), "25.0 GB/s");
    CU_ASSERT_STRING_EQUAL(mp_format_bandwidth(b, sizeof b, 1.25e8), "125 MB/s");
    CU_ASSERT_STRING_EQUAL(mp_format_bandwidth(b, sizeof b, 500), "500 B/s");
    CU_ASSERT_STRING_EQUAL(mp_format_duration(b, sizeof b, 10e-6), "10.0 us");
    CU_ASSERT_STRING_EQUAL(mp_format_duration(b, sizeof b, 1.5e-3), "1.50 ms");
    CU_ASSERT_STRING_EQUAL(mp_format_duration(b, sizeof b, 2), "2.00 s");
    CU_ASSERT_STRING_EQUAL(mp_format_duration(b, sizeof b, 300e-9), "300 ns");
    CU_ASSERT_STRING_EQUAL(mp_format_duration(b, sizeof b, 0), "0 s");
    CU_ASSERT_STRING_EQUAL(mp_format_duration(b, sizeof b, 0.9999), "1.00 s");
    /* a small buffer is truncated, not overrun */
    char small[4];
    mp_format_bytes(small, sizeof small, 1.5 * 1073741824);
    CU_ASSERT_EQUAL(strlen(small), 3);
}

/* What mp_format_* prints parses back to within its 3-digit rounding. */
static void test_format_parses_back(void)
{
    char b[64];
    double xs[] = {1, 999, 1024, 5e5, 3.3e7, 1.5 * 1073741824, 7e12};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        double v = -1;
        CU_ASSERT_EQUAL(mp_parse_bytes(mp_format_bytes(b, sizeof b, xs[i]), &v, NULL), MP_OK);
        CU_ASSERT(fabs(v - xs[i]) <= 0.005 * xs[i]);
        CU_ASSERT_EQUAL(mp_parse_bandwidth(mp_format_bandwidth(b, sizeof b, xs[i]), &v, NULL), MP_OK);
        CU_ASSERT(fabs(v - xs[i]) <= 0.005 * xs[i]);
        double t = xs[i] * 1e-9;
        CU_ASSERT_EQUAL(mp_parse_duration(mp_format_duration(b, sizeof b, t), &v, NULL), MP_OK);
        CU_ASSERT(fabs(v - t) <= 0.005 * t);
    }
}

int main(void)
{
    static const mp_test_case cases[] = {
        MP_TEST(test_bytes), MP_TEST(test_bandwidth), MP_TEST(test_duration),
        MP_TEST(test_rejects), MP_TEST(test_format), MP_TEST(test_format_parses_back),
    };
    return mp_test_main("units", cases, (int)(sizeof cases / sizeof *cases));
}
