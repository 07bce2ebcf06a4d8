/*
 * Filesystem provider: files on disk, config, the index as a cache,
 * corruption handling, symlinks, busy writers, several processes.
 * (The conformance suite covers the general provider contract.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tapestore/provider.h"

#include "rm_rf.h"
#include "tape_test.h"

static char dir[256];
static char cfg[512];


static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tape-fs-test-XXXXXX");
    if (mkdtemp(dir) == NULL) return -1;
    strcat(dir, "/store"); /* not created yet: the provider makes it */
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s\",\"durability\":\"none\"}", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char parent[256];
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    rm_rf(parent);
    return 0;
}

static tape_store *open_fs(const char *config)
{
    tape_store *s = NULL;
    int rc = tape_store_open(&s, NULL, "filesystem", config, 0);
    if (rc != TAPE_OK) fail_msg("open: %s", tape_errmsg());
    return s;
}

static tape *make_tape(const char *id, int frames)
{
    tape *t = NULL;
    assert_int_equal(tape_new(&t, id), TAPE_OK);
    assert_int_equal(tape_set_name(t, "fs test"), TAPE_OK);
    assert_int_equal(tape_add_tag(t, "prod"), TAPE_OK);
    for (int i = 0; i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        char msg[96];
        snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"id\":%d}", i);
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i;
        d.message = msg;
        assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    }
    return t;
}

static void save(tape_store *s, const char *id, int frames)
{
    tape *t = make_tape(id, frames);
    if (tape_store_save(s, t) != TAPE_OK) fail_msg("save %s: %s", id, tape_errmsg());
    tape_free(t);
}

static char *path_of(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *name)
{
    FILE *f = fopen(path_of(name), "r");
    if (f == NULL) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t query_count(tape_store *s, const char *json)
{
    tape_query *q = NULL;
    assert_int_equal(tape_query_parse(&q, json), TAPE_OK);
    tape_result *r = NULL;
    if (tape_store_query(&r, s, q) != TAPE_OK) fail_msg("query: %s", tape_errmsg());
    size_t n = tape_result_count(r);
    tape_result_free(r);
    tape_query_free(q);
    return n;
}

static void test_files_and_modes(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "t1", 3);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(path_of("t1.jsonl"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(path_of("t1.meta.json"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(path_of("index.json"), &sb) == 0 || stat(path_of("index.log"), &sb) == 0, 1);
    /* The .jsonl is the Shadowcat format: init line first, then frames. */
    const char *text = read_text("t1.jsonl");
    assert_non_null(strstr(text, "\"type\":\"init\""));
    assert_non_null(strstr(text, "\"version\":\"2.0\""));
    assert_non_null(strstr(text, "\"type\":\"frame\""));
    assert_true(strstr(text, "\"type\":\"init\"") < strstr(text, "\"type\":\"frame\""));
    assert_non_null(strstr(read_text("t1.meta.json"), "\"tags\""));
    tape_store_free(s);

    char c2[600];
    snprintf(c2, sizeof c2, "{\"path\":\"%s\",\"file_mode\":\"0640\"}", dir);
    s = open_fs(c2);
    save(s, "t2", 1);
    assert_int_equal(stat(path_of("t2.jsonl"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    tape_store_free(s);
}

static void test_config_errors(void **state)
{
    (void)state;
    struct { const char *json; const char *key; } bad[] = {
        { "{\"pth\":\"x\"}", "\"pth\"" },
        { "{\"durability\":\"sometimes\"}", "\"durability\"" },
        { "{\"durability\":1}", "\"durability\"" },
        { "{\"checkpoint_every\":0}", "\"checkpoint_every\"" },
        { "{\"file_mode\":\"0999\"}", "\"file_mode\"" },
        { "{\"file_mode\":\"0044\"}", "\"file_mode\"" },
        { "{\"file_mode\":\"0444\"}", "\"file_mode\"" }, /* no owner write */
        { "{\"file_mode\":\"0200\"}", "\"file_mode\"" }, /* no owner read */
        { "{\"file_mode\":292}", "\"file_mode\"" },      /* 0444 as an integer */
        { "{\"max_line_bytes\":10}", "\"max_line_bytes\"" },
        { "{\"path\":\"\"}", "\"path\"" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tape_store *s = NULL;
        assert_int_equal(tape_store_open(&s, NULL, "filesystem", bad[i].json, 0), TAPE_ECONFIG);
        if (strstr(tape_errmsg(), bad[i].key) == NULL) {
            fail_msg("%s: message \"%s\" lacks %s", bad[i].json, tape_errmsg(), bad[i].key);
        }
        assert_null(s);
    }
    /* Validation creates nothing. */
    struct stat sb;
    assert_int_equal(stat(dir, &sb), -1);
    /* A path that cannot be a directory fails at first use, clearly. */
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "filesystem", "{\"path\":\"/proc/self/status/x\"}",
                                     TAPE_OPEN_EAGER),
                     TAPE_EIO);
    assert_non_null(strstr(tape_errmsg(), "/proc/self/status/x"));
}

static void test_index_is_only_a_cache(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%02d", i);
        save(s, id, i % 4);
    }
    tape_store_free(s);
    unlink(path_of("index.json"));
    unlink(path_of("index.log"));
    s = open_fs(cfg);
    assert_int_equal(query_count(s, "{}"), 20);
    assert_int_equal(query_count(s, "{\"min_frames\":3}"), 5);
    tape_store_free(s);

    /* Garbage index: rebuilt, nothing lost, a warning says so. */
    write_file("index.json", "this is not json");
    write_file("index.log", "{\"op\":\"put\"\n");
    s = open_fs(cfg);
    assert_int_equal(query_count(s, "{}"), 20);
    tape_store_free(s);
    assert_non_null(strstr(read_text("index.json"), "tapestore-fs-index"));

    /* A stale index (a meta file changed or removed behind its back). */
    unlink(path_of("c00.meta.json"));
    unlink(path_of("c00.jsonl"));
    s = open_fs(cfg);
    assert_int_equal(query_count(s, "{}"), 19);
    tape_store_free(s);
}

static void test_leftover_temp_files_removed(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "keep", 1);
    tape_store_free(s);
    /* A crashed writer (pid that cannot exist) left these behind. */
    write_file("keep.jsonl.tmp.999999999.0", "{\"type\":\"init\"");
    write_file("index.json.tmp.999999999.3", "{");
    s = open_fs(cfg);
    tape *t = NULL;
    assert_int_equal(tape_store_load(&t, s, "keep"), TAPE_OK);
    tape_free(t);
    tape_store_free(s);
    struct stat sb;
    assert_int_equal(stat(path_of("keep.jsonl.tmp.999999999.0"), &sb), -1);
    assert_int_equal(stat(path_of("index.json.tmp.999999999.3"), &sb), -1);
}

static void test_torn_tail_and_bad_lines(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "torn", 4);
    save(s, "mid", 4);
    tape_store_free(s);
    /* A crash mid-append: half a line at the end. */
    FILE *f = fopen(path_of("torn.jsonl"), "a");
    fputs("{\"type\":\"frame\",\"seq\":4,\"ts\":9,\"dir\":\"client_to_se", f);
    fclose(f);
    /* Garbage in the middle of another. */
    char *text = strdup(read_text("mid.jsonl"));
    char *second = strchr(strchr(text, '\n') + 1, '\n') + 1; /* after init + frame 0 */
    f = fopen(path_of("mid.jsonl"), "w");
    fwrite(text, 1, (size_t)(second - text), f);
    fputs("not json at all\n", f);
    fputs(second, f);
    fclose(f);
    free(text);

    s = open_fs(cfg);
    tape *t = NULL;
    assert_int_equal(tape_store_load(&t, s, "torn"), TAPE_OK);
    assert_int_equal(tape_frame_count(t), 4);
    tape_free(t);
    tape_frame_iter *it = NULL;
    assert_int_equal(tape_store_read_frames(&it, s, "torn", 0, UINT64_MAX), TAPE_OK);
    const tape_frame *fr;
    int n = 0;
    while (tape_frame_iter_next(&fr, it) == TAPE_OK) n++;
    assert_int_equal(n, 4);
    tape_frame_iter_free(it);

    assert_int_equal(tape_store_load(&t, s, "mid"), TAPE_ECORRUPT);
    assert_non_null(strstr(tape_errmsg(), "line 3"));
    assert_null(t);
    assert_int_equal(query_count(s, "{}"), 2); /* still listed, for whoever repairs it */
    tape_store_free(s);
    /* With its meta damaged too, it is listed from what recovery reads. */
    char *meta = strdup(read_text("mid.meta.json"));
    meta[strlen(meta) / 2] = '\0';
    write_file("mid.meta.json", meta);
    free(meta);
    s = open_fs(cfg);
    assert_int_equal(query_count(s, "{\"min_frames\":4}"), 2);
    tape_store_free(s);

    char rc[600];
    snprintf(rc, sizeof rc, "{\"path\":\"%s\",\"recover\":true}", dir);
    s = open_fs(rc);
    assert_int_equal(tape_store_load(&t, s, "mid"), TAPE_OK);
    assert_int_equal(tape_frame_count(t), 4);
    tape_free(t);
    tape_store_free(s);
}

static void test_damaged_meta(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "m1", 5);
    tape_store_free(s);
    /* Truncated meta: the tape still loads and lists, from its .jsonl. */
    char *meta = strdup(read_text("m1.meta.json"));
    meta[strlen(meta) / 2] = '\0';
    write_file("m1.meta.json", meta);
    free(meta);
    s = open_fs(cfg);
    tape *t = NULL;
    assert_int_equal(tape_store_load(&t, s, "m1"), TAPE_OK);
    assert_int_equal(tape_frame_count(t), 5);
    tape_free(t);
    assert_int_equal(query_count(s, "{\"min_frames\":5}"), 1);
    tape_store_free(s);

    /* A meta that disagrees with its tape: the frames win for stats. */
    s = open_fs(cfg);
    save(s, "m2", 2);
    tape_store_free(s);
    tape *t3 = make_tape("m2", 7);
    char *jsonl = NULL;
    size_t len = 0;
    assert_int_equal(tape_encode_jsonl(&jsonl, &len, t3), TAPE_OK);
    FILE *f = fopen(path_of("m2.jsonl"), "w");
    fwrite(jsonl, 1, len, f);
    fclose(f);
    tape_string_free(jsonl);
    tape_free(t3);
    s = open_fs(cfg);
    assert_int_equal(tape_store_load(&t, s, "m2"), TAPE_OK);
    assert_int_equal(tape_frame_count(t), 7);
    tape_stats st = TAPE_STATS_INIT;
    assert_int_equal(tape_get_stats(&st, t), TAPE_OK);
    assert_int_equal(st.frame_count, 7);
    tape_free(t);
    tape_store_free(s);
}

static void test_symlinks_not_followed(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "real", 1);
    tape_store_free(s);
    /* A link inside the store pointing out of it is not read. */
    char outside[300];
    snprintf(outside, sizeof outside, "%s/../outside.jsonl", dir);
    FILE *f = fopen(outside, "w");
    fputs("{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"evil\"}\n", f);
    fclose(f);
    assert_int_equal(symlink(outside, path_of("evil.jsonl")), 0);
    s = open_fs(cfg);
    tape *t = NULL;
    assert_int_not_equal(tape_store_load(&t, s, "evil"), TAPE_OK);
    assert_null(t);
    assert_int_equal(query_count(s, "{}"), 1);
    tape_store_free(s);
}

