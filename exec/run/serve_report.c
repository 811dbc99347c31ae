/* serve_report.c — what mprun --serve prints and writes: the measured serving
 * metrics, per-stage utilisation, queue/overload state and, with a profile,
 * the simulator's prediction for the same arrivals and the error in percent.
 * defines: mp_serve_report_print, mp_serve_report_write, mp_serve_trace_write */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json_util.h"
#include "serve_run.h"

static double err_pct(double measured, double predicted)
{
    return predicted > 0 ? 100.0 * (measured - predicted) / predicted : 0;
}

static double span_ms(const mp_serve_run_result *r)
{
    double last = 0;
    for (int i = 0; i < r->n; i++)
        if (r->done_ms[i] > last) last = r->done_ms[i];
    return r->n ? last - r->arrival_ms[0] : 0;
}

void mp_serve_report_print(FILE *f, const mp_serve_report_info *r)
{
    const mp_serve_run_result *run = r->run;
    const mp_serve_result *m = &r->measured;
    fprintf(f, "# mprun --serve %s  model %s  arrivals %s\n", r->plan_path ? r->plan_path : "-",
            r->model_path ? r->model_path : "-", r->arrivals_desc ? r->arrivals_desc : "-");
    fprintf(f, "# %d stage%s (%s transport), max_batch %d, max_wait %.3f ms, %d requests in %d batches (mean %.2f)\n",
            run->num_stages, run->num_stages == 1 ? "" : "s", r->transport ? r->transport : "threads",
            run->max_batch, run->max_wait_ms, run->n, m->num_batches, m->mean_batch);
    fprintf(f, "%-10s %10s %10s %9s %9s %9s %9s %9s %8s\n", "", "rate/s", "thrpt/s", "p50 ms", "p90 ms",
            "p99 ms", "max ms", "mean ms", "slo ok");
    fprintf(f, "%-10s %10.1f %10.1f %9.3f %9.3f %9.3f %9.3f %9.3f %7.1f%%\n", "measured", r->rate_rps,
            m->throughput_rps, m->p50_ms, m->p90_ms, m->p99_ms, m->max_ms, m->mean_ms, 100 * m->slo_attainment);
    if (r->has_prediction) {
        const mp_serve_result *p = &r->predicted;
        fprintf(f, "%-10s %10.1f %10.1f %9.3f %9.3f %9.3f %9.3f %9.3f %7.1f%%\n", "predicted", r->rate_rps,
                p->throughput_rps, p->p50_ms, p->p90_ms, p->p99_ms, p->max_ms, p->mean_ms, 100 * p->slo_attainment);
        fprintf(f, "%-10s %10s %9.1f%% %8.1f%% %8.1f%% %8.1f%%\n", "error", "", err_pct(m->throughput_rps, p->throughput_rps),
                err_pct(m->p50_ms, p->p50_ms), err_pct(m->p90_ms, p->p90_ms), err_pct(m->p99_ms, p->p99_ms));
        fprintf(f, "# predicted capacity %.1f req/s (full batches)\n", p->capacity_rps);
    }
    double span = span_ms(run);
    for (int s = 0; s < run->num_stages; s++)
        fprintf(f, "# stage %d: busy %.1f ms, utilisation %.1f%%\n", s, run->busy_ms[s],
                span > 0 ? 100 * run->busy_ms[s] / span : 0);
    const mp_serve_overheads *o = &r->overheads;
    if (run->realtime_threads) fprintf(f, "# realtime: %d threads under SCHED_FIFO\n", run->realtime_threads);
    fprintf(f, "# overheads: generator late p50 %.3f / p99 %.3f ms; batcher wake-up p50 %.3f / p99 %.3f ms "
               "(%d idle batches); copies %.3f ms per batch\n", o->gen_late_p50_ms, o->gen_late_p99_ms,
            o->dispatch_p50_ms, o->dispatch_p99_ms, o->idle_batches, o->copy_per_batch_ms);
    if (r->has_prediction)
        fprintf(f, "# prediction terms: fwd_scale %.3f, batch_overhead %.3f ms, dispatch %.3f ms\n", r->fwd_scale,
                r->batch_overhead_ms, r->dispatch_ms);
    if (r->has_fit)
        fprintf(f, "# this run's calibration: forward = %.3f ms + %.3f x profile (%d forwards, spread x%.2f..x%.2f), "
                "dispatch %.3f ms\n", r->fit_overhead_ms, r->fit_scale, r->fit_points,
                r->fit_n_spread ? r->fit_spread[2] : 1.0, r->fit_n_spread ? r->fit_spread[38] : 1.0, r->fit_dispatch_ms);
    fprintf(f, "# queued at the last arrival %d, unfinished %d: %s\n", run->queued_at_end, run->unfinished,
            m->overloaded ? "OVERLOADED (the queue grows: offered load above what the pipeline serves)" : "not overloaded");
    if (r->outputs_sha256) fprintf(f, "# outputs sha256 %s (request order)\n", r->outputs_sha256);
    if (run->others_pct >= 0)
        fprintf(f, "# machine: other processes took %.0f%% of the CPUs during the run%s\n", run->others_pct,
                run->others_pct > 5 ? ": the measurements are skewed, rerun on a quiet machine" : "");
}

