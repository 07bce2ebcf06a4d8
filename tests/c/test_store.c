/*
 * Store dispatch and the core's fallbacks, through a minimal backend that
 * implements only the required ops and is not thread-safe.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapestore/provider.h"

/* ------------------------------------------------------------ the backend */

typedef struct mini {
    tape *tapes[2048];
    size_t count;
    atomic_int inside;      /* calls in progress: must never exceed 1 */
    atomic_int max_inside;
    int open_calls, open_fail, close_calls;
    int quiet_failure;      /* fail save without setting a message */
} mini;

static void enter_op(mini *m)
{
    int now = atomic_fetch_add(&m->inside, 1) + 1;
    int seen = atomic_load(&m->max_inside);
    while (now > seen && !atomic_compare_exchange_weak(&m->max_inside, &seen, now)) {
    }
}

static void leave_op(mini *m)
{
    atomic_fetch_sub(&m->inside, 1);
}

static long find_idx(mini *m, const char *id)
{
    for (size_t i = 0; i < m->count; i++) {
        if (strcmp(tape_id(m->tapes[i]), id) == 0) return (long)i;
    }
    return -1;
}

static int mini_save(void *self, const tape *t)
{
    mini *m = self;
    enter_op(m);
    if (m->quiet_failure) {
        leave_op(m);
        return TAPE_EIO; /* deliberately without a message */
    }
    tape *copy = NULL;
    int rc = tape_clone(&copy, t);
    if (rc == TAPE_OK) {
        long i = find_idx(m, tape_id(t));
        if (i >= 0) {
            tape_free(m->tapes[i]);
            m->tapes[i] = copy;
        } else {
            m->tapes[m->count++] = copy;
        }
    }
    leave_op(m);
    return rc;
}

static int mini_load(tape **out, void *self, const char *id)
{
    mini *m = self;
    enter_op(m);
    long i = find_idx(m, id);
    int rc = i < 0 ? tape_error_set(TAPE_ENOTFOUND, "no tape \"%s\"", id)
                   : tape_clone(out, m->tapes[i]);
    leave_op(m);
    return rc;
}

static int mini_remove(void *self, const char *id)
{
    mini *m = self;
    enter_op(m);
    long i = find_idx(m, id);
    if (i < 0) {
        leave_op(m);
        return tape_error_set(TAPE_ENOTFOUND, "no tape \"%s\"", id);
    }
    tape_free(m->tapes[i]);
    m->tapes[i] = m->tapes[--m->count];
    leave_op(m);
    return TAPE_OK;
}

static int mini_list(void *self, const tape_query *q, tape_entry_sink sink, void *data)
{
    (void)q;
    mini *m = self;
    enter_op(m);
    int rc = TAPE_OK;
    for (size_t i = 0; i < m->count && rc == TAPE_OK; i++) {
        tape_entry *e = NULL;
        rc = tape_entry_from_tape(&e, m->tapes[i]);
        if (rc == TAPE_OK) {
            int stop = sink(data, e);
            tape_entry_free(e);
            if (stop) break;
        }
    }
    leave_op(m);
    return rc;
}

static void mini_free(void *self)
{
    mini *m = self;
    for (size_t i = 0; i < m->count; i++) tape_free(m->tapes[i]);
    free(m);
}

static int mini_open(void *self)
{
    mini *m = self;
    m->open_calls++;
    if (m->open_fail > 0) {
        m->open_fail--;
        return tape_error_set(TAPE_EIO, "mini: backend not reachable yet");
    }
    return TAPE_OK;
}

static int mini_close(void *self)
{
    mini *m = self;
    m->close_calls++;
    return TAPE_OK;
}

static tape_backend_ops mini_ops = {
    .version = TAPE_BACKEND_OPS_VERSION,
    .save = mini_save,
    .load = mini_load,
    .remove = mini_remove,
    .list = mini_list,
    .free = mini_free,
    .open = mini_open,
    .close = mini_close,
};

