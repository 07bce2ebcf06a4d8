/*
 * lua_json_bench.c - the Lua binding's JSON decoder against lua-cjson
 * (docs/benchmarks.md, "The Lua JSON codec").
 *
 *   tape-bench-lua-json [--quick] [--frames N] [--cjson PATH]
 *
 * Builds a tape of realistic MCP messages (initialize, tools/list with
 * schemas, tools/call with nested arguments and results, notifications,
 * errors; from 100 bytes to about 20 KiB), then in one embedded Lua state
 * decodes every frame's message (tape_frame_message) with
 * tapestore.json_decode and, as the baseline, with lua-cjson's
 * cjson.decode, each from a Lua loop over the same strings. Prints one JSON
 * line per figure: decoding (goal: at least 0.8x cjson's speed) and, for
 * information, encoding the decoded values back (ours sorts keys).
 *
 * --quick (ctest: bench_lua_json_quick) uses 2,000 frames and one round:
 * it checks that the program runs and that both decoders agree on every
 * message (numbers compared as numbers, null as null), not the timing.
 */
#include <tapestore/tapestore.h>

#include "tape_lua.h"

#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *what, const char *why)
{
    fprintf(stderr, "tape-bench-lua-json: %s: %s\n", what, why);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc != TAPE_OK) {
        die(what, tape_errmsg());
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- messages */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            die("vsnprintf", "failed");
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        if ((b->p = realloc(b->p, b->cap)) == NULL) {
            die("realloc", "out of memory");
        }
    }
}

/* A deterministic pseudo-random stream, so every run decodes the same tape. */
static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const words[] = {"alpha", "beta", "gamma", "delta", "file", "path",
                                    "query", "result", "user", "repo", "branch", "commit",
                                    "weather", "city", "forecast", "temperature"};
#define NWORDS (sizeof words / sizeof *words)

static void msg_initialize(sbuf *b, int id)
{
    sb_add(b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"initialize\",\"params\":{"
              "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{\"roots\":{\"listChanged\":"
              "true},\"sampling\":{}},\"clientInfo\":{\"name\":\"mcp-inspector\",\"version\":"
              "\"0.9.%d\"}}}", id, id % 10);
}

