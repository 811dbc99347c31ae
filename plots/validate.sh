#!/usr/bin/env bash
# validate.sh — `make validate`: profile profiles/demo.model.json on this
# machine (mpprof), plan several configurations (stage counts 1/2, micro-batch
# sizes, schedules) with mpplan, run each with mprun --profile, and print
# predicted vs measured iteration time with the mean and max |error|.
# The machine's speed drifts (on a shared VM by up to 2x for seconds at a
# time: docs/profiling.md), so a profile is a snapshot of a moving target and
# the prediction for a run is best made from a profile taken right before it:
# each run is paired with a profile of its micro-batch size taken just before
# (30 rounds, so that a short slow spell of the machine does not decide the
# medians) on as many cores as the plan keeps busy (mpprof --threads; one core alone
# runs faster than two busy at once, by 0-50% on the test VM depending on
# what the host is doing), with mpprof's default method otherwise (rounds of
# training steps through the layers, rotated buffers); its prediction comes from that
# profile, and the table shows, per configuration over REPS rounds (each
# round runs every configuration once), the medians of predicted, measured
# and the per-run error.
# Writes out/validate.json: [{config, predicted_ms, measured_ms, error_pct,
# replay_error_pct, ops_pct, runs_ms}] (ops_pct: how much longer the run's
# ops took than its profile says, through the schedule: replay vs
# prediction).
# Env: MPKIT_BIN (default bin), OUT (default out), MODEL, GB (global batch, 64), STEPS (40), REPS (9),
# SERVE (1; 0 skips the serving validation at the end), ZB (1; 0 skips the
# measured zero-bubble comparison, plots/validate_zb.sh), DP (1; 0 skips
# plots/validate_dp.sh), CONFIGS (devices:schedule:microbatch ...),
# PLAN_BATCHES (the planning profile's micro-batch sizes), GPT (1 when MODEL is not given: the
# token-model rows of GPT_MODEL, default profiles/gpt-mini.model.json; GPT_STEPS 8, GPT_REPS 3).
set -euo pipefail
BIN=${MPKIT_BIN:-bin}
GPT=${GPT:-$([ -n "${MODEL:-}" ] && echo 0 || echo 1)}
MODEL=${MODEL:-profiles/demo.model.json}
GB=${GB:-64}
STEPS=${STEPS:-40}
REPS=${REPS:-9}
OUT=${OUT:-out}
WORK=$OUT/validate
mkdir -p "$WORK"
export OPENBLAS_NUM_THREADS=1

