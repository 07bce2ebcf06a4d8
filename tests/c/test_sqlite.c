/*
 * SQLite provider: config, the native search against the core's matcher
 * (a differential test over random tapes and queries, paging included),
 * migration from schema version 1, bad files, recording leases, the line
 * limit, read-only stores (files hashed before and after), the writer on
 * a database another connection keeps locked, metadata learned while
 * recording, listings equal to loads after edits from outside, and text
 * search over a damaged tape.
 * (The conformance suite covers the general provider contract.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tapestore/provider.h"
#include "tape_test.h"

static char dir[256];
static char dbpath[300];
static char cfg[512];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tape-sqlite-test-XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(dbpath, sizeof dbpath, "%s/tapes.db", dir);
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s\",\"synchronous\":\"off\"}", dbpath);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
    char p[400];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void write_all(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void expect_open_error(int code, const char *needle)
{
    tape_store *s = NULL;
    int rc = tape_store_open(&s, NULL, "sqlite", cfg, TAPE_OPEN_EAGER);
    if (rc != code || strstr(tape_errmsg(), needle) == NULL) {
        fail_msg("expected %s mentioning '%s', got %s: %s", tape_strerror(code), needle,
                 tape_strerror(rc), tape_errmsg());
    }
    assert_null(s);
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("%s: %s", sql, err);
    }
    sqlite3_close(db);
}

static int64_t query_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* ------------------------------------------------------------ config */

static void test_config_errors(void **state)
{
    (void)state;
    static const struct { const char *json; const char *needle; } bad[] = {
        { "{}", "\"path\" is required" },
        { "{\"path\":\"\"}", "\"path\" is required" },
        { "{\"path\":5}", "path" },
        { "{\"path\":\"x.db\",\"pth\":1}", "pth" },
        { "{\"path\":\"x.db\",\"wal\":\"yes\"}", "wal" },
        { "{\"path\":\"x.db\",\"busy_timeout_ms\":-1}", "busy_timeout_ms" },
        { "{\"path\":\"x.db\",\"busy_timeout_ms\":\"5\"}", "busy_timeout_ms" },
        { "{\"path\":\"x.db\",\"synchronous\":\"sometimes\"}", "synchronous" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tape_store *s = NULL;
        int rc = tape_store_open(&s, NULL, "sqlite", bad[i].json, 0);
        if (rc != TAPE_ECONFIG || strstr(tape_errmsg(), bad[i].needle) == NULL) {
            fail_msg("%s: expected TAPE_ECONFIG naming %s, got %s: %s", bad[i].json,
                     bad[i].needle, tape_strerror(rc), tape_errmsg());
        }
    }
    /* Nothing was created by a rejected config. */
    struct stat sb;
    assert_int_not_equal(stat("x.db", &sb), 0);
    /* Capabilities: native search, writer, reads; persistence only on a file. */
    tape_store *s = NULL;
    unsigned int native = 0;
    assert_int_equal(tape_store_open(&s, NULL, "sqlite", cfg, 0), TAPE_OK);
    assert_int_equal(tape_store_capabilities(&native, NULL, s), TAPE_OK);
    assert_true(native & TAPE_CAP_SEARCH);
    assert_true(native & TAPE_CAP_WRITER);
    assert_true(native & TAPE_CAP_PERSISTENT);
    assert_false(native & TAPE_CAP_THREAD_SAFE);
    assert_int_equal(tape_store_close(s), TAPE_OK);
    assert_int_equal(tape_store_open(&s, NULL, "sqlite", "{\"path\":\":memory:\"}", 0), TAPE_OK);
    assert_int_equal(tape_store_capabilities(&native, NULL, s), TAPE_OK);
    assert_false(native & TAPE_CAP_PERSISTENT);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

/* ------------------------------------------------------------ differential */

static uint64_t rng_state = 88172645463325252u;

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static const char *const d_names[] = { "Alpha deploy", "alpha", "ALPHA-Beta", "École Deploy",
                                       "école", "Straße", "zeta", "Zeta", "a", "ab%_c" };
static const char *const d_sessions[] = { "s-A", "s-B", "s-a" };
static const char *const d_tags[] = { "prod", "dev", "Prod", "tools", "x" };
static const char *const d_words[] = { "needle", "NEEDLE", "NeEdLe", "haystack", "é",
                                       "É", "école", "ÉCOLE", "ab", "a%b", "q\\\"x",
                                       "tools/call", "ﬀ", "Kelvin" };

static void make_tape(tape **out, int i)
{
    char id[32];
    snprintf(id, sizeof id, "t-%03d", (i * 37) % 1000);
    tape *t = NULL;
    assert_int_equal(tape_new(&t, id), TAPE_OK);
    if (rnd(5) != 0) assert_int_equal(tape_set_name(t, d_names[rnd(10)]), TAPE_OK);
    if (rnd(4) != 0) assert_int_equal(tape_set_session_id(t, d_sessions[rnd(3)]), TAPE_OK);
    for (int k = 0; k < 5; k++) {
        if (rnd(3) == 0) assert_int_equal(tape_add_tag(t, d_tags[k]), TAPE_OK);
    }
    int64_t base = INT64_C(1754000000000);
    assert_int_equal(tape_set_created_at(t, base + (int64_t)rnd(20) * 1000), TAPE_OK);
    if (rnd(3) != 0) {
        assert_int_equal(tape_set_updated_at(t, base + (int64_t)rnd(10) * 1000), TAPE_OK);
    }
    if (rnd(2) == 0) {
        assert_int_equal(tape_set_status(t, TAPE_STATUS_FINALIZED), TAPE_OK);
        assert_int_equal(tape_set_finalized_at(t, base + 50000), TAPE_OK);
    }
    int frames = (int)rnd(5);
    for (int f = 0; f < frames; f++) {
        char msg[256];
        snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s %s\"}", f,
                 d_words[rnd(14)], d_words[rnd(14)]);
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = f % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = (int64_t)rnd(100);
        if (f > 0 && d.ts_ms < 0) d.ts_ms = 0;
        d.message = msg;
        assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    }
    *out = t;
}

static const char *const q_text[] = { "needle", "NEEDLE", "eed", "ne", "é", "É", "école",
                                      "ÉCOLE", "a%b", "\\\"method\\\"", "q\\\\\\\"x", "ab", "a",
                                      "tools/call", "zzz", "ﬀ", "kelvin" };
static const char *const q_name[] = { "alpha", "A", "é", "DEPLOY", "ß", "%_", "zeta", "École" };
static const char *const q_order[] = { "created_at", "updated_at", "name", "duration_ms",
                                       "frame_count", "id" };

static void random_query(char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "{\"order_by\":\"%s\",\"descending\":%s",
                          q_order[rnd(6)], rnd(2) ? "true" : "false");
    if (rnd(4) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"session_id\":\"%s\"", d_sessions[rnd(3)]);
    if (rnd(4) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"name_contains\":\"%s\"", q_name[rnd(8)]);
    if (rnd(4) == 0) {
        n += (size_t)snprintf(buf + n, cap - n, ",\"tags_any\":[\"%s\",\"%s\"]", d_tags[rnd(5)],
                              d_tags[rnd(5)]);
    }
    if (rnd(5) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"tags_all\":[\"%s\"]", d_tags[rnd(5)]);
    if (rnd(5) == 0) {
        n += (size_t)snprintf(buf + n, cap - n, ",\"status\":\"%s\"",
                              rnd(2) ? "recording" : "finalized");
    }
    if (rnd(4) == 0) {
        n += (size_t)snprintf(buf + n, cap - n, ",\"created_after\":%lld",
                              1754000000000LL + (long long)rnd(20) * 1000);
    }
    if (rnd(4) == 0) {
        n += (size_t)snprintf(buf + n, cap - n, ",\"created_before\":%lld",
                              1754000000000LL + (long long)rnd(20) * 1000);
    }
    if (rnd(5) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"min_duration_ms\":%u", rnd(100));
    if (rnd(5) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"max_duration_ms\":%u", rnd(100));
    if (rnd(5) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"min_frames\":%u", rnd(5));
    if (rnd(5) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"max_frames\":%u", rnd(5));
    if (rnd(3) == 0) n += (size_t)snprintf(buf + n, cap - n, ",\"text\":\"%s\"", q_text[rnd(17)]);
    if (rnd(3) != 0) n += (size_t)snprintf(buf + n, cap - n, ",\"limit\":%u", 1 + rnd(9));
    snprintf(buf + n, cap - n, "}");
}