static void test_busy_and_visible_while_recording(void **state)
{
    (void)state;
    tape_store *a = open_fs(cfg), *b = open_fs(cfg);
    tape *h = NULL;
    assert_int_equal(tape_new(&h, "live"), TAPE_OK);
    tape_writer *w = NULL, *w2 = NULL;
    assert_int_equal(tape_store_record(&w, a, h), TAPE_OK);
    assert_int_equal(tape_store_record(&w2, b, h), TAPE_EBUSY);
    assert_non_null(strstr(tape_errmsg(), "being recorded"));
    assert_int_equal(tape_store_save(b, h), TAPE_EBUSY);
    assert_int_equal(tape_store_delete(b, "live"), TAPE_EBUSY);
    for (int i = 0; i < 3; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}";
        assert_int_equal(tape_writer_append(NULL, w, &d), TAPE_OK);
    }
    tape *seen = NULL;
    assert_int_equal(tape_store_load(&seen, b, "live"), TAPE_OK);
    assert_int_equal(tape_frame_count(seen), 3);
    assert_int_equal(tape_status(seen), TAPE_STATUS_RECORDING);
    tape_free(seen);
    assert_int_equal(tape_writer_finish(w), TAPE_OK);
    tape_writer_free(w);
    assert_int_equal(tape_store_load(&seen, b, "live"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_FINALIZED);
    tape_free(seen);
    assert_non_null(strstr(read_text("live.meta.json"), "\"finalized\""));
    assert_int_equal(tape_store_record(&w2, b, h), TAPE_EEXISTS);
    tape_free(h);
    tape_store_free(a);
    tape_store_free(b);
}

/* A recording in another process makes the tape busy here too, and its
 * frames are visible while it goes on. */