static mini *last_created;
static int create_open_fail;

static int mini_create(const tape_backend_ops **ops, void **self, void *ud, const tape_config *c)
{
    (void)ud;
    (void)c;
    mini *m = calloc(1, sizeof *m);
    if (m == NULL) return tape_error_set(TAPE_ENOMEM, "oom");
    m->open_fail = create_open_fail;
    last_created = m;
    *ops = &mini_ops;
    *self = m;
    return TAPE_OK;
}

static const char *const mini_keys[] = { "label", NULL };

static int mini_validate(void *ud, const tape_config *c)
{
    (void)ud;
    return tape_config_check_keys(c, mini_keys);
}

static tape_registry *reg;

static int setup(void **state)
{
    (void)state;
    if (tape_registry_new(&reg) != TAPE_OK) return -1;
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = "mini";
    p.create = mini_create;
    p.validate = mini_validate;
    return tape_registry_register(reg, &p) == TAPE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tape_registry_free(reg);
    return 0;
}

static tape_store *open_mini(void)
{
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, reg, "mini", "{}", 0), TAPE_OK);
    return s;
}

static tape *make_tape(const char *id, int frames, const char *tag)
{
    tape *t = NULL;
    assert_int_equal(tape_new(&t, id), TAPE_OK);
    if (tag != NULL) assert_int_equal(tape_add_tag(t, tag), TAPE_OK);
    for (int i = 0; i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        char msg[96];
        snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"method\":\"m%d\",\"id\":%d}", i, i);
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i * 10;
        d.message = msg;
        assert_int_equal(tape_append_frame(NULL, t, &d), TAPE_OK);
    }
    return t;
}

/* ------------------------------------------------------------ tests */

static void test_capabilities_report_fallbacks(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    unsigned native = 99, avail = 0;
    assert_int_equal(tape_store_capabilities(&native, &avail, s), TAPE_OK);
    assert_int_equal(native, 0);
    assert_true(avail & TAPE_CAP_EXISTS);
    assert_true(avail & TAPE_CAP_SEARCH);
    assert_true(avail & TAPE_CAP_STATS);
    assert_true(avail & TAPE_CAP_WRITER);
    assert_true(avail & TAPE_CAP_READ_FRAMES);
    assert_false(avail & TAPE_CAP_CONTROL);
    char *out = NULL;
    assert_int_equal(tape_store_control(&out, s, "compact", NULL), TAPE_EUNSUPPORTED);
    assert_non_null(strstr(tape_errmsg(), "\"compact\""));
    tape_store_free(s);
}

static void test_fallback_exists_stats_query(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        tape *t = make_tape(id, i, i % 2 ? "odd" : "even");
        assert_int_equal(tape_store_save(s, t), TAPE_OK);
        tape_free(t);
    }
    int exists = -1;
    assert_int_equal(tape_store_exists(&exists, s, "t3"), TAPE_OK);
    assert_int_equal(exists, 1);
    assert_int_equal(tape_store_exists(&exists, s, "nope"), TAPE_OK);
    assert_int_equal(exists, 0);

    tape_store_stats st = TAPE_STORE_STATS_INIT;
    assert_int_equal(tape_store_stats_get(&st, s), TAPE_OK);
    assert_int_equal(st.tape_count, 5);
    assert_int_equal(st.frame_count, 0 + 1 + 2 + 3 + 4);
    assert_true(st.total_bytes > 0);

    tape_query *q = NULL;
    assert_int_equal(tape_query_parse(&q, "{\"tags_any\":[\"odd\"],\"order_by\":\"id\"}"), TAPE_OK);
    tape_result *r = NULL;
    assert_int_equal(tape_store_query(&r, s, q), TAPE_OK);
    assert_int_equal(tape_result_count(r), 2);
    assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "t1");
    assert_string_equal(tape_entry_id(tape_result_at(r, 1)), "t3");
    tape_result_free(r);
    tape_query_free(q);

    /* text needs frames: the fallback loads the candidates. */
    assert_int_equal(tape_query_parse(&q, "{\"text\":\"\\\"M3\\\"\"}"), TAPE_OK);
    assert_int_equal(tape_store_query(&r, s, q), TAPE_OK);
    assert_int_equal(tape_result_count(r), 1);
    assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "t4");
    tape_result_free(r);
    tape_query_free(q);

    assert_int_equal(tape_store_query(&r, s, NULL), TAPE_OK);
    assert_int_equal(tape_result_count(r), 5);
    assert_null(tape_result_next_cursor(r));
    tape_result_free(r);
    tape_store_free(s);
}

