/*
 * record_demo.c - tape-record-demo: what an MCP proxy does with tapestore.
 *
 * It opens a store, records a short MCP session frame by frame the way a
 * proxy sees it go by (initialize, tools/list, a tools/call that fails,
 * notifications), pairs requests with responses, finishes the tape, then
 * queries the store and prints what it finds. Run with --help for usage.
 */
#include <tapestore/tapestore.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: tape-record-demo [STORE_SPEC]\n"
    "\n"
    "Records a small MCP session into a store, then queries the store.\n"
    "\n"
    "STORE_SPEC  where to store tapes, PROVIDER:[PATH|{json}], e.g.\n"
    "            memory:   filesystem:./tapes   memory:{\"max_tapes\": 10}\n"
    "            Without it, $TAPESTORE_STORE is used; if that is unset or\n"
    "            empty, filesystem:./tapes.\n"
    "\n"
    "Exit status: 0 on success, 1 when a tapestore call fails (the error\n"
    "is printed), 2 on a usage error.\n";

/* The session as the proxy sees it: who sent what, when (ms after the
 * tape started), and the JSON-RPC id it belongs to. */
static const struct {
    int dir;
    int64_t ts;
    const char *corr;
    const char *msg;
} session[] = {
    { TAPE_DIR_CLIENT_TO_SERVER, 0, "1",
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
      "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"demo-client\","
      "\"version\":\"1.0\"}}}" },
    { TAPE_DIR_SERVER_TO_CLIENT, 14, "1",
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-06-18\","
      "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"demo-server\","
      "\"version\":\"1.0\"}}}" },
    { TAPE_DIR_CLIENT_TO_SERVER, 15, NULL,
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}" },
    { TAPE_DIR_CLIENT_TO_SERVER, 20, "2", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}" },
    { TAPE_DIR_SERVER_TO_CLIENT, 31, "2",
      "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"echo\",\"description\":"
      "\"Echo the input\",\"inputSchema\":{\"type\":\"object\"}}]}}" },
    { TAPE_DIR_CLIENT_TO_SERVER, 40, "3",
      "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"fetch\","
      "\"arguments\":{\"url\":\"https://example.invalid/\"}}}" },
    { TAPE_DIR_SERVER_TO_CLIENT, 95, NULL,
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":"
      "\"warning\",\"data\":\"tool fetch is not available\"}}" },
    { TAPE_DIR_SERVER_TO_CLIENT, 97, "3",
      "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"Unknown tool: "
      "fetch\"}}" },
};
#define SESSION_FRAMES (sizeof session / sizeof session[0])

static int fail(const char *what, int rc)
{
    fprintf(stderr, "tape-record-demo: %s: %s: %s\n", what, tape_strerror(rc), tape_errmsg());
    return 1;
}

/* The library never prints; its warnings reach us through this hook. */
static void log_to_stderr(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level >= TAPE_LOG_WARN) {
        fprintf(stderr, "tapestore: %s\n", msg);
    }
}

/* The header: id (a fresh UUID) and metadata; frames come through the writer. */
static int make_header(tape **out)
{
    tape *t = NULL;
    int rc = tape_new(&t, NULL);
    if (rc == TAPE_OK) rc = tape_set_name(t, "demo: initialize, tools/list, failing tools/call");
    if (rc == TAPE_OK) rc = tape_set_session_id(t, "demo-session-1");
    if (rc == TAPE_OK) rc = tape_set_protocol_version(t, "2025-06-18");
    if (rc == TAPE_OK) rc = tape_set_transport_json(t, "{\"type\":\"stdio\",\"command\":\"demo-server\"}");
    if (rc == TAPE_OK) rc = tape_add_tag(t, "demo");
    if (rc == TAPE_OK) rc = tape_add_tag(t, "mcp");
    if (rc != TAPE_OK) {
        tape_free(t);
        return rc;
    }
    *out = t;
    return TAPE_OK;
}

