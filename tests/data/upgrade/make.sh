#!/usr/bin/env bash
# Makes the upgrade test data (tests/upgrade.rs) with a PREVIOUS release of usher: a state
# database holding keys (one active, one revoked), policies (jwt with session and publish rules,
# webhook with a secret, public), a viewer revocation and a pending invalidation — and, with a
# nats-server, the same written through a fleet node: the buckets' records and that node's state
# database (its applied revisions). Loopback only; everything started is stopped.
#
#   tests/data/upgrade/make.sh OLD_USHER_BINARY [NATS_SERVER_BINARY]
#
# The committed files were made with a2e099f (the release before issue #30), built with
# `cargo build --release`, and nats-server 2.x from Debian.
set -euo pipefail
old=$1
nats=${2:-$(command -v nats-server || echo /usr/sbin/nats-server)}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

"$old" keygen --kid k1 --out "$work/keys" >/dev/null 2>&1
cp "$work/keys/k1.key.pem" "$here/k1.key.pem"
T="Authorization: Bearer test-control-token"

# The same writes, through the control API at $1.
writes() {
    local C=$1
    call() {
        local out
        out=$(curl -sS -w ' %{http_code}' -H "$T" "$@")
        case "$out" in *" 200" | *" 201") ;; *) echo "make.sh: $* -> $out" >&2; return 1 ;; esac
    }
    call -X PUT "$C/v1/keys/k1" -d "$(jq -n --arg pem "$(cat "$work/keys/k1.pub.pem")" '{tenant:"t1", alg:"ES256", public_key_pem:$pem}')"
    call -X PUT "$C/v1/keys/k2" -d "$(jq -n --arg pem "$(cat "$root/tests/data/test-rsa2048.pub.pem")" '{tenant:"t1", alg:"RS256", public_key_pem:$pem}')"
    call -X POST "$C/v1/keys/k2/revoke"
    # (a2e099f's fleet path did not hash a stream key before writing it: give it the hash there.)
    call -X PUT "$C/v1/policies/live" -d '{"tenant":"t1","type":"jwt","allowed_kids":["k1"],"required_audience":"viewers","cut_at_exp":true,"max_sessions_per_viewer":2,"publish":{"type":"stream_key",'"$2"'}}'
    call -X PUT "$C/v1/policies/hook" -d '{"tenant":"t1","type":"webhook","url":"https://127.0.0.2/hook","secret":"hook-secret","timeout_ms":2000}'
    call -X PUT "$C/v1/policies/open" -d '{"tenant":"t2","type":"public"}'
    call -X POST "$C/v1/viewers/revoke" -d '{"tenant":"t1","viewer":"u-1","before":1900000000}'
}

config() { # state-dir trigger-port control-port [extra]
    cat <<TOML
[trigger]
listen = "127.0.0.1:$2"
[control]
listen = "127.0.0.1:$3"
tokens = ["test-control-token"]
[state]
dir = "$1"
[mist]
api_url = "http://127.0.0.1:9/api2"
ack_wait_ms = 100
[outbound]
allow_cidrs = ["127.0.0.2/32"]
nameservers = ["127.0.0.1:9"]
[log]
level = "warn"
${4:-}
TOML
}

run_usher() { # name extra -> leaves the daemon running, sets CONTROL
    local tp cp
    tp=$(free_port); cp=$(free_port)
    config "$work/$1" "$tp" "$cp" "${2:-}" >"$work/$1.toml"
    "$old" serve --config "$work/$1.toml" 2>"$work/$1.log" &
    pids+=($!)
    wait_port "$cp"
    CONTROL=http://127.0.0.1:$cp
}

# 1. A single node: its state database. The invalidation stays pending (MistServer is down).
run_usher single
writes "$CONTROL" '"stream_key":"s3cret-stream-key"'
curl -sS -f -o /dev/null -H "$T" -X POST "$CONTROL/v1/invalidate" -d '{"streams":["live+pending"]}'
kill "${pids[-1]}"; wait "${pids[-1]}" || true
cp "$work/single/usher.redb" "$here/single.redb"

# 2. A fleet node: the buckets' records, and its state database with the applied revisions.
np=$(free_port)
"$nats" -js -a 127.0.0.1 -p "$np" -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_port "$np"
run_usher fleet "[fleet]
nats_urls = [\"nats://127.0.0.1:$np\"]
node_id = \"old-node\""
for _ in $(seq 100); do curl -sf "$CONTROL/metrics" | grep -q '^usher_fleet_following 1' && break; sleep 0.2; done
writes "$CONTROL" "\"stream_key_sha256\":\"$(printf %s s3cret-stream-key | sha256sum | cut -c1-64)\""
sleep 1
kill "${pids[-1]}"; wait "${pids[-1]}" || true
cp "$work/fleet/usher.redb" "$here/fleet-node.redb"
USHER_DUMP_NATS="nats://127.0.0.1:$np" USHER_DUMP_TO="$here/fleet-records.json" \
    cargo test --manifest-path "$root/Cargo.toml" --test upgrade -- --ignored dump_buckets --nocapture
echo "wrote $here"
