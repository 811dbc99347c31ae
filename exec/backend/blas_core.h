/* blas_core.h — which OpenBLAS kernels the CPU backend runs.
 * defines: mp_blas_core_select, mp_blas_core_note */
#ifndef MP_BLAS_CORE_H
#define MP_BLAS_CORE_H

/* Once per process: when OpenBLAS is a DYNAMIC_ARCH build that fell back to
 * a generic core it does not know (a VM's "Intel(R) Xeon(R) Processor" gets
 * Prescott, SSE3 only) and OPENBLAS_CORETYPE is unset, switches OpenBLAS to
 * the widest kernels this CPU supports (Cooperlake, SkylakeX, Haswell or
 * Sandybridge by CPUID) and sets OPENBLAS_CORETYPE to it for child processes.
 * Thread-safe; must run before any BLAS call (the CPU backend's init calls
 * it). OPENBLAS_CORETYPE set by the user is always kept. */
void mp_blas_core_select(void);

/* What mp_blas_core_select did, for describe lines: "" (kept OpenBLAS's
 * choice or the user's), or " (kernels chosen by mpkit: <core>)". */
const char *mp_blas_core_note(void);

#endif
