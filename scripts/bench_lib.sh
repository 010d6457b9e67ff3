# bench_lib.sh - shell functions the benchmarks share (bench_resp.sh,
# bench_archive.sh, bench_snap.sh); sourced, after the caller defined die.

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
# or newlines (the mean of the middle two for an even count), printed with
# all its digits (nanosecond counts too).
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.15g\n", m }'; }

# children_cpu_ms FILE: the user + system milliseconds of the shell's
# children in FILE, the output of the `times` builtin (its second line,
# "XmY.YYYs XmY.YYYs").  Two of them, taken around a command in a subshell
# that runs nothing else meanwhile, give that command's CPU time.
children_cpu_ms() { tail -1 "$1" | awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); n += t[1] * 60000 + t[2] * 1000 } printf "%d", n }'; }
