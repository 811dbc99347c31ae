#!/usr/bin/env bash
# fresh_machine.sh — `make fresh-check`: the README's two commands on fresh
# Debian 12 machines. Makes a clean Debian 12 (bookworm) root with
# debootstrap, copies a clone of this repository's HEAD into two copies of
# it, and runs exactly the README's commands there: `make demo` then
# `make test` in the first root, `make test` then `make demo` in the second.
# Prints each command's time and exit status; exits 1 when any failed.
#
# A fresh machine here is debootstrap's default variant (Debian's required and
# important packages, what a standard install has) plus `make`, which the
# README's commands need before they can install anything else.
# Not part of `make test` (it takes 10-20 minutes and downloads ~400 MB).
# Needs root and network access to a Debian mirror.
#
# Env: WORK (scratch folder, default /var/tmp/mpkit-fresh; removed at the end
# unless KEEP=1), MIRROR (default: the first deb.debian.org-style URI of this
# machine's apt sources, else http://deb.debian.org/debian), ORDERS (default
# "demo,test test,demo"), LOGS (each command's log, default out/fresh-check).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
WORK=${WORK:-/var/tmp/mpkit-fresh}
LOGS=${LOGS:-$repo/out/fresh-check}
ORDERS=${ORDERS:-"demo,test test,demo"}
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
[ "$(id -u)" = 0 ] || { echo "fresh_machine: needs root (debootstrap, chroot, mounts)"; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } \
    || { echo "fresh_machine: cannot install debootstrap"; exit 2; }

umount_under() {  # umount_under DIR: every mount at or below DIR, deepest first: what mount_in
                  # mounted and what the run made inside (ip netns's /run/netns, a test's tmpfs)
    awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
}
cleanup() {
    umount_under "$WORK"
    [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
mount_in() {  # mount_in ROOT: what a booted machine has (proc, sys, dev, shm)
    local r=$1
    mount -t proc proc "$r/proc"
    mount -t sysfs sys "$r/sys"
    mount --bind /dev "$r/dev"
    mount -t devpts devpts "$r/dev/pts" 2>/dev/null
    mount -t tmpfs shm "$r/dev/shm"
    cp /etc/resolv.conf "$r/etc/resolv.conf"
}

mkdir -p "$WORK" "$LOGS"
t0=$(date +%s)
if [ ! -x "$WORK/base/bin/bash" ]; then
    echo "fresh_machine: debootstrap bookworm from $MIRROR into $WORK/base"
    debootstrap --include=make bookworm "$WORK/base" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; echo "fresh_machine: debootstrap failed"; exit 2; }
fi
echo "fresh_machine: base root ready ($(( $(date +%s) - t0 )) s)"
rm -rf "$WORK/clone" && git clone -q "$repo" "$WORK/clone" || { echo "fresh_machine: cannot clone $repo"; exit 2; }

fails=0
k=0
for order in $ORDERS; do
    k=$((k + 1))
    root=$WORK/root$k
    umount_under "$root"   # left by an earlier, interrupted run
    rm -rf "$root" && cp -a "$WORK/base" "$root"
    cp -a "$WORK/clone" "$root/root/mpkit"
    mount_in "$root"
    echo "== root $k: make ${order//,/ then make }"
    for target in ${order//,/ }; do
        s=$(date +%s)
        chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            TERM=dumb LANG=C.UTF-8 /bin/bash -c "cd /root/mpkit && make $target" >"$LOGS/root$k.$target.log" 2>&1
        rc=$?
        printf '   make %-5s exit %d  %4d s   %s\n' "$target" "$rc" $(( $(date +%s) - s )) \
            "$(grep -m1 '^mpkit build:' "$LOGS/root$k.$target.log")"
        grep -E '^tests: |^Total [0-9]+ s' "$LOGS/root$k.$target.log" | sed 's/^/     /'
        if [ $rc -ne 0 ]; then fails=$((fails + 1)); tail -25 "$LOGS/root$k.$target.log" | sed 's/^/     | /'; fi
    done
    umount_under "$root"
done
echo "fresh_machine: $([ $fails = 0 ] && echo ok || echo "$fails command(s) FAILED") ($(( $(date +%s) - t0 )) s in all)"
[ $fails = 0 ]