/* A JSON array of v[0..n). */
static json_t *darr(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, mp_json_number(v[i]));
    return a;
}

static json_t *metrics_json(const mp_serve_result *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "throughput_rps", mp_json_number(m->throughput_rps));
    json_object_set_new(o, "offered_rps", mp_json_number(m->offered_rps));
    json_object_set_new(o, "p50_ms", mp_json_number(m->p50_ms));
    json_object_set_new(o, "p90_ms", mp_json_number(m->p90_ms));
    json_object_set_new(o, "p99_ms", mp_json_number(m->p99_ms));
    json_object_set_new(o, "max_ms", mp_json_number(m->max_ms));
    json_object_set_new(o, "mean_ms", mp_json_number(m->mean_ms));
    json_object_set_new(o, "slo_attainment", mp_json_number(m->slo_attainment));
    json_object_set_new(o, "num_batches", json_integer(m->num_batches));
    json_object_set_new(o, "mean_batch", mp_json_number(m->mean_batch));
    json_object_set_new(o, "capacity_rps", mp_json_number(m->capacity_rps));
    json_object_set_new(o, "queued_at_end", json_integer(m->queued_at_end));
    json_object_set_new(o, "overloaded", json_boolean(m->overloaded));
    return o;
}

mp_status mp_serve_report_write(const char *path, const mp_serve_report_info *r, mp_error *err)
{
    const mp_serve_run_result *run = r->run;
    const mp_serve_result *m = &r->measured;
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("mprun-serve-report/1"));
    json_object_set_new(o, "plan", json_string(r->plan_path ? r->plan_path : ""));
    json_object_set_new(o, "model", json_string(r->model_path ? r->model_path : ""));
    json_object_set_new(o, "arrivals", json_string(r->arrivals_desc ? r->arrivals_desc : ""));
    json_object_set_new(o, "rate", mp_json_number(r->rate_rps));
    json_object_set_new(o, "offered_rps", mp_json_number(m->offered_rps));
    json_object_set_new(o, "throughput", mp_json_number(m->throughput_rps));
    json_object_set_new(o, "p50_ms", mp_json_number(m->p50_ms));
    json_object_set_new(o, "p90_ms", mp_json_number(m->p90_ms));
    json_object_set_new(o, "p99_ms", mp_json_number(m->p99_ms));
    json_object_set_new(o, "max_ms", mp_json_number(m->max_ms));
    json_object_set_new(o, "mean_ms", mp_json_number(m->mean_ms));
    if (m->slo_ms > 0) json_object_set_new(o, "slo_ms", mp_json_number(m->slo_ms));
    else json_object_set_new(o, "slo_ms", json_null());
    json_object_set_new(o, "slo_attainment", mp_json_number(m->slo_attainment));
    json_object_set_new(o, "requests", json_integer(run->n));
    if (run->others_pct >= 0) json_object_set_new(o, "others_pct", mp_json_number(run->others_pct));
    json_object_set_new(o, "completed", json_integer(run->n - run->unfinished));
    json_object_set_new(o, "unfinished", json_integer(run->unfinished));
    json_object_set_new(o, "queued_at_end", json_integer(run->queued_at_end));
    json_object_set_new(o, "overloaded", json_boolean(m->overloaded));
    json_object_set_new(o, "num_stages", json_integer(run->num_stages));
    json_object_set_new(o, "transport", json_string(r->transport ? r->transport : "threads"));
    if (r->outputs_sha256) json_object_set_new(o, "outputs_sha256", json_string(r->outputs_sha256));
    json_object_set_new(o, "max_batch", json_integer(run->max_batch));
    json_object_set_new(o, "max_wait_ms", mp_json_number(run->max_wait_ms));
    json_object_set_new(o, "num_batches", json_integer(run->num_batches));
    json_object_set_new(o, "mean_batch", mp_json_number(m->mean_batch));
    json_t *sizes = json_array(), *util = json_array(), *busy = json_array();
    for (int j = 0; j < run->num_batches; j++) json_array_append_new(sizes, json_integer(run->batch_size[j]));
    double span = span_ms(run);
    for (int s = 0; s < run->num_stages; s++) {
        json_array_append_new(busy, mp_json_number(run->busy_ms[s]));
        json_array_append_new(util, mp_json_number(span > 0 ? run->busy_ms[s] / span : 0));
    }
    json_object_set_new(o, "batch_sizes", sizes);
    json_object_set_new(o, "stage_busy_ms", busy);
    json_object_set_new(o, "stage_utilisation", util);
    if (r->has_prediction) {
        const mp_serve_result *p = &r->predicted;
        json_object_set_new(o, "predicted", metrics_json(p));
        json_t *e = json_object();
        json_object_set_new(e, "throughput", mp_json_number(err_pct(m->throughput_rps, p->throughput_rps)));
        json_object_set_new(e, "p50", mp_json_number(err_pct(m->p50_ms, p->p50_ms)));
        json_object_set_new(e, "p90", mp_json_number(err_pct(m->p90_ms, p->p90_ms)));
        json_object_set_new(e, "p99", mp_json_number(err_pct(m->p99_ms, p->p99_ms)));
        json_object_set_new(o, "error_pct", e);
        json_t *t = json_object();
        json_object_set_new(t, "fwd_scale", mp_json_number(r->fwd_scale));
        json_object_set_new(t, "batch_overhead_ms", mp_json_number(r->batch_overhead_ms));
        json_object_set_new(t, "dispatch_ms", mp_json_number(r->dispatch_ms));
        if (r->n_spread) json_object_set_new(t, "fwd_spread_quantiles", darr(r->spread, r->n_spread));
        json_object_set_new(o, "prediction_terms", t);
    }
    const mp_serve_overheads *ov = &r->overheads;
    json_t *oj = json_object();
    json_object_set_new(oj, "generator_late_p50_ms", mp_json_number(ov->gen_late_p50_ms));
    json_object_set_new(oj, "generator_late_p99_ms", mp_json_number(ov->gen_late_p99_ms));
    json_object_set_new(oj, "idle_batches", json_integer(ov->idle_batches));
    json_object_set_new(oj, "dispatch_p50_ms", mp_json_number(ov->dispatch_p50_ms));
    json_object_set_new(oj, "dispatch_p99_ms", mp_json_number(ov->dispatch_p99_ms));
    json_object_set_new(oj, "copy_per_batch_ms", mp_json_number(ov->copy_per_batch_ms));
    json_object_set_new(o, "overheads", oj);
    json_object_set_new(o, "realtime_threads", json_integer(run->realtime_threads));
    if (r->has_fit) {
        json_t *c = json_object();
        json_object_set_new(c, "fwd_scale", mp_json_number(r->fit_scale));
        json_object_set_new(c, "batch_overhead_ms", mp_json_number(r->fit_overhead_ms));
        json_object_set_new(c, "dispatch_ms", mp_json_number(r->fit_dispatch_ms));
        json_object_set_new(c, "forwards", json_integer(r->fit_points));
        if (r->fit_n_spread) json_object_set_new(c, "fwd_spread_quantiles", darr(r->fit_spread, r->fit_n_spread));
        json_object_set_new(o, "calibration", c);
    }
    mp_status st = mp_json_write(path, o, err);
    json_decref(o);
    return st;
}

