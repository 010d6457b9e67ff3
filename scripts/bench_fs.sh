#!/bin/sh
# bench_fs.sh - jetsnapfs read path and control latency.
#
# Sequential read of live/jetsnap.edb through the mount against the same file
# read directly, 1 MiB reads, page cache hot and after dropping caches (root
# only: echo 3 > /proc/sys/vm/drop_caches); latency of `cat status` and of a
# refused control write, beside `cat` of a plain file and a write to /dev/null.
# Prints one `name: value` line per measurement and the ratios.
#
# Environment: BUILD (default build), BENCH_FS_MB (database size, default
# 256), BENCH_FS_RUNS (runs per throughput figure, median taken; default 3),
# BENCH_FS_N (iterations per latency figure; default 200).
set -eu
BUILD=${BUILD:-build}
MB=${BENCH_FS_MB:-256}
RUNS=${BENCH_FS_RUNS:-3}
N=${BENCH_FS_N:-200}
DAEMON=$(cd "$BUILD" && pwd)/jetsnapfs
CLI=$(cd "$BUILD" && pwd)/jetsnap
[ -x "$DAEMON" ] || { echo "bench_fs: no $DAEMON (run make first)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "bench_fs: redis-cli needed to load data" >&2; exit 1; }

tmp=$(mktemp -d /tmp/jetsnap-benchfs.XXXXXX)
mnt=$tmp/mnt
db=$tmp/db
cleanup() {
    fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    # The daemon checkpoints and exits after the unmount: wait for the
    # clean-shutdown mark before removing its files.
    i=0
    while [ -x "$CLI" ] && [ $i -lt 100 ] &&
          ! "$CLI" info "$db" 2>/dev/null | grep -q '^state: clean-shutdown'; do
        sleep 0.1; i=$((i + 1))
    done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir -p "$mnt"

now_ns() { date +%s%N; }

"$DAEMON" -o create,auto_unmount,commit=lazy "$db" "$mnt"
i=0
until grep -q '^state: idle' "$mnt/status" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "bench_fs: daemon not ready" >&2; exit 1; }
    sleep 0.1
done

# Load MB MiB of 64 KiB values through the RESP socket (redis-cli --pipe).
n=$((MB * 16))
awk -v n="$n" 'BEGIN {
    srand(7); v = "";
    for (i = 0; i < 1024; i++) v = v sprintf("%c", 97 + int(rand() * 26));
    while (length(v) < 65536) v = v v;
    v = substr(v, 1, 65536);
    for (i = 0; i < n; i++) {
        k = sprintf("bench:%08d", i);
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v;
    }
}' | redis-cli -s "$db/jetsnap.sock" --pipe >/dev/null
sleep 1.5   # let the checkpoint write the pages out
size=$(stat -c %s "$db/jetsnap.edb")
echo "db_bytes: $size"

# Median of RUNS timings (ns) of a sequential 1 MiB read of $1.
read_ns() {
    f=$1; drop=$2; r=0; all=""
    while [ $r -lt "$RUNS" ]; do
        if [ "$drop" = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
        t0=$(now_ns)
        dd if="$f" of=/dev/null bs=1M status=none
        t1=$(now_ns)
        all="$all $((t1 - t0))"
        r=$((r + 1))
    done
    echo $all | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
mbps() { awk -v b="$size" -v ns="$1" 'BEGIN { printf "%.0f", b / (ns / 1e9) / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

cat "$db/jetsnap.edb" > /dev/null
hot_direct=$(read_ns "$db/jetsnap.edb" 0)
hot_mount=$(read_ns "$mnt/live/jetsnap.edb" 0)
echo "read_hot_direct_MBps: $(mbps "$hot_direct")"
echo "read_hot_mount_MBps: $(mbps "$hot_mount")"
echo "ratio_read_hot_mount_vs_direct: $(ratio "$hot_mount" "$hot_direct")"
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then
    cold_direct=$(read_ns "$db/jetsnap.edb" 1)
    cold_mount=$(read_ns "$mnt/live/jetsnap.edb" 1)
    echo "read_cold_direct_MBps: $(mbps "$cold_direct")"
    echo "read_cold_mount_MBps: $(mbps "$cold_mount")"
    echo "ratio_read_cold_mount_vs_direct: $(ratio "$cold_mount" "$cold_direct")"
else
    echo "read_cold: skipped (needs root to drop caches)"
fi

# Latency: N x `cat status` (a fork+exec each, as an admin would) beside N x
# `cat` of a plain file of the same size; N refused control writes (a
# relative path: EINVAL, validated inside the write) beside N writes to
# /dev/null, both from one shell (no fork per write).
cp "$mnt/status" "$tmp/status.plain"
lat_us() {   # $1 = command string run N times by one sh
    t0=$(now_ns)
    sh -c "i=0; while [ \$i -lt $N ]; do $1; i=\$((i + 1)); done" 2>/dev/null
    t1=$(now_ns)
    awk -v ns="$((t1 - t0))" -v n="$N" 'BEGIN { printf "%.1f", ns / n / 1000 }'
}
cat_mount=$(lat_us "cat '$mnt/status' >/dev/null")
cat_plain=$(lat_us "cat '$tmp/status.plain' >/dev/null")
ctl_mount=$(lat_us "echo relative/path > '$mnt/control' || :")
ctl_plain=$(lat_us "echo relative/path > /dev/null || :")
grep -q '^state: idle' "$mnt/status" || echo "bench_fs: warning: a control write was accepted" >&2
echo "cat_status_us: $cat_mount"
echo "cat_plain_file_us: $cat_plain"
echo "ratio_cat_status_vs_plain: $(awk -v a="$cat_mount" -v b="$cat_plain" 'BEGIN { printf "%.2f", a / b }')"
echo "refused_control_write_us: $ctl_mount"
echo "dev_null_write_us: $ctl_plain"
echo "ratio_refused_control_vs_dev_null_write: $(awk -v a="$ctl_mount" -v b="$ctl_plain" 'BEGIN { printf "%.2f", a / b }')"
