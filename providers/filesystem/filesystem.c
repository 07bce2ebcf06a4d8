/*
 * filesystem.c - the filesystem provider: the production default.
 *
 * Each tape is two files in the store directory, in the Shadowcat tape
 * format 2.0: <id>.jsonl (init line, frames, correlations, checkpoints)
 * and <id>.meta.json. Saves replace both atomically (temp, fsync, rename,
 * fsync dir); recordings append one line per frame with O_APPEND. The
 * directory index (fs_index.c) is a cache rebuilt from the meta files.
 * Uses only provider.h and POSIX.
 */
#include "fs.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_SUFFIX ".meta.json"
#define JSONL_SUFFIX ".jsonl"

typedef struct fs_writer {
    fs_store *st;
    int fd;
    char *id;
    off_t size;             /* bytes known to be written */
    int64_t since_checkpoint;
    uint64_t frames;        /* frames this writer stored */
    int cut_pending;        /* a failed write could not be cut back yet */
} fs_writer;

typedef struct fs_iter {
    int fd;
    fs_lines lines;
    tape_frame *cur;
    uint64_t from, to;
    int recover;
    int done;
} fs_iter;

/* ------------------------------------------------------------ config */

static const char *const fs_keys[] = { "path",      "durability",     "checkpoint_every",
                                       "file_mode", "max_line_bytes", "recover", "read_only",
                                       NULL };

static int parse_config(fs_config *out, const tape_config *c)
{
    memset(out, 0, sizeof *out);
    const char *path = NULL, *dur = NULL;
    int64_t every = 0, maxline = 0;
    int rc = tape_config_check_keys(c, fs_keys);
    if (rc == TAPE_OK) rc = tape_config_get_string(&path, c, "path", "./tapes");
    if (rc == TAPE_OK) rc = tape_config_get_string(&dur, c, "durability", "batch");
    if (rc == TAPE_OK) rc = tape_config_get_int(&every, c, "checkpoint_every", 1000);
    if (rc == TAPE_OK) rc = tape_config_get_int(&maxline, c, "max_line_bytes",
                                                (int64_t)TAPE_MAX_LINE_DEFAULT);
    if (rc == TAPE_OK) rc = tape_config_get_bool(&out->recover, c, "recover", 0);
    if (rc == TAPE_OK) rc = tape_config_get_bool(&out->read_only, c, "read_only", 0);
    if (rc != TAPE_OK) {
        return rc;
    }
    if (*path == '\0') {
        return tape_error_set(TAPE_ECONFIG, "config key \"path\": must not be empty");
    }
    if (strcmp(dur, "always") == 0) {
        out->durability = FS_DURABILITY_ALWAYS;
    } else if (strcmp(dur, "batch") == 0) {
        out->durability = FS_DURABILITY_BATCH;
    } else if (strcmp(dur, "none") == 0) {
        out->durability = FS_DURABILITY_NONE;
    } else {
        return tape_error_set(TAPE_ECONFIG,
                              "config key \"durability\": expected \"always\", \"batch\" or "
                              "\"none\", got \"%.40s\"",
                              dur);
    }
    if (every < 1) {
        return tape_error_set(TAPE_ECONFIG, "config key \"checkpoint_every\": must be >= 1");
    }
    if (maxline < 1024) {
        return tape_error_set(TAPE_ECONFIG, "config key \"max_line_bytes\": must be >= 1024");
    }
    /* file_mode: an integer (384) or an octal string ("0600"). */
    out->file_mode = 0600;
    if (tape_config_has(c, "file_mode")) {
        const char *s = NULL;
        int64_t m = 0;
        if (tape_config_get_string(&s, c, "file_mode", NULL) == TAPE_OK && s != NULL) {
            char *end = NULL;
            m = strtol(s, &end, 8);
            if (*s == '\0' || *end != '\0') {
                m = -1;
            }
        } else if (tape_config_get_int(&m, c, "file_mode", 0600) != TAPE_OK) {
            m = -1;
        }
        /* Owner read+write both: the store rewrites its own files. */
        if (m < 0 || m > 0777 || (m & 0600) != 0600) {
            return tape_error_set(TAPE_ECONFIG,
                                  "config key \"file_mode\": expected permission bits like "
                                  "\"0600\" (octal string) or 384, including owner read+write");
        }
        out->file_mode = (mode_t)m;
    }
    out->checkpoint_every = every;
    out->max_line_bytes = (size_t)maxline;
    out->path = strdup(path);
    return out->path == NULL ? tape_error_set(TAPE_ENOMEM, "out of memory") : TAPE_OK;
}

/* ------------------------------------------------------------ helpers */

static int sync_data(const fs_store *st)
{
    return st->cfg.durability != FS_DURABILITY_NONE;
}

