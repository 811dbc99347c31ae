/* test_netns.c — mprun across two hosts made of network namespaces on this
 * machine (tests/netns_check.sh): the same weights as on one host for a
 * 2-stage pipeline and for 2 data-parallel replicas (one per host), and a cut
 * link ends every rank of either within --timeout with a message. Skipped, with the
 * script's reason, where namespaces or mpirun are not available. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_across_two_hosts(void)
{
    char *out = NULL, *err = NULL;
    int rc = mp_test_run_cmd("./tests/netns_check.sh", &out, &err);
    if (rc != 0 || !strstr(out, "netns_check: ok")) fprintf(stderr, "%s%s", out, err);
    else if (strstr(out, "SKIPPED")) fprintf(stderr, "%s", out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(strstr(out, "netns_check: ok") || strstr(out, "netns_check: SKIPPED"));
    free(out);
    free(err);
}

int main(void)
{
    static const mp_test_case cases[] = { MP_TEST(test_across_two_hosts) };
    return mp_test_main("netns", cases, 1);
}
