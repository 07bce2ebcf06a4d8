/*
 * tape_lua_json.c - the Lua binding's JSON codec (docs/lua.md, "JSON").
 *
 * Decoding builds Lua values straight from the text: integer literals
 * become Lua integers (all of int64), other numbers floats; \u escapes of
 * lone surrogates become their WTF-8 bytes; JSON null becomes
 * tapestore.null (a NULL light userdata, as cjson.null is). The decoder
 * accepts exactly the texts the core accepts as a frame message (cJSON plus
 * core/frame.c's json_write_check): RFC 8259 with the core's leniencies
 * (leading zeros, "1.", "-.5", a leading UTF-8 BOM, raw bytes that are not
 * UTF-8 inside strings) and its depth limit, checked by
 * tests/fuzz/fuzz_lua_json.c. Decoded arrays and objects carry shared
 * metatables, so [] and {} re-encode as what they were.
 *
 * Encoding is deterministic: object keys sorted bytewise, floats in the
 * shortest of %.15g/%.16g/%.17g that reads back the same double.
 *
 * Neither direction leaks when Lua raises (memory errors; encode's
 * refusals): every temporary is a userdata on the stack, and the encoder's
 * malloc'd buffers belong to a box whose __gc frees them.
 */
#include "tape_lua.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MT TAPE_LUA_JSON_ARRAY_MT
#define OBJECT_MT TAPE_LUA_JSON_OBJECT_MT
#define BOX_MT "tapestore.json_encoder"
#define DEPTH TAPE_LUA_JSON_DEPTH

/* Push the metatable registered as name, creating it on first use (decode
 * may run before tape_lua_json_open, from a host API function). */
static void push_mt(lua_State *L, const char *name)
{
    if (luaL_getmetatable(L, name) == LUA_TNIL) {
        lua_pop(L, 1);
        luaL_newmetatable(L, name); /* sets __name */
    }
}

/* ================================================================ decode */

/* Values are pushed onto the stack and put into their table when it is
 * complete, so the table is created with its exact size (no rehash while
 * filling). A container flushes what it holds every FLUSH values to keep
 * the stack bounded for huge arrays. */
#define ARRAY_FLUSH 256
#define OBJECT_FLUSH 128 /* pairs */

typedef struct jdec {
    lua_State *L;
    const unsigned char *s, *p, *end;
    int depth;
    int arr_mt, obj_mt;      /* stack indices of the shared metatables */
    size_t err_at;
    char err[96];
} jdec;

static int fail(jdec *d, const unsigned char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(jdec *d, const unsigned char *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    d->err_at = (size_t)(at - d->s);
    return 0;
}

/* A byte for a message: 'x' when printable, 0xNN otherwise. */
static const char *show(char out[8], unsigned char c)
{
    if (c >= 0x21 && c < 0x7F) {
        snprintf(out, 8, "'%c'", c);
    } else {
        snprintf(out, 8, "0x%02x", c);
    }
    return out;
}

static void skip_ws(jdec *d)
{
    const unsigned char *p = d->p, *end = d->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    d->p = p;
}

/* Bytes that end the plain run of a string: '"', '\\', control chars. */
static const unsigned char str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The 4 hex digits at p (p + 4 <= end checked by the caller); -1 if bad. */
static long hex4(const unsigned char *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), e = hexval(p[3]);
    if ((a | b | c | e) < 0) {
        return -1;
    }
    return (long)(a << 12 | b << 8 | c << 4 | e);
}

/* Code point (surrogates included: WTF-8) as UTF-8 at q; returns the end. */
static char *put_utf8(char *q, unsigned long cp)
{
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xC0 | cp >> 6);
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | cp >> 12);
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | cp >> 18);
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    }
    return q;
}

