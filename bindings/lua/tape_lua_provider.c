/*
 * tape_lua_provider.c - providers written in Lua (docs/providers-lua.md):
 * tapestore.register_provider, tapestore.unregister_provider and
 * tapestore.conformance.
 *
 * One tape_provider per registration (lp_provider). Its factory runs at
 * each create and returns the table of op functions; the ops present pick
 * the vtable (one per set of ops, built once per registration), so an
 * absent optional op leaves its slot NULL and the core's fallback runs.
 *
 * Locks (docs/abi.md "Threads"): every backend declares
 * TAPE_CAP_THREAD_SAFE and serialises on the state's lock alone (like
 * Python's GIL). A trampoline is entered from a thread holding no Lua
 * lock (the host API releases it around every core call), takes the lock,
 * runs the op on a Lua thread of the binding's own (a pool anchored in the
 * registry; never the caller's L, which may be a coroutine that is
 * collected) and releases the lock. Nothing of the core is called with
 * the lock held except pure data functions (clone, encode, entries, the
 * query page and the list sink), which take no lock and call no provider.
 *
 * Protected mode: every Lua call runs inside lua_pcall. The trampoline
 * pushes a C "worker" on the call's thread and pcalls it; the worker
 * marshals the arguments, pcalls the op with a traceback handler, revokes
 * the objects it lent and checks the results. Outputs that own memory live
 * in the job struct, so the C side frees them whatever failed.
 *
 * Lifetime: the state's record (lp_state, malloc'd, counted) outlives the
 * lua_State: backends that C threads still hold after lua_close find it
 * dead and fail with TAPE_EPROVIDER. A sentinel userdata in the registry
 * marks it dead from its __gc (which lua_close runs), unregisters this
 * state's providers and waits for the calls in flight.
 */
#define _GNU_SOURCE /* dladdr (finding the conformance library beside libtapestore) */
#include "tape_lua.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapestore/provider.h>

/* ---------------------------------------------------------------- records */

/* The optional op groups; their bits index a registration's vtables. */
enum {
    LP_OPEN = 1u << 0,
    LP_CLOSE = 1u << 1,
    LP_EXISTS = 1u << 2,
    LP_SEARCH = 1u << 3,
    LP_STATS = 1u << 4,
    LP_WRITER = 1u << 5, /* begin_recording */
    LP_FRAMES = 1u << 6,
    LP_CONTROL = 1u << 7,
    LP_PERSISTENT = 1u << 8, /* the store declares TAPE_CAP_PERSISTENT */
    LP_NSETS = 1u << 9
};
static const char *const optional_ops[] = {"open",  "close",           "exists", "search",
                                           "stats", "begin_recording", "frames", "control"};
static const char *const required_ops[] = {"save", "load", "delete", "list"};

typedef struct lp_provider lp_provider;

/* One per lua_State that loaded the module. */
typedef struct lp_state {
    atomic_int refs;     /* the sentinel's, and one per registration */
    pthread_mutex_t mu;  /* guards alive, inflight */
    pthread_cond_t idle; /* signalled when inflight drops */
    int alive;           /* 0 once the sentinel's __gc ran: the lua_State is going */
    long inflight;       /* trampolines between call_enter and call_leave */
    tape_lua_state *S;   /* valid while alive, or while inflight > 0 */
    /* Under S->lock: a thread that only ever makes the others (its stack is
     * always empty and it never runs a provider), and the pool of idle Lua
     * threads (each anchored by a registry ref). */
    lua_State *seed;
    lua_State **pool;
    int *pool_ref;
    int npool, cappool;
} lp_state;

struct lp_provider {
    lp_state *st;        /* counted */
    char *name;
    tape_registry *reg;
    int registered;      /* under provs_mu: still in reg under our name */
    int factory_ref;     /* registry refs (valid while st->alive) */
    int validate_ref;    /* LUA_NOREF: no validate */
    unsigned int flags;  /* TAPE_CAP_PERSISTENT from the options: the default of its stores */
    tape_backend_ops *vt[LP_NSETS]; /* built on first use, under S->lock */
    lp_provider *next;   /* in all_provs */
};

typedef struct lp_backend {
    lp_provider *p;      /* outlives its backends (destroy comes after the last free) */
    int ops_ref;         /* the factory's table */
} lp_backend;

typedef struct lp_writer {
    lp_backend *b;
    int rec_ref;         /* the recording table */
} lp_writer;

typedef struct lp_iter {
    lp_backend *b;
    int src_ref;         /* an array or an iterator function */
    int is_fn;
    lua_Integer pos;     /* next index of an array */
    int done;
    tape_frame *cur;     /* the frame handed out last, owned */
} lp_iter;

static char state_key; /* registry key of the sentinel */

/* Every registration of every state, registered or still used by a store:
 * an unregister from any state (or a state's close) finds the one that
 * holds a name. */
static pthread_mutex_t provs_mu = PTHREAD_MUTEX_INITIALIZER;
static lp_provider *all_provs;

/* Trampolines nested on this OS thread (an op calling back into a store of
 * a Lua provider, a finalizer inside an op): each level is real C stack
 * that Lua's own limit does not see across threads, so it is capped. */
#define LP_MAX_DEPTH 100
static _Thread_local int tl_depth;

static void state_unref(lp_state *st)
{
    if (atomic_fetch_sub(&st->refs, 1) == 1) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->idle);
        free(st->pool);
        free(st->pool_ref);
        free(st);
    }
}

/* ---------------------------------------------------------------- calls */

typedef struct lp_call {
    lp_state *st;
    const char *pname; /* provider name, for messages */
    const char *op;
    lua_State *T;      /* the call's own thread */
    int tref;
    int nested;        /* entered with the lock already held by this thread */
    int code;          /* what the call ends with */
    char *msg;         /* its message (malloc'd), set last in call_leave */
} lp_call;

/* The message of a failed call: "lua provider 'NAME' OP: text". */
static void call_fail(lp_call *c, int code, const char *text, int verbatim)
{
    free(c->msg);
    c->code = code;
    if (verbatim) {
        c->msg = strdup(text);
        return;
    }
    size_t n = strlen(text) + strlen(c->pname) + strlen(c->op) + 32;
    c->msg = malloc(n);
    if (c->msg != NULL) {
        snprintf(c->msg, n, "lua provider '%s' %s: %s", c->pname, c->op, text);
    }
}

/* Runs in protected mode on the seed thread (lock held): make a new
 * thread and anchor it. Arg 1: the lp_call. */