/* Every op that would write says so the same way on a read-only store. */
static int read_only_refusal(const fs_store *st, const char *what, const char *id)
{
    return tape_error_set(TAPE_EUNSUPPORTED,
                          "filesystem: cannot %s tape \"%s\": the store at %s is read-only "
                          "(config key \"read_only\")",
                          what, id, st->cfg.path);
}

static int not_found(const char *id)
{
    return tape_error_set(TAPE_ENOTFOUND, "no tape \"%s\"", id);
}

/* A recording holds an exclusive flock on its .jsonl; probing with a
 * shared non-blocking lock tells whether one is in progress. */
int fs_check_not_busy(fs_store *st, const char *jsonl_name, const char *id)
{
    int fd = openat(st->dirfd, jsonl_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return TAPE_OK;
    }
    int rc = TAPE_OK;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded by another writer",
                                  id)
                 : fs_errno(errno, "cannot lock", jsonl_name);
    }
    close(fd);
    return rc;
}

/*
 * A writer's header counts the init line and the frames, not the
 * checkpoint lines between them, while a load counts every line of the
 * file. The writer knows the file's real length: the meta says that, so
 * a listing and a load agree on file_size_bytes too.
 */
static int meta_set_file_size(char **meta, size_t *len, int64_t file_size)
{
    cJSON *m = cJSON_ParseWithLength(*meta, *len);
    cJSON *stats = cJSON_GetObjectItemCaseSensitive(m, "stats");
    cJSON *size = cJSON_GetObjectItemCaseSensitive(stats, "file_size_bytes");
    char *text = NULL;
    if (cJSON_IsNumber(size)) {
        cJSON_SetNumberValue(size, (double)file_size);
        text = cJSON_Print(m);
    }
    cJSON_Delete(m);
    if (text == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory encoding a meta file");
    }
    tape_string_free(*meta);
    *meta = text; /* cJSON allocates with malloc (default hooks), as fs_index.c assumes */
    *len = strlen(text);
    return TAPE_OK;
}

/* file_size: the .jsonl's length as written (a writer), or -1 (as encoded).
 * *replaced (may be NULL) says whether the meta file was replaced, even if
 * the index (a cache) then failed to take the change. */