/* The string whose opening quote is at d->p: pushed; d->p after it. */
static int parse_string(jdec *d)
{
    const unsigned char *open = d->p, *end = d->end;
    const unsigned char *p = open + 1, *q = p;
    while (q < end && !str_stop[*q]) {
        q++;
    }
    if (q < end && *q == '"') { /* no escapes: the bytes as they are */
        lua_pushlstring(d->L, (const char *)p, (size_t)(q - p));
        d->p = q + 1;
        return 1;
    }
    /* Find the end and check what a later pass would otherwise meet. */
    const unsigned char *r = q;
    while (r < end && *r != '"') {
        if (*r == '\\') {
            if (end - r < 2) {
                r = end;
                break;
            }
            r += 2;
        } else if (*r < 0x20) {
            char b[8];
            return fail(d, r, "raw control character %s in a string (escape it as \\u%04x)",
                        show(b, *r), *r);
        } else {
            r++;
        }
    }
    if (r >= end) {
        return fail(d, open, "unterminated string");
    }
    /* Unescaping only shrinks: r - p bytes are enough. */
    size_t room = (size_t)(r - p);
    char local[256], *out = local;
    int boxed = room > sizeof local;
    if (boxed) {
        out = lua_newuserdatauv(d->L, room, 0);
    }
    memcpy(out, p, (size_t)(q - p));
    char *o = out + (q - p);
    while (q < r) {
        unsigned char c = *q;
        if (c != '\\') {
            *o++ = (char)c;
            q++;
            continue;
        }
        unsigned char e = q[1]; /* q + 1 < r: the scan above stepped over it */
        switch (e) {
        case '"': case '\\': case '/':
            *o++ = (char)e;
            break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            long cu = r - q >= 6 ? hex4(q + 2) : -1;
            if (cu < 0) {
                return fail(d, q, "bad \\u escape (expected 4 hex digits)");
            }
            q += 6;
            if (cu >= 0xD800 && cu <= 0xDBFF && r - q >= 6 && q[0] == '\\' && q[1] == 'u') {
                long lo = hex4(q + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) { /* a pair: one character */
                    cu = 0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00);
                    q += 6;
                }
            }
            /* A lone surrogate keeps its code unit as 3 bytes (WTF-8). */
            o = put_utf8(o, (unsigned long)cu);
            continue;
        }
        default: {
            char b[8];
            return fail(d, q, "bad escape (backslash followed by %s) in a string", show(b, e));
        }
        }
        q += 2;
    }
    lua_pushlstring(d->L, out, (size_t)(o - out));
    if (boxed) {
        lua_remove(d->L, -2);
    }
    d->p = r + 1;
    return 1;
}

static int is_num_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/* A number at d->p ('-' or a digit). The grammar is what cJSON hands to
 * strtod: '-'? (digits ('.' digits*)? | '.' digits) ([eE] [+-]? digits)?,
 * so leading zeros, "1." and "-.5" pass as they do in the core, and any
 * number character left over is an error (cJSON leaves it unparsed). */
static int parse_number(jdec *d)
{
    const unsigned char *start = d->p, *p = start, *end = d->end;
    int neg = *p == '-';
    p += neg;
    const unsigned char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }
    size_t nint = (size_t)(p - digits), nfrac = 0;
    int is_float = 0;
    if (p < end && *p == '.') {
        is_float = 1;
        const unsigned char *f = ++p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        nfrac = (size_t)(p - f);
    }
    if (nint == 0 && nfrac == 0) {
        return fail(d, start, "bad number (expected a digit)");
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const unsigned char *x = p + 1;
        if (x < end && (*x == '+' || *x == '-')) {
            x++;
        }
        if (x >= end || *x < '0' || *x > '9') {
            return fail(d, start, "bad number (expected a digit in the exponent)");
        }
        while (x < end && *x >= '0' && *x <= '9') {
            x++;
        }
        p = x;
        is_float = 1;
    }
    if (p < end && is_num_char(*p)) {
        char b[8];
        return fail(d, p, "bad number (unexpected %s)", show(b, *p));
    }
    d->p = p;
    if (!is_float) {
        /* Exact while it fits int64; -9223372036854775808 included. */
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        const unsigned char *k = digits;
        for (; k < p; k++) {
            unsigned dg = (unsigned)(*k - '0');
            if (v > (limit - dg) / 10) {
                break;
            }
            v = v * 10 + dg;
        }
        if (k == p) {
            lua_pushinteger(d->L, !neg ? (lua_Integer)v
                                  : v > (uint64_t)INT64_MAX ? LUA_MININTEGER
                                                            : -(lua_Integer)v);
            return 1;
        }
    }
    /* strtod, made independent of the C locale's decimal point. */
    size_t n = (size_t)(p - start);
    char local[128], *t = local;
    int boxed = n + 1 > sizeof local;
    if (boxed) {
        t = lua_newuserdatauv(d->L, n + 1, 0);
    }
    memcpy(t, start, n);
    t[n] = '\0';
    char dp = lua_getlocaledecpoint();
    if (dp != '.') {
        char *dot = memchr(t, '.', n);
        if (dot != NULL) {
            *dot = dp;
        }
    }
    double v = strtod(t, NULL);
    if (boxed) {
        lua_pop(d->L, 1);
    }
    lua_pushnumber(d->L, (lua_Number)v);
    return 1;
}

