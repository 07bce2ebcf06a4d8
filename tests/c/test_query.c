/* test_query.c - the query language: parser, accessors, normalised JSON,
 * cursors, the matcher, ordering, paging and the core's fallback search. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static tape_query *parse_ok(const char *json)
{
    tape_query *q = NULL;
    int rc = tape_query_parse(&q, json);
    if (rc != TAPE_OK) {
        print_error("parse of %s failed: %s\n", json ? json : "NULL", tape_errmsg());
    }
    assert_int_equal(rc, TAPE_OK);
    assert_non_null(q);
    return q;
}

/* Parse must fail with TAPE_EQUERY and a message containing `needle`. */
static void parse_fails(const char *json, const char *needle)
{
    tape_query *q = (tape_query *)0x1;
    int rc = tape_query_parse(&q, json);
    if (rc != TAPE_EQUERY || strstr(tape_errmsg(), needle) == NULL) {
        print_error("query %s: rc %d, message \"%s\", wanted \"%s\"\n", json, rc, tape_errmsg(),
                    needle);
    }
    assert_int_equal(rc, TAPE_EQUERY);
    assert_int_equal(tape_errcode(), TAPE_EQUERY);
    assert_null(q);
    assert_non_null(strstr(tape_errmsg(), needle));
}

static char *to_json(const tape_query *q)
{
    char *s = NULL;
    assert_int_equal(tape_query_to_json(&s, q), TAPE_OK);
    assert_non_null(s);
    return s;
}

static void assert_json_is(const tape_query *q, const char *want)
{
    char *s = to_json(q);
    assert_string_equal(s, want);
    tape_string_free(s);
}

/* A cursor written by hand: "c1." + base64url(payload), no padding. */
static char *hand_cursor(const char *payload)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(payload);
    char *out = malloc(3 + (n + 2) / 3 * 4 + 1);
    assert_non_null(out);
    memcpy(out, "c1.", 3);
    char *p = out + 3;
    const unsigned char *in = (const unsigned char *)payload;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];
        if (i + 1 < n) *p++ = a[(v >> 6) & 63];
        if (i + 2 < n) *p++ = a[v & 63];
    }
    *p = '\0';
    return out;
}

static char *query_with_cursor_json(const char *before, const char *cursor)
{
    size_t n = strlen(before) + strlen(cursor) + 32;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "{%s\"cursor\":\"%s\"}", before, cursor);
    return s;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static void test_parse_empty(void **state)
{
    (void)state;
    const char *inputs[] = { NULL, "", "{}", " { } ", "{\"limit\":null,\"cursor\":null}" };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        tape_query *q = parse_ok(inputs[i]);
        for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
            int always = k == TAPE_Q_ORDER_BY || k == TAPE_Q_DESCENDING;
            assert_int_equal(tape_query_has(q, k), always);
        }
        assert_int_equal(tape_query_int(q, TAPE_Q_ORDER_BY), TAPE_ORDER_CREATED_AT);
        assert_int_equal(tape_query_int(q, TAPE_Q_DESCENDING), 0);
        assert_int_equal(tape_query_int(q, TAPE_Q_LIMIT), 0);
        assert_null(tape_query_string(q, TAPE_Q_CURSOR));
        assert_json_is(q, "{\"order_by\":\"created_at\",\"descending\":false}");
        tape_query_free(q);
    }
}

static void test_parse_all_keys(void **state)
{
    (void)state;
    tape_query *q = parse_ok(
        "{\"session_id\":\"s-1\",\"name_contains\":\"Demo\",\"tags_any\":[\"prod\",\"ci\"],"
        "\"tags_all\":[\"x\"],\"status\":\"finalized\",\"created_after\":1000,"
        "\"created_before\":2000,\"min_duration_ms\":0,\"max_duration_ms\":500,"
        "\"min_frames\":1,\"max_frames\":9,\"text\":\"tools/call\",\"order_by\":\"name\","
        "\"descending\":true,\"limit\":25}");
    for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
        assert_int_equal(tape_query_has(q, k), k != TAPE_Q_CURSOR && k != TAPE_Q_STRICT);
    }
    assert_string_equal(tape_query_string(q, TAPE_Q_SESSION_ID), "s-1");
    assert_string_equal(tape_query_string(q, TAPE_Q_NAME_CONTAINS), "Demo");
    assert_string_equal(tape_query_string(q, TAPE_Q_TEXT), "tools/call");
    assert_int_equal(tape_query_list_count(q, TAPE_Q_TAGS_ANY), 2);
    assert_string_equal(tape_query_list_at(q, TAPE_Q_TAGS_ANY, 0), "prod");
    assert_string_equal(tape_query_list_at(q, TAPE_Q_TAGS_ANY, 1), "ci");
    assert_null(tape_query_list_at(q, TAPE_Q_TAGS_ANY, 2));
    assert_int_equal(tape_query_list_count(q, TAPE_Q_TAGS_ALL), 1);
    assert_string_equal(tape_query_list_at(q, TAPE_Q_TAGS_ALL, 0), "x");
    assert_int_equal(tape_query_int(q, TAPE_Q_STATUS), TAPE_STATUS_FINALIZED);
    assert_int_equal(tape_query_int(q, TAPE_Q_CREATED_AFTER), 1000);
    assert_int_equal(tape_query_int(q, TAPE_Q_CREATED_BEFORE), 2000);
    assert_int_equal(tape_query_int(q, TAPE_Q_MIN_DURATION_MS), 0);
    assert_int_equal(tape_query_int(q, TAPE_Q_MAX_DURATION_MS), 500);
    assert_int_equal(tape_query_int(q, TAPE_Q_MIN_FRAMES), 1);
    assert_int_equal(tape_query_int(q, TAPE_Q_MAX_FRAMES), 9);
    assert_int_equal(tape_query_int(q, TAPE_Q_ORDER_BY), TAPE_ORDER_NAME);
    assert_int_equal(tape_query_int(q, TAPE_Q_DESCENDING), 1);
    assert_int_equal(tape_query_int(q, TAPE_Q_LIMIT), 25);
    /* Accessors of the wrong kind answer "absent". */
    assert_null(tape_query_string(q, TAPE_Q_LIMIT));
    assert_int_equal(tape_query_int(q, TAPE_Q_SESSION_ID), 0);
    assert_int_equal(tape_query_list_count(q, TAPE_Q_SESSION_ID), 0);
    assert_null(tape_query_list_at(q, TAPE_Q_TEXT, 0));

    assert_json_is(q, "{\"session_id\":\"s-1\",\"name_contains\":\"Demo\","
                      "\"tags_any\":[\"prod\",\"ci\"],\"tags_all\":[\"x\"],"
                      "\"status\":\"finalized\",\"created_after\":1000,\"created_before\":2000,"
                      "\"min_duration_ms\":0,\"max_duration_ms\":500,\"min_frames\":1,"
                      "\"max_frames\":9,\"text\":\"tools/call\",\"order_by\":\"name\","
                      "\"descending\":true,\"limit\":25}");
    tape_query_free(q);

    q = parse_ok("{\"status\":\"recording\",\"order_by\":\"frame_count\"}");
    assert_int_equal(tape_query_int(q, TAPE_Q_STATUS), TAPE_STATUS_RECORDING);
    assert_int_equal(tape_query_int(q, TAPE_Q_ORDER_BY), TAPE_ORDER_FRAME_COUNT);
    tape_query_free(q);
    const char *orders[] = { "created_at", "updated_at", "name", "duration_ms", "frame_count", "id" };
    for (int i = 0; i < 6; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"order_by\":\"%s\"}", orders[i]);
        q = parse_ok(buf);
        assert_int_equal(tape_query_int(q, TAPE_Q_ORDER_BY), i);
        tape_query_free(q);
    }
}

static void test_parse_integers(void **state)
{
    (void)state;
    /* Integral values in any JSON spelling; exact int64 in the output. */
    tape_query *q = parse_ok("{\"limit\":1e2,\"created_after\":-5,\"max_frames\":0}");
    assert_int_equal(tape_query_int(q, TAPE_Q_LIMIT), 100);
    assert_int_equal(tape_query_int(q, TAPE_Q_CREATED_AFTER), -5);
    assert_int_equal(tape_query_int(q, TAPE_Q_MAX_FRAMES), 0);
    tape_query_free(q);
    q = parse_ok("{\"limit\":4611686018427387904}"); /* 2^62, exact as a double */
    assert_true(tape_query_int(q, TAPE_Q_LIMIT) == INT64_C(4611686018427387904));
    assert_json_is(q, "{\"order_by\":\"created_at\",\"descending\":false,"
                      "\"limit\":4611686018427387904}");
    tape_query_free(q);
}

