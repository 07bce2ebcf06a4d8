/*
 * fuzz_line.c - the tape line parser and the .jsonl decoder on arbitrary
 * bytes. Properties: no crash, leak or undefined behaviour; errors are
 * TAPE_E* codes with a message; a parsed frame is self-consistent and
 * clones identically; a decoded tape (strict or recovery mode, default or
 * tiny line limit) re-encodes to a document that decodes strictly and
 * re-encodes to the same bytes.
 */
#include "fuzz_common.h"

static void check_frame(const tape_frame *f)
{
    int dir = tape_frame_direction(f);
    FUZZ_CHECK(dir == TAPE_DIR_CLIENT_TO_SERVER || dir == TAPE_DIR_SERVER_TO_CLIENT,
               "frame direction is one of TAPE_DIR_*");
    size_t mlen = 0, llen = 0;
    const char *msg = tape_frame_message(f, &mlen);
    FUZZ_CHECK(msg != NULL && strlen(msg) == mlen, "message is a NUL-terminated string of its length");
    const char *line = tape_frame_line(f, &llen);
    FUZZ_CHECK(line != NULL && strlen(line) == llen, "line is a NUL-terminated string of its length");
    FUZZ_CHECK(memchr(line, '\n', llen) == NULL, "a frame line holds no newline");
    int err = tape_frame_is_error(f);
    int rc_over;
    FUZZ_CHECK(err == 0 || err == 1, "is_error is 0 or 1");
    (void)tape_frame_seq(f);
    (void)tape_frame_ts(f);
    (void)tape_frame_correlation_id(f);
    unsigned int flags = tape_frame_flags(f);
    FUZZ_CHECK((flags & ~(TAPE_FRAME_INVALID_JSON | TAPE_FRAME_OVERSIZE)) == 0,
               "frame flags hold only known bits");
    size_t rlen = 0;
    const char *raw = tape_frame_raw(f, &rlen);
    FUZZ_CHECK(raw != NULL, "a frame has raw bytes");
    if (flags != 0) {
        FUZZ_CHECK(mlen >= 2 && msg[0] == '"' && msg[mlen - 1] == '"',
                   "a flagged frame's message is a JSON string");
        FUZZ_CHECK(err == 0, "a flagged frame is never an error frame");
    }
    uint64_t olen = 0;
    const char *digest = NULL;
    rc_over = tape_frame_oversize_info(&olen, &digest, f);
    FUZZ_CHECK((rc_over == TAPE_OK) == ((flags & TAPE_FRAME_OVERSIZE) != 0),
               "oversize info exactly for oversize frames");
    if (rc_over == TAPE_OK) {
        FUZZ_CHECK(digest != NULL && strlen(digest) == 64, "an oversize digest is 64 hex digits");
    }

    tape_frame *copy = NULL;
    int rc = tape_frame_clone(&copy, f);
    if (rc != TAPE_OK) {
        fuzz_check_error(rc);
        return;
    }
    size_t clen = 0;
    const char *cline = tape_frame_line(copy, &clen);
    FUZZ_CHECK(clen == llen && memcmp(cline, line, llen) == 0, "a clone has the same line");
    FUZZ_CHECK(tape_frame_seq(copy) == tape_frame_seq(f), "a clone has the same seq");
    FUZZ_CHECK(tape_frame_flags(copy) == flags, "a clone has the same flags");
    size_t crlen = 0;
    const char *craw = tape_frame_raw(copy, &crlen);
    FUZZ_CHECK(craw != NULL && crlen == rlen && memcmp(craw, raw, rlen) == 0,
               "a clone has the same raw bytes");
    tape_frame_free(copy);
}

