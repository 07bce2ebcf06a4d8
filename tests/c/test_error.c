/* Errors (thread-local, wrappable), the log hook, the version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tapestore/provider.h"

static void test_message_can_wrap_itself(void **state)
{
    (void)state;
    tape_error_set(TAPE_ECORRUPT, "line %d: invalid JSON", 3);
    assert_int_equal(tape_error_set(TAPE_ECORRUPT, "tape \"%s\": %s", "mid", tape_errmsg()),
                     TAPE_ECORRUPT);
    assert_string_equal(tape_errmsg(), "tape \"mid\": line 3: invalid JSON");
    assert_int_equal(tape_errcode(), TAPE_ECORRUPT);
}

static void test_long_messages_are_truncated_not_overflowed(void **state)
{
    (void)state;
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tape_error_set(TAPE_EINVAL, "id %s", big);
    assert_true(strlen(tape_errmsg()) < 1024);
    assert_memory_equal(tape_errmsg(), "id xxx", 6);
}

static void test_strerror_names(void **state)
{
    (void)state;
    assert_string_equal(tape_strerror(TAPE_OK), "TAPE_OK");
    assert_string_equal(tape_strerror(TAPE_ENOTFOUND), "TAPE_ENOTFOUND");
    assert_string_equal(tape_strerror(TAPE_ESTATE), "TAPE_ESTATE");
    assert_string_equal(tape_strerror(-999), "TAPE_E?");
    assert_non_null(tape_errmsg());
}

static void *other_thread(void *arg)
{
    (void)arg;
    tape_error_set(TAPE_EIO, "from the other thread");
    return NULL;
}

static void test_thread_local(void **state)
{
    (void)state;
    tape_error_set(TAPE_EBUSY, "mine");
    pthread_t th;
    pthread_create(&th, NULL, other_thread, NULL);
    pthread_join(th, NULL);
    assert_string_equal(tape_errmsg(), "mine");
    assert_int_equal(tape_errcode(), TAPE_EBUSY);
}

static int got_level;
static char got_msg[256];
static void *got_ud;

static void hook(void *ud, int level, const char *msg)
{
    got_ud = ud;
    got_level = level;
    snprintf(got_msg, sizeof got_msg, "%s", msg);
}

static void test_log_hook(void **state)
{
    (void)state;
    int marker;
    tape_log(TAPE_LOG_WARN, "nobody listens"); /* no hook: nothing happens */
    tape_log_set(hook, &marker);
    tape_log(TAPE_LOG_WARN, "disk %d%% full", 93);
    assert_int_equal(got_level, TAPE_LOG_WARN);
    assert_string_equal(got_msg, "disk 93% full");
    assert_ptr_equal(got_ud, &marker);
    tape_log_set(NULL, NULL);
    tape_log(TAPE_LOG_ERROR, "after removal");
    assert_string_equal(got_msg, "disk 93% full");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(tape_version(),
                     TAPE_VERSION_MAJOR * 10000 + TAPE_VERSION_MINOR * 100 + TAPE_VERSION_PATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_can_wrap_itself),
        cmocka_unit_test(test_long_messages_are_truncated_not_overflowed),
        cmocka_unit_test(test_strerror_names),
        cmocka_unit_test(test_thread_local),
        cmocka_unit_test(test_log_hook),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
