/* units.h — parse and print sizes, bandwidths and durations with units.
 * defines: mp_parse_bytes, mp_parse_bandwidth, mp_parse_duration, mp_format_bytes,
 *          mp_format_bandwidth, mp_format_duration
 *
 * Bytes:     "80GiB" (2^30), "512MiB", "4KiB", "16GB" (10^9), "1.5MB", "123"
 *            (a bare number is bytes); also "K"/"M"/"G"/"T" = KiB/MiB/GiB/TiB.
 * Bandwidth: "25GB/s" (10^9 B/s), "100MiB/s", "200Gbit/s"/"200Gb/s" (bits, /8);
 *            a bare number is bytes/s.
 * Duration:  "10us", "1.5ms", "2s", "300ns"; a bare number is seconds.
 * Parsers reject empty strings, negative values, NaN/inf, trailing junk and
 * unknown units, returning MP_ERR_INPUT with a message naming the string. */
#ifndef MP_UNITS_H
#define MP_UNITS_H

#include <stddef.h>
#include "mp_status.h"

mp_status mp_parse_bytes(const char *s, double *bytes, mp_error *err);
mp_status mp_parse_bandwidth(const char *s, double *bytes_per_s, mp_error *err);
mp_status mp_parse_duration(const char *s, double *seconds, mp_error *err);

/* Human-readable forms ("1.50 GiB", "25.0 GB/s", "10.0 us") written into buf;
 * return buf. */
char *mp_format_bytes(char *buf, size_t n, double bytes);
char *mp_format_bandwidth(char *buf, size_t n, double bytes_per_s);
char *mp_format_duration(char *buf, size_t n, double seconds);

#endif
