/*
 * What script providers need of the core (issue 7): re-entry fails fast
 * instead of hanging, no core lock is held across provider code where the
 * design does not need it, provider errors are normalised, out-parameters
 * are cleaned up, errors survive cleanup, and the writer keeps what it
 * acknowledged. A "probe" backend runs hooks inside its ops. Every test
 * runs under alarm(): a deadlock fails the program instead of hanging CI.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rm_rf.h"
#include "tape_test.h"
#include "tapestore/provider.h"

/* ------------------------------------------------------------ the probe */

typedef struct probe probe;
typedef void (*probe_hook)(probe *p, const char *op);

struct probe {
    pthread_mutex_t lock;   /* the probe's own lock, like a GIL */
    tape *tapes[64];
    size_t count;
    probe_hook hook;        /* called at the start of every op */
    const char *hook_op;    /* ...only for this op (NULL: every op) */
    int hook_rc;            /* what the hook's core call returned */
    char hook_msg[512];
    atomic_int inside, max_inside;
    int fail_save;          /* >0: that many saves fail with TAPE_EIO */
    int end_fail;           /* >0: that many writer_end(finalize) fail */
    int append_fail_at;     /* writer_append of this seq fails (-1: none) */
    int writer_ends, frames_closes;
    uint64_t last_to_seq;
};

static probe *last_probe;
static tape_store *hook_store; /* the store the hook calls back into */

/* Test knobs applied at create. */
static unsigned int create_flags;
static int create_native_writer, create_native_frames, create_null_handles;
static int create_set_then_fail;
static int validate_rc;
static int free_sets_error;

static void probe_enter(probe *p, const char *op)
{
    int now = atomic_fetch_add(&p->inside, 1) + 1;
    int seen = atomic_load(&p->max_inside);
    while (now > seen && !atomic_compare_exchange_weak(&p->max_inside, &seen, now)) {
    }
    if (p->hook != NULL && (p->hook_op == NULL || strcmp(p->hook_op, op) == 0)) {
        probe_hook h = p->hook;
        p->hook = NULL; /* once */
        h(p, op);
    }
}

static void probe_leave(probe *p)
{
    atomic_fetch_sub(&p->inside, 1);
}

static long probe_find(probe *p, const char *id)
{
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(tape_id(p->tapes[i]), id) == 0) return (long)i;
    }
    return -1;
}

static int probe_put(probe *p, const tape *t)
{
    tape *copy = NULL;
    int rc = tape_clone(&copy, t);
    if (rc != TAPE_OK) return rc;
    pthread_mutex_lock(&p->lock);
    long i = probe_find(p, tape_id(t));
    if (i >= 0) {
        tape_free(p->tapes[i]);
        p->tapes[i] = copy;
    } else {
        p->tapes[p->count++] = copy;
    }
    pthread_mutex_unlock(&p->lock);
    return TAPE_OK;
}

static int probe_save(void *self, const tape *t)
{
    probe *p = self;
    probe_enter(p, "save");
    int rc;
    if (p->fail_save > 0) {
        p->fail_save--;
        rc = tape_error_set(TAPE_EIO, "probe: disk full");
    } else {
        rc = probe_put(p, t);
    }
    probe_leave(p);
    return rc;
}

static int probe_load(tape **out, void *self, const char *id)
{
    probe *p = self;
    probe_enter(p, "load");
    if (create_set_then_fail) {
        tape_new(out, id); /* set, then fail: the core must free it */
        probe_leave(p);
        return tape_error_set(TAPE_EIO, "probe: load failed after setting *out");
    }
    pthread_mutex_lock(&p->lock);
    long i = probe_find(p, id);
    int rc = i < 0 ? tape_error_set(TAPE_ENOTFOUND, "probe: no tape \"%s\"", id)
                   : tape_clone(out, p->tapes[i]);
    pthread_mutex_unlock(&p->lock);
    probe_leave(p);
    return rc;
}

static int probe_remove(void *self, const char *id)
{
    probe *p = self;
    probe_enter(p, "remove");
    pthread_mutex_lock(&p->lock);
    long i = probe_find(p, id);
    int rc = TAPE_OK;
    if (i < 0) {
        rc = tape_error_set(TAPE_ENOTFOUND, "probe: no tape \"%s\"", id);
    } else {
        tape_free(p->tapes[i]);
        p->tapes[i] = p->tapes[--p->count];
    }
    pthread_mutex_unlock(&p->lock);
    probe_leave(p);
    return rc;
}

