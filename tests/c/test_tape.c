/* test_tape.c - the tape model: ids, metadata, tags, frames, correlations,
 * stats, clones, and the ISO-8601 time helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec_internal.h"
#include "tapestore/provider.h"

/* The call must fail with `code` and a message containing `needle`. */
#include "tape_test.h"

static tape *new_tape(const char *id)
{
    tape *t = NULL;
    EXPECT_OK(tape_new(&t, id));
    assert_non_null(t);
    return t;
}

static uint64_t append(tape *t, int dir, int64_t ts, const char *msg)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = dir;
    d.ts_ms = ts;
    d.message = msg;
    uint64_t seq = 999;
    EXPECT_OK(tape_append_frame(&seq, t, &d));
    return seq;
}

/* ------------------------------------------------------------------ ids */

static void test_id_valid(void **state)
{
    (void)state;
    char max[TAPE_ID_MAX + 1];
    memset(max, 'a', TAPE_ID_MAX);
    max[TAPE_ID_MAX] = '\0';
    const char *ok[] = { "a", "abc-DEF_1.2", "x..y", "0", "a.", max };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        EXPECT_OK(tape_id_validate(ok[i]));
    }
}

static void test_id_invalid(void **state)
{
    (void)state;
    EXPECT_ERR(tape_id_validate(NULL), TAPE_EINVAL, "NULL");
    EXPECT_ERR(tape_id_validate(""), TAPE_EINVAL, "empty");
    EXPECT_ERR(tape_id_validate(".hidden"), TAPE_EINVAL, "must not start with '.'");
    EXPECT_ERR(tape_id_validate(".."), TAPE_EINVAL, "must not start with '.'");
    EXPECT_ERR(tape_id_validate("../x"), TAPE_EINVAL, "must not start with '.'");
    EXPECT_ERR(tape_id_validate("a/b"), TAPE_EINVAL, "0x2f at offset 1");
    EXPECT_ERR(tape_id_validate("ab\ncd"), TAPE_EINVAL, "'ab...': byte 0x0a at offset 2");
    assert_null(strchr(tape_errmsg(), '\n')); /* a control byte never reaches the message */
    EXPECT_ERR(tape_id_validate("a\\b"), TAPE_EINVAL, "0x5c");
    EXPECT_ERR(tape_id_validate("a b"), TAPE_EINVAL, "0x20");
    EXPECT_ERR(tape_id_validate("caf\xc3\xa9"), TAPE_EINVAL, "0xc3 at offset 3");
    char over[TAPE_ID_MAX + 2];
    memset(over, 'a', TAPE_ID_MAX + 1);
    over[TAPE_ID_MAX + 1] = '\0';
    EXPECT_ERR(tape_id_validate(over), TAPE_EINVAL, "longer than 128 bytes");
    char *big = malloc(4097);
    assert_non_null(big);
    memset(big, 'b', 4096);
    big[4096] = '\0';
    EXPECT_ERR(tape_id_validate(big), TAPE_EINVAL, "longer than 128 bytes");
    tape *t = (tape *)&t; /* must be reset to NULL on failure */
    EXPECT_ERR(tape_new(&t, big), TAPE_EINVAL, "longer than");
    assert_null(t);
    free(big);
    EXPECT_ERR(tape_new(&t, "../etc/passwd"), TAPE_EINVAL, "invalid tape id");
    assert_null(t);
    EXPECT_ERR(tape_new(NULL, "x"), TAPE_EINVAL, "out is NULL");
}

