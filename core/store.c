/*
 * store.c - an open store: dispatch into the backend vtable, the core's
 * fallbacks for optional ops, lazy initialisation, and serialisation of
 * backends that are not thread-safe.
 *
 * Lifetime: writers and frame iterators hold a reference on their store,
 * so the backend is closed and freed when the last of the store handle,
 * its writers and its iterators is released.
 */
#include "codec_internal.h"
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tape_store {
    atomic_uint refs;
    tape_provider_info *prov; /* counted: keeps the provider alive */
    const char *name;         /* borrowed from prov */
    char who[96];             /* "provider \"name\"", for messages */
    const tape_backend_ops *ops;
    void *self;
    int serialize;            /* backend not thread-safe: one call at a time */
    pthread_mutex_t call_lock;
    pthread_mutex_t open_lock;
    atomic_int opened;
    unsigned int native, available;
    /* Claims on ids, for stores recorded through the fallback writer (no
     * native writer ops), where the core itself must keep a second writer,
     * a save or a delete away from a recording. Each check and its claim
     * happen in one step under claim_lock; the lock is never held across a
     * call into the backend. */
    pthread_mutex_t claim_lock;
    struct claim *claims;
    size_t nclaims, capclaims;
};

/* An id in use: recording through a fallback writer, or the target of
 * `ops` saves and deletes in flight. */
struct claim {
    char *id;
    int recording;
    unsigned int ops;
};

struct tape_writer {
    tape_store *s;
    tape *header;   /* frameless; stats kept current */
    tape *buffer;   /* fallback only: the whole tape */
    void *native;   /* native writer state (native ops: never NULL while open) */
    int finished;
    int failed;     /* a correlation could not be recorded: state unknown */
    uint64_t next_seq;
};

struct tape_frame_iter {
    tape_store *s;
    void *native;
    tape *t;        /* fallback: the loaded tape */
    size_t i;
    uint64_t from, to;
};

/* ---------------------------------------------------------------- calls */

/* The calls into backends running on this thread, innermost first. A call
 * that would re-enter a store the core serialises (its call_lock is not
 * recursive), or one that is still being opened, fails at once instead of
 * deadlocking. */
typedef struct call_frame {
    const tape_store *s;
    const char *op;
    unsigned long mark; /* the error state before the op (see checked) */
    struct call_frame *up;
} call_frame;
static _Thread_local call_frame *tls_calls;

static const call_frame *running_in(const tape_store *s, int any)
{
    for (const call_frame *c = tls_calls; c != NULL; c = c->up) {
        if (c->s == s && (any || strcmp(c->op, "open") == 0)) {
            return c;
        }
    }
    return NULL;
}

static int reentry_error(const tape_store *s, const call_frame *c, const char *op)
{
    return tape_error_set(TAPE_ESTATE,
                          "%s: %s called back into its own store from inside its %s op (%s); "
                          "the core does not re-enter a backend it %s",
                          s->who, op, c->op,
                          s->serialize ? "the backend is not thread-safe" : "opening",
                          s->serialize ? "serialises" : "is still opening");
}

/* Begin a call of backend op `op`, noting the error state so that only a
 * message the op sets is taken for its own (nothing is cleared: a caller
 * may still read the previous error). */
static int call_begin(tape_store *s, call_frame *f, const char *op)
{
    const call_frame *c = running_in(s, s->serialize);
    if (c != NULL) {
        return reentry_error(s, c, op);
    }
    if (s->serialize) {
        pthread_mutex_lock(&s->call_lock);
    }
    f->s = s;
    f->op = op;
    f->mark = tape__error_mark();
    f->up = tls_calls;
    tls_calls = f;
    return TAPE_OK;
}

static void call_end(tape_store *s, call_frame *f)
{
    tls_calls = f->up;
    if (s->serialize) {
        pthread_mutex_unlock(&s->call_lock);
    }
}

/* Releasing calls (frames_close, an abandoning writer_end) cannot fail and
 * cannot wait: made from inside an op of the same store (a finalizer, a
 * callback), they run nested on this thread, which already owns the
 * backend. */
static void call_begin_release(tape_store *s, call_frame *f, const char *op)
{
    int nested = s->serialize && running_in(s, 1) != NULL;
    if (s->serialize && !nested) {
        pthread_mutex_lock(&s->call_lock);
    }
    f->s = nested ? NULL : s; /* NULL: call_end_release does not unlock */
    f->op = op;
    f->mark = tape__error_mark();
    f->up = tls_calls;
    tls_calls = f;
}

static void call_end_release(tape_store *s, call_frame *f)
{
    tls_calls = f->up;
    if (s->serialize && f->s != NULL) {
        pthread_mutex_unlock(&s->call_lock);
    }
}

/* What the op returned, normalised: its own message kept, an unknown
 * code mapped to TAPE_EPROVIDER, TAPE_DONE refused outside frames_next. */
/* The one op that may answer TAPE_DONE, told by its name's address (this
 * runs on every call, once per frame of a ranged read). */
static const char OP_FRAMES_NEXT[] = "frames_next";
static int checked(const tape_store *s, int rc, const call_frame *f)
{
    return tape__provider_rc(rc, s->who, f->op, f->op == OP_FRAMES_NEXT, f->mark);
}

