/*
 * fuzz_jscan.c - the writer's JSON check (core/jscan.c) against cJSON, the
 * parser the reader uses, on arbitrary bytes. Properties: no crash or
 * undefined behaviour; everything the scanner accepts, cJSON parses as one
 * value (so every message we write loads again), and the facts it reports
 * (object or not, outermost error/method/id) are cJSON's (names: when the
 * text has no \u0000 escape, which cJSON cuts strings at); a refusal is
 * TAPE_EINVAL with a message naming a byte within the input; appending the
 * text as a frame message succeeds exactly when the scanner accepts it.
 */
#include "fuzz_common.h"

#include "codec_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    tape__jscan scan;
    int rc = tape__json_scan(&scan, s, size, "fuzz input");
    FUZZ_CHECK(rc == TAPE_OK || rc == TAPE_EINVAL, "the scanner says yes or TAPE_EINVAL");
    if (rc == TAPE_OK) {
        cJSON *v = memchr(s, '\0', size) == NULL ? tape__json_parse(s, size) : NULL;
        FUZZ_CHECK(v != NULL, "what the writer accepts, the reader parses");
        FUZZ_CHECK(scan.is_object == cJSON_IsObject(v), "object-ness agrees with cJSON");
        /* cJSON ends a string at \u0000, so a name "method\u0000x" is
         * "method" there and not for the scanner (nor for JSON): the names
         * agree only without such escapes (the reader's fast path declines
         * lines with them for the same reason). */
        if (cJSON_IsObject(v) && !tape__json_has_nul_escape(s, size)) {
            FUZZ_CHECK(scan.has_error == (tape__member(v, "error") != NULL), "error member agrees");
            FUZZ_CHECK(scan.has_method == (tape__member(v, "method") != NULL), "method agrees");
            FUZZ_CHECK(scan.has_id == (tape__member(v, "id") != NULL), "id member agrees");
        }
        cJSON_Delete(v);
    } else {
        FUZZ_CHECK(strstr(tape_errmsg(), "fuzz input is not valid JSON") != NULL,
                   "a refusal names what was checked");
    }
    /* The append path: the same verdict (NUL bytes and surrounding blanks
     * are the frame builder's own business; blanks only, none refused). */
    tape *t = NULL;
    FUZZ_CHECK(tape_new(&t, "fuzz-jscan") == TAPE_OK, "tape_new");
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = size ? s : "";
    d.message_len = size;
    int arc = size ? tape_append_frame(NULL, t, &d) : TAPE_EINVAL;
    if (memchr(s, '\0', size) == NULL && size > 0) {
        FUZZ_CHECK((arc == TAPE_OK) == (rc == TAPE_OK) || arc == TAPE_ELIMIT,
                   "append accepts exactly what the scanner accepts");
    }
    tape_free(t);
    return 0;
}
