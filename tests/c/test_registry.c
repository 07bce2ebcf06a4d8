/* Registry: register, find, list, unregister, reference counting, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tapestore/provider.h"

static int destroyed;

static void count_destroy(void *ud)
{
    (void)ud;
    destroyed++;
}

/* A provider whose backends delegate to memory: enough to open stores. */
static int wrap_create(const tape_backend_ops **ops, void **self, void *ud, const tape_config *c)
{
    (void)ud;
    const tape_provider *mem = tape_provider_memory();
    return mem->create(ops, self, mem->userdata, c);
}

static tape_provider make(const char *name)
{
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = name;
    p.description = "test provider";
    p.provider_version = 3;
    p.capabilities = TAPE_CAP_EXISTS;
    p.create = wrap_create;
    p.destroy = count_destroy;
    return p;
}

static void test_register_find_list(void **state)
{
    (void)state;
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    tape_provider p = make("alpha");
    assert_int_equal(tape_registry_register(reg, &p), TAPE_OK);
    p.name = "beta";
    assert_int_equal(tape_registry_register(reg, &p), TAPE_OK);

    tape_provider_info *info = NULL;
    assert_int_equal(tape_registry_find(&info, reg, "alpha"), TAPE_OK);
    assert_string_equal(tape_provider_info_name(info), "alpha");
    assert_string_equal(tape_provider_info_description(info), "test provider");
    assert_int_equal(tape_provider_info_version(info), 3);
    assert_int_equal(tape_provider_info_capabilities(info), TAPE_CAP_EXISTS);
    tape_provider_info_free(info);

    assert_int_equal(tape_registry_find(&info, reg, "gamma"), TAPE_ENOTFOUND);
    assert_non_null(strstr(tape_errmsg(), "\"gamma\""));
    assert_null(info);

    p.name = "alpha";
    assert_int_equal(tape_registry_register(reg, &p), TAPE_EEXISTS);
    assert_non_null(strstr(tape_errmsg(), "\"alpha\" is already registered"));

    tape_provider_list *l = NULL;
    assert_int_equal(tape_registry_list(&l, reg), TAPE_OK);
    assert_int_equal(tape_provider_list_count(l), 2);
    assert_string_equal(tape_provider_info_name(tape_provider_list_at(l, 0)), "alpha");
    assert_string_equal(tape_provider_info_name(tape_provider_list_at(l, 1)), "beta");
    assert_null(tape_provider_list_at(l, 2));
    tape_provider_list_free(l);

    destroyed = 0;
    tape_registry_free(reg);
    assert_int_equal(destroyed, 2); /* each registered provider, once */
}

static void test_bad_providers(void **state)
{
    (void)state;
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    tape_provider p = make("ok");
    p.version = TAPE_PROVIDER_VERSION + 1;
    assert_int_equal(tape_registry_register(reg, &p), TAPE_EVERSION);
    assert_non_null(strstr(tape_errmsg(), "version"));
    p.version = 0;
    assert_int_equal(tape_registry_register(reg, &p), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "TAPE_PROVIDER_INIT"));
    p = make("Bad Name");
    assert_int_equal(tape_registry_register(reg, &p), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "\"Bad Name\""));
    p = make(NULL);
    assert_int_equal(tape_registry_register(reg, &p), TAPE_EINVAL);
    p = make("nocreate");
    p.create = NULL;
    assert_int_equal(tape_registry_register(reg, &p), TAPE_EINVAL);
    assert_int_equal(tape_registry_register(reg, NULL), TAPE_EINVAL);
    assert_int_equal(tape_registry_register(NULL, &p), TAPE_EINVAL);
    assert_int_equal(tape_registry_unregister(reg, "nothing"), TAPE_ENOTFOUND);
    tape_registry_free(reg);
    tape_registry_free(NULL);
}

static void test_unregister_keeps_open_stores_alive(void **state)
{
    (void)state;
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    tape_provider p = make("wrapped");
    assert_int_equal(tape_registry_register(reg, &p), TAPE_OK);
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, reg, "wrapped", "{}", 0), TAPE_OK);
    destroyed = 0;
    assert_int_equal(tape_registry_unregister(reg, "wrapped"), TAPE_OK);
    assert_int_equal(destroyed, 0); /* the store still holds it */
    tape_store *s2 = NULL;
    assert_int_equal(tape_store_open(&s2, reg, "wrapped", "{}", 0), TAPE_ENOTFOUND);
    /* The open store still works. */
    tape *t = NULL;
    assert_int_equal(tape_new(&t, "still-here"), TAPE_OK);
    assert_int_equal(tape_store_save(s, t), TAPE_OK);
    int exists = 0;
    assert_int_equal(tape_store_exists(&exists, s, "still-here"), TAPE_OK);
    assert_int_equal(exists, 1);
    tape_free(t);
    assert_string_equal(tape_store_provider(s), "wrapped");
    assert_int_equal(tape_store_close(s), TAPE_OK);
    assert_int_equal(destroyed, 1);
    /* The name is free again. */
    assert_int_equal(tape_registry_register(reg, &p), TAPE_OK);
    tape_registry_free(reg);
}

