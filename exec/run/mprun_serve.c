/* mprun_serve.c — `mprun PLAN.json --model M.json --serve ...` (mprun_serve.h):
 * options, the arrivals (the simulator's generator: sim/serve_arrivals.c), the
 * run (on threads, or one rank per stage under mpirun), the prediction for the
 * same arrivals, the report (rank 0 only).
 * defines: mp_mprun_serve_main */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "stats.h"
#include "cli.h"
#include "mprun_cli.h"
#include "cluster.h"
#include "model.h"
#include "mprun_serve.h"
#include "plan.h"
#include "profile.h"
#include "run_devices.h"
#include "serve.h"
#include "serve_calibration.h"
#include "serve_eval.h"
#include "serve_run.h"
#include "sha256.h"
#include "transport.h"

enum { O_SERVE = 256, O_RATE, O_DURATION, O_ARRIVALS, O_SLO, O_DRAIN, O_DISPATCH, O_SCALE, O_OVERHEAD,
       O_CALIB, O_RT, O_CHECKSUM };

/* One table drives both getopt_long and --help. */
static const mp_cli_opt opts[] = {
    MP_MPRUN_COMMON_OPTS,
    { "serve", 0, O_SERVE, NULL, "serve requests instead of training" },
    { "rate", 1, O_RATE, "R", "Poisson arrivals at R requests/s (with --duration); scales a trace" },
    { "duration", 1, O_DURATION, "S", "seconds of Poisson arrivals (e.g. 5, 500ms)" },
    { "arrivals", 1, O_ARRIVALS, "TRACE", "arrival times in seconds, one a line (instead of Poisson)" },
    { "slo-ms", 1, O_SLO, "L", "latency target in ms for the attainment (default: the plan's)" },
    { "drain", 1, O_DRAIN, "T", "after the last arrival, dispatch for at most T (default 2s); the rest is unfinished" },
    { "realtime", 0, O_RT, NULL, "generator and stages under SCHED_FIFO (root/CAP_SYS_NICE; shared machines)" },
    { "calibration", 1, O_CALIB, "R.json", "prediction terms from an earlier report's \"calibration\"; the three flags below override it" },
    { "dispatch-ms", 1, O_DISPATCH, "X", "prediction: batcher wake-up delay of an idle stage 0 (default 0)" },
    { "fwd-scale", 1, O_SCALE, "F", "prediction: forward time = F x profile + overhead (default 1)" },
    { "batch-overhead-ms", 1, O_OVERHEAD, "X", "prediction: fixed ms per batch per stage (default 0)" },
    { "checksum", 0, O_CHECKSUM, NULL, "keep every request's output; print and report their SHA-256 in request order" },
};
#define NOPTS ((int)(sizeof opts / sizeof opts[0]))

typedef struct {
    mp_mprun_args a;            /* the options shared with training */
    const char *arrivals_path;
    double rate, duration_s, slo_ms;
    double dispatch_ms, fwd_scale, overhead_ms;  /* < 0: not given */
    const char *calib_path;
    mp_serve_terms cal;         /* --calibration's terms; its spread is used as is */
    mp_serve_run_config run;
} cli;

static void usage(FILE *f)
{
    fprintf(f, "usage: mprun PLAN.json --model M.json --serve (--rate R --duration S | --arrivals TRACE) [options]\n\n"
               "Serves single-sample requests through a serving plan (mpplan --serve -o PLAN.json):\n"
               "open-loop arrivals, the batcher of docs/serving.md, forward-only stages on threads,\n"
               "or one rank per stage: mpirun -np K mprun PLAN.json --serve ... (K = the plan's stages).\n\n");
    mp_cli_print_options(f, opts, NOPTS, "", 28);
}

/* The terms of --calibration R.json for those not given as flags. */
static mp_status load_calibration(cli *c, mp_error *err)
{
    mp_serve_terms t;
    mp_error e;
    mp_error_clear(&e);
    if (mp_serve_calibration_load(c->calib_path, &t, &e) != MP_OK)
        return mp_error_set(err, MP_ERR_USAGE, "--calibration %s", e.msg);
    c->cal = t;
    if (c->fwd_scale < 0) c->fwd_scale = t.fwd_scale;
    if (c->overhead_ms < 0) c->overhead_ms = t.batch_overhead_ms;
    if (c->dispatch_ms < 0) c->dispatch_ms = t.dispatch_ms;
    return MP_OK;
}

