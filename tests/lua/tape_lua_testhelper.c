/*
 * tape_lua_testhelper.c - a Lua module for the provider specs
 * (tests/lua/provider_*_spec.lua): bare pthreads that call a store of a
 * Lua provider through the core, as the proxy would, while the Lua side
 * waits with the state's lock released; and a second lua_State closed
 * while a C thread is still calling its provider.
 *
 * It runs inside lua5.4 (which exports the Lua API) and does not link
 * liblua. The tapestore module is loaded with RTLD_LOCAL by require, so
 * its exported tape_lua_release/tape_lua_acquire are looked up with
 * dlopen(RTLD_NOLOAD) of its path (helper.init).
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapestore/tapestore.h>
#include <time.h>

typedef void *(*release_fn)(lua_State *L);
typedef void (*acquire_fn)(void *S);
static release_fn lua_release;
static acquire_fn lua_acquire;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* helper.init(path of the loaded tapestore module) */
static int h_init(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h == NULL) {
        return luaL_error(L, "helper.init: %s is not loaded: %s", path, dlerror());
    }
    lua_release = (release_fn)(void (*)(void))dlsym(h, "tape_lua_release");
    lua_acquire = (acquire_fn)(void (*)(void))dlsym(h, "tape_lua_acquire");
    if (lua_release == NULL || lua_acquire == NULL) {
        return luaL_error(L, "helper.init: %s lacks tape_lua_release/tape_lua_acquire", path);
    }
    return 0;
}

static void need_init(lua_State *L)
{
    if (lua_release == NULL) {
        luaL_error(L, "helper: call helper.init first");
    }
}

/* ---------------------------------------------------------------- threads */

typedef struct worker {
    tape_store *s;
    int k, n;
    int saved, exists_ok, loaded_ok, errors;
    char first_error[512];
} worker;

static void worker_err(worker *w, const char *what)
{
    if (w->errors++ == 0) {
        snprintf(w->first_error, sizeof w->first_error, "thread %d %s: %d %s", w->k, what,
                 tape_errcode(), tape_errmsg());
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < w->n; i++) {
        char id[64], name[64];
        snprintf(id, sizeof id, "t%d-%d", w->k, i);
        snprintf(name, sizeof name, "name %d/%d", w->k, i);
        tape *t = NULL;
        if (tape_new(&t, id) != TAPE_OK || tape_set_name(t, name) != TAPE_OK) {
            worker_err(w, "tape_new");
            tape_free(t);
            continue;
        }
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
        if (tape_append_frame(NULL, t, &d) != TAPE_OK) {
            worker_err(w, "append");
        }
        if (tape_store_save(w->s, t) == TAPE_OK) {
            w->saved++;
        } else {
            worker_err(w, "save");
        }
        tape_free(t);
        int ex = 0;
        if (tape_store_exists(&ex, w->s, id) == TAPE_OK && ex) {
            w->exists_ok++;
        } else {
            worker_err(w, "exists");
        }
        tape *back = NULL;
        if (tape_store_load(&back, w->s, id) == TAPE_OK && tape_name(back) != NULL &&
            strcmp(tape_name(back), name) == 0 && tape_frame_count(back) == 1) {
            w->loaded_ok++;
        } else {
            worker_err(w, "load");
        }
        tape_free(back);
    }
    return NULL;
}

/* Every id of the store, through the query (pages of 50): count and
 * duplicates. */
static int list_all(tape_store *s, long *count, long *dups)
{
    tape_query *q = NULL;
    int rc = tape_query_parse(&q, "{\"order_by\":\"id\",\"limit\":50}");
    char *last = NULL;
    *count = 0;
    *dups = 0;
    while (rc == TAPE_OK) {
        tape_result *r = NULL;
        rc = tape_store_query(&r, s, q);
        if (rc != TAPE_OK) {
            break;
        }
        for (size_t i = 0; i < tape_result_count(r); i++) {
            const char *id = tape_entry_id(tape_result_at(r, i));
            (*count)++;
            if (last != NULL && strcmp(last, id) >= 0) {
                (*dups)++; /* ordered by id: a repeat or a step back */
            }
            free(last);
            last = strdup(id);
        }
        const char *cur = tape_result_next_cursor(r);
        tape_query *next = NULL;
        if (cur != NULL) {
            rc = tape_query_with_cursor(&next, q, cur);
        }
        tape_result_free(r);
        tape_query_free(q);
        q = next;
        if (cur == NULL) {
            break;
        }
    }
    tape_query_free(q);
    free(last);
    return rc;
}

