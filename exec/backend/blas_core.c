/* blas_core.c — the OpenBLAS kernel choice for CPUs that OpenBLAS does not
 * recognise (blas_core.h). */
#include "blas_core.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS DYNAMIC_ARCH entry points; weak, so a build without them links
 * and simply keeps its kernels. */
char *openblas_get_corename(void) __attribute__((weak));
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char note[64];

/* Cores OpenBLAS falls back to: narrower than any AVX CPU. */
static int generic_core(const char *name)
{
    static const char *const generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                          "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                          "Opteron", "Opteron(SSE3)", "Barcelona", "Nano", "Bobcat"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (strcmp(name, generic[i]) == 0) return 1;
    return 0;
}

/* The widest OpenBLAS x86 core this CPU runs, or NULL. */
static const char *cpu_core(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512cd");
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
    return NULL;
}

static void select_core(void)
{
    if (getenv("OPENBLAS_CORETYPE") || !openblas_get_corename || !gotoblas_dynamic_init ||
        !gotoblas_dynamic_quit)
        return;
    const char *now = openblas_get_corename(), *want = cpu_core();
    if (!now || !want || !generic_core(now)) return;
    setenv("OPENBLAS_CORETYPE", want, 0);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();   /* reads OPENBLAS_CORETYPE */
    snprintf(note, sizeof note, " (kernels chosen by mpkit: %s)", openblas_get_corename());
}

void mp_blas_core_select(void) { pthread_once(&once, select_core); }

const char *mp_blas_core_note(void) { return note; }