/* Every page of q from both stores: same ids, same order, same cursors. */
static void compare_walk(tape_store *mem, tape_store *sq, const char *json, size_t *pages)
{
    tape_query *q = NULL;
    if (tape_query_parse(&q, json) != TAPE_OK) fail_msg("%s: %s", json, tape_errmsg());
    for (int page = 0; page < 1000; page++) {
        tape_result *a = NULL, *b = NULL;
        assert_int_equal(tape_store_query(&a, mem, q), TAPE_OK);
        if (tape_store_query(&b, sq, q) != TAPE_OK) fail_msg("%s: %s", json, tape_errmsg());
        (*pages)++;
        if (tape_result_count(a) != tape_result_count(b)) {
            fail_msg("%s page %d: memory %zu entries, sqlite %zu", json, page,
                     tape_result_count(a), tape_result_count(b));
        }
        for (size_t i = 0; i < tape_result_count(a); i++) {
            const char *ia = tape_entry_id(tape_result_at(a, i));
            const char *ib = tape_entry_id(tape_result_at(b, i));
            if (strcmp(ia, ib) != 0) fail_msg("%s page %d #%zu: memory %s, sqlite %s", json, page, i, ia, ib);
        }
        const char *ca = tape_result_next_cursor(a), *cb = tape_result_next_cursor(b);
        if ((ca == NULL) != (cb == NULL) || (ca != NULL && strcmp(ca, cb) != 0)) {
            fail_msg("%s page %d: cursors differ: %s / %s", json, page, ca ? ca : "(null)",
                     cb ? cb : "(null)");
        }
        tape_query *next = NULL;
        if (ca != NULL) assert_int_equal(tape_query_with_cursor(&next, q, ca), TAPE_OK);
        tape_result_free(a);
        tape_result_free(b);
        tape_query_free(q);
        q = next;
        if (q == NULL) return;
    }
    fail_msg("%s: more than 1000 pages", json);
}

static void test_differential(void **state)
{
    (void)state;
    tape_store *mem = NULL, *sq = NULL;
    assert_int_equal(tape_store_open(&mem, NULL, "memory", "{}", 0), TAPE_OK);
    assert_int_equal(tape_store_open(&sq, NULL, "sqlite", cfg, 0), TAPE_OK);
    for (int i = 0; i < 400; i++) {
        tape *t = NULL;
        make_tape(&t, i);
        assert_int_equal(tape_store_save(mem, t), TAPE_OK);
        assert_int_equal(tape_store_save(sq, t), TAPE_OK);
        tape_free(t);
    }
    /* Some deletes: the cascade must leave no frame behind for text. */
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "t-%03d", (i * 10 * 37) % 1000);
        int rm = tape_store_delete(mem, id), rs = tape_store_delete(sq, id);
        assert_int_equal(rm, rs);
    }
    size_t pages = 0;
    char json[1024];
    for (int i = 0; i < 1500; i++) {
        random_query(json, sizeof json);
        compare_walk(mem, sq, json, &pages);
    }
    /* The empty query and NULL, too. */
    compare_walk(mem, sq, "{}", &pages);
    assert_true(pages > 1500);
    /* The stats agree. */
    tape_store_stats a = TAPE_STORE_STATS_INIT, b = TAPE_STORE_STATS_INIT;
    assert_int_equal(tape_store_stats_get(&a, mem), TAPE_OK);
    assert_int_equal(tape_store_stats_get(&b, sq), TAPE_OK);
    assert_int_equal(a.tape_count, b.tape_count);
    assert_int_equal(a.frame_count, b.frame_count);
    assert_int_equal(a.total_bytes, b.total_bytes);
    assert_int_equal(tape_store_close(mem), TAPE_OK);
    assert_int_equal(tape_store_close(sq), TAPE_OK);
}

/* ------------------------------------------------------------ migration */

/* Schema version 1, as the first release created it. */
static const char v1_ddl[] =
    "CREATE TABLE tapes("
    " id TEXT PRIMARY KEY NOT NULL, name TEXT, session_id TEXT, status INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,"
    " frame_count INTEGER NOT NULL, file_size INTEGER NOT NULL, meta TEXT NOT NULL,"
    " init_line TEXT NOT NULL);"
    "CREATE TABLE tags(tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE,"
    " tag TEXT NOT NULL, PRIMARY KEY(tape_id, tag)) WITHOUT ROWID;"
    "CREATE TABLE frames(id INTEGER PRIMARY KEY,"
    " tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE, seq INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, direction INTEGER NOT NULL, correlation_id TEXT,"
    " head TEXT NOT NULL, message TEXT NOT NULL, tail TEXT, UNIQUE(tape_id, seq));"
    "CREATE TABLE lines(tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL, ord INTEGER NOT NULL, line TEXT NOT NULL,"
    " PRIMARY KEY(tape_id, pos, ord)) WITHOUT ROWID;"
    "CREATE TABLE correlations(tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE,"
    " ord INTEGER NOT NULL, corr_id TEXT, request_seq INTEGER, response_seq INTEGER,"
    " rtt_ms INTEGER, status TEXT, PRIMARY KEY(tape_id, ord)) WITHOUT ROWID;"
    "CREATE INDEX tapes_created ON tapes(created_at, id);"
    "CREATE INDEX tags_by_tag ON tags(tag, tape_id);"
    "PRAGMA application_id = 1413566533;"
    "PRAGMA user_version = 1;";

/* Store t into a version-1 database the way version 1 laid it out. */
static void v1_insert(sqlite3 *db, const tape *t)
{
    char *meta = NULL, *init = NULL;
    size_t meta_len = 0, init_len = 0;
    tape_entry *e = NULL;
    tape_stats st = TAPE_STATS_INIT;
    assert_int_equal(tape_encode_meta(&meta, &meta_len, t), TAPE_OK);
    assert_int_equal(tape_encode_init_line(&init, &init_len, t), TAPE_OK);
    assert_int_equal(tape_entry_from_meta(&e, meta, meta_len), TAPE_OK);
    assert_int_equal(tape_entry_get_stats(&st, e), TAPE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO tapes VALUES(?1,?2,NULL,?3,?4,?5,?6,?7,?8,?9,?10)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, tape_id(t), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, tape_name(t), -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, tape_status(t));
    sqlite3_bind_int64(s, 4, tape_created_at(t));
    sqlite3_bind_int64(s, 5, tape_entry_updated_at(e));
    sqlite3_bind_int64(s, 6, st.duration_ms);
    sqlite3_bind_int64(s, 7, (int64_t)st.frame_count);
    sqlite3_bind_int64(s, 8, (int64_t)st.file_size_bytes);
    sqlite3_bind_text(s, 9, meta, (int)meta_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 10, init, (int)init_len - 1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    for (size_t i = 0; i < tape_tag_count(t); i++) {
        assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO tags VALUES(?1,?2)", -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, tape_id(t), -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, tape_tag_at(t, i), -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        sqlite3_finalize(s);
    }
    for (size_t i = 0; i < tape_frame_count(t); i++) {
        const tape_frame *f = tape_frame_at(t, i);
        size_t ll = 0, ml = 0;
        const char *line = tape_frame_line(f, &ll), *msg = tape_frame_message(f, &ml);
        const char *at = strstr(line, msg);
        assert_non_null(at);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "INSERT INTO frames(tape_id, seq, ts, direction,"
                                            " correlation_id, head, message, tail)"
                                            " VALUES(?1,?2,?3,?4,NULL,?5,?6,?7)",
                                            -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, tape_id(t), -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (int64_t)tape_frame_seq(f));
        sqlite3_bind_int64(s, 3, tape_frame_ts(f));
        sqlite3_bind_int(s, 4, tape_frame_direction(f));
        sqlite3_bind_text(s, 5, line, (int)(at - line), SQLITE_STATIC);
        sqlite3_bind_text(s, 6, msg, (int)ml, SQLITE_STATIC);
        sqlite3_bind_text(s, 7, at + ml, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_DONE);
        sqlite3_finalize(s);
    }
    tape_entry_free(e);
    tape_string_free(meta);
    tape_string_free(init);
}

