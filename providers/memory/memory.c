/*
 * memory.c - the memory provider: tapes kept in this process, for tests.
 * Thread-safe (one mutex per store). Optional max_tapes / max_bytes limits
 * evict the least recently used tapes. Uses only provider.h.
 */
#include <tapestore/provider.h>

#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    char *id;
    tape *t;            /* the stored tape (owned) */
    tape_entry *entry;  /* its listing entry, rebuilt on change */
    uint64_t bytes;     /* encoded size, counted against max_bytes */
    int writing;        /* a writer holds it */
    struct item *prev, *next; /* LRU list: head = most recent */
} item;

typedef struct mem_store {
    pthread_mutex_t lock;
    void *index;        /* tsearch tree of item*, by id */
    item *head, *tail;
    uint64_t count, bytes;
    int64_t max_tapes, max_bytes; /* 0: unlimited */
} mem_store;

typedef struct mem_writer {
    mem_store *m;
    item *it;
} mem_writer;

typedef struct mem_iter {
    tape_frame **frames;
    size_t count, pos;
} mem_iter;

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const item *)a)->id, ((const item *)b)->id);
}

static item *find(mem_store *m, const char *id)
{
    item key = { 0 };
    key.id = (char *)id;
    item **found = tfind(&key, &m->index, item_cmp);
    return found != NULL ? *found : NULL;
}

static void lru_unlink(mem_store *m, item *it)
{
    if (it->prev != NULL) it->prev->next = it->next; else m->head = it->next;
    if (it->next != NULL) it->next->prev = it->prev; else m->tail = it->prev;
    it->prev = it->next = NULL;
}

static void lru_push_front(mem_store *m, item *it)
{
    it->next = m->head;
    it->prev = NULL;
    if (m->head != NULL) m->head->prev = it; else m->tail = it;
    m->head = it;
}

static void touch(mem_store *m, item *it)
{
    lru_unlink(m, it);
    lru_push_front(m, it);
}

static void item_free(item *it)
{
    tape_entry_free(it->entry);
    tape_free(it->t);
    free(it->id);
    free(it);
}

static void drop(mem_store *m, item *it)
{
    tdelete(it, &m->index, item_cmp);
    lru_unlink(m, it);
    m->count--;
    m->bytes -= it->bytes;
    item_free(it);
}

static uint64_t size_of(const tape *t)
{
    tape_stats st = TAPE_STATS_INIT;
    tape_get_stats(&st, t);
    return st.file_size_bytes;
}

/* Evict least recently used tapes (never `keep`, never one being written)
 * until the limits hold. */
static void evict(mem_store *m, const item *keep)
{
    item *it = m->tail;
    while (it != NULL && ((m->max_tapes > 0 && m->count > (uint64_t)m->max_tapes) ||
                          (m->max_bytes > 0 && m->bytes > (uint64_t)m->max_bytes))) {
        item *prev = it->prev;
        if (it != keep && !it->writing) {
            tape_log(TAPE_LOG_DEBUG, "memory provider: evicting tape \"%s\"", it->id);
            drop(m, it);
        }
        it = prev;
    }
}

/* Replace the tape held by `it` (takes ownership of t). */
static int item_set(mem_store *m, item *it, tape *t)
{
    tape_entry *e = NULL;
    int rc = tape_entry_from_tape(&e, t);
    if (rc != TAPE_OK) {
        tape_free(t);
        return rc;
    }
    uint64_t bytes = size_of(t);
    tape_free(it->t);
    tape_entry_free(it->entry);
    it->t = t;
    it->entry = e;
    m->bytes = m->bytes - it->bytes + bytes;
    it->bytes = bytes;
    return TAPE_OK;
}