static int ensure_open(tape_store *s)
{
    if (atomic_load_explicit(&s->opened, memory_order_acquire)) {
        return TAPE_OK;
    }
    const call_frame *c = running_in(s, 0);
    if (c != NULL) {
        return reentry_error(s, c, "a call");
    }
    int rc = TAPE_OK;
    pthread_mutex_lock(&s->open_lock);
    if (!atomic_load_explicit(&s->opened, memory_order_relaxed)) {
        if (s->ops->open != NULL) {
            call_frame f;
            rc = call_begin(s, &f, "open");
            if (rc == TAPE_OK) {
                rc = checked(s, s->ops->open(s->self), &f);
                call_end(s, &f);
            }
        }
        if (rc == TAPE_OK) {
            atomic_store_explicit(&s->opened, 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&s->open_lock);
    return rc;
}

/* Argument checks shared by the entry points; NO_ID: the call takes no id. */
static const char NO_ID[] = "";
static int enter(tape_store *s, const char *id, const char *fn)
{
    if (s == NULL) {
        return tape_error_set(TAPE_EINVAL, "%s: store is NULL", fn);
    }
    if (id != NO_ID) {
        int rc = tape_id_validate(id);
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    return ensure_open(s);
}

/* ---------------------------------------------------------------- claims */

static int fallback_writer(const tape_store *s)
{
    return s->ops->writer_begin == NULL;
}

static struct claim *claim_find(tape_store *s, const char *id)
{
    for (size_t i = 0; i < s->nclaims; i++) {
        if (strcmp(s->claims[i].id, id) == 0) {
            return &s->claims[i];
        }
    }
    return NULL;
}

static int busy_recording(const char *id)
{
    return tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded by another writer", id);
}

/* Claim `id` (claim_lock held): for a recording, only when nobody uses it;
 * for a save or delete, when it is not being recorded. */
static int claim_locked(tape_store *s, const char *id, int recording)
{
    struct claim *c = claim_find(s, id);
    if (c != NULL && (c->recording || recording)) {
        return c->recording ? busy_recording(id)
                            : tape_error_set(TAPE_EBUSY,
                                             "tape \"%s\" is being saved or deleted by another "
                                             "call",
                                             id);
    }
    if (c == NULL) {
        if (s->nclaims == s->capclaims) {
            size_t cap = s->capclaims != 0 ? s->capclaims * 2 : 4;
            struct claim *grown = realloc(s->claims, cap * sizeof *grown);
            if (grown == NULL) {
                return tape__oom();
            }
            s->claims = grown;
            s->capclaims = cap;
        }
        char *copy = tape__strdup(id);
        if (copy == NULL) {
            return tape__oom();
        }
        c = &s->claims[s->nclaims++];
        c->id = copy;
        c->recording = 0;
        c->ops = 0;
    }
    if (recording) {
        c->recording = 1;
    } else {
        c->ops++;
    }
    return TAPE_OK;
}

static int claim(tape_store *s, const char *id, int recording)
{
    if (!fallback_writer(s)) {
        return TAPE_OK; /* native writers: the backend decides */
    }
    pthread_mutex_lock(&s->claim_lock);
    int rc = claim_locked(s, id, recording);
    pthread_mutex_unlock(&s->claim_lock);
    return rc;
}

static void unclaim(tape_store *s, const char *id, int recording)
{
    if (!fallback_writer(s)) {
        return;
    }
    pthread_mutex_lock(&s->claim_lock);
    struct claim *c = claim_find(s, id);
    if (c != NULL) {
        if (recording) {
            c->recording = 0;
        } else if (c->ops > 0) {
            c->ops--;
        }
        if (!c->recording && c->ops == 0) {
            free(c->id);
            *c = s->claims[--s->nclaims];
        }
    }
    pthread_mutex_unlock(&s->claim_lock);
}

/* ---------------------------------------------------------------- open */

static int check_ops(const tape_backend_ops *ops, const char *name)
{
    if (ops->version == 0) {
        return tape_error_set(TAPE_EINVAL,
                              "provider \"%s\": backend ops version is 0 (initialise them with "
                              "TAPE_BACKEND_OPS_INIT or .version = TAPE_BACKEND_OPS_VERSION)",
                              name);
    }
    if (ops->version > TAPE_BACKEND_OPS_VERSION) {
        return tape_error_set(TAPE_EVERSION,
                              "provider \"%s\": backend ops version %u is not supported (this "
                              "library knows 1..%u)",
                              name, ops->version, (unsigned)TAPE_BACKEND_OPS_VERSION);
    }
    const char *missing = ops->save == NULL     ? "save"
                          : ops->load == NULL   ? "load"
                          : ops->remove == NULL ? "remove"
                          : ops->list == NULL   ? "list"
                          : ops->free == NULL   ? "free"
                                                : NULL;
    if (missing != NULL) {
        return tape_error_set(TAPE_EPROVIDER, "provider \"%s\": backend lacks required op %s",
                              name, missing);
    }
    int w = (ops->writer_begin != NULL) + (ops->writer_append != NULL) +
            (ops->writer_correlate != NULL) + (ops->writer_end != NULL);
    int f = (ops->frames_open != NULL) + (ops->frames_next != NULL) +
            (ops->frames_close != NULL);
    if ((w != 0 && w != 4) || (f != 0 && f != 3)) {
        return tape_error_set(TAPE_EPROVIDER,
                              "provider \"%s\": writer ops (4) and frame ops (3) must be "
                              "given all together or not at all",
                              name);
    }
    return TAPE_OK;
}

/* Release a backend that will not become a store, keeping the error the
 * caller is about to read (free may log or set errors of its own). */
static void release_backend(const tape_backend_ops *ops, void *self)
{
    if (ops != NULL && ops->free != NULL) {
        tape__saved_error e;
        tape__error_save(&e);
        ops->free(self);
        tape__error_restore(&e);
    }
}

static int store_open_config(tape_store **out, tape_registry *reg, const char *provider,
                             const tape_config *cfg, unsigned int flags)
{
    tape_provider_info *info = NULL;
    int rc = tape_registry_find(&info, reg != NULL ? reg : tape_registry_default(), provider);
    if (rc != TAPE_OK) {
        return rc;
    }
    const tape_provider *p = tape__provider_info_struct(info);
    char who[96];
    snprintf(who, sizeof who, "provider \"%s\"", p->name);
    if (p->validate != NULL) {
        unsigned long mark = tape__error_mark();
        rc = tape__provider_rc(p->validate(p->userdata, cfg), who, "validate", 0, mark);
        if (rc != TAPE_OK) {
            tape__saved_error e;
            tape__error_save(&e);
            tape_provider_info_free(info); /* may run destroy */
            tape__error_restore(&e);
            return rc;
        }
    }
    const tape_backend_ops *ops = NULL;
    void *self = NULL;
    unsigned long mark = tape__error_mark();
    rc = tape__provider_rc(p->create(&ops, &self, p->userdata, cfg), who, "create", 0, mark);
    if (rc == TAPE_OK && ops == NULL) {
        rc = tape_error_set(TAPE_EPROVIDER, "%s: create returned no backend", who);
    }
    if (rc == TAPE_OK) {
        rc = check_ops(ops, p->name);
    }
    tape_store *s = rc == TAPE_OK ? calloc(1, sizeof *s) : NULL;
    if (rc == TAPE_OK && s == NULL) {
        rc = tape__oom();
    }
    if (rc != TAPE_OK) {
        /* `free` sits at the same place in every version of the vtable:
         * release what create made even when it failed after making it,
         * or the vtable is refused. */
        release_backend(ops, self);
        tape__saved_error e;
        tape__error_save(&e);
        tape_provider_info_free(info); /* may run destroy */
        tape__error_restore(&e);
        return rc;
    }
    atomic_init(&s->refs, 1);
    atomic_init(&s->opened, 0);
    s->prov = info;
    s->name = tape_provider_info_name(info);
    memcpy(s->who, who, sizeof who);
    s->ops = ops;
    s->self = self;
    s->serialize = !(ops->flags & TAPE_CAP_THREAD_SAFE);
    pthread_mutex_init(&s->call_lock, NULL);
    pthread_mutex_init(&s->open_lock, NULL);
    pthread_mutex_init(&s->claim_lock, NULL);
    s->native = (ops->flags & (TAPE_CAP_THREAD_SAFE | TAPE_CAP_PERSISTENT)) |
                (ops->exists ? TAPE_CAP_EXISTS : 0) | (ops->search ? TAPE_CAP_SEARCH : 0) |
                (ops->stats ? TAPE_CAP_STATS : 0) | (ops->writer_begin ? TAPE_CAP_WRITER : 0) |
                (ops->writer_begin && (ops->flags & TAPE_CAP_WRITER_RETRY)
                     ? TAPE_CAP_WRITER_RETRY
                     : 0) |
                (ops->frames_open ? TAPE_CAP_READ_FRAMES : 0) |
                (ops->control ? TAPE_CAP_CONTROL : 0);
    /* Everything but control has a core fallback; calls are always safe
     * from any thread because the core serialises when the backend can't.
     * The fallback writer retries a failed finish too. */
    s->available = s->native | TAPE_CAP_EXISTS | TAPE_CAP_SEARCH | TAPE_CAP_STATS |
                   TAPE_CAP_WRITER | TAPE_CAP_READ_FRAMES | TAPE_CAP_THREAD_SAFE |
                   (ops->writer_begin ? 0 : TAPE_CAP_WRITER_RETRY);
    if (flags & TAPE_OPEN_EAGER) {
        rc = ensure_open(s);
        if (rc != TAPE_OK) {
            tape__saved_error e;
            tape__error_save(&e);
            tape_store_free(s);
            tape__error_restore(&e);
            return rc;
        }
    }
    *out = s;
    return TAPE_OK;
}

int tape_store_open(tape_store **out, tape_registry *reg, const char *provider,
                    const char *config_json, unsigned int flags)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_open: out is NULL");
    }
    *out = NULL;
    if (provider == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_open: provider is NULL");
    }
    tape_config *cfg = NULL;
    int rc = tape_config_parse(&cfg, config_json);
    if (rc != TAPE_OK) {
        return rc;
    }
    rc = store_open_config(out, reg, provider, cfg, flags);
    tape_config_free(cfg);
    return rc;
}

int tape_store_open_spec(tape_store **out, tape_registry *reg, const char *spec,
                         unsigned int flags)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_open_spec: out is NULL");
    }
    *out = NULL;
    char *name = NULL;
    tape_config *cfg = NULL;
    int rc = tape_config_parse_spec(&name, &cfg, spec);
    if (rc != TAPE_OK) {
        return rc;
    }
    rc = store_open_config(out, reg, name, cfg, flags);
    tape_config_free(cfg);
    tape_string_free(name);
    return rc;
}