static void test_new_uuid(void **state)
{
    (void)state;
    int64_t before = tape__now_ms();
    tape *a = new_tape(NULL), *b = new_tape(NULL);
    int64_t after = tape__now_ms();
    const char *id = tape_id(a);
    assert_int_equal(strlen(id), 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(id[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", id[i]));
        }
    }
    assert_int_equal(id[14], '4');
    assert_non_null(strchr("89ab", id[19]));
    assert_string_not_equal(tape_id(a), tape_id(b));
    EXPECT_OK(tape_id_validate(id));
    assert_true(tape_created_at(a) >= before && tape_created_at(a) <= after);
    assert_int_equal(tape_status(a), TAPE_STATUS_RECORDING);
    assert_null(tape_name(a));
    assert_null(tape_session_id(a));
    assert_int_equal(tape_updated_at(a), TAPE_TIME_NONE);
    assert_int_equal(tape_finalized_at(a), TAPE_TIME_NONE);
    assert_int_equal(tape_frame_count(a), 0);
    assert_int_equal(tape_tag_count(a), 0);
    tape_free(a);
    tape_free(b);
    tape_free(NULL);
}

/* ------------------------------------------------------------ metadata */

static void test_metadata(void **state)
{
    (void)state;
    tape *t = new_tape("meta-1");
    assert_string_equal(tape_id(t), "meta-1");
    EXPECT_OK(tape_set_name(t, "Zürich → 東京 session"));
    assert_string_equal(tape_name(t), "Zürich → 東京 session");
    EXPECT_OK(tape_set_name(t, NULL));
    assert_null(tape_name(t));
    EXPECT_OK(tape_set_description(t, "d"));
    assert_string_equal(tape_description(t), "d");
    EXPECT_OK(tape_set_session_id(t, "sess-9"));
    assert_string_equal(tape_session_id(t), "sess-9");
    EXPECT_OK(tape_set_protocol_version(t, "2025-11-05"));
    assert_string_equal(tape_protocol_version(t), "2025-11-05");

    EXPECT_OK(tape_set_status(t, TAPE_STATUS_FINALIZED));
    assert_int_equal(tape_status(t), TAPE_STATUS_FINALIZED);
    EXPECT_ERR(tape_set_status(t, 3), TAPE_EINVAL, "invalid tape status 3");
    EXPECT_ERR(tape_set_status(t, 0), TAPE_EINVAL, "invalid tape status 0");
    assert_int_equal(tape_status(t), TAPE_STATUS_FINALIZED);

    EXPECT_OK(tape_set_created_at(t, 1755167400000));
    assert_int_equal(tape_created_at(t), 1755167400000);
    EXPECT_ERR(tape_set_created_at(t, TAPE_TIME_NONE), TAPE_EINVAL, "cannot be unset");
    EXPECT_ERR(tape_set_created_at(t, INT64_MAX), TAPE_EINVAL, "out of range");
    assert_int_equal(tape_created_at(t), 1755167400000);
    EXPECT_OK(tape_set_updated_at(t, 1755167460000));
    assert_int_equal(tape_updated_at(t), 1755167460000);
    EXPECT_OK(tape_set_updated_at(t, TAPE_TIME_NONE));
    assert_int_equal(tape_updated_at(t), TAPE_TIME_NONE);
    EXPECT_ERR(tape_set_updated_at(t, 253402300800000), TAPE_EINVAL, "updated_at");
    EXPECT_OK(tape_set_finalized_at(t, 0));
    assert_int_equal(tape_finalized_at(t), 0);
    EXPECT_ERR(tape_set_finalized_at(t, -62167219200001), TAPE_EINVAL, "finalized_at");

    EXPECT_OK(tape_set_transport_json(t, " { \"type\" : \"stdio\", \"n\": [1, 2] } "));
    assert_string_equal(tape_transport_json(t), "{\"type\":\"stdio\",\"n\":[1,2]}");
    EXPECT_ERR(tape_set_transport_json(t, "{\"type\":"), TAPE_EINVAL, "transport is not valid JSON");
    EXPECT_ERR(tape_set_transport_json(t, "{} {}"), TAPE_EINVAL, "transport is not valid JSON");
    assert_string_equal(tape_transport_json(t), "{\"type\":\"stdio\",\"n\":[1,2]}");
    EXPECT_OK(tape_set_transport_json(t, NULL));
    assert_null(tape_transport_json(t));
    EXPECT_OK(tape_set_environment_json(t, "{\"host\":\"h\u00e9\"}"));
    assert_string_equal(tape_environment_json(t), "{\"host\":\"h\u00e9\"}");
    EXPECT_ERR(tape_set_environment_json(t, ""), TAPE_EINVAL, "environment is not valid JSON");
    tape_free(t);
}

static void test_null_arguments(void **state)
{
    (void)state;
    assert_null(tape_id(NULL));
    assert_null(tape_name(NULL));
    assert_null(tape_description(NULL));
    assert_null(tape_session_id(NULL));
    assert_null(tape_protocol_version(NULL));
    assert_null(tape_transport_json(NULL));
    assert_null(tape_environment_json(NULL));
    assert_int_equal(tape_status(NULL), 0);
    assert_int_equal(tape_created_at(NULL), TAPE_TIME_NONE);
    assert_int_equal(tape_updated_at(NULL), TAPE_TIME_NONE);
    assert_int_equal(tape_finalized_at(NULL), TAPE_TIME_NONE);
    EXPECT_ERR(tape_set_name(NULL, "x"), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_description(NULL, "x"), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_session_id(NULL, "x"), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_protocol_version(NULL, "x"), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_status(NULL, 1), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_created_at(NULL, 0), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_updated_at(NULL, 0), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_finalized_at(NULL, 0), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_transport_json(NULL, "{}"), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_set_environment_json(NULL, "{}"), TAPE_EINVAL, "tape is NULL");
    assert_int_equal(tape_tag_count(NULL), 0);
    assert_null(tape_tag_at(NULL, 0));
    assert_int_equal(tape_has_tag(NULL, "x"), 0);
    EXPECT_ERR(tape_add_tag(NULL, "x"), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_remove_tag(NULL, "x"), TAPE_EINVAL, "tape is NULL");
    uint64_t seq;
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    EXPECT_ERR(tape_append_frame(&seq, NULL, &d), TAPE_EINVAL, "tape is NULL");
    assert_int_equal(tape_frame_count(NULL), 0);
    assert_null(tape_frame_at(NULL, 0));
    assert_int_equal(tape_frame_seq(NULL), 0);
    assert_int_equal(tape_frame_ts(NULL), 0);
    assert_int_equal(tape_frame_direction(NULL), 0);
    size_t len = 7;
    assert_null(tape_frame_message(NULL, &len));
    assert_int_equal(len, 0);
    assert_null(tape_frame_line(NULL, NULL));
    assert_null(tape_frame_correlation_id(NULL));
    assert_int_equal(tape_frame_is_error(NULL), 0);
    EXPECT_ERR(tape_add_correlation(NULL, "c", 0, 1, 1, "ok"), TAPE_EINVAL, "tape is NULL");
    assert_int_equal(tape_correlation_count(NULL), 0);
    EXPECT_ERR(tape_correlation_get(NULL, NULL, NULL, NULL, NULL, NULL, 0), TAPE_EINVAL,
               "tape is NULL");
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_ERR(tape_get_stats(&st, NULL), TAPE_EINVAL, "tape is NULL");
    tape *t = new_tape("n");
    EXPECT_ERR(tape_get_stats(NULL, t), TAPE_EINVAL, "out is NULL");
    tape_stats zero = { 0 };
    EXPECT_ERR(tape_get_stats(&zero, t), TAPE_EINVAL, "TAPE_STATS_INIT");
    EXPECT_ERR(tape_append_frame(NULL, t, NULL), TAPE_EINVAL, "desc is NULL");
    EXPECT_ERR(tape_add_correlation(t, NULL, 0, 1, 1, "ok"), TAPE_EINVAL, "id is NULL");
    EXPECT_ERR(tape_clone(NULL, t), TAPE_EINVAL, "out is NULL");
    tape *c = (tape *)&c;
    EXPECT_ERR(tape_clone(&c, NULL), TAPE_EINVAL, "t is NULL");
    EXPECT_ERR(tape_clone_meta(&c, NULL), TAPE_EINVAL, "t is NULL");
    EXPECT_ERR(tape_push_frame(t, NULL), TAPE_EINVAL, "frame is NULL");
    EXPECT_ERR(tape_push_frame(NULL, NULL), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_account_frame(t, NULL), TAPE_EINVAL, "frame is NULL");
    EXPECT_ERR(tape_frame_clone(NULL, NULL), TAPE_EINVAL, "out is NULL");
    tape_frame *f;
    EXPECT_ERR(tape_frame_clone(&f, NULL), TAPE_EINVAL, "frame is NULL");
    EXPECT_ERR(tape_frame_new(NULL, t, 0, &d), TAPE_EINVAL, "out is NULL");
    EXPECT_ERR(tape_encode_init_line(NULL, NULL, t), TAPE_EINVAL, "out is NULL");
    char *s;
    EXPECT_ERR(tape_encode_init_line(&s, NULL, NULL), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_encode_checkpoint_line(&s, NULL, NULL), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_encode_correlation_line(&s, NULL, NULL, 0), TAPE_EINVAL, "tape is NULL");
    EXPECT_ERR(tape_encode_correlation_line(&s, NULL, t, 0), TAPE_ENOTFOUND, "index 0");
    tape_frame_free(NULL);
    tape_free(t);
}

/* ---------------------------------------------------------------- tags */

static void test_tags(void **state)
{
    (void)state;
    tape *t = new_tape("tags");
    EXPECT_OK(tape_add_tag(t, "prod"));
    EXPECT_OK(tape_add_tag(t, "ünïcode"));
    EXPECT_OK(tape_add_tag(t, "a"));
    EXPECT_OK(tape_add_tag(t, "prod")); /* present: no-op */
    assert_int_equal(tape_tag_count(t), 3);
    assert_string_equal(tape_tag_at(t, 0), "prod");
    assert_string_equal(tape_tag_at(t, 1), "ünïcode");
    assert_string_equal(tape_tag_at(t, 2), "a");
    assert_null(tape_tag_at(t, 3));
    assert_true(tape_has_tag(t, "ünïcode"));
    assert_false(tape_has_tag(t, "PROD"));
    assert_false(tape_has_tag(t, NULL));
    EXPECT_ERR(tape_add_tag(t, ""), TAPE_EINVAL, "tag is empty");
    EXPECT_ERR(tape_add_tag(t, NULL), TAPE_EINVAL, "tag is NULL");
    EXPECT_OK(tape_remove_tag(t, "prod"));
    EXPECT_ERR(tape_remove_tag(t, "prod"), TAPE_ENOTFOUND, "no tag 'prod'");
    assert_int_equal(tape_tag_count(t), 2);
    assert_string_equal(tape_tag_at(t, 0), "ünïcode");
    assert_string_equal(tape_tag_at(t, 1), "a");
    for (int i = 0; i < 50; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "t%d", i);
        EXPECT_OK(tape_add_tag(t, buf));
    }
    assert_int_equal(tape_tag_count(t), 52);
    assert_string_equal(tape_tag_at(t, 51), "t49");
    tape_free(t);
}