static int parse_value(jdec *d);

static int too_deep(jdec *d)
{
    return fail(d, d->p, "nesting deeper than %d levels", DEPTH);
}

static int no_stack(jdec *d)
{
    return fail(d, d->p, "too many values for the Lua stack");
}

/* Put the `pending` values above the table (created at top + 1 if
 * *have is 0) at indices done+1..done+pending. */
static void array_flush(lua_State *L, int top, int *have, lua_Integer *done, int pending,
                        int final)
{
    if (!*have) {
        lua_createtable(L, final ? pending : pending * 4, 0);
        lua_rotate(L, top + 1, 1);
        *have = 1;
    }
    for (int i = pending; i > 0; i--) {
        lua_rawseti(L, top + 1, *done + i);
    }
    *done += pending;
}

static int parse_array(jdec *d)
{
    lua_State *L = d->L;
    if (d->depth >= DEPTH) {
        return too_deep(d);
    }
    d->depth++;
    d->p++;
    int top = lua_gettop(L), have = 0, pending = 0;
    lua_Integer done = 0;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
    } else {
        for (;;) {
            if (!lua_checkstack(L, 3)) {
                return no_stack(d);
            }
            if (!parse_value(d)) {
                return 0;
            }
            pending++;
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                skip_ws(d);
                if (pending == ARRAY_FLUSH) {
                    array_flush(L, top, &have, &done, pending, 0);
                    pending = 0;
                }
                continue;
            }
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                break;
            }
            if (d->p >= d->end) {
                return fail(d, d->p, "unexpected end of text (expected ',' or ']' in an array)");
            }
            char b[8];
            return fail(d, d->p, "expected ',' or ']' after an array element, not %s",
                        show(b, *d->p));
        }
    }
    array_flush(L, top, &have, &done, pending, 1);
    lua_pushvalue(L, d->arr_mt);
    lua_setmetatable(L, -2);
    d->depth--;
    return 1;
}

/* The `pending` key/value pairs above the table (created at top + 1 if
 * *have is 0) go into it. The first member of a duplicated key wins, as
 * in the core (its lookups take the first): the first chunk is set last
 * member first, so earlier ones overwrite; later chunks, front to back,
 * only add keys not there yet. */
static void object_flush(lua_State *L, int top, int *have, int pending, int final)
{
    if (!*have) {
        lua_createtable(L, 0, final ? pending : pending * 2);
        lua_rotate(L, top + 1, 1);
        *have = 1;
        for (int i = 0; i < pending; i++) {
            lua_rawset(L, top + 1);
        }
        return;
    }
    for (int i = 0; i < pending; i++) {
        int k = top + 2 + 2 * i;
        lua_pushvalue(L, k);
        int absent = lua_rawget(L, top + 1) == LUA_TNIL;
        lua_pop(L, 1); /* at most 2 slots above the pairs: parse_object reserved them */
        if (absent) {
            lua_pushvalue(L, k);
            lua_pushvalue(L, k + 1);
            lua_rawset(L, top + 1);
        }
    }
    lua_settop(L, top + 1);
}

static int parse_object(jdec *d)
{
    lua_State *L = d->L;
    if (d->depth >= DEPTH) {
        return too_deep(d);
    }
    d->depth++;
    d->p++;
    int top = lua_gettop(L), have = 0, pending = 0;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            if (!lua_checkstack(L, 4)) {
                return no_stack(d);
            }
            if (d->p >= d->end) {
                return fail(d, d->p, "unexpected end of text (expected a string key)");
            }
            if (*d->p != '"') {
                char b[8];
                return fail(d, d->p, "expected a string key, not %s", show(b, *d->p));
            }
            if (!parse_string(d)) {
                return 0;
            }
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':') {
                return fail(d, d->p, "expected ':' after object key");
            }
            d->p++;
            skip_ws(d);
            if (!parse_value(d)) {
                return 0;
            }
            pending++;
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                skip_ws(d);
                if (pending == OBJECT_FLUSH) {
                    object_flush(L, top, &have, pending, 0);
                    pending = 0;
                }
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            if (d->p >= d->end) {
                return fail(d, d->p, "unexpected end of text (expected ',' or '}' in an object)");
            }
            char b[8];
            return fail(d, d->p, "expected ',' or '}' after an object member, not %s",
                        show(b, *d->p));
        }
    }
    object_flush(L, top, &have, pending, 1);
    lua_pushvalue(L, d->obj_mt);
    lua_setmetatable(L, -2);
    d->depth--;
    return 1;
}

