/*
 * fuzz_query.c - the query parser on arbitrary bytes, and the same bytes
 * as a paging cursor. Properties: no crash, leak or undefined behaviour;
 * errors are TAPE_E* codes with a message; a parsed query prints as JSON
 * that re-parses to an equal query (every term, as seen through the
 * accessors providers use) and prints the same again; running a query over
 * a fixed set of entries gives a page that matches, is ordered, respects
 * the limit, and whose next cursor resumes without overlap.
 */
#include "fuzz_common.h"

#include "internal.h" /* tape__query_run */

#define N_ENTRIES 12

static tape_entry *entries[N_ENTRIES];

static void make_entries(void)
{
    static const char *const tags[] = { "prod", "staging", "ci", "canary" };
    for (int i = 0; i < N_ENTRIES; i++) {
        char id[16], name[32];
        snprintf(id, sizeof id, "t-%02d", i);
        snprintf(name, sizeof name, "Session %d", i % 5);
        tape *t = NULL;
        if (tape_new(&t, id) != TAPE_OK || tape_set_name(t, name) != TAPE_OK ||
            tape_set_created_at(t, 1755167400000 + (int64_t)(i % 7) * 60000) != TAPE_OK ||
            tape_set_session_id(t, i % 2 ? "s-odd" : "s-even") != TAPE_OK ||
            tape_set_status(t, i % 3 ? TAPE_STATUS_FINALIZED : TAPE_STATUS_RECORDING) !=
                TAPE_OK ||
            tape_add_tag(t, tags[i % 4]) != TAPE_OK ||
            (i % 3 == 0 && tape_add_tag(t, tags[(i + 1) % 4]) != TAPE_OK)) {
            abort();
        }
        for (int k = 0; k < i % 4; k++) {
            tape_frame_desc d = TAPE_FRAME_DESC_INIT;
            d.direction = TAPE_DIR_CLIENT_TO_SERVER;
            d.ts_ms = k * 100;
            d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";
            if (tape_append_frame(NULL, t, &d) != TAPE_OK) {
                abort();
            }
        }
        if (tape_entry_from_tape(&entries[i], t) != TAPE_OK) {
            abort();
        }
        tape_free(t);
    }
}

/* The text term has no frames to look at here: a deterministic stand-in. */
static int text_match(int *out_match, void *ud, const tape_entry *e)
{
    (void)ud;
    *out_match = tape_entry_id(e)[3] % 2 == 0;
    return TAPE_OK;
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_equal(const tape_query *a, const tape_query *b)
{
    for (int k = 0; k < TAPE_Q_KEY_COUNT; k++) {
        FUZZ_CHECK(tape_query_has(a, k) == tape_query_has(b, k), "same keys after a round trip");
        FUZZ_CHECK(str_eq(tape_query_string(a, k), tape_query_string(b, k)),
                   "same strings after a round trip");
        FUZZ_CHECK(tape_query_int(a, k) == tape_query_int(b, k), "same integers after a round trip");
        size_t n = tape_query_list_count(a, k);
        FUZZ_CHECK(n == tape_query_list_count(b, k), "same list lengths after a round trip");
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(str_eq(tape_query_list_at(a, k, i), tape_query_list_at(b, k, i)),
                       "same list items after a round trip");
        }
    }
}

static void round_trip(const tape_query *q)
{
    char *json = NULL;
    FUZZ_CHECK(tape_query_to_json(&json, q) == TAPE_OK, "a parsed query prints");
    tape_query *back = NULL;
    int rc = tape_query_parse(&back, json);
    FUZZ_CHECK(rc == TAPE_OK, "a query's own JSON re-parses");
    check_equal(q, back);
    char *json2 = NULL;
    FUZZ_CHECK(tape_query_to_json(&json2, back) == TAPE_OK, "a re-parsed query prints");
    FUZZ_CHECK(strcmp(json, json2) == 0, "query JSON is stable over a round trip");
    tape_string_free(json2);
    tape_query_free(back);
    tape_string_free(json);
}

/* Run q over the fixed entries; follow next cursors for a few pages. */
static void run(const tape_query *q)
{
    tape_query *owned = NULL;
    for (int page = 0; page < 4; page++) {
        tape_result *r = NULL;
        int rc = tape__query_run(&r, q, entries, N_ENTRIES, text_match, NULL);
        if (rc != TAPE_OK) {
            fuzz_check_error(rc); /* e.g. a cursor that does not decode */
            break;
        }
        size_t n = tape_result_count(r);
        if (tape_query_has(q, TAPE_Q_LIMIT)) {
            FUZZ_CHECK((int64_t)n <= tape_query_int(q, TAPE_Q_LIMIT) || tape_query_int(q, TAPE_Q_LIMIT) <= 0,
                       "a page respects the limit");
        }
        for (size_t i = 0; i < n; i++) {
            const tape_entry *e = tape_result_at(r, i);
            FUZZ_CHECK(tape_query_match_entry(q, e) == 1, "every result matches the query");
            FUZZ_CHECK(tape_query_after_cursor(q, e) == 1, "every result comes after the cursor");
            if (i > 0) {
                FUZZ_CHECK(tape_query_compare(q, tape_result_at(r, i - 1), e) < 0,
                           "results are strictly ordered");
            }
        }
        const char *next = tape_result_next_cursor(r);
        tape_query *q2 = NULL;
        if (next != NULL) {
            FUZZ_CHECK(n > 0, "a next cursor follows a non-empty page");
            FUZZ_CHECK(tape_query_with_cursor(&q2, q, next) == TAPE_OK,
                       "the core's own cursor is accepted");
            FUZZ_CHECK(tape_query_after_cursor(q2, tape_result_at(r, n - 1)) == 0,
                       "the next page starts after this one");
        }
        tape_result_free(r);
        tape_query_free(owned);
        owned = q2;
        q = q2;
        if (q == NULL) {
            break;
        }
    }
    tape_query_free(owned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (entries[0] == NULL) {
        make_entries();
    }
    char *s = fuzz_cstr(data, size);

    tape_query *q = NULL;
    int rc = tape_query_parse(&q, s);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(q != NULL, "a query on success");
        round_trip(q);
        run(q);
        tape_query_free(q);
    } else {
        FUZZ_CHECK(rc == TAPE_EQUERY, "a bad query is TAPE_EQUERY");
        fuzz_check_error(rc);
        FUZZ_CHECK(q == NULL, "no query on failure");
    }

    /* The input as a cursor of a typical query. */
    static tape_query *base;
    if (base == NULL &&
        tape_query_parse(&base, "{\"tags_any\":[\"prod\",\"ci\"],\"order_by\":\"name\","
                                "\"descending\":true,\"limit\":3}") != TAPE_OK) {
        fprintf(stderr, "fuzz_query: base query rejected: %s\n", tape_errmsg());
        abort();
    }
    tape_query *qc = NULL;
    rc = tape_query_with_cursor(&qc, base, s);
    if (rc == TAPE_OK) {
        if (s[0] != '\0') {
            FUZZ_CHECK(str_eq(tape_query_string(qc, TAPE_Q_CURSOR), s),
                       "the cursor is kept as given");
        }
        round_trip(qc);
        run(qc);
        tape_query_free(qc);
    } else {
        fuzz_check_error(rc);
        FUZZ_CHECK(qc == NULL, "no query on failure");
    }
    free(s);
    return 0;
}
