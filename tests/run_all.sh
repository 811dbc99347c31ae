#!/usr/bin/env bash
# Runs each CUnit test binary given on the command line and sums their
# "mpkit-tests: SUITE P passed, F failed" lines into one closing line.
set -u
pass=0; fail=0; broken=()
for t in "$@"; do
  log=$(mktemp)
  OPENBLAS_NUM_THREADS=1 "$t" >"$log" 2>&1; rc=$?
  line=$(grep '^mpkit-tests: ' "$log" | tail -1)
  if [ -z "$line" ] || [ $rc -ne 0 ]; then cat "$log"; fi
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $3}'); f=$(echo "$line" | awk '{print $5}')
    pass=$((pass + p)); fail=$((fail + f))
    printf '  %-28s %4s passed, %s failed\n' "$(basename "$t")" "$p" "$f"
  fi
  if [ $rc -ne 0 ]; then broken+=("$(basename "$t") (exit $rc)"); [ -z "$line" ] && fail=$((fail + 1)); fi
  rm -f "$log"
done
[ ${#broken[@]} -gt 0 ] && echo "failing: ${broken[*]}"
echo "tests: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ ${#broken[@]} -eq 0 ]