/* One serving option's value into c (mp_cli_opt_fn). */
static mp_status parse_opt(void *ctx, int o, const char *v, mp_error *err)
{
    cli *c = ctx;
    switch (o) {
    case O_SERVE: return MP_OK;
    case O_RATE: return mp_cli_number("rate", v, 1, &c->rate, err);
    case O_DURATION: return mp_cli_duration("duration", v, &c->duration_s, err);
    case O_ARRIVALS: c->arrivals_path = v; return MP_OK;
    case O_SLO: return mp_cli_number("slo-ms", v, 1, &c->slo_ms, err);
    case O_DRAIN: return mp_cli_duration("drain", v, &c->run.drain_s, err);
    case O_CALIB: c->calib_path = v; return MP_OK;
    case O_RT: c->run.realtime = 1; return MP_OK;
    case O_CHECKSUM: c->run.keep_outputs = 1; return MP_OK;
    case O_DISPATCH: return mp_cli_number("dispatch-ms", v, 0, &c->dispatch_ms, err);
    case O_SCALE: return mp_cli_number("fwd-scale", v, 1, &c->fwd_scale, err);
    case O_OVERHEAD: return mp_cli_number("batch-overhead-ms", v, 0, &c->overhead_ms, err);
    default: return mp_error_set(err, MP_ERR_USAGE, "unknown option (see --help)");
    }
}

static mp_status parse_args(int argc, char **argv, cli *c, int *help, mp_error *err)
{
    memset(c, 0, sizeof *c);
    mp_serve_run_config_default(&c->run);
    c->rate = -1;
    c->slo_ms = -1;
    c->dispatch_ms = c->fwd_scale = c->overhead_ms = -1;
    mp_status st = mp_mprun_args_parse(argc, argv, opts, NOPTS, &c->a, parse_opt, c, err);
    *help = c->a.help;
    if (st != MP_OK || *help) return st;
    if (!c->arrivals_path && (c->rate < 0 || !(c->duration_s > 0)))
        return mp_error_set(err, MP_ERR_USAGE, "--serve needs --rate R --duration S or --arrivals TRACE");
    if (c->arrivals_path && c->duration_s > 0)
        return mp_error_set(err, MP_ERR_USAGE, "--duration and --arrivals both set the requests; use one");
    if (c->calib_path && (st = load_calibration(c, err)) != MP_OK) return st;
    if (c->dispatch_ms < 0) c->dispatch_ms = 0;
    if (c->fwd_scale < 0) c->fwd_scale = 1;
    if (c->overhead_ms < 0) c->overhead_ms = 0;
    MP_MPRUN_ARGS_APPLY(c->run, c->a);
    return MP_OK;
}

/* The requests: Poisson at --rate for --duration (a prefix of the
 * simulator's stream with the same seed), or the trace (scaled by --rate). */
static mp_status make_arrivals(cli *c, double **t_out, int *n_out, mp_error *err)
{
    mp_serve_arrivals a;
    memset(&a, 0, sizeof a);
    if (c->arrivals_path) {
        mp_status st = mp_serve_arrivals_load(&a, c->arrivals_path, err);
        if (st != MP_OK) return st;
        double *t = malloc((size_t)a.n * sizeof(double));
        if (!t) { mp_serve_arrivals_free(&a); return mp_error_set(err, MP_ERR_NOMEM, "out of memory"); }
        mp_serve_arrivals_at_rate(&a, c->rate > 0 ? c->rate : 0, t);
        if (c->rate <= 0) c->rate = a.trace_rps;
        *t_out = t;
        *n_out = a.n;
        mp_serve_arrivals_free(&a);
        return MP_OK;
    }
    double horizon = 1e3 * c->duration_s, mean = c->rate * c->duration_s;
    if (mean > 5e7) return mp_error_set(err, MP_ERR_USAGE, "--rate x --duration: %.3g requests is too many", mean);
    int n = (int)(mean + 10 * sqrt(mean) + 20);
    for (;;) {
        double *t = malloc((size_t)n * sizeof(double));
        if (!t) return mp_error_set(err, MP_ERR_NOMEM, "out of memory for %d arrivals", n);
        mp_serve_arrivals_poisson(&a, n, c->a.seed);
        mp_serve_arrivals_at_rate(&a, c->rate, t);
        if (t[n - 1] >= horizon) {
            int k = 0;
            while (k < n && t[k] < horizon) k++;
            if (k == 0) { free(t); return mp_error_set(err, MP_ERR_USAGE, "no request arrives within --duration; raise --rate or --duration"); }
            *t_out = t;
            *n_out = k;
            return MP_OK;
        }
        free(t);
        n *= 2;
    }
}

/* This run's calibration (docs/serving.md §7): least squares of every
 * measured stage forward (upload + forward + download) of batch size b on the
 * profile's time at b, y = overhead + scale * x; through the origin when the
 * intercept would be negative or the sizes do not vary. dispatch = the
 * measured median wake-up of the batcher. */
