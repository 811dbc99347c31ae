/* evaluate.c — predict a plan with the cost model (evaluate.h).
 * defines: mp_plan_evaluate, mp_plan_fits */
#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.h"
#include "memory.h"
#include "schedule.h"
#include "sim.h"

/* Per-virtual-stage times of docs/cost-model.md of replica r: F, B
 * (recompute included), the recompute part, the transfer times to the next
 * stage and back, and (when the profile has them) BI (recompute included)
 * and W. */
static void stage_times(const mp_plan *plan, const mp_profile *prof,
                        const mp_cluster *cl, int r, double *F, double *B, double *R,
                        double *act, double *grad, double *BI, double *W)
{
    int S = plan->num_stages;
    double b = plan->microbatch_size;
    for (int s = 0; s < S; s++) {
        const mp_stage *st = &plan->stages[s];
        double f = 0, g = 0, gi = 0, gw = 0, speed = cl->devices[mp_plan_replica_device(plan, r, s)].speed;
        for (int l = st->first; l <= st->last; l++) {
            f += mp_time_eval(&prof->layers[l].fwd, b);
            g += mp_time_eval(&prof->layers[l].bwd, b);
            if (prof->layers[l].has_split) {
                gi += mp_time_eval(&prof->layers[l].bwd_in, b);
                gw += mp_time_eval(&prof->layers[l].bwd_w, b);
            }
        }
        F[s] = f / speed;
        R[s] = st->recompute ? F[s] : 0;
        B[s] = g / speed + R[s];
        BI[s] = gi / speed + R[s];
        W[s] = gw / speed;
        if (s < S - 1) {
            int d0 = mp_plan_replica_device(plan, r, s), d1 = mp_plan_replica_device(plan, r, s + 1);
            double bytes = b * prof->layers[st->last].out_bytes_per_sample;
            act[s] = mp_cluster_transfer_ms(cl, d0, d1, bytes);
            grad[s] = mp_cluster_transfer_ms(cl, d1, d0, bytes);
        }
    }
}

/* Each stage's all-reduce time among the D replicas (0 when D = 1): one
 * ring per layer with parameters over the ring of its replicas' devices. */
static void allreduce_times(const mp_plan *plan, const mp_profile *prof, const mp_cluster *cl,
                            double *AR)
{
    int K = mp_plan_num_positions(plan), D = mp_plan_replicas(plan);
    for (int s = 0; s < plan->num_stages; s++) {
        const mp_stage *st = &plan->stages[s];
        AR[s] = mp_allreduce_stage_ms(cl, prof, st->first, st->last, st->device, K, D);
    }
}

/* ready[p]: the latest end of position p's op list over the replicas 1..D-1
 * whose stage or transfer times differ from replica 0's (F0..W0 of
 * stage_times, 7S doubles); 0 when none differs. tmp: 7S doubles of scratch. */
static mp_status replica_ready(const mp_plan *plan, const mp_profile *prof, const mp_cluster *cl,
                               const mp_op_lists *ops, mp_sim *sim, const double *t0, double *tmp,
                               double *ready, mp_error *err)
{
    int S = plan->num_stages, K = ops->num_positions;
    for (int p = 0; p < K; p++) ready[p] = 0;
    for (int r = 1; r < mp_plan_replicas(plan); r++) {
        double *F = tmp, *B = tmp + S, *R = tmp + 2 * S, *act = tmp + 3 * S, *grad = tmp + 4 * S,
               *BI = tmp + 5 * S, *W = tmp + 6 * S;
        for (int i = 0; i < 7 * S; i++) tmp[i] = 0;
        stage_times(plan, prof, cl, r, F, B, R, act, grad, BI, W);
        if (!memcmp(tmp, t0, (size_t)7 * S * sizeof *tmp)) continue;
        mp_sim_input in = { .ops = ops, .fwd_ms = F, .bwd_ms = B, .recompute_ms = R, .act_ms = act,
                            .grad_ms = grad, .bwd_in_ms = BI, .bwd_w_ms = W };
        mp_sim_result res;
        mp_status rc = mp_sim_run(sim, &in, &res, NULL, err);
        if (rc != MP_OK) return rc;
        for (int p = 0; p < K; p++)
            if (mp_sim_list_end(sim, p) > ready[p]) ready[p] = mp_sim_list_end(sim, p);
    }
    return MP_OK;
}

static mp_status name_rows(mp_trace *tr, const mp_plan *plan, const mp_cluster *cl, int K)
{
    for (int p = 0; p < K; p++) {
        char buf[256];
        const char *dn = cl->devices[plan->stages[p].device].name;
        const char *rep = mp_plan_replicas(plan) > 1 ? "replica 0 " : "";   /* the timeline shows replica 0 */
        if (mp_plan_num_positions(plan) < plan->num_stages)
            snprintf(buf, sizeof buf, "%sdevice %d (%s)", rep, p, dn ? dn : "?");
        else
            snprintf(buf, sizeof buf, "%sstage %d (%s)", rep, p, dn ? dn : "?");
        if (mp_trace_set_row_name(tr, p, buf) != MP_OK) return MP_ERR_NOMEM;
    }
    return MP_OK;
}

/* See evaluate.h. Peaks: the closed form for gpipe/1f1b (the op walk agrees,
 * tests/test_memory.c), the op walk per device for interleaved. */
