#!/usr/bin/env bash
# gpu_check.sh — `make gpu-check`: on a GPU machine, build with CUDA, compare the
# CUDA backend with the CPU reference, profile an example model on the GPU,
# measure the GPU links, plan from the new profile, and train with mprun on the
# GPU (1-stage and 2-stage plans on GPU 0, CPU-vs-GPU losses) and serve with it
# (2 stages on GPU 0); profile gpt2-small on the GPU and train a 2-stage plan of
# it on GPU 0 and on the CPU, losses compared. See docs/gpu.md.
#
# Every step has a timeout, so the whole run stays under ~8 minutes. A failing
# step is reported and the independent steps still run (GPU time is scarce);
# the script exits 1 if any step failed. The log goes to out/gpu-check.log and,
# when $OUT is set, the log and every result file are copied there too.
#
# Environment: GPU_TAG (default h200) names the result files; MODEL (default
# profiles/mlp24-4096.model.json); DEVICES (4), MEMORY (80GiB), GLOBAL_BATCH (256)
# for the plan; RUN_MODEL (default profiles/mlp24-1024.model.json) for mprun;
# GPT (default profiles/gpt2-small.model.json) for the token-model steps;
# BUDGET (default 470 s): later steps get only the time left, so the whole run
# stays under 8 minutes; JOBS for make -j.
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
RUN_MODEL=${RUN_MODEL:-profiles/mlp24-1024.model.json}
run_base=$(basename "$RUN_MODEL" .model.json)
RUN_PROFILE=profiles/$run_base.$GPU_TAG.profile.json
BUDGET=${BUDGET:-470}

failed=()
t_start=$(date +%s)

banner() { printf '\n==== %s  (t=%ss)\n' "$*" "$(( $(date +%s) - t_start ))"; }