static void test_parse_iso_time(void **state)
{
    (void)state;
    tape_query *q = parse_ok("{\"created_after\":\"2025-08-14T10:30:00.000Z\","
                             "\"created_before\":1755167400001}");
    assert_true(tape_query_int(q, TAPE_Q_CREATED_AFTER) == INT64_C(1755167400000));
    assert_true(tape_query_int(q, TAPE_Q_CREATED_BEFORE) == INT64_C(1755167400001));
    /* Normalised to integers. */
    assert_json_is(q, "{\"created_after\":1755167400000,\"created_before\":1755167400001,"
                      "\"order_by\":\"created_at\",\"descending\":false}");
    tape_query_free(q);
    parse_fails("{\"created_after\":\"yesterday\"}",
                "query key \"created_after\": \"yesterday\" is not an ISO-8601 time");
    parse_fails("{\"created_before\":\"\"}", "query key \"created_before\"");
}

static void test_parse_null_is_unset(void **state)
{
    (void)state;
    tape_query *q = parse_ok("{\"session_id\":null,\"tags_any\":null,\"status\":null,"
                             "\"order_by\":null,\"descending\":null,\"limit\":null,"
                             "\"created_after\":null,\"text\":null}");
    assert_int_equal(tape_query_has(q, TAPE_Q_SESSION_ID), 0);
    assert_int_equal(tape_query_has(q, TAPE_Q_TAGS_ANY), 0);
    assert_int_equal(tape_query_has(q, TAPE_Q_LIMIT), 0);
    assert_int_equal(tape_query_has(q, TAPE_Q_TEXT), 0);
    assert_int_equal(tape_query_int(q, TAPE_Q_ORDER_BY), TAPE_ORDER_CREATED_AT);
    assert_json_is(q, "{\"order_by\":\"created_at\",\"descending\":false}");
    tape_query_free(q);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *needle;
    } cases[] = {
        /* Not an object. */
        { "[]", "query must be a JSON object, not an array" },
        { "42", "query must be a JSON object, not a number" },
        { "\"x\"", "query must be a JSON object, not a string" },
        { "null", "query must be a JSON object, not null" },
        { "{", "query is not valid JSON" },
        { "{\"limit\":5,}", "query is not valid JSON" },
        { "{} {}", "query is not valid JSON" },
        { "   ", "query is not valid JSON" },
        /* Keys. */
        { "{\"tag\":\"x\"}", "unknown query key \"tag\"" },
        { "{\"Limit\":5}", "unknown query key \"Limit\"" },
        { "{\"limit\":5,\"limit\":6}", "query key \"limit\" appears more than once" },
        /* Strings. */
        { "{\"session_id\":5}", "query key \"session_id\": expected a non-empty string" },
        { "{\"session_id\":\"\"}", "query key \"session_id\": expected a non-empty string" },
        { "{\"name_contains\":[\"a\"]}", "query key \"name_contains\": expected a non-empty string" },
        { "{\"text\":\"\"}", "query key \"text\": expected a non-empty string" },
        { "{\"text\":true}", "query key \"text\": expected a non-empty string" },
        /* Tag lists. */
        { "{\"tags_any\":\"prod\"}", "query key \"tags_any\": expected a non-empty array of non-empty strings" },
        { "{\"tags_any\":[]}", "query key \"tags_any\": expected a non-empty array" },
        { "{\"tags_all\":[\"a\",\"\"]}", "query key \"tags_all\": expected a non-empty array of non-empty strings" },
        { "{\"tags_all\":[\"a\",1]}", "query key \"tags_all\": expected a non-empty array of non-empty strings" },
        { "{\"tags_all\":[null]}", "query key \"tags_all\"" },
        /* Enums and booleans. */
        { "{\"status\":\"done\"}", "query key \"status\": expected \"recording\" or \"finalized\"" },
        { "{\"status\":2}", "query key \"status\": expected \"recording\" or \"finalized\"" },
        { "{\"order_by\":\"size\"}", "query key \"order_by\": expected one of \"created_at\"" },
        { "{\"order_by\":\"Name\"}", "query key \"order_by\"" },
        { "{\"descending\":\"yes\"}", "query key \"descending\": expected true or false" },
        { "{\"descending\":1}", "query key \"descending\": expected true or false" },
        /* Integers. */
        { "{\"limit\":0}", "query key \"limit\": expected an integer >= 1" },
        { "{\"limit\":-3}", "query key \"limit\": expected an integer >= 1" },
        { "{\"limit\":1.5}", "query key \"limit\": expected an integer >= 1" },
        { "{\"limit\":\"10\"}", "query key \"limit\": expected an integer >= 1" },
        { "{\"limit\":1e300}", "query key \"limit\": expected an integer >= 1" },
        { "{\"limit\":9223372036854775808}", "query key \"limit\": expected an integer >= 1" },
        { "{\"min_frames\":-1}", "query key \"min_frames\": expected an integer >= 0" },
        { "{\"max_frames\":2.5}", "query key \"max_frames\": expected an integer >= 0" },
        { "{\"min_duration_ms\":\"1\"}", "query key \"min_duration_ms\": expected an integer >= 0" },
        { "{\"max_duration_ms\":-1}", "query key \"max_duration_ms\": expected an integer >= 0" },
        { "{\"created_after\":1.25}", "query key \"created_after\": expected an integer (ms since the epoch) or an ISO-8601 time string" },
        { "{\"created_before\":true}", "query key \"created_before\": expected an integer" },
        { "{\"created_after\":-1e19}", "query key \"created_after\": expected an integer" },
        /* Cursor type. */
        { "{\"cursor\":5}", "query key \"cursor\": expected a string" },
        { "{\"cursor\":\"\"}", "query key \"cursor\": not a cursor" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_fails(cases[i].json, cases[i].needle);
    }
    /* An overlong unknown key is named, truncated, without overflowing. */
    char big[4096];
    memset(big, 'k', sizeof big);
    memcpy(big, "{\"", 2);
    memcpy(big + sizeof big - 6, "\":1}", 5);
    parse_fails(big, "unknown query key \"kkkk");
}

/* Damaged queries: every outcome is TAPE_OK or TAPE_EQUERY with a message,
 * never a crash or a leak (ASan/valgrind runs), and anything accepted
 * survives the trip through its normalised JSON. */
static void test_parse_mutations(void **state)
{
    (void)state;
    char *cur = hand_cursor("[\"name\",true,\"x\\u00e9y\",\"t-1\"]");
    char seed2[512];
    snprintf(seed2, sizeof seed2,
             "{\"order_by\":\"name\",\"descending\":true,\"cursor\":\"%s\",\"limit\":3}", cur);
    free(cur);
    const char *seeds[] = {
        "{\"session_id\":\"s-1\",\"tags_any\":[\"prod\",\"ci\"],\"created_after\":1000,"
        "\"min_frames\":2,\"status\":\"finalized\",\"text\":\"tools/call\"}",
        seed2,
        "{\"created_before\":\"2025-08-14T10:30:00.000Z\",\"tags_all\":[\"a\"],\"max_duration_ms\":9}",
    };
    const char alphabet[] = "{}[]\":,0123456789.-+eE truefalsnl\\u\"cursor_limitags";
    unsigned int rng = 7;
    for (size_t sidx = 0; sidx < sizeof seeds / sizeof seeds[0]; sidx++) {
        size_t len = strlen(seeds[sidx]);
        for (int round = 0; round < 4000; round++) {
            char buf[600];
            memcpy(buf, seeds[sidx], len + 1);
            size_t n = len;
            int edits = 1 + round % 3;
            for (int k = 0; k < edits; k++) {
                rng = rng * 1103515245u + 12345u;
                size_t at = (rng >> 8) % (n + 1);
                char c = alphabet[(rng >> 20) % (sizeof alphabet - 1)];
                switch ((rng >> 4) % 3) {
                case 0: if (at < n) buf[at] = c; break;
                case 1: if (at < n) { memmove(buf + at, buf + at + 1, n - at); n--; } break;
                default: if (n + 1 < sizeof buf) { memmove(buf + at + 1, buf + at, n - at + 1); buf[at] = c; n++; } break;
                }
            }
            tape_query *q = NULL;
            int rc = tape_query_parse(&q, buf);
            if (rc != TAPE_OK) {
                assert_int_equal(rc, TAPE_EQUERY);
                assert_null(q);
                assert_true(strlen(tape_errmsg()) > 0);
                continue;
            }
            char *a = to_json(q);
            tape_query *q2 = parse_ok(a);
            char *b = to_json(q2);
            assert_string_equal(a, b);
            tape_string_free(a);
            tape_string_free(b);
            tape_query_free(q2);
            tape_query_free(q);
        }
    }
}

