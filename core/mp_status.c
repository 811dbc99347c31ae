/* mp_status.c — see mp_status.h. */
#include "mp_status.h"

#include <stdarg.h>
#include <stdio.h>

const char *mp_status_str(mp_status s)
{
    switch (s) {
    case MP_OK: return "ok";
    case MP_ERR_USAGE: return "bad usage";
    case MP_ERR_INPUT: return "invalid input";
    case MP_ERR_IO: return "i/o error";
    case MP_ERR_NOMEM: return "out of memory";
    case MP_ERR_NOFIT: return "no plan fits";
    case MP_ERR_BACKEND: return "backend error";
    case MP_ERR_TIMEOUT: return "timeout";
    case MP_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

mp_status mp_error_set(mp_error *err, mp_status s, const char *fmt, ...)
{
    if (err && err->status == MP_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = s;
    }
    return s;
}

void mp_error_clear(mp_error *err)
{
    if (err) {
        err->status = MP_OK;
        err->msg[0] = 0;
    }
}

int mp_exit_code(mp_status s)
{
    switch (s) {
    case MP_OK: return 0;
    case MP_ERR_USAGE:
    case MP_ERR_INPUT:
    case MP_ERR_IO: return 2;
    default: return 1;
    }
}