static int new_thread(lua_State *L)
{
    lp_call *c = lua_touserdata(L, 1);
    c->T = lua_newthread(L);
    c->tref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Take the state's lock and a thread. On failure nothing is held and the
 * code is returned with the error set. */
static int call_enter(lp_call *c, lp_state *st, const char *pname, const char *op)
{
    memset(c, 0, sizeof *c);
    c->st = st;
    c->pname = pname;
    c->op = op;
    if (tl_depth >= LP_MAX_DEPTH) {
        return tape_error_set(TAPE_ESTATE, "lua provider '%s' %s: calls nested %d deep on this "
                              "thread (an op calling back into its store without end?)",
                              pname, op, tl_depth);
    }
    pthread_mutex_lock(&st->mu);
    if (!st->alive) {
        pthread_mutex_unlock(&st->mu);
        return tape_error_set(TAPE_EPROVIDER, "lua provider '%s' %s: its Lua state is closed",
                              pname, op);
    }
    st->inflight++;
    pthread_mutex_unlock(&st->mu);
    /* Re-entry with the lock held (a finalizer run by an allocation inside
     * an op, or code of this state calling the core without releasing the
     * lock): run nested on another thread of the pool, as the recursive
     * mutex of the Python binding does, instead of waiting for ourselves. */
    c->nested = tape_lua_state_held(st->S);
    if (!c->nested) {
        tape_lua_state_lock(st->S);
    }
    pthread_mutex_lock(&st->mu);
    int alive = st->alive; /* the state may have started closing while we waited */
    pthread_mutex_unlock(&st->mu);
    int rc = TAPE_OK;
    if (!alive) {
        rc = tape_error_set(TAPE_EPROVIDER, "lua provider '%s' %s: its Lua state is closed",
                            pname, op);
    } else if (st->npool > 0) {
        st->npool--;
        c->T = st->pool[st->npool];
        c->tref = st->pool_ref[st->npool];
    } else {
        /* A new thread, made in protected mode on the seed (never the
         * caller's L, nor the main thread, which may be mid-call). */
        lua_State *M = st->seed;
        lua_pushcfunction(M, new_thread);
        lua_pushlightuserdata(M, c);
        if (lua_pcall(M, 1, 0, 0) != LUA_OK) {
            rc = tape_error_set(TAPE_ENOMEM, "lua provider '%s' %s: cannot make a Lua thread",
                                pname, op);
        }
        lua_settop(M, 0);
    }
    if (rc != TAPE_OK) {
        if (!c->nested) {
            tape_lua_state_unlock(st->S);
        }
        pthread_mutex_lock(&st->mu);
        st->inflight--;
        pthread_cond_broadcast(&st->idle);
        pthread_mutex_unlock(&st->mu);
        return rc;
    }
    c->code = TAPE_OK;
    tl_depth++;
    return TAPE_OK;
}

/* Give the thread back, release the lock, set the error (last, so nothing
 * run before overwrites it). Returns the call's code. */
static int call_leave(lp_call *c)
{
    lp_state *st = c->st;
    tl_depth--;
    lua_settop(c->T, 0);
    if (st->npool == st->cappool) {
        int n = st->cappool ? st->cappool * 2 : 8;
        lua_State **p = realloc(st->pool, (size_t)n * sizeof *p);
        if (p != NULL) {
            st->pool = p;
        }
        int *r = realloc(st->pool_ref, (size_t)n * sizeof *r);
        if (r != NULL) {
            st->pool_ref = r;
        }
        if (p != NULL && r != NULL) {
            st->cappool = n;
        }
    }
    if (st->npool < st->cappool) {
        st->pool[st->npool] = c->T;
        st->pool_ref[st->npool] = c->tref;
        st->npool++;
    } else {
        luaL_unref(c->T, LUA_REGISTRYINDEX, c->tref); /* cannot keep it: let it go */
    }
    if (!c->nested) {
        tape_lua_state_unlock(st->S);
    }
    pthread_mutex_lock(&st->mu);
    st->inflight--;
    pthread_cond_broadcast(&st->idle);
    pthread_mutex_unlock(&st->mu);
    int code = c->code;
    if (code != TAPE_OK) {
        tape_error_set_message(code, c->msg != NULL ? c->msg : "lua provider: out of memory");
    }
    free(c->msg);
    c->msg = NULL;
    return code;
}

/* The traceback handler of every op call. */
static int msgh(lua_State *L)
{
    const char *m = lua_tostring(L, 1);
    if (m == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            m = lua_tostring(L, -1);
        } else {
            m = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
    }
    luaL_traceback(L, L, m, 1);
    return 1;
}

/* Run worker(job) in protected mode on the call's thread. The worker
 * reports an op's failure itself (call_fail); an error it raises is the
 * binding's (a wrong return type) and becomes TAPE_EPROVIDER. */
static void call_run(lp_call *c, lua_CFunction worker, void *job)
{
    lua_State *T = c->T;
    lua_pushcfunction(T, worker);
    lua_pushlightuserdata(T, job);
    int r = lua_pcall(T, 1, 0, 0);
    if (r != LUA_OK && c->code == TAPE_OK) {
        const char *m = lua_type(T, -1) == LUA_TSTRING ? lua_tostring(T, -1) : NULL;
        if (r == LUA_ERRMEM) {
            call_fail(c, TAPE_ENOMEM, "out of memory", 0);
        } else {
            call_fail(c, TAPE_EPROVIDER, m != NULL ? m : "error", 0);
        }
    }
    lua_settop(T, 0);
}

/* ---------------------------------------------------------------- worker helpers */

/* Every job starts with this. */
typedef struct lp_job {
    lp_call *c;
    int target_ref; /* the table whose field is called (ops or recording) */
    const char *field;
} lp_job;

/* Push job->target[field] and the traceback handler below it: leaves
 * handler at base+1, function at base+2. */
static int push_op(lua_State *L, lp_job *j)
{
    int base = lua_gettop(L);
    lua_pushcfunction(L, msgh);
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->target_ref);
    lua_getfield(L, -1, j->field);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL) {
            return luaL_error(L, "%s is a %s now, not a function", j->field,
                              luaL_typename(L, -1));
        }
        lua_pop(L, 1); /* the __call field: the callable stays */
    }
    return base;
}

/* A function, or a value with a __call metamethod. */
static int is_callable(lua_State *L, int idx)
{
    if (lua_isfunction(L, idx)) {
        return 1;
    }
    int ok = luaL_getmetafield(L, idx, "__call") != LUA_TNIL;
    if (ok) {
        lua_pop(L, 1);
    }
    return ok;
}

/* A valid TAPE_E* code, or 0. */
static int valid_code(lua_State *L, int idx)
{
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok); /* a number only: not "-1" */
    return ok && lua_type(L, idx) == LUA_TNUMBER && v <= TAPE_ENOTFOUND && v >= TAPE_ESTATE
               ? (int)v
               : 0;
}

/* Call the op pushed by push_op with nargs arguments above it. Returns the
 * number of results (at base+2 ...), or -1 when the op failed (raised, or
 * returned nil, message[, code]: recorded with call_fail). def_code: the
 * code of nil, message without one. */
static int call_op(lua_State *L, lp_job *j, int base, int nargs, int def_code)
{
    lp_call *c = j->c;
    int r = lua_pcall(L, nargs, LUA_MULTRET, base + 1);
    if (r != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        if (r == LUA_ERRMEM) {
            call_fail(c, TAPE_ENOMEM, "out of memory", 0);
        } else if (m != NULL && strstr(m, "attempt to yield") != NULL) {
            lua_pushfstring(L, "%s\n(an op cannot yield: it runs on the binding's own Lua "
                               "thread, outside any coroutine of the caller)", m);
            call_fail(c, TAPE_EPROVIDER, lua_tostring(L, -1), 0);
        } else {
            call_fail(c, TAPE_EPROVIDER, m != NULL ? m : "error", 0);
        }
        return -1;
    }
    int n = lua_gettop(L) - (base + 1);
    if (n >= 2 && lua_isnil(L, base + 2)) { /* nil, message[, code] */
        const char *m = luaL_tolstring(L, base + 3, NULL);
        int code = n >= 3 ? valid_code(L, base + 4) : 0;
        if (n >= 3 && !lua_isnil(L, base + 4) && code == 0) {
            const char *cs = luaL_tolstring(L, base + 4, NULL);
            lua_pushfstring(L, "%s (and %s, which is not a tapestore error code)", m, cs);
            m = lua_tostring(L, -1);
        }
        if (code == TAPE_EPROVIDER) {
            call_fail(c, code, m, 0);
        } else if (code != 0) {
            call_fail(c, code, m, 1); /* the provider's own code: its message as it is */
        } else {
            call_fail(c, def_code, m, 0);
        }
        return -1;
    }
    return n;
}

/* No result, nil or true: the ops that return nothing. true too, so that
 * an op can return what a store method answers (`return base:save(t)`
 * passes on true, or nil, message, code). */
static void expect_nothing(lua_State *L, lp_job *j, int base, int n)
{
    int r = base + 2;
    if (n >= 1 && !lua_isnil(L, r) && !(lua_isboolean(L, r) && lua_toboolean(L, r))) {
        luaL_error(L, "%s returned %s, expected nothing (or true)", j->field,
                   lua_isboolean(L, r) ? "false" : luaL_typename(L, r));
    }
}

#define TAPE_MT "tapestore.tape"
#define ENTRY_MT "tapestore.entry"
#define FRAME_MT "tapestore.frame"

/* What a list item or a search entry is, as an entry of our own (the
 * caller frees it). Raises naming the op and the item. */
static tape_entry *entry_of(lua_State *L, int idx, const char *op, lua_Integer i)
{
    idx = lua_absindex(L, idx);
    tape_entry *e = NULL;
    int rc;
    if (luaL_testudata(L, idx, TAPE_MT) != NULL) {
        tape *t = tape_lua_check_tape(L, idx);
        rc = tape_entry_from_tape(&e, t);
    } else if (luaL_testudata(L, idx, ENTRY_MT) != NULL ||
               lua_type(L, idx) == LUA_TTABLE) {
        if (lua_type(L, idx) == LUA_TTABLE) {
            tape_lua_json_encode(L, idx);
        } else { /* through the entry's own method: its .meta.json text */
            lua_getfield(L, idx, "meta_json");
            lua_pushvalue(L, idx);
            lua_call(L, 1, 1);
        }
        size_t n = 0;
        const char *s = lua_tolstring(L, -1, &n);
        if (s == NULL) {
            return (void)luaL_error(L, "%s item %I: the entry gave no .meta.json text", op, i),
                   NULL;
        }
        rc = tape_entry_from_meta(&e, s, n);
        lua_pop(L, 1);
    } else {
        return (void)luaL_error(L, "%s gave %s as item %I, expected a tape, an entry or a "
                                   ".meta.json table", op, luaL_typename(L, idx), i),
               NULL;
    }
    if (rc != TAPE_OK) {
        luaL_error(L, "%s item %I: %s", op, i, tape_errmsg());
    }
    return e;
}