int tape_store_open_env(tape_store **out, tape_registry *reg, unsigned int flags)
{
    const char *spec = getenv("TAPESTORE_STORE");
    if (spec == NULL || *spec == '\0') {
        spec = "filesystem:./tapes";
    }
    return tape_store_open_spec(out, reg, spec, flags);
}

static tape_store *store_ref(tape_store *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

/* Drops a reference; the last one closes (if opened) and frees. The
 * error of a failed close survives the free and destroy that follow. */
static int store_unref(tape_store *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) {
        return TAPE_OK;
    }
    int rc = TAPE_OK;
    if (s->ops->close != NULL && atomic_load(&s->opened)) {
        call_frame f;
        call_begin_release(s, &f, "close");
        rc = checked(s, s->ops->close(s->self), &f);
        call_end_release(s, &f);
    }
    tape__saved_error e; /* close's error, or the caller's: free and destroy keep it */
    tape__error_save(&e);
    s->ops->free(s->self);
    pthread_mutex_destroy(&s->call_lock);
    pthread_mutex_destroy(&s->open_lock);
    pthread_mutex_destroy(&s->claim_lock);
    free(s->claims); /* empty: every writer and every call held a reference */
    tape_provider_info_free(s->prov);
    free(s);
    tape__error_restore(&e);
    return rc;
}

