#!/usr/bin/env bash
# build_config_check.sh — a changed build configuration rebuilds what it
# changes (Makefile: $(BUILD)/config.txt). Builds mprun and a test that uses
# the MPI transport into a scratch folder with USE_MPI=0, then again with
# detection, and checks that the second build links (no stale objects) and
# that its mprun carries the MPI transport (mprun --version). Then back to
# USE_MPI=0, which must drop it again.
# Usage: tests/build_config_check.sh [SCRATCH_DIR]   (default: a new temp dir)
set -uo pipefail
cd "$(dirname "$0")/.."
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES USE_MPI USE_NCCL USE_CUDA   # make asan exports its USE_*=0
d=${1:-$(mktemp -d)}
mkdir -p "$d"
if ! printf '#include <mpi.h>\nint main(void){return MPI_Init(0,0);}\n' | mpicc -x c - -o /dev/null >/dev/null 2>&1; then
    echo "build_config_check: SKIPPED: no MPI compiler here (make deps installs OpenMPI)"
    exit 0
fi
jobs=$(nproc 2>/dev/null || echo 2)
build() {  # build LABEL [make variables]: the tools' library, mprun and test_runtime
    local label=$1; shift
    if ! make --no-print-directory -j"$jobs" BUILD="$d/build" BIN="$d/bin" USE_CUDA=0 "$@" \
        "$d/bin/mprun" "$d/build/tests/test_runtime" >"$d/$label.log" 2>&1; then
        echo "build_config_check: FAILED: the $label build does not build:"; tail -20 "$d/$label.log"; exit 1
    fi
}
transports() { "$d/bin/mprun" --version | sed 's/.*transports: //'; }
build without-mpi USE_MPI=0
t=$(transports)
case " $t " in *" mpi "*) echo "build_config_check: FAILED: USE_MPI=0 build has transports '$t'"; exit 1 ;; esac
build detected
t=$(transports)
case " $t " in *" mpi "*) ;; *) echo "build_config_check: FAILED: after detection mprun has transports '$t', no mpi"; exit 1 ;; esac
grep -q 'USE_MPI=1' "$d/build/config.txt" || { echo "build_config_check: FAILED: config.txt does not say USE_MPI=1"; exit 1; }
build without-mpi-again USE_MPI=0
t=$(transports)
case " $t " in *" mpi "*) echo "build_config_check: FAILED: back to USE_MPI=0, mprun still has '$t'"; exit 1 ;; esac
echo "build_config_check: ok (USE_MPI=0 -> detected -> USE_MPI=0 in $d)"
[ -z "${1:-}" ] && rm -rf "$d"
exit 0
