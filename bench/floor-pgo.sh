#!/usr/bin/env bash
# The floor built the way usher ships (PGO), so usher's own work can be judged like for like:
# usher's release binary (packaging/build-release.sh) is optimised with a profile of its trigger
# path, and a floor built without one would flatter usher by whatever PGO does for hyper and tokio.
#
#   bench/floor-pgo.sh            # → target/floor-pgo/floor (prints the path)
#   FLOOR=$(bench/floor-pgo.sh) bench/ab.sh vfloor target/release-pgo/usher fresh keep 8 3
#
# examples/floor.rs instrumented (cargo profile pgo-train), trained with bench/trigger.lua under
# wrk in the modes bench/ab.sh measures (fresh and cached, kept-alive and a connection per request;
# plain and verifying), then built with that profile (cargo profile floor-pgo). About 10 minutes
# on a 2-core machine. Loopback only; everything it starts is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_work floorpgo
pgo_profdata >/dev/null # before the builds: fail early without llvm-profdata

cargo build --locked --release --example bench_tokens 2>&1 | tail -1 >&2
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$TARGET/pgo/build-raw" \
    cargo build --locked --profile pgo-train --example floor 2>&1 | tail -1 >&2

"$TARGET/release/examples/bench_tokens" "$WORK/keys" 40000 3 >/dev/null
head -n 1000 "$WORK/keys/tokens_0.txt" >"$WORK/cached.txt"
drive() { # url args...
    local url=$1
    shift
    timeout 60 wrk -t1 -c32 -d3s -s "$ROOT/bench/trigger.lua" "$url" -- "$@" >/dev/null
}
for key in "" "$WORK/keys/k1.pub.pem"; do
    p=$(free_port)
    # The floor exits by itself after 15 s (main returns, and the profile is written).
    # shellcheck disable=SC2086 # no key: no third argument
    LLVM_PROFILE_FILE="$WORK/raw/floor-%p.profraw" \
        "$TARGET/pgo-train/examples/floor" "127.0.0.1:$p" 15 $key >/dev/null 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port 127.0.0.1 "$p"
    url=http://127.0.0.1:$p/trigger
    drive "$url" fresh keep bench 1 "$WORK/keys/tokens_1.txt" 0 1
    drive "$url" fresh close bench 1 "$WORK/keys/tokens_2.txt" 0 2
    drive "$url" cached keep bench 1 "$WORK/cached.txt" 1000
    drive "$url" cached close bench 1 "$WORK/cached.txt" 1000
    wait "$pid" || true
done

PROFILE=$(pgo_profile floor "$WORK"/raw/floor-*.profraw)
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PROFILE" \
    cargo build --locked --profile floor-pgo --example floor 2>&1 | tail -1 >&2
echo "$TARGET/floor-pgo/examples/floor"
