/*
 * tape_lua_store.c - stores (tapestore.open and the store methods), query
 * and frame iterators, and recording writers.
 *
 * A store links the children that hold core objects referring to it
 * (writers, frame iterators), so store:close can release them first, as
 * Python's Store.close does: open writers are abandoned (their tapes stay
 * recording with what was appended), iterators dropped, then the backend
 * is closed and its error reported. Their userdata stay, closed.
 */
#include "tape_lua_host.h"

#include <tapestore/provider.h> /* tape_frame_clone */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tl_child c;
    tape *header;               /* what update_meta starts from (owned) */
    char id[TAPE_ID_MAX + 1];   /* readable after the writer closed */
} tl_writer;

typedef struct {
    tl_child c;
    int done;
} tl_frame_iter;

typedef struct {
    tl_obj o;                   /* p unused (NULL); the parent is the store */
    tape_query *q;              /* the terms, parsed once (owned) */
    tape_result *page;          /* the current page (owned) */
    size_t pos, n;
    char *cursor;               /* of the next page (owned), NULL: first/none */
    lua_Integer left;           /* entries still allowed by limit; -1: no limit */
    lua_Integer page_size;
    int last;                   /* the page held is the last */
    int closed;                 /* buffers released: exhausted, or closed */
} tl_query_iter;

/* ------------------------------------------------------------ children */

static void link_child(tl_store *st, tl_child *c)
{
    c->prev = NULL;
    c->next = st->children;
    if (st->children != NULL) {
        st->children->prev = c;
    }
    st->children = c;
}

static void unlink_child(tl_child *c)
{
    tl_store *st = (tl_store *)c->o.parent;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (st != NULL && st->children == c) {
        st->children = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

/* Detach every child's core object (lock held), then free them all with
 * the lock released: nothing else can reach them once detached. */
static void release_children(tl_store *st)
{
    size_t n = 0;
    for (tl_child *c = st->children; c != NULL; c = c->next) {
        n++;
    }
    if (n == 0) {
        return;
    }
    void **objs = malloc(n * sizeof *objs);
    unsigned char *kinds = malloc(n);
    size_t k = 0;
    tl_child *c = st->children;
    while (c != NULL) {
        tl_child *next = c->next;
        if (objs != NULL && kinds != NULL) {
            objs[k] = c->o.p;
            kinds[k++] = c->o.kind;
        } else if (c->o.p != NULL) {
            /* No memory for the list: free this one now, still unlocked. */
            void *p = c->o.p;
            if (c->o.kind == TL_WRITER) {
                TAPE_LUA_UNLOCKED(st->o.S, tape_writer_free(p));
            } else {
                TAPE_LUA_UNLOCKED(st->o.S, tape_frame_iter_free(p));
            }
        }
        c->o.p = NULL;
        c->prev = c->next = NULL;
        c = next;
    }
    st->children = NULL;
    if (objs != NULL && kinds != NULL) {
        tape_lua_state_unlock(st->o.S);
        for (size_t i = 0; i < k; i++) {
            if (kinds[i] == TL_WRITER) {
                tape_writer_free(objs[i]);
            } else {
                tape_frame_iter_free(objs[i]);
            }
        }
        tape_lua_state_lock(st->o.S);
    }
    free(objs);
    free(kinds);
}

void tl_store_kind_release(tl_obj *o)
{
    switch (o->kind) {
    case TL_STORE: {
        tl_store *st = (tl_store *)o;
        release_children(st);
        tape_store *s = o->p;
        o->p = NULL;
        if (s != NULL) {
            TAPE_LUA_UNLOCKED(o->S, tape_store_free(s));
        }
        break;
    }
    case TL_WRITER: {
        tl_writer *w = (tl_writer *)o;
        unlink_child(&w->c);
        tape_writer *p = o->p;
        tape *h = w->header;
        o->p = NULL;
        w->header = NULL;
        /* An unfinished writer is abandoned: its tape stays recording. */
        TAPE_LUA_UNLOCKED(o->S, (tape_writer_free(p), tape_free(h)));
        break;
    }
    case TL_FRAME_ITER: {
        tl_frame_iter *it = (tl_frame_iter *)o;
        unlink_child(&it->c);
        tape_frame_iter *p = o->p;
        o->p = NULL;
        it->done = 1;
        if (p != NULL) {
            TAPE_LUA_UNLOCKED(o->S, tape_frame_iter_free(p));
        }
        break;
    }
    case TL_QUERY_ITER: {
        tl_query_iter *qi = (tl_query_iter *)o;
        tape_query *q = qi->q;
        tape_result *r = qi->page;
        char *cur = qi->cursor;
        qi->q = NULL;
        qi->page = NULL;
        qi->cursor = NULL;
        qi->n = qi->pos = 0;
        qi->closed = 1;
        TAPE_LUA_UNLOCKED(o->S, (tape_query_free(q), tape_result_free(r), free(cur)));
        break;
    }
    default:
        break;
    }
}

/* ------------------------------------------------------------ JSON of terms
 * Query terms are flat (strings, integers, booleans, arrays of strings),
 * so they are written here, each misuse named by its key; the core then
 * checks keys and values. Built from pieces on the stack (no luaL_Buffer
 * across pushes). */

void tl_push_json_string(lua_State *L, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, (char)c);
        } else if (c < 0x20) {
            char e[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
            luaL_addstring(&b, e);
        } else {
            luaL_addchar(&b, (char)c);
        }
    }
    luaL_addchar(&b, '"');
    luaL_pushresult(&b);
}

