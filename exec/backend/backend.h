/* backend.h — compute backends ("cpu", "cuda") behind one interface.
 * defines: mp_backend, mp_backend_open, mp_backend_close, mp_backend_name,
 *          mp_backend_available, mp_backend_describe, mp_backend_mem_used
 *
 * Callers hold an opaque mp_backend; the table of primitives lives in
 * backend_impl.h and is used by exec/ (layers, runtime, profiler) only. */
#ifndef MP_BACKEND_H
#define MP_BACKEND_H

#include <stddef.h>
#include "mp_status.h"

typedef struct mp_backend mp_backend;

/* Opens backend `name` ("cpu" or "cuda") on device index `device` (CPU: the
 * core to pin to, or -1 for none; CUDA: the GPU). MP_ERR_BACKEND with a clear
 * message when the backend was not compiled in or no such device exists. */
mp_status mp_backend_open(const char *name, int device, mp_backend **out, mp_error *err);

void mp_backend_close(mp_backend *be);

/* "cpu" / "cuda". */
const char *mp_backend_name(const mp_backend *be);

/* 1 when `name` was compiled into this binary. */
int mp_backend_available(const char *name);

/* One line describing the device and library versions (for headers of
 * mpprof's output), written into buf; returns buf. */
char *mp_backend_describe(mp_backend *be, char *buf, size_t n);

/* Bytes in use on the backend's device, or -1 when the backend cannot tell
 * (its mem_used entry is optional). */
double mp_backend_mem_used(mp_backend *be);

#endif
