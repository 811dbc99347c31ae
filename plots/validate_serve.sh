#!/usr/bin/env bash
# validate_serve.sh — serving validation (docs/serving.md, "Validation"):
# profile profiles/tiny.model.json (or reuse out/validate/profile.json when
# it is newer than the model), plan a 2-device serving configuration with
# `mpplan --serve`, calibrate the serving terms with three runs of that plan at
# 50% of its predicted capacity, the one of median forward scale (the report's "calibration": forward =
# overhead + scale x profile, batcher wake-up), plan again with `mpplan
# --serve --calibration` and take that plan and its predicted capacity, serve
# Poisson load at 20%..90% of it REPEATS times each with `mprun --serve
# --profile --calibration`, each run predicted with the terms of a
# calibration run at the same rate just before it (other arrivals: --seed;
# the machine's speed drifts, docs/profiling.md), and print the medians of predicted and measured
# throughput, p50 and p99 and the spread of the errors (targets: 5%, 10%,
# 20%). Runs under SCHED_FIFO (--realtime) where allowed: on a shared machine
# other processes otherwise preempt the server for whole time slices.
# Writes out/validate_serve.json:
# [{load, rate, predicted:{throughput,p50_ms,p99_ms}, measured:{...}, error_pct:{...},
#   error_spread_pct:{throughput:[min,max],...}, overloaded_runs}].
# Env: MPKIT_BIN (default bin), OUT (default out), MODEL, LOADS ("0.2 0.5 0.7 0.9"), DURATION (2s),
#      REPEATS (3), MAX_BATCH (16), MAX_WAIT_MS (2), SLO_MS (20), REALTIME (1),
#      CALIBRATE (1; 0: the profile alone).
set -euo pipefail
BIN=${MPKIT_BIN:-bin}
MODEL=${MODEL:-profiles/tiny.model.json}
LOADS=${LOADS:-"0.2 0.5 0.7 0.9"}
DURATION=${DURATION:-2s}
REPEATS=${REPEATS:-3}
REALTIME=${REALTIME:-1}
CALIBRATE=${CALIBRATE:-1}
MAX_BATCH=${MAX_BATCH:-16}
MAX_WAIT_MS=${MAX_WAIT_MS:-2}
SLO_MS=${SLO_MS:-20}
OUT=${OUT:-out}
WORK=$OUT/validate_serve
mkdir -p "$WORK" "$OUT/validate"
export OPENBLAS_NUM_THREADS=1

PROF=$OUT/validate/profile.json   # validate.sh's, when it profiled the same model
if [ ! -s "$PROF" ] || [ "$PROF" -ot "$MODEL" ] || [ "$PROF" -ot "$BIN/mpprof" ] ||
   [ "$(jq -r .model "$PROF")" != "$(jq -r .name "$MODEL")" ]; then
    PROF=$WORK/profile.json
    if [ ! -s "$PROF" ] || [ "$PROF" -ot "$MODEL" ] || [ "$PROF" -ot "$BIN/mpprof" ]; then
        echo "# validate_serve: profiling $MODEL on this machine" >&2
        "$BIN/mpprof" --model "$MODEL" --batch 1,2,4,8,16,32 --device 0 --quiet -o "$PROF" >/dev/null
    fi
fi
# plan_for OUT [--calibration R.json]: mpplan --serve's plan (the rate only
# steers the search; when no plan meets the SLO there, the plan at the highest
# rate that one does). Its predicted.capacity_rps is the load's 100%.
plan_for() {
    local out=$1; shift
    "$BIN/mpplan" --serve --profile "$PROF" --devices 2 --memory 8GiB --rate 2000 --slo-ms "$SLO_MS" \
        --max-batch "$MAX_BATCH" --max-wait-ms "$MAX_WAIT_MS" "$@" --json > "$out.search" || true
    if ! jq -e 'if .error then .plan else . end | select(.stages)' "$out.search" > "$out"; then
        echo "validate_serve: mpplan --serve found no plan: $(cat "$out.search")" >&2
        exit 1
    fi
}
RT=(); [ "$REALTIME" = 1 ] && RT=(--realtime)
PLAN=$WORK/plan.json
plan_for "$PLAN"
CAL=()
if [ "$CALIBRATE" = 1 ]; then
    R=$(jq -r '.predicted.capacity_rps * 0.5' "$PLAN")
    for k in 1 2 3; do   # three runs; the one of median fwd_scale sets the capacity (one run may catch a spell)
        "$BIN/mprun" "$PLAN" --model "$MODEL" --serve --rate "$R" --duration "$DURATION" --seed "$k" --profile "$PROF" \
            "${RT[@]}" --report "$WORK/calibration-$k.json" >/dev/null
    done
    mid=$(for k in 1 2 3; do echo "$(jq .calibration.fwd_scale "$WORK/calibration-$k.json") $k"; done | sort -g | sed -n 2p | cut -d' ' -f2)
    cp "$WORK/calibration-$mid.json" "$WORK/calibration.json"
    CAL=(--calibration "$WORK/calibration.json")
    echo "# calibration at $(printf %.0f "$R") req/s: $(jq -c .calibration "$WORK/calibration.json"), realtime threads $(jq .realtime_threads "$WORK/calibration.json")"
    plan_for "$PLAN" "${CAL[@]}"