int tape_store_close(tape_store *s)
{
    return s == NULL ? TAPE_OK : store_unref(s);
}

/* The free functions report nothing, so they leave this thread's error as
 * they found it: a binding's finalizer may run between a failing call and
 * the read of its message. */
void tape_store_free(tape_store *s)
{
    if (s == NULL) {
        return;
    }
    tape__saved_error e;
    tape__error_save(&e);
    if (store_unref(s) != TAPE_OK) {
        tape_log(TAPE_LOG_ERROR, "closing store: %s", tape_errmsg());
    }
    tape__error_restore(&e);
}

const char *tape_store_provider(const tape_store *s)
{
    return s != NULL ? s->name : NULL;
}

int tape_store_capabilities(unsigned int *out_native, unsigned int *out_available,
                            tape_store *s)
{
    if (s == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_capabilities: store is NULL");
    }
    if (out_native != NULL) {
        *out_native = s->native;
    }
    if (out_available != NULL) {
        *out_available = s->available;
    }
    return TAPE_OK;
}

/* ---------------------------------------------------------------- basic ops */

/* One call of a backend op: begin (re-entry check, lock, error cleared),
 * the op, the result normalised. CALL evaluates `expr` only when the
 * call could begin. */
#define CALL(rc, s, opname, expr)                                                            \
    do {                                                                                     \
        call_frame f_;                                                                       \
        (rc) = call_begin((s), &f_, (opname));                                               \
        if ((rc) == TAPE_OK) {                                                               \
            (rc) = checked((s), (expr), &f_);                                                \
            call_end((s), &f_);                                                              \
        }                                                                                    \
    } while (0)

int tape_store_save(tape_store *s, const tape *t)
{
    if (t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_save: tape is NULL");
    }
    int rc = enter(s, tape_id(t), "tape_store_save");
    if (rc == TAPE_OK) {
        rc = claim(s, tape_id(t), 0);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    CALL(rc, s, "save", s->ops->save(s->self, t));
    unclaim(s, tape_id(t), 0);
    return rc;
}

/* An op that set an out-parameter and then failed: the core frees what
 * it made, so the caller sees NULL with the error. */
static int load_op(tape **out, tape_store *s, const char *id)
{
    int rc;
    CALL(rc, s, "load", s->ops->load(out, s->self, id));
    if (rc != TAPE_OK && *out != NULL) {
        tape_free(*out);
        *out = NULL;
    } else if (rc == TAPE_OK && *out == NULL) {
        rc = tape_error_set(TAPE_EPROVIDER, "%s: load returned no tape", s->who);
    }
    return rc;
}

int tape_store_load(tape **out, tape_store *s, const char *id)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_load: out is NULL");
    }
    *out = NULL;
    int rc = enter(s, id, "tape_store_load");
    return rc != TAPE_OK ? rc : load_op(out, s, id);
}

