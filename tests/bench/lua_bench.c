/*
 * lua_bench.c - tape-bench-lua: the Lua binding's query iteration against
 * the same iteration in C, in the same run on the same store.
 *
 *   tape-bench-lua [--quick] [--size N] [--page-size P]
 *
 * A Lua state loads tapestore.so (through LUA_CPATH, else the build tree's
 * module directory) and fills a memory store with N tapes (default
 * 100,000; --quick: 2,000). Then, alternately, at least 7 times each (3
 * with --quick), best time kept (docs/benchmarks.md):
 *   - Lua: `for e in S:query{page_size = P} do n = n + #e.id end`;
 *   - C:   the same pages through tape_store_query and cursors on the
 *          same store (tape_lua_to_store), taking a reference to each
 *          entry and reading its id, as the Lua side does.
 * P defaults to N (one trip): the memory provider answers each page by
 * listing and sorting every tape, a cost both sides share that would
 * drown what the binding adds; --page-size shows paging too. Times are
 * the thread's CPU time.
 * Prints one JSON line: the ns per entry of each, the microseconds the
 * binding adds per entry (goal: under 1) and the ratio Lua / C.
 * Timings are reported, never asserted.
 */
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tapestore/tapestore.h>

#ifndef TAPE_LUA_MODULE_DIR
#define TAPE_LUA_MODULE_DIR "."
#endif

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "tape-bench-lua: %s: %s\n", what, detail);
    exit(1);
}

/* CPU time of this thread, not wall time: the machine may be shared, and
 * a single-threaded pass waiting for a core would count the wait. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) {
        die("lua", lua_tostring(L, -1));
    }
}

/* One pass in C: every entry of the store, pages of 1000, each id read. */
static size_t c_pass(tape_store *s, long page_size)
{
    tape_query *q = NULL;
    char json[64];
    snprintf(json, sizeof json, "{\"limit\":%ld}", page_size);
    if (tape_query_parse(&q, json) != TAPE_OK) {
        die("tape_query_parse", tape_errmsg());
    }
    size_t total = 0, n = 0;
    for (;;) {
        tape_result *r = NULL;
        if (tape_store_query(&r, s, q) != TAPE_OK) {
            die("tape_store_query", tape_errmsg());
        }
        size_t count = tape_result_count(r);
        for (size_t i = 0; i < count; i++) {
            /* What the Lua side does per entry: keep a reference, read a field. */
            tape_entry *e = tape_entry_ref(tape_result_at(r, i));
            total += strlen(tape_entry_id(e));
            tape_entry_free(e);
            n++;
        }
        const char *next = tape_result_next_cursor(r);
        tape_query *nq = NULL;
        if (next != NULL && tape_query_with_cursor(&nq, q, next) != TAPE_OK) {
            die("tape_query_with_cursor", tape_errmsg());
        }
        tape_result_free(r);
        tape_query_free(q);
        q = nq;
        if (q == NULL) {
            break;
        }
    }
    if (total == 0) {
        die("c pass", "no ids read");
    }
    return n;
}

static size_t lua_pass(lua_State *L)
{
    lua_getglobal(L, "PASS");
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        die("lua pass", lua_tostring(L, -1));
    }
    size_t n = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return n;
}

int main(int argc, char **argv)
{
    int quick = 0;
    long size = 100000, page_size = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            size = 2000;
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            size = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--page-size") == 0 && i + 1 < argc) {
            page_size = strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: tape-bench-lua [--quick] [--size N] [--page-size P]\n");
            return 2;
        }
    }
    if (size < 1) {
        die("--size", "must be >= 1");
    }
    if (page_size <= 0) {
        page_size = size;
    }
    if (getenv("LUA_CPATH") == NULL) {
        setenv("LUA_CPATH", TAPE_LUA_MODULE_DIR "/?.so", 1);
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    run(L, "tapestore = require 'tapestore'");

    /* The store the script opens, seen from C through the host function. */
    typedef tape_store *(*to_store_fn)(lua_State *, int);
    run(L, "MODULE = package.searchpath('tapestore', package.cpath)");
    lua_getglobal(L, "MODULE");
    void *lib = dlopen(lua_tostring(L, -1), RTLD_NOW | RTLD_NOLOAD);
    lua_pop(L, 1);
    to_store_fn to_store = NULL;
    if (lib == NULL || (*(void **)&to_store = dlsym(lib, "tape_lua_to_store")) == NULL) {
        die("dlsym", "tape_lua_to_store not found in the module");
    }

    fprintf(stderr, "tape-bench-lua: filling a memory store with %ld tapes\n", size);
    char fill[512];
    snprintf(fill, sizeof fill,
             "tapestore.set_log(function() end)\n" /* the memory provider's warning */
             "S = assert(tapestore.open('memory:'))\n"
             "for i = 1, %ld do\n"
             "  assert(S:save(tapestore.new_tape{name = 'tape ' .. i, tags = {i %% 2 == 0 and 'prod' or 'dev'}}))\n"
             "end\n"
             "function PASS()\n"
             "  local n, total = 0, 0\n"
             "  for e in S:query{page_size = %ld} do n = n + 1; total = total + #e.id end\n"
             "  assert(total > 0)\n"
             "  return n\n"
             "end\n",
             size, page_size);
    run(L, fill);
    lua_getglobal(L, "S");
    tape_store *s = to_store(L, -1);
    lua_pop(L, 1);
    if (s == NULL) {
        die("tape_lua_to_store", "not an open store");
    }

    /* Warm-up, then alternate; best of each. */
    if (c_pass(s, page_size) != (size_t)size || lua_pass(L) != (size_t)size) {
        die("passes", "an iteration did not see every tape");
    }
    int rounds = quick ? 3 : 7;
    double min_run = quick ? 0.0 : 0.5;
    double best_c = 1e30, best_lua = 1e30, start = now_s();
    for (int r = 0; r < rounds || now_s() - start < 2 * min_run; r++) {
        double t0 = now_s();
        c_pass(s, page_size);
        double t1 = now_s();
        lua_pass(L);
        double t2 = now_s();
        if (t1 - t0 < best_c) {
            best_c = t1 - t0;
        }
        if (t2 - t1 < best_lua) {
            best_lua = t2 - t1;
        }
    }
    double ns_c = best_c * 1e9 / (double)size;
    double ns_lua = best_lua * 1e9 / (double)size;
    double added_us = (ns_lua - ns_c) / 1000.0;
    printf("{\"figure\":\"lua_query_iteration\",\"entries\":%ld,\"page_size\":%ld,"
           "\"ns_per_entry\":%.1f,\"baseline\":\"c_query_iteration\",\"baseline_ns_per_entry\":%.1f,"
           "\"added_us_per_entry\":%.3f,\"ratio\":%.2f,\"goal\":\"<1 us added\",\"goal_met\":%s}\n",
           size, page_size, ns_lua, ns_c, added_us, ns_lua / ns_c, added_us < 1.0 ? "true" : "false");
    lua_close(L);
    return 0;
}