static void test_parse_null_args(void **state)
{
    (void)state;
    assert_int_equal(tape_query_parse(NULL, "{}"), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "out"));
    assert_int_equal(tape_query_has(NULL, TAPE_Q_ORDER_BY), 0);
    assert_null(tape_query_string(NULL, TAPE_Q_TEXT));
    assert_int_equal(tape_query_int(NULL, TAPE_Q_LIMIT), 0);
    assert_int_equal(tape_query_list_count(NULL, TAPE_Q_TAGS_ANY), 0);
    assert_null(tape_query_list_at(NULL, TAPE_Q_TAGS_ANY, 0));
    char *s = (char *)0x1;
    assert_int_equal(tape_query_to_json(&s, NULL), TAPE_EINVAL);
    assert_null(s);
    tape_query *q = parse_ok("{\"limit\":3}");
    assert_int_equal(tape_query_to_json(NULL, q), TAPE_EINVAL);
    /* Keys out of range. */
    assert_int_equal(tape_query_has(q, -1), 0);
    assert_int_equal(tape_query_has(q, TAPE_Q_KEY_COUNT), 0);
    assert_int_equal(tape_query_int(q, 999), 0);
    assert_null(tape_query_string(q, -7));
    tape_query *c = (tape_query *)0x1;
    assert_int_equal(tape_query_with_cursor(&c, NULL, NULL), TAPE_EINVAL);
    assert_null(c);
    assert_int_equal(tape_query_with_cursor(NULL, q, NULL), TAPE_EINVAL);
    tape_query_free(q);
    tape_query_free(NULL);
}

static void test_key_names(void **state)
{
    (void)state;
    const char *names[TAPE_Q_KEY_COUNT] = {
        "session_id", "name_contains", "tags_any", "tags_all", "status", "created_after",
        "created_before", "min_duration_ms", "max_duration_ms", "min_frames", "max_frames",
        "text", "order_by", "descending", "limit", "cursor", "strict",
    };
    for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
        assert_string_equal(tape_query_key_name(k), names[k]);
    }
    assert_null(tape_query_key_name(-1));
    assert_null(tape_query_key_name(TAPE_Q_KEY_COUNT));
}

static void test_to_json_roundtrip(void **state)
{
    (void)state;
    const char *inputs[] = {
        "{}",
        "{\"limit\":7,\"tags_all\":[\"b\",\"a\"],\"descending\":true,\"session_id\":\"\\u00e9\\\"q\"}",
        "{\"order_by\":\"duration_ms\",\"min_duration_ms\":3,\"max_frames\":4,\"status\":\"recording\"}",
        "{\"text\":\"line\\nbreak\",\"name_contains\":\"x\",\"created_before\":-100}",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        tape_query *q = parse_ok(inputs[i]);
        char *a = to_json(q);
        tape_query *q2 = parse_ok(a);
        char *b = to_json(q2);
        assert_string_equal(a, b);
        tape_string_free(a);
        tape_string_free(b);
        tape_query_free(q);
        tape_query_free(q2);
    }
}

/* ------------------------------------------------------------------ */
/* Cursors that need no entries                                        */
/* ------------------------------------------------------------------ */

static void test_cursor_garbled(void **state)
{
    (void)state;
    const char *bad_plain[] = { "abc", "c1.", "c2.WyJpZCJd", "c1.!!!!", "c1.WyJpZC", "c1.A",
                                "c1.WyJpZCJd====", "c1. WyJpZCJd" };
    for (size_t i = 0; i < sizeof bad_plain / sizeof bad_plain[0]; i++) {
        char *json = query_with_cursor_json("", bad_plain[i]);
        parse_fails(json, "query key \"cursor\"");
        free(json);
    }
    /* Well encoded, bad content. */
    const char *bad_payloads[] = {
        "not json",
        "{}",
        "[]",
        "[\"created_at\",false,\"1\"]",
        "[\"created_at\",false,\"1\",\"a\",5]",
        "[\"size\",false,\"1\",\"a\"]",
        "[\"created_at\",0,\"1\",\"a\"]",
        "[\"created_at\",false,1,\"a\"]",
        "[\"created_at\",false,\"1.5\",\"a\"]",
        "[\"created_at\",false,\"01\",\"a\"]",
        "[\"created_at\",false,\"+1\",\"a\"]",
        "[\"created_at\",false,\" 1\",\"a\"]",
        "[\"created_at\",false,\"99999999999999999999\",\"a\"]",
        "[\"created_at\",false,\"1\",\"\"]",
        "[\"created_at\",false,\"1\",7]",
        "[\"name\",false,5,\"a\"]",
        "[\"id\",false,\"a\",\"a\"]",
        "[\"created_at\",false,\"1\",\"a\"] x",
    };
    for (size_t i = 0; i < sizeof bad_payloads / sizeof bad_payloads[0]; i++) {
        char *cur = hand_cursor(bad_payloads[i]);
        char *json = query_with_cursor_json("", cur);
        parse_fails(json, "query key \"cursor\": garbled cursor");
        free(json);
        free(cur);
    }
    /* One spelling per cursor: stray low bits or a dangling character on
     * an otherwise valid cursor are rejected. */
    {
        const char *payload = "[\"id\",false,null,\"abcdefghij\"]"; /* 30 bytes */
        assert_int_equal(strlen(payload) % 3, 0);
        char *good = hand_cursor(payload);
        char *json = query_with_cursor_json("\"order_by\":\"id\",", good);
        tape_query *q = parse_ok(json);
        tape_query_free(q);
        free(json);
        size_t n = strlen(good);
        char *longer = malloc(n + 2);
        assert_non_null(longer);
        memcpy(longer, good, n);
        memcpy(longer + n, "A", 2);
        json = query_with_cursor_json("\"order_by\":\"id\",", longer);
        parse_fails(json, "query key \"cursor\": garbled cursor (bad encoding)");
        free(json);
        free(longer);
        free(good);

        payload = "[\"id\",false,null,\"abcdefghijk\"]"; /* 31 bytes: 2 stray bits */
        assert_int_equal(strlen(payload) % 3, 1);
        good = hand_cursor(payload);
        json = query_with_cursor_json("\"order_by\":\"id\",", good);
        q = parse_ok(json);
        tape_query_free(q);
        free(json);
        n = strlen(good);
        assert_int_equal(good[n - 1], 'Q'); /* 'k' = 0x6b: low 4 bits of the last char zero */
        good[n - 1] = 'R';
        json = query_with_cursor_json("\"order_by\":\"id\",", good);
        parse_fails(json, "query key \"cursor\": garbled cursor (bad encoding)");
        free(json);
        free(good);
    }
    /* An id longer than any tape id. */
    char payload[400];
    char id[TAPE_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(payload, sizeof payload, "[\"id\",false,null,\"%s\"]", id);
    char *cur = hand_cursor(payload);
    char *json = query_with_cursor_json("\"order_by\":\"id\",", cur);
    parse_fails(json, "query key \"cursor\": garbled cursor");
    free(json);
    free(cur);
}

static void test_cursor_order_mismatch(void **state)
{
    (void)state;
    char *cur = hand_cursor("[\"name\",true,\"abc\",\"t1\"]");
    /* Same order: accepted, whatever the key order in the object. */
    char *json = query_with_cursor_json("\"order_by\":\"name\",\"descending\":true,", cur);
    tape_query *q = parse_ok(json);
    assert_string_equal(tape_query_string(q, TAPE_Q_CURSOR), cur);
    assert_int_equal(tape_query_has(q, TAPE_Q_CURSOR), 1);
    free(json);
    size_t n = strlen(cur) + 80;
    json = malloc(n);
    assert_non_null(json);
    snprintf(json, n, "{\"cursor\":\"%s\",\"descending\":true,\"order_by\":\"name\"}", cur);
    tape_query_free(q);
    q = parse_ok(json);
    free(json);
    tape_query_free(q);

    json = query_with_cursor_json("\"order_by\":\"name\",", cur);
    parse_fails(json, "query key \"cursor\": made for order_by \"name\" descending, but the "
                      "query orders by \"name\" ascending");
    free(json);
    json = query_with_cursor_json("", cur);
    parse_fails(json, "query key \"cursor\": made for order_by \"name\" descending, but the "
                      "query orders by \"created_at\" ascending");
    free(json);

    /* with_cursor applies the same check. */
    q = parse_ok("{\"order_by\":\"id\"}");
    tape_query *c = (tape_query *)0x1;
    assert_int_equal(tape_query_with_cursor(&c, q, cur), TAPE_EQUERY);
    assert_null(c);
    assert_non_null(strstr(tape_errmsg(), "query key \"cursor\": made for order_by \"name\""));
    assert_int_equal(tape_query_with_cursor(&c, q, "zzz"), TAPE_EQUERY);
    assert_non_null(strstr(tape_errmsg(), "query key \"cursor\""));
    tape_query_free(q);
    free(cur);

    /* A name cursor may carry null (the unnamed tapes come first). */
    cur = hand_cursor("[\"name\",false,null,\"t1\"]");
    json = query_with_cursor_json("\"order_by\":\"name\",", cur);
    q = parse_ok(json);
    tape_query_free(q);
    free(json);
    free(cur);
}

static void test_with_cursor_copies(void **state)
{
    (void)state;
    char *cur = hand_cursor("[\"created_at\",false,\"-12\",\"t9\"]");
    tape_query *q = parse_ok("{\"tags_any\":[\"a\",\"b\"],\"limit\":2,\"text\":\"x\"}");
    tape_query *c = NULL;
    assert_int_equal(tape_query_with_cursor(&c, q, cur), TAPE_OK);
    tape_query_free(q); /* the copy must not borrow from the original */
    assert_string_equal(tape_query_string(c, TAPE_Q_CURSOR), cur);
    assert_int_equal(tape_query_list_count(c, TAPE_Q_TAGS_ANY), 2);
    assert_string_equal(tape_query_list_at(c, TAPE_Q_TAGS_ANY, 1), "b");
    assert_string_equal(tape_query_string(c, TAPE_Q_TEXT), "x");
    assert_int_equal(tape_query_int(c, TAPE_Q_LIMIT), 2);
    char *js = to_json(c);
    assert_non_null(strstr(js, cur));
    /* The normalised JSON, cursor included, parses back. */
    tape_query *back = parse_ok(js);
    assert_string_equal(tape_query_string(back, TAPE_Q_CURSOR), cur);
    tape_query_free(back);
    tape_string_free(js);

    /* NULL cursor: back to the first page. */
    tape_query *first = NULL;
    assert_int_equal(tape_query_with_cursor(&first, c, NULL), TAPE_OK);
    assert_int_equal(tape_query_has(first, TAPE_Q_CURSOR), 0);
    assert_null(tape_query_string(first, TAPE_Q_CURSOR));
    assert_int_equal(tape_query_int(first, TAPE_Q_LIMIT), 2);
    tape_query_free(first);
    tape_query_free(c);
    free(cur);
}

/* ------------------------------------------------------------------ */
/* Result pages                                                        */
/* ------------------------------------------------------------------ */

static void test_result_null_args(void **state)
{
    (void)state;
    assert_int_equal(tape_result_new(NULL), TAPE_EINVAL);
    tape_result *r = NULL;
    assert_int_equal(tape_result_new(&r), TAPE_OK);
    assert_int_equal(tape_result_count(r), 0);
    assert_null(tape_result_at(r, 0));
    assert_null(tape_result_next_cursor(r));
    assert_int_equal(tape_result_push(r, NULL), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "entry"));
    assert_int_equal(tape_result_push(NULL, NULL), TAPE_EINVAL);
    assert_int_equal(tape_result_set_cursor(NULL, "c"), TAPE_EINVAL);
    assert_int_equal(tape_result_set_cursor(r, "c1.abc"), TAPE_OK);
    assert_string_equal(tape_result_next_cursor(r), "c1.abc");
    assert_int_equal(tape_result_set_cursor(r, "c1.def"), TAPE_OK);
    assert_string_equal(tape_result_next_cursor(r), "c1.def");
    assert_int_equal(tape_result_set_cursor(r, NULL), TAPE_OK);
    assert_null(tape_result_next_cursor(r));
    assert_int_equal(tape_result_count(NULL), 0);
    assert_null(tape_result_at(NULL, 0));
    assert_null(tape_result_next_cursor(NULL));
    tape_result_free(r);
    tape_result_free(NULL);
}

