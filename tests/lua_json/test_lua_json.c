/*
 * test_lua_json.c - the Lua binding's JSON codec (bindings/lua/tape_lua_json.c)
 * in an embedded Lua 5.4 state.
 *
 *   test_lua_json SPEC.lua
 *
 * With TAPE_TEST_LOCALE set (ctest lua_json_locale: a locale whose decimal
 * point is a comma, built with localedef), the whole run happens under that
 * C locale, and the spec's global COMMA_LOCALE is true.
 *
 * The C part checks what only C can see (input that is not NUL-terminated,
 * the stack after a failed decode, no raise without a protected call); the
 * Lua spec checks the values, texts and messages. The spec gets the module
 * table as the global `tapestore` (json_decode, json_encode, null, array,
 * object) plus `core_accepts(text)`, which asks the core whether it takes
 * text as a frame message, so both sides are held to the same inputs.
 * Prints TAP; exits non-zero if anything failed.
 */
#include "tape_lua.h"

#include <locale.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static int checks;

static void ok(int cond, const char *what)
{
    checks++;
    if (!cond) {
        failures++;
    }
    printf("%s %d - C: %s\n", cond ? "ok" : "not ok", checks, what);
}

static int panic(lua_State *L)
{
    fprintf(stderr, "Lua raised outside a protected call: %s\n", lua_tostring(L, -1));
    abort();
}

/* core_accepts(text) -> true | false, message: tape_append_frame on a new
 * tape with text as the message of a plain frame. */
static int l_core_accepts(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    tape *t = NULL;
    if (tape_new(&t, NULL) != TAPE_OK) {
        return luaL_error(L, "tape_new: %s", tape_errmsg());
    }
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = s;
    d.message_len = n;
    /* message_len 0 means "use strlen": the empty text stays empty. */
    int rc = tape_append_frame(NULL, t, &d);
    tape_free(t);
    lua_pushboolean(L, rc == TAPE_OK);
    lua_pushstring(L, rc == TAPE_OK ? "" : tape_errmsg());
    return 2;
}

/* decode s[0..n) where s is a malloc'd block of exactly n bytes. */
static int decode_exact(lua_State *L, const char *text, size_t n)
{
    char *s = malloc(n ? n : 1);
    if (s == NULL) {
        abort();
    }
    memcpy(s, text, n);
    int r = tape_lua_json_decode(L, s, n);
    free(s);
    return r;
}

static void c_checks(lua_State *L)
{
    int top = lua_gettop(L);

    /* The bytes after n are not part of the text. */
    const char *digits = "123";
    ok(tape_lua_json_decode(L, digits, 2) == 1 && lua_isinteger(L, -1) &&
           lua_tointeger(L, -1) == 12,
       "decode(\"123\", 2) reads 12, not 123");
    lua_settop(L, top);
    ok(tape_lua_json_decode(L, "[1]", 2) == 0 && lua_type(L, -1) == LUA_TSTRING &&
           strstr(lua_tostring(L, -1), "byte 2: unexpected end of text") != NULL,
       "decode(\"[1]\", 2) is a truncated array");
    lua_settop(L, top);
    ok(tape_lua_json_decode(L, "\"ab\"", 3) == 0 &&
           strcmp(lua_tostring(L, -1), "json: byte 0: unterminated string") == 0,
       "decode of a string whose closing quote is past n fails");
    lua_settop(L, top);
    ok(tape_lua_json_decode(L, "\"a\\\"", 3) == 0 &&
           strcmp(lua_tostring(L, -1), "json: byte 0: unterminated string") == 0,
       "a backslash as the last byte before n does not step past n");
    lua_settop(L, top);

    ok(tape_lua_json_decode(L, NULL, 5) == 0 &&
           strcmp(lua_tostring(L, -1), "json: byte 0: unexpected end of text (expected a value)") == 0,
       "decode(NULL) is the empty text's error");
    lua_settop(L, top);

    /* Exact-size blocks: ASan reports any read past n. */
    static const char *const texts[] = {
        "tru", "nul", "fals", "-", "1e", "1e+", "\"\\u12", "\"\\ud800\\u", "{\"a\"",
        "{\"a\":", "[", "{", "\"\\", "0.", "-0.5e-3", "123456789012345678901234567890",
    };
    int clean = 1;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int r = decode_exact(L, texts[i], strlen(texts[i]));
        clean &= lua_gettop(L) == top + 1 && (r == 1 || lua_type(L, -1) == LUA_TSTRING);
        lua_settop(L, top);
    }
    ok(clean, "truncated texts in exact-size blocks: one result, no over-read");

    /* A failed decode leaves exactly its message and raises nothing (a
     * raise here would reach the panic handler: no protected call). */
    lua_pushinteger(L, 42);
    int r = tape_lua_json_decode(L, "{\"a\":[1,2,{\"b\":", 15);
    ok(r == 0 && lua_gettop(L) == top + 2 && lua_tointeger(L, -2) == 42 &&
           lua_type(L, -1) == LUA_TSTRING,
       "a failed decode pushes one message and leaves the stack below alone");
    lua_settop(L, top);
    r = tape_lua_json_decode(L, "{\"a\":[1,2,{\"b\":3}]}", 19);
    ok(r == 1 && lua_gettop(L) == top + 1 && lua_istable(L, -1), "a decode pushes one value");
    lua_settop(L, top);

    /* Encoding from C: the text is pushed, the stack otherwise unchanged. */
    lua_pushinteger(L, 7);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "b");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "a");
    tape_lua_json_encode(L, -1);
    ok(lua_gettop(L) == top + 3 && strcmp(lua_tostring(L, -1), "{\"a\":true,\"b\":1}") == 0 &&
           lua_tointeger(L, -3) == 7,
       "tape_lua_json_encode pushes the text of the value at idx");
    lua_settop(L, top);
    lua_pushinteger(L, 5);
    tape_lua_json_encode(L, top + 1);
    ok(lua_gettop(L) == top + 2 && strcmp(lua_tostring(L, -1), "5") == 0,
       "tape_lua_json_encode with an absolute index");
    lua_settop(L, top);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SPEC.lua\n", argv[0]);
        return 2;
    }
    const char *loc = getenv("TAPE_TEST_LOCALE");
    if (loc != NULL) {
        /* The codec must not care: JSON's decimal point is always '.'. */
        ok(setlocale(LC_ALL, loc) != NULL && localeconv()->decimal_point[0] == ',',
           "TAPE_TEST_LOCALE is a locale whose decimal point is a comma");
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        return 2;
    }
    lua_atpanic(L, panic);
    luaL_openlibs(L);
    lua_newtable(L);
    tape_lua_json_open(L, -1);
    lua_pushinteger(L, TAPE_EINVAL);
    lua_setfield(L, -2, "EINVAL");
    lua_setglobal(L, "tapestore");
    lua_pushboolean(L, loc != NULL);
    lua_setglobal(L, "COMMA_LOCALE");
    lua_pushcfunction(L, l_core_accepts);
    lua_setglobal(L, "core_accepts");

    c_checks(L);

    /* The spec numbers its own checks after ours. */
    lua_pushinteger(L, checks);
    lua_setglobal(L, "C_CHECKS");
    if (luaL_dofile(L, argv[1]) != LUA_OK) {
        printf("not ok - %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    int spec_failures = (int)lua_tointeger(L, -1);
    lua_close(L);
    printf("# C checks: %d, failed %d; spec failures: %d\n", checks, failures, spec_failures);
    return failures == 0 && spec_failures == 0 ? 0 : 1;
}
