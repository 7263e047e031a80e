#!/usr/bin/env bash
# The fleet (SPEC §11): how long a write takes to reach every node.
#
#   bench/fleet.sh          # prints a markdown report; OUT=FILE writes it there too
#
# Starts a real `nats-server -js` (store in a temp dir) and three release usher nodes on loopback
# ports, then with examples/fleet_bench.rs:
#   nodes    — COUNT policy writes through node A's control API, each timed until all three
#              nodes' /metrics show the write's revision applied (polled every 0.2 ms);
#   watchers — WATCHERS key-value watchers simulated in one process (one NATS connection each),
#              COUNT puts, each timed until the last watcher saw it.
# The nodes' MistServer API is a closed loopback port (invalidations wait in their queues; the
# feed does not wait for MistServer). Every process it starts is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT=${COUNT:-200}
WATCHERS=${WATCHERS:-100}
OUT=${OUT:-}
NATS_BIN=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS_BIN" ] || { echo "nats-server is needed (apt-get install nats-server)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/usher-fleet.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '[fleet %s] %s\n' "$(date +%T)" "$*" >&2; }

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log "building release (usher, fleet_bench)"
cargo build --release --bin usher --example fleet_bench 2>&1 | tail -1 >&2
BIN=$ROOT/target/release

P_NATS=$(free_port)
"$NATS_BIN" -a 127.0.0.1 -p "$P_NATS" -js -sd "$WORK/js" 2>"$WORK/nats.log" &
PIDS+=($!)
wait_port 127.0.0.1 "$P_NATS"
NATS_URL=nats://127.0.0.1:$P_NATS

CONTROLS=()
for node in a b c; do
    p_trig=$(free_port); p_ctl=$(free_port)
    cat >"$WORK/$node.toml" <<TOML
[trigger]
listen = "127.0.0.1:$p_trig"
[control]
listen = "127.0.0.1:$p_ctl"
tokens = ["bench-control-token"]
[state]
dir = "$WORK/state-$node"
[mist]
api_url = "http://127.0.0.1:9/api2"
ack_wait_ms = 0
[log]
level = "warn"
[fleet]
nats_urls = ["$NATS_URL"]
node_id = "$node"
TOML
    "$BIN/usher" serve --config "$WORK/$node.toml" 2>>"$WORK/$node.log" >/dev/null &
    PIDS+=($!)
    wait_port 127.0.0.1 "$p_ctl"
    CONTROLS+=("127.0.0.1:$p_ctl")
done
for c in "${CONTROLS[@]}"; do
    for _ in $(seq 1 200); do
        curl -sf "http://$c/metrics" | grep -q '^usher_fleet_following 1' && break
        sleep 0.05
    done
done

NPROC=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
NATS_VERSION=$("$NATS_BIN" --version)
log "3 nodes: $COUNT writes"
NODES_OUT=$("$BIN/examples/fleet_bench" nodes "$COUNT" "${CONTROLS[@]}")
log "$NODES_OUT"
log "$WATCHERS watchers: $COUNT puts"
WATCH_OUT=$("$BIN/examples/fleet_bench" watchers "$COUNT" "$NATS_URL" "$WATCHERS")
log "$WATCH_OUT"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

REPORT=$(cat <<MD
Produced by \`bench/fleet.sh\` (commit \`$COMMIT\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $NATS_VERSION, one server, file storage).
**Machine:** $NPROC CPUs, \`$CPU_MODEL\`; load $LOAD_BEFORE before, $LOAD_AFTER after. Nothing pinned.

| what | raw (\`examples/fleet_bench\`) |
|---|---|
| 3 release nodes: policy write through node A answered | \`$(sed -n 1p <<<"$NODES_OUT")\` |
| 3 release nodes: same write applied on all three (from before the PUT) | \`$(sed -n 2p <<<"$NODES_OUT")\` |
| $WATCHERS watchers in one process: put seen by the last watcher | \`$WATCH_OUT\` |
MD
)
printf '%s\n' "$REPORT"
[ -z "$OUT" ] || printf '%s\n' "$REPORT" >"$OUT"
