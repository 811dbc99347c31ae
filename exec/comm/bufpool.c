/* bufpool.c — see bufpool.h.
 * defines: mp_bufpool_init, mp_bufpool_get, mp_bufpool_put, mp_bufpool_free */
#include "bufpool.h"

#include <stdalign.h>
#include <stdlib.h>

struct mp_bufblock {
    mp_bufblock *next;
    size_t cap;                        /* bytes after the header */
    alignas(max_align_t) unsigned char data[];
};

static mp_bufblock *block_of(void *data) { return (mp_bufblock *)((unsigned char *)data - offsetof(mp_bufblock, data)); }

/* See bufpool.h. */
void mp_bufpool_init(mp_bufpool *p)
{
    pthread_mutex_init(&p->mu, NULL);
    p->free = NULL;
    p->n = 0;
    p->bytes = 0;
}

/* See bufpool.h. */
void *mp_bufpool_get(mp_bufpool *p, size_t bytes)
{
    pthread_mutex_lock(&p->mu);
    mp_bufblock **best = NULL;
    for (mp_bufblock **b = &p->free; *b; b = &(*b)->next)
        if ((*b)->cap >= bytes && (*b)->cap / 4 <= bytes && (!best || (*b)->cap < (*best)->cap)) best = b;
    mp_bufblock *k = NULL;
    if (best) {
        k = *best;
        *best = k->next;
        p->n--;
        p->bytes -= k->cap;
    }
    pthread_mutex_unlock(&p->mu);
    if (!k && (k = malloc(sizeof *k + (bytes ? bytes : 1)))) k->cap = bytes ? bytes : 1;
    return k ? k->data : NULL;
}

/* See bufpool.h. */
void mp_bufpool_put(mp_bufpool *p, void *block)
{
    if (!block) return;
    mp_bufblock *k = block_of(block);
    pthread_mutex_lock(&p->mu);
    if (p->n >= MP_BUFPOOL_COUNT) {   /* evict the smallest when k is larger */
        mp_bufblock **small = &p->free;
        for (mp_bufblock **b = &p->free; *b; b = &(*b)->next)
            if ((*b)->cap < (*small)->cap) small = b;
        if ((*small)->cap < k->cap) {
            mp_bufblock *e = *small;
            *small = e->next;
            p->n--;
            p->bytes -= e->cap;
            free(e);
        }
    }
    if (p->n < MP_BUFPOOL_COUNT && p->bytes + k->cap <= MP_BUFPOOL_BYTES) {
        k->next = p->free;
        p->free = k;
        p->n++;
        p->bytes += k->cap;
        k = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(k);
}

/* See bufpool.h. */
void mp_bufpool_free(mp_bufpool *p)
{
    for (mp_bufblock *k = p->free, *n; k; k = n) {
        n = k->next;
        free(k);
    }
    p->free = NULL;
    p->n = 0;
    p->bytes = 0;
    pthread_mutex_destroy(&p->mu);
}
