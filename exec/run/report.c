/* report.c — see report.h. */
#include "report.h"

#include <math.h>

#include <jansson.h>
#include <stdlib.h>

#include "json_util.h"
#include "units.h"

void mp_report_print(FILE *f, const mp_report_info *r)
{
    const mp_run_config *c = r->config;
    const mp_run_result *s = r->result;
    const mp_plan *p = c->plan;
    char b1[32];
    int D = s->replicas > 1 ? s->replicas : 1, K = s->num_positions / D;
    if (D > 1)
        fprintf(f, "# mprun: %s, %s, data parallel: %d replicas x %d stages on %d positions (%d each), b=%d x m=%d "
                "per replica, %s transport, %s backend\n",
                r->plan_path ? r->plan_path : "plan", mp_schedule_name(p->schedule), D, p->num_stages,
                s->num_positions, K, p->microbatch_size, p->num_microbatches,
                s->transport[0] ? s->transport : c->transport, c->backend);
    else
        fprintf(f, "# mprun: %s, %s, %d stages on %d positions, b=%d x m=%d, %s transport, %s backend\n",
                r->plan_path ? r->plan_path : "plan", mp_schedule_name(p->schedule), p->num_stages,
                s->num_positions, p->microbatch_size, p->num_microbatches,
                s->transport[0] ? s->transport : c->transport, c->backend);
    if (s->steps > 0)
        fprintf(f, "# steps %lld..%lld, final loss %.6f\n", s->first_step + 1, s->first_step + s->steps,
                s->loss[s->steps - 1]);
    if (s->entropy_rate > 0)
        fprintf(f, "# token model: the loss starts near ln(vocab) = %.4f and cannot fall below the data's entropy rate %.4f\n",
                log((double)c->model->classes), s->entropy_rate);
    fprintf(f, "iteration    %10.3f ms  (median after %d warm-up steps; pipeline only%s)\n", s->iteration_ms,
            c->warmup, D > 1 ? " and the gradient all-reduce" : "");
    fprintf(f, "step         %10.3f ms  (with optimizer step)\n", s->step_median_ms);
    fprintf(f, "throughput   %10.1f samples/s\n", s->samples_per_s);
    if (D > 1)
        fprintf(f, "all-reduce   %10.3f ms  (median per step, the longest position's gradient all-reduce)\n",
                s->allreduce_ms);
    if (r->has_prediction)
        fprintf(f, "predicted    %10.3f ms  error %+.1f%%\n", r->prediction.iteration_ms, r->error_pct);
    if (r->has_replay)
        fprintf(f, "replayed     %10.3f ms  error %+.1f%%  (the cost model fed with the last step's measured op times)\n",
                r->replay_ms, r->replay_error_pct);
    fprintf(f, "%-8s %12s %8s %14s%s\n", "stage", "busy_ms", "busy_%", "peak_memory", r->has_prediction ? "  predicted_peak" : "");
    for (int q = 0; q < s->num_positions; q++) {
        char nm[32];
        if (D > 1) snprintf(nm, sizeof nm, "r%d s%d", q / K, q % K);
        else snprintf(nm, sizeof nm, "%d", q);
        fprintf(f, "%-8s %12.3f %7.1f%% %14s", nm, s->busy_ms[q],
                s->iteration_ms > 0 ? 100.0 * s->busy_ms[q] / s->iteration_ms : 0.0,
                mp_format_bytes(b1, sizeof b1, s->peak_bytes[q]));
        if (r->has_prediction && q % K < r->prediction.num_peaks)   /* every replica: its position's peak */
            fprintf(f, "  %14s", mp_format_bytes(b1, sizeof b1, r->prediction.peak_memory_bytes[q % K]));
        fputc('\n', f);
    }
    fprintf(f, "checksum     %s\n", s->checksum);
}

static json_t *arr(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, mp_json_number(v[i]));
    return a;
}

