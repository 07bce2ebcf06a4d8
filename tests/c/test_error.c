/* Errors (thread-local, wrappable), the log hook, the version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"
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
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tape_error_set(TAPE_EINVAL, "id %s", big);
    size_t n = strlen(tape_errmsg());
    assert_true(n < 8192);
    assert_true(n >= 8000); /* a script's traceback fits */
    assert_memory_equal(tape_errmsg(), "id xxx", 6);
    assert_string_equal(tape_errmsg() + n - 3, "...");
}

/* A cut never splits a UTF-8 character: Python's decode of the message
 * must not raise (issue 7). */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 0;
        if (n == 0) {
            return 0;
        }
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return 0;
            }
        }
        p += n;
    }
    return 1;
}

static void test_cut_at_character_boundary(void **state)
{
    (void)state;
    static char big[20000];
    const char *chars[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
    for (size_t c = 0; c < 3; c++) {
        for (size_t shift = 0; shift < 4; shift++) {
            size_t len = strlen(chars[c]), pos = 0;
            memset(big, 'a', shift);
            pos = shift;
            while (pos + len < sizeof big - 1) {
                memcpy(big + pos, chars[c], len);
                pos += len;
            }
            big[pos] = '\0';
            tape_error_set_message(TAPE_EPROVIDER, big);
            assert_true(valid_utf8(tape_errmsg()));
            size_t n = strlen(tape_errmsg());
            assert_string_equal(tape_errmsg() + n - 3, "...");
            tape_error_set(TAPE_EPROVIDER, "%s", big);
            assert_true(valid_utf8(tape_errmsg()));
        }
    }
    /* Short messages are kept whole, without a mark. */
    tape_error_set_message(TAPE_EIO, "\xf0\x9f\x98\x80 short");
    assert_string_equal(tape_errmsg(), "\xf0\x9f\x98\x80 short");
}

/* Bindings pass text that may hold '%': taken verbatim. */
static void test_verbatim_setters(void **state)
{
    (void)state;
    assert_int_equal(tape_error_set_message(TAPE_EPROVIDER, "100% %s %n done"),
                     TAPE_EPROVIDER);
    assert_string_equal(tape_errmsg(), "100% %s %n done");
    assert_int_equal(tape_errcode(), TAPE_EPROVIDER);
    tape_error_set_message(TAPE_EIO, NULL);
    assert_string_equal(tape_errmsg(), "TAPE_EIO");
    /* Its own message as the argument (a binding re-setting the code). */
    tape_error_set_message(TAPE_EBUSY, tape_errmsg());
    assert_string_equal(tape_errmsg(), "TAPE_EIO");
    assert_int_equal(tape_errcode(), TAPE_EBUSY);
    /* A tail of its own message (overlapping copy). */
    tape_error_set_message(TAPE_EIO, "prefix: the part to keep");
    tape_error_set_message(TAPE_EPROVIDER, tape_errmsg() + 8);
    assert_string_equal(tape_errmsg(), "the part to keep");
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

static void test_log_message_verbatim(void **state)
{
    (void)state;
    int marker;
    tape_log_set(hook, &marker);
    tape_log_message(TAPE_LOG_INFO, "50% %d");
    assert_int_equal(got_level, TAPE_LOG_INFO);
    assert_string_equal(got_msg, "50% %d");
    tape_log_message(TAPE_LOG_INFO, NULL); /* ignored */
    assert_string_equal(got_msg, "50% %d");
    tape_log_set(NULL, NULL);
}

/* tape_log_set returns only when no call of the old hook is in flight, so
 * a binding may release the old callable right after (issue 7). */
static atomic_int slow_entered, slow_left;

static void slow_hook(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    (void)msg;
    atomic_store(&slow_entered, 1);
    struct timespec ts = { 0, 200 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    atomic_store(&slow_left, 1);
}

static void *log_from_thread(void *arg)
{
    (void)arg;
    tape_log(TAPE_LOG_WARN, "slow");
    return NULL;
}

static void reentrant_hook(void *ud, int level, const char *msg)
{
    (void)level;
    (void)msg;
    /* Swapping the hook from inside a hook must not wait for itself. */
    tape_log_set(hook, ud);
}

static void test_log_set_waits_for_calls_in_flight(void **state)
{
    (void)state;
    tape_log_set(slow_hook, NULL);
    pthread_t th;
    pthread_create(&th, NULL, log_from_thread, NULL);
    while (!atomic_load(&slow_entered)) {
        sched_yield();
    }
    tape_log_set(NULL, NULL);
    assert_int_equal(atomic_load(&slow_left), 1); /* the old hook had returned */
    pthread_join(th, NULL);

    int marker;
    tape_log_set(reentrant_hook, &marker);
    tape_log(TAPE_LOG_WARN, "swap yourself");
    tape_log(TAPE_LOG_WARN, "now the plain hook");
    assert_string_equal(got_msg, "now the plain hook");
    assert_ptr_equal(got_ud, &marker);
    tape_log_set(NULL, NULL);
}

/* How the core normalises what provider code returns. */
static void test_provider_rc(void **state)
{
    (void)state;
    const char *who = "provider \"p\"";
    /* No message set by the provider: a generic one, never a stale one
     * (the earlier failure had the same code). */
    tape_error_set(TAPE_EIO, "stale: from an earlier call");
    unsigned long mark = tape__error_mark();
    assert_int_equal(tape__provider_rc(TAPE_EIO, who, "load", 0, mark), TAPE_EIO);
    assert_string_equal(tape_errmsg(), "provider \"p\": load failed (TAPE_EIO)");
    /* Its own message kept under its code. */
    mark = tape__error_mark();
    tape_error_set(TAPE_ENOTFOUND, "no tape \"x\"");
    assert_int_equal(tape__provider_rc(TAPE_ENOTFOUND, who, "load", 0, mark), TAPE_ENOTFOUND);
    assert_string_equal(tape_errmsg(), "no tape \"x\"");
    /* ...even when it set another code than it returned. */
    mark = tape__error_mark();
    tape_error_set(TAPE_EIO, "disk gone");
    assert_int_equal(tape__provider_rc(TAPE_EBUSY, who, "save", 0, mark), TAPE_EBUSY);
    assert_int_equal(tape_errcode(), TAPE_EBUSY);
    assert_string_equal(tape_errmsg(), "disk gone");
    /* An unknown code: TAPE_EPROVIDER, the provider's words kept. */
    mark = tape__error_mark();
    tape_error_set(TAPE_EIO, "Traceback: boom");
    assert_int_equal(tape__provider_rc(7, who, "validate", 0, mark), TAPE_EPROVIDER);
    assert_string_equal(tape_errmsg(),
                        "provider \"p\": validate returned unknown code 7: Traceback: boom");
    mark = tape__error_mark();
    assert_int_equal(tape__provider_rc(-99, who, "save", 0, mark), TAPE_EPROVIDER);
    assert_string_equal(tape_errmsg(), "provider \"p\": save returned unknown code -99");
    /* TAPE_DONE only where allowed. */
    mark = tape__error_mark();
    assert_int_equal(tape__provider_rc(TAPE_DONE, who, "frames_next", 1, mark), TAPE_DONE);
    assert_int_equal(tape__provider_rc(TAPE_DONE, who, "load", 0, mark), TAPE_EPROVIDER);
    /* A success leaves the last error readable. */
    tape_error_set(TAPE_ECORRUPT, "still here");
    mark = tape__error_mark();
    assert_int_equal(tape__provider_rc(TAPE_OK, who, "load", 0, mark), TAPE_OK);
    assert_string_equal(tape_errmsg(), "still here");
}

static void test_error_save_restore(void **state)
{
    (void)state;
    tape_error_set(TAPE_ECORRUPT, "the one to keep");
    tape__saved_error e;
    tape__error_save(&e);
    tape_error_set(TAPE_EIO, "overwritten by cleanup");
    tape__error_restore(&e);
    assert_int_equal(tape_errcode(), TAPE_ECORRUPT);
    assert_string_equal(tape_errmsg(), "the one to keep");
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
        cmocka_unit_test(test_cut_at_character_boundary),
        cmocka_unit_test(test_verbatim_setters),
        cmocka_unit_test(test_log_message_verbatim),
        cmocka_unit_test(test_log_set_waits_for_calls_in_flight),
        cmocka_unit_test(test_provider_rc),
        cmocka_unit_test(test_error_save_restore),
        cmocka_unit_test(test_strerror_names),
        cmocka_unit_test(test_thread_local),
        cmocka_unit_test(test_log_hook),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