/* ---------------------------------------------------------------- the query table */

typedef struct lp_qbox {
    tape_query *q; /* owned: the table may outlive the call */
} lp_qbox;

static int qbox_gc(lua_State *L)
{
    lp_qbox *b = lua_touserdata(L, 1);
    tape_query_free(b->q);
    b->q = NULL;
    return 0;
}

static tape_query *query_of(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    if (!lua_getmetatable(L, idx) || lua_getfield(L, -1, "__query") != LUA_TUSERDATA) {
        luaL_error(L, "expected the query a provider op received");
    }
    lp_qbox *b = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return b->q;
}

/* query:match(item): the core's matcher (a tape with `text`, the others
 * without it). */
static int query_match(lua_State *L)
{
    tape_query *q = query_of(L, 1);
    if (luaL_testudata(L, 2, TAPE_MT) != NULL) {
        lua_pushboolean(L, tape_query_match_tape(q, tape_lua_check_tape(L, 2)) == 1);
        return 1;
    }
    tape_entry *e = entry_of(L, 2, "match", 1);
    int m = tape_query_match_entry(q, e);
    tape_entry_free(e);
    lua_pushboolean(L, m == 1);
    return 1;
}

/* A vector of entries that a raise cannot leak: its __gc frees them. */
typedef struct lp_entries {
    size_t n;
    tape_entry *v[];
} lp_entries;

static int entries_gc(lua_State *L)
{
    lp_entries *ev = lua_touserdata(L, 1);
    for (size_t i = 0; i < ev->n; i++) {
        tape_entry_free(ev->v[i]);
        ev->v[i] = NULL;
    }
    return 0;
}

/* query:page(items) -> entries, next_cursor: one page exactly as the
 * core's fallback search computes it (matcher except text, order, cursor,
 * limit). */
static int query_page(lua_State *L)
{
    tape_query *q = query_of(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    lp_entries *ev = lua_newuserdatauv(L, sizeof *ev + n * sizeof ev->v[0], 0);
    ev->n = 0;
    if (luaL_newmetatable(L, "tapestore.entry_vector")) {
        lua_pushcfunction(L, entries_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        tape_entry *e = entry_of(L, -1, "page", (lua_Integer)i + 1);
        ev->v[ev->n++] = e;
        lua_pop(L, 1);
    }
    tape_result *res = NULL;
    int rc = tape_query_page(&res, q, (const tape_entry *const *)ev->v, ev->n);
    if (rc != TAPE_OK) {
        return luaL_error(L, "query:page: %s", tape_errmsg());
    }
    size_t count = tape_result_count(res);
    lua_createtable(L, count < INT_MAX ? (int)count : 0, 0);
    for (size_t i = 0; i < count; i++) {
        /* push_entry raises only on memory: that leaks one reference of an
         * immutable entry, and the result (a small leak on a dying state). */
        tape_lua_push_entry(L, tape_entry_ref(tape_result_at(res, i)));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    const char *cur = tape_result_next_cursor(res);
    if (cur != NULL) {
        lua_pushstring(L, cur);
    } else {
        lua_pushnil(L);
    }
    tape_result_free(res);
    return 2;
}

/* Push the query table of q: its normalised JSON decoded, with match and
 * page, and an owned copy of q for them. */
static void push_query(lua_State *L, const tape_query *q)
{
    char *js = NULL;
    int rc = q != NULL ? tape_query_to_json(&js, q) : TAPE_OK;
    if (rc != TAPE_OK) {
        luaL_error(L, "the query: %s", tape_errmsg());
    }
    const char *text = js != NULL ? js : "{}";
    lp_qbox *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->q = NULL;
    if (luaL_newmetatable(L, "tapestore.query_box")) {
        lua_pushcfunction(L, qbox_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    rc = tape_query_parse(&box->q, text);
    if (rc != TAPE_OK || !tape_lua_json_decode(L, text, strlen(text))) {
        tape_string_free(js);
        luaL_error(L, "the query: %s", rc != TAPE_OK ? tape_errmsg() : lua_tostring(L, -1));
    }
    tape_string_free(js);
    lua_createtable(L, 0, 4); /* the query's own metatable: its box */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__query");
    if (luaL_newmetatable(L, "tapestore.query_methods")) {
        lua_pushcfunction(L, query_match);
        lua_setfield(L, -2, "match");
        lua_pushcfunction(L, query_page);
        lua_setfield(L, -2, "page");
    }
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "tapestore.query");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_remove(L, -2); /* the box: kept by the metatable */
}

/* Push the config table (decoded JSON). */
static void push_config(lua_State *L, const tape_config *config)
{
    char *js = NULL;
    if (config != NULL && tape_config_to_json(&js, config) != TAPE_OK) {
        luaL_error(L, "the config: %s", tape_errmsg());
    }
    const char *text = js != NULL ? js : "{}";
    int ok = tape_lua_json_decode(L, text, strlen(text));
    tape_string_free(js);
    if (!ok) {
        lua_error(L);
    }
}

/* ---------------------------------------------------------------- backend ops */

/* Enter a backend call; returns early with the error code on failure. */
#define ENTER(c, b, opname)                                                     \
    lp_call c;                                                                  \
    do {                                                                        \
        int rc_ = call_enter(&c, (b)->p->st, (b)->p->name, (opname));           \
        if (rc_ != TAPE_OK) {                                                   \
            return rc_;                                                         \
        }                                                                       \
    } while (0)

/* -- save */
typedef struct { lp_job j; const tape *t; } job_save;
static int w_save(lua_State *L)
{
    job_save *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    tape_lua_push_tape(L, (tape *)jb->t, TAPE_LUA_LENT, 0);
    lua_pushvalue(L, -1);
    lua_replace(L, 1); /* keep the lent object for revoking (arg 1 is done with) */
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    tape_lua_revoke(L, 1);
    if (n >= 0) {
        expect_nothing(L, &jb->j, base, n);
    }
    return 0;
}
static int op_save(void *self, const tape *t)
{
    lp_backend *b = self;
    ENTER(c, b, "save");
    job_save jb = {{&c, b->ops_ref, "save"}, t};
    call_run(&c, w_save, &jb);
    return call_leave(&c);
}

/* -- load */
typedef struct { lp_job j; const char *id; tape *out; int notfound; } job_load;
static int w_load(lua_State *L)
{
    job_load *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    lua_pushstring(L, jb->id);
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    if (n == 0 || lua_isnil(L, base + 2)) {
        jb->notfound = 1;
        return 0;
    }
    if (luaL_testudata(L, base + 2, TAPE_MT) == NULL) {
        return luaL_error(L, "load returned %s, expected a tape or nil", luaL_typename(L, base + 2));
    }
    tape *t = tape_lua_check_tape(L, base + 2);
    if (tape_clone(&jb->out, t) != TAPE_OK) {
        return luaL_error(L, "load: %s", tape_errmsg());
    }
    return 0;
}
static int op_load(tape **out, void *self, const char *id)
{
    lp_backend *b = self;
    *out = NULL;
    ENTER(c, b, "load");
    job_load jb = {{&c, b->ops_ref, "load"}, id, NULL, 0};
    call_run(&c, w_load, &jb);
    if (c.code == TAPE_OK && jb.notfound) {
        call_leave(&c);
        return tape_error_set(TAPE_ENOTFOUND, "lua provider '%s': no tape '%s'", b->p->name, id);
    }
    int rc = call_leave(&c);
    if (rc != TAPE_OK) {
        tape_free(jb.out);
        return rc;
    }
    *out = jb.out;
    return TAPE_OK;
}

/* -- delete, exists: an id in */
typedef struct { lp_job j; const char *id; int exists; } job_id;
static int w_delete(lua_State *L)
{
    job_id *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    lua_pushstring(L, jb->id);
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    if (n >= 0) {
        expect_nothing(L, &jb->j, base, n);
    }
    return 0;
}
static int op_remove(void *self, const char *id)
{
    lp_backend *b = self;
    ENTER(c, b, "delete");
    job_id jb = {{&c, b->ops_ref, "delete"}, id, 0};
    call_run(&c, w_delete, &jb);
    return call_leave(&c);
}

static int w_exists(lua_State *L)
{
    job_id *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    lua_pushstring(L, jb->id);
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    if (n < 1 || !lua_isboolean(L, base + 2)) {
        return luaL_error(L, "exists returned %s, expected a boolean",
                          n < 1 ? "nothing" : luaL_typename(L, base + 2));
    }
    jb->exists = lua_toboolean(L, base + 2);
    return 0;
}
static int op_exists(int *out_exists, void *self, const char *id)
{
    lp_backend *b = self;
    *out_exists = 0;
    ENTER(c, b, "exists");
    job_id jb = {{&c, b->ops_ref, "exists"}, id, 0};
    call_run(&c, w_exists, &jb);
    int rc = call_leave(&c);
    if (rc == TAPE_OK) {
        *out_exists = jb.exists;
    }
    return rc;
}

/* -- list */
typedef struct {
    lp_job j;
    const tape_query *q;
    tape_entry_sink sink;
    void *sink_data;
} job_list;

/* Hand the item at idx to the sink; 1 when the sink says stop. */
static int sink_item(lua_State *L, job_list *jb, int idx, lua_Integer i)
{
    tape_entry *e = entry_of(L, idx, "list", i);
    int stop = jb->sink(jb->sink_data, e); /* takes its own reference */
    tape_entry_free(e);
    return stop;
}

static int w_list(lua_State *L)
{
    job_list *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    push_query(L, jb->q);
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    int r = base + 2;
    if (n >= 1 && lua_type(L, r) == LUA_TTABLE) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, r);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_rawgeti(L, r, i);
            int stop = sink_item(L, jb, -1, i);
            lua_pop(L, 1);
            if (stop) {
                break;
            }
        }
        return 0;
    }
    if (n >= 1 && is_callable(L, r)) {
        for (lua_Integer i = 1;; i++) { /* call it until it returns nil */
            lua_settop(L, r);
            lua_pushvalue(L, r);
            if (lua_pcall(L, 0, 1, base + 1) != LUA_OK) {
                call_fail(jb->j.c, TAPE_EPROVIDER, lua_tostring(L, -1) ? lua_tostring(L, -1)
                                                                       : "error", 0);
                return 0;
            }
            if (lua_isnil(L, -1) || sink_item(L, jb, -1, i)) {
                break;
            }
        }
        return 0;
    }
    return luaL_error(L, "list returned %s, expected an array or an iterator function of "
                         "tapes, entries or .meta.json tables",
                      n < 1 ? "nothing" : luaL_typename(L, r));
}
static int op_list(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data)
{
    lp_backend *b = self;
    ENTER(c, b, "list");
    job_list jb = {{&c, b->ops_ref, "list"}, q, sink, sink_data};
    call_run(&c, w_list, &jb);
    return call_leave(&c);
}

/* -- search */
typedef struct { lp_job j; const tape_query *q; tape_result *res; } job_search;
static int w_search(lua_State *L)
{
    job_search *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    push_query(L, jb->q);
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    int r = base + 2;
    if (n < 1 || lua_type(L, r) != LUA_TTABLE) {
        return luaL_error(L, "search returned %s, expected entries (an array) and the next "
                             "cursor (a string or nil)",
                          n < 1 ? "nothing" : luaL_typename(L, r));
    }
    if (n >= 2 && !lua_isnil(L, r + 1) && lua_type(L, r + 1) != LUA_TSTRING) {
        return luaL_error(L, "search returned a %s as the next cursor, expected a string or nil",
                          luaL_typename(L, r + 1));
    }
    if (tape_result_new(&jb->res) != TAPE_OK) {
        return luaL_error(L, "search: %s", tape_errmsg());
    }
    lua_Integer len = (lua_Integer)lua_rawlen(L, r);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, r, i);
        tape_entry *e = entry_of(L, -1, "search", i);
        int rc = tape_result_push(jb->res, e);
        tape_entry_free(e);
        lua_pop(L, 1);
        if (rc != TAPE_OK) {
            return luaL_error(L, "search: %s", tape_errmsg());
        }
    }
    if (n >= 2 && lua_type(L, r + 1) == LUA_TSTRING &&
        tape_result_set_cursor(jb->res, lua_tostring(L, r + 1)) != TAPE_OK) {
        return luaL_error(L, "search: %s", tape_errmsg());
    }
    return 0;
}
static int op_search(tape_result **out, void *self, const tape_query *q)
{
    lp_backend *b = self;
    *out = NULL;
    ENTER(c, b, "search");
    job_search jb = {{&c, b->ops_ref, "search"}, q, NULL};
    call_run(&c, w_search, &jb);
    int rc = call_leave(&c);
    if (rc != TAPE_OK) {
        tape_result_free(jb.res);
        return rc;
    }
    *out = jb.res;
    return TAPE_OK;
}

