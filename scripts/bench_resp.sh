#!/bin/sh
# bench_resp.sh - throughput and p99 latency of the Redis front against
# Debian's redis-server with the same durability.
#
# Starts
#   1. jetsnapfs with commit=durable (every +OK is on disk: the event loop
#      makes each turn durable with one log flush before replying),
#   2. redis-server with appendonly yes and appendfsync always (every write
#      fsynced before the reply: the like-for-like durability),
# both on Unix sockets, and runs each load of issue 12's table with
# `redis-benchmark -d VALUE_SIZE`, alternating the two servers, RUNS times
# each; the best run of each side counts (highest requests/s, lowest p99).
# Then SET at CLIENTS clients again on jetsnapfs while full backups run back
# to back through the control file, against the same without a backup,
# alternated BK_RUNS times, medians compared.
#
# The table's last column is redis-benchmark's own CPU share (of one CPU),
# the highest of its runs against each server: near 100, the single-threaded
# client is what limits the row (GET at 50 clients, SET at 200 on a
# two-core machine), and the ratio says only that both servers keep up.
#
# Usage: bench_resp.sh [BUILD_DIR]
# Environment: BUILD (default build, or $1), REQUESTS (100000: the
# 50-client SET count; the other loads scale from it), CLIENTS (50), RUNS
# (2), BK_RUNS (3: alternations of the backup part), PREFILL (keys of 4 KiB
# written before the jetsnapfs runs so a backup has a database to copy,
# default 20000), VALUE_SIZE (redis-benchmark -d, default 100), KEEP=1 keeps
# the temporary directory.
set -eu

BUILD=${1:-${BUILD:-build}}   # scripts/bench.sh passes it as $1 too
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
RUNS=${RUNS:-2}
BK_RUNS=${BK_RUNS:-3}
PREFILL=${PREFILL:-20000}
VALUE_SIZE=${VALUE_SIZE:-100}
JETSNAPFS=${JETSNAPFS:-$BUILD/jetsnapfs}

die() { echo "bench_resp: $*" >&2; exit 1; }
. "$(dirname "$0")/bench_lib.sh"
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

# run SOCK TEST CLIENTS PIPELINE N: prints "RPS P99_MS CLIENT_PCT" from
# redis-benchmark's CSV line for TEST (SET or GET), and the share of one CPU
# redis-benchmark itself used (user + system over the run's wall time, from
# `times` around it alone: run is called in a subshell, so the children
# counted are its own).  Near 100, the single-threaded client is what
# limits the row, whichever the server.
run() {
    t0=$(date +%s%N)
    times >"$T/times0"
    redis-benchmark -s "$1" -t "$2" -c "$3" -P "$4" -n "$5" -d "$VALUE_SIZE" -r 1000000 --csv \
        >"$T/csv" 2>"$T/csv.err" || { cat "$T/csv.err" >&2; die "redis-benchmark failed on $1"; }
    times >"$T/times1"
    t1=$(date +%s%N)
    want=$(echo "$2" | tr a-z A-Z)
    cpu=$(($(children_cpu_ms "$T/times1") - $(children_cpu_ms "$T/times0")))
    pct=$(awk -v ms="$cpu" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", (ns > 0 ? 100 * ms * 1e6 / ns : 0) }')
    awk -F'"' -v t="$want" -v pct="$pct" '$2 == t { print $4, $14, pct }' "$T/csv"
}

# The backup part's load: SET at CLIENTS clients, "RPS P99_MS".
bench() { r=$(run "$1" set "$CLIENTS" 1 "$REQUESTS") || return 1; echo "${r% *}"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
best_rps() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
best_p99() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b ? a : b) }'; }

# --- the two servers ---------------------------------------------------------
mkdir -p "$T/db" "$T/mnt" "$T/backups" "$T/redis"
SOCK="$T/js.sock"
"$JETSNAPFS" -f -o "create,commit=durable,listen=$SOCK" "$T/db" "$T/mnt" >"$T/jetsnapfs.log" 2>&1 &
JS_PID=$!
wait_for_socket "$SOCK"
[ -w "$T/mnt/control" ] || die "mount not ready: $T/mnt/control missing"
RSOCK="$T/redis.sock"
redis-server --port 0 --unixsocket "$RSOCK" --unixsocketperm 700 --dir "$T/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no \
    --logfile "$T/redis/redis.log" &
RS_PID=$!
wait_for_socket "$RSOCK"

# Prefill both alike, so GETs find keys and a backup has something to copy.
if [ "$PREFILL" -gt 0 ]; then
    for s in "$SOCK" "$RSOCK"; do
        redis-benchmark -s "$s" -t set -c "$CLIENTS" -n "$PREFILL" -r "$PREFILL" -d 4096 -q \
            >/dev/null 2>&1 || die "prefill failed on $s"
    done
fi

