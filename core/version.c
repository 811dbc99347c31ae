/* version.c — see version.h. The MP_HAVE_* macros come from the Makefile's
 * detection (the same flags every object of this build was compiled with). */
#include "version.h"

#include <stdio.h>
#include <string.h>

const char *mp_build_features(void)
{
    return "backends: cpu"
#ifdef MP_HAVE_CUDA
           " cuda"
#endif
           "; transports: threads"
#ifdef MP_HAVE_MPI
           " mpi"
#endif
#if defined(MP_HAVE_NCCL) && defined(MP_HAVE_MPI)
           " nccl"
#endif
        ;
}

int mp_cli_version(int argc, char **argv, const char *tool)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--version")) {
            printf("%s (mpkit %s) %s\n", tool, MP_VERSION, mp_build_features());
            return 1;
        }
    return 0;
}
