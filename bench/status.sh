#!/usr/bin/env bash
# `usher status` from a daemon under load: starts a release usher on loopback, drives it with
# bench_load (a public stream with repeat sessions, a denied stream, a jwt stream with valid and
# forged tokens), invalidates one stream while no MistServer listens, and prints `usher status`
# mid-load and `usher status --json` after. Loopback only; every loader is bounded in count and
# time; everything started here is stopped on exit. Ports: USHER_DEMO_PORT (default 14250) and +1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin usher --example bench_load --example bench_tokens
BIN=target/release
P_TRIG=${USHER_DEMO_PORT:-14250}
P_CTL=$((P_TRIG + 1))
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/examples/bench_tokens" "$WORK/keys" 20000 1 >/dev/null
"$BIN/examples/bench_tokens" "$WORK/forged" 5000 1 >/dev/null   # same kid, another key
TOKEN=status-demo-token-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
cat > "$WORK/config.toml" <<TOML
[trigger]
listen = "127.0.0.1:$P_TRIG"
[control]
listen = "127.0.0.1:$P_CTL"
tokens = ["$TOKEN"]
[state]
dir = "$WORK/data"
[mist]
api_url = "http://127.0.0.1:9/api2"
ack_wait_ms = 100
[log]
level = "warn"
[[tenants]]
id = "t1"
[[keys]]
kid = "k1"
tenant = "t1"
public_key_file = "keys/k1.pub.pem"
[[policies]]
object = "vod"
tenant = "t1"
type = "jwt"
[[policies]]
object = "open"
tenant = "t1"
type = "public"
TOML
"$BIN/usher" serve --config "$WORK/config.toml" 2>"$WORK/usher.log" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$P_CTL/healthz" >/dev/null && break
  sleep 0.1
done

load() { timeout 120 "$BIN/examples/bench_load" "127.0.0.1:$P_TRIG" "$@" >/dev/null & PIDS+=($!); }
load open 200000 8 keep 7 1 "" o          # new sessions: misses
load vod 20000 4 close 7 1 "$WORK/keys/tokens_0.txt" v      # valid tokens: verified
load vod 5000 2 close 7 1 "$WORK/forged/tokens_0.txt" f     # forged: jwt-sig-fail
load closed 20000 2 keep 7 1 "" c          # no policy: the default deny
load vod 3000 1 keep 7 1 "" m              # a checksum, not a JWS: jwt-not-a-jws
sleep 4
load open 200000 8 keep 7 1 "" o          # the same sessions again: hits
curl -s -X POST -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_CTL/v1/invalidate" \
  -d '{"streams":["closed"]}' >/dev/null
sleep 6
echo "\$ usher status   (under load, $(date -u +%H:%M:%S) UTC, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
"$BIN/usher" status --config "$WORK/config.toml"
sleep 2
echo
echo "\$ usher status --json"
"$BIN/usher" status --config "$WORK/config.toml" --json