static int parse_literal(jdec *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) {
        return fail(d, d->p, "bad literal (expected %s)", word);
    }
    d->p += n;
    return 1;
}

static int parse_value(jdec *d)
{
    if (d->p >= d->end) {
        return fail(d, d->p, "unexpected end of text (expected a value)");
    }
    switch (*d->p) {
    case '"':
        return parse_string(d);
    case '{':
        return parse_object(d);
    case '[':
        return parse_array(d);
    case 't':
        if (!parse_literal(d, "true", 4)) {
            return 0;
        }
        lua_pushboolean(d->L, 1);
        return 1;
    case 'f':
        if (!parse_literal(d, "false", 5)) {
            return 0;
        }
        lua_pushboolean(d->L, 0);
        return 1;
    case 'n':
        if (!parse_literal(d, "null", 4)) {
            return 0;
        }
        lua_pushlightuserdata(d->L, NULL);
        return 1;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(d);
    default: {
        char b[8];
        return fail(d, d->p, "unexpected %s (expected a value)", show(b, *d->p));
    }
    }
}

int tape_lua_json_decode(lua_State *L, const char *s, size_t n)
{
    luaL_checkstack(L, 8, "json decode");
    int base = lua_gettop(L);
    jdec d;
    d.L = L;
    d.s = d.p = (const unsigned char *)s;
    d.end = d.s + n;
    d.depth = 0;
    d.err_at = 0;
    d.err[0] = '\0';
    push_mt(L, ARRAY_MT);
    push_mt(L, OBJECT_MT);
    d.arr_mt = base + 1;
    d.obj_mt = base + 2;
    skip_ws(&d);
    /* cJSON skips a UTF-8 byte order mark at the start, so the core takes
     * one; but only in a text of 5 bytes or more (it checks that it can
     * read index 4), and the core hands it the text trimmed of blanks. */
    const unsigned char *trimmed = d.end;
    while (trimmed > d.p && (trimmed[-1] == ' ' || trimmed[-1] == '\n' || trimmed[-1] == '\r' ||
                             trimmed[-1] == '\t')) {
        trimmed--;
    }
    if (trimmed - d.p >= 5 && memcmp(d.p, "\xEF\xBB\xBF", 3) == 0) {
        d.p += 3;
        skip_ws(&d);
    }
    int ok = parse_value(&d);
    if (ok) {
        skip_ws(&d);
        if (d.p < d.end) {
            char b[8];
            ok = fail(&d, d.p, "unexpected %s after the value", show(b, *d.p));
        }
    }
    if (!ok) {
        lua_settop(L, base);
        lua_pushfstring(L, "json: byte %I: %s", (lua_Integer)d.err_at, d.err);
        return 0;
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 1;
}

/* ================================================================ encode */

typedef struct kref {
    const char *s;
    size_t n;
} kref;

typedef struct pathel {
    const void *table; /* the table entered at this level (cycle check) */
    const char *key;   /* the member's key; NULL: an array index */
    size_t klen;
    lua_Integer index;
} pathel;

#define BOX_TEXT 512 /* inline room: most messages need no malloc */
#define BOX_PATH 24

/* The encoder's state, a userdata on the stack while it runs. Its buffers
 * start inline and move to malloc'd memory when they grow; __gc frees
 * those if a refusal or a memory error unwinds the encoder. */
typedef struct jbox {
    char *buf;
    size_t len, cap;
    kref *keys;          /* a stack: each open object's sorted keys */
    size_t nkeys, capkeys;
    pathel *path;        /* path[1..depth]: how the current value was reached */
    size_t cappath;
    pathel inl_path[BOX_PATH];
    char inl_buf[BOX_TEXT];
} jbox;

typedef struct jenc {
    lua_State *L;
    jbox *b;
    int arr_mt, obj_mt;
    int depth;
    char dp; /* the C locale's decimal point (snprintf writes it) */
} jenc;

static void box_release(jbox *b)
{
    if (b->buf != b->inl_buf) {
        free(b->buf);
    }
    if (b->path != b->inl_path) {
        free(b->path);
    }
    free(b->keys);
    b->buf = b->inl_buf;
    b->path = b->inl_path;
    b->keys = NULL;
}

static int box_gc(lua_State *L)
{
    box_release(lua_touserdata(L, 1));
    return 0;
}

/* The path to the value being encoded, as Lua would index it:
 * .params.items[2]["a key"]; "(root)" for the top. */
static void path_text(const jenc *e, char *out, size_t size)
{
    size_t at = 0;
    out[0] = '\0';
    if (e->depth == 0) {
        snprintf(out, size, "(root)");
        return;
    }
    for (int i = 1; i <= e->depth && at + 8 < size; i++) {
        const pathel *pe = &e->b->path[i];
        int w;
        if (pe->key == NULL) {
            w = snprintf(out + at, size - at, "[%lld]", (long long)pe->index);
        } else {
            int ident = pe->klen > 0 && pe->klen <= 40 &&
                        !(pe->key[0] >= '0' && pe->key[0] <= '9');
            for (size_t k = 0; ident && k < pe->klen; k++) {
                char c = pe->key[k];
                ident = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_';
            }
            if (ident) {
                w = snprintf(out + at, size - at, ".%.*s", (int)pe->klen, pe->key);
            } else {
                char q[48];
                size_t j = 0;
                for (size_t k = 0; k < pe->klen && j < 40; k++) {
                    unsigned char c = (unsigned char)pe->key[k];
                    q[j++] = c >= 0x20 && c < 0x7F && c != '"' && c != '\\' ? (char)c : '?';
                }
                q[j] = '\0';
                w = snprintf(out + at, size - at, "[\"%s%s\"]", q, pe->klen > 40 ? "..." : "");
            }
        }
        if (w < 0) {
            break;
        }
        at += (size_t)w;
        if (at >= size) {
            at = size - 1;
        }
    }
    if (at + 1 >= size && size > 4) {
        memcpy(out + size - 4, "...", 4);
    }
}

static void refuse(jenc *e, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* Raise "json: value at <path>: <why>". */
static void refuse(jenc *e, const char *fmt, ...)
{
    char why[160], path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    path_text(e, path, sizeof path);
    luaL_error(e->L, "json: value at %s: %s", path, why);
    __builtin_unreachable(); /* luaL_error does not return */
}

static char *reserve(jenc *e, size_t n)
{
    jbox *b = e->b;
    if (b->cap - b->len < n) {
        size_t cap = b->cap * 2;
        if (cap - b->len < n) {
            cap = b->len + n;
        }
        char *p = realloc(b->buf == b->inl_buf ? NULL : b->buf, cap);
        if (p == NULL) {
            luaL_error(e->L, "json: not enough memory for the text (%I bytes)", (lua_Integer)cap);
        }
        if (b->buf == b->inl_buf) {
            memcpy(p, b->inl_buf, b->len);
        }
        b->buf = p;
        b->cap = cap;
    }
    return b->buf + b->len;
}

static void put(jenc *e, const char *s, size_t n)
{
    memcpy(reserve(e, n), s, n);
    e->b->len += n;
}

static void put_integer(jenc *e, lua_Integer i)
{
    char tmp[24], *q = tmp + sizeof tmp;
    uint64_t v = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (i < 0) {
        *--q = '-';
    }
    put(e, q, (size_t)(tmp + sizeof tmp - q));
}

static void put_float(jenc *e, double x)
{
    if (isnan(x)) {
        refuse(e, "cannot encode NaN");
    }
    if (isinf(x)) {
        refuse(e, "cannot encode %s", x > 0 ? "inf" : "-inf");
    }
    char t[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(t, sizeof t - 2, "%.*g", prec, x);
        if (prec == 17 || strtod(t, NULL) == x) {
            break;
        }
    }
    /* The C locale's decimal point is not JSON's. A float stays a float:
     * "1" would read back as an integer, so it is written "1.0". */
    int frac = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] == e->dp && e->dp != '.') {
            t[i] = '.';
        }
        if (t[i] == '.' || t[i] == 'e') {
            frac = 1;
        }
    }
    if (!frac) {
        t[n++] = '.';
        t[n++] = '0';
    }
    put(e, t, (size_t)n);
}

