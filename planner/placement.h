/* placement.h — which devices run the pipeline's positions, in which order:
 * the planner searches every order of every subset of the cluster's
 * devices, one representative per order of device classes. Devices are
 * interchangeable (one class) when they have the same kind (the name
 * without a trailing number: "a100-0" and "a100-1" are both "a100"), memory
 * and speed and swapping them maps every link to an equal link; then every
 * plan on one has a plan of equal time on the other, so one order per
 * sequence of classes suffices; of the orders that put equal devices
 * with equal links between them at every position (e.g. the same two of
 * three devices, the third's links aside), one is kept.
 * defines: MP_MAX_PLACEMENTS, mp_placement, mp_placements, mp_placements_build,
 *          mp_placements_free, mp_cluster_classes */
#ifndef MP_PLACEMENT_H
#define MP_PLACEMENT_H

#include "cluster.h"
#include "mp_status.h"

#define MP_MAX_PLACEMENTS 512  /* more orders than this: the file order only */

typedef struct {
    int K;                     /* devices used */
    int *dev;                  /* [K] the cluster device at each position */
    mp_cluster cl;             /* those K devices in that order (position p is device p here),
                                * links permuted; names shared with the cluster's */
} mp_placement;

typedef struct {
    int n;
    mp_placement *p;
    int complete;              /* 1: every order of classes is listed; 0: more than
                                * MP_MAX_PLACEMENTS, only the file-order prefixes */
    int classes;               /* number of device classes */
} mp_placements;

/* class_of[d] (d < cl->num_devices) gets d's class: the least interchangeable
 * device index. Returns the number of classes. */
int mp_cluster_classes(const mp_cluster *cl, int *class_of);

/* Every placement of kmin..kmax devices (1 <= kmin <= kmax <= devices):
 * every sequence of distinct classes' devices, the devices of a class taken
 * in index order; only the file order's prefixes (devices 0..K-1) when
 * file_only or when there are more than MP_MAX_PLACEMENTS (then complete
 * is 0). MP_ERR_NOMEM (out freed). */
mp_status mp_placements_build(const mp_cluster *cl, int kmin, int kmax, int file_only, mp_placements *out,
                              mp_error *err);

void mp_placements_free(mp_placements *ps);

#endif