/* Push the JSON text of the term value at idx. */
static void term_value(lua_State *L, int idx, const char *fn, const char *key)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n = 0;
        const char *s = lua_tolstring(L, idx, &n);
        tl_push_json_string(L, s, n);
        return;
    }
    case LUA_TNUMBER: {
        char what[80];
        snprintf(what, sizeof what, "query term %s", key);
        lua_pushfstring(L, "%I", tl_checkint(L, idx, fn, what));
        return;
    }
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TTABLE: {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        lua_pushliteral(L, "[");
        int pieces = 1;
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, idx, i) != LUA_TSTRING) {
                luaL_error(L, "%s: query term %s[%I] must be a string, got %s", fn, key, i,
                           luaL_typename(L, -1));
            }
            size_t len = 0;
            const char *s = lua_tolstring(L, -1, &len);
            if (i > 1) {
                lua_pushliteral(L, ",");
                lua_insert(L, -2);
                pieces++;
            }
            tl_push_json_string(L, s, len);
            lua_remove(L, -2);
            if (++pieces >= 40) {
                lua_concat(L, pieces);
                pieces = 1;
            }
        }
        lua_pushliteral(L, "]");
        lua_concat(L, pieces + 1);
        return;
    }
    default:
        luaL_error(L, "%s: query term %s must be a string, integer, boolean or array of strings, got %s",
                   fn, key, luaL_typename(L, idx));
    }
}

/* Push the body (the members, no braces) of the JSON object of the terms
 * table at idx (nil: empty), leaving out the keys named in skip. */
static void terms_body(lua_State *L, int idx, const char *fn, const char *const *skip)
{
    idx = lua_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) {
        lua_pushliteral(L, "");
        return;
    }
    if (!lua_istable(L, idx)) {
        luaL_error(L, "%s: the query terms must be a table, got %s", fn, luaL_typename(L, idx));
    }
    lua_pushliteral(L, "");
    int pieces = 1;
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            luaL_error(L, "%s: query terms are named by strings, got a %s key", fn,
                       luaL_typename(L, -2));
        }
        const char *key = lua_tostring(L, -2);
        int skipped = 0;
        for (int i = 0; skip[i] != NULL; i++) {
            skipped |= strcmp(key, skip[i]) == 0;
        }
        if (skipped) {
            lua_pop(L, 1);
            continue;
        }
        /* stack: pieces..., key, value */
        size_t klen = 0;
        const char *k = lua_tolstring(L, -2, &klen);
        term_value(L, -1, fn, k);         /* ..., key, value, v */
        tl_push_json_string(L, k, klen);  /* ..., key, value, v, k */
        lua_pushfstring(L, "%s%s:%s", first ? "" : ",", lua_tostring(L, -1), lua_tostring(L, -2));
        first = 0;
        lua_replace(L, -3);               /* ..., key, value, piece, k */
        lua_pop(L, 1);                    /* ..., key, value, piece */
        lua_insert(L, -3);                /* ..., piece, key, value */
        lua_pop(L, 1);                    /* ..., piece, key */
        if (++pieces >= 40) {
            lua_insert(L, -pieces - 1);   /* key below the pieces */
            lua_concat(L, pieces);
            lua_insert(L, -2);            /* ..., joined, key */
            pieces = 1;
        }
    }
    lua_concat(L, pieces);
}