static void fit_forwards(const mp_serve_run_result *r, const double *sms, int B, mp_serve_report_info *info)
{
    int K = r->num_stages, m = 0;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int j = 0; j < r->num_batches; j++)
        for (int s = 0; s < K; s++) {
            double a = r->fwd_start_ms[(size_t)j * K + s], e = r->fwd_end_ms[(size_t)j * K + s];
            double x = sms[s * B + r->batch_size[j] - 1];
            if (!(e > a) || !(x > 0)) continue;
            m++;
            sx += x; sy += e - a; sxx += x * x; sxy += x * (e - a);
        }
    info->fit_points = m;
    info->has_fit = m > 0;
    if (!m) return;
    double var = sxx - sx * sx / m, scale, c0 = 0;
    scale = var > 1e-9 * sxx ? (sxy - sx * sy / m) / var : 0;
    c0 = (sy - scale * sx) / m;
    if (!(var > 1e-9 * sxx) || c0 < 0 || scale <= 0) { scale = sxy / sxx; c0 = 0; }
    info->fit_scale = scale;
    info->fit_overhead_ms = c0;
    info->fit_dispatch_ms = info->overheads.dispatch_p50_ms;
    /* the spread: quantiles of each forward over its fitted time */
    double *q = malloc((size_t)m * sizeof *q);
    if (!q || m < 2) { free(q); return; }
    int n = 0;
    for (int j = 0; j < r->num_batches; j++)
        for (int s = 0; s < K; s++) {
            double a = r->fwd_start_ms[(size_t)j * K + s], e = r->fwd_end_ms[(size_t)j * K + s];
            double x = sms[s * B + r->batch_size[j] - 1], fit = c0 + scale * x;
            if (e > a && x > 0 && fit > 0) q[n++] = (e - a) / fit;
        }
    if (n >= 41) {   /* 41 equiprobable factors, scaled to mean 1: the fit sets the mean, the spread the shape */
        qsort(q, (size_t)n, sizeof *q, mp_cmp_double);
        double mean = 0;
        for (int k = 0; k < 41; k++) mean += (info->fit_spread[k] = q[(int)((k + 0.5) / 41 * n)]) / 41;
        info->fit_n_spread = mean > 0 ? 41 : 0;
        for (int k = 0; k < info->fit_n_spread; k++) info->fit_spread[k] /= mean;
    }
    free(q);
}

/* The serving evaluator (sim/serve_eval.h) on the arrival times t on the
 * devices and links of cl (--cluster, else uniform from --bandwidth/--latency),
 * with the terms of --calibration / --fwd-scale / --batch-overhead-ms /
 * --dispatch-ms; with a finished run (res) also this run's calibration. */
static mp_status predict(cli *c, const mp_plan *plan, const mp_model *model, const mp_cluster *cl, const double *t,
                         int n, double slo, const mp_serve_run_result *res, mp_serve_report_info *info, mp_error *err)
{
    mp_profile prof;
    memset(&prof, 0, sizeof prof);
    mp_status st = mp_profile_load(c->a.profile_path, &prof, err);
    if (st != MP_OK) return st;
    int K = plan->num_stages, B = plan->max_batch;
    double *sms = NULL;
    mp_serve_eval ev = { 0 };
    mp_serve_terms terms = c->cal;
    terms.fwd_scale = c->fwd_scale;
    terms.batch_overhead_ms = c->overhead_ms;
    terms.dispatch_ms = c->dispatch_ms;
    if (prof.num_layers != model->num_layers) {
        st = mp_error_set(err, MP_ERR_INPUT, "%s: %d layers, but the model %s has %d", c->a.profile_path,
                          prof.num_layers, c->a.model_path, model->num_layers);
        goto out;
    }
    if ((st = mp_serve_eval_init(&ev, &prof, cl, B, &terms, err)) != MP_OK) goto out;
    if (res) {   /* the profile's stage times, without the terms, for this run's fit */
        if (!(sms = malloc((size_t)K * B * sizeof *sms))) { st = mp_error_set(err, MP_ERR_NOMEM, "out of memory"); goto out; }
        for (int s = 0; s < K; s++)
            for (int b = 1; b <= B; b++)
                sms[s * B + b - 1] = mp_serve_eval_stage_ms(&ev, b, plan->stages[s].device, plan->stages[s].first,
                                                            plan->stages[s].last);
        fit_forwards(res, sms, B, info);
    }
    info->fwd_scale = terms.fwd_scale;
    info->batch_overhead_ms = terms.batch_overhead_ms;
    info->dispatch_ms = terms.dispatch_ms;
    info->spread = c->cal.n_spread ? c->cal.spread : NULL;
    info->n_spread = c->cal.n_spread;
    st = mp_serve_eval_plan(&ev, plan, t, n, slo > 0 ? slo : 1e300, &info->predicted, NULL, NULL, err);
out:
    mp_serve_eval_free(&ev);
    free(sms);
    mp_profile_free(&prof);
    return st;
}

