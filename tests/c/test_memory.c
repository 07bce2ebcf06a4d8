/* Memory provider specifics: limits with LRU eviction, busy writers, the
 * test-only warning. (The conformance suite covers the general contract.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tapestore/provider.h"

static char last_warning[512];
static int warnings;

static void hook(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level == TAPE_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", msg);
    }
}

static tape_store *open_mem(const char *cfg)
{
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "memory", cfg, 0), TAPE_OK);
    return s;
}

static void save_id(tape_store *s, const char *id, int frames)
{
    tape *t = NULL;
    assert_int_equal(tape_new(&t, id), TAPE_OK);
    for (int i = 0; i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}";
        assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    }
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    tape_free(t);
}

static int has(tape_store *s, const char *id)
{
    int e = -1;
    assert_int_equal(tape_store_exists(&e, s, id), TAPE_OK);
    return e;
}

static void test_warns_it_is_for_tests(void **state)
{
    (void)state;
    warnings = 0;
    tape_log_set(hook, NULL);
    tape_store *s = open_mem("{}");
    tape_log_set(NULL, NULL);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "meant for tests"));
    tape_store_free(s);
}

static void test_max_tapes_evicts_least_recently_used(void **state)
{
    (void)state;
    tape_store *s = open_mem("{\"max_tapes\":3}");
    save_id(s, "a", 1);
    save_id(s, "b", 1);
    save_id(s, "c", 1);
    tape *t = NULL;
    assert_int_equal(tape_store_load(&t, s, "a"), TAPE_OK); /* a is now recent */
    tape_free(t);
    save_id(s, "d", 1); /* evicts b, the least recently used */
    assert_int_equal(has(s, "a"), 1);
    assert_int_equal(has(s, "b"), 0);
    assert_int_equal(has(s, "c"), 1);
    assert_int_equal(has(s, "d"), 1);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    assert_int_equal(tape_store_stats_get(&st, s), TAPE_OK);
    assert_int_equal(st.tape_count, 3);
    assert_int_equal(st.frame_count, 3);
    tape_store_free(s);
}

static void test_max_bytes(void **state)
{
    (void)state;
    tape_store *s = open_mem("{\"max_bytes\":4000}");
    save_id(s, "small1", 5);
    save_id(s, "small2", 5);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    assert_int_equal(tape_store_stats_get(&st, s), TAPE_OK);
    assert_true(st.total_bytes <= 4000);
    /* A tape larger than the whole budget is refused and nothing changes. */
    tape *big = NULL;
    assert_int_equal(tape_new(&big, "big"), TAPE_OK);
    for (int i = 0; i < 100; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_SERVER_TO_CLIENT;
        d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":\"xxxxxxxxxxxxxxxx\"}}";
        assert_int_equal(tape_append_frame(NULL, big, &d), TAPE_OK);
    }
    assert_int_equal(tape_store_save(s, big), TAPE_ELIMIT);
    assert_non_null(strstr(tape_errmsg(), "max_bytes"));
    assert_int_equal(has(s, "big"), 0);
    assert_int_equal(has(s, "small1"), 1);
    assert_int_equal(has(s, "small2"), 1);
    tape_free(big);
    /* Filling up evicts the oldest. */
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "n%d", i);
        save_id(s, id, 5);
    }
    assert_int_equal(has(s, "small1"), 0);
    assert_int_equal(has(s, "n19"), 1);
    assert_int_equal(tape_store_stats_get(&st, s), TAPE_OK);
    assert_true(st.total_bytes <= 4000);
    tape_store_free(s);
}

static void test_bad_config(void **state)
{
    (void)state;
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, NULL, "memory", "{\"max_tape\":1}", 0), TAPE_ECONFIG);
    assert_non_null(strstr(tape_errmsg(), "\"max_tape\""));
    assert_int_equal(tape_store_open(&s, NULL, "memory", "{\"max_bytes\":\"1M\"}", 0),
                     TAPE_ECONFIG);
    assert_non_null(strstr(tape_errmsg(), "\"max_bytes\""));
    assert_int_equal(tape_store_open(&s, NULL, "memory", "{\"max_tapes\":-2}", 0), TAPE_ECONFIG);
    assert_null(s);
}

static void test_busy_while_recording(void **state)
{
    (void)state;
    tape_store *s = open_mem("{}");
    tape *h = NULL;
    assert_int_equal(tape_new(&h, "live"), TAPE_OK);
    tape_writer *w = NULL, *w2 = NULL;
    assert_int_equal(tape_store_record(&w, s, h), TAPE_OK);
    assert_int_equal(tape_store_record(&w2, s, h), TAPE_EBUSY);
    assert_non_null(strstr(tape_errmsg(), "\"live\""));
    assert_int_equal(tape_store_save(s, h), TAPE_EBUSY);
    assert_int_equal(tape_store_delete(s, "live"), TAPE_EBUSY);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":1}";
    assert_int_equal(tape_writer_append(NULL, w, &d), TAPE_OK);
    assert_int_equal(tape_writer_append(NULL, w, &d), TAPE_OK);
    /* A tape being recorded shows the frames so far. */
    tape *seen = NULL;
    assert_int_equal(tape_store_load(&seen, s, "live"), TAPE_OK);
    assert_int_equal(tape_frame_count(seen), 2);
    assert_int_equal(tape_status(seen), TAPE_STATUS_RECORDING);
    tape_free(seen);
    assert_int_equal(tape_writer_add_correlation(w, "c1", 0, 1, 4, "success"), TAPE_OK);
    assert_int_equal(tape_writer_finish(w), TAPE_OK);
    tape_writer_free(w);
    assert_int_equal(tape_store_load(&seen, s, "live"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_FINALIZED);
    /* The store's byte count follows the tape through correlations and finish. */
    tape_stats ts = TAPE_STATS_INIT;
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    assert_int_equal(tape_get_stats(&ts, seen), TAPE_OK);
    assert_int_equal(tape_store_stats_get(&ss, s), TAPE_OK);
    assert_int_equal(ss.total_bytes, ts.file_size_bytes);
    tape_free(seen);
    assert_int_equal(tape_store_delete(s, "live"), TAPE_OK);
    assert_int_equal(tape_store_record(&w, s, h), TAPE_OK);
    tape_writer_free(w); /* abandoned: stays, status recording */
    assert_int_equal(tape_store_load(&seen, s, "live"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_RECORDING);
    tape_free(seen);
    tape_free(h);
    tape_store_free(s);
}

static void test_instances_are_independent(void **state)
{
    (void)state;
    tape_store *a = open_mem("{}");
    tape_store *b = open_mem("{}");
    save_id(a, "only-in-a", 0);
    assert_int_equal(has(a, "only-in-a"), 1);
    assert_int_equal(has(b, "only-in-a"), 0);
    unsigned native = 0;
    assert_int_equal(tape_store_capabilities(&native, NULL, a), TAPE_OK);
    assert_true(native & TAPE_CAP_WRITER);
    assert_true(native & TAPE_CAP_THREAD_SAFE);
    assert_false(native & TAPE_CAP_PERSISTENT);
    tape_store_free(a);
    tape_store_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warns_it_is_for_tests),
        cmocka_unit_test(test_max_tapes_evicts_least_recently_used),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_busy_while_recording),
        cmocka_unit_test(test_instances_are_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
