/* runtime.c — see runtime.h: checks a training run, and runs it on the
 * pipeline runner (pipeline.h) with the training mode of train.h: one worker
 * per pipeline position (a thread, or this MPI rank) runs its op list from
 * mp_schedule_build; activations and gradients move through an mp_transport.
 * defines: mp_run_config_default, mp_run_check, mp_run, mp_run_result_free */
#include "runtime.h"
#include "train.h"
#include "checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mp_run_config_default(mp_run_config *c)
{
    memset(c, 0, sizeof *c);
    c->backend = "cpu";
    c->transport = "threads";
    c->pin = 1;
    c->steps = 10;
    c->seed = 1;
    c->optimizer = MP_OPT_SGD;
    c->lr = 0.05f;
    c->timeout_s = 30;
    c->warmup = 1;
    c->checkpoint_every = 1;
    c->print_loss = 1;
}

static int positions_of(const mp_plan *p)
{
    int v = mp_schedule_chunks(p->schedule, p->chunks_per_device);
    return v > 0 ? p->num_stages / v : p->num_stages;
}

/* The runner's view of config c with K positions per replica (D * K in
 * all) and transport `tname`. */
static void pipeline_config(const mp_run_config *c, int K, const char *tname, mp_pipeline_config *pc)
{
    int D = mp_plan_replicas(c->plan);
    memset(pc, 0, sizeof *pc);
    pc->plan = c->plan;
    pc->num_positions = D * K;
    pc->replicas = D;
    pc->backend = c->backend;
    pc->transport = tname;
    pc->pin = c->pin;
    pc->gpu_map = c->gpu_map;
    pc->num_devices = c->num_devices;
    pc->device_memory = c->device_memory;
    pc->timeout_s = c->timeout_s;
    pc->mailbox_cap = 4 * c->plan->num_microbatches * (c->plan->num_stages / K) + 4 * D + 16;
}

mp_status mp_run_check(const mp_run_config *c, mp_error *err)
{
    const mp_plan *p = c->plan;
    const mp_model *m = c->model;
    int ndev = c->num_devices > 0 ? c->num_devices : 1 << 20;
    mp_status st = mp_plan_check(p, m->num_layers, ndev, "plan", err);
    if (st != MP_OK) return st;
    if (p->mode != MP_MODE_TRAIN)
        return mp_error_set(err, MP_ERR_INPUT, "plan: a serving plan; mprun runs training plans");
    int K = positions_of(p);
    if (mp_plan_replicas(p) > 1024)
        return mp_error_set(err, MP_ERR_INPUT, "plan: data_parallel %d: mprun runs at most 1024 replicas",
                            mp_plan_replicas(p));
    mp_op_lists ops;
    st = mp_schedule_build(p->schedule, K, p->chunks_per_device, p->num_microbatches, &ops, err);
    if (st != MP_OK) return st == MP_ERR_NOMEM ? st : MP_ERR_INPUT;
    for (int s = 0; s < p->num_stages && st == MP_OK; s++) {
        int q = ops.stage_pos[s];   /* stage q < K is position q's first */
        if (p->stages[s].device != p->stages[q].device)
            st = mp_error_set(err, MP_ERR_INPUT, "plan: stages[%d].device is %d but it runs on position %d with device %d",
                              s, p->stages[s].device, q, p->stages[q].device);
    }
    mp_op_lists_free(&ops);
    if (st != MP_OK) return st;
    mp_pipeline_config pc;
    pipeline_config(c, K, c->transport, &pc);
    if ((st = mp_pipeline_check(&pc, err)) != MP_OK) return st;
    if (c->steps < 1) return mp_error_set(err, MP_ERR_USAGE, "--steps must be >= 1");
    if (!(c->lr > 0) || !isfinite(c->lr)) return mp_error_set(err, MP_ERR_USAGE, "--lr must be a positive number");
    if (!(c->timeout_s > 0)) return mp_error_set(err, MP_ERR_USAGE, "--timeout must be positive");
    if (p->microbatch_size < 1 || p->num_microbatches < 1)
        return mp_error_set(err, MP_ERR_INPUT, "plan: micro-batch size and count must be positive");
    if ((long long)p->num_microbatches > (1 << 18) || p->num_stages > (1 << 9))
        return mp_error_set(err, MP_ERR_INPUT, "plan: too many micro-batches or stages for mprun's message tags");
    st = mp_schedule_build(p->schedule, K, p->chunks_per_device, p->num_microbatches, &ops, err);
    if (st != MP_OK) return st == MP_ERR_NOMEM ? st : MP_ERR_INPUT;
    /* backwards (B, BI) and weight gradients (W) of each stage in micro-batch index order (see runtime.h) */
    int *next = calloc((size_t)2 * ops.num_stages, sizeof *next);
    if (!next) { mp_op_lists_free(&ops); return mp_error_set(err, MP_ERR_NOMEM, "out of memory"); }
    for (int q = 0; q < K && st == MP_OK; q++)
        for (int k = 0; k < ops.len[q]; k++) {
            const mp_op *o = &ops.ops[q][k];
            if (o->kind == MP_OP_FWD) continue;
            if (o->microbatch != next[2 * o->stage + (o->kind == MP_OP_BWD_W)]++) {
                st = mp_error_set(err, MP_ERR_INTERNAL,
                                  "schedule %s: stage %d runs backward of micro-batch %d out of index order; "
                                  "mprun would not be deterministic", mp_schedule_name(p->schedule), o->stage, o->microbatch);
                break;
            }
        }
    free(next);
    mp_op_lists_free(&ops);
    return st;
}


