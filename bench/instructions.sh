#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the same figure for the same build on any day,
# whatever the shared machine's steal time and clock do (bench/ab.sh's CPU times move by ±2
# points from one hour to the next). It counts work, not time: cache misses, page faults and
# the kernel are not in it, so it complements bench/cpu.sh and never replaces it.
#
#   bench/instructions.sh [USHER_BIN]     (default target/release/usher; RUN_S=20 per server)
#   CACHE_SIM=1 bench/instructions.sh target/release-pgo/usher
#
# CACHE_SIM=1 also simulates the core's first-level caches (32 KiB instructions, 48 KiB data) and
# prints their misses per request: how much code and data a request runs through that the last
# one's verify pushed out (user space only: the kernel is not simulated) — the footprint that
# instruction counts miss.
#
# Four servers, one after the other, each under valgrind with instrumentation switched on only
# while wrk drives it (1 thread, 4 kept-alive connections, bench/trigger.lua): the floor and
# usher answering 1000 cached sessions, then the verify floor and usher answering a token never
# seen before on every request. Prints, per request, all instructions and those outside aws-lc
# (the ECDSA verify and the SHA-256 of the signing input are aws-lc's in both), and usher's
# excess over its floor.
#
# Under valgrind, CPU features it does not emulate are off: aws-lc takes its non-ADX P-256 path,
# in both servers alike.
# Loopback only; everything started is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
USHER=${1:-$ROOT/target/release/usher}
RUN_S=${RUN_S:-20}
CACHE_SIM=${CACHE_SIM:-0}
for tool in valgrind callgrind_control callgrind_annotate wrk; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install valgrind wrk)" >&2; exit 1; }
done
cargo build --release --bin usher --examples 2>&1 | tail -1 >&2
EX=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_work instr

"$EX/bench_tokens" "$WORK/keys" 60000 2 >/dev/null
head -n 1000 "$WORK/keys/tokens_0.txt" >"$WORK/cached.txt"

drive() { # port duration out mode...
    local port=$1 secs=$2 out=$3
    shift 3
    timeout $((secs + 60)) wrk -t1 -c4 -d"${secs}s" --timeout 20s -s "$ROOT/bench/trigger.lua" \
        "http://127.0.0.1:$port/trigger" -- "$@" >"$out" 2>&1 || true
}

measure() { # server(floor|vfloor|usher) mode(cached|fresh) -> "requests all outside-aws-lc"
    local p c out=$WORK/cg.$1.$2
    p=$(free_port); c=$(free_port)
    local vg=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$out")
    # The core's L1 caches (32 KiB instruction, 48 KiB data) and a 2 MiB L2 as last level.
    [ "$CACHE_SIM" = 1 ] && vg+=(--cache-sim=yes --I1=32768,8,64 --D1=49152,12,64 --LL=2097152,16,64)
    case $1 in
        floor) "${vg[@]}" "$EX/floor" "127.0.0.1:$p" 900 2>"$WORK/vg.log" & ;;
        vfloor) "${vg[@]}" "$EX/floor" "127.0.0.1:$p" 900 "$WORK/keys/k1.pub.pem" 2>"$WORK/vg.log" & ;;
        usher)
            bench_config "$p" "$c" "$WORK/state-$2" warn "$WORK/keys/k1.pub.pem" >"$WORK/u.toml"
            "${vg[@]}" "$USHER" serve --config "$WORK/u.toml" >/dev/null 2>"$WORK/vg.log" &
            ;;
    esac
    local PID=$!
    PIDS+=("$PID")
    WAIT_PORT_TRIES=2400 BENCH_LOG=$WORK/vg.log wait_port 127.0.0.1 "$p"
    local args
    if [ "$2" = cached ]; then
        args=(cached keep bench 1 "$WORK/cached.txt" 1000)
        drive "$p" 8 /dev/null "${args[@]}"
    else
        args=(fresh keep bench 1 "$WORK/keys/tokens_1.txt" 0 1)
        drive "$p" 4 /dev/null fresh keep bench 1 "$WORK/keys/tokens_0.txt" 0 0
    fi
    callgrind_control -i on "$PID" >/dev/null 2>&1
    drive "$p" "$RUN_S" "$WORK/wrk.out" "${args[@]}"
    callgrind_control -i off "$PID" >/dev/null 2>&1
    callgrind_control -d "$PID" >/dev/null 2>&1
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    local n bad
    n=$(awk '/^REQUESTS /{print $2}' "$WORK/wrk.out")
    bad=$(awk '/^(NOT_TRUE|WRAPPED|ERRORS) /{b+=$2} END {print b+0}' "$WORK/wrk.out")
    [ "${n:-0}" -gt 0 ] && [ "$bad" = 0 ] || { echo "$1 $2: $n requests, $bad bad" >&2; exit 1; }
    # The dump made while instrumentation was on is the largest file.
    local dump
    dump=$(ls -S "$out"* | head -1)
    callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null | awk -v n="$n" '
        /PROGRAM TOTALS/ && !total {
            k = 0
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9,]+$/) { gsub(",", "", $i); t[++k] = $i }
            total = t[1]
            # With the cache simulated: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
            if (k >= 6) { i1 = t[4]; d1 = t[5] + t[6] }
            next
        }
        /^ *[0-9,]+ \( *[0-9.]+%\) / {
            v = $1; gsub(",", "", v)
            if ($0 ~ /aws-lc|aws_lc/) lc += v
        }
        END { printf "%d %.0f %.0f %.0f %.0f\n", n, total / n, (total - lc) / n, i1 / n, d1 / n }'
}

echo "usher: $USHER ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $RUN_S s a server, $(date -u '+%F %H:%M UTC')"
if [ "$CACHE_SIM" = 1 ]; then
    printf '| %-14s | %9s | %12s | %16s | %12s | %12s |\n' "server, answer" requests "instr./req" "outside aws-lc" "L1i misses" "L1d misses"
    printf '|%s|%s|%s|%s|%s|%s|\n' "----------------" "-----------" "--------------" "------------------" "--------------" "--------------"
else
    printf '| %-14s | %9s | %12s | %16s |\n' "server, answer" requests "instr./req" "outside aws-lc"
    printf '|%s|%s|%s|%s|\n' "----------------" "-----------" "--------------" "------------------"
fi
declare -A ALL OUT
for run in "floor cached" "usher cached" "vfloor fresh" "usher fresh"; do
    read -r n all outside i1 d1 <<<"$(measure $run)"
    ALL[$run]=$all; OUT[$run]=$outside
    if [ "$CACHE_SIM" = 1 ]; then
        printf '| %-14s | %9s | %12s | %16s | %12s | %12s |\n' "$run" "$n" "$all" "$outside" "$i1" "$d1"
    else
        printf '| %-14s | %9s | %12s | %16s |\n' "$run" "$n" "$all" "$outside"
    fi
done
excess() { awk -v u="$1" -v f="$2" 'BEGIN {printf "%+d (%+.1f %%)", u - f, (u - f) * 100 / f}'; }
echo
echo "usher cached vs floor:        $(excess "${ALL[usher cached]}" "${ALL[floor cached]}") instructions a request"
echo "usher fresh vs verify floor:  $(excess "${ALL[usher fresh]}" "${ALL[vfloor fresh]}") instructions a request"
echo "  of which outside aws-lc:    $(excess "${OUT[usher fresh]}" "${OUT[vfloor fresh]}") (the excess is usher's own work)"