mp_status mp_serve_trace_write(const char *path, const mp_serve_run_result *r, mp_error *err)
{
    mp_trace t;
    memset(&t, 0, sizeof t);
    t.num_positions = r->num_stages;
    mp_status st = MP_OK;
    int K = r->num_stages;
    for (int j = 0; j < r->num_batches && st == MP_OK; j++)
        for (int s = 0; s < K && st == MP_OK; s++) {
            double a = r->fwd_start_ms[(size_t)j * K + s], e = r->fwd_end_ms[(size_t)j * K + s];
            if (e <= 0) continue;
            st = mp_trace_add(&t, (mp_trace_event){ MP_TEV_FWD, s, -1, s, j, a, e });
            if (st == MP_OK && s + 1 < K && r->fwd_end_ms[(size_t)j * K + s + 1] > 0)
                /* from the end of this forward until the next stage starts it */
                st = mp_trace_add(&t, (mp_trace_event){ MP_TEV_SEND_ACT, s, s + 1, s, j, e,
                                                         r->fwd_start_ms[(size_t)j * K + s + 1] });
        }
    if (st != MP_OK) st = mp_error_set(err, MP_ERR_NOMEM, "out of memory for the trace");
    else st = mp_trace_write_chrome(&t, path, "mprun --serve measured", err);
    mp_trace_free(&t);
    return st;
}
