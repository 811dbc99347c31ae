/* backend.c — the backend registry and dispatch (backend.h). The only place
 * that knows at build time which backends were compiled in. */
#include "backend_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- registry */

static const mp_backend_i *const registry[] = {
    &mp_backend_cpu_i,
#ifdef MP_HAVE_CUDA
    &mp_backend_cuda_i,
#endif
};
#define NUM_BACKENDS ((int)(sizeof registry / sizeof registry[0]))

static const mp_backend_i *find(const char *name)
{
    for (int i = 0; i < NUM_BACKENDS; i++)
        if (name && !strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}

int mp_backend_available(const char *name)
{
    return find(name) != NULL;
}

/* ---------------------------------------------------------------- handles */

mp_status mp_backend_open(const char *name, int device, mp_backend **out, mp_error *err)
{
    *out = NULL;
    const mp_backend_i *i = find(name);
    if (!i) {
        if (name && !strcmp(name, "cuda"))
            return mp_error_set(err, MP_ERR_BACKEND, "backend 'cuda' was not compiled into this build "
                                "(no CUDA toolkit found at build time)");
        return mp_error_set(err, MP_ERR_BACKEND, "unknown backend '%s' (known: cpu, cuda)", name ? name : "(null)");
    }
    mp_backend *be = calloc(1, sizeof *be);
    if (!be) return mp_error_set(err, MP_ERR_NOMEM, "backend '%s': out of memory", name);
    be->i = i;
    be->device = device;
    mp_status st = i->init ? i->init(be, device, err) : MP_OK;
    if (st != MP_OK) {
        free(be);
        return st;
    }
    *out = be;
    return MP_OK;
}

void mp_backend_close(mp_backend *be)
{
    if (!be) return;
    if (be->i->shutdown) be->i->shutdown(be);
    free(be);
}

const char *mp_backend_name(const mp_backend *be)
{
    return be->i->name;
}

char *mp_backend_describe(mp_backend *be, char *buf, size_t n)
{
    if (n == 0) return buf;
    buf[0] = 0;
    if (be->i->describe) be->i->describe(be, buf, n);
    else snprintf(buf, n, "%s", be->i->name);
    return buf;
}

double mp_backend_mem_used(mp_backend *be)
{
    return be->i->mem_used ? (double)be->i->mem_used(be) : -1;
}