/* helper.threads(spec, nthreads, per_thread) -> table: n C threads each
 * save, check and load per_thread tapes on one store of spec (opened from
 * C), while this Lua state's lock is released; then the listing. */
static int h_threads(lua_State *L)
{
    need_init(L);
    const char *spec = luaL_checkstring(L, 1);
    int n = (int)luaL_checkinteger(L, 2);
    int per = (int)luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 1 && n <= 64, 2, "1..64 threads");
    worker w[64];
    pthread_t th[64];
    long count = 0, dups = 0;
    int list_rc = 0, open_rc;
    char open_err[512] = "";
    void *S = lua_release(L);
    tape_store *s = NULL;
    open_rc = tape_store_open_spec(&s, NULL, spec, 0);
    if (open_rc != TAPE_OK) {
        snprintf(open_err, sizeof open_err, "%s", tape_errmsg());
    } else {
        for (int k = 0; k < n; k++) {
            memset(&w[k], 0, sizeof w[k]);
            w[k].s = s;
            w[k].k = k;
            w[k].n = per;
            pthread_create(&th[k], NULL, worker_main, &w[k]);
        }
        for (int k = 0; k < n; k++) {
            pthread_join(th[k], NULL);
        }
        list_rc = list_all(s, &count, &dups);
        tape_store_free(s);
    }
    lua_acquire(S);
    if (open_rc != TAPE_OK) {
        return luaL_error(L, "helper.threads: open %s: %s", spec, open_err);
    }
    int saved = 0, exists_ok = 0, loaded_ok = 0, errors = 0;
    const char *first = NULL;
    for (int k = 0; k < n; k++) {
        saved += w[k].saved;
        exists_ok += w[k].exists_ok;
        loaded_ok += w[k].loaded_ok;
        errors += w[k].errors;
        if (first == NULL && w[k].errors > 0) {
            first = w[k].first_error;
        }
    }
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, saved);
    lua_setfield(L, -2, "saved");
    lua_pushinteger(L, exists_ok);
    lua_setfield(L, -2, "exists_ok");
    lua_pushinteger(L, loaded_ok);
    lua_setfield(L, -2, "loaded_ok");
    lua_pushinteger(L, errors);
    lua_setfield(L, -2, "errors");
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "listed");
    lua_pushinteger(L, dups);
    lua_setfield(L, -2, "duplicates");
    lua_pushinteger(L, list_rc);
    lua_setfield(L, -2, "list_rc");
    if (first != NULL) {
        lua_pushstring(L, first);
        lua_setfield(L, -2, "first_error");
    }
    return 1;
}

/* ---------------------------------------------------------------- a state closed under a caller */

typedef struct caller {
    const char *spec;
    atomic_int stop, closed;
    atomic_int ok, ok_after, closed_errors, other_errors, open_rc;
    char msg[512];   /* the message of the first failure */
} caller;

static void *caller_main(void *arg)
{
    caller *c = arg;
    tape_store *s = NULL;
    int rc = tape_store_open_spec(&s, NULL, c->spec, 0);
    atomic_store(&c->open_rc, rc == TAPE_OK ? 1 : rc);
    if (rc != TAPE_OK) {
        snprintf(c->msg, sizeof c->msg, "%s", tape_errmsg());
        return NULL;
    }
    while (!atomic_load(&c->stop)) {
        int ex = 0;
        int after = atomic_load(&c->closed); /* the call starts after lua_close returned */
        rc = tape_store_exists(&ex, s, "x");
        if (rc == TAPE_OK) {
            atomic_fetch_add(after ? &c->ok_after : &c->ok, 1);
        } else {
            if (atomic_load(&c->closed_errors) + atomic_load(&c->other_errors) == 0) {
                snprintf(c->msg, sizeof c->msg, "%s", tape_errmsg());
            }
            atomic_fetch_add(rc == TAPE_EPROVIDER ? &c->closed_errors : &c->other_errors, 1);
        }
    }
    tape_store_free(s); /* after lua_close: free finds the state dead */
    return NULL;
}

