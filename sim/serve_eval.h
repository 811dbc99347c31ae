/* serve_eval.h — the one serving evaluator: the cost of a serving plan
 * (stage and link tables from the profile and cluster, the measured terms of
 * core/serve_calibration, the serving simulator) on a list of arrivals. Used
 * by the plan search (mpplan --serve), mpplan --serve --evaluate, mprun
 * --serve's prediction and mpplot latency (docs/serving.md §1).
 * defines: mp_serve_eval, mp_serve_eval_init, mp_serve_eval_free,
 *          mp_serve_eval_stage_ms, mp_serve_eval_link_ms, mp_serve_eval_split,
 *          mp_serve_eval_plan, mp_serve_eval_predict */
#ifndef MP_SERVE_EVAL_H
#define MP_SERVE_EVAL_H

#include "cluster.h"
#include "mp_status.h"
#include "plan.h"
#include "profile.h"
#include "serve.h"
#include "serve_calibration.h"

/* Per-batch-size prefix sums of the layers' forward times, the simulator and
 * its buffers, reused across evaluations. After an evaluation of K stages at
 * max_batch B, stage_ms[s*B + b-1] (terms applied) and link_ms[s*B + b-1]
 * hold its tables. */
typedef struct {
    const mp_profile *prof;
    const mp_cluster *cluster;
    int bmax;
    double *prefix;              /* [bmax][L+1]: sum of fwd(b) over layers < i */
    double *stage_ms, *link_ms;  /* [devices * bmax] */
    mp_serve_sim *sim;
    mp_serve_terms terms;        /* the measured prediction terms (default: none) */
} mp_serve_eval;

/* Prepares batch sizes 1..bmax for prof on cluster with the terms (NULL:
 * mp_serve_terms_default). prof and cluster must outlive e. */
mp_status mp_serve_eval_init(mp_serve_eval *e, const mp_profile *prof, const mp_cluster *cluster, int bmax,
                             const mp_serve_terms *terms, mp_error *err);

/* Frees e and zeroes it; safe on a zeroed one. */
void mp_serve_eval_free(mp_serve_eval *e);

/* The profile's forward time (ms, no terms) of layers lo..hi at batch b
 * (1..bmax) on device dev: sum of fwd(b) / the device's speed. */
double mp_serve_eval_stage_ms(const mp_serve_eval *e, int b, int dev, int lo, int hi);

/* Transfer time (ms) of b * out_bytes(layer hi) on the link from -> to. */
double mp_serve_eval_link_ms(const mp_serve_eval *e, int b, int from, int to, int hi);

/* Costs K stages, stage s holding layers first[s] .. first[s+1]-1 (the last
 * up to the last layer) on device dev[s] (dev NULL: device s), max_batch B
 * (1..bmax), max_wait_ms, for the arrivals: *out from the simulator with
 * slo_ms; memory_bytes[s] (when not NULL) the stage's serving memory
 * (mp_serve_stage_memory) and *fits (when not NULL) 1 when every stage fits
 * its device. MP_ERR_INPUT naming the problem for an invalid split. */
mp_status mp_serve_eval_split(mp_serve_eval *e, int K, const int *first, const int *dev, int B,
                              double max_wait_ms, const double *arrival_ms, int n, double slo_ms,
                              mp_serve_result *out, double *memory_bytes, int *fits, mp_error *err);

/* mp_serve_eval_split of a plan's stages (their devices), max_batch and
 * max_wait_ms. */
mp_status mp_serve_eval_plan(mp_serve_eval *e, const mp_plan *p, const double *arrival_ms, int n,
                             double slo_ms, mp_serve_result *out, double *memory_bytes, int *fits,
                             mp_error *err);

/* Writes the last evaluation of p (by e: K = p's stages at its max_batch B)
 * into p's prediction: iteration_ms = one batch of B through the empty
 * pipeline (stages and links), samples_per_s = throughput, bubble_fraction,
 * peak_memory_bytes = memory_bytes[0..K), bottleneck_stage = the slowest
 * stage at B, the serving metrics of m at rate_rps; and e's terms as the
 * plan's prediction_terms. MP_ERR_NOMEM. */
mp_status mp_serve_eval_predict(const mp_serve_eval *e, mp_plan *p, const mp_serve_result *m,
                                const double *memory_bytes, double rate_rps, mp_error *err);

#endif
