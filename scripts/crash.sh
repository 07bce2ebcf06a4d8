#!/usr/bin/env bash
# Long crash runs of the filesystem provider: a recording process is killed
# with SIGKILL at random points TRIALS times (CI runs 100 through ctest).
# Usage: scripts/crash.sh [TRIALS] [SEED]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
trials="${1:-2000}"
seed=()
[ $# -ge 2 ] && seed=(--seed "$2")
cmake -S "$root" -B "$root/build" >/dev/null
cmake --build "$root/build" -j"$(nproc 2>/dev/null || echo 2)" --target tape-crash-test >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/build/tests/crash/tape-crash-test" --trials "$trials" "${seed[@]}" "$work/crash"