/* ------------------------------------------------------------------ */
/* Model-based tests: tapes, entries, the matcher                      */
/* ------------------------------------------------------------------ */

struct spec {
    const char *id;
    const char *name;       /* NULL: unnamed */
    const char *session;
    int status;             /* 0: leave recording */
    int64_t created;
    int64_t updated;        /* TAPE_TIME_NONE: unset */
    const char *tags;       /* comma separated */
    int frames;
    int64_t step_ms;        /* frame i has ts i*step_ms */
    const char *message;    /* message of every frame (NULL: a default) */
};

static tape *make_tape(const struct spec *s)
{
    tape *t = NULL;
    assert_int_equal(tape_new(&t, s->id), TAPE_OK);
    if (s->name) assert_int_equal(tape_set_name(t, s->name), TAPE_OK);
    if (s->session) assert_int_equal(tape_set_session_id(t, s->session), TAPE_OK);
    if (s->status) assert_int_equal(tape_set_status(t, s->status), TAPE_OK);
    assert_int_equal(tape_set_created_at(t, s->created), TAPE_OK);
    if (s->updated != TAPE_TIME_NONE) assert_int_equal(tape_set_updated_at(t, s->updated), TAPE_OK);
    if (s->tags) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", s->tags);
        for (char *p = strtok(buf, ","); p; p = strtok(NULL, ",")) {
            assert_int_equal(tape_add_tag(t, p), TAPE_OK);
        }
    }
    for (int i = 0; i < s->frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i * s->step_ms;
        d.message = s->message ? s->message
                               : "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
        assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    }
    return t;
}

static tape_entry *make_entry(const struct spec *s)
{
    tape *t = make_tape(s);
    tape_entry *e = NULL;
    assert_int_equal(tape_entry_from_tape(&e, t), TAPE_OK);
    tape_free(t);
    return e;
}

#define NONE TAPE_TIME_NONE
#define FIN TAPE_STATUS_FINALIZED
#define REC TAPE_STATUS_RECORDING

/* A small store: varied fields, ties on purpose. */
static const struct spec corpus[] = {
    { "t01", "Alpha demo", "s1", FIN, 1000, 5000, "prod,api", 3, 10, NULL },
    { "t02", "beta", "s1", REC, 2000, NONE, "dev", 0, 0, NULL },
    { "t03", NULL, "s2", FIN, 2000, 3000, "prod", 5, 100,
      "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"Echo\"}}" },
    { "t04", "DEMO two", NULL, FIN, 3000, 3000, NULL, 1, 0, NULL },
    { "t05", "alpha", "s2", REC, 4000, 4500, "api,ci", 2, 250, NULL },
    { "t06", "Zeta", "s3", FIN, 1000, NONE, "ci", 10, 1,
      "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"Method NOT found\"}}" },
    { "t07", NULL, NULL, REC, 5000, 100, "prod,dev,ci", 4, 1000, NULL },
    { "t08", "beta", "s1", FIN, 3000, 9000, "api", 3, 10, NULL },
};
#define CORPUS_N (sizeof corpus / sizeof corpus[0])

struct fixture {
    tape *tapes[CORPUS_N];
    tape_entry *entries[CORPUS_N];
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    for (size_t i = 0; i < CORPUS_N; i++) {
        f->tapes[i] = make_tape(&corpus[i]);
        if (tape_entry_from_tape(&f->entries[i], f->tapes[i]) != TAPE_OK) {
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < CORPUS_N; i++) {
        tape_entry_free(f->entries[i]);
        tape_free(f->tapes[i]);
    }
    free(f);
    return 0;
}

/* Ids of the corpus tapes matching q, in corpus order, as "t01,t03". The
 * entry path and the tape path must agree on every non-text term. */
static void matching_ids(char *out, size_t cap, struct fixture *f, const char *json)
{
    tape_query *q = parse_ok(json);
    out[0] = '\0';
    int has_text = tape_query_has(q, TAPE_Q_TEXT);
    for (size_t i = 0; i < CORPUS_N; i++) {
        int by_tape = tape_query_match_tape(q, f->tapes[i]);
        int by_entry = tape_query_match_entry(q, f->entries[i]);
        assert_true(by_tape == 0 || by_tape == 1);
        if (!has_text) {
            assert_int_equal(by_tape, by_entry);
        } else if (by_tape) {
            assert_int_equal(by_entry, 1); /* text only narrows */
        }
        if (by_tape) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s%s", len ? "," : "", corpus[i].id);
        }
    }
    tape_query_free(q);
}

