/* data.h — the synthetic training task mprun learns, drawn from --seed.
 * input_dim models: a fixed random teacher network; mse regresses its
 * output, cross_entropy takes its argmax as the label. Token models: each
 * sample is a sequence from a fixed random sparse Markov chain (every token
 * has MP_DATA_SUCCESSORS likely successors, with the same probabilities for
 * every token), the labels are the next tokens, so the mean loss can fall
 * from ln(vocab) to the chain's entropy rate (mp_data_entropy_rate) and no
 * lower. Every sample is a pure function of (seed, global sample index), so
 * every stage count sees the same data.
 * defines: mp_data, mp_data_init, mp_data_inputs, mp_data_targets,
 *          mp_data_entropy_rate, mp_data_free, MP_DATA_SUCCESSORS */
#ifndef MP_DATA_H
#define MP_DATA_H

#include <stdint.h>
#include "model.h"
#include "mp_status.h"

#define MP_DATA_SUCCESSORS 4   /* successors per token (fewer when vocab is smaller) */

typedef struct {
    uint64_t seed;
    int input_dim, out_dim, hidden;
    mp_loss_type loss;
    double *w1, *b1, *w2;   /* teacher: y = w2 * tanh(w1 x + b1) */
    int vocab, seq_len;     /* token models; 0 otherwise */
    int nsucc;              /* successors per token */
    int *succ;              /* [vocab][nsucc]: token v is followed by succ[v][k] with probability prob[k] */
    double prob[MP_DATA_SUCCESSORS];
} mp_data;

/* Draws the teacher (its input_dim, final width and loss) or, for a token
 * model, the Markov chain over its vocabulary, for model m. */
mp_status mp_data_init(mp_data *d, const mp_model *m, uint64_t seed, mp_error *err);

/* x[rows][input_dim] for samples first .. first+rows-1: entries ~ N(0,1), or
 * a token model's seq_len token ids (as floats) per sample. */
void mp_data_inputs(const mp_data *d, long long first, int rows, float *x);

/* Targets for the same samples: mse fills y[rows][out_dim] (labels unused,
 * may be NULL); cross_entropy fills labels[rows] (y unused, may be NULL), a
 * token model labels[rows][seq_len] (the token after each input position). */
void mp_data_targets(const mp_data *d, long long first, int rows, float *y, int *labels);

/* Token models: the chain's entropy rate in nats per token, the lowest mean
 * cross-entropy any model can reach on this data. 0 for other models. */
double mp_data_entropy_rate(const mp_data *d);

void mp_data_free(mp_data *d);

#endif
