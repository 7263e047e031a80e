#!/usr/bin/env bash
# Builds MistServer from its source archive once and caches the binaries outside the checkout,
# keyed by the archive's checksum. Prints the folder holding the Mist* binaries.
#
#   MIST_SRC    the source archive (default: ../shared/mistserver/mistserver-3.10.tar.gz)
#   MIST_CACHE  where built binaries are kept (default: /var/cache/usher-e2e)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${MIST_SRC:-$here/../../shared/mistserver/mistserver-3.10.tar.gz}
cache=${MIST_CACHE:-/var/cache/usher-e2e}
[ -f "$src" ] || { echo "build-mist: no source archive at $src (set MIST_SRC)" >&2; exit 2; }
sum=$(sha256sum "$src" | cut -c1-16)
out=$cache/mist-$sum
if [ -x "$out/MistController" ]; then
  echo "$out"
  exit 0
fi

need=()
for pkg in meson ninja-build g++ pkg-config libmbedtls-dev libsrtp2-dev libusrsctp-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "build-mist: installing ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$src" -C "$work"
cd "$work"/mistserver-*
echo "build-mist: building MistServer in $work (about 10 minutes on 2 cores)" >&2
meson setup build --buildtype=release --default-library=static --wrap-mode=nodownload \
  -DNOSSL=false -DNOUSRSCTP=false -DNOSRT=true -DNORIST=true -DNOUPDATE=true -DVERSION=3.10 >&2
ninja -C build >&2
mkdir -p "$cache"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
find build -maxdepth 1 -type f -name 'Mist*' -perm -u+x -exec cp {} "$out.tmp"/ \;
[ -x "$out.tmp/MistController" ] || { echo "build-mist: no MistController built" >&2; exit 1; }
mv "$out.tmp" "$out"
echo "$out"