/* -- stats */
typedef struct { lp_job j; tape_store_stats *out; } job_stats;
static int w_stats(lua_State *L)
{
    job_stats *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    int n = call_op(L, &jb->j, base, 0, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    int r = base + 2;
    if (n < 1 || lua_type(L, r) != LUA_TTABLE) {
        return luaL_error(L, "stats returned %s, expected a table with tape_count, frame_count "
                             "and total_bytes", n < 1 ? "nothing" : luaL_typename(L, r));
    }
    static const char *const keys[] = {"tape_count", "frame_count", "total_bytes"};
    uint64_t v[3];
    for (int k = 0; k < 3; k++) {
        lua_getfield(L, r, keys[k]);
        int isint = 0;
        lua_Integer x = lua_tointegerx(L, -1, &isint);
        if (lua_isnil(L, -1)) {
            x = 0;
        } else if (!isint || x < 0 || lua_type(L, -1) != LUA_TNUMBER) {
            return luaL_error(L, "stats returned %s = %s, expected a non-negative integer",
                              keys[k], luaL_tolstring(L, -1, NULL));
        }
        v[k] = (uint64_t)x;
        lua_pop(L, 1);
    }
    jb->out->tape_count = v[0];
    jb->out->frame_count = v[1];
    jb->out->total_bytes = v[2];
    return 0;
}
static int op_stats(tape_store_stats *out, void *self)
{
    lp_backend *b = self;
    ENTER(c, b, "stats");
    job_stats jb = {{&c, b->ops_ref, "stats"}, out};
    call_run(&c, w_stats, &jb);
    return call_leave(&c);
}

/* -- open, close: nothing in, nothing out */
static int w_void(lua_State *L)
{
    lp_job *j = lua_touserdata(L, 1);
    int base = push_op(L, j);
    int n = call_op(L, j, base, 0, TAPE_EPROVIDER);
    if (n >= 0) {
        expect_nothing(L, j, base, n);
    }
    return 0;
}
static int op_open(void *self)
{
    lp_backend *b = self;
    ENTER(c, b, "open");
    lp_job j = {&c, b->ops_ref, "open"};
    call_run(&c, w_void, &j);
    return call_leave(&c);
}
static int op_close(void *self)
{
    lp_backend *b = self;
    ENTER(c, b, "close");
    lp_job j = {&c, b->ops_ref, "close"};
    call_run(&c, w_void, &j);
    return call_leave(&c);
}

/* -- control */
typedef struct { lp_job j; const char *op; const char *in; char *out; } job_control;
static int w_control(lua_State *L)
{
    job_control *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    lua_pushstring(L, jb->op);
    if (jb->in == NULL) {
        lua_pushnil(L);
    } else if (!tape_lua_json_decode(L, jb->in, strlen(jb->in))) {
        return luaL_error(L, "control input: %s", lua_tostring(L, -1));
    }
    int n = call_op(L, &jb->j, base, 2, TAPE_EPROVIDER);
    if (n < 1 || lua_isnil(L, base + 2)) {
        return 0;
    }
    tape_lua_json_encode(L, base + 2);
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    jb->out = malloc(len + 1); /* the core frees it: malloc, not Lua's allocator */
    if (jb->out == NULL) {
        return luaL_error(L, "control: out of memory");
    }
    memcpy(jb->out, s, len + 1);
    return 0;
}
static int op_control(char **out_json, void *self, const char *op, const char *in_json)
{
    lp_backend *b = self;
    *out_json = NULL;
    ENTER(c, b, "control");
    job_control jb = {{&c, b->ops_ref, "control"}, op, in_json, NULL};
    call_run(&c, w_control, &jb);
    int rc = call_leave(&c);
    if (rc != TAPE_OK) {
        free(jb.out);
        return rc;
    }
    *out_json = jb.out;
    return TAPE_OK;
}

/* -- the writer */
static const char *const recording_ops[] = {"append", "correlate", "finish"};

typedef struct { lp_job j; const tape *header; int ref; } job_begin;
static int w_begin(lua_State *L)
{
    job_begin *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    tape_lua_push_tape(L, (tape *)jb->header, TAPE_LUA_LENT, 0);
    lua_pushvalue(L, -1);
    lua_replace(L, 1);
    int n = call_op(L, &jb->j, base, 1, TAPE_EPROVIDER);
    tape_lua_revoke(L, 1);
    if (n < 0) {
        return 0;
    }
    int r = base + 2;
    if (n < 1 || (lua_type(L, r) != LUA_TTABLE && lua_type(L, r) != LUA_TUSERDATA)) {
        return luaL_error(L, "begin_recording returned %s, expected a recording table (with "
                             "append, correlate and finish)",
                          n < 1 ? "nothing" : luaL_typename(L, r));
    }
    for (int k = 0; k < 3; k++) {
        lua_getfield(L, r, recording_ops[k]);
        int ok = lua_isfunction(L, -1);
        lua_pop(L, 1);
        if (!ok) {
            int has_end = lua_getfield(L, r, "end") == LUA_TFUNCTION;
            return luaL_error(L, "begin_recording returned a recording without %s (it needs "
                                 "append, correlate and finish)%s",
                              recording_ops[k],
                              has_end && k == 2 ? "; Python's end is called finish in Lua" : "");
        }
    }
    lua_pushvalue(L, r);
    jb->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}
static int op_writer_begin(void **out_writer, void *self, const tape *header)
{
    lp_backend *b = self;
    *out_writer = NULL;
    lp_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return tape_error_set(TAPE_ENOMEM, "lua provider '%s': out of memory", b->p->name);
    }
    lp_call c;
    int rc = call_enter(&c, b->p->st, b->p->name, "begin_recording");
    if (rc != TAPE_OK) {
        free(w);
        return rc;
    }
    job_begin jb = {{&c, b->ops_ref, "begin_recording"}, header, LUA_NOREF};
    call_run(&c, w_begin, &jb);
    if (c.code != TAPE_OK && jb.ref != LUA_NOREF) {
        luaL_unref(c.T, LUA_REGISTRYINDEX, jb.ref);
    }
    rc = call_leave(&c);
    if (rc != TAPE_OK) {
        free(w);
        return rc;
    }
    w->b = b;
    w->rec_ref = jb.ref;
    *out_writer = w;
    return TAPE_OK;
}

