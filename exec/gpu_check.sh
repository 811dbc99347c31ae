#!/usr/bin/env bash
# gpu_check.sh — `make gpu-check`: on a GPU machine, build with CUDA, compare the
# CUDA backend with the CPU reference, profile an example model on the GPU,
# measure the GPU links, and plan from the new profile. See docs/gpu.md.
#
# Every step has a timeout, so the whole run stays under ~8 minutes. A failing
# step is reported and the independent steps still run (GPU time is scarce);
# the script exits 1 if any step failed. The log goes to out/gpu-check.log and,
# when $OUT is set, the log and every result file are copied there too.
#
# Environment: GPU_TAG (default h200) names the result files; MODEL (default
# profiles/mlp24-4096.model.json); DEVICES (4), MEMORY (80GiB), GLOBAL_BATCH (256)
# for the plan; JOBS for make -j.
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_TAG=${GPU_TAG:-h200}
MODEL=${MODEL:-profiles/mlp24-4096.model.json}
DEVICES=${DEVICES:-4}
MEMORY=${MEMORY:-80GiB}
GLOBAL_BATCH=${GLOBAL_BATCH:-256}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
base=$(basename "$MODEL" .model.json)
PROFILE=profiles/$base.$GPU_TAG.profile.json
CLUSTER=profiles/$GPU_TAG.cluster.json
PLAN=out/$base.$GPU_TAG.plan.txt
LOG=out/gpu-check.log

failed=()
t_start=$(date +%s)

banner() { printf '\n==== %s  (t=%ss)\n' "$*" "$(( $(date +%s) - t_start ))"; }

# step NAME SECONDS CMD... : runs CMD under a timeout, records a failure.
step() {
    local name=$1 secs=$2; shift 2
    banner "$name"
    echo "\$ $*"
    local rc=0
    timeout "$secs" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && echo "gpu-check: $name timed out after ${secs}s"
        echo "gpu-check: FAILED: $name (exit $rc)"
        failed+=("$name")
        return 1
    fi
    return 0
}

copy_out() {
    [ -n "${OUT:-}" ] || return 0
    mkdir -p "$OUT"
    for f in "$PROFILE" "$CLUSTER" "$PLAN" out/test_backend_cuda.log out/nvidia-smi.txt; do
        [ -f "$f" ] && cp "$f" "$OUT/" || true
    done
    cp "$LOG" "$OUT/" 2>/dev/null || true
}

finish() {
    banner "summary"
    if [ ${#failed[@]} -eq 0 ]; then
        echo "gpu-check: OK (log: $LOG)"
        exit 0
    fi
    echo "gpu-check: ${#failed[@]} step(s) failed: ${failed[*]} (log: $LOG)"
    exit 1
}

checks() {

# ---------------------------------------------------------------- the machine
banner "machine"
uname -a
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi 2>&1 | tee out/nvidia-smi.txt || true
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1 || true
else
    echo "gpu-check: nvidia-smi not found: is this a GPU machine?"
fi
"${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>&1 | tail -2 || echo "gpu-check: nvcc not found"

# ---------------------------------------------------------------- build
if ! step "build (make USE_CUDA=1)" 300 make -j"$JOBS" USE_CUDA=1 all build/tests/test_backend_cuda; then
    echo "gpu-check: the build failed; nothing else can run"
    finish
fi

# ---------------------------------------------------------------- CUDA vs CPU
if step "CUDA vs CPU backend test" 120 bash -c \
       'OPENBLAS_NUM_THREADS=1 ./build/tests/test_backend_cuda > out/test_backend_cuda.log 2>&1; rc=$?; cat out/test_backend_cuda.log; exit $rc'; then
    if grep -q 'skipped' out/test_backend_cuda.log; then
        echo "gpu-check: FAILED: the CUDA test skipped itself on a GPU machine"
        grep 'skipped' out/test_backend_cuda.log | head -1
        command -v nvidia-smi >/dev/null 2>&1 &&
            grep -qi 'driver version is insufficient' out/test_backend_cuda.log &&
            echo "gpu-check: hint: the NVIDIA driver is older than this CUDA toolkit ($(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)); build against a matching CUDA_HOME"
        failed+=("CUDA test skipped")
    fi
fi

# ---------------------------------------------------------------- profile
if [ ! -f "$MODEL" ]; then
    banner "GPU profile"
    echo "gpu-check: FAILED: model spec $MODEL does not exist"
    failed+=("model spec missing")
else
    step "GPU profile of $MODEL" 120 \
        bin/mpprof --backend cuda --model "$MODEL" --batch 1,2,4,8,16,32 -o "$PROFILE" || true
fi

# ---------------------------------------------------------------- links
step "GPU links" 120 bin/mpprof --links --backend cuda -o "$CLUSTER" || true

# ---------------------------------------------------------------- plan
if [ -f "$PROFILE" ]; then
    step "plan from the GPU profile" 60 bash -o pipefail -c \
        "bin/mpplan --profile '$PROFILE' --devices $DEVICES --memory $MEMORY --global-batch $GLOBAL_BATCH | tee '$PLAN'" || true
else
    banner "plan"
    echo "gpu-check: no GPU profile ($PROFILE), no plan"
fi

finish
}

mkdir -p out
rc=0
checks 2>&1 | tee "$LOG" || rc=$?
copy_out
exit "$rc"
