#!/usr/bin/env bash
# make demo: the main job end to end, on a fresh Debian machine as root.
#   create an instance, mount it, write through the Redis socket while a full
#   atomic backup and an incremental run, restore the set, mount the restored
#   copy, show that the data matches, unmount everything, print a report.
# It leaves no mount or process behind, even when interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

say() { printf '\n== %s\n' "$*"; }
# After fusermount3 -u: the daemon removes its socket, then closes the
# instance (a last checkpoint) and releases DBDIR's lock; wait for that.
wait_closed() {
    for _ in $(seq 300); do
        [ ! -e "$1/jetsnap.sock" ] && flock -n "$1/jetsnap.lock" true 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: $1 still open after 30 s" >&2
    return 1
}

if [ "$(id -u)" = 0 ]; then
    scripts/deps.sh >/dev/null
fi
make -s all >/dev/null
JFS="$top/build/jetsnapfs"
JS="$top/build/jetsnap"

work=$(mktemp -d /tmp/jetsnap-demo.XXXXXX)
db="$work/db" mnt="$work/mnt" bk="$work/backups/nightly" rs="$work/restored" mnt2="$work/mnt2"
mkdir -p "$mnt" "$mnt2" "$work/backups"
writer_pids=()

cleanup() {
    set +e
    for p in "${writer_pids[@]}"; do kill "$p" 2>/dev/null; done
    for m in "$mnt" "$mnt2"; do
        if grep -qs " $m fuse" /proc/self/mounts; then
            fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        fi
    done
    # Give the daemons their clean shutdown, then make sure they are gone.
    for _ in $(seq 50); do pgrep -f "jetsnapfs.*$work" >/dev/null || break; sleep 0.1; done
    pkill -9 -f "jetsnapfs.*$work" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status_key() { sed -n "s/^$2: //p" "$1/status"; }

say "create an instance and mount it: jetsnapfs -o create $db $mnt"
# jetsnapfs returns once the mount and the socket answer (after recovery).
"$JFS" -o create,commit=durable "$db" "$mnt"
ls -l "$mnt" "$mnt/live"
sock="$db/jetsnap.sock"
redis-cli -s "$sock" ping

say "write through the socket: a monotonic writer (seq:N and counter in one MULTI) and redis-benchmark"
# The monotonic writer: each MULTI/EXEC sets seq:N and counter=N in one
# transaction, so any consistent copy holds seq:1..counter with no gap.
cc -O2 -o "$work/seqwriter" scripts/seqwriter.c
"$work/seqwriter" "$sock" "$work/acked" &
writer_pids+=($!)
redis-benchmark -s "$sock" -t set -n 100000000 -r 50000 -d 100 -c 8 -q >/dev/null 2>&1 &
writer_pids+=($!)
sleep 2
before=$(redis-cli -s "$sock" get counter)
echo "counter acknowledged before the backup: $before; keys: $(redis-cli -s "$sock" dbsize)"

say "full atomic backup while clients write: jetsnap backup $mnt $bk --atomic --create"
t0=$(date +%s.%N)
"$JS" backup "$mnt" "$bk" --atomic --create
t1=$(date +%s.%N)
full_pages=$(status_key "$mnt" pages_verified)
full_recs=$(status_key "$mnt" log_records_verified)
full_bytes=$(status_key "$mnt" bytes_done)
sed -n '1,3p;/^progress_percent/p;/^gen_/p;/^truncated/p;/^result/p' "$mnt/status"

sleep 2
say "incremental backup while clients write: jetsnap backup $mnt $bk --atomic --incremental"
"$JS" backup "$mnt" "$bk" --atomic --incremental
inc_recs=$(status_key "$mnt" log_records_verified)

say "stop the writers, then a last incremental at a quiet moment"
for p in "${writer_pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
writer_pids=()
final=$(redis-cli -s "$sock" get counter)
keys=$(redis-cli -s "$sock" dbsize)
"$JS" backup "$mnt" "$bk" --atomic --incremental
echo "the events file:"
cat "$mnt/events"

say "the set is a plain directory"
ls -l "$bk/new"
(cd "$bk/new" && sha256sum -c --quiet SHA256SUMS && echo "sha256sum -c SHA256SUMS: all files OK")
"$JS" verify "$bk" >/dev/null && echo "jetsnap verify: checksums, chain and a trial restore pass"

say "unmount the live instance (clean shutdown) and restore the set: jetsnap restore $bk $rs"
fusermount3 -u "$mnt"
wait_closed "$db"
t2=$(date +%s.%N)
"$JS" restore "$bk" "$rs" 2>/dev/null
t3=$(date +%s.%N)

say "mount the restored copy and compare"
"$JFS" "$rs" "$mnt2"
rsock="$rs/jetsnap.sock"
rcounter=$(redis-cli -s "$rsock" get counter)
rseq=$(redis-cli -s "$rsock" --scan --pattern 'seq:*' | wc -l)
rkeys=$(redis-cli -s "$rsock" dbsize)
echo "restored: counter=$rcounter, seq:* keys=$rseq, keys=$rkeys"
fusermount3 -u "$mnt2"
wait_closed "$rs"
ok=1
[ "$rcounter" = "$final" ] || { echo "MISMATCH: counter $rcounter, live had $final"; ok=0; }
[ "$rseq" = "$rcounter" ] || { echo "MISMATCH: $rseq seq keys for counter $rcounter (a gap)"; ok=0; }
[ "$rcounter" -ge "$before" ] || { echo "MISMATCH: counter $rcounter below $before acknowledged"; ok=0; }
if cmp -s <("$JS" dump "$db") <("$JS" dump "$rs"); then
    echo "jetsnap dump of the live instance and of the restored copy: identical"
else
    echo "MISMATCH: dumps differ"; ok=0
fi

full_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
rest_s=$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", b - a }')
rate=$(awk -v n="$full_bytes" -v s="$full_s" 'BEGIN { printf "%.1f", (s > 0 ? n / s / 1e6 : 0) }')
set_bytes=$(du -sb "$bk/new" | cut -f1)
say "report"
printf '%-34s %s\n' "keys" "$keys" \
    "monotonic writer transactions" "$final (seq:1..$final, no gap)" \
    "backup set size (bytes)" "$set_bytes" \
    "full backup time (s)" "$full_s" \
    "full backup rate (MB/s)" "$rate" \
    "pages verified (full)" "$full_pages" \
    "log records verified (full / incr)" "$full_recs / $inc_recs" \
    "restore time (s)" "$rest_s" \
    "result" "$([ $ok = 1 ] && echo 'restored data matches' || echo 'MISMATCH')"
[ $ok = 1 ]
