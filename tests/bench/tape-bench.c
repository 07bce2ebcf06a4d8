/*
 * tape-bench.c - throughput and latency figures of tapestore, each next to
 * a baseline measured in the same run on the same data (the machine's own
 * limit for that kind of work), so the ratio means something on any machine.
 *
 * Output: one JSON object per line and figure on stdout; progress and
 * errors on stderr. Timings are never asserted here: the goal is reported
 * alongside ("goal_met"), judging is left to the reader (docs/benchmarks.md).
 *
 *   tape-bench [--quick] [--size N]
 *
 * N is the number of entries/tapes of the matcher figures (default
 * 100000); the codec tape has N/5 frames (default 20000). --quick uses
 * N = 5000 and shorter timing loops (for CI: a few seconds).
 */
#include <tapestore/provider.h>
#include <tapestore/tapestore.h>

#include "internal.h" /* tape__query_run: linked from tapestore_internal */

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_SIZE 100000
#define QUICK_SIZE 5000
#define PROVIDER_COUNT 1000

/* ------------------------------------------------------------ utilities */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tape-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Every library call of the benchmark must succeed: a failure means the
 * figure would be meaningless, so stop with the library's message. */
static void check(int rc, const char *what)
{
    if (rc != TAPE_OK) {
        die("%s failed: %s (%s)", what, tape_strerror(rc), tape_errmsg());
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL) {
        die("out of memory (%zu bytes)", n);
    }
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A small deterministic generator: runs are comparable with each other. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Timing settings: each measured operation and its baseline are run
 * alternately (so drift such as frequency scaling hits both alike) at
 * least `reps` times each and until each has used `min_s` seconds; the
 * best (smallest) time is kept, the usual estimate of the undisturbed
 * cost. */
typedef struct timing {
    int reps;
    double min_s;
} timing;

typedef void (*run_fn)(void *ctx);

static double time_once(run_fn fn, void *ctx)
{
    double t0 = now_s();
    fn(ctx);
    double t = now_s() - t0;
    return t > 1e-9 ? t : 1e-9; /* never divide by zero on a coarse clock */
}

/* Best seconds per call of a (measured) and b (baseline). */
static void time_pair(double *best_a, double *best_b, const timing *tm, run_fn a, void *ctx_a,
                      run_fn b, void *ctx_b)
{
    double total_a = 0, total_b = 0;
    *best_a = *best_b = 1e300;
    a(ctx_a); /* warm up caches and allocator once */
    b(ctx_b);
    for (int i = 0; i < tm->reps || total_a < tm->min_s || total_b < tm->min_s; i++) {
        double ta = time_once(a, ctx_a);
        double tb = time_once(b, ctx_b);
        total_a += ta;
        total_b += tb;
        if (ta < *best_a) *best_a = ta;
        if (tb < *best_b) *best_b = tb;
        if (i > 100000) {
            break;
        }
    }
}

static const char *yes_no(int ok)
{
    return ok ? "true" : "false";
}

/* -------------------------------------------------- 1. provider lookup */

static int dummy_validate(void *ud, const tape_config *c)
{
    (void)ud;
    (void)c;
    return TAPE_OK;
}

/* The benchmark only looks providers up; nothing is ever created. */
static int dummy_create(const tape_backend_ops **ops, void **self, void *ud,
                        const tape_config *c)
{
    (void)ops;
    (void)self;
    (void)ud;
    (void)c;
    return tape_error_set(TAPE_EUNSUPPORTED, "bench provider creates no backend");
}

typedef struct find_ctx {
    tape_registry *reg;
    char **names;       /* lookup order: a shuffled permutation */
    size_t n_names;
    size_t batch;       /* lookups per timed call */
} find_ctx;

static void run_find(void *p)
{
    find_ctx *c = p;
    for (size_t i = 0; i < c->batch; i++) {
        tape_provider_info *info = NULL;
        if (tape_registry_find(&info, c->reg, c->names[i % c->n_names]) != TAPE_OK) {
            die("tape_registry_find(\"%s\") failed: %s", c->names[i % c->n_names],
                tape_errmsg());
        }
        tape_provider_info_free(info);
    }
}

/* Deliberately opaque to the optimiser: the call cannot be inlined or
 * removed, so the loop measures a real indirect call. */
static int trivial_fn(int x)
{
    return x + 1;
}

static int (*volatile trivial_ptr)(int) = trivial_fn;
static volatile int trivial_sink;

static void run_indirect(void *p)
{
    const find_ctx *c = p;
    int acc = 0;
    for (size_t i = 0; i < c->batch; i++) {
        acc = trivial_ptr(acc);
    }
    trivial_sink = acc;
}

static void bench_registry(const timing *tm, int quick)
{
    find_ctx c = { 0 };
    check(tape_registry_new(&c.reg), "tape_registry_new");
    c.n_names = PROVIDER_COUNT;
    c.names = xmalloc(c.n_names * sizeof *c.names);
    for (size_t i = 0; i < c.n_names; i++) {
        char name[64];
        snprintf(name, sizeof name, "bench-provider-%04zu", i);
        tape_provider p = TAPE_PROVIDER_INIT;
        p.name = name;
        p.description = "benchmark dummy";
        p.validate = dummy_validate;
        p.create = dummy_create;
        check(tape_registry_register(c.reg, &p), "tape_registry_register");
        c.names[i] = xmalloc(strlen(name) + 1);
        strcpy(c.names[i], name);
    }
    for (size_t i = c.n_names - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = rnd() % (i + 1);
        char *tmp = c.names[i];
        c.names[i] = c.names[j];
        c.names[j] = tmp;
    }
    c.batch = quick ? 20000 : 200000;

    double t_find, t_call;
    time_pair(&t_find, &t_call, tm, run_find, &c, run_indirect, &c);
    double ns_find = t_find * 1e9 / (double)c.batch;
    double ns_call = t_call * 1e9 / (double)c.batch;
    printf("{\"figure\":\"registry_find\",\"providers\":%zu,\"ns_per_op\":%.6g,"
           "\"baseline\":\"indirect_call\",\"baseline_ns_per_op\":%.6g,\"ratio\":%.4g,"
           "\"goal\":\"<100 ns\",\"goal_met\":%s}\n",
           c.n_names, ns_find, ns_call, ns_find / ns_call, yes_no(ns_find < 100.0));
    fflush(stdout);

    for (size_t i = 0; i < c.n_names; i++) {
        free(c.names[i]);
    }
    free(c.names);
    tape_registry_free(c.reg);
}

/* ------------------------------------------------------ realistic tape */

static const char *const tools[] = { "search_documents", "read_file", "run_query",
                                     "list_issues", "get_weather", "send_message" };

/* JSON-RPC messages of ~300 bytes, shaped like MCP traffic: tools/call
 * requests with arguments, text results, some errors and notifications. */
static size_t make_request(char *buf, size_t cap, uint64_t id)
{
    int n = snprintf(buf, cap,
                     "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"tools/call\",\"params\":"
                     "{\"name\":\"%s\",\"arguments\":{\"query\":\"quarterly revenue report "
                     "for region %u, fiscal year 2025\",\"limit\":%u,\"include_archived\":"
                     "false,\"filters\":{\"region\":\"eu-west-1\",\"owner\":\"team-"
                     "analytics\",\"labels\":[\"finance\",\"q%u\"]}},\"_meta\":"
                     "{\"progressToken\":\"tok-%llu\"}}}",
                     (unsigned long long)id, tools[id % 6], (unsigned)(id % 97),
                     (unsigned)(10 + id % 40), (unsigned)(1 + id % 4), (unsigned long long)id);
    return (size_t)n;
}

static size_t make_response(char *buf, size_t cap, uint64_t id, int is_error)
{
    int n;
    if (is_error) {
        n = snprintf(buf, cap,
                     "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"error\":{\"code\":-32602,"
                     "\"message\":\"Invalid params: argument 'limit' must be between 1 and "
                     "50\",\"data\":{\"argument\":\"limit\",\"received\":%u,\"hint\":\"use "
                     "pagination through the cursor field of the previous result\"}}}",
                     (unsigned long long)id, (unsigned)(51 + id % 9));
    } else {
        n = snprintf(buf, cap,
                     "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"result\":{\"content\":[{\"type\":"
                     "\"text\",\"text\":\"Found %u documents: Q%u revenue summary (EU), "
                     "regional breakdown \\\"north\\\" and \\\"south\\\", appendix with "
                     "tables\\nnext page available\"}],\"isError\":false,"
                     "\"structuredContent\":{\"count\":%u,\"cursor\":\"c%llu\"}}}",
                     (unsigned long long)id, (unsigned)(id % 13), (unsigned)(1 + id % 4),
                     (unsigned)(id % 13), (unsigned long long)id);
    }
    return (size_t)n;
}

static size_t make_notification(char *buf, size_t cap, uint64_t id)
{
    int n = snprintf(buf, cap,
                     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
                     "{\"progressToken\":\"tok-%llu\",\"progress\":%u,\"total\":100,"
                     "\"message\":\"indexing shard %u of 16: 4096 documents scanned, 12 "
                     "matched, estimated time remaining 3 seconds\"}}",
                     (unsigned long long)id, (unsigned)(id % 100), (unsigned)(id % 16));
    return (size_t)n;
}

static void append(tape *t, int dir, int64_t ts, const char *msg, size_t len,
                   const char *corr)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = dir;
    d.ts_ms = ts;
    d.message = msg;
    d.message_len = len;
    d.correlation_id = corr;
    check(tape_append_frame(NULL, t, &d), "tape_append_frame");
}