typedef struct {
    lp_job j;
    const tape_frame *f;
    const tape *header;
    size_t index;
    int finalize;
} job_rec;
static int w_append(lua_State *L)
{
    job_rec *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    tape_lua_push_frame(L, jb->f, TAPE_LUA_LENT, 0);
    tape_lua_push_tape(L, (tape *)jb->header, TAPE_LUA_LENT, 0);
    lua_pushvalue(L, -2);
    lua_replace(L, 1);
    lua_pushvalue(L, -1);
    lua_insert(L, 2); /* 1: the frame, 2: the header (both to revoke); handler moves up */
    base++;
    int n = call_op(L, &jb->j, base, 2, TAPE_EPROVIDER);
    tape_lua_revoke(L, 1);
    tape_lua_revoke(L, 2);
    if (n >= 0) {
        expect_nothing(L, &jb->j, base, n);
    }
    return 0;
}
static int op_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    lp_writer *w = writer;
    ENTER(c, w->b, "recording.append");
    job_rec jb = {{&c, w->rec_ref, "append"}, f, header, 0, 0};
    call_run(&c, w_append, &jb);
    return call_leave(&c);
}

static int w_correlate_or_finish(lua_State *L)
{
    job_rec *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    tape_lua_push_tape(L, (tape *)jb->header, TAPE_LUA_LENT, 0);
    lua_pushvalue(L, -1);
    lua_replace(L, 1);
    if (strcmp(jb->j.field, "finish") == 0) {
        lua_pushboolean(L, jb->finalize);
    } else {
        lua_pushinteger(L, (lua_Integer)jb->index + 1); /* 1-based, as tape:correlations() */
    }
    int n = call_op(L, &jb->j, base, 2, TAPE_EPROVIDER);
    tape_lua_revoke(L, 1);
    if (n >= 0) {
        expect_nothing(L, &jb->j, base, n);
    }
    return 0;
}
static int op_writer_correlate(void *writer, const tape *header, size_t i)
{
    lp_writer *w = writer;
    ENTER(c, w->b, "recording.correlate");
    job_rec jb = {{&c, w->rec_ref, "correlate"}, NULL, header, i, 0};
    call_run(&c, w_correlate_or_finish, &jb);
    return call_leave(&c);
}
static int op_writer_end(void *writer, const tape *header, int finalize)
{
    lp_writer *w = writer;
    lp_call c;
    int rc = call_enter(&c, w->b->p->st, w->b->p->name, "recording.finish");
    if (rc != TAPE_OK) {
        free(w); /* the state is closed: its refs went with it */
        return rc;
    }
    job_rec jb = {{&c, w->rec_ref, "finish"}, NULL, header, 0, finalize};
    call_run(&c, w_correlate_or_finish, &jb);
    luaL_unref(c.T, LUA_REGISTRYINDEX, w->rec_ref);
    free(w); /* freed either way: no TAPE_CAP_WRITER_RETRY */
    return call_leave(&c);
}

