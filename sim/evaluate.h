/* evaluate.h — predict a plan with the cost model: stage times from the
 * profile and cluster, the schedule through the simulator, peaks from the
 * memory model. This is the reference path; the planner's fast path must
 * agree with it exactly.
 * defines: MP_DEFAULT_STATE_FACTOR, mp_plan_evaluate, mp_plan_fits */
#ifndef MP_EVALUATE_H
#define MP_EVALUATE_H

#include "cluster.h"
#include "mp_status.h"
#include "plan.h"
#include "profile.h"
#include "trace.h"

#define MP_DEFAULT_STATE_FACTOR 4.0

/* Fills plan->predicted (replacing any previous prediction). The plan must
 * pass mp_plan_check for the profile and cluster (checked here too).
 * With trace non-NULL the predicted timeline is appended to it. */
mp_status mp_plan_evaluate(mp_plan *plan, const mp_profile *prof,
                           const mp_cluster *cluster, double state_factor,
                           mp_trace *trace, mp_error *err);

/* After mp_plan_evaluate: 1 when every peak fits its device's memory. */
int mp_plan_fits(const mp_plan *plan, const mp_cluster *cluster);

#endif
