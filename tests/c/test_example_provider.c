/*
 * test_example_provider.c - the example provider "prefix"
 * (examples/c-provider) compiled into this program: its config checks,
 * its id policy, delegation to the memory provider, capabilities and its
 * control op. examples/CMakeLists.txt adds prefix_provider.c here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "prefix_provider.h"

#include <string.h>

static tape_registry *reg;

static int setup(void **state)
{
    (void)state;
    if (tape_registry_new(&reg) != TAPE_OK) {
        return -1;
    }
    return tape_registry_register(reg, example_prefix_provider()) == TAPE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tape_registry_free(reg);
    reg = NULL;
    return 0;
}

static void assert_msg_has(const char *needle)
{
    if (strstr(tape_errmsg(), needle) == NULL) {
        fail_msg("error message \"%s\" does not mention \"%s\"", tape_errmsg(), needle);
    }
}

static tape_store *open_ok(const char *config)
{
    tape_store *s = NULL;
    int rc = tape_store_open(&s, reg, "prefix", config, 0);
    if (rc != TAPE_OK) {
        fail_msg("opening prefix with %s: %s", config, tape_errmsg());
    }
    return s;
}

static tape *new_tape(const char *id, size_t frames)
{
    tape *t = NULL;
    assert_int_equal(tape_new(&t, id), TAPE_OK);
    for (size_t i = 0; i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = (int64_t)i * 10;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}";
        assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    }
    return t;
}

static int warnings;
static void count_warnings(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)msg;
    if (level >= TAPE_LOG_WARN) {
        warnings++;
    }
}

/* Each bad config fails with TAPE_ECONFIG naming the key, before anything
 * is created (the memory base warns when it is created: no warning). */
static void expect_config_error(const char *config, const char *key1, const char *key2)
{
    tape_store *s = NULL;
    warnings = 0;
    tape_log_set(count_warnings, NULL);
    int rc = tape_store_open(&s, reg, "prefix", config, TAPE_OPEN_EAGER);
    tape_log_set(NULL, NULL);
    if (rc != TAPE_ECONFIG) {
        fail_msg("config %s: expected TAPE_ECONFIG, got %s (%s)", config, tape_strerror(rc),
                 tape_errmsg());
    }
    assert_null(s);
    assert_msg_has(key1);
    if (key2 != NULL) {
        assert_msg_has(key2);
    }
    assert_int_equal(warnings, 0);
}

static void test_config_errors_name_the_key(void **state)
{
    (void)state;
    expect_config_error("{}", "\"prefix\"", "required");
    expect_config_error("{\"prefix\": 42}", "\"prefix\"", "string");
    expect_config_error("{\"prefix\": \"prod-\", \"prefx\": 1}", "\"prefx\"", NULL);
    expect_config_error("{\"prefix\": \"a/b\"}", "\"prefix\"", "a/b");
    expect_config_error("{\"prefix\": \".hidden\"}", "\"prefix\"", ".hidden");
    expect_config_error("{\"prefix\": \"p\", \"base\": \"big\"}", "\"base\"", "object");
    expect_config_error("{\"prefix\": \"p\", \"base\": [1]}", "\"base\"", "object");
    expect_config_error("{\"prefix\": \"p\", \"base\": {\"max_tapes\": \"ten\"}}", "\"base\"",
                        "\"max_tapes\"");
    expect_config_error("{\"prefix\": \"p\", \"base\": {\"max_tapez\": 1}}", "\"base\"",
                        "\"max_tapez\"");
    expect_config_error("{\"prefix\": \"p\", \"base\": {\"max_bytes\": -1}}", "\"base\"",
                        "\"max_bytes\"");
}

static void test_good_configs_open(void **state)
{
    (void)state;
    const char *good[] = {
        "{\"prefix\": \"prod-\"}",
        "{\"prefix\": \"\"}",
        "{\"prefix\": \"ci.\", \"base\": null}",
        "{\"prefix\": \"ci_\", \"base\": {}}",
        "{\"prefix\": \"x\", \"base\": {\"max_tapes\": 3, \"max_bytes\": 100000}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tape_store *s = open_ok(good[i]);
        assert_string_equal(tape_store_provider(s), "prefix");
        assert_int_equal(tape_store_close(s), TAPE_OK);
    }
}