static int probe_list(void *self, const tape_query *q, tape_entry_sink sink, void *data)
{
    (void)q;
    probe *p = self;
    probe_enter(p, "list");
    int rc = TAPE_OK;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->count && rc == TAPE_OK; i++) {
        tape_entry *e = NULL;
        rc = tape_entry_from_tape(&e, p->tapes[i]);
        if (rc == TAPE_OK) {
            int stop = sink(data, e);
            tape_entry_free(e);
            if (stop) break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    probe_leave(p);
    return rc;
}

static void probe_free(void *self)
{
    probe *p = self;
    for (size_t i = 0; i < p->count; i++) tape_free(p->tapes[i]);
    pthread_mutex_destroy(&p->lock);
    if (last_probe == p) last_probe = NULL;
    free(p);
    if (free_sets_error) {
        tape_error_set(TAPE_EIO, "probe: message set by free");
        tape_log(TAPE_LOG_INFO, "probe freed");
    }
}

static int open_fails;
static int probe_open(void *self)
{
    probe *p = self;
    probe_enter(p, "open");
    probe_leave(p);
    return open_fails ? tape_error_set(TAPE_EIO, "probe: server unreachable") : TAPE_OK;
}

static int close_fails;
static int probe_close(void *self)
{
    (void)self;
    return close_fails ? tape_error_set(TAPE_EIO, "probe: close could not flush") : TAPE_OK;
}

static int probe_search(tape_result **out, void *self, const tape_query *q)
{
    (void)q;
    probe *p = self;
    probe_enter(p, "search");
    probe_leave(p);
    tape_result_new(out); /* set, then fail */
    return tape_error_set(TAPE_EIO, "probe: search failed after setting *out");
}

static int probe_control(char **out, void *self, const char *op, const char *in)
{
    (void)self;
    (void)in;
    if (strcmp(op, "leak") == 0) {
        *out = malloc(8);
        strcpy(*out, "{}");
        return tape_error_set(TAPE_EIO, "probe: control failed after setting *out");
    }
    if (strcmp(op, "seven") == 0) {
        tape_error_set(TAPE_EIO, "Traceback (most recent call last): ValueError: seven");
        return 7;
    }
    if (strcmp(op, "done") == 0) {
        return TAPE_DONE;
    }
    if (strcmp(op, "quiet") == 0) {
        return TAPE_EIO; /* no message of its own */
    }
    return tape_error_set(TAPE_EUNSUPPORTED, "probe: no op %s", op);
}

/* Native writer: frames go straight into the stored tape. */
typedef struct probe_writer {
    probe *p;
    char id[TAPE_ID_MAX + 1];
} probe_writer;

static int probe_writer_begin(void **out, void *self, const tape *header)
{
    probe *p = self;
    probe_enter(p, "writer_begin");
    int rc = probe_put(p, header);
    probe_leave(p);
    if (rc != TAPE_OK) return rc;
    if (create_null_handles) {
        return TAPE_OK; /* *out left NULL */
    }
    probe_writer *w = calloc(1, sizeof *w);
    w->p = p;
    snprintf(w->id, sizeof w->id, "%s", tape_id(header));
    *out = w;
    return TAPE_OK;
}

static int probe_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    probe_writer *w = writer;
    (void)header;
    if (w->p->append_fail_at >= 0 && tape_frame_seq(f) == (uint64_t)w->p->append_fail_at) {
        w->p->append_fail_at = -1;
        return tape_error_set(TAPE_EBUSY, "probe: database is locked");
    }
    tape_frame *copy = NULL;
    int rc = tape_frame_clone(&copy, f);
    pthread_mutex_lock(&w->p->lock);
    long i = probe_find(w->p, w->id);
    if (rc == TAPE_OK) {
        rc = tape_push_frame(w->p->tapes[i], copy);
        if (rc != TAPE_OK) tape_frame_free(copy);
    }
    pthread_mutex_unlock(&w->p->lock);
    return rc;
}

static int probe_writer_correlate(void *writer, const tape *header, size_t i)
{
    (void)writer;
    (void)header;
    (void)i;
    return TAPE_OK;
}

static int probe_writer_end(void *writer, const tape *header, int finalize)
{
    probe_writer *w = writer;
    probe *p = w->p;
    probe_enter(p, "writer_end");
    p->writer_ends++;
    if (finalize && p->end_fail > 0) {
        p->end_fail--;
        probe_leave(p);
        if (!(create_flags & TAPE_CAP_WRITER_RETRY)) free(w); /* v1 rule: freed either way */
        return tape_error_set(TAPE_EBUSY, "probe: could not commit");
    }
    pthread_mutex_lock(&p->lock);
    long i = probe_find(p, w->id);
    if (i >= 0) {
        tape_set_status(p->tapes[i], tape_status(header));
        tape_set_name(p->tapes[i], tape_name(header));
        while (tape_tag_count(p->tapes[i]) > 0) {
            tape_remove_tag(p->tapes[i], tape_tag_at(p->tapes[i], 0));
        }
        for (size_t k = 0; k < tape_tag_count(header); k++) {
            tape_add_tag(p->tapes[i], tape_tag_at(header, k));
        }
    }
    pthread_mutex_unlock(&p->lock);
    probe_leave(p);
    free(w);
    return TAPE_OK;
}

typedef struct probe_iter {
    probe *p;
    int done;
} probe_iter;

static int probe_frames_open(void **out, void *self, const char *id, uint64_t from,
                             uint64_t to)
{
    (void)id;
    (void)from;
    probe *p = self;
    p->last_to_seq = to;
    probe_iter *it = calloc(1, sizeof *it);
    it->p = p;
    *out = it;
    if (create_null_handles) {
        free(it);
        *out = NULL;
        return TAPE_OK;
    }
    if (create_set_then_fail) {
        return tape_error_set(TAPE_EIO, "probe: frames_open failed after setting *out");
    }
    return TAPE_OK;
}

static int probe_frames_next(const tape_frame **out, void *iter)
{
    (void)out;
    probe_iter *it = iter;
    (void)it;
    return TAPE_DONE;
}

static atomic_int b_arrived;
static void probe_frames_close(void *iter)
{
    probe_iter *it = iter;
    probe *p = it->p;
    atomic_store(&b_arrived, 1); /* reached the provider: no core lock stopped it */
    pthread_mutex_lock(&p->lock); /* the "GIL": waits for whoever holds it */
    p->frames_closes++;
    pthread_mutex_unlock(&p->lock);
    free(it);
}

static tape_backend_ops ops_for_create;

static int probe_create(const tape_backend_ops **ops, void **self, void *ud,
                        const tape_config *c)
{
    (void)ud;
    (void)c;
    probe *p = calloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->append_fail_at = -1;
    last_probe = p;
    tape_backend_ops o = TAPE_BACKEND_OPS_INIT;
    o.flags = create_flags;
    o.save = probe_save;
    o.load = probe_load;
    o.remove = probe_remove;
    o.list = probe_list;
    o.free = probe_free;
    o.open = probe_open;
    o.close = probe_close;
    o.control = probe_control;
    if (create_native_writer) {
        o.writer_begin = probe_writer_begin;
        o.writer_append = probe_writer_append;
        o.writer_correlate = probe_writer_correlate;
        o.writer_end = probe_writer_end;
    }
    if (create_native_frames) {
        o.frames_open = probe_frames_open;
        o.frames_next = probe_frames_next;
        o.frames_close = probe_frames_close;
    }
    if (create_set_then_fail) {
        o.search = probe_search;
    }
    ops_for_create = o;
    *ops = &ops_for_create;
    *self = p;
    return TAPE_OK;
}