# --- issue 12's table, alternated --------------------------------------------
N1=$((REQUESTS / 5))
NP=$((REQUESTS * 4))
NG=$((REQUESTS * 2))
printf '%-30s %12s %12s %7s %10s %10s %7s %9s\n' "load (-d $VALUE_SIZE, best of $RUNS)" \
    "jetsnap/s" "redis/s" "ratio" "js p99 ms" "rd p99 ms" "ratio" "client %"
table_row() {   # LABEL TEST CLIENTS PIPELINE N
    label=$1 test=$2 nc=$3 pl=$4 n=$5
    jr=0 jp="" rr=0 rp="" jc=0 rc=0
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        r=$(run "$SOCK" "$test" "$nc" "$pl" "$n") || exit 1
        [ -n "$r" ] || die "no $test line in redis-benchmark's output"
        set -- $r
        jr=$(best_rps "$jr" "$1"); jp=$(best_p99 "$2" "$jp"); jc=$(best_rps "$jc" "$3")
        r=$(run "$RSOCK" "$test" "$nc" "$pl" "$n") || exit 1
        [ -n "$r" ] || die "no $test line in redis-benchmark's output"
        set -- $r
        rr=$(best_rps "$rr" "$1"); rp=$(best_p99 "$2" "$rp"); rc=$(best_rps "$rc" "$3")
        i=$((i + 1))
    done
    printf '%-30s %12s %12s %7s %10s %10s %7s %9s\n' "$label" "$jr" "$rr" "$(ratio "$jr" "$rr")" \
        "$jp" "$rp" "$(ratio "$jp" "$rp")" "$jc/$rc"
    if [ "$test" = set ] && [ "$nc" = "$CLIENTS" ] && [ "$pl" = 1 ]; then
        JS_RPS=$jr JS_P99=$jp
    fi
}
JS_RPS=0 JS_P99=0
table_row "SET, 1 client"              set 1   1  "$N1"
table_row "SET, $CLIENTS clients"      set "$CLIENTS" 1 "$REQUESTS"
table_row "SET, 200 clients"           set 200 1  "$REQUESTS"
table_row "SET, $CLIENTS clients, pipeline 16" set "$CLIENTS" 16 "$NP"
table_row "GET, $CLIENTS clients"      get "$CLIENTS" 1 "$NG"

kill -TERM "$RS_PID"
wait "$RS_PID" 2>/dev/null || true
RS_PID=""

# --- SET at CLIENTS clients while full backups run back to back --------------
# Alternated: alone, then while full backups run back to back through the
# control file (so some backup is running for the whole measurement however
# long one backup takes), BK_RUNS times each; the medians are compared.
# Both sides run on the same instance, each after a sync and a pause, so
# neither inherits the other's dirty data.
backup_loop() {
    touch "$T/backup-loop.on"
    (
        n=$(cat "$T/backups.count" 2>/dev/null || echo 0)
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
}
A_RPS="" A_P99="" B_RPS="" B_P99="" HELD=""
i=0
while [ "$i" -lt "$BK_RUNS" ]; do
    sync; sleep 0.5
    r=$(bench "$SOCK") || exit 1
    A_RPS="$A_RPS ${r% *}" A_P99="$A_P99 ${r#* }"
    sync; sleep 0.5
    nb0=$(cat "$T/backups.count" 2>/dev/null || echo 0)
    backup_loop
    sleep 0.2
    r=$(bench "$SOCK") || exit 1
    B_RPS="$B_RPS ${r% *}" B_P99="$B_P99 ${r#* }"
    PACER=$(sed -n 's/^pacer: //p' "$T/mnt/status" 2>/dev/null | head -1)
    rm -f "$T/backup-loop.on"
    wait "$LOOP_PID" 2>/dev/null || true
    LOOP_PID=""
    nb=$(cat "$T/backups.count" 2>/dev/null || echo 0)
    echo "  run $((i + 1)): alone ${A_RPS##* } requests/s p99 ${A_P99##* } ms;" \
         "with backup ${B_RPS##* } requests/s p99 ${B_P99##* } ms ($((nb - nb0)) full backup(s), pacer at end: ${PACER:-unknown})"
    i=$((i + 1))
done
if [ -s "$T/backup-errors" ]; then
    echo "  backup errors:"; sed 's/^/    /' "$T/backup-errors"
fi
JA_RPS=$(echo "$A_RPS" | median) JA_P99=$(echo "$A_P99" | median)
JB_RPS=$(echo "$B_RPS" | median) JB_P99=$(echo "$B_P99" | median)
echo "jetsnapfs commit=durable alone (median of $BK_RUNS):  $JA_RPS requests/s  p99 $JA_P99 ms"
echo "jetsnapfs commit=durable + backup (median of $BK_RUNS): $JB_RPS requests/s  p99 $JB_P99 ms"

kill -TERM "$JS_PID"
wait "$JS_PID" 2>/dev/null || true
JS_PID=""

echo "ratio with-backup/alone throughput:      $(ratio "$JB_RPS" "$JA_RPS") (goal >= 0.8)"
echo "ratio with-backup/alone p99:             $(ratio "$JB_P99" "$JA_P99") (goal <= 3)"