static int write_meta(fs_store *st, const tape *t, int64_t file_size, int sync, int *replaced)
{
    char *meta = NULL;
    size_t len = 0;
    int rc = tape_encode_meta(&meta, &len, t);
    if (rc == TAPE_OK && file_size >= 0) rc = meta_set_file_size(&meta, &len, file_size);
    char *name = rc == TAPE_OK ? fs_name(tape_id(t), META_SUFFIX) : NULL;
    if (rc == TAPE_OK && name == NULL) {
        rc = tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    if (rc == TAPE_OK) {
        rc = fs_write_atomic(st->dirfd, name, meta, len, st->cfg.file_mode, sync);
    }
    if (rc == TAPE_OK) {
        if (replaced != NULL) *replaced = 1;
        rc = fs_index_put(st, tape_id(t), meta, len);
    }
    free(name);
    tape_string_free(meta);
    return rc;
}

/* ------------------------------------------------------------ ops */

static int fs_open_backend(void *self)
{
    fs_store *st = self;
    /* Read-only: the directory must be there already (nothing is made). */
    if (!st->cfg.read_only && mkdir(st->cfg.path, 0700) != 0 && errno != EEXIST) {
        return fs_errno(errno, "cannot create directory", st->cfg.path);
    }
    st->dirfd = open(st->cfg.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dirfd < 0) {
        return fs_errno(errno, "cannot open directory", st->cfg.path);
    }
    pthread_mutex_lock(&st->lock);
    int rc = fs_index_open(st);
    pthread_mutex_unlock(&st->lock);
    if (rc != TAPE_OK) {
        close(st->dirfd);
        st->dirfd = -1;
    }
    return rc;
}

static int fs_save(void *self, const tape *t)
{
    fs_store *st = self;
    const char *id = tape_id(t);
    if (st->cfg.read_only) {
        return read_only_refusal(st, "save", id);
    }
    char *body = NULL, *meta = NULL;
    size_t body_len = 0, meta_len = 0;
    /* What this store accepts it must read back with its own config. */
    int rc = tape_check_line_limit(t, st->cfg.max_line_bytes);
    /* Encode before taking any lock: it may be large. */
    if (rc == TAPE_OK) rc = tape_encode_jsonl(&body, &body_len, t);
    if (rc == TAPE_OK) rc = tape_encode_meta(&meta, &meta_len, t);
    char *jname = rc == TAPE_OK ? fs_name(id, JSONL_SUFFIX) : NULL;
    char *mname = rc == TAPE_OK ? fs_name(id, META_SUFFIX) : NULL;
    if (rc == TAPE_OK && (jname == NULL || mname == NULL)) {
        rc = tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    if (rc == TAPE_OK) {
        pthread_mutex_lock(&st->lock);
        rc = fs_index_lock(st, 1);
        if (rc == TAPE_OK) {
            rc = fs_index_catch_up(st);
            if (rc == TAPE_OK) rc = fs_check_not_busy(st, jname, id);
            if (rc == TAPE_OK) {
                /* .jsonl first: a crash between the renames leaves new frames
                 * with the old meta, which loads (stats come from frames). */
                const char *names[2] = { jname, mname };
                const char *data[2] = { body, meta };
                size_t lens[2] = { body_len, meta_len };
                rc = fs_replace_files(st->dirfd, 2, names, data, lens, st->cfg.file_mode,
                                      sync_data(st));
            }
            if (rc == TAPE_OK) rc = fs_index_put(st, id, meta, meta_len);
            fs_index_unlock(st);
        }
        pthread_mutex_unlock(&st->lock);
    }
    free(jname);
    free(mname);
    tape_string_free(body);
    tape_string_free(meta);
    return rc;
}

/* --------------------------------------------------------- reading a tape */

static size_t skip_string(const char *t, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (t[i] == '\\') {
            i++;
        } else if (t[i] == '"') {
            return i + 1;
        }
    }
    return len + 1; /* unterminated */
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Find the string value of the top-level "tape_id" member of the JSON
 * object text[0..len): *at, *n span it with its quotes. 0 if there is
 * none (the decoder then says what is wrong with the document). */
static int tape_id_span(size_t *at, size_t *n, const char *t, size_t len)
{
    int depth = 0;
    char prev = 0; /* the last significant character outside strings */
    for (size_t i = 0; i < len;) {
        if (t[i] == '"') {
            size_t end = skip_string(t, len, i);
            if (end > len) {
                return 0;
            }
            if (depth == 1 && (prev == '{' || prev == ',') && end - i == 9 &&
                memcmp(t + i, "\"tape_id\"", 9) == 0) {
                size_t j = end;
                while (j < len && is_ws(t[j])) j++;
                if (j >= len || t[j] != ':') return 0;
                for (j++; j < len && is_ws(t[j]); j++) {
                }
                if (j >= len || t[j] != '"') return 0;
                size_t vend = skip_string(t, len, j);
                if (vend > len) return 0;
                *at = j;
                *n = vend - j;
                return 1;
            }
            prev = '"';
            i = end;
            continue;
        }
        if (t[i] == '{' || t[i] == '[') {
            depth++;
        } else if (t[i] == '}' || t[i] == ']') {
            depth--;
        }
        if (!is_ws(t[i])) prev = t[i];
        i++;
    }
    return 0;
}

/*
 * If the JSON object at the start of doc (up to the first newline if
 * one_line: the init line of a .jsonl) names
 * another tape_id than `id`, make *out a copy of doc with that value
 * replaced by id and *old the id it held (both malloc'ed). Otherwise
 * *out = NULL. A tape copied under another file name is thereby read as
 * the tape its file name says, the only id the store can find it by.
 */
static int fix_tape_id(char **out, size_t *out_len, char **old, const char *doc, size_t len,
                       int one_line, const char *id)
{
    *out = NULL;
    const char *nl = one_line ? memchr(doc, '\n', len) : NULL;
    size_t first = nl != NULL ? (size_t)(nl - doc) : len;
    size_t at = 0, n = 0, idlen = strlen(id);
    if (!tape_id_span(&at, &n, doc, first) ||
        (n == idlen + 2 && memcmp(doc + at + 1, id, idlen) == 0)) {
        return TAPE_OK;
    }
    size_t new_len = len - n + idlen + 2;
    char *c = malloc(new_len + 1);
    *old = strndup(doc + at + 1, n - 2);
    if (c == NULL || *old == NULL) {
        free(c);
        free(*old);
        *old = NULL;
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    memcpy(c, doc, at);
    c[at] = '"';
    memcpy(c + at + 1, id, idlen);
    c[at + 1 + idlen] = '"';
    memcpy(c + at + idlen + 2, doc + at + n, len - at - n);
    c[new_len] = '\0';
    *out = c;
    *out_len = new_len;
    return TAPE_OK;
}

/* Fix the id of one document in place (*doc replaced); logs the mismatch. */
static int fix_doc_id(char **doc, size_t *len, int *mismatch, const char *id, const char *file)
{
    char *fixed = NULL, *old = NULL;
    size_t fixed_len = 0;
    int rc = fix_tape_id(&fixed, &fixed_len, &old, *doc, *len,
                         strcmp(file, JSONL_SUFFIX) == 0, id);
    if (rc == TAPE_OK && fixed != NULL) {
        tape_log(TAPE_LOG_WARN, "filesystem: %s%s holds tape_id \"%s\"; the store lists and "
                 "loads it as \"%s\", its file name", id, file, old, id);
        free(*doc);
        *doc = fixed;
        *len = fixed_len;
        *mismatch = 1;
    }
    free(old);
    return rc;
}

void fs_read_info_free(fs_read_info *info)
{
    free(info->meta);
    info->meta = NULL;
}

int fs_read_tape(tape **out, fs_store *st, const char *id, int mode, fs_read_info *info)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    info->rep = (tape_decode_report)TAPE_DECODE_REPORT_INIT;
    info->meta_state = FS_META_MISSING;
    char *jname = fs_name(id, JSONL_SUFFIX), *mname = fs_name(id, META_SUFFIX);
    char *body = NULL, *meta = NULL;
    size_t body_len = 0, meta_len = 0;
    int rc = jname != NULL && mname != NULL ? TAPE_OK
                                            : tape_error_set(TAPE_ENOMEM, "out of memory");
    if (rc == TAPE_OK) {
        /* Stamped before reading: a file that grows meanwhile is stale. */
        fs_stamp_of(&info->jsonl, st->dirfd, jname);
        rc = fs_read_file(&body, &body_len, st->dirfd, jname);
        if (rc == TAPE_ENOTFOUND) {
            rc = not_found(id);
        }
    }
    if (rc == TAPE_OK) {
        int mrc = fs_read_file(&meta, &meta_len, st->dirfd, mname);
        if (mrc == TAPE_OK) {
            info->meta_state = FS_META_OK;
        } else if (mrc != TAPE_ENOTFOUND) {
            info->meta_state = FS_META_DAMAGED;
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": %s; using the .jsonl alone", id,
                     tape_errmsg());
        }
    }
    if (rc == TAPE_OK) rc = fix_doc_id(&body, &body_len, &info->id_mismatch, id, JSONL_SUFFIX);
    if (rc == TAPE_OK && meta != NULL) {
        rc = fix_doc_id(&meta, &meta_len, &info->id_mismatch, id, META_SUFFIX);
    }
    if (rc == TAPE_OK) {
        tape_decode_options o = TAPE_DECODE_OPTIONS_INIT;
        o.mode = mode;
        o.max_line_bytes = st->cfg.max_line_bytes;
        rc = tape_decode(out, body, body_len, meta, meta_len, &o, &info->rep);
        if (rc == TAPE_ECORRUPT && meta != NULL) {
            /* A damaged meta must not hide the frames. */
            char why[512];
            snprintf(why, sizeof why, "%s", tape_errmsg());
            info->rep = (tape_decode_report)TAPE_DECODE_REPORT_INIT;
            rc = tape_decode(out, body, body_len, NULL, 0, &o, &info->rep);
            if (rc == TAPE_OK) {
                tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": meta ignored (%s)", id, why);
                info->meta_state = FS_META_DAMAGED;
                free(meta);
                meta = NULL;
            } else {
                rc = tape_error_set(TAPE_ECORRUPT, "tape \"%s\": %s", id, tape_errmsg());
            }
        } else if (rc != TAPE_OK) {
            rc = tape_error_set(rc, "tape \"%s\": %s", id, tape_errmsg());
        }
    }
    if (meta != NULL) {
        info->meta = meta;
        info->meta_len = meta_len;
    }
    free(jname);
    free(mname);
    free(body);
    return rc;
}

