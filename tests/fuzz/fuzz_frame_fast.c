/*
 * fuzz_frame_fast.c - the reader's fast path for frame lines
 * (tape__frame_parse_fast, core/frame.c) against the cJSON path it stands
 * in for. Properties: no crash or undefined behaviour; the fast path
 * answers TAPE_OK or TAPE__DECLINE (never an error of its own on valid
 * memory); and every line it takes, cJSON parses as a frame line from
 * which tape__frame_parse makes the same frame: seq, ts, direction,
 * is_error, flags, message bytes, correlation id and line.
 */
#include "fuzz_common.h"

#include "codec_internal.h"

static int same_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    tape_frame *fast = NULL;
    int rc = tape__frame_parse_fast(&fast, line, size, NULL);
    FUZZ_CHECK(rc == TAPE_OK || rc == TAPE__DECLINE, "the fast path takes or declines");
    FUZZ_CHECK((rc == TAPE_OK) == (fast != NULL), "a frame exactly when it takes the line");
    if (rc != TAPE_OK) {
        return 0;
    }
    cJSON *root = memchr(line, '\0', size) == NULL ? tape__json_parse(line, size) : NULL;
    FUZZ_CHECK(root != NULL && cJSON_IsObject(root), "cJSON parses what the fast path takes");
    const cJSON *type = tape__member(root, "type");
    FUZZ_CHECK(cJSON_IsString(type) && strcmp(type->valuestring, "frame") == 0,
               "cJSON sees a frame line");
    tape_frame *slow = NULL;
    FUZZ_CHECK(tape__frame_parse(&slow, root, line, size, NULL) == TAPE_OK,
               "the tree path takes it too");
    FUZZ_CHECK(tape_frame_seq(fast) == tape_frame_seq(slow), "seq");
    FUZZ_CHECK(tape_frame_ts(fast) == tape_frame_ts(slow), "ts");
    FUZZ_CHECK(tape_frame_direction(fast) == tape_frame_direction(slow), "direction");
    FUZZ_CHECK(tape_frame_is_error(fast) == tape_frame_is_error(slow), "is_error");
    FUZZ_CHECK(tape_frame_flags(fast) == tape_frame_flags(slow), "flags");
    size_t fn, sn;
    const char *fm = tape_frame_message(fast, &fn), *sm = tape_frame_message(slow, &sn);
    FUZZ_CHECK(same_bytes(fm, fn, sm, sn), "message bytes");
    fm = tape_frame_line(fast, &fn);
    sm = tape_frame_line(slow, &sn);
    FUZZ_CHECK(same_bytes(fm, fn, sm, sn), "line bytes");
    const char *fc = tape_frame_correlation_id(fast), *sc = tape_frame_correlation_id(slow);
    FUZZ_CHECK((fc == NULL) == (sc == NULL) && (fc == NULL || strcmp(fc, sc) == 0),
               "correlation id");
    tape_frame_free(fast);
    tape_frame_free(slow);
    cJSON_Delete(root);
    return 0;
}