static void expect_match(struct fixture *f, const char *json, const char *want)
{
    char got[256];
    matching_ids(got, sizeof got, f, json);
    if (strcmp(got, want) != 0) {
        print_error("query %s matched [%s], wanted [%s]\n", json, got, want);
    }
    assert_string_equal(got, want);
}

static void test_match_terms(void **state)
{
    struct fixture *f = *state;
    expect_match(f, "{}", "t01,t02,t03,t04,t05,t06,t07,t08");
    /* session_id: exact, case-sensitive; tapes without one never match. */
    expect_match(f, "{\"session_id\":\"s1\"}", "t01,t02,t08");
    expect_match(f, "{\"session_id\":\"S1\"}", "");
    expect_match(f, "{\"session_id\":\"s\"}", "");
    /* name_contains: ASCII case-insensitive substring; unnamed never match. */
    expect_match(f, "{\"name_contains\":\"demo\"}", "t01,t04");
    expect_match(f, "{\"name_contains\":\"ALPHA\"}", "t01,t05");
    expect_match(f, "{\"name_contains\":\"a\"}", "t01,t02,t05,t06,t08");
    expect_match(f, "{\"name_contains\":\"alpha demo!\"}", "");
    /* Tags: exact, case-sensitive. */
    expect_match(f, "{\"tags_any\":[\"prod\"]}", "t01,t03,t07");
    expect_match(f, "{\"tags_any\":[\"PROD\"]}", "");
    expect_match(f, "{\"tags_any\":[\"dev\",\"ci\"]}", "t02,t05,t06,t07");
    expect_match(f, "{\"tags_any\":[\"nope\",\"api\"]}", "t01,t05,t08");
    expect_match(f, "{\"tags_all\":[\"prod\",\"dev\"]}", "t07");
    expect_match(f, "{\"tags_all\":[\"api\"]}", "t01,t05,t08");
    expect_match(f, "{\"tags_all\":[\"api\",\"nope\"]}", "");
    expect_match(f, "{\"tags_any\":[\"ci\"],\"tags_all\":[\"api\"]}", "t05");
    /* Status. */
    expect_match(f, "{\"status\":\"recording\"}", "t02,t05,t07");
    expect_match(f, "{\"status\":\"finalized\"}", "t01,t03,t04,t06,t08");
    /* created_after / created_before: exclusive. */
    expect_match(f, "{\"created_after\":2000}", "t04,t05,t07,t08");
    expect_match(f, "{\"created_after\":1999}", "t02,t03,t04,t05,t07,t08");
    expect_match(f, "{\"created_before\":2000}", "t01,t06");
    expect_match(f, "{\"created_before\":2001}", "t01,t02,t03,t06");
    expect_match(f, "{\"created_after\":1000,\"created_before\":3000}", "t02,t03");
    expect_match(f, "{\"created_after\":3000,\"created_before\":3000}", "");
    expect_match(f, "{\"created_after\":\"1970-01-01T00:00:02.000Z\"}", "t04,t05,t07,t08");
    /* Durations (largest frame ts): t01 20, t02 0, t03 400, t04 0, t05 250,
     * t06 9, t07 3000, t08 20. Inclusive. */
    expect_match(f, "{\"min_duration_ms\":20}", "t01,t03,t05,t07,t08");
    expect_match(f, "{\"max_duration_ms\":20}", "t01,t02,t04,t06,t08");
    expect_match(f, "{\"min_duration_ms\":250,\"max_duration_ms\":400}", "t03,t05");
    expect_match(f, "{\"max_duration_ms\":0}", "t02,t04");
    /* Frame counts: 3,0,5,1,2,10,4,3. Inclusive. */
    expect_match(f, "{\"min_frames\":4}", "t03,t06,t07");
    expect_match(f, "{\"max_frames\":0}", "t02");
    expect_match(f, "{\"min_frames\":3,\"max_frames\":3}", "t01,t08");
    expect_match(f, "{\"min_frames\":11}", "");
    /* Everything at once. */
    expect_match(f, "{\"session_id\":\"s1\",\"name_contains\":\"BET\",\"tags_any\":[\"api\"],"
                    "\"status\":\"finalized\",\"created_after\":2999,\"min_frames\":3,"
                    "\"max_duration_ms\":20}",
                 "t08");
}

static void test_match_text(void **state)
{
    struct fixture *f = *state;
    /* text: ASCII case-insensitive substring of the raw message JSON of any
     * frame; a tape without frames never matches. */
    expect_match(f, "{\"text\":\"tools/call\"}", "t03");
    expect_match(f, "{\"text\":\"ECHO\"}", "t03");
    expect_match(f, "{\"text\":\"method not found\"}", "t06");
    expect_match(f, "{\"text\":\"\\\"method\\\"\"}", "t01,t03,t04,t05,t07,t08");
    expect_match(f, "{\"text\":\"jsonrpc\"}", "t01,t03,t04,t05,t06,t07,t08");
    expect_match(f, "{\"text\":\"-32601\",\"status\":\"finalized\"}", "t06");
    expect_match(f, "{\"text\":\"-32601\",\"status\":\"recording\"}", "");
    expect_match(f, "{\"text\":\"nowhere\"}", "");
    /* match_entry ignores text entirely. */
    tape_query *q = parse_ok("{\"text\":\"nowhere\"}");
    for (size_t i = 0; i < CORPUS_N; i++) {
        assert_int_equal(tape_query_match_entry(q, f->entries[i]), 1);
    }
    tape_query_free(q);
}

static void test_match_null_args(void **state)
{
    struct fixture *f = *state;
    tape_query *q = parse_ok("{\"status\":\"finalized\"}");
    assert_int_equal(tape_query_match_entry(q, NULL), 0);
    assert_int_equal(tape_errcode(), TAPE_EINVAL);
    assert_int_equal(tape_query_match_tape(q, NULL), 0);
    assert_int_equal(tape_errcode(), TAPE_EINVAL);
    /* A NULL query is "every tape". */
    assert_int_equal(tape_query_match_entry(NULL, f->entries[1]), 1);
    assert_int_equal(tape_query_match_tape(NULL, f->tapes[1]), 1);
    assert_int_equal(tape_query_match_entry(q, f->entries[1]), 0);
    tape_query_free(q);
}

/* Sort the corpus with tape_query_compare and return the ids in order. */
static void sorted_ids(char *out, size_t cap, struct fixture *f, const char *json)
{
    tape_query *q = parse_ok(json);
    tape_entry *v[CORPUS_N];
    memcpy(v, f->entries, sizeof v);
    /* Insertion sort: tape_query_compare takes the query, qsort cannot. */
    for (size_t i = 1; i < CORPUS_N; i++) {
        for (size_t j = i; j > 0 && tape_query_compare(q, v[j - 1], v[j]) > 0; j--) {
            tape_entry *tmp = v[j];
            v[j] = v[j - 1];
            v[j - 1] = tmp;
        }
    }
    out[0] = '\0';
    for (size_t i = 0; i < CORPUS_N; i++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", i ? "," : "", tape_entry_id(v[i]));
        /* A total order: only an entry equals itself. */
        for (size_t j = 0; j < CORPUS_N; j++) {
            int c = tape_query_compare(q, v[i], v[j]);
            int d = tape_query_compare(q, v[j], v[i]);
            assert_int_equal(c, -d);
            assert_int_equal(c == 0, i == j);
            assert_int_equal(c < 0, i < j);
        }
    }
    tape_query_free(q);
}

static void expect_order(struct fixture *f, const char *json, const char *want)
{
    char got[256];
    sorted_ids(got, sizeof got, f, json);
    if (strcmp(got, want) != 0) {
        print_error("order %s gave [%s], wanted [%s]\n", json, got, want);
    }
    assert_string_equal(got, want);
}

