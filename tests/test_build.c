/* test_build.c — the build follows its configuration: switching USE_MPI
 * between builds in one folder rebuilds and relinks everything, never links
 * stale objects (runs tests/build_config_check.sh, which builds into a scratch
 * folder under this test's tmpdir). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_config_change_rebuilds(void)
{
    char cmd[512], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "./tests/build_config_check.sh %s/build-check", mp_test_tmpdir());
    int rc = mp_test_run_cmd(cmd, &out, &err);
    if (rc != 0 || !strstr(out, ": ok")) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(strstr(out, "build_config_check: ok") || strstr(out, "SKIPPED"));
    free(out);
    free(err);
}

int main(void)
{
    static const mp_test_case cases[] = { MP_TEST(test_config_change_rebuilds) };
    return mp_test_main("build", cases, 1);
}