static void test_migrate_v1(void **state)
{
    (void)state;
    tape *t = NULL;
    assert_int_equal(tape_new(&t, "old-1"), TAPE_OK);
    assert_int_equal(tape_set_name(t, "from version one"), TAPE_OK);
    assert_int_equal(tape_add_tag(t, "legacy"), TAPE_OK);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 5;
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"Legacy/Search\"}";
    assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);

    exec_sql(dbpath, v1_ddl);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    v1_insert(db, t);
    sqlite3_close(db);
    assert_int_equal(query_int(dbpath, "PRAGMA user_version"), 1);

    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "sqlite", cfg, TAPE_OPEN_EAGER), TAPE_OK);
    assert_int_equal(query_int(dbpath, "PRAGMA user_version"), 3);
    /* The tape is there, byte for byte. */
    tape *got = NULL;
    char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    assert_int_equal(tape_store_load(&got, s, "old-1"), TAPE_OK);
    assert_int_equal(tape_encode_jsonl(&a, &al, t), TAPE_OK);
    assert_int_equal(tape_encode_jsonl(&b, &bl, got), TAPE_OK);
    assert_int_equal(al, bl);
    assert_memory_equal(a, b, al);
    tape_string_free(a);
    tape_string_free(b);
    tape_free(got);
    /* Its frames were indexed by the migration: a text query finds it. */
    tape_query *q = NULL;
    tape_result *r = NULL;
    assert_int_equal(tape_query_parse(&q, "{\"text\":\"legacy/SEARCH\",\"tags_any\":[\"legacy\"]}"),
                     TAPE_OK);
    assert_int_equal(tape_store_query(&r, s, q), TAPE_OK);
    assert_int_equal(tape_result_count(r), 1);
    assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "old-1");
    tape_result_free(r);
    tape_query_free(q);
    /* And it records and deletes like any other. */
    assert_int_equal(tape_store_delete(s, "old-1"), TAPE_OK);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM frames"), 0);
    assert_int_equal(tape_store_close(s), TAPE_OK);
    /* Reopening a current database changes nothing. */
    assert_int_equal(tape_store_open(&s, NULL, "sqlite", cfg, TAPE_OPEN_EAGER), TAPE_OK);
    assert_int_equal(tape_store_close(s), TAPE_OK);
    assert_int_equal(query_int(dbpath, "PRAGMA user_version"), 3);
    tape_free(t);
}

static void test_newer_schema(void **state)
{
    (void)state;
    exec_sql(dbpath, "CREATE TABLE tapes(id TEXT); PRAGMA application_id = 1413566533;"
                     " PRAGMA user_version = 9;");
    expect_open_error(TAPE_EVERSION, "schema version 9 is newer");
}

/* ------------------------------------------------------------ bad files */

static void test_not_a_database(void **state)
{
    (void)state;
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)('a' + i % 26);
    write_all(dbpath, junk, sizeof junk);
    expect_open_error(TAPE_ECORRUPT, "not a SQLite database");
    size_t len = 0;
    char *after = read_all(dbpath, &len);
    assert_int_equal(len, sizeof junk);
    assert_memory_equal(after, junk, sizeof junk);
    free(after);
}

static void test_other_application(void **state)
{
    (void)state;
    exec_sql(dbpath, "CREATE TABLE users(name TEXT); INSERT INTO users VALUES('ann');");
    expect_open_error(TAPE_ECONFIG, "another application");
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM users"), 1);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM sqlite_master WHERE name='tapes'"), 0);
    assert_int_equal(query_int(dbpath, "PRAGMA user_version"), 0);
}

static void test_read_only_file(void **state)
{
    (void)state;
    tape_store *s = NULL;
    tape *t = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "sqlite", cfg, 0), TAPE_OK);
    assert_int_equal(tape_new(&t, "kept"), TAPE_OK);
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    assert_int_equal(tape_store_close(s), TAPE_OK);
    tape_free(t);
    size_t before_len = 0, after_len = 0;
    char *before = read_all(dbpath, &before_len);
    assert_int_equal(chmod(dbpath, 0444), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    /* root ignores file modes: check as an unprivileged user. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        free(before); /* nothing of the parent's left behind (valgrind) */
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
        tape_store *c = NULL;
        int rc = tape_store_open(&c, NULL, "sqlite", cfg, TAPE_OPEN_EAGER);
        _exit(rc == TAPE_EIO && strstr(tape_errmsg(), "read-only") != NULL &&
                      strstr(tape_errmsg(), dbpath) != NULL
                  ? 0
                  : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char *after = read_all(dbpath, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
    chmod(dbpath, 0644);
}


/* ------------------------------------------------------------ line limit */

/* A tape whose one frame line is `len` bytes of message, decoded with a
 * limit raised above it (the core's own builder refuses such a line). */
static tape *big_line_tape(const char *id, size_t len)
{
    const char *init_fmt = "{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"%s\","
                           "\"session_id\":\"s\",\"created_at\":\"2025-01-01T00:00:00.000Z\","
                           "\"protocol_version\":\"2025-06-18\"}\n";
    const char *pre = "{\"type\":\"frame\",\"seq\":0,\"ts\":0,\"dir\":\"client_to_server\","
                      "\"env\":{\"message\":{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":\"";
    const char *post = "\"}}}\n";
    size_t cap = strlen(init_fmt) + 64 + strlen(pre) + len + strlen(post) + 1;
    char *doc = malloc(cap);
    assert_non_null(doc);
    int n = snprintf(doc, cap, init_fmt, id);
    size_t o = (size_t)n;
    memcpy(doc + o, pre, strlen(pre));
    o += strlen(pre);
    memset(doc + o, 'a', len);
    o += len;
    memcpy(doc + o, post, strlen(post));
    o += strlen(post);
    tape_decode_options opt = TAPE_DECODE_OPTIONS_INIT;
    opt.max_line_bytes = len + 4096;
    tape *t = NULL;
    EXPECT_OK(tape_decode(&t, doc, o, NULL, 0, &opt, NULL));
    free(doc);
    return t;
}

static void test_line_limit_save(void **state)
{
    (void)state;
    tape *t = big_line_tape("big", TAPE_MAX_LINE_DEFAULT + 100);
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    /* The default limit: refused, naming the frame, and nothing stored. */
    EXPECT_ERR(tape_store_save(s, t), TAPE_ELIMIT, "frame 0");
    assert_non_null(strstr(tape_errmsg(), "max_line_bytes"));
    int ex = 1;
    EXPECT_OK(tape_store_exists(&ex, s, "big"));
    assert_false(ex);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM frames"), 0);
    EXPECT_OK(tape_store_close(s));
    /* Raised: saved, and it loads back with that config. */
    char raised[600];
    snprintf(raised, sizeof raised,
             "{\"path\":\"%s\",\"synchronous\":\"off\",\"max_line_bytes\":%u}", dbpath,
             TAPE_MAX_LINE_DEFAULT + 8192u);
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", raised, 0));
    EXPECT_OK(tape_store_save(s, t));
    tape *got = NULL;
    EXPECT_OK(tape_store_load(&got, s, "big"));
    assert_int_equal(tape_frame_count(got), 1);
    size_t a = 0, b = 0;
    tape_frame_line(tape_frame_at(t, 0), &a);
    tape_frame_line(tape_frame_at(got, 0), &b);
    assert_int_equal(a, b);
    tape_free(got);
    /* Ranged reads use the same limit. */
    tape_frame_iter *it = NULL;
    const tape_frame *f = NULL;
    EXPECT_OK(tape_store_read_frames(&it, s, "big", 0, UINT64_MAX));
    EXPECT_OK(tape_frame_iter_next(&f, it));
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_DONE);
    tape_frame_iter_free(it);
    EXPECT_OK(tape_store_close(s));
    /* The default-limit store refuses to read what it could not write. */
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    EXPECT_ERR(tape_store_load(&got, s, "big"), TAPE_ECORRUPT, "big");
    EXPECT_OK(tape_store_close(s));
    tape_free(t);
    /* The key's range is checked. */
    snprintf(raised, sizeof raised, "{\"path\":\"%s\",\"max_line_bytes\":1023}", dbpath);
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", raised, 0), TAPE_ECONFIG, "max_line_bytes");
    snprintf(raised, sizeof raised, "{\"path\":\"%s\",\"max_line_bytes\":\"big\"}", dbpath);
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", raised, 0), TAPE_ECONFIG, "max_line_bytes");
}

/* The backend of a sqlite store made directly through the provider, to
 * drive its writer ops without the core. */
typedef struct direct {
    const tape_backend_ops *ops;
    void *self;
} direct;

static void direct_open(direct *d, const char *json)
{
    tape_config *c = NULL;
    EXPECT_OK(tape_config_parse(&c, json));
    const tape_provider *p = tape_provider_sqlite();
    EXPECT_OK(p->validate(p->userdata, c));
    EXPECT_OK(p->create(&d->ops, &d->self, p->userdata, c));
    tape_config_free(c);
    EXPECT_OK(d->ops->open(d->self));
}

static void direct_close(direct *d)
{
    EXPECT_OK(d->ops->close(d->self));
    d->ops->free(d->self);
}

/* Frame `seq` of header h with a message of about `pad` bytes. */
static tape_frame *frame_of(tape *h, uint64_t seq, size_t pad)
{
    char *msg = malloc(pad + 128);
    assert_non_null(msg);
    int n = snprintf(msg, pad + 128, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"m\",\"params\":\"",
                     (unsigned long long)seq);
    memset(msg + n, 'p', pad);
    strcpy(msg + n + pad, "\"}");
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = (int64_t)seq * 10;
    d.message = msg;
    tape_frame *f = NULL;
    EXPECT_OK(tape_frame_new(&f, h, seq, &d));
    free(msg);
    EXPECT_OK(tape_account_frame(h, f));
    return f;
}

static void test_line_limit_writer(void **state)
{
    (void)state;
    char json[600];
    snprintf(json, sizeof json, "{\"path\":\"%s\",\"synchronous\":\"full\",\"max_line_bytes\":1024}",
             dbpath);
    direct d;
    direct_open(&d, json);
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "lim"));
    void *w = NULL;
    EXPECT_OK(d.ops->writer_begin(&w, d.self, h));
    tape_frame *f0 = frame_of(h, 0, 10);
    EXPECT_OK(d.ops->writer_append(w, f0, h));
    tape *h2 = NULL; /* the core's header counts only what was acknowledged */
    EXPECT_OK(tape_clone_meta(&h2, h));
    tape_frame *big = frame_of(h2, 1, 2000);
    EXPECT_ERR(d.ops->writer_append(w, big, h2), TAPE_ELIMIT, "frame 1");
    /* Refused, not stored, and the writer goes on. */
    tape_frame *f1 = frame_of(h, 1, 10);
    EXPECT_OK(d.ops->writer_append(w, f1, h));
    EXPECT_OK(tape_set_status(h, TAPE_STATUS_FINALIZED));
    EXPECT_OK(d.ops->writer_end(w, h, 1));
    tape *got = NULL;
    EXPECT_OK(d.ops->load(&got, d.self, "lim"));
    assert_int_equal(tape_frame_count(got), 2);
    size_t l = 0;
    tape_frame_line(tape_frame_at(got, 1), &l);
    assert_true(l < 1024);
    tape_free(got);
    tape_frame_free(f0);
    tape_frame_free(f1);
    tape_frame_free(big);
    tape_free(h);
    tape_free(h2);
    direct_close(&d);
}


