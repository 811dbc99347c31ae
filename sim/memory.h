/* memory.h — the memory model (docs/cost-model.md).
 * defines: mp_memory_stage_peak, mp_memory_peaks
 *
 * Stage j (of K, gpipe/1f1b), layers lo..hi, micro-batch b, m micro-batches:
 *   no recompute: state_factor*params + inflight*b*stash
 *   recompute:    state_factor*params + inflight*b*in_bytes + b*stash
 * inflight = m (gpipe) or min(K-j, m) (1f1b); stash and params summed over
 * the stage's layers; in_bytes = out_bytes of layer lo-1, or the profile's
 * input_bytes_per_sample for lo = 0.
 * Interleaved: per device, the most it holds at any point of its op order. */
#ifndef MP_MEMORY_H
#define MP_MEMORY_H

#include "mp_status.h"
#include "plan.h"
#include "profile.h"
#include "schedule.h"

/* Closed form above for one gpipe/1f1b stage. */
double mp_memory_stage_peak(const mp_profile *prof, int lo, int hi, int stage,
                            int num_stages, mp_schedule_kind kind, int m, int b,
                            int recompute, double state_factor);

/* Peaks by walking the op lists (works for every schedule): peaks[p] for each
 * position p. For gpipe/1f1b it equals the closed form. */
mp_status mp_memory_peaks(const mp_profile *prof, const mp_plan *plan,
                          const mp_op_lists *ops, double state_factor,
                          double *peaks, mp_error *err);

#endif
