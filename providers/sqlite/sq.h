/*
 * sq.h - private to the sqlite provider (providers/sqlite/).
 * Uses only provider.h and sqlite3.h.
 */
#ifndef TAPE_SQ_H
#define TAPE_SQ_H

#include <tapestore/provider.h>

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define SQ_SCHEMA_VERSION 3
#define SQ_APPLICATION_ID 0x54415045 /* "TAPE" */

#define SQ_SYNC_OFF 0
#define SQ_SYNC_NORMAL 1
#define SQ_SYNC_FULL 2
#define SQ_SYNC_EXTRA 3

typedef struct sq_writer sq_writer;

typedef struct sq_store {
    char *path;
    int memory;            /* path is ":memory:" */
    int wal;
    int64_t busy_ms;
    int sync;              /* SQ_SYNC_* */
    size_t max_line;       /* config max_line_bytes: the longest line saved or read */
    int read_only;         /* config read_only: never write the files */
    int immutable;         /* read-only, opened with immutable=1 (no -shm existed) */
    int has_stale;         /* schema >= 3: tapes.stale marks rows edited from outside */
    int ro_fixed;          /* read-only: temp.fix holds corrected rows; read temp.tv */
    sqlite3 *db;
    sqlite3_stmt **stmts;  /* prepared once, by the S_* index in sqlite.c */
    sq_writer *writers;    /* active writers of this store (their pending frames) */
} sq_store;

/* sqlite.c */
int sq_err(sq_store *st, int src, const char *what);
int sq_flush_all(sq_store *st);
int sq_repair(sq_store *st);
/* The table of tape rows to read: "tapes", or for a read-only store with
 * rows corrected in memory the temp view over both. */
const char *sq_tapes(const sq_store *st);
int sq_begin_read(sq_store *st);
void sq_end_read(sq_store *st);

/* A growing byte buffer. */
typedef struct sq_buf {
    char *p;
    size_t len, cap;
    int oom;
} sq_buf;
void sq_buf_put(sq_buf *b, const char *s, size_t n);
void sq_buf_puts(sq_buf *b, const char *s);

/* sq_search.c */
int sq_search(tape_result **out, void *self, const tape_query *q);
/* SQL function tape_icontains(haystack, needle): ASCII case-insensitive
 * substring, the matcher's definition (docs/query.md). */
void sq_fn_icontains(sqlite3_context *ctx, int argc, sqlite3_value **argv);

#endif