mp_status mp_report_write(const char *path, const mp_report_info *r, mp_error *err)
{
    const mp_run_config *c = r->config;
    const mp_run_result *s = r->result;
    const mp_plan *p = c->plan;
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string("mprun-report/1"));
    if (r->plan_path) json_object_set_new(j, "plan", json_string(r->plan_path));
    if (r->model_path) json_object_set_new(j, "model", json_string(r->model_path));
    json_object_set_new(j, "schedule", json_string(mp_schedule_name(p->schedule)));
    json_object_set_new(j, "num_stages", json_integer(p->num_stages));
    json_object_set_new(j, "num_positions", json_integer(s->num_positions));
    int D = s->replicas > 1 ? s->replicas : 1, K = s->num_positions / D;
    json_object_set_new(j, "data_parallel", json_integer(D));
    if (D > 1) json_object_set_new(j, "allreduce_ms", mp_json_number(s->allreduce_ms));
    json_object_set_new(j, "global_batch", json_integer(p->global_batch));
    json_object_set_new(j, "microbatch_size", json_integer(p->microbatch_size));
    json_object_set_new(j, "num_microbatches", json_integer(p->num_microbatches));
    json_object_set_new(j, "backend", json_string(c->backend));
    json_object_set_new(j, "transport", json_string(s->transport[0] ? s->transport : c->transport));
    json_object_set_new(j, "optimizer", json_string(c->optimizer == MP_OPT_ADAM ? "adam" : "sgd"));
    json_object_set_new(j, "lr", mp_json_number(c->lr));
    json_object_set_new(j, "seed", json_integer((json_int_t)c->seed));
    json_object_set_new(j, "first_step", json_integer(s->first_step));
    json_object_set_new(j, "steps", json_integer(s->steps));
    json_object_set_new(j, "warmup_steps", json_integer(c->warmup));
    json_object_set_new(j, "losses", arr(s->loss, s->steps));
    json_object_set_new(j, "iteration_ms_per_step", arr(s->iter_ms, s->steps));
    json_object_set_new(j, "step_ms_per_step", arr(s->step_ms, s->steps));
    json_object_set_new(j, "iteration_ms", mp_json_number(s->iteration_ms));
    json_object_set_new(j, "step_ms", mp_json_number(s->step_median_ms));
    json_object_set_new(j, "samples_per_s", mp_json_number(s->samples_per_s));
    json_t *st = json_array();
    for (int q = 0; q < s->num_positions; q++) {
        json_t *o = json_object();
        json_object_set_new(o, "position", json_integer(q));
        if (D > 1) {
            json_object_set_new(o, "replica", json_integer(q / K));
            json_object_set_new(o, "stage_position", json_integer(q % K));
        }
        json_object_set_new(o, "busy_ms", mp_json_number(s->busy_ms[q]));
        json_object_set_new(o, "peak_memory_bytes", mp_json_number(s->peak_bytes[q]));
        json_array_append_new(st, o);
    }
    json_object_set_new(j, "stages", st);
    json_object_set_new(j, "param_count", json_integer(s->param_count));
    if (s->entropy_rate > 0) json_object_set_new(j, "entropy_rate", mp_json_number(s->entropy_rate));
    json_object_set_new(j, "weights_sha256", json_string(s->checksum));
    if (r->has_replay) {
        json_t *o = json_object();
        json_object_set_new(o, "iteration_ms", mp_json_number(r->replay_ms));
        json_object_set_new(o, "measured_ms", mp_json_number(s->iter_ms[s->steps - 1]));
        json_object_set_new(o, "error_pct", mp_json_number(r->replay_error_pct));
        json_object_set_new(j, "replay", o);
    }
    if (r->has_prediction) {
        json_t *o = json_object();
        json_object_set_new(o, "iteration_ms", mp_json_number(r->prediction.iteration_ms));
        json_object_set_new(o, "samples_per_s", mp_json_number(r->prediction.samples_per_s));
        json_object_set_new(o, "bubble_fraction", mp_json_number(r->prediction.bubble_fraction));
        json_object_set_new(o, "peak_memory_bytes", arr(r->prediction.peak_memory_bytes, r->prediction.num_peaks));
        json_object_set_new(o, "error_pct", mp_json_number(r->error_pct));
        json_object_set_new(j, "predicted", o);
    }
    mp_status rc = mp_json_write(path, j, err);
    json_decref(j);
    return rc;
}
