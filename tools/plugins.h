/*
 * plugins.h - load providers from plugin files into a registry, for the
 * programs in tools/ (the `tapestore` command, tape-proxy).
 *
 * Not part of libtapestore: this is where Python and Lua get
 * embedded, so the core never depends on an interpreter. The kinds of file:
 *   - a C shared library (name ending in .so, or .so.N...): through
 *     tape_registry_load_plugin;
 *   - a Python file (.py), when built with the Python binding
 *     (TAPE_TOOLS_HAVE_PYTHON): the interpreter is started once, the file
 *     is run with runpy.run_path and its top-level code registers its
 *     providers (tapestore.register_provider) into the process-wide
 *     default registry; the registry argument is not used for it;
 *   - a Lua file (.lua), when built with the Lua binding
 *     (TAPE_TOOLS_HAVE_LUA): one Lua state is made, `require "tapestore"`
 *     loaded, and the file run as a chunk; its top-level code registers its
 *     providers (tapestore.register_provider) into the default registry.
 * Anything else is refused, listing the kinds this build supports.
 */
#ifndef TAPE_TOOLS_PLUGINS_H
#define TAPE_TOOLS_PLUGINS_H

#include <stddef.h>
#include <tapestore/tapestore.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Environment variable with more plugins: a colon-separated list of paths. */
#define TAPE_TOOLS_PLUGINS_ENV "TAPESTORE_PLUGINS"

/** Load each of paths[0..n-1] in order, then each path of
 *  $TAPESTORE_PLUGINS (empty items skipped), stopping at the first
 *  failure. Returns TAPE_OK, or a negative TAPE_E* code with a message in
 *  err (always NUL-terminated when errlen > 0) naming the file and the
 *  cause: TAPE_ENOTFOUND for a file that does not exist,
 *  TAPE_EUNSUPPORTED for a kind of file this build cannot load,
 *  TAPE_EPROVIDER for a Python file that fails (its exception's last
 *  line), or the core's code for a shared library it refuses
 *  (TAPE_EPROVIDER where the core says TAPE_ENOTFOUND: the file is there). */
int tape_tools_load_plugins(tape_registry *reg, const char *const *paths, size_t n,
                            char *err, size_t errlen);

/** Load one plugin file (see tape_tools_load_plugins). */
int tape_tools_load_plugin(tape_registry *reg, const char *path, char *err, size_t errlen);

/** The kinds of plugin file this build loads, for help texts:
 *  e.g. "C shared libraries (.so), Python files (.py)". Static. */
const char *tape_tools_plugin_kinds(void);

/** Call once at exit, after every store (and writer, iterator) that may use
 *  a script provider has been closed: closes the Lua state and finalises
 *  the Python interpreter if they were started (their providers are
 *  unregistered, calls in flight waited for). A no-op otherwise. */
void tape_tools_plugins_shutdown(void);

#ifdef TAPE_TOOLS_HAVE_LUA
struct lua_State;
/** For the tools that run Lua (plugin files, `tapestore query`): a new
 *  state with the standard libraries and the binding's install directory
 *  after package.cpath ($LUA_CPATH, then Lua's defaults, come first), or
 *  NULL with a message in err. */
struct lua_State *tape_tools_lua_new(char *err, size_t errlen);
/** The message handler they run Lua under: the error and its traceback. */
int tape_tools_lua_traceback(struct lua_State *L);
#endif

#ifdef __cplusplus
}
#endif
#endif /* TAPE_TOOLS_PLUGINS_H */