mp_status mp_plan_evaluate(mp_plan *plan, const mp_profile *prof,
                           const mp_cluster *cluster, double state_factor,
                           mp_trace *trace, mp_error *err)
{
    mp_status rc = mp_plan_check(plan, prof->num_layers, cluster->num_devices, "plan", err);
    if (rc != MP_OK) return rc;
    if (!(state_factor >= 0) || isinf(state_factor))
        return mp_error_set(err, MP_ERR_INPUT, "plan: state factor %g must be >= 0", state_factor);
    int S = plan->num_stages;
    int v = mp_schedule_chunks(plan->schedule, plan->chunks_per_device);
    if (mp_schedule_is_zb(plan->schedule) && !mp_profile_has_split(prof))
        return mp_error_set(err, MP_ERR_INPUT, "plan: schedule %s needs the split backward times "
                            "(bwd_input_ms and bwd_weight_ms) of every layer, which the profile lacks: "
                            "profile again with this mpprof", mp_schedule_name(plan->schedule));
    if (v < 1 || S % v != 0)
        return mp_error_set(err, MP_ERR_INPUT, "plan: %d stages is not a multiple of %d chunks",
                            S, v);
    int K = S / v, m = plan->num_microbatches;

    mp_op_lists ops;
    mp_sim *sim = NULL;
    double *peaks = NULL;
    int D = mp_plan_replicas(plan);
    double *buf = calloc((size_t)15 * S + K, sizeof *buf);
    if (!buf) return mp_error_set(err, MP_ERR_NOMEM, "plan: out of memory");
    double *F = buf, *B = buf + S, *R = buf + 2 * S, *act = buf + 3 * S, *grad = buf + 4 * S,
           *BI = buf + 5 * S, *W = buf + 6 * S;
    double *AR = buf + 7 * S, *tmp = buf + 8 * S, *ready = buf + 15 * S;
    stage_times(plan, prof, cluster, 0, F, B, R, act, grad, BI, W);
    allreduce_times(plan, prof, cluster, AR);

    rc = mp_schedule_build(plan->schedule, K, v, m, &ops, err);
    if (rc != MP_OK) { free(buf); return rc; }
    sim = mp_sim_new();
    peaks = malloc((size_t)K * sizeof *peaks);
    if (!sim || !peaks) { rc = mp_error_set(err, MP_ERR_NOMEM, "plan: out of memory"); goto out; }
    if (trace && (rc = name_rows(trace, plan, cluster, K)) != MP_OK) {
        mp_error_set(err, rc, "plan: out of memory for the trace");
        goto out;
    }
    if (D > 1 && (rc = replica_ready(plan, prof, cluster, &ops, sim, buf, tmp, ready, err)) != MP_OK)
        goto out;
    mp_sim_input in = { .ops = &ops, .fwd_ms = F, .bwd_ms = B, .recompute_ms = R, .act_ms = act, .grad_ms = grad,
                        .bwd_in_ms = BI, .bwd_w_ms = W,
                        .allreduce_ms = D > 1 ? AR : NULL, .allreduce_ready_ms = D > 1 ? ready : NULL };
    mp_sim_result res;
    if ((rc = mp_sim_run(sim, &in, &res, trace, err)) != MP_OK) goto out;
    if (plan->schedule != MP_SCHED_GPIPE && plan->schedule != MP_SCHED_1F1B) {
        if ((rc = mp_memory_peaks(prof, plan, &ops, state_factor, peaks, err)) != MP_OK) goto out;
    } else {
        for (int j = 0; j < K; j++)
            peaks[j] = mp_memory_stage_peak(prof, plan->stages[j].first, plan->stages[j].last, j,
                                            K, plan->schedule, m, plan->microbatch_size,
                                            plan->stages[j].recompute, state_factor) +
                       mp_memory_allreduce_bytes(prof, plan->stages[j].first, plan->stages[j].last, D);
    }

    free(plan->predicted.peak_memory_bytes);
    memset(&plan->predicted, 0, sizeof plan->predicted);
    plan->predicted.iteration_ms = res.iteration_ms;
    plan->predicted.samples_per_s =
        res.iteration_ms > 0 ? plan->global_batch / (res.iteration_ms / 1000.0) : 0;
    plan->predicted.bubble_fraction = res.bubble_fraction;
    plan->predicted.num_peaks = K;
    plan->predicted.peak_memory_bytes = peaks;
    plan->predicted.bottleneck_stage = res.bottleneck_position;
    plan->has_prediction = 1;
    peaks = NULL;
out:
    free(peaks);
    mp_sim_free(sim);
    mp_op_lists_free(&ops);
    free(buf);
    return rc;
}

/* See evaluate.h. Peak p belongs to the device of stage p (for interleaved,
 * stage p < K is the first chunk of position p) in every replica. */
int mp_plan_fits(const mp_plan *plan, const mp_cluster *cluster)
{
    if (!plan->has_prediction || !plan->predicted.peak_memory_bytes) return 0;
    for (int p = 0; p < plan->predicted.num_peaks; p++) {
        if (p >= plan->num_stages) return 0;
        for (int r = 0; r < mp_plan_replicas(plan); r++) {
            int d = mp_plan_replica_device(plan, r, p);
            if (d < 0 || d >= cluster->num_devices) return 0;
            if (!(plan->predicted.peak_memory_bytes[p] <= cluster->devices[d].memory_bytes)) return 0;
        }
    }
    return 1;
}