static int fs_load(tape **out, void *self, const char *id)
{
    fs_store *st = self;
    fs_read_info info;
    int rc = fs_read_tape(out, st, id, st->cfg.recover ? TAPE_DECODE_RECOVER : TAPE_DECODE_STRICT,
                          &info);
    if (rc == TAPE_OK && info.rep.skipped_lines > 0) {
        tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": skipped %llu invalid line(s), "
                 "first at line %llu", id, (unsigned long long)info.rep.skipped_lines,
                 (unsigned long long)info.rep.first_bad_line);
    }
    fs_read_info_free(&info);
    return rc;
}

static int fs_remove(void *self, const char *id)
{
    fs_store *st = self;
    if (st->cfg.read_only) {
        return read_only_refusal(st, "delete", id);
    }
    char *jname = fs_name(id, JSONL_SUFFIX), *mname = fs_name(id, META_SUFFIX);
    if (jname == NULL || mname == NULL) {
        free(jname);
        free(mname);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&st->lock);
    int rc = fs_index_lock(st, 1);
    if (rc == TAPE_OK) {
        rc = fs_index_catch_up(st);
        if (rc == TAPE_OK) rc = fs_check_not_busy(st, jname, id);
        if (rc == TAPE_OK) {
            /* Meta first: a crash in between leaves a .jsonl, which the
             * next open lists again (the delete is undone, nothing lost);
             * the other order would leave a meta without frames. */
            int gone_m = unlinkat(st->dirfd, mname, 0) == 0;
            int err_m = errno;
            int gone_j = unlinkat(st->dirfd, jname, 0) == 0;
            int err_j = errno;
            if (!gone_j && !gone_m) {
                rc = err_j == ENOENT && err_m == ENOENT ? not_found(id)
                                                        : fs_errno(err_j, "cannot delete", jname);
            } else if (!gone_j && err_j != ENOENT) {
                rc = fs_errno(err_j, "cannot delete", jname);
            }
            if (gone_j || gone_m) {
                if (sync_data(st)) fs_sync_dir(st->dirfd);
                int irc = fs_index_del(st, id);
                if (rc == TAPE_OK) rc = irc;
            }
        }
        fs_index_unlock(st);
    }
    pthread_mutex_unlock(&st->lock);
    free(jname);
    free(mname);
    return rc;
}

