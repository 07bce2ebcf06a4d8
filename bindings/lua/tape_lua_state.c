/*
 * tape_lua_state.c - the binding's per-state record and its lock (the
 * "GIL" of tape_lua.h), runtime failures (nil, message, code), and the log
 * bridge (tapestore.set_log).
 *
 * Which thread holds which state's lock is kept per thread (a small stack
 * in thread-local storage), not in the state: a state handed from thread to
 * thread must not have its bookkeeping overwritten by the next holder.
 */
#include "tape_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registry key of the state record (its address is the key). */
static const char tape_lua_state_key = 0;

/* States whose lock this thread holds, innermost last. A thread nests
 * states only through providers of one state called from another's ops, so
 * a few slots are plenty; beyond them holding is not tracked, which only
 * makes tape_lua_state_held answer 0 (callers then take the lock: a
 * deadlock would need 16 nested states on one thread). */
#define TAPE_LUA_HELD_MAX 16
static _Thread_local tape_lua_state *held[TAPE_LUA_HELD_MAX];
static _Thread_local int nheld;

void tape_lua_state_lock(tape_lua_state *S)
{
    pthread_mutex_lock(&S->lock);
    if (nheld < TAPE_LUA_HELD_MAX) {
        held[nheld] = S;
    }
    nheld++;
}

void tape_lua_state_unlock(tape_lua_state *S)
{
    /* Drop the innermost record of S (normally the top of the stack). */
    int top = nheld < TAPE_LUA_HELD_MAX ? nheld : TAPE_LUA_HELD_MAX;
    for (int i = top - 1; i >= 0; i--) {
        if (held[i] == S) {
            memmove(&held[i], &held[i + 1], (size_t)(top - 1 - i) * sizeof held[0]);
            break;
        }
    }
    if (nheld > 0) {
        nheld--;
    }
    pthread_mutex_unlock(&S->lock);
}

int tape_lua_state_held(const tape_lua_state *S)
{
    int top = nheld < TAPE_LUA_HELD_MAX ? nheld : TAPE_LUA_HELD_MAX;
    for (int i = top - 1; i >= 0; i--) {
        if (held[i] == S) {
            return 1;
        }
    }
    return 0;
}

tape_lua_state *tape_lua_state_current(void)
{
    int top = nheld < TAPE_LUA_HELD_MAX ? nheld : TAPE_LUA_HELD_MAX;
    for (int i = top - 1; i >= 0; i--) {
        if (held[i] != NULL) {
            return held[i];
        }
    }
    return NULL;
}

void tape_lua_state_wait(tape_lua_state *S)
{
    /* pthread_cond_wait releases and retakes the mutex: keep the held
     * stack true for the time another thread may own it. */
    tape_lua_state *mine = S;
    int top = nheld < TAPE_LUA_HELD_MAX ? nheld : TAPE_LUA_HELD_MAX;
    int slot = -1;
    for (int i = top - 1; i >= 0; i--) {
        if (held[i] == S) {
            slot = i;
            held[i] = NULL;
            break;
        }
    }
    pthread_cond_wait(&S->idle, &S->lock);
    if (slot >= 0) {
        held[slot] = mine;
    }
}

void tape_lua_state_wake(tape_lua_state *S)
{
    pthread_cond_broadcast(&S->idle);
}

/* ------------------------------------------------------------ the log bridge
 * The core's hook is process-wide, so one state owns it at a time: owner
 * (under log_owner_mu) says which, so a state closing removes the hook only
 * if it is its own. */
static pthread_mutex_t log_owner_mu = PTHREAD_MUTEX_INITIALIZER;
static tape_lua_state *log_owner;

/* Runs on the binding's log thread under lua_pcall: fn(level, text). */
static int log_call(lua_State *T)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };
    int level = (int)lua_tointeger(T, 2);
    const char *text = (const char *)lua_touserdata(T, 3);
    lua_settop(T, 1);
    lua_pushstring(T, level >= 0 && level <= 3 ? names[level] : "error");
    lua_pushstring(T, text);
    lua_call(T, 2, 0);
    return 0;
}

static void log_hook(void *ud, int level, const char *msg)
{
    tape_lua_state *S = ud;
    /* The thread may already be inside the state (a provider op of this
     * state logging through the core): then it holds the lock already. */
    int mine = tape_lua_state_held(S);
    if (!mine) {
        tape_lua_state_lock(S);
    }
    /* Depth cap: fn logging through the core would recurse without end. */
    if (S->log_ref != LUA_NOREF && S->log_thread != NULL && S->log_depth < 4) {
        lua_State *T = S->log_thread;
        int top = lua_gettop(T);
        S->log_depth++;
        /* Nothing here may raise outside protected mode: every value is
         * pushed with calls that cannot fail on a stack checked first. */
        if (lua_checkstack(T, 5)) {
            lua_pushcfunction(T, log_call);
            lua_rawgeti(T, LUA_REGISTRYINDEX, S->log_ref);
            lua_pushinteger(T, level);
            lua_pushlightuserdata(T, (void *)msg);
            if (lua_pcall(T, 3, 0, 0) != LUA_OK) {
                const char *e = lua_tostring(T, -1);
                fprintf(stderr, "tapestore: the log function raised: %s (log message: %s)\n",
                        e != NULL ? e : "(not a string)", msg);
            }
        }
        lua_settop(T, top);
        S->log_depth--;
    }
    if (!mine) {
        tape_lua_state_unlock(S);
    }
}

