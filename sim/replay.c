/* replay.c — see replay.h. */
#include "replay.h"

#include <stdlib.h>

#include "schedule.h"
#include "sim.h"

mp_status mp_replay_trace(const mp_plan *plan, const mp_trace *t, double *iteration_ms, mp_error *err)
{
    int S = plan->num_stages, K = mp_plan_num_positions(plan);
    enum { F, BN, R, ACT, GRAD, WG, AR, NK };
    double *sum = calloc((size_t)S * NK, sizeof *sum), *cnt = calloc((size_t)S * NK, sizeof *cnt);
    double *dur = calloc((size_t)S * NK, sizeof *dur);
    mp_op_lists ops = {0};
    mp_sim *sim = mp_sim_new();
    mp_status st = MP_OK;
    if (!sum || !cnt || !dur || !sim) {
        st = mp_error_set(err, MP_ERR_NOMEM, "replay: out of memory");
        goto out;
    }
    for (int i = 0; i < t->n; i++) {
        const mp_trace_event *e = &t->ev[i];
        int k = e->kind == MP_TEV_FWD ? F : e->kind == MP_TEV_BWD ? BN : e->kind == MP_TEV_RECOMPUTE ? R
              : e->kind == MP_TEV_SEND_ACT ? ACT : e->kind == MP_TEV_WGRAD ? WG : e->kind == MP_TEV_ALLREDUCE ? AR : GRAD;
        int s = k == GRAD ? e->stage - 1 : e->stage;   /* a gradient sent by s+1 belongs to link s */
        if (s < 0 || s >= S) continue;
        sum[k * S + s] += e->end_ms - e->start_ms;
        cnt[k * S + s] += 1;
    }
    for (int k = 0; k < NK; k++)
        for (int s = 0; s < S; s++) dur[k * S + s] = cnt[k * S + s] > 0 ? sum[k * S + s] / cnt[k * S + s] : 0;
    for (int s = 0; s < S; s++) {
        if (cnt[F * S + s] == 0 || cnt[BN * S + s] == 0) {
            st = mp_error_set(err, MP_ERR_INPUT, "replay: the trace has no forward or backward of stage %d", s);
            goto out;
        }
        dur[BN * S + s] += dur[R * S + s];   /* the simulator's B includes the recompute */
    }
    if ((st = mp_schedule_build(plan->schedule, K, plan->chunks_per_device, plan->num_microbatches, &ops, err)))
        goto out;
    int any_ar = 0;   /* data parallelism: the measured all-reduces (replica 0's, waits included) */
    for (int s = 0; s < S; s++) any_ar |= cnt[AR * S + s] > 0;
    /* zero-bubble traces: the backward slices are the input gradients (BI), W their own */
    mp_sim_input in = { .ops = &ops, .fwd_ms = dur + F * S, .bwd_ms = dur + BN * S, .recompute_ms = dur + R * S,
                        .act_ms = dur + ACT * S, .grad_ms = dur + GRAD * S, .bwd_in_ms = dur + BN * S,
                        .bwd_w_ms = dur + WG * S, .allreduce_ms = any_ar ? dur + AR * S : NULL };
    mp_sim_result res;
    if ((st = mp_sim_run(sim, &in, &res, NULL, err)) == MP_OK) *iteration_ms = res.iteration_ms;
out:
    mp_op_lists_free(&ops);
    mp_sim_free(sim);
    free(sum);
    free(cnt);
    free(dur);
    return st;
}