static tape *build_tape(size_t frames)
{
    tape *t = NULL;
    check(tape_new(&t, "bench-tape-0001"), "tape_new");
    check(tape_set_name(t, "nightly regression against staging MCP server"), "tape_set_name");
    check(tape_set_description(t, "recorded by the benchmark"), "tape_set_description");
    check(tape_set_session_id(t, "3f2a9c1e-5b7d-4e21-9a0c-bench0000001"), "tape_set_session_id");
    check(tape_set_protocol_version(t, "2025-06-18"), "tape_set_protocol_version");
    check(tape_set_transport_json(t, "{\"type\":\"stdio\",\"command\":\"mcp-server\"}"),
          "tape_set_transport_json");
    check(tape_set_environment_json(t, "{\"host\":\"ci-runner-7\",\"proxy\":\"0.9.1\"}"),
          "tape_set_environment_json");
    check(tape_set_created_at(t, 1755167400000), "tape_set_created_at");
    check(tape_add_tag(t, "bench"), "tape_add_tag");
    check(tape_add_tag(t, "staging"), "tape_add_tag");

    char msg[1024], corr[32];
    int64_t ts = 0;
    uint64_t seq = 0, id = 1;
    while (seq < frames) {
        if (id % 10 == 0) { /* a progress notification now and then */
            size_t n = make_notification(msg, sizeof msg, id);
            append(t, TAPE_DIR_SERVER_TO_CLIENT, ts, msg, n, NULL);
            seq++;
            ts += 1;
            if (seq >= frames) {
                break;
            }
        }
        snprintf(corr, sizeof corr, "c-%llu", (unsigned long long)id);
        size_t n = make_request(msg, sizeof msg, id);
        uint64_t req_seq = seq;
        append(t, TAPE_DIR_CLIENT_TO_SERVER, ts, msg, n, corr);
        seq++;
        ts += 2;
        if (seq >= frames) {
            break;
        }
        int is_error = id % 25 == 0;
        n = make_response(msg, sizeof msg, id, is_error);
        append(t, TAPE_DIR_SERVER_TO_CLIENT, ts + 5, msg, n, corr);
        check(tape_add_correlation(t, corr, req_seq, seq, 5, is_error ? "error" : "success"),
              "tape_add_correlation");
        seq++;
        ts += 7;
        id++;
    }
    check(tape_set_status(t, TAPE_STATUS_FINALIZED), "tape_set_status");
    check(tape_set_finalized_at(t, 1755167400000 + ts), "tape_set_finalized_at");
    return t;
}