/* helper.close_while_calling(cpath, script, spec) -> table: a new
 * lua_State runs script (it registers a provider), a C thread calls a
 * store of spec in a loop, the state is closed under it, and the thread
 * goes on calling for a while. */
static int h_close_while_calling(lua_State *L)
{
    need_init(L);
    const char *cpath = luaL_checkstring(L, 1);
    const char *script = luaL_checkstring(L, 2);
    const char *spec = luaL_checkstring(L, 3);
    lua_State *L2 = luaL_newstate();
    if (L2 == NULL) {
        return luaL_error(L, "helper: cannot make a state");
    }
    luaL_openlibs(L2);
    lua_getglobal(L2, "package");
    lua_pushstring(L2, cpath);
    lua_setfield(L2, -2, "cpath");
    lua_pop(L2, 1);
    if (luaL_dostring(L2, script) != LUA_OK) {
        lua_pushstring(L, lua_tostring(L2, -1));
        lua_close(L2);
        return lua_error(L);
    }
    void *S2 = lua_release(L2); /* the C thread may enter L2 now */
    caller *c = calloc(1, sizeof *c);
    c->spec = spec;
    pthread_t th;
    pthread_create(&th, NULL, caller_main, c);
    for (int i = 0; i < 2000 && atomic_load(&c->ok) < 20 && atomic_load(&c->open_rc) <= 0; i++) {
        sleep_ms(1);
    }
    for (int i = 0; i < 2000 && atomic_load(&c->ok) < 20 && atomic_load(&c->open_rc) == 1; i++) {
        sleep_ms(1);
    }
    int ok_before = atomic_load(&c->ok);
    lua_acquire(S2);
    lua_close(L2); /* with the thread calling (or waiting for the lock) */
    atomic_store(&c->closed, 1);
    for (int i = 0; i < 2000 && atomic_load(&c->closed_errors) < 20; i++) {
        sleep_ms(1);
    }
    atomic_store(&c->stop, 1);
    pthread_join(th, NULL);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, atomic_load(&c->open_rc));
    lua_setfield(L, -2, "open");
    lua_pushinteger(L, ok_before);
    lua_setfield(L, -2, "ok_before");
    lua_pushinteger(L, atomic_load(&c->ok_after));
    lua_setfield(L, -2, "ok_after");
    lua_pushinteger(L, atomic_load(&c->closed_errors));
    lua_setfield(L, -2, "eprovider");
    lua_pushinteger(L, atomic_load(&c->other_errors));
    lua_setfield(L, -2, "other");
    lua_pushstring(L, c->msg);
    lua_setfield(L, -2, "msg");
    free(c);
    return 1;
}

/* helper.sleep_unlocked(ms): sleep with the lock released (C threads of
 * other tests may enter the state meanwhile). */
static int h_sleep_unlocked(lua_State *L)
{
    need_init(L);
    long ms = (long)luaL_checkinteger(L, 1);
    void *S = lua_release(L);
    sleep_ms(ms);
    lua_acquire(S);
    return 0;
}

/* helper.provider_info(name) -> version, description, capabilities | nil, code
 * (read from C, in the default registry) */
static int h_provider_info(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    tape_provider_info *info = NULL;
    int rc = tape_registry_find(&info, tape_registry_default(), name);
    if (rc != TAPE_OK) {
        lua_pushnil(L);
        lua_pushinteger(L, rc);
        return 2;
    }
    lua_pushinteger(L, tape_provider_info_version(info));
    const char *d = tape_provider_info_description(info);
    if (d != NULL) {
        lua_pushstring(L, d);
    } else {
        lua_pushnil(L);
    }
    lua_pushinteger(L, tape_provider_info_capabilities(info));
    tape_provider_info_free(info);
    return 3;
}

/* helper.open_exists(spec, id) -> 1 | 0 | error code: open spec from C
 * (lock released) and ask exists(id). */