/* -------------------------------------------------------------- frames */

static void test_append_frame_fields(void **state)
{
    (void)state;
    tape *t = new_tape("frames");
    EXPECT_OK(tape_set_created_at(t, 1755167400000));
    EXPECT_OK(tape_set_session_id(t, "sess-1"));
    /* Bytes that re-printing would change: \u escapes, exponent, 1.0,
     * raw UTF-8, a space after a colon. */
    const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"caf\\u00e9\",\"x\":1.0,\"y\":1e2, \"z\":\"日本\"}}";
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 1500;
    d.message = msg;
    d.correlation_id = "req-1";
    d.transport_json = "{\"type\":\"stdio\"}";
    uint64_t seq = 99;
    EXPECT_OK(tape_append_frame(&seq, t, &d));
    assert_int_equal(seq, 0);
    const tape_frame *f = tape_frame_at(t, 0);
    assert_non_null(f);
    assert_null(tape_frame_at(t, 1));
    assert_int_equal(tape_frame_seq(f), 0);
    assert_int_equal(tape_frame_ts(f), 1500);
    assert_int_equal(tape_frame_direction(f), TAPE_DIR_CLIENT_TO_SERVER);
    size_t mlen;
    assert_string_equal(tape_frame_message(f, &mlen), msg);
    assert_int_equal(mlen, strlen(msg));
    assert_string_equal(tape_frame_correlation_id(f), "req-1");
    assert_int_equal(tape_frame_is_error(f), 0);
    size_t llen;
    const char *line = tape_frame_line(f, &llen);
    assert_int_equal(llen, strlen(line));
    assert_null(strchr(line, '\n'));
    char want[1024];
    snprintf(want, sizeof want,
             "{\"type\":\"frame\",\"seq\":0,\"ts\":1500,\"dir\":\"client_to_server\","
             "\"env\":{\"message\":%s,\"direction\":\"client_to_server\","
             "\"timestamp\":\"2025-08-14T10:30:01.500Z\",\"session_id\":\"sess-1\"},"
             "\"transport\":{\"type\":\"stdio\"},\"correlation_id\":\"req-1\","
             "\"flags\":{\"is_error\":false,\"is_notification\":false,"
             "\"requires_response\":true}}",
             msg);
    assert_string_equal(line, want);

    /* An error response; flags derived; no correlation id gives null. */
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = 1600;
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32601,\"message\":\"no\"}}";
    d.correlation_id = NULL;
    d.transport_json = NULL;
    EXPECT_OK(tape_append_frame(&seq, t, &d));
    assert_int_equal(seq, 1);
    f = tape_frame_at(t, 1);
    assert_int_equal(tape_frame_is_error(f), 1);
    assert_null(tape_frame_correlation_id(f));
    assert_non_null(strstr(tape_frame_line(f, NULL), "\"correlation_id\":null"));
    assert_non_null(strstr(tape_frame_line(f, NULL), "\"flags\":{\"is_error\":true,"));

    /* A notification; caller flags win and can mark an error. */
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}";
    d.flags_json = "{\"is_error\":true,\"custom\":7}";
    EXPECT_OK(tape_append_frame(&seq, t, &d));
    f = tape_frame_at(t, 2);
    assert_int_equal(tape_frame_is_error(f), 1);
    assert_non_null(strstr(tape_frame_line(f, NULL), "\"flags\":{\"is_error\":true,\"custom\":7}"));
    d.flags_json = NULL;
    EXPECT_OK(tape_append_frame(&seq, t, &d));
    f = tape_frame_at(t, 3);
    assert_int_equal(tape_frame_is_error(f), 0);
    assert_non_null(strstr(tape_frame_line(f, NULL),
                           "{\"is_error\":false,\"is_notification\":true,"
                           "\"requires_response\":false}"));
    /* A batch (array) is JSON too; it gets no derived flags. */
    d.message = "[{\"jsonrpc\":\"2.0\",\"method\":\"a\"}]";
    EXPECT_OK(tape_append_frame(&seq, t, &d));
    assert_int_equal(seq, 4);
    assert_null(strstr(tape_frame_line(tape_frame_at(t, 4), NULL), "\"flags\""));
    tape_free(t);
}

/* Frame lines are assembled as text; they must stay exactly what cJSON
 * prints for the same object (stored tapes and fixtures compare lines):
 * every byte of a string escaped as cJSON escapes it. The message here is
 * one cJSON re-prints unchanged. Numbers from 10^15 on are the exception:
 * written as plain digits, since cJSON would print 2^53 as
 * 9.00719925474099e+15, another number. */
