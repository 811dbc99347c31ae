/* mp_status.h — status codes and error messages shared by every module.
 * defines: mp_status, mp_error, mp_status_str, mp_error_set, mp_exit_code
 *
 * Library code never exits: it returns an mp_status and, through an optional
 * mp_error, one human-readable message that names the file and the problem
 * ("profile.json:3:14: layers[2].fwd_ms: table batch sizes must increase").
 * Only main() turns a status into an exit code (mp_exit_code). */
#ifndef MP_STATUS_H
#define MP_STATUS_H

typedef enum {
    MP_OK = 0,
    MP_ERR_USAGE,     /* bad command line */
    MP_ERR_INPUT,     /* malformed or invalid input file / value */
    MP_ERR_IO,        /* file cannot be read or written */
    MP_ERR_NOMEM,     /* allocation failed */
    MP_ERR_NOFIT,     /* no plan fits the devices' memory, or none meets the SLO */
    MP_ERR_BACKEND,   /* a compute backend or transport failed or is missing */
    MP_ERR_TIMEOUT,   /* a wait ran past its timeout */
    MP_ERR_INTERNAL   /* a bug: an invariant did not hold */
} mp_status;

typedef struct {
    mp_status status;
    char msg[1024];
} mp_error;

/* Name of a status, e.g. "invalid input". Never NULL. */
const char *mp_status_str(mp_status s);

/* Records status `s` and a printf-style message in `err` (if err is non-NULL;
 * the first error recorded wins unless err->status is MP_OK). Returns `s`,
 * so callers can write `return mp_error_set(err, MP_ERR_INPUT, "...")`. */
mp_status mp_error_set(mp_error *err, mp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Clears err to MP_OK with an empty message. */
void mp_error_clear(mp_error *err);

/* The exit code a tool uses for status s: 0 OK, 1 no fit / runtime failure,
 * 2 usage or input errors. */
int mp_exit_code(mp_status s);

#endif
