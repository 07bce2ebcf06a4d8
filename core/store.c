/*
 * store.c - an open store: dispatch into the backend vtable, the core's
 * fallbacks for optional ops, lazy initialisation, and serialisation of
 * backends that are not thread-safe.
 *
 * Lifetime: writers and frame iterators hold a reference on their store,
 * so the backend is closed and freed when the last of the store handle,
 * its writers and its iterators is released.
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct tape_store {
    atomic_uint refs;
    tape_provider_info *prov; /* counted: keeps the provider alive */
    const char *name;         /* borrowed from prov */
    const tape_backend_ops *ops;
    void *self;
    int serialize;            /* backend not thread-safe: one call at a time */
    pthread_mutex_t call_lock;
    pthread_mutex_t open_lock;
    atomic_int opened;
    unsigned int native, available;
    /* Ids recorded through the fallback writer (no native writer ops):
     * the core itself must refuse a second writer, a save or a delete. */
    pthread_mutex_t rec_lock;
    char **recording;
    size_t nrecording, caprecording;
};

struct tape_writer {
    tape_store *s;
    tape *header;   /* frameless; stats kept current */
    tape *buffer;   /* fallback only: the whole tape */
    void *native;   /* native writer state */
    int finished;
    int failed;     /* a backend append failed: the tape's state is unknown */
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

static void call_begin(tape_store *s)
{
    if (s->serialize) {
        pthread_mutex_lock(&s->call_lock);
    }
}

static void call_end(tape_store *s)
{
    if (s->serialize) {
        pthread_mutex_unlock(&s->call_lock);
    }
}

/* A backend must set a message; if it returned an error without one (or
 * a code outside the API), give the caller something true to read. */
static int checked(const tape_store *s, int rc, const char *op)
{
    if (rc == TAPE_OK || rc == TAPE_DONE) {
        return rc;
    }
    if (rc > 0 || rc < TAPE_ESTATE) {
        return tape_error_set(TAPE_EPROVIDER, "provider \"%s\": %s returned unknown code %d",
                              s->name, op, rc);
    }
    if (tape_errcode() != rc) {
        tape_error_set(rc, "provider \"%s\": %s failed (%s)", s->name, op, tape_strerror(rc));
    }
    return rc;
}

static int ensure_open(tape_store *s)
{
    if (atomic_load_explicit(&s->opened, memory_order_acquire)) {
        return TAPE_OK;
    }
    int rc = TAPE_OK;
    pthread_mutex_lock(&s->open_lock);
    if (!atomic_load_explicit(&s->opened, memory_order_relaxed)) {
        if (s->ops->open != NULL) {
            call_begin(s);
            rc = checked(s, s->ops->open(s->self), "open");
            call_end(s);
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

/* ---------------------------------------------------------------- recordings */

static long recording_index(tape_store *s, const char *id)
{
    for (size_t i = 0; i < s->nrecording; i++) {
        if (strcmp(s->recording[i], id) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* TAPE_EBUSY if a fallback writer of this store records `id`. */
static int check_not_recording(tape_store *s, const char *id)
{
    if (s->ops->writer_begin != NULL) {
        return TAPE_OK; /* native writers: the backend decides */
    }
    pthread_mutex_lock(&s->rec_lock);
    int busy = recording_index(s, id) >= 0;
    pthread_mutex_unlock(&s->rec_lock);
    return busy ? tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded by another writer", id)
                : TAPE_OK;
}

static void recording_remove(tape_store *s, const char *id)
{
    pthread_mutex_lock(&s->rec_lock);
    long i = recording_index(s, id);
    if (i >= 0) {
        free(s->recording[i]);
        s->recording[i] = s->recording[--s->nrecording];
    }
    pthread_mutex_unlock(&s->rec_lock);
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

static int store_open_config(tape_store **out, tape_registry *reg, const char *provider,
                             const tape_config *cfg, unsigned int flags)
{
    tape_provider_info *info = NULL;
    int rc = tape_registry_find(&info, reg != NULL ? reg : tape_registry_default(), provider);
    if (rc != TAPE_OK) {
        return rc;
    }
    const tape_provider *p = tape__provider_info_struct(info);
    if (p->validate != NULL) {
        rc = p->validate(p->userdata, cfg);
        if (rc != TAPE_OK) {
            if (tape_errcode() != rc) {
                tape_error_set(rc, "provider \"%s\": invalid config", p->name);
            }
            tape_provider_info_free(info);
            return rc;
        }
    }
    const tape_backend_ops *ops = NULL;
    void *self = NULL;
    rc = p->create(&ops, &self, p->userdata, cfg);
    if (rc == TAPE_OK && ops == NULL) {
        rc = tape_error_set(TAPE_EPROVIDER, "provider \"%s\": create returned no backend",
                            p->name);
    }
    if (rc != TAPE_OK) {
        if (tape_errcode() != rc) {
            tape_error_set(rc, "provider \"%s\": create failed (%s)", p->name,
                           tape_strerror(rc));
        }
        tape_provider_info_free(info);
        return rc;
    }
    rc = check_ops(ops, p->name);
    tape_store *s = rc == TAPE_OK ? calloc(1, sizeof *s) : NULL;
    if (rc == TAPE_OK && s == NULL) {
        rc = tape__oom();
    }
    if (rc != TAPE_OK) {
        /* `free` sits at the same place in every version of the vtable:
         * release what create made even when the vtable is refused. */
        if (ops->free != NULL) {
            ops->free(self);
        }
        tape_provider_info_free(info);
        return rc;
    }
    atomic_init(&s->refs, 1);
    atomic_init(&s->opened, 0);
    s->prov = info;
    s->name = tape_provider_info_name(info);
    s->ops = ops;
    s->self = self;
    s->serialize = !(ops->flags & TAPE_CAP_THREAD_SAFE);
    pthread_mutex_init(&s->call_lock, NULL);
    pthread_mutex_init(&s->open_lock, NULL);
    pthread_mutex_init(&s->rec_lock, NULL);
    s->native = (ops->flags & (TAPE_CAP_THREAD_SAFE | TAPE_CAP_PERSISTENT)) |
                (ops->exists ? TAPE_CAP_EXISTS : 0) | (ops->search ? TAPE_CAP_SEARCH : 0) |
                (ops->stats ? TAPE_CAP_STATS : 0) | (ops->writer_begin ? TAPE_CAP_WRITER : 0) |
                (ops->frames_open ? TAPE_CAP_READ_FRAMES : 0) |
                (ops->control ? TAPE_CAP_CONTROL : 0);
    /* Everything but control has a core fallback; calls are always safe
     * from any thread because the core serialises when the backend can't. */
    s->available = s->native | TAPE_CAP_EXISTS | TAPE_CAP_SEARCH | TAPE_CAP_STATS |
                   TAPE_CAP_WRITER | TAPE_CAP_READ_FRAMES | TAPE_CAP_THREAD_SAFE;
    if (flags & TAPE_OPEN_EAGER) {
        rc = ensure_open(s);
        if (rc != TAPE_OK) {
            tape_store_free(s);
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

/* Drops a reference; the last one closes (if opened) and frees. */
static int store_unref(tape_store *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) {
        return TAPE_OK;
    }
    int rc = TAPE_OK;
    if (s->ops->close != NULL && atomic_load(&s->opened)) {
        rc = checked(s, s->ops->close(s->self), "close");
    }
    s->ops->free(s->self);
    pthread_mutex_destroy(&s->call_lock);
    pthread_mutex_destroy(&s->open_lock);
    pthread_mutex_destroy(&s->rec_lock);
    free(s->recording); /* empty: every writer held a reference */
    tape_provider_info_free(s->prov);
    free(s);
    return rc;
}

int tape_store_close(tape_store *s)
{
    return s == NULL ? TAPE_OK : store_unref(s);
}

void tape_store_free(tape_store *s)
{
    if (s != NULL && store_unref(s) != TAPE_OK) {
        tape_log(TAPE_LOG_ERROR, "closing store: %s", tape_errmsg());
    }
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

int tape_store_save(tape_store *s, const tape *t)
{
    if (t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_save: tape is NULL");
    }
    int rc = enter(s, tape_id(t), "tape_store_save");
    if (rc == TAPE_OK) {
        rc = check_not_recording(s, tape_id(t));
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    call_begin(s);
    rc = checked(s, s->ops->save(s->self, t), "save");
    call_end(s);
    return rc;
}

int tape_store_load(tape **out, tape_store *s, const char *id)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_load: out is NULL");
    }
    *out = NULL;
    int rc = enter(s, id, "tape_store_load");
    if (rc != TAPE_OK) {
        return rc;
    }
    call_begin(s);
    rc = checked(s, s->ops->load(out, s->self, id), "load");
    call_end(s);
    if (rc == TAPE_OK && *out == NULL) {
        rc = tape_error_set(TAPE_EPROVIDER, "provider \"%s\": load returned no tape", s->name);
    }
    return rc;
}

int tape_store_delete(tape_store *s, const char *id)
{
    int rc = enter(s, id, "tape_store_delete");
    if (rc == TAPE_OK) {
        rc = check_not_recording(s, id);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    call_begin(s);
    rc = checked(s, s->ops->remove(s->self, id), "remove");
    call_end(s);
    return rc;
}

int tape_store_exists(int *out_exists, tape_store *s, const char *id)
{
    if (out_exists == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_store_exists: out is NULL");
    }
    *out_exists = 0;
    int rc = enter(s, id, "tape_store_exists");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (s->ops->exists != NULL) {
        call_begin(s);
        rc = checked(s, s->ops->exists(out_exists, s->self, id), "exists");
        call_end(s);
        return rc;
    }
    /* Fallback: a load that finds nothing. */
    tape *t = NULL;
    call_begin(s);
    rc = s->ops->load(&t, s->self, id);
    call_end(s);
    tape_free(t);
    if (rc == TAPE_ENOTFOUND) {
        return TAPE_OK;
    }
    if (rc == TAPE_OK) {
        *out_exists = 1;
    }
    return checked(s, rc, "load");
}

/* ---------------------------------------------------------------- listing */

typedef struct entry_vec {
    tape_entry **items;
    size_t count, cap;
    int failed;
} entry_vec;

static int collect_entry(void *ud, tape_entry *e)
{
    entry_vec *v = ud;
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
    call_begin(s);
    int rc = checked(s, s->ops->list(s->self, q, collect_entry, v), "list");
    call_end(s);
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
} text_ctx;

/* The text term needs frames: load each candidate the matcher asks about. */
static int text_match_by_load(int *out_match, void *ud, const tape_entry *e)
{
    text_ctx *ctx = ud;
    tape *t = NULL;
    *out_match = 0;
    int rc = tape_store_load(&t, ctx->s, tape_entry_id(e));
    if (rc == TAPE_ENOTFOUND) {
        return TAPE_OK; /* deleted since the listing: not a match */
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
        call_begin(s);
        rc = checked(s, s->ops->search(out, s->self, q), "search");
        call_end(s);
        if (rc == TAPE_OK && *out == NULL) {
            rc = tape_error_set(TAPE_EPROVIDER, "provider \"%s\": search returned no result",
                                s->name);
        }
    } else {
        entry_vec v = { 0 };
        rc = list_all(&v, s, q);
        if (rc == TAPE_OK) {
            text_ctx ctx = { s, q };
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
        call_begin(s);
        rc = checked(s, s->ops->stats(&st, s->self), "stats");
        call_end(s);
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
    call_begin(s);
    rc = checked(s, s->ops->control(out_json, s->self, op, in_json), "control");
    call_end(s);
    return rc;
}

/* ---------------------------------------------------------------- writer */

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
    if (rc == TAPE_OK && s->ops->writer_begin != NULL) {
        call_begin(s);
        rc = checked(s, s->ops->writer_begin(&w->native, s->self, w->header), "writer_begin");
        call_end(s);
    } else if (rc == TAPE_OK) {
        /* Fallback: save the header now so the recording is visible, keep
         * the frames in memory and save the whole tape at finish. The
         * check, the save and the claim happen under rec_lock so two
         * writers cannot both start. */
        const char *id = tape_id(header);
        pthread_mutex_lock(&s->rec_lock);
        int exists = 0;
        if (recording_index(s, id) >= 0) {
            rc = tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded by another writer",
                                id);
        }
        if (rc == TAPE_OK) {
            rc = tape_store_exists(&exists, s, id);
        }
        if (rc == TAPE_OK && exists) {
            rc = tape_error_set(TAPE_EEXISTS, "tape \"%s\" already exists", id);
        }
        if (rc == TAPE_OK) {
            rc = tape_clone_meta(&w->buffer, w->header);
        }
        if (rc == TAPE_OK && s->nrecording == s->caprecording) {
            size_t cap = s->caprecording != 0 ? s->caprecording * 2 : 4;
            char **grown = realloc(s->recording, cap * sizeof *grown);
            if (grown == NULL) {
                rc = tape__oom();
            } else {
                s->recording = grown;
                s->caprecording = cap;
            }
        }
        char *claim = rc == TAPE_OK ? tape__strdup(id) : NULL;
        if (rc == TAPE_OK && claim == NULL) {
            rc = tape__oom();
        }
        if (rc == TAPE_OK) {
            call_begin(s);
            rc = checked(s, s->ops->save(s->self, w->buffer), "save");
            call_end(s);
        }
        if (rc == TAPE_OK) {
            s->recording[s->nrecording++] = claim;
        } else {
            free(claim);
        }
        pthread_mutex_unlock(&s->rec_lock);
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
                              "%s: an earlier append to tape \"%s\" failed; the writer is "
                              "unusable",
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
    if (w->native != NULL) {
        rc = tape_account_frame(w->header, f);
        if (rc == TAPE_OK) {
            call_begin(w->s);
            rc = checked(w->s, w->s->ops->writer_append(w->native, f, w->header),
                         "writer_append");
            call_end(w->s);
            if (rc != TAPE_OK) {
                w->failed = 1; /* the header already counts this frame */
            }
        }
        tape_frame_free(f);
    } else {
        rc = tape_account_frame(w->header, f);
        if (rc == TAPE_OK) {
            rc = tape_push_frame(w->buffer, f);
        }
        if (rc != TAPE_OK) {
            tape_frame_free(f);
            w->failed = 1;
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
    if (w->native != NULL) {
        call_begin(w->s);
        rc = checked(w->s,
                     w->s->ops->writer_correlate(w->native, w->header,
                                                 tape_correlation_count(w->header) - 1),
                     "writer_correlate");
        call_end(w->s);
    } else {
        rc = tape_add_correlation(w->buffer, id, request_seq, response_seq, rtt_ms, status);
    }
    if (rc != TAPE_OK) {
        w->failed = 1;
    }
    return rc;
}

/* Ends the recording once; finalize = 0 abandons (frames so far stay). */
static int writer_end(tape_writer *w, int finalize)
{
    int rc = TAPE_OK;
    int64_t now = tape__now_ms();
    tape *target = w->native != NULL ? w->header : w->buffer;
    if (finalize) {
        rc = tape_set_status(target, TAPE_STATUS_FINALIZED);
        if (rc == TAPE_OK) {
            rc = tape_set_finalized_at(target, now);
        }
    }
    if (rc == TAPE_OK) {
        rc = tape_set_updated_at(target, now);
    }
    if (w->native != NULL) {
        call_begin(w->s);
        int end_rc = checked(w->s, w->s->ops->writer_end(w->native, w->header, finalize),
                             "writer_end");
        call_end(w->s);
        w->native = NULL; /* freed by writer_end either way */
        rc = rc != TAPE_OK ? rc : end_rc;
    } else {
        if (rc == TAPE_OK) {
            call_begin(w->s);
            rc = checked(w->s, w->s->ops->save(w->s->self, w->buffer), "save");
            call_end(w->s);
        }
        recording_remove(w->s, tape_id(w->header));
    }
    w->finished = 1;
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
    if (!w->finished && w->native == NULL && w->failed) {
        recording_remove(w->s, tape_id(w->header)); /* nothing safe to save */
    } else if (!w->finished) {
        if (writer_end(w, 0) != TAPE_OK) {
            tape_log(TAPE_LOG_ERROR, "abandoning recording of tape \"%s\": %s",
                     tape_id(w->header), tape_errmsg());
        }
    }
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
    tape_frame_iter *it = calloc(1, sizeof *it);
    if (it == NULL) {
        return tape__oom();
    }
    it->from = from_seq;
    it->to = to_seq;
    if (s->ops->frames_open != NULL) {
        call_begin(s);
        rc = checked(s, s->ops->frames_open(&it->native, s->self, id, from_seq, to_seq),
                     "frames_open");
        call_end(s);
    } else {
        rc = tape_store_load(&it->t, s, id);
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
        call_begin(it->s);
        int rc = checked(it->s, it->s->ops->frames_next(out, it->native), "frames_next");
        call_end(it->s);
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
        call_begin(it->s);
        it->s->ops->frames_close(it->native);
        call_end(it->s);
    }
    tape_free(it->t);
    tape_store_free(it->s);
    free(it);
}