static void test_frame_line_matches_cjson(void **state)
{
    (void)state;
    char every[256];
    for (int b = 1; b < 256; b++) {
        every[b - 1] = (char)b; /* all bytes but NUL, raw UTF-8 lead bytes included */
    }
    every[255] = '\0';
    tape *h = new_tape("escapes");
    EXPECT_OK(tape_set_created_at(h, 1755167400000));
    EXPECT_OK(tape_set_session_id(h, every));
    static const uint64_t seqs[] = { 0, 7, 2147483647u, 2147483648u, 1000000000000000u,
                                     1234567890123456u, 9007199254740992u };
    static const int64_t tss[] = { 0, 2147483648LL, 250000000000000LL };
    const char *cids[] = { every, NULL, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f" };
    for (size_t i = 0; i < sizeof seqs / sizeof *seqs; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = tss[i % 3];
        d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[true,null,\"\\n\"]}";
        d.correlation_id = cids[i % 3];
        d.transport_json = i % 2 ? " { \"type\" : \"stdio\", \"n\": [1, 2.5] } " : NULL;
        d.flags_json = i == 3 ? "{ \"is_error\" : true }" : NULL;
        tape_frame *f = NULL;
        EXPECT_OK(tape_frame_new(&f, h, seqs[i], &d));
        size_t len;
        const char *line = tape_frame_line(f, &len);
        assert_int_equal(len, strlen(line));
        cJSON *j = cJSON_ParseWithLength(line, len);
        assert_non_null(j);
        char *again = cJSON_PrintUnformatted(j);
        if (seqs[i] < 1000000000000000u) {
            assert_string_equal(line, again);
        } else {
            char want[64];
            snprintf(want, sizeof want, "{\"type\":\"frame\",\"seq\":%llu,\"ts\":",
                     (unsigned long long)seqs[i]);
            assert_memory_equal(line, want, strlen(want));
        }
        /* The strings read back as given. */
        const cJSON *env = cJSON_GetObjectItem(j, "env");
        assert_string_equal(cJSON_GetObjectItem(env, "session_id")->valuestring, every);
        const cJSON *cid = cJSON_GetObjectItem(j, "correlation_id");
        if (cids[i % 3] != NULL) {
            assert_string_equal(cid->valuestring, cids[i % 3]);
            assert_string_equal(tape_frame_correlation_id(f), cids[i % 3]);
        } else {
            assert_true(cJSON_IsNull(cid));
        }
        assert_true(cJSON_GetObjectItem(j, "seq")->valuedouble == (double)seqs[i]);
        assert_int_equal(tape_frame_is_error(f), i == 3);
        free(again);
        cJSON_Delete(j);
        /* And the line decodes back to the same frame. */
        int type = 0;
        tape_frame *back = NULL;
        EXPECT_OK(tape_line_parse(&type, &back, line, len));
        assert_int_equal(type, TAPE_LINE_FRAME);
        assert_int_equal(tape_frame_seq(back), seqs[i]);
        assert_string_equal(tape_frame_message(back, NULL), d.message);
        tape_frame_free(back);
        tape_frame_free(f);
    }
    /* 2^53 + 1 would read back as 2^53: refused, not rounded. */
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{}";
    tape_frame *f = NULL;
    EXPECT_ERR(tape_frame_new(&f, h, 9007199254740993u, &d), TAPE_EINVAL,
               "frame seq 9007199254740993 exceeds 2^53");
    assert_null(f);
    tape_free(h);
}

static void test_append_frame_invalid(void **state)
{
    (void)state;
    tape *t = new_tape("bad-frames");
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{}";
    uint64_t seq = 42;
    d.version = 0;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "TAPE_FRAME_DESC_INIT");
    d.version = TAPE_FRAME_DESC_VERSION + 1;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EVERSION, "version 3 is newer");
    d.version = TAPE_FRAME_DESC_VERSION;
    d.direction = 0;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "direction 0 is invalid");
    d.direction = 3;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "direction 3 is invalid");
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.message = NULL;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "message is NULL");
    const char *bad[] = { "", "   ", "{", "{\"a\":}", "{} x", "{}{}", "nul", "{'a':1}" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d.message = bad[i];
        EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "message is not valid JSON");
    }
    d.message = "{\"a\":\"x\0y\"}";
    d.message_len = 11;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "NUL byte");
    d.message_len = 0;
    d.message = "{\"a\":\"line\nbreak\"}";
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "raw line break");
    d.message = "{}";
    d.transport_json = "[1]";
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "transport is not a JSON object");
    d.transport_json = NULL;
    d.flags_json = "{";
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "flags is not a JSON object");
    d.flags_json = NULL;
    d.ts_ms = INT64_C(1) << 62;
    EXPECT_ERR(tape_append_frame(&seq, t, &d), TAPE_EINVAL, "ts_ms");
    assert_int_equal(seq, 42);
    assert_int_equal(tape_frame_count(t), 0);
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&st, t));
    assert_int_equal(st.frame_count, 0);
    tape_free(t);
}

static void test_append_frame_whitespace(void **state)
{
    (void)state;
    tape *t = new_tape("ws");
    /* A transport's trailing newline is dropped, inner bytes stay. */
    uint64_t s = append(t, TAPE_DIR_CLIENT_TO_SERVER, 0, "  {\"a\": 1}\r\n");
    assert_int_equal(s, 0);
    assert_string_equal(tape_frame_message(tape_frame_at(t, 0), NULL), "{\"a\": 1}");
    /* Pretty-printed: stored minified so that a line stays a frame. */
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 1,
           "{\n  \"jsonrpc\": \"2.0\",\n  \"result\": {\"text\": \"a b\\nc\"}\n}\n");
    size_t len;
    const char *m = tape_frame_message(tape_frame_at(t, 1), &len);
    assert_string_equal(m, "{\"jsonrpc\":\"2.0\",\"result\":{\"text\":\"a b\\nc\"}}");
    assert_int_equal(len, strlen(m));
    assert_null(strchr(tape_frame_line(tape_frame_at(t, 1), NULL), '\n'));
    /* message_len selects a prefix of a longer buffer. */
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 2;
    d.message = "[1,2]garbage";
    d.message_len = 5;
    EXPECT_OK(tape_append_frame(NULL, t, &d));
    assert_string_equal(tape_frame_message(tape_frame_at(t, 2), NULL), "[1,2]");
    tape_free(t);
}

static void test_append_frame_now(void **state)
{
    (void)state;
    tape *t = new_tape("now");
    EXPECT_OK(tape_set_created_at(t, tape__now_ms() - 5000));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, -1, "{}");
    int64_t ts = tape_frame_ts(tape_frame_at(t, 0));
    assert_true(ts >= 5000 && ts < 65000);
    /* created_at in the future: ts clamps to 0, never negative. */
    EXPECT_OK(tape_set_created_at(t, tape__now_ms() + 100000));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, -1, "{}");
    assert_int_equal(tape_frame_ts(tape_frame_at(t, 1)), 0);
    tape_free(t);
}

static char *big_message(size_t size)
{
    /* {"jsonrpc":"2.0","id":7,"result":{"blob":"xxxx..."}} of `size` bytes */
    const char *head = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"blob\":\"";
    const char *tail = "\"}}";
    char *m = malloc(size + 1);
    assert_non_null(m);
    size_t h = strlen(head), tl = strlen(tail);
    memcpy(m, head, h);
    for (size_t i = h; i < size - tl; i++) {
        m[i] = (char)('a' + i % 26);
    }
    memcpy(m + size - tl, tail, tl + 1);
    return m;
}

static void test_big_messages(void **state)
{
    (void)state;
    tape *t = new_tape("big");
    char *m = big_message(5u << 20);
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 3, m);
    size_t len;
    const char *got = tape_frame_message(tape_frame_at(t, 0), &len);
    assert_int_equal(len, 5u << 20);
    assert_memory_equal(got, m, len);
    assert_true(tape_frame_line(tape_frame_at(t, 0), NULL) != NULL);
    free(m);
    /* A line over the default read limit would make an unreadable tape. */
    m = big_message(TAPE_MAX_LINE_DEFAULT + 10);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.message = m;
    EXPECT_ERR(tape_append_frame(NULL, t, &d), TAPE_ELIMIT, "line limit");
    free(m);
    assert_int_equal(tape_frame_count(t), 1);
    tape_free(t);
}

/* -------------------------------------------------------- correlations */

