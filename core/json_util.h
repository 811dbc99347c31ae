/* json_util.h — internal helpers shared by the JSON loaders and writers
 * (profile, cluster, plan): reading a file, parsing with "PATH:LINE:COL:"
 * syntax messages, typed field getters with "PATH: layers[3].fwd_ms: ..."
 * value messages, and atomic writes (temp file in the same dir, fsync, rename).
 * defines: mp_jctx, mp_jsign, mp_json_read_file, mp_json_parse, mp_json_reader,
 *          mp_json_decode, mp_json_load, mp_json_fail,
 *          mp_json_path, mp_json_check_format, mp_json_number_value,
 *          mp_json_int_value, mp_json_get_string, mp_json_get_number,
 *          mp_json_get_int, mp_json_get_bool, mp_json_get_bytes,
 *          mp_json_get_bandwidth, mp_json_get_duration, mp_json_number,
 *          mp_json_dump, mp_json_write_text, mp_json_write */
#ifndef MP_JSON_UTIL_H
#define MP_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include "mp_status.h"

/* Where messages go: the file name used as message prefix, and the error. */
typedef struct {
    const char *name;
    mp_error *err;
} mp_jctx;

/* Sign constraint on a number. */
typedef enum { MP_JANY = 0, MP_JNONNEG, MP_JPOS } mp_jsign;

/* Reads a whole file into a malloc'd, NUL-terminated buffer (*len excludes the
 * NUL). Missing/unreadable file: MP_ERR_IO "PATH: cannot open: <strerror>". */
mp_status mp_json_read_file(const char *path, char **text, size_t *len, mp_error *err);

/* Parses text as one JSON object. Syntax errors: MP_ERR_INPUT
 * "NAME:LINE:COL: <jansson message>"; a non-object top level: "NAME: ...".
 * Duplicate keys are rejected. *out is a new reference on success. */
mp_status mp_json_parse(const char *text, size_t len, const char *name,
                        json_t **out, mp_error *err);

/* What a loader (plan, profile, cluster, calibration) supplies to read its
 * struct from the root object. */
typedef struct {
    size_t size;   /* > 0: the struct is zeroed first (and again on failure); 0: left as is */
    mp_status (*root)(const mp_jctx *cx, const json_t *root, void *out);   /* fills out */
    void (*free)(void *out);   /* NULL, or frees what root filled when it failed */
} mp_json_reader;

/* The one JSON load path of every loader: mp_json_parse of text, named
 * `name` in messages, then r's root reader. err may be NULL; on failure err
 * holds the message. */
mp_status mp_json_decode(const char *text, size_t len, const char *name, const mp_json_reader *r,
                         void *out, mp_error *err);

/* mp_json_read_file(path) + mp_json_decode with the path as the name. */
mp_status mp_json_load(const char *path, const mp_json_reader *r, void *out, mp_error *err);

/* Records MP_ERR_INPUT "NAME: FIELD: <fmt...>" (just "NAME: <fmt...>" when
 * field is NULL or empty) and returns MP_ERR_INPUT. */
mp_status mp_json_fail(const mp_jctx *cx, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Writes "PREFIX.KEY" (or "KEY" when prefix is empty) into buf; returns buf. */
char *mp_json_path(char *buf, size_t n, const char *prefix, const char *key);

/* Checks obj["format"] == expected; otherwise
 * "NAME: format: expected \"EXPECTED\", got ..." */
mp_status mp_json_check_format(const mp_jctx *cx, const json_t *obj, const char *expected);

/* A JSON number (integer or real) obeying `sign`; `field` names it in messages. */
mp_status mp_json_number_value(const mp_jctx *cx, const json_t *v, const char *field,
                               mp_jsign sign, double *out);
/* An integer in [min, INT_MAX] (a real with an integral value is accepted). */
mp_status mp_json_int_value(const mp_jctx *cx, const json_t *v, const char *field,
                            int min, int *out);

/* Field getters: obj[key], named PREFIX.KEY in messages. When the key is
 * absent: MP_ERR_INPUT "...: missing" if required, else MP_OK with *out
 * untouched (the caller sets the default first). */
mp_status mp_json_get_string(const mp_jctx *cx, const json_t *obj, const char *prefix,
                             const char *key, int required, const char **out);
mp_status mp_json_get_number(const mp_jctx *cx, const json_t *obj, const char *prefix,
                             const char *key, int required, mp_jsign sign, double *out);
mp_status mp_json_get_int(const mp_jctx *cx, const json_t *obj, const char *prefix,
                          const char *key, int required, int min, int *out);
mp_status mp_json_get_bool(const mp_jctx *cx, const json_t *obj, const char *prefix,
                           const char *key, int required, int *out);
/* Numbers or unit strings (units.h): bytes obey `sign`; bandwidth must be
 * > 0; duration >= 0 (seconds). */
mp_status mp_json_get_bytes(const mp_jctx *cx, const json_t *obj, const char *prefix,
                            const char *key, int required, mp_jsign sign, double *out);
mp_status mp_json_get_bandwidth(const mp_jctx *cx, const json_t *obj, const char *prefix,
                                const char *key, int required, double *out);
mp_status mp_json_get_duration(const mp_jctx *cx, const json_t *obj, const char *prefix,
                               const char *key, int required, double *out);

/* A new JSON number for x: an integer when x is integral and |x| < 2^53,
 * else a real (written with 17 digits, so reading it back is exact). */
json_t *mp_json_number(double x);

/* Writes len bytes to path atomically: a temp file in the same directory,
 * fsync, rename; the temp file is removed on failure. MP_ERR_IO
 * "PATH: cannot write: <strerror>". */
mp_status mp_json_write_text(const char *path, const char *data, size_t len, mp_error *err);

/* Dumps j (indent 2, 17-digit reals, newline-terminated) as a malloc'd string. */
char *mp_json_dump(const json_t *j);

/* mp_json_dump + mp_json_write_text. */
mp_status mp_json_write(const char *path, const json_t *j, mp_error *err);

#endif
