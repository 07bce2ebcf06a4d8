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
static int ent_set(fs_store *st, const char *id, tape_entry *entry, int64_t mtime_ns,
                   int64_t size)
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
    e->meta_mtime_ns = mtime_ns;
    e->meta_size = size;
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
    if (st->lockfd < 0) {
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
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(rec, "meta_mtime_ns");
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(rec, "meta_size");
    if (!cJSON_IsString(meta) || !cJSON_IsNumber(mt) || !cJSON_IsNumber(sz)) {
        return tape_error_set(TAPE_ECORRUPT, "index record for \"%s\" is incomplete",
                              id->valuestring);
    }
    tape_entry *e = NULL;
    int rc = tape_entry_from_meta(&e, meta->valuestring, strlen(meta->valuestring));
    if (rc != TAPE_OK) {
        return tape_error_set(TAPE_ECORRUPT, "index record for \"%s\": %s", id->valuestring,
                              tape_errmsg());
    }
    return ent_set(st, id->valuestring, e, (int64_t)mt->valuedouble, (int64_t)sz->valuedouble);
}

static cJSON *make_put(const char *id, const char *meta, int64_t mtime_ns, int64_t size)
{
    cJSON *rec = cJSON_CreateObject();
    if (rec == NULL || !cJSON_AddStringToObject(rec, "op", "put") ||
        !cJSON_AddStringToObject(rec, "id", id) ||
        !cJSON_AddNumberToObject(rec, "meta_mtime_ns", (double)mtime_ns) ||
        !cJSON_AddNumberToObject(rec, "meta_size", (double)size) ||
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
    cJSON *rec = make_put(e->id, meta, e->meta_mtime_ns, e->meta_size);
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
    char *name = fs_name(id, META_SUFFIX);
    if (name == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    struct stat sb;
    int rc = fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0
                 ? TAPE_OK
                 : fs_errno(errno, "cannot stat", name);
    free(name);
    tape_entry *e = NULL;
    if (rc == TAPE_OK) {
        rc = tape_entry_from_meta(&e, meta, meta_len);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    char *copy = strndup(meta, meta_len);
    cJSON *rec = copy != NULL ? make_put(id, copy, mtime_ns_of(&sb), (int64_t)sb.st_size) : NULL;
    free(copy);
    if (rec == NULL) {
        tape_entry_free(e);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    rc = ent_set(st, id, e, mtime_ns_of(&sb), (int64_t)sb.st_size);
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

/* A tape whose meta file is missing (a crash between creating the .jsonl
 * and its meta) or unreadable: read the .jsonl in recovery mode. With
 * write_meta, a missing meta is recreated from it so files and index agree. */
static int entry_from_jsonl(tape_entry **out, fs_store *st, const char *id, int write_meta,
                            struct stat *meta_sb)
{
    char *name = fs_name(id, JSONL_SUFFIX), *text = NULL;
    size_t len = 0;
    int rc = name != NULL ? fs_read_file(&text, &len, st->dirfd, name)
                          : tape_error_set(TAPE_ENOMEM, "out of memory");
    free(name);
    tape *t = NULL;
    if (rc == TAPE_OK) {
        tape_decode_options o = TAPE_DECODE_OPTIONS_INIT;
        o.mode = TAPE_DECODE_RECOVER;
        o.max_line_bytes = st->cfg.max_line_bytes;
        rc = tape_decode(&t, text, len, NULL, 0, &o, NULL);
    }
    free(text);
    if (rc == TAPE_OK) {
        rc = tape_entry_from_tape(out, t);
    }
    if (rc == TAPE_OK && write_meta) {
        char *meta = NULL, *mname = fs_name(id, META_SUFFIX);
        size_t mlen = 0;
        int wrc = mname != NULL ? tape_encode_meta(&meta, &mlen, t) : TAPE_ENOMEM;
        if (wrc == TAPE_OK) {
            wrc = fs_write_atomic(st->dirfd, mname, meta, mlen, st->cfg.file_mode,
                                  st->cfg.durability != FS_DURABILITY_NONE);
        }
        if (wrc == TAPE_OK && fstatat(st->dirfd, mname, meta_sb, AT_SYMLINK_NOFOLLOW) == 0) {
            tape_log(TAPE_LOG_WARN, "filesystem: tape \"%s\" had no meta file; recreated it "
                     "from its .jsonl", id);
        } else {
            meta_sb->st_size = -1;
        }
        free(mname);
        tape_string_free(meta);
    }
    tape_free(t);
    return rc;
}

typedef struct scan_item {
    char *id;
    int has_meta, has_jsonl;
    struct stat meta_sb;
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
        if (is_meta) items[n].meta_sb = sb;
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
            free(items[i].id);
        } else {
            items[w++] = items[i];
        }
    }
    *out = items;
    *out_n = w;
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
    if (it->has_meta && e != NULL && e->meta_mtime_ns == mtime_ns_of(&it->meta_sb) &&
        e->meta_size == (int64_t)it->meta_sb.st_size) {
        return TAPE_OK; /* up to date */
    }
    tape_entry *entry = NULL;
    int rc = TAPE_ECORRUPT;
    struct stat meta_sb = it->meta_sb;
    if (it->has_meta) {
        char *name = fs_name(it->id, META_SUFFIX), *text = NULL;
        size_t len = 0;
        rc = name != NULL ? fs_read_file(&text, &len, st->dirfd, name) : TAPE_ENOMEM;
        free(name);
        if (rc == TAPE_OK) {
            rc = tape_entry_from_meta(&entry, text, len);
        }
        free(text);
        if (rc != TAPE_OK) {
            tape_log(TAPE_LOG_WARN, "filesystem: meta of tape \"%s\" is unreadable (%s); "
                     "listing it from its .jsonl", it->id, tape_errmsg());
        }
    }
    if (rc != TAPE_OK) {
        /* A damaged meta is kept as it is (nothing is overwritten); a
         * missing one is recreated. */
        rc = entry_from_jsonl(&entry, st, it->id, !it->has_meta, &meta_sb);
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
    return ent_set(st, it->id, entry, mtime_ns_of(&meta_sb), (int64_t)meta_sb.st_size);
}

int fs_index_open(fs_store *st)
{
    if (st->buckets == NULL && grow(st) != TAPE_OK) {
        return TAPE_ENOMEM;
    }
    int rc = fs_index_lock(st, 1);
    if (rc != TAPE_OK) {
        return rc;
    }
    fs_clean_temps(st->dirfd);
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
    if (rc == TAPE_OK && (changed || st->log_lines > 0)) {
        rc = compact(st);
    }
    fs_index_unlock(st);
    return rc;
}