/* Length of the UTF-8 sequence at s[0..n) (1..4), 3 with *surrogate set
 * for a WTF-8 surrogate (ED A0..BF xx), 0 if neither. */
static int utf8_len(const unsigned char *s, size_t n, long *surrogate)
{
    unsigned char c = s[0];
    *surrogate = -1;
#define CONT(i) ((size_t)(i) < n && (s[i] & 0xC0) == 0x80)
    if (c >= 0xC2 && c <= 0xDF) {
        return CONT(1) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (!CONT(1) || !CONT(2)) {
            return 0;
        }
        if (c == 0xE0 && s[1] < 0xA0) {
            return 0; /* overlong */
        }
        if (c == 0xED && s[1] >= 0xA0) {
            *surrogate = (long)(0xD000 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F));
        }
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!CONT(1) || !CONT(2) || !CONT(3)) {
            return 0;
        }
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)) {
            return 0;
        }
        return 4;
    }
#undef CONT
    return 0;
}

/* s as a JSON string: '"', '\\' and control characters escaped, UTF-8
 * copied, WTF-8 surrogates back to \uXXXX; anything else is refused. */
static void put_string(jenc *e, const char *str, size_t n, int is_key)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    reserve(e, n + 2);
    e->b->buf[e->b->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') {
            run++;
        }
        if (run > i) {
            put(e, (const char *)s + i, run - i);
            i = run;
            if (i == n) {
                break;
            }
        }
        unsigned char c = s[i];
        char esc[12];
        if (c < 0x80) {
            esc[0] = '\\';
            switch (c) {
            case '"': case '\\': esc[1] = (char)c; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                put(e, esc, 6);
                i++;
                continue;
            }
            put(e, esc, 2);
            i++;
            continue;
        }
        long sur;
        int k = utf8_len(s + i, n - i, &sur);
        if (k == 0) {
            refuse(e, "%s is not UTF-8 at byte %zu", is_key ? "key" : "string", i);
        }
        if (sur < 0) {
            put(e, (const char *)s + i, (size_t)k);
            i += (size_t)k;
            continue;
        }
        /* A high surrogate followed by a low one is not WTF-8: as escapes
         * the two would read back as one character. */
        long next;
        if (sur <= 0xDBFF && n - i >= 6 && utf8_len(s + i + 3, n - i - 3, &next) == 3 &&
            next >= 0xDC00) {
            refuse(e, "%s holds a surrogate pair as two 3-byte sequences at byte %zu "
                   "(not UTF-8 or WTF-8)", is_key ? "key" : "string", i);
        }
        esc[0] = '\\';
        esc[1] = 'u';
        esc[2] = hex[(sur >> 12) & 15];
        esc[3] = hex[(sur >> 8) & 15];
        esc[4] = hex[(sur >> 4) & 15];
        esc[5] = hex[sur & 15];
        put(e, esc, 6);
        i += 3;
    }
    put(e, "\"", 1);
}

