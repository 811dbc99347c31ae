#!/usr/bin/env bash
# gpt_compare.sh — the README's gpt-mini plan comparison: for 2 and 4 devices,
# the pipeline (--data-parallel 1) mpplan picks (any schedule), its best 1f1b plan, and the uniform
# split (equal blocks per stage, the embedding with the first stage, the final
# layernorm and the head with the last; 1f1b with the same micro-batch size and
# count as mpplan's 1f1b plan, predicted with mpplan --evaluate), with the
# predicted iteration time and each stage's peak memory; on 2 devices every
# plan is also run with mprun (threads, one core per stage) and measured.
# Prints a Markdown table (the README pastes it) and writes the plans and
# reports under $OUT.
# Env: MPKIT_BIN (bin), PROFILE (profiles/gpt-mini.cpu.profile.json), MODEL
# (profiles/gpt-mini.model.json), GB (global batch, 8), MEMORY (8GiB), STEPS
# (6), MEASURE (1; 0: predictions only), OUT (out/gpt-compare), PROFILE_NOW
# (0; 1: first re-measure PROFILE with mpprof --batch 1,2,4,8 on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MPKIT_BIN:-bin}
PROFILE=${PROFILE:-profiles/gpt-mini.cpu.profile.json}
MODEL=${MODEL:-profiles/gpt-mini.model.json}
GB=${GB:-8}
MEMORY=${MEMORY:-8GiB}
STEPS=${STEPS:-6}
MEASURE=${MEASURE:-1}
OUT=${OUT:-out/gpt-compare}
mkdir -p "$OUT"
export OPENBLAS_NUM_THREADS=1
[ -f "$MODEL" ] || { echo "gpt_compare.sh: model spec $MODEL does not exist" >&2; exit 2; }
if [ "${PROFILE_NOW:-0}" = 1 ]; then
    echo "# gpt_compare: profiling $MODEL into $PROFILE" >&2
    "$BIN/mpprof" --model "$MODEL" --batch 1,2,4,8 --quiet -o "$PROFILE" >/dev/null
fi
[ -f "$PROFILE" ] || { echo "gpt_compare.sh: profile $PROFILE does not exist" >&2; exit 2; }

# The model's layers: embedding first, then blocks of (attention, residual_mlp),
# then the tail (layernorm, head). From mprun's own count of a 1-layer plan.
nl=$(jq '.layers | length' "$PROFILE")
nblocks=$(jq '[.layers[].name | select(endswith(".attention"))] | length' "$PROFILE")
per_block=2
tail_first=$((1 + nblocks * per_block))   # first layer after the blocks

# uniform K: stages of nblocks/K blocks (the remainder to the first stages)
uniform_stages() {
    local K=$1 s first=0 last blocks q=$((nblocks / $1)) r=$((nblocks % $1)) out=""
    for ((s = 0; s < K; s++)); do
        blocks=$((q + (s < r ? 1 : 0)))
        last=$((first + blocks * per_block - 1))
        [ $s = 0 ] && last=$((last + 1))            # the embedding (layer 0) joins the first stage
        [ $s = $((K - 1)) ] && last=$((nl - 1))     # the tail joins the last
        out+="${out:+,}{\"layers\":[$first,$last],\"device\":$s,\"recompute\":false}"
        first=$((last + 1))
    done
    echo "$out"
}

layers_of() { jq -r '[.stages[] | "\(.layers[0])-\(.layers[1])"] | join(", ")' "$1"; }
mem_of() { jq -r '[.predicted.peak_memory_bytes[] | . / 1048576 | floor | tostring] | join(" / ")' "$1"; }

measure() {  # measure PLAN NAME: mprun's median iteration (ms)
    "$BIN/mprun" "$1" --model "$MODEL" --steps "$STEPS" --warmup 1 --quiet --profile "$PROFILE" \
        --report "$OUT/$2.report.json" >/dev/null
    jq -r '.iteration_ms * 10 | round / 10' "$OUT/$2.report.json"
}

row() {  # row K NAME PLAN
    local K=$1 name=$2 plan=$3 meas="-"
    if [ "$MEASURE" = 1 ] && [ "$K" -le "$(nproc)" ]; then meas=$(measure "$plan" "$name"); fi
    printf '| %s | %s | %s | b=%s x m=%s | %s | %.1f | %s | %s |\n' "$K" "$name" \
        "$(jq -r 'if .schedule == "interleaved" then "interleaved v=\(.chunks_per_device)" else .schedule end' "$plan")" \
        "$(jq -r .microbatch_size "$plan")" "$(jq -r .num_microbatches "$plan")" "$(layers_of "$plan")" \
        "$(jq -r .predicted.iteration_ms "$plan")" "$(mem_of "$plan")" "$meas"
}

echo "# gpt_compare: $MODEL, profile $PROFILE, global batch $GB, $MEMORY per device" >&2
echo "| devices | plan | schedule | micro-batches | layers per stage | predicted ms | peak MiB per device | measured ms |"
echo "|---|---|---|---|---|---|---|---|"
for K in 2 4; do
    "$BIN/mpplan" --profile "$PROFILE" --devices "$K" --memory "$MEMORY" --global-batch "$GB" --data-parallel 1 \
        --json -o "$OUT/best.$K.json" >/dev/null 2>&1
    "$BIN/mpplan" --profile "$PROFILE" --devices "$K" --memory "$MEMORY" --global-batch "$GB" --data-parallel 1 --schedule 1f1b \
        --json -o "$OUT/best1f1b.$K.json" >/dev/null 2>&1
    jq --argjson st "[$(uniform_stages "$K")]" 'del(.predicted) | .stages = $st' "$OUT/best1f1b.$K.json" \
        > "$OUT/uniform.$K.in.json"
    "$BIN/mpplan" --evaluate "$OUT/uniform.$K.in.json" --profile "$PROFILE" --devices "$K" --memory "$MEMORY" \
        --json -o "$OUT/uniform.$K.json" >/dev/null 2>&1
    row "$K" "mpplan" "$OUT/best.$K.json"
    row "$K" "mpplan, 1f1b" "$OUT/best1f1b.$K.json"
    row "$K" "uniform, 1f1b" "$OUT/uniform.$K.json"
done
echo "# gpt_compare: plans and reports in $OUT$([ "$MEASURE" = 1 ] && echo "; measured: mprun --steps $STEPS, median after 1 warm-up step, one core per stage")" >&2
