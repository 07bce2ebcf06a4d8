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
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
