/*
 * test_lua_host.c - the host API's locking from C, where a Lua script
 * cannot reach: a Lua state embedding tapestore.so (found through
 * LUA_CPATH) with
 *  - a log hook fired from a C thread not inside the state: it waits for
 *    the state's lock, runs the Lua function on the binding's own thread,
 *    and does so while the script's thread is inside a core call;
 *  - lua_close with a hook set: the hook is removed first, so a later log
 *    from any thread reaches nothing freed (ASan reports it otherwise);
 *  - objects collected while another thread is waiting for the lock.
 * Exit status 0 when every check passes; each failure names itself.
 */
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tapestore/tapestore.h>

/* From the module (tape_lua.h): the lock hand-over for embedding hosts. */
typedef struct tape_lua_state tape_lua_state;
typedef tape_lua_state *(*release_fn)(lua_State *L);
typedef void (*acquire_fn)(tape_lua_state *S);

static int failures;

#define CHECK(cond, what)                                      \
    do {                                                       \
        if (!(cond)) {                                         \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what); \
            failures++;                                        \
        }                                                      \
    } while (0)

/* A .jsonl whose second line is damaged: a recovering decode logs a warning. */
static const char damaged[] =
    "{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"t1\",\"session_id\":\"s\","
    "\"created_at\":\"2025-01-01T00:00:00.000Z\",\"protocol_version\":\"2025-06-18\"}\n"
    "{garbage\n";

static void log_once(void)
{
    tape_decode_options o = TAPE_DECODE_OPTIONS_INIT;
    o.mode = TAPE_DECODE_RECOVER;
    tape *t = NULL;
    tape_decode(&t, damaged, strlen(damaged), NULL, 0, &o, NULL);
    tape_free(t);
}

static void *logger(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        log_once();
    }
    return NULL;
}

static int run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static lua_Integer global_int(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    CHECK(run(L, "tapestore = require 'tapestore'"), "require tapestore");

    /* The hand-over functions the module exports for hosts: dlopen of the
     * path require loaded returns the same handle. */
    release_fn rel = NULL;
    acquire_fn acq = NULL;
    CHECK(run(L, "HOSTLIB = package.searchpath('tapestore', package.cpath)"), "searchpath");
    lua_getglobal(L, "HOSTLIB");
    const char *path = lua_tostring(L, -1);
    CHECK(path != NULL, "module path");
    void *lib = path != NULL ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    lua_pop(L, 1);
    CHECK(lib != NULL, "the module is loaded");
    if (lib != NULL) {
        *(void **)&rel = dlsym(lib, "tape_lua_release");
        *(void **)&acq = dlsym(lib, "tape_lua_acquire");
    }
    CHECK(rel != NULL && acq != NULL, "tape_lua_release/acquire exported");
    if (rel == NULL || acq == NULL) {
        return 1;
    }

    /* 1. A log from a C thread waits for the lock and runs fn on the
     * binding's thread. */
    CHECK(run(L, "N = 0; LAST = nil\n"
                 "tapestore.set_log(function(level, text) N = N + 1; LAST = level .. ' ' .. text end)"),
          "set_log");
    int count = 5;
    pthread_t th;
    pthread_create(&th, NULL, logger, &count);
    sleep_ms(100);
    /* Still holding the lock: the thread is waiting, nothing ran yet. */
    CHECK(global_int(L, "N") == 0, "a log from another thread waits for the state's lock");
    tape_lua_state *S = rel(L);
    pthread_join(th, NULL);
    acq(S);
    CHECK(global_int(L, "N") == 5, "five logs from another thread reached the function");
    CHECK(run(L, "assert(LAST:match('^warn tape decode: skipping line 2'), LAST)"), "level and text");

    /* 2. While the script's thread is inside a core call (lock released),
     * other threads' logs get in: a query scanning many tapes with a thread
     * logging meanwhile; the function runs on the binding's own thread, not
     * the script's. */
    CHECK(run(L, "S = tapestore.open('sqlite', {path = ':memory:'})\n"
                 "for i = 1, 300 do S:save(tapestore.new_tape{name = 't' .. i}) end\n"
                 "N = 0; THREADS = {}\n"
                 "tapestore.set_log(function() N = N + 1; THREADS[coroutine.running()] = true end)"),
          "fill a store");
    count = 200;
    pthread_create(&th, NULL, logger, &count);
    CHECK(run(L, "local deadline = os.clock() + 20\n"
                 "while N < 200 and os.clock() < deadline do\n"
                 "  for e in S:query{page_size = 7} do end\n"
                 "  collectgarbage()\n"
                 "end\n"
                 "local main = coroutine.running()\n"
                 "assert(not THREADS[main], 'the log ran on the script thread')\n"
                 "local n = 0 for _ in pairs(THREADS) do n = n + 1 end\n"
                 "assert(n == 1, 'one binding thread, got ' .. n)"),
          "logs enter while the script is in core calls, on the binding's thread");
    pthread_join(th, NULL);
    CHECK(global_int(L, "N") == 200, "every log of the second thread arrived");

    /* 3. An error in the function goes to stderr, not into the core. */
    CHECK(run(L, "tapestore.set_log(function() error('broken log fn') end)"), "set a raising fn");
    log_once();
    CHECK(run(L, "assert(tapestore.new_tape{} ~= nil)"), "the state still works after a raising log fn");

    /* 4. lua_close with a hook set removes it first: logs afterwards (from
     * this thread and another) reach nothing. */
    CHECK(run(L, "tapestore.set_log(function() N = N + 1 end)"), "set the hook again");
    lua_close(L);
    log_once();
    count = 3;
    pthread_create(&th, NULL, logger, &count);
    pthread_join(th, NULL);

    /* 5. Two states: each state's hook is its own; closing the one that
     * does not own the hook leaves the other's in place. */
    lua_State *A = luaL_newstate(), *B = luaL_newstate();
    luaL_openlibs(A);
    luaL_openlibs(B);
    CHECK(run(A, "tapestore = require 'tapestore'; N = 0; tapestore.set_log(function() N = N + 1 end)"), "A");
    /* B runs on this thread too: hand A's lock over while B is used. */
    tape_lua_state *SA = rel(A);
    CHECK(run(B, "tapestore = require 'tapestore'; assert(tapestore.new_tape{})"), "B");
    lua_close(B);
    log_once();
    acq(SA);
    CHECK(global_int(A, "N") == 1, "A's hook survives closing B");
    lua_close(A);
    log_once();

    if (failures == 0) {
        printf("lua host checks passed\n");
    }
    return failures == 0 ? 0 : 1;
}