/* ------------------------------------------------------------ locked database */

/* The log hook keeps the last message at or above WARN. */
static char last_log[4096];
static int log_count;

static void log_keep(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level >= TAPE_LOG_WARN) {
        snprintf(last_log, sizeof last_log, "%s", msg);
        log_count++;
    }
}

/* A second connection holding the write lock (BEGIN IMMEDIATE) until
 * unlock(). */
static sqlite3 *lock_db(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK) fail_msg("%s", err);
    return db;
}

static void unlock_db(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void locked_cfg(char *out, size_t cap, const char *sync)
{
    snprintf(out, cap, "{\"path\":\"%s\",\"synchronous\":\"%s\",\"busy_timeout_ms\":30}", dbpath,
             sync);
}

/* A failed finish keeps the writer as it was: the retry writes every
 * acknowledged frame. */
static void test_locked_finish_retry(void **state)
{
    (void)state;
    char json[600];
    locked_cfg(json, sizeof json, "normal");
    direct d;
    direct_open(&d, json);
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "fin"));
    void *w = NULL;
    EXPECT_OK(d.ops->writer_begin(&w, d.self, h));
    for (uint64_t i = 0; i < 5; i++) {
        tape_frame *f = frame_of(h, i, 10);
        EXPECT_OK(d.ops->writer_append(w, f, h));
        tape_frame_free(f);
    }
    EXPECT_OK(tape_set_status(h, TAPE_STATUS_FINALIZED));
    sqlite3 *other = lock_db();
    EXPECT_ERR(d.ops->writer_end(w, h, 1), TAPE_EBUSY, "locked");
    unlock_db(other);
    /* Nothing was written as finalized meanwhile, and the lease holds. */
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM frames"), 0);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM writers"), 1);
    EXPECT_ERR(d.ops->remove(d.self, "fin"), TAPE_EBUSY, "being recorded");
    /* That call flushed the batch: acknowledged frames are kept. */
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM frames"), 5);
    assert_int_equal(query_int(dbpath, "SELECT status FROM tapes"), TAPE_STATUS_RECORDING);
    EXPECT_OK(d.ops->writer_end(w, h, 1));
    tape *got = NULL;
    EXPECT_OK(d.ops->load(&got, d.self, "fin"));
    assert_int_equal(tape_frame_count(got), 5);
    assert_int_equal(tape_status(got), TAPE_STATUS_FINALIZED);
    tape_free(got);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM writers"), 0);
    tape_free(h);
    direct_close(&d);
}

/* Abandoning while the database stays locked frees the writer and
 * releases its lease in this process: later saves and deletes of the id,
 * from any store, are not blocked by it. */
static void test_locked_abandon_releases(void **state)
{
    (void)state;
    char json[600];
    locked_cfg(json, sizeof json, "normal");
    direct d;
    direct_open(&d, json);
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "aband"));
    void *w = NULL;
    EXPECT_OK(d.ops->writer_begin(&w, d.self, h));
    tape_frame *f = frame_of(h, 0, 10);
    EXPECT_OK(d.ops->writer_append(w, f, h));
    tape_frame_free(f);
    sqlite3 *other = lock_db();
    log_count = 0;
    tape_log_set(log_keep, NULL);
    assert_int_equal(d.ops->writer_end(w, h, 0), TAPE_EBUSY); /* and w is freed */
    tape_log_set(NULL, NULL);
    char abandoned[sizeof last_log];
    snprintf(abandoned, sizeof abandoned, "%s", last_log);
    assert_true(log_count > 0);
    unlock_db(other);
    /* The lease row is stale to this process: cleared with a warning. */
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", json, 0));
    EXPECT_OK(tape_store_delete(s, "aband"));
    /* What could not be written was logged. */
    assert_non_null(strstr(abandoned, "\"aband\""));
    assert_non_null(strstr(abandoned, "could not be written"));
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM writers"), 0);
    EXPECT_OK(tape_store_save(s, h));
    EXPECT_OK(d.ops->remove(d.self, "aband"));
    EXPECT_OK(tape_store_close(s));
    tape_free(h);
    direct_close(&d);
}

