# bench_lib.sh - shell functions the Redis-front benchmarks share
# (bench_resp.sh, bench_archive.sh); sourced, after the caller defined die.

# wait_for_socket SOCK: until a server answers PING there (30 s at most).
wait_for_socket() {
    i=0
    until redis-cli -s "$1" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 300 ] || die "no server answered on $1"
        sleep 0.1
    done
}

# median: the median of the numbers on standard input, separated by blanks
# or newlines (the mean of the middle two for an even count).
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
