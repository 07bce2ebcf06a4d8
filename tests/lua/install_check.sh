#!/bin/sh
# Installs the build into a scratch prefix and requires the installed
# tapestore module with Debian's lua5.4 (it must find libtapestore.so.0
# through its RUNPATH alone), checks that a default install dir is on
# lua5.4's package.cpath, then builds the LuaRocks rockspec against that
# installed libtapestore into a scratch tree and requires it from there.
#   install_check.sh BUILD_DIR SOURCE_DIR LUA_DIR_REL WORK_DIR
set -eu
build=$1 src=$2 luadir=$3 work=$4
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
so=$prefix/$luadir/tapestore.so
[ -f "$so" ] || { echo "$so not installed"; exit 1; }
runpath=$(objdump -p "$so" | awk '/RUNPATH/ {print $2}')
case "$runpath" in
  '$ORIGIN/'*) ;;
  *) echo "RUNPATH of $so is '$runpath', expected \$ORIGIN-relative"; exit 1 ;;
esac
if objdump -p "$so" | grep -q 'NEEDED.*liblua'; then
  echo "$so links liblua (lua5.4 exports the API; a second copy breaks states)"; exit 1
fi

# 1. cmake --install: only LUA_CPATH names the scratch dir; no LD_LIBRARY_PATH;
# run from elsewhere so nothing of the build tree is found.
cd "$work"
check='
local tapestore = require "tapestore"
local where = package.searchpath("tapestore", package.cpath)
assert(where:find(os.getenv("WANT_DIR"), 1, true) == 1, "loaded " .. where)
local s <close> = assert(tapestore.open("memory:"))
local t = tapestore.new_tape { name = "installed" }
assert(t:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "ping" }))
assert(s:save(t))
assert(s:load(t.id).name == "installed")
assert(math.type(tapestore.capi.tape_version()) == "integer")
print("required " .. where .. ", library " .. tapestore.version())
'
env -u LD_LIBRARY_PATH -u LUA_PATH -u LUA_PATH_5_4 LUA_CPATH="$prefix/$luadir/?.so" \
  WANT_DIR="$prefix/$luadir" lua5.4 -e "$check"

# 2. The default prefix (/usr/local) with the default dir is on lua5.4's
# own package.cpath, so a default install requires with no variable.
env -u LUA_CPATH -u LUA_CPATH_5_4 LUA_DIR_REL="$luadir" lua5.4 -e '
local want = "/usr/local/" .. os.getenv("LUA_DIR_REL") .. "/?.so"
assert(package.cpath:find(want, 1, true), want .. " is not on package.cpath " .. package.cpath)
print("default install dir on package.cpath: " .. want)
'

# 3. LuaRocks: `luarocks make` of the rockspec, against the libtapestore
# installed above, into a scratch tree (from a copy of the sources, so
# the checkout gets no build directory).
mkdir -p "$work/src"
cp -R "$src/bindings" "$work/src/"
rm -rf "$work/src/bindings/python"
tree=$work/rocks
(cd "$work/src/bindings/lua" &&
  luarocks --lua-version=5.4 make --tree "$tree" tapestore-*.rockspec \
    TAPESTORE_DIR="$prefix" >"$work/luarocks.log" 2>&1) ||
  { cat "$work/luarocks.log"; echo "luarocks make failed"; exit 1; }
rock_so=$(find "$tree" -name tapestore.so | head -n 1)
[ -n "$rock_so" ] || { cat "$work/luarocks.log"; echo "no tapestore.so in $tree"; exit 1; }
rock_dir=$(dirname "$rock_so")
env -u LD_LIBRARY_PATH -u LUA_PATH LUA_CPATH="$rock_dir/?.so" \
  WANT_DIR="$rock_dir" lua5.4 -e "$check"
echo "lua install check passed (RUNPATH $runpath; rock in $tree)"