static int probe_validate(void *ud, const tape_config *c)
{
    (void)ud;
    (void)c;
    if (validate_rc != 0) {
        tape_error_set(TAPE_EIO, "probe: validate says no");
        return validate_rc;
    }
    return TAPE_OK;
}

static tape_registry *reg;

static int setup(void **state)
{
    (void)state;
    alarm(60); /* a deadlock fails the program */
    create_flags = 0;
    create_native_writer = create_native_frames = create_null_handles = 0;
    create_set_then_fail = validate_rc = free_sets_error = close_fails = open_fails = 0;
    hook_store = NULL;
    if (tape_registry_new(&reg) != TAPE_OK) return -1;
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = "probe";
    p.create = probe_create;
    p.validate = probe_validate;
    return tape_registry_register(reg, &p) == TAPE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tape_registry_free(reg);
    alarm(0);
    return 0;
}

static tape_store *open_probe(void)
{
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, reg, "probe", "{}", 0));
    return s;
}

static tape *small_tape(const char *id, int frames)
{
    tape *t = NULL;
    EXPECT_OK(tape_new(&t, id));
    for (int i = 0; i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = TAPE_DIR_CLIENT_TO_SERVER;
        d.ts_ms = i;
        d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
        EXPECT_OK(tape_append_frame(NULL, t, &d));
    }
    return t;
}

static void append_ping(tape_writer *w, uint64_t *seq)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
    EXPECT_OK(tape_writer_append(seq, w, &d));
}

/* ------------------------------------------------------------ re-entry */

static void hook_exists(probe *p, const char *op)
{
    (void)op;
    int ex = 0;
    p->hook_rc = tape_store_exists(&ex, hook_store, "other");
    snprintf(p->hook_msg, sizeof p->hook_msg, "%s", tape_errmsg());
}

/* A load that calls back into its own serialised store fails at once with
 * TAPE_ESTATE naming the provider and the op (it deadlocked before). */
static void test_reentry_serialised_fails_fast(void **state)
{
    (void)state;
    tape_store *s = open_probe();
    tape *t = small_tape("t1", 1);
    EXPECT_OK(tape_store_save(s, t));
    hook_store = s;
    last_probe->hook = hook_exists;
    last_probe->hook_op = "load";
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, "t1"));
    assert_int_equal(last_probe->hook_rc, TAPE_ESTATE);
    assert_non_null(strstr(last_probe->hook_msg, "provider \"probe\""));
    assert_non_null(strstr(last_probe->hook_msg, "inside its load op"));
    tape_free(back);
    tape_free(t);
    tape_store_free(s);
}

/* open runs under the open lock: a call back into the store from open
 * fails fast too, thread-safe backend or not. */
static void test_reentry_from_open(void **state)
{
    (void)state;
    for (int ts = 0; ts < 2; ts++) {
        create_flags = ts ? TAPE_CAP_THREAD_SAFE : 0;
        tape_store *s = open_probe();
        hook_store = s;
        last_probe->hook = hook_exists;
        last_probe->hook_op = "open";
        int ex = 1;
        EXPECT_OK(tape_store_exists(&ex, s, "t1"));
        assert_int_equal(ex, 0);
        assert_int_equal(last_probe->hook_rc, TAPE_ESTATE);
        assert_non_null(strstr(last_probe->hook_msg, "inside its open op"));
        tape_store_free(s);
    }
}

/* On a thread-safe backend the core takes no lock: re-entry works. */
static void test_reentry_thread_safe_works(void **state)
{
    (void)state;
    create_flags = TAPE_CAP_THREAD_SAFE;
    tape_store *s = open_probe();
    tape *t = small_tape("t1", 1);
    EXPECT_OK(tape_store_save(s, t));
    hook_store = s;
    last_probe->hook = hook_exists;
    last_probe->hook_op = "load";
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, "t1"));
    assert_int_equal(last_probe->hook_rc, TAPE_OK);
    tape_free(back);
    tape_free(t);
    tape_store_free(s);
}

/* The fallback record held rec_lock across the backend's exists/save: a
 * save of another id from inside that save deadlocked. */
static void hook_save_other(probe *p, const char *op)
{
    (void)op;
    tape *o = small_tape("other", 0);
    p->hook_rc = tape_store_save(hook_store, o);
    snprintf(p->hook_msg, sizeof p->hook_msg, "%s", tape_errmsg());
    tape_free(o);
}

static void test_fallback_record_holds_no_lock(void **state)
{
    (void)state;
    create_flags = TAPE_CAP_THREAD_SAFE;
    tape_store *s = open_probe();
    hook_store = s;
    last_probe->hook = hook_save_other;
    last_probe->hook_op = "save";
    tape *h = small_tape("rec", 0);
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    assert_int_equal(last_probe->hook_rc, TAPE_OK);
    int ex = 0;
    EXPECT_OK(tape_store_exists(&ex, s, "other"));
    assert_int_equal(ex, 1);
    EXPECT_OK(tape_writer_finish(w));
    tape_writer_free(w);
    tape_free(h);
    tape_store_free(s);
}

/* Lock order: core locks outside, the provider's lock inside. Thread A
 * runs an op holding the provider's lock; thread B (a binding that has
 * released its GIL) frees an iterator and a writer of the same store,
 * whose close ops take the provider's lock. Nothing may wait on a core
 * lock held by A. */
typedef struct free_args {
    tape_frame_iter *it;
    tape_writer *w;
} free_args;

static atomic_int a_inside;

