/* test_machine.c — core/machine: the CPU share other processes take, as
 * mprun reports it next to its measurements. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "machine.h"
#include "testutil.h"

static void spin_ms(double ms)
{
    volatile double x = 0;
    double end = mp_now_ms() + ms;
    while (mp_now_ms() < end) x += 1;
}

/* Our own busy time is not counted as others'. */
static void test_own_work_is_not_others(void)
{
    mp_cpu_sample a = mp_machine_cpu_sample();
    CU_ASSERT(a.ok);
    spin_ms(300);
    mp_cpu_sample b = mp_machine_cpu_sample();
    CU_ASSERT(b.ok);
    CU_ASSERT(b.own > a.own);
    CU_ASSERT(b.total > a.total);
    double mine = 100.0 * (b.own - a.own) / (b.total - a.total);
    double others = mp_machine_others_pct(&a, &b, 0);
    /* whatever else runs here, our own spin is in `mine`, not in `others` */
    CU_ASSERT(others >= 0 && others <= 100);
    CU_ASSERT(others + mine <= 100.0 + 1e-9);
}

/* A child process that spins shows up as others' share, unless counted as
 * ours (extra_own). */
static void test_child_counts_as_others(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pid_t pid = fork();
    if (pid == 0) { spin_ms(1500); _exit(0); }
    CU_ASSERT_FATAL(pid > 0);
    usleep(100000);
    mp_cpu_sample a = mp_machine_cpu_sample();
    usleep(800000);
    mp_cpu_sample b = mp_machine_cpu_sample();
    double others = mp_machine_others_pct(&a, &b, 0);
    double child = 100.0 / (double)ncpu;   /* one spinning core of ncpu */
    CU_ASSERT(others >= 0.5 * child);
    CU_ASSERT(mp_machine_others_pct(&a, &b, b.busy - a.busy) == 0);
    int status;
    waitpid(pid, &status, 0);
}

static void test_bad_samples(void)
{
    mp_cpu_sample z = { 0, 0, 0, 0 }, a = mp_machine_cpu_sample();
    CU_ASSERT_EQUAL(mp_machine_others_pct(&z, &a, 0), -1);
    CU_ASSERT_EQUAL(mp_machine_others_pct(&a, &a, 0), -1);   /* no time passed */
}

int main(void)
{
    static const mp_test_case cases[] = { MP_TEST(test_own_work_is_not_others), MP_TEST(test_child_counts_as_others),
                                          MP_TEST(test_bad_samples) };
    return mp_test_main("machine", cases, 3);
}