static int insert(item **out, mem_store *m, const char *id)
{
    item *it = calloc(1, sizeof *it);
    if (it == NULL || (it->id = strdup(id)) == NULL) {
        free(it);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    if (tsearch(it, &m->index, item_cmp) == NULL) {
        free(it->id);
        free(it);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    lru_push_front(m, it);
    m->count++;
    *out = it;
    return TAPE_OK;
}

static int check_size(const mem_store *m, const char *id, uint64_t bytes)
{
    if (m->max_bytes > 0 && bytes > (uint64_t)m->max_bytes) {
        return tape_error_set(TAPE_ELIMIT,
                              "tape \"%s\" is %llu bytes, more than max_bytes (%lld)", id,
                              (unsigned long long)bytes, (long long)m->max_bytes);
    }
    return TAPE_OK;
}

static int mem_save(void *self, const tape *t)
{
    mem_store *m = self;
    tape *copy = NULL;
    int rc = check_size(m, tape_id(t), size_of(t));
    if (rc == TAPE_OK) {
        rc = tape_clone(&copy, t); /* outside the lock: may be large */
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    item *it = find(m, tape_id(t));
    if (it != NULL && it->writing) {
        rc = tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded", tape_id(t));
    } else if (it == NULL) {
        rc = insert(&it, m, tape_id(t));
    }
    if (rc == TAPE_OK) {
        rc = item_set(m, it, copy);
        copy = NULL;
        if (rc != TAPE_OK && it->t == NULL) {
            drop(m, it); /* a fresh item that never got its tape */
        } else if (rc == TAPE_OK) {
            touch(m, it);
            evict(m, it);
        }
    }
    pthread_mutex_unlock(&m->lock);
    tape_free(copy);
    return rc;
}

static int not_found(const char *id)
{
    return tape_error_set(TAPE_ENOTFOUND, "no tape \"%s\"", id);
}

static int mem_load(tape **out, void *self, const char *id)
{
    mem_store *m = self;
    pthread_mutex_lock(&m->lock);
    item *it = find(m, id);
    int rc = it == NULL ? not_found(id) : tape_clone(out, it->t);
    if (it != NULL) {
        touch(m, it);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int mem_remove(void *self, const char *id)
{
    mem_store *m = self;
    int rc = TAPE_OK;
    pthread_mutex_lock(&m->lock);
    item *it = find(m, id);
    if (it == NULL) {
        rc = not_found(id);
    } else if (it->writing) {
        rc = tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded", id);
    } else {
        drop(m, it);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int mem_exists(int *out, void *self, const char *id)
{
    mem_store *m = self;
    pthread_mutex_lock(&m->lock);
    *out = find(m, id) != NULL;
    pthread_mutex_unlock(&m->lock);
    return TAPE_OK;
}

/* The sink runs without the store's lock: entries are snapshotted (one
 * reference each) under it, so a sink may call back into this backend or
 * the core without deadlocking. */
static int mem_list(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data)
{
    (void)q; /* the core's matcher filters; entries are cheap to hand out */
    mem_store *m = self;
    pthread_mutex_lock(&m->lock);
    size_t n = 0;
    tape_entry **v = m->count > 0 ? malloc(m->count * sizeof *v) : NULL;
    if (m->count > 0 && v == NULL) {
        pthread_mutex_unlock(&m->lock);
        return tape_error_set(TAPE_ENOMEM, "memory: out of memory listing %zu tapes",
                              (size_t)m->count);
    }
    for (item *it = m->head; it != NULL; it = it->next) {
        v[n++] = tape_entry_ref(it->entry);
    }
    pthread_mutex_unlock(&m->lock);
    size_t i = 0;
    for (; i < n && sink(sink_data, v[i]) == 0; i++) {
        tape_entry_free(v[i]);
    }
    for (; i < n; i++) {
        tape_entry_free(v[i]);
    }
    free(v);
    return TAPE_OK;
}

static int mem_stats(tape_store_stats *out, void *self)
{
    mem_store *m = self;
    pthread_mutex_lock(&m->lock);
    out->tape_count = m->count;
    out->total_bytes = m->bytes;
    out->frame_count = 0;
    for (item *it = m->head; it != NULL; it = it->next) {
        out->frame_count += tape_frame_count(it->t);
    }
    pthread_mutex_unlock(&m->lock);
    return TAPE_OK;
}

/* The stored tape changed: refresh its entry and byte count. */
static int item_refresh(mem_store *m, item *it)
{
    tape_entry *e = NULL;
    int rc = tape_entry_from_tape(&e, it->t);
    if (rc == TAPE_OK) {
        tape_entry_free(it->entry);
        it->entry = e;
    }
    uint64_t bytes = size_of(it->t);
    m->bytes = m->bytes - it->bytes + bytes;
    it->bytes = bytes;
    return rc;
}

/* Writers append straight into the stored tape, so a recording is visible
 * (frames so far) to readers at once. */
static int mem_writer_begin(void **out, void *self, const tape *header)
{
    mem_store *m = self;
    mem_writer *w = calloc(1, sizeof *w);
    tape *copy = NULL;
    int rc = w == NULL ? tape_error_set(TAPE_ENOMEM, "out of memory") : tape_clone(&copy, header);
    if (rc != TAPE_OK) {
        free(w);
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    item *it = find(m, tape_id(header));
    if (it != NULL) {
        rc = it->writing ? tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded",
                                          tape_id(header))
                         : tape_error_set(TAPE_EEXISTS, "tape \"%s\" already exists",
                                          tape_id(header));
    } else {
        rc = insert(&it, m, tape_id(header));
        if (rc == TAPE_OK) {
            rc = item_set(m, it, copy);
            copy = NULL;
            if (rc != TAPE_OK) {
                drop(m, it);
            }
        }
    }
    if (rc == TAPE_OK) {
        it->writing = 1;
        w->m = m;
        w->it = it;
        evict(m, it);
    }
    pthread_mutex_unlock(&m->lock);
    tape_free(copy);
    if (rc != TAPE_OK) {
        free(w);
        return rc;
    }
    *out = w;
    return TAPE_OK;
}

/* Refresh the stored tape's metadata from the writer's header. */
static int sync_meta(item *it, const tape *header)
{
    int rc = tape_copy_learned_meta(it->t, header);
    if (rc == TAPE_OK) rc = tape_set_status(it->t, tape_status(header));
    if (rc == TAPE_OK) rc = tape_set_updated_at(it->t, tape_updated_at(header));
    if (rc == TAPE_OK) rc = tape_set_finalized_at(it->t, tape_finalized_at(header));
    return rc;
}

static int mem_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    mem_writer *w = writer;
    mem_store *m = w->m;
    tape_frame *copy = NULL;
    int rc = tape_frame_clone(&copy, f);
    if (rc != TAPE_OK) {
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    size_t line_len = 0;
    tape_frame_line(f, &line_len);
    rc = check_size(m, w->it->id, w->it->bytes + line_len + 1);
    if (rc == TAPE_OK) {
        rc = tape_push_frame(w->it->t, copy);
    }
    if (rc == TAPE_OK) {
        copy = NULL;
        /* The frame is stored: this append succeeds; the learned
         * metadata is applied again at the next append and at the end. */
        if (tape_copy_learned_meta(w->it->t, header) != TAPE_OK) {
            tape_log(TAPE_LOG_WARN, "memory: tape \"%s\": learned metadata not applied yet: %s",
                     w->it->id, tape_errmsg());
        }
    }
    if (copy == NULL) {
        int refresh_rc = item_refresh(m, w->it);
        rc = rc != TAPE_OK ? rc : refresh_rc;
        touch(m, w->it);
        evict(m, w->it);
    }
    pthread_mutex_unlock(&m->lock);
    tape_frame_free(copy);
    return rc;
}

static int mem_writer_correlate(void *writer, const tape *header, size_t i)
{
    mem_writer *w = writer;
    const char *id = NULL, *status = NULL;
    uint64_t req = 0, resp = 0;
    int64_t rtt = 0;
    int rc = tape_correlation_get(&id, &req, &resp, &rtt, &status, header, i);
    if (rc != TAPE_OK) {
        return rc;
    }
    pthread_mutex_lock(&w->m->lock);
    rc = tape_add_correlation(w->it->t, id, req, resp, rtt, status);
    if (rc == TAPE_OK) {
        rc = item_refresh(w->m, w->it);
    }
    pthread_mutex_unlock(&w->m->lock);
    return rc;
}

static int mem_writer_end(void *writer, const tape *header, int finalize)
{
    (void)finalize; /* the header's status already says which */
    mem_writer *w = writer;
    mem_store *m = w->m;
    pthread_mutex_lock(&m->lock);
    int rc = sync_meta(w->it, header);
    if (rc == TAPE_OK) {
        rc = item_refresh(m, w->it);
    }
    w->it->writing = 0;
    evict(m, NULL);
    pthread_mutex_unlock(&m->lock);
    free(w);
    return rc;
}

static void iter_free(mem_iter *it)
{
    for (size_t i = 0; i < it->count; i++) {
        tape_frame_free(it->frames[i]);
    }
    free(it->frames);
    free(it);
}

/* Copies the range under the lock so the iterator never sees a change. */
static int mem_frames_open(void **out, void *self, const char *id, uint64_t from, uint64_t to)
{
    mem_store *m = self;
    mem_iter *it = calloc(1, sizeof *it);
    if (it == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    int rc = TAPE_OK;
    pthread_mutex_lock(&m->lock);
    item *found = find(m, id);
    if (found == NULL) {
        rc = not_found(id);
    } else {
        size_t n = tape_frame_count(found->t);
        it->frames = malloc((n + 1) * sizeof *it->frames);
        if (it->frames == NULL) {
            rc = tape_error_set(TAPE_ENOMEM, "out of memory");
        }
        for (size_t i = 0; rc == TAPE_OK && i < n; i++) {
            const tape_frame *f = tape_frame_at(found->t, i);
            uint64_t seq = tape_frame_seq(f);
            if (seq > to) {
                break;
            }
            if (seq >= from) {
                rc = tape_frame_clone(&it->frames[it->count], f);
                if (rc == TAPE_OK) {
                    it->count++;
                }
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (rc != TAPE_OK) {
        iter_free(it);
        return rc;
    }
    *out = it;
    return TAPE_OK;
}

static int mem_frames_next(const tape_frame **out, void *iter)
{
    mem_iter *it = iter;
    if (it->pos >= it->count) {
        return TAPE_DONE;
    }
    *out = it->frames[it->pos++];
    return TAPE_OK;
}

static void mem_frames_close(void *iter)
{
    iter_free(iter);
}

static void mem_free(void *self)
{
    mem_store *m = self;
    while (m->head != NULL) {
        drop(m, m->head);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static const tape_backend_ops memory_ops = {
    .version = TAPE_BACKEND_OPS_VERSION,
    .flags = TAPE_CAP_THREAD_SAFE,
    .save = mem_save,
    .load = mem_load,
    .remove = mem_remove,
    .list = mem_list,
    .free = mem_free,
    .exists = mem_exists,
    .stats = mem_stats,
    .writer_begin = mem_writer_begin,
    .writer_append = mem_writer_append,
    .writer_correlate = mem_writer_correlate,
    .writer_end = mem_writer_end,
    .frames_open = mem_frames_open,
    .frames_next = mem_frames_next,
    .frames_close = mem_frames_close,
};

static const char *const memory_keys[] = { "max_tapes", "max_bytes", NULL };

static int read_limits(int64_t *max_tapes, int64_t *max_bytes, const tape_config *cfg)
{
    int rc = tape_config_check_keys(cfg, memory_keys);
    if (rc == TAPE_OK) rc = tape_config_get_int(max_tapes, cfg, "max_tapes", 0);
    if (rc == TAPE_OK) rc = tape_config_get_int(max_bytes, cfg, "max_bytes", 0);
    if (rc == TAPE_OK && *max_tapes < 0) {
        rc = tape_error_set(TAPE_ECONFIG, "config key \"max_tapes\": must be >= 0 (0: no limit)");
    }
    if (rc == TAPE_OK && *max_bytes < 0) {
        rc = tape_error_set(TAPE_ECONFIG, "config key \"max_bytes\": must be >= 0 (0: no limit)");
    }
    return rc;
}

static int memory_validate(void *ud, const tape_config *cfg)
{
    (void)ud;
    int64_t a, b;
    return read_limits(&a, &b, cfg);
}

static int memory_create(const tape_backend_ops **out_ops, void **out_self, void *ud,
                         const tape_config *cfg)
{
    (void)ud;
    mem_store *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    int rc = read_limits(&m->max_tapes, &m->max_bytes, cfg);
    if (rc != TAPE_OK) {
        free(m);
        return rc;
    }
    pthread_mutex_init(&m->lock, NULL);
    tape_log(TAPE_LOG_WARN,
             "memory provider: tapes live only in this process and are lost when the store "
             "is closed; it is meant for tests");
    *out_ops = &memory_ops;
    *out_self = m;
    return TAPE_OK;
}

static const tape_provider memory_provider = {
    .version = TAPE_PROVIDER_VERSION,
    .name = "memory",
    .description = "in-process store for tests (optional LRU limits max_tapes/max_bytes)",
    .provider_version = 1,
    .capabilities = TAPE_CAP_EXISTS | TAPE_CAP_STATS | TAPE_CAP_WRITER |
                    TAPE_CAP_READ_FRAMES | TAPE_CAP_THREAD_SAFE,
    .validate = memory_validate,
    .create = memory_create,
};

const tape_provider *tape_provider_memory(void)
{
    return &memory_provider;
}
