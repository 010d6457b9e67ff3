#!/bin/sh
# bench.sh - `make bench`: the engine benchmark, then the filesystem and RESP
# benchmarks when present.
#
# Builds $BUILD/bench_engine from scripts/bench_engine.c against
# $BUILD/libjetsnap.a and runs it in a temporary directory under /tmp
# (removed on exit), then runs scripts/bench_fs.sh and scripts/bench_resp.sh
# if they exist and are executable, passing BUILD.  Exits non-zero only when
# something crashes or fails, never because a goal was missed.
#
# Environment: BUILD (default build), BENCH_SECS, BENCH_REPS, BENCH_DB_MB,
# BENCH_READ_KEYS, BENCH_ONLY (see scripts/bench_engine.c), CC (default cc).
# TMPDIR is pointed at the work directory so js_verify's trial restore is
# cleaned up with it.  Takes about 3 minutes on the 2-core machine; needs
# about 4 GiB free under /tmp with the default 1 GiB instance.
set -eu

BUILD=${BUILD:-build}
CC=${CC:-cc}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"

[ -f "$BUILD/libjetsnap.a" ] || { echo "bench: $BUILD/libjetsnap.a not built (run make)" >&2; exit 1; }

echo "== bench_engine: building $BUILD/bench_engine"
$CC -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icore scripts/bench_engine.c "$BUILD/libjetsnap.a" \
    -lsqlite3 -lcrypto -pthread -o "$BUILD/bench_engine"

T=$(mktemp -d /tmp/jetsnap-bench.XXXXXX)
cleanup() { rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
echo "== bench_engine (work dir $T)"
TMPDIR="$T" "$BUILD/bench_engine" "$T" || { echo "bench: bench_engine failed (exit $?)" >&2; status=1; }
rm -rf "$T"/* 2>/dev/null || true

for extra in scripts/bench_fs.sh scripts/bench_resp.sh scripts/bench_snap.sh scripts/bench_archive.sh; do
    if [ -x "$extra" ]; then
        echo
        echo "== $extra"
        BUILD=$BUILD "$extra" "$BUILD" || { echo "bench: $extra failed (exit $?)" >&2; status=1; }
    fi
done
exit $status