static void test_ordering(void **state)
{
    struct fixture *f = *state;
    /* created_at, ties by id. */
    expect_order(f, "{}", "t01,t06,t02,t03,t04,t08,t05,t07");
    /* descending flips key and tie-break alike. */
    expect_order(f, "{\"descending\":true}", "t07,t05,t08,t04,t03,t02,t06,t01");
    /* updated_at: unset first. */
    expect_order(f, "{\"order_by\":\"updated_at\"}", "t02,t06,t07,t03,t04,t05,t01,t08");
    expect_order(f, "{\"order_by\":\"updated_at\",\"descending\":true}",
                 "t08,t01,t05,t04,t03,t07,t06,t02");
    /* name: unnamed first, then bytes (uppercase before lowercase). */
    expect_order(f, "{\"order_by\":\"name\"}", "t03,t07,t01,t04,t06,t05,t02,t08");
    expect_order(f, "{\"order_by\":\"name\",\"descending\":true}",
                 "t08,t02,t05,t06,t04,t01,t07,t03");
    expect_order(f, "{\"order_by\":\"duration_ms\"}", "t02,t04,t06,t01,t08,t05,t03,t07");
    expect_order(f, "{\"order_by\":\"frame_count\"}", "t02,t04,t05,t01,t08,t07,t03,t06");
    expect_order(f, "{\"order_by\":\"id\"}", "t01,t02,t03,t04,t05,t06,t07,t08");
    expect_order(f, "{\"order_by\":\"id\",\"descending\":true}", "t08,t07,t06,t05,t04,t03,t02,t01");
    /* NULLs never crash. */
    assert_true(tape_query_compare(NULL, NULL, f->entries[0]) < 0);
    assert_true(tape_query_compare(NULL, f->entries[0], NULL) > 0);
    assert_int_equal(tape_query_compare(NULL, f->entries[0], f->entries[0]), 0);
}

/* The text matcher tests hand to tape__query_run: the fixture's tapes. */
struct text_ud {
    struct fixture *f;
    const tape_query *q;
    int calls;
    int fail_at;    /* >0: fail on that call */
};

static int fixture_text_match(int *out_match, void *ud, const tape_entry *e)
{
    struct text_ud *t = ud;
    t->calls++;
    if (t->fail_at > 0 && t->calls == t->fail_at) {
        return tape_error_set(TAPE_EIO, "disk on fire");
    }
    for (size_t i = 0; i < CORPUS_N; i++) {
        if (strcmp(tape_id(t->f->tapes[i]), tape_entry_id(e)) == 0) {
            *out_match = tape_query_match_tape(t->q, t->f->tapes[i]);
            return TAPE_OK;
        }
    }
    *out_match = 0;
    return TAPE_OK;
}

/* Run the query page by page; return all ids and the number of pages. */
static int run_pages(char *out, size_t cap, struct fixture *f, const char *json)
{
    tape_query *q = parse_ok(json);
    out[0] = '\0';
    int pages = 0;
    for (;;) {
        struct text_ud ud = { f, q, 0, 0 };
        tape_result *r = NULL;
        int rc = tape__query_run(&r, q, f->entries, CORPUS_N, fixture_text_match, &ud);
        if (rc != TAPE_OK) {
            print_error("run %s: %s\n", json, tape_errmsg());
        }
        assert_int_equal(rc, TAPE_OK);
        pages++;
        if (tape_query_has(q, TAPE_Q_LIMIT)) {
            assert_true(tape_result_count(r) <= (size_t)tape_query_int(q, TAPE_Q_LIMIT));
        }
        for (size_t i = 0; i < tape_result_count(r); i++) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s%s", len ? "," : "", tape_entry_id(tape_result_at(r, i)));
        }
        const char *cur = tape_result_next_cursor(r);
        if (cur == NULL) {
            tape_result_free(r);
            break;
        }
        /* A page with a cursor is full. */
        assert_int_equal(tape_result_count(r), (size_t)tape_query_int(q, TAPE_Q_LIMIT));
        tape_query *next = NULL;
        assert_int_equal(tape_query_with_cursor(&next, q, cur), TAPE_OK);
        tape_result_free(r);
        tape_query_free(q);
        q = next;
        assert_true(pages < 100);
    }
    tape_query_free(q);
    return pages;
}

static void expect_pages(struct fixture *f, const char *json, const char *want, int want_pages)
{
    char got[256];
    int pages = run_pages(got, sizeof got, f, json);
    if (strcmp(got, want) != 0 || pages != want_pages) {
        print_error("pages of %s gave [%s] in %d pages, wanted [%s] in %d\n", json, got, pages,
                    want, want_pages);
    }
    assert_string_equal(got, want);
    assert_int_equal(pages, want_pages);
}

static void test_run_paging(void **state)
{
    struct fixture *f = *state;
    expect_pages(f, "{}", "t01,t06,t02,t03,t04,t08,t05,t07", 1);
    expect_pages(f, "{\"limit\":3}", "t01,t06,t02,t03,t04,t08,t05,t07", 3);
    /* Exactly full last page: no cursor, so no empty extra page. */
    expect_pages(f, "{\"limit\":4}", "t01,t06,t02,t03,t04,t08,t05,t07", 2);
    expect_pages(f, "{\"limit\":8}", "t01,t06,t02,t03,t04,t08,t05,t07", 1);
    expect_pages(f, "{\"limit\":1,\"descending\":true}", "t07,t05,t08,t04,t03,t02,t06,t01", 8);
    const char *orders[] = { "created_at", "updated_at", "name", "duration_ms", "frame_count", "id" };
    for (int i = 0; i < 6; i++) {
        for (int desc = 0; desc < 2; desc++) {
            char all[64], paged[96], want[256];
            snprintf(all, sizeof all, "{\"order_by\":\"%s\",\"descending\":%s}", orders[i],
                     desc ? "true" : "false");
            snprintf(paged, sizeof paged, "{\"order_by\":\"%s\",\"descending\":%s,\"limit\":2}",
                     orders[i], desc ? "true" : "false");
            sorted_ids(want, sizeof want, f, all);
            expect_pages(f, all, want, 1);
            expect_pages(f, paged, want, 4);
        }
    }
    /* Filters and paging together. */
    expect_pages(f, "{\"tags_any\":[\"prod\",\"ci\"],\"limit\":2,\"order_by\":\"name\"}",
                 "t03,t07,t01,t06,t05", 3);
    expect_pages(f, "{\"session_id\":\"nobody\",\"limit\":2}", "", 1);
}

static void test_run_text(void **state)
{
    struct fixture *f = *state;
    expect_pages(f, "{\"text\":\"\\\"method\\\"\"}", "t01,t03,t04,t08,t05,t07", 1);
    expect_pages(f, "{\"text\":\"\\\"method\\\"\",\"limit\":2}", "t01,t03,t04,t08,t05,t07", 3);
    expect_pages(f, "{\"text\":\"ping\",\"limit\":4,\"descending\":true}", "t07,t05,t08,t04,t01", 2);
    /* The cursor is NULL exactly when no further entry matches: here the
     * entries after the page exist but fail the text term. */
    tape_query *q = parse_ok("{\"text\":\"tools/call\",\"limit\":1}");
    struct text_ud ud = { f, q, 0, 0 };
    tape_result *r = NULL;
    assert_int_equal(tape__query_run(&r, q, f->entries, CORPUS_N, fixture_text_match, &ud), TAPE_OK);
    assert_int_equal(tape_result_count(r), 1);
    assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "t03");
    assert_null(tape_result_next_cursor(r));
    assert_int_equal(ud.calls, (int)CORPUS_N);
    tape_result_free(r);
    tape_query_free(q);

    /* text_match is called lazily, in order, only as far as needed: the
     * page (2) plus the one that proves a next page exists. */
    q = parse_ok("{\"text\":\"jsonrpc\",\"limit\":2}");
    ud = (struct text_ud){ f, q, 0, 0 };
    assert_int_equal(tape__query_run(&r, q, f->entries, CORPUS_N, fixture_text_match, &ud), TAPE_OK);
    assert_int_equal(tape_result_count(r), 2);
    assert_non_null(tape_result_next_cursor(r));
    assert_int_equal(ud.calls, 4); /* t01 match, t06 match, t02 (no frames) no, t03 match */
    tape_result_free(r);

    /* Its errors propagate, nothing leaks. */
    ud = (struct text_ud){ f, q, 0, 2 };
    r = (tape_result *)0x1;
    assert_int_equal(tape__query_run(&r, q, f->entries, CORPUS_N, fixture_text_match, &ud), TAPE_EIO);
    assert_null(r);
    assert_string_equal(tape_errmsg(), "disk on fire");
    /* A query with text needs a matcher. */
    assert_int_equal(tape__query_run(&r, q, f->entries, CORPUS_N, NULL, NULL), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "text"));
    tape_query_free(q);

    /* Without text the matcher is never called. */
    q = parse_ok("{\"limit\":2}");
    ud = (struct text_ud){ f, q, 0, 1 };
    assert_int_equal(tape__query_run(&r, q, f->entries, CORPUS_N, fixture_text_match, &ud), TAPE_OK);
    assert_int_equal(ud.calls, 0);
    tape_result_free(r);
    tape_query_free(q);
}