/* ------------------------------------------------------------ open */

/* tapestore.open(name, config) / open("spec") / open() [, {eager=}] */
static int l_open(lua_State *L)
{
    const char *fn = "tapestore.open";
    tape_lua_state *S = tape_lua_state_of(L);
    unsigned int flags = 0;
    int opts = lua_istable(L, 1) ? 1 : 3;
    if (opts == 3 && !lua_isnoneornil(L, 3)) {
        luaL_argexpected(L, lua_istable(L, 3), 3, "table of options");
    }
    if (!lua_isnoneornil(L, opts) && lua_istable(L, opts)) {
        lua_getfield(L, opts, "eager");
        flags = lua_toboolean(L, -1) ? TAPE_OPEN_EAGER : 0;
        lua_pop(L, 1);
    }
    tape_store *s = NULL;
    int rc;
    if (lua_isnoneornil(L, 1) || opts == 1) {
        if (!lua_isnoneornil(L, 2)) {
            return luaL_error(L, "%s: a config table needs a provider name", fn);
        }
        TAPE_LUA_UNLOCKED(S, rc = tape_store_open_env(&s, NULL, flags));
    } else {
        const char *spec = tl_checkstr(L, 1, NULL, fn, "name");
        if (!lua_isnoneornil(L, 2)) {
            luaL_argexpected(L, lua_istable(L, 2) || lua_type(L, 2) == LUA_TSTRING, 2,
                             "config table or JSON text");
            if (strchr(spec, ':') != NULL) {
                return luaL_error(L, "%s: \"%s\" is a spec (name:config); pass a config table "
                                     "with a bare provider name", fn, spec);
            }
            if (lua_istable(L, 2)) {
                tape_lua_json_encode(L, 2);
            } else {
                lua_pushvalue(L, 2);
            }
            const char *json = lua_tostring(L, -1);
            TAPE_LUA_UNLOCKED(S, rc = tape_store_open(&s, NULL, spec, json, flags));
        } else if (strchr(spec, ':') != NULL) {
            TAPE_LUA_UNLOCKED(S, rc = tape_store_open_spec(&s, NULL, spec, flags));
        } else {
            TAPE_LUA_UNLOCKED(S, rc = tape_store_open(&s, NULL, spec, NULL, flags));
        }
    }
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tl_store *st = (tl_store *)tl_new(L, sizeof *st, TL_STORE, S, 0);
    st->o.p = s;
    return 1;
}

TAPE_LUA_EXPORT tape_store *tape_lua_to_store(lua_State *L, int idx)
{
    tl_obj *o = luaL_testudata(L, idx, tape_lua_kind_names[TL_STORE]);
    return o != NULL && o->state == TL_OPEN ? o->p : NULL;
}

/* ------------------------------------------------------------ store methods */

static tl_store *check_store(lua_State *L, const char *fn)
{
    return (tl_store *)tl_check(L, 1, TL_STORE, fn);
}

static const char *check_id(lua_State *L, int idx, const char *fn)
{
    return tl_checkstr(L, idx, NULL, fn, "id");
}

static int m_close(lua_State *L)
{
    const char *fn = "store:close";
    tl_store *st = (tl_store *)tl_to(L, 1, TL_STORE, fn);
    if (st->o.state != TL_OPEN || st->o.p == NULL) {
        lua_pushboolean(L, 1); /* idempotent */
        return 1;
    }
    if (st->o.busy > 0) {
        if (tl_inflight_here(&st->o)) {
            return tape_lua_fail_msg(L, TAPE_EBUSY,
                                     "store:close: called from inside a call on this store");
        }
        /* Calls in flight on other threads: they need the lock to end. */
        while (st->o.busy > 0) {
            tape_lua_state_wait(st->o.S);
        }
        if (st->o.state != TL_OPEN || st->o.p == NULL) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    st->o.state = TL_CLOSED;
    release_children(st);
    tape_store *s = st->o.p;
    st->o.p = NULL;
    int rc;
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_close(s));
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int m_save(lua_State *L)
{
    tl_store *st = check_store(L, "store:save");
    tl_obj *t = tl_check(L, 2, TL_TAPE, "store:save");
    int rc;
    tl_enter(&st->o);
    tl_enter(t);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_save(st->o.p, t->p));
    tl_leave(t);
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int m_load(lua_State *L)
{
    tl_store *st = check_store(L, "store:load");
    const char *id = check_id(L, 2, "store:load");
    tape *t = NULL;
    int rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_load(&t, st->o.p, id));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tape_lua_push_tape(L, t, TAPE_LUA_OWNED, 0);
    return 1;
}

