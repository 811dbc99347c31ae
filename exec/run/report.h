/* report.h — mprun's report: the stdout summary and the JSON file.
 * defines: mp_report_info, mp_report_print, mp_report_write */
#ifndef MP_REPORT_H
#define MP_REPORT_H

#include <stdio.h>
#include "mp_status.h"
#include "plan.h"
#include "runtime.h"

typedef struct {
    const mp_run_config *config;
    const mp_run_result *result;
    const char *plan_path, *model_path;
    int has_prediction;          /* --profile given: prediction below is valid */
    mp_prediction prediction;    /* mp_plan_evaluate's, for the same plan */
    double error_pct;            /* 100 * (measured - predicted) / predicted */
    int has_replay;              /* replay below is valid */
    double replay_ms;            /* the cost model fed with the last step's measured op times */
    double replay_error_pct;     /* 100 * (last step measured - replay) / replay */
} mp_report_info;

/* Human summary: iteration time, samples/s, per-stage busy and peak memory,
 * the prediction and its error, the weights checksum. */
void mp_report_print(FILE *f, const mp_report_info *r);

/* The report as JSON ("format": "mprun-report/1"), written atomically. */
mp_status mp_report_write(const char *path, const mp_report_info *r, mp_error *err);

#endif