static void test_busy_across_processes(void **state)
{
    (void)state;
    int go[2], done[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(done), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        tape_store *cs = NULL;
        tape *h = NULL;
        tape_writer *w = NULL;
        if (tape_store_open(&cs, NULL, "filesystem", cfg, 0) != TAPE_OK ||
            tape_new(&h, "remote") != TAPE_OK || tape_store_record(&w, cs, h) != TAPE_OK) {
            _exit(2);
        }
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}";
        if (tape_writer_append(NULL, w, &d) != TAPE_OK) _exit(3);
        char c = 'r';
        if (write(go[1], &c, 1) != 1 || read(done[0], &c, 1) != 1) _exit(4);
        if (tape_writer_finish(w) != TAPE_OK) _exit(5);
        tape_writer_free(w);
        tape_free(h);
        tape_store_free(cs);
        _exit(0);
    }
    char c;
    assert_int_equal(read(go[0], &c, 1), 1); /* the child is recording */
    tape_store *s = open_fs(cfg);
    tape *h = NULL;
    assert_int_equal(tape_new(&h, "remote"), TAPE_OK);
    tape_writer *w = NULL;
    assert_int_equal(tape_store_record(&w, s, h), TAPE_EBUSY);
    assert_non_null(strstr(tape_errmsg(), "being recorded"));
    assert_int_equal(tape_store_save(s, h), TAPE_EBUSY);
    assert_int_equal(tape_store_delete(s, "remote"), TAPE_EBUSY);
    tape *seen = NULL;
    assert_int_equal(tape_store_load(&seen, s, "remote"), TAPE_OK);
    assert_int_equal(tape_frame_count(seen), 1);
    assert_int_equal(tape_status(seen), TAPE_STATUS_RECORDING);
    tape_free(seen);
    assert_int_equal(write(done[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(tape_store_load(&seen, s, "remote"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_FINALIZED);
    tape_free(seen);
    assert_int_equal(tape_store_delete(s, "remote"), TAPE_OK); /* free again */
    tape_free(h);
    tape_store_free(s);
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

/* Two processes saving and listing in one directory at once. */
static void test_two_processes(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    tape_store_free(s);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            tape_store *cs = NULL;
            if (tape_store_open(&cs, NULL, "filesystem", cfg, 0) != TAPE_OK) _exit(2);
            for (int i = 0; i < 150; i++) {
                char id[32];
                snprintf(id, sizeof id, "p%d-%03d", k, i);
                tape *t = NULL;
                if (tape_new(&t, id) != TAPE_OK || tape_store_save(cs, t) != TAPE_OK) _exit(3);
                tape_free(t);
                if (i % 10 == 0) {
                    tape_result *r = NULL;
                    if (tape_store_query(&r, cs, NULL) != TAPE_OK) _exit(4);
                    tape_result_free(r);
                }
            }
            tape_store_free(cs);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    s = open_fs(cfg);
    tape_query *q = NULL;
    assert_int_equal(tape_query_parse(&q, "{\"order_by\":\"id\"}"), TAPE_OK);
    tape_result *r = NULL;
    assert_int_equal(tape_store_query(&r, s, q), TAPE_OK);
    assert_int_equal(tape_result_count(r), 300);
    for (size_t i = 1; i < tape_result_count(r); i++) {
        assert_true(strcmp(tape_entry_id(tape_result_at(r, i - 1)),
                           tape_entry_id(tape_result_at(r, i))) < 0); /* no duplicates */
    }
    tape_result_free(r);
    tape_query_free(q);
    tape_store_free(s);
    /* The index agrees with the files when read fresh. */
    unlink(path_of("index.json"));
    unlink(path_of("index.log"));
    s = open_fs(cfg);
    assert_int_equal(query_count(s, "{}"), 300);
    tape_store_free(s);
}

static void test_persistence_and_default_path(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "persist", 2);
    assert_int_equal(tape_store_close(s), TAPE_OK);
    s = open_fs(cfg);
    tape *t = NULL;
    assert_int_equal(tape_store_load(&t, s, "persist"), TAPE_OK);
    assert_string_equal(tape_name(t), "fs test");
    tape_free(t);
    unsigned native = 0;
    assert_int_equal(tape_store_capabilities(&native, NULL, s), TAPE_OK);
    assert_true(native & TAPE_CAP_PERSISTENT);
    assert_true(native & TAPE_CAP_WRITER);
    tape_store_free(s);
    /* "filesystem:PATH" and the environment default. */
    char spec[300];
    snprintf(spec, sizeof spec, "filesystem:%s", dir);
    assert_int_equal(tape_store_open_spec(&s, NULL, spec, 0), TAPE_OK);
    int e = 0;
    assert_int_equal(tape_store_exists(&e, s, "persist"), TAPE_OK);
    assert_int_equal(e, 1);
    tape_store_free(s);
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    char parent[256];
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    assert_int_equal(chdir(parent), 0);
    unsetenv("TAPESTORE_STORE");
    assert_int_equal(tape_store_open_env(&s, NULL, TAPE_OPEN_EAGER), TAPE_OK);
    assert_string_equal(tape_store_provider(s), "filesystem");
    tape_store_free(s);
    struct stat sb;
    assert_int_equal(stat("tapes", &sb), 0); /* ./tapes by default */
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(chdir(cwd), 0);
}

static void copy_file(const char *from, const char *to_name)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(path_of(to_name), "wb");
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    fclose(out);
}

/* A tape Shadowcat wrote, dropped into the directory, loads unchanged; what
 * we write back is byte-identical in its .jsonl. */
static void test_shadowcat_files_load_unchanged(void **state)
{
    (void)state;
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "filesystem", cfg, TAPE_OPEN_EAGER), TAPE_OK);
    tape_store_free(s); /* the directory exists now */
    copy_file(TAPE_TEST_DATA_DIR "/shadowcat-session.jsonl", "shadowcat-7f3a.jsonl");
    copy_file(TAPE_TEST_DATA_DIR "/shadowcat-session.meta.json", "shadowcat-7f3a.meta.json");
    s = open_fs(cfg);
    tape *t = NULL;
    if (tape_store_load(&t, s, "shadowcat-7f3a") != TAPE_OK) fail_msg("%s", tape_errmsg());
    assert_string_equal(tape_name(t), "Débogage — outil « add »");
    assert_string_equal(tape_session_id(t), "sess-2f9c1e");
    assert_int_equal(tape_status(t), TAPE_STATUS_FINALIZED);
    assert_int_equal(tape_has_tag(t, "régression"), 1);
    assert_int_equal(tape_frame_count(t), 10);
    tape_stats st = TAPE_STATS_INIT;
    assert_int_equal(tape_get_stats(&st, t), TAPE_OK);
    assert_int_equal(st.error_count, 2);
    assert_int_equal(st.correlation_count, 4);
    assert_int_equal(st.duration_ms, 700);
    /* Found by the index too, from its meta file. */
    assert_int_equal(query_count(s, "{\"tags_all\":[\"prod\",\"régression\"],\"status\":\"finalized\"}"), 1);
    /* Saved back under a new id: the .jsonl lines are Shadowcat's own bytes. */
    char *orig = strdup(read_text("shadowcat-7f3a.jsonl"));
    assert_int_equal(tape_store_delete(s, "shadowcat-7f3a"), TAPE_OK);
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    assert_string_equal(read_text("shadowcat-7f3a.jsonl"), orig);
    assert_non_null(strstr(read_text("shadowcat-7f3a.meta.json"), "\"performance\""));
    free(orig);
    tape_free(t);
    tape_store_free(s);
}

/* ------------------------------------------------------------ the vtable directly */

/* A backend made straight from the provider, so a test can drive the
 * writer ops the way the core does (and see what each op alone does). */
typedef struct vt {
    const tape_backend_ops *ops;
    void *self;
} vt;

static vt vt_open(const char *config)
{
    vt b = { NULL, NULL };
    tape_config *c = NULL;
    EXPECT_OK(tape_config_parse(&c, config));
    const tape_provider *p = tape_provider_filesystem();
    EXPECT_OK(p->validate(p->userdata, c));
    EXPECT_OK(p->create(&b.ops, &b.self, p->userdata, c));
    tape_config_free(c);
    EXPECT_OK(b.ops->open(b.self));
    return b;
}

/* Append one frame as the core does: the header counts it only if the
 * backend took it. */