int tape_store_delete(tape_store *s, const char *id)
{
    int rc = enter(s, id, "tape_store_delete");
    if (rc == TAPE_OK) {
        rc = claim(s, id, 0);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    CALL(rc, s, "remove", s->ops->remove(s->self, id));
    unclaim(s, id, 0);
    return rc;
}

static int exists_op(int *out_exists, tape_store *s, const char *id)
{
    int rc;
    *out_exists = 0;
    if (s->ops->exists != NULL) {
        CALL(rc, s, "exists", s->ops->exists(out_exists, s->self, id));
        if (rc != TAPE_OK) {
            *out_exists = 0;
        } else {
            *out_exists = *out_exists != 0;
        }
        return rc;
    }
    /* Fallback: a load that finds nothing. */
    tape *t = NULL;
    rc = load_op(&t, s, id);
    tape_free(t);
    if (rc == TAPE_ENOTFOUND) {
        return TAPE_OK;
    }
    if (rc == TAPE_OK) {
        *out_exists = 1;
    }
    return rc;
}

int tape_store_exists(int *out_exists, tape_store *s, const char *id)
{
    if (out_exists == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_exists: out is NULL");
    }
    *out_exists = 0;
    int rc = enter(s, id, "tape_store_exists");
    return rc != TAPE_OK ? rc : exists_op(out_exists, s, id);
}

/* ---------------------------------------------------------------- listing */

typedef struct entry_vec {
    tape_entry **items;
    size_t count, cap;
    int failed;
} entry_vec;

/* The core's sink: it only takes a reference (never calls into the core
 * or the backend), so a backend may call it with its own lock held. */
static int collect_entry(void *ud, tape_entry *e)
{
    entry_vec *v = ud;
    if (e == NULL) {
        return 0;
    }
    if (v->count == v->cap) {
        size_t cap = v->cap != 0 ? v->cap * 2 : 256;
        tape_entry **items = realloc(v->items, cap * sizeof *items);
        if (items == NULL) {
            v->failed = 1;
            return 1;
        }
        v->items = items;
        v->cap = cap;
    }
    v->items[v->count++] = tape_entry_ref(e);
    return 0;
}

static void entry_vec_clear(entry_vec *v)
{
    for (size_t i = 0; i < v->count; i++) {
        tape_entry_free(v->items[i]);
    }
    free(v->items);
    memset(v, 0, sizeof *v);
}

static int list_all(entry_vec *v, tape_store *s, const tape_query *q)
{
    int rc;
    CALL(rc, s, "list", s->ops->list(s->self, q, collect_entry, v));
    if (rc == TAPE_OK && v->failed) {
        rc = tape__oom();
    }
    if (rc != TAPE_OK) {
        entry_vec_clear(v);
    }
    return rc;
}

typedef struct text_ctx {
    tape_store *s;
    const tape_query *q;
    int strict;
} text_ctx;

/* The text term needs frames: load each candidate the matcher asks about.
 * A tape that cannot be read is not a match: it is reported to the log
 * hook and the query goes on, unless the query is strict. */
static int text_match_by_load(int *out_match, void *ud, const tape_entry *e)
{
    text_ctx *ctx = ud;
    tape *t = NULL;
    *out_match = 0;
    int rc = load_op(&t, ctx->s, tape_entry_id(e));
    if (rc == TAPE_ENOTFOUND) {
        return TAPE_OK; /* deleted since the listing: not a match */
    }
    if (rc == TAPE_ECORRUPT || rc == TAPE_ELIMIT) {
        if (ctx->strict) {
            return rc;
        }
        tape_log(TAPE_LOG_WARN, "%s: text search skips tape \"%s\", which cannot be read: %s",
                 ctx->s->who, tape_entry_id(e), tape_errmsg());
        return TAPE_OK;
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    *out_match = tape_query_match_tape(ctx->q, t);
    tape_free(t);
    return TAPE_OK;
}

int tape_store_query(tape_result **out, tape_store *s, const tape_query *q)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_query: out is NULL");
    }
    *out = NULL;
    int rc = enter(s, NO_ID, "tape_store_query");
    if (rc != TAPE_OK) {
        return rc;
    }
    tape_query *all = NULL;
    if (q == NULL) {
        rc = tape_query_parse(&all, NULL);
        if (rc != TAPE_OK) {
            return rc;
        }
        q = all;
    }
    if (s->ops->search != NULL) {
        CALL(rc, s, "search", s->ops->search(out, s->self, q));
        if (rc != TAPE_OK && *out != NULL) {
            tape_result_free(*out);
            *out = NULL;
        } else if (rc == TAPE_OK && *out == NULL) {
            rc = tape_error_set(TAPE_EPROVIDER, "%s: search returned no result", s->who);
        }
    } else {
        entry_vec v = { 0 };
        rc = list_all(&v, s, q);
        if (rc == TAPE_OK) {
            text_ctx ctx = { s, q, tape_query_int(q, TAPE_Q_STRICT) != 0 };
            rc = tape__query_run(out, q, v.items, v.count, text_match_by_load, &ctx);
        }
        entry_vec_clear(&v);
    }
    tape_query_free(all);
    return rc;
}

int tape_store_stats_get(tape_store_stats *out, tape_store *s)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_stats_get: out is NULL");
    }
    if (out->version == 0) {
        return tape_error_set(TAPE_EINVAL, "tape_store_stats_get: out->version is 0 (initialise "
                                           "it with TAPE_STORE_STATS_INIT)");
    }
    int rc = enter(s, NO_ID, "tape_store_stats_get");
    if (rc != TAPE_OK) {
        return rc;
    }
    tape_store_stats st = TAPE_STORE_STATS_INIT;
    if (s->ops->stats != NULL) {
        CALL(rc, s, "stats", s->ops->stats(&st, s->self));
    } else {
        entry_vec v = { 0 };
        rc = list_all(&v, s, NULL);
        for (size_t i = 0; rc == TAPE_OK && i < v.count; i++) {
            tape_stats ts = TAPE_STATS_INIT;
            rc = tape_entry_get_stats(&ts, v.items[i]);
            st.tape_count++;
            st.frame_count += ts.frame_count;
            st.total_bytes += ts.file_size_bytes;
        }
        entry_vec_clear(&v);
    }
    if (rc == TAPE_OK) {
        /* Version 1 is the only layout so far: every caller's struct holds
         * all of it. A version 2 must copy only the caller's version here. */
        unsigned int v = out->version;
        *out = st;
        out->version = v;
    }
    return rc;
}

