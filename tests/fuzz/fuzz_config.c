/*
 * fuzz_config.c - config parsing on arbitrary bytes: tape_config_parse,
 * tape_config_parse_spec and the typed getters providers use. Properties:
 * no crash, leak or undefined behaviour (UBSan catches an out-of-range
 * double-to-integer conversion in get_int); errors are TAPE_E* codes with
 * a message; getters answer TAPE_OK or TAPE_ECONFIG; a config re-parses
 * from its own JSON to the same JSON; a spec names a valid provider.
 */
#include "fuzz_common.h"

#include "internal.h" /* tape__provider_name_valid */

static void check_getter_rc(int rc)
{
    FUZZ_CHECK(rc == TAPE_OK || rc == TAPE_ECONFIG, "a getter answers OK or ECONFIG");
    if (rc != TAPE_OK) {
        fuzz_check_error(rc);
    }
}

/* Every getter on one key: present or not, of any type. */
static void probe_key(const tape_config *c, const char *key)
{
    const char *s = NULL;
    int rc = tape_config_get_string(&s, c, key, "default");
    check_getter_rc(rc);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(s != NULL, "get_string with a default gives a string");
    }
    int64_t i = 0;
    check_getter_rc(tape_config_get_int(&i, c, key, 42));
    int b = 0;
    rc = tape_config_get_bool(&b, c, key, 1);
    check_getter_rc(rc);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(b == 0 || b == 1, "get_bool gives 0 or 1");
    }
    char *json = NULL;
    rc = tape_config_get_json(&json, c, key);
    FUZZ_CHECK(rc == TAPE_OK, "get_json never fails on a valid config");
    FUZZ_CHECK((json != NULL) == (tape_config_has(c, key) == 1), "get_json gives text iff has");
    tape_string_free(json);
}

/* The first "quoted" string of the input as a key, so getters also meet
 * keys that are present (with whatever type the fuzzer put there). */
static char *first_key(const char *s)
{
    const char *q = strchr(s, '"');
    if (q == NULL) {
        return NULL;
    }
    const char *end = strchr(q + 1, '"');
    if (end == NULL) {
        return NULL;
    }
    size_t n = (size_t)(end - q - 1);
    char *key = malloc(n + 1);
    if (key == NULL) {
        abort();
    }
    memcpy(key, q + 1, n);
    key[n] = '\0';
    return key;
}

static void exercise(const tape_config *c, const char *key)
{
    static const char *const allowed[] = { "path", "max_tapes", "max_bytes", NULL };
    int rc = tape_config_check_keys(c, allowed);
    FUZZ_CHECK(rc == TAPE_OK || rc == TAPE_ECONFIG, "check_keys answers OK or ECONFIG");
    if (rc != TAPE_OK) {
        fuzz_check_error(rc);
    }
    probe_key(c, "path");
    probe_key(c, "max_tapes");
    probe_key(c, "fsync");
    if (key != NULL) {
        probe_key(c, key);
    }

    char *json = NULL;
    FUZZ_CHECK(tape_config_to_json(&json, c) == TAPE_OK, "a config prints");
    tape_config *back = NULL;
    FUZZ_CHECK(tape_config_parse(&back, json) == TAPE_OK, "a config's JSON re-parses");
    char *json2 = NULL;
    FUZZ_CHECK(tape_config_to_json(&json2, back) == TAPE_OK, "a re-parsed config prints");
    FUZZ_CHECK(strcmp(json, json2) == 0, "config JSON is stable over a round trip");
    tape_string_free(json2);
    tape_config_free(back);
    tape_string_free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char *key = first_key(s);

    tape_config *c = NULL;
    int rc = tape_config_parse(&c, s);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(c != NULL, "a config on success");
        exercise(c, key);
        tape_config_free(c);
    } else {
        FUZZ_CHECK(rc == TAPE_ECONFIG, "a bad config is TAPE_ECONFIG");
        fuzz_check_error(rc);
        FUZZ_CHECK(c == NULL, "no config on failure");
    }

    char *provider = NULL;
    c = NULL;
    rc = tape_config_parse_spec(&provider, &c, s);
    if (rc == TAPE_OK) {
        FUZZ_CHECK(provider != NULL && c != NULL, "a spec gives a provider and a config");
        FUZZ_CHECK(tape__provider_name_valid(provider), "a spec names a valid provider");
        exercise(c, key);
    } else {
        fuzz_check_error(rc);
        FUZZ_CHECK(provider == NULL && c == NULL, "nothing on failure");
    }
    tape_string_free(provider);
    tape_config_free(c);
    free(key);
    free(s);
    return 0;
}
