#!/usr/bin/env bash
# validate_dp.sh — data parallelism x pipeline on this machine, predicted vs
# measured (called by validate.sh unless DP=0; also runnable alone).
# With 2 cores D*K <= 2: for two models it plans D=1xK=1, D=2xK=1 and
# D=1xK=2 with mpplan (--data-parallel D --positions K: the planner's best
# plan of that shape), runs each with mprun, and prints the prediction
# (mpplan --evaluate with a profile of the plan's micro-batch size on as
# many busy cores as the plan keeps busy, taken just before the run, as in
# validate.sh) against the measured iteration; then mpplan's own choice
# (--data-parallel auto over the two devices) against the measured fastest.
# The models:
#   small: profiles/demo.model.json, 4.2M parameters (17 MB of gradients):
#          the all-reduce is cheap, the replicas have no bubble: D=2 should win;
#   wide:  written here, 4 residual MLP blocks of width 1024 / hidden 4096,
#          33.6M parameters (134 MB). On a CPU an MLP's compute per parameter
#          and sample is too large for the all-reduce to outweigh the
#          pipeline's bubble (docs/cost-model.md §8a), so here the pipeline
#          wins by memory: for mpplan's choice the devices get a memory
#          between the 2-stage plan's peak and the parameter state of the whole
#          model (state factor x parameters), which only a split fits. The
#          three shapes are still planned and measured without the limit.
# Writes $OUT/validate_dp.json: {rows: [{model, config, D, K, schedule, b, m,
# predicted_ms, measured_ms, error_pct, replay_error_pct (mprun's replay of
# the run's own op and all-reduce times), allreduce_measured_ms (mprun's median
# all-reduce per step), runs_ms}], choices: [{model, chosen,
# chosen_predicted_ms, memory_bytes (the devices' memory for the choice; null:
# the machine's), fastest_measured (among the shapes that fit it), right}]}.
# Env: MPKIT_BIN (bin), OUT (out), STEPS (20), REPS (3), MODELS ("small wide",
# or model files), GB_small (64), GB_wide (16), GB (16: for model files),
# MEMSPLIT_small (0), MEMSPLIT_wide (1), MEMSPLIT (0: for model files): 1 limits
# the memory for the choice as described for wide.
set -euo pipefail
BIN=${MPKIT_BIN:-bin}
OUT=${OUT:-out}
STEPS=${STEPS:-20}
REPS=${REPS:-3}
MODELS=${MODELS:-small wide}
WORK=$OUT/validate_dp
mkdir -p "$WORK"
export OPENBLAS_NUM_THREADS=1

cat >"$WORK/wide.model.json" <<'EOF'
{
  "format": "mpkit-model/1",
  "name": "wide",
  "description": "validate_dp.sh: 4 residual MLP blocks of width 1024, hidden 4096 (33.6M parameters)",
  "input_dim": 1024,
  "layers": [
    {"repeat": 4, "layers": [{"type": "residual_mlp", "hidden": 4096}]},
    {"type": "layernorm"},
    {"type": "linear", "out": 1024}
  ],
  "loss": "mse"
}
EOF
model_file() { case "$1" in small) echo profiles/demo.model.json ;; wide) echo "$WORK/wide.model.json" ;; *) echo "$1" ;; esac; }
num() { if [ "$1" = null ]; then echo n/a; else printf "%.${2:-3}f" "$1"; fi; }   # num X [DIGITS]
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "null"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
profile() {  # profile MODEL OUT BATCHES THREADS
    "$BIN/mpprof" --model "$1" --batch "$3" --device 0 --threads "$4" --repeat 20 --quiet -o "$2" >/dev/null
}

echo "# validate_dp: measuring the links on this machine" >&2
"$BIN/mpprof" --links --quiet -o "$WORK/cluster.json" >/dev/null
ndev=$(jq '.devices | length' "$WORK/cluster.json")
if [ "$ndev" -lt 2 ]; then echo "validate_dp: $WORK/cluster.json has $ndev device(s); need 2" >&2; exit 2; fi

