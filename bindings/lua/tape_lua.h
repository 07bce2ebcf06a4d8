/*
 * tape_lua.h - internal to the Lua binding (bindings/lua/): what its C files
 * share. Never installed. The host API (tape_lua.c & co.) defines the state
 * record and the object functions; the trampolines (tape_lua_provider.c)
 * and the JSON codec (tape_lua_json.c) use them.
 *
 * The lock: one per lua_State family (a main state and its threads), used
 * like Python's GIL. The thread that loads the module (luaopen_tapestore)
 * holds it from then on, as the thread running Lua code; every call from Lua
 * into the core releases it around the call (TAPE_LUA_UNLOCKED), and a C
 * thread entering the state (a provider trampoline) takes it first. An
 * embedding host that lets other threads into the state hands the lock over
 * with tape_lua_release()/tape_lua_acquire() (exported for hosts).
 *
 * What runs with the lock released: every core call that can block, take a
 * core lock, call out (a provider, the log hook) or take time: store,
 * writer and iterator operations, parsing, encoding, decoding, appending,
 * and every free but an entry's (a reference count: no lock, no call out).
 * Pure accessors of an object the binding owns (tape_name,
 * tape_frame_seq, tape_entry_id...) take no lock and cannot call out, so
 * they cannot invert the lock order; they run with the lock held, because
 * releasing it there would let another thread free the object mid-read.
 */
#ifndef TAPE_LUA_H
#define TAPE_LUA_H

#include <lua.h>
#include <lauxlib.h>
#include <pthread.h>
#include <tapestore/tapestore.h>

/* Exported from the module (for embedding hosts); everything else in it is
 * hidden but luaopen_tapestore. */
#define TAPE_LUA_EXPORT __attribute__((visibility("default")))

typedef struct tape_lua_state tape_lua_state;
struct tape_lua_state {
    pthread_mutex_t lock;  /* held while Lua code of this state runs */
    lua_State *main;       /* the main thread; never a caller's coroutine */
    pthread_cond_t idle;   /* signalled (under lock) when a call in flight ends:
                            * store:close waits on it (tape_lua_state_wait) */
    lua_State *log_thread; /* the binding's own thread, anchored by thread_ref:
                            * callbacks run there, never on a caller's thread */
    int thread_ref;        /* registry ref keeping log_thread alive */
    int log_ref;           /* registry ref of set_log's fn, LUA_NOREF if none */
    int log_depth;         /* log calls running (caps a logging log fn) */
};

/* The binding's record of L's state (created by luaopen_tapestore, kept in
 * the registry; freed at lua_close, after every object, by the record's
 * __gc, which first removes a log hook of this state). Never NULL after
 * luaopen. Reads the registry: call it with the lock held. */
tape_lua_state *tape_lua_state_of(lua_State *L);
/* Create the record if L has none (luaopen_tapestore); the calling thread
 * then holds the lock. Raises on memory errors. */
tape_lua_state *tape_lua_state_init(lua_State *L);
void tape_lua_state_lock(tape_lua_state *S);
void tape_lua_state_unlock(tape_lua_state *S);
/* The innermost state whose lock this thread holds, or NULL (for code
 * without an L: SWIG proxies' destructors). */
tape_lua_state *tape_lua_state_current(void);
/* 1 if this thread holds S's lock (a trampoline or the log hook entered
 * from inside the state must not take it again), else 0. */
int tape_lua_state_held(const tape_lua_state *S);
/* Wait (lock held; released while waiting) until tape_lua_state_wake. */
void tape_lua_state_wait(tape_lua_state *S);
void tape_lua_state_wake(tape_lua_state *S);
/* For embedding hosts: release L's lock (returns the record to hand to
 * tape_lua_acquire on the thread that takes the state next). */
TAPE_LUA_EXPORT tape_lua_state *tape_lua_release(lua_State *L);
TAPE_LUA_EXPORT void tape_lua_acquire(tape_lua_state *S);
/* For embedding hosts: the core store of the store object at idx (borrowed:
 * valid while that object is open), or NULL if idx is not an open store.
 * A C host can so use the store a script opened. */
TAPE_LUA_EXPORT tape_store *tape_lua_to_store(lua_State *L, int idx);
/* Run stmt, a call into the core, with the state's lock released. Nothing
 * in stmt may touch L. */
#define TAPE_LUA_UNLOCKED(S, stmt) \
    do { tape_lua_state_unlock(S); stmt; tape_lua_state_lock(S); } while (0)

/* Runtime failure: push nil, the thread's last error message, the code;
 * returns 3 (so `return tape_lua_fail(L, rc);`). Call it right after the
 * failed core call (before another core call overwrites the message). */