static int vt_append(vt *b, void *w, tape **header, uint64_t seq, const char *msg)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = seq % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = (int64_t)seq * 10;
    d.message = msg;
    tape_frame *f = NULL;
    tape *next = NULL;
    EXPECT_OK(tape_frame_new(&f, *header, seq, &d));
    EXPECT_OK(tape_clone_meta(&next, *header));
    EXPECT_OK(tape_account_frame(next, f));
    int rc = b->ops->writer_append(w, f, next);
    tape_frame_free(f);
    if (rc == TAPE_OK) {
        tape_free(*header);
        *header = next;
    } else {
        tape_free(next);
    }
    return rc;
}

/* A JSON-RPC message of about n bytes. */
static char *big_message(size_t n)
{
    char *m = malloc(n + 64);
    assert_non_null(m);
    int k = snprintf(m, 64, "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":\"");
    memset(m + k, 'a', n);
    strcpy(m + k + n, "\"}");
    return m;
}

static int count_files(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".jsonl") != NULL || strstr(de->d_name, ".meta.json") != NULL) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* What a store accepts it can read back with its own config: a line over
 * its max_line_bytes is refused at save and at append, nothing written. */
static void test_line_limit_at_save_and_append(void **state)
{
    (void)state;
    char c[600];
    snprintf(c, sizeof c, "{\"path\":\"%s\",\"durability\":\"none\",\"max_line_bytes\":1024}",
             dir);
    /* A tape decoded with a raised limit holds a 3000-byte frame line. */
    tape *t = make_tape("big", 2);
    char *msg = big_message(3000);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 5;
    d.message = msg;
    EXPECT_OK(tape_append_frame(NULL, t, &d));
    char *text = NULL;
    size_t len = 0;
    EXPECT_OK(tape_encode_jsonl(&text, &len, t));
    tape_free(t);
    tape_decode_options o = TAPE_DECODE_OPTIONS_INIT;
    o.max_line_bytes = 8192;
    t = NULL;
    EXPECT_OK(tape_decode(&t, text, len, NULL, 0, &o, NULL));
    tape_string_free(text);

    tape_store *s = open_fs(c);
    EXPECT_ERR(tape_store_save(s, t), TAPE_ELIMIT, "frame 2");
    assert_non_null(strstr(tape_errmsg(), "max_line_bytes"));
    assert_int_equal(count_files(), 0);
    int e = 1;
    EXPECT_OK(tape_store_exists(&e, s, "big"));
    assert_int_equal(e, 0);
    assert_int_equal(query_count(s, "{}"), 0);
    tape_free(t);
    tape_store_free(s);

    /* A writer refuses the frame, keeps nothing of it, and goes on. */
    vt b = vt_open(c);
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "rec"));
    void *w = NULL;
    EXPECT_OK(b.ops->writer_begin(&w, b.self, h));
    EXPECT_OK(vt_append(&b, w, &h, 0, "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1}"));
    struct stat before, after;
    assert_int_equal(stat(path_of("rec.jsonl"), &before), 0);
    EXPECT_ERR(vt_append(&b, w, &h, 1, msg), TAPE_ELIMIT, "frame 1");
    assert_int_equal(stat(path_of("rec.jsonl"), &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    EXPECT_OK(vt_append(&b, w, &h, 1, "{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":1}"));
    EXPECT_OK(tape_set_status(h, TAPE_STATUS_FINALIZED));
    EXPECT_OK(b.ops->writer_end(w, h, 1));
    tape *got = NULL;
    EXPECT_OK(b.ops->load(&got, b.self, "rec"));
    assert_int_equal(tape_frame_count(got), 2);
    assert_int_equal(tape_status(got), TAPE_STATUS_FINALIZED);
    tape_free(got);
    tape_free(h);
    b.ops->free(b.self);

    /* Through the public API too: the append fails, nothing is stored. */
    s = open_fs(c);
    EXPECT_OK(tape_new(&h, "rec2"));
    tape_writer *tw = NULL;
    EXPECT_OK(tape_store_record(&tw, s, h));
    EXPECT_ERR(tape_writer_append(NULL, tw, &d), TAPE_ELIMIT, "max_line_bytes");
    tape_writer_free(tw);
    EXPECT_OK(tape_store_load(&got, s, "rec2"));
    assert_int_equal(tape_frame_count(got), 0);
    tape_free(got);
    tape_free(h);
    tape_store_free(s);
    free(msg);
}

/* ------------------------------------------------------------ the log */

static char logged[8192];

static void capture_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", msg);
}

/* A Shadowcat tape copied under another name: listed, loaded, found,
 * read and deleted under its file name, the one id the store can find it
 * by; the log says which id the files hold. */
static void test_file_name_and_tape_id_differ(void **state)
{
    (void)state;
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "filesystem", cfg, TAPE_OPEN_EAGER));
    tape_store_free(s);
    copy_file(TAPE_TEST_DATA_DIR "/shadowcat-session.jsonl", "example-complete.jsonl");
    copy_file(TAPE_TEST_DATA_DIR "/shadowcat-session.meta.json", "example-complete.meta.json");
    char *meta_before = strdup(read_text("example-complete.meta.json"));
    char *jsonl_before = strdup(read_text("example-complete.jsonl"));
    logged[0] = '\0';
    tape_log_set(capture_log, NULL);
    for (int round = 0; round < 2; round++) { /* index built, then index fresh */
        s = open_fs(cfg);
        tape_result *r = NULL;
        EXPECT_OK(tape_store_query(&r, s, NULL));
        assert_int_equal(tape_result_count(r), 1);
        assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "example-complete");
        assert_string_equal(tape_entry_name(tape_result_at(r, 0)), "Débogage — outil « add »");
        tape_result_free(r);
        assert_int_equal(query_count(s, "{\"tags_all\":[\"régression\"],\"min_frames\":10}"), 1);
        int e = 0;
        EXPECT_OK(tape_store_exists(&e, s, "example-complete"));
        assert_int_equal(e, 1);
        EXPECT_OK(tape_store_exists(&e, s, "shadowcat-7f3a"));
        assert_int_equal(e, 0);
        tape *t = NULL;
        EXPECT_OK(tape_store_load(&t, s, "example-complete"));
        assert_string_equal(tape_id(t), "example-complete");
        assert_int_equal(tape_frame_count(t), 10);
        assert_string_equal(tape_session_id(t), "sess-2f9c1e");
        tape_free(t);
        EXPECT_ERR(tape_store_load(&t, s, "shadowcat-7f3a"), TAPE_ENOTFOUND, "shadowcat-7f3a");
        tape_frame_iter *it = NULL;
        EXPECT_OK(tape_store_read_frames(&it, s, "example-complete", 2, 5));
        const tape_frame *f;
        int n = 0;
        while (tape_frame_iter_next(&f, it) == TAPE_OK) n++;
        assert_int_equal(n, 4);
        tape_frame_iter_free(it);
        tape_store_free(s);
    }
    /* The log names both ids; the foreign files are left as they were. */
    assert_non_null(strstr(logged, "\"shadowcat-7f3a\""));
    assert_non_null(strstr(logged, "\"example-complete\""));
    assert_string_equal(read_text("example-complete.meta.json"), meta_before);
    assert_string_equal(read_text("example-complete.jsonl"), jsonl_before);
    tape_log_set(NULL, NULL);
    s = open_fs(cfg);
    EXPECT_OK(tape_store_delete(s, "example-complete"));
    assert_int_equal(count_files(), 0);
    assert_int_equal(query_count(s, "{}"), 0);
    tape_store_free(s);
    free(meta_before);
    free(jsonl_before);
}

