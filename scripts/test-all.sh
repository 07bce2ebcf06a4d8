#!/usr/bin/env bash
# Runs every test: the normal build (unit tests, conformance suite on every
# builtin provider and on Python and Lua providers, the same suite under
# valgrind, crash trials, the Python, Lua, CLI and end-to-end suites with
# their real peers from npm, examples, install checks, quick benchmarks),
# the ASan+UBSan build of the same tests (not valgrind, benchmarks or the
# ABI check), a ThreadSanitizer build of the C tests, and a short fuzz run
# of every parser. Usage: scripts/test-all.sh [FUZZ_SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${1:-20}"
jobs="$(nproc 2>/dev/null || echo 2)"

echo "== build (warnings are errors)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPE_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTAPE_SANITIZE=ON -DTAPE_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan+UBSan (valgrind runs only in the normal build)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs" -E 'valgrind|bench|abi_check')

echo "== ThreadSanitizer build (unit tests and the conformance suites)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DTAPE_TSAN=ON -DTAPE_WERROR=ON \
  -DTAPE_BUILD_EXAMPLES=OFF -DTAPE_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$jobs"
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --output-on-failure -j"$jobs" -E 'valgrind|install|abi_check')

if [ -x scripts/fuzz.sh ]; then
  echo "== fuzz every parser for ${fuzz_seconds}s each"
  scripts/fuzz.sh "$fuzz_seconds"
fi
echo "== all tests passed"