fi
CAP=$(jq -r '.predicted.capacity_rps' "$PLAN")
echo "# plan: $(jq -c '[.stages[].layers]' "$PLAN"), max_batch $(jq .max_batch "$PLAN"), max_wait $(jq .max_wait_ms "$PLAN") ms, terms $(jq -c .prediction_terms "$PLAN"); predicted capacity $(printf %.0f "$CAP") req/s; medians of $REPEATS runs, error spread [min,max]"

printf '%5s %8s | %8s %8s %6s %13s | %7s %7s %6s %13s | %7s %7s %6s %13s\n' load rate pred_rps meas_rps err% spread \
    pred_p50 meas_p50 err% spread pred_p99 meas_p99 err% spread
rows=()
for L in $LOADS; do
    R=$(awk -v c="$CAP" -v l="$L" 'BEGIN { printf "%.1f", c * l }')
    reps=()
    for k in $(seq 1 "$REPEATS"); do
        rep=$WORK/load-$L-$k.json
        if [ "$CALIBRATE" = 1 ]; then   # the terms from a run just before, at the same rate (paired, as validate.sh's profiles)
            "$BIN/mprun" "$PLAN" --model "$MODEL" --serve --rate "$R" --duration "$DURATION" --seed $((100 + k)) \
                --profile "$PROF" "${RT[@]}" --report "$WORK/cal-$L-$k.json" >/dev/null
            CAL=(--calibration "$WORK/cal-$L-$k.json")
        fi
        "$BIN/mprun" "$PLAN" --model "$MODEL" --serve --rate "$R" --duration "$DURATION" --slo-ms "$SLO_MS" \
            --profile "$PROF" "${CAL[@]}" "${RT[@]}" --report "$rep" >/dev/null
        reps+=("$rep")
    done
    row=$(jq -s --argjson load "$L" --argjson rate "$R" '
        def med: sort | .[(length - 1) / 2 | floor];
        def spread: [min, max];
        {load: $load, rate: $rate,
         predicted: {throughput: ([.[].predicted.throughput_rps] | med), p50_ms: ([.[].predicted.p50_ms] | med),
                     p99_ms: ([.[].predicted.p99_ms] | med)},
         measured: {throughput: ([.[].throughput] | med), p50_ms: ([.[].p50_ms] | med), p99_ms: ([.[].p99_ms] | med)},
         error_pct: {throughput: ([.[].error_pct.throughput] | med), p50: ([.[].error_pct.p50] | med),
                     p99: ([.[].error_pct.p99] | med)},
         error_spread_pct: {throughput: ([.[].error_pct.throughput] | spread), p50: ([.[].error_pct.p50] | spread),
                            p99: ([.[].error_pct.p99] | spread)},
         overloaded_runs: ([.[] | select(.overloaded)] | length), runs: length}' "${reps[@]}")
    rows+=("$row")
    jq -r '[.load * 100, .rate, .predicted.throughput, .measured.throughput, .error_pct.throughput,
            .error_spread_pct.throughput[0], .error_spread_pct.throughput[1],
            .predicted.p50_ms, .measured.p50_ms, .error_pct.p50, .error_spread_pct.p50[0], .error_spread_pct.p50[1],
            .predicted.p99_ms, .measured.p99_ms, .error_pct.p99, .error_spread_pct.p99[0], .error_spread_pct.p99[1],
            .overloaded_runs, .runs] | @tsv' <<<"$row" |
    while read -r l r pt mt et e0 e1 pp mp ep p0 p1 p9 m9 e9 q0 q1 ov n; do
        printf '%4.0f%% %8.1f | %8.1f %8.1f %+5.1f%% [%+5.1f,%+5.1f] | %7.3f %7.3f %+5.0f%% [%+4.0f,%+4.0f] | %7.3f %7.3f %+5.0f%% [%+4.0f,%+4.0f]%s\n' \
            "$l" "$r" "$pt" "$mt" "$et" "$e0" "$e1" "$pp" "$mp" "$ep" "$p0" "$p1" "$p9" "$m9" "$e9" "$q0" "$q1" \
            "$([ "$ov" -gt 0 ] && echo "  OVERLOADED in $ov/$n" || true)"
    done
done
(IFS=,; echo "[${rows[*]}]") | jq . > "$OUT/validate_serve.json.tmp" && mv "$OUT/validate_serve.json.tmp" "$OUT/validate_serve.json"
jq -r '"# targets: throughput 5%, p50 10%, p99 20%; max |median error|: throughput \([.[].error_pct.throughput|fabs]|max|.*10|round/10)%, p50 \([.[].error_pct.p50|fabs]|max|round)%, p99 \([.[].error_pct.p99|fabs]|max|round)%"' \
    "$OUT/validate_serve.json"
echo "# wrote $OUT/validate_serve.json"