static void test_correlations(void **state)
{
    (void)state;
    tape *t = new_tape("corr");
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 0, "{\"id\":1,\"method\":\"a\"}");
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 50, "{\"id\":1,\"result\":{}}");
    EXPECT_OK(tape_add_correlation(t, "corr-1", 0, 1, 50, "success"));
    EXPECT_OK(tape_add_correlation(t, "corr-ü", 7, 9, -3, NULL));
    assert_int_equal(tape_correlation_count(t), 2);
    const char *id, *status;
    uint64_t rq, rs;
    int64_t rtt;
    EXPECT_OK(tape_correlation_get(&id, &rq, &rs, &rtt, &status, t, 0));
    assert_string_equal(id, "corr-1");
    assert_int_equal(rq, 0);
    assert_int_equal(rs, 1);
    assert_int_equal(rtt, 50);
    assert_string_equal(status, "success");
    EXPECT_OK(tape_correlation_get(&id, NULL, NULL, &rtt, &status, t, 1));
    assert_string_equal(id, "corr-ü");
    assert_int_equal(rtt, -3);
    assert_null(status);
    EXPECT_OK(tape_correlation_get(NULL, NULL, NULL, NULL, NULL, t, 1));
    EXPECT_ERR(tape_correlation_get(&id, NULL, NULL, NULL, NULL, t, 2), TAPE_ENOTFOUND,
               "no correlation at index 2");
    EXPECT_ERR(tape_add_correlation(t, "x", UINT64_MAX, 1, 1, "ok"), TAPE_EINVAL, "2^53");
    /* Just past 2^53 too (a double compare rounded 2^53 + 1 down to 2^53). */
    const uint64_t p53 = (uint64_t)1 << 53;
    EXPECT_ERR(tape_add_correlation(t, "x", p53 + 1, 1, 1, "ok"), TAPE_EINVAL, "2^53");
    EXPECT_ERR(tape_add_correlation(t, "x", 0, p53 + 1, 1, "ok"), TAPE_EINVAL, "2^53");
    EXPECT_ERR(tape_add_correlation(t, "x", 0, 1, (int64_t)p53 + 1, "ok"), TAPE_EINVAL, "2^53");
    EXPECT_ERR(tape_add_correlation(t, "x", 0, 1, -(int64_t)p53 - 1, "ok"), TAPE_EINVAL, "2^53");
    assert_int_equal(tape_correlation_count(t), 2);
    char *line;
    size_t len;
    EXPECT_OK(tape_encode_correlation_line(&line, &len, t, 0));
    assert_string_equal(line, "{\"type\":\"correlation\",\"id\":\"corr-1\",\"request_seq\":0,"
                              "\"response_seq\":1,\"rtt_ms\":50,\"status\":\"success\"}\n");
    assert_int_equal(len, strlen(line));
    tape_string_free(line);
    EXPECT_OK(tape_encode_correlation_line(&line, NULL, t, 1));
    assert_non_null(strstr(line, "\"status\":null}\n"));
    tape_string_free(line);
    tape_free(t);
}

/* --------------------------------------------------------------- stats */

static void test_stats_exact(void **state)
{
    (void)state;
    tape *t = new_tape("stats");
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&st, t));
    char *init;
    size_t init_len;
    EXPECT_OK(tape_encode_init_line(&init, &init_len, t));
    assert_int_equal(st.frame_count, 0);
    assert_int_equal(st.duration_ms, 0);
    assert_int_equal(st.last_sequence, 0);
    assert_int_equal(st.file_size_bytes, init_len);
    tape_string_free(init);

    append(t, TAPE_DIR_CLIENT_TO_SERVER, 0, "{\"id\":1,\"method\":\"a\"}");
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 250, "{\"id\":1,\"error\":{\"code\":1}}");
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 100, "{\"id\":2,\"method\":\"b\"}"); /* ts not max */
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 200, "{\"id\":2,\"result\":{}}");
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 240, "{\"method\":\"n\"}");
    EXPECT_OK(tape_add_correlation(t, "c1", 0, 1, 250, "error"));
    EXPECT_OK(tape_add_correlation(t, "c2", 2, 3, 100, "success"));
    EXPECT_OK(tape_get_stats(&st, t));
    assert_int_equal(st.version, TAPE_STATS_VERSION);
    assert_int_equal(st.frame_count, 5);
    assert_int_equal(st.duration_ms, 250);
    assert_int_equal(st.last_sequence, 4);
    assert_int_equal(st.client_to_server, 3);
    assert_int_equal(st.server_to_client, 2);
    assert_int_equal(st.error_count, 1);
    assert_int_equal(st.correlation_count, 2);
    /* The size of the .jsonl: init line, 5 frame lines, 2 correlation lines. */
    uint64_t size = 0;
    EXPECT_OK(tape_encode_init_line(&init, &init_len, t));
    size += init_len;
    tape_string_free(init);
    for (size_t i = 0; i < 5; i++) {
        size_t l;
        tape_frame_line(tape_frame_at(t, i), &l);
        size += l + 1;
    }
    for (size_t i = 0; i < 2; i++) {
        char *c;
        size_t l;
        EXPECT_OK(tape_encode_correlation_line(&c, &l, t, i));
        size += l;
        tape_string_free(c);
    }
    assert_int_equal(st.file_size_bytes, size);
    /* A longer session id lengthens the init line, and the file. */
    EXPECT_OK(tape_set_session_id(t, "0123456789"));
    tape_stats st2 = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&st2, t));
    assert_int_equal(st2.file_size_bytes, size + strlen("\"0123456789\"") - strlen("null"));
    tape_free(t);
}

static void test_checkpoint_and_init_lines(void **state)
{
    (void)state;
    tape *t = new_tape("lines");
    EXPECT_OK(tape_set_created_at(t, 1755167400000));
    char *line;
    size_t len;
    EXPECT_OK(tape_encode_init_line(&line, &len, t));
    assert_string_equal(line, "{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"lines\","
                              "\"session_id\":null,\"created_at\":\"2025-08-14T10:30:00.000Z\","
                              "\"protocol_version\":null}\n");
    assert_int_equal(len, strlen(line));
    tape_string_free(line);
    EXPECT_OK(tape_set_session_id(t, "s-1"));
    EXPECT_OK(tape_set_protocol_version(t, "2025-11-05"));
    EXPECT_OK(tape_encode_init_line(&line, NULL, t));
    assert_string_equal(line, "{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"lines\","
                              "\"session_id\":\"s-1\",\"created_at\":\"2025-08-14T10:30:00.000Z\","
                              "\"protocol_version\":\"2025-11-05\"}\n");
    tape_string_free(line);

    append(t, TAPE_DIR_CLIENT_TO_SERVER, 10, "{\"id\":1,\"method\":\"a\"}");
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 60, "{\"id\":1,\"error\":{}}");
    EXPECT_OK(tape_add_correlation(t, "c", 0, 1, 50, "error"));
    int64_t before = tape__now_ms();
    EXPECT_OK(tape_encode_checkpoint_line(&line, &len, t));
    assert_int_equal(len, strlen(line));
    assert_int_equal(line[len - 1], '\n');
    const char *at = strstr(line, "\"checkpoint_at\":\"");
    assert_non_null(at);
    char iso[32] = { 0 };
    memcpy(iso, at + 17, 24);
    int64_t ms;
    EXPECT_OK(tape__time_parse(&ms, iso));
    assert_true(ms >= before - 1 && ms <= tape__now_ms());
    assert_non_null(strstr(line, "\"seq\":1,\"stats\":{\"frame_count\":2,\"duration_ms\":60,"
                                 "\"message_counts\":{\"client_to_server\":1,"
                                 "\"server_to_client\":1},\"error_count\":1,"
                                 "\"correlation_count\":1}}\n"));
    assert_true(strncmp(line, "{\"type\":\"checkpoint\",", 21) == 0);
    tape_string_free(line);
    tape_free(t);
}

/* -------------------------------------- clone, frame_new, push, account */

