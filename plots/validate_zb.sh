#!/usr/bin/env bash
# validate_zb.sh — the measured gain of the zero-bubble schedules (run by
# validate.sh; alone: `bash plots/validate_zb.sh`): one 2-stage plan (the
# best 2-stage 1F1B split for micro-batch B by mpplan --evaluate; split, b
# and m then fixed) run as
# 1f1b, zb-h1 and zb-h2 in alternation, REPS rounds of STEPS steps, each
# round right after a fresh profile of its micro-batch size on 2 busy cores;
# prints per schedule the medians of predicted and measured iteration time
# and the predicted and measured gain over 1F1B (1f1b_ms / zb_ms - 1).
# Writes out/validate_zb.json: [{schedule, predicted_ms, measured_ms,
# predicted_gain_pct, measured_gain_pct, runs_ms}].
# Env: MPKIT_BIN (bin), OUT (out), MODEL, GB (64), B (8), STEPS (40), REPS (9).
set -euo pipefail
BIN=${MPKIT_BIN:-bin}
MODEL=${MODEL:-profiles/demo.model.json}
GB=${GB:-64}
B=${B:-8}
STEPS=${STEPS:-40}
REPS=${REPS:-9}
OUT=${OUT:-out}
WORK=$OUT/validate
mkdir -p "$WORK"
export OPENBLAS_NUM_THREADS=1
profile() {  # profile OUT BATCHES THREADS
    "$BIN/mpprof" --model "$MODEL" --batch "$2" --device 0 --threads "$3" --repeat 30 --quiet -o "$1" >/dev/null
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

[ -f "$WORK/cluster.json" ] || "$BIN/mpprof" --links --sizes 4K:4M --quiet -o "$WORK/cluster.json" >/dev/null
BW=$(jq -r '.link.bandwidth' "$WORK/cluster.json")
LAT=$(jq -r '.link.latency' "$WORK/cluster.json")
profile "$WORK/zb.profile.json" "$B" 2
base="$WORK/zb-base.plan.json"
L=$(jq '.layers | length' "$WORK/zb.profile.json")
best=""
for ((k = 0; k + 1 < L; k++)); do   # the best 2-stage 1F1B split (mpplan --evaluate of each)
    cand="$WORK/zb-cand.plan.json"
    printf '{"format":"mpplan-plan/1","mode":"train","schedule":"1f1b","global_batch":%d,"microbatch_size":%d,"stages":[{"layers":[0,%d],"device":0},{"layers":[%d,%d],"device":1}]}\n' \
        "$GB" "$B" "$k" "$((k + 1))" "$((L - 1))" > "$cand"
    t=$("$BIN/mpplan" --evaluate "$cand" --profile "$WORK/zb.profile.json" --devices 2 --memory 8GiB --bandwidth "$BW" \
        --latency "$LAT" --json 2>/dev/null | jq -r .predicted.iteration_ms) || continue
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$t; cp "$cand" "$base"; fi
done
[ -n "$best" ] || { echo "# validate_zb: no 2-stage plan evaluates" >&2; exit 0; }
SCHEDS="1f1b zb-h1 zb-h2"
for s in $SCHEDS; do   # the same plan: split, b, m; only the schedule differs
    jq --arg s "$s" '.schedule = $s | del(.predicted)' "$base" > "$WORK/zb-$s.plan.json"
done
echo "# validate_zb: $(jq -c '[.stages[].layers]' "$base") b=$B m=$((GB / B)): $SCHEDS alternating, $REPS rounds of $STEPS steps" >&2
for ((rep = 1; rep <= REPS; rep++)); do
    prof="$WORK/zb.$rep.profile.json"
    profile "$prof" "$B" 2
    for s in $SCHEDS; do
        "$BIN/mprun" "$WORK/zb-$s.plan.json" --model "$MODEL" --steps "$STEPS" --warmup 5 --quiet --profile "$prof" \
            --cluster "$WORK/cluster.json" --report "$WORK/zb-$s.$rep.report.json" >/dev/null
    done
done
rows=()
printf '%-8s %12s %12s %15s %14s  %s\n' schedule predicted_ms measured_ms predicted_gain measured_gain runs_ms
p0=""; m0=""
for s in $SCHEDS; do
    reps=()
    for ((rep = 1; rep <= REPS; rep++)); do reps+=("$WORK/zb-$s.$rep.report.json"); done
    pred=$(jq -r .predicted.iteration_ms "${reps[@]}" | median)
    meas=$(jq -r .iteration_ms "${reps[@]}" | median)
    runs=$(jq -r '.iteration_ms * 10 | round / 10' "${reps[@]}" | paste -sd, -)
    [ -n "$p0" ] || { p0=$pred; m0=$meas; }
    pg=$(awk -v a="$p0" -v b="$pred" 'BEGIN {printf "%.1f", 100 * (a / b - 1)}')
    mg=$(awk -v a="$m0" -v b="$meas" 'BEGIN {printf "%.1f", 100 * (a / b - 1)}')
    printf '%-8s %12.3f %12.3f %+14.1f%% %+13.1f%%  %s\n' "$s" "$pred" "$meas" "$pg" "$mg" "$runs"
    rows+=("{\"schedule\":\"$s\",\"predicted_ms\":$pred,\"measured_ms\":$meas,\"predicted_gain_pct\":$pg,\"measured_gain_pct\":$mg,\"runs_ms\":[$runs]}")
done
echo "[$(IFS=,; echo "${rows[*]}")]" | jq . > "$OUT/validate_zb.json.tmp" && mv "$OUT/validate_zb.json.tmp" "$OUT/validate_zb.json"
echo "# wrote $OUT/validate_zb.json"
