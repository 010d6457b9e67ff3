#!/usr/bin/env bash
# Run every Criterion test binary given (tests inside a binary run 2 at a
# time), then print one closing line counting every test of every binary.
set -u
tested=0; failed=0; bad_bins=""
here=$(cd "$(dirname "$0")/.." && pwd)
export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
for t in "$@"; do
    echo "== $t"
    out=$(mktemp)
    timeout 1500 "$t" --jobs 2 --short-filename 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    syn=$(grep 'Synthesis:' "$out" | tail -n 1)
    n=$(echo "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    f=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*Crashing: \([0-9]*\).*/\1 \2/p')
    rm -f "$out"
    tested=$((tested + ${n:-0}))
    if [ -n "$f" ]; then failed=$((failed + ${f% *} + ${f#* })); fi
    if [ "$rc" != 0 ] || [ -z "$syn" ]; then bad_bins="$bad_bins $t"; fi
done
echo "tests: $((tested - failed)) passed, $failed failed"
if [ -n "$bad_bins" ]; then echo "failing binaries:$bad_bins"; exit 1; fi