/* An append that fails is not stored later; those before it are. */
static void test_locked_failed_append(void **state)
{
    (void)state;
    static const char *const syncs[] = { "normal", "full" };
    for (int k = 0; k < 2; k++) {
        char json[600];
        locked_cfg(json, sizeof json, syncs[k]);
        direct d;
        direct_open(&d, json);
        tape *h = NULL;
        EXPECT_OK(tape_new(&h, "fail"));
        void *w = NULL;
        EXPECT_OK(d.ops->writer_begin(&w, d.self, h));
        /* "normal": a batch of 63 frames waits; the 64th commits it. */
        uint64_t n = k == 0 ? 63 : 3;
        for (uint64_t i = 0; i < n; i++) {
            tape_frame *f = frame_of(h, i, 10);
            EXPECT_OK(d.ops->writer_append(w, f, h));
            tape_frame_free(f);
        }
        tape *h2 = NULL; /* the core's header counts the failed frame too */
        EXPECT_OK(tape_clone_meta(&h2, h));
        tape_frame *f = frame_of(h2, n, 10);
        sqlite3 *other = lock_db();
        EXPECT_ERR(d.ops->writer_append(w, f, h2), TAPE_EBUSY, "locked");
        unlock_db(other);
        tape_frame_free(f);
        /* An unrelated call flushes the batch: not the failed frame. */
        tape *got = NULL;
        EXPECT_OK(d.ops->load(&got, d.self, "fail"));
        assert_int_equal(tape_frame_count(got), n);
        tape_free(got);
        EXPECT_OK(d.ops->writer_end(w, h2, 0));
        EXPECT_OK(d.ops->load(&got, d.self, "fail"));
        assert_int_equal(tape_frame_count(got), n);
        assert_int_equal(tape_status(got), TAPE_STATUS_RECORDING);
        tape_free(got);
        /* The listing agrees with the frames (it counts what was stored). */
        assert_int_equal(query_int(dbpath, "SELECT frame_count FROM tapes"), (int64_t)n);
        EXPECT_OK(d.ops->remove(d.self, "fail"));
        tape_free(h);
        tape_free(h2);
        direct_close(&d);
    }
}


static void append_n(tape_writer *w, int n)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 3;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
    for (int i = 0; i < n; i++) EXPECT_OK(tape_writer_append(NULL, w, &d));
}

static uint64_t frames_of(tape_store *s, const char *id, int *status)
{
    tape *t = NULL;
    EXPECT_OK(tape_store_load(&t, s, id));
    uint64_t n = tape_frame_count(t);
    if (status != NULL) *status = tape_status(t);
    tape_free(t);
    return n;
}

/* The same through the public API (the core retries a failed finish and
 * abandons at free). */
static void test_locked_public(void **state)
{
    (void)state;
    char json[600];
    locked_cfg(json, sizeof json, "normal");
    tape_store *a = NULL, *b = NULL;
    EXPECT_OK(tape_store_open(&a, NULL, "sqlite", json, 0));
    EXPECT_OK(tape_store_open(&b, NULL, "sqlite", json, 0));
    unsigned int native = 0;
    EXPECT_OK(tape_store_capabilities(&native, NULL, a));
    assert_true(native & TAPE_CAP_WRITER_RETRY);
    tape *h = NULL;
    int status = 0;

    /* A failed finish can be retried; every acknowledged frame is kept. */
    EXPECT_OK(tape_new(&h, "p1"));
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, a, h));
    append_n(w, 5);
    sqlite3 *other = lock_db();
    EXPECT_ERR(tape_writer_finish(w), TAPE_EBUSY, "locked");
    EXPECT_ERR(tape_writer_finish(w), TAPE_EBUSY, "locked");
    unlock_db(other);
    EXPECT_OK(tape_writer_finish(w));
    EXPECT_ERR(tape_writer_finish(w), TAPE_ESTATE, "already finished");
    tape_writer_free(w);
    assert_int_equal(frames_of(b, "p1", &status), 5);
    assert_int_equal(status, TAPE_STATUS_FINALIZED);
    tape_free(h);

    /* Freed while the database stays locked: the frames are kept and
     * written by the store's next call, as an abandoned recording. */
    EXPECT_OK(tape_new(&h, "p2"));
    EXPECT_OK(tape_store_record(&w, a, h));
    append_n(w, 5);
    other = lock_db();
    EXPECT_ERR(tape_writer_finish(w), TAPE_EBUSY, "locked");
    tape_writer_free(w);
    unlock_db(other);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    EXPECT_OK(tape_store_stats_get(&st, a));
    assert_int_equal(frames_of(b, "p2", &status), 5);
    assert_int_equal(status, TAPE_STATUS_RECORDING);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM writers"), 0);
    EXPECT_OK(tape_store_delete(b, "p2"));
    tape_free(h);

    /* The lease of a freed writer never blocks this process, even through
     * another store and before the first store writes again. */
    EXPECT_OK(tape_new(&h, "p3"));
    EXPECT_OK(tape_store_record(&w, a, h));
    append_n(w, 2);
    other = lock_db();
    log_count = 0;
    tape_log_set(log_keep, NULL);
    tape_writer_free(w);
    unlock_db(other);
    tape_store *c = NULL;
    EXPECT_OK(tape_store_open(&c, NULL, "sqlite", json, 0));
    EXPECT_OK(tape_store_delete(c, "p3"));
    EXPECT_OK(tape_store_save(c, h));
    EXPECT_OK(tape_store_close(c));
    /* The first store then finds its lease taken over: it says so. */
    EXPECT_OK(tape_store_stats_get(&st, a));
    tape_log_set(NULL, NULL);
    assert_non_null(strstr(last_log, "\"p3\""));
    assert_non_null(strstr(last_log, "lost"));
    assert_int_equal(frames_of(b, "p3", NULL), 0);
    EXPECT_OK(tape_store_delete(b, "p3"));
    tape_free(h);
    EXPECT_OK(tape_store_close(a));
    EXPECT_OK(tape_store_close(b));

    /* A failed append is not stored, and the writer goes on. */
    locked_cfg(json, sizeof json, "full");
    EXPECT_OK(tape_store_open(&a, NULL, "sqlite", json, 0));
    EXPECT_OK(tape_new(&h, "p4"));
    EXPECT_OK(tape_store_record(&w, a, h));
    append_n(w, 2);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = 9;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"refused\"}";
    other = lock_db();
    EXPECT_ERR(tape_writer_append(NULL, w, &d), TAPE_EBUSY, "locked");
    unlock_db(other);
    uint64_t seq = 0;
    append_n(w, 1);
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"last\"}";
    EXPECT_OK(tape_writer_append(&seq, w, &d));
    assert_int_equal(seq, 3);
    EXPECT_OK(tape_writer_finish(w));
    tape_writer_free(w);
    tape *got = NULL;
    EXPECT_OK(tape_store_load(&got, a, "p4"));
    assert_int_equal(tape_frame_count(got), 4);
    for (size_t i = 0; i < 4; i++) {
        size_t ml = 0;
        const char *m = tape_frame_message(tape_frame_at(got, i), &ml);
        assert_null(strstr(m, "refused"));
        assert_int_equal(tape_frame_seq(tape_frame_at(got, i)), i);
    }
    tape_free(got);
    tape_free(h);
    EXPECT_OK(tape_store_close(a));
}


/* ------------------------------------------------------------ learned metadata */

static void expect_meta(tape_store *s, const char *id, const char *name, const char *session,
                        const char *tag, const char *proto, const char *transport)
{
    tape_query *q = NULL;
    tape_result *r = NULL;
    char json[256];
    snprintf(json, sizeof json, "{\"session_id\":\"%s\",\"tags_all\":[\"%s\"]}", session, tag);
    EXPECT_OK(tape_query_parse(&q, json));
    EXPECT_OK(tape_store_query(&r, s, q));
    assert_int_equal(tape_result_count(r), 1);
    const tape_entry *e = tape_result_at(r, 0);
    assert_string_equal(tape_entry_id(e), id);
    assert_string_equal(tape_entry_name(e), name);
    assert_string_equal(tape_entry_description(e), "learned");
    tape_result_free(r);
    tape_query_free(q);
    tape *t = NULL;
    EXPECT_OK(tape_store_load(&t, s, id));
    assert_string_equal(tape_name(t), name);
    assert_string_equal(tape_session_id(t), session);
    assert_string_equal(tape_protocol_version(t), proto);
    assert_non_null(strstr(tape_transport_json(t), transport));
    assert_non_null(strstr(tape_environment_json(t), "redactions"));
    assert_int_equal(tape_tag_count(t), 2);
    assert_string_equal(tape_tag_at(t, 1), tag);
    tape_free(t);
}