static void test_clone(void **state)
{
    (void)state;
    tape *t = new_tape("orig");
    EXPECT_OK(tape_set_name(t, "n"));
    EXPECT_OK(tape_add_tag(t, "x"));
    EXPECT_OK(tape_set_transport_json(t, "{\"t\":1}"));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 5, "{\"id\":\"a\",\"method\":\"m\"}");
    append(t, TAPE_DIR_SERVER_TO_CLIENT, 9, "{\"id\":\"a\",\"result\":1}");
    EXPECT_OK(tape_add_correlation(t, "k", 0, 1, 4, "success"));
    tape *c;
    EXPECT_OK(tape_clone(&c, t));
    EXPECT_OK(tape_set_name(t, "changed"));
    EXPECT_OK(tape_add_tag(t, "y"));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 11, "{}");
    assert_string_equal(tape_id(c), "orig");
    assert_string_equal(tape_name(c), "n");
    assert_int_equal(tape_tag_count(c), 1);
    assert_string_equal(tape_transport_json(c), "{\"t\":1}");
    assert_int_equal(tape_frame_count(c), 2);
    assert_int_equal(tape_created_at(c), tape_created_at(t));
    for (size_t i = 0; i < 2; i++) {
        const tape_frame *a = tape_frame_at(t, i), *b = tape_frame_at(c, i);
        assert_ptr_not_equal(a, b);
        assert_string_equal(tape_frame_line(a, NULL), tape_frame_line(b, NULL));
        assert_string_equal(tape_frame_message(a, NULL), tape_frame_message(b, NULL));
        assert_int_equal(tape_frame_seq(a), tape_frame_seq(b));
        assert_int_equal(tape_frame_ts(a), tape_frame_ts(b));
    }
    assert_int_equal(tape_correlation_count(c), 1);
    tape_stats sc = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&sc, c));
    assert_int_equal(sc.frame_count, 2);
    assert_int_equal(sc.duration_ms, 9);
    assert_int_equal(sc.correlation_count, 1);
    tape_free(t);
    /* The clone stands alone. */
    assert_string_equal(tape_frame_message(tape_frame_at(c, 1), NULL),
                        "{\"id\":\"a\",\"result\":1}");
    const char *cid;
    EXPECT_OK(tape_correlation_get(&cid, NULL, NULL, NULL, NULL, c, 0));
    assert_string_equal(cid, "k");
    tape_free(c);
}

static void test_clone_meta_and_account(void **state)
{
    (void)state;
    tape *t = new_tape("hdr");
    EXPECT_OK(tape_set_name(t, "header"));
    EXPECT_OK(tape_set_session_id(t, "sess-9"));
    append(t, TAPE_DIR_CLIENT_TO_SERVER, 5, "{\"id\":1,\"method\":\"m\"}");
    tape_stats st = TAPE_STATS_INIT, sm = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&st, t));
    tape *m;
    EXPECT_OK(tape_clone_meta(&m, t));
    assert_int_equal(tape_frame_count(m), 0);
    assert_string_equal(tape_name(m), "header");
    EXPECT_OK(tape_get_stats(&sm, m));
    assert_memory_equal(&st, &sm, sizeof st);

    /* A writer streams frames and only counts them in its header. */
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = 40;
    d.message = "{\"id\":1,\"error\":{\"code\":2}}";
    tape_frame *f;
    EXPECT_OK(tape_frame_new(&f, m, 1, &d));
    assert_int_equal(tape_frame_seq(f), 1);
    assert_int_equal(tape_frame_is_error(f), 1);
    /* The frame's env carries the header's session id, as an appended one would. */
    assert_non_null(strstr(tape_frame_line(f, NULL), "\"session_id\":\"sess-9\""));
    EXPECT_OK(tape_account_frame(m, f));
    EXPECT_ERR(tape_account_frame(m, f), TAPE_EINVAL, "seq 1 is not greater than the last seq 1");
    EXPECT_OK(tape_get_stats(&sm, m));
    assert_int_equal(sm.frame_count, 2);
    assert_int_equal(sm.last_sequence, 1);
    assert_int_equal(sm.duration_ms, 40);
    assert_int_equal(sm.server_to_client, 1);
    assert_int_equal(sm.error_count, 1);
    size_t fl;
    tape_frame_line(f, &fl);
    assert_int_equal(sm.file_size_bytes, st.file_size_bytes + fl + 1);
    assert_int_equal(tape_frame_count(m), 0);

    /* Pushing the same frame into the full tape: stats match the header. */
    tape_frame *g;
    EXPECT_OK(tape_frame_clone(&g, f));
    assert_string_equal(tape_frame_line(g, NULL), tape_frame_line(f, NULL));
    assert_int_equal(tape_frame_ts(g), 40);
    EXPECT_OK(tape_push_frame(t, g));
    EXPECT_ERR(tape_push_frame(t, f), TAPE_EINVAL, "not greater than the last seq");
    EXPECT_OK(tape_get_stats(&st, t));
    assert_memory_equal(&st, &sm, sizeof st);
    assert_int_equal(tape_frame_count(t), 2);
    tape_frame_free(f);

    /* Appending after a pushed gap continues from the last seq. */
    EXPECT_OK(tape_frame_new(&f, t, 10, &d));
    EXPECT_OK(tape_push_frame(t, f));
    assert_int_equal(append(t, TAPE_DIR_CLIENT_TO_SERVER, 50, "{}"), 11);

    d.version = 0;
    EXPECT_ERR(tape_frame_new(&f, t, 0, &d), TAPE_EINVAL, "TAPE_FRAME_DESC_INIT");
    assert_null(f);
    d.version = 1;
    EXPECT_ERR(tape_frame_new(&f, t, UINT64_MAX, &d), TAPE_EINVAL, "exceeds 2^53");
    EXPECT_ERR(tape_frame_new(&f, NULL, 0, &d), TAPE_EINVAL, "header is NULL");
    tape_free(m);
    tape_free(t);
}

/* ---------------------------------------------------------------- time */

