/*
 * fs_index.c - the directory index of the filesystem provider.
 *
 * The index is a cache of the meta files, kept as two files:
 *   index.json  a snapshot: {"format":"tapestore-fs-index","version":1,"tapes":[...]}
 *   index.log   changes since the snapshot, one JSON line each (put / del)
 * A change appends one line to the log (cheap however many tapes there
 * are); when the log grows past half the snapshot it is folded into a new
 * snapshot. Every process keeps the index in memory and reads only what
 * others appended since it last looked. Changes are serialised between
 * processes with flock on index.lock. At open the index is checked against
 * the meta files and repaired, so deleting or damaging it loses nothing.
 */
#include "fs.h"

#include <cjson/cJSON.h>

#include <dirent.h>
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

/* ------------------------------------------------------------ the map */

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

fs_ent *fs_index_find(fs_store *st, const char *id)
{
    if (st->buckets == NULL) {
        return NULL;
    }
    uint32_t h = hash_id(id);
    for (fs_ent *e = st->buckets[h & (st->nbuckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == h && strcmp(e->id, id) == 0) {
            return e;
        }
    }
    return NULL;
}

static void ent_free(fs_ent *e)
{
    tape_entry_free(e->entry);
    free(e->id);
    free(e);
}

static int grow(fs_store *st)
{
    size_t n = st->nbuckets != 0 ? st->nbuckets * 2 : 1024;
    fs_ent **b = calloc(n, sizeof *b);
    if (b == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < st->nbuckets; i++) {
        fs_ent *e = st->buckets[i];
        while (e != NULL) {
            fs_ent *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
    return TAPE_OK;
}

/* Insert or replace; takes the entry reference. */
static int ent_set(fs_store *st, const char *id, tape_entry *entry, const fs_stamp *meta,
                   const fs_stamp *jsonl)
{
    fs_ent *e = fs_index_find(st, id);
    if (e == NULL) {
        if (st->count >= st->nbuckets * 3 / 4 && grow(st) != TAPE_OK) {
            tape_entry_free(entry);
            return TAPE_ENOMEM;
        }
        e = calloc(1, sizeof *e);
        if (e == NULL || (e->id = strdup(id)) == NULL) {
            free(e);
            tape_entry_free(entry);
            return tape_error_set(TAPE_ENOMEM, "out of memory");
        }
        e->hash = hash_id(id);
        e->next = st->buckets[e->hash & (st->nbuckets - 1)];
        st->buckets[e->hash & (st->nbuckets - 1)] = e;
        st->count++;
    } else {
        tape_entry_free(e->entry);
    }
    e->entry = entry;
    e->meta = *meta;
    e->jsonl = *jsonl;
    return TAPE_OK;
}

static void ent_remove(fs_store *st, const char *id)
{
    if (st->buckets == NULL) {
        return;
    }
    uint32_t h = hash_id(id);
    for (fs_ent **pp = &st->buckets[h & (st->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && strcmp((*pp)->id, id) == 0) {
            fs_ent *dead = *pp;
            *pp = dead->next;
            ent_free(dead);
            st->count--;
            return;
        }
    }
}

void fs_index_clear(fs_store *st)
{
    for (size_t i = 0; i < st->nbuckets; i++) {
        fs_ent *e = st->buckets[i];
        while (e != NULL) {
            fs_ent *next = e->next;
            ent_free(e);
            e = next;
        }
        st->buckets[i] = NULL;
    }
    st->count = 0;
}

int fs_index_each(fs_store *st, int (*fn)(void *ud, fs_ent *e), void *ud)
{
    for (size_t i = 0; i < st->nbuckets; i++) {
        for (fs_ent *e = st->buckets[i]; e != NULL; e = e->next) {
            int rc = fn(ud, e);
            if (rc != TAPE_OK) {
                return rc;
            }
        }
    }
    return TAPE_OK;
}

/* ------------------------------------------------------------ locking */

int fs_index_lock(fs_store *st, int exclusive)
{
    if (st->cfg.read_only) {
        /* A reader takes the shared lock on an existing lock file (flock
         * works on a read-only descriptor) and creates nothing: with no
         * lock file yet, no writer has used the index to lock against. */
        exclusive = 0;
        if (st->lockfd < 0) {
            st->lockfd = openat(st->dirfd, FS_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (st->lockfd < 0) {
                return errno == ENOENT ? TAPE_OK : fs_errno(errno, "cannot open", FS_LOCK_FILE);
            }
        }
    } else if (st->lockfd < 0) {
        st->lockfd = openat(st->dirfd, FS_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                            st->cfg.file_mode);
        if (st->lockfd < 0) {
            return fs_errno(errno, "cannot open", FS_LOCK_FILE);
        }
    }
    while (flock(st->lockfd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
        if (errno != EINTR) {
            return fs_errno(errno, "cannot lock", FS_LOCK_FILE);
        }
    }
    return TAPE_OK;
}

void fs_index_unlock(fs_store *st)
{
    if (st->lockfd >= 0) {
        flock(st->lockfd, LOCK_UN);
    }
}

/* ------------------------------------------------------------ records */

static int64_t mtime_ns_of(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

/* A stamp in a record: the mtime as a decimal string (nanoseconds since
 * the epoch do not fit a JSON number exactly), the size as a number. An
 * mtime stored as a number (older index) reads back inexact: stale. */
static int get_stamp(fs_stamp *out, const cJSON *rec, const char *mkey, const char *skey)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(rec, mkey);
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(rec, skey);
    if (!cJSON_IsNumber(sz)) {
        return 0;
    }
    if (cJSON_IsString(mt)) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(mt->valuestring, &end, 10);
        if (errno != 0 || end == mt->valuestring || *end != '\0') {
            return 0;
        }
        out->mtime_ns = (int64_t)v;
    } else if (cJSON_IsNumber(mt)) {
        out->mtime_ns = (int64_t)mt->valuedouble;
    } else {
        return 0;
    }
    out->size = (int64_t)sz->valuedouble;
    return 1;
}

static int add_stamp(cJSON *rec, const fs_stamp *s, const char *mkey, const char *skey)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)s->mtime_ns);
    return cJSON_AddStringToObject(rec, mkey, buf) != NULL &&
           cJSON_AddNumberToObject(rec, skey, (double)s->size) != NULL;
}

/* Apply one record ({"op":"put"|"del","id",...}) to the in-memory map. */
static int apply_record(fs_store *st, const cJSON *rec)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(rec, "op");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (!cJSON_IsString(id) || tape_id_validate(id->valuestring) != TAPE_OK) {
        return tape_error_set(TAPE_ECORRUPT, "index record without a valid id");
    }
    if (cJSON_IsString(op) && strcmp(op->valuestring, "del") == 0) {
        ent_remove(st, id->valuestring);
        return TAPE_OK;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(rec, "meta");
    fs_stamp ms, js;
    if (!cJSON_IsString(meta) || !get_stamp(&ms, rec, "meta_mtime_ns", "meta_size")) {
        return tape_error_set(TAPE_ECORRUPT, "index record for \"%s\" is incomplete",
                              id->valuestring);
    }
    /* Records written before the .jsonl was stamped: never fresh. */
    if (!get_stamp(&js, rec, "jsonl_mtime_ns", "jsonl_size")) {
        js.mtime_ns = 0;
        js.size = -1;
    }
    tape_entry *e = NULL;
    int rc = tape_entry_from_meta(&e, meta->valuestring, strlen(meta->valuestring));
    if (rc != TAPE_OK) {
        return tape_error_set(TAPE_ECORRUPT, "index record for \"%s\": %s", id->valuestring,
                              tape_errmsg());
    }
    return ent_set(st, id->valuestring, e, &ms, &js);
}

static cJSON *make_put(const char *id, const char *meta, const fs_stamp *ms,
                       const fs_stamp *js)
{
    cJSON *rec = cJSON_CreateObject();
    if (rec == NULL || !cJSON_AddStringToObject(rec, "op", "put") ||
        !cJSON_AddStringToObject(rec, "id", id) ||
        !add_stamp(rec, ms, "meta_mtime_ns", "meta_size") ||
        !add_stamp(rec, js, "jsonl_mtime_ns", "jsonl_size") ||
        !cJSON_AddStringToObject(rec, "meta", meta)) {
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

/* ------------------------------------------------------------ reading */

static int read_snapshot(fs_store *st)
{
    char *text = NULL;
    size_t len = 0;
    struct stat sb;
    if (fstatat(st->dirfd, FS_INDEX_FILE, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        st->index_ino = 0;
        st->index_mtime_ns = 0;
        return errno == ENOENT ? TAPE_ENOTFOUND : fs_errno(errno, "cannot stat", FS_INDEX_FILE);
    }
    int rc = fs_read_file(&text, &len, st->dirfd, FS_INDEX_FILE);
    if (rc != TAPE_OK) {
        return rc;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *tapes = cJSON_GetObjectItemCaseSensitive(root, "tapes");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "tapestore-fs-index") != 0 ||
        !cJSON_IsArray(tapes)) {
        cJSON_Delete(root);
        return tape_error_set(TAPE_ECORRUPT, "filesystem: %s is not a tapestore index",
                              FS_INDEX_FILE);
    }
    for (const cJSON *it = tapes->child; it != NULL && rc == TAPE_OK; it = it->next) {
        rc = apply_record(st, it);
    }
    cJSON_Delete(root);
    st->index_ino = sb.st_ino;
    st->index_mtime_ns = mtime_ns_of(&sb);
    return rc;
}

/* Read log lines from st->log_offset on. A last line without newline is a
 * write in progress or torn: left for next time (or cut at compaction). */
static int read_log(fs_store *st)
{
    int fd = openat(st->dirfd, FS_LOG_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            st->log_offset = 0;
            return TAPE_OK;
        }
        return fs_errno(errno, "cannot open", FS_LOG_FILE);
    }
    if (lseek(fd, st->log_offset, SEEK_SET) < 0) {
        int err = errno;
        close(fd);
        return fs_errno(err, "cannot seek", FS_LOG_FILE);
    }
    fs_lines r;
    int rc = fs_lines_init(&r, fd, (size_t)1 << 30);
    const char *line;
    size_t len;
    int torn;
    while (rc == TAPE_OK && (rc = fs_lines_next(&r, &line, &len, &torn)) == TAPE_OK) {
        if (torn) {
            break;
        }
        cJSON *rec = cJSON_ParseWithLength(line, len);
        rc = rec != NULL ? apply_record(st, rec)
                         : tape_error_set(TAPE_ECORRUPT, "filesystem: %s line %llu is not JSON",
                                          FS_LOG_FILE, (unsigned long long)r.lineno);
        cJSON_Delete(rec);
        if (rc == TAPE_OK) {
            st->log_offset += (off_t)len + 1;
            st->log_lines++;
        }
    }
    fs_lines_free(&r);
    close(fd);
    return rc == TAPE_DONE ? TAPE_OK : rc;
}

static int load_all(fs_store *st)
{
    fs_index_clear(st);
    st->log_offset = 0;
    st->log_lines = 0;
    int rc = read_snapshot(st);
    if (rc == TAPE_OK || rc == TAPE_ENOTFOUND) {
        int had_snapshot = rc == TAPE_OK;
        rc = read_log(st);
        if (rc == TAPE_OK && !had_snapshot) {
            rc = TAPE_ENOTFOUND;
        }
    }
    return rc;
}

int fs_index_catch_up(fs_store *st)
{
    struct stat sb;
    int rc;
    if (fstatat(st->dirfd, FS_INDEX_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        (sb.st_ino != st->index_ino || mtime_ns_of(&sb) != st->index_mtime_ns)) {
        rc = load_all(st); /* another process compacted: start over */
    } else {
        struct stat lb;
        if (fstatat(st->dirfd, FS_LOG_FILE, &lb, AT_SYMLINK_NOFOLLOW) == 0 &&
            lb.st_size < st->log_offset) {
            rc = load_all(st);
        } else {
            rc = read_log(st);
        }
    }
    return rc == TAPE_ENOTFOUND ? TAPE_OK : rc; /* no snapshot yet: the log is all */
}

int fs_index_refresh(fs_store *st)
{
    int rc = fs_index_lock(st, 0);
    if (rc == TAPE_OK) {
        rc = fs_index_catch_up(st);
        fs_index_unlock(st);
    }
    return rc;
}

/* ------------------------------------------------------------ writing */

typedef struct snap_ctx {
    cJSON *tapes;
    int failed;
} snap_ctx;

static int add_to_snapshot(void *ud, fs_ent *e)
{
    snap_ctx *c = ud;
    char *meta = NULL;
    size_t len = 0;
    if (tape_entry_meta_json(&meta, &len, e->entry) != TAPE_OK) {
        c->failed = 1;
        return TAPE_ENOMEM;
    }
    cJSON *rec = make_put(e->id, meta, &e->meta, &e->jsonl);
    tape_string_free(meta);
    if (rec == NULL) {
        c->failed = 1;
        return TAPE_ENOMEM;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "op");
    cJSON_AddItemToArray(c->tapes, rec);
    return TAPE_OK;
}

/* Fold the log into a new snapshot. Held: st->lock and the EX file lock. */
static int compact(fs_store *st)
{
    cJSON *root = cJSON_CreateObject();
    snap_ctx c = { cJSON_CreateArray(), 0 };
    if (root == NULL || c.tapes == NULL ||
        !cJSON_AddStringToObject(root, "format", "tapestore-fs-index") ||
        !cJSON_AddNumberToObject(root, "version", 1)) {
        cJSON_Delete(root);
        cJSON_Delete(c.tapes);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    cJSON_AddItemToObject(root, "tapes", c.tapes);
    fs_index_each(st, add_to_snapshot, &c);
    char *text = c.failed ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory writing the index");
    }
    /* A cache: not synced; a crash is repaired by the check at open. */
    int rc = fs_write_atomic(st->dirfd, FS_INDEX_FILE, text, strlen(text), st->cfg.file_mode, 0);
    free(text);
    if (rc != TAPE_OK) {
        return rc;
    }
    int fd = openat(st->dirfd, FS_LOG_FILE,
                    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, st->cfg.file_mode);
    if (fd < 0) {
        return fs_errno(errno, "cannot truncate", FS_LOG_FILE);
    }
    close(fd);
    struct stat sb;
    if (fstatat(st->dirfd, FS_INDEX_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        st->index_ino = sb.st_ino;
        st->index_mtime_ns = mtime_ns_of(&sb);
    }
    st->log_offset = 0;
    st->log_lines = 0;
    return TAPE_OK;
}

/* Append a record to the log. Held: st->lock and the EX file lock, after
 * a refresh, so our offset is the end of the log. */
static int append_record(fs_store *st, cJSON *rec)
{
    char *text = cJSON_PrintUnformatted(rec);
    if (text == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    size_t len = strlen(text);
    int fd = openat(st->dirfd, FS_LOG_FILE,
                    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, st->cfg.file_mode);
    int rc = TAPE_OK;
    if (fd < 0) {
        rc = fs_errno(errno, "cannot open", FS_LOG_FILE);
    } else {
        struct stat sb;
        /* Cut a torn tail left by a crash so our line starts cleanly. */
        if (fstat(fd, &sb) == 0 && sb.st_size > st->log_offset) {
            if (ftruncate(fd, st->log_offset) != 0) {
                rc = fs_errno(errno, "cannot repair", FS_LOG_FILE);
            }
        }
        if (rc == TAPE_OK && fs_write_all(fd, text, len, "\n", 1) != 0) {
            rc = fs_errno(errno, "cannot append to", FS_LOG_FILE);
        }
        close(fd);
    }
    free(text);
    if (rc == TAPE_OK) {
        st->log_offset += (off_t)len + 1;
        st->log_lines++;
        if (st->log_lines > 256 && st->log_lines > st->count / 2) {
            rc = compact(st);
        }
    }
    return rc;
}

int fs_index_put(fs_store *st, const char *id, const char *meta, size_t meta_len)
{
    char *name = fs_name(id, META_SUFFIX), *jname = fs_name(id, JSONL_SUFFIX);
    if (name == NULL || jname == NULL) {
        free(name);
        free(jname);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    fs_stamp ms, js;
    fs_stamp_of(&ms, st->dirfd, name);
    fs_stamp_of(&js, st->dirfd, jname);
    int rc = ms.size >= 0 ? TAPE_OK : fs_errno(errno, "cannot stat", name);
    free(name);
    free(jname);
    tape_entry *e = NULL;
    if (rc == TAPE_OK) {
        rc = tape_entry_from_meta(&e, meta, meta_len);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    char *copy = strndup(meta, meta_len);
    cJSON *rec = copy != NULL ? make_put(id, copy, &ms, &js) : NULL;
    free(copy);
    if (rec == NULL) {
        tape_entry_free(e);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    rc = ent_set(st, id, e, &ms, &js);
    if (rc == TAPE_OK) {
        rc = append_record(st, rec);
    }
    cJSON_Delete(rec);
    return rc;
}

int fs_index_del(fs_store *st, const char *id)
{
    ent_remove(st, id);
    cJSON *rec = cJSON_CreateObject();
    if (rec == NULL || !cJSON_AddStringToObject(rec, "op", "del") ||
        !cJSON_AddStringToObject(rec, "id", id)) {
        cJSON_Delete(rec);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    int rc = append_record(st, rec);
    cJSON_Delete(rec);
    return rc;
}

/* ------------------------------------------------------------ open + repair */

static int has_suffix(const char *name, const char *suffix, size_t *out_stem)
{
    size_t n = strlen(name), k = strlen(suffix);
    if (n <= k || strcmp(name + n - k, suffix) != 0) {
        return 0;
    }
    *out_stem = n - k;
    return 1;
}

typedef struct scan_item {
    char *id;
    int has_meta, has_jsonl;
    struct stat meta_sb, jsonl_sb;
} scan_item;

static int scan_cmp(const void *a, const void *b)
{
    return strcmp(((const scan_item *)a)->id, ((const scan_item *)b)->id);
}

typedef struct stale_ctx {
    fs_store *st;
    scan_item *items;
    size_t n;
    char **gone;
    size_t ngone, cap;
} stale_ctx;

static int note_gone(void *ud, fs_ent *e)
{
    stale_ctx *c = ud;
    scan_item key = { .id = e->id };
    scan_item *found = c->n == 0 ? NULL : bsearch(&key, c->items, c->n, sizeof *c->items, scan_cmp);
    if (found != NULL && (found->has_meta || found->has_jsonl)) {
        return TAPE_OK;
    }
    if (c->ngone == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **g = realloc(c->gone, cap * sizeof *g);
        if (g == NULL) return tape_error_set(TAPE_ENOMEM, "out of memory");
        c->gone = g;
        c->cap = cap;
    }
    c->gone[c->ngone++] = e->id;
    return TAPE_OK;
}

/* List NAME.meta.json and NAME.jsonl files (regular files only). */
static int scan_dir(scan_item **out, size_t *out_n, fs_store *st)
{
    *out = NULL;
    *out_n = 0;
    int fd = dup(st->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int err = errno;
        if (fd >= 0) close(fd);
        return fs_errno(err, "cannot list", st->cfg.path);
    }
    rewinddir(d);
    scan_item *items = NULL;
    size_t n = 0, cap = 0;
    int rc = TAPE_OK;
    struct dirent *de;
    while (rc == TAPE_OK && (de = readdir(d)) != NULL) {
        size_t stem;
        int is_meta = has_suffix(de->d_name, META_SUFFIX, &stem);
        if (!is_meta && !has_suffix(de->d_name, JSONL_SUFFIX, &stem)) {
            continue;
        }
        char id[TAPE_ID_MAX + 1];
        if (stem > TAPE_ID_MAX) continue;
        memcpy(id, de->d_name, stem);
        id[stem] = '\0';
        struct stat sb;
        if (tape_id_validate(id) != TAPE_OK ||
            fstatat(st->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) {
            continue; /* not ours, or a symlink: never followed */
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            scan_item *ni = realloc(items, cap * sizeof *ni);
            if (ni == NULL) { rc = tape_error_set(TAPE_ENOMEM, "out of memory"); break; }
            items = ni;
        }
        memset(&items[n], 0, sizeof items[n]);
        items[n].id = strdup(id);
        if (items[n].id == NULL) { rc = tape_error_set(TAPE_ENOMEM, "out of memory"); break; }
        items[n].has_meta = is_meta;
        items[n].has_jsonl = !is_meta;
        if (is_meta) {
            items[n].meta_sb = sb;
        } else {
            items[n].jsonl_sb = sb;
        }
        n++;
    }
    closedir(d);
    /* Merge the two files of each tape into one item. */
    if (n > 1) {
        qsort(items, n, sizeof *items, scan_cmp);
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(items[w - 1].id, items[i].id) == 0) {
            items[w - 1].has_meta |= items[i].has_meta;
            items[w - 1].has_jsonl |= items[i].has_jsonl;
            if (items[i].has_meta) items[w - 1].meta_sb = items[i].meta_sb;
            if (items[i].has_jsonl) items[w - 1].jsonl_sb = items[i].jsonl_sb;
            free(items[i].id);
        } else {
            items[w++] = items[i];
        }
    }
    *out = items;
    *out_n = w;
    return rc;
}

static int same_stats(const tape_stats *a, const tape_stats *b)
{
    return a->frame_count == b->frame_count && a->duration_ms == b->duration_ms &&
           a->last_sequence == b->last_sequence && a->client_to_server == b->client_to_server &&
           a->server_to_client == b->server_to_client && a->error_count == b->error_count &&
           a->correlation_count == b->correlation_count &&
           a->file_size_bytes == b->file_size_bytes;
}

/*
 * Write t's meta document (a missing one recreated, or stale stats
 * corrected) where that is allowed: a writable store, a tape not being
 * recorded (its writer owns the meta), files that agree on the tape id (a
 * foreign tape copied under another name is left as its owner made it).
 * Failure is logged, not fatal: the index holds the right entry anyway.
 */
static void write_back(fs_store *st, const char *id, const tape *t, const fs_read_info *info,
                       fs_stamp *meta_stamp, const char *why)
{
    char *jname = fs_name(id, JSONL_SUFFIX), *mname = fs_name(id, META_SUFFIX), *meta = NULL;
    size_t len = 0;
    int rc = jname != NULL && mname != NULL ? TAPE_OK : TAPE_ENOMEM;
    if (rc == TAPE_OK && (st->cfg.read_only || info->id_mismatch ||
                          fs_check_not_busy(st, jname, id) != TAPE_OK)) {
        rc = TAPE_EBUSY; /* not ours to write now: the index alone is corrected */
    }
    if (rc == TAPE_OK) rc = tape_encode_meta(&meta, &len, t);
    if (rc == TAPE_OK) {
        rc = fs_write_atomic(st->dirfd, mname, meta, len, st->cfg.file_mode,
                             st->cfg.durability != FS_DURABILITY_NONE);
        if (rc == TAPE_OK) {
            fs_stamp_of(meta_stamp, st->dirfd, mname);
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": %s; rewrote its meta file", id,
                     why);
        } else {
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\": %s; cannot rewrite its meta "
                     "file (%s)", id, why, tape_errmsg());
        }
    }
    tape_string_free(meta);
    free(jname);
    free(mname);
}

/*
 * Make the entry of a tape whose files changed since the index saw them
 * (or that it never saw): decode it as a load would, so the listing says
 * what a load says ("the frames win"), under the id of its file name.
 */
static int fresh_entry(tape_entry **out, fs_store *st, const char *id, fs_stamp *meta_stamp,
                       fs_stamp *jsonl_stamp)
{
    *out = NULL;
    tape *t = NULL;
    fs_read_info info;
    int mode = st->cfg.recover ? TAPE_DECODE_RECOVER : TAPE_DECODE_STRICT;
    int rc = fs_read_tape(&t, st, id, mode, &info);
    if (rc == TAPE_OK) {
        rc = tape_entry_from_tape(out, t);
        tape_stats counted = TAPE_STATS_INIT, listed = TAPE_STATS_INIT;
        tape_entry *old = NULL;
        if (rc == TAPE_OK && info.meta_state == FS_META_MISSING) {
            write_back(st, id, t, &info, meta_stamp, "no meta file; made one from its .jsonl");
        } else if (rc == TAPE_OK && info.meta_state == FS_META_OK &&
                   tape_entry_from_meta(&old, info.meta, info.meta_len) == TAPE_OK &&
                   tape_entry_get_stats(&listed, old) == TAPE_OK &&
                   tape_get_stats(&counted, t) == TAPE_OK && !same_stats(&listed, &counted)) {
            char why[160];
            snprintf(why, sizeof why, "the meta file's stats (%llu frames, %lld ms) disagree "
                     "with its frames (%llu frames, %lld ms)",
                     (unsigned long long)listed.frame_count, (long long)listed.duration_ms,
                     (unsigned long long)counted.frame_count, (long long)counted.duration_ms);
            write_back(st, id, t, &info, meta_stamp, why);
        }
        tape_entry_free(old);
    } else if (rc != TAPE_ENOMEM) {
        /* It does not load as configured. Still listed (nothing is hidden
         * from whoever repairs it): from its meta, else from the frames
         * that recovery mode can read. */
        char why[512];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        rc = info.meta_state == FS_META_OK ? tape_entry_from_meta(out, info.meta, info.meta_len)
                                           : TAPE_ECORRUPT;
        if (rc != TAPE_OK && rc != TAPE_ENOMEM && mode != TAPE_DECODE_RECOVER) {
            fs_read_info_free(&info);
            rc = fs_read_tape(&t, st, id, TAPE_DECODE_RECOVER, &info);
            if (rc == TAPE_OK) rc = tape_entry_from_tape(out, t);
        }
        if (rc == TAPE_OK) {
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\" does not load (%s); listed from "
                     "what can be read", id, why);
        }
    }
    *jsonl_stamp = info.jsonl;
    fs_read_info_free(&info);
    tape_free(t);
    return rc;
}

/* Bring one tape's index entry in line with its files. *changed set if so. */
static int reconcile(fs_store *st, scan_item *it, int *changed)
{
    fs_ent *e = fs_index_find(st, it->id);
    if (!it->has_jsonl) {
        /* Meta alone: the frames are gone. Not a tape; left for a human. */
        tape_log(TAPE_LOG_WARN, "filesystem: %s" META_SUFFIX " has no .jsonl; not listed",
                 it->id);
        if (e != NULL) {
            ent_remove(st, it->id);
            *changed = 1;
        }
        return TAPE_OK;
    }
    fs_stamp ms = { 0, -1 }, js;
    if (it->has_meta) {
        ms.mtime_ns = mtime_ns_of(&it->meta_sb);
        ms.size = (int64_t)it->meta_sb.st_size;
    }
    js.mtime_ns = mtime_ns_of(&it->jsonl_sb);
    js.size = (int64_t)it->jsonl_sb.st_size;
    if (e != NULL && ms.size >= 0 && e->meta.mtime_ns == ms.mtime_ns &&
        e->meta.size == ms.size && e->jsonl.mtime_ns == js.mtime_ns &&
        e->jsonl.size == js.size && strcmp(tape_entry_id(e->entry), it->id) == 0) {
        return TAPE_OK; /* up to date: what a load would say */
    }
    tape_entry *entry = NULL;
    int rc = fresh_entry(&entry, st, it->id, &ms, &js);
    if (rc == TAPE_ENOMEM) {
        return rc;
    }
    if (rc != TAPE_OK) {
        tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\" cannot be read (%s); left out of "
                 "the index", it->id, tape_errmsg());
        if (e != NULL) {
            ent_remove(st, it->id);
            *changed = 1;
        }
        return TAPE_OK; /* the files stay as they are: nothing is deleted */
    }
    *changed = 1;
    return ent_set(st, it->id, entry, &ms, &js);
}

/*
 * A tape being recorded grows between the writer's checkpoints, so its
 * entry (from the last meta) falls behind its frames. Before a listing,
 * every entry with status recording whose .jsonl changed since it was
 * read is recounted from the file, in memory only (the meta is its
 * writer's): the listing says what a load says. Costs a stat per
 * recording, and a decode only when it grew.
 */
static int recount_live(void *ud, fs_ent *e)
{
    fs_store *st = ud;
    if (tape_entry_status(e->entry) != TAPE_STATUS_RECORDING) {
        return TAPE_OK;
    }
    char *jname = fs_name(e->id, JSONL_SUFFIX);
    if (jname == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    fs_stamp js;
    fs_stamp_of(&js, st->dirfd, jname);
    free(jname);
    if (js.size < 0 || (js.mtime_ns == e->jsonl.mtime_ns && js.size == e->jsonl.size)) {
        return TAPE_OK;
    }
    tape *t = NULL;
    fs_read_info info;
    tape_entry *entry = NULL;
    int rc = fs_read_tape(&t, st, e->id, st->cfg.recover ? TAPE_DECODE_RECOVER
                                                         : TAPE_DECODE_STRICT, &info);
    if (rc == TAPE_OK) rc = tape_entry_from_tape(&entry, t);
    if (rc == TAPE_OK) {
        tape_entry_free(e->entry);
        e->entry = entry;
        e->jsonl = info.jsonl;
    }
    fs_read_info_free(&info);
    tape_free(t);
    /* Unreadable just now (a damaged file): the last entry stands. */
    return rc == TAPE_ENOMEM ? rc : TAPE_OK;
}

int fs_index_recount_live(fs_store *st)
{
    return fs_index_each(st, recount_live, st);
}

int fs_index_open(fs_store *st)
{
    if (st->buckets == NULL && grow(st) != TAPE_OK) {
        return TAPE_ENOMEM;
    }
    int rc = fs_index_lock(st, 1); /* shared when read-only */
    if (rc != TAPE_OK) {
        return rc;
    }
    if (!st->cfg.read_only) {
        fs_clean_temps(st->dirfd);
    }
    int changed = 0;
    rc = load_all(st);
    if (rc == TAPE_ENOTFOUND) {
        changed = 1; /* no index yet: build it */
        rc = TAPE_OK;
    } else if (rc == TAPE_ECORRUPT) {
        tape_log(TAPE_LOG_WARN, "filesystem: index of %s is damaged (%s); rebuilding it from "
                 "the meta files", st->cfg.path, tape_errmsg());
        fs_index_clear(st);
        changed = 1;
        rc = TAPE_OK;
    }
    scan_item *items = NULL;
    size_t n = 0;
    if (rc == TAPE_OK) {
        rc = scan_dir(&items, &n, st);
    }
    for (size_t i = 0; rc == TAPE_OK && i < n; i++) {
        rc = reconcile(st, &items[i], &changed);
    }
    if (rc == TAPE_OK) {
        stale_ctx c = { st, items, n, NULL, 0, 0 };
        rc = fs_index_each(st, note_gone, &c);
        for (size_t i = 0; rc == TAPE_OK && i < c.ngone; i++) {
            ent_remove(st, c.gone[i]);
            changed = 1;
        }
        free(c.gone);
    }
    for (size_t i = 0; i < n; i++) {
        free(items[i].id);
    }
    free(items);
    if (rc == TAPE_OK && !st->cfg.read_only && (changed || st->log_lines > 0)) {
        rc = compact(st);
    } else if (rc == TAPE_OK && st->cfg.read_only && changed) {
        /* The repaired index lives in memory only. What is on disk now is
         * accounted for by the scan: from here on only a writer's later
         * changes (log lines past the end, a new snapshot) are read. */
        struct stat sb;
        if (fstatat(st->dirfd, FS_INDEX_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            st->index_ino = sb.st_ino;
            st->index_mtime_ns = mtime_ns_of(&sb);
        }
        st->log_offset = fstatat(st->dirfd, FS_LOG_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0
                             ? sb.st_size
                             : 0;
    }
    fs_index_unlock(st);
    return rc;
}