static void test_writer_learned_meta(void **state)
{
    (void)state;
    tape_store *s = NULL, *other = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    EXPECT_OK(tape_store_open(&other, NULL, "sqlite", cfg, 0));
    tape *h = NULL, *m = NULL;
    EXPECT_OK(tape_new(&h, "learn"));
    EXPECT_OK(tape_set_name(h, "unknown client"));
    EXPECT_OK(tape_add_tag(h, "proxy"));
    EXPECT_OK(tape_set_session_id(h, "s-0"));
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    append_n(w, 1);
    /* What initialize taught the recorder. */
    EXPECT_OK(tape_new(&m, "ignored"));
    EXPECT_OK(tape_set_name(m, "claude-code 1.2 -> everything 0.6"));
    EXPECT_OK(tape_set_description(m, "learned"));
    EXPECT_OK(tape_add_tag(m, "proxy"));
    EXPECT_OK(tape_add_tag(m, "client:claude-code"));
    EXPECT_OK(tape_set_session_id(m, "s-1"));
    EXPECT_OK(tape_set_protocol_version(m, "2025-06-18"));
    EXPECT_OK(tape_set_transport_json(m, "{\"type\":\"stdio\"}"));
    EXPECT_OK(tape_set_environment_json(m, "{\"redactions\":0}"));
    EXPECT_OK(tape_writer_update_meta(w, m));
    append_n(w, 1);
    /* The next flush (a reader on the same store) persists it; another
     * connection sees it too. */
    expect_meta(s, "learn", "claude-code 1.2 -> everything 0.6", "s-1", "client:claude-code",
                "2025-06-18", "stdio");
    expect_meta(other, "learn", "claude-code 1.2 -> everything 0.6", "s-1",
                "client:claude-code", "2025-06-18", "stdio");
    /* Learned again just before the end: the finish persists it. */
    EXPECT_OK(tape_remove_tag(m, "client:claude-code"));
    EXPECT_OK(tape_add_tag(m, "client:cursor"));
    EXPECT_OK(tape_set_name(m, "cursor"));
    EXPECT_OK(tape_set_session_id(m, "s-2"));
    EXPECT_OK(tape_set_transport_json(m, "{\"type\":\"http\"}"));
    EXPECT_OK(tape_writer_update_meta(w, m));
    EXPECT_OK(tape_writer_finish(w));
    tape_writer_free(w);
    expect_meta(other, "learn", "cursor", "s-2", "client:cursor", "2025-06-18", "http");
    int status = 0;
    assert_int_equal(frames_of(other, "learn", &status), 2);
    assert_int_equal(status, TAPE_STATUS_FINALIZED);
    tape_free(h);
    tape_free(m);
    EXPECT_OK(tape_store_close(s));
    EXPECT_OK(tape_store_close(other));
}


/* ------------------------------------------------------------ read_only */

/* FNV-1a of a file, or 0 if it does not exist. */
static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return 0;
    uint64_t h = 1469598103934665603u;
    int c;
    while ((c = getc(f)) != EOF) h = (h ^ (uint64_t)(unsigned char)c) * 1099511628211u;
    fclose(f);
    return h | 1;
}

static void hash_files(uint64_t out[3])
{
    static const char *const sfx[] = { "", "-wal", "-shm" };
    char p[400];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
        out[i] = file_hash(p);
    }
}

static void ro_cfg(char *out, size_t cap)
{
    snprintf(out, cap, "{\"path\":\"%s\",\"read_only\":true}", dbpath);
}

static void fill_store(tape_store *s, int n)
{
    for (int i = 0; i < n; i++) {
        tape *t = NULL;
        make_tape(&t, i);
        EXPECT_OK(tape_add_tag(t, "ro"));
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = 1000;
        d.message = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"tools/call\",\"params\":{\"q\":\"findme\"}}";
        EXPECT_OK(tape_append_frame(NULL, t, &d));
        EXPECT_OK(tape_store_save(s, t));
        tape_free(t);
    }
}

/* Every kind of read, and every kind of write refused. */
static void ro_session(int expect_tapes)
{
    char json[600];
    ro_cfg(json, sizeof json);
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", json, TAPE_OPEN_EAGER));
    tape_result *r = NULL;
    EXPECT_OK(tape_store_query(&r, s, NULL));
    assert_int_equal(tape_result_count(r), (size_t)expect_tapes);
    for (size_t i = 0; i < tape_result_count(r); i++) {
        const char *id = tape_entry_id(tape_result_at(r, i));
        tape *t = NULL;
        EXPECT_OK(tape_store_load(&t, s, id));
        int ex = 0;
        EXPECT_OK(tape_store_exists(&ex, s, id));
        assert_true(ex);
        tape_frame_iter *it = NULL;
        const tape_frame *f = NULL;
        EXPECT_OK(tape_store_read_frames(&it, s, id, 1, 2));
        while (tape_frame_iter_next(&f, it) == TAPE_OK) assert_true(tape_frame_seq(f) <= 2);
        tape_frame_iter_free(it);
        EXPECT_ERR(tape_store_save(s, t), TAPE_EUNSUPPORTED, "read-only");
        EXPECT_ERR(tape_store_delete(s, id), TAPE_EUNSUPPORTED, "read-only");
        tape_free(t);
    }
    tape_result_free(r);
    tape_query *q = NULL;
    EXPECT_OK(tape_query_parse(&q, "{\"text\":\"FINDME\",\"tags_any\":[\"ro\"],\"limit\":2}"));
    EXPECT_OK(tape_store_query(&r, s, q));
    assert_int_equal(tape_result_count(r), expect_tapes < 2 ? (size_t)expect_tapes : 2);
    tape_result_free(r);
    tape_query_free(q);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    EXPECT_OK(tape_store_stats_get(&st, s));
    assert_int_equal(st.tape_count, (uint64_t)expect_tapes);
    tape *h = NULL;
    tape_writer *w = NULL;
    EXPECT_OK(tape_new(&h, "new-one"));
    EXPECT_ERR(tape_store_record(&w, s, h), TAPE_EUNSUPPORTED, "read-only");
    EXPECT_ERR(tape_store_save(s, h), TAPE_EUNSUPPORTED, "read_only");
    tape_free(h);
    EXPECT_OK(tape_store_close(s));
}