static int kref_cmp(const void *a, const void *b)
{
    const kref *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

static void enc_value(jenc *e, int idx);

static void enter(jenc *e, const char *key, size_t klen, lua_Integer index)
{
    pathel *pe = &e->b->path[e->depth]; /* room: enc_table grew it */
    pe->key = key;
    pe->klen = klen;
    pe->index = index;
}

static void enc_array(jenc *e, int t, lua_Integer n)
{
    put(e, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1) {
            put(e, ",", 1);
        }
        enter(e, NULL, 0, i);
        lua_rawgeti(e->L, t, i);
        enc_value(e, lua_gettop(e->L));
        lua_pop(e->L, 1);
    }
    put(e, "]", 1);
}

static void enc_object(jenc *e, int t, size_t count)
{
    lua_State *L = e->L;
    jbox *b = e->b;
    if (count == 0) {
        put(e, "{}", 2);
        return;
    }
    size_t first = b->nkeys;
    if (b->capkeys - b->nkeys < count) {
        size_t cap = b->capkeys * 2 > b->nkeys + count ? b->capkeys * 2 : b->nkeys + count + 16;
        kref *k = realloc(b->keys, cap * sizeof *k);
        if (k == NULL) {
            luaL_error(L, "json: not enough memory for %I keys", (lua_Integer)cap);
        }
        b->keys = k;
        b->capkeys = cap;
    }
    /* The key strings stay valid: they are keys of t, which is on the
     * stack and not changed while it is encoded. */
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        kref *k = &b->keys[b->nkeys++];
        k->s = lua_tolstring(L, -2, &k->n); /* string keys only: checked */
        lua_pop(L, 1);
    }
    kref *keys = b->keys + first;
    if (count <= 12) {
        for (size_t i = 1; i < count; i++) {
            kref k = keys[i];
            size_t j = i;
            while (j > 0 && kref_cmp(&keys[j - 1], &k) > 0) {
                keys[j] = keys[j - 1];
                j--;
            }
            keys[j] = k;
        }
    } else {
        qsort(keys, count, sizeof *keys, kref_cmp);
    }
    put(e, "{", 1);
    for (size_t i = 0; i < count; i++) {
        /* b->keys may move when a nested object grows it. */
        kref k = b->keys[first + i];
        if (i > 0) {
            put(e, ",", 1);
        }
        enter(e, k.s, k.n, 0);
        put_string(e, k.s, k.n, 1);
        put(e, ":", 1);
        lua_pushlstring(L, k.s, k.n);
        lua_rawget(L, t);
        enc_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
    put(e, "}", 1);
    b->nkeys = first;
}

