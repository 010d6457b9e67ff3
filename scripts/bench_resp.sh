#!/bin/sh
# bench_resp.sh - write throughput and p99 latency of the Redis front.
#
# Runs `redis-benchmark -t set -c CLIENTS -n REQUESTS` against
#   1. jetsnapfs with commit=durable (every +OK is on disk, group commit),
#   2. the same while full backups run back to back through the control file
#      (`echo "DEST create wait" > MOUNTPOINT/control`, one after another),
#   3. Debian's redis-server with appendonly yes and appendfsync always
#      (every write fsynced before the reply: the like-for-like durability),
# and prints requests/s, p99 and the ratios.
#
# Usage: bench_resp.sh [BUILD_DIR]
# Environment: BUILD (default build, or $1), REQUESTS (100000), CLIENTS (50),
# PREFILL (keys of 4 KiB written before both jetsnapfs runs so a backup has a
# database to copy, default 20000), VALUE_SIZE (redis-benchmark -d, default
# 3 bytes, its own default), KEEP=1 keeps the temporary directory.
set -eu

BUILD=${1:-${BUILD:-build}}   # scripts/bench.sh passes it as $1 too
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
PREFILL=${PREFILL:-20000}
VALUE_SIZE=${VALUE_SIZE:-3}
JETSNAPFS=${JETSNAPFS:-$BUILD/jetsnapfs}

die() { echo "bench_resp: $*" >&2; exit 1; }
for tool in redis-benchmark redis-cli redis-server fusermount3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/deps.sh)"
done
[ -x "$JETSNAPFS" ] || die "$JETSNAPFS not built (run make)"

T=$(mktemp -d /tmp/bench_resp.XXXXXX)
JS_PID=""
RS_PID=""
LOOP_PID=""
cleanup() {
    [ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null || true
    rm -f "$T/backup-loop.on"
    if [ -n "$JS_PID" ]; then
        kill -TERM "$JS_PID" 2>/dev/null || true
        wait "$JS_PID" 2>/dev/null || true
    fi
    if [ -n "$RS_PID" ]; then
        kill -TERM "$RS_PID" 2>/dev/null || true
        wait "$RS_PID" 2>/dev/null || true
    fi
    mountpoint -q "$T/mnt" 2>/dev/null && fusermount3 -u "$T/mnt" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

wait_for_socket() {
    i=0
    until redis-cli -s "$1" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 300 ] || die "no server answered on $1"
        sleep 0.1
    done
}

# bench SOCK: prints "RPS P99_MS" from redis-benchmark's CSV line for SET.
bench() {
    redis-benchmark -s "$1" -t set -c "$CLIENTS" -n "$REQUESTS" -d "$VALUE_SIZE" -r 1000000 --csv \
        >"$T/csv" 2>"$T/csv.err" || { cat "$T/csv.err" >&2; die "redis-benchmark failed on $1"; }
    awk -F'"' '$2 == "SET" { print $4, $14 }' "$T/csv"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# --- 1. jetsnapfs, commit=durable -----------------------------------------
mkdir -p "$T/db" "$T/mnt" "$T/backups"
SOCK="$T/js.sock"
"$JETSNAPFS" -f -o "create,commit=durable,listen=$SOCK" "$T/db" "$T/mnt" >"$T/jetsnapfs.log" 2>&1 &
JS_PID=$!
wait_for_socket "$SOCK"
[ -w "$T/mnt/control" ] || die "mount not ready: $T/mnt/control missing"

# Prefill first, so both jetsnapfs runs see the same database and a backup
# has something to copy.
if [ "$PREFILL" -gt 0 ]; then
    redis-benchmark -s "$SOCK" -t set -c "$CLIENTS" -n "$PREFILL" -r "$PREFILL" -d 4096 -q \
        >/dev/null 2>&1 || die "prefill failed"
fi
r=$(bench "$SOCK") || exit 1
set -- $r
JS_RPS=$1 JS_P99=$2
echo "jetsnapfs commit=durable:           $JS_RPS requests/s  p99 $JS_P99 ms"

# --- 2. the same while full backups run back to back -----------------------
# Back to back, so some backup is running for the whole measurement however
# long one backup takes.
touch "$T/backup-loop.on"
(
    n=0
    while [ -e "$T/backup-loop.on" ]; do
        n=$((n + 1))
        # `wait`: the write returns when that backup ends; a failure is
        # recorded, not fatal, so the loop keeps the engine busy.
        echo "$T/backups/b$n create wait" >"$T/mnt/control" 2>>"$T/backup-errors" || true
        echo "$n" >"$T/backups.count"
        rm -rf "$T/backups/b$n"
    done
) &
LOOP_PID=$!
sleep 0.2
r=$(bench "$SOCK") || exit 1
set -- $r
JB_RPS=$1 JB_P99=$2
BSTATE=$(sed -n 's/^state: //p' "$T/mnt/status" 2>/dev/null | head -1)
rm -f "$T/backup-loop.on"
wait "$LOOP_PID" 2>/dev/null || true
LOOP_PID=""
NB=$(cat "$T/backups.count" 2>/dev/null || echo 0)
echo "jetsnapfs commit=durable + backup:  $JB_RPS requests/s  p99 $JB_P99 ms" \
     "($NB full backup(s) started, state at end: ${BSTATE:-unknown})"
if [ -s "$T/backup-errors" ]; then
    echo "  backup errors:"; sed 's/^/    /' "$T/backup-errors"
fi

kill -TERM "$JS_PID"
wait "$JS_PID" 2>/dev/null || true
JS_PID=""

# --- 3. redis-server, appendonly yes, appendfsync always -------------------
mkdir -p "$T/redis"
RSOCK="$T/redis.sock"
redis-server --port 0 --unixsocket "$RSOCK" --unixsocketperm 700 --dir "$T/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no \
    --logfile "$T/redis/redis.log" &
RS_PID=$!
wait_for_socket "$RSOCK"
r=$(bench "$RSOCK") || exit 1
set -- $r
RD_RPS=$1 RD_P99=$2
echo "redis-server appendfsync=always:    $RD_RPS requests/s  p99 $RD_P99 ms"

echo "ratio jetsnap/redis throughput:          $(ratio "$JS_RPS" "$RD_RPS")"
echo "ratio jetsnap/redis p99:                 $(ratio "$JS_P99" "$RD_P99")"
echo "ratio with-backup/alone throughput:      $(ratio "$JB_RPS" "$JS_RPS")"
echo "ratio with-backup/alone p99:             $(ratio "$JB_P99" "$JS_P99")"
