#!/usr/bin/env bash
# lint.sh - the layout rules a compiler does not check (run by `make lint`).
#
#   1. no include cycle between core/ modules (a module is x.c with x.h;
#      an edge is "x includes y.h"; cycles are found with tsort(1))
#   2. no core/ file includes an fs/ header or <fuse*.h>: the library
#      knows nothing of the daemon
#   3. no main() in core/: the programs live in fs/
#   4. no C file over 1,000 lines in core/, fs/ or tests/
#   5. no function over 120 lines, except those marked on the line before
#      with the comment  lint: long-function (why)
# Prints one line per violation, then a count; exits 1 when there is any.
set -u
cd "$(dirname "$0")/.."
bad=0
say() { echo "lint: $*"; bad=$((bad + 1)); }

# 1. include cycles among core modules.  Edges are written "from to"; a
#    module including its own header is no edge.
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in $(find core -name '*.[ch]' | sort); do
    from=$(basename "$f"); from=${from%.*}
    grep -oE '^#include "[^"]+\.h"' "$f" | sed -E 's/.*"([^"]+)\.h"/\1/' | while read -r inc; do
        to=$(basename "$inc")
        [ "$to" = "$from" ] || echo "$from $to"
    done
done | sort -u > "$edges"
if ! tsort "$edges" >/dev/null 2>"$edges.err"; then
    cyc=$(grep -v 'input contains a loop' "$edges.err" | sed -E 's/^tsort: //' | tr '\n' ' ')
    say "include cycle between core modules: ${cyc:-see tsort}"
fi
rm -f "$edges.err"

# 2. the library does not reach up into the daemon.
while IFS= read -r hit; do
    say "core includes a daemon header: $hit"
done < <(grep -nE '^#include ("(\.\./)?fs/|<fuse)' $(find core -name '*.[ch]') 2>/dev/null)

# 3. no program entry point in the library.
while IFS= read -r hit; do
    say "main() in core/: $hit"
done < <(grep -nE '^(int[[:space:]]+)?main[[:space:]]*\(' $(find core -name '*.c') 2>/dev/null)

# 4. file length.
for f in $(find core fs tests -name '*.[ch]' | sort); do
    n=$(wc -l < "$f")
    [ "$n" -le 1000 ] || say "$f has $n lines (at most 1000)"
done

# 5. function length: a definition starts at a line that opens a function
#    body ("{" alone in column 0 after a signature) and ends at "}" in
#    column 0.
for f in $(find core fs tests -name '*.c' | sort); do
    awk -v file="$f" '
        /lint: long-function/ { allow = NR }
        /^[A-Za-z_].*\(/ && !/;[[:space:]]*$/ { sig = $0; sigline = NR }
        /^\{/ && sigline { start = NR; name = sig; ok = (allow && allow >= sigline - 1); sigline = 0 }
        /^\}/ && start {
            len = NR - start + 1
            if (len > 120 && !ok) {
                sub(/\(.*/, "", name); n = split(name, w, /[ *]+/)
                printf "lint: %s:%d: function %s has %d lines (at most 120)\n", file, start, w[n], len
            }
            start = 0
        }' "$f"
done > "$edges"
while IFS= read -r line; do
    echo "$line"; bad=$((bad + 1))
done < "$edges"

if [ "$bad" -gt 0 ]; then
    echo "lint: $bad problems"
    exit 1
fi
echo "lint: clean"
