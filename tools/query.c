/*
 * query.c - `tapestore query SCRIPT.lua [ARGS...]`: runs a Lua script with
 * the Lua binding's API (docs/lua.md) in an embedded Lua 5.4, against the
 * command's store.
 *
 * The script is an ordinary lua5.4 script: it does `require "tapestore"`
 * and opens its store with tapestore.open(), which reads $TAPESTORE_STORE,
 * so --store is handed over by setting that variable; the providers that
 * --plugin loaded are in the same process registry, so the script sees
 * them too. ARGS reach the script as `arg` (arg[0] is the script) and as
 * the chunk's `...`, untouched: options after SCRIPT are the script's.
 * The binding's module is found on package.cpath ($LUA_CPATH, then Lua's
 * defaults) and then in the directory it installs to.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "plugins.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

/* Set up arg, then run the script; in protected mode (lua_pcall of this
 * function), so a memory error cannot escape. */
static int run_script(lua_State *L)
{
    const char *script = lua_touserdata(L, 1);
    int nargs = (int)lua_tointeger(L, 2);
    char **args = lua_touserdata(L, 3);

    lua_createtable(L, nargs, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < nargs; i++) {
        lua_pushstring(L, args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, tape_tools_lua_traceback);
    int h = lua_gettop(L);
    int rc = luaL_loadfilex(L, script, "t");
    if (rc != LUA_OK) {
        /* Not a runtime error of the script: say which kind. */
        lua_pushinteger(L, rc == LUA_ERRFILE ? CLI_NOTFOUND : CLI_FAIL);
        lua_insert(L, -2);
        return 2;
    }
    luaL_checkstack(L, nargs, "too many script arguments");
    for (int i = 0; i < nargs; i++) {
        lua_pushstring(L, args[i]);
    }
    if (lua_pcall(L, nargs, 0, h) != LUA_OK) {
        lua_pushinteger(L, CLI_FAIL);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushinteger(L, CLI_OK);
    return 1;
}

int cmd_query(cli *c, int argc, char **argv)
{
    /* Options up to SCRIPT only: everything after it is the script's. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *a = argv[i];
        size_t kl = strcspn(a, "=");
        const char *val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help(stdout, "query");
            return CLI_OK;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if ((kl == 7 && strncmp(a, "--store", 7) == 0) || (kl == 8 && strncmp(a, "--plugin", 8) == 0)) {
            val = a[kl] == '=' ? a + kl + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL) {
                return cli_error(c, CLI_USAGE, "option %.*s needs a value", (int)kl, a);
            }
            if (kl == 7) {
                c->store_spec = val;
            } else {
                const char **p = realloc(c->plugins, (c->nplugins + 1) * sizeof *p);
                if (p == NULL) {
                    return cli_error(c, CLI_FAIL, "out of memory");
                }
                c->plugins = p;
                c->plugins[c->nplugins++] = val;
            }
        } else {
            return cli_error(c, CLI_USAGE, "unknown option %s before the script (usage: "
                             "tapestore query [--store SPEC] [--plugin PATH]... SCRIPT.lua [ARGS])",
                             a);
        }
    }
    if (i >= argc) {
        return cli_error(c, CLI_USAGE, "expected a Lua script (usage: tapestore query "
                         "[--store SPEC] [--plugin PATH]... SCRIPT.lua [ARGS])");
    }
    const char *script = argv[i];
    int code = cli_load_plugins(c);
    if (code != CLI_OK) {
        return code;
    }
    /* The script's tapestore.open() opens the command's store. */
    if (c->store_spec != NULL && setenv("TAPESTORE_STORE", c->store_spec, 1) != 0) {
        return cli_error(c, CLI_FAIL, "cannot set TAPESTORE_STORE");
    }
    char why[512];
    lua_State *L = tape_tools_lua_new(why, sizeof why);
    if (L == NULL) {
        return cli_error(c, CLI_FAIL, "%s", why);
    }
    lua_pushcfunction(L, run_script);
    lua_pushlightuserdata(L, (void *)script);
    lua_pushinteger(L, argc - i - 1);
    lua_pushlightuserdata(L, argv + i + 1);
    if (lua_pcall(L, 3, LUA_MULTRET, 0) != LUA_OK) {
        code = cli_error(c, CLI_FAIL, "%s: %s", script, lua_tostring(L, -1));
    } else {
        code = (int)lua_tointeger(L, 1);
        if (code != CLI_OK) {
            cli_error(c, code, "%s", lua_tostring(L, 2));
        }
    }
    lua_close(L);
    return code;
}