static int fs_exists(int *out, void *self, const char *id)
{
    fs_store *st = self;
    char *jname = fs_name(id, JSONL_SUFFIX);
    if (jname == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    struct stat sb;
    int rc = TAPE_OK;
    *out = fstatat(st->dirfd, jname, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode);
    if (!*out && errno != ENOENT) {
        rc = fs_errno(errno, "cannot stat", jname);
    }
    free(jname);
    return rc;
}

typedef struct list_ctx {
    tape_entry_sink sink;
    void *data;
    int stopped;
} list_ctx;

static int list_one(void *ud, fs_ent *e)
{
    list_ctx *c = ud;
    if (c->sink(c->data, e->entry) != 0) {
        c->stopped = 1;
        return TAPE_DONE; /* stop the walk */
    }
    return TAPE_OK;
}

/* The in-memory index hands its entries to the core's matcher. */
static int fs_list(void *self, const tape_query *q, tape_entry_sink sink, void *data)
{
    (void)q;
    fs_store *st = self;
    pthread_mutex_lock(&st->lock);
    int rc = fs_index_refresh(st);
    if (rc == TAPE_OK) rc = fs_index_recount_live(st);
    if (rc == TAPE_OK) {
        list_ctx c = { sink, data, 0 };
        rc = fs_index_each(st, list_one, &c);
        if (rc == TAPE_DONE) rc = TAPE_OK;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int add_stats(void *ud, fs_ent *e)
{
    tape_store_stats *s = ud;
    tape_stats ts = TAPE_STATS_INIT;
    tape_entry_get_stats(&ts, e->entry);
    s->tape_count++;
    s->frame_count += ts.frame_count;
    s->total_bytes += ts.file_size_bytes;
    return TAPE_OK;
}

static int fs_stats(tape_store_stats *out, void *self)
{
    fs_store *st = self;
    pthread_mutex_lock(&st->lock);
    int rc = fs_index_refresh(st);
    if (rc == TAPE_OK) rc = fs_index_recount_live(st);
    if (rc == TAPE_OK) {
        out->tape_count = out->frame_count = out->total_bytes = 0;
        rc = fs_index_each(st, add_stats, out);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ------------------------------------------------------------ writer */

/* Cut the recording back to `to` bytes (a failed append is not stored).
 * If the cut itself fails, the next write tries again first, so no line
 * is ever appended after half a line of ours. Returns 0 or the errno. */
static int writer_cut(fs_writer *w, off_t to)
{
    w->size = to;
    int err = ftruncate(w->fd, to) != 0 ? errno : 0;
    w->cut_pending = err != 0;
    if (err != 0) {
        tape_log(TAPE_LOG_ERROR, "filesystem: tape \"%s\": cannot cut a failed append (%s)",
                 w->id, strerror(err));
    }
    return err;
}

/* Append bytes (one or more whole lines) to the recording; a failed or
 * short write is cut back so the file never keeps half a line we own. */
static int writer_put(fs_writer *w, const char *a, size_t alen, const char *b, size_t blen)
{
    int err = w->cut_pending ? writer_cut(w, w->size) : 0;
    if (err != 0) {
        return fs_errno(err, "cannot cut a failed append from tape", w->id);
    }
    if (fs_write_all(w->fd, a, alen, b, blen) != 0) {
        err = errno;
        writer_cut(w, w->size);
        return fs_errno(err, "cannot append to tape", w->id);
    }
    w->size += (off_t)(alen + blen);
    return TAPE_OK;
}

static int writer_sync(fs_writer *w)
{
    if (fdatasync(w->fd) != 0) {
        return fs_errno(errno, "cannot sync tape", w->id);
    }
    return TAPE_OK;
}

/* Rewrite meta + index entry from the writer's header. Once the meta file
 * is replaced the tape's state is on disk: a failure of the index (a cache
 * the next open repairs) is logged, not returned. */
static int writer_meta(fs_writer *w, const tape *header)
{
    fs_store *st = w->st;
    int replaced = 0;
    pthread_mutex_lock(&st->lock);
    int rc = fs_index_lock(st, 1);
    if (rc == TAPE_OK) {
        rc = fs_index_catch_up(st);
        if (rc == TAPE_OK) {
            rc = write_meta(st, header, (int64_t)w->size, sync_data(st), &replaced);
        }
        fs_index_unlock(st);
    }
    pthread_mutex_unlock(&st->lock);
    if (rc != TAPE_OK && replaced) {
        tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": meta written, index not updated "
                 "(%s); the next open repairs it", w->id, tape_errmsg());
        rc = TAPE_OK;
    }
    return rc;
}

/*
 * The header counts a frame this writer did not store (a caller that
 * went on after a failed append without taking it back out): the meta is
 * rewritten from the file itself, so the stats say what a load says.
 */
static int writer_recount(fs_writer *w)
{
    fs_store *st = w->st;
    tape *t = NULL;
    fs_read_info info;
    int rc = fs_read_tape(&t, st, w->id, TAPE_DECODE_RECOVER, &info);
    fs_read_info_free(&info);
    if (rc == TAPE_OK) {
        pthread_mutex_lock(&st->lock);
        rc = fs_index_lock(st, 1);
        if (rc == TAPE_OK) {
            rc = fs_index_catch_up(st);
            if (rc == TAPE_OK) rc = write_meta(st, t, -1, sync_data(st), NULL);
            fs_index_unlock(st);
        }
        pthread_mutex_unlock(&st->lock);
    }
    tape_free(t);
    return rc;
}

static int fs_writer_begin(void **out, void *self, const tape *header)
{
    fs_store *st = self;
    const char *id = tape_id(header);
    if (st->cfg.read_only) {
        return read_only_refusal(st, "record", id);
    }
    fs_writer *w = calloc(1, sizeof *w);
    char *jname = fs_name(id, JSONL_SUFFIX), *init = NULL;
    size_t init_len = 0;
    int rc = w != NULL && jname != NULL && (w->id = strdup(id)) != NULL
                 ? tape_check_line_limit(header, st->cfg.max_line_bytes)
                 : tape_error_set(TAPE_ENOMEM, "out of memory");
    if (rc == TAPE_OK) rc = tape_encode_init_line(&init, &init_len, header);
    if (rc != TAPE_OK) {
        if (w != NULL) free(w->id);
        free(w);
        free(jname);
        return rc;
    }
    w->st = st;
    w->fd = -1;
    pthread_mutex_lock(&st->lock);
    rc = fs_index_lock(st, 1);
    if (rc == TAPE_OK) {
        rc = fs_index_catch_up(st);
        if (rc == TAPE_OK) rc = fs_check_not_busy(st, jname, id);
        if (rc == TAPE_OK) {
            w->fd = openat(st->dirfd, jname,
                           O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
                           st->cfg.file_mode);
            if (w->fd < 0) {
                rc = errno == EEXIST
                         ? tape_error_set(TAPE_EEXISTS, "tape \"%s\" already exists", id)
                         : fs_errno(errno, "cannot create", jname);
            } else if (flock(w->fd, LOCK_EX | LOCK_NB) != 0) {
                rc = tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded by another writer",
                                    id);
            }
        }
        if (rc == TAPE_OK) rc = writer_put(w, init, init_len, NULL, 0);
        if (rc == TAPE_OK && sync_data(st)) rc = writer_sync(w);
        if (rc == TAPE_OK && sync_data(st)) rc = fs_sync_dir(st->dirfd);
        if (rc == TAPE_OK) rc = write_meta(st, header, (int64_t)w->size, sync_data(st), NULL);
        if (rc != TAPE_OK && w->fd >= 0) {
            unlinkat(st->dirfd, jname, 0); /* ours, half made: remove it */
        }
        fs_index_unlock(st);
    }
    pthread_mutex_unlock(&st->lock);
    tape_string_free(init);
    free(jname);
    if (rc != TAPE_OK) {
        if (w->fd >= 0) close(w->fd);
        free(w->id);
        free(w);
        return rc;
    }
    *out = w;
    return TAPE_OK;
}

static int writer_checkpoint(fs_writer *w, const tape *header)
{
    char *line = NULL;
    size_t len = 0;
    int rc = tape_encode_checkpoint_line(&line, &len, header);
    if (rc == TAPE_OK) rc = writer_put(w, line, len, NULL, 0);
    tape_string_free(line);
    if (rc == TAPE_OK && w->st->cfg.durability == FS_DURABILITY_BATCH) rc = writer_sync(w);
    if (rc == TAPE_OK) rc = writer_meta(w, header);
    return rc;
}

/* A frame is stored when its line, the sync its durability asks for and
 * any checkpoint it triggers all succeed; otherwise the file is cut back
 * to where it was and the frame is not stored (the writer goes on). */
static int fs_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    fs_writer *w = writer;
    size_t len = 0;
    const char *line = tape_frame_line(f, &len);
    int rc = tape_frame_check_line_limit(f, w->st->cfg.max_line_bytes);
    if (rc != TAPE_OK) {
        return rc; /* refused before anything is written */
    }
    off_t before = w->size;
    int checkpoint = w->since_checkpoint + 1 >= w->st->cfg.checkpoint_every;
    rc = writer_put(w, line, len, "\n", 1);
    if (rc == TAPE_OK && w->st->cfg.durability == FS_DURABILITY_ALWAYS) {
        rc = writer_sync(w);
    }
    if (rc == TAPE_OK && checkpoint) {
        rc = writer_checkpoint(w, header);
    }
    if (rc != TAPE_OK) {
        if (w->size != before) writer_cut(w, before);
        return rc;
    }
    w->frames++;
    w->since_checkpoint = checkpoint ? 0 : w->since_checkpoint + 1;
    return TAPE_OK;
}

static int fs_writer_correlate(void *writer, const tape *header, size_t i)
{
    fs_writer *w = writer;
    char *line = NULL;
    size_t len = 0;
    int rc = tape_encode_correlation_line(&line, &len, header, i);
    if (rc == TAPE_OK && len - 1 > w->st->cfg.max_line_bytes) {
        rc = tape_error_set(TAPE_ELIMIT,
                            "tape \"%s\": correlation %zu is a %zu-byte line, longer than the "
                            "store's max_line_bytes of %zu",
                            w->id, i, len - 1, w->st->cfg.max_line_bytes);
    }
    if (rc == TAPE_OK) rc = writer_put(w, line, len, NULL, 0);
    if (rc == TAPE_OK && w->st->cfg.durability == FS_DURABILITY_ALWAYS) rc = writer_sync(w);
    tape_string_free(line);
    return rc;
}

/*
 * finalize: the final checkpoint, its sync and the finalized meta. If any
 * of them fails, the checkpoint is cut back, the meta says recording (with
 * every acknowledged frame) and the writer stays, lease held
 * (TAPE_CAP_WRITER_RETRY): the core retries the finish or abandons it.
 * Abandon (finalize 0): the meta as the header says; the writer is freed
 * and its lease released whatever happens.
 */
static int fs_writer_end(void *writer, const tape *header, int finalize)
{
    fs_writer *w = writer;
    int rc = TAPE_OK;
    off_t before = w->size;
    if (finalize) {
        char *line = NULL;
        size_t len = 0;
        rc = tape_encode_checkpoint_line(&line, &len, header);
        if (rc == TAPE_OK) rc = writer_put(w, line, len, NULL, 0);
        tape_string_free(line);
    }
    if (rc == TAPE_OK && sync_data(w->st)) rc = writer_sync(w);
    if (rc == TAPE_OK || !finalize) {
        int mrc = writer_meta(w, header);
        if (rc == TAPE_OK) rc = mrc;
    }
    if (rc != TAPE_OK && finalize) {
        char why[1024];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        if (w->size != before) writer_cut(w, before);
        tape *kept = NULL;
        if (tape_clone_meta(&kept, header) == TAPE_OK &&
            tape_set_status(kept, TAPE_STATUS_RECORDING) == TAPE_OK &&
            tape_set_finalized_at(kept, TAPE_TIME_NONE) == TAPE_OK &&
            writer_meta(w, kept) != TAPE_OK) {
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": %s", w->id, tape_errmsg());
        }
        tape_free(kept);
        return tape_error_set(rc, "%s", why); /* the writer stays for a retry */
    }
    tape_stats hs = TAPE_STATS_INIT;
    if (tape_get_stats(&hs, header) == TAPE_OK && hs.frame_count != w->frames) {
        char why[1024];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        if (writer_recount(w) != TAPE_OK) {
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": cannot recount its stats (%s)",
                     w->id, tape_errmsg());
        }
        if (rc != TAPE_OK) tape_error_set(rc, "%s", why);
    }
    close(w->fd); /* releases the flock */
    free(w->id);
    free(w);
    return rc;
}

