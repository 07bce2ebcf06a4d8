#!/bin/sh
# Installs the built library into a scratch prefix and checks what a user
# gets: the SONAME, only tape_* symbols exported, headers, a pkg-config file
# and a CMake package that consumer/ builds against.
#   check.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -eu
build=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
lib=$(find "$prefix" -name 'libtapestore.so.*.*' | head -n 1)
[ -n "$lib" ] || { echo "no libtapestore.so.X.Y installed"; exit 1; }
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libtapestore.so.0" ] || { echo "SONAME is '$soname', expected libtapestore.so.0"; exit 1; }
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^tape_' || true)
[ -z "$bad" ] || { echo "symbols exported without the tape_ prefix:"; echo "$bad"; exit 1; }
n=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBR]/' | grep -c ' tape_')
echo "exports: $n tape_* symbols, SONAME $soname"
for h in tapestore.h provider.h; do
  [ -f "$prefix/include/tapestore/$h" ] || { echo "header $h not installed"; exit 1; }
done
# CMake package.
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$(dirname "$lib")" "$work/consumer/consumer"
# pkg-config.
pc=$(find "$prefix" -name tapestore.pc | head -n 1)
export PKG_CONFIG_PATH="$(dirname "$pc")"
cc $(pkg-config --cflags tapestore) -o "$work/pc-consumer" "$src/tests/install/consumer/main.c" $(pkg-config --libs tapestore)
LD_LIBRARY_PATH="$(dirname "$lib")" "$work/pc-consumer"
echo "install check passed"
