#!/usr/bin/env bash
# Compares two servers' CPU per request, paired: both pinned to the same core at the same time,
# each driven by its own wrk (both on the other core), both CPU times read over the same window.
# The shared machine's drift (steal time, clock) then hits both alike, and the median of the
# rounds' ratios B/A is a fair comparison even where single runs spread ±10 %.
#
#   bench/ab.sh A B MODE CONN [ROUNDS] [RUN_S]
#     A, B   a usher binary, or `floor` / `vfloor` (examples/floor.rs plain / verifying ES256)
#     MODE   fresh (a token never seen before on every request) | cached (1000 warmed sessions) |
#            steady (fresh, on a node whose viewers come and go: each server is first filled with
#            PREFILL_S seconds of fresh viewers who stay, then every USER_NEW of a new viewer is
#            followed by the USER_END of one admitted 512 before, so the tables stop growing;
#            requests alternate USER_NEW / USER_END, see bench/trigger.lua)
#     CONN   keep | close
#   e.g. bench/ab.sh /tmp/old/usher target/release/usher fresh close 8 3
#
# Both ushers get the same config (one `jwt` policy, tracking on); EXTRA_A / EXTRA_B append config
# lines to one of them (e.g. EXTRA_A=$'[sessions]\nmax_entries = 0'); LOG_A / LOG_B set one's
# `[log] level` (default `warn`, as bench/cpu.sh; the shipped config.toml says `info`). FLOOR=<binary>
# runs another build of examples/floor.rs as `floor` / `vfloor` (e.g. one built with PGO). SEQUENTIAL=1
# runs A and B one after the other instead (alternating order). Loopback only; everything started is stopped
# on exit; every run is bounded in time. Builds release (usher's examples) first.
set -euo pipefail

[ $# -ge 4 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
A=$1; B=$2; MODE=$3; CONN=$4; ROUNDS=${5:-6}; RUN_S=${6:-3}
cd "$(dirname "$0")/.."
ROOT=$PWD
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --examples 2>&1 | tail -1 >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
EX=$TARGET/release/examples
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_work ab

"$EX/bench_tokens" "$WORK/keys" 120000 $((2 * ROUNDS + 1)) >/dev/null
head -n 1000 "$WORK/keys/tokens_0.txt" >"$WORK/cached.txt"
start() { # name what extra-config log-level -> sets PID_<name>, URL_<name>
    local p c
    p=$(free_port); c=$(free_port)
    case $2 in
        floor) taskset -c 0 timeout 1800 "${FLOOR:-$EX/floor}" "127.0.0.1:$p" 1800 >/dev/null 2>&1 & ;;
        vfloor) taskset -c 0 timeout 1800 "${FLOOR:-$EX/floor}" "127.0.0.1:$p" 1800 "$WORK/keys/k1.pub.pem" >/dev/null 2>&1 & ;;
        *)
            { bench_config "$p" "$c" "$WORK/state-$1" "$4" "$WORK/keys/k1.pub.pem"; echo "$3"; } >"$WORK/$1.toml"
            taskset -c 0 timeout 1800 "$2" serve --config "$WORK/$1.toml" >/dev/null 2>"$WORK/$1.log" &
            ;;
    esac
    local pid=$!
    PIDS+=("$pid")
    wait_port 127.0.0.1 "$p"
    # `timeout` runs the server as its child: CPU is read from the server itself.
    local real
    real=$(pgrep -P "$pid" | head -1)
    eval "PID_$1=${real:-$pid}; URL_$1=http://127.0.0.1:$p/trigger"
}
start a "$A" "${EXTRA_A:-}" "${LOG_A:-warn}"
start b "$B" "${EXTRA_B:-}" "${LOG_B:-warn}"
hz=$(getconf CLK_TCK)
args() { # round
    case $MODE in
        cached) echo "cached $CONN bench 1 $WORK/cached.txt 1000" ;;
        steady) if [ "$1" = 0 ]; then echo "fresh $CONN bench 1 $WORK/keys/tokens_0.txt 0 0"
                else echo "steady $CONN bench 1 $WORK/keys/tokens_$1.txt 0 $1"; fi ;;
        *) echo "fresh $CONN bench 1 $WORK/keys/tokens_$1.txt 0 $1" ;;
    esac
}
drive() { # url round out
    # shellcheck disable=SC2046
    taskset -c 1 timeout $((RUN_S + 30)) wrk -t1 -c64 -d"${RUN_S}s" --timeout 10s \
        -s "$ROOT/bench/trigger.lua" "$1" -- $(args "$2") >"$3" 2>&1 || true
}
per_req() { # ticks file
    awk -v t="$1" -v hz="$hz" '/^REQUESTS / {n=$2} /^RPS / {r=$2} /^(NOT_TRUE|WRAPPED|ERRORS) / {b+=$2}
        END {printf "%.2f %.0f %d", (n > 0) ? t / hz * 1e6 / n : 0, r, b}' "$2"
}
if [ "$MODE" = cached ]; then drive "$URL_a" 0 /dev/null; drive "$URL_b" 0 /dev/null; fi
if [ "$MODE" = steady ]; then
    RUN_S=${PREFILL_S:-3} drive "$URL_a" 0 "$WORK/fill-a.out" &
    fa=$!
    RUN_S=${PREFILL_S:-3} drive "$URL_b" 0 "$WORK/fill-b.out" &
    wait "$fa" $!
    echo "filled with viewers who stay: A $(awk '/^REQUESTS/ {print $2}' "$WORK/fill-a.out"), B $(awk '/^REQUESTS/ {print $2}' "$WORK/fill-b.out")"
fi
: >"$WORK/ratios"
for r in $(seq 1 "$ROUNDS"); do
    a0=$(ticks "$PID_a"); b0=$(ticks "$PID_b")
    if [ "${SEQUENTIAL:-0}" = 1 ]; then
        if [ $((r % 2)) = 1 ]; then drive "$URL_a" "$r" "$WORK/a.out"; drive "$URL_b" $((r + ROUNDS)) "$WORK/b.out"
        else drive "$URL_b" $((r + ROUNDS)) "$WORK/b.out"; drive "$URL_a" "$r" "$WORK/a.out"; fi
    else
        drive "$URL_a" "$r" "$WORK/a.out" &
        da=$!
        drive "$URL_b" $((r + ROUNDS)) "$WORK/b.out" &
        db=$!
        wait "$da" "$db"
    fi
    a1=$(ticks "$PID_a"); b1=$(ticks "$PID_b")
    x=$(per_req $((a1 - a0)) "$WORK/a.out"); y=$(per_req $((b1 - b0)) "$WORK/b.out")
    ratio=$(awk -v a="${x%% *}" -v b="${y%% *}" 'BEGIN {printf "%.4f", (a > 0) ? b / a : 0}')
    echo "round $r: A µs/req req/s bad: $x | B: $y | B/A $ratio"
    echo "$ratio" >>"$WORK/ratios"
done
echo "median B/A over $ROUNDS rounds: $(sort -g "$WORK/ratios" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