static void test_time_parse(void **state)
{
    (void)state;
    struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        { "1970-01-01T00:00:00.000Z", 0 },
        { "2025-08-14T10:30:00.000Z", 1755167400000 },
        { "2025-08-14T10:30:00Z", 1755167400000 },
        { "2025-08-14t10:30:00z", 1755167400000 },
        { "2025-08-14T10:30:00.5Z", 1755167400500 },
        { "2025-08-14T10:30:00.12Z", 1755167400120 },
        { "2025-08-14T10:30:00.123456789Z", 1755167400123 },
        { "2025-08-14T12:30:00.000+02:00", 1755167400000 },
        { "2025-08-14T05:00:00.000-05:30", 1755167400000 },
        { "2025-08-14T10:30:00+00:00", 1755167400000 },
        { "2000-02-29T12:00:00Z", 951825600000 },
        { "1969-12-31T23:59:59.999Z", -1 },
        { "0000-01-01T00:00:00.000Z", -62167219200000 },
        { "0001-01-01T00:00:00Z", -62135596800000 },
        { "9999-12-31T23:59:59.999Z", 253402300799999 },
        { "2016-12-31T23:59:60Z", 1483228800000 }, /* leap second */
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t ms = 42;
        int rc = tape__time_parse(&ms, ok[i].text);
        if (rc != TAPE_OK || ms != ok[i].ms) {
            fail_msg("%s: rc %d ms %lld want %lld (%s)", ok[i].text, rc, (long long)ms,
                     (long long)ok[i].ms, tape_errmsg());
        }
    }
    struct {
        const char *text;
        const char *why;
    } bad[] = {
        { "", "expected YYYY-MM-DD" },
        { "garbage", "expected YYYY-MM-DD" },
        { "2025", "expected YYYY-MM-DD" },
        { "2025-8-14T10:30:00Z", "expected YYYY-MM-DD" },
        { "2025-08-14", "expected 'T'" },
        { "2025-08-14 10:30:00Z", "expected 'T'" },
        { "2025-08-14T10:30Z", "expected hh:mm:ss" },
        { "2025-08-14T10:30:00", "expected 'Z' or a +hh:mm offset" },
        { "2025-08-14T10:30:00.Z", "expected digits after '.'" },
        { "2025-08-14T10:30:00Zx", "unexpected text after the time" },
        { "2025-08-14T10:30:00+0200", "+hh:mm" },
        { "2025-08-14T10:30:00+24:00", "+hh:mm" },
        { "2025-13-01T00:00:00Z", "month out of range" },
        { "2025-00-01T00:00:00Z", "month out of range" },
        { "2023-02-29T00:00:00Z", "day out of range" },
        { "1900-02-29T00:00:00Z", "day out of range" },
        { "2025-04-31T00:00:00Z", "day out of range" },
        { "2025-08-00T00:00:00Z", "day out of range" },
        { "2025-08-14T24:00:00Z", "time of day out of range" },
        { "2025-08-14T10:60:00Z", "time of day out of range" },
        { "2025-08-14T10:30:61Z", "time of day out of range" },
        { "-001-01-01T00:00:00Z", "expected YYYY-MM-DD" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms = 42;
        int rc = tape__time_parse(&ms, bad[i].text);
        if (rc != TAPE_EINVAL || strstr(tape_errmsg(), bad[i].why) == NULL ||
            strstr(tape_errmsg(), "invalid ISO-8601 time") == NULL) {
            fail_msg("'%s': rc %d '%s', want '%s'", bad[i].text, rc, tape_errmsg(), bad[i].why);
        }
        assert_int_equal(ms, 42);
    }
    int64_t ms;
    EXPECT_ERR(tape__time_parse(NULL, "x"), TAPE_EINVAL, "NULL");
    EXPECT_ERR(tape__time_parse(&ms, NULL), TAPE_EINVAL, "NULL");
}

static void test_time_format(void **state)
{
    (void)state;
    char buf[32];
    tape__time_format(buf, 0);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    tape__time_format(buf, 1755167400123);
    assert_string_equal(buf, "2025-08-14T10:30:00.123Z");
    tape__time_format(buf, -1);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    tape__time_format(buf, 951782400000);
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
    tape__time_format(buf, -62167219200000);
    assert_string_equal(buf, "0000-01-01T00:00:00.000Z");
    tape__time_format(buf, 253402300799999);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
    /* Extremes never overflow the buffer. */
    tape__time_format(buf, INT64_MIN);
    assert_true(strlen(buf) < 32);
    tape__time_format(buf, INT64_MAX);
    assert_true(strlen(buf) < 32);
    /* Round trip over a spread of values, pre-epoch included. */
    for (int64_t v = -62167219200000; v < 253402300799999; v += 7777777777777) {
        int64_t back;
        tape__time_format(buf, v);
        EXPECT_OK(tape__time_parse(&back, buf));
        assert_int_equal(back, v);
    }
}

/* The text term of a query reads a decoded frame's message where it lies
 * in the line: its whole span and nothing around it (other members of the
 * line do not match). */
static int text_matches(const tape *t, const char *text)
{
    char json[128];
    snprintf(json, sizeof json, "{\"text\":\"%s\"}", text);
    tape_query *q = NULL;
    EXPECT_OK(tape_query_parse(&q, json));
    int m = tape_query_match_tape(q, t);
    tape_query_free(q);
    return m;
}

static void test_text_search_decoded(void **state)
{
    (void)state;
    const char *jsonl =
        "{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"s\",\"created_at\":"
        "\"2025-08-14T10:30:00Z\"}\n"
        "{\"type\":\"frame\",\"seq\":0,\"ts\":0,\"dir\":\"client_to_server\",\"env\":{"
        "\"message\":{\"method\":\"Tools/Call\",\"id\":41},\"direction\":\"elsewhere\"},"
        "\"correlation_id\":\"corr-zz\"}\n";
    tape *t = NULL;
    EXPECT_OK(tape_decode(&t, jsonl, strlen(jsonl), NULL, 0, NULL, NULL));
    assert_true(text_matches(t, "tools/call"));  /* case-insensitive */
    assert_true(text_matches(t, "\\\"id\\\":41}")); /* the message's last byte */
    assert_false(text_matches(t, "41},"));      /* one byte past it */
    assert_false(text_matches(t, "elsewhere")); /* env member after it */
    assert_false(text_matches(t, "corr-zz"));   /* line member */
    tape_free(t);
}

/* Flagged frames (issue 7) through the streaming path: tape_frame_new
 * builds them, tape_account_frame and tape_push_frame count them like any
 * frame, tape_clone keeps what they carry. */
static void test_flagged_frame_new(void **state)
{
    (void)state;
    tape *h = new_tape("flagged-new");
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = 7;
    d.message = "Traceback (most recent call last):";
    d.frame_flags = TAPE_FRAME_INVALID_JSON;
    tape_frame *a = NULL, *b = NULL;
    EXPECT_OK(tape_frame_new(&a, h, 0, &d));
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"huge\"}}";
    d.frame_flags = TAPE_FRAME_OVERSIZE;
    d.prefix_bytes = 12;
    EXPECT_OK(tape_frame_new(&b, h, 1, &d));
    assert_int_equal(tape_frame_flags(a), TAPE_FRAME_INVALID_JSON);
    assert_int_equal(tape_frame_flags(b), TAPE_FRAME_OVERSIZE);
    assert_int_equal(tape_frame_is_error(b), 0); /* not read as JSON-RPC */
    size_t n = 0;
    assert_string_equal(tape_frame_raw(b, &n), "{\"jsonrpc\":\"");
    assert_int_equal(n, 12);
    assert_string_equal(tape_frame_message(b, NULL), "\"{\\\"jsonrpc\\\":\\\"\"");
    EXPECT_OK(tape_account_frame(h, a));
    EXPECT_OK(tape_account_frame(h, b));
    tape_stats st = TAPE_STATS_INIT;
    EXPECT_OK(tape_get_stats(&st, h));
    assert_int_equal(st.frame_count, 2);
    assert_int_equal(st.error_count, 0);
    assert_int_equal(st.server_to_client, 2);

    tape *t = new_tape("flagged-push");
    EXPECT_OK(tape_push_frame(t, a));
    EXPECT_OK(tape_push_frame(t, b));
    tape *c = NULL;
    EXPECT_OK(tape_clone(&c, t));
    for (size_t i = 0; i < 2; i++) {
        const tape_frame *x = tape_frame_at(t, i), *y = tape_frame_at(c, i);
        assert_int_equal(tape_frame_flags(x), tape_frame_flags(y));
        assert_string_equal(tape_frame_raw(x, NULL), tape_frame_raw(y, NULL));
        assert_string_equal(tape_frame_line(x, NULL), tape_frame_line(y, NULL));
    }
    uint64_t len = 0;
    const char *hex = NULL;
    EXPECT_OK(tape_frame_oversize_info(&len, &hex, tape_frame_at(c, 1)));
    assert_int_equal(len, strlen(d.message));
    assert_int_equal(strlen(hex), 64);
    tape_free(c);
    tape_free(t);
    tape_free(h);
}


