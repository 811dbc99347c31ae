/* version.h — which mpkit this is and what this build of it carries.
 * defines: MP_VERSION, mp_build_features, mp_cli_version */
#ifndef MP_VERSION_H
#define MP_VERSION_H

#define MP_VERSION "0.4"

/* What was compiled in, e.g. "backends: cpu cuda; transports: threads mpi nccl"
 * (static string). */
const char *mp_build_features(void);

/* When argv holds --version: prints "TOOL (mpkit VERSION) BUILD-FEATURES" on
 * stdout and returns 1 (the tool then exits 0); else 0. */
int mp_cli_version(int argc, char **argv, const char *tool);

#endif
