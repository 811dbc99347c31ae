/* buffer_pool.h — a free list of equal-sized backend buffers: the training
 * runtime takes stash and input slots at a forward and gives them back at the
 * matching backward, so the backend's allocated bytes peak at what the
 * schedule keeps in flight.
 * defines: mp_pool, mp_pool_get, mp_pool_put, mp_pool_free */
#ifndef MP_BUFFER_POOL_H
#define MP_BUFFER_POOL_H

#include <stddef.h>
#include "backend.h"

typedef struct {
    size_t bytes;               /* every buffer's size (set before the first get) */
    void **items;               /* free buffers */
    int n, cap;
} mp_pool;

/* A free buffer, or a new one from the backend (NULL when it is out of memory). */
void *mp_pool_get(mp_pool *pl, mp_backend *be);

/* Gives p (from mp_pool_get; NULL is ignored) back; 0 when the list cannot grow. */
int mp_pool_put(mp_pool *pl, void *p);

/* Frees every buffer in the list and the list; the pool is empty after. */
void mp_pool_free(mp_pool *pl, mp_backend *be);

#endif
