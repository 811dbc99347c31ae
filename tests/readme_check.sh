#!/usr/bin/env bash
# readme_check.sh — runs every command of README.md's ```console blocks (the
# lines starting with "$ "), in order, from the repo root, and fails on the
# first that fails. Lines ending in "# exit N" must exit with N instead.
# Commands that rebuild or take minutes (make ...) are skipped.
# bin/ is replaced by $MPKIT_BIN when set (e.g. the ASan build's tools).
set -uo pipefail
cd "$(dirname "$0")/.."
readme=${1:-README.md}
bin=${MPKIT_BIN:-bin}
n=0
fail=0
while IFS= read -r line; do
    cmd=${line#\$ }
    case "$cmd" in make\ *|mpirun\ *|git\ *) continue ;; esac
    want=0
    if [[ "$cmd" =~ \#\ exit\ ([0-9]+)$ ]]; then want=${BASH_REMATCH[1]}; fi
    cmd=${cmd//bin\//$bin/}
    n=$((n + 1))
    bash -c "$cmd" >/tmp/readme_check.$$ 2>&1
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "README command failed (exit $rc, expected $want): $cmd"
        tail -20 /tmp/readme_check.$$
        fail=1
        break
    fi
done < <(awk '/^```console/{on=1; next} /^```/{on=0} on && /^\$ /' "$readme")
rm -f /tmp/readme_check.$$
echo "readme_check: $n commands, $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
