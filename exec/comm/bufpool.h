/* bufpool.h — recycled message buffers for the transports: a large
 * malloc'd block costs a fresh mapping and a page fault per 4 KiB every
 * time (glibc maps blocks above its threshold, at most 32 MiB, anew on
 * each malloc), which doubled the all-reduce of 32 MiB layers; a pool
 * keeps a few freed blocks and hands out the best fit. Thread-safe.
 * defines: mp_bufpool, mp_bufpool_init, mp_bufpool_get, mp_bufpool_put, mp_bufpool_free */
#ifndef MP_BUFPOOL_H
#define MP_BUFPOOL_H

#include <pthread.h>
#include <stddef.h>

typedef struct mp_bufblock mp_bufblock;

typedef struct {
    pthread_mutex_t mu;
    mp_bufblock *free;         /* the kept blocks */
    int n;                     /* their count (at most MP_BUFPOOL_COUNT) */
    size_t bytes;              /* their capacity (at most MP_BUFPOOL_BYTES) */
} mp_bufpool;

#define MP_BUFPOOL_COUNT 16
#define MP_BUFPOOL_BYTES ((size_t)1 << 30)

void mp_bufpool_init(mp_bufpool *p);

/* A block of at least `bytes` (> 0 or not): the smallest kept block with
 * room that is at most 4x too large, else a new one; NULL when out of memory. */
void *mp_bufpool_get(mp_bufpool *p, size_t bytes);

/* Returns a block from mp_bufpool_get (NULL: nothing). When the pool is full
 * it keeps the larger blocks and frees the smallest. */
void mp_bufpool_put(mp_bufpool *p, void *block);

/* Frees the kept blocks (blocks still out must be put back or are leaked). */
void mp_bufpool_free(mp_bufpool *p);

#endif