static atomic_int a_saw_b;
static void hook_hold_lock(probe *p, const char *op)
{
    (void)op;
    pthread_mutex_lock(&p->lock);
    atomic_store(&a_inside, 1);
    /* Hold the provider's lock until B has reached the provider (its
     * frames_close), for at most 5 s: if B waited on a core lock held on
     * A's behalf, it never arrives and the test fails instead of hanging. */
    for (int i = 0; i < 5000 && !atomic_load(&b_arrived); i++) {
        struct timespec ts = { 0, 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&a_saw_b, atomic_load(&b_arrived));
    pthread_mutex_unlock(&p->lock);
}

static void *thread_a(void *arg)
{
    tape_store *s = arg;
    int ex = 0;
    tape_store_exists(&ex, s, "t1"); /* exists falls back to load */
    return NULL;
}

static void *thread_b(void *arg)
{
    free_args *f = arg;
    tape_frame_iter_free(f->it);
    tape_writer_free(f->w);
    return NULL;
}

static void test_lock_order_provider_lock_inside(void **state)
{
    (void)state;
    create_flags = TAPE_CAP_THREAD_SAFE;
    create_native_frames = 1;
    tape_store *s = open_probe();
    tape *t = small_tape("t1", 1);
    EXPECT_OK(tape_store_save(s, t));
    free_args fa = { NULL, NULL };
    EXPECT_OK(tape_store_read_frames(&fa.it, s, "t1", 0, TAPE_SEQ_END));
    tape *h = small_tape("rec", 0);
    EXPECT_OK(tape_store_record(&fa.w, s, h));
    atomic_store(&a_inside, 0);
    atomic_store(&b_arrived, 0);
    atomic_store(&a_saw_b, 0);
    last_probe->hook = hook_hold_lock;
    last_probe->hook_op = "load";
    pthread_t a, b;
    pthread_create(&a, NULL, thread_a, s);
    while (!atomic_load(&a_inside)) {
        sched_yield();
    }
    pthread_create(&b, NULL, thread_b, &fa);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(atomic_load(&a_saw_b), 1); /* B got in while A held the provider lock */
    assert_int_equal(last_probe->frames_closes, 1);
    /* B's abandoned fallback recording was saved with status recording. */
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, "rec"));
    assert_int_equal(tape_status(back), TAPE_STATUS_RECORDING);
    tape_free(back);
    tape_free(h);
    tape_free(t);
    tape_store_free(s);
}

/* A delete racing a fallback record of the same id: the check and the op
 * are one step, so the record cannot start while the delete runs (before,
 * it could, and the delete then removed the new recording). */
static void *record_same_id(void *arg)
{
    probe *p = arg;
    tape *h = small_tape("race", 0);
    tape_writer *w = NULL;
    p->hook_rc = tape_store_record(&w, hook_store, h);
    snprintf(p->hook_msg, sizeof p->hook_msg, "%s", tape_errmsg());
    tape_writer_free(w);
    tape_free(h);
    return NULL;
}

static void hook_record_in_thread(probe *p, const char *op)
{
    (void)op;
    pthread_t th;
    pthread_create(&th, NULL, record_same_id, p);
    pthread_join(th, NULL);
}

static void test_delete_racing_fallback_record(void **state)
{
    (void)state;
    create_flags = TAPE_CAP_THREAD_SAFE;
    for (int save = 0; save < 2; save++) {
        tape_store *s = open_probe();
        tape *t = small_tape("race", 1);
        EXPECT_OK(tape_store_save(s, t));
        hook_store = s;
        last_probe->hook = hook_record_in_thread;
        last_probe->hook_op = save ? "save" : "remove";
        if (save) {
            EXPECT_OK(tape_store_save(s, t));
        } else {
            EXPECT_OK(tape_store_delete(s, "race"));
        }
        assert_int_equal(last_probe->hook_rc, TAPE_EBUSY);
        assert_non_null(strstr(last_probe->hook_msg, "being saved or deleted"));
        /* And the other way round: a recording keeps saves and deletes out. */
        tape *h = small_tape("rec2", 0);
        tape_writer *w = NULL;
        EXPECT_OK(tape_store_record(&w, s, h));
        EXPECT_ERR(tape_store_delete(s, "rec2"), TAPE_EBUSY, "being recorded");
        EXPECT_ERR(tape_store_save(s, h), TAPE_EBUSY, "being recorded");
        EXPECT_OK(tape_writer_finish(w));
        tape_writer_free(w);
        EXPECT_OK(tape_store_delete(s, "rec2"));
        tape_free(h);
        tape_free(t);
        tape_store_free(s);
    }
}

/* ------------------------------------------------------------ errors */

static void test_provider_codes_normalised(void **state)
{
    (void)state;
    tape_store *s = open_probe();
    char *out = NULL;
    /* Unknown code: TAPE_EPROVIDER with the provider's own words. */
    EXPECT_ERR(tape_store_control(&out, s, "seven", NULL), TAPE_EPROVIDER,
               "returned unknown code 7: Traceback (most recent call last): ValueError: seven");
    /* TAPE_DONE is not an answer of control. */
    EXPECT_ERR(tape_store_control(&out, s, "done", NULL), TAPE_EPROVIDER, "unknown code 1");
    /* A code without a message after a failure with the same code: the
     * stale text is not reported as this one's. */
    tape_error_set(TAPE_EIO, "stale message from earlier");
    EXPECT_ERR(tape_store_control(&out, s, "quiet", NULL), TAPE_EIO,
               "provider \"probe\": control failed (TAPE_EIO)");
    assert_null(out);
    /* The set-then-fail out-parameter is freed (ASan/valgrind see a leak
     * otherwise) and NULL. */
    EXPECT_ERR(tape_store_control(&out, s, "leak", NULL), TAPE_EIO, "after setting *out");
    assert_null(out);
    tape_store_free(s);
}

static void test_validate_and_create_codes(void **state)
{
    (void)state;
    tape_store *s = (tape_store *)&s;
    validate_rc = 7;
    EXPECT_ERR(tape_store_open(&s, reg, "probe", "{}", 0), TAPE_EPROVIDER,
               "validate returned unknown code 7: probe: validate says no");
    assert_null(s);
    validate_rc = TAPE_ECONFIG;
    EXPECT_ERR(tape_store_open(&s, reg, "probe", "{}", 0), TAPE_ECONFIG, "validate says no");
    assert_null(s);
}