int tape_lua_fail(lua_State *L, int rc);
/* The same with a message of the binding's own. */
int tape_lua_fail_msg(lua_State *L, int rc, const char *msg);
/* tapestore.set_log(fn | nil). */
int tape_lua_set_log(lua_State *L);

/* ---- objects: full userdata (lua_newuserdatauv; user value 1 is the
 * parent kept alive), metatables with __gc, __close, __index, __name. */
enum {
    TAPE_LUA_OWNED = 0,    /* the userdata frees the object */
    TAPE_LUA_BORROWED = 1, /* lives as long as its parent (user value) */
    TAPE_LUA_LENT = 2      /* valid only during a provider call: revoked after */
};
/* Push a tape object for t. how: OWNED (t becomes the userdata's), BORROWED
 * (parent_idx: the object keeping t alive) or LENT (revoke it with
 * tape_lua_revoke when the call ends). Raises only on memory errors. */
void tape_lua_push_tape(lua_State *L, tape *t, int how, int parent_idx);
/* The tape at idx (raises a clear error if idx is not a tape, or is a closed
 * or revoked one). */
tape *tape_lua_check_tape(lua_State *L, int idx);
/* Take ownership of the OWNED tape at idx: it is returned and the userdata
 * marked moved (later use raises "moved"). NULL (no raise) if not owned. */
tape *tape_lua_steal_tape(lua_State *L, int idx);
/* A frame object for f: BORROWED from the object at parent_idx (a tape: the
 * frame is usable while that tape is), LENT, or OWNED (f was made by
 * tape_frame_clone and is freed with tape_frame_free; store:frames). */
void tape_lua_push_frame(lua_State *L, const tape_frame *f, int how, int parent_idx);
/* An entry object (OWNED). */
void tape_lua_push_entry(lua_State *L, tape_entry *e);
/* Mark the lent object at idx revoked: later use raises "used after the
 * provider call that lent it returned". */
void tape_lua_revoke(lua_State *L, int idx);

/* ---- JSON (tape_lua_json.c; docs/lua.md, "JSON")
 * JSON null is tapestore.null, a NULL light userdata (lua_pushlightuserdata
 * (L, NULL)), equal to cjson.null. Decoded arrays and objects carry the
 * metatables registered under these names (shared by every value, created
 * on first use), which encoding reads to tell [] from {}. */
#define TAPE_LUA_JSON_ARRAY_MT "tapestore.array"
#define TAPE_LUA_JSON_OBJECT_MT "tapestore.object"
/* Nesting limit of both directions: cJSON's, so the core's (a value nested
 * 1000 deep passes, 1001 does not). */
#define TAPE_LUA_JSON_DEPTH 1000
/* Decode s[0..n) (need not be NUL-terminated; never read past n; NULL is
 * the empty text) and push the value (returns 1), or push an error message
 * naming the byte offset (0-based) and problem, "json: byte 17: expected
 * ':' after object key" (returns 0). Accepts exactly what the core accepts as a frame message.
 * Raises only on memory errors (a Lua stack that cannot grow included).
 * Calls no Lua function (finalizers aside: any allocation may run them)
 * and no core function, so it runs with the state's lock held. */
int tape_lua_json_decode(lua_State *L, const char *s, size_t n);
/* Push the JSON text of the value at idx (deterministic: object keys
 * sorted bytewise); raises "json: value at .params.x: cannot encode a
 * function" for a value that cannot be JSON (function, userdata, cycle,
 * NaN, inf, mixed or sparse keys, bad UTF-8, too deep), naming where.
 * Tables are read raw (no metamethods run); the stack is otherwise left
 * as it was. */
void tape_lua_json_encode(lua_State *L, int idx);
/* Add json_decode, json_encode, null, array, object to the table at idx. */
void tape_lua_json_open(lua_State *L, int module_idx);

/* ---- providers written in Lua (tape_lua_provider.c, docs/providers-lua.md) */
/* Add register_provider, unregister_provider and conformance to the module
 * table at module_idx, and give the state its provider record: a sentinel
 * in the registry whose __gc (run by lua_close) unregisters this state's
 * providers, waits for the calls in flight and makes every later call of a
 * backend that C code still holds fail with TAPE_EPROVIDER. Call it from
 * luaopen_tapestore after the state record exists (tape_lua_state_init):
 * finalizers run in reverse order of creation, so the sentinel's runs
 * while the lock still exists. Safe to call again (require twice). Raises
 * only on memory errors. */
void tape_lua_provider_open(lua_State *L, int module_idx);

#endif