static int m_delete(lua_State *L)
{
    tl_store *st = check_store(L, "store:delete");
    const char *id = check_id(L, 2, "store:delete");
    int rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_delete(st->o.p, id));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int m_exists(lua_State *L)
{
    tl_store *st = check_store(L, "store:exists");
    const char *id = check_id(L, 2, "store:exists");
    int ex = 0, rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_exists(&ex, st->o.p, id));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, ex);
    return 1;
}

static int m_stats(lua_State *L)
{
    tl_store *st = check_store(L, "store:stats");
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    int rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_stats_get(&ss, st->o.p));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_createtable(L, 0, 3);
    tl_pushu64(L, ss.tape_count);
    lua_setfield(L, -2, "tape_count");
    tl_pushu64(L, ss.frame_count);
    lua_setfield(L, -2, "frame_count");
    tl_pushu64(L, ss.total_bytes);
    lua_setfield(L, -2, "total_bytes");
    return 1;
}

static const struct { const char *name; unsigned int bit; } cap_names[] = {
    { "exists", TAPE_CAP_EXISTS }, { "search", TAPE_CAP_SEARCH }, { "stats", TAPE_CAP_STATS },
    { "writer", TAPE_CAP_WRITER }, { "read_frames", TAPE_CAP_READ_FRAMES },
    { "control", TAPE_CAP_CONTROL }, { "thread_safe", TAPE_CAP_THREAD_SAFE },
    { "persistent", TAPE_CAP_PERSISTENT }, { "writer_retry", TAPE_CAP_WRITER_RETRY },
};

/* store:capabilities([native]) -> set {name = true} */
static int m_capabilities(lua_State *L)
{
    tl_store *st = check_store(L, "store:capabilities");
    int native = lua_toboolean(L, 2);
    unsigned int nat = 0, avail = 0;
    int rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_capabilities(&nat, &avail, st->o.p));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    unsigned int bits = native ? nat : avail;
    lua_newtable(L);
    for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++) {
        if (bits & cap_names[i].bit) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, cap_names[i].name);
        }
    }
    return 1;
}

/* store:control(op[, input]) -> output (decoded JSON; nil when none) */
static int m_control(lua_State *L)
{
    const char *fn = "store:control";
    tl_store *st = check_store(L, fn);
    const char *op = tl_checkstr(L, 2, NULL, fn, "op");
    const char *in = NULL;
    if (!lua_isnoneornil(L, 3)) {
        tl_message_text(L, 3, fn);
        in = lua_tostring(L, -1);
    }
    char *out = NULL;
    int rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_control(&out, st->o.p, op, in));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    if (out == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, out);
    TAPE_LUA_UNLOCKED(st->o.S, tape_string_free(out));
    size_t n = 0;
    const char *s = lua_tolstring(L, -1, &n);
    if (!tape_lua_json_decode(L, s, n)) {
        return luaL_error(L, "%s: the provider's output is not JSON: %s", fn, lua_tostring(L, -1));
    }
    return 1;
}

/* ------------------------------------------------------------ queries */

static const char *const iter_skip[] = { "limit", "page_size", "cursor", NULL };
static const char *const page_skip[] = { NULL };

/* Parse "{" body [, extra] "}" with the lock released. */
static int parse_query(tape_lua_state *S, tape_query **out, const char *json)
{
    int rc;
    TAPE_LUA_UNLOCKED(S, rc = tape_query_parse(out, json));
    return rc;
}

/* Run q on the store (busy while released); *out the page. */
static int run_query(tl_obj *store, tape_result **out, const tape_query *q)
{
    int rc;
    tl_enter(store);
    TAPE_LUA_UNLOCKED(store->S, rc = tape_store_query(out, store->p, q));
    tl_leave(store);
    return rc;
}