static void test_ids_without_prefix_are_refused(void **state)
{
    (void)state;
    tape_store *s = open_ok("{\"prefix\": \"prod-\"}");
    tape *t = new_tape("prod-1", 2);
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    tape_free(t);

    t = new_tape("dev-1", 2);
    assert_int_equal(tape_store_save(s, t), TAPE_EINVAL);
    assert_msg_has("\"dev-1\"");
    assert_msg_has("\"prod-\"");
    /* Recording goes through the same policy. */
    tape_writer *w = NULL;
    tape_free(t);
    t = new_tape("dev-2", 0);
    assert_int_equal(tape_store_record(&w, s, t), TAPE_EINVAL);
    assert_null(w);
    assert_msg_has("\"dev-2\"");
    tape_free(t);
    /* A prefix match is on the whole prefix, case-sensitively. */
    t = new_tape("PROD-3", 1);
    assert_int_equal(tape_store_save(s, t), TAPE_EINVAL);
    tape_free(t);

    int exists = 1;
    assert_int_equal(tape_store_exists(&exists, s, "dev-1"), TAPE_OK);
    assert_int_equal(exists, 0);
    tape *back = NULL;
    assert_int_equal(tape_store_load(&back, s, "dev-1"), TAPE_ENOTFOUND);
    assert_int_equal(tape_store_load(&back, s, "prod-1"), TAPE_OK);
    assert_string_equal(tape_id(back), "prod-1");
    assert_int_equal(tape_frame_count(back), 2);
    tape_free(back);

    tape_result *r = NULL;
    assert_int_equal(tape_store_query(&r, s, NULL), TAPE_OK);
    assert_int_equal(tape_result_count(r), 1);
    assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "prod-1");
    tape_result_free(r);
    assert_int_equal(tape_store_delete(s, "prod-1"), TAPE_OK);
    assert_int_equal(tape_store_delete(s, "prod-1"), TAPE_ENOTFOUND);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

static void test_empty_prefix_accepts_every_id(void **state)
{
    (void)state;
    tape_store *s = open_ok("{\"prefix\": \"\"}");
    const char *ids[] = { "a", "Z-9", "x.y_z" };
    for (size_t i = 0; i < 3; i++) {
        tape *t = new_tape(ids[i], 1);
        assert_int_equal(tape_store_save(s, t), TAPE_OK);
        tape_free(t);
    }
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    assert_int_equal(tape_store_stats_get(&st, s), TAPE_OK);
    assert_int_equal(st.tape_count, 3);
    assert_int_equal(st.frame_count, 3);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

/* The streaming writer and frame reads go through to the memory base. */
static void test_record_and_read_frames(void **state)
{
    (void)state;
    tape_store *s = open_ok("{\"prefix\": \"rec-\"}");
    tape *h = new_tape("rec-1", 0);
    tape_writer *w = NULL;
    assert_int_equal(tape_store_record(&w, s, h), TAPE_OK);
    tape_free(h);
    for (int i = 0; i < 4; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i;
        d.message = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}";
        uint64_t seq = 99;
        assert_int_equal(tape_writer_append(&seq, w, &d), TAPE_OK);
        assert_int_equal(seq, (uint64_t)i);
    }
    assert_int_equal(tape_writer_add_correlation(w, "7", 0, 1, 1, "success"), TAPE_OK);
    /* While recording, the tape is visible with status recording. */
    tape *mid = NULL;
    assert_int_equal(tape_store_load(&mid, s, "rec-1"), TAPE_OK);
    assert_int_equal(tape_status(mid), TAPE_STATUS_RECORDING);
    tape_free(mid);
    assert_int_equal(tape_writer_finish(w), TAPE_OK);
    assert_int_equal(tape_writer_finish(w), TAPE_ESTATE);
    tape_writer_free(w);

    tape_frame_iter *it = NULL;
    assert_int_equal(tape_store_read_frames(&it, s, "rec-1", 1, 2), TAPE_OK);
    const tape_frame *f = NULL;
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_OK);
    assert_int_equal(tape_frame_seq(f), 1);
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_OK);
    assert_int_equal(tape_frame_seq(f), 2);
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_DONE);
    tape_frame_iter_free(it);
    assert_int_equal(tape_store_read_frames(&it, s, "rec-9", 0, UINT64_MAX), TAPE_ENOTFOUND);
    assert_null(it);

    tape *done = NULL;
    assert_int_equal(tape_store_load(&done, s, "rec-1"), TAPE_OK);
    assert_int_equal(tape_status(done), TAPE_STATUS_FINALIZED);
    assert_int_equal(tape_frame_count(done), 4);
    assert_int_equal(tape_correlation_count(done), 1);
    tape_free(done);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

