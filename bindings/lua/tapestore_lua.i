/*
 * tapestore_lua.i - the Lua module tapestore.capi (the flat C API): the
 * shared interface (../tapestore.i) with the Lua definitions it asks for.
 * Linked into tapestore.so; luaopen_tapestore sets it as tapestore.capi
 * (and package.loaded["tapestore.capi"]).
 *
 * Two things SWIG 4.1's Lua target gets wrong for us are fixed here:
 *  - it pushes every C integer with lua_pushnumber (a float in Lua 5.4) and
 *    reads them with lua_tonumber (truncating 1.5, rounding 2^53+1): the
 *    integer typemaps below push with lua_pushinteger and read with
 *    lua_tointegerx, refusing a float that is not an exact integer;
 *  - it calls into the core with the state's lock held: %exception runs
 *    every wrapped call with it released (TAPE_LUA_UNLOCKED), and the
 *    proxies' destructors release it through the thread's current state.
 * Failures (a negative TAPE_E* code) raise "<message> (TAPE_E...)": this
 * is the raw API; the hand-written module returns nil, message, code.
 */
%module capi

/* ------------------------------------------------------------ integers */
%define TAPE_LUA_INT_TYPES
    int, short, long, long long, signed char,
    unsigned int, unsigned short, unsigned long, unsigned long long, unsigned char,
    int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, size_t
%enddef

%typemap(in, checkfn="lua_isnumber") TAPE_LUA_INT_TYPES {
    int isnum_$argnum = 0;
    lua_Integer v_$argnum = lua_tointegerx(L, $input, &isnum_$argnum);
    if (!isnum_$argnum) {
        SWIG_fail_arg("$symname", $argnum, "integer");
    }
    $1 = ($1_ltype)v_$argnum;
}
%typemap(out) TAPE_LUA_INT_TYPES %{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}
%typemap(in, checkfn="lua_isnumber") const int & ($*1_ltype temp), const unsigned int & ($*1_ltype temp),
    const int64_t & ($*1_ltype temp), const uint64_t & ($*1_ltype temp), const size_t & ($*1_ltype temp) {
    int isnum_$argnum = 0;
    lua_Integer v_$argnum = lua_tointegerx(L, $input, &isnum_$argnum);
    if (!isnum_$argnum) {
        SWIG_fail_arg("$symname", $argnum, "integer");
    }
    temp = ($*1_ltype)v_$argnum;
    $1 = &temp;
}
%typemap(out) const int &, const unsigned int &, const int64_t &, const uint64_t &, const size_t &
    %{ lua_pushinteger(L, (lua_Integer)*$1); SWIG_arg++; %}
%typecheck(SWIG_TYPECHECK_INTEGER) TAPE_LUA_INT_TYPES { $1 = lua_isinteger(L, $input); }

/* ------------------------------------------------------------ what ../tapestore.i asks */
%define TAPE_SWIG_OUT(obj) SWIG_arg += (obj); %enddef
%define TAPE_SWIG_SET(obj) SWIG_arg += (obj); %enddef
%define TAPE_SWIG_BAD_ARG(what) SWIG_fail_arg("$symname", $argnum, what) %enddef

