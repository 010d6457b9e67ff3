#!/bin/sh
# Run every Criterion test binary given; print one summary line and fail if any
# test failed.  Each binary gets a generous wall-clock timeout.
set -u
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $t"
    if timeout 1200 "$t" --jobs 2 -q; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $t"; fi
done
echo "test binaries: $pass passed, $fail failed"
[ "$fail" = 0 ] || { echo "failed:$failed"; exit 1; }