/* The "base" config reaches the memory store: max_tapes evicts. */
static void test_base_config_is_applied(void **state)
{
    (void)state;
    tape_store *s = open_ok("{\"prefix\": \"p\", \"base\": {\"max_tapes\": 1}}");
    tape *t = new_tape("p1", 1);
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    tape_free(t);
    t = new_tape("p2", 1);
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    tape_free(t);
    int exists = 1;
    assert_int_equal(tape_store_exists(&exists, s, "p1"), TAPE_OK);
    assert_int_equal(exists, 0);
    assert_int_equal(tape_store_exists(&exists, s, "p2"), TAPE_OK);
    assert_int_equal(exists, 1);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

/* Native ops mirror the memory base, plus our control op. */
static void test_capabilities_mirror_the_base(void **state)
{
    (void)state;
    tape_store *s = open_ok("{\"prefix\": \"c\"}");
    unsigned int native = 0, available = 0;
    assert_int_equal(tape_store_capabilities(&native, &available, s), TAPE_OK);
    unsigned int want = TAPE_CAP_EXISTS | TAPE_CAP_STATS | TAPE_CAP_WRITER |
                        TAPE_CAP_READ_FRAMES | TAPE_CAP_CONTROL | TAPE_CAP_THREAD_SAFE;
    assert_int_equal(native, want);
    assert_int_equal(native & TAPE_CAP_SEARCH, 0);     /* the core's matcher does it */
    assert_int_equal(native & TAPE_CAP_PERSISTENT, 0); /* memory is not persistent */
    assert_true(available & TAPE_CAP_SEARCH);
    assert_int_equal(tape_store_close(s), TAPE_OK);

    tape_provider_info *info = NULL;
    assert_int_equal(tape_registry_find(&info, reg, "prefix"), TAPE_OK);
    assert_int_equal(tape_provider_info_capabilities(info), want);
    assert_int_equal(tape_provider_info_version(info), 1);
    tape_provider_info_free(info);
}

static void test_control_ops(void **state)
{
    (void)state;
    tape_store *s = open_ok("{\"prefix\": \"team.a-\"}");
    char *json = NULL;
    assert_int_equal(tape_store_control(&json, s, "prefix", NULL), TAPE_OK);
    assert_string_equal(json, "{\"prefix\":\"team.a-\"}");
    tape_string_free(json);
    json = NULL;
    assert_int_equal(tape_store_control(&json, s, "compact", "{}"), TAPE_EUNSUPPORTED);
    assert_null(json);
    assert_msg_has("\"compact\"");
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_good_configs_open),
        cmocka_unit_test(test_ids_without_prefix_are_refused),
        cmocka_unit_test(test_empty_prefix_accepts_every_id),
        cmocka_unit_test(test_record_and_read_frames),
        cmocka_unit_test(test_base_config_is_applied),
        cmocka_unit_test(test_capabilities_mirror_the_base),
        cmocka_unit_test(test_control_ops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