static int h_open_exists(lua_State *L)
{
    need_init(L);
    const char *spec = luaL_checkstring(L, 1);
    const char *id = luaL_checkstring(L, 2);
    void *S = lua_release(L);
    tape_store *s = NULL;
    int rc = tape_store_open_spec(&s, NULL, spec, 0);
    int ex = 0;
    if (rc == TAPE_OK) {
        rc = tape_store_exists(&ex, s, id);
        tape_store_free(s);
    }
    lua_acquire(S);
    lua_pushinteger(L, rc == TAPE_OK ? ex : rc);
    return 1;
}

/* helper.open_exists_locked(spec, id): the same with the lock kept held, as
 * C code running inside the state would do (a finalizer, an embedding
 * host's callback): a Lua provider's trampoline must run nested, not wait
 * for the lock this thread holds. */
static int h_open_exists_locked(lua_State *L)
{
    const char *spec = luaL_checkstring(L, 1);
    const char *id = luaL_checkstring(L, 2);
    tape_store *s = NULL;
    int rc = tape_store_open_spec(&s, NULL, spec, 0);
    int ex = 0;
    if (rc == TAPE_OK) {
        rc = tape_store_exists(&ex, s, id);
        tape_store_free(s);
    }
    lua_pushinteger(L, rc == TAPE_OK ? ex : rc);
    return 1;
}

/* helper.new_state(cpath, path, script) -> a light userdata: a second
 * lua_State that ran script (this thread holds its lock, taken by
 * luaopen_tapestore); helper.close_state(it) closes it. */
static int h_new_state(lua_State *L)
{
    const char *cpath = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    const char *script = luaL_checkstring(L, 3);
    lua_State *L2 = luaL_newstate();
    if (L2 == NULL) {
        return luaL_error(L, "helper: cannot make a state");
    }
    luaL_openlibs(L2);
    lua_getglobal(L2, "package");
    lua_pushstring(L2, cpath);
    lua_setfield(L2, -2, "cpath");
    lua_pushstring(L2, path);
    lua_setfield(L2, -2, "path");
    lua_pop(L2, 1);
    if (luaL_dostring(L2, script) != LUA_OK) {
        lua_pushstring(L, lua_tostring(L2, -1));
        lua_close(L2);
        return lua_error(L);
    }
    lua_pushlightuserdata(L, L2);
    return 1;
}

static int h_close_state(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
    lua_close(lua_touserdata(L, 1));
    return 0;
}

/* ---------------------------------------------------------------- every op from a pthread */

#define EVERY_OPS 13
static const char *const every_names[EVERY_OPS] = {
    "open", "save", "exists", "load", "search", "stats", "record", "append", "correlate",
    "finish", "frames", "control", "delete"};

typedef struct every {
    const char *spec;
    int rc[EVERY_OPS]; /* each op's result (1 for a check that did not hold) */
    char msg[512];     /* the first failure */
} every;

static void every_note(every *e, int i, int rc)
{
    e->rc[i] = rc;
    if (rc != TAPE_OK && e->msg[0] == '\0') {
        snprintf(e->msg, sizeof e->msg, "%s: %d %s", every_names[i], rc,
                 rc < 0 ? tape_errmsg() : "(check failed)");
    }
}