/* store:query{terms..., limit=, page_size=, cursor=} -> iterator */
static int m_query(lua_State *L)
{
    const char *fn = "store:query";
    tl_store *st = check_store(L, fn);
    lua_Integer limit = -1, page_size = 1000;
    const char *cursor = NULL;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "limit");
        limit = tl_optint(L, -1, -1, fn, "limit");
        if (!lua_isnil(L, -1) && limit < 0) {
            return luaL_error(L, "%s: limit must be >= 0", fn);
        }
        lua_getfield(L, 2, "page_size");
        page_size = tl_optint(L, -1, 1000, fn, "page_size");
        if (page_size < 1) {
            return luaL_error(L, "%s: page_size must be >= 1", fn);
        }
        lua_getfield(L, 2, "cursor");
        cursor = tl_optstr(L, -1, fn, "cursor");
        /* the three stay on the stack: cursor's string is anchored */
    }
    terms_body(L, 2, fn, iter_skip);
    lua_pushfstring(L, "{%s}", lua_tostring(L, -1));
    tape_query *q = NULL;
    int rc = parse_query(st->o.S, &q, lua_tostring(L, -1));
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tl_query_iter *qi = (tl_query_iter *)tl_new(L, sizeof *qi, TL_QUERY_ITER, st->o.S, 1);
    qi->q = q;
    qi->left = limit;
    qi->page_size = page_size;
    if (cursor != NULL && (qi->cursor = strdup(cursor)) == NULL) {
        return luaL_error(L, "%s: out of memory", fn);
    }
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, -3); /* closed when a generic for ends */
    return 4;
}

/* Fetch the next page into qi: 0, or a core code. */
static int fetch_page(lua_State *L, tl_query_iter *qi)
{
    tape_lua_state *S = qi->o.S;
    lua_Integer n = qi->page_size;
    if (qi->left >= 0 && qi->left < n) {
        n = qi->left;
    }
    tape_query *withcur = NULL;
    char *json = NULL;
    int rc;
    TAPE_LUA_UNLOCKED(S, rc = tape_query_with_cursor(&withcur, qi->q, qi->cursor));
    if (rc == TAPE_OK) {
        TAPE_LUA_UNLOCKED(S, rc = tape_query_to_json(&json, withcur));
    }
    TAPE_LUA_UNLOCKED(S, tape_query_free(withcur));
    if (rc != TAPE_OK) {
        return rc;
    }
    /* The normalised JSON is an object: replace its limit by this page's. */
    size_t len = strlen(json);
    lua_pushlstring(L, json, len > 0 ? len - 1 : 0); /* without the closing brace */
    TAPE_LUA_UNLOCKED(S, tape_string_free(json));
    lua_pushfstring(L, "%s%s\"limit\":%I}", lua_tostring(L, -1),
                    lua_rawlen(L, -1) > 1 ? "," : "", n);
    /* A "limit" the normalised form kept would be a duplicate key: the
     * terms were parsed without one, so it has none. */
    tape_query *page_q = NULL;
    rc = parse_query(S, &page_q, lua_tostring(L, -1));
    lua_pop(L, 2);
    if (rc != TAPE_OK) {
        return rc;
    }
    tape_result *r = NULL;
    rc = run_query(qi->o.parent, &r, page_q);
    TAPE_LUA_UNLOCKED(S, tape_query_free(page_q));
    if (rc != TAPE_OK) {
        return rc;
    }
    tape_result *old = qi->page;
    char *oldcur = qi->cursor;
    qi->page = r;
    qi->pos = 0;
    qi->n = tape_result_count(r);
    const char *next = tape_result_next_cursor(r);
    qi->cursor = next != NULL ? strdup(next) : NULL;
    qi->last = next == NULL || (next != NULL && qi->cursor == NULL);
    TAPE_LUA_UNLOCKED(S, (tape_result_free(old), free(oldcur)));
    if (next != NULL && qi->cursor == NULL) {
        return TAPE_ENOMEM;
    }
    return TAPE_OK;
}