static void check_tape(const tape *t)
{
    tape_stats st = TAPE_STATS_INIT;
    FUZZ_CHECK(tape_get_stats(&st, t) == TAPE_OK, "stats of a decoded tape");
    FUZZ_CHECK(st.frame_count == tape_frame_count(t), "stats count every frame");
    FUZZ_CHECK(tape_id_validate(tape_id(t)) == TAPE_OK, "a decoded tape has a valid id");
    for (size_t i = 0; i < tape_frame_count(t); i++) {
        check_frame(tape_frame_at(t, i));
    }

    char *doc = NULL;
    size_t len = 0;
    int rc = tape_encode_jsonl(&doc, &len, t);
    FUZZ_CHECK(rc == TAPE_OK, "a decoded tape encodes");
    tape *back = NULL;
    rc = tape_decode(&back, doc, len, NULL, 0, NULL, NULL);
    FUZZ_CHECK(rc == TAPE_OK, "an encoded tape decodes strictly");
    FUZZ_CHECK(tape_frame_count(back) == tape_frame_count(t), "round trip keeps every frame");
    char *doc2 = NULL;
    size_t len2 = 0;
    rc = tape_encode_jsonl(&doc2, &len2, back);
    FUZZ_CHECK(rc == TAPE_OK, "a re-decoded tape encodes");
    FUZZ_CHECK(len2 == len && memcmp(doc, doc2, len) == 0, "encoding is stable over a round trip");
    tape_string_free(doc2);

    /* With its meta document too. */
    char *meta = NULL;
    size_t mlen = 0;
    rc = tape_encode_meta(&meta, &mlen, t);
    FUZZ_CHECK(rc == TAPE_OK, "a decoded tape encodes its meta");
    tape *with_meta = NULL;
    rc = tape_decode(&with_meta, doc, len, meta, mlen, NULL, NULL);
    FUZZ_CHECK(rc == TAPE_OK, "jsonl + meta of a tape decode");
    FUZZ_CHECK(strcmp(tape_id(with_meta), tape_id(t)) == 0, "meta round trip keeps the id");
    tape_free(with_meta);
    tape_string_free(meta);
    tape_free(back);
    tape_string_free(doc);
}

static void decode(const uint8_t *data, size_t size, int mode, size_t max_line)
{
    tape_decode_options o = TAPE_DECODE_OPTIONS_INIT;
    o.mode = mode;
    o.max_line_bytes = max_line;
    tape_decode_report rep = TAPE_DECODE_REPORT_INIT;
    tape *t = NULL;
    int rc = tape_decode(&t, (const char *)data, size, NULL, 0, &o, &rep);
    if (rc != TAPE_OK) {
        fuzz_check_error(rc);
        FUZZ_CHECK(t == NULL, "no tape on failure");
        return;
    }
    FUZZ_CHECK(t != NULL, "a tape on success");
    FUZZ_CHECK(rep.torn_tail == 0 || rep.torn_tail == 1, "torn_tail is 0 or 1");
    if (mode == TAPE_DECODE_STRICT) {
        FUZZ_CHECK(rep.skipped_lines == 0, "strict mode skips no line");
    }
    FUZZ_CHECK((rep.skipped_lines == 0) == (rep.first_bad_line == 0),
               "first_bad_line is set exactly when lines were skipped");
    check_tape(t);
    tape_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One line: the parser gets exactly `size` bytes (no NUL after them),
     * so ASan sees any read past the end. */
    int type = 0;
    tape_frame *f = NULL;
    int rc = tape_line_parse(&type, &f, (const char *)data, size);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(type >= TAPE_LINE_INIT && type <= TAPE_LINE_UNKNOWN, "line type is known");
        FUZZ_CHECK((type == TAPE_LINE_FRAME) == (f != NULL), "a frame exactly for frame lines");
        if (f != NULL) {
            check_frame(f);
        }
        int type2 = 0;
        FUZZ_CHECK(tape_line_parse(&type2, NULL, (const char *)data, size) == TAPE_OK,
                   "classifying a parsable line succeeds");
        FUZZ_CHECK(type2 == type, "classify-only gives the same type");
    } else {
        fuzz_check_error(rc);
        FUZZ_CHECK(f == NULL, "no frame on failure");
    }
    tape_frame_free(f);

    /* The whole input as a document; sometimes with a line limit small
     * enough that ordinary lines hit it. */
    size_t max_line = size % 3 == 0 ? 48 + size % 200 : 0;
    decode(data, size, TAPE_DECODE_STRICT, max_line);
    decode(data, size, TAPE_DECODE_RECOVER, max_line);
    return 0;
}
