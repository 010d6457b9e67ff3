#!/bin/sh
# bench_archive.sh - what continuous archiving (SPEC 8) costs and gives:
# Part 2 runs first, while both instances are equally fresh.
#   1. loss window: the age of the oldest commit not yet archived
#      (status archive_lag_s, in seconds with millisecond precision,
#      sampled every 0.1 s) under steady SETs with archive_timeout=1 and
#      archive_command=cp to a local directory; goal p99 <= 2 s.
#   2. durable SET throughput (redis-benchmark, CLIENTS clients) with
#      archiving on against off, RUNS runs of each, the two daemons
#      alternating (off first in odd rounds, on first in even ones),
#      median of each; goal >= 0.95x.
# Exits non-zero only when something fails, never because a goal was
# missed.
#
# Usage: bench_archive.sh [BUILD_DIR]
# Environment: BUILD (default build, or $1), REQUESTS (SETs a throughput
# run, default 200000), CLIENTS (50), RUNS (5), WINDOW_SECS (seconds of
# sampling, default 30), VALUE_SIZE (default 100), KEEP=1 keeps the
# temporary directory, ONLY=throughput skips the loss window, JETSNAPFS
# (default BUILD/jetsnapfs) the daemon to run, ARCHIVE_ROOT (default the
# temporary directory, on the same disk as DBDIR) where `cp` archives to, in
# a directory of its own removed at the end: a tmpfs there stands for a
# remote store, which reads the log but writes nothing to the database's
# disk.
set -eu

BUILD=${1:-${BUILD:-build}}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
RUNS=${RUNS:-5}
WINDOW_SECS=${WINDOW_SECS:-30}
VALUE_SIZE=${VALUE_SIZE:-100}
JETSNAPFS=${JETSNAPFS:-$BUILD/jetsnapfs}

die() { echo "bench_archive: $*" >&2; exit 1; }
. "$(dirname "$0")/bench_lib.sh"
for tool in redis-benchmark redis-cli fusermount3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/deps.sh)"
done
[ -x "$JETSNAPFS" ] || die "$JETSNAPFS not built (run make)"

T=$(mktemp -d /tmp/bench_archive.XXXXXX)
ARCHIVE_DIR=""
PIDS=""
LOAD_PID=""
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
    for p in $PIDS; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for m in "$T/off/mnt" "$T/on/mnt"; do
        mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null || true
    done
    [ "${KEEP:-0}" = 1 ] || rm -rf "$T" ${ARCHIVE_DIR:+"$ARCHIVE_DIR"}
}
trap cleanup EXIT INT TERM

# start NAME EXTRA_OPTS: a durable jetsnapfs under $T/NAME listening on
# $T/NAME/sock.
start() {
    mkdir -p "$T/$1/db" "$T/$1/mnt"
    "$JETSNAPFS" -f -o "create,commit=durable,listen=$T/$1/sock$2" "$T/$1/db" "$T/$1/mnt" \
        >"$T/$1/jetsnapfs.log" 2>&1 &
    PIDS="$PIDS $!"
    wait_for_socket "$T/$1/sock"
}

ARCHIVE_DIR=$(mktemp -d "${ARCHIVE_ROOT:-$T}/archive.XXXXXX")
start off ""
start on ",archive_timeout=1,archive_command=cp %p $ARCHIVE_DIR/%f"

# --- 2. durable SET throughput, archiving on against off (first: both fresh) -
# rps SOCK: requests/s of one SET run.
rps() {
    redis-benchmark -s "$1" -t set -c "$CLIENTS" -n "$REQUESTS" -d "$VALUE_SIZE" -r 1000000 --csv \
        >"$T/csv" 2>"$T/csv.err" || { cat "$T/csv.err" >&2; die "redis-benchmark failed on $1"; }
    awk -F'"' '$2 == "SET" { print $4 }' "$T/csv"
}
: >"$T/rps.off"
: >"$T/rps.on"
i=0
while [ "$i" -lt "$RUNS" ]; do
    if [ $((i % 2)) = 0 ]; then order="off on"; else order="on off"; fi
    for side in $order; do
        rps "$T/$side/sock" >>"$T/rps.$side"
    done
    i=$((i + 1))
done
off=$(median <"$T/rps.off")
on=$(median <"$T/rps.on")
# The ratio of each round's two runs, next to each other in time, is less
# moved by what else the machine does than the ratio of the medians.
paired=$(paste "$T/rps.on" "$T/rps.off" | awk '{ print ($2 > 0 ? $1 / $2 : 0) }' | median)
awk -v a="$on" -v b="$off" -v c="$CLIENTS" -v r="$RUNS" -v p="$paired" -v lo="$(tr '\n' ' ' <"$T/rps.off")" \
    -v ln="$(tr '\n' ' ' <"$T/rps.on")" 'BEGIN {
    x = b > 0 ? a / b : 0;
    printf "durable SET, %d clients, median of %d alternating runs: archiving off %.0f/s, on %.0f/s, ratio %.3fx, median of the rounds%s ratios %.3fx (goal >= 0.95x: %s)\n",
           c, r, b, a, x, "\047", p, (p >= 0.95 ? "met" : "MISSED");
    printf "  off: %s\n  on:  %s\n", lo, ln }'
[ "${ONLY:-}" != throughput ] || exit 0
# --- 1. loss window ----------------------------------------------------------
# sample LABEL: archive_lag_s every 0.1 s for WINDOW_SECS while the load
# started by the caller (LOAD_PID) runs; then stop the load.
sample() {
    echo "loss window, $1: archive_lag_s every 0.1 s for ${WINDOW_SECS} s (archive_timeout=1)"
    sleep 2
    end=$(( $(date +%s) + WINDOW_SECS ))
    : >"$T/lag"
    while [ "$(date +%s)" -lt "$end" ]; do
        sed -n 's/^archive_lag_s: //p' "$T/on/mnt/status" >>"$T/lag"
        sleep 0.1
    done
    kill "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=""
    [ -s "$T/lag" ] || die "no archive_lag_s samples"
    sort -n "$T/lag" | awk '{ v[NR] = $1 } END {
        p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1];
        printf "  samples %d  p50 %.3f s  p99 %.3f s  max %.3f s  (goal p99 <= 2 s: %s)\n",
               NR, p50, p99, v[NR], (p99 <= 2 ? "met" : "MISSED") }'
    echo "  generations archived so far: $(ls "$ARCHIVE_DIR" | wc -l)"
}
# Full speed: generations fill and roll by size several times a second.
redis-benchmark -s "$T/on/sock" -t set -c 4 -n 100000000 -d "$VALUE_SIZE" -r 1000000 -q >/dev/null 2>&1 &
LOAD_PID=$!
sample "SETs at full speed, 4 clients"
# Steady and slow (about 50 SETs a second): only archive_timeout rolls.
(i=0; while :; do i=$((i + 1)); redis-cli -s "$T/on/sock" set "slow:$i" v >/dev/null || exit 1; sleep 0.02; done) &
LOAD_PID=$!
sample "about 50 SETs a second, one client"
sed -n 's/^\(archive_[a-z_]*\): /  \1 = /p' "$T/on/mnt/status"
grep -q "archive_last_error: -" "$T/on/mnt/status" || { grep "^archive_" "$T/on/mnt/status" >&2; die "the archiver reported an error"; }