%{
#include "tape_lua.h"
#include <stdlib.h>
#include <string.h>
/* Each of these pushes its value and returns the number of values pushed. */
static int tape_swig_push_ptr(lua_State *L, void *p, swig_type_info *desc, int own)
{
    SWIG_NewPointerObj(L, p, desc, own ? 1 : 0);
    return 1;
}
static int tape_swig_push_str(lua_State *L, const char *s)
{
    lua_pushstring(L, s); /* NULL: nil */
    return 1;
}
static int tape_swig_push_int(lua_State *L, lua_Integer v)
{
    lua_pushinteger(L, v);
    return 1;
}
static int tape_swig_push_bytes(lua_State *L, const char *p, size_t n)
{
    lua_pushlstring(L, p, n);
    return 1;
}
/* A copy for %new_copy (freed by the proxy's destructor: free). */
static void *tape_swig_memdup(const void *p, size_t n)
{
    void *c = malloc(n);
    return c != NULL ? memcpy(c, p, n) : NULL;
}
#define TAPE_SWIG_PTR(p, desc, own) tape_swig_push_ptr(L, (void *)(p), (desc), (own))
#define TAPE_SWIG_STR(s) tape_swig_push_str(L, (s))
#define TAPE_SWIG_INT(v) tape_swig_push_int(L, (lua_Integer)(v))
#define TAPE_SWIG_UINT(v) tape_swig_push_int(L, (lua_Integer)(v))
#define TAPE_SWIG_I64(v) tape_swig_push_int(L, (lua_Integer)(v))
#define TAPE_SWIG_U64(v) tape_swig_push_int(L, (lua_Integer)(v))
#define TAPE_SWIG_BYTES(p, n) tape_swig_push_bytes(L, (p), (n))
#define TAPE_SWIG_VOID() 0
#define TAPE_SWIG_FAIL(code)                                                           \
    do {                                                                               \
        int code_ = (code);                                                            \
        lua_pushfstring(L, "%s (%s)", tape_errcode() == code_ ? tape_errmsg() : "failed", \
                        tape_strerror(code_));                                         \
        SWIG_fail;                                                                     \
    } while (0)
#define TAPE_SWIG_UNLOCKED(stmt) TAPE_LUA_UNLOCKED(tape_lua_state_of(L), stmt)
#define TAPE_SWIG_AS_BYTES(obj, p, n) \
    (lua_type(L, (obj)) == LUA_TSTRING ? (*(p) = lua_tolstring(L, (obj), (n)), 0) : 1)

/* The proxies' destructors (the %extend ~T() of ../tapestore.i) run from
 * __gc with no L at hand and call the type's _free: these macros release
 * the lock of the state this thread runs around it. Inside a wrapped call
 * (already released) the thread holds no state, so the call runs as is. */
#define TAPE_LUA_CAPI_FREE(call)                                 \
    do {                                                         \
        tape_lua_state *S_ = tape_lua_state_current();           \
        if (S_ != NULL) {                                        \
            TAPE_LUA_UNLOCKED(S_, call);                         \
        } else {                                                 \
            call;                                                \
        }                                                        \
    } while (0)
#define tape_free(x) TAPE_LUA_CAPI_FREE(tape_free(x))
#define tape_entry_free(x) TAPE_LUA_CAPI_FREE(tape_entry_free(x))
#define tape_query_free(x) TAPE_LUA_CAPI_FREE(tape_query_free(x))
#define tape_result_free(x) TAPE_LUA_CAPI_FREE(tape_result_free(x))
#define tape_config_free(x) TAPE_LUA_CAPI_FREE(tape_config_free(x))
#define tape_registry_free(x) TAPE_LUA_CAPI_FREE(tape_registry_free(x))
#define tape_provider_info_free(x) TAPE_LUA_CAPI_FREE(tape_provider_info_free(x))
#define tape_provider_list_free(x) TAPE_LUA_CAPI_FREE(tape_provider_list_free(x))
#define tape_store_free(x) TAPE_LUA_CAPI_FREE(tape_store_free(x))
#define tape_writer_free(x) TAPE_LUA_CAPI_FREE(tape_writer_free(x))
#define tape_frame_iter_free(x) TAPE_LUA_CAPI_FREE(tape_frame_iter_free(x))
/* The SWIG entry point, called by luaopen_tapestore. */
#undef SWIG_init
#define SWIG_init luaopen_tapestore_capi
%}
%define %new_copy(val, Type) ((Type *)tape_swig_memdup(&(val), sizeof(Type))) %enddef

/* Every wrapped call runs with the lock released. */
%exception {
    TAPE_LUA_UNLOCKED(tape_lua_state_of(L), $action);
}

/* Functions that consume their object (the _free functions and
 * tape_store_close): the proxy is disowned first, so its collection does
 * not free the object a second time. Each is replaced by a wrapper of the
 * same Lua name whose parameter carries SWIG's DISOWN typemap. */
%define TAPE_LUA_CONSUMING(TYPE, FN)
%ignore FN;
%apply SWIGTYPE *DISOWN { TYPE *consumed_ };
%rename(FN) tape_lua_capi_##FN;
%inline %{
static void tape_lua_capi_##FN(TYPE *consumed_) { FN(consumed_); }
%}
%enddef
TAPE_LUA_CONSUMING(tape, tape_free)
TAPE_LUA_CONSUMING(tape_entry, tape_entry_free)
TAPE_LUA_CONSUMING(tape_query, tape_query_free)
TAPE_LUA_CONSUMING(tape_result, tape_result_free)
TAPE_LUA_CONSUMING(tape_config, tape_config_free)
TAPE_LUA_CONSUMING(tape_registry, tape_registry_free)
TAPE_LUA_CONSUMING(tape_provider_info, tape_provider_info_free)
TAPE_LUA_CONSUMING(tape_provider_list, tape_provider_list_free)
TAPE_LUA_CONSUMING(tape_store, tape_store_free)
TAPE_LUA_CONSUMING(tape_writer, tape_writer_free)
TAPE_LUA_CONSUMING(tape_frame_iter, tape_frame_iter_free)
%ignore tape_store_close;
%apply SWIGTYPE *DISOWN { tape_store *closed_ };
%rename(tape_store_close) tape_lua_capi_store_close;

%include "../tapestore.i"

TAPE_RC(tape_lua_capi_store_close)
%inline %{
static int tape_lua_capi_store_close(tape_store *closed_) { return tape_store_close(closed_); }
%}

/* TAPE_SEQ_END is a cast SWIG does not evaluate (and its macro would
 * rewrite the name): given as a constant of its value. long: 64 bits on
 * the LP64 targets we build (SWIG's Lua target makes long long a string). */
#undef TAPE_SEQ_END
%constant long TAPE_SEQ_END = INT64_MAX;