static void test_fallback_writer_and_frames(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    tape *h = NULL;
    assert_int_equal(tape_new(&h, "rec"), TAPE_OK);
    assert_int_equal(tape_set_name(h, "recording"), TAPE_OK);
    tape_writer *w = NULL;
    assert_int_equal(tape_store_record(&w, s, h), TAPE_OK);
    assert_string_equal(tape_writer_id(w), "rec");
    /* Visible at once with status recording. */
    tape *seen = NULL;
    assert_int_equal(tape_store_load(&seen, s, "rec"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_RECORDING);
    tape_free(seen);
    /* The core guards fallback recordings itself. */
    tape_writer *w2 = NULL;
    assert_int_equal(tape_store_record(&w2, s, h), TAPE_EBUSY);
    assert_non_null(strstr(tape_errmsg(), "being recorded"));
    assert_int_equal(tape_store_save(s, h), TAPE_EBUSY);
    assert_int_equal(tape_store_delete(s, "rec"), TAPE_EBUSY);

    for (int i = 0; i < 50; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        char msg[64];
        snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{}}", i);
        d.direction = TAPE_DIR_SERVER_TO_CLIENT;
        d.ts_ms = i;
        d.message = msg;
        uint64_t seq = 99;
        assert_int_equal(tape_writer_append(&seq, w, &d), TAPE_OK);
        assert_int_equal(seq, (uint64_t)i);
    }
    tape_frame_desc bad = TAPE_FRAME_DESC_INIT;
    bad.direction = TAPE_DIR_CLIENT_TO_SERVER;
    bad.message = "{not json";
    assert_int_equal(tape_writer_append(NULL, w, &bad), TAPE_EINVAL);
    assert_int_equal(tape_writer_add_correlation(w, "c1", 0, 1, 5, "success"), TAPE_OK);
    assert_int_equal(tape_writer_finish(w), TAPE_OK);
    assert_int_equal(tape_writer_append(NULL, w, &bad), TAPE_ESTATE);
    assert_int_equal(tape_writer_finish(w), TAPE_ESTATE);
    tape_writer_free(w);

    assert_int_equal(tape_store_record(&w2, s, h), TAPE_EEXISTS); /* finished: just taken */
    assert_int_equal(tape_store_load(&seen, s, "rec"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_FINALIZED);
    assert_int_equal(tape_frame_count(seen), 50);
    assert_int_equal(tape_correlation_count(seen), 1);
    assert_string_equal(tape_name(seen), "recording");
    assert_true(tape_finalized_at(seen) != TAPE_TIME_NONE);
    tape_free(seen);

    tape_frame_iter *it = NULL;
    assert_int_equal(tape_store_read_frames(&it, s, "rec", 10, 14), TAPE_OK);
    const tape_frame *f = NULL;
    for (uint64_t want = 10; want <= 14; want++) {
        assert_int_equal(tape_frame_iter_next(&f, it), TAPE_OK);
        assert_int_equal(tape_frame_seq(f), want);
    }
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_DONE);
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_DONE);
    tape_frame_iter_free(it);
    assert_int_equal(tape_store_read_frames(&it, s, "nope", 0, UINT64_MAX), TAPE_ENOTFOUND);
    assert_null(it);

    /* An abandoned writer leaves the frames so far, status recording. */
    tape_free(h);
    assert_int_equal(tape_new(&h, "abandoned"), TAPE_OK);
    assert_int_equal(tape_store_record(&w, s, h), TAPE_OK);
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}";
    assert_int_equal(tape_writer_append(NULL, w, &d), TAPE_OK);
    tape_writer_free(w);
    assert_int_equal(tape_store_load(&seen, s, "abandoned"), TAPE_OK);
    assert_int_equal(tape_status(seen), TAPE_STATUS_RECORDING);
    assert_int_equal(tape_frame_count(seen), 1);
    tape_free(seen);
    tape_free(h);
    tape_store_free(s);
}

