/* test_readme.c — every command shown in README.md still works (runs
 * tests/readme_check.sh, which executes the README's console commands). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_readme_commands(void)
{
    char *out = NULL, *err = NULL;
    int rc = mp_test_run_cmd("./tests/readme_check.sh README.md", &out, &err);
    if (rc != 0) fprintf(stderr, "%s%s", out, err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "commands, ok"));
    free(out);
    free(err);
}

int main(void)
{
    static const mp_test_case cases[] = { MP_TEST(test_readme_commands) };
    return mp_test_main("readme", cases, 1);
}