/* Append the session, then pair each request with its response. */
static int record(tape_writer *w)
{
    uint64_t seq[SESSION_FRAMES];
    for (size_t i = 0; i < SESSION_FRAMES; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = session[i].dir;
        d.ts_ms = session[i].ts;
        d.message = session[i].msg;
        d.correlation_id = session[i].corr;
        int rc = tape_writer_append(&seq[i], w, &d);
        if (rc != TAPE_OK) {
            return fail("appending a frame", rc);
        }
    }
    static const struct { const char *id; size_t req, resp; const char *status; } pairs[] = {
        { "1", 0, 1, "success" }, { "2", 3, 4, "success" }, { "3", 5, 7, "error" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int64_t rtt = session[pairs[i].resp].ts - session[pairs[i].req].ts;
        int rc = tape_writer_add_correlation(w, pairs[i].id, seq[pairs[i].req],
                                             seq[pairs[i].resp], rtt, pairs[i].status);
        if (rc != TAPE_OK) {
            return fail("adding a correlation", rc);
        }
    }
    int rc = tape_writer_finish(w);
    return rc != TAPE_OK ? fail("finishing the tape", rc) : 0;
}

static int print_results(tape_store *s)
{
    tape_query *q = NULL;
    tape_result *r = NULL;
    int rc = tape_query_parse(&q, "{\"tags_any\": [\"demo\"], \"status\": \"finalized\", "
                                  "\"order_by\": \"created_at\", \"descending\": true, "
                                  "\"limit\": 10}");
    if (rc != TAPE_OK) {
        return fail("parsing the query", rc);
    }
    rc = tape_store_query(&r, s, q);
    tape_query_free(q);
    if (rc != TAPE_OK) {
        return fail("querying the store", rc);
    }
    printf("finalized tapes tagged demo: %zu%s\n", tape_result_count(r),
           tape_result_next_cursor(r) != NULL ? " (more on the next page)" : "");
    for (size_t i = 0; i < tape_result_count(r); i++) {
        const tape_entry *e = tape_result_at(r, i);
        tape_stats st = TAPE_STATS_INIT;
        rc = tape_entry_get_stats(&st, e);
        if (rc != TAPE_OK) {
            tape_result_free(r);
            return fail("reading an entry's stats", rc);
        }
        printf("  %s  \"%s\"  %" PRIu64 " frames, %" PRIu64 " errors, %" PRId64 " ms\n",
               tape_entry_id(e), tape_entry_name(e) != NULL ? tape_entry_name(e) : "",
               st.frame_count, st.error_count, st.duration_ms);
    }
    tape_result_free(r);
    return 0;
}

static int print_tape(tape_store *s, const char *id)
{
    tape *t = NULL;
    int rc = tape_store_load(&t, s, id);
    if (rc != TAPE_OK) {
        return fail("loading the tape", rc);
    }
    tape_stats st = TAPE_STATS_INIT;
    rc = tape_get_stats(&st, t);
    tape_free(t);
    if (rc != TAPE_OK) {
        return fail("computing the tape's stats", rc);
    }
    printf("tape %s\n", id);
    printf("  stats: frames=%" PRIu64 " client_to_server=%" PRIu64 " server_to_client=%" PRIu64
           " errors=%" PRIu64 " correlations=%" PRIu64 " duration_ms=%" PRId64 " bytes=%" PRIu64
           "\n",
           st.frame_count, st.client_to_server, st.server_to_client, st.error_count,
           st.correlation_count, st.duration_ms, st.file_size_bytes);
    /* Stream the frames back, as a replayer would. */
    tape_frame_iter *it = NULL;
    rc = tape_store_read_frames(&it, s, id, 0, UINT64_MAX);
    if (rc != TAPE_OK) {
        return fail("reading frames", rc);
    }
    const tape_frame *f = NULL;
    while ((rc = tape_frame_iter_next(&f, it)) == TAPE_OK) {
        printf("  #%" PRIu64 " %+5" PRId64 " ms %s %s%s\n", tape_frame_seq(f), tape_frame_ts(f),
               tape_frame_direction(f) == TAPE_DIR_CLIENT_TO_SERVER ? "->" : "<-",
               tape_frame_message(f, NULL), tape_frame_is_error(f) ? "  [error]" : "");
    }
    tape_frame_iter_free(it);
    return rc == TAPE_DONE ? 0 : fail("reading frames", rc);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fputs(usage, stderr);
        return 2;
    }
    tape_log_set(log_to_stderr, NULL);

    tape_store *s = NULL;
    int rc = argc == 2 ? tape_store_open_spec(&s, NULL, argv[1], TAPE_OPEN_EAGER)
                       : tape_store_open_env(&s, NULL, TAPE_OPEN_EAGER);
    if (rc != TAPE_OK) {
        return fail("opening the store", rc);
    }
    printf("store: provider %s\n", tape_store_provider(s));

    tape *header = NULL;
    tape_writer *w = NULL;
    int status = 0;
    rc = make_header(&header);
    if (rc != TAPE_OK) {
        status = fail("building the tape header", rc);
    } else if ((rc = tape_store_record(&w, s, header)) != TAPE_OK) {
        status = fail("starting the recording", rc);
    } else {
        printf("recording tape %s\n", tape_writer_id(w));
        status = record(w);
    }
    if (status == 0) status = print_results(s);
    if (status == 0) status = print_tape(s, tape_id(header));

    tape_writer_free(w);
    tape_free(header);
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    if (status == 0 && (rc = tape_store_stats_get(&st, s)) != TAPE_OK) {
        status = fail("reading the store's stats", rc);
    } else if (status == 0) {
        printf("store: %" PRIu64 " tapes, %" PRIu64 " frames, %" PRIu64 " bytes\n", st.tape_count,
               st.frame_count, st.total_bytes);
    }
    /* close reports a failed flush; free would only log it. */
    rc = tape_store_close(s);
    if (rc != TAPE_OK && status == 0) {
        status = fail("closing the store", rc);
    }
    return status;
}
