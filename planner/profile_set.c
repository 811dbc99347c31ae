/* profile_set.c — see profile_set.h. */
#include "profile_set.h"

#include <string.h>

mp_status mp_profile_set_load(mp_profile_set *s, const char *const *paths, int n, mp_error *err)
{
    memset(s, 0, sizeof *s);
    if (n < 1 || n > MP_PROFILE_SET_MAX)
        return mp_error_set(err, MP_ERR_USAGE, "give 1 to %d --profile files (got %d)", MP_PROFILE_SET_MAX, n);
    for (int i = 0; i < n; i++) {
        mp_status st = mp_profile_load(paths[i], &s->p[i], err);
        s->path[i] = paths[i];
        s->n = i + 1;
        if (st != MP_OK) return st;
        if (n == 1) break;
        if (s->p[i].busy_cores < 1)
            return mp_error_set(err, MP_ERR_INPUT, "%s: with several --profile files each must be a CPU profile "
                                "from mpprof that records how many cores were busy (settings.threads)", paths[i]);
        if (i > 0 && (st = mp_profile_same_model(&s->p[0], &s->p[i], paths[i], err)) != MP_OK) return st;
        for (int j = 0; j < i; j++)
            if (s->p[j].busy_cores == s->p[i].busy_cores)
                return mp_error_set(err, MP_ERR_INPUT, "%s and %s were both measured with %d busy cores: give one "
                                    "profile per number of busy cores", paths[j], paths[i], s->p[i].busy_cores);
    }
    for (int i = 1; i < s->n; i++)   /* insertion sort by busy_cores */
        for (int j = i; j > 0 && s->p[j - 1].busy_cores > s->p[j].busy_cores; j--) {
            mp_profile t = s->p[j];
            const char *tp = s->path[j];
            s->p[j] = s->p[j - 1];
            s->path[j] = s->path[j - 1];
            s->p[j - 1] = t;
            s->path[j - 1] = tp;
        }
    return MP_OK;
}

int mp_profile_set_pick(const mp_profile_set *s, int k)
{
    int i = 0;
    while (i + 1 < s->n && s->p[i + 1].busy_cores <= k) i++;
    return i;
}

void mp_profile_set_range(const mp_profile_set *s, int i, int *lo, int *hi)
{
    *lo = i == 0 ? 1 : s->p[i].busy_cores;
    *hi = i + 1 < s->n ? s->p[i + 1].busy_cores - 1 : 0;
}

void mp_profile_set_free(mp_profile_set *s)
{
    for (int i = 0; i < s->n; i++) mp_profile_free(&s->p[i]);
    memset(s, 0, sizeof *s);
}
