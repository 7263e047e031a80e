#!/usr/bin/env bash
# The release build of usher: optimised with a profile of its own trigger path (PGO).
#
#   packaging/build-release.sh                      # → target/release-pgo/usher
#   cargo deb --profile release-pgo --no-build      # the Debian package of that binary
#
# 1. builds usher instrumented (`-Cprofile-generate`, cargo profile `pgo-train`);
# 2. trains it: the daemon on loopback ports, driven by the repository's own load generator
#    (examples/bench_load with tokens from examples/bench_tokens) as MistServer drives it —
#    first checks with fresh tokens, cached re-asks, kept-alive and a connection per request, an
#    invalidation and the re-check storm that follows, USER_END for 500 sessions that played;
# 3. merges the profile (`llvm-profdata` from rustup's `llvm-tools`, which matches rustc's LLVM);
# 4. builds usher with it (`-Cprofile-use`, cargo profile `release-pgo`).
# The profile changes only where code is laid out and what is inlined, never what usher answers;
# a branch the training never took (webhooks, JWKS, the fleet) is laid out as cold code and works
# as before. `cargo deb` alone still builds the package without PGO.
#
# What it buys, measured (bench/NOTES.md, thirteenth session): server CPU per cached answer ~10 %
# lower, per fresh answer ~2 % lower. About 15 minutes on a 2-core machine (two release builds).
# Loopback only; everything it starts is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
say() { printf '[build-release %s] %s\n' "$(date +%T)" "$*" >&2; }

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_work release
pgo_profdata >/dev/null # before the builds: fail early without llvm-profdata

say "building the load generator"
cargo build --locked --release --example bench_tokens --example bench_load 2>&1 | tail -1 >&2
EX=$TARGET/release/examples
say "building usher instrumented (profile pgo-train)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$TARGET/pgo/build-raw" \
    cargo build --locked --profile pgo-train --bin usher 2>&1 | tail -1 >&2

say "training"
"$EX/bench_tokens" "$WORK/keys" 20000 3 >/dev/null
P_TRIG=$(free_port)
P_CTL=$(free_port)
CONTROL_TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
cat >"$WORK/usher.toml" <<EOF
[trigger]
listen = "127.0.0.1:$P_TRIG"
[control]
listen = "127.0.0.1:$P_CTL"
tokens = ["$CONTROL_TOKEN"]
[state]
dir = "$WORK/state"
[mist]
api_url = "http://127.0.0.1:9/api2"   # nothing listens: invalidations queue and retry quietly
ack_wait_ms = 10
[log]
level = "warn"
$(bench_tenant "$WORK/keys/k1.pub.pem")
EOF
LLVM_PROFILE_FILE="$WORK/raw/usher-%p.profraw" \
    "$TARGET/pgo-train/usher" serve --config "$WORK/usher.toml" >/dev/null 2>"$WORK/usher.log" &
USHER=$!
PIDS+=("$USHER")
BENCH_LOG=$WORK/usher.log wait_port 127.0.0.1 "$P_TRIG"
load() { # sessions mode lines tokens-file tag
    timeout 300 "$EX/bench_load" "127.0.0.1:$P_TRIG" bench "$1" 32 "$2" "$3" 1 "$4" "$5" >&2
}
tokens=$WORK/keys
load 20000 keep 7 "$tokens/tokens_0.txt" a  # first checks, fresh tokens, kept-alive
load 4000 close 7 "$tokens/tokens_1.txt" b  # first checks, a connection per request
load 20000 keep 7 "$tokens/tokens_0.txt" a  # the same sessions again: cached answers
load 20000 keep 7 "$tokens/tokens_0.txt" a
load 4000 close 7 "$tokens/tokens_1.txt" b
curl -sf --max-time 10 -o /dev/null -X POST "http://127.0.0.1:$P_CTL/v1/invalidate" \
    -H "Authorization: Bearer $CONTROL_TOKEN" -H 'Content-Type: application/json' \
    -d '{"streams":["bench"]}'
load 20000 keep 6 "$tokens/tokens_0.txt" a  # the re-check storm after an invalidation
# USER_END for sessions that played (the 12-line body MistServer sends; bench_load's session i
# is "a" and i in hex, zero-padded to 64 characters, with token i).
i=0
while read -r token && [ $i -lt 500 ]; do
    session=$(printf '%64s' "$(printf 'a%x' "$i")" | tr ' ' 0)
    printf '%s\nbench\nHLS\n127.0.0.1\n10\n1000\n20000\n\n\n\n\n%s\n' "$token" "$session" |
        curl -sf --max-time 10 -o /dev/null -X POST "http://127.0.0.1:$P_TRIG/trigger" \
            -H 'X-Trigger: USER_END' --data-binary @-
    i=$((i + 1))
done <"$tokens/tokens_0.txt"
kill -TERM "$USHER"
wait "$USHER" || true
ls "$WORK"/raw/usher-*.profraw >/dev/null

say "merging the profile"
PROFILE=$(pgo_profile usher "$WORK"/raw/usher-*.profraw)

say "building usher with the profile (profile release-pgo)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PROFILE" \
    cargo build --locked --profile release-pgo --bin usher 2>&1 | tail -1 >&2
echo "$TARGET/release-pgo/usher"