static void test_read_only_key(void **state)
{
    (void)state;
    char json[600];
    ro_cfg(json, sizeof json);
    tape_store *s = NULL;
    /* A missing file is not created. */
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", json, TAPE_OPEN_EAGER), TAPE_EIO,
               "does not create");
    struct stat sb;
    assert_int_not_equal(stat(dbpath, &sb), 0);
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", "{\"path\":\":memory:\",\"read_only\":true}", 0),
               TAPE_ECONFIG, "read_only");
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", "{\"path\":\"x.db\",\"read_only\":1}", 0),
               TAPE_ECONFIG, "read_only");

    /* A WAL database at rest (no -wal, no -shm): nothing is written, and
     * no -wal or -shm is created. */
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    fill_store(s, 5);
    EXPECT_OK(tape_store_close(s));
    uint64_t before[3], after[3];
    hash_files(before);
    assert_int_equal(before[1], 0);
    assert_int_equal(before[2], 0);
    ro_session(5);
    hash_files(after);
    assert_memory_equal(before, after, sizeof before);

    /* A WAL database another process has open (its -wal and -shm exist,
     * the -wal holds a tape not yet checkpointed): read, and the three
     * files stay byte-identical. */
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tape_store *c = NULL;
        char b = 0;
        int ok = tape_store_open(&c, NULL, "sqlite", cfg, 0) == TAPE_OK;
        tape *t = NULL;
        ok = ok && tape_new(&t, "in-the-wal") == TAPE_OK && tape_add_tag(t, "ro") == TAPE_OK;
        ok = ok && tape_store_save(c, t) == TAPE_OK;
        tape_free(t);
        b = ok ? 'y' : 'n';
        if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1) ok = 0;
        tape_store_close(c);
        _exit(ok ? 0 : 1);
    }
    char b = 0;
    assert_int_equal(read(ready[0], &b, 1), 1);
    assert_int_equal(b, 'y');
    hash_files(before);
    assert_int_not_equal(before[1], 0);
    assert_int_not_equal(before[2], 0);
    ro_session(6);
    hash_files(after);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(write(go[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);

    /* A rollback-journal database. */
    char dj[600];
    snprintf(dj, sizeof dj, "{\"path\":\"%s\",\"wal\":false}", dbpath);
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", dj, TAPE_OPEN_EAGER));
    EXPECT_OK(tape_store_close(s));
    hash_files(before);
    ro_session(6);
    hash_files(after);
    assert_memory_equal(before, after, sizeof before);
}

/* Opened immutable (at rest), a read-only store notices a writer that
 * opens the database later and reads through its WAL. */
static void test_read_only_sees_later_writer(void **state)
{
    (void)state;
    tape_store *w = NULL, *r = NULL;
    EXPECT_OK(tape_store_open(&w, NULL, "sqlite", cfg, 0));
    fill_store(w, 2);
    EXPECT_OK(tape_store_close(w));
    char json[600];
    ro_cfg(json, sizeof json);
    EXPECT_OK(tape_store_open(&r, NULL, "sqlite", json, TAPE_OPEN_EAGER));
    int ex = 0;
    EXPECT_OK(tape_store_exists(&ex, r, "late"));
    assert_false(ex);
    EXPECT_OK(tape_store_open(&w, NULL, "sqlite", cfg, 0));
    tape *t = NULL;
    EXPECT_OK(tape_new(&t, "late"));
    EXPECT_OK(tape_store_save(w, t));
    tape_free(t);
    EXPECT_OK(tape_store_exists(&ex, r, "late"));
    assert_true(ex);
    tape_result *res = NULL;
    EXPECT_OK(tape_store_query(&res, r, NULL));
    assert_int_equal(tape_result_count(res), 3);
    tape_result_free(res);
    EXPECT_OK(tape_store_close(w));
    EXPECT_OK(tape_store_close(r));
}

/* A read-only open never migrates. */
static void test_read_only_v1(void **state)
{
    (void)state;
    exec_sql(dbpath, v1_ddl);
    uint64_t before[3], after[3];
    hash_files(before);
    char json[600];
    ro_cfg(json, sizeof json);
    tape_store *s = NULL;
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", json, TAPE_OPEN_EAGER), TAPE_EVERSION,
               "does not migrate");
    hash_files(after);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(query_int(dbpath, "PRAGMA user_version"), 1);
    /* An empty file is not given a schema either. */
    unlink(dbpath);
    write_all(dbpath, "", 0);
    EXPECT_ERR(tape_store_open(&s, NULL, "sqlite", json, TAPE_OPEN_EAGER), TAPE_EUNSUPPORTED,
               "no tapestore schema");
    struct stat sb;
    assert_int_equal(stat(dbpath, &sb), 0);
    assert_int_equal(sb.st_size, 0);
}


/* ------------------------------------------------------------ the frames win */

/* Every listed entry's stats equal what a load computes from the frames
 * (skip: an id not to load). Returns the number of entries. */
static size_t check_stats_agree(tape_store *s, const char *skip)
{
    tape_result *r = NULL;
    EXPECT_OK(tape_store_query(&r, s, NULL));
    for (size_t i = 0; i < tape_result_count(r); i++) {
        const tape_entry *e = tape_result_at(r, i);
        if (skip != NULL && strcmp(tape_entry_id(e), skip) == 0) continue;
        tape *t = NULL;
        EXPECT_OK(tape_store_load(&t, s, tape_entry_id(e)));
        tape_stats a = TAPE_STATS_INIT, b = TAPE_STATS_INIT;
        EXPECT_OK(tape_entry_get_stats(&a, e));
        EXPECT_OK(tape_get_stats(&b, t));
        if (a.frame_count != b.frame_count || a.duration_ms != b.duration_ms ||
            a.last_sequence != b.last_sequence || a.client_to_server != b.client_to_server ||
            a.server_to_client != b.server_to_client || a.error_count != b.error_count ||
            a.correlation_count != b.correlation_count || a.file_size_bytes != b.file_size_bytes) {
            fail_msg("tape %s: listed frames %llu duration %lld size %llu corr %llu, loaded "
                     "frames %llu duration %lld size %llu corr %llu",
                     tape_entry_id(e), (unsigned long long)a.frame_count,
                     (long long)a.duration_ms, (unsigned long long)a.file_size_bytes,
                     (unsigned long long)a.correlation_count, (unsigned long long)b.frame_count,
                     (long long)b.duration_ms, (unsigned long long)b.file_size_bytes,
                     (unsigned long long)b.correlation_count);
        }
        tape_free(t);
    }
    size_t n = tape_result_count(r);
    tape_result_free(r);
    return n;
}

static size_t query_count(tape_store *s, const char *json)
{
    tape_query *q = NULL;
    tape_result *r = NULL;
    EXPECT_OK(tape_query_parse(&q, json));
    EXPECT_OK(tape_store_query(&r, s, q));
    size_t n = tape_result_count(r);
    tape_result_free(r);
    tape_query_free(q);
    return n;
}

static void test_stats_frames_win(void **state)
{
    (void)state;
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", i);
        tape *t = NULL;
        EXPECT_OK(tape_new(&t, id));
        for (int f = 0; f < 3; f++) {
            tape_frame_desc d = TAPE_FRAME_DESC_INIT;
            d.direction = f % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
            d.ts_ms = 100 * f;
            d.message = f == 2 ? "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"x\"}}"
                               : "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}";
            EXPECT_OK(tape_append_frame(NULL, t, &d));
        }
        EXPECT_OK(tape_add_correlation(t, "1", 0, 1, 100, "ok"));
        EXPECT_OK(tape_store_save(s, t));
        tape_free(t);
    }
    /* A recording with a correlation and learned metadata, finished; one
     * left recording. */
    tape *h = NULL, *m = NULL;
    tape_writer *w = NULL;
    EXPECT_OK(tape_new(&h, "rec"));
    EXPECT_OK(tape_store_record(&w, s, h));
    append_n(w, 3);
    EXPECT_OK(tape_writer_add_correlation(w, "1", 0, 1, 5, "ok"));
    EXPECT_OK(tape_new(&m, "x"));
    EXPECT_OK(tape_set_name(m, "a name learned later"));
    EXPECT_OK(tape_add_tag(m, "learned"));
    EXPECT_OK(tape_writer_update_meta(w, m));
    append_n(w, 2);
    EXPECT_OK(tape_writer_finish(w));
    tape_writer_free(w);
    tape_free(h);
    EXPECT_OK(tape_new(&h, "open"));
    EXPECT_OK(tape_store_record(&w, s, h));
    append_n(w, 70);
    assert_int_equal(check_stats_agree(s, NULL), 6);
    tape_writer_free(w);
    tape_free(h);
    assert_int_equal(check_stats_agree(s, NULL), 6);

    /* Edits from outside: a frame deleted, cached columns and the stored
     * meta's stats changed, a frame's time rewritten. */
    exec_sql(dbpath, "DELETE FROM frames WHERE tape_id = 'w0' AND seq = 2;"
                     "UPDATE tapes SET frame_count = 99, duration_ms = 7 WHERE id = 'w1';"
                     "UPDATE tapes SET meta = json_set(meta, '$.stats.frame_count', 42,"
                     " '$.stats.duration_ms', 4200) WHERE id = 'w2';"
                     "UPDATE frames SET head = replace(head, '\"ts\":200', '\"ts\":9200')"
                     " WHERE tape_id = 'w3' AND seq = 2;");
    assert_int_equal(query_count(s, "{\"min_frames\":42,\"max_frames\":60}"), 0);
    assert_int_equal(query_count(s, "{\"min_frames\":99}"), 0);
    assert_int_equal(check_stats_agree(s, NULL), 6);
    assert_int_equal(query_count(s, "{\"min_duration_ms\":9200}"), 1);
    assert_int_equal(query_count(s, "{\"max_frames\":2}"), 1); /* w0 */
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    EXPECT_OK(tape_store_stats_get(&st, s));
    assert_int_equal(st.frame_count, 2 + 3 * 3 + 5 + 70);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM tapes WHERE stale != 0"), 0);
    tape_free(m);
    EXPECT_OK(tape_store_close(s));
}

/* One damaged tape (a frame row made invalid from outside) does not break
 * text search: it is skipped and reported, unless the query is strict. */
