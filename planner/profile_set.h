/* profile_set.h — one or several profiles of one model for the planner. On a
 * CPU host the cores slow each other down, so a model profiled with K busy
 * cores (mpprof --threads K; profile busy_cores) times plans that keep K cores
 * busy; given several such profiles, a configuration with K devices is timed
 * with the profile of the largest busy count <= K (the smallest when none is).
 * defines: mp_profile_set, mp_profile_set_load, mp_profile_set_pick,
 *          mp_profile_set_range, mp_profile_set_free */
#ifndef MP_PROFILE_SET_H
#define MP_PROFILE_SET_H

#include "mp_status.h"
#include "profile.h"

#define MP_PROFILE_SET_MAX 16

typedef struct {
    int n;                                   /* 1..MP_PROFILE_SET_MAX */
    mp_profile p[MP_PROFILE_SET_MAX];        /* by increasing busy_cores when n > 1 */
    const char *path[MP_PROFILE_SET_MAX];    /* the file each came from */
} mp_profile_set;

/* Loads paths[0..n). With n > 1 every profile must be of the same model and
 * carry a distinct busy_cores (a CPU profile from mpprof), else MP_ERR_INPUT
 * naming the file; they are sorted by busy_cores. Free with
 * mp_profile_set_free (also after an error). */
mp_status mp_profile_set_load(mp_profile_set *s, const char *const *paths, int n, mp_error *err);

/* The index of the profile that times plans keeping k devices busy. */
int mp_profile_set_pick(const mp_profile_set *s, int k);

/* The device counts [*lo, *hi] profile i times (*hi = 0: no upper limit). */
void mp_profile_set_range(const mp_profile_set *s, int i, int *lo, int *hi);

void mp_profile_set_free(mp_profile_set *s);

#endif