static void test_out_parameters_cleaned(void **state)
{
    (void)state;
    create_set_then_fail = 1;
    create_native_frames = 1;
    tape_store *s = open_probe();
    tape *t = NULL;
    EXPECT_ERR(tape_store_load(&t, s, "x"), TAPE_EIO, "after setting *out");
    assert_null(t);
    tape_result *r = NULL;
    EXPECT_ERR(tape_store_query(&r, s, NULL), TAPE_EIO, "after setting *out");
    assert_null(r);
    tape_frame_iter *it = NULL;
    EXPECT_ERR(tape_store_read_frames(&it, s, "x", 0, TAPE_SEQ_END), TAPE_EIO,
               "after setting *out");
    assert_null(it);
    assert_int_equal(last_probe->frames_closes, 1); /* its handle was closed */
    tape_store_free(s);
}

static void test_null_native_handles(void **state)
{
    (void)state;
    create_null_handles = 1;
    create_native_writer = 1;
    create_native_frames = 1;
    tape_store *s = open_probe();
    tape *h = small_tape("n1", 0);
    tape_writer *w = NULL;
    EXPECT_ERR(tape_store_record(&w, s, h), TAPE_EPROVIDER, "writer_begin returned no writer");
    assert_null(w);
    tape_frame_iter *it = NULL;
    EXPECT_ERR(tape_store_read_frames(&it, s, "n1", 0, 5), TAPE_EPROVIDER,
               "frames_open returned no iterator");
    assert_null(it);
    tape_free(h);
    tape_store_free(s);
}

/* A failed close or eager open runs free (and destroy) afterwards; what
 * they set must not replace the error the caller is about to read. */
static void test_errors_survive_cleanup(void **state)
{
    (void)state;
    free_sets_error = 1;
    close_fails = 1;
    tape_store *s = open_probe();
    int ex = 0;
    EXPECT_OK(tape_store_exists(&ex, s, "a")); /* opened */
    EXPECT_ERR(tape_store_close(s), TAPE_EIO, "probe: close could not flush");
    close_fails = 0;
    open_fails = 1;
    s = (tape_store *)&s;
    EXPECT_ERR(tape_store_open(&s, reg, "probe", "{}", TAPE_OPEN_EAGER), TAPE_EIO,
               "probe: server unreachable");
    assert_null(s);
    open_fails = 0;
    free_sets_error = 0;
}

/* ------------------------------------------------------------ ABI additions */

static void test_seq_end(void **state)
{
    (void)state;
    create_native_frames = 1;
    tape_store *s = open_probe();
    tape *t = small_tape("t1", 1);
    EXPECT_OK(tape_store_save(s, t));
    tape_frame_iter *it = NULL;
    EXPECT_OK(tape_store_read_frames(&it, s, "t1", 0, (uint64_t)INT64_MAX));
    assert_true(last_probe->last_to_seq == UINT64_MAX); /* one "to the end" */
    tape_frame_iter_free(it);
    EXPECT_OK(tape_store_read_frames(&it, s, "t1", 0, 7));
    assert_true(last_probe->last_to_seq == 7);
    tape_frame_iter_free(it);
    tape_free(t);
    tape_store_free(s);

    /* The core's fallback reads to the end with TAPE_SEQ_END too. */
    create_native_frames = 0;
    tape_store *m = open_probe();
    t = small_tape("t2", 3);
    EXPECT_OK(tape_store_save(m, t));
    EXPECT_OK(tape_store_read_frames(&it, m, "t2", 1, TAPE_SEQ_END));
    const tape_frame *f;
    int n = 0;
    while (tape_frame_iter_next(&f, it) == TAPE_OK) n++;
    assert_int_equal(n, 2);
    tape_frame_iter_free(it);
    tape_free(t);
    tape_store_free(m);
}

static void test_query_page_matches_core(void **state)
{
    (void)state;
    tape_store *m = NULL;
    EXPECT_OK(tape_store_open(&m, NULL, "memory", NULL, 0));
    tape_entry *v[7];
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        tape *t = small_tape(id, i);
        EXPECT_OK(tape_set_created_at(t, 1000 + (i * 37) % 7));
        if (i % 2) EXPECT_OK(tape_add_tag(t, "odd"));
        EXPECT_OK(tape_store_save(m, t));
        EXPECT_OK(tape_entry_from_tape(&v[i], t));
        tape_free(t);
    }
    const char *queries[] = { "{\"limit\":2}", "{\"tags_any\":[\"odd\"],\"limit\":1}",
                              "{\"order_by\":\"frame_count\",\"descending\":true,\"limit\":3}",
                              "{}" };
    for (size_t k = 0; k < 4; k++) {
        tape_query *q = NULL;
        EXPECT_OK(tape_query_parse(&q, queries[k]));
        for (int page = 0; q != NULL && page < 10; page++) {
            tape_result *mine = NULL, *core = NULL;
            EXPECT_OK(tape_query_page(&mine, q, (const tape_entry *const *)v, 7));
            EXPECT_OK(tape_store_query(&core, m, q));
            assert_int_equal(tape_result_count(mine), tape_result_count(core));
            for (size_t i = 0; i < tape_result_count(mine); i++) {
                assert_string_equal(tape_entry_id(tape_result_at(mine, i)),
                                    tape_entry_id(tape_result_at(core, i)));
            }
            const char *c1 = tape_result_next_cursor(mine), *c2 = tape_result_next_cursor(core);
            assert_true((c1 == NULL) == (c2 == NULL));
            tape_query *next = NULL;
            if (c1 != NULL) {
                assert_string_equal(c1, c2);
                EXPECT_OK(tape_query_with_cursor(&next, q, c1));
            }
            tape_query_free(q);
            q = next;
            tape_result_free(mine);
            tape_result_free(core);
        }
    }
    /* text is the caller's: not applied. */
    tape_query *q = NULL;
    EXPECT_OK(tape_query_parse(&q, "{\"text\":\"nowhere\"}"));
    tape_result *r = NULL;
    EXPECT_OK(tape_query_page(&r, q, (const tape_entry *const *)v, 7));
    assert_int_equal(tape_result_count(r), 7);
    tape_result_free(r);
    tape_query_free(q);
    EXPECT_ERR(tape_query_page(&r, NULL, NULL, 0), TAPE_EINVAL, "query is NULL");
    for (int i = 0; i < 7; i++) tape_entry_free(v[i]);
    tape_store_free(m);
}

