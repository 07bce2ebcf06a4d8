/*
 * fs.h - private to the filesystem provider (providers/filesystem/).
 * Everything here uses only provider.h and POSIX.
 */
#ifndef TAPE_FS_H
#define TAPE_FS_H

#include <tapestore/provider.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FS_DURABILITY_NONE 0
#define FS_DURABILITY_BATCH 1
#define FS_DURABILITY_ALWAYS 2

#define FS_INDEX_FILE "index.json"
#define FS_LOG_FILE "index.log"
#define FS_LOCK_FILE "index.lock"
#define FS_TMP_MARK ".tmp."

typedef struct fs_config {
    char *path;
    int durability;
    int64_t checkpoint_every;
    mode_t file_mode;
    size_t max_line_bytes;
    int recover;
    int read_only;            /* never write into the directory */
} fs_config;

/* What a file looked like when the index last read it: its mtime and
 * size, or size -1 when it was missing or unknown (never fresh). */
typedef struct fs_stamp {
    int64_t mtime_ns;
    int64_t size;
} fs_stamp;

/* One tape known to the index. Its entry is fresh while both files still
 * carry the stamps below: then it is what a load would say. */
typedef struct fs_ent {
    struct fs_ent *next;      /* hash chain */
    uint32_t hash;
    char *id;
    tape_entry *entry;
    fs_stamp meta;
    fs_stamp jsonl;
} fs_ent;

typedef struct fs_store {
    fs_config cfg;
    int dirfd;
    int lockfd;
    pthread_mutex_t lock;     /* guards everything below */
    fs_ent **buckets;         /* the in-memory index: id -> entry */
    size_t nbuckets;          /* power of two */
    size_t count;
    /* What of index.json / index.log this process has read. */
    ino_t index_ino;
    int64_t index_mtime_ns;
    off_t log_offset;
    size_t log_lines;
} fs_store;

/* fs_io.c */
int fs_errno(int err, const char *what, const char *name);
int fs_read_file(char **out, size_t *out_len, int dirfd, const char *name);
int fs_write_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                    int sync);
int fs_replace_files(int dirfd, size_t n, const char *const *names, const char *const *data,
                     const size_t *lens, mode_t mode, int sync);
int fs_sync_dir(int dirfd);
void fs_clean_temps(int dirfd);
int fs_write_all(int fd, const char *a, size_t alen, const char *b, size_t blen);
char *fs_name(const char *id, const char *suffix);

/* A line reader over a file descriptor with bounded memory. */
typedef struct fs_lines {
    int fd;
    char *buf;
    size_t cap, start, end;
    size_t max_line;
    uint64_t lineno;
    int eof;
} fs_lines;
int fs_lines_init(fs_lines *r, int fd, size_t max_line);
/* TAPE_OK with a line (no newline; *out_torn = 1 if it had no newline and
 * the file ended), TAPE_DONE at the end, or TAPE_ECORRUPT/TAPE_EIO. */
int fs_lines_next(fs_lines *r, const char **out, size_t *out_len, int *out_torn);
void fs_lines_free(fs_lines *r);

/* filesystem.c: read and decode one tape the way a load does. */
#define FS_META_OK 0
#define FS_META_MISSING 1
#define FS_META_DAMAGED 2   /* unreadable or inconsistent: ignored, left as it is */
typedef struct fs_read_info {
    int meta_state;         /* FS_META_* */
    char *meta;             /* the meta text used (ids fixed); NULL unless FS_META_OK */
    size_t meta_len;
    int id_mismatch;        /* a file names another tape_id than its file name */
    fs_stamp jsonl;         /* the .jsonl, stamped before it was read */
    tape_decode_report rep;
} fs_read_info;
/* mode: TAPE_DECODE_STRICT or TAPE_DECODE_RECOVER. The tape always gets
 * the id of its file name (what the store finds it by). info is filled
 * even on failure; release it with fs_read_info_free. */
int fs_read_tape(tape **out, fs_store *st, const char *id, int mode, fs_read_info *info);
void fs_read_info_free(fs_read_info *info);
/* TAPE_EBUSY if a writer (any process) holds the tape's .jsonl. */
int fs_check_not_busy(fs_store *st, const char *jsonl_name, const char *id);
void fs_stamp_of(fs_stamp *out, int dirfd, const char *name);

/* fs_index.c: call with st->lock held. */
int fs_index_lock(fs_store *st, int exclusive);
void fs_index_unlock(fs_store *st);
int fs_index_open(fs_store *st);       /* load, verify against the meta files, repair */
int fs_index_refresh(fs_store *st);    /* pick up other processes' changes (takes a shared lock) */
int fs_index_catch_up(fs_store *st);   /* the same, for callers holding the exclusive lock */
int fs_index_recount_live(fs_store *st); /* recordings that grew: entries from their frames */
int fs_index_put(fs_store *st, const char *id, const char *meta, size_t meta_len);
int fs_index_del(fs_store *st, const char *id);
fs_ent *fs_index_find(fs_store *st, const char *id);
void fs_index_clear(fs_store *st);
int fs_index_each(fs_store *st, int (*fn)(void *ud, fs_ent *e), void *ud);

#endif