static void test_text_search_damaged(void **state)
{
    (void)state;
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    fill_store(s, 3); /* every tape has a "findme" frame */
    tape_result *r = NULL;
    EXPECT_OK(tape_store_query(&r, s, NULL));
    char bad[32], good[32];
    snprintf(bad, sizeof bad, "%s", tape_entry_id(tape_result_at(r, 0)));
    snprintf(good, sizeof good, "%s", tape_entry_id(tape_result_at(r, 1)));
    tape_result_free(r);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE frames SET head = '{broken' || head WHERE tape_id = '%s' AND"
             " message LIKE '%%findme%%'",
             bad);
    exec_sql(dbpath, sql);
    log_count = 0;
    last_log[0] = '\0';
    tape_log_set(log_keep, NULL);
    tape_query *q = NULL;
    EXPECT_OK(tape_query_parse(&q, "{\"text\":\"findme\",\"order_by\":\"id\"}"));
    EXPECT_OK(tape_store_query(&r, s, q));
    tape_log_set(NULL, NULL);
    assert_int_equal(tape_result_count(r), 2);
    for (size_t i = 0; i < 2; i++) assert_string_not_equal(tape_entry_id(tape_result_at(r, i)), bad);
    tape_result_free(r);
    tape_query_free(q);
    assert_true(log_count > 0);
    assert_non_null(strstr(last_log, bad));
    /* The other terms do not read frames: the tape is still listed. */
    assert_int_equal(query_count(s, "{}"), 3);
    /* Strict: the old behaviour. */
    EXPECT_OK(tape_query_parse(&q, "{\"text\":\"findme\",\"strict\":true}"));
    EXPECT_ERR(tape_store_query(&r, s, q), TAPE_ECORRUPT, bad);
    tape_query_free(q);
    tape *t = NULL;
    EXPECT_ERR(tape_store_load(&t, s, bad), TAPE_ECORRUPT, bad);
    /* Another connection sees the same (the mark is in the database). */
    tape_store *o = NULL;
    EXPECT_OK(tape_store_open(&o, NULL, "sqlite", cfg, 0));
    assert_int_equal(query_count(o, "{\"text\":\"FINDME\"}"), 2);
    /* Repaired from outside: found again. */
    snprintf(sql, sizeof sql,
             "UPDATE frames SET head = substr(head, 8) WHERE tape_id = '%s' AND"
             " head LIKE '{broken%%'",
             bad);
    exec_sql(dbpath, sql);
    assert_int_equal(query_count(o, "{\"text\":\"findme\"}"), 3);
    (void)good;
    EXPECT_OK(tape_store_close(o));
    EXPECT_OK(tape_store_close(s));
}


/* A read-only store cannot write corrections back: it makes them in
 * memory, for every listing, search and stats call. */
static void test_read_only_frames_win(void **state)
{
    (void)state;
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", cfg, 0));
    fill_store(s, 4);
    tape_result *r = NULL;
    EXPECT_OK(tape_store_query(&r, s, NULL));
    char bad[32], edited[32];
    snprintf(bad, sizeof bad, "%s", tape_entry_id(tape_result_at(r, 0)));
    snprintf(edited, sizeof edited, "%s", tape_entry_id(tape_result_at(r, 1)));
    tape_result_free(r);
    EXPECT_OK(tape_store_close(s));
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE frames SET head = '{broken' || head WHERE tape_id = '%s' AND"
             " message LIKE '%%findme%%';"
             "UPDATE tapes SET frame_count = 500, duration_ms = 500, meta = json_set(meta,"
             " '$.stats.frame_count', 500, '$.stats.duration_ms', 500) WHERE id = '%s';",
             bad, edited);
    exec_sql(dbpath, sql);
    uint64_t before[3], after[3];
    hash_files(before);
    char json[600];
    ro_cfg(json, sizeof json);
    EXPECT_OK(tape_store_open(&s, NULL, "sqlite", json, 0));
    assert_int_equal(check_stats_agree(s, bad), 4);
    assert_int_equal(query_count(s, "{\"min_frames\":500}"), 0);
    assert_int_equal(query_count(s, "{\"max_duration_ms\":1000,\"order_by\":\"duration_ms\"}"), 4);
    log_count = 0;
    last_log[0] = '\0';
    tape_log_set(log_keep, NULL);
    assert_int_equal(query_count(s, "{\"text\":\"findme\"}"), 3);
    tape_log_set(NULL, NULL);
    assert_non_null(strstr(last_log, bad));
    tape_query *q = NULL;
    EXPECT_OK(tape_query_parse(&q, "{\"text\":\"findme\",\"strict\":true}"));
    EXPECT_ERR(tape_store_query(&r, s, q), TAPE_ECORRUPT, bad);
    tape_query_free(q);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    EXPECT_OK(tape_store_stats_get(&st, s));
    assert_int_equal(st.tape_count, 4);
    assert_true(st.frame_count < 500);
    EXPECT_OK(tape_store_close(s));
    hash_files(after);
    assert_memory_equal(before, after, sizeof before);
}

/* ------------------------------------------------------------ leases */

static void test_writer_leases(void **state)
{
    (void)state;
    tape_store *a = NULL, *b = NULL;
    tape *h = NULL;
    tape_writer *w = NULL, *w2 = NULL;
    assert_int_equal(tape_store_open(&a, NULL, "sqlite", cfg, 0), TAPE_OK);
    assert_int_equal(tape_store_open(&b, NULL, "sqlite", cfg, 0), TAPE_OK);
    assert_int_equal(tape_new(&h, "live"), TAPE_OK);
    assert_int_equal(tape_store_record(&w, a, h), TAPE_OK);
    /* Another store (connection) on the same file sees the recording. */
    assert_int_equal(tape_store_record(&w2, b, h), TAPE_EBUSY);
    assert_non_null(strstr(tape_errmsg(), "\"live\" is being recorded"));
    assert_int_equal(tape_store_delete(b, "live"), TAPE_EBUSY);
    assert_int_equal(tape_store_save(b, h), TAPE_EBUSY);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 1;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
    for (int i = 0; i < 100; i++) assert_int_equal(tape_writer_append(NULL, w, &d), TAPE_OK);
    /* Frames still batched in store a are flushed when a reads. */
    tape *got = NULL;
    assert_int_equal(tape_store_load(&got, a, "live"), TAPE_OK);
    assert_int_equal(tape_frame_count(got), 100);
    tape_free(got);
    assert_int_equal(tape_writer_finish(w), TAPE_OK);
    tape_writer_free(w);
    assert_int_equal(tape_store_load(&got, b, "live"), TAPE_OK);
    assert_int_equal(tape_status(got), TAPE_STATUS_FINALIZED);
    assert_int_equal(tape_frame_count(got), 100);
    tape_free(got);
    assert_int_equal(tape_store_delete(b, "live"), TAPE_OK);

    /* A lease left by a process that is gone (a crash) is stale: the tape
     * is a normal, unfinished tape again. */
    assert_int_equal(tape_store_save(a, h), TAPE_OK);
    const int gone = 0x7ffffff0; /* above any pid_max: no such process */
    assert_int_equal(kill(gone, 0), -1);
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO writers VALUES('live', %d, 42, 0);", gone);
    exec_sql(dbpath, sql);
    assert_int_equal(tape_store_record(&w2, b, h), TAPE_EEXISTS);
    assert_int_equal(tape_store_delete(b, "live"), TAPE_OK);
    assert_int_equal(query_int(dbpath, "SELECT count(*) FROM writers"), 0);
    /* A lease of a live process (our parent) holds. */
    assert_int_equal(tape_store_save(a, h), TAPE_OK);
    snprintf(sql, sizeof sql, "INSERT INTO writers VALUES('live', %d, 42, 0);", (int)getppid());
    exec_sql(dbpath, sql);
    assert_int_equal(tape_store_delete(a, "live"), TAPE_EBUSY);
    tape_free(h);
    assert_int_equal(tape_store_close(a), TAPE_OK);
    assert_int_equal(tape_store_close(b), TAPE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_differential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_application, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_limit_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_limit_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_finish_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_abandon_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_failed_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_public, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_learned_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_sees_later_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_frames_win, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_search_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_frames_win, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