rows=()
choices=()
printf '%-6s %-8s %3s %3s %-11s %4s %4s %12s %12s %8s %11s %13s %5s  %s\n' model config D K schedule b m predicted_ms measured_ms error_% replay_err_% allreduce_ms fits runs_ms
for model in $MODELS; do
    mf=$(model_file "$model")
    case "$model" in
    small) gb=${GB_small:-64}; memsplit=${MEMSPLIT_small:-0} ;;
    wide) gb=${GB_wide:-16}; memsplit=${MEMSPLIT_wide:-1} ;;
    *) gb=${GB:-16}; memsplit=${MEMSPLIT:-0}; [ -f "$mf" ] || { echo "validate_dp: $mf: no such model file" >&2; exit 2; } ;;
    esac
    name=$(basename "$model" .json); name=${name%.model}
    M="$WORK/$name"
    echo "# validate_dp: $model ($mf), global batch $gb: profiling" >&2
    profile "$mf" "$M.profile.json" 1,2,4,8,16,32 2
    profile "$mf" "$M.profile.solo.json" 1,2,4,8,16,32 1
    P=(--profile "$M.profile.json" --profile "$M.profile.solo.json" --cluster "$WORK/cluster.json" --global-batch "$gb")
    configs=()
    for c in 1:1 2:1 1:2; do
        IFS=: read -r D K <<<"$c"
        plan="$M.D${D}K${K}.plan.json"
        if "$BIN/mpplan" "${P[@]}" --data-parallel "$D" --positions "$K" --json -o "$plan" >/dev/null 2>"$M.D${D}K${K}.plan.err"; then
            configs+=("$c")
        else
            echo "# $name D=$D K=$K: mpplan found no plan: $(tail -1 "$M.D${D}K${K}.plan.err")" >&2
        fi
    done
    # the runs: REPS rounds, each configuration once per round, right after its own profile
    for ((rep = 1; rep <= REPS; rep++)); do
        for c in "${configs[@]}"; do
            IFS=: read -r D K <<<"$c"
            base="$M.D${D}K${K}"
            b=$(jq .microbatch_size "$base.plan.json")
            profile "$mf" "$base.$rep.profile.json" "$b" $((D * K))
            "$BIN/mpplan" --evaluate "$base.plan.json" --profile "$base.$rep.profile.json" --cluster "$WORK/cluster.json" \
                --json >"$base.$rep.pred.json" 2>"$base.$rep.pred.err" || true
            "$BIN/mprun" "$base.plan.json" --model "$mf" --steps "$STEPS" --warmup 3 --quiet --profile "$base.$rep.profile.json" \
                --cluster "$WORK/cluster.json" --report "$base.$rep.report.json" >/dev/null 2>"$base.$rep.run.err" \
                || { rm -f "$base.$rep.report.json"; echo "# $name D=$D K=$K round $rep: mprun failed: $(tail -1 "$base.$rep.run.err")" >&2; }
        done
    done
    # the devices' memory for mpplan's choice: the machine's, or (memsplit) one
    # that only a split fits
    choice_cluster="$WORK/cluster.json"; mem=null
    if [ "$memsplit" = 1 ] && [ -s "$M.D1K2.plan.json" ]; then
        state=$(jq '4 * ([.layers[].param_bytes] | add)' "$M.profile.json")
        pk2=$(jq '.predicted.peak_memory_bytes | max' "$M.D1K2.plan.json")
        if awk -v a="$pk2" -v s="$state" 'BEGIN {exit !(a < s)}'; then
            mem=$(awk -v a="$pk2" -v s="$state" 'BEGIN {printf "%.0f", (a + s) / 2}')
            jq --argjson m "$mem" '.devices |= map(.memory = $m)' "$WORK/cluster.json" >"$M.cluster.json"
            choice_cluster="$M.cluster.json"
            echo "# $name: for mpplan's choice every device has $mem bytes: above the 2-stage plan's peak $pk2, below the whole model's parameter state $state" >&2
        else
            echo "# $name: the 2-stage plan's peak $pk2 is not below the parameter state $state: no memory limit" >&2
        fi
    fi
    fits_mem() { [ "$mem" = null ] || jq -e --argjson m "$mem" '.predicted.peak_memory_bytes | max <= $m' "$1" >/dev/null; }
    best_meas=""; best_cfg=""
    for c in "${configs[@]}"; do
        IFS=: read -r D K <<<"$c"
        base="$M.D${D}K${K}"
        reports=(); preds=()
        for ((rep = 1; rep <= REPS; rep++)); do
            [ -s "$base.$rep.report.json" ] && reports+=("$base.$rep.report.json")
            [ -s "$base.$rep.pred.json" ] && preds+=("$base.$rep.pred.json")
        done
        sched=$(jq -r .schedule "$base.plan.json"); b=$(jq .microbatch_size "$base.plan.json"); m=$(jq .num_microbatches "$base.plan.json")
        pred=$( ((${#preds[@]})) && jq -r .predicted.iteration_ms "${preds[@]}" | median || echo null)
        meas=null; runs=""; err=null; arm=null; rerr=null
        if ((${#reports[@]})); then
            meas=$(jq -r .iteration_ms "${reports[@]}" | median)
            arm=$(jq -r '.allreduce_ms // 0' "${reports[@]}" | median)
            rerr=$(jq -r '.replay.error_pct // empty' "${reports[@]}" | median)
            runs=$(jq -r '.iteration_ms * 10 | round / 10' "${reports[@]}" | paste -sd, -)
            if [ "$pred" != null ]; then err=$(awk -v p="$pred" -v x="$meas" 'BEGIN {printf "%.4f", 100 * (x - p) / p}'); fi
            if fits_mem "$base.plan.json" && { [ -z "$best_meas" ] || awk -v a="$meas" -v b="$best_meas" 'BEGIN {exit !(a < b)}'; }; then
                best_meas=$meas; best_cfg="D=$D x K=$K"
            fi
        fi
        fits=true; fits_mem "$base.plan.json" || fits=false
        printf '%-6s %-8s %3s %3s %-11s %4s %4s %12s %12s %8s %11s %13s %5s  %s\n' "$name" "D${D}xK${K}" "$D" "$K" "$sched" "$b" "$m" \
            "$(num "$pred")" "$(num "$meas")" "$(num "$err" 1)" "$(num "$rerr" 1)" "$(num "$arm")" "$fits" "${runs:-mprun failed}"
        rows+=("{\"model\":\"$name\",\"config\":\"D${D}xK${K}\",\"D\":$D,\"K\":$K,\"schedule\":\"$sched\",\"b\":$b,\"m\":$m,\"predicted_ms\":$pred,\"measured_ms\":$meas,\"error_pct\":$err,\"replay_error_pct\":$rerr,\"allreduce_measured_ms\":$arm,\"fits\":$fits,\"runs_ms\":[$runs]}")
    done
    # mpplan's choice over both devices, every D and K
    "$BIN/mpplan" --profile "$M.profile.json" --profile "$M.profile.solo.json" --cluster "$choice_cluster" --global-batch "$gb" \
        --data-parallel auto --json -o "$M.auto.plan.json" >/dev/null
    cD=$(jq '.data_parallel // 1' "$M.auto.plan.json")
    cK=$(jq '[.stages[].device] | unique | length' "$M.auto.plan.json")   # positions (interleaved, zb-v: chunks share one)
    cpred=$(jq .predicted.iteration_ms "$M.auto.plan.json")
    right=null
    [ -n "$best_cfg" ] && { [ "D=$cD x K=$cK" = "$best_cfg" ] && right=true || right=false; }
    echo "# $name: mpplan chooses D=$cD x K=$cK ($(jq -r .schedule "$M.auto.plan.json"), b=$(jq .microbatch_size "$M.auto.plan.json"), predicted $(num "$cpred") ms$([ "$mem" != null ] && echo ", devices of $mem bytes")); measured fastest$([ "$mem" != null ] && echo " that fits"): ${best_cfg:-none measured}$([ "$right" = true ] && echo ': right')$([ "$right" = false ] && echo ': WRONG')"
    choices+=("{\"model\":\"$name\",\"chosen\":\"D=$cD x K=$cK\",\"chosen_predicted_ms\":$cpred,\"memory_bytes\":$mem,\"fastest_measured\":\"$best_cfg\",\"right\":$right}")
done
json="{\"rows\":[$(IFS=,; echo "${rows[*]}")],\"choices\":[$(IFS=,; echo "${choices[*]}")]}"
echo "$json" | jq . >"$OUT/validate_dp.json.tmp" && mv "$OUT/validate_dp.json.tmp" "$OUT/validate_dp.json"
jq -r '[.rows[] | select(.error_pct != null) | .error_pct | fabs] as $e |
       if ($e | length) > 0 then "# data parallelism: mean |error| \($e | add / length * 10 | round / 10)%, max \($e | max * 10 | round / 10)% over \($e | length) runs measured" else "# data parallelism: no run measured" end' "$OUT/validate_dp.json"
echo "# wrote $OUT/validate_dp.json"