static int query_iter_call(lua_State *L)
{
    tl_query_iter *qi = (tl_query_iter *)tl_check(L, 1, TL_QUERY_ITER, "query iterator");
    if (qi->closed) { /* exhausted (still open): nil again */
        lua_pushnil(L);
        return 1;
    }
    while (qi->pos >= qi->n) {
        if (qi->last || qi->left == 0) {
            tl_release(&qi->o, TL_OPEN); /* done: frees the buffers, stays usable (nil) */
            lua_pushnil(L);
            return 1;
        }
        tl_enter(&qi->o);
        int rc = fetch_page(L, qi);
        tl_leave(&qi->o);
        if (qi->o.state != TL_OPEN || qi->q == NULL) {
            /* closed while the page loaded (a log function, another thread) */
            return luaL_error(L, "query iterator: closed query iterator");
        }
        if (rc != TAPE_OK) {
            /* nil would end a for loop silently: a failed page raises. */
            return luaL_error(L, "store:query: %s (%s)", tape_errmsg(), tape_strerror(rc));
        }
        if (qi->n == 0) {
            qi->last = 1;
        }
    }
    const tape_entry *e = tape_result_at(qi->page, qi->pos++);
    if (qi->left > 0) {
        qi->left--;
    }
    tl_push_entry(L, qi->o.S, tape_entry_ref(e));
    return 1;
}

/* store:query_page{terms..., limit=, cursor=} -> entries, next_cursor */
static int m_query_page(lua_State *L)
{
    const char *fn = "store:query_page";
    tl_store *st = check_store(L, fn);
    terms_body(L, 2, fn, page_skip);
    lua_pushfstring(L, "{%s}", lua_tostring(L, -1));
    tape_query *q = NULL;
    int rc = parse_query(st->o.S, &q, lua_tostring(L, -1));
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tape_result *r = NULL;
    rc = run_query(&st->o, &r, q);
    TAPE_LUA_UNLOCKED(st->o.S, tape_query_free(q));
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    size_t n = tape_result_count(r);
    /* Entries are referenced first, so a memory error below leaks no page. */
    lua_createtable(L, (int)n, 0);
    int arr = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        tape_lua_push_entry(L, tape_entry_ref(tape_result_at(r, i)));
        lua_rawseti(L, arr, (lua_Integer)i + 1);
    }
    lua_pushstring(L, tape_result_next_cursor(r));
    TAPE_LUA_UNLOCKED(st->o.S, tape_result_free(r));
    return 2;
}

/* ------------------------------------------------------------ frames */

/* store:frames(id[, start[, stop]]) -> iterator of frames start <= seq < stop */
static int m_frames(lua_State *L)
{
    const char *fn = "store:frames";
    tl_store *st = check_store(L, fn);
    const char *id = check_id(L, 2, fn);
    uint64_t start, stop;
    tl_range_args(L, 3, fn, &start, &stop);
    tape_frame_iter *it = NULL;
    int rc = TAPE_OK;
    if (stop > start) {
        uint64_t to = stop >= TAPE_SEQ_END ? TAPE_SEQ_END : stop - 1;
        tl_enter(&st->o);
        TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_read_frames(&it, st->o.p, id, start, to));
        tl_leave(&st->o);
        if (rc != TAPE_OK) {
            return tape_lua_fail(L, rc);
        }
    }
    tl_frame_iter *fi = (tl_frame_iter *)tl_new(L, sizeof *fi, TL_FRAME_ITER, st->o.S, 1);
    fi->c.o.p = it;
    fi->done = it == NULL;
    if (it != NULL) {
        link_child(st, &fi->c);
    }
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, -3);
    return 4;
}

static int frame_iter_call(lua_State *L)
{
    tl_frame_iter *fi = (tl_frame_iter *)tl_to(L, 1, TL_FRAME_ITER, "frame iterator");
    if (fi->done && fi->c.o.state == TL_OPEN && fi->c.o.parent->p != NULL) {
        lua_pushnil(L);
        return 1;
    }
    tl_check(L, 1, TL_FRAME_ITER, "frame iterator");
    const tape_frame *f = NULL;
    tape_frame *copy = NULL;
    int rc;
    tl_enter(&fi->c.o);
    /* The frame is valid until the next call: cloned, so it can be kept. */
    TAPE_LUA_UNLOCKED(fi->c.o.S, rc = tape_frame_iter_next(&f, fi->c.o.p);
                      if (rc == TAPE_OK) rc = tape_frame_clone(&copy, f));
    tl_leave(&fi->c.o);
    if (rc == TAPE_DONE) {
        tl_release(&fi->c.o, TL_OPEN);
        fi->done = 1;
        lua_pushnil(L);
        return 1;
    }
    if (rc != TAPE_OK) {
        return luaL_error(L, "store:frames: %s (%s)", tape_errmsg(), tape_strerror(rc));
    }
    tape_lua_push_frame(L, copy, TAPE_LUA_OWNED, 0);
    return 1;
}

/* ------------------------------------------------------------ writers */

