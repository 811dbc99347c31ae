/* json_util.c — see json_util.h. */
#include "json_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "units.h"

/* ---------------------------------------------------------------- reading */

mp_status mp_json_read_file(const char *path, char **text, size_t *len, mp_error *err)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mp_error_set(err, MP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return mp_error_set(err, MP_ERR_IO, "%s: cannot read: %s", path, strerror(e ? e : EIO));
    }
    fclose(f);
    buf[n] = 0;
    *text = buf;
    *len = n;
    return MP_OK;
}

mp_status mp_json_parse(const char *text, size_t len, const char *name,
                        json_t **out, mp_error *err)
{
    json_error_t je;
    *out = NULL;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        if (je.line >= 1)
            return mp_error_set(err, MP_ERR_INPUT, "%s:%d:%d: %s", name, je.line, je.column, je.text);
        return mp_error_set(err, MP_ERR_INPUT, "%s: %s", name, je.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return mp_error_set(err, MP_ERR_INPUT, "%s: expected a JSON object at the top level", name);
    }
    *out = j;
    return MP_OK;
}

mp_status mp_json_decode(const char *text, size_t len, const char *name, const mp_json_reader *r,
                         void *out, mp_error *err)
{
    mp_error local;
    if (!err) err = &local;
    mp_error_clear(err);
    if (r->size) memset(out, 0, r->size);
    json_t *root = NULL;
    mp_status st = mp_json_parse(text, len, name, &root, err);
    if (st) return st;
    mp_jctx cx = {name, err};
    st = r->root(&cx, root, out);
    json_decref(root);
    if (st && r->free) r->free(out);
    if (st && r->size) memset(out, 0, r->size);
    return st && err->status ? err->status : st;
}

mp_status mp_json_load(const char *path, const mp_json_reader *r, void *out, mp_error *err)
{
    char *text;
    size_t len;
    if (r->size) memset(out, 0, r->size);
    mp_status st = mp_json_read_file(path, &text, &len, err);
    if (st) return st;
    st = mp_json_decode(text, len, path, r, out, err);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- messages */

mp_status mp_json_fail(const mp_jctx *cx, const char *field, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field && *field)
        return mp_error_set(cx->err, MP_ERR_INPUT, "%s: %s: %s", cx->name, field, msg);
    return mp_error_set(cx->err, MP_ERR_INPUT, "%s: %s", cx->name, msg);
}

char *mp_json_path(char *buf, size_t n, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(buf, n, "%s.%s", prefix, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

mp_status mp_json_check_format(const mp_jctx *cx, const json_t *obj, const char *expected)
{
    const json_t *v = json_object_get(obj, "format");
    if (!v)
        return mp_json_fail(cx, "format", "missing (expected \"%s\")", expected);
    if (!json_is_string(v))
        return mp_json_fail(cx, "format", "expected \"%s\", got %s", expected, type_name(v));
    if (strcmp(json_string_value(v), expected) != 0)
        return mp_json_fail(cx, "format", "expected \"%s\", got \"%.200s\"", expected,
                            json_string_value(v));
    return MP_OK;
}

/* ---------------------------------------------------------------- values */

static mp_status check_sign(const mp_jctx *cx, const char *field, mp_jsign sign, double x)
{
    if (!isfinite(x)) return mp_json_fail(cx, field, "must be a finite number");
    if (sign == MP_JNONNEG && !(x >= 0)) return mp_json_fail(cx, field, "must be >= 0 (got %g)", x);
    if (sign == MP_JPOS && !(x > 0)) return mp_json_fail(cx, field, "must be > 0 (got %g)", x);
    return MP_OK;
}

mp_status mp_json_number_value(const mp_jctx *cx, const json_t *v, const char *field,
                               mp_jsign sign, double *out)
{
    if (!json_is_number(v))
        return mp_json_fail(cx, field, "must be a number, not %s", type_name(v));
    double x = json_number_value(v);
    if (check_sign(cx, field, sign, x)) return MP_ERR_INPUT;
    *out = x;
    return MP_OK;
}

mp_status mp_json_int_value(const mp_jctx *cx, const json_t *v, const char *field,
                            int min, int *out)
{
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 1e18)
            return mp_json_fail(cx, field, "must be an integer (got %g)", d);
        x = (long long)d;
    } else {
        return mp_json_fail(cx, field, "must be an integer, not %s", type_name(v));
    }
    if (x < min) return mp_json_fail(cx, field, "must be >= %d (got %lld)", min, x);
    if (x > INT_MAX) return mp_json_fail(cx, field, "too large (got %lld)", x);
    *out = (int)x;
    return MP_OK;
}

/* obj[key] or NULL; NULL with *st set when missing and required. */
static const json_t *member(const mp_jctx *cx, const json_t *obj, const char *field,
                            const char *key, int required, mp_status *st)
{
    const json_t *v = json_object_get(obj, key);
    *st = MP_OK;
    if (!v && required) *st = mp_json_fail(cx, field, "missing");
    return v;
}

