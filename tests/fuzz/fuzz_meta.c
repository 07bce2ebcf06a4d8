/*
 * fuzz_meta.c - the .meta.json decoder on arbitrary bytes, alone
 * (tape_entry_from_meta, used by listings) and as the companion of a valid
 * .jsonl (tape_decode). Properties: no crash, leak or undefined behaviour;
 * errors are TAPE_E* codes with a message; an accepted entry has a valid
 * id (it names files), sane accessors, and its meta document decodes back
 * to an entry with the same document; a decoded tape's meta re-decodes.
 */
#include "fuzz_common.h"

static const char jsonl[] =
    "{\"type\":\"init\",\"version\":\"2.0\",\"tape_id\":\"fuzz-meta-1\",\"session_id\":\"s-1\","
    "\"created_at\":\"2025-08-14T10:30:00.000Z\",\"protocol_version\":\"2025-06-18\"}\n"
    "{\"type\":\"frame\",\"seq\":0,\"ts\":0,\"dir\":\"client_to_server\",\"env\":{\"message\":"
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}}\n"
    "{\"type\":\"frame\",\"seq\":1,\"ts\":12,\"dir\":\"server_to_client\",\"env\":{\"message\":"
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}}}\n";

static void check_entry(const tape_entry *e)
{
    FUZZ_CHECK(tape_id_validate(tape_entry_id(e)) == TAPE_OK,
               "an entry from meta has a valid tape id");
    int status = tape_entry_status(e);
    FUZZ_CHECK(status == TAPE_STATUS_RECORDING || status == TAPE_STATUS_FINALIZED,
               "status is one of TAPE_STATUS_*");
    (void)tape_entry_name(e);
    (void)tape_entry_description(e);
    (void)tape_entry_session_id(e);
    (void)tape_entry_created_at(e);
    (void)tape_entry_updated_at(e);
    size_t n = tape_entry_tag_count(e);
    for (size_t i = 0; i < n; i++) {
        const char *tag = tape_entry_tag_at(e, i);
        FUZZ_CHECK(tag != NULL && tag[0] != '\0', "tags are non-empty strings");
        FUZZ_CHECK(tape_entry_has_tag(e, tag) == 1, "has_tag finds a listed tag");
    }
    FUZZ_CHECK(tape_entry_tag_at(e, n) == NULL, "tag_at past the end is NULL");
    tape_stats st = TAPE_STATS_INIT;
    FUZZ_CHECK(tape_entry_get_stats(&st, e) == TAPE_OK, "entry stats");

    char *doc = NULL;
    size_t len = 0;
    FUZZ_CHECK(tape_entry_meta_json(&doc, &len, e) == TAPE_OK, "an entry encodes as meta");
    tape_entry *back = NULL;
    int rc = tape_entry_from_meta(&back, doc, len);
    FUZZ_CHECK(rc == TAPE_OK, "an entry's meta document decodes");
    FUZZ_CHECK(strcmp(tape_entry_id(back), tape_entry_id(e)) == 0, "meta round trip keeps the id");
    FUZZ_CHECK(tape_entry_tag_count(back) == n, "meta round trip keeps the tags");
    FUZZ_CHECK(tape_entry_created_at(back) == tape_entry_created_at(e),
               "meta round trip keeps created_at");
    char *doc2 = NULL;
    size_t len2 = 0;
    FUZZ_CHECK(tape_entry_meta_json(&doc2, &len2, back) == TAPE_OK, "re-encode");
    FUZZ_CHECK(len2 == len && memcmp(doc, doc2, len) == 0, "meta encoding is stable");
    tape_string_free(doc2);
    tape_entry_free(back);
    tape_string_free(doc);

    tape_entry *ref = tape_entry_ref((tape_entry *)e);
    FUZZ_CHECK(ref == e, "ref returns the same entry");
    tape_entry_free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tape_entry *e = NULL;
    int rc = tape_entry_from_meta(&e, (const char *)data, size);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(e != NULL, "an entry on success");
        check_entry(e);
        tape_entry_free(e);
    } else {
        fuzz_check_error(rc);
        FUZZ_CHECK(e == NULL, "no entry on failure");
    }

    tape *t = NULL;
    rc = tape_decode(&t, jsonl, sizeof jsonl - 1, (const char *)data, size, NULL, NULL);
    if (rc != TAPE_OK) {
        fuzz_check_error(rc);
        FUZZ_CHECK(t == NULL, "no tape on failure");
        return 0;
    }
    FUZZ_CHECK(tape_frame_count(t) == 2, "meta does not change the frames");
    char *meta = NULL;
    size_t mlen = 0;
    FUZZ_CHECK(tape_encode_meta(&meta, &mlen, t) == TAPE_OK, "a decoded tape encodes its meta");
    tape *back = NULL;
    rc = tape_decode(&back, jsonl, sizeof jsonl - 1, meta, mlen, NULL, NULL);
    FUZZ_CHECK(rc == TAPE_OK, "a tape's own meta decodes with its jsonl");
    tape_entry *from_tape = NULL;
    FUZZ_CHECK(tape_entry_from_tape(&from_tape, back) == TAPE_OK, "entry from a decoded tape");
    check_entry(from_tape);
    tape_entry_free(from_tape);
    tape_free(back);
    tape_string_free(meta);
    tape_free(t);
    return 0;
}