int tape_store_control(char **out_json, tape_store *s, const char *op, const char *in_json)
{
    if (out_json == NULL || op == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_control: NULL argument");
    }
    *out_json = NULL;
    int rc = enter(s, NO_ID, "tape_store_control");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (s->ops->control == NULL) {
        return tape_error_set(TAPE_EUNSUPPORTED, "provider \"%s\" has no control op \"%.80s\"",
                              s->name, op);
    }
    CALL(rc, s, "control", s->ops->control(out_json, s->self, op, in_json));
    if (rc != TAPE_OK && *out_json != NULL) {
        tape_string_free(*out_json);
        *out_json = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- writer */

/* A header's frame counters, to roll back a frame the backend refused. */
typedef struct stats_snapshot {
    uint64_t frame_count, last_sequence, c2s, s2c, error_count, accounted_bytes;
    int64_t duration_ms;
} stats_snapshot;

static void stats_save(stats_snapshot *k, const tape *t)
{
    k->frame_count = t->frame_count;
    k->last_sequence = t->last_sequence;
    k->c2s = t->c2s;
    k->s2c = t->s2c;
    k->error_count = t->error_count;
    k->accounted_bytes = t->accounted_bytes;
    k->duration_ms = t->duration_ms;
}

static void stats_restore(tape *t, const stats_snapshot *k)
{
    t->frame_count = k->frame_count;
    t->last_sequence = k->last_sequence;
    t->c2s = k->c2s;
    t->s2c = k->s2c;
    t->error_count = k->error_count;
    t->accounted_bytes = k->accounted_bytes;
    t->duration_ms = k->duration_ms;
}

/* The fallback writer: claim the id, check it is free, save the header
 * so the recording is visible. No core lock is held across the backend
 * calls; the claim keeps saves, deletes and other writers away. */
static int fallback_begin(tape_writer *w, tape_store *s)
{
    const char *id = tape_id(w->header);
    int rc = claim(s, id, 1);
    if (rc != TAPE_OK) {
        return rc;
    }
    int exists = 0;
    rc = exists_op(&exists, s, id);
    if (rc == TAPE_OK && exists) {
        rc = tape_error_set(TAPE_EEXISTS, "tape \"%s\" already exists", id);
    }
    if (rc == TAPE_OK) {
        rc = tape_clone_meta(&w->buffer, w->header);
    }
    if (rc == TAPE_OK) {
        CALL(rc, s, "save", s->ops->save(s->self, w->buffer));
    }
    if (rc != TAPE_OK) {
        unclaim(s, id, 1);
    }
    return rc;
}

int tape_store_record(tape_writer **out, tape_store *s, const tape *header)
{
    if (out == NULL || header == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_record: NULL argument");
    }
    *out = NULL;
    int rc = enter(s, tape_id(header), "tape_store_record");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (tape_frame_count(header) != 0 || tape_correlation_count(header) != 0) {
        return tape_error_set(TAPE_EINVAL,
                              "tape_store_record: the header tape must have no frames or "
                              "correlations (append them through the writer)");
    }
    tape_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return tape__oom();
    }
    rc = tape_clone_meta(&w->header, header);
    if (rc == TAPE_OK) {
        rc = tape_set_status(w->header, TAPE_STATUS_RECORDING);
    }
    if (rc == TAPE_OK && tape_updated_at(w->header) == TAPE_TIME_NONE) {
        rc = tape_set_updated_at(w->header, tape__now_ms());
    }
    if (rc == TAPE_OK && !fallback_writer(s)) {
        CALL(rc, s, "writer_begin", s->ops->writer_begin(&w->native, s->self, w->header));
        if (rc == TAPE_OK && w->native == NULL) {
            rc = tape_error_set(TAPE_EPROVIDER, "%s: writer_begin returned no writer", s->who);
        } else if (rc != TAPE_OK && w->native != NULL) {
            /* Set, then failed: the only way to release it is to end it. */
            call_frame f;
            tape__saved_error e;
            tape__error_save(&e);
            call_begin_release(s, &f, "writer_end");
            s->ops->writer_end(w->native, w->header, 0);
            call_end_release(s, &f);
            tape__error_restore(&e);
            w->native = NULL;
        }
    } else if (rc == TAPE_OK) {
        rc = fallback_begin(w, s);
    }
    if (rc != TAPE_OK) {
        tape_free(w->header);
        tape_free(w->buffer);
        free(w);
        return rc;
    }
    w->s = store_ref(s);
    *out = w;
    return TAPE_OK;
}

static int writer_usable(tape_writer *w, const char *fn)
{
    if (w == NULL) {
        return tape_error_set(TAPE_EINVAL, "%s: writer is NULL", fn);
    }
    if (w->finished) {
        return tape_error_set(TAPE_ESTATE, "%s: tape \"%s\" is already finished", fn,
                              tape_id(w->header));
    }
    if (w->failed) {
        return tape_error_set(TAPE_ESTATE,
                              "%s: recording a correlation of tape \"%s\" failed; the writer "
                              "is unusable",
                              fn, tape_id(w->header));
    }
    return TAPE_OK;
}

int tape_writer_append(uint64_t *out_seq, tape_writer *w, const tape_frame_desc *desc)
{
    int rc = writer_usable(w, "tape_writer_append");
    if (rc != TAPE_OK) {
        return rc;
    }
    tape_frame *f = NULL;
    rc = tape_frame_new(&f, w->header, w->next_seq, desc);
    if (rc != TAPE_OK) {
        return rc; /* bad input: nothing was written, the writer goes on */
    }
    if (!fallback_writer(w->s)) {
        /* The backend sees the header with this frame counted; when it
         * refuses the frame (not stored, by the vtable's rule) the count
         * is rolled back and the writer goes on. */
        stats_snapshot snap;
        stats_save(&snap, w->header);
        rc = tape_account_frame(w->header, f);
        if (rc == TAPE_OK) {
            CALL(rc, w->s, "writer_append", w->s->ops->writer_append(w->native, f, w->header));
            if (rc != TAPE_OK) {
                stats_restore(w->header, &snap);
            }
        }
        tape_frame_free(f);
    } else {
        /* Counted in the header first: both checks are the same, and a
         * failed push (out of memory) is rolled back, not stored. */
        stats_snapshot snap;
        stats_save(&snap, w->header);
        rc = tape_account_frame(w->header, f);
        if (rc == TAPE_OK) {
            rc = tape_push_frame(w->buffer, f); /* takes f on success */
            if (rc != TAPE_OK) {
                stats_restore(w->header, &snap);
            }
        }
        if (rc != TAPE_OK) {
            tape_frame_free(f);
        }
    }
    if (rc == TAPE_OK) {
        if (out_seq != NULL) {
            *out_seq = w->next_seq;
        }
        w->next_seq++;
    }
    return rc;
}

int tape_writer_add_correlation(tape_writer *w, const char *id, uint64_t request_seq,
                                uint64_t response_seq, int64_t rtt_ms, const char *status)
{
    int rc = writer_usable(w, "tape_writer_add_correlation");
    if (rc != TAPE_OK) {
        return rc;
    }
    rc = tape_add_correlation(w->header, id, request_seq, response_seq, rtt_ms, status);
    if (rc != TAPE_OK) {
        return rc;
    }
    if (!fallback_writer(w->s)) {
        call_frame f;
        rc = call_begin(w->s, &f, "writer_correlate");
        if (rc != TAPE_OK) {
            /* Refused before the backend saw it: undo, the writer goes on. */
            tape__drop_last_correlation(w->header);
            return rc;
        }
        rc = checked(w->s,
                     w->s->ops->writer_correlate(w->native, w->header,
                                                 tape_correlation_count(w->header) - 1),
                     &f);
        call_end(w->s, &f);
    } else {
        rc = tape_add_correlation(w->buffer, id, request_seq, response_seq, rtt_ms, status);
        if (rc != TAPE_OK) {
            tape__drop_last_correlation(w->header); /* out of memory: not recorded */
            return rc;
        }
    }
    if (rc != TAPE_OK) {
        w->failed = 1; /* the backend's state is unknown */
    }
    return rc;
}

int tape_writer_update_meta(tape_writer *w, const tape *meta)
{
    int rc = writer_usable(w, "tape_writer_update_meta");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (meta == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_writer_update_meta: meta is NULL");
    }
    /* Tried on a frameless copy first, so a value the setters refuse
     * changes nothing; then applied in place, so the header keeps its
     * correlations and stats. Only running out of memory midway can leave
     * part of the update applied. */
    tape *probe = NULL;
    rc = tape_clone_meta(&probe, w->header);
    if (rc == TAPE_OK) {
        rc = tape_copy_learned_meta(probe, meta);
    }
    tape_free(probe);
    if (rc == TAPE_OK) {
        rc = tape_copy_learned_meta(w->header, meta);
    }
    if (rc == TAPE_OK && w->buffer != NULL) {
        rc = tape_copy_learned_meta(w->buffer, meta);
    }
    return rc;
}

/* Ends the recording; finalize = 0 abandons (frames so far stay, status
 * recording). A finish that fails leaves the writer unfinished when the
 * backend keeps its state (the fallback, or TAPE_CAP_WRITER_RETRY), so the
 * caller may retry and tape_writer_free still abandons it. */
static int writer_end(tape_writer *w, int finalize)
{
    tape_store *s = w->s;
    int64_t now = tape__now_ms();
    tape *target = fallback_writer(s) ? w->buffer : w->header;
    int rc = tape_set_status(target, finalize ? TAPE_STATUS_FINALIZED : TAPE_STATUS_RECORDING);
    if (rc == TAPE_OK) {
        rc = tape_set_finalized_at(target, finalize ? now : TAPE_TIME_NONE);
    }
    if (rc == TAPE_OK) {
        rc = tape_set_updated_at(target, now);
    }
    if (rc != TAPE_OK && finalize) {
        return rc; /* nothing was ended: the writer stays as it was */
    }
    int keeps = fallback_writer(s) || (s->ops->flags & TAPE_CAP_WRITER_RETRY);
    if (finalize) {
        /* A finish refused before reaching the backend (re-entry) leaves
         * the writer exactly as it was. */
        call_frame probe;
        int begin_rc = call_begin(s, &probe, fallback_writer(s) ? "save" : "writer_end");
        if (begin_rc != TAPE_OK) {
            tape_set_status(target, TAPE_STATUS_RECORDING);
            tape_set_finalized_at(target, TAPE_TIME_NONE);
            return begin_rc;
        }
        call_end(s, &probe);
    }
    if (!fallback_writer(s)) {
        int end_rc;
        if (finalize) {
            CALL(end_rc, s, "writer_end", s->ops->writer_end(w->native, w->header, 1));
        } else {
            call_frame f;
            call_begin_release(s, &f, "writer_end");
            end_rc = checked(s, s->ops->writer_end(w->native, w->header, 0), &f);
            call_end_release(s, &f);
        }
        if (end_rc == TAPE_OK || !finalize || !keeps) {
            w->native = NULL; /* freed by writer_end */
            w->finished = 1;
        }
        rc = end_rc;
    } else {
        int save_rc;
        if (finalize) {
            CALL(save_rc, s, "save", s->ops->save(s->self, w->buffer));
        } else {
            call_frame f;
            call_begin_release(s, &f, "save");
            save_rc = checked(s, s->ops->save(s->self, w->buffer), &f);
            call_end_release(s, &f);
        }
        if (save_rc == TAPE_OK || !finalize) {
            unclaim(s, tape_id(w->header), 1);
            w->finished = 1;
        }
        rc = save_rc;
    }
    if (rc != TAPE_OK && finalize && !w->finished) {
        /* Back to recording, for the retry or the abandon at free. */
        tape_set_status(target, TAPE_STATUS_RECORDING);
        tape_set_finalized_at(target, TAPE_TIME_NONE);
    }
    return rc;
}

int tape_writer_finish(tape_writer *w)
{
    int rc = writer_usable(w, "tape_writer_finish");
    return rc != TAPE_OK ? rc : writer_end(w, 1);
}

void tape_writer_free(tape_writer *w)
{
    if (w == NULL) {
        return;
    }
    tape__saved_error e;
    tape__error_save(&e);
    if (!w->finished && writer_end(w, 0) != TAPE_OK) {
        tape_log(TAPE_LOG_ERROR, "abandoning recording of tape \"%s\": %s", tape_id(w->header),
                 tape_errmsg());
    }
    tape__error_restore(&e);
    tape_store_free(w->s);
    tape_free(w->header);
    tape_free(w->buffer);
    free(w);
}

const char *tape_writer_id(const tape_writer *w)
{
    return w != NULL ? tape_id(w->header) : NULL;
}

/* ---------------------------------------------------------------- frames */

int tape_store_read_frames(tape_frame_iter **out, tape_store *s, const char *id,
                           uint64_t from_seq, uint64_t to_seq)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_read_frames: out is NULL");
    }
    *out = NULL;
    int rc = enter(s, id, "tape_store_read_frames");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (to_seq >= TAPE_SEQ_END) {
        to_seq = UINT64_MAX; /* one "to the end" for every backend */
    }
    tape_frame_iter *it = calloc(1, sizeof *it);
    if (it == NULL) {
        return tape__oom();
    }
    it->from = from_seq;
    it->to = to_seq;
    if (s->ops->frames_open != NULL) {
        CALL(rc, s, "frames_open",
             s->ops->frames_open(&it->native, s->self, id, from_seq, to_seq));
        if (rc == TAPE_OK && it->native == NULL) {
            rc = tape_error_set(TAPE_EPROVIDER, "%s: frames_open returned no iterator", s->who);
        } else if (rc != TAPE_OK && it->native != NULL) {
            call_frame f;
            tape__saved_error e;
            tape__error_save(&e);
            call_begin_release(s, &f, "frames_close");
            s->ops->frames_close(it->native);
            call_end_release(s, &f);
            tape__error_restore(&e);
            it->native = NULL;
        }
    } else {
        rc = load_op(&it->t, s, id);
    }
    if (rc != TAPE_OK) {
        tape_free(it->t);
        free(it);
        return rc;
    }
    it->s = store_ref(s);
    *out = it;
    return TAPE_OK;
}

