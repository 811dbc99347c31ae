/* profile.h — per-layer costs ("format": "mpplan-profile/1"), see docs/formats.md.
 * defines: mp_time_fn, mp_time_eval, mp_layer_cost, mp_profile, mp_profile_load,
 *          mp_profile_parse, mp_profile_save, mp_profile_free, mp_profile_merge,
 *          mp_profile_same_model, mp_profile_has_split */
#ifndef MP_PROFILE_H
#define MP_PROFILE_H

#include <stddef.h>
#include "mp_status.h"

typedef enum {
    MP_TIME_LINEAR, /* a number x: x*b ms */
    MP_TIME_AFFINE, /* {"alpha": a, "beta": c}: a + c*b ms */
    MP_TIME_TABLE   /* {"batch": [...], "ms": [...]}: piecewise linear */
} mp_time_kind;

typedef struct {
    mp_time_kind kind;
    double alpha, beta;   /* LINEAR uses beta only (alpha = 0) */
    int n;                /* TABLE: number of points (>= 1), batch strictly increasing */
    double *batch, *ms;   /* TABLE: owned arrays of n */
} mp_time_fn;

/* Time in ms at micro-batch size b (b > 0). TABLE: linear interpolation,
 * outside the table the nearest segment extended (a single point: constant
 * per-sample rate ms*b/batch); the result is clamped at 0. */
double mp_time_eval(const mp_time_fn *f, double b);

typedef struct {
    char *name;
    mp_time_fn fwd, bwd;
    double param_bytes;
    double out_bytes_per_sample;    /* activation sent to the next layer */
    double stash_bytes_per_sample;  /* kept from forward to backward */
    int has_split;                  /* 1 when bwd_input_ms and bwd_weight_ms were given */
    mp_time_fn bwd_in, bwd_w;       /* the split backward: input gradient, weight gradient */
    double wstash_bytes_per_sample; /* kept from the input gradient to the weight gradient
                                       (optional, 0 when absent) */
} mp_layer_cost;

typedef struct {
    char *model;
    char *device;
    double input_bytes_per_sample;  /* 0 when absent */
    int num_layers;
    mp_layer_cost *layers;
    int busy_cores;                 /* CPU profiles: cores busy while measuring ("settings".threads
                                       with "backend": "cpu"); 0 when unknown */
} mp_profile;

/* Loads and validates a profile file. On error returns MP_ERR_IO/MP_ERR_INPUT
 * with a message "PATH:LINE:COL: ..." (syntax) or "PATH: layers[3].fwd_ms: ..."
 * (values); *p is left zeroed. Free with mp_profile_free. */
mp_status mp_profile_load(const char *path, mp_profile *p, mp_error *err);

/* Same as mp_profile_load from a buffer; `name` is used in messages. */
mp_status mp_profile_parse(const char *text, size_t len, const char *name,
                           mp_profile *p, mp_error *err);

/* Writes p in the profile format, atomically (temp file + rename). */
mp_status mp_profile_save(const char *path, const mp_profile *p, mp_error *err);

/* out = the pointwise median of profiles ps[0..n) of one model (n >= 1):
 * every forward/backward time (table point, alpha, beta) is the median over
 * the n; names, byte sizes and table batch sizes must agree, else
 * MP_ERR_INPUT naming names[i] and the difference. Model and device are the
 * first profile's, busy_cores theirs when all agree (else 0). Defined in
 * profile_merge.c. */
mp_status mp_profile_merge(const mp_profile *ps, const char *const *names, int n, mp_profile *out, mp_error *err);

/* MP_OK when q (named `name` in messages) is a profile of the same model as
 * p: layer names, byte sizes and the forms and batch sizes of the times
 * agree; else MP_ERR_INPUT saying what differs. Defined in profile_merge.c. */
mp_status mp_profile_same_model(const mp_profile *p, const mp_profile *q, const char *name, mp_error *err);

/* 1 when every layer of p has bwd_input_ms and bwd_weight_ms (what the
 * zero-bubble schedules need). */
int mp_profile_has_split(const mp_profile *p);

/* Frees everything p owns and zeroes it; safe on a zeroed profile. */
void mp_profile_free(mp_profile *p);

#endif
