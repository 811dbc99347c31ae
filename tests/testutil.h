/* testutil.h — one CUnit suite per test binary, plus helpers shared by tests.
 * defines: MP_TEST, mp_test_main, mp_test_fixture, mp_test_tmpdir, mp_test_run_cmd */
#ifndef MP_TESTUTIL_H
#define MP_TESTUTIL_H

#include <stddef.h>
#include <CUnit/CUnit.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} mp_test_case;

#define MP_TEST(fn) { #fn, fn }

/* Runs the cases as one CUnit suite named `suite`, prints CUnit's summary and
 * one line "mpkit-tests: <suite> P passed, F failed" for tests/run_all.sh.
 * Returns the process exit status (0 when every assertion held). With
 * MPKIT_TEST_ONLY set, only the cases whose names contain it run. */
int mp_test_main(const char *suite, const mp_test_case *cases, int n);

/* Path of tests/fixtures/<name> (static buffer, valid until the next call). */
const char *mp_test_fixture(const char *name);

/* A fresh private directory under /tmp for this test binary (created once). */
const char *mp_test_tmpdir(void);

/* Writes `text` to <tmpdir>/<name> and returns the path (one of 16 static
 * buffers used in turn: valid for the next 15 calls). */
const char *mp_test_write_file(const char *name, const char *text);

/* The whole file as a malloc'd NUL-terminated string (its length in *len
 * when len is non-NULL), or NULL when it cannot be opened. */
char *mp_test_slurp(const char *path, size_t *len);

/* Runs a shell command, capturing stdout and stderr (each may be NULL) into
 * malloc'd strings; returns the exit status (or -1 if it did not exit). The
 * tools are found through $MPKIT_BIN (default ./bin). */
int mp_test_run_cmd(const char *cmd, char **out, char **err);

/* Path of a built tool, e.g. mp_test_tool("mpplan") -> ".../bin/mpplan". */
const char *mp_test_tool(const char *name);

#endif
