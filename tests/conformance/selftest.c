/*
 * selftest.c - checks the conformance suite itself (ctest
 * conformance_selftest).
 *
 * A wrapper provider "conformance-wrap" delegates to the builtin memory
 * provider. Its config selects a mode:
 *   {"mode":"forward"}  every op forwarded (native exists/stats/writer/frames)
 *   {"mode":"minimal"}  only the required ops: everything else goes through
 *                       the core's fallbacks
 *   {"mode":"search"}   adds a native search written with provider.h's query
 *                       helpers (a pushdown that must equal the matcher)
 *   {"mode":"persistent","ns":"@NS@"}  one memory store per ns kept until
 *                       the program ends, flagged TAPE_CAP_PERSISTENT, so
 *                       the persistence case runs
 *   {"mode":"forward","fault":"NAME"}  one injected bug
 * The suite must pass in the three clean modes and must fail the case a
 * fault breaks: a suite that cannot fail checks nothing.
 */
#include "conformance.h"

#include <tapestore/provider.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    F_NONE,
    F_DROP_LAST_FRAME,
    F_TAGS_REVERSED,
    F_SAVE_KEEPS_OLD,
    F_DELETE_NOOP,
    F_EXISTS_ALWAYS,
    F_NOTFOUND_NO_ID,
    F_LIST_DROP,
    F_SEARCH_SKIP_AFTER_CURSOR,
    F_STATS_OFF,
    F_WRITER_DROPS,
    F_ABANDON_DISCARDS,
    F_FRAMES_SKIP_FIRST,
    F_PERSIST_LOSES,
};

static const struct {
    const char *name;
    int fault;
    const char *mode;
    const char *breaks;         /* the case that must fail */
    const char *mentions;       /* ...with a failure line containing this */
} faults[] = {
    { "drop_last_frame", F_DROP_LAST_FRAME, "forward", "save/load fidelity", "frame count expected 7, got 6" },
    { "tags_reversed", F_TAGS_REVERSED, "forward", "save/load fidelity", "tags keep insertion order" },
    { "drop_last_frame", F_DROP_LAST_FRAME, "forward", "100,000-frame", "frame count expected 100000, got 99999" },
    { "save_keeps_old", F_SAVE_KEEPS_OLD, "forward", "save replaces", "name expected \"second version\"" },
    { "delete_noop", F_DELETE_NOOP, "forward", "delete and exists", "exists after delete: expected 0, got 1" },
    { "exists_always", F_EXISTS_ALWAYS, "forward", "delete and exists", "exists before save: expected 0, got 1" },
    { "notfound_no_id", F_NOTFOUND_NO_ID, "forward", "not-found errors", "message should name" },
    { "list_drop", F_LIST_DROP, "forward", "query: every key", "tape_store_query {" },
    { "list_drop", F_LIST_DROP, "minimal", "concurrency", "expected 1600 tapes, got 1440" },
    { "search_skip_after_cursor", F_SEARCH_SKIP_AFTER_CURSOR, "search", "query: cursor paging", "pages of {" },
    { "stats_off", F_STATS_OFF, "forward", "store stats", "store stats: expected 5 tapes" },
    { "writer_drops", F_WRITER_DROPS, "forward", "writer: streaming append", "frames visible while recording" },
    { "abandon_discards", F_ABANDON_DISCARDS, "forward", "writer: states", "after an abandoned writer" },
    { "frames_skip_first", F_FRAMES_SKIP_FIRST, "forward", "ranged frame reads", "expected seq 0 message" },
    { "persist_loses", F_PERSIST_LOSES, "persistent", "persistence", "persist-1\") returned TAPE_ENOTFOUND" },
};

/* ------------------------------------------------------------------ */
/* The wrapper provider                                                */
/* ------------------------------------------------------------------ */

typedef struct wrap {
    tape_backend_ops ops;       /* this instance's vtable */
    const tape_backend_ops *in;
    void *is;
    int fault;
    int shared;                 /* the inner store outlives this one (persistent mode) */
} wrap;

/* Persistent mode: one memory store per "ns", kept until the end of the
 * program, so that reopening with the same config sees the same data. */
