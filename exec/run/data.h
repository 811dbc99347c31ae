/* data.h — the synthetic training task mprun learns: a fixed random teacher
 * network drawn from --seed. mse: regress the teacher's output; cross_entropy:
 * the teacher's argmax is the label. Every sample is a pure function of
 * (seed, global sample index), so every stage count sees the same data.
 * defines: mp_data, mp_data_init, mp_data_inputs, mp_data_targets, mp_data_free */
#ifndef MP_DATA_H
#define MP_DATA_H

#include <stdint.h>
#include "model.h"
#include "mp_status.h"

typedef struct {
    uint64_t seed;
    int input_dim, out_dim, hidden;
    mp_loss_type loss;
    double *w1, *b1, *w2;   /* teacher: y = w2 * tanh(w1 x + b1) */
} mp_data;

/* Draws the teacher for model m (its input_dim, final width and loss). */
mp_status mp_data_init(mp_data *d, const mp_model *m, uint64_t seed, mp_error *err);

/* x[rows][input_dim] for samples first .. first+rows-1, entries ~ N(0,1). */
void mp_data_inputs(const mp_data *d, long long first, int rows, float *x);

/* Targets for the same samples: mse fills y[rows][out_dim] (labels unused,
 * may be NULL); cross_entropy fills labels[rows] (y unused, may be NULL). */
void mp_data_targets(const mp_data *d, long long first, int rows, float *y, int *labels);

void mp_data_free(mp_data *d);

#endif