static const mp_pipeline_mode train_mode = {
    .position = mp_train_position,
    .gather = mp_train_gather,
    .collect = mp_train_collect,
    .release = mp_train_release,
};

mp_status mp_run(const mp_run_config *c, mp_run_result *res, mp_error *err)
{
    memset(res, 0, sizeof *res);
    mp_status st = mp_run_check(c, err);
    if (st != MP_OK) return st;
    mp_train_run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.plan = c->plan;
    r.model = c->model;
    r.res = res;
    r.K = positions_of(c->plan);
    r.D = mp_plan_replicas(c->plan);
    r.P = r.D * r.K;
    r.S = c->plan->num_stages;
    r.m = c->plan->num_microbatches;
    r.b = c->plan->microbatch_size;
    r.hang_position = -1;
    r.cpu0 = mp_machine_cpu_sample();
    if (c->fault && !strncmp(c->fault, "hang:", 5)) r.hang_position = atoi(c->fault + 5);
    mp_pipeline_config pc;
    const char *tname = NULL;
    if (c->resume) {
        int ns = 0;
        if (!c->checkpoint_dir) { st = mp_error_set(err, MP_ERR_USAGE, "--resume needs --checkpoint DIR"); goto out; }
        if ((st = mp_checkpoint_latest(c->checkpoint_dir, &r.first_step, &ns, err)) != MP_OK) goto out;
        if (ns != r.S) {
            st = mp_error_set(err, MP_ERR_INPUT, "%s: the checkpoint has %d stages, the plan %d", c->checkpoint_dir, ns, r.S);
            goto out;
        }
        if (r.first_step > c->steps) r.first_step = c->steps;
    }
    r.nsteps = (int)(c->steps - r.first_step);
    if ((st = mp_schedule_build(c->plan->schedule, r.K, c->plan->chunks_per_device, r.m, &r.ops, err)) != MP_OK) goto out;
    if ((st = mp_data_init(&r.data, c->model, c->seed, err)) != MP_OK) goto out;
    pipeline_config(c, r.K, c->transport, &pc);
    tname = mp_train_pick_transport(&r, &pc);
    pc.transport = tname;
    if ((st = mp_pipeline_open(&pc, &r.pl, err)) != MP_OK) goto out;
    r.t = r.pl->t;
    r.w = calloc((size_t)r.P, sizeof *r.w);
    if (!r.w) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto out; }
    for (int p = 0; p < r.P; p++) {
        r.w[p].r = &r;
        r.w[p].p = p;
        r.w[p].replica = p / r.K;
        r.w[p].k = p % r.K;
    }
    st = mp_pipeline_run(r.pl, &train_mode, &r, err);
    if (st == MP_OK) snprintf(res->transport, sizeof res->transport, "%s", tname);
out:
    if (r.w)
        for (int p = 0; p < r.P; p++) mp_train_worker_free(&r.w[p]);
    free(r.w);
    mp_pipeline_close(r.pl);
    mp_data_free(&r.data);
    mp_op_lists_free(&r.ops);
    return st;
}

void mp_run_result_free(mp_run_result *r)
{
    free(r->loss);
    free(r->iter_ms);
    free(r->step_ms);
    free(r->busy_ms);
    free(r->peak_bytes);
    mp_trace_free(&r->trace);
    memset(r, 0, sizeof *r);
}