# CPU ticks: busy and total over all CPUs (/proc/stat), and this script's
# own (its waited-for children: mpprof, mpplan, mprun), to tell how much of
# the machine other processes took while we measured.
cpu_ticks() { awk 'NR == 1 {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
own_ticks() { awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat; }
others_pct() {  # others_pct BUSY0 TOTAL0 OWN0: percent of all CPU time used by other processes since then
    local now own
    now=($(cpu_ticks)); own=$(own_ticks)
    awk -v b="$(( now[0] - $1 ))" -v t="$(( now[1] - $2 ))" -v o="$(( own - $3 ))" \
        'BEGIN {x = t > 0 ? 100 * (b - o) / t : 0; printf "%.0f", x < 0 ? 0 : x}'
}
start=($(cpu_ticks)); own0=$(own_ticks)
sleep 1
b=$(others_pct "${start[0]}" "${start[1]}" "$own0")
if [ "$b" -gt 10 ]; then
    echo "# validate: WARNING: the CPUs are ${b}% busy before we start; other processes will skew profile and runs" >&2
fi
start=($(cpu_ticks)); own0=$(own_ticks)
profile() {  # profile OUT BATCHES [THREADS]: the model on this machine now (default: every core busy)
    "$BIN/mpprof" --model "$MODEL" --batch "$2" --device 0 ${3:+--threads "$3" --repeat 30} --quiet -o "$1" >/dev/null
}
echo "# validate: profiling $MODEL and the links on this machine" >&2
PLAN_BATCHES=${PLAN_BATCHES:-1,2,4,8,16,32}
profile "$WORK/profile.json" "$PLAN_BATCHES"        # for planning: every core busy...
profile "$WORK/profile.solo.json" "$PLAN_BATCHES" 1  # ...and one (mpplan times each plan with its regime's)
"$BIN/mpprof" --links --sizes 4K:4M --quiet -o "$WORK/cluster.json" >/dev/null
BW=$(jq -r '.link.bandwidth' "$WORK/cluster.json")
LAT=$(jq -r '.link.latency' "$WORK/cluster.json")

# devices schedule microbatch
CONFIGS=${CONFIGS:-"1:gpipe:8 1:gpipe:16 2:gpipe:8 2:1f1b:8 2:1f1b:4 2:1f1b:16 2:interleaved:8 2:zb-h1:8 2:zb-h2:8 2:zb-v:8"}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

names=()
for c in $CONFIGS; do
    IFS=: read -r K s b <<<"$c"
    name="${K}dev-$s-b$b"
    plan="$WORK/$name.plan.json"
    "$BIN/mpplan" --profile "$WORK/profile.json" --profile "$WORK/profile.solo.json" --devices "$K" --memory 8GiB --bandwidth "$BW" --latency "$LAT" \
        --data-parallel 1 --global-batch "$GB" --microbatch "$b" --schedule "$s" --recompute off --json -o "$plan" >/dev/null \
        || { echo "# $name: mpplan found no plan" >&2; continue; }
    names+=("$name")
done
echo "# validate: ${#names[@]} configurations x $REPS rounds of $STEPS steps, each run right after its own profile" >&2
for ((rep = 1; rep <= REPS; rep++)); do
    for name in "${names[@]}"; do
        prof="$WORK/$name.$rep.profile.json"
        profile "$prof" "$(jq .microbatch_size "$WORK/$name.plan.json")" "$(jq '[.stages[].device] | unique | length' "$WORK/$name.plan.json")"
        "$BIN/mprun" "$WORK/$name.plan.json" --model "$MODEL" --steps "$STEPS" --warmup 5 --quiet --profile "$prof" \
            --cluster "$WORK/cluster.json" --report "$WORK/$name.$rep.report.json" --trace "$WORK/$name.trace.json" >/dev/null
    done
done

rows=()
printf '%-26s %7s %12s %12s %8s %11s %7s  %s\n' config stages predicted_ms measured_ms error_% replay_err_% ops_% runs_ms
for name in "${names[@]}"; do
    reps=()
    for ((rep = 1; rep <= REPS; rep++)); do reps+=("$WORK/$name.$rep.report.json"); done
    cp "${reps[0]}" "$WORK/$name.report.json"
    stages=$(jq -r .num_stages "${reps[0]}")
    pred=$(jq -r .predicted.iteration_ms "${reps[@]}" | median)
    meas=$(jq -r .iteration_ms "${reps[@]}" | median)
    rerr=$(jq -r '.replay.error_pct // 0' "${reps[@]}" | median)
    runs=$(jq -r '.iteration_ms * 10 | round / 10' "${reps[@]}" | paste -sd, -)
    ops=$(jq -r '100 * (.replay.iteration_ms - .predicted.iteration_ms) / .predicted.iteration_ms' "${reps[@]}" | median)
    err=$(jq -r .predicted.error_pct "${reps[@]}" | median)
    busy=$(jq -r '.others_pct // 0' "${reps[@]}" | median)
    printf '%-26s %7s %12.3f %12.3f %+7.1f%% %+10.1f%% %+6.1f%%  %s\n' "$name" "$stages" "$pred" "$meas" "$err" "$rerr" "$ops" "$runs"
    rows+=("{\"config\":\"$name\",\"stages\":$stages,\"predicted_ms\":$pred,\"measured_ms\":$meas,\"error_pct\":$err,\"replay_error_pct\":$rerr,\"ops_pct\":$ops,\"runs_ms\":[$runs],\"others_pct\":$busy}")
done
json="[$(IFS=,; echo "${rows[*]}")]"
echo "$json" | jq . > "$OUT/validate.json.tmp" && mv "$OUT/validate.json.tmp" "$OUT/validate.json"
jq -r '"# mean |error| \(([.[].error_pct | fabs] | add / length * 10 | round / 10))%, max |error| \(([.[].error_pct | fabs] | max * 10 | round / 10))% over \(length) configurations",
       "# replay (the cost model fed with each run'"'"'s measured op times): mean |error| \(([.[].replay_error_pct | fabs] | add / length * 10 | round / 10))%, max \(([.[].replay_error_pct | fabs] | max * 10 | round / 10))%"' "$OUT/validate.json"
others=$(others_pct "${start[0]}" "${start[1]}" "$own0")
echo "# other processes took ${others}% of the CPUs while this ran$([ "$others" -gt 5 ] && echo ': the measurements are skewed, rerun on a quiet machine')"
echo "# wrote $OUT/validate.json"
# gpt-mini (a token model: embedding, 8 attention + residual_mlp blocks, a
# 8192-way head): the same method on fewer, shorter runs (a step of 8
# sequences takes ~0.5 s); its rows join out/validate.json as "gpt-mini:...".
if [ "$GPT" = 1 ]; then
    GPT_MODEL=${GPT_MODEL:-profiles/gpt-mini.model.json}
    tag=$(basename "$GPT_MODEL" .model.json)
    echo "# validate: $tag" >&2
    GPT=0 SERVE=0 ZB=0 DP=0 MODEL="$GPT_MODEL" GB=8 STEPS=${GPT_STEPS:-8} REPS=${GPT_REPS:-3} PLAN_BATCHES=1,2,4,8 \
        CONFIGS="1:gpipe:1 1:gpipe:2 2:gpipe:1 2:1f1b:1 2:1f1b:2 2:interleaved:1 2:zb-h1:1 2:zb-v:1" OUT="$OUT/$tag" bash "$0"
    jq -s --arg t "$tag:" '.[0] + (.[1] | map(.config = $t + .config))' "$OUT/validate.json" "$OUT/$tag/validate.json" \
        > "$OUT/validate.json.tmp" && mv "$OUT/validate.json.tmp" "$OUT/validate.json"
fi
if [ "${ZB:-1}" = 1 ]; then bash plots/validate_zb.sh; fi   # ZB=0 skips it: 1f1b against zb-h1/zb-h2 on one plan, measured gain
if [ "${SERVE:-1}" = 1 ]; then bash plots/validate_serve.sh; fi   # SERVE=0 skips it; serving: predicted vs measured throughput, p50, p99 (docs/serving.md §7)
if [ "${DP:-1}" = 1 ]; then bash plots/validate_dp.sh; fi   # DP=0 skips it; data parallelism x pipeline: D=2xK=1, D=1xK=2, D=1xK=1 and mpplan's choice