/* -- ranged frame reads */
typedef struct {
    lp_job j;
    const char *id;
    uint64_t from, to;
    int ref, is_fn, notfound;
} job_frames;
static int w_frames(lua_State *L)
{
    job_frames *jb = lua_touserdata(L, 1);
    int base = push_op(L, &jb->j);
    lua_pushstring(L, jb->id);
    /* Sequence numbers stay below TAPE_SEQ_END (INT64_MAX): a start past
     * it is an empty range, still an integer. */
    lua_pushinteger(L, (lua_Integer)(jb->from < TAPE_SEQ_END ? jb->from : TAPE_SEQ_END));
    if (jb->to >= TAPE_SEQ_END) { /* to the end */
        lua_pushnil(L);
    } else { /* stop is exclusive, as in store:frames and Python */
        lua_pushinteger(L, (lua_Integer)jb->to + 1);
    }
    int n = call_op(L, &jb->j, base, 3, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    int r = base + 2;
    if (n < 1 || lua_isnil(L, r)) {
        jb->notfound = 1;
        return 0;
    }
    jb->is_fn = is_callable(L, r);
    if (lua_type(L, r) != LUA_TTABLE && !jb->is_fn) {
        return luaL_error(L, "frames returned %s, expected an array or an iterator (a function) "
                             "of frames, or nil for not found", luaL_typename(L, r));
    }
    lua_pushvalue(L, r);
    jb->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}
static int op_frames_open(void **out_iter, void *self, const char *id, uint64_t from_seq,
                          uint64_t to_seq)
{
    lp_backend *b = self;
    *out_iter = NULL;
    lp_iter *it = calloc(1, sizeof *it);
    if (it == NULL) {
        return tape_error_set(TAPE_ENOMEM, "lua provider '%s': out of memory", b->p->name);
    }
    lp_call c;
    int rc = call_enter(&c, b->p->st, b->p->name, "frames");
    if (rc != TAPE_OK) {
        free(it);
        return rc;
    }
    job_frames jb = {{&c, b->ops_ref, "frames"}, id, from_seq, to_seq, LUA_NOREF, 0, 0};
    call_run(&c, w_frames, &jb);
    if (c.code != TAPE_OK && jb.ref != LUA_NOREF) {
        luaL_unref(c.T, LUA_REGISTRYINDEX, jb.ref);
    }
    int nf = c.code == TAPE_OK && jb.notfound;
    rc = call_leave(&c);
    if (nf) {
        free(it);
        return tape_error_set(TAPE_ENOTFOUND, "lua provider '%s': no tape '%s'", b->p->name, id);
    }
    if (rc != TAPE_OK) {
        free(it);
        return rc;
    }
    it->b = b;
    it->src_ref = jb.ref;
    it->is_fn = jb.is_fn;
    it->pos = 1;
    *out_iter = it;
    return TAPE_OK;
}

typedef struct { lp_job j; lp_iter *it; tape_frame *f; int done; } job_next;
static int w_next(lua_State *L)
{
    job_next *jb = lua_touserdata(L, 1);
    lp_iter *it = jb->it;
    lua_pushcfunction(L, msgh);
    int h = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, it->src_ref);
    if (it->is_fn) {
        if (lua_pcall(L, 0, 1, h) != LUA_OK) {
            call_fail(jb->j.c, TAPE_EPROVIDER, lua_tostring(L, -1) ? lua_tostring(L, -1)
                                                                   : "error", 0);
            return 0;
        }
    } else {
        lua_rawgeti(L, -1, it->pos);
    }
    if (lua_isnil(L, -1)) {
        jb->done = 1;
        return 0;
    }
    lua_Integer i = it->pos++;
    int rc;
    if (luaL_testudata(L, -1, FRAME_MT) != NULL) {
        lua_getfield(L, -1, "line"); /* the frame's own line (raises if revoked) */
    }
    if (lua_type(L, -1) == LUA_TSTRING) { /* a frame's JSONL line */
        size_t len = 0;
        const char *s = lua_tolstring(L, -1, &len);
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r')) {
            len--;
        }
        int type = 0;
        rc = tape_line_parse(&type, &jb->f, s, len);
        if (rc == TAPE_OK && type != TAPE_LINE_FRAME) {
            return luaL_error(L, "frames gave item %I, a line that is not a frame line", i);
        }
    } else {
        return luaL_error(L, "frames gave %s as item %I, expected a frame (or a frame's line)",
                          luaL_typename(L, -1), i);
    }
    if (rc != TAPE_OK) {
        return luaL_error(L, "frames item %I: %s", i, tape_errmsg());
    }
    return 0;
}
static int op_frames_next(const tape_frame **out, void *iter)
{
    lp_iter *it = iter;
    *out = NULL;
    if (it->done) {
        return TAPE_DONE;
    }
    ENTER(c, it->b, "frames");
    job_next jb = {{&c, LUA_NOREF, "frames"}, it, NULL, 0};
    call_run(&c, w_next, &jb);
    int rc = call_leave(&c);
    if (rc != TAPE_OK) {
        tape_frame_free(jb.f);
        return rc;
    }
    if (jb.done) {
        it->done = 1;
        return TAPE_DONE;
    }
    tape_frame_free(it->cur);
    it->cur = jb.f;
    *out = jb.f;
    return TAPE_OK;
}
static void op_frames_close(void *iter)
{
    lp_iter *it = iter;
    lp_call c;
    if (call_enter(&c, it->b->p->st, it->b->p->name, "frames") == TAPE_OK) {
        luaL_unref(c.T, LUA_REGISTRYINDEX, it->src_ref);
        call_leave(&c);
    } /* else: the state is closed, its refs went with it */
    tape_frame_free(it->cur);
    free(it);
}

static void op_free(void *self)
{
    lp_backend *b = self;
    lp_call c;
    if (call_enter(&c, b->p->st, b->p->name, "free") == TAPE_OK) {
        luaL_unref(c.T, LUA_REGISTRYINDEX, b->ops_ref);
        call_leave(&c);
    }
    free(b);
}

/* ---------------------------------------------------------------- provider */

static tape_backend_ops *vtable_for(lp_provider *p, unsigned int set)
{
    if (p->vt[set] != NULL) {
        return p->vt[set];
    }
    tape_backend_ops *o = malloc(sizeof *o);
    if (o == NULL) {
        return NULL;
    }
    *o = (tape_backend_ops)TAPE_BACKEND_OPS_INIT;
    o->flags = TAPE_CAP_THREAD_SAFE | (set & LP_PERSISTENT ? TAPE_CAP_PERSISTENT : 0u);
    o->save = op_save;
    o->load = op_load;
    o->remove = op_remove;
    o->list = op_list;
    o->free = op_free;
    o->open = set & LP_OPEN ? op_open : NULL;
    o->close = set & LP_CLOSE ? op_close : NULL;
    o->exists = set & LP_EXISTS ? op_exists : NULL;
    o->search = set & LP_SEARCH ? op_search : NULL;
    o->stats = set & LP_STATS ? op_stats : NULL;
    if (set & LP_WRITER) {
        o->writer_begin = op_writer_begin;
        o->writer_append = op_writer_append;
        o->writer_correlate = op_writer_correlate;
        o->writer_end = op_writer_end;
    }
    if (set & LP_FRAMES) {
        o->frames_open = op_frames_open;
        o->frames_next = op_frames_next;
        o->frames_close = op_frames_close;
    }
    o->control = set & LP_CONTROL ? op_control : NULL;
    p->vt[set] = o;
    return o;
}

typedef struct { lp_call *c; lp_provider *p; const tape_config *config; } job_validate;
static int w_validate(lua_State *L)
{
    job_validate *jb = lua_touserdata(L, 1);
    lp_job j = {jb->c, jb->p->validate_ref, "validate"};
    lua_pushcfunction(L, msgh);
    int base = lua_gettop(L) - 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, jb->p->validate_ref);
    push_config(L, jb->config);
    int n = call_op(L, &j, base, 1, TAPE_ECONFIG);
    if (n >= 1 && !lua_isnil(L, base + 2) && !lua_isboolean(L, base + 2)) {
        return luaL_error(L, "validate returned %s, expected nothing (or nil, message to refuse)",
                          luaL_typename(L, base + 2));
    }
    if (n >= 1 && lua_isboolean(L, base + 2) && !lua_toboolean(L, base + 2)) {
        call_fail(jb->c, TAPE_ECONFIG, "validate returned false", 0);
    }
    return 0;
}
static int prov_validate(void *userdata, const tape_config *config)
{
    lp_provider *p = userdata;
    lp_call c;
    int rc = call_enter(&c, p->st, p->name, "validate");
    if (rc != TAPE_OK) {
        return rc;
    }
    job_validate jb = {&c, p, config};
    call_run(&c, w_validate, &jb);
    return call_leave(&c);
}

typedef struct {
    lp_call *c;
    lp_provider *p;
    const tape_config *config;
    int ref;
    unsigned int set;
} job_create;
static int w_create(lua_State *L)
{
    job_create *jb = lua_touserdata(L, 1);
    lp_job j = {jb->c, jb->p->factory_ref, "factory"};
    lua_pushcfunction(L, msgh);
    int base = lua_gettop(L) - 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, jb->p->factory_ref);
    push_config(L, jb->config);
    int n = call_op(L, &j, base, 1, TAPE_EPROVIDER);
    if (n < 0) {
        return 0;
    }
    int r = base + 2;
    if (n < 1 || lua_type(L, r) != LUA_TTABLE) {
        return luaL_error(L, "the factory returned %s, expected a table of op functions",
                          n < 1 ? "nothing" : luaL_typename(L, r));
    }
    for (int k = 0; k < 4; k++) {
        lua_getfield(L, r, required_ops[k]);
        int ok = lua_isfunction(L, -1);
        lua_pop(L, 1);
        if (!ok) {
            return luaL_error(L, "the factory's table lacks the required op %s (a provider "
                                 "needs save, load, delete and list)", required_ops[k]);
        }
    }
    unsigned int set = 0;
    for (int k = 0; k < 8; k++) {
        int t = lua_getfield(L, r, optional_ops[k]);
        if (t == LUA_TFUNCTION) {
            set |= 1u << k;
        } else if (t != LUA_TNIL) {
            return luaL_error(L, "the factory's op %s is a %s, expected a function (or nil)",
                              optional_ops[k], lua_typename(L, t));
        }
        lua_pop(L, 1);
    }
    /* persistent: the table's own say (a wrapper is as persistent as its
     * base), else the registration's. */
    int t = lua_getfield(L, r, "persistent");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
        return luaL_error(L, "the factory's field persistent is a %s, expected a boolean (or nil)",
                          lua_typename(L, t));
    }
    int persistent = t == LUA_TBOOLEAN ? lua_toboolean(L, -1)
                                       : (jb->p->flags & TAPE_CAP_PERSISTENT) != 0;
    if (persistent) {
        set |= LP_PERSISTENT;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, r);
    jb->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    jb->set = set;
    return 0;
}
static int prov_create(const tape_backend_ops **out_ops, void **out_self, void *userdata,
                       const tape_config *config)
{
    lp_provider *p = userdata;
    lp_backend *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return tape_error_set(TAPE_ENOMEM, "lua provider '%s': out of memory", p->name);
    }
    lp_call c;
    int rc = call_enter(&c, p->st, p->name, "factory");
    if (rc != TAPE_OK) {
        free(b);
        return rc;
    }
    job_create jb = {&c, p, config, LUA_NOREF, 0};
    call_run(&c, w_create, &jb);
    const tape_backend_ops *o = NULL;
    if (c.code == TAPE_OK && (o = vtable_for(p, jb.set)) == NULL) {
        call_fail(&c, TAPE_ENOMEM, "out of memory", 0);
    }
    if (c.code != TAPE_OK && jb.ref != LUA_NOREF) {
        luaL_unref(c.T, LUA_REGISTRYINDEX, jb.ref);
    }
    rc = call_leave(&c);
    if (rc != TAPE_OK) {
        free(b);
        return rc;
    }
    b->p = p;
    b->ops_ref = jb.ref;
    *out_ops = o;
    *out_self = b;
    return TAPE_OK;
}

