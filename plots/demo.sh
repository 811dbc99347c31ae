#!/usr/bin/env bash
# demo.sh — `make demo`: the whole mpkit loop on this machine's CPUs.
#   profile the demo model and the links (mpprof), plan it for the cores here
#   (mpplan), train it (mprun), plan and serve it at a few loads (mpplan --serve,
#   mprun --serve), validate predicted against measured (make validate's
#   script), and draw every picture (mpplot) into out/.
# Env: MPKIT_BIN (default bin), MODEL (default profiles/demo.model.json),
#      GB (global batch, 64), STEPS (training steps, 200), OUT (out).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MPKIT_BIN:-bin}
MODEL=${MODEL:-profiles/demo.model.json}
GB=${GB:-64}
STEPS=${STEPS:-200}
OUT=${OUT:-out}
SLO_MS=${SLO_MS:-25}
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
t_start=$(date +%s)
n=0
step() { n=$((n + 1)); printf '\n== [%d/8] %s  (%ds)\n' "$n" "$1" $(( $(date +%s) - t_start )); }
num() { jq -r "$1" "$2"; }

step "profile $MODEL on this CPU (mpprof)"
"$BIN/mpprof" --model "$MODEL" --batch 1,2,4,8,16,32 --device 0 --quiet -o "$OUT/model.profile.json" | tail -n 4
"$BIN/mpprof" --links --sizes 4K:4M --quiet -o "$OUT/cpu.cluster.json" | tail -n 2

step "plan training for $(nproc) cores, global batch $GB (mpplan)"
"$BIN/mpplan" --profile "$OUT/model.profile.json" --cluster "$OUT/cpu.cluster.json" --global-batch "$GB" \
    --top 3 -o "$OUT/plan.json" --trace "$OUT/predicted.trace.json"

step "train the plan for $STEPS steps (mprun)"
"$BIN/mprun" "$OUT/plan.json" --model "$MODEL" --steps "$STEPS" --warmup 5 --quiet \
    --profile "$OUT/model.profile.json" --cluster "$OUT/cpu.cluster.json" \
    --report "$OUT/train.report.json" --trace "$OUT/measured.trace.json"
echo "loss: step 1 $(num '.losses[0]' "$OUT/train.report.json") -> step $STEPS $(num '.losses[-1]' "$OUT/train.report.json")"

step "plan serving under a ${SLO_MS} ms SLO (mpplan --serve)"
"$BIN/mpplan" --serve --profile "$OUT/model.profile.json" --cluster "$OUT/cpu.cluster.json" --rate 100 \
    --slo-ms "$SLO_MS" --max-batch 16 --json -o "$OUT/serve.plan.json" > /dev/null
cap=$(num '.predicted.capacity_rps' "$OUT/serve.plan.json")
printf 'serving plan: %s stages, max batch %s, max wait %s ms, predicted capacity %.0f requests/s\n' \
    "$(num '.stages | length' "$OUT/serve.plan.json")" "$(num '.max_batch' "$OUT/serve.plan.json")" \
    "$(num '.max_wait_ms' "$OUT/serve.plan.json")" "$cap"
lo=$(awk -v c="$cap" 'BEGIN { printf "%.0f", c * 0.1 }')
hi=$(awk -v c="$cap" 'BEGIN { printf "%.0f", c * 1.1 }')
"$BIN/mpplan" --serve --evaluate "$OUT/serve.plan.json" --profile "$OUT/model.profile.json" \
    --cluster "$OUT/cpu.cluster.json" --rates "$lo:$hi:12" --slo-ms "$SLO_MS" --json > "$OUT/latency.json"

step "serve at 30%, 60% and 90% of capacity (mprun --serve)"
measured=()
for pct in 30 60 90; do
    rate=$(awk -v c="$cap" -v p="$pct" 'BEGIN { printf "%.0f", c * p / 100 }')
    "$BIN/mprun" "$OUT/serve.plan.json" --model "$MODEL" --serve --rate "$rate" --duration 2 \
        --slo-ms "$SLO_MS" --profile "$OUT/model.profile.json" --report "$OUT/serve-$pct.report.json" > /dev/null
    printf '  %3d%% load: %6s req/s offered, p50 %6.2f ms, p99 %6.2f ms, SLO attainment %5.1f%%\n' "$pct" "$rate" \
        "$(num '.p50_ms' "$OUT/serve-$pct.report.json")" "$(num '.p99_ms' "$OUT/serve-$pct.report.json")" \
        "$(num '.slo_attainment * 100' "$OUT/serve-$pct.report.json")"
    measured+=(--measured "$OUT/serve-$pct.report.json")
done

step "validate predicted against measured (plots/validate.sh)"
MODEL="$MODEL" STEPS=20 REPS=1 REPEATS=1 LOADS="0.3 0.6 0.9" DURATION=1s "$(dirname "$0")/validate.sh"

step "draw the pictures (mpplot)"
"$BIN/mpplot" sweep --profile "$OUT/model.profile.json" --cluster "$OUT/cpu.cluster.json" --global-batch "$GB" \
    --measured "$OUT/train.report.json" -o "$OUT/sweep.png"
"$BIN/mpplot" timeline "$OUT/predicted.trace.json" "$OUT/measured.trace.json" --names predicted,measured \
    -o "$OUT/timeline.png"
"$BIN/mpplot" latency "$OUT/latency.json" "${measured[@]}" -o "$OUT/latency.png"
"$BIN/mpplot" accuracy "$OUT/validate.json" -o "$OUT/accuracy.png"
"$BIN/mpplot" memory "$OUT/plan.json" --profile "$OUT/model.profile.json" --cluster "$OUT/cpu.cluster.json" \
    -o "$OUT/memory.png"

step "done"
cat <<EOF
Profiled $MODEL, planned it for this machine, trained it ($STEPS steps), served it at three loads
and checked the predictions. In $OUT/:
  model.profile.json cpu.cluster.json   what mpprof measured
  plan.json serve.plan.json             what mpplan chose
  train.report.json serve-*.report.json what mprun measured
  sweep.png      throughput against micro-batch size, per schedule and stage count
  timeline.png   predicted (top) and measured (bottom) pipeline timelines
  latency.png    p50/p99 against offered load, with the SLO and measured points
  accuracy.png   predicted against measured iteration time
  memory.png     each stage's peak memory against its device
Total $(( $(date +%s) - t_start )) s.
EOF
