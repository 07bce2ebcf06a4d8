#!/usr/bin/env bash
# The main job: build tapestore, record a real MCP session through
# tape-proxy into the default store ($TAPESTORE_STORE, else
# filesystem:./tapes), then show it: `tapestore ls`, `tapestore show` and a
# Lua query. The session is the SDK client (examples/c-proxy/mcp_client.mjs,
# on @modelcontextprotocol/sdk) against @modelcontextprotocol/server-everything,
# both from npm (package.json; scripts/setup-debian.sh runs npm ci):
# initialize, tools/list, tools/calls (one failing), a sampling request from
# the server, resources/list, prompts/list.
# Usage: scripts/demo.sh [STORE_SPEC]
# (TAPE_DEMO_BUILD_DIR: use that build tree as it is, without building;
# the e2e_demo test runs the demo so against its own build.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${TAPE_DEMO_BUILD_DIR:-}" ]; then
  build="$TAPE_DEMO_BUILD_DIR"
else
  build="$root/build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
    --target tape-proxy tapestore_cli tapestore_lua >/dev/null
fi

store=()
if [ $# -gt 0 ]; then
  store=(--store "$1")
fi
server="$root/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
if [ ! -f "$server" ]; then
  echo "demo: $server is missing: run scripts/setup-debian.sh (npm ci)" >&2
  exit 1
fi
# The query runs the Lua binding from this build tree.
export LUA_CPATH="$build/bindings/lua/?.so;;"
id_file="$(mktemp)"
trap 'rm -f "$id_file"' EXIT

echo "== recording a session of server-everything through tape-proxy"
node "$root/examples/c-proxy/mcp_client.mjs" -- \
  "$build/examples/tape-proxy" "${store[@]}" --name "demo: server-everything" \
  --tag demo --id-file "$id_file" -- node "$server" stdio >/dev/null
id="$(cat "$id_file")"

echo
echo "== tapestore ls"
"$build/tools/tapestore" "${store[@]}" ls
echo
echo "== tapestore show $id"
"$build/tools/tapestore" "${store[@]}" show "$id"
echo
echo "== tapestore query examples/lua-queries/method_stats.lua"
"$build/tools/tapestore" "${store[@]}" query "$root/examples/lua-queries/method_stats.lua"