# step NAME SECONDS CMD... : runs CMD under a timeout, records a failure. The
# timeout is cut to what is left of BUDGET; with under 10 s left the step is
# not run (and counts as failed).
step() {
    local name=$1 secs=$2; shift 2
    banner "$name"
    local left=$(( BUDGET - ($(date +%s) - t_start) ))
    if [ "$left" -lt 10 ]; then
        echo "gpu-check: FAILED: $name not run: the ${BUDGET}s budget is spent"
        failed+=("$name (no time)")
        return 1
    fi
    [ "$secs" -gt "$left" ] && secs=$left
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
    for f in "$PROFILE" "$CLUSTER" "$PLAN" "$RUN_PROFILE" profiles/gpt2-small.$GPU_TAG.profile.json \
             out/test_backend_cuda.log out/nvidia-smi.txt \
             out/mprun-*.json out/mprun-*.txt out/gpu-*.plan.json; do
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

# ---------------------------------------------------------------- build dependencies
# The GPU machine may have no network: say exactly which -dev packages are
# missing instead of letting apt-get (make deps) or the compiler fail later.
banner "build dependencies"
missing=()
need_header() {   # PACKAGE HEADER [LIB]
    local pkg=$1 hdr=$2 lib=${3:-}
    if command -v dpkg-query >/dev/null 2>&1 &&
       dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        return 0
    fi
    if printf '#include <%s>\nint main(void){return 0;}\n' "$hdr" |
       ${CC:-cc} -x c - -o /dev/null ${lib:+-l$lib} >/dev/null 2>&1; then
        return 0
    fi
    missing+=("$pkg")
}
need_header libjansson-dev jansson.h jansson
need_header libgsl-dev gsl/gsl_math.h gsl
need_header libcunit1-dev CUnit/CUnit.h cunit
need_header libopenblas-dev cblas.h openblas
if [ ${#missing[@]} -gt 0 ]; then
    echo "gpu-check: FAILED: missing build packages: ${missing[*]}"
    echo "gpu-check: install them with: apt-get install -y ${missing[*]}   (no network here? copy the .deb files in)"
    failed+=("build dependencies")
    finish
fi
echo "jansson, gsl, cunit, openblas: found"
command -v mpirun >/dev/null 2>&1 && echo "mpirun: $(mpirun --version 2>&1 | head -1)" || echo "mpirun: not found (the MPI step is skipped)"

# ---------------------------------------------------------------- build
# make all, not make test: `make test` runs make deps (apt-get), which needs a network.
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

if [ -f "$RUN_MODEL" ]; then
    step "GPU profile of $RUN_MODEL (for mprun's prediction)" 60 \
        bin/mpprof --backend cuda --model "$RUN_MODEL" --batch 4,8,16 --repeat 5 -o "$RUN_PROFILE" || true
fi

# ---------------------------------------------------------------- mprun on the GPU
# Plans: the whole model on GPU 0, and two stages both on GPU 0 (the plan names
# devices 0 and 1; MPKIT_GPUS=0,0 maps both to GPU 0; threads transport).
# plan_json FILE GB B "first-last[,first-last]" — writes a 1f1b training plan.
plan_json() {
    local file=$1 gb=$2 b=$3 ranges=$4 stages="" d=0 r
    for r in ${ranges//,/ }; do
        stages+="${stages:+,}{\"layers\":[${r%-*},${r#*-}],\"device\":$d}"
        d=$((d + 1))
    done
    printf '{"format":"mpplan-plan/1","mode":"train","schedule":"1f1b","chunks_per_device":1,"global_batch":%s,"microbatch_size":%s,"stages":[%s]}\n' \
        "$gb" "$b" "$stages" > "$file"
}
# losses FILE: the "step N loss X" values of an mprun stdout, one a line.
# (Both are exported: step runs them under timeout through bash -c.)
losses() { awk '$1 == "step" && $3 == "loss" { print $4 }' "$1"; }
# compare_losses A B RTOL: every step's loss agrees within RTOL (relative).
compare_losses() {
    paste <(losses "$1") <(losses "$2") | awk -v tol="$3" -v a="$1" -v b="$2" '
        { n++; d = $1 - $2; if (d < 0) d = -d; s = $1 < 0 ? -$1 : $1; r = d / (s + 1e-12);
          if (r > max) max = r; if (r > tol) bad++ }
        END { printf "%s vs %s: %d steps, max relative loss difference %.3e (tolerance %g)\n", a, b, n, max, tol;
              exit (n == 0 || bad > 0) }'
}
export -f losses compare_losses

if [ -f "$RUN_MODEL" ]; then
    # the layer count, from mprun's own check of a 1-layer plan ("... (26 layers)")
    plan_json out/gpu-probe.plan.json 8 8 "0-0"
    nl=$(bin/mprun out/gpu-probe.plan.json --model "$RUN_MODEL" --steps 1 2>&1 | sed -n 's/.*(\([0-9][0-9]*\) layers).*/\1/p' | head -1)
    nl=${nl:-26}
    echo "$RUN_MODEL: $nl layers"
    half=$((nl / 2))
    plan_json out/gpu-1stage.plan.json 64 8 "0-$((nl - 1))"
    plan_json out/gpu-2stage.plan.json 64 8 "0-$((half - 1)),$half-$((nl - 1))"
    prof=(); [ -f "$RUN_PROFILE" ] && prof=(--profile "$RUN_PROFILE")
    ok1=0; ok2=0
    step "mprun 1 stage on GPU 0 ($run_base)" 60 bash -o pipefail -c \
        "bin/mprun out/gpu-1stage.plan.json --model '$RUN_MODEL' --steps 8 --backend cuda ${prof[*]} --report out/mprun-1stage.$GPU_TAG.json | tee out/mprun-1stage.$GPU_TAG.txt" && ok1=1 || true
    step "mprun 2 stages on GPU 0 ($run_base)" 60 bash -o pipefail -c \
        "MPKIT_GPUS=0,0 bin/mprun out/gpu-2stage.plan.json --model '$RUN_MODEL' --steps 8 --backend cuda ${prof[*]} --report out/mprun-2stage.$GPU_TAG.json | tee out/mprun-2stage.$GPU_TAG.txt" && ok2=1 || true
    if [ $ok1 = 1 ] && [ $ok2 = 1 ]; then
        step "GPU 2-stage vs 1-stage losses" 10 bash -c "compare_losses out/mprun-1stage.$GPU_TAG.txt out/mprun-2stage.$GPU_TAG.txt 1e-5" || true
        grep -h '^checksum' out/mprun-1stage.$GPU_TAG.txt out/mprun-2stage.$GPU_TAG.txt || true
    fi
else
    banner "mprun on the GPU"
    echo "gpu-check: FAILED: model spec $RUN_MODEL does not exist"
    failed+=("mprun model missing")
fi

# CPU vs GPU on a small model: the same 2-stage plan, losses within 1e-3.
SMALL=profiles/tiny.model.json
if [ -f "$SMALL" ]; then
    plan_json out/gpu-small.plan.json 32 8 "0-4,5-9"
    okc=0; okg=0; okm=0
    step "mprun small model on CPU" 60 bash -o pipefail -c \
        "bin/mprun out/gpu-small.plan.json --model $SMALL --steps 20 --optimizer adam --lr 0.003 --no-pin --report out/mprun-small-cpu.json | tee out/mprun-small-cpu.txt" && okc=1 || true
    step "mprun small model on GPU 0 (2 stages)" 60 bash -o pipefail -c \
        "MPKIT_GPUS=0,0 bin/mprun out/gpu-small.plan.json --model $SMALL --steps 20 --optimizer adam --lr 0.003 --backend cuda --report out/mprun-small-gpu.json | tee out/mprun-small-gpu.txt" && okg=1 || true
    if [ $okc = 1 ] && [ $okg = 1 ]; then
        step "CPU vs GPU losses (small model)" 10 bash -c "compare_losses out/mprun-small-cpu.txt out/mprun-small-gpu.txt 1e-3" || true
        grep -h '^checksum' out/mprun-small-cpu.txt out/mprun-small-gpu.txt || true
    fi
    # Data parallelism on the GPU: 2 replicas of one stage, both on GPU 0
    # (--gpus 0,0; threads transport; the all-reduce staged through host,
    # added on the device): the losses of the same plan on CPU within 1e-3.
    printf '{"format":"mpplan-plan/1","mode":"train","schedule":"gpipe","data_parallel":2,"global_batch":32,"microbatch_size":8,"stages":[{"layers":[0,9],"device":0}]}\n' \
        > out/gpu-small-dp2.plan.json
    okdc=0; okdg=0
    step "mprun small model D=2 on CPU" 60 bash -o pipefail -c \
        "bin/mprun out/gpu-small-dp2.plan.json --model $SMALL --steps 20 --optimizer adam --lr 0.003 --no-pin | tee out/mprun-small-dp2-cpu.txt" && okdc=1 || true
    step "mprun small model D=2 on GPU 0 (2 replicas, --gpus 0,0)" 60 bash -o pipefail -c \
        "bin/mprun out/gpu-small-dp2.plan.json --model $SMALL --steps 20 --optimizer adam --lr 0.003 --backend cuda --gpus 0,0 | tee out/mprun-small-dp2-gpu.txt" && okdg=1 || true
    if [ $okdc = 1 ] && [ $okdg = 1 ]; then
        step "CPU vs GPU losses (small model, D=2)" 10 bash -c "compare_losses out/mprun-small-dp2-cpu.txt out/mprun-small-dp2-gpu.txt 1e-3" || true
    fi
    # Serving on the GPU: a 2-stage serving plan with both stages on GPU 0
    # (--gpus 0,0), through the same runner as training.
    printf '{"format":"mpplan-plan/1","mode":"serve","schedule":"gpipe","chunks_per_device":1,"global_batch":8,"microbatch_size":8,"num_microbatches":1,"max_batch":8,"max_wait_ms":2,"stages":[{"layers":[0,4],"device":0},{"layers":[5,9],"device":1}]}\n' \
        > out/gpu-small-serve.plan.json
    step "mprun --serve small model on GPU 0 (2 stages, --gpus 0,0)" 60 bash -o pipefail -c \
        "bin/mprun out/gpu-small-serve.plan.json --model $SMALL --serve --rate 200 --duration 2 --slo-ms 50 --backend cuda --gpus 0,0 --checksum --report out/mprun-serve-gpu.json | tee out/mprun-serve-gpu.txt" || true
    # Two MPI ranks on one GPU: the MPI transport with host staging (NCCL
    # allows one rank per GPU, so it is not used here).
    if command -v mpirun >/dev/null 2>&1 && mpirun --version 2>&1 | grep -qi 'open mpi'; then
        step "mpirun -np 2, both ranks on GPU 0" 60 bash -o pipefail -c \
            "mpirun -np 2 --oversubscribe --allow-run-as-root -x MPKIT_GPUS=0,0 bin/mprun out/gpu-small.plan.json --model $SMALL --steps 20 --optimizer adam --lr 0.003 --backend cuda | tee out/mprun-small-mpi.txt" && okm=1 || true
        if [ $okm = 1 ] && [ $okg = 1 ]; then
            step "MPI vs threads losses on GPU" 10 bash -c "compare_losses out/mprun-small-gpu.txt out/mprun-small-mpi.txt 1e-5" || true
        fi
    else
        echo "gpu-check: no Open MPI mpirun: the MPI-on-GPU step is skipped"
    fi
fi

# ---------------------------------------------------------------- gpt2-small
# A token model on the GPU: profile gpt2-small (27 layers: embedding, 12 x
# attention + residual_mlp, layernorm, 50257-way head), train a 2-stage plan of
# it with both stages on GPU 0, and compare its losses with the same plan on
# the CPU (2 steps, b=1 x m=2: the CPU needs ~1 TFLOP per sequence).
GPT=${GPT:-profiles/gpt2-small.model.json}
if [ -f "$GPT" ]; then
    gpt_base=$(basename "$GPT" .model.json)
    GPT_PROFILE=profiles/$gpt_base.$GPU_TAG.profile.json
    step "GPU profile of $GPT" 120 \
        bin/mpprof --backend cuda --model "$GPT" --batch 1,2,4 --repeat 5 -o "$GPT_PROFILE" || true
    printf '{"format":"mpplan-plan/1","mode":"train","schedule":"1f1b","chunks_per_device":1,"global_batch":2,"microbatch_size":1,"stages":[{"layers":[0,12],"device":0},{"layers":[13,26],"device":1}]}\n' \
        > out/gpu-gpt2.plan.json
    gprof=(); [ -f "$GPT_PROFILE" ] && gprof=(--profile "$GPT_PROFILE")
    okg2=0; okc2=0
    step "mprun $gpt_base on GPU 0 (2 stages)" 90 bash -o pipefail -c \
        "MPKIT_GPUS=0,0 bin/mprun out/gpu-gpt2.plan.json --model '$GPT' --steps 2 --warmup 0 --backend cuda ${gprof[*]} --report out/mprun-gpt2-gpu.json | tee out/mprun-gpt2-gpu.txt" && okg2=1 || true
    step "mprun $gpt_base on CPU (2 stages)" 150 bash -o pipefail -c \
        "OPENBLAS_NUM_THREADS=1 bin/mprun out/gpu-gpt2.plan.json --model '$GPT' --steps 2 --warmup 0 --report out/mprun-gpt2-cpu.json | tee out/mprun-gpt2-cpu.txt" && okc2=1 || true
    if [ $okg2 = 1 ] && [ $okc2 = 1 ]; then
        step "CPU vs GPU losses ($gpt_base)" 10 bash -c "compare_losses out/mprun-gpt2-cpu.txt out/mprun-gpt2-gpu.txt 1e-3" || true
    fi
else
    banner "gpt2-small"
    echo "gpu-check: FAILED: model spec $GPT does not exist"
    failed+=("gpt2-small model missing")
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
