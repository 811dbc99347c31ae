#!/usr/bin/env bash
# netns_check.sh — mprun across two hosts: makes two network namespaces on
# this machine joined by a veth pair (addresses that exist only on that pair),
# runs mprun under OpenMPI across them over TCP (OpenMPI's rsh agent is a
# small script that enters the host's namespace), and checks
#   1. each plan given as PLAN.json[:RANKS] (default: a 2-stage 1F1B plan of
#      the small test model, 2 ranks, and a data-parallel plan of 2 replicas
#      of one stage, 2 ranks: one replica per host, the gradient all-reduce
#      over the veth) gives across the two hosts the same weights checksum as
#      the same plan on threads in one process;
#   2. cutting the link mid-run (ip link set ... down) ends every rank within
#      --timeout plus a little, each with a message naming its stage (and
#      replica), never a hang (mpirun itself may keep waiting for the daemon
#      it can no longer reach; it is killed at the end); checked for the first
#      plan and, with the default plans, for the data-parallel one too.
# The namespaces, the veth pair and every process in them are removed at the
# end, also on failure. Prints "netns_check: ok", "netns_check: SKIPPED: why"
# (not root, ip netns not permitted, no mpirun, mprun built without MPI) or
# "netns_check: FAILED: why" (exit 1).
# Usage: tests/netns_check.sh [PLAN.json[:RANKS] ...]   (env: MPKIT_BIN, MODEL, TIMEOUT_S)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=$(cd "${MPKIT_BIN:-bin}" && pwd)
MODEL=$(realpath "${MODEL:-tests/fixtures/small_model.json}")
TIMEOUT_S=${TIMEOUT_S:-4}
skip() { echo "netns_check: SKIPPED: $*"; exit 0; }
fail() { echo "netns_check: FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root for ip netns"
command -v ip >/dev/null || skip "no ip command (iproute2)"
command -v mpirun >/dev/null || skip "no mpirun"
"$BIN/mprun" --version | grep -q ' mpi' || skip "mprun was built without MPI"

tag=mpk$$
A=${tag}a B=${tag}b
IPA=10.231.7.1 IPB=10.231.7.2
work=$(mktemp -d)
cleanup() {
    for ns in $A $B; do
        ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del $ns 2>/dev/null
    done
    [ -n "${mpirun_pid:-}" ] && kill -9 "$mpirun_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add $A 2>/dev/null || skip "ip netns add is not permitted here"
# ip netns exec remounts /sys in a private mount namespace; inside a chroot
# (no mount point at /) or a locked-down container that is refused
why=$(ip netns exec $A true 2>&1) || skip "ip netns exec is not permitted here ($(echo "$why" | head -1))"
ip netns add $B || fail "ip netns add $B"
ip link add ${tag}0 type veth peer name ${tag}1 || fail "cannot create a veth pair"
ip link set ${tag}0 netns $A && ip link set ${tag}1 netns $B || fail "cannot move the veth ends"
ip netns exec $A ip addr add $IPA/24 dev ${tag}0 && ip netns exec $B ip addr add $IPB/24 dev ${tag}1 || fail "addresses"
for ns in $A $B; do ip netns exec $ns ip link set lo up; done
ip netns exec $A ip link set ${tag}0 up && ip netns exec $B ip link set ${tag}1 up || fail "links up"

cat >"$work/agent.sh" <<EOF
#!/bin/sh
# OpenMPI rsh agent: HOST COMMAND... runs COMMAND in the namespace of HOST's address.
host=\$1; shift
case "\$host" in $IPA) ns=$A ;; $IPB) ns=$B ;; *) echo "agent: unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec \$ns /bin/sh -c "\$*"
EOF
chmod +x "$work/agent.sh"
mpi() {  # mpi GUARD_S RANKS ARGS...: mpirun from host A across A and B, ranks spread over both
    local guard=$1 n=$2; shift 2
    timeout "$guard" ip netns exec $A mpirun --allow-run-as-root --oversubscribe -np "$n" --host "$IPA:$(( (n + 1) / 2 )),$IPB:$(( n / 2 ))" \
        --map-by node --mca plm_rsh_agent "$work/agent.sh" --mca btl tcp,self \
        --mca btl_tcp_if_include 10.231.7.0/24 --mca oob_tcp_if_include 10.231.7.0/24 "$@"
}
checksum() { sed -n 's/^checksum *\([0-9a-f]*\).*/\1/p'; }