static void prov_free(lp_provider *p)
{
    for (unsigned int i = 0; i < LP_NSETS; i++) {
        free(p->vt[i]);
    }
    free(p->name);
    lp_state *st = p->st;
    free(p);
    state_unref(st);
}

/* Unlink p from all_provs. */
static void unlink_prov(lp_provider *p)
{
    pthread_mutex_lock(&provs_mu);
    for (lp_provider **pp = &all_provs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pthread_mutex_unlock(&provs_mu);
}

static void prov_destroy(void *userdata)
{
    lp_provider *p = userdata;
    lp_call c;
    unlink_prov(p);
    if (call_enter(&c, p->st, p->name, "destroy") == TAPE_OK) {
        luaL_unref(c.T, LUA_REGISTRYINDEX, p->factory_ref);
        luaL_unref(c.T, LUA_REGISTRYINDEX, p->validate_ref);
        call_leave(&c);
    } /* else: the state is closed, its refs went with it */
    prov_free(p);
}

/* ---------------------------------------------------------------- the state record */

static lp_state *state_of(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
    lp_state **box = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (box == NULL || *box == NULL) {
        luaL_error(L, "tapestore: the provider support is not initialised in this state");
    }
    return *box;
}

/* The sentinel's __gc: the state is closing (lua_close, run by the thread
 * holding the lock). Unregister this state's providers, refuse new calls
 * and wait for the calls in flight, which get the lock while we release it
 * and leave at once, finding the state dead. */
static int sentinel_gc(lua_State *L)
{
    lp_state **box = lua_touserdata(L, 1);
    lp_state *st = *box;
    if (st == NULL) {
        return 0;
    }
    *box = NULL; /* a resurrected sentinel does nothing twice */
    pthread_mutex_lock(&st->mu);
    st->alive = 0;
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_lock(&provs_mu);
    size_t n = 0;
    for (lp_provider *p = all_provs; p != NULL; p = p->next) {
        n += p->st == st && p->registered;
    }
    char **names = calloc(n + 1, sizeof *names);
    tape_registry **regs = calloc(n + 1, sizeof *regs);
    size_t k = 0;
    for (lp_provider *p = all_provs; p != NULL && names != NULL && regs != NULL; p = p->next) {
        if (p->st == st && p->registered) {
            names[k] = strdup(p->name);
            regs[k++] = p->reg;
            p->registered = 0;
        }
    }
    pthread_mutex_unlock(&provs_mu);
    tape_lua_state *S = st->S;
    int held = tape_lua_state_held(S); /* lua_close runs on the thread holding it */
    if (held) {
        tape_lua_state_unlock(S);
    }
    for (size_t i = 0; i < k; i++) {
        if (names[i] != NULL) {
            tape_registry_unregister(regs[i], names[i]); /* destroy may run: it finds us dead */
        }
        free(names[i]);
    }
    free(names);
    free(regs);
    pthread_mutex_lock(&st->mu);
    while (st->inflight > 0) {
        pthread_cond_wait(&st->idle, &st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    if (held) {
        tape_lua_state_lock(S);
    }
    st->npool = 0; /* the threads go with the state */
    state_unref(st);
    return 0;
}

/* ---------------------------------------------------------------- Lua API */

/* tapestore.register_provider(name, factory[, {version=, description=,
 * validate=, persistent=}]) -> true | nil, message, code */
static int l_register(lua_State *L)
{
    lp_state *st = state_of(L);
    const char *name = luaL_checkstring(L, 1);
    if (!is_callable(L, 2)) {
        return luaL_error(L, "register_provider '%s': the factory must be a function, got %s",
                          name, luaL_typename(L, 2));
    }
    lua_Integer version = 1;
    const char *desc = NULL;
    unsigned int flags = 0;
    int has_validate = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3) != 0) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (k == NULL || (strcmp(k, "version") != 0 && strcmp(k, "description") != 0 &&
                              strcmp(k, "validate") != 0 && strcmp(k, "persistent") != 0)) {
                return luaL_error(L, "register_provider '%s': unknown option %s (expected "
                                     "version, description, validate, persistent)",
                                  name, k != NULL ? k : luaL_typename(L, -2));
            }
            lua_pop(L, 1);
        }
        if (lua_getfield(L, 3, "version") != LUA_TNIL) {
            int ok = 0;
            version = lua_tointegerx(L, -1, &ok);
            if (!ok || !lua_isinteger(L, -1) || version < 0 || version > (lua_Integer)UINT_MAX) {
                return luaL_error(L, "register_provider '%s': version must be an integer in "
                                     "[0, 2^32), got %s", name, luaL_tolstring(L, -1, NULL));
            }
        }
        if (lua_getfield(L, 3, "description") != LUA_TNIL) {
            if (lua_type(L, -1) != LUA_TSTRING) {
                return luaL_error(L, "register_provider '%s': description must be a string, "
                                     "got %s", name, luaL_typename(L, -1));
            }
            desc = lua_tostring(L, -1); /* copied below, before the lock is released */
        }
        if (lua_getfield(L, 3, "validate") != LUA_TNIL) {
            if (!is_callable(L, -1)) {
                return luaL_error(L, "register_provider '%s': validate must be a function, got %s",
                                  name, luaL_typename(L, -1));
            }
            has_validate = 1;
        }
        if (lua_getfield(L, 3, "persistent") != LUA_TNIL) {
            if (!lua_isboolean(L, -1)) {
                return luaL_error(L, "register_provider '%s': persistent must be a boolean, got %s",
                                  name, luaL_typename(L, -1));
            }
            flags |= lua_toboolean(L, -1) ? TAPE_CAP_PERSISTENT : 0u;
        }
        lua_settop(L, 3);
    }
    /* Anchor the functions first: raising later would leak nothing. */
    lua_pushvalue(L, 2);
    int fref = luaL_ref(L, LUA_REGISTRYINDEX);
    int vref = LUA_NOREF;
    if (has_validate) {
        lua_getfield(L, 3, "validate");
        vref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lp_provider *p = calloc(1, sizeof *p);
    if (p == NULL || (p->name = strdup(name)) == NULL) {
        free(p);
        luaL_unref(L, LUA_REGISTRYINDEX, fref);
        luaL_unref(L, LUA_REGISTRYINDEX, vref);
        return luaL_error(L, "register_provider '%s': out of memory", name);
    }
    char *desc_copy = desc != NULL ? strdup(desc) : NULL;
    if (desc != NULL && desc_copy == NULL) {
        free(p->name);
        free(p);
        luaL_unref(L, LUA_REGISTRYINDEX, fref);
        luaL_unref(L, LUA_REGISTRYINDEX, vref);
        return luaL_error(L, "register_provider '%s': out of memory", name);
    }
    p->reg = tape_registry_default();
    p->factory_ref = fref;
    p->validate_ref = vref;
    p->flags = flags;
    p->st = st;
    atomic_fetch_add(&st->refs, 1);
    tape_provider tp = TAPE_PROVIDER_INIT;
    tp.name = p->name;
    tp.description = desc_copy; /* the registry copies it */
    tp.provider_version = (unsigned int)version;
    tp.capabilities = TAPE_CAP_THREAD_SAFE | flags;
    tp.userdata = p;
    tp.validate = has_validate ? prov_validate : NULL;
    tp.create = prov_create;
    tp.destroy = prov_destroy;
    /* Listed first (destroy unlinks it, and may run as soon as it is
     * registered and unregistered), marked registered once it is. */
    pthread_mutex_lock(&provs_mu);
    p->next = all_provs;
    all_provs = p;
    pthread_mutex_unlock(&provs_mu);
    int rc;
    TAPE_LUA_UNLOCKED(st->S, rc = tape_registry_register(p->reg, &tp));
    free(desc_copy);
    if (rc == TAPE_OK) {
        pthread_mutex_lock(&provs_mu);
        for (lp_provider *q = all_provs; q != NULL; q = q->next) {
            if (q == p) { /* not destroyed meanwhile by an unregister from C */
                p->registered = 1;
            }
        }
        pthread_mutex_unlock(&provs_mu);
    } else {
        unlink_prov(p);
        luaL_unref(L, LUA_REGISTRYINDEX, fref);
        luaL_unref(L, LUA_REGISTRYINDEX, vref);
        prov_free(p); /* the core does not call destroy for a refused registration */
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* tapestore.unregister_provider(name) -> true | nil, message, code */
static int l_unregister(lua_State *L)
{
    lp_state *st = state_of(L);
    const char *name = luaL_checkstring(L, 1);
    tape_registry *reg = tape_registry_default();
    int rc;
    TAPE_LUA_UNLOCKED(st->S, rc = tape_registry_unregister(reg, name));
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    /* A Lua provider (of any state) that held the name holds it no more:
     * its state's close must not unregister whoever takes the name next.
     * The record may already be gone (destroyed inside unregister). */
    pthread_mutex_lock(&provs_mu);
    for (lp_provider *p = all_provs; p != NULL; p = p->next) {
        if (p->registered && p->reg == reg && strcmp(p->name, name) == 0) {
            p->registered = 0;
        }
    }
    pthread_mutex_unlock(&provs_mu);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- conformance */

/* tape_conformance_report, version 1 (tests/conformance/conformance.h, installed as
 * <tapestore/tapestore_conformance.h>): the binding loads the suite at run time and
 * does not build against its header. */
typedef struct conf_report {
    unsigned int version;
    int passed, failed, skipped;
} conf_report;
typedef int (*conf_run_fn)(conf_report *out, tape_registry *reg,
                           const char *provider, const char *config_template, const char *only,
                           void (*emit)(void *, const char *), void *ud);

#define CONF_LIB "libtapestore_conformance.so"

/* The suite's library: $TAPE_CONFORMANCE_LIB, then beside the libtapestore
 * we use, then the loader's path (as Python's conformance.py). Loaded
 * once, never unloaded. NULL with a message in err. */
static conf_run_fn conformance_fn(char *err, size_t errn)
{
    static conf_run_fn fn = NULL;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    if (fn != NULL) {
        pthread_mutex_unlock(&mu);
        return fn;
    }
    char beside[4096] = "";
    Dl_info info;
    if (dladdr((void *)tape_version, &info) && info.dli_fname != NULL) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash != NULL) {
            snprintf(beside, sizeof beside, "%.*s/" CONF_LIB, (int)(slash - info.dli_fname),
                     info.dli_fname);
        }
    }
    const char *cands[3] = {getenv("TAPE_CONFORMANCE_LIB"), beside, CONF_LIB};
    size_t used = 0;
    err[0] = '\0';
    for (int i = 0; i < 3 && fn == NULL; i++) {
        if (cands[i] == NULL || cands[i][0] == '\0') {
            continue;
        }
        void *h = dlopen(cands[i], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            const char *e = dlerror();
            int w = snprintf(err + used, errn - used, "%s%s", used ? "; " : "", e ? e : cands[i]);
            used = w > 0 && (size_t)w < errn - used ? used + (size_t)w : errn - 1;
            continue;
        }
        fn = (conf_run_fn)(void (*)(void))dlsym(h, "tape_conformance_run");
        if (fn == NULL) {
            snprintf(err, errn, "%s has no tape_conformance_run", cands[i]);
        }
    }
    pthread_mutex_unlock(&mu);
    return fn;
}

typedef struct {
    lua_State *L;
    tape_lua_state *S;
    int fn;          /* stack index of the emit function, 0: stdout */
    int failed;      /* the emit function raised: its message is kept */
    char errmsg[1024];
} conf_emit;

static int emit_call(lua_State *L)
{
    const char *line = lua_touserdata(L, 2);
    lua_settop(L, 1); /* the emit function */
    lua_pushstring(L, line);
    lua_call(L, 1, 0);
    return 0;
}

/* On the thread that called conformance, with the lock released. */
static void conf_emit_line(void *ud, const char *line)
{
    conf_emit *e = ud;
    if (e->fn == 0) {
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        return;
    }
    tape_lua_state_lock(e->S);
    lua_State *L = e->L;
    if (!e->failed && lua_checkstack(L, 4)) {
        int top = lua_gettop(L);
        lua_pushcfunction(L, emit_call);
        lua_pushvalue(L, e->fn);
        lua_pushlightuserdata(L, (void *)line);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            e->failed = 1;
            snprintf(e->errmsg, sizeof e->errmsg, "%s",
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
        }
        lua_settop(L, top);
    }
    tape_lua_state_unlock(e->S);
}

/* tapestore.conformance(provider, config[, {only=, emit=}]) ->
 *   passed, failed, skipped | nil, message, code
 * config: a JSON string or a table (the template: "@DIR@" and "@NS@" in
 * strings are replaced per case). */
static int l_conformance(lua_State *L)
{
    lp_state *st = state_of(L);
    const char *provider = luaL_checkstring(L, 1);
    const char *config = "{}";
    if (lua_type(L, 2) == LUA_TTABLE) {
        tape_lua_json_encode(L, 2);
        lua_replace(L, 2);
        config = lua_tostring(L, 2);
    } else if (!lua_isnoneornil(L, 2)) {
        config = luaL_checkstring(L, 2);
    }
    const char *only = NULL;
    conf_emit e = {L, st->S, 0, 0, ""};
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        if (lua_getfield(L, 3, "only") != LUA_TNIL) {
            if (lua_type(L, -1) != LUA_TSTRING) {
                return luaL_error(L, "conformance: only must be a string, got %s",
                                  luaL_typename(L, -1));
            }
            only = lua_tostring(L, -1);
        }
        if (lua_getfield(L, 3, "emit") != LUA_TNIL) {
            if (!is_callable(L, -1)) {
                return luaL_error(L, "conformance: emit must be a function, got %s",
                                  luaL_typename(L, -1));
            }
            e.fn = lua_gettop(L);
        }
    }
    char err[2048];
    conf_run_fn run = conformance_fn(err, sizeof err);
    if (run == NULL) {
        tape_error_set(TAPE_ENOTFOUND, "conformance: cannot load " CONF_LIB
                       " (set TAPE_CONFORMANCE_LIB): %s", err);
        return tape_lua_fail(L, TAPE_ENOTFOUND);
    }
    conf_report rep = {1, 0, 0, 0};
    int rc;
    TAPE_LUA_UNLOCKED(st->S, rc = run(&rep, NULL, provider, config, only, conf_emit_line, &e));
    if (e.failed) {
        return luaL_error(L, "conformance: the emit function raised: %s", e.errmsg);
    }
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushinteger(L, rep.passed);
    lua_pushinteger(L, rep.failed);
    lua_pushinteger(L, rep.skipped);
    return 3;
}

/* ---------------------------------------------------------------- open */

void tape_lua_provider_open(lua_State *L, int module_idx)
{
    module_idx = lua_absindex(L, module_idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
    int have = lua_touserdata(L, -1) != NULL;
    lua_pop(L, 1);
    if (!have) { /* once per state (require may run luaopen again) */
        lp_state *st = calloc(1, sizeof *st);
        if (st == NULL) {
            luaL_error(L, "tapestore: out of memory");
        }
        lp_state **box = lua_newuserdatauv(L, sizeof *box, 0);
        *box = NULL;
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, sentinel_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        atomic_init(&st->refs, 1);
        pthread_mutex_init(&st->mu, NULL);
        pthread_cond_init(&st->idle, NULL);
        st->alive = 1;
        st->S = tape_lua_state_of(L);
        *box = st;
        lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
        st->seed = lua_newthread(L);
        luaL_ref(L, LUA_REGISTRYINDEX); /* lives as long as the state */
    }
    static const luaL_Reg fns[] = {{"register_provider", l_register},
                                   {"unregister_provider", l_unregister},
                                   {"conformance", l_conformance},
                                   {NULL, NULL}};
    lua_pushvalue(L, module_idx);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