static void enc_table(jenc *e, int t)
{
    lua_State *L = e->L;
    const void *self = lua_topointer(L, t);
    jbox *b = e->b;
    for (int i = 1; i <= e->depth; i++) {
        if (b->path[i].table == self) {
            refuse(e, "cycle: the table contains itself");
        }
    }
    if (e->depth >= DEPTH) {
        refuse(e, "nesting deeper than %d levels", DEPTH);
    }
    if ((size_t)e->depth + 2 > b->cappath) {
        size_t cap = b->cappath * 2;
        pathel *np = malloc(cap * sizeof *np);
        if (np == NULL) {
            luaL_error(L, "json: not enough memory");
        }
        memcpy(np, b->path, b->cappath * sizeof *np);
        if (b->path != b->inl_path) {
            free(b->path);
        }
        b->path = np;
        b->cappath = cap;
    }
    if (!lua_checkstack(L, 6)) {
        refuse(e, "nesting too deep for the Lua stack");
    }
    int mark = 0; /* 1 array, 2 object (our metatables) */
    if (lua_getmetatable(L, t)) {
        mark = lua_rawequal(L, -1, e->arr_mt) ? 1 : lua_rawequal(L, -1, e->obj_mt) ? 2 : 0;
        lua_pop(L, 1);
    }
    size_t nstr = 0, nidx = 0, nother = 0;
    lua_Integer maxi = 0;
    char bad[96] = "";
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        int kt = lua_type(L, -1);
        if (kt == LUA_TSTRING) {
            nstr++;
            continue;
        }
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            nidx++;
            maxi = k > maxi ? k : maxi;
            continue;
        }
        if (nother++ == 0) {
            if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
                snprintf(bad, sizeof bad, "key %lld is not an array index (1..n)",
                         (long long)lua_tointeger(L, -1));
            } else if (kt == LUA_TNUMBER) {
                snprintf(bad, sizeof bad, "key %.17g is neither a string nor an array index",
                         (double)lua_tonumber(L, -1));
            } else {
                snprintf(bad, sizeof bad, "a %s key cannot be a JSON object key",
                         lua_typename(L, kt));
            }
        }
    }
    if (nother > 0) {
        refuse(e, "%s", bad);
    }
    int as_array;
    if (mark == 1) {
        if (nstr > 0) {
            refuse(e, "a table marked as an array has string keys");
        }
        as_array = 1;
    } else if (mark == 2) {
        if (nidx > 0) {
            refuse(e, "a table marked as an object has integer keys (JSON keys are strings)");
        }
        as_array = 0;
    } else if (nstr > 0 && nidx > 0) {
        refuse(e, "table mixes string keys and array indices");
    } else {
        as_array = nidx > 0; /* empty: an object (tapestore.array() for []) */
    }
    if (as_array && (lua_Integer)nidx != maxi) {
        /* Some index in 1..nidx+1 is missing: report the first. */
        lua_Integer miss = 1;
        for (; miss <= (lua_Integer)nidx; miss++) {
            int absent = lua_rawgeti(L, t, miss) == LUA_TNIL;
            lua_pop(L, 1);
            if (absent) {
                break;
            }
        }
        refuse(e, "sparse array: index %lld is missing (largest index %lld)", (long long)miss,
               (long long)maxi);
    }
    e->depth++;
    b->path[e->depth].table = self; /* key/index: set by enter */
    if (as_array) {
        enc_array(e, t, maxi);
    } else {
        enc_object(e, t, nstr);
    }
    e->depth--;
}

