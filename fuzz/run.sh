#!/usr/bin/env bash
# Runs every usher fuzz target for SECONDS each (default 60), with libFuzzer through cargo-fuzz.
#
#   fuzz/run.sh 60            # all targets, 60 s each
#   fuzz/run.sh 300 token     # one target
#
# Works on the stable toolchain: targets are built with `--sanitizer none` (usher forbids unsafe
# code, so AddressSanitizer adds little), which needs no `-Z` flag. For an ASan build on stable,
# set FUZZ_SANITIZER=address; the script then sets RUSTC_BOOTSTRAP=1 for the `-Zsanitizer` flag.
# Debug assertions (and so integer overflow checks) are on. Crashes land in
# fuzz/artifacts/<target>/; the growing corpus in fuzz/corpus/<target>/ (both git-ignored);
# fuzz/seeds/<target>/ holds the committed seed inputs.
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(trigger_body token ssrf_url control_json config)
fi

cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != "none" ]; then
    export RUSTC_BOOTSTRAP=1
fi

status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "== $target: ${seconds}s"
    if ! cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1; then
        echo "!! $target found a crash: see fuzz/artifacts/$target/"
        status=1
    fi
done
exit $status
