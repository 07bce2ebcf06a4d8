/*
 * test_plugin.c - tape_registry_load_plugin: loading the example plugin
 * (examples/c-provider) and refusing bad ones (tests/c/plugins). The
 * plugin paths come from examples/CMakeLists.txt as compile definitions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <tapestore/provider.h>

#include <stdio.h>
#include <string.h>

#if !defined(TAPE_EXAMPLE_PLUGIN) || !defined(TAPE_BAD_PLUGIN_ABI_TOO_NEW)
#error "test_plugin needs the plugins built by examples/CMakeLists.txt (TAPE_BUILD_EXAMPLES=ON)"
#endif

static tape_registry *fresh_registry(void)
{
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    assert_non_null(reg);
    return reg;
}

static int has_provider(tape_registry *reg, const char *name)
{
    tape_provider_info *p = NULL;
    int rc = tape_registry_find(&p, reg, name);
    tape_provider_info_free(p);
    return rc == TAPE_OK;
}

static void assert_msg_has(const char *needle)
{
    if (strstr(tape_errmsg(), needle) == NULL) {
        fail_msg("error message \"%s\" does not mention \"%s\"", tape_errmsg(), needle);
    }
}

static tape *tape_with_frame(const char *id)
{
    tape *t = NULL;
    assert_int_equal(tape_new(&t, id), TAPE_OK);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 0;
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    return t;
}

/* The example plugin registers "prefix", whose stores work and enforce
 * their policy: the plugin's code runs against this process's library. */
static void test_load_example_plugin(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    assert_false(has_provider(reg, "prefix"));
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_EXAMPLE_PLUGIN), TAPE_OK);

    tape_provider_info *info = NULL;
    assert_int_equal(tape_registry_find(&info, reg, "prefix"), TAPE_OK);
    assert_string_equal(tape_provider_info_name(info), "prefix");
    assert_non_null(strstr(tape_provider_info_description(info), "prefix"));
    assert_true(tape_provider_info_capabilities(info) & TAPE_CAP_WRITER);
    tape_provider_info_free(info);

    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, reg, "prefix", "{\"prefix\": \"demo-\"}", 0), TAPE_OK);
    tape *t = tape_with_frame("demo-1");
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    tape_free(t);

    /* An error set inside the plugin reaches this thread's tape_errmsg. */
    t = tape_with_frame("other-1");
    assert_int_equal(tape_store_save(s, t), TAPE_EINVAL);
    assert_int_equal(tape_errcode(), TAPE_EINVAL);
    assert_msg_has("\"other-1\"");
    assert_msg_has("\"demo-\"");
    tape_free(t);

    tape *back = NULL;
    assert_int_equal(tape_store_load(&back, s, "demo-1"), TAPE_OK);
    assert_int_equal(tape_frame_count(back), 1);
    tape_free(back);
    assert_int_equal(tape_store_close(s), TAPE_OK);

    /* A config error from the plugin's validate names the key. */
    assert_int_equal(tape_store_open(&s, reg, "prefix", "{}", 0), TAPE_ECONFIG);
    assert_null(s);
    assert_msg_has("\"prefix\"");
    tape_registry_free(reg);
}

/* Loading again into the same registry: the provider name is taken. */
static void test_load_twice_is_eexists(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_EXAMPLE_PLUGIN), TAPE_OK);
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_EXAMPLE_PLUGIN), TAPE_EEXISTS);
    assert_msg_has("\"prefix\"");
    assert_true(has_provider(reg, "prefix"));
    tape_registry_free(reg);
}

/* One library, several registries (the default one included). */
static void test_load_into_two_registries(void **state)
{
    (void)state;
    tape_registry *a = fresh_registry();
    tape_registry *b = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(a, TAPE_EXAMPLE_PLUGIN), TAPE_OK);
    assert_int_equal(tape_registry_load_plugin(b, TAPE_EXAMPLE_PLUGIN), TAPE_OK);
    assert_int_equal(tape_registry_load_plugin(tape_registry_default(), TAPE_EXAMPLE_PLUGIN),
                     TAPE_OK);
    assert_true(has_provider(a, "prefix"));
    assert_true(has_provider(b, "prefix"));
    assert_true(has_provider(tape_registry_default(), "prefix"));
    assert_true(has_provider(tape_registry_default(), "memory")); /* builtins stay */
    tape_registry_free(a);
    tape_registry_free(b);
    assert_int_equal(tape_registry_unregister(tape_registry_default(), "prefix"), TAPE_OK);
}

/* The library stays loaded: a store outlives its registry and the
 * provider's unregistration, and keeps running the plugin's code. */
static void test_store_outlives_registry(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_EXAMPLE_PLUGIN), TAPE_OK);
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, reg, "prefix", "{\"prefix\": \"p-\"}", TAPE_OPEN_EAGER),
                     TAPE_OK);
    assert_int_equal(tape_registry_unregister(reg, "prefix"), TAPE_OK);
    tape_registry_free(reg);

    tape *t = tape_with_frame("p-1");
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    tape_free(t);
    char *json = NULL;
    assert_int_equal(tape_store_control(&json, s, "prefix", NULL), TAPE_OK);
    assert_string_equal(json, "{\"prefix\":\"p-\"}");
    tape_string_free(json);
    int exists = 0;
    assert_int_equal(tape_store_exists(&exists, s, "p-1"), TAPE_OK);
    assert_int_equal(exists, 1);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