static void enc_value(jenc *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(e, s, n, 0);
        return;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            put_integer(e, lua_tointeger(L, idx));
        } else {
            put_float(e, (double)lua_tonumber(L, idx));
        }
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) {
            put(e, "true", 4);
        } else {
            put(e, "false", 5);
        }
        return;
    case LUA_TTABLE:
        enc_table(e, idx);
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            put(e, "null", 4);
            return;
        }
        refuse(e, "cannot encode a light userdata other than tapestore.null");
        return;
    case LUA_TNIL:
        refuse(e, "cannot encode nil (tapestore.null is JSON null)");
        return;
    case LUA_TUSERDATA:
        if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) {
            refuse(e, "cannot encode a userdata (%s)", lua_tostring(L, -1));
        }
        refuse(e, "cannot encode a userdata");
        return;
    default:
        refuse(e, "cannot encode a %s", luaL_typename(L, idx));
        return;
    }
}

void tape_lua_json_encode(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, "json encode");
    jenc e;
    e.L = L;
    e.depth = 0;
    e.dp = lua_getlocaledecpoint();
    push_mt(L, ARRAY_MT);
    e.arr_mt = lua_gettop(L);
    push_mt(L, OBJECT_MT);
    e.obj_mt = lua_gettop(L);
    jbox *b = lua_newuserdatauv(L, sizeof(jbox), 0);
    b->buf = b->inl_buf;
    b->len = 0;
    b->cap = BOX_TEXT;
    b->keys = NULL;
    b->nkeys = b->capkeys = 0;
    b->path = b->inl_path;
    b->cappath = BOX_PATH;
    if (luaL_newmetatable(L, BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    e.b = b;
    enc_value(&e, idx);
    lua_pushlstring(L, b->buf, b->len);
    box_release(b);
    lua_replace(L, e.arr_mt); /* the text where the first metatable was */
    lua_pop(L, 2);
}

/* ================================================================ Lua API */

/* tapestore.json_decode(text) -> value | nil, message, code */
static int l_json_decode(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING) {
        return luaL_typeerror(L, 1, "string");
    }
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    if (tape_lua_json_decode(L, s, n)) {
        return 1;
    }
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushinteger(L, TAPE_EINVAL);
    return 3;
}

/* tapestore.json_encode(value) -> text (raises if value is not JSON) */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    tape_lua_json_encode(L, 1);
    return 1;
}

/* array([t]) / object([t]): mark t (or a new table) and return it. */
static int mark(lua_State *L, const char *name, const char *fn)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (lua_getmetatable(L, 1)) {
            push_mt(L, ARRAY_MT);
            push_mt(L, OBJECT_MT);
            int ours = lua_rawequal(L, -3, -2) || lua_rawequal(L, -3, -1);
            lua_pop(L, 3);
            if (!ours) {
                return luaL_error(L, "tapestore.%s: the table already has a metatable "
                                  "(not a JSON array or object mark)", fn);
            }
        }
    }
    push_mt(L, name);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_array(lua_State *L)
{
    return mark(L, ARRAY_MT, "array");
}

static int l_object(lua_State *L)
{
    return mark(L, OBJECT_MT, "object");
}

void tape_lua_json_open(lua_State *L, int module_idx)
{
    module_idx = lua_absindex(L, module_idx);
    static const luaL_Reg fns[] = {
        {"json_decode", l_json_decode},
        {"json_encode", l_json_encode},
        {"array", l_array},
        {"object", l_object},
        {NULL, NULL},
    };
    for (const luaL_Reg *r = fns; r->name != NULL; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, module_idx, r->name);
    }
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, module_idx, "null");
    push_mt(L, ARRAY_MT);
    push_mt(L, OBJECT_MT);
    lua_pop(L, 2);
}
