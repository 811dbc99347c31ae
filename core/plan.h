/* plan.h — a pipeline plan and its prediction ("format": "mpplan-plan/1").
 * defines: mp_schedule_kind, mp_schedule_name, mp_schedule_from_name, mp_stage,
 *          mp_prediction, mp_plan_search, mp_plan, mp_plan_load, mp_plan_parse, mp_plan_to_json,
 *          mp_plan_save, mp_plan_check, mp_plan_copy, mp_plan_free, mp_plan_num_devices,
 *          mp_plan_num_positions, mp_plan_replicas, mp_plan_replica_device,
 *          mp_serve_prediction, mp_plan_json, mp_plan_slo_ms, mp_plan_check_serve */
#ifndef MP_PLAN_H
#define MP_PLAN_H

#include <stddef.h>
#include "mp_status.h"
#include "serve_calibration.h"

typedef enum {
    MP_SCHED_GPIPE = 0,
    MP_SCHED_1F1B = 1,
    MP_SCHED_INTERLEAVED = 2,
    MP_SCHED_ZB_H1 = 3,   /* zero bubble, split backward (sim/schedule.h) */
    MP_SCHED_ZB_H2 = 4,
    MP_SCHED_ZB_V = 5     /* two chunks per device in a V: 2K stages */
} mp_schedule_kind;

#define MP_SCHED_COUNT 6

/* "gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "zb-v". */
const char *mp_schedule_name(mp_schedule_kind k);
/* Parses a schedule name; MP_ERR_INPUT for anything else. */
mp_status mp_schedule_from_name(const char *s, mp_schedule_kind *k);

typedef struct {
    int first, last;      /* inclusive layer range */
    int device;           /* cluster device index */
    int recompute;        /* 0/1: drop the stash, recompute forward in backward */
} mp_stage;

/* A serving plan's predicted metrics (mode serve, docs/serving.md): every
 * field optional in the file (0 when absent). */
typedef struct {
    double rate, throughput_rps;       /* offered rate, requests/s served */
    double p50_ms, p90_ms, p99_ms, max_ms;
    double slo_ms, slo_attainment;     /* slo_ms 0: none recorded */
    double capacity_rps;
    int overloaded, queued_at_end;
} mp_serve_prediction;

typedef struct {
    double iteration_ms;
    double samples_per_s;
    double bubble_fraction;
    int num_peaks;               /* stages (gpipe/1f1b) or devices (interleaved) */
    double *peak_memory_bytes;   /* owned, num_peaks */
    int bottleneck_stage;
    mp_serve_prediction serve;   /* serve plans (mode serve) */
} mp_prediction;

/* What the planner's search did to find the plan ("search" in the JSON). */
typedef struct {
    double seconds;              /* wall time of the search */
    long configurations;         /* configurations considered */
    long searched;               /* ... whose split search ran */
    double lower_bound_ms;       /* no plan is faster than this */
    double gap;                  /* (iteration time - lower bound) / iteration time */
    int proven;                  /* 1: the plan is proven optimal for the cost model */
} mp_plan_search;

typedef enum { MP_MODE_TRAIN = 0, MP_MODE_SERVE = 1 } mp_plan_mode;

typedef struct {
    mp_plan_mode mode;
    mp_schedule_kind schedule;
    int chunks_per_device;       /* interleaved: v >= 2; zb-v: 2; otherwise 1 */
    int global_batch;
    int microbatch_size;
    int num_microbatches;        /* global_batch / microbatch_size */
    int num_stages;              /* for interleaved: K * v virtual stages, stage s on device s % K;
                                    zb-v: 2K, stage s on the device of stage 2K-1-s for s >= K */
    mp_stage *stages;            /* owned, num_stages, contiguous and covering all layers in order */
    int has_prediction;
    mp_prediction predicted;
    int max_batch;               /* serve plans: largest batch formed; 0 when absent */
    double max_wait_ms;          /* serve plans: longest a request waits for a batch; 0 when absent */
    int data_parallel;           /* D >= 1 replicas of the pipeline; global_batch = D * m * b */
    int has_terms;               /* serve plans: "prediction_terms" present */
    mp_serve_terms terms;        /* the measured terms the prediction used */
    int has_search;              /* 1: `search` is set (plans written by mpplan's search) */
    mp_plan_search search;
} mp_plan;

/* Load/parse a plan file and check its internal consistency (contiguous
 * layer ranges starting at 0, m * b == global batch, known schedule...). */
mp_status mp_plan_load(const char *path, mp_plan *p, mp_error *err);
mp_status mp_plan_parse(const char *text, size_t len, const char *name,
                        mp_plan *p, mp_error *err);

/* Checks the plan against a model of num_layers layers and a cluster of
 * num_devices devices; `name` is used in messages. */
mp_status mp_plan_check(const mp_plan *p, int num_layers, int num_devices,
                        const char *name, mp_error *err);

/* The plan as a JSON text (malloc'd, pretty-printed, newline-terminated). */
char *mp_plan_to_json(const mp_plan *p);

/* The plan as a new JSON object (what mp_plan_to_json prints); NULL when
 * out of memory. */
struct json_t *mp_plan_json(const mp_plan *p);

/* The SLO a serving plan was planned for (predicted.slo_ms > 0), else -1. */
double mp_plan_slo_ms(const mp_plan *p);

/* Checks that p is a serving plan for a model of num_layers layers: mode
 * "serve", max_batch >= 1 and the stages ending at the last layer; `name`
 * is used in messages. */
mp_status mp_plan_check_serve(const mp_plan *p, int num_layers, const char *name, mp_error *err);

/* Writes the plan atomically (temp file + rename). */
mp_status mp_plan_save(const char *path, const mp_plan *p, mp_error *err);

/* Deep copy; dst must not own memory. */
mp_status mp_plan_copy(mp_plan *dst, const mp_plan *src);

void mp_plan_free(mp_plan *p);

/* How many distinct devices the plan keeps busy: the stages' devices times
 * the data-parallel degree D. */
int mp_plan_num_devices(const mp_plan *p);

/* The data-parallel degree D (1 when data_parallel is 0 or 1). */
int mp_plan_replicas(const mp_plan *p);

/* Pipeline positions K of one replica: stages, or devices when interleaved. */
int mp_plan_num_positions(const mp_plan *p);

/* The cluster device on which replica r (0..D-1) runs stage s: the stage's
 * device plus r * K, so with stage devices 0..K-1 replica r, position k runs
 * on device r*K + k. */
int mp_plan_replica_device(const mp_plan *p, int replica, int stage);

#endif
