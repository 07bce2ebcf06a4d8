/* test_entry.c - entries: snapshot of a tape's metadata and stats,
 * immutable, reference counted across threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tapestore/provider.h"

#include "tape_test.h"

static void append(tape *t, int dir, int64_t ts, const char *msg)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = dir;
    d.ts_ms = ts;
    d.message = msg;
    EXPECT_OK(tape_append_frame(NULL, t, &d));
}

static tape *sample_tape(void)
{
    tape *t = NULL;
    EXPECT_OK(tape_new(&t, "entry-1"));
    EXPECT_OK(tape_set_name(t, "Démo “quoted” 名前"));
    EXPECT_OK(tape_set_description(t, "a description"));
    EXPECT_OK(tape_set_session_id(t, "sess-42"));
    EXPECT_OK(tape_set_created_at(t, 1755167400000));
    EXPECT_OK(tape_set_updated_at(t, 1755167500000));
    EXPECT_OK(tape_set_status(t, TAPE_STATUS_FINALIZED));
    EXPECT_OK(tape_add_tag(t, "prod"));
    EXPECT_OK(tape_add_tag(t, "étiquette"));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 0, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}");
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 30, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 80, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x\"}");
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 95,
           "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-1,\"message\":\"boom\"}}");
    EXPECT_OK(tape_add_correlation(t, "c1", 0, 1, 30, "success"));
    return t;
}

static void test_from_tape(void **state)
{
    (void)state;
    tape *t = sample_tape();
    tape_entry *e = NULL;
    EXPECT_OK(tape_entry_from_tape(&e, t));
    assert_non_null(e);
    assert_string_equal(tape_entry_id(e), "entry-1");
    assert_string_equal(tape_entry_name(e), "Démo “quoted” 名前");
    assert_string_equal(tape_entry_description(e), "a description");
    assert_string_equal(tape_entry_session_id(e), "sess-42");
    assert_int_equal(tape_entry_status(e), TAPE_STATUS_FINALIZED);
    assert_int_equal(tape_entry_created_at(e), 1755167400000);
    assert_int_equal(tape_entry_updated_at(e), 1755167500000);
    assert_int_equal(tape_entry_tag_count(e), 2);
    assert_string_equal(tape_entry_tag_at(e, 0), "prod");
    assert_string_equal(tape_entry_tag_at(e, 1), "étiquette");
    assert_null(tape_entry_tag_at(e, 2));
    assert_true(tape_entry_has_tag(e, "étiquette"));
    assert_false(tape_entry_has_tag(e, "Prod"));
    assert_false(tape_entry_has_tag(e, NULL));

    tape_stats want = TAPE_STATS_INIT, got = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&want, t));
    EXPECT_OK(tape_entry_get_stats(&got, e));
    assert_memory_equal(&want, &got, sizeof want);
    assert_int_equal(got.frame_count, 4);
    assert_int_equal(got.duration_ms, 95);
    assert_int_equal(got.last_sequence, 3);
    assert_int_equal(got.client_to_server, 2);
    assert_int_equal(got.server_to_client, 2);
    assert_int_equal(got.error_count, 1);
    assert_int_equal(got.correlation_count, 1);
    assert_true(got.file_size_bytes > 0);

    /* The entry is a snapshot: later changes to the tape do not show. */
    EXPECT_OK(tape_set_name(t, "renamed"));
    EXPECT_OK(tape_remove_tag(t, "prod"));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 500, "{}");
    assert_string_equal(tape_entry_name(e), "Démo “quoted” 名前");
    assert_int_equal(tape_entry_tag_count(e), 2);
    EXPECT_OK(tape_entry_get_stats(&got, e));
    assert_int_equal(got.frame_count, 4);
    tape_free(t);
    /* ...and outlives it. */
    assert_string_equal(tape_entry_id(e), "entry-1");
    tape_entry_free(e);
}