/* Point the core's hook at S (fn at idx) or remove it (nil). */
int tape_lua_set_log(lua_State *L)
{
    tape_lua_state *S = tape_lua_state_of(L);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TFUNCTION);
    }
    int old = S->log_ref;
    if (lua_isnoneornil(L, 1)) {
        S->log_ref = LUA_NOREF;
        pthread_mutex_lock(&log_owner_mu);
        int owned = log_owner == S;
        if (owned) {
            log_owner = NULL;
        }
        pthread_mutex_unlock(&log_owner_mu);
        if (owned) {
            /* Waits for calls in flight, which need the lock: released. */
            TAPE_LUA_UNLOCKED(S, tape_log_set(NULL, NULL));
        }
    } else {
        lua_pushvalue(L, 1);
        S->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        pthread_mutex_lock(&log_owner_mu);
        log_owner = S;
        pthread_mutex_unlock(&log_owner_mu);
        TAPE_LUA_UNLOCKED(S, tape_log_set(log_hook, S));
    }
    luaL_unref(L, LUA_REGISTRYINDEX, old);
    return 0;
}

/* ------------------------------------------------------------ the record */

/* __gc of the record, run at lua_close after every object made later
 * (finalizers run in reverse order of creation): the hook goes first, then
 * the lock is released for good. */
static int state_gc(lua_State *L)
{
    tape_lua_state **box = lua_touserdata(L, 1);
    tape_lua_state *S = *box;
    if (S == NULL) {
        return 0;
    }
    *box = NULL;
    pthread_mutex_lock(&log_owner_mu);
    int owned = log_owner == S;
    if (owned) {
        log_owner = NULL;
    }
    pthread_mutex_unlock(&log_owner_mu);
    S->log_ref = LUA_NOREF;
    if (owned) {
        /* Waits for hook calls in flight; they take S's lock, so it is
         * released while waiting. */
        TAPE_LUA_UNLOCKED(S, tape_log_set(NULL, NULL));
    }
    S->log_thread = NULL;
    tape_lua_state_unlock(S);
    pthread_cond_destroy(&S->idle);
    pthread_mutex_destroy(&S->lock);
    free(S);
    return 0;
}

tape_lua_state *tape_lua_state_of(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &tape_lua_state_key);
    tape_lua_state **box = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return box != NULL ? *box : NULL;
}

tape_lua_state *tape_lua_state_init(lua_State *L)
{
    tape_lua_state *S = tape_lua_state_of(L);
    if (S != NULL) {
        return S;
    }
    tape_lua_state **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    S = calloc(1, sizeof *S);
    if (S == NULL) {
        luaL_error(L, "tapestore: out of memory");
        return NULL;
    }
    pthread_mutex_init(&S->lock, NULL);
    pthread_cond_init(&S->idle, NULL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    S->main = lua_tothread(L, -1);
    lua_pop(L, 1);
    S->log_ref = LUA_NOREF;
    *box = S;
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "tapestore.state");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tape_lua_state_key);
    /* The binding's own thread for callbacks, anchored in the registry
     * (never a caller's coroutine, which may be collected). */
    S->log_thread = lua_newthread(L);
    S->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* The thread running Lua code holds the lock from now on. */
    tape_lua_state_lock(S);
    return S;
}

/* ------------------------------------------------------------ failures */

int tape_lua_fail(lua_State *L, int rc)
{
    /* Read before anything that could call into the core and overwrite
     * the thread's last error. */
    const char *msg = tape_errcode() == rc ? tape_errmsg() : tape_strerror(rc);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushinteger(L, rc);
    return 3;
}

int tape_lua_fail_msg(lua_State *L, int rc, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushinteger(L, rc);
    return 3;
}

/* Exported for embedding hosts that let other threads into the state. */
TAPE_LUA_EXPORT tape_lua_state *tape_lua_release(lua_State *L)
{
    tape_lua_state *S = tape_lua_state_of(L);
    if (S != NULL) {
        tape_lua_state_unlock(S);
    }
    return S;
}

TAPE_LUA_EXPORT void tape_lua_acquire(tape_lua_state *S)
{
    if (S != NULL) {
        tape_lua_state_lock(S);
    }
}
