#!/usr/bin/env bash
# The main job: build tapestore and record a small MCP session tape into the
# default store ($TAPESTORE_STORE, else filesystem:./tapes), then query it.
# Usage: scripts/demo.sh [STORE_SPEC]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc 2>/dev/null || echo 2)" --target tape-record-demo >/dev/null
exec "$root/build/examples/tape-record-demo" "$@"