typedef struct shelf {
    char ns[128];
    const tape_backend_ops *in;
    void *is;
    struct shelf *next;
} shelf;
static shelf *shelves;
static pthread_mutex_t shelves_lock = PTHREAD_MUTEX_INITIALIZER;

static void shelves_free(void)
{
    while (shelves != NULL) {
        shelf *n = shelves->next;
        shelves->in->free(shelves->is);
        free(shelves);
        shelves = n;
    }
}

typedef struct wrap_writer {
    wrap *w;
    void *iw;
    char *id;
    unsigned int appended;
} wrap_writer;

static int w_save(void *self, const tape *t)
{
    wrap *w = self;
    if (w->fault == F_SAVE_KEEPS_OLD) {
        tape *old = NULL;
        if (w->in->load(&old, w->is, tape_id(t)) == TAPE_OK) {
            tape_free(old);
            return TAPE_OK;
        }
    }
    return w->in->save(w->is, t);
}

/* A copy of t without its last frame: same metadata, tags,
 * correlations. */
static int drop_last(tape **out, const tape *t)
{
    tape *m = NULL;
    int rc = tape_new(&m, tape_id(t));
    if (rc == TAPE_OK) rc = tape_set_name(m, tape_name(t));
    if (rc == TAPE_OK) rc = tape_set_description(m, tape_description(t));
    if (rc == TAPE_OK) rc = tape_set_session_id(m, tape_session_id(t));
    if (rc == TAPE_OK) rc = tape_set_protocol_version(m, tape_protocol_version(t));
    if (rc == TAPE_OK) rc = tape_set_status(m, tape_status(t));
    if (rc == TAPE_OK) rc = tape_set_created_at(m, tape_created_at(t));
    if (rc == TAPE_OK) rc = tape_set_updated_at(m, tape_updated_at(t));
    if (rc == TAPE_OK) rc = tape_set_finalized_at(m, tape_finalized_at(t));
    if (rc == TAPE_OK) rc = tape_set_transport_json(m, tape_transport_json(t));
    if (rc == TAPE_OK) rc = tape_set_environment_json(m, tape_environment_json(t));
    for (size_t i = 0; rc == TAPE_OK && i < tape_tag_count(t); i++) {
        rc = tape_add_tag(m, tape_tag_at(t, i));
    }
    for (size_t i = 0; rc == TAPE_OK && i + 1 < tape_frame_count(t); i++) {
        tape_frame *f = NULL;
        rc = tape_frame_clone(&f, tape_frame_at(t, i));
        if (rc == TAPE_OK && (rc = tape_push_frame(m, f)) != TAPE_OK) {
            tape_frame_free(f);
        }
    }
    for (size_t i = 0; rc == TAPE_OK && i < tape_correlation_count(t); i++) {
        const char *id = NULL, *st = NULL;
        uint64_t rq = 0, rs = 0;
        int64_t rtt = 0;
        rc = tape_correlation_get(&id, &rq, &rs, &rtt, &st, t, i);
        if (rc == TAPE_OK) rc = tape_add_correlation(m, id, rq, rs, rtt, st);
    }
    if (rc != TAPE_OK) {
        tape_free(m);
        return rc;
    }
    *out = m;
    return TAPE_OK;
}