static void msg_initialize_result(sbuf *b, int id)
{
    sb_add(b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{\"protocolVersion\":\"2025-03-26\","
              "\"capabilities\":{\"tools\":{\"listChanged\":true},\"resources\":{\"subscribe\":"
              "true,\"listChanged\":true},\"prompts\":{},\"logging\":{}},\"serverInfo\":{\"name\":"
              "\"example-servers/everything\",\"version\":\"1.0.0\"},\"instructions\":null}}", id);
}

/* tools/list result: n tools, each with an input schema. */
static void msg_tools_list_result(sbuf *b, int id, int n)
{
    sb_add(b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{\"tools\":[", id);
    for (int i = 0; i < n; i++) {
        const char *w = words[rnd(NWORDS)];
        sb_add(b, "%s{\"name\":\"%s_%d\",\"description\":\"Looks up the %s for a given %s and "
                  "returns it as text, with \\\"quotes\\\" and a caf\\u00e9.\",\"inputSchema\":"
                  "{\"type\":\"object\",\"properties\":{\"%s\":{\"type\":\"string\","
                  "\"description\":\"The %s\"},\"limit\":{\"type\":\"integer\",\"minimum\":1,"
                  "\"maximum\":100,\"default\":10},\"verbose\":{\"type\":\"boolean\"},"
                  "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
                  "\"required\":[\"%s\"],\"additionalProperties\":false}}",
               i ? "," : "", w, i, w, words[rnd(NWORDS)], w, w, w);
    }
    sb_add(b, "]}}");
}

static void msg_tools_call(sbuf *b, int id)
{
    sb_add(b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"%s_%u\",\"arguments\":{\"%s\":\"%s/%s\",\"limit\":%u,\"verbose\":%s,\"tags\":"
              "[\"prod\",\"eu-west-1\"],\"ratio\":%u.%u,\"filter\":{\"since\":1733000000%03u,"
              "\"nested\":{\"a\":[1,2,3],\"b\":null}}},\"_meta\":{\"progressToken\":%d}}}",
           id, words[rnd(NWORDS)], rnd(20), words[rnd(NWORDS)], words[rnd(NWORDS)],
           words[rnd(NWORDS)], 1 + rnd(100), rnd(2) ? "true" : "false", rnd(10), rnd(1000),
           rnd(1000), id);
}

/* tools/call result: text content of `lines` lines. */
static void msg_tools_call_result(sbuf *b, int id, int lines)
{
    sb_add(b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{\"content\":[{\"type\":\"text\","
              "\"text\":\"", id);
    for (int i = 0; i < lines; i++) {
        sb_add(b, "%s %s: %u items in %s, last updated %u ms ago\\n", words[rnd(NWORDS)],
               words[rnd(NWORDS)], rnd(10000), words[rnd(NWORDS)], rnd(100000));
    }
    sb_add(b, "\"},{\"type\":\"resource\",\"resource\":{\"uri\":\"file:///srv/%s/%u.json\","
              "\"mimeType\":\"application/json\",\"text\":\"{\\\"ok\\\":true}\"}}],"
              "\"structuredContent\":{\"count\":%u,\"items\":[",
           words[rnd(NWORDS)], rnd(1000), (unsigned)lines);
    for (int i = 0; i < lines && i < 40; i++) {
        sb_add(b, "%s{\"id\":%u,\"score\":%u.%02u,\"label\":\"%s\",\"seen\":%s}", i ? "," : "",
               rnd(1u << 30), rnd(100), rnd(100), words[rnd(NWORDS)], rnd(2) ? "true" : "null");
    }
    sb_add(b, "]},\"isError\":false}}");
}

static void msg_notification(sbuf *b, int k)
{
    if (k % 2 == 0) {
        sb_add(b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
                  "\"progressToken\":%d,\"progress\":%u,\"total\":100,\"message\":\"step %u\"}}",
               k, rnd(100), rnd(10));
    } else {
        sb_add(b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{"
                  "\"level\":\"info\",\"logger\":\"%s\",\"data\":{\"event\":\"%s\",\"elapsed_ms\":"
                  "%u.%u}}}", words[rnd(NWORDS)], words[rnd(NWORDS)], rnd(1000), rnd(10));
    }
}

static void msg_error(sbuf *b, int id)
{
    sb_add(b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"error\":{\"code\":-32602,\"message\":"
              "\"Invalid params: missing required argument '%s'\",\"data\":{\"argument\":\"%s\","
              "\"received\":{}}}}", id, words[rnd(NWORDS)], words[rnd(NWORDS)]);
}

static void add(tape *t, int dir, sbuf *b)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = dir;
    d.message = b->p;
    d.message_len = b->len;
    check(tape_append_frame(NULL, t, &d), "tape_append_frame");
    b->len = 0;
}

/* A session's worth of traffic, repeated until the tape has `frames`. */
static tape *build_tape(int frames)
{
    tape *t = NULL;
    check(tape_new(&t, NULL), "tape_new");
    sbuf b = {malloc(4096), 0, 4096};
    if (b.p == NULL) {
        die("malloc", "out of memory");
    }
    int id = 1;
    const int c2s = TAPE_DIR_CLIENT_TO_SERVER, s2c = TAPE_DIR_SERVER_TO_CLIENT;
    while ((int)tape_frame_count(t) < frames) {
        int left = frames - (int)tape_frame_count(t);
        int step = rnd(20);
        if (step == 0 && left >= 2) {
            msg_initialize(&b, id);
            add(t, c2s, &b);
            msg_initialize_result(&b, id++);
            add(t, s2c, &b);
        } else if (step == 1 && left >= 2) {
            sb_add(&b, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/list\"}", id);
            add(t, c2s, &b);
            msg_tools_list_result(&b, id++, 5 + (int)rnd(40));
            add(t, s2c, &b);
        } else if (step < 5) {
            msg_notification(&b, id);
            add(t, rnd(3) ? s2c : c2s, &b);
        } else if (step == 5 && left >= 2) {
            msg_tools_call(&b, id);
            add(t, c2s, &b);
            msg_error(&b, id++);
            add(t, s2c, &b);
        } else if (left >= 2) {
            msg_tools_call(&b, id);
            add(t, c2s, &b);
            msg_tools_call_result(&b, id++, 1 + (int)rnd(step == 6 ? 200 : 12));
            add(t, s2c, &b);
        } else {
            msg_notification(&b, id);
            add(t, s2c, &b);
        }
    }
    free(b.p);
    return t;
}

/* ---------------------------------------------------------------- Lua side */

/* Timed loops and the agreement check, in Lua: both decoders are called
 * the way a script calls them. */
static const char *const lua_code =
    "local ours, cjson, msgs = ...\n"
    "local function decode_all(decode)\n"
    "  local out = {}\n"
    "  for i = 1, #msgs do out[i] = decode(msgs[i]) end\n"
    "  return out\n"
    "end\n"
    "local function encode_all(encode, values)\n"
    "  local n = 0\n"
    "  for i = 1, #values do n = n + #encode(values[i]) end\n"
    "  return n\n"
    "end\n"
    "-- Same JSON value: numbers by value (cjson's are all floats), null as\n"
    "-- null (both are a NULL light userdata), tables by their keys.\n"
    "local function agree(a, b, path)\n"
    "  if type(a) == 'number' and type(b) == 'number' then\n"
    "    if a ~= b then error(path .. ': ' .. a .. ' vs ' .. b) end\n"
    "    return\n"
    "  end\n"
    "  if type(a) ~= type(b) then error(path .. ': ' .. type(a) .. ' vs ' .. type(b)) end\n"
    "  if type(a) == 'table' then\n"
    "    for k, v in pairs(a) do agree(v, b[k], path .. '.' .. tostring(k)) end\n"
    "    for k in pairs(b) do if a[k] == nil then error(path .. ': extra ' .. k) end end\n"
    "  elseif a ~= b then error(path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b)) end\n"
    "end\n"
    "return {\n"
    "  decode_ours = function() return decode_all(ours.json_decode) end,\n"
    "  decode_cjson = function() return decode_all(cjson.decode) end,\n"
    "  encode_ours = function(v) return encode_all(ours.json_encode, v) end,\n"
    "  encode_cjson = function(v) return encode_all(cjson.encode, v) end,\n"
    "  check = function()\n"
    "    local a, b = decode_all(ours.json_decode), decode_all(cjson.decode)\n"
    "    local ints = 0\n"
    "    for i = 1, #msgs do\n"
    "      agree(a[i], b[i], 'message ' .. i)\n"
    "      local back = ours.json_decode(ours.json_encode(a[i]))\n"
    "      agree(back, a[i], 'message ' .. i .. ' re-encoded')\n"
    "      if math.type(a[i].id) == 'integer' then ints = ints + 1 end\n"
    "    end\n"
    "    return ints\n"
    "  end,\n"
    "}\n";

static void call(lua_State *L, int nargs, int nres, const char *what)
{
    if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
        die(what, lua_tostring(L, -1));
    }
}

/* Best wall time of `rounds` calls of field fn of the table at -1 (with
 * the value at arg_idx as argument if non-zero); the last result is left
 * on the stack. */
static double best_of(lua_State *L, int tbl, const char *fn, int arg_idx, int rounds)
{
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        lua_getfield(L, tbl, fn);
        if (arg_idx != 0) {
            lua_pushvalue(L, arg_idx);
        }
        lua_gc(L, LUA_GCCOLLECT);
        double t0 = now_s();
        call(L, arg_idx != 0, 1, fn);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
        if (r + 1 < rounds) {
            lua_pop(L, 1);
        }
    }
    return best;
}

static void emit(const char *figure, double mbs, const char *baseline, double base_mbs,
                 const char *goal, int met, int frames, size_t bytes)
{
    printf("{\"figure\":\"%s\",\"mb_per_s\":%.3f,\"baseline\":\"%s\",\"baseline_mb_per_s\":%.3f,"
           "\"ratio\":%.3f,\"goal\":\"%s\",\"goal_met\":%s,\"frames\":%d,\"bytes\":%zu}\n",
           figure, mbs, baseline, base_mbs, mbs / base_mbs, goal, met ? "true" : "false",
           frames, bytes);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int quick = 0, frames = 20000;
    const char *cjson_dir = "/usr/lib/x86_64-linux-gnu/lua/5.4";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            frames = 2000;
        } else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) {
            frames = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--cjson") == 0 && i + 1 < argc) {
            cjson_dir = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--quick] [--frames N] [--cjson DIR]\n", argv[0]);
            return 2;
        }
    }
    if (frames < 2) {
        die("--frames", "needs at least 2");
    }

    tape *t = build_tape(frames);
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        die("luaL_newstate", "out of memory");
    }
    luaL_openlibs(L);

    /* Debian's lua-cjson lives outside lua5.4's default cpath when Lua is
     * embedded with another prefix: look there first. */
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.so;", cjson_dir);
    lua_getfield(L, -2, "cpath");
    lua_concat(L, 2);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushstring(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        die("require \"cjson\" (apt-get install lua-cjson)", lua_tostring(L, -1));
    }
    int cjson = lua_gettop(L);

    lua_newtable(L);
    tape_lua_json_open(L, -1);
    int ours = lua_gettop(L);

    /* Every frame's message as a Lua string. */
    size_t bytes = 0;
    lua_createtable(L, frames, 0);
    int msgs = lua_gettop(L);
    for (size_t i = 0; i < tape_frame_count(t); i++) {
        size_t len = 0;
        const char *m = tape_frame_message(tape_frame_at(t, i), &len);
        if (m == NULL) {
            die("tape_frame_message", tape_errmsg());
        }
        lua_pushlstring(L, m, len);
        lua_rawseti(L, msgs, (lua_Integer)i + 1);
        bytes += len;
    }
    tape_free(t);

    if (luaL_loadstring(L, lua_code) != LUA_OK) {
        die("bench code", lua_tostring(L, -1));
    }
    lua_pushvalue(L, ours);
    lua_pushvalue(L, cjson);
    lua_pushvalue(L, msgs);
    call(L, 3, 1, "bench code");
    int fns = lua_gettop(L);

    /* Both decoders agree on every message, and ours re-encodes them. */
    lua_getfield(L, fns, "check");
    call(L, 0, 1, "check");
    lua_Integer ints = lua_tointeger(L, -1);
    lua_pop(L, 1);
    printf("# %d frames, %zu bytes of messages; decoders agree on all of them "
           "(%lld ids decoded as integers)\n", frames, bytes, (long long)ints);
    if (ints == 0) {
        die("check", "no integer id decoded as a Lua integer");
    }

    int rounds = quick ? 1 : 7;
    double mb = (double)bytes / 1e6;
    double t_ours = best_of(L, fns, "decode_ours", 0, rounds);
    int ours_values = lua_gettop(L);
    double t_cjson = best_of(L, fns, "decode_cjson", 0, rounds);
    int cjson_values = lua_gettop(L);
    double ratio = t_cjson / t_ours;
    emit("lua_json_decode", mb / t_ours, "lua_cjson_decode", mb / t_cjson, ">=0.8",
         ratio >= 0.8, frames, bytes);

    double e_ours = best_of(L, fns, "encode_ours", ours_values, rounds);
    size_t out_ours = (size_t)lua_tointeger(L, -1);
    double e_cjson = best_of(L, fns, "encode_cjson", cjson_values, rounds);
    size_t out_cjson = (size_t)lua_tointeger(L, -1);
    /* Measured on the input bytes, so both speeds count the same work. */
    emit("lua_json_encode", mb / e_ours, "lua_cjson_encode", mb / e_cjson, "info", 1, frames,
         bytes);
    printf("# encoded: ours %zu bytes (keys sorted), cjson %zu bytes\n", out_ours, out_cjson);
    lua_close(L);
    return 0;
}