static void test_run_args(void **state)
{
    struct fixture *f = *state;
    tape_result *r = NULL;
    assert_int_equal(tape__query_run(NULL, NULL, f->entries, CORPUS_N, NULL, NULL), TAPE_EINVAL);
    assert_int_equal(tape__query_run(&r, NULL, NULL, 3, NULL, NULL), TAPE_EINVAL);
    assert_null(r);
    /* No entries: an empty last page. */
    assert_int_equal(tape__query_run(&r, NULL, NULL, 0, NULL, NULL), TAPE_OK);
    assert_int_equal(tape_result_count(r), 0);
    assert_null(tape_result_next_cursor(r));
    tape_result_free(r);
    /* NULL query: every entry, created_at order. */
    assert_int_equal(tape__query_run(&r, NULL, f->entries, CORPUS_N, NULL, NULL), TAPE_OK);
    assert_int_equal(tape_result_count(r), CORPUS_N);
    assert_string_equal(tape_entry_id(tape_result_at(r, 1)), "t06");
    assert_null(tape_result_at(r, CORPUS_N));
    tape_result_free(r);
    tape_entry *holes[3] = { f->entries[0], NULL, f->entries[1] };
    assert_int_equal(tape__query_run(&r, NULL, holes, 3, NULL, NULL), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "entries[1]"));
    assert_null(r);
}

static void test_result_holds_references(void **state)
{
    (void)state;
    struct spec s = { "solo", "x", NULL, FIN, 5, NONE, NULL, 0, 0, NULL };
    tape_entry *e = make_entry(&s);
    tape_result *r = NULL;
    assert_int_equal(tape_result_new(&r), TAPE_OK);
    assert_int_equal(tape_result_push(r, e), TAPE_OK);
    assert_int_equal(tape_result_push(r, e), TAPE_OK);
    tape_entry_free(e); /* the result keeps its own references */
    assert_int_equal(tape_result_count(r), 2);
    assert_string_equal(tape_entry_id(tape_result_at(r, 1)), "solo");
    tape_result_free(r);

    /* Pages of tape__query_run outlive the entries array they came from. */
    tape_entry *v[2] = { make_entry(&s), NULL };
    struct spec s2 = { "solo2", "y", NULL, FIN, 6, NONE, NULL, 0, 0, NULL };
    v[1] = make_entry(&s2);
    assert_int_equal(tape__query_run(&r, NULL, v, 2, NULL, NULL), TAPE_OK);
    tape_entry_free(v[0]);
    tape_entry_free(v[1]);
    assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "solo");
    assert_string_equal(tape_entry_id(tape_result_at(r, 1)), "solo2");
    tape_result_free(r);
}

static void test_cursor_after(void **state)
{
    struct fixture *f = *state;
    const char *orders[] = { "created_at", "updated_at", "name", "duration_ms", "frame_count", "id" };
    for (int o = 0; o < 6; o++) {
        for (int desc = 0; desc < 2; desc++) {
            char json[96];
            snprintf(json, sizeof json, "{\"order_by\":\"%s\",\"descending\":%s}", orders[o],
                     desc ? "true" : "false");
            tape_query *q = parse_ok(json);
            for (size_t i = 0; i < CORPUS_N; i++) {
                char *cur = NULL;
                assert_int_equal(tape_query_cursor_after(&cur, q, f->entries[i]), TAPE_OK);
                /* Printable and URL-safe. */
                for (const char *p = cur; *p; p++) {
                    assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_.", *p) != NULL);
                }
                tape_query *qc = NULL;
                assert_int_equal(tape_query_with_cursor(&qc, q, cur), TAPE_OK);
                /* after_cursor is exactly "compares greater than the entry". */
                for (size_t j = 0; j < CORPUS_N; j++) {
                    int want = tape_query_compare(q, f->entries[j], f->entries[i]) > 0;
                    assert_int_equal(tape_query_after_cursor(qc, f->entries[j]), want);
                }
                tape_query_free(qc);
                tape_string_free(cur);
            }
            /* Without a cursor every entry is "after". */
            assert_int_equal(tape_query_after_cursor(q, f->entries[3]), 1);
            tape_query_free(q);
        }
    }
    char *cur = (char *)0x1;
    assert_int_equal(tape_query_cursor_after(&cur, NULL, NULL), TAPE_EINVAL);
    assert_null(cur);
    assert_int_equal(tape_query_cursor_after(NULL, NULL, f->entries[0]), TAPE_EINVAL);
    assert_int_equal(tape_query_after_cursor(NULL, NULL), 0);
    assert_int_equal(tape_query_after_cursor(NULL, f->entries[0]), 1);
    /* NULL query: the default order's cursor. */
    assert_int_equal(tape_query_cursor_after(&cur, NULL, f->entries[0]), TAPE_OK);
    tape_query *q = parse_ok("{}"), *qc = NULL;
    assert_int_equal(tape_query_with_cursor(&qc, q, cur), TAPE_OK);
    tape_query_free(qc);
    tape_query_free(q);
    q = parse_ok("{\"descending\":true}");
    assert_int_equal(tape_query_with_cursor(&qc, q, cur), TAPE_EQUERY);
    tape_query_free(q);
    tape_string_free(cur);
}

static void test_cursor_exact_keys(void **state)
{
    (void)state;
    /* The extremes of the tape model (years 0000 and 9999), adjacent
     * values and negative ones survive the cursor exactly. */
    struct spec a = { "a", "n", NULL, FIN, INT64_C(253402300799998), NONE, NULL, 0, 0, NULL };
    struct spec b = { "b", "n", NULL, FIN, INT64_C(253402300799999), NONE, NULL, 0, 0, NULL };
    struct spec c = { "c", "n", NULL, FIN, INT64_C(-62167219200000), INT64_C(-7), NULL, 0, 0, NULL };
    tape_entry *v[3] = { make_entry(&a), make_entry(&b), make_entry(&c) };
    tape_query *q = parse_ok("{\"limit\":1}");
    const char *want[3] = { "c", "a", "b" };
    for (int page = 0; page < 3; page++) {
        tape_result *r = NULL;
        assert_int_equal(tape__query_run(&r, q, v, 3, NULL, NULL), TAPE_OK);
        assert_int_equal(tape_result_count(r), 1);
        assert_string_equal(tape_entry_id(tape_result_at(r, 0)), want[page]);
        const char *cur = tape_result_next_cursor(r);
        assert_int_equal(cur != NULL, page < 2);
        tape_query *next = NULL;
        assert_int_equal(tape_query_with_cursor(&next, q, cur), TAPE_OK);
        tape_query_free(q);
        q = next;
        tape_result_free(r);
    }
    tape_query_free(q);
    /* updated_at NONE (INT64_MIN) in a cursor. */
    q = parse_ok("{\"order_by\":\"updated_at\",\"limit\":1}");
    const char *want_u[3] = { "a", "b", "c" }; /* NONE, NONE (by id), -7 */
    for (int page = 0; page < 3; page++) {
        tape_result *r = NULL;
        assert_int_equal(tape__query_run(&r, q, v, 3, NULL, NULL), TAPE_OK);
        assert_string_equal(tape_entry_id(tape_result_at(r, 0)), want_u[page]);
        tape_query *next = NULL;
        assert_int_equal(tape_query_with_cursor(&next, q, tape_result_next_cursor(r)), TAPE_OK);
        tape_query_free(q);
        q = next;
        tape_result_free(r);
    }
    tape_query_free(q);
    for (int i = 0; i < 3; i++) {
        tape_entry_free(v[i]);
    }
}

static int always_match(int *out_match, void *ud, const tape_entry *e)
{
    (void)e;
    (*(int *)ud)++;
    *out_match = 1;
    return TAPE_OK;
}

/* Collect every page of q over v into ids (borrowed pointers). */
static size_t collect_pages(const char **ids, tape_query *q0, tape_entry **v, size_t n,
                            int text)
{
    tape_query *q = NULL;
    assert_int_equal(tape_query_with_cursor(&q, q0, NULL), TAPE_OK);
    size_t got = 0;
    for (;;) {
        int calls = 0;
        tape_result *r = NULL;
        assert_int_equal(tape__query_run(&r, q, v, n, text ? always_match : NULL, &calls), TAPE_OK);
        for (size_t i = 0; i < tape_result_count(r); i++) {
            assert_true(got < n);
            ids[got++] = tape_entry_id(tape_result_at(r, i));
        }
        const char *cur = tape_result_next_cursor(r);
        tape_query *next = NULL;
        if (cur != NULL) {
            assert_int_equal(tape_query_with_cursor(&next, q, cur), TAPE_OK);
        }
        tape_result_free(r);
        tape_query_free(q);
        q = next;
        if (q == NULL) {
            return got;
        }
    }
}