int tape_frame_iter_next(const tape_frame **out, tape_frame_iter *it)
{
    if (out == NULL || it == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_frame_iter_next: NULL argument");
    }
    *out = NULL;
    if (it->native != NULL) {
        int rc;
        CALL(rc, it->s, OP_FRAMES_NEXT, it->s->ops->frames_next(out, it->native));
        if (rc != TAPE_OK) {
            *out = NULL;
        } else if (*out == NULL) {
            rc = tape_error_set(TAPE_EPROVIDER, "%s: frames_next returned TAPE_OK and no frame",
                                it->s->who);
        }
        return rc;
    }
    size_t n = tape_frame_count(it->t);
    while (it->i < n) {
        const tape_frame *f = tape_frame_at(it->t, it->i++);
        uint64_t seq = tape_frame_seq(f);
        if (seq > it->to) {
            it->i = n;
            break;
        }
        if (seq >= it->from) {
            *out = f;
            return TAPE_OK;
        }
    }
    return TAPE_DONE;
}

void tape_frame_iter_free(tape_frame_iter *it)
{
    if (it == NULL) {
        return;
    }
    if (it->native != NULL) {
        call_frame f;
        tape__saved_error e;
        tape__error_save(&e);
        call_begin_release(it->s, &f, "frames_close");
        it->s->ops->frames_close(it->native);
        call_end_release(it->s, &f);
        tape__error_restore(&e);
    }
    tape_free(it->t);
    tape_store_free(it->s);
    free(it);
}