/* ------------------------------------------------------------ frames */

static void iter_free(fs_iter *it)
{
    tape_frame_free(it->cur);
    fs_lines_free(&it->lines);
    if (it->fd >= 0) close(it->fd);
    free(it);
}

static int fs_frames_open(void **out, void *self, const char *id, uint64_t from, uint64_t to)
{
    fs_store *st = self;
    char *jname = fs_name(id, JSONL_SUFFIX);
    fs_iter *it = calloc(1, sizeof *it);
    if (jname == NULL || it == NULL) {
        free(jname);
        free(it);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    it->fd = openat(st->dirfd, jname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int rc = TAPE_OK;
    if (it->fd < 0) {
        rc = errno == ENOENT ? not_found(id) : fs_errno(errno, "cannot open", jname);
    }
    free(jname);
    if (rc == TAPE_OK) rc = fs_lines_init(&it->lines, it->fd, st->cfg.max_line_bytes);
    if (rc != TAPE_OK) {
        if (it->fd >= 0) close(it->fd);
        free(it->lines.buf);
        free(it);
        return rc;
    }
    it->from = from;
    it->to = to;
    it->recover = st->cfg.recover;
    *out = it;
    return TAPE_OK;
}

/* Streams the file: memory is bounded by the longest line. */
static int fs_frames_next(const tape_frame **out, void *iter)
{
    fs_iter *it = iter;
    tape_frame_free(it->cur);
    it->cur = NULL;
    while (!it->done) {
        const char *line;
        size_t len;
        int torn = 0;
        int rc = fs_lines_next(&it->lines, &line, &len, &torn);
        if (rc == TAPE_DONE) {
            break;
        }
        if (rc != TAPE_OK) {
            return rc;
        }
        if (len == 0) {
            continue;
        }
        int type = 0;
        tape_frame *f = NULL;
        rc = tape_line_parse(&type, &f, line, len);
        if (rc != TAPE_OK) {
            if (torn) {
                break; /* an append still in flight or cut by a crash */
            }
            if (it->recover) {
                continue;
            }
            return tape_error_set(TAPE_ECORRUPT, "line %llu: %s",
                                  (unsigned long long)it->lines.lineno, tape_errmsg());
        }
        if (f == NULL) {
            continue;
        }
        uint64_t seq = tape_frame_seq(f);
        if (seq > it->to) {
            tape_frame_free(f);
            break;
        }
        if (seq >= it->from) {
            it->cur = f;
            *out = f;
            return TAPE_OK;
        }
        tape_frame_free(f);
    }
    it->done = 1;
    return TAPE_DONE;
}

static void fs_frames_close(void *iter)
{
    iter_free(iter);
}

/* ------------------------------------------------------------ lifecycle */

static void fs_free(void *self)
{
    fs_store *st = self;
    fs_index_clear(st);
    free(st->buckets);
    if (st->lockfd >= 0) close(st->lockfd);
    if (st->dirfd >= 0) close(st->dirfd);
    pthread_mutex_destroy(&st->lock);
    free(st->cfg.path);
    free(st);
}

static const tape_backend_ops fs_ops = {
    .version = TAPE_BACKEND_OPS_VERSION,
    /* A failed finish keeps the writer (fs_writer_end). */
    .flags = TAPE_CAP_THREAD_SAFE | TAPE_CAP_PERSISTENT | TAPE_CAP_WRITER_RETRY,
    .save = fs_save,
    .load = fs_load,
    .remove = fs_remove,
    .list = fs_list,
    .free = fs_free,
    .open = fs_open_backend,
    .exists = fs_exists,
    .stats = fs_stats,
    .writer_begin = fs_writer_begin,
    .writer_append = fs_writer_append,
    .writer_correlate = fs_writer_correlate,
    .writer_end = fs_writer_end,
    .frames_open = fs_frames_open,
    .frames_next = fs_frames_next,
    .frames_close = fs_frames_close,
};

static int fs_validate(void *ud, const tape_config *c)
{
    (void)ud;
    fs_config cfg;
    int rc = parse_config(&cfg, c);
    free(cfg.path);
    return rc;
}

static int fs_create(const tape_backend_ops **out_ops, void **out_self, void *ud,
                     const tape_config *c)
{
    (void)ud;
    fs_store *st = calloc(1, sizeof *st);
    if (st == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    int rc = parse_config(&st->cfg, c);
    if (rc != TAPE_OK) {
        free(st->cfg.path);
        free(st);
        return rc;
    }
    st->dirfd = -1;
    st->lockfd = -1;
    pthread_mutex_init(&st->lock, NULL);
    *out_ops = &fs_ops;
    *out_self = st;
    return TAPE_OK;
}

static const tape_provider fs_provider = {
    .version = TAPE_PROVIDER_VERSION,
    .name = "filesystem",
    .description = "Shadowcat tape format 2.0 files in a directory (the default store)",
    .provider_version = 1,
    .capabilities = TAPE_CAP_EXISTS | TAPE_CAP_STATS | TAPE_CAP_WRITER | TAPE_CAP_READ_FRAMES |
                    TAPE_CAP_THREAD_SAFE | TAPE_CAP_PERSISTENT | TAPE_CAP_WRITER_RETRY,
    .validate = fs_validate,
    .create = fs_create,
};

const tape_provider *tape_provider_filesystem(void)
{
    return &fs_provider;
}
