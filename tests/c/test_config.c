/* Config objects, typed accessors and one-string specs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tapestore/provider.h"

static void assert_error(int rc, int code, const char *needle)
{
    assert_int_equal(rc, code);
    assert_int_equal(tape_errcode(), code);
    if (strstr(tape_errmsg(), needle) == NULL) {
        fail_msg("message \"%s\" does not mention \"%s\"", tape_errmsg(), needle);
    }
}

static void test_parse_and_getters(void **state)
{
    (void)state;
    tape_config *c = NULL;
    assert_int_equal(tape_config_parse(&c, "{\"path\":\"/tmp/x\",\"n\":42,\"flag\":true,"
                                           "\"nul\":null,\"obj\":{\"a\":[1,2]}}"),
                     TAPE_OK);
    const char *s = NULL;
    assert_int_equal(tape_config_get_string(&s, c, "path", "dflt"), TAPE_OK);
    assert_string_equal(s, "/tmp/x");
    assert_int_equal(tape_config_get_string(&s, c, "missing", "dflt"), TAPE_OK);
    assert_string_equal(s, "dflt");
    assert_int_equal(tape_config_get_string(&s, c, "nul", "dflt"), TAPE_OK);
    assert_string_equal(s, "dflt");
    int64_t n = 0;
    assert_int_equal(tape_config_get_int(&n, c, "n", 7), TAPE_OK);
    assert_int_equal(n, 42);
    assert_int_equal(tape_config_get_int(&n, c, "missing", 7), TAPE_OK);
    assert_int_equal(n, 7);
    int b = 0;
    assert_int_equal(tape_config_get_bool(&b, c, "flag", 0), TAPE_OK);
    assert_int_equal(b, 1);
    char *json = NULL;
    assert_int_equal(tape_config_get_json(&json, c, "obj"), TAPE_OK);
    assert_string_equal(json, "{\"a\":[1,2]}");
    tape_string_free(json);
    assert_int_equal(tape_config_get_json(&json, c, "missing"), TAPE_OK);
    assert_null(json);
    assert_int_equal(tape_config_has(c, "nul"), 1);
    assert_int_equal(tape_config_has(c, "zzz"), 0);
    tape_config_free(c);
}

static void test_wrong_types_name_the_key(void **state)
{
    (void)state;
    tape_config *c = NULL;
    assert_int_equal(tape_config_parse(&c, "{\"path\":5,\"n\":\"x\",\"f\":1.5,\"b\":\"yes\","
                                           "\"big\":1e300}"),
                     TAPE_OK);
    const char *s;
    int64_t n;
    int b;
    assert_error(tape_config_get_string(&s, c, "path", NULL), TAPE_ECONFIG, "\"path\"");
    assert_error(tape_config_get_int(&n, c, "n", 0), TAPE_ECONFIG, "\"n\"");
    assert_error(tape_config_get_int(&n, c, "f", 0), TAPE_ECONFIG, "\"f\": expected an integer");
    assert_error(tape_config_get_int(&n, c, "big", 0), TAPE_ECONFIG, "\"big\"");
    assert_error(tape_config_get_bool(&b, c, "b", 0), TAPE_ECONFIG, "\"b\"");
    tape_config_free(c);
}

static void test_check_keys(void **state)
{
    (void)state;
    static const char *const allowed[] = { "path", "durability", NULL };
    tape_config *c = NULL;
    assert_int_equal(tape_config_parse(&c, "{\"path\":\"x\",\"durabilty\":\"always\"}"), TAPE_OK);
    assert_error(tape_config_check_keys(c, allowed), TAPE_ECONFIG, "\"durabilty\"");
    tape_config_free(c);
    assert_int_equal(tape_config_parse(&c, "{\"path\":\"x\"}"), TAPE_OK);
    assert_int_equal(tape_config_check_keys(c, allowed), TAPE_OK);
    tape_config_free(c);
}

static void test_parse_errors(void **state)
{
    (void)state;
    tape_config *c = (tape_config *)1;
    assert_error(tape_config_parse(&c, "{\"a\":"), TAPE_ECONFIG, "not valid JSON");
    assert_null(c);
    assert_error(tape_config_parse(&c, "[1,2]"), TAPE_ECONFIG, "must be a JSON object");
    assert_error(tape_config_parse(&c, "{} trailing"), TAPE_ECONFIG, "not valid JSON");
    assert_error(tape_config_parse(NULL, "{}"), TAPE_EINVAL, "out is NULL");
    /* NULL and blank mean an empty config. */
    assert_int_equal(tape_config_parse(&c, NULL), TAPE_OK);
    char *json = NULL;
    assert_int_equal(tape_config_to_json(&json, c), TAPE_OK);
    assert_string_equal(json, "{}");
    tape_string_free(json);
    tape_config_free(c);
    assert_int_equal(tape_config_parse(&c, "  \n"), TAPE_OK);
    tape_config_free(c);
    tape_config_free(NULL);
}

static void check_spec(const char *spec, const char *name, const char *json)
{
    char *p = NULL;
    tape_config *c = NULL;
    assert_int_equal(tape_config_parse_spec(&p, &c, spec), TAPE_OK);
    assert_string_equal(p, name);
    char *got = NULL;
    assert_int_equal(tape_config_to_json(&got, c), TAPE_OK);
    assert_string_equal(got, json);
    tape_string_free(got);
    tape_string_free(p);
    tape_config_free(c);
}

static void test_specs(void **state)
{
    (void)state;
    check_spec("memory:", "memory", "{}");
    check_spec("memory", "memory", "{}");
    check_spec("filesystem:./tapes", "filesystem", "{\"path\":\"./tapes\"}");
    check_spec("sqlite:tapes.db", "sqlite", "{\"path\":\"tapes.db\"}");
    check_spec("filesystem:C:\\x:y", "filesystem", "{\"path\":\"C:\\\\x:y\"}");
    check_spec("s3:{\"bucket\":\"b\"}", "s3", "{\"bucket\":\"b\"}");
    check_spec("memory:{\"max_tapes\":3}", "memory", "{\"max_tapes\":3}");

    char *p = NULL;
    tape_config *c = NULL;
    assert_error(tape_config_parse_spec(&p, &c, ":x"), TAPE_ECONFIG, "store spec");
    assert_error(tape_config_parse_spec(&p, &c, "Mem:"), TAPE_ECONFIG, "provider name");
    assert_error(tape_config_parse_spec(&p, &c, "s3:{\"bucket\":"), TAPE_ECONFIG,
                 "not valid JSON");
    assert_error(tape_config_parse_spec(&p, &c, NULL), TAPE_EINVAL, "NULL");
    assert_null(p);
    assert_null(c);
}

static void test_null_arguments(void **state)
{
    (void)state;
    const char *s;
    int64_t n;
    int b;
    char *j;
    assert_int_equal(tape_config_get_string(&s, NULL, "k", NULL), TAPE_EINVAL);
    assert_int_equal(tape_config_get_int(&n, NULL, "k", 0), TAPE_EINVAL);
    assert_int_equal(tape_config_get_bool(&b, NULL, "k", 0), TAPE_EINVAL);
    assert_int_equal(tape_config_get_json(&j, NULL, "k"), TAPE_EINVAL);
    assert_int_equal(tape_config_check_keys(NULL, NULL), TAPE_EINVAL);
    assert_int_equal(tape_config_has(NULL, "k"), 0);
    assert_int_equal(tape_config_to_json(NULL, NULL), TAPE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_getters), cmocka_unit_test(test_wrong_types_name_the_key),
        cmocka_unit_test(test_check_keys),        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_specs),             cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