static void test_default_registry_has_builtins(void **state)
{
    (void)state;
    tape_registry *reg = tape_registry_default();
    assert_ptr_equal(reg, tape_registry_default());
    tape_provider_info *info = NULL;
    assert_int_equal(tape_registry_find(&info, reg, "memory"), TAPE_OK);
    assert_true(tape_provider_info_capabilities(info) & TAPE_CAP_THREAD_SAFE);
    tape_provider_info_free(info);
    tape_registry_free(reg); /* a no-op on the default registry */
    assert_int_equal(tape_registry_find(&info, tape_registry_default(), "memory"), TAPE_OK);
    tape_provider_info_free(info);
    /* A new registry starts empty until asked for the builtins. */
    tape_registry *mine = NULL;
    assert_int_equal(tape_registry_new(&mine), TAPE_OK);
    assert_int_equal(tape_registry_find(&info, mine, "memory"), TAPE_ENOTFOUND);
    assert_int_equal(tape_registry_add_builtins(mine), TAPE_OK);
    assert_int_equal(tape_registry_find(&info, mine, "memory"), TAPE_OK);
    tape_provider_info_free(info);
    assert_int_equal(tape_registry_add_builtins(mine), TAPE_EEXISTS);
    tape_registry_free(mine);
}

/* Many names force the table to grow; every one stays findable. */
static void test_many_providers(void **state)
{
    (void)state;
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "p%04d", i);
        tape_provider p = make(name);
        p.destroy = NULL;
        assert_int_equal(tape_registry_register(reg, &p), TAPE_OK);
    }
    for (int i = 0; i < 1000; i += 2) {
        snprintf(name, sizeof name, "p%04d", i);
        assert_int_equal(tape_registry_unregister(reg, name), TAPE_OK);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "p%04d", i);
        tape_provider_info *info = NULL;
        assert_int_equal(tape_registry_find(&info, reg, name), i % 2 ? TAPE_OK : TAPE_ENOTFOUND);
        tape_provider_info_free(info);
    }
    tape_provider_list *l = NULL;
    assert_int_equal(tape_registry_list(&l, reg), TAPE_OK);
    assert_int_equal(tape_provider_list_count(l), 500);
    tape_provider_list_free(l);
    tape_registry_free(reg);
}

typedef struct thread_arg {
    tape_registry *reg;
    int base;
    int failures;
} thread_arg;

static void *churn(void *p)
{
    thread_arg *a = p;
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "t%d-%d", a->base, i);
        tape_provider pr = make(name);
        pr.destroy = NULL;
        if (tape_registry_register(a->reg, &pr) != TAPE_OK) a->failures++;
        tape_provider_info *info = NULL;
        if (tape_registry_find(&info, a->reg, name) != TAPE_OK) a->failures++;
        tape_provider_info_free(info);
        if (tape_registry_find(&info, a->reg, "shared") != TAPE_OK) a->failures++;
        tape_provider_info_free(info);
        if (i % 3 == 0 && tape_registry_unregister(a->reg, name) != TAPE_OK) a->failures++;
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    (void)state;
    tape_registry *reg = NULL;
    assert_int_equal(tape_registry_new(&reg), TAPE_OK);
    tape_provider shared = make("shared");
    shared.destroy = NULL;
    assert_int_equal(tape_registry_register(reg, &shared), TAPE_OK);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){ reg, i, 0 };
        pthread_create(&th[i], NULL, churn, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    tape_provider_list *l = NULL;
    assert_int_equal(tape_registry_list(&l, reg), TAPE_OK);
    assert_int_equal(tape_provider_list_count(l), 1 + 4 * 200);
    tape_provider_list_free(l);
    tape_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_find_list),
        cmocka_unit_test(test_bad_providers),
        cmocka_unit_test(test_unregister_keeps_open_stores_alive),
        cmocka_unit_test(test_default_registry_has_builtins),
        cmocka_unit_test(test_many_providers),
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