static void test_unset_fields(void **state)
{
    (void)state;
    tape *t = NULL;
    EXPECT_OK(tape_new(&t, "bare"));
    tape_entry *e;
    EXPECT_OK(tape_entry_from_tape(&e, t));
    assert_null(tape_entry_name(e));
    assert_null(tape_entry_description(e));
    assert_null(tape_entry_session_id(e));
    assert_int_equal(tape_entry_status(e), TAPE_STATUS_RECORDING);
    assert_int_equal(tape_entry_created_at(e), tape_created_at(t));
    assert_int_equal(tape_entry_updated_at(e), TAPE_TIME_NONE);
    assert_int_equal(tape_entry_tag_count(e), 0);
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_OK(tape_entry_get_stats(&st, e));
    assert_int_equal(st.frame_count, 0);
    assert_int_equal(st.duration_ms, 0);
    char *init;
    size_t init_len;
    EXPECT_OK(tape_encode_init_line(&init, &init_len, t));
    assert_int_equal(st.file_size_bytes, init_len);
    tape_string_free(init);
    tape_entry_free(e);
    tape_free(t);
}

static void test_null_arguments(void **state)
{
    (void)state;
    assert_null(tape_entry_id(NULL));
    assert_null(tape_entry_name(NULL));
    assert_null(tape_entry_description(NULL));
    assert_null(tape_entry_session_id(NULL));
    assert_int_equal(tape_entry_status(NULL), 0);
    assert_int_equal(tape_entry_created_at(NULL), TAPE_TIME_NONE);
    assert_int_equal(tape_entry_updated_at(NULL), TAPE_TIME_NONE);
    assert_int_equal(tape_entry_tag_count(NULL), 0);
    assert_null(tape_entry_tag_at(NULL, 0));
    assert_int_equal(tape_entry_has_tag(NULL, "x"), 0);
    assert_null(tape_entry_ref(NULL));
    tape_entry_free(NULL);
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_ERR(tape_entry_get_stats(&st, NULL), TAPE_EINVAL, "entry is NULL");
    tape_entry *e = (tape_entry *)&e;
    EXPECT_ERR(tape_entry_from_tape(&e, NULL), TAPE_EINVAL, "tape is NULL");
    assert_null(e);
    tape *t = sample_tape();
    EXPECT_ERR(tape_entry_from_tape(NULL, t), TAPE_EINVAL, "out is NULL");
    EXPECT_OK(tape_entry_from_tape(&e, t));
    EXPECT_ERR(tape_entry_get_stats(NULL, e), TAPE_EINVAL, "out is NULL");
    tape_stats zero = { 0 };
    EXPECT_ERR(tape_entry_get_stats(&zero, e), TAPE_EINVAL, "TAPE_STATS_INIT");
    tape_entry_free(e);
    tape_free(t);
}

static void test_refcount(void **state)
{
    (void)state;
    tape *t = sample_tape();
    tape_entry *e;
    EXPECT_OK(tape_entry_from_tape(&e, t));
    tape_free(t);
    tape_entry *r1 = tape_entry_ref(e);
    tape_entry *r2 = tape_entry_ref(r1);
    assert_ptr_equal(r1, e);
    assert_ptr_equal(r2, e);
    tape_entry_free(e);
    tape_entry_free(r1);
    /* One reference left: still readable (valgrind/ASan catch a early free). */
    assert_string_equal(tape_entry_id(r2), "entry-1");
    assert_int_equal(tape_entry_tag_count(r2), 2);
    tape_entry_free(r2);
}

#define THREADS 4
#define ROUNDS 20000

static void *ref_worker(void *arg)
{
    tape_entry *e = arg;
    size_t sum = 0;
    for (int i = 0; i < ROUNDS; i++) {
        tape_entry *r = tape_entry_ref(e);
        sum += strlen(tape_entry_name(r)) + tape_entry_tag_count(r);
        tape_entry_free(r);
    }
    /* Each thread drops the reference it was given. */
    tape_entry_free(e);
    return (void *)sum;
}

static void test_refcount_threads(void **state)
{
    (void)state;
    tape *t = sample_tape();
    tape_entry *e;
    EXPECT_OK(tape_entry_from_tape(&e, t));
    tape_free(t);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, ref_worker, tape_entry_ref(e)), 0);
    }
    tape_entry_free(e); /* the threads now hold the only references */
    size_t want = (strlen("Démo “quoted” 名前") + 2) * ROUNDS;
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_int_equal((size_t)ret, want);
    }
}