/* ------------------------------------------------------ 2. codec figures */

typedef struct codec_ctx {
    const tape *t;
    const char *jsonl;
    size_t len;
    char *scratch; /* memcpy destination, allocated and touched once */
} codec_ctx;

static void run_encode(void *p)
{
    codec_ctx *c = p;
    char *out = NULL;
    size_t len = 0;
    check(tape_encode_jsonl(&out, &len, c->t), "tape_encode_jsonl");
    if (len != c->len) {
        die("tape_encode_jsonl: %zu bytes, expected %zu", len, c->len);
    }
    tape_string_free(out);
}

static void run_memcpy(void *p)
{
    codec_ctx *c = p;
    memcpy(c->scratch, c->jsonl, c->len);
    __asm__ __volatile__("" : : "r"(c->scratch) : "memory"); /* keep the copy */
}

static void run_decode(void *p)
{
    codec_ctx *c = p;
    tape *t = NULL;
    check(tape_decode(&t, c->jsonl, c->len, NULL, 0, NULL, NULL), "tape_decode");
    tape_free(t);
}

/* The floor of any parser built on cJSON: parse each line, free it. */
static void run_cjson_lines(void *p)
{
    codec_ctx *c = p;
    const char *s = c->jsonl, *end = c->jsonl + c->len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
        cJSON *j = cJSON_ParseWithLength(s, n);
        if (j == NULL) {
            die("cJSON rejected a line the codec wrote: %.60s", s);
        }
        cJSON_Delete(j);
        s += n + 1;
    }
}