/* Metadata learned mid-recording reaches the stored tape: the fallback
 * writer's buffer, the memory provider's native writer, the probe's. */
static void check_update_meta(tape_store *s, const char *id)
{
    tape *h = small_tape(id, 0);
    EXPECT_OK(tape_set_name(h, "before"));
    EXPECT_OK(tape_add_tag(h, "old"));
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    append_ping(w, NULL);
    tape *m = small_tape("ignored-id", 0);
    EXPECT_OK(tape_set_name(m, "client x 1.2 / server y 3.4"));
    EXPECT_OK(tape_set_protocol_version(m, "2025-06-18"));
    EXPECT_OK(tape_add_tag(m, "new"));
    EXPECT_OK(tape_writer_update_meta(w, m));
    assert_string_equal(tape_writer_id(w), id); /* meta's id is ignored */
    append_ping(w, NULL);
    EXPECT_OK(tape_writer_finish(w));
    EXPECT_ERR(tape_writer_update_meta(w, m), TAPE_ESTATE, "already finished");
    tape_writer_free(w);
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, id));
    assert_string_equal(tape_name(back), "client x 1.2 / server y 3.4");
    assert_int_equal(tape_tag_count(back), 1);
    assert_string_equal(tape_tag_at(back, 0), "new");
    assert_int_equal(tape_frame_count(back), 2);
    assert_int_equal(tape_status(back), TAPE_STATUS_FINALIZED);
    EXPECT_ERR(tape_writer_update_meta(NULL, m), TAPE_EINVAL, "writer is NULL");
    tape_free(back);
    tape_free(m);
    tape_free(h);
}

static void test_writer_update_meta(void **state)
{
    (void)state;
    tape_store *s = open_probe();
    check_update_meta(s, "fallback");
    tape_store_free(s);
    create_native_writer = 1;
    s = open_probe();
    check_update_meta(s, "native");
    tape_store_free(s);
    tape_store *m = NULL;
    EXPECT_OK(tape_store_open(&m, NULL, "memory", NULL, 0));
    check_update_meta(m, "memory");
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, m, "memory"));
    assert_string_equal(tape_protocol_version(back), "2025-06-18");
    tape_free(back);
    tape_store_free(m);
}

/* ------------------------------------------------------------ the writer rule */

/* Fallback: a finish whose save fails leaves the writer able to retry;
 * nothing acknowledged is lost. */
static void test_fallback_finish_retry(void **state)
{
    (void)state;
    tape_store *s = open_probe();
    tape *h = small_tape("f1", 0);
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    for (int i = 0; i < 5; i++) append_ping(w, NULL);
    last_probe->fail_save = 1;
    EXPECT_ERR(tape_writer_finish(w), TAPE_EIO, "disk full");
    EXPECT_OK(tape_writer_finish(w)); /* the retry */
    tape_writer_free(w);
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, "f1"));
    assert_int_equal(tape_frame_count(back), 5);
    assert_int_equal(tape_status(back), TAPE_STATUS_FINALIZED);
    tape_free(back);

    /* A failed finish then free: kept with status recording. */
    tape *h2 = small_tape("f2", 0);
    EXPECT_OK(tape_store_record(&w, s, h2));
    for (int i = 0; i < 3; i++) append_ping(w, NULL);
    last_probe->fail_save = 1;
    EXPECT_ERR(tape_writer_finish(w), TAPE_EIO, "disk full");
    tape_writer_free(w);
    EXPECT_OK(tape_store_load(&back, s, "f2"));
    assert_int_equal(tape_frame_count(back), 3);
    assert_int_equal(tape_status(back), TAPE_STATUS_RECORDING);
    tape_free(back);
    /* The claim was released: the id can be saved again. */
    EXPECT_OK(tape_store_save(s, h2));
    tape_free(h);
    tape_free(h2);
    tape_store_free(s);
}

/* Native: an append the backend refused is not counted, and the writer
 * goes on with the same seq. */
static void test_native_failed_append_not_counted(void **state)
{
    (void)state;
    create_native_writer = 1;
    tape_store *s = open_probe();
    tape *h = small_tape("a1", 0);
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    uint64_t seq = 99;
    append_ping(w, &seq);
    assert_true(seq == 0);
    last_probe->append_fail_at = 1;
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}";
    EXPECT_ERR(tape_writer_append(&seq, w, &d), TAPE_EBUSY, "database is locked");
    append_ping(w, &seq);
    assert_true(seq == 1);
    EXPECT_OK(tape_writer_finish(w));
    tape_writer_free(w);
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, "a1"));
    assert_int_equal(tape_frame_count(back), 2);
    tape_free(back);
    tape_free(h);
    tape_store_free(s);
}

/* TAPE_CAP_WRITER_RETRY: a failed writer_end(finalize) keeps the writer;
 * without it (the version-1 rule) the writer is gone after the call. */
