#!/usr/bin/env bash
# Server CPU per request, and the cost of new stream names: the figures req/s hides.
#
#   bench/cpu.sh            # prints a markdown report; OUT=FILE writes it there too
#
# With the server pinned to one core and wrk on the other, req/s is bounded by the load
# generator, so two servers can answer the same req/s at different costs. This script reads the
# server's own CPU time (utime + stime of the whole process, /proc/PID/stat) before and after a
# fixed wrk run and divides by the requests wrk got answered:
#   floor   — examples/floor.rs, a bare hyper server answering `true` (the same request bodies)
#   cached  — usher, 1000 warmed sessions answered from the decision cache (jwt policy, allows)
#   fresh   — usher, every request a new session with a token never seen before in the run
# each with kept-alive connections and with `Connection: close` (MistServer's way), RUNS rounds of
# RUN_S-second runs, floor and usher interleaved, the median reported; "floor + verify" adds the
# raw ES256 verify cost measured by benches/verify.rs on the same core, and the verify floor
# (examples/floor.rs with a key) does that verify in a server. Then the same comparisons PAIRED:
# both servers on the same core at the same time, each with its own wrk, the median of the
# rounds' ratios — the shared machine's drift hits both alike (the targets are judged by these);
# paired only, fresh answers also on a steady node (viewers leave as they come: MODE steady of
# bench/trigger.lua), whose tables no longer grow.
# Then new stream names: answers/s and CPU per answer for
# NAMES_MEASURE new names at 0, 100k and 200k names already tracked (public policy, kept-alive).
# Then live sessions (SPEC §9): cached and fresh (kept-alive) on two ushers at the same time, session
# tracking on (the default) and off (`[sessions] max_entries = 0`), then again on the tracking one
# after SESSIONS_FILL sessions were admitted under a `cut_at_exp` policy (their timers pending).
#
# Loopback only; every process it starts is stopped on exit; every run is bounded in time.
# usher is measured as it ships: built by packaging/build-release.sh (PGO, target/release-pgo;
# ~15 minutes more); PGO=0 measures the plain `cargo build --release` binary instead.
# BENCH_USHER_BIN=<another usher binary> measures an older build the same way. LOG_LEVEL (warn)
# is usher's `[log] level`; `info` shows the cost of enabled spans and logs. FLEET=1 runs usher as a
# fleet node following a local `nats-server -js` (SPEC §11): the trigger path must cost the same.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUN_S=${RUN_S:-5}
RUNS=${RUNS:-5}
CONNS=${CONNS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
LOG_LEVEL=${LOG_LEVEL:-warn}
NAMES_MEASURE=${NAMES_MEASURE:-50000}
MAIN=${MAIN:-1}              # 0: skip floor / cached / fresh
NAMES=${NAMES:-1}            # 0: skip the new-stream-names part
SESSIONS=${SESSIONS:-1}      # 0: skip the live-sessions part (tracking on vs off, 1M tracked)
SESSIONS_FILL=${SESSIONS_FILL:-1000000}
OUT=${OUT:-}
FLEET=${FLEET:-0}

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_work cpu

log() { printf '[cpu %s] %s\n' "$(date +%T)" "$*" >&2; }

command -v wrk >/dev/null || { log "wrk is needed (apt-get install wrk)"; exit 1; }
log "building release (usher, examples, verify bench)"
cargo build --release --bin usher --examples 2>&1 | tail -1 >&2
cargo bench --bench verify --no-run 2>&1 | tail -1 >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
if [ -z "${BENCH_USHER_BIN:-}" ] && [ "${PGO:-1}" = 1 ]; then
    log "building the release binary (packaging/build-release.sh: PGO)"
    BENCH_USHER_BIN=$("$ROOT/packaging/build-release.sh")
fi
SERVER_BIN=${BENCH_USHER_BIN:-$BIN/usher}
log "usher: $SERVER_BIN"
VERIFY_BIN=$(ls -t "$TARGET"/release/deps/verify-* | grep -v '\.d$' | head -1)
CLK_TCK=$(getconf CLK_TCK)

BENCH_LOG=$WORK/usher.log

# One wrk run against a server process; prints "US_PER_REQ REQUESTS RPS BAD".
cpu_once() { # pid url lua-args...
    local pid=$1 url=$2; shift 2
    local before after
    before=$(ticks "$pid")
    taskset -c "$CLIENT_CPU" timeout $((RUN_S + 30)) wrk -t1 -c"$CONNS" -d"${RUN_S}s" --timeout 10s \
        -s "$ROOT/bench/trigger.lua" "$url" -- "$@" >"$WORK/wrk.out" 2>&1 || true
    after=$(ticks "$pid")
    awk -v t=$((after - before)) -v hz="$CLK_TCK" '
        /^(REQUESTS|RPS|NOT_TRUE|WRAPPED|ERRORS) / {v[$1]=$2}
        END { n = v["REQUESTS"] + 0; us = (n > 0) ? t / hz * 1e6 / n : 0;
              printf "%.2f %d %.0f %d\n", us, n, v["RPS"], v["NOT_TRUE"] + v["WRAPPED"] + v["ERRORS"] }' "$WORK/wrk.out"
}

# Two servers on the same core at the same time, each driven by its own wrk (both on the client
# core): both CPU times are read over the same window, so the shared machine's drift (steal time,
# clock) hits both alike and the ratio of one round is a fair comparison. Prints
# "US_A US_B RATIO_B_TO_A BAD".
pair_once() { # pid_a url_a "args_a" pid_b url_b "args_b"
    local a0 b0 a1 b1
    a0=$(ticks "$1"); b0=$(ticks "$4")
    taskset -c "$CLIENT_CPU" timeout $((RUN_S + 30)) wrk -t1 -c"$CONNS" -d"${RUN_S}s" --timeout 10s \
        -s "$ROOT/bench/trigger.lua" "$2" -- $3 >"$WORK/wrk_a.out" 2>&1 &
    local wa=$!
    taskset -c "$CLIENT_CPU" timeout $((RUN_S + 30)) wrk -t1 -c"$CONNS" -d"${RUN_S}s" --timeout 10s \
        -s "$ROOT/bench/trigger.lua" "$5" -- $6 >"$WORK/wrk_b.out" 2>&1 &
    local wb=$!
    wait "$wa" "$wb" || true
    a1=$(ticks "$1"); b1=$(ticks "$4")
    awk -v ta=$((a1 - a0)) -v tb=$((b1 - b0)) -v hz="$CLK_TCK" '
        FNR == 1 { f++ }
        /^REQUESTS / { n[f] = $2 } /^(NOT_TRUE|WRAPPED|ERRORS) / { bad += $2 }
        END { ua = (n[1] > 0) ? ta / hz * 1e6 / n[1] : 0; ub = (n[2] > 0) ? tb / hz * 1e6 / n[2] : 0;
              printf "%.2f %.2f %.4f %d\n", ua, ub, (ua > 0) ? ub / ua : 0, bad }' "$WORK/wrk_a.out" "$WORK/wrk_b.out"
}
# Median of column $2 of file $1.
col_median() { awk -v c="$2" '{print $c}' "$1" | median; }

NPROC=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
log "machine: $NPROC cpus, $CPU_MODEL, load $LOAD_BEFORE"

TOKENS_PER_FILE=${TOKENS_PER_FILE:-120000}
TOKEN_FILES=$((4 * RUNS + 1))
log "signing $((TOKENS_PER_FILE * TOKEN_FILES)) tokens"
"$BIN/examples/bench_tokens" "$WORK/keys" "$TOKENS_PER_FILE" "$TOKEN_FILES"
head -n 1000 "$WORK/keys/tokens_0.txt" >"$WORK/cached_tokens.txt"

# The raw verify cost is measured in every round too (the shared core's speed drifts); the median.
verify_us() {
    taskset -c "$SERVER_CPU" "$VERIFY_BIN" "$1" >"$WORK/verify.txt"
    awk '$2 == "backend=aws-lc-rs-parsed" {sub("n=", "", $3); printf "%.2f\n", 1e6 / $3}' "$WORK/verify.txt"
}

# --- floor and usher, side by side ---------------------------------------------------------------
# Both run for the whole measurement, pinned to the same core (the idle one costs nothing), and
# their runs are interleaved, so drift in the shared machine's load hits both series alike.
P_FLOOR=$(free_port)
taskset -c "$SERVER_CPU" "$BIN/examples/floor" "127.0.0.1:$P_FLOOR" 1800 &
FLOOR_PID=$!
PIDS+=($FLOOR_PID)
wait_port 127.0.0.1 "$P_FLOOR"
FLOOR_URL=http://127.0.0.1:$P_FLOOR/trigger
# The verify floor: the same bare server checking each token's ES256 signature, nothing else.
P_VFLOOR=$(free_port)
taskset -c "$SERVER_CPU" "$BIN/examples/floor" "127.0.0.1:$P_VFLOOR" 1800 "$WORK/keys/k1.pub.pem" &
VFLOOR_PID=$!
PIDS+=($VFLOOR_PID)
wait_port 127.0.0.1 "$P_VFLOOR"
VFLOOR_URL=http://127.0.0.1:$P_VFLOOR/trigger

P_TRIG=$(free_port); P_CTL=$(free_port)
FLEET_SECTION=""
if [ "$FLEET" = 1 ]; then
    NATS_BIN=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
    P_NATS=$(free_port)
    "$NATS_BIN" -a 127.0.0.1 -p "$P_NATS" -js -sd "$WORK/js" 2>"$WORK/nats.log" &
    PIDS+=($!)
    wait_port 127.0.0.1 "$P_NATS"
    FLEET_SECTION=$(printf '[fleet]\nnats_urls = ["nats://127.0.0.1:%s"]\nnode_id = "bench"\n' "$P_NATS")
fi
write_config() { # phase [extra config]
    {
        bench_config "$P_TRIG" "$P_CTL" "$WORK/state-$1" "$LOG_LEVEL" "$WORK/keys/k1.pub.pem"
        cat <<EOF
[[policies]]
object = "names"
tenant = "t1"
type = "public"
[[policies]]
object = "cutbench"
tenant = "t1"
type = "jwt"
cut_at_exp = true
${2:-}
$FLEET_SECTION
EOF
    } >"$WORK/usher.toml"
}
USHER_PID=
start_usher() { # phase [extra config]
    write_config "$1" "${2:-}"
    taskset -c "$SERVER_CPU" timeout 1800 "$SERVER_BIN" serve --config "$WORK/usher.toml" \
        2>>"$WORK/usher.log" >/dev/null &
    USHER_PID=$!
    PIDS+=($USHER_PID)
    wait_port 127.0.0.1 "$P_TRIG"
    USHER_REAL_PID=$(pgrep -P "$USHER_PID" | head -1)
}
stop_usher() { kill "$USHER_PID"; wait "$USHER_PID" 2>/dev/null || true; }

if [ "$MAIN" = 1 ]; then
start_usher a
URL=http://127.0.0.1:$P_TRIG/trigger
log "warming the floor and 1000 cached sessions"
cpu_once "$FLOOR_PID" "$FLOOR_URL" cached keep bench 1 "$WORK/cached_tokens.txt" 1000 >/dev/null
cpu_once "$USHER_REAL_PID" "$URL" cached keep bench 1 "$WORK/cached_tokens.txt" 1000 >/dev/null
SERIES=(floor_keep floor_close cached_keep cached_close fresh_keep fresh_close vfloor_keep vfloor_close)
for s in "${SERIES[@]}"; do : >"$WORK/runs_$s"; done
: >"$WORK/verify_runs"
for r in $(seq 1 "$RUNS"); do
    log "round $r of $RUNS"
    verify_us 0.7 >>"$WORK/verify_runs"
    cpu_once "$FLOOR_PID" "$FLOOR_URL" cached keep bench 1 "$WORK/cached_tokens.txt" 1000 >>"$WORK/runs_floor_keep"
    cpu_once "$USHER_REAL_PID" "$URL" cached keep bench 1 "$WORK/cached_tokens.txt" 1000 >>"$WORK/runs_cached_keep"
    cpu_once "$FLOOR_PID" "$FLOOR_URL" cached close bench 1 "$WORK/cached_tokens.txt" 1000 >>"$WORK/runs_floor_close"
    cpu_once "$USHER_REAL_PID" "$URL" cached close bench 1 "$WORK/cached_tokens.txt" 1000 >>"$WORK/runs_cached_close"
    # Fresh runs use a token file each (tokens_1 .. tokens_2*RUNS), none reused.
    cpu_once "$USHER_REAL_PID" "$URL" fresh keep bench 1 "$WORK/keys/tokens_$r.txt" 0 "$r" >>"$WORK/runs_fresh_keep"
    cpu_once "$USHER_REAL_PID" "$URL" fresh close bench 1 "$WORK/keys/tokens_$((r + RUNS)).txt" 0 "$((r + RUNS))" >>"$WORK/runs_fresh_close"
    cpu_once "$VFLOOR_PID" "$VFLOOR_URL" fresh keep bench 1 "$WORK/keys/tokens_$r.txt" 0 "$r" >>"$WORK/runs_vfloor_keep"
    cpu_once "$VFLOOR_PID" "$VFLOOR_URL" fresh close bench 1 "$WORK/keys/tokens_$((r + RUNS)).txt" 0 "$((r + RUNS))" >>"$WORK/runs_vfloor_close"
done
series() { # name -> "US RPS BAD"
    local f=$WORK/runs_$1
    log "  $1 (us/req requests rps bad): $(tr '\n' ';' <"$f")"
    echo "$(awk '{print $1}' "$f" | median) $(awk '{print $3}' "$f" | median) $(awk '{s+=$4} END {print s+0}' "$f")"
}
FLOOR_KEEP=($(series floor_keep)); FLOOR_CLOSE=($(series floor_close))
CACHED_KEEP=($(series cached_keep)); CACHED_CLOSE=($(series cached_close))
FRESH_KEEP=($(series fresh_keep)); FRESH_CLOSE=($(series fresh_close))
VFLOOR_KEEP=($(series vfloor_keep)); VFLOOR_CLOSE=($(series vfloor_close))
VERIFY_US=$(median <"$WORK/verify_runs")
log "  one ES256 verify (us, per round): $(tr '\n' ';' <"$WORK/verify_runs") median $VERIFY_US"
stop_usher
fi

# --- paired: floor and usher at the same time on the same core ---------------------------------
# A usher started anew (so the fresh token files are new to it); each round runs both at once.
if [ "$MAIN" = 1 ]; then
    start_usher p
    URL=http://127.0.0.1:$P_TRIG/trigger
    CACHED_ARGS="cached keep bench 1 $WORK/cached_tokens.txt 1000"
    pair_once "$FLOOR_PID" "$FLOOR_URL" "$CACHED_ARGS" "$USHER_REAL_PID" "$URL" "$CACHED_ARGS" >/dev/null
    PAIRED=(cached_keep cached_close fresh_keep fresh_close steady_keep steady_close)
    for s in "${PAIRED[@]}"; do : >"$WORK/pair_$s"; done
    for r in $(seq 1 "$RUNS"); do
        log "paired round $r of $RUNS"
        pair_once "$FLOOR_PID" "$FLOOR_URL" "$CACHED_ARGS" "$USHER_REAL_PID" "$URL" "$CACHED_ARGS" >>"$WORK/pair_cached_keep"
        CLOSE_ARGS="cached close bench 1 $WORK/cached_tokens.txt 1000"
        pair_once "$FLOOR_PID" "$FLOOR_URL" "$CLOSE_ARGS" "$USHER_REAL_PID" "$URL" "$CLOSE_ARGS" >>"$WORK/pair_cached_close"
        K="fresh keep bench 1 $WORK/keys/tokens_$r.txt 0 $r"
        pair_once "$VFLOOR_PID" "$VFLOOR_URL" "$K" "$USHER_REAL_PID" "$URL" "$K" >>"$WORK/pair_fresh_keep"
        C="fresh close bench 1 $WORK/keys/tokens_$((r + RUNS)).txt 0 $((r + RUNS))"
        pair_once "$VFLOOR_PID" "$VFLOOR_URL" "$C" "$USHER_REAL_PID" "$URL" "$C" >>"$WORK/pair_fresh_close"
        # A node whose viewers come and go: each new viewer's USER_NEW followed by the USER_END
        # of one admitted 512 before (bench/trigger.lua), on tables the rounds above filled.
        S="steady keep bench 1 $WORK/keys/tokens_$((r + 2 * RUNS)).txt 0 $((r + 2 * RUNS))"
        pair_once "$VFLOOR_PID" "$VFLOOR_URL" "$S" "$USHER_REAL_PID" "$URL" "$S" >>"$WORK/pair_steady_keep"
        S="steady close bench 1 $WORK/keys/tokens_$((r + 3 * RUNS)).txt 0 $((r + 3 * RUNS))"
        pair_once "$VFLOOR_PID" "$VFLOOR_URL" "$S" "$USHER_REAL_PID" "$URL" "$S" >>"$WORK/pair_steady_close"
    done
    for s in "${PAIRED[@]}"; do
        log "  paired $s (us_floor us_usher ratio bad): $(tr '\n' ';' <"$WORK/pair_$s")"
    done
    stop_usher
fi
kill "$FLOOR_PID" "$VFLOOR_PID"; wait "$FLOOR_PID" "$VFLOOR_PID" 2>/dev/null || true

# --- new stream names ----------------------------------------------------------------------------
NAMES_ROWS=""
if [ "$NAMES" = 1 ]; then
    start_usher b
    tracked=0
    for target in 0 100000 200000; do
        if [ "$target" -gt "$tracked" ]; then
            fill=$((target - tracked))
            log "new names: filling to $target tracked ($fill more)"
            taskset -c "$CLIENT_CPU" timeout 900 "$BIN/examples/bench_load" "127.0.0.1:$P_TRIG" names+ \
                "$fill" "$CONNS" keep 7 1 "" "f$target-" >"$WORK/fill.out"
            log "  $(cat "$WORK/fill.out")"
            tracked=$target
        fi
        before=$(ticks "$USHER_REAL_PID")
        out=$(taskset -c "$CLIENT_CPU" timeout 900 "$BIN/examples/bench_load" "127.0.0.1:$P_TRIG" names+ \
            "$NAMES_MEASURE" "$CONNS" keep 7 1 "" "m$target-")
        after=$(ticks "$USHER_REAL_PID")
        tracked=$((tracked + NAMES_MEASURE))
        elapsed=$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' <<<"$out")
        rate=$(awk -v n="$NAMES_MEASURE" -v e="$elapsed" 'BEGIN { printf "%.0f", n / e }')
        us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$NAMES_MEASURE" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        log "  at $target tracked: $out; $rate/s, $us us server CPU each"
        NAMES_ROWS+="| $target | $rate | $us | \`$out\` |"$'\n'
    done
    stop_usher
fi
# --- live sessions: tracking on vs off, and with SESSIONS_FILL sessions tracked -------------------
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
tracked() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "usher_sessions_tracked" {print $2}'; }
vs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'; }
SESSION_ROWS=""
if [ "$SESSIONS" = 1 ]; then
    P_TRIG=$(free_port); P_CTL=$(free_port)
    start_usher s-off "[sessions]
max_entries = 0"
    OFF_PID=$USHER_REAL_PID; OFF_SHELL=$USHER_PID; OFF_URL=http://127.0.0.1:$P_TRIG/trigger
    P_TRIG=$(free_port); P_CTL=$(free_port)
    start_usher s-on
    ON_PID=$USHER_REAL_PID; ON_CTL=$P_CTL; ON_TRIG=$P_TRIG; ON_URL=http://127.0.0.1:$P_TRIG/trigger
    log "sessions: warming 1000 cached sessions on usher with tracking off and on"
    cpu_once "$OFF_PID" "$OFF_URL" cached keep bench 1 "$WORK/cached_tokens.txt" 1000 >/dev/null
    cpu_once "$ON_PID" "$ON_URL" cached keep bench 1 "$WORK/cached_tokens.txt" 1000 >/dev/null
    for s in on_cached on_fresh full_cached full_fresh; do : >"$WORK/pair_$s"; done
    CACHED_ARGS="cached keep bench 1 $WORK/cached_tokens.txt 1000"
    for r in $(seq 1 "$RUNS"); do
        log "sessions: paired round $r of $RUNS (tracking off / on)"
        pair_once "$OFF_PID" "$OFF_URL" "$CACHED_ARGS" "$ON_PID" "$ON_URL" "$CACHED_ARGS" >>"$WORK/pair_on_cached"
        F="fresh keep bench 1 $WORK/keys/tokens_$r.txt 0 $r"
        pair_once "$OFF_PID" "$OFF_URL" "$F" "$ON_PID" "$ON_URL" "$F" >>"$WORK/pair_on_fresh"
    done
    RSS_BEFORE=$(rss_mib "$ON_PID"); TRACKED_BEFORE=$(tracked "$ON_CTL")
    log "sessions: admitting $SESSIONS_FILL sessions under cut_at_exp (tracked: $TRACKED_BEFORE, RSS $RSS_BEFORE MiB)"
    FILL_OUT=$(BENCH_WRAP_TOKENS=1 taskset -c "$CLIENT_CPU" timeout 900 "$BIN/examples/bench_load" \
        "127.0.0.1:$ON_TRIG" cutbench "$SESSIONS_FILL" "$CONNS" keep 7 1 "$WORK/keys/tokens_0.txt" "c")
    RSS_AFTER=$(rss_mib "$ON_PID"); TRACKED_AFTER=$(tracked "$ON_CTL")
    log "  $FILL_OUT; tracked $TRACKED_AFTER, RSS $RSS_AFTER MiB"
    for r in $(seq 1 "$RUNS"); do
        log "sessions: paired round $r of $RUNS (off / on with $TRACKED_AFTER tracked)"
        pair_once "$OFF_PID" "$OFF_URL" "$CACHED_ARGS" "$ON_PID" "$ON_URL" "$CACHED_ARGS" >>"$WORK/pair_full_cached"
        F="fresh keep bench 1 $WORK/keys/tokens_$((r + RUNS)).txt 0 $((r + RUNS))"
        pair_once "$OFF_PID" "$OFF_URL" "$F" "$ON_PID" "$ON_URL" "$F" >>"$WORK/pair_full_fresh"
    done
    for s in on_cached on_fresh full_cached full_fresh; do
        log "  paired $s (us_off us_on ratio bad): $(tr '\n' ';' <"$WORK/pair_$s")"
    done
    kill "$OFF_SHELL"; wait "$OFF_SHELL" 2>/dev/null || true
    stop_usher
    pct_of() { awk -v r="$1" 'BEGIN { printf "%+.1f%%", (r - 1) * 100 }'; }
    prow() { # label file-cached file-fresh
        local bad=$(( $(awk '{s+=$4} END {print s+0}' "$WORK/pair_$2") + $(awk '{s+=$4} END {print s+0}' "$WORK/pair_$3") ))
        echo "| $1 | $(col_median "$WORK/pair_$2" 1) | $(col_median "$WORK/pair_$2" 2) | $(pct_of "$(col_median "$WORK/pair_$2" 3)") | $(col_median "$WORK/pair_$3" 1) | $(col_median "$WORK/pair_$3" 2) | $(pct_of "$(col_median "$WORK/pair_$3" 3)") | $bad |"
    }
    SESSION_ROWS="$(prow "tracking on (default)" on_cached on_fresh)
$(prow "tracking on, $TRACKED_AFTER sessions tracked, their cut timers pending" full_cached full_fresh)"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report --------------------------------------------------------------------------------------
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'; }
REPORT=""
if [ "$MAIN" = 1 ]; then
REPORT=$(cat <<EOF
Produced by \`bench/cpu.sh\` (commit \`$COMMIT\`, $(date -u '+%Y-%m-%d %H:%M UTC'), binary \`${SERVER_BIN#"$ROOT"/}\`,
log level \`$LOG_LEVEL\`, fleet $([ "$FLEET" = 1 ] && echo "on: a local nats-server -js" || echo off)). **Machine:** $NPROC CPUs, \`$CPU_MODEL\`; load $LOAD_BEFORE before, $LOAD_AFTER after.
Server pinned to CPU $SERVER_CPU, wrk (1 thread, $CONNS connections) to CPU $CLIENT_CPU; median of $RUNS interleaved runs of $RUN_S s each.
Server CPU = utime + stime of the whole process (\`/proc/PID/stat\`, $CLK_TCK ticks/s) over the run / requests answered.
One ES256 verify (aws-lc-rs, key parsed once, benches/verify.rs on CPU $SERVER_CPU, median of one 0.7 s run per round): $VERIFY_US µs.

| path | keep-alive µs/req | vs floor | close µs/req | vs floor | req/s keep / close | bad answers |
|---|---|---|---|---|---|---|
| floor (\`examples/floor.rs\`) | ${FLOOR_KEEP[0]} | | ${FLOOR_CLOSE[0]} | | ${FLOOR_KEEP[1]} / ${FLOOR_CLOSE[1]} | $((FLOOR_KEEP[2] + FLOOR_CLOSE[2])) |
| usher, cached | ${CACHED_KEEP[0]} | $(pct "${CACHED_KEEP[0]}" "${FLOOR_KEEP[0]}") | ${CACHED_CLOSE[0]} | $(pct "${CACHED_CLOSE[0]}" "${FLOOR_CLOSE[0]}") | ${CACHED_KEEP[1]} / ${CACHED_CLOSE[1]} | $((CACHED_KEEP[2] + CACHED_CLOSE[2])) |
| verify floor (floor + one ES256 verify per request, in the server) | ${VFLOOR_KEEP[0]} | | ${VFLOOR_CLOSE[0]} | | ${VFLOOR_KEEP[1]} / ${VFLOOR_CLOSE[1]} | $((VFLOOR_KEEP[2] + VFLOOR_CLOSE[2])) |
| usher, fresh token | ${FRESH_KEEP[0]} | $(pct "${FRESH_KEEP[0]}" "${VFLOOR_KEEP[0]}") of the verify floor; $(pct "${FRESH_KEEP[0]}" "$(awk -v f="${FLOOR_KEEP[0]}" -v v="$VERIFY_US" 'BEGIN{print f + v}')") of floor + bench verify | ${FRESH_CLOSE[0]} | $(pct "${FRESH_CLOSE[0]}" "${VFLOOR_CLOSE[0]}") of the verify floor; $(pct "${FRESH_CLOSE[0]}" "$(awk -v f="${FLOOR_CLOSE[0]}" -v v="$VERIFY_US" 'BEGIN{print f + v}')") of floor + bench verify | ${FRESH_KEEP[1]} / ${FRESH_CLOSE[1]} | $((FRESH_KEEP[2] + FRESH_CLOSE[2])) |

Targets: cached within 10 % of the floor; fresh within 5 % of floor + one verify (the verify floor
does that verify in a server, where it costs more than in the bench's tight loop).

**Paired** (the comparison the targets are judged by): floor and usher on CPU $SERVER_CPU at the same time, each driven by
its own wrk on CPU $CLIENT_CPU, both CPU times read over the same $RUN_S s window; median of $RUNS rounds (each server gets
about half the core, so the µs are higher than above; the ratio is what counts). The steady rows are fresh answers on a
node whose viewers come and go, so its tables no longer grow: every new viewer's \`USER_NEW\` is followed by the
\`USER_END\` of one admitted 512 requests before (the verify floor answers it \`true\` unread), and the µs are per request
of either kind.

| path | floor µs/req | usher µs/req | usher vs floor (median of the rounds' ratios) | bad answers |
|---|---|---|---|---|
$(for s in "${PAIRED[@]}"; do
    case $s in cached_*) f=floor ;; *) f="verify floor" ;; esac
    echo "| ${s/_/, } (vs $f) | $(col_median "$WORK/pair_$s" 1) | $(col_median "$WORK/pair_$s" 2) | $(awk -v r="$(col_median "$WORK/pair_$s" 3)" 'BEGIN { printf "%+.1f%%", (r - 1) * 100 }') | $(awk '{s+=$4} END {print s+0}' "$WORK/pair_$s") |"
done)
EOF
)
fi
if [ "$NAMES" = 1 ]; then
    REPORT+=$(cat <<EOF


New stream names ($NAMES_MEASURE sessions, each on its own new stream under a public policy, $CONNS kept-alive connections, \`examples/bench_load\`):

| names tracked before | answers/s | server µs per answer | raw |
|---|---|---|---|
$NAMES_ROWS
EOF
)
fi
if [ "$SESSIONS" = 1 ]; then
    REPORT+=$(cat <<EOF


Live sessions (SPEC §9), kept-alive connections: usher with tracking off (\`[sessions] max_entries = 0\`) and on
(the default) at the same time on CPU $SERVER_CPU, each driven by its own wrk, median of $RUNS paired rounds of $RUN_S s
(the ratio is the median of the rounds' ratios). The last row after \`examples/bench_load\` admitted $SESSIONS_FILL
sessions under a \`cut_at_exp\` policy (\`$FILL_OUT\`; usher RSS $RSS_BEFORE MiB -> $RSS_AFTER MiB, decision cache
included; $TRACKED_BEFORE -> $TRACKED_AFTER sessions tracked):

| usher with tracking | cached µs off | cached µs on | on vs off | fresh µs off | fresh µs on | on vs off | bad answers |
|---|---|---|---|---|---|---|---|
$SESSION_ROWS
EOF
)
fi
printf '%s\n' "$REPORT"
[ -z "$OUT" ] || printf '%s\n' "$REPORT" >"$OUT"