static void print_mbps(const char *figure, size_t frames, size_t bytes, double t,
                       const char *baseline, double tb, const char *goal, double goal_ratio)
{
    double mb = (double)bytes / 1e6;
    double ratio = tb / t;
    printf("{\"figure\":\"%s\",\"frames\":%zu,\"bytes\":%zu,\"mb_per_s\":%.6g,"
           "\"baseline\":\"%s\",\"baseline_mb_per_s\":%.6g,\"ratio\":%.4g,\"goal\":\"%s\","
           "\"goal_met\":%s}\n",
           figure, frames, bytes, mb / t, baseline, mb / tb, ratio, goal,
           goal_ratio > 0 ? yes_no(ratio >= goal_ratio) : "null");
    fflush(stdout);
}

static void bench_codec(const timing *tm, const tape *t, const char *jsonl, size_t len)
{
    codec_ctx c = { t, jsonl, len, xmalloc(len) };
    memset(c.scratch, 0, len);
    size_t frames = tape_frame_count(t);
    double ta, tb;

    time_pair(&ta, &tb, tm, run_encode, &c, run_memcpy, &c);
    print_mbps("codec_encode", frames, len, ta, "memcpy", tb, "none", 0);

    time_pair(&ta, &tb, tm, run_decode, &c, run_cjson_lines, &c);
    print_mbps("codec_decode", frames, len, ta, "cjson_parse_lines", tb, ">=0.8", 0.8);
    free(c.scratch);
}

/* --------------------------------------------- 3. memory provider figures */

typedef struct mem_ctx {
    tape_store *s;
    const tape *t;
} mem_ctx;

static void run_save(void *p)
{
    mem_ctx *c = p;
    check(tape_store_save(c->s, c->t), "tape_store_save");
}

static void run_load(void *p)
{
    mem_ctx *c = p;
    tape *t = NULL;
    check(tape_store_load(&t, c->s, tape_id(c->t)), "tape_store_load");
    tape_free(t);
}

/* What the provider has to do anyway: a deep copy (and dropping the old one). */
static void run_clone(void *p)
{
    mem_ctx *c = p;
    tape *t = NULL;
    check(tape_clone(&t, c->t), "tape_clone");
    tape_free(t);
}

static void print_tapes(const char *figure, size_t bytes, double t, double tb)
{
    double mb = (double)bytes / 1e6;
    printf("{\"figure\":\"%s\",\"bytes\":%zu,\"tapes_per_s\":%.6g,\"mb_per_s\":%.6g,"
           "\"baseline\":\"tape_clone\",\"baseline_tapes_per_s\":%.6g,"
           "\"baseline_mb_per_s\":%.6g,\"ratio\":%.4g,\"goal\":\"none\",\"goal_met\":null}\n",
           figure, bytes, 1.0 / t, mb / t, 1.0 / tb, mb / tb, tb / t);
    fflush(stdout);
}

/* A registry of our own with the builtins: the figures do not depend on
 * what else the process registered. */
static tape_registry *builtins_registry(void)
{
    tape_registry *reg = NULL;
    check(tape_registry_new(&reg), "tape_registry_new");
    check(tape_registry_add_builtins(reg), "tape_registry_add_builtins");
    return reg;
}

