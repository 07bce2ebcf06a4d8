#!/bin/sh
# bench.sh - build a Release tree in build-release/ and run the full
# benchmark (tests/bench/tape-bench.c; figures explained in
# docs/benchmarks.md). Extra arguments go to tape-bench, e.g.
#   scripts/bench.sh --size 20000
# Output: one JSON line per figure on stdout.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-release
mkdir -p "$build"
# Warnings are errors in the Release (-O3) build too: its flow analysis has
# found real bugs here before.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTAPE_WERROR=ON -DTAPE_BUILD_BENCH=ON \
    -DTAPE_BUILD_EXAMPLES=OFF >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; echo "bench.sh: configure failed" >&2; exit 2; }
cmake --build "$build" -j"${BENCH_JOBS:-2}" --target tape-bench >&2 ||
    { echo "bench.sh: build failed" >&2; exit 2; }
exec "$build/tests/bench/tape-bench" "$@"
