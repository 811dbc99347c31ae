/* clock.h — the one monotonic clock every timing and timeout uses.
 * defines: mp_now_ms, mp_now_s, mp_sleep_us */
#ifndef MP_CLOCK_H
#define MP_CLOCK_H

/* CLOCK_MONOTONIC in milliseconds / seconds (since an arbitrary origin). */
double mp_now_ms(void);
double mp_now_s(void);

/* Sleeps about us microseconds (polling loops). */
void mp_sleep_us(long us);

#endif