static void test_entry_of_frameless(void **state)
{
    (void)state;
    tape *t = sample_tape();
    tape *m;
    EXPECT_OK(tape_clone_meta(&m, t));
    tape_entry *a, *b;
    EXPECT_OK(tape_entry_from_tape(&a, t));
    EXPECT_OK(tape_entry_from_tape(&b, m));
    tape_stats sa = TAPE_STATS_INIT, sb = TAPE_STATS_INIT;
    EXPECT_OK(tape_entry_get_stats(&sa, a));
    EXPECT_OK(tape_entry_get_stats(&sb, b));
    assert_memory_equal(&sa, &sb, sizeof sa);
    assert_string_equal(tape_entry_name(a), tape_entry_name(b));
    tape_entry_free(a);
    tape_entry_free(b);
    tape_free(m);
    tape_free(t);
}

static const char *META =
    "{\n"
    "  \"tape_id\": \"meta-7\",\n"
    "  \"name\": \"Réunion \\u00e9quipe\",\n"
    "  \"description\": null,\n"
    "  \"tags\": [\"prod\", \"nightly\", \"prod\"],\n"
    "  \"created_at\": \"2025-08-14T12:30:00.250+02:00\",\n"
    "  \"updated_at\": \"2025-08-14T10:31:00Z\",\n"
    "  \"finalized_at\": null,\n"
    "  \"status\": \"recording\",\n"
    "  \"transport\": {\"type\": \"http\"},\n"
    "  \"environment\": null,\n"
    "  \"session_id\": \"s-77\",\n"
    "  \"stats\": {\"frame_count\": 12, \"duration_ms\": 3400, \"file_size_bytes\": 9876,\n"
    "            \"last_sequence\": 11, \"message_counts\": {\"client_to_server\": 7,\n"
    "            \"server_to_client\": 5}, \"error_count\": 1, \"correlation_count\": 6,\n"
    "            \"checkpoint_count\": 2},\n"
    "  \"performance\": {\"avg_rtt_ms\": 12.5}\n"
    "}\n";

static void test_from_meta(void **state)
{
    (void)state;
    tape_entry *e = NULL;
    EXPECT_OK(tape_entry_from_meta(&e, META, strlen(META)));
    assert_string_equal(tape_entry_id(e), "meta-7");
    assert_string_equal(tape_entry_name(e), "Réunion équipe");
    assert_null(tape_entry_description(e));
    assert_string_equal(tape_entry_session_id(e), "s-77");
    assert_int_equal(tape_entry_status(e), TAPE_STATUS_RECORDING);
    assert_int_equal(tape_entry_created_at(e), 1755167400250);
    assert_int_equal(tape_entry_updated_at(e), 1755167460000);
    assert_int_equal(tape_entry_tag_count(e), 2);
    assert_true(tape_entry_has_tag(e, "nightly"));
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_OK(tape_entry_get_stats(&st, e));
    assert_int_equal(st.frame_count, 12);
    assert_int_equal(st.duration_ms, 3400);
    assert_int_equal(st.file_size_bytes, 9876);
    assert_int_equal(st.last_sequence, 11);
    assert_int_equal(st.client_to_server, 7);
    assert_int_equal(st.server_to_client, 5);
    assert_int_equal(st.error_count, 1);
    assert_int_equal(st.correlation_count, 6);

    /* Back to a meta document: the same content, unknown keys included. */
    char *json = NULL;
    size_t len = 0;
    EXPECT_OK(tape_entry_meta_json(&json, &len, e));
    assert_int_equal(len, strlen(json));
    cJSON *m = cJSON_Parse(json);
    assert_non_null(m);
    assert_string_equal(cJSON_GetObjectItem(m, "created_at")->valuestring,
                        "2025-08-14T10:30:00.250Z");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(m, "finalized_at")));
    assert_string_equal(cJSON_GetObjectItem(m, "status")->valuestring, "recording");
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "performance"), "avg_rtt_ms")
                    ->valuedouble == 12.5);
    cJSON *s = cJSON_GetObjectItem(m, "stats");
    assert_int_equal(cJSON_GetObjectItem(s, "checkpoint_count")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(s, "file_size_bytes")->valueint, 9876);
    cJSON_Delete(m);
    tape_entry *again;
    EXPECT_OK(tape_entry_from_meta(&again, json, len));
    tape_stats st2 = TAPE_STATS_INIT;
    EXPECT_OK(tape_entry_get_stats(&st2, again));
    assert_memory_equal(&st, &st2, sizeof st);
    char *json2;
    EXPECT_OK(tape_entry_meta_json(&json2, NULL, again));
    assert_string_equal(json, json2);
    tape_string_free(json);
    tape_string_free(json2);
    tape_entry_free(again);
    tape_entry_free(e);

    /* Minimal meta: absent keys are unset, stats zero. */
    const char *min = "{\"tape_id\":\"m\",\"created_at\":\"2025-08-14T10:30:00Z\"}";
    EXPECT_OK(tape_entry_from_meta(&e, min, strlen(min)));
    assert_null(tape_entry_name(e));
    assert_int_equal(tape_entry_status(e), TAPE_STATUS_RECORDING);
    assert_int_equal(tape_entry_updated_at(e), TAPE_TIME_NONE);
    EXPECT_OK(tape_entry_get_stats(&st, e));
    assert_int_equal(st.frame_count, 0);
    assert_int_equal(st.file_size_bytes, 0);
    tape_entry_free(e);
}