static int w_load(tape **out, void *self, const char *id)
{
    wrap *w = self;
    tape *t = NULL;
    int rc = w->in->load(&t, w->is, id);
    if (rc == TAPE_ENOTFOUND && w->fault == F_NOTFOUND_NO_ID) {
        return tape_error_set(TAPE_ENOTFOUND, "not found");
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    if (w->fault == F_DROP_LAST_FRAME && tape_frame_count(t) > 1) {
        tape *m = NULL;
        rc = drop_last(&m, t);
        tape_free(t);
        if (rc != TAPE_OK) {
            return rc;
        }
        t = m;
    }
    if (w->fault == F_TAGS_REVERSED && tape_tag_count(t) > 1) {
        size_t n = tape_tag_count(t);
        char **tags = calloc(n, sizeof *tags);
        for (size_t i = 0; tags && i < n; i++) {
            const char *tg = tape_tag_at(t, i);
            tags[i] = malloc(strlen(tg) + 1);
            if (tags[i]) {
                strcpy(tags[i], tg);
            }
        }
        for (size_t i = 0; tags && i < n; i++) {
            if (tags[i]) {
                tape_remove_tag(t, tags[i]);
            }
        }
        for (size_t i = n; tags && i-- > 0;) {
            if (tags[i]) {
                tape_add_tag(t, tags[i]);
            }
            free(tags[i]);
        }
        free(tags);
    }
    *out = t;
    return TAPE_OK;
}

static int w_remove(void *self, const char *id)
{
    wrap *w = self;
    if (w->fault == F_DELETE_NOOP) {
        tape *t = NULL;
        if (w->in->load(&t, w->is, id) != TAPE_OK) {
            return w->in->remove(w->is, id);
        }
        tape_free(t);
        return TAPE_OK;
    }
    return w->in->remove(w->is, id);
}

typedef struct list_filter {
    tape_entry_sink sink;
    void *data;
} list_filter;

static int drop_sevens(void *data, tape_entry *e)
{
    list_filter *lf = data;
    const char *id = tape_entry_id(e);
    if (id[strlen(id) - 1] == '7') {
        return 0;
    }
    return lf->sink(lf->data, e);
}

static int w_list(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data)
{
    wrap *w = self;
    if (w->fault == F_LIST_DROP) {
        list_filter lf = { sink, sink_data };
        return w->in->list(w->is, q, drop_sevens, &lf);
    }
    return w->in->list(w->is, q, sink, sink_data);
}

static void w_free(void *self)
{
    wrap *w = self;
    if (!w->shared) {
        w->in->free(w->is);
    }
    free(w);
}

static int w_open(void *self)
{
    wrap *w = self;
    return w->in->open(w->is);
}

static int w_close(void *self)
{
    wrap *w = self;
    return w->in->close(w->is);
}

static int w_exists(int *out, void *self, const char *id)
{
    wrap *w = self;
    int rc = w->in->exists(out, w->is, id);
    if (rc == TAPE_OK && w->fault == F_EXISTS_ALWAYS) {
        *out = 1;
    }
    return rc;
}

/* A native search built from provider.h's helpers: list everything,
 * filter, order, resume after the cursor, check text lazily, cut. */
typedef struct collect {
    tape_entry **v;
    size_t n, cap;
    int oom;
} collect;

static int collect_sink(void *data, tape_entry *e)
{
    collect *c = data;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        tape_entry **nv = realloc(c->v, cap * sizeof *nv);
        if (nv == NULL) {
            c->oom = 1;
            return 1;
        }
        c->v = nv;
        c->cap = cap;
    }
    c->v[c->n++] = tape_entry_ref(e);
    return 0;
}