/* ------------------------------------------------------------ snapshots */

typedef struct file_snap {
    char name[256];
    off_t size;
    struct timespec mtime;
    uint64_t hash;
} file_snap;

/* Every file of the store: name, size, mtime and a hash of its bytes. */
static size_t snapshot(file_snap *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        assert_true(n < cap);
        file_snap *f = &out[n++];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "%s", de->d_name);
        struct stat sb;
        assert_int_equal(lstat(path_of(de->d_name), &sb), 0);
        f->size = sb.st_size;
        f->mtime = sb.st_mtim;
        f->hash = 1469598103934665603ull;
        FILE *in = fopen(path_of(de->d_name), "rb");
        assert_non_null(in);
        int c;
        while ((c = fgetc(in)) != EOF) f->hash = (f->hash ^ (uint64_t)c) * 1099511628211ull;
        fclose(in);
    }
    closedir(d);
    /* readdir order is not stable across changes: sort by name. */
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(out[j - 1].name, out[j].name) > 0; j--) {
            file_snap tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    }
    return n;
}

static void expect_same_files(const file_snap *a, size_t na, const file_snap *b, size_t nb)
{
    for (size_t i = 0; i < na || i < nb; i++) {
        if (i >= na || i >= nb || strcmp(a[i].name, b[i].name) != 0) {
            fail_msg("files differ: %s vs %s", i < na ? a[i].name : "(none)",
                     i < nb ? b[i].name : "(none)");
        }
        if (a[i].size != b[i].size || a[i].hash != b[i].hash ||
            a[i].mtime.tv_sec != b[i].mtime.tv_sec || a[i].mtime.tv_nsec != b[i].mtime.tv_nsec) {
            fail_msg("%s changed", a[i].name);
        }
    }
}

static void expect_entry_is_load(tape_store *s, const char *id)
{
    tape_query *q = NULL;
    char json[160];
    snprintf(json, sizeof json, "{\"order_by\":\"id\"}");
    EXPECT_OK(tape_query_parse(&q, json));
    tape_result *r = NULL;
    EXPECT_OK(tape_store_query(&r, s, q));
    const tape_entry *e = NULL;
    for (size_t i = 0; i < tape_result_count(r); i++) {
        if (strcmp(tape_entry_id(tape_result_at(r, i)), id) == 0) e = tape_result_at(r, i);
    }
    if (e == NULL) fail_msg("%s is not listed", id);
    tape *t = NULL;
    EXPECT_OK(tape_store_load(&t, s, id));
    tape_stats listed = TAPE_STATS_INIT, loaded = TAPE_STATS_INIT;
    EXPECT_OK(tape_entry_get_stats(&listed, e));
    EXPECT_OK(tape_get_stats(&loaded, t));
    if (listed.frame_count != loaded.frame_count || listed.duration_ms != loaded.duration_ms ||
        listed.last_sequence != loaded.last_sequence ||
        listed.client_to_server != loaded.client_to_server ||
        listed.server_to_client != loaded.server_to_client ||
        listed.error_count != loaded.error_count ||
        listed.correlation_count != loaded.correlation_count ||
        listed.file_size_bytes != loaded.file_size_bytes) {
        fail_msg("%s: listed %llu frames %lld ms %llu bytes, loaded %llu frames %lld ms %llu "
                 "bytes", id, (unsigned long long)listed.frame_count,
                 (long long)listed.duration_ms, (unsigned long long)listed.file_size_bytes,
                 (unsigned long long)loaded.frame_count, (long long)loaded.duration_ms,
                 (unsigned long long)loaded.file_size_bytes);
    }
    assert_int_equal(tape_entry_status(e), tape_status(t));
    tape_free(t);
    tape_result_free(r);
    tape_query_free(q);
}

static tape *timed_tape(const char *id, int frames, int step_ms)
{
    tape *t = make_tape(id, 0);
    for (int i = 0; i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = (int64_t)i * step_ms;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":7}";
        EXPECT_OK(tape_append_frame(NULL, t, &d));
    }
    return t;
}

static void replace_in_file(const char *name, const char *from, const char *to)
{
    char *text = strdup(read_text(name));
    char *at = strstr(text, from);
    if (at == NULL) fail_msg("%s lacks %s", name, from);
    FILE *f = fopen(path_of(name), "w");
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    free(text);
}

/* "The frames win": a listing says what a load says, for a meta with
 * wrong stats and a torn tail; the meta is corrected on a writable store,
 * never on a read-only one nor for a tape being recorded. */
static void test_listing_agrees_with_load(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    tape *t = timed_tape("wrong", 24, 25); /* 575 ms */
    EXPECT_OK(tape_store_save(s, t));
    tape_free(t);
    t = timed_tape("torn", 24, 25);
    EXPECT_OK(tape_store_save(s, t));
    tape_free(t);
    tape_store_free(s);
    replace_in_file("wrong.meta.json", "\"duration_ms\":\t575", "\"duration_ms\":\t725");
    struct stat sb;
    assert_int_equal(stat(path_of("torn.jsonl"), &sb), 0);
    assert_int_equal(truncate(path_of("torn.jsonl"), sb.st_size - 10), 0); /* frame 23 torn */

    char ro[600];
    snprintf(ro, sizeof ro, "{\"path\":\"%s\",\"read_only\":true}", dir);
    for (int pass = 0; pass < 3; pass++) { /* read-only, writable, writable again */
        file_snap before[32], after[32];
        size_t nb = snapshot(before, 32);
        s = open_fs(pass == 0 ? ro : cfg);
        assert_int_equal(query_count(s, "{\"min_duration_ms\":576}"), 0);
        assert_int_equal(query_count(s, "{\"min_duration_ms\":575}"), 1);
        assert_int_equal(query_count(s, "{\"min_frames\":24}"), 1);
        assert_int_equal(query_count(s, "{\"min_frames\":23,\"max_frames\":23}"), 1);
        expect_entry_is_load(s, "wrong");
        expect_entry_is_load(s, "torn");
        tape_store_free(s);
        if (pass == 0) {
            expect_same_files(before, nb, after, snapshot(after, 32));
        }
    }
    /* The writable open corrected both meta files. */
    assert_non_null(strstr(read_text("wrong.meta.json"), "\"duration_ms\":\t575"));
    assert_non_null(strstr(read_text("torn.meta.json"), "\"frame_count\":\t23"));

    /* A recording: its meta is the writer's; a listing elsewhere still
     * says what a load says, and the meta is left alone. */
    tape_store *a = open_fs(cfg), *early = open_fs(cfg);
    assert_int_equal(query_count(early, "{}"), 2); /* opened before the recording */
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "live"));
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, a, h));
    for (int i = 0; i < 3; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i * 100;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}";
        EXPECT_OK(tape_writer_append(NULL, w, &d));
    }
    char *live_meta = strdup(read_text("live.meta.json"));
    assert_non_null(strstr(live_meta, "\"frame_count\":\t0"));
    /* The recording store itself, and one opened before, say the same. */
    expect_entry_is_load(a, "live");
    expect_entry_is_load(early, "live");
    assert_int_equal(query_count(a, "{\"min_frames\":3,\"max_frames\":3}"), 1);
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    EXPECT_OK(tape_store_stats_get(&ss, early));
    assert_int_equal(ss.frame_count, 24 + 23 + 3);
    tape_store_free(early);
    s = open_fs(cfg);
    assert_int_equal(query_count(s, "{\"min_frames\":3,\"max_frames\":3,\"min_duration_ms\":200}"), 1);
    expect_entry_is_load(s, "live");
    tape_store_free(s);
    assert_string_equal(read_text("live.meta.json"), live_meta);
    free(live_meta);
    EXPECT_OK(tape_writer_finish(w));
    tape_writer_free(w);
    tape_free(h);
    expect_entry_is_load(a, "live");
    tape_store_free(a);
    s = open_fs(cfg);
    expect_entry_is_load(s, "live");
    tape_store_free(s);
}

