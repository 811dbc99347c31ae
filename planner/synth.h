/* synth.h — synthetic, memory-bound planner instances for the bench and
 * the tests: layers whose costs vary several-fold (fwd 0.5x..3x of a base
 * affine time, bwd twice fwd), 4..48 MiB of parameters each, activations
 * stashed per sample 0.5..2 MiB, and devices whose memory is tight enough
 * that most plans recompute. Deterministic in the seed.
 * defines: MP_SYNTH_STATE_FACTOR, mp_synth_profile, mp_synth_tight_memory, mp_synth_cluster */
#ifndef MP_SYNTH_H
#define MP_SYNTH_H

#include "cluster.h"
#include "mp_status.h"
#include "profile.h"

#define MP_SYNTH_STATE_FACTOR 1.0  /* the state factor the instances are sized for */

/* A profile of L >= 1 synthetic layers (free with mp_profile_free). MP_ERR_NOMEM. */
mp_status mp_synth_profile(mp_profile *p, int L, unsigned seed, mp_error *err);

/* Tight memory per device for prof on D devices: 3.7 times the parameter
 * state per device (state factor MP_SYNTH_STATE_FACTOR); about 1.5 GiB for
 * 1000 layers on 64 devices. */
double mp_synth_tight_memory(const mp_profile *prof, int D);

/* D devices of memory mem, 25 GB/s, 10 us links. With mixed != 0, the
 * first D/2 devices are a "slow" kind (speed 0.5, twice the memory), the
 * others "fast" (speed 1). MP_ERR_NOMEM. */
mp_status mp_synth_cluster(mp_cluster *c, int D, double mem, int mixed, mp_error *err);

#endif
