/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int mp_test_main(const char *suite, const mp_test_case *cases, int n)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    if (!s) return 2;
    const char *only = getenv("MPKIT_TEST_ONLY");   /* set: only the cases whose names contain it */
    for (int i = 0; i < n; i++)
        if ((!only || strstr(cases[i].name, only)) && !CU_add_test(s, cases[i].name, cases[i].fn)) return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    unsigned afail = CU_get_number_of_failures();
    printf("mpkit-tests: %s %u passed, %u failed\n", suite, run - failed, failed);
    CU_cleanup_registry();
    return (failed || afail) ? 1 : 0;
}

const char *mp_test_fixture(const char *name)
{
    static char path[4096];
    const char *dir = getenv("MPKIT_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", name);
    return path;
}

const char *mp_test_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/mpkit-test-XXXXXX");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    return dir;
}

const char *mp_test_write_file(const char *name, const char *text)
{
    static char ring[16][4096];
    static int next;
    char *path = ring[next++ % 16];
    snprintf(path, sizeof ring[0], "%s/%s", mp_test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(2); }
    fputs(text, f);
    fclose(f);
    return path;
}

char *mp_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    if (buf) buf[got] = 0;
    fclose(f);
    if (len) *len = got;
    return buf;
}

/* A command's captured output: the file, or "" when there is none. */
static char *slurp(const char *path)
{
    char *s = mp_test_slurp(path, NULL);
    return s ? s : strdup("");
}

int mp_test_run_cmd(const char *cmd, char **out, char **err)
{
    char o[512], e[512], full[8192];
    snprintf(o, sizeof o, "%s/cmd.out", mp_test_tmpdir());
    snprintf(e, sizeof e, "%s/cmd.err", mp_test_tmpdir());
    snprintf(full, sizeof full, "(%s) >%s 2>%s </dev/null", cmd, o, e);
    int st = system(full);
    if (out) *out = slurp(o);
    if (err) *err = slurp(e);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

const char *mp_test_tool(const char *name)
{
    static char path[4096];
    const char *dir = getenv("MPKIT_BIN");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "bin", name);
    return path;
}