static void test_missing_file_is_enotfound(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    const char *path = "/nonexistent/dir/tapestore-nosuch.so";
    assert_int_equal(tape_registry_load_plugin(reg, path), TAPE_ENOTFOUND);
    assert_int_equal(tape_errcode(), TAPE_ENOTFOUND);
    assert_msg_has(path);
    /* The loader's own explanation (dlerror) is part of the message. */
    assert_msg_has("cannot open shared object file");
    tape_registry_free(reg);
}

static void test_not_a_library_is_refused(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(reg, __FILE__), TAPE_ENOTFOUND);
    assert_msg_has(__FILE__);
    assert_msg_has("cannot load plugin");
    tape_registry_free(reg);
}

static void test_null_arguments(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(reg, NULL), TAPE_EINVAL);
    assert_msg_has("path");
    assert_int_equal(tape_registry_load_plugin(NULL, TAPE_EXAMPLE_PLUGIN), TAPE_EINVAL);
    assert_msg_has("registry");
    tape_registry_free(reg);
}

/* Refused before any of the plugin's code runs: its init would have
 * registered "bad-plugin-ran". */
static void expect_refused(const char *path, int code, const char *needle)
{
    tape_registry *reg = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(reg, path), code);
    assert_int_equal(tape_errcode(), code);
    assert_msg_has(path);
    assert_msg_has(needle);
    assert_false(has_provider(reg, "bad-plugin-ran"));
    tape_registry_free(reg);
}

static void test_without_abi_symbol_is_einval(void **state)
{
    (void)state;
    expect_refused(TAPE_BAD_PLUGIN_NO_ABI, TAPE_EINVAL, TAPE_PLUGIN_ABI_SYMBOL);
}

static void test_without_entry_point_is_einval(void **state)
{
    (void)state;
    expect_refused(TAPE_BAD_PLUGIN_NO_INIT, TAPE_EINVAL, TAPE_PLUGIN_ENTRY);
}

static void test_abi_too_new_is_eversion(void **state)
{
    (void)state;
    char needle[64];
    snprintf(needle, sizeof needle, "plugin ABI %u", (unsigned)TAPE_PLUGIN_ABI_VERSION + 1u);
    expect_refused(TAPE_BAD_PLUGIN_ABI_TOO_NEW, TAPE_EVERSION, needle);
}

static void test_abi_zero_is_einval(void **state)
{
    (void)state;
    expect_refused(TAPE_BAD_PLUGIN_ABI_ZERO, TAPE_EINVAL, "tape_plugin_abi is 0");
}

/* A failing init: its code and its own message reach the caller. */
static void test_init_failure_keeps_plugin_message(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_BAD_PLUGIN_INIT_FAILS), TAPE_ECONFIG);
    assert_int_equal(tape_errcode(), TAPE_ECONFIG);
    assert_string_equal(tape_errmsg(), "bad plugin: setting \"region\" is missing");
    tape_registry_free(reg);
}

/* A failing init that set no message: the core writes one naming the
 * plugin and the entry point. */
static void test_init_failure_without_message(void **state)
{
    (void)state;
    tape_registry *reg = fresh_registry();
    tape_error_set(TAPE_EINVAL, "an unrelated earlier error");
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_BAD_PLUGIN_INIT_SILENT), TAPE_EIO);
    assert_int_equal(tape_errcode(), TAPE_EIO);
    assert_msg_has(TAPE_BAD_PLUGIN_INIT_SILENT);
    assert_msg_has(TAPE_PLUGIN_ENTRY);
    assert_msg_has("TAPE_EIO");
    tape_registry_free(reg);
}

/* An init returning a code outside the API: TAPE_EPROVIDER, keeping the
 * plugin's message (it returned 7 as such before, issue 7). */
static void test_init_unknown_code(void **state)
{
    (void)state;
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    assert_int_equal(tape_registry_load_plugin(reg, TAPE_BAD_PLUGIN_INIT_SEVEN), TAPE_EPROVIDER);
    assert_int_equal(tape_errcode(), TAPE_EPROVIDER);
    assert_msg_has("returned unknown code 7: bad plugin: the script raised");
    tape_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_example_plugin),
        cmocka_unit_test(test_load_twice_is_eexists),
        cmocka_unit_test(test_load_into_two_registries),
        cmocka_unit_test(test_store_outlives_registry),
        cmocka_unit_test(test_missing_file_is_enotfound),
        cmocka_unit_test(test_not_a_library_is_refused),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_without_abi_symbol_is_einval),
        cmocka_unit_test(test_without_entry_point_is_einval),
        cmocka_unit_test(test_abi_too_new_is_eversion),
        cmocka_unit_test(test_abi_zero_is_einval),
        cmocka_unit_test(test_init_failure_keeps_plugin_message),
        cmocka_unit_test(test_init_failure_without_message),
        cmocka_unit_test(test_init_unknown_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