/* A writer's frameless header counts its init line anew: a session id or
 * protocol version learned mid-recording changes the size the way the
 * encoded file changes (issue 7). */
static void test_frameless_size_follows_init_line(void **state)
{
    (void)state;
    tape *t = NULL, *h = NULL;
    assert_int_equal(tape_new(&t, "size-1"), TAPE_OK);
    assert_int_equal(tape_clone_meta(&h, t), TAPE_OK);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
    for (uint64_t i = 0; i < 3; i++) {
        tape_frame *f = NULL;
        assert_int_equal(tape_frame_new(&f, h, i, &d), TAPE_OK);
        assert_int_equal(tape_account_frame(h, f), TAPE_OK);
        assert_int_equal(tape_push_frame(t, f), TAPE_OK);
    }
    assert_int_equal(tape_set_session_id(h, "learned-session"), TAPE_OK);
    assert_int_equal(tape_set_protocol_version(h, "2025-06-18"), TAPE_OK);
    assert_int_equal(tape_set_session_id(t, "learned-session"), TAPE_OK);
    assert_int_equal(tape_set_protocol_version(t, "2025-06-18"), TAPE_OK);
    tape_stats sh = TAPE_STATS_INIT, st = TAPE_STATS_INIT;
    assert_int_equal(tape_get_stats(&sh, h), TAPE_OK);
    assert_int_equal(tape_get_stats(&st, t), TAPE_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(tape_encode_jsonl(&text, &len, t), TAPE_OK);
    assert_int_equal(st.file_size_bytes, len);
    assert_int_equal(sh.file_size_bytes, len);
    /* A copy of the copy keeps counting. */
    tape *h2 = NULL;
    assert_int_equal(tape_clone_meta(&h2, h), TAPE_OK);
    assert_int_equal(tape_set_session_id(h2, NULL), TAPE_OK);
    tape_stats s2 = TAPE_STATS_INIT;
    assert_int_equal(tape_get_stats(&s2, h2), TAPE_OK);
    assert_int_equal(s2.file_size_bytes + strlen(",\"session_id\":\"learned-session\"") -
                         strlen(",\"session_id\":null"),
                     len);
    tape_string_free(text);
    tape_free(h2);
    tape_free(h);
    tape_free(t);
}

/* The learned-metadata copy: every learned field and the tags follow src;
 * an unchanged field is not copied again (its pointer stays); the id,
 * status, frames and correlations are dst's own. */
/* Appended frames come from the tape's arena (one malloc per frame was a
 * page fault every few frames). The arena must still cost about what the
 * tape holds: a tape of one frame a small chunk, a long tape a few dozen
 * chunks whose total is within 2x of the frames' bytes (and a clone the
 * same). */
static size_t arena_total(const tape_chunk *c, size_t *chunks)
{
    size_t total = 0;
    for (*chunks = 0; c != NULL; c = c->next) {
        total += c->size;
        (*chunks)++;
    }
    return total;
}

/* What the frames of t hold: their structs and lines. */
static size_t frame_bytes(const tape *t)
{
    size_t sum = 0, n = 0;
    for (size_t i = 0; i < tape_frame_count(t); i++) {
        tape_frame_line(tape_frame_at(t, i), &n);
        sum += sizeof(tape_frame) + n + 1;
    }
    return sum;
}

static void test_append_arena_size(void **state)
{
    (void)state;
    tape *t = NULL;
    EXPECT_OK(tape_new(&t, "arena"));
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}";
    EXPECT_OK(tape_append_frame(NULL, t, &d));
    size_t chunks = 0, lines;
    assert_true(arena_total(t->arena, &chunks) <= 4096);
    assert_int_equal(chunks, 1);
    for (int i = 1; i < 20000; i++) {
        EXPECT_OK(tape_append_frame(NULL, t, &d));
    }
    lines = frame_bytes(t);
    size_t total = arena_total(t->arena, &chunks);
    assert_true(total >= lines);
    assert_true(total <= 2 * lines + 4096 * 2);
    assert_true(chunks <= 32);
    tape *c = NULL;
    EXPECT_OK(tape_clone(&c, t));
    assert_true(arena_total(c->arena, &chunks) <= 2 * lines + 4096 * 2);
    assert_int_equal(tape_frame_count(c), 20000);
    tape_free(c);
    tape_free(t);
}

static void test_copy_learned_meta(void **state)
{
    (void)state;
    tape *dst = NULL, *src = NULL;
    assert_int_equal(tape_new(&dst, "dst-1"), TAPE_OK);
    assert_int_equal(tape_new(&src, "src-1"), TAPE_OK);
    assert_int_equal(tape_set_name(dst, "same"), TAPE_OK);
    assert_int_equal(tape_set_name(src, "same"), TAPE_OK);
    assert_int_equal(tape_add_tag(dst, "old"), TAPE_OK);
    assert_int_equal(tape_set_session_id(src, "s-1"), TAPE_OK);
    assert_int_equal(tape_set_transport_json(src, "{\"type\":\"stdio\"}"), TAPE_OK);
    assert_int_equal(tape_add_tag(src, "a"), TAPE_OK);
    assert_int_equal(tape_add_tag(src, "b"), TAPE_OK);
    const char *name_before = tape_name(dst);
    assert_int_equal(tape_copy_learned_meta(dst, src), TAPE_OK);
    assert_ptr_equal(tape_name(dst), name_before);
    assert_string_equal(tape_session_id(dst), "s-1");
    assert_string_equal(tape_transport_json(dst), "{\"type\":\"stdio\"}");
    assert_int_equal(tape_tag_count(dst), 2);
    assert_string_equal(tape_tag_at(dst, 0), "a");
    assert_string_equal(tape_tag_at(dst, 1), "b");
    assert_string_equal(tape_id(dst), "dst-1");
    assert_int_equal(tape_set_session_id(src, NULL), TAPE_OK); /* NULL clears */
    assert_int_equal(tape_copy_learned_meta(dst, src), TAPE_OK);
    assert_null(tape_session_id(dst));
    assert_int_equal(tape_copy_learned_meta(NULL, src), TAPE_EINVAL);
    tape_free(dst);
    tape_free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_frameless_size_follows_init_line),
        cmocka_unit_test(test_copy_learned_meta),
        cmocka_unit_test(test_append_arena_size),
        cmocka_unit_test(test_id_invalid),
        cmocka_unit_test(test_new_uuid),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_append_frame_fields),
        cmocka_unit_test(test_frame_line_matches_cjson),
        cmocka_unit_test(test_append_frame_invalid),
        cmocka_unit_test(test_flagged_frame_new),
        cmocka_unit_test(test_append_frame_whitespace),
        cmocka_unit_test(test_append_frame_now),
        cmocka_unit_test(test_big_messages),
        cmocka_unit_test(test_correlations),
        cmocka_unit_test(test_stats_exact),
        cmocka_unit_test(test_checkpoint_and_init_lines),
        cmocka_unit_test(test_clone),
        cmocka_unit_test(test_clone_meta_and_account),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_text_search_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