static void test_writer_outlives_store_handle(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    mini *m = last_created;
    tape *h = NULL;
    assert_int_equal(tape_new(&h, "late"), TAPE_OK);
    tape_writer *w = NULL;
    assert_int_equal(tape_store_record(&w, s, h), TAPE_OK);
    tape_frame_iter *it = NULL;
    assert_int_equal(tape_store_read_frames(&it, s, "late", 0, UINT64_MAX), TAPE_OK);
    assert_int_equal(tape_store_close(s), TAPE_OK);
    assert_int_equal(m->close_calls, 0); /* writer and iterator keep it open */
    assert_int_equal(tape_writer_finish(w), TAPE_OK);
    tape_writer_free(w);
    const tape_frame *f = NULL;
    assert_int_equal(tape_frame_iter_next(&f, it), TAPE_DONE);
    tape_frame_iter_free(it); /* last reference: closes and frees */
    tape_free(h);
}

static void test_lazy_and_eager_open(void **state)
{
    (void)state;
    create_open_fail = 1;
    tape_store *s = NULL;
    assert_int_equal(tape_store_open(&s, reg, "mini", NULL, 0), TAPE_OK);
    mini *m = last_created;
    assert_int_equal(m->open_calls, 0); /* lazy: nothing touched yet */
    int exists = 0;
    assert_int_equal(tape_store_exists(&exists, s, "x"), TAPE_EIO);
    assert_non_null(strstr(tape_errmsg(), "not reachable"));
    assert_int_equal(tape_store_exists(&exists, s, "x"), TAPE_OK); /* retried */
    assert_int_equal(tape_store_exists(&exists, s, "y"), TAPE_OK);
    assert_int_equal(m->open_calls, 2);
    tape_store_free(s);

    create_open_fail = 1;
    assert_int_equal(tape_store_open(&s, reg, "mini", NULL, TAPE_OPEN_EAGER), TAPE_EIO);
    assert_null(s);
    create_open_fail = 0;
    assert_int_equal(tape_store_open(&s, reg, "mini", NULL, TAPE_OPEN_EAGER), TAPE_OK);
    assert_int_equal(last_created->open_calls, 1);
    assert_int_equal(tape_store_close(s), TAPE_OK);
}

static void test_open_errors(void **state)
{
    (void)state;
    tape_store *s = (tape_store *)1;
    assert_int_equal(tape_store_open(&s, reg, "nope", "{}", 0), TAPE_ENOTFOUND);
    assert_null(s);
    assert_non_null(strstr(tape_errmsg(), "\"nope\""));
    assert_int_equal(tape_store_open(&s, reg, "mini", "{\"lable\":1}", 0), TAPE_ECONFIG);
    assert_non_null(strstr(tape_errmsg(), "\"lable\""));
    assert_int_equal(tape_store_open(&s, reg, "mini", "{\"label\":", 0), TAPE_ECONFIG);
    assert_int_equal(tape_store_open(&s, reg, NULL, "{}", 0), TAPE_EINVAL);
    assert_int_equal(tape_store_open(NULL, reg, "mini", "{}", 0), TAPE_EINVAL);
    assert_int_equal(tape_store_open_spec(&s, reg, "mini:{\"label\":\"x\"}", 0), TAPE_OK);
    tape_store_free(s);
    assert_int_equal(tape_store_open_spec(&s, NULL, "memory:", 0), TAPE_OK);
    assert_string_equal(tape_store_provider(s), "memory");
    tape_store_free(s);
    setenv("TAPESTORE_STORE", "memory:{\"max_tapes\":2}", 1);
    assert_int_equal(tape_store_open_env(&s, NULL, 0), TAPE_OK);
    assert_string_equal(tape_store_provider(s), "memory");
    tape_store_free(s);
    setenv("TAPESTORE_STORE", "memory:{\"max_tapes\":-1}", 1);
    assert_int_equal(tape_store_open_env(&s, NULL, 0), TAPE_ECONFIG);
    assert_non_null(strstr(tape_errmsg(), "\"max_tapes\""));
    unsetenv("TAPESTORE_STORE");
}