static void *every_main(void *arg)
{
    every *e = arg;
    tape_store *s = NULL;
    every_note(e, 0, tape_store_open_spec(&s, NULL, e->spec, TAPE_OPEN_EAGER));
    if (s == NULL) {
        return NULL;
    }
    tape *t = NULL;
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    int rc = tape_new(&t, "every-1");
    if (rc == TAPE_OK) rc = tape_set_name(t, "every");
    if (rc == TAPE_OK) rc = tape_append_frame(NULL, t, &d);
    if (rc == TAPE_OK) rc = tape_store_save(s, t);
    every_note(e, 1, rc);
    int ex = 0;
    rc = tape_store_exists(&ex, s, "every-1");
    every_note(e, 2, rc != TAPE_OK ? rc : ex == 1 ? TAPE_OK : 1);
    tape *back = NULL;
    rc = tape_store_load(&back, s, "every-1");
    every_note(e, 3, rc != TAPE_OK ? rc : tape_frame_count(back) == 1 ? TAPE_OK : 1);
    tape_free(back);
    tape_query *q = NULL;
    tape_result *r = NULL;
    rc = tape_query_parse(&q, "{\"name_contains\":\"every\"}");
    if (rc == TAPE_OK) rc = tape_store_query(&r, s, q);
    every_note(e, 4, rc != TAPE_OK ? rc : tape_result_count(r) == 1 ? TAPE_OK : 1);
    tape_result_free(r);
    tape_query_free(q);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    rc = tape_store_stats_get(&st, s);
    every_note(e, 5, rc != TAPE_OK ? rc : st.tape_count == 1 ? TAPE_OK : 1);
    tape *h = NULL;
    tape_writer *w = NULL;
    rc = tape_new(&h, "every-rec");
    if (rc == TAPE_OK) rc = tape_store_record(&w, s, h);
    every_note(e, 6, rc);
    uint64_t seq = 0;
    rc = w != NULL ? tape_writer_append(&seq, w, &d) : TAPE_ESTATE;
    if (rc == TAPE_OK) {
        tape_frame_desc d2 = d;
        d2.direction = TAPE_DIR_SERVER_TO_CLIENT;
        d2.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
        rc = tape_writer_append(&seq, w, &d2);
    }
    every_note(e, 7, rc);
    rc = w != NULL ? tape_writer_add_correlation(w, "1", 0, 1, 3, "ok") : TAPE_ESTATE;
    every_note(e, 8, rc);
    rc = w != NULL ? tape_writer_finish(w) : TAPE_ESTATE;
    every_note(e, 9, rc);
    tape_writer_free(w);
    tape_free(h);
    tape_frame_iter *it = NULL;
    rc = tape_store_read_frames(&it, s, "every-rec", 1, TAPE_SEQ_END);
    int n = 0;
    const tape_frame *f = NULL;
    while (rc == TAPE_OK && (rc = tape_frame_iter_next(&f, it)) == TAPE_OK) {
        n++;
    }
    every_note(e, 10, rc != TAPE_DONE ? rc : n == 1 ? TAPE_OK : 1);
    tape_frame_iter_free(it);
    char *out = NULL;
    rc = tape_store_control(&out, s, "echo", "{\"x\":1}");
    every_note(e, 11, rc != TAPE_OK ? rc : out != NULL && strcmp(out, "{\"x\":1}") == 0 ? TAPE_OK : 1);
    tape_string_free(out);
    rc = tape_store_delete(s, "every-1");
    every_note(e, 12, rc);
    tape_free(t);
    tape_store_free(s);
    return NULL;
}

/* helper.every_op(spec) -> {op = rc...}, first failure: every op of a store
 * of spec called from a bare pthread (this state's lock released). */
static int h_every_op(lua_State *L)
{
    need_init(L);
    every e;
    memset(&e, 0, sizeof e);
    e.spec = luaL_checkstring(L, 1);
    void *S = lua_release(L);
    pthread_t th;
    pthread_create(&th, NULL, every_main, &e);
    pthread_join(th, NULL);
    lua_acquire(S);
    lua_createtable(L, 0, EVERY_OPS);
    for (int i = 0; i < EVERY_OPS; i++) {
        lua_pushinteger(L, e.rc[i]);
        lua_setfield(L, -2, every_names[i]);
    }
    if (e.msg[0] != '\0') {
        lua_pushstring(L, e.msg);
    } else {
        lua_pushnil(L);
    }
    return 2;
}

int luaopen_tape_lua_testhelper(lua_State *L);
__attribute__((visibility("default"))) int luaopen_tape_lua_testhelper(lua_State *L)
{
    static const luaL_Reg fns[] = {{"init", h_init},
                                   {"threads", h_threads},
                                   {"close_while_calling", h_close_while_calling},
                                   {"sleep_unlocked", h_sleep_unlocked},
                                   {"provider_info", h_provider_info},
                                   {"open_exists", h_open_exists},
                                   {"open_exists_locked", h_open_exists_locked},
                                   {"new_state", h_new_state},
                                   {"every_op", h_every_op},
                                   {"close_state", h_close_state},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