/* read_only: every read works, nothing in the directory changes, every
 * write is refused saying why. */
static void test_read_only(void **state)
{
    (void)state;
    tape_store *s = open_fs(cfg);
    save(s, "r1", 3);
    save(s, "r2", 5);
    save(s, "nometa", 2);
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "crashed"));
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"needle\",\"id\":1}";
    EXPECT_OK(tape_writer_append(NULL, w, &d));
    tape_writer_free(w); /* abandoned: status recording */
    tape_free(h);
    tape_store_free(s);
    /* Everything a writable open would repair or write. */
    unlink(path_of("nometa.meta.json"));
    unlink(path_of("index.json"));
    write_file("index.log", "garbage\n");
    write_file("r1.jsonl.tmp.999999999.0", "{");
    FILE *f = fopen(path_of("crashed.jsonl"), "a");
    fputs("{\"type\":\"frame\",\"seq\":1,\"ts\":", f); /* torn tail */
    fclose(f);
    replace_in_file("r2.meta.json", "\"frame_count\":\t5", "\"frame_count\":\t50");

    file_snap before[32], after[32];
    size_t nb = snapshot(before, 32);
    char ro[600];
    snprintf(ro, sizeof ro, "{\"path\":\"%s\",\"read_only\":true}", dir);
    s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "filesystem", ro, TAPE_OPEN_EAGER));
    assert_int_equal(query_count(s, "{}"), 4);
    assert_int_equal(query_count(s, "{\"text\":\"needle\"}"), 1);
    assert_int_equal(query_count(s, "{\"min_frames\":6}"), 0);
    expect_entry_is_load(s, "nometa");
    expect_entry_is_load(s, "r2");
    expect_entry_is_load(s, "crashed");
    int e = 0;
    EXPECT_OK(tape_store_exists(&e, s, "r1"));
    assert_int_equal(e, 1);
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    EXPECT_OK(tape_store_stats_get(&ss, s));
    assert_int_equal(ss.tape_count, 4);
    assert_int_equal(ss.frame_count, 3 + 5 + 2 + 1);
    tape_frame_iter *it = NULL;
    EXPECT_OK(tape_store_read_frames(&it, s, "r2", 1, 3));
    const tape_frame *fr;
    int n = 0;
    while (tape_frame_iter_next(&fr, it) == TAPE_OK) n++;
    assert_int_equal(n, 3);
    tape_frame_iter_free(it);
    tape *t = make_tape("new", 1);
    EXPECT_ERR(tape_store_save(s, t), TAPE_EUNSUPPORTED, "read-only");
    tape_free(t);
    t = make_tape("r1", 1);
    EXPECT_ERR(tape_store_save(s, t), TAPE_EUNSUPPORTED, "read-only");
    tape_free(t);
    EXPECT_ERR(tape_store_delete(s, "r1"), TAPE_EUNSUPPORTED, "read-only");
    EXPECT_OK(tape_new(&h, "rec"));
    w = NULL;
    EXPECT_ERR(tape_store_record(&w, s, h), TAPE_EUNSUPPORTED, "read-only");
    assert_null(w);
    tape_free(h);
    tape_store_free(s);
    expect_same_files(before, nb, after, snapshot(after, 32));

    /* A read-only store creates no directory. */
    char missing[600];
    snprintf(missing, sizeof missing, "{\"path\":\"%s/nope\",\"read_only\":true}", dir);
    s = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "filesystem", missing, TAPE_OPEN_EAGER), TAPE_EIO);
    assert_non_null(strstr(tape_errmsg(), "nope"));
    struct stat sb;
    assert_int_equal(stat(path_of("nope"), &sb), -1);
    /* The key is a boolean. */
    EXPECT_ERR(tape_store_open(&s, NULL, "filesystem", "{\"read_only\":\"yes\"}", 0),
               TAPE_ECONFIG, "read_only");
}

/* ------------------------------------------------------------ the writer rule */

static off_t size_of(const char *name)
{
    struct stat sb;
    return stat(path_of(name), &sb) == 0 ? sb.st_size : -1;
}

/* Let files grow to at most `bytes` (RLIMIT_FSIZE; RLIM_INFINITY lifts it).
 * Works as root, where a read-only mode would not stop the writes. */
static int limit_file_size(rlim_t bytes)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0) return -1;
    rl.rlim_cur = bytes == RLIM_INFINITY ? rl.rlim_max : bytes;
    return setrlimit(RLIMIT_FSIZE, &rl);
}

#define CHILD_CHECK(cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "child: line %d: %s (%s)\n", __LINE__, #cond, tape_errmsg()); \
            _exit(__LINE__ % 200 + 10);                                                \
        }                                                                              \
    } while (0)

/* In a child process (its file size limit is its own). Drives the ops
 * directly: a failed append is not stored and the writer goes on; a
 * failed checkpoint takes its frame back out; a failed finish keeps every
 * acknowledged frame with status recording and releases the lease. */