static void test_native_finish_retry(void **state)
{
    (void)state;
    for (int retry = 0; retry < 2; retry++) {
        create_native_writer = 1;
        create_flags = retry ? TAPE_CAP_WRITER_RETRY : 0;
        tape_store *s = open_probe();
        unsigned int native = 0;
        EXPECT_OK(tape_store_capabilities(&native, NULL, s));
        assert_int_equal((native & TAPE_CAP_WRITER_RETRY) != 0, retry);
        tape *h = small_tape("r1", 0);
        tape_writer *w = NULL;
        EXPECT_OK(tape_store_record(&w, s, h));
        append_ping(w, NULL);
        last_probe->end_fail = 1;
        EXPECT_ERR(tape_writer_finish(w), TAPE_EBUSY, "could not commit");
        if (retry) {
            EXPECT_OK(tape_writer_finish(w));
            assert_int_equal(last_probe->writer_ends, 2);
        } else {
            EXPECT_ERR(tape_writer_finish(w), TAPE_ESTATE, "already finished");
        }
        tape_writer_free(w); /* no writer_end on a writer the backend freed */
        assert_int_equal(last_probe->writer_ends, retry ? 2 : 1);
        tape_free(h);
        tape_store_free(s);
    }
}

/* ------------------------------------------------------------ damaged tapes */

static int warn_count;
static char warn_msg[1024];
static void warn_hook(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level >= TAPE_LOG_WARN) {
        warn_count++;
        snprintf(warn_msg, sizeof warn_msg, "%s", msg);
    }
}

/* One damaged tape must not make text search fail for the whole store; a
 * strict query keeps the error. */
static void test_text_search_skips_damaged_tape(void **state)
{
    (void)state;
    char dir[] = "/tmp/tape-damaged-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"path\":\"%s\"}", dir);
    tape_store *s = NULL;
    EXPECT_OK(tape_store_open(&s, NULL, "filesystem", cfg, 0));
    tape *good = small_tape("good", 2), *bad = small_tape("bad", 3);
    EXPECT_OK(tape_store_save(s, good));
    EXPECT_OK(tape_store_save(s, bad));
    tape_store_free(s);
    /* Damage a middle line of bad.jsonl (same length, so the meta's size
     * still agrees). */
    char path[512];
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    char *second = memchr(buf, '\n', n);
    assert_non_null(second);
    second[2] = '@';
    fseek(f, 0, SEEK_SET);
    fwrite(buf, 1, n, f);
    fclose(f);
    for (int reopen = 0; reopen < 2; reopen++) {
        EXPECT_OK(tape_store_open(&s, NULL, "filesystem", cfg, 0));
        tape_log_set(warn_hook, NULL);
        warn_count = 0;
        tape_query *q = NULL;
        EXPECT_OK(tape_query_parse(&q, "{\"text\":\"ping\"}"));
        tape_result *r = NULL;
        EXPECT_OK(tape_store_query(&r, s, q));
        assert_int_equal(tape_result_count(r), 1);
        assert_string_equal(tape_entry_id(tape_result_at(r, 0)), "good");
        assert_true(warn_count >= 1);
        assert_non_null(strstr(warn_msg, "\"bad\""));
        tape_result_free(r);
        tape_query_free(q);
        EXPECT_OK(tape_query_parse(&q, "{\"text\":\"ping\",\"strict\":true}"));
        EXPECT_ERR(tape_store_query(&r, s, q), TAPE_ECORRUPT, "line");
        assert_null(r);
        tape_query_free(q);
        tape_log_set(NULL, NULL);
        tape_store_free(s);
    }
    tape_free(good);
    tape_free(bad);
    rm_rf(dir);
}

/* ------------------------------------------------------------ sinks */

/* The memory provider calls the list sink without its lock, so a sink may
 * call back into the backend (a provider that delegates to memory). */
typedef struct sink_ctx {
    const tape_backend_ops *ops;
    void *self;
    int rc;
} sink_ctx;

static int reentrant_sink(void *ud, tape_entry *e)
{
    sink_ctx *c = ud;
    int ex = 0;
    c->rc = c->ops->exists(&ex, c->self, tape_entry_id(e));
    return 0;
}

static void test_memory_sink_may_reenter(void **state)
{
    (void)state;
    const tape_provider *p = tape_provider_memory();
    tape_config *cfg = NULL;
    EXPECT_OK(tape_config_parse(&cfg, "{}"));
    const tape_backend_ops *ops = NULL;
    void *self = NULL;
    EXPECT_OK(p->create(&ops, &self, p->userdata, cfg));
    tape *t = small_tape("s1", 1);
    EXPECT_OK(ops->save(self, t));
    sink_ctx c = { ops, self, -100 };
    EXPECT_OK(ops->list(self, NULL, reentrant_sink, &c));
    assert_int_equal(c.rc, TAPE_OK);
    ops->free(self);
    tape_free(t);
    tape_config_free(cfg);
}

/* A finish refused because it re-enters a serialised store leaves the
 * writer as it was (before, the native writer and its lease leaked). */
static tape_writer *hook_writer;
static void hook_finish_writer(probe *p, const char *op)
{
    (void)op;
    p->hook_rc = tape_writer_finish(hook_writer);
    snprintf(p->hook_msg, sizeof p->hook_msg, "%s", tape_errmsg());
    /* A correlation refused the same way does not poison the writer. */
    tape_writer_add_correlation(hook_writer, "c", 0, 0, 1, "ok");
}

static void test_reentrant_finish_keeps_writer(void **state)
{
    (void)state;
    for (int native = 0; native < 2; native++) {
        create_native_writer = native;
        tape_store *s = open_probe();
        tape *t = small_tape("t1", 1);
        EXPECT_OK(tape_store_save(s, t));
        tape *h = small_tape("rw", 0);
        EXPECT_OK(tape_store_record(&hook_writer, s, h));
        append_ping(hook_writer, NULL);
        last_probe->hook = hook_finish_writer;
        last_probe->hook_op = "load";
        tape *back = NULL;
        EXPECT_OK(tape_store_load(&back, s, "t1"));
        tape_free(back);
        assert_int_equal(last_probe->hook_rc, TAPE_ESTATE);
        assert_non_null(strstr(last_probe->hook_msg, "inside its load op"));
        append_ping(hook_writer, NULL); /* still usable */
        EXPECT_OK(tape_writer_finish(hook_writer));
        tape_writer_free(hook_writer);
        EXPECT_OK(tape_store_load(&back, s, "rw"));
        assert_int_equal(tape_frame_count(back), 2);
        /* The fallback keeps correlations in its buffer (no backend call,
         * nothing to refuse); the native one was refused and undone. */
        assert_int_equal(tape_correlation_count(back), native ? 0 : 1);
        assert_int_equal(tape_status(back), TAPE_STATUS_FINALIZED);
        tape_free(back);
        tape_free(h);
        tape_free(t);
        tape_store_free(s);
    }
}