/* Many entries with many equal keys: the full sort, the bounded heap (a
 * limit) and the lazy heap (text) all give the one total order. */
static void test_run_large(void **state)
{
    (void)state;
    enum { N = 3000 };
    tape_entry **v = calloc(N, sizeof *v);
    const char **a = calloc(N, sizeof *a);
    const char **b = calloc(N, sizeof *b);
    assert_non_null(v);
    assert_non_null(a);
    assert_non_null(b);
    unsigned int rng = 99;
    for (size_t i = 0; i < N; i++) {
        rng = rng * 1103515245u + 12345u;
        char id[16], name[16];
        /* Ids not in creation order, so the tie-break is really tested. */
        snprintf(id, sizeof id, "e%05u", (unsigned)((i * 7919u) % 100000u));
        snprintf(name, sizeof name, "N%u", (rng >> 16) % 13);
        struct spec s = { id, (rng >> 8) % 9 ? name : NULL, NULL, FIN,
                          (int64_t)((rng >> 16) % 50), (rng >> 4) % 3 ? (int64_t)((rng >> 12) % 20) : NONE,
                          NULL, (int)((rng >> 20) % 4), (int64_t)((rng >> 24) % 3), NULL };
        v[i] = make_entry(&s);
    }
    const char *orders[] = { "created_at", "updated_at", "name", "duration_ms", "frame_count", "id" };
    for (int o = 0; o < 6; o++) {
        for (int desc = 0; desc < 2; desc++) {
            char json[128];
            snprintf(json, sizeof json, "{\"order_by\":\"%s\",\"descending\":%s}", orders[o],
                     desc ? "true" : "false");
            tape_query *q = parse_ok(json);
            tape_result *r = NULL;
            assert_int_equal(tape__query_run(&r, q, v, N, NULL, NULL), TAPE_OK);
            assert_int_equal(tape_result_count(r), N);
            assert_null(tape_result_next_cursor(r));
            for (size_t i = 1; i < N; i++) {
                assert_true(tape_query_compare(q, tape_result_at(r, i - 1), tape_result_at(r, i)) < 0);
            }
            for (size_t i = 0; i < N; i++) {
                a[i] = tape_entry_id(tape_result_at(r, i));
            }
            /* Every entry exactly once: sorted strictly and N long. */
            snprintf(json, sizeof json, "{\"order_by\":\"%s\",\"descending\":%s,\"limit\":97}",
                     orders[o], desc ? "true" : "false");
            tape_query *ql = parse_ok(json);
            assert_int_equal(collect_pages(b, ql, v, N, 0), N);
            for (size_t i = 0; i < N; i++) {
                assert_string_equal(a[i], b[i]);
            }
            assert_int_equal(collect_pages(b, ql, v, N, 1), N);
            for (size_t i = 0; i < N; i++) {
                assert_string_equal(a[i], b[i]);
            }
            tape_query_free(ql);
            tape_result_free(r);
            tape_query_free(q);
        }
    }
    for (size_t i = 0; i < N; i++) {
        tape_entry_free(v[i]);
    }
    free(v);
    free(a);
    free(b);
}

/* Paging while the store changes between pages: every entry present for
 * the whole walk appears exactly once, in order; nothing is duplicated. */
static void test_paging_while_changing(void **state)
{
    (void)state;
    enum { START = 60, ADDED = 40, CAP = START + ADDED };
    tape_entry *store[CAP];
    int alive[CAP];
    int seen[CAP];
    size_t n = 0;
    unsigned int rng = 12345;
    const char *orders[] = { "created_at", "name", "duration_ms", "id", "updated_at" };
    for (int o = 0; o < 5; o++) {
        for (int desc = 0; desc < 2; desc++) {
            n = 0;
            memset(alive, 0, sizeof alive);
            memset(seen, 0, sizeof seen);
            int removed_ever[CAP] = { 0 };
            for (; n < START; n++) {
                rng = rng * 1103515245u + 12345u;
                char id[16], name[16];
                snprintf(id, sizeof id, "id%03zu", n);
                snprintf(name, sizeof name, "n%u", (rng >> 16) % 7);
                struct spec s = { id, (rng >> 8) % 5 ? name : NULL, NULL, FIN,
                                  (int64_t)((rng >> 16) % 10), (int64_t)((rng >> 12) % 4),
                                  NULL, (int)((rng >> 20) % 3), 5, NULL };
                store[n] = make_entry(&s);
                alive[n] = 1;
            }
            char json[128];
            snprintf(json, sizeof json, "{\"order_by\":\"%s\",\"descending\":%s,\"limit\":7}",
                     orders[o], desc ? "true" : "false");
            tape_query *q = parse_ok(json);
            const tape_entry *prev = NULL;
            tape_entry *prev_ref = NULL;
            for (int page = 0; page < 100; page++) {
                tape_entry *live[CAP];
                size_t nl = 0;
                for (size_t i = 0; i < n; i++) {
                    if (alive[i]) live[nl++] = store[i];
                }
                tape_result *r = NULL;
                assert_int_equal(tape__query_run(&r, q, live, nl, NULL, NULL), TAPE_OK);
                for (size_t i = 0; i < tape_result_count(r); i++) {
                    const tape_entry *e = tape_result_at(r, i);
                    int idx = atoi(tape_entry_id(e) + 2);
                    assert_int_equal(seen[idx], 0);
                    seen[idx] = 1;
                    if (prev != NULL) {
                        assert_true(tape_query_compare(q, prev, e) < 0);
                    }
                    tape_entry_free(prev_ref);
                    prev_ref = tape_entry_ref(e);
                    prev = prev_ref;
                }
                const char *cur = tape_result_next_cursor(r);
                if (cur == NULL) {
                    tape_result_free(r);
                    break;
                }
                tape_query *next = NULL;
                assert_int_equal(tape_query_with_cursor(&next, q, cur), TAPE_OK);
                tape_result_free(r);
                tape_query_free(q);
                q = next;
                /* Between pages: add 4 entries (random keys, some before the
                 * cursor, some after) and remove 2 not yet seen. */
                for (int k = 0; k < 4 && n < CAP; k++, n++) {
                    rng = rng * 1103515245u + 12345u;
                    char id[16], name[16];
                    snprintf(id, sizeof id, "id%03zu", n);
                    snprintf(name, sizeof name, "n%u", (rng >> 16) % 7);
                    struct spec s = { id, name, NULL, FIN, (int64_t)((rng >> 16) % 10),
                                      NONE, NULL, (int)((rng >> 20) % 3), 5, NULL };
                    store[n] = make_entry(&s);
                    alive[n] = 1;
                }
                for (int k = 0, tries = 0; k < 2 && tries < 50; tries++) {
                    rng = rng * 1103515245u + 12345u;
                    size_t i = (rng >> 16) % n;
                    if (alive[i] && !seen[i]) {
                        alive[i] = 0;
                        removed_ever[i] = 1;
                        k++;
                    }
                }
            }
            tape_entry_free(prev_ref);
            tape_query_free(q);
            /* Entries alive from start to end were all seen; removed ones
             * were never seen after removal (they are unseen by design). */
            for (size_t i = 0; i < START; i++) {
                if (!removed_ever[i]) {
                    assert_int_equal(seen[i], 1);
                }
            }
            for (size_t i = 0; i < n; i++) {
                tape_entry_free(store[i]);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_empty),
        cmocka_unit_test(test_parse_all_keys),
        cmocka_unit_test(test_parse_integers),
        cmocka_unit_test(test_parse_iso_time),
        cmocka_unit_test(test_parse_null_is_unset),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_mutations),
        cmocka_unit_test(test_parse_null_args),
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_to_json_roundtrip),
        cmocka_unit_test(test_cursor_garbled),
        cmocka_unit_test(test_cursor_order_mismatch),
        cmocka_unit_test(test_with_cursor_copies),
        cmocka_unit_test(test_result_null_args),
        cmocka_unit_test_setup_teardown(test_match_terms, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_match_text, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_match_null_args, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ordering, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_run_paging, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_run_text, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_run_args, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_result_holds_references),
        cmocka_unit_test_setup_teardown(test_cursor_after, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_cursor_exact_keys),
        cmocka_unit_test(test_paging_while_changing),
        cmocka_unit_test(test_run_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