static void writer_rule_vtable(void)
{
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
    char c[600];
    snprintf(c, sizeof c, "{\"path\":\"%s\",\"durability\":\"batch\",\"checkpoint_every\":4}",
             dir);
    vt b = vt_open(c);
    tape *h = NULL;
    CHILD_CHECK(tape_new(&h, "rule") == TAPE_OK);
    void *w = NULL;
    CHILD_CHECK(b.ops->writer_begin(&w, b.self, h) == TAPE_OK);
    char *msg = big_message(2000);
    uint64_t seq = 0;
    for (; seq < 2; seq++) CHILD_CHECK(vt_append(&b, w, &h, seq, msg) == TAPE_OK);

    /* 1. The frame's line does not fit: refused, nothing of it kept. */
    off_t at = size_of("rule.jsonl");
    CHILD_CHECK(limit_file_size((rlim_t)at + 500) == 0);
    CHILD_CHECK(vt_append(&b, w, &h, seq, msg) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    CHILD_CHECK(size_of("rule.jsonl") == at);
    CHILD_CHECK(vt_append(&b, w, &h, seq++, msg) == TAPE_OK); /* the writer goes on */
    off_t frame_bytes = size_of("rule.jsonl") - at;

    /* 2. The line fits, the checkpoint it triggers (the 4th frame) does not. */
    at = size_of("rule.jsonl");
    CHILD_CHECK(limit_file_size((rlim_t)(at + frame_bytes + 20)) == 0);
    CHILD_CHECK(vt_append(&b, w, &h, seq, msg) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    CHILD_CHECK(size_of("rule.jsonl") == at);
    CHILD_CHECK(vt_append(&b, w, &h, seq++, msg) == TAPE_OK); /* now with its checkpoint */
    CHILD_CHECK(strstr(read_text("rule.meta.json"), "\"frame_count\":\t4") != NULL);
    CHILD_CHECK(vt_append(&b, w, &h, seq++, msg) == TAPE_OK);

    /* 3. The finish cannot write its checkpoint: it fails, the tape keeps
     * its 5 acknowledged frames with status recording, the writer stays
     * (TAPE_CAP_WRITER_RETRY) and still holds the tape; a retry works. */
    CHILD_CHECK(b.ops->flags & TAPE_CAP_WRITER_RETRY);
    at = size_of("rule.jsonl");
    CHILD_CHECK(limit_file_size((rlim_t)at) == 0);
    CHILD_CHECK(tape_set_status(h, TAPE_STATUS_FINALIZED) == TAPE_OK);
    CHILD_CHECK(b.ops->writer_end(w, h, 1) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    CHILD_CHECK(size_of("rule.jsonl") == at);
    tape *got = NULL;
    CHILD_CHECK(b.ops->load(&got, b.self, "rule") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 5);
    CHILD_CHECK(tape_status(got) == TAPE_STATUS_RECORDING);
    CHILD_CHECK(strstr(read_text("rule.meta.json"), "\"recording\"") != NULL);
    CHILD_CHECK(b.ops->save(b.self, got) == TAPE_EBUSY);
    tape_free(got);
    CHILD_CHECK(b.ops->writer_end(w, h, 1) == TAPE_OK);
    CHILD_CHECK(b.ops->load(&got, b.self, "rule") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 5);
    CHILD_CHECK(tape_status(got) == TAPE_STATUS_FINALIZED);
    tape_free(got);
    CHILD_CHECK(b.ops->remove(b.self, "rule") == TAPE_OK);
    tape_free(h);

    /* 4. A failed finish, then abandoned: the frames stay as recording and
     * the lease is released, so save, delete and record of the id work. */
    CHILD_CHECK(tape_new(&h, "rule") == TAPE_OK);
    CHILD_CHECK(b.ops->writer_begin(&w, b.self, h) == TAPE_OK);
    for (seq = 0; seq < 2; seq++) CHILD_CHECK(vt_append(&b, w, &h, seq, msg) == TAPE_OK);
    CHILD_CHECK(limit_file_size((rlim_t)size_of("rule.jsonl")) == 0);
    CHILD_CHECK(tape_set_status(h, TAPE_STATUS_FINALIZED) == TAPE_OK);
    CHILD_CHECK(b.ops->writer_end(w, h, 1) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    CHILD_CHECK(tape_set_status(h, TAPE_STATUS_RECORDING) == TAPE_OK);
    CHILD_CHECK(b.ops->writer_end(w, h, 0) == TAPE_OK);
    CHILD_CHECK(b.ops->load(&got, b.self, "rule") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 2);
    CHILD_CHECK(tape_status(got) == TAPE_STATUS_RECORDING);
    CHILD_CHECK(b.ops->save(b.self, got) == TAPE_OK);
    CHILD_CHECK(b.ops->remove(b.self, "rule") == TAPE_OK);
    tape_free(got);
    tape *h2 = NULL;
    CHILD_CHECK(tape_new(&h2, "rule") == TAPE_OK);
    CHILD_CHECK(b.ops->writer_begin(&w, b.self, h2) == TAPE_OK);
    CHILD_CHECK(b.ops->writer_end(w, h2, 0) == TAPE_OK);
    tape_free(h2);
    tape_free(h);

    /* 5. A caller that keeps counting a frame the writer refused: the meta
     * still says what the file holds. */
    CHILD_CHECK(tape_new(&h, "miscount") == TAPE_OK);
    CHILD_CHECK(b.ops->writer_begin(&w, b.self, h) == TAPE_OK);
    CHILD_CHECK(vt_append(&b, w, &h, 0, msg) == TAPE_OK);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = 500;
    d.message = msg;
    tape_frame *f = NULL;
    CHILD_CHECK(tape_frame_new(&f, h, 1, &d) == TAPE_OK);
    CHILD_CHECK(tape_account_frame(h, f) == TAPE_OK); /* counted before the append */
    CHILD_CHECK(limit_file_size((rlim_t)size_of("miscount.jsonl") + 100) == 0);
    CHILD_CHECK(b.ops->writer_append(w, f, h) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    tape_frame_free(f);
    CHILD_CHECK(b.ops->writer_end(w, h, 0) == TAPE_OK);
    CHILD_CHECK(strstr(read_text("miscount.meta.json"), "\"frame_count\":\t1") != NULL);
    CHILD_CHECK(strstr(read_text("miscount.meta.json"), "\"duration_ms\":\t0") != NULL);
    tape_free(h);
    free(msg);
    b.ops->free(b.self);
}

/* The same through the public API (the core's writer over this one). */
static void writer_rule_public(void)
{
    signal(SIGXFSZ, SIG_IGN);
    char c[600];
    snprintf(c, sizeof c, "{\"path\":\"%s\",\"durability\":\"none\"}", dir);
    tape_store *s = NULL;
    CHILD_CHECK(tape_store_open(&s, NULL, "filesystem", c, 0) == TAPE_OK);
    tape *h = NULL;
    CHILD_CHECK(tape_new(&h, "pub") == TAPE_OK);
    tape_writer *w = NULL;
    CHILD_CHECK(tape_store_record(&w, s, h) == TAPE_OK);
    char *msg = big_message(2000);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = msg;
    for (int i = 0; i < 3; i++) CHILD_CHECK(tape_writer_append(NULL, w, &d) == TAPE_OK);
    off_t at = size_of("pub.jsonl");
    CHILD_CHECK(limit_file_size((rlim_t)at) == 0);
    CHILD_CHECK(tape_writer_finish(w) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    tape *got = NULL;
    CHILD_CHECK(tape_store_load(&got, s, "pub") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 3);
    CHILD_CHECK(tape_status(got) == TAPE_STATUS_RECORDING);
    tape_free(got);
    CHILD_CHECK(tape_writer_append(NULL, w, &d) == TAPE_OK); /* still recording */
    CHILD_CHECK(tape_writer_finish(w) == TAPE_OK);            /* the retry */
    tape_writer_free(w);
    CHILD_CHECK(tape_store_load(&got, s, "pub") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 4);
    CHILD_CHECK(tape_status(got) == TAPE_STATUS_FINALIZED);
    tape_free(got);
    CHILD_CHECK(tape_store_delete(s, "pub") == TAPE_OK);

    /* A failed finish, then the writer freed: recording, lease released. */
    CHILD_CHECK(tape_store_record(&w, s, h) == TAPE_OK);
    for (int i = 0; i < 3; i++) CHILD_CHECK(tape_writer_append(NULL, w, &d) == TAPE_OK);
    CHILD_CHECK(limit_file_size((rlim_t)size_of("pub.jsonl")) == 0);
    CHILD_CHECK(tape_writer_finish(w) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    tape_writer_free(w);
    CHILD_CHECK(tape_store_load(&got, s, "pub") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 3);
    CHILD_CHECK(tape_status(got) == TAPE_STATUS_RECORDING);
    CHILD_CHECK(tape_store_save(s, got) == TAPE_OK);
    CHILD_CHECK(tape_store_delete(s, "pub") == TAPE_OK);
    CHILD_CHECK(tape_store_record(&w, s, h) == TAPE_OK);
    CHILD_CHECK(tape_writer_finish(w) == TAPE_OK);
    tape_writer_free(w);
    tape_free(got);

    /* A failed append is not stored; the writer goes on, and the meta
     * counts only the stored frames. */
    tape_free(h);
    CHILD_CHECK(tape_new(&h, "pub2") == TAPE_OK);
    CHILD_CHECK(tape_store_record(&w, s, h) == TAPE_OK);
    CHILD_CHECK(tape_writer_append(NULL, w, &d) == TAPE_OK);
    at = size_of("pub2.jsonl");
    CHILD_CHECK(limit_file_size((rlim_t)at + 100) == 0);
    CHILD_CHECK(tape_writer_append(NULL, w, &d) == TAPE_ELIMIT);
    CHILD_CHECK(limit_file_size(RLIM_INFINITY) == 0);
    CHILD_CHECK(size_of("pub2.jsonl") == at);
    uint64_t seq = 0;
    CHILD_CHECK(tape_writer_append(&seq, w, &d) == TAPE_OK);
    CHILD_CHECK(seq == 1);
    tape_writer_free(w);
    CHILD_CHECK(tape_store_load(&got, s, "pub2") == TAPE_OK);
    CHILD_CHECK(tape_frame_count(got) == 2);
    tape_free(got);
    tape_result *r = NULL;
    tape_query *q = NULL;
    CHILD_CHECK(tape_query_parse(&q, "{\"min_frames\":3}") == TAPE_OK);
    CHILD_CHECK(tape_store_query(&r, s, q) == TAPE_OK);
    CHILD_CHECK(tape_result_count(r) == 0);
    tape_result_free(r);
    tape_query_free(q);
    CHILD_CHECK(tape_store_delete(s, "pub2") == TAPE_OK);
    tape_free(h);
    free(msg);
    tape_store_free(s);
}

static void run_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_writer_rule(void **state)
{
    (void)state;
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "filesystem", cfg, TAPE_OPEN_EAGER));
    tape_store_free(s);
    run_child(writer_rule_vtable);
    run_child(writer_rule_public);
}

/* ------------------------------------------------------------ metadata learned while recording */

static void set_learned(tape *t, const char *name, const char *tag, const char *session)
{
    EXPECT_OK(tape_set_name(t, name));
    EXPECT_OK(tape_set_description(t, "learned from initialize"));
    EXPECT_OK(tape_add_tag(t, tag));
    EXPECT_OK(tape_set_session_id(t, session));
    EXPECT_OK(tape_set_protocol_version(t, "2025-06-18"));
    EXPECT_OK(tape_set_transport_json(t, "{\"type\":\"stdio\",\"command\":\"server\"}"));
    EXPECT_OK(tape_set_environment_json(t, "{\"client\":\"claude-code 1.0\"}"));
}

static void expect_learned(tape_store *s, const char *id, const char *name, const char *tag,
                           const char *session)
{
    tape *t = NULL;
    EXPECT_OK(tape_store_load(&t, s, id));
    assert_string_equal(tape_name(t), name);
    assert_string_equal(tape_description(t), "learned from initialize");
    assert_int_equal(tape_has_tag(t, tag), 1);
    assert_string_equal(tape_session_id(t), session);
    assert_string_equal(tape_protocol_version(t), "2025-06-18");
    assert_non_null(strstr(tape_transport_json(t), "\"server\""));
    assert_non_null(strstr(tape_environment_json(t), "claude-code"));
    tape_free(t);
    char q[200];
    snprintf(q, sizeof q, "{\"tags_all\":[\"%s\"],\"session_id\":\"%s\"}", tag, session);
    assert_int_equal(query_count(s, q), 1);
}

/* The header handed to append/end may carry metadata learned after
 * begin: the writer persists it at its next checkpoint and at finish. */
static void test_metadata_learned_while_recording(void **state)
{
    (void)state;
    char c[600];
    snprintf(c, sizeof c, "{\"path\":\"%s\",\"durability\":\"none\",\"checkpoint_every\":2}",
             dir);
    vt b = vt_open(c);
    tape *h = NULL;
    EXPECT_OK(tape_new(&h, "learn"));
    EXPECT_OK(tape_set_session_id(h, "sess-begin"));
    void *w = NULL;
    EXPECT_OK(b.ops->writer_begin(&w, b.self, h));
    EXPECT_OK(vt_append(&b, w, &h, 0, "{\"jsonrpc\":\"2.0\",\"method\":\"initialize\",\"id\":1}"));
    set_learned(h, "server-everything", "learned", "sess-1");
    EXPECT_OK(vt_append(&b, w, &h, 1, "{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":1}"));
    /* The checkpoint (2nd frame) wrote it: a reader sees it now. */
    tape_store *r = open_fs(cfg);
    expect_learned(r, "learn", "server-everything", "learned", "sess-1");
    tape_store_free(r);
    set_learned(h, "renamed at the end", "final", "sess-2");
    EXPECT_OK(tape_set_status(h, TAPE_STATUS_FINALIZED));
    EXPECT_OK(b.ops->writer_end(w, h, 1));
    r = open_fs(cfg);
    expect_learned(r, "learn", "renamed at the end", "final", "sess-2");
    tape_store_free(r);
    tape_free(h);
    b.ops->free(b.self);

    /* Through the public API. */
    tape_store *s = open_fs(c);
    EXPECT_OK(tape_new(&h, "learn2"));
    tape_writer *tw = NULL;
    EXPECT_OK(tape_store_record(&tw, s, h));
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"initialize\",\"id\":1}";
    EXPECT_OK(tape_writer_append(NULL, tw, &d));
    tape *m = NULL;
    EXPECT_OK(tape_new(&m, "ignored"));
    set_learned(m, "server-everything", "learned", "sess-3");
    EXPECT_OK(tape_writer_update_meta(tw, m));
    EXPECT_OK(tape_writer_append(NULL, tw, &d)); /* the checkpoint */
    r = open_fs(cfg);
    expect_learned(r, "learn2", "server-everything", "learned", "sess-3");
    tape_store_free(r);
    tape_free(m);
    EXPECT_OK(tape_new(&m, "ignored"));
    set_learned(m, "renamed at the end", "final", "sess-4");
    EXPECT_OK(tape_writer_update_meta(tw, m));
    EXPECT_OK(tape_writer_finish(tw));
    tape_writer_free(tw);
    expect_learned(s, "learn2", "renamed at the end", "final", "sess-4");
    tape_store_free(s);
    r = open_fs(cfg);
    expect_learned(r, "learn2", "renamed at the end", "final", "sess-4");
    tape_store_free(r);
    tape_free(m);
    tape_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_files_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_is_only_a_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_temp_files_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_and_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_and_visible_while_recording, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_across_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_and_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shadowcat_files_load_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_limit_at_save_and_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_name_and_tape_id_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing_agrees_with_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_learned_while_recording, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
