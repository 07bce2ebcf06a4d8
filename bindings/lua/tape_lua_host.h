/*
 * tape_lua_host.h - private to the host API's files (tape_lua.c,
 * tape_lua_store.c): the common header of every object's userdata and the
 * helpers the methods share. The other parts of the binding use only the
 * functions of tape_lua.h.
 */
#ifndef TAPE_LUA_HOST_H
#define TAPE_LUA_HOST_H

#include "tape_lua.h"

/* Kinds of object; each has a metatable named tape_lua_kind_names[kind]. */
enum {
    TL_STORE = 0,
    TL_TAPE,
    TL_FRAME,
    TL_ENTRY,
    TL_WRITER,
    TL_FRAME_ITER,  /* store:frames */
    TL_QUERY_ITER,  /* store:query */
    TL_TAPE_FRAMES, /* tape:frames */
    TL_NKINDS
};
extern const char *const tape_lua_kind_names[TL_NKINDS];

/* Object states. */
enum { TL_OPEN = 0, TL_CLOSED, TL_MOVED, TL_REVOKED };

/* First member of every object's userdata. The parent (user value 1) is
 * kept alive by Lua; `parent` is its C view, so validity is a walk up the
 * chain: an object is usable when it and every ancestor are open. */
typedef struct tl_obj tl_obj;
struct tl_obj {
    tape_lua_state *S;
    tl_obj *parent;       /* NULL: none */
    void *p;              /* the core object; NULL once released */
    unsigned int busy;    /* calls in flight (lock released) using p, or a child's */
    unsigned char kind;
    unsigned char how;    /* TAPE_LUA_OWNED / BORROWED / LENT */
    unsigned char state;  /* TL_OPEN ... */
    unsigned char deferred; /* closed while busy: release p when busy drops to 0 */
};

/* Store children that hold a core object referring to the store (writers,
 * frame iterators): linked into the store so store:close releases them. */
typedef struct tl_child tl_child;
struct tl_child {
    tl_obj o;
    tl_child *prev, *next;
};

typedef struct tl_store {
    tl_obj o;
    tl_child *children;
} tl_store;

/* New userdata of `size` bytes (zeroed) for kind, with its metatable, two
 * user values (1: parent_idx's value or nil; 2: free for the kind). */
tl_obj *tl_new(lua_State *L, size_t size, int kind, tape_lua_state *S, int parent_idx);
/* The object of kind at idx, whatever its state (raises if idx is not one). */
tl_obj *tl_to(lua_State *L, int idx, int kind, const char *fname);
/* The object of kind at idx, usable: raises "<fname>: closed store" etc. */
tl_obj *tl_check(lua_State *L, int idx, int kind, const char *fname);
/* The object at 1 if its metatable is the one in upvalue mt_upvalue of the
 * running C function (the functions of tl_new_kind have it as upvalue 1),
 * else NULL: metamethods called by hand on something else do nothing. */
tl_obj *tl_self(lua_State *L, int mt_upvalue);
/* Count a call in flight on o (and its store); undo with tl_leave. */
void tl_enter(tl_obj *o);
void tl_leave(tl_obj *o);
/* Release o's core object now (or when its calls in flight end), with the
 * lock released around the free; mark it `state`. Safe twice. */
void tl_release(tl_obj *o, int state);

/* Argument helpers: raise "<fname>: <what> must be ..." on misuse. */
lua_Integer tl_checkint(lua_State *L, int idx, const char *fname, const char *what);
lua_Integer tl_optint(lua_State *L, int idx, lua_Integer def, const char *fname, const char *what);
const char *tl_checkstr(lua_State *L, int idx, size_t *len, const char *fname, const char *what);
const char *tl_optstr(lua_State *L, int idx, const char *fname, const char *what);
/* Push v (a uint64 of the core) as an integer; values above INT64_MAX
 * (none the core makes) would wrap, so they are clamped. */
void tl_pushu64(lua_State *L, uint64_t v);
/* A time (ms) or nil for TAPE_TIME_NONE. */
void tl_pushtime(lua_State *L, int64_t ms);
/* tape_stats as a table. */
void tl_pushstats(lua_State *L, const tape_stats *st);
/* "client_to_server" / "server_to_client" -> TAPE_DIR_*; raises otherwise. */
int tl_checkdir(lua_State *L, int idx, const char *fname);
/* The JSON text of the message at idx for an append: a string as is, a
 * table (or other JSON value) through tape_lua_json_encode; pushed. */
void tl_message_text(lua_State *L, int idx, const char *fname);
/* Fill a new header tape from the fields table at idx (name, tags, id,
 * description, session_id, protocol_version, ...); raises on misuse, returns
 * nil, msg, code (3) on a core failure, else 0 with the tape in *out. */
int tl_tape_from_fields(lua_State *L, int idx, tape **out, const char *fname);
/* Apply the metadata field `key` (value at vidx) to t: 0, or a core code;
 * raises on misuse (unknown or read-only field, wrong type). */
int tl_set_field(lua_State *L, tape *t, const char *key, int vidx, const char *fname);
/* Append a frame (t or w) from (direction, message[, opts]) at args
 * first_arg..; pushes the seq (1) or nil, msg, code (3). o is the object
 * counted busy while the lock is released. */
int tl_append(lua_State *L, tl_obj *o, tape *t, tape_writer *w, int first_arg, const char *fname);
/* tape_lua_push_entry for a caller that has the state's record at hand
 * (the query iterator: one registry lookup less per entry). */
void tl_push_entry(lua_State *L, tape_lua_state *S, tape_entry *e);
/* The arguments of tape:add_correlation and writer:add_correlation, from
 * index 2: id, request_seq, response_seq[, rtt_ms[, status]] (raises on
 * misuse, naming fname). */
typedef struct tl_corr_args {
    const char *id;
    uint64_t request_seq, response_seq;
    int64_t rtt_ms;
    const char *status;
} tl_corr_args;
void tl_check_corr_args(lua_State *L, tl_corr_args *out, const char *fname);

/* 1 if this thread has a call in flight on anc or one of its children. */
int tl_inflight_here(const tl_obj *anc);

/* Register kind's metatable: methods, extra metamethods, fields (a
 * NULL-terminated list of names, read by the kind's getter with the name's
 * index; a name written "+name" is readable on a closed object too, and
 * the getter sees TL_FIELD_ALWAYS + index). __gc, __close and __tostring
 * are added. */
#define TL_FIELD_ALWAYS 1000
void tl_new_kind(lua_State *L, int kind, const luaL_Reg *methods, const luaL_Reg *meta,
                 const char *const *fields);
/* The getter of tape_lua_store.c's kinds (store, writer). */
int tl_store_kind_get(lua_State *L, tl_obj *o, int code);
/* Release of the kinds tape_lua_store.c defines (store, writer, iterators). */
void tl_store_kind_release(tl_obj *o);
/* (start, stop) arguments at idx, idx+1: start <= seq < stop, >= 0. */
void tl_range_args(lua_State *L, int idx, const char *fn, uint64_t *start, uint64_t *stop);
/* Push the JSON string literal of s[0..n) (escaped). */
void tl_push_json_string(lua_State *L, const char *s, size_t n);

/* Module tables: tape_lua_store.c's functions go into the module table. */
void tl_open_store(lua_State *L, int module_idx);

#endif