/* store:record{name=, tags=, id=, description=, session_id=, ...} -> writer */
static int m_record(lua_State *L)
{
    const char *fn = "store:record";
    tl_store *st = check_store(L, fn);
    tape *h = NULL;
    int n = tl_tape_from_fields(L, 2, &h, fn);
    if (n != 0) {
        return n;
    }
    /* Held by a tape object until the writer takes it, so a raise frees it. */
    tape_lua_push_tape(L, h, TAPE_LUA_OWNED, 0);
    int hidx = lua_gettop(L);
    tape_writer *w = NULL;
    int rc;
    tl_enter(&st->o);
    TAPE_LUA_UNLOCKED(st->o.S, rc = tape_store_record(&w, st->o.p, h));
    tl_leave(&st->o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tl_writer *wr = (tl_writer *)tl_new(L, sizeof *wr, TL_WRITER, st->o.S, 1);
    wr->c.o.p = w;
    snprintf(wr->id, sizeof wr->id, "%s", tape_writer_id(w));
    wr->header = tape_lua_steal_tape(L, hidx);
    link_child(st, &wr->c);
    return 1;
}

static tl_writer *check_writer(lua_State *L, const char *fn)
{
    return (tl_writer *)tl_check(L, 1, TL_WRITER, fn);
}

static int m_w_append(lua_State *L)
{
    tl_writer *w = check_writer(L, "writer:append");
    return tl_append(L, &w->c.o, NULL, w->c.o.p, 2, "writer:append");
}

static int m_w_add_correlation(lua_State *L)
{
    tl_writer *w = check_writer(L, "writer:add_correlation");
    tl_corr_args c;
    tl_check_corr_args(L, &c, "writer:add_correlation");
    int rc;
    tl_enter(&w->c.o);
    TAPE_LUA_UNLOCKED(w->c.o.S, rc = tape_writer_add_correlation(w->c.o.p, c.id, c.request_seq,
                                                                  c.response_seq, c.rtt_ms,
                                                                  c.status));
    tl_leave(&w->c.o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* writer:update_meta{name=, description=, tags=, session_id=, protocol_version=,
 * transport=, environment=}: fields not named keep their values. */
static int m_w_update_meta(lua_State *L)
{
    const char *fn = "writer:update_meta";
    static const char *const allowed[] = { "name", "description", "tags", "session_id",
                                           "protocol_version", "transport", "environment",
                                           "transport_json", "environment_json", NULL };
    tl_writer *w = check_writer(L, fn);
    luaL_checktype(L, 2, LUA_TTABLE);
    tape *c = NULL;
    int rc;
    TAPE_LUA_UNLOCKED(w->c.o.S, rc = tape_clone(&c, w->header));
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tape_lua_push_tape(L, c, TAPE_LUA_OWNED, 0); /* frees c if a field raises */
    int cidx = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        int ok = 0;
        for (int i = 0; allowed[i] != NULL; i++) {
            ok |= strcmp(key, allowed[i]) == 0;
        }
        if (!ok) {
            return luaL_error(L, "%s: unknown field \"%s\" (name, description, tags, session_id, "
                                 "protocol_version, transport, environment)", fn, key);
        }
        rc = tl_set_field(L, c, key, -1, fn);
        if (rc != TAPE_OK) {
            return tape_lua_fail(L, rc);
        }
        lua_pop(L, 1);
    }
    tl_enter(&w->c.o);
    TAPE_LUA_UNLOCKED(w->c.o.S, rc = tape_writer_update_meta(w->c.o.p, c));
    tl_leave(&w->c.o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    tape *old = w->header;
    w->header = tape_lua_steal_tape(L, cidx);
    TAPE_LUA_UNLOCKED(w->c.o.S, tape_free(old));
    lua_pushboolean(L, 1);
    return 1;
}

static int m_w_finish(lua_State *L)
{
    tl_writer *w = check_writer(L, "writer:finish");
    int rc;
    tl_enter(&w->c.o);
    TAPE_LUA_UNLOCKED(w->c.o.S, rc = tape_writer_finish(w->c.o.p));
    tl_leave(&w->c.o);
    if (rc != TAPE_OK) {
        return tape_lua_fail(L, rc);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int m_w_close(lua_State *L)
{
    tl_obj *o = tl_to(L, 1, TL_WRITER, "writer:close");
    tl_release(o, TL_CLOSED);
    return 0;
}

/* __close(w, err): a normal exit finishes the tape (a failure raises); an
 * error exit abandons it: status recording, with what was appended. */
static int w_close_meta(lua_State *L)
{
    tl_obj *o = tl_to(L, 1, TL_WRITER, "writer:__close");
    int usable = o->state == TL_OPEN && o->p != NULL && o->parent->state == TL_OPEN &&
                 o->parent->p != NULL;
    if (lua_isnil(L, 2) && usable) {
        int rc;
        tl_enter(o);
        TAPE_LUA_UNLOCKED(o->S, rc = tape_writer_finish(o->p));
        tl_leave(o);
        if (rc != TAPE_OK) {
            lua_pushfstring(L, "writer: finishing tape \"%s\" failed: %s (%s); it is left with "
                               "status recording", ((tl_writer *)o)->id, tape_errmsg(),
                            tape_strerror(rc));
            tl_release(o, TL_CLOSED);
            return lua_error(L);
        }
    }
    tl_release(o, TL_CLOSED);
    return 0;
}

/* ------------------------------------------------------------ fields */

enum { SF_PROVIDER = 0, SF_CLOSED = TL_FIELD_ALWAYS + 1 };
static const char *const store_fields[] = { "provider", "+closed", NULL };
enum { WF_ID = TL_FIELD_ALWAYS + 0, WF_CLOSED = TL_FIELD_ALWAYS + 1 };
static const char *const writer_fields[] = { "+id", "+closed", NULL };

int tl_store_kind_get(lua_State *L, tl_obj *o, int code)
{
    if (o->kind == TL_STORE) {
        if (code == SF_PROVIDER) {
            lua_pushstring(L, tape_store_provider(o->p));
        } else {
            lua_pushboolean(L, o->state != TL_OPEN || o->p == NULL);
        }
        return 1;
    }
    if (o->kind == TL_WRITER) {
        if (code == WF_ID) {
            lua_pushstring(L, ((tl_writer *)o)->id);
        } else {
            lua_pushboolean(L, o->state != TL_OPEN || o->p == NULL || o->parent->p == NULL);
        }
        return 1;
    }
    return 0;
}

static const luaL_Reg store_methods[] = {
    { "close", m_close },
    { "save", m_save },
    { "load", m_load },
    { "delete", m_delete },
    { "exists", m_exists },
    { "stats", m_stats },
    { "capabilities", m_capabilities },
    { "control", m_control },
    { "query", m_query },
    { "query_page", m_query_page },
    { "frames", m_frames },
    { "record", m_record },
    { NULL, NULL },
};
static const luaL_Reg store_meta[] = {
    { "__close", m_close },
    { NULL, NULL },
};
static const luaL_Reg writer_methods[] = {
    { "append", m_w_append },
    { "add_correlation", m_w_add_correlation },
    { "update_meta", m_w_update_meta },
    { "finish", m_w_finish },
    { "close", m_w_close },
    { NULL, NULL },
};
static const luaL_Reg writer_meta[] = {
    { "__close", w_close_meta },
    { NULL, NULL },
};

static int iter_close(lua_State *L)
{
    tl_obj *o = tl_self(L, 1);
    if (o == NULL) {
        return luaL_error(L, "iterator:close: argument #1 must be an iterator, got %s",
                          luaL_typename(L, 1));
    }
    tl_release(o, TL_CLOSED);
    if (o->kind == TL_FRAME_ITER) {
        ((tl_frame_iter *)o)->done = 1;
    }
    return 0;
}
static const luaL_Reg iter_methods[] = {
    { "close", iter_close },
    { NULL, NULL },
};
static const luaL_Reg query_iter_meta[] = {
    { "__call", query_iter_call },
    { NULL, NULL },
};
static const luaL_Reg frame_iter_meta[] = {
    { "__call", frame_iter_call },
    { NULL, NULL },
};

void tl_open_store(lua_State *L, int module_idx)
{
    tl_new_kind(L, TL_STORE, store_methods, store_meta, store_fields);
    tl_new_kind(L, TL_WRITER, writer_methods, writer_meta, writer_fields);
    tl_new_kind(L, TL_QUERY_ITER, iter_methods, query_iter_meta, NULL);
    tl_new_kind(L, TL_FRAME_ITER, iter_methods, frame_iter_meta, NULL);
    lua_pushcfunction(L, l_open);
    lua_setfield(L, module_idx, "open");
}
