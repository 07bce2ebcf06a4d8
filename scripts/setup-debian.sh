#!/usr/bin/env bash
# Installs everything tapestore needs to build and test on Debian 12.
# Safe to run again: apt skips what is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcjson-dev libsqlite3-dev sqlite3
  libcmocka-dev valgrind
  clang-14 libclang-rt-14-dev      # libFuzzer targets
  doxygen abigail-tools            # API reference, ABI check
  swig python3-dev python3-pytest  # the Python binding and its tests
  python3-boto3                    # the S3 provider example
  lua5.4 liblua5.4-dev lua-busted  # the Lua binding and its tests
  lua-cjson luarocks               # Lua: decoding baseline, the rockspec check
  groff-base                       # the man pages' rendering test
)
# Node.js runs the real peers the tests start (s3rver); a machine that has
# node already (any version >= 18) keeps it.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# npm packages pinned in package.json + package-lock.json (s3rver, the MCP
# server and SDK). npm ci again when the lock is newer than what was
# installed, or when a pinned package is missing (a lock merged with an
# older mtime than node_modules would otherwise be skipped).
cd "$(dirname "$0")/.."
npm_needed=0
[ package-lock.json -nt node_modules/.package-lock.json ] && npm_needed=1
for p in s3rver @modelcontextprotocol/server-everything @modelcontextprotocol/sdk; do
  [ -f "node_modules/$p/package.json" ] || npm_needed=1
done
if [ "$npm_needed" -eq 1 ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
