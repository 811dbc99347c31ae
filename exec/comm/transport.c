/* transport.c — the single registration point of transports.
 * defines: mp_transport_open, mp_transport_close, mp_transport_mpi_detected,
 *          mp_transport_available */
#include "transport.h"

#include <stdlib.h>
#include <string.h>

int mp_transport_mpi_detected(void)
{
    static const char *vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int mp_transport_available(const char *name)
{
    if (!name) return 0;
    if (!strcmp(name, "threads")) return 1;
#ifdef MP_HAVE_MPI
    if (!strcmp(name, "mpi")) return 1;
#if defined(MP_HAVE_NCCL)
    if (!strcmp(name, "nccl")) return 1;
#endif
#endif
    return 0;
}

mp_status mp_transport_open(const char *name, int num_positions, int mailbox_cap,
                            mp_transport **out, mp_error *err)
{
    const mp_transport_i *impl = NULL;
    *out = NULL;
    if (strcmp(name, "threads") == 0) impl = &mp_transport_threads_i;
    else if (strcmp(name, "mpi") == 0) {
#ifdef MP_HAVE_MPI
        impl = &mp_transport_mpi_i;
#else
        return mp_error_set(err, MP_ERR_BACKEND, "transport mpi: this mprun was built without MPI (rebuild with mpicc available)");
#endif
    } else if (strcmp(name, "nccl") == 0) {
#ifdef MP_HAVE_NCCL
        impl = &mp_transport_nccl_i;   /* its open says so when MPI is missing */
#else
        return mp_error_set(err, MP_ERR_BACKEND, "transport nccl: this mprun was built without NCCL");
#endif
    } else
        return mp_error_set(err, MP_ERR_USAGE, "unknown transport '%s' (threads, mpi or nccl)", name);
    if (num_positions < 1)
        return mp_error_set(err, MP_ERR_INTERNAL, "transport: %d positions", num_positions);
    mp_transport *t = calloc(1, sizeof *t);
    if (!t) return mp_error_set(err, MP_ERR_NOMEM, "transport: out of memory");
    t->i = impl;
    t->num_positions = num_positions;
    t->rank = -1;
    mp_status st = impl->open(t, num_positions, mailbox_cap, err);
    if (st != MP_OK) { free(t); return st; }
    *out = t;
    return MP_OK;
}

void mp_transport_close(mp_transport *t, int failed)
{
    if (!t) return;
    t->i->close(t, failed);
    free(t);
}