static void bench_memory(const timing *tm, const tape *t, size_t bytes)
{
    mem_ctx c = { NULL, t };
    tape_registry *reg = builtins_registry();
    check(tape_store_open(&c.s, reg, "memory", NULL, TAPE_OPEN_EAGER), "tape_store_open");
    double ta, tb;
    /* save copies the caller's tape; load copies the store's own copy, a
     * clone, which is laid out more compactly than a tape built frame by
     * frame: each baseline copies what its operation copies. */
    time_pair(&ta, &tb, tm, run_save, &c, run_clone, &c);
    print_tapes("memory_save", bytes, ta, tb);
    tape *stored = NULL;
    check(tape_clone(&stored, t), "tape_clone");
    mem_ctx b = { NULL, stored };
    time_pair(&ta, &tb, tm, run_load, &c, run_clone, &b);
    print_tapes("memory_load", bytes, ta, tb);
    tape_free(stored);
    check(tape_store_close(c.s), "tape_store_close");
    tape_registry_free(reg);
}

/* ------------------------------------------------------ 4. the matcher */

static const char *const tag_pool[] = { "prod",  "staging", "dev",     "canary",
                                        "eu",    "us",      "ci",      "nightly",
                                        "smoke", "tools",   "resources", "regression" };
#define TAG_POOL 12
#define T0 1735689600000ll /* 2025-01-01T00:00:00Z */
#define SPAN_MS (180ll * 24 * 3600 * 1000) /* tapes spread over 180 days */

typedef struct match_ctx {
    tape_entry **entries;
    size_t n;
    tape_query *q;
    tape_store *s;
    int64_t after;
    size_t expected; /* matches counted by hand */
} match_ctx;

static int no_text(int *out_match, void *ud, const tape_entry *e)
{
    (void)ud;
    (void)e;
    *out_match = 1; /* the benchmark query has no text term */
    return TAPE_OK;
}

static void expect_count(const match_ctx *c, tape_result *r, const char *what)
{
    if (tape_result_count(r) != c->expected) {
        die("%s returned %zu entries, the query matches %zu", what, tape_result_count(r),
            c->expected);
    }
}

static void run_matcher(void *p)
{
    match_ctx *c = p;
    tape_result *r = NULL;
    check(tape__query_run(&r, c->q, c->entries, c->n, no_text, NULL), "tape__query_run");
    expect_count(c, r, "tape__query_run");
    tape_result_free(r);
}

static void run_store_query(void *p)
{
    match_ctx *c = p;
    tape_result *r = NULL;
    check(tape_store_query(&r, c->s, c->q), "tape_store_query");
    expect_count(c, r, "tape_store_query");
    tape_result_free(r);
}

static volatile size_t pass_sink;

/* The floor of any matcher: look at every entry's created_at once. */
static void run_linear_pass(void *p)
{
    match_ctx *c = p;
    size_t hits = 0;
    for (size_t i = 0; i < c->n; i++) {
        hits += tape_entry_created_at(c->entries[i]) > c->after;
    }
    pass_sink = hits;
}

static void print_ms(const char *figure, size_t n, size_t matches, double t, double tb)
{
    double ms = t * 1e3, base = tb * 1e3;
    printf("{\"figure\":\"%s\",\"entries\":%zu,\"matches\":%zu,\"ms_per_query\":%.6g,"
           "\"baseline\":\"created_at_pass\",\"baseline_ms\":%.6g,\"ratio\":%.4g,"
           "\"goal\":\"<20 ms at %d entries\",\"goal_met\":%s}\n",
           figure, n, matches, ms, base, ms / base, DEFAULT_SIZE,
           n == DEFAULT_SIZE ? yes_no(ms < 20.0) : "null"); /* the goal is for that size */
    fflush(stdout);
}

