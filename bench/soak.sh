#!/usr/bin/env bash
# Soak usher under a mixed load with failing neighbours for SECONDS (default 60), in release mode.
# Everything runs on loopback and stops by itself; the report is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
cargo test --release --test soak --no-run
SOAK_SECONDS=$SECONDS_TO_RUN timeout $((SECONDS_TO_RUN + 300)) \
  cargo test --release --test soak -- --ignored --nocapture --test-threads=1 2>&1 | grep -v '^$'
