/* buffer_pool.c — see buffer_pool.h.
 * defines: mp_pool_get, mp_pool_put, mp_pool_free */
#include "buffer_pool.h"
#include "backend_impl.h"

#include <stdlib.h>
#include <string.h>

void *mp_pool_get(mp_pool *pl, mp_backend *be)
{
    if (pl->n) return pl->items[--pl->n];
    return be->i->alloc(be, pl->bytes ? pl->bytes : 1);
}

int mp_pool_put(mp_pool *pl, void *p)
{
    if (!p) return 1;
    if (pl->n == pl->cap) {
        int nc = pl->cap ? 2 * pl->cap : 8;
        void **ni = realloc(pl->items, (size_t)nc * sizeof *ni);
        if (!ni) return 0;
        pl->items = ni;
        pl->cap = nc;
    }
    pl->items[pl->n++] = p;
    return 1;
}

void mp_pool_free(mp_pool *pl, mp_backend *be)
{
    for (int i = 0; i < pl->n; i++) be->i->free(be, pl->items[i]);
    free(pl->items);
    memset(pl, 0, sizeof *pl);
}