static void bench_matcher(const timing *tm, size_t n)
{
    match_ctx c = { 0 };
    c.n = n;
    c.entries = xmalloc(n * sizeof *c.entries);
    c.after = T0 + SPAN_MS / 2; /* about half of the tapes are newer */
    tape_registry *reg = builtins_registry();
    check(tape_store_open(&c.s, reg, "memory", NULL, TAPE_OPEN_EAGER), "tape_store_open");

    fprintf(stderr, "tape-bench: building %zu entries and a memory store of %zu tapes\n", n,
            n);
    for (size_t i = 0; i < n; i++) {
        char id[32], name[64];
        snprintf(id, sizeof id, "tape-%07zu", i);
        snprintf(name, sizeof name, "session %zu against %s", i, tools[i % 6]);
        tape *t = NULL;
        check(tape_new(&t, id), "tape_new");
        check(tape_set_name(t, name), "tape_set_name");
        check(tape_set_created_at(t, T0 + (int64_t)(rnd() % (uint32_t)(SPAN_MS / 1000)) * 1000),
              "tape_set_created_at");
        check(tape_set_status(t, i % 7 == 0 ? TAPE_STATUS_RECORDING : TAPE_STATUS_FINALIZED),
              "tape_set_status");
        /* 1-3 tags: "prod" on ~1/6, "canary" on ~1/12 of the tapes. */
        unsigned ntags = 1 + rnd() % 3;
        for (unsigned k = 0; k < ntags; k++) {
            check(tape_add_tag(t, tag_pool[rnd() % TAG_POOL]), "tape_add_tag");
        }
        check(tape_entry_from_tape(&c.entries[i], t), "tape_entry_from_tape");
        check(tape_store_save(c.s, t), "tape_store_save");
        if ((tape_has_tag(t, "prod") || tape_has_tag(t, "canary")) &&
            tape_created_at(t) > c.after) {
            c.expected++;
        }
        tape_free(t);
    }

    char json[160];
    snprintf(json, sizeof json, "{\"tags_any\":[\"prod\",\"canary\"],\"created_after\":%lld}",
             (long long)c.after);
    check(tape_query_parse(&c.q, json), "tape_query_parse");

    double ta, tb;
    time_pair(&ta, &tb, tm, run_matcher, &c, run_linear_pass, &c);
    print_ms("matcher_run", n, c.expected, ta, tb);
    time_pair(&ta, &tb, tm, run_store_query, &c, run_linear_pass, &c);
    print_ms("store_query", n, c.expected, ta, tb);

    tape_query_free(c.q);
    for (size_t i = 0; i < n; i++) {
        tape_entry_free(c.entries[i]);
    }
    free(c.entries);
    check(tape_store_close(c.s), "tape_store_close");
    tape_registry_free(reg);
}

/* ------------------------------------------------------------------ main */

static void usage(void)
{
    fprintf(stderr, "usage: tape-bench [--quick] [--size N]\n"
                    "  --quick   small sizes and short loops (CI smoke run)\n"
                    "  --size N  N entries/tapes for the matcher, N/5 frames in the codec\n"
                    "            tape (default %d)\n",
            DEFAULT_SIZE);
}

int main(int argc, char **argv)
{
    int quick = 0;
    long long size = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            size = strtoll(argv[++i], &end, 10);
            if (errno != 0 || end == argv[i] || *end != '\0' || size < 5 || size > 100000000) {
                fprintf(stderr, "tape-bench: --size must be an integer in 5..100000000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (size < 0) {
        size = quick ? QUICK_SIZE : DEFAULT_SIZE;
    }
    timing tm = { quick ? 3 : 7, quick ? 0.05 : 0.5 };
    size_t frames = (size_t)size / 5;

    bench_registry(&tm, quick);

    fprintf(stderr, "tape-bench: building a tape of %zu frames\n", frames);
    tape *t = build_tape(frames);
    char *jsonl = NULL;
    size_t len = 0;
    check(tape_encode_jsonl(&jsonl, &len, t), "tape_encode_jsonl");
    tape *back = NULL;
    check(tape_decode(&back, jsonl, len, NULL, 0, NULL, NULL), "tape_decode");
    if (tape_frame_count(back) != frames) {
        die("tape_decode gave %zu frames, the tape has %zu", tape_frame_count(back), frames);
    }
    tape_free(back);

    bench_codec(&tm, t, jsonl, len);
    bench_memory(&tm, t, len);
    tape_string_free(jsonl);
    tape_free(t);

    bench_matcher(&tm, (size_t)size);
    return 0;
}
