-- LuaRocks package of the Lua binding, built against an installed
-- libtapestore (cmake --install of this project). From a checkout:
--   cd bindings/lua && luarocks --lua-version=5.4 make TAPESTORE_DIR=<prefix>
-- (<prefix> holds include/tapestore/tapestore.h and lib/libtapestore.so;
-- /usr/local by default). Needs swig and cmake (docs/lua.md).
rockspec_format = "3.0"
package = "tapestore"
version = "0.1.0-1"
source = {
   -- `luarocks make` builds the checkout it runs in; a packed rock
   -- would point this at a release archive.
   url = "git+file://.",
}
description = {
   summary = "Tape stores for recorded MCP sessions: the Lua 5.4 binding of libtapestore",
   detailed = [[
      Open stores, save, load and query tapes (recordings of MCP JSON-RPC
      sessions) and record sessions frame by frame, from Lua 5.4.
   ]],
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   TAPESTORE = {
      header = "tapestore/tapestore.h",
      library = "tapestore",
   },
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      TAPESTORE_DIR = "$(TAPESTORE_DIR)",
      LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
      -- the rock's directory for C modules (require finds it there)
      TAPE_LUA_INSTALL_DIR = "$(LIBDIR)",
   },
}