mp_status mp_json_get_string(const mp_jctx *cx, const json_t *obj, const char *prefix,
                             const char *key, int required, const char **out)
{
    char f[256];
    mp_status st;
    const json_t *v = member(cx, obj, mp_json_path(f, sizeof f, prefix, key), key, required, &st);
    if (!v) return st;
    if (!json_is_string(v)) return mp_json_fail(cx, f, "must be a string, not %s", type_name(v));
    *out = json_string_value(v);
    return MP_OK;
}

mp_status mp_json_get_number(const mp_jctx *cx, const json_t *obj, const char *prefix,
                             const char *key, int required, mp_jsign sign, double *out)
{
    char f[256];
    mp_status st;
    const json_t *v = member(cx, obj, mp_json_path(f, sizeof f, prefix, key), key, required, &st);
    if (!v) return st;
    return mp_json_number_value(cx, v, f, sign, out);
}

mp_status mp_json_get_int(const mp_jctx *cx, const json_t *obj, const char *prefix,
                          const char *key, int required, int min, int *out)
{
    char f[256];
    mp_status st;
    const json_t *v = member(cx, obj, mp_json_path(f, sizeof f, prefix, key), key, required, &st);
    if (!v) return st;
    return mp_json_int_value(cx, v, f, min, out);
}

mp_status mp_json_get_bool(const mp_jctx *cx, const json_t *obj, const char *prefix,
                           const char *key, int required, int *out)
{
    char f[256];
    mp_status st;
    const json_t *v = member(cx, obj, mp_json_path(f, sizeof f, prefix, key), key, required, &st);
    if (!v) return st;
    if (!json_is_boolean(v))
        return mp_json_fail(cx, f, "must be true or false, not %s", type_name(v));
    *out = json_is_true(v);
    return MP_OK;
}

typedef mp_status (*unit_parser)(const char *, double *, mp_error *);

static mp_status get_unit(const mp_jctx *cx, const json_t *obj, const char *prefix,
                          const char *key, int required, mp_jsign sign, unit_parser parse,
                          const char *example, double *out)
{
    char f[256];
    mp_status st;
    const json_t *v = member(cx, obj, mp_json_path(f, sizeof f, prefix, key), key, required, &st);
    if (!v) return st;
    double x;
    if (json_is_string(v)) {
        mp_error e;
        mp_error_clear(&e);
        if (parse(json_string_value(v), &x, &e)) return mp_json_fail(cx, f, "%s", e.msg);
        if (check_sign(cx, f, sign, x)) return MP_ERR_INPUT;
    } else if (json_is_number(v)) {
        if (mp_json_number_value(cx, v, f, sign, &x)) return MP_ERR_INPUT;
    } else {
        return mp_json_fail(cx, f, "must be a number or a string like \"%s\", not %s",
                            example, type_name(v));
    }
    *out = x;
    return MP_OK;
}

mp_status mp_json_get_bytes(const mp_jctx *cx, const json_t *obj, const char *prefix,
                            const char *key, int required, mp_jsign sign, double *out)
{
    return get_unit(cx, obj, prefix, key, required, sign, mp_parse_bytes, "4MiB", out);
}

mp_status mp_json_get_bandwidth(const mp_jctx *cx, const json_t *obj, const char *prefix,
                                const char *key, int required, double *out)
{
    return get_unit(cx, obj, prefix, key, required, MP_JPOS, mp_parse_bandwidth, "25GB/s", out);
}

mp_status mp_json_get_duration(const mp_jctx *cx, const json_t *obj, const char *prefix,
                               const char *key, int required, double *out)
{
    return get_unit(cx, obj, prefix, key, required, MP_JNONNEG, mp_parse_duration, "10us", out);
}

/* ---------------------------------------------------------------- writing */

json_t *mp_json_number(double x)
{
    if (isfinite(x) && x == floor(x) && fabs(x) < 9007199254740992.0)
        return json_integer((json_int_t)x);
    return json_real(x);
}

char *mp_json_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!s) return NULL;
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\n';
        out[n + 1] = 0;
    }
    free(s);
    return out;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

mp_status mp_json_write_text(const char *path, const char *data, size_t len, mp_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;  /* includes the '/' */
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path);
    /* DIR/.BASE.tmpXXXXXX: same directory, so rename is atomic */
    snprintf(tmp, n, "%.*s.%s.tmpXXXXXX", (int)dirlen, path, path + dirlen);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return mp_error_set(err, MP_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    int e = 0;
    if (fchmod(fd, 0644) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return mp_error_set(err, MP_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    /* make the rename durable (best effort) */
    char *dir = dirlen ? strndup(path, dirlen) : strdup(".");
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return MP_OK;
}

mp_status mp_json_write(const char *path, const json_t *j, mp_error *err)
{
    char *s = mp_json_dump(j);
    if (!s) return mp_error_set(err, MP_ERR_NOMEM, "%s: out of memory", path);
    mp_status st = mp_json_write_text(path, s, strlen(s), err);
    free(s);
    return st;
}
