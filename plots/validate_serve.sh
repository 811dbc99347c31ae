#!/usr/bin/env bash
# validate_serve.sh — serving validation (docs/serving.md, "Serving for real"):
# profile profiles/tiny.model.json (or reuse out/validate/profile.json when
# it is newer than the model), plan a 2-device serving configuration with
# `mpplan --serve` (a hand-written serving plan when mpplan lacks --serve),
# take its predicted capacity, serve Poisson load at 20%..90% of it with
# `mprun --serve --profile` and print predicted vs measured throughput, p50
# and p99 (targets: 5%, 10%, 20%). Writes out/validate_serve.json:
# [{load, rate, predicted:{throughput,p50_ms,p99_ms}, measured:{...}, error_pct:{...}}].
# Env: MPKIT_BIN (default bin), MODEL, LOADS ("0.2 0.5 0.7 0.9"), DURATION (3s),
#      MAX_BATCH (16), MAX_WAIT_MS (2), SLO_MS (20).
set -euo pipefail
BIN=${MPKIT_BIN:-bin}
MODEL=${MODEL:-profiles/tiny.model.json}
LOADS=${LOADS:-"0.2 0.5 0.7 0.9"}
DURATION=${DURATION:-3s}
MAX_BATCH=${MAX_BATCH:-16}
MAX_WAIT_MS=${MAX_WAIT_MS:-2}
SLO_MS=${SLO_MS:-20}
OUT=out
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
NL=$(jq '[.layers[]] | length' "$PROF")
PLAN=$WORK/plan.json
if "$BIN/mpplan" --serve --help >/dev/null 2>&1; then
    # the rate only steers the search; the capacity comes from the plan found
    "$BIN/mpplan" --serve --profile "$PROF" --devices 2 --memory 8GiB --rate 2000 --slo-ms "$SLO_MS" \
        --max-batch "$MAX_BATCH" --max-wait-ms "$MAX_WAIT_MS" --json -o "$PLAN" >/dev/null || true
fi
if [ ! -s "$PLAN" ] || [ "$(jq '.stages | length' "$PLAN")" -lt 1 ]; then
    half=$((NL / 2))
    printf '{"format":"mpplan-plan/1","mode":"serve","schedule":"gpipe","chunks_per_device":1,"global_batch":%d,"microbatch_size":%d,"num_microbatches":1,"max_batch":%d,"max_wait_ms":%s,"stages":[{"layers":[0,%d],"device":0},{"layers":[%d,%d],"device":1}]}\n' \
        "$MAX_BATCH" "$MAX_BATCH" "$MAX_BATCH" "$MAX_WAIT_MS" $((half - 1)) "$half" $((NL - 1)) > "$PLAN"
fi
# predicted capacity: one short run with the prediction gives it
"$BIN/mprun" "$PLAN" --model "$MODEL" --serve --rate 100 --duration 0.2s --slo-ms "$SLO_MS" \
    --profile "$PROF" --report "$WORK/probe.json" >/dev/null
CAP=$(jq -r '.predicted.capacity_rps' "$WORK/probe.json")
echo "# plan: $(jq -c '[.stages[].layers]' "$PLAN"), max_batch $(jq .max_batch "$PLAN"), max_wait $(jq .max_wait_ms "$PLAN") ms; predicted capacity $(printf %.0f "$CAP") req/s"

rows=()
printf '%5s %9s | %9s %9s %6s | %8s %8s %6s | %8s %8s %6s\n' load rate pred_rps meas_rps err% \
    pred_p50 meas_p50 err% pred_p99 meas_p99 err%
for L in $LOADS; do
    R=$(awk -v c="$CAP" -v l="$L" 'BEGIN { printf "%.1f", c * l }')
    rep=$WORK/load-$L.json
    "$BIN/mprun" "$PLAN" --model "$MODEL" --serve --rate "$R" --duration "$DURATION" --slo-ms "$SLO_MS" \
        --profile "$PROF" --report "$rep" >/dev/null
    read -r pt mt et pp mp ep p9 m9 e9 ov < <(jq -r '[.predicted.throughput_rps, .throughput, .error_pct.throughput,
        .predicted.p50_ms, .p50_ms, .error_pct.p50, .predicted.p99_ms, .p99_ms, .error_pct.p99, .overloaded] | @tsv' "$rep")
    printf '%4.0f%% %9.1f | %9.1f %9.1f %+5.1f%% | %8.3f %8.3f %+5.0f%% | %8.3f %8.3f %+5.0f%%%s\n' \
        "$(awk -v l="$L" 'BEGIN{print l*100}')" "$R" "$pt" "$mt" "$et" "$pp" "$mp" "$ep" "$p9" "$m9" "$e9" \
        "$([ "$ov" = true ] && echo '  OVERLOADED' || true)"
    rows+=("{\"load\":$L,\"rate\":$R,\"predicted\":{\"throughput\":$pt,\"p50_ms\":$pp,\"p99_ms\":$p9},\"measured\":{\"throughput\":$mt,\"p50_ms\":$mp,\"p99_ms\":$m9},\"error_pct\":{\"throughput\":$et,\"p50\":$ep,\"p99\":$e9},\"overloaded\":$ov}")
done
(IFS=,; echo "[${rows[*]}]") | jq . > "$OUT/validate_serve.json.tmp" && mv "$OUT/validate_serve.json.tmp" "$OUT/validate_serve.json"
jq -r '"# targets: throughput 5%, p50 10%, p99 20%; max |error|: throughput \([.[].error_pct.throughput|fabs]|max|.*10|round/10)%, p50 \([.[].error_pct.p50|fabs]|max|round)%, p99 \([.[].error_pct.p99|fabs]|max|round)%"' \
    "$OUT/validate_serve.json"
echo "# wrote $OUT/validate_serve.json"