static void test_null_and_bad_ids(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    tape *t = NULL;
    int e = 0;
    tape_result *r = NULL;
    tape_frame_iter *it = NULL;
    tape_writer *w = NULL;
    assert_int_equal(tape_store_save(NULL, NULL), TAPE_EINVAL);
    assert_int_equal(tape_store_save(s, NULL), TAPE_EINVAL);
    assert_int_equal(tape_store_load(&t, NULL, "x"), TAPE_EINVAL);
    assert_int_equal(tape_store_load(NULL, s, "x"), TAPE_EINVAL);
    assert_int_equal(tape_store_load(&t, s, NULL), TAPE_EINVAL);
    assert_int_equal(tape_store_delete(s, NULL), TAPE_EINVAL);
    assert_int_equal(tape_store_exists(NULL, s, "x"), TAPE_EINVAL);
    assert_int_equal(tape_store_query(NULL, s, NULL), TAPE_EINVAL);
    assert_int_equal(tape_store_query(&r, NULL, NULL), TAPE_EINVAL);
    assert_int_equal(tape_store_read_frames(NULL, s, "x", 0, 1), TAPE_EINVAL);
    assert_int_equal(tape_store_record(&w, s, NULL), TAPE_EINVAL);
    assert_int_equal(tape_writer_append(NULL, NULL, NULL), TAPE_EINVAL);
    assert_int_equal(tape_writer_finish(NULL), TAPE_EINVAL);
    assert_int_equal(tape_frame_iter_next(NULL, NULL), TAPE_EINVAL);
    const char *bad[] = { "../x", "a/b", "", ".hidden", "a b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tape_store_load(&t, s, bad[i]), TAPE_EINVAL);
        assert_int_equal(tape_store_delete(s, bad[i]), TAPE_EINVAL);
        assert_int_equal(tape_store_exists(&e, s, bad[i]), TAPE_EINVAL);
        assert_int_equal(tape_store_read_frames(&it, s, bad[i], 0, 1), TAPE_EINVAL);
    }
    tape_store_free(NULL);
    assert_int_equal(tape_store_close(NULL), TAPE_OK);
    tape_writer_free(NULL);
    tape_frame_iter_free(NULL);
    tape_result_free(NULL);
    tape_store_free(s);
}

static void test_backend_error_without_message(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    last_created->quiet_failure = 1;
    tape_error_set(TAPE_OK, "stale");
    tape *t = make_tape("q", 0, NULL);
    assert_int_equal(tape_store_save(s, t), TAPE_EIO);
    assert_non_null(strstr(tape_errmsg(), "provider \"mini\": save failed"));
    tape_free(t);
    tape_store_free(s);
}

/* Bad vtables are refused at open, naming what is wrong. */
static tape_backend_ops broken_ops;
static int broken_create(const tape_backend_ops **ops, void **self, void *ud,
                         const tape_config *c)
{
    (void)ud;
    (void)c;
    *ops = &broken_ops;
    *self = calloc(1, sizeof(mini));
    return TAPE_OK;
}

static int half_frames_open(void **out, void *self, const char *id, uint64_t a, uint64_t b)
{
    (void)out;
    (void)self;
    (void)id;
    (void)a;
    (void)b;
    return tape_error_set(TAPE_EUNSUPPORTED, "never called");
}

