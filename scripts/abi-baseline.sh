#!/usr/bin/env bash
# Refreshes the ABI baseline tests/abi/libtapestore.abi from a build of
# libtapestore.so.0, for the abi_check test. Run it at a release, or after
# a reviewed compatible change (new functions, members appended at the end
# of a versioned struct), then commit the file.
#
#   scripts/abi-baseline.sh [BUILD_DIR]     (default: build)
#
# BUILD_DIR must be a Debug or RelWithDebInfo build without sanitizers (the
# dump reads DWARF; an instrumented library is not the one we ship). A
# missing BUILD_DIR is configured as RelWithDebInfo. The library is built
# first, so the baseline always matches the current sources.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if grep -Eq '^TAPE_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt"; then
    echo "abi-baseline: $build is a sanitizer build; use a plain Debug or RelWithDebInfo build" >&2
    exit 2
fi
cmake --build "$build" --target tapestore -j"$(nproc 2>/dev/null || echo 2)"
lib="$build/libtapestore.so.0"
out=tests/abi/libtapestore.abi
old="$(mktemp)"
trap 'rm -f "$old"' EXIT
[ -f "$out" ] && cp "$out" "$old"
tests/abi/abi.sh dump "$lib" include/tapestore "$out"
if [ -s "$old" ]; then
    echo "abi-baseline: changes against the previous baseline:"
    abidiff "$old" "$out" || true
fi
echo "abi-baseline: wrote $out from $(readlink -f "$lib"); review and commit it"
