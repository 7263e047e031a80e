#!/usr/bin/env bash
# usher's end-to-end suite: a real MistServer 3.10 asks a real usher, viewers are curl.
#
#   e2e/run.sh [CHECK...]        run every check, or only the named ones
#
#   MIST_BUILD  a folder holding MistServer's Mist* binaries (skips the build)
#   MIST_SRC    MistServer's source archive, built once and cached (see e2e/build-mist.sh);
#               default ../shared/mistserver/mistserver-3.10.tar.gz
#   E2E_USHER_BIN   the usher binary (default: `cargo build` and target/debug/usher)
#
# Only loopback addresses are used. Every MistServer and usher process the suite starts runs in its
# own process group and is stopped by that id, also when the suite is interrupted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "e2e: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

if [ -z "${MIST_BUILD:-}" ]; then
  MIST_BUILD=$("$here/build-mist.sh")
fi
if [ -z "${E2E_USHER_BIN:-}" ]; then
  cargo build --locked -q
  E2E_USHER_BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/usher
fi

exec python3 "$here/suite.py" --mist "$MIST_BUILD" --usher "$E2E_USHER_BIN" "$@"