static void test_bad_vtables(void **state)
{
    (void)state;
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = "broken";
    p.create = broken_create;
    assert_int_equal(tape_registry_register(reg, &p), TAPE_OK);
    tape_store *s = NULL;

    broken_ops = mini_ops;
    broken_ops.version = TAPE_BACKEND_OPS_VERSION + 1;
    assert_int_equal(tape_store_open(&s, reg, "broken", "{}", 0), TAPE_EVERSION);
    assert_non_null(strstr(tape_errmsg(), "version"));

    broken_ops = mini_ops;
    broken_ops.version = 0;
    assert_int_equal(tape_store_open(&s, reg, "broken", "{}", 0), TAPE_EINVAL);
    assert_non_null(strstr(tape_errmsg(), "TAPE_BACKEND_OPS_INIT"));

    /* The _INIT macro gives a versioned vtable with every op absent. */
    tape_backend_ops blank = TAPE_BACKEND_OPS_INIT;
    assert_int_equal(blank.version, TAPE_BACKEND_OPS_VERSION);
    assert_null(blank.save);
    assert_null(blank.control);
    broken_ops = blank;
    broken_ops.free = mini_free; /* so the refused backend is still released */
    assert_int_equal(tape_store_open(&s, reg, "broken", "{}", 0), TAPE_EPROVIDER);
    assert_non_null(strstr(tape_errmsg(), "lacks required op save"));

    broken_ops = mini_ops;
    broken_ops.list = NULL;
    assert_int_equal(tape_store_open(&s, reg, "broken", "{}", 0), TAPE_EPROVIDER);
    assert_non_null(strstr(tape_errmsg(), "lacks required op list"));

    broken_ops = mini_ops;
    broken_ops.frames_open = half_frames_open; /* without frames_next/close */
    assert_int_equal(tape_store_open(&s, reg, "broken", "{}", 0), TAPE_EPROVIDER);
    assert_non_null(strstr(tape_errmsg(), "all together"));
    assert_null(s);
    assert_int_equal(tape_registry_unregister(reg, "broken"), TAPE_OK);
}

/* 8 threads through a backend that is not thread-safe: the core must
 * serialise, and nothing may be lost. */
typedef struct worker {
    tape_store *s;
    int id;
    int failures;
} worker;

static void *work(void *p)
{
    worker *w = p;
    for (int i = 0; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d-%d", w->id, i);
        tape *t = NULL;
        if (tape_new(&t, id) != TAPE_OK || tape_store_save(w->s, t) != TAPE_OK) w->failures++;
        tape_free(t);
        t = NULL;
        if (tape_store_load(&t, w->s, id) != TAPE_OK) w->failures++;
        tape_free(t);
        int e = 0;
        if (tape_store_exists(&e, w->s, id) != TAPE_OK || !e) w->failures++;
    }
    return NULL;
}

static void test_serialised_backend(void **state)
{
    (void)state;
    tape_store *s = open_mini();
    mini *m = last_created;
    pthread_t th[8];
    worker ws[8];
    for (int i = 0; i < 8; i++) {
        ws[i] = (worker){ s, i, 0 };
        pthread_create(&th[i], NULL, work, &ws[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ws[i].failures, 0);
    }
    assert_int_equal(atomic_load(&m->max_inside), 1);
    assert_int_equal(m->count, 800);
    tape_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capabilities_report_fallbacks),
        cmocka_unit_test(test_fallback_exists_stats_query),
        cmocka_unit_test(test_fallback_writer_and_frames),
        cmocka_unit_test(test_writer_outlives_store_handle),
        cmocka_unit_test(test_lazy_and_eager_open),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_null_and_bad_ids),
        cmocka_unit_test(test_backend_error_without_message),
        cmocka_unit_test(test_bad_vtables),
        cmocka_unit_test(test_serialised_backend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