/* A failing create, with and without a message. */
static int create_fails;
static int failing_create(const tape_backend_ops **ops, void **self, void *ud,
                          const tape_config *c)
{
    int rc = probe_create(ops, self, ud, c);
    if (rc == TAPE_OK && create_fails) {
        /* Made a backend, then failed: the core must free it (ASan). */
        return create_fails == 1 ? tape_error_set(TAPE_EIO, "probe: no route to bucket") : 42;
    }
    return rc;
}

static void test_create_failures(void **state)
{
    (void)state;
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = "probe-create";
    p.create = failing_create;
    EXPECT_OK(tape_registry_register(reg, &p));
    tape_store *s = (tape_store *)&s;
    create_fails = 1;
    EXPECT_ERR(tape_store_open(&s, reg, "probe-create", "{}", 0), TAPE_EIO, "no route to bucket");
    assert_null(s);
    create_fails = 2;
    EXPECT_ERR(tape_store_open(&s, reg, "probe-create", "{}", 0), TAPE_EPROVIDER,
               "provider \"probe-create\": create returned unknown code 42");
    assert_null(s);
    create_fails = 0;
}

/* Freeing keeps the caller's error: a finalizer between a failing call and
 * the read of its message must not change it. */
static void test_free_keeps_error(void **state)
{
    (void)state;
    free_sets_error = 1;
    create_native_frames = 1;
    tape_store *s = open_probe();
    tape_frame_iter *it = NULL;
    EXPECT_OK(tape_store_read_frames(&it, s, "x", 0, 1));
    tape *t = NULL;
    EXPECT_ERR(tape_store_load(&t, s, "missing"), TAPE_ENOTFOUND, "probe: no tape \"missing\"");
    tape_store_free(s);    /* not the last reference: the iterator holds one */
    tape_frame_iter_free(it); /* the last one: close, free (which sets an error) */
    assert_int_equal(tape_errcode(), TAPE_ENOTFOUND);
    assert_string_equal(tape_errmsg(), "probe: no tape \"missing\"");
    free_sets_error = 0;
}

/* With TAPE_CAP_WRITER_RETRY, a writer whose finish failed is abandoned
 * through writer_end(0) when freed (its kept state is released). */
static void test_retry_writer_abandoned_at_free(void **state)
{
    (void)state;
    create_native_writer = 1;
    create_flags = TAPE_CAP_WRITER_RETRY;
    tape_store *s = open_probe();
    tape *h = small_tape("ab", 0);
    tape_writer *w = NULL;
    EXPECT_OK(tape_store_record(&w, s, h));
    append_ping(w, NULL);
    last_probe->end_fail = 1;
    EXPECT_ERR(tape_writer_finish(w), TAPE_EBUSY, "could not commit");
    tape_writer_free(w);
    assert_int_equal(last_probe->writer_ends, 2);
    tape *back = NULL;
    EXPECT_OK(tape_store_load(&back, s, "ab"));
    assert_int_equal(tape_status(back), TAPE_STATUS_RECORDING);
    assert_int_equal(tape_frame_count(back), 1);
    tape_free(back);
    tape_free(h);
    tape_store_free(s);
}

/* Learned metadata keeps the correlations recorded before it. */
static void test_update_meta_keeps_correlations(void **state)
{
    (void)state;
    const char *specs[] = { "memory:", NULL };
    for (int k = 0; k < 2; k++) {
        tape_store *s = NULL;
        if (specs[k] != NULL) {
            EXPECT_OK(tape_store_open_spec(&s, NULL, specs[k], 0));
        } else {
            s = open_probe(); /* the fallback writer */
        }
        tape *h = small_tape("uc", 0);
        tape_writer *w = NULL;
        EXPECT_OK(tape_store_record(&w, s, h));
        append_ping(w, NULL);
        append_ping(w, NULL);
        EXPECT_OK(tape_writer_add_correlation(w, "c0", 0, 1, 3, "success"));
        tape *m = small_tape("x", 0);
        EXPECT_OK(tape_set_name(m, "learned"));
        EXPECT_OK(tape_writer_update_meta(w, m));
        append_ping(w, NULL);
        append_ping(w, NULL);
        EXPECT_OK(tape_writer_add_correlation(w, "c1", 2, 3, 4, "success"));
        EXPECT_OK(tape_writer_finish(w));
        tape_writer_free(w);
        tape *back = NULL;
        EXPECT_OK(tape_store_load(&back, s, "uc"));
        assert_int_equal(tape_correlation_count(back), 2);
        const char *cid = NULL;
        EXPECT_OK(tape_correlation_get(&cid, NULL, NULL, NULL, NULL, back, 1));
        assert_string_equal(cid, "c1");
        assert_string_equal(tape_name(back), "learned");
        tape_free(back);
        tape_free(m);
        tape_free(h);
        tape_store_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reentry_serialised_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentry_from_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentry_thread_safe_works, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_record_holds_no_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_order_provider_lock_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_racing_fallback_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_codes_normalised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_and_create_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_parameters_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_native_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_survive_cleanup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_page_matches_core, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_update_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_finish_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_native_failed_append_not_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_native_finish_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_search_skips_damaged_tape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_sink_may_reenter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_finish_keeps_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_keeps_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_writer_abandoned_at_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_meta_keeps_correlations, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