plans=("$@")
if [ ${#plans[@]} = 0 ]; then
    cat >"$work/k2.plan.json" <<'EOF'
{"format":"mpplan-plan/1","mode":"train","schedule":"1f1b","chunks_per_device":1,"global_batch":16,
 "microbatch_size":4,"stages":[{"layers":[0,2],"device":0},{"layers":[3,5],"device":1}]}
EOF
    cat >"$work/d2.plan.json" <<'EOF'
{"format":"mpplan-plan/1","mode":"train","schedule":"gpipe","data_parallel":2,"global_batch":16,
 "microbatch_size":4,"stages":[{"layers":[0,5],"device":0}]}
EOF
    plans=("$work/k2.plan.json:2" "$work/d2.plan.json:2")
    cut_plans=("${plans[@]}")
else
    cut_plans=("${plans[0]}")
fi

# 1. the same weights across hosts as on one host
for p in "${plans[@]}"; do
    plan=$(realpath "${p%%:*}"); ranks=${p##*:}; [ "$ranks" = "$p" ] && ranks=2
    one=$("$BIN/mprun" "$plan" --model "$MODEL" --steps 4 --quiet --no-pin | checksum)
    [ -n "$one" ] || fail "$plan does not run on threads"
    out=$(mpi 120 "$ranks" "$BIN/mprun" "$plan" --model "$MODEL" --steps 4 --quiet --no-pin 2>&1)
    two=$(echo "$out" | checksum)
    echo "$out" | grep -q 'mpi transport' || fail "$plan across hosts did not run on MPI: $(echo "$out" | tail -3)"
    [ "$two" = "$one" ] || fail "$plan: checksum across hosts $two, on one host $one"
    echo "netns_check: $(basename "$plan") on $ranks ranks across 2 hosts: same weights as on one host ($one)"
done

# 2. a cut link ends every rank within the timeout, with a message
running() { ip netns pids "$1" | xargs -r ps -o comm= -p 2>/dev/null | grep -c '^mprun'; }
cut_check() {  # cut_check PLAN[:RANKS]: run it across the hosts, cut the link, then bring it back
    local p=$1 plan ranks
    plan=$(realpath "${p%%:*}"); ranks=${p##*:}; [ "$ranks" = "$p" ] && ranks=2
    rm -rf "$work/ranks"
    mpi 600 "$ranks" --output-filename "$work/ranks" "$BIN/mprun" "$plan" --model "$MODEL" --steps 1000000 --quiet --no-pin \
        --timeout "${TIMEOUT_S}s" >"$work/cut.out" 2>&1 &
    mpirun_pid=$!
    for i in $(seq 1 100); do [ "$(running $A)" -ge 1 ] && [ "$(running $B)" -ge 1 ] && break; sleep 0.1; done
    [ "$(running $B)" -ge 1 ] || fail "the ranks did not start: $(tail -5 "$work/cut.out")"
    sleep 1
    t0=$(date +%s.%N)
    ip netns exec $B ip link set ${tag}1 down
    limit=$(awk -v t="$TIMEOUT_S" 'BEGIN { print t + 10 }')
    while :; do
        el=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        [ "$(running $A)" = 0 ] && [ "$(running $B)" = 0 ] && break
        awk -v e="$el" -v l="$limit" 'BEGIN { exit !(e > l) }' && fail "$(basename "$plan"): ranks still running ${el} s after the link was cut (--timeout ${TIMEOUT_S}s)"
        sleep 0.2
    done
    msgs=$(cat "$work"/ranks/1/rank.*/stderr "$work/cut.out" 2>/dev/null | grep '^mprun: ' | sort -u)
    [ -n "$msgs" ] || fail "$(basename "$plan"): no rank said why it stopped"
    echo "$msgs" | grep -q 'stage [0-9]' || fail "$(basename "$plan"): the messages name no stage: $msgs"
    if grep -q data_parallel "$plan"; then
        echo "$msgs" | grep -q 'replica [0-9] stage [0-9]' || fail "$(basename "$plan"): the messages name no replica: $msgs"
    fi
    echo "netns_check: $(basename "$plan"): link cut: every rank ended ${el} s later (--timeout ${TIMEOUT_S}s):"
    echo "$msgs" | sed 's/^/    /'
    kill -9 "$mpirun_pid" 2>/dev/null
    wait "$mpirun_pid" 2>/dev/null
    mpirun_pid=
    for ns in $A $B; do ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null; done
    ip netns exec $B ip link set ${tag}1 up
    for i in $(seq 1 50); do ip netns exec $A ping -c1 -W1 $IPB >/dev/null 2>&1 && break; sleep 0.1; done
}
for p in "${cut_plans[@]}"; do cut_check "$p"; done
echo "netns_check: ok"