static int w_search(tape_result **out, void *self, const tape_query *q)
{
    wrap *w = self;
    collect c = { NULL, 0, 0, 0 };
    tape_result *r = NULL;
    int rc = w->in->list(w->is, q, collect_sink, &c);
    size_t limit = tape_query_has(q, TAPE_Q_LIMIT) ? (size_t)tape_query_int(q, TAPE_Q_LIMIT) : (size_t)-1;
    size_t taken = 0;
    int skipped_one = 0;

    if (rc == TAPE_OK && c.oom) {
        rc = tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    if (rc == TAPE_OK) {
        rc = tape_result_new(&r);
    }
    /* Insertion sort in the query's order. */
    for (size_t i = 1; rc == TAPE_OK && i < c.n; i++) {
        tape_entry *x = c.v[i];
        size_t j = i;
        while (j > 0 && tape_query_compare(q, c.v[j - 1], x) > 0) {
            c.v[j] = c.v[j - 1];
            j--;
        }
        c.v[j] = x;
    }
    for (size_t i = 0; rc == TAPE_OK && i < c.n; i++) {
        tape_entry *e = c.v[i];
        if (!tape_query_match_entry(q, e) || !tape_query_after_cursor(q, e)) {
            continue;
        }
        if (w->fault == F_SEARCH_SKIP_AFTER_CURSOR && tape_query_has(q, TAPE_Q_CURSOR) &&
            !skipped_one) {
            skipped_one = 1;
            continue;
        }
        if (tape_query_has(q, TAPE_Q_TEXT)) {
            tape *t = NULL;
            int m;
            rc = w->in->load(&t, w->is, tape_entry_id(e));
            if (rc != TAPE_OK) {
                break;
            }
            m = tape_query_match_tape(q, t);
            tape_free(t);
            if (!m) {
                continue;
            }
        }
        if (taken == limit) {
            /* More matches than the limit: resume after the last one. */
            if (taken > 0) {
                char *cur = NULL;
                rc = tape_query_cursor_after(&cur, q, tape_result_at(r, taken - 1));
                if (rc == TAPE_OK) {
                    rc = tape_result_set_cursor(r, cur);
                }
                tape_string_free(cur);
            }
            break;
        }
        rc = tape_result_push(r, e);
        taken++;
    }
    for (size_t i = 0; i < c.n; i++) {
        tape_entry_free(c.v[i]);
    }
    free(c.v);
    if (rc != TAPE_OK) {
        tape_result_free(r);
        return rc;
    }
    *out = r;
    return TAPE_OK;
}

static int w_stats(tape_store_stats *out, void *self)
{
    wrap *w = self;
    int rc = w->in->stats(out, w->is);
    if (rc == TAPE_OK && w->fault == F_STATS_OFF && out->tape_count > 2) {
        out->tape_count++;
    }
    return rc;
}

static int w_writer_begin(void **out, void *self, const tape *header)
{
    wrap *w = self;
    wrap_writer *ww = calloc(1, sizeof *ww);
    int rc;
    if (ww == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    ww->id = malloc(strlen(tape_id(header)) + 1);
    if (ww->id == NULL) {
        free(ww);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    strcpy(ww->id, tape_id(header));
    ww->w = w;
    rc = w->in->writer_begin(&ww->iw, w->is, header);
    if (rc != TAPE_OK) {
        free(ww->id);
        free(ww);
        return rc;
    }
    *out = ww;
    return TAPE_OK;
}

static int w_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    wrap_writer *ww = writer;
    if (ww->w->fault == F_WRITER_DROPS && ++ww->appended % 100 == 0) {
        return TAPE_OK;
    }
    return ww->w->in->writer_append(ww->iw, f, header);
}

static int w_writer_correlate(void *writer, const tape *header, size_t i)
{
    wrap_writer *ww = writer;
    return ww->w->in->writer_correlate(ww->iw, header, i);
}

static int w_writer_end(void *writer, const tape *header, int finalize)
{
    wrap_writer *ww = writer;
    int rc = ww->w->in->writer_end(ww->iw, header, finalize);
    if (rc == TAPE_OK && !finalize && ww->w->fault == F_ABANDON_DISCARDS) {
        ww->w->in->remove(ww->w->is, ww->id);
    }
    free(ww->id);
    free(ww);
    return rc;
}

typedef struct wrap_iter {
    const tape_backend_ops *in;
    void *it;
} wrap_iter;

static int w_frames_open(void **out, void *self, const char *id, uint64_t from, uint64_t to)
{
    wrap *w = self;
    wrap_iter *wi = calloc(1, sizeof *wi);
    int rc;
    if (wi == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    if (w->fault == F_FRAMES_SKIP_FIRST && from < UINT64_MAX) {
        from++;
    }
    wi->in = w->in;
    rc = w->in->frames_open(&wi->it, w->is, id, from, to);
    if (rc != TAPE_OK) {
        free(wi);
        return rc;
    }
    *out = wi;
    return TAPE_OK;
}

static int w_frames_next(const tape_frame **out, void *iter)
{
    wrap_iter *wi = iter;
    return wi->in->frames_next(out, wi->it);
}

static void w_frames_close(void *iter)
{
    wrap_iter *wi = iter;
    wi->in->frames_close(wi->it);
    free(wi);
}

static int w_control(char **out, void *self, const char *op, const char *in_json)
{
    wrap *w = self;
    return w->in->control(out, w->is, op, in_json);
}

static const char *const wrap_keys[] = { "mode", "fault", "ns", "dir", NULL };

/* "dir": must be an existing empty directory; the wrapper leaves a file
 * and a subdirectory in it (the suite must remove them) and remembers
 * the path. */
#define MAX_DIRS 64
static char *dirs_seen[MAX_DIRS];
static size_t ndirs_seen;
static pthread_mutex_t dirs_lock = PTHREAD_MUTEX_INITIALIZER;

static int use_dir(const char *dir)
{
    char path[4096];
    struct stat st;
    DIR *d;
    struct dirent *de;
    FILE *f;
    int entries = 0;

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return tape_error_set(TAPE_ECONFIG, "config key \"dir\": %s is not a directory", dir);
    }
    pthread_mutex_lock(&dirs_lock);
    for (size_t i = 0; i < ndirs_seen; i++) {
        if (strcmp(dirs_seen[i], dir) == 0) {
            pthread_mutex_unlock(&dirs_lock);
            return TAPE_OK; /* a reopen within one case */
        }
    }
    if (ndirs_seen < MAX_DIRS && (dirs_seen[ndirs_seen] = malloc(strlen(dir) + 1)) != NULL) {
        strcpy(dirs_seen[ndirs_seen++], dir);
    }
    pthread_mutex_unlock(&dirs_lock);
    if ((d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        }
        closedir(d);
    }
    if (entries != 0) {
        return tape_error_set(TAPE_ECONFIG, "config key \"dir\": %s is not empty", dir);
    }
    snprintf(path, sizeof path, "%s/sub", dir);
    if (mkdir(path, 0700) != 0) {
        return tape_error_set(TAPE_EIO, "mkdir %s failed", path);
    }
    snprintf(path, sizeof path, "%s/sub/marker", dir);
    if ((f = fopen(path, "w")) == NULL) {
        return tape_error_set(TAPE_EIO, "creating %s failed", path);
    }
    fputs("x", f);
    fclose(f);
    return TAPE_OK;
}

static int fault_of(int *out, const char *name)
{
    if (name == NULL || strcmp(name, "none") == 0) {
        *out = F_NONE;
        return TAPE_OK;
    }
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        if (strcmp(faults[i].name, name) == 0) {
            *out = faults[i].fault;
            return TAPE_OK;
        }
    }
    return tape_error_set(TAPE_ECONFIG, "config key \"fault\": unknown fault \"%s\"", name);
}

static int wrap_read(const char **mode, int *fault, const tape_config *cfg)
{
    const char *fname = NULL;
    int rc = tape_config_check_keys(cfg, wrap_keys);
    if (rc == TAPE_OK) {
        rc = tape_config_get_string(mode, cfg, "mode", "forward");
    }
    if (rc == TAPE_OK && strcmp(*mode, "forward") != 0 && strcmp(*mode, "minimal") != 0 &&
        strcmp(*mode, "search") != 0 && strcmp(*mode, "persistent") != 0) {
        rc = tape_error_set(TAPE_ECONFIG, "config key \"mode\": unknown mode \"%s\"", *mode);
    }
    if (rc == TAPE_OK) {
        rc = tape_config_get_string(&fname, cfg, "fault", "none");
    }
    if (rc == TAPE_OK) {
        rc = fault_of(fault, fname);
    }
    return rc;
}

static int wrap_validate(void *ud, const tape_config *cfg)
{
    const char *mode;
    int fault;
    (void)ud;
    return wrap_read(&mode, &fault, cfg);
}

static int wrap_create(const tape_backend_ops **out_ops, void **out_self, void *ud,
                       const tape_config *cfg)
{
    const tape_provider *mem = tape_provider_memory();
    tape_config *empty = NULL;
    const char *mode;
    wrap *w;
    int rc;

    (void)ud;
    if ((rc = wrap_read(&mode, &(int){ 0 }, cfg)) != TAPE_OK) {
        return rc;
    }
    if (tape_config_has(cfg, "dir")) {
        const char *dir = NULL;
        if ((rc = tape_config_get_string(&dir, cfg, "dir", "")) != TAPE_OK ||
            (rc = use_dir(dir)) != TAPE_OK) {
            return rc;
        }
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    wrap_read(&mode, &w->fault, cfg);
    if (strcmp(mode, "persistent") == 0) {
        const char *ns = NULL;
        shelf *sh;
        rc = tape_config_get_string(&ns, cfg, "ns", "");
        if (rc == TAPE_OK && (*ns == '\0' || strlen(ns) >= sizeof sh->ns)) {
            rc = tape_error_set(TAPE_ECONFIG, "config key \"ns\": needed in persistent mode");
        }
        if (rc != TAPE_OK) {
            free(w);
            return rc;
        }
        pthread_mutex_lock(&shelves_lock);
        for (sh = shelves; sh != NULL; sh = sh->next) {
            if (strcmp(sh->ns, ns) == 0 && w->fault != F_PERSIST_LOSES) {
                break;
            }
        }
        if (sh == NULL && (sh = calloc(1, sizeof *sh)) != NULL) {
            snprintf(sh->ns, sizeof sh->ns, "%s", ns);
            rc = tape_config_parse(&empty, "{}");
            if (rc == TAPE_OK) {
                rc = mem->create(&sh->in, &sh->is, mem->userdata, empty);
            }
            tape_config_free(empty);
            if (rc == TAPE_OK) {
                sh->next = shelves;
                shelves = sh;
            } else {
                free(sh);
                sh = NULL;
            }
        } else if (sh == NULL) {
            rc = tape_error_set(TAPE_ENOMEM, "out of memory");
        }
        pthread_mutex_unlock(&shelves_lock);
        if (sh == NULL) {
            free(w);
            return rc;
        }
        w->in = sh->in;
        w->is = sh->is;
        w->shared = 1;
    } else {
        rc = tape_config_parse(&empty, "{}");
        if (rc == TAPE_OK) {
            rc = mem->create(&w->in, &w->is, mem->userdata, empty);
        }
        tape_config_free(empty);
        if (rc != TAPE_OK) {
            free(w);
            return rc;
        }
    }
    w->ops.version = TAPE_BACKEND_OPS_VERSION;
    w->ops.flags = w->in->flags | (w->shared ? TAPE_CAP_PERSISTENT : 0);
    w->ops.save = w_save;
    w->ops.load = w_load;
    w->ops.remove = w_remove;
    w->ops.list = w_list;
    w->ops.free = w_free;
    if (strcmp(mode, "minimal") != 0) {
        w->ops.open = w->in->open ? w_open : NULL;
        w->ops.close = w->in->close ? w_close : NULL;
        w->ops.exists = w->in->exists ? w_exists : NULL;
        w->ops.stats = w->in->stats ? w_stats : NULL;
        if (w->in->writer_begin) {
            w->ops.writer_begin = w_writer_begin;
            w->ops.writer_append = w_writer_append;
            w->ops.writer_correlate = w_writer_correlate;
            w->ops.writer_end = w_writer_end;
        }
        if (w->in->frames_open) {
            w->ops.frames_open = w_frames_open;
            w->ops.frames_next = w_frames_next;
            w->ops.frames_close = w_frames_close;
        }
        w->ops.control = w->in->control ? w_control : NULL;
    }
    if (strcmp(mode, "search") == 0) {
        w->ops.search = w_search;
    }
    *out_ops = &w->ops;
    *out_self = w;
    return TAPE_OK;
}

/* ------------------------------------------------------------------ */
/* The checks                                                          */
/* ------------------------------------------------------------------ */

typedef struct sink {
    int verbose;
    const char *mentions;       /* a failure line must contain this */
    int found;
    char first_failure[512];
} sink;

static void collect_line(void *ud, const char *line)
{
    sink *s = ud;
    if (s->verbose) {
        printf("    %s\n", line);
    }
    if (strncmp(line, "# line ", 7) != 0) {
        return;
    }
    if (s->first_failure[0] == '\0') {
        snprintf(s->first_failure, sizeof s->first_failure, "%s", line + 2);
    }
    if (s->mentions != NULL && !s->found && strstr(line, s->mentions) != NULL) {
        s->found = 1;
        snprintf(s->first_failure, sizeof s->first_failure, "%s", line + 2);
    }
}

int main(void)
{
    tape_registry *reg = NULL;
    tape_provider p = TAPE_PROVIDER_INIT;
    const char *clean[] = { "{\"mode\":\"forward\"}", "{\"mode\":\"minimal\"}",
                            "{\"mode\":\"search\"}", "{\"mode\":\"persistent\",\"ns\":\"@NS@\"}" };
    size_t nfaults = sizeof faults / sizeof faults[0];
    int n = 0, bad = 0, rc;

    if (tape_registry_new(&reg) != TAPE_OK || tape_registry_add_builtins(reg) != TAPE_OK) {
        printf("Bail out! registry: %s\n", tape_errmsg());
        return 2;
    }
    p.name = "conformance-wrap";
    p.description = "memory behind a wrapper that can drop native ops or inject one fault";
    p.provider_version = 1;
    p.validate = wrap_validate;
    p.create = wrap_create;
    if (tape_registry_register(reg, &p) != TAPE_OK) {
        printf("Bail out! register: %s\n", tape_errmsg());
        return 2;
    }

    printf("1..%zu\n", sizeof clean / sizeof clean[0] + nfaults + 5);

    /* Clean wrappers pass everything (persistence is skipped). */
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
        tape_conformance_report rep = TAPE_CONFORMANCE_REPORT_INIT;
        sink sk = { 1, NULL, 0, "" };
        printf("# conformance-wrap %s\n", clean[i]);
        rc = tape_conformance_run(&rep, reg, "conformance-wrap", clean[i], NULL, collect_line, &sk);
        n++;
        if (rc != TAPE_OK || rep.failed != 0 || rep.passed == 0 ||
            (strstr(clean[i], "persistent") != NULL && rep.skipped != 0)) {
            printf("not ok %d - clean wrapper %s passes the suite (rc %s, %d failed)\n", n,
                   clean[i], tape_strerror(rc), rep.failed);
            bad++;
        } else {
            printf("ok %d - clean wrapper %s passes the suite (%d passed, %d skipped)\n", n,
                   clean[i], rep.passed, rep.skipped);
        }
    }

    /* Each fault is caught by the case it breaks. */
    for (size_t i = 0; i < nfaults; i++) {
        tape_conformance_report rep = TAPE_CONFORMANCE_REPORT_INIT;
        sink sk = { 0, faults[i].mentions, 0, "" };
        char cfg[128];
        snprintf(cfg, sizeof cfg, "{\"mode\":\"%s\",\"fault\":\"%s\"%s}", faults[i].mode,
                 faults[i].name,
                 strcmp(faults[i].mode, "persistent") == 0 ? ",\"ns\":\"@NS@\"" : "");
        rc = tape_conformance_run(&rep, reg, "conformance-wrap", cfg, faults[i].breaks,
                                  collect_line, &sk);
        n++;
        if (rc != TAPE_OK || rep.failed == 0 || !sk.found) {
            printf("not ok %d - fault %s (%s) is caught by '%s' saying '%s' (rc %s, %d failed; "
                   "first failure: %s)\n",
                   n, faults[i].name, faults[i].mode, faults[i].breaks, faults[i].mentions,
                   tape_strerror(rc), rep.failed, sk.first_failure);
            bad++;
        } else {
            printf("ok %d - fault %s (%s) is caught by '%s'\n#   %s\n", n, faults[i].name,
                   faults[i].mode, faults[i].breaks, sk.first_failure);
        }
    }

    /* @DIR@: a fresh empty directory per case, JSON-escaped (TMPDIR holds
     * a quote and a backslash here), removed with its contents after. */
    {
        tape_conformance_report rep = TAPE_CONFORMANCE_REPORT_INIT;
        sink sk = { 0, "directory", 0, "" }; /* a failure about directories */
        char base[] = "/tmp/tc-self\"q\\-XXXXXX";
        const char *old_tmp = getenv("TMPDIR");
        char *saved = old_tmp ? strdup(old_tmp) : NULL;
        int gone = 1;
        n++;
        if (mkdtemp(base) == NULL) {
            printf("not ok %d - @DIR@ (mkdtemp failed)\n", n);
            bad++;
        } else {
            setenv("TMPDIR", base, 1);
            rc = tape_conformance_run(&rep, reg, "conformance-wrap",
                                      "{\"mode\":\"forward\",\"dir\":\"@DIR@\"}", "e",
                                      collect_line, &sk);
            if (saved) {
                setenv("TMPDIR", saved, 1);
            } else {
                unsetenv("TMPDIR");
            }
            for (size_t i = 0; i < ndirs_seen; i++) {
                struct stat st;
                if (stat(dirs_seen[i], &st) == 0 || strncmp(dirs_seen[i], base, strlen(base)) != 0) {
                    gone = 0;
                }
            }
            /* Other failures are other cases' business here. */
            if (rc == TAPE_OK && !sk.found && rep.passed > 5 &&
                ndirs_seen == (size_t)(rep.passed + rep.failed + rep.skipped) && gone) {
                printf("ok %d - @DIR@ gives each of %zu cases its own empty directory under "
                       "$TMPDIR, removed afterwards\n", n, ndirs_seen);
            } else {
                printf("not ok %d - @DIR@: rc %s, %d passed, %d failed, %zu directories seen, all "
                       "removed: %d (%s)\n", n, tape_strerror(rc), rep.passed, rep.failed,
                       ndirs_seen, gone, sk.first_failure);
                bad++;
            }
            rmdir(base);
        }
        free(saved);
        for (size_t i = 0; i < ndirs_seen; i++) {
            free(dirs_seen[i]);
        }
        ndirs_seen = 0;
    }

    /* A persistent store without a fresh namespace per case is refused
     * by the second case that opens it. */
    {
        tape_conformance_report rep = TAPE_CONFORMANCE_REPORT_INIT;
        sink sk = { 0, "fresh namespace", 0, "" };
        rc = tape_conformance_run(&rep, reg, "conformance-wrap",
                                  "{\"mode\":\"persistent\",\"ns\":\"fixed\"}", "writer:",
                                  collect_line, &sk);
        n++;
        if (rc == TAPE_OK && rep.failed == 1 && sk.found) {
            printf("ok %d - a template without @DIR@/@NS@ for a persistent store is detected\n#   %s\n",
                   n, sk.first_failure);
        } else {
            printf("not ok %d - a template without @DIR@/@NS@ for a persistent store is detected "
                   "(rc %s, %d failed, %s)\n", n, tape_strerror(rc), rep.failed, sk.first_failure);
            bad++;
        }
    }

    /* Misuse of the runner API. */
    {
        tape_conformance_report rep = TAPE_CONFORMANCE_REPORT_INIT;
        tape_conformance_report old = { 99, 0, 0, 0 };
        n++;
        rc = tape_conformance_run(&rep, reg, "no-such-provider", "{}", NULL, NULL, NULL);
        if (rc == TAPE_ENOTFOUND && strstr(tape_errmsg(), "no-such-provider") != NULL) {
            printf("ok %d - unknown provider: TAPE_ENOTFOUND naming it\n", n);
        } else {
            printf("not ok %d - unknown provider: got %s '%s'\n", n, tape_strerror(rc), tape_errmsg());
            bad++;
        }
        n++;
        rc = tape_conformance_run(&rep, reg, "memory", "{}", "no case is called this", NULL, NULL);
        if (rc == TAPE_ENOTFOUND && strstr(tape_errmsg(), "no case is called this") != NULL) {
            printf("ok %d - --only matching nothing: TAPE_ENOTFOUND naming it\n", n);
        } else {
            printf("not ok %d - --only matching nothing: got %s '%s'\n", n, tape_strerror(rc),
                   tape_errmsg());
            bad++;
        }
        n++;
        if (tape_conformance_run(NULL, reg, "memory", "{}", NULL, NULL, NULL) == TAPE_EINVAL &&
            tape_conformance_run(&rep, reg, NULL, "{}", NULL, NULL, NULL) == TAPE_EINVAL &&
            tape_conformance_run(&old, reg, "memory", "{}", NULL, NULL, NULL) == TAPE_EVERSION &&
            tape_conformance_case_name(tape_conformance_case_count()) == NULL &&
            tape_conformance_case_count() > 10) {
            printf("ok %d - NULL out/provider give TAPE_EINVAL, an unknown report version TAPE_EVERSION\n", n);
        } else {
            printf("not ok %d - argument checks of tape_conformance_run\n", n);
            bad++;
        }
    }
    tape_registry_free(reg);
    shelves_free();
    return bad ? 1 : 0;
}
