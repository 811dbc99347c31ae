/* clock.c — see clock.h. */
#include "clock.h"

#include <time.h>

double mp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

double mp_now_s(void)
{
    return 1e-3 * mp_now_ms();
}

void mp_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}