static void test_meta_json_matches_tape(void **state)
{
    (void)state;
    tape *t = sample_tape();
    tape_entry *e;
    EXPECT_OK(tape_entry_from_tape(&e, t));
    char *a, *b;
    EXPECT_OK(tape_encode_meta(&a, NULL, t));
    EXPECT_OK(tape_entry_meta_json(&b, NULL, e));
    assert_string_equal(a, b);
    tape_entry *f;
    EXPECT_OK(tape_entry_from_meta(&f, b, strlen(b)));
    tape_stats sa = TAPE_STATS_INIT, sb = TAPE_STATS_INIT;
    EXPECT_OK(tape_entry_get_stats(&sa, e));
    EXPECT_OK(tape_entry_get_stats(&sb, f));
    assert_memory_equal(&sa, &sb, sizeof sa);
    assert_string_equal(tape_entry_name(f), tape_entry_name(e));
    assert_int_equal(tape_entry_created_at(f), tape_entry_created_at(e));
    tape_string_free(a);
    tape_string_free(b);
    tape_entry_free(e);
    tape_entry_free(f);
    tape_free(t);
}

static void test_from_meta_invalid(void **state)
{
    (void)state;
    struct {
        const char *meta;
        const char *why;
    } bad[] = {
        { "", "meta document is not valid JSON" },
        { "{\"tape_id\":\"x\",", "meta document is not valid JSON" },
        { "\"x\"", "meta document is not a JSON object" },
        { "{\"created_at\":\"2025-08-14T10:30:00Z\"}", "meta: tape_id is missing" },
        { "{\"tape_id\":\"../x\",\"created_at\":\"2025-08-14T10:30:00Z\"}",
          "meta: invalid tape id '../x'" },
        { "{\"tape_id\":\"a/b\",\"created_at\":\"2025-08-14T10:30:00Z\"}", "0x2f" },
        { "{\"tape_id\":\"\",\"created_at\":\"2025-08-14T10:30:00Z\"}", "tape id is empty" },
        { "{\"tape_id\":\"x\"}", "meta: created_at is missing" },
        { "{\"tape_id\":\"x\",\"created_at\":\"2025-02-30T00:00:00Z\"}", "day out of range" },
        { "{\"tape_id\":\"x\",\"created_at\":\"2025-08-14T10:30:00Z\",\"stats\":"
          "{\"frame_count\":-1}}",
          "meta: stats.frame_count is a number, expected a non-negative integer" },
        { "{\"tape_id\":\"x\",\"created_at\":\"2025-08-14T10:30:00Z\",\"stats\":"
          "{\"duration_ms\":\"5\"}}",
          "stats.duration_ms is a string" },
        { "{\"tape_id\":\"x\",\"created_at\":\"2025-08-14T10:30:00Z\",\"stats\":"
          "{\"message_counts\":{\"client_to_server\":1.5}}}",
          "stats.message_counts.client_to_server" },
        { "{\"tape_id\":\"x\",\"created_at\":\"2025-08-14T10:30:00Z\",\"status\":\"done\"}",
          "status 'done'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tape_entry *e = (tape_entry *)&e;
        int rc = tape_entry_from_meta(&e, bad[i].meta, strlen(bad[i].meta));
        if (rc != TAPE_ECORRUPT || strstr(tape_errmsg(), bad[i].why) == NULL) {
            fail_msg("meta %zu: rc %d '%s', want '%s'", i, rc, tape_errmsg(), bad[i].why);
        }
        assert_null(e);
    }
    char big[5000];
    int n = snprintf(big, sizeof big, "{\"tape_id\":\"");
    memset(big + n, 'a', 4096);
    snprintf(big + n + 4096, sizeof big - (size_t)n - 4096,
             "\",\"created_at\":\"2025-08-14T10:30:00Z\"}");
    tape_entry *e;
    EXPECT_ERR(tape_entry_from_meta(&e, big, strlen(big)), TAPE_ECORRUPT, "longer than 128 bytes");
    EXPECT_ERR(tape_entry_from_meta(NULL, META, strlen(META)), TAPE_EINVAL, "out is NULL");
    EXPECT_ERR(tape_entry_from_meta(&e, NULL, 3), TAPE_EINVAL, "meta is NULL");
    char *out;
    EXPECT_ERR(tape_entry_meta_json(&out, NULL, NULL), TAPE_EINVAL, "entry is NULL");
    EXPECT_ERR(tape_entry_meta_json(NULL, NULL, NULL), TAPE_EINVAL, "out is NULL");
}

static void test_many_entries(void **state)
{
    (void)state;
    /* A listing: 100,000 entries from meta documents, then a pass over
     * every accessor the matcher uses. */
    enum { N = 100000 };
    tape_entry **es = malloc(N * sizeof *es);
    assert_non_null(es);
    char meta[512];
    for (int i = 0; i < N; i++) {
        snprintf(meta, sizeof meta,
                 "{\"tape_id\":\"t-%d\",\"name\":\"n%d\",\"tags\":[\"a\",\"%s\"],"
                 "\"created_at\":\"2025-08-14T10:30:00Z\",\"status\":\"%s\","
                 "\"stats\":{\"frame_count\":%d,\"duration_ms\":%d}}",
                 i, i, i % 2 ? "odd" : "even", i % 3 ? "recording" : "finalized", i, i * 2);
        EXPECT_OK(tape_entry_from_meta(&es[i], meta, strlen(meta)));
    }
    uint64_t frames = 0, odd = 0, fin = 0;
    for (int i = 0; i < N; i++) {
        tape_stats st = TAPE_STATS_INIT;
        EXPECT_OK(tape_entry_get_stats(&st, es[i]));
        frames += st.frame_count;
        odd += (uint64_t)tape_entry_has_tag(es[i], "odd");
        fin += tape_entry_status(es[i]) == TAPE_STATUS_FINALIZED;
        assert_non_null(tape_entry_id(es[i]));
    }
    assert_int_equal(frames, (uint64_t)N * (N - 1) / 2);
    assert_int_equal(odd, N / 2);
    assert_int_equal(fin, (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        tape_entry_free(es[i]);
    }
    free(es);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_tape),
        cmocka_unit_test(test_unset_fields),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_refcount_threads),
        cmocka_unit_test(test_entry_of_frameless),
        cmocka_unit_test(test_from_meta),
        cmocka_unit_test(test_meta_json_matches_tape),
        cmocka_unit_test(test_from_meta_invalid),
        cmocka_unit_test(test_many_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
