/* checkpoint.h — per-stage checkpoints for mprun --checkpoint / --resume.
 * defines: mp_checkpoint_write, mp_checkpoint_read, mp_checkpoint_commit,
 *          mp_checkpoint_latest
 *
 * Stage j at step N writes DIR/stage-j.step-N.ckpt (atomically: temp file +
 * rename): magic, stage, its layer range, the step, the parameters and, with
 * Adam, both moments, closed by a SHA-256 of everything before it. Once every
 * stage has written step N, position 0 commits: DIR/latest ("step N\nstages K\n")
 * is replaced atomically and older step files are removed. A run killed at
 * any point therefore resumes from the last committed step. */
#ifndef MP_CHECKPOINT_H
#define MP_CHECKPOINT_H

#include <stddef.h>
#include "mp_status.h"

/* Writes stage `stage`'s state for `step`; m and v may be NULL (SGD). */
mp_status mp_checkpoint_write(const char *dir, int stage, long long step, int first, int last,
                              const float *params, const float *m, const float *v, size_t n,
                              mp_error *err);

/* Reads it back into params (and m, v when non-NULL), checking the magic, the
 * stage, the layer range, the sizes and the checksum; MP_ERR_INPUT naming the
 * file and the mismatch otherwise. */
mp_status mp_checkpoint_read(const char *dir, int stage, long long step, int first, int last,
                             float *params, float *m, float *v, size_t n, mp_error *err);

/* Marks `step` as the latest complete checkpoint of num_stages stages and
 * deletes the step files of earlier steps. */
mp_status mp_checkpoint_commit(const char *dir, long long step, int num_stages, mp_error *err);

/* Reads DIR/latest. MP_ERR_IO when there is none. */
mp_status mp_checkpoint_latest(const char *dir, long long *step, int *num_stages, mp_error *err);

#endif