/* SHA-256 of every request's output row (float32, request order; rows of
 * unfinished requests are zeros) as 64 hex digits in hex. */
static void outputs_sha256(const mp_serve_run_result *r, char hex[65])
{
    mp_sha256 h;
    unsigned char dg[32];
    mp_sha256_init(&h);
    mp_sha256_update(&h, r->outputs, (size_t)r->n * (size_t)r->out_dim * sizeof(float));
    mp_sha256_final(&h, dg);
    mp_sha256_hex(dg, hex);
}

int mp_mprun_serve_main(int argc, char **argv)
{
    cli c;
    mp_error err;
    mp_error_clear(&err);
    int help = 0, n = 0;
    double *t = NULL;
    mp_plan plan;
    mp_model model;
    memset(&plan, 0, sizeof plan);
    memset(&model, 0, sizeof model);
    mp_serve_run_result res;
    memset(&res, 0, sizeof res);
    mp_serve_report_info info;
    memset(&info, 0, sizeof info);
    mp_run_devices dev;
    memset(&dev, 0, sizeof dev);
    mp_status st = parse_args(argc, argv, &c, &help, &err);
    if (help) { usage(stdout); return 0; }
    if (st == MP_OK) st = mp_plan_load(c.a.plan_path, &plan, &err);
    if (st == MP_OK) st = mp_model_load(c.a.model_path, &model, &err);
    if (st == MP_OK && plan.mode != MP_MODE_SERVE)
        st = mp_error_set(&err, MP_ERR_INPUT, "%s: a training plan; --serve needs a serving plan "
                                              "(\"mode\": \"serve\", from mpplan --serve -o PLAN.json)", c.a.plan_path);
    if (st == MP_OK)
        st = mp_run_devices_load(&dev, c.a.devs.cluster, c.a.devs.memory, c.a.devs.bandwidth, c.a.devs.latency, &plan, c.a.profile_path != NULL,
                                 &err);
    if (st == MP_OK)
        st = mp_plan_check(&plan, model.num_layers, c.a.devs.cluster ? dev.num_devices : INT_MAX, c.a.plan_path, &err);
    if (st == MP_OK) st = make_arrivals(&c, &t, &n, &err);
    double slo = c.slo_ms > 0 ? c.slo_ms : mp_plan_slo_ms(&plan);
    if (st == MP_OK) {
        info.plan_path = c.a.plan_path;
        info.model_path = c.a.model_path;
        info.arrivals_desc = c.arrivals_path ? c.arrivals_path : "poisson";
        info.rate_rps = c.rate;
    }
    if (st == MP_OK) {
        c.run.plan = &plan;
        c.run.model = &model;
        c.run.arrival_ms = t;
        c.run.n = n;
        c.run.slo_ms = slo;
        c.run.num_devices = dev.num_devices;
        c.run.device_memory = dev.memory;
        st = mp_serve_run(&c.run, &res, &err);
    }
    if (st == MP_OK && !res.is_root) goto out;   /* MPI rank > 0: rank 0 reports */
    char sum[65];
    if (st == MP_OK && c.run.keep_outputs) {
        outputs_sha256(&res, sum);
        info.outputs_sha256 = sum;
    }
    info.transport = c.run.transport;
    if (st == MP_OK) st = mp_serve_run_metrics(&res, slo, &info.measured, &err);
    if (st == MP_OK) mp_serve_run_overheads(&res, &info.overheads);
    if (st == MP_OK && c.a.profile_path) {
        /* the arrivals the server saw */
        st = predict(&c, &plan, &model, &dev.cluster, res.release_ms, n, slo, &res, &info, &err);
        info.has_prediction = st == MP_OK;
    }
    if (st == MP_OK) {
        info.run = &res;
        if (info.has_prediction) info.measured.capacity_rps = info.predicted.capacity_rps;
        mp_serve_report_print(stdout, &info);
        if (c.a.report_path) st = mp_serve_report_write(c.a.report_path, &info, &err);
        if (st == MP_OK && c.a.trace_path) st = mp_serve_trace_write(c.a.trace_path, &res, &err);
    }
    if (st != MP_OK) fprintf(stderr, "mprun: %s\n", err.msg);
out:
    mp_serve_run_result_free(&res);
    free(t);
    mp_plan_free(&plan);
    mp_model_free(&model);
    mp_run_devices_free(&dev);
    return mp_exit_code(st);
}
