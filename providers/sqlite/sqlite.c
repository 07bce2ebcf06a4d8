/*
 * sqlite.c - the sqlite provider: tapes in one SQLite database, with
 * indexed and full-text (FTS5 trigram) native search.
 *
 * Model: one connection per store. The backend does not claim
 * TAPE_CAP_THREAD_SAFE, so the core serialises every call into a store;
 * several stores (threads, processes) on one file share it through WAL
 * and the busy timeout. Each tape is a row of `tapes` (the columns every
 * query key needs plus the .meta.json document and the init line), its
 * tags, its frames (the raw line split around the message so the message
 * is stored once and indexed), its other lines and its correlations.
 * Uses only provider.h and sqlite3.h (docs/providers/sqlite.md).
 */
#include "sq.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Frames a writer keeps in memory before one transaction inserts them
 * (synchronous "off"/"normal"; "full"/"extra" commit every frame). */
#define SQ_BATCH_FRAMES 64
#define SQ_BATCH_MS 100
/* Frames a ranged read fetches per query. */
#define SQ_ITER_BATCH 256

/* ------------------------------------------------------------ schema */

/* Version 1: the first released schema. Kept verbatim: a database made by
 * it is migrated forward by sq_v1_to_v2. */
static const char sq_v1_ddl[] =
    "CREATE TABLE tapes("
    " id TEXT PRIMARY KEY NOT NULL, name TEXT, session_id TEXT, status INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,"
    " frame_count INTEGER NOT NULL, file_size INTEGER NOT NULL, meta TEXT NOT NULL,"
    " init_line TEXT NOT NULL);"
    "CREATE TABLE tags(tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE,"
    " tag TEXT NOT NULL, PRIMARY KEY(tape_id, tag)) WITHOUT ROWID;"
    "CREATE TABLE frames(id INTEGER PRIMARY KEY,"
    " tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE, seq INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, direction INTEGER NOT NULL, correlation_id TEXT,"
    " head TEXT NOT NULL, message TEXT NOT NULL, tail TEXT, UNIQUE(tape_id, seq));"
    "CREATE TABLE lines(tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL, ord INTEGER NOT NULL, line TEXT NOT NULL,"
    " PRIMARY KEY(tape_id, pos, ord)) WITHOUT ROWID;"
    "CREATE TABLE correlations(tape_id TEXT NOT NULL REFERENCES tapes(id) ON DELETE CASCADE,"
    " ord INTEGER NOT NULL, corr_id TEXT, request_seq INTEGER, response_seq INTEGER,"
    " rtt_ms INTEGER, status TEXT, PRIMARY KEY(tape_id, ord)) WITHOUT ROWID;"
    "CREATE INDEX tapes_created ON tapes(created_at, id);"
    "CREATE INDEX tags_by_tag ON tags(tag, tape_id);"
    "PRAGMA application_id = 1413566533;"
    "PRAGMA user_version = 1;";

/* Version 2: full-text index over frame messages, the writers (recording
 * ownership) table and an index per sort key. */
static const char sq_v1_to_v2[] =
    "CREATE VIRTUAL TABLE frames_fts USING fts5(message, content='frames',"
    " content_rowid='id', tokenize='trigram');"
    "INSERT INTO frames_fts(frames_fts) VALUES('rebuild');"
    "CREATE TRIGGER frames_ai AFTER INSERT ON frames BEGIN"
    " INSERT INTO frames_fts(rowid, message) VALUES(new.id, new.message); END;"
    "CREATE TRIGGER frames_ad AFTER DELETE ON frames BEGIN"
    " INSERT INTO frames_fts(frames_fts, rowid, message) VALUES('delete', old.id, old.message);"
    " END;"
    "CREATE TABLE writers(tape_id TEXT PRIMARY KEY NOT NULL, pid INTEGER NOT NULL,"
    " nonce INTEGER NOT NULL, started_at INTEGER NOT NULL);"
    "CREATE INDEX tapes_updated ON tapes(updated_at, id);"
    "CREATE INDEX tapes_name ON tapes(name, id);"
    "CREATE INDEX tapes_duration ON tapes(duration_ms, id);"
    "CREATE INDEX tapes_frames ON tapes(frame_count, id);"
    "CREATE INDEX tapes_session ON tapes(session_id);"
    "PRAGMA user_version = 2;";

/* Version 3: the frames win. A row of `tapes` is a cache of what its frames
 * and lines say; triggers mark it stale (1) when they, or its cached
 * columns, are changed by anyone but this provider (which bumps `gen` with
 * every row it writes), and the next listing recomputes it from the frames,
 * or marks it unreadable (2). Also keeps the FTS index right when a frame
 * row is updated in place. */
static const char sq_v2_to_v3[] =
    "ALTER TABLE tapes ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tapes ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX tapes_stale ON tapes(stale) WHERE stale != 0;"
    "CREATE TRIGGER frames_au AFTER UPDATE ON frames BEGIN"
    " INSERT INTO frames_fts(frames_fts, rowid, message) VALUES('delete', old.id, old.message);"
    " INSERT INTO frames_fts(rowid, message) VALUES(new.id, new.message); END;"
    "CREATE TRIGGER frames_stale_ai AFTER INSERT ON frames BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id = new.tape_id AND stale != 1; END;"
    "CREATE TRIGGER frames_stale_au AFTER UPDATE ON frames BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id IN (old.tape_id, new.tape_id) AND stale != 1; END;"
    "CREATE TRIGGER frames_stale_ad AFTER DELETE ON frames BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id = old.tape_id AND stale != 1; END;"
    "CREATE TRIGGER lines_stale_ai AFTER INSERT ON lines BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id = new.tape_id AND stale != 1; END;"
    "CREATE TRIGGER lines_stale_au AFTER UPDATE ON lines BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id IN (old.tape_id, new.tape_id) AND stale != 1; END;"
    "CREATE TRIGGER lines_stale_ad AFTER DELETE ON lines BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id = old.tape_id AND stale != 1; END;"
    "CREATE TRIGGER tapes_stale_au AFTER UPDATE OF name, session_id, status, created_at,"
    " updated_at, duration_ms, frame_count, file_size, meta, init_line ON tapes"
    " WHEN new.gen = old.gen BEGIN"
    " UPDATE tapes SET stale = 1 WHERE id = new.id AND stale != 1; END;"
    /* rows a version-2 writer may have miscounted: checked once */
    "UPDATE tapes SET stale = 1 WHERE frame_count !="
    " (SELECT count(*) FROM frames f WHERE f.tape_id = tapes.id);"
    "PRAGMA user_version = 3;";

/* ------------------------------------------------------------ statements */

enum {
    S_BEGIN_IMM,
    S_BEGIN,
    S_COMMIT,
    S_TAPE_EXISTS,
    S_WRITER_GET,
    S_WRITER_DEL,
    S_WRITER_INS,
    S_TAPE_DEL,
    S_TAPE_INS,
    S_TAPE_UPD,
    S_TAG_INS,
    S_TAGS_DEL,
    S_FRAME_INS,
    S_LINE_INS,
    S_CORR_INS,
    S_TAPE_GET,
    S_FRAMES_ALL,
    S_LINES_ALL,
    S_LIST,
    S_STATS,
    S_LIST_TV,
    S_STATS_TV,
    S_STALE_ANY,
    S_FIX_CLEAR,
    S_FIX_INS,
    S_FIX_BAD,
    S_FRAMES_RANGE,
    S_FRAMES_MAX,
    S_STALE_LIST,
    S_STALE_FIX,
    S_STALE_BAD,
    S_SAVED,
    S_COUNT
};

static const char *const sq_sql[S_COUNT] = {
    [S_BEGIN_IMM] = "BEGIN IMMEDIATE",
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_TAPE_EXISTS] = "SELECT 1 FROM tapes WHERE id = ?1",
    [S_WRITER_GET] = "SELECT pid, nonce FROM writers WHERE tape_id = ?1",
    [S_WRITER_DEL] = "DELETE FROM writers WHERE tape_id = ?1",
    [S_WRITER_INS] = "INSERT INTO writers(tape_id, pid, nonce, started_at) VALUES(?1,?2,?3,?4)",
    [S_TAPE_DEL] = "DELETE FROM tapes WHERE id = ?1",
    [S_TAPE_INS] = "INSERT INTO tapes(id, name, session_id, status, created_at, updated_at,"
                   " duration_ms, frame_count, file_size, meta, init_line)"
                   " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [S_TAPE_UPD] = "UPDATE tapes SET name=?2, session_id=?3, status=?4, created_at=?5,"
                   " updated_at=?6, duration_ms=?7, frame_count=?8, file_size=?9, meta=?10,"
                   " init_line=?11, stale = 0, gen = gen + 1 WHERE id = ?1",
    [S_TAG_INS] = "INSERT OR IGNORE INTO tags(tape_id, tag) VALUES(?1,?2)",
    [S_TAGS_DEL] = "DELETE FROM tags WHERE tape_id = ?1",
    [S_FRAME_INS] = "INSERT INTO frames(tape_id, seq, ts, direction, correlation_id, head,"
                    " message, tail) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [S_LINE_INS] = "INSERT INTO lines(tape_id, pos, ord, line) VALUES(?1,?2,?3,?4)",
    [S_CORR_INS] = "INSERT INTO correlations(tape_id, ord, corr_id, request_seq, response_seq,"
                   " rtt_ms, status) VALUES(?1,?2,?3,?4,?5,?6,?7)",
    [S_TAPE_GET] = "SELECT meta, init_line FROM tapes WHERE id = ?1",
    [S_FRAMES_ALL] = "SELECT head, message, tail FROM frames WHERE tape_id = ?1 ORDER BY seq",
    [S_LINES_ALL] = "SELECT pos, line FROM lines WHERE tape_id = ?1 ORDER BY pos, ord",
    [S_LIST] = "SELECT meta FROM tapes",
    [S_LIST_TV] = "SELECT meta FROM temp.tv",
    [S_STATS_TV] = "SELECT count(*), coalesce(sum(frame_count), 0), coalesce(sum(file_size), 0)"
                   " FROM temp.tv",
    [S_STALE_ANY] = "SELECT id FROM tapes WHERE stale = 1 ORDER BY id",
    [S_FIX_CLEAR] = "DELETE FROM temp.fix",
    [S_FIX_INS] = "INSERT INTO temp.fix(id, name, session_id, status, created_at, updated_at,"
                  " duration_ms, frame_count, file_size, meta, stale)"
                  " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,0)",
    [S_FIX_BAD] = "INSERT INTO temp.fix SELECT id, name, session_id, status, created_at,"
                  " updated_at, duration_ms, frame_count, file_size, meta, 2 FROM main.tapes"
                  " WHERE id = ?1",
    [S_STATS] = "SELECT count(*), coalesce(sum(frame_count), 0), coalesce(sum(file_size), 0)"
                " FROM tapes",
    [S_FRAMES_RANGE] = "SELECT head, message, tail FROM frames WHERE tape_id = ?1 AND seq >= ?2"
                       " AND seq <= ?3 ORDER BY seq LIMIT ?4",
    [S_FRAMES_MAX] = "SELECT max(seq) FROM frames WHERE tape_id = ?1",
    [S_STALE_LIST] = "SELECT id FROM tapes WHERE stale = 1 AND id > ?1 ORDER BY id LIMIT 64",
    [S_STALE_FIX] = "UPDATE tapes SET name=?2, session_id=?3, status=?4, created_at=?5,"
                    " updated_at=?6, duration_ms=?7, frame_count=?8, file_size=?9, meta=?10,"
                    " stale = 0, gen = gen + 1 WHERE id = ?1 AND stale = 1",
    [S_STALE_BAD] = "UPDATE tapes SET stale = 2 WHERE id = ?1 AND stale = 1",
    [S_SAVED] = "UPDATE tapes SET stale = 0, gen = gen + 1 WHERE id = ?1",
};

struct pend {
    tape_frame *f;   /* a frame, or NULL for a correlation */
    size_t corr;     /* correlation index in the writer's header */
    int64_t pos;     /* frames before it (for correlation lines) */
};

struct sq_writer {
    sq_store *st;
    char *id;
    tape *hdr;               /* frameless mirror of the core's header: its metadata, and
                              * stats and correlations of what this writer took */
    struct pend *pend;
    size_t npend, cap;
    int64_t ord;             /* next line number in `lines` */
    int64_t first_ms;        /* when the oldest pending item arrived */
    int64_t nonce;           /* names this writer's lease row (with the pid) */
    int abandoned;           /* freed by the core, its last items not yet written */
    sq_writer *prev, *next;
};

typedef struct sq_iter {
    sq_store *st;
    char *id;
    int64_t next, to;
    tape_frame **batch;
    size_t n, pos;
    int done;
} sq_iter;

/* ------------------------------------------------------------ helpers */

void sq_buf_put(sq_buf *b, const char *s, size_t n)
{
    /* A length near SIZE_MAX would wrap the size sums below. */
    if (b->oom || n > SIZE_MAX / 4 || b->len > SIZE_MAX / 4) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sq_buf_puts(sq_buf *b, const char *s)
{
    sq_buf_put(b, s, strlen(s));
}

static int oom(void)
{
    return tape_error_set(TAPE_ENOMEM, "out of memory");
}

int sq_err(sq_store *st, int src, const char *what)
{
    int code;
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = TAPE_EBUSY; break;
    case SQLITE_NOMEM: code = TAPE_ENOMEM; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = TAPE_ECORRUPT; break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL: code = TAPE_EIO; break;
    default: code = TAPE_EPROVIDER; break;
    }
    const char *msg = st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(src);
    return tape_error_set(code, "sqlite \"%s\": %s: %s", st->path, what, msg);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A random number per process: with the pid it names this process's
 * writer leases, so a lease left by a crashed process whose pid was
 * reused is still recognised as stale. */
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;
static int64_t process_nonce;

static void nonce_init(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v) {
        v = (uint64_t)wall_ms() * 6364136223846793005u ^ (uint64_t)getpid();
    }
    if (fd >= 0) close(fd);
    process_nonce = (int64_t)(v >> 1);
}

static sqlite3_stmt *stmt(sq_store *st, int which)
{
    if (st->stmts[which] == NULL) {
        int rc = sqlite3_prepare_v3(st->db, sq_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmts[which], NULL);
        if (rc != SQLITE_OK) {
            sq_err(st, rc, "cannot prepare a statement");
            return NULL;
        }
    }
    return st->stmts[which];
}

static int bind_text(sqlite3_stmt *s, int i, const char *v, size_t n)
{
    return v == NULL ? sqlite3_bind_null(s, i)
                     : sqlite3_bind_text64(s, i, v, n, SQLITE_STATIC, SQLITE_UTF8);
}

static int bind_str(sqlite3_stmt *s, int i, const char *v)
{
    return bind_text(s, i, v, v != NULL ? strlen(v) : 0);
}

/* Step a statement that returns no row; reset it either way. */
static int run(sq_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? TAPE_OK : sq_err(st, rc, what);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return out;
}

static void done(sqlite3_stmt *s)
{
    if (s != NULL) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

static int tx_begin(sq_store *st)
{
    sqlite3_stmt *s = stmt(st, S_BEGIN_IMM);
    return s == NULL ? TAPE_EPROVIDER : run(st, s, "cannot begin a write transaction");
}

/* Commit if rc is TAPE_OK, else roll back keeping rc's message. */
static int tx_end(sq_store *st, int rc)
{
    if (rc == TAPE_OK) {
        sqlite3_stmt *s = stmt(st, S_COMMIT);
        rc = s == NULL ? TAPE_EPROVIDER : run(st, s, "cannot commit");
    }
    if (rc != TAPE_OK && !sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

int sq_begin_read(sq_store *st)
{
    sqlite3_stmt *s = stmt(st, S_BEGIN);
    return s == NULL ? TAPE_EPROVIDER : run(st, s, "cannot begin a read transaction");
}

void sq_end_read(sq_store *st)
{
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    }
}

static int read_only_err(const sq_store *st, const char *what)
{
    return tape_error_set(TAPE_EUNSUPPORTED,
                          "sqlite \"%s\": the store is read-only (config key \"read_only\"): "
                          "cannot %s",
                          st->path, what);
}

static int not_found(const char *id)
{
    return tape_error_set(TAPE_ENOTFOUND, "no tape \"%s\"", id);
}

/* Columns of `tapes` derived from an entry decoded from the stored meta
 * document, so the SQL sees exactly what the core's matcher sees. */
typedef struct cols {
    const char *name, *session;
    int status;
    int64_t created, updated, duration, frames, size;
} cols;

static void cols_of(cols *c, const tape_entry *e)
{
    tape_stats s = TAPE_STATS_INIT;
    tape_entry_get_stats(&s, e);
    c->name = tape_entry_name(e);
    c->session = tape_entry_session_id(e);
    c->status = tape_entry_status(e);
    c->created = tape_entry_created_at(e);
    c->updated = tape_entry_updated_at(e);
    c->duration = s.duration_ms;
    c->frames = s.frame_count > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)s.frame_count;
    c->size = s.file_size_bytes > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)s.file_size_bytes;
}

static void bind_cols(sqlite3_stmt *s, const char *id, const cols *c, const char *meta,
                      size_t meta_len)
{
    bind_str(s, 1, id);
    bind_str(s, 2, c->name);
    bind_str(s, 3, c->session);
    sqlite3_bind_int(s, 4, c->status);
    sqlite3_bind_int64(s, 5, c->created);
    sqlite3_bind_int64(s, 6, c->updated);
    sqlite3_bind_int64(s, 7, c->duration);
    sqlite3_bind_int64(s, 8, c->frames);
    sqlite3_bind_int64(s, 9, c->size);
    bind_text(s, 10, meta, meta_len);
}

/* The meta document of t and the entry it decodes to. */
static int encode_meta(char **meta, size_t *meta_len, tape_entry **e, const tape *t)
{
    *meta = NULL;
    *e = NULL;
    int rc = tape_encode_meta(meta, meta_len, t);
    if (rc == TAPE_OK) rc = tape_entry_from_meta(e, *meta, *meta_len);
    if (rc != TAPE_OK) {
        tape_string_free(*meta);
        *meta = NULL;
    }
    return rc;
}

/* Leases held by the live writers of this process, by nonce. A lease row
 * of this pid whose nonce is not here is stale (its writer was freed,
 * perhaps without being able to delete the row), so no store of this
 * process is blocked by it. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t *live_nonces;
static size_t live_n, live_cap;
static int64_t live_counter;

static int live_add(int64_t *out_nonce)
{
    pthread_once(&nonce_once, nonce_init);
    int rc = TAPE_OK;
    pthread_mutex_lock(&live_lock);
    if (live_n == live_cap) {
        size_t cap = live_cap ? live_cap * 2 : 8;
        int64_t *p = realloc(live_nonces, cap * sizeof *p);
        if (p == NULL) rc = oom();
        else {
            live_nonces = p;
            live_cap = cap;
        }
    }
    if (rc == TAPE_OK) {
        /* per writer: the process's random base plus a counter */
        int64_t n = (int64_t)(((uint64_t)process_nonce + (uint64_t)++live_counter) &
                             (uint64_t)INT64_MAX);
        live_nonces[live_n++] = n;
        *out_nonce = n;
    }
    pthread_mutex_unlock(&live_lock);
    return rc;
}

static void live_remove(int64_t nonce)
{
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < live_n; i++) {
        if (live_nonces[i] == nonce) {
            live_nonces[i] = live_nonces[--live_n];
            break;
        }
    }
    pthread_mutex_unlock(&live_lock);
}

static int live_has(int64_t nonce)
{
    int found = 0;
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < live_n && !found; i++) found = live_nonces[i] == nonce;
    pthread_mutex_unlock(&live_lock);
    return found;
}

/* Is a writer lease on `id` held by a live recording? A stale one (its
 * process is gone) is removed. Call inside a write transaction. */
static int check_writer(sq_store *st, const char *id)
{
    sqlite3_stmt *s = stmt(st, S_WRITER_GET);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        done(s);
        return TAPE_OK;
    }
    if (rc != SQLITE_ROW) {
        rc = sq_err(st, rc, "cannot read the writers table");
        done(s);
        return rc;
    }
    int64_t pid = sqlite3_column_int64(s, 0), nonce = sqlite3_column_int64(s, 1);
    done(s);
    pthread_once(&nonce_once, nonce_init);
    int live;
    if (pid == (int64_t)getpid()) {
        live = live_has(nonce); /* a writer of this process that is not freed */
    } else {
        live = pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
    }
    if (live) {
        return tape_error_set(TAPE_EBUSY, "tape \"%s\" is being recorded (by process %lld)", id,
                              (long long)pid);
    }
    tape_log(TAPE_LOG_WARN,
             "sqlite \"%s\": tape \"%s\": clearing the recording lease of process %lld, which "
             "is gone; the tape keeps the frames it committed",
             st->path, id, (long long)pid);
    s = stmt(st, S_WRITER_DEL);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, id);
    return run(st, s, "cannot clear a stale writer lease");
}

static const char *find_bytes(const char *hay, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0 || nn > hn) {
        return NULL;
    }
    for (size_t i = 0; i + nn <= hn; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nn) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* A frame row: the line split around its message (line = head message
 * tail; tail NULL means the line is head alone), so the message text is
 * stored once and indexed. */
static int insert_frame(sq_store *st, const char *id, const tape_frame *f)
{
    sqlite3_stmt *s = stmt(st, S_FRAME_INS);
    if (s == NULL) return TAPE_EPROVIDER;
    size_t ll = 0, ml = 0;
    const char *line = tape_frame_line(f, &ll);
    /* The message is a span of the line (no copy made); searched for only
     * if a frame ever keeps it elsewhere. */
    const char *msg = tape_frame_message_bytes(f, &ml);
    uintptr_t lp = (uintptr_t)line, mp = (uintptr_t)msg;
    const char *at = mp >= lp && mp + ml <= lp + ll ? msg : find_bytes(line, ll, msg, ml);
    bind_str(s, 1, id);
    uint64_t seq = tape_frame_seq(f);
    sqlite3_bind_int64(s, 2, seq > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)seq);
    sqlite3_bind_int64(s, 3, tape_frame_ts(f));
    sqlite3_bind_int(s, 4, tape_frame_direction(f));
    bind_str(s, 5, tape_frame_correlation_id(f));
    if (at != NULL) {
        bind_text(s, 6, line, (size_t)(at - line));
        bind_text(s, 7, msg, ml);
        bind_text(s, 8, at + ml, ll - (size_t)(at - line) - ml);
    } else {
        bind_text(s, 6, line, ll);
        bind_text(s, 7, msg, ml);
        sqlite3_bind_null(s, 8);
    }
    return run(st, s, "cannot insert a frame");
}

static int insert_line(sq_store *st, const char *id, int64_t pos, int64_t ord, const char *line,
                       size_t len)
{
    sqlite3_stmt *s = stmt(st, S_LINE_INS);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, id);
    sqlite3_bind_int64(s, 2, pos);
    sqlite3_bind_int64(s, 3, ord);
    bind_text(s, 4, line, len);
    return run(st, s, "cannot insert a line");
}

static int insert_corr(sq_store *st, const char *id, const tape *t, size_t i)
{
    const char *cid = NULL, *status = NULL;
    uint64_t rq = 0, rs = 0;
    int64_t rtt = 0;
    int rc = tape_correlation_get(&cid, &rq, &rs, &rtt, &status, t, i);
    if (rc != TAPE_OK) return rc;
    sqlite3_stmt *s = stmt(st, S_CORR_INS);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, id);
    sqlite3_bind_int64(s, 2, (int64_t)i);
    bind_str(s, 3, cid);
    sqlite3_bind_int64(s, 4, (int64_t)rq);
    sqlite3_bind_int64(s, 5, (int64_t)rs);
    sqlite3_bind_int64(s, 6, rtt);
    bind_str(s, 7, status);
    return run(st, s, "cannot insert a correlation");
}

static int insert_tape(sq_store *st, const tape *t, const char *init, size_t init_len,
                       const char *meta, size_t meta_len, const tape_entry *e)
{
    sqlite3_stmt *s = stmt(st, S_TAPE_INS);
    if (s == NULL) return TAPE_EPROVIDER;
    cols c;
    cols_of(&c, e);
    bind_cols(s, tape_id(t), &c, meta, meta_len);
    bind_text(s, 11, init, init_len);
    int rc = run(st, s, "cannot insert a tape");
    for (size_t i = 0; rc == TAPE_OK && i < tape_tag_count(t); i++) {
        s = stmt(st, S_TAG_INS);
        if (s == NULL) return TAPE_EPROVIDER;
        bind_str(s, 1, tape_id(t));
        bind_str(s, 2, tape_tag_at(t, i));
        rc = run(st, s, "cannot insert a tag");
    }
    return rc;
}

/* The row of a tape being recorded: metadata and stats of t, and its init
 * line (session and protocol version may be learned while recording). */
static int update_meta(sq_store *st, const tape *t)
{
    char *meta = NULL, *init = NULL;
    size_t meta_len = 0, init_len = 0;
    tape_entry *e = NULL;
    int rc = encode_meta(&meta, &meta_len, &e, t);
    if (rc == TAPE_OK) rc = tape_encode_init_line(&init, &init_len, t);
    if (rc == TAPE_OK) {
        sqlite3_stmt *s = stmt(st, S_TAPE_UPD);
        if (s == NULL) {
            rc = TAPE_EPROVIDER;
        } else {
            cols c;
            cols_of(&c, e);
            bind_cols(s, tape_id(t), &c, meta, meta_len);
            bind_text(s, 11, init, init_len > 0 && init[init_len - 1] == '\n' ? init_len - 1 : init_len);
            rc = run(st, s, "cannot update a tape");
        }
    }
    /* the tags too: tags_any/tags_all are answered from this table */
    sqlite3_stmt *s = rc == TAPE_OK ? stmt(st, S_TAGS_DEL) : NULL;
    if (rc == TAPE_OK && s == NULL) rc = TAPE_EPROVIDER;
    if (rc == TAPE_OK) {
        bind_str(s, 1, tape_id(t));
        rc = run(st, s, "cannot update a tape's tags");
    }
    for (size_t i = 0; rc == TAPE_OK && i < tape_tag_count(t); i++) {
        s = stmt(st, S_TAG_INS);
        if (s == NULL) {
            rc = TAPE_EPROVIDER;
            break;
        }
        bind_str(s, 1, tape_id(t));
        bind_str(s, 2, tape_tag_at(t, i));
        rc = run(st, s, "cannot insert a tag");
    }
    tape_entry_free(e);
    tape_string_free(meta);
    tape_string_free(init);
    return rc;
}

/* ------------------------------------------------------------ writers */

static void writer_drop_pending(sq_writer *w)
{
    for (size_t i = 0; i < w->npend; i++) {
        tape_frame_free(w->pend[i].f);
    }
    w->npend = 0;
}

/* Copy what a recorder may change while recording (tape_writer_update_meta
 * and the end of the recording) from the core's header into the mirror;
 * the mirror keeps its own stats, which count only what this writer was
 * able to take. */
static int sync_meta(tape *m, const tape *h)
{
    int rc = TAPE_OK;
    static const struct {
        const char *(*get)(const tape *);
        int (*set)(tape *, const char *);
    } fields[] = {
        { tape_name, tape_set_name },
        { tape_description, tape_set_description },
        { tape_session_id, tape_set_session_id },
        { tape_protocol_version, tape_set_protocol_version },
        { tape_transport_json, tape_set_transport_json },
        { tape_environment_json, tape_set_environment_json },
    };
    for (size_t i = 0; rc == TAPE_OK && i < sizeof fields / sizeof fields[0]; i++) {
        const char *a = fields[i].get(m), *b = fields[i].get(h);
        if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
            rc = fields[i].set(m, b);
        }
    }
    /* tags: in the header's order */
    int same = tape_tag_count(m) == tape_tag_count(h);
    for (size_t j = 0; same && j < tape_tag_count(h); j++) {
        same = strcmp(tape_tag_at(m, j), tape_tag_at(h, j)) == 0;
    }
    while (rc == TAPE_OK && !same && tape_tag_count(m) > 0) {
        rc = tape_remove_tag(m, tape_tag_at(m, tape_tag_count(m) - 1));
    }
    for (size_t j = 0; rc == TAPE_OK && !same && j < tape_tag_count(h); j++) {
        rc = tape_add_tag(m, tape_tag_at(h, j));
    }
    if (rc == TAPE_OK && tape_status(m) != tape_status(h)) rc = tape_set_status(m, tape_status(h));
    if (rc == TAPE_OK && tape_finalized_at(m) != tape_finalized_at(h)) {
        rc = tape_set_finalized_at(m, tape_finalized_at(h));
    }
    if (rc == TAPE_OK && tape_updated_at(m) != tape_updated_at(h)) {
        rc = tape_set_updated_at(m, tape_updated_at(h));
    }
    return rc;
}

/* TAPE_OK if the lease row of w's tape is still w's own. Call inside a
 * write transaction. */
static int lease_is_ours(sq_writer *w)
{
    sq_store *st = w->st;
    sqlite3_stmt *s = stmt(st, S_WRITER_GET);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, w->id);
    int src = sqlite3_step(s);
    int rc = TAPE_OK;
    if (src == SQLITE_ROW) {
        if (sqlite3_column_int64(s, 0) != (int64_t)getpid() || sqlite3_column_int64(s, 1) != w->nonce) {
            src = SQLITE_DONE;
        }
    }
    if (src == SQLITE_DONE) {
        rc = tape_error_set(TAPE_ESTATE,
                            "sqlite \"%s\": tape \"%s\": the recording lease was lost (the "
                            "tape was saved over, deleted or its lease cleared)",
                            st->path, w->id);
    } else if (src != SQLITE_ROW) {
        rc = sq_err(st, src, "cannot read the writers table");
    }
    done(s);
    return rc;
}

static int insert_pend(sq_writer *w, const struct pend *p, int64_t ord, const tape *src)
{
    sq_store *st = w->st;
    if (p->f != NULL) return insert_frame(st, w->id, p->f);
    char *line = NULL;
    size_t len = 0;
    int rc = tape_encode_correlation_line(&line, &len, src, p->corr);
    if (rc == TAPE_OK) {
        rc = insert_line(st, w->id, p->pos, ord, line,
                         len > 0 && line[len - 1] == '\n' ? len - 1 : len);
    }
    tape_string_free(line);
    if (rc == TAPE_OK) rc = insert_corr(st, w->id, src, p->corr);
    return rc;
}

/* One transaction: the pending frames and correlations, then `extra` (the
 * item being added, or NULL; a correlation index of `extra_src`), the
 * metadata of `meta_src` (the mirror, or a copy of it that counts `extra`),
 * and (end) the release of the lease. On failure nothing is written and
 * the pending items stay. */
static int writer_flush(sq_writer *w, const tape *meta_src, const struct pend *extra,
                        const tape *extra_src, int end)
{
    sq_store *st = w->st;
    int rc = tx_begin(st);
    if (rc == TAPE_OK) rc = lease_is_ours(w);
    for (size_t i = 0; rc == TAPE_OK && i < w->npend; i++) {
        rc = insert_pend(w, &w->pend[i], w->ord + (int64_t)i, w->hdr);
    }
    if (rc == TAPE_OK && extra != NULL) {
        rc = insert_pend(w, extra, w->ord + (int64_t)w->npend, extra_src);
    }
    if (rc == TAPE_OK) rc = update_meta(st, meta_src);
    if (rc == TAPE_OK && end) {
        sqlite3_stmt *s = stmt(st, S_WRITER_DEL);
        if (s == NULL) {
            rc = TAPE_EPROVIDER;
        } else {
            bind_str(s, 1, w->id);
            rc = run(st, s, "cannot release the recording lease");
        }
    }
    rc = tx_end(st, rc);
    if (rc == TAPE_OK) {
        w->ord += (int64_t)w->npend + (extra != NULL);
        writer_drop_pending(w);
    }
    return rc;
}

static void writer_free(sq_writer *w);

/* An abandoned writer whose last transaction failed: written now if the
 * database allows (with the lease release), dropped with a log if its
 * lease was taken over meanwhile, else kept for the next call. */
static void writer_retry_abandoned(sq_writer *w)
{
    int rc = writer_flush(w, w->hdr, NULL, NULL, 1);
    if (rc == TAPE_OK) {
        tape_log(TAPE_LOG_INFO, "sqlite \"%s\": tape \"%s\": the abandoned recording's last "
                 "items are written now",
                 w->st->path, w->id);
        writer_free(w);
    } else if (rc == TAPE_ESTATE) {
        tape_log(TAPE_LOG_ERROR, "sqlite \"%s\": tape \"%s\": %zu acknowledged frames and "
                 "correlations of an abandoned recording are lost: %s",
                 w->st->path, w->id, w->npend, tape_errmsg());
        writer_free(w);
    }
}

static int sq_open(void *self);
static void close_db(sq_store *st);
static int file_exists(const char *path, const char *suffix);

/* A read-only store opened immutable (no connection had the WAL database
 * open) must stop trusting the file once another connection opens it:
 * reopen it the way that sees its WAL (checked before each call). */
static int sq_ro_check(sq_store *st)
{
    if (st->db != NULL && (!st->immutable || !file_exists(st->path, "-shm"))) return TAPE_OK;
    close_db(st);
    return sq_open(st);
}

/* Readers see every frame appended so far: flush the store's writers. */
int sq_flush_all(sq_store *st)
{
    if (st->read_only) return sq_ro_check(st); /* no writers */
    sq_writer *next = NULL;
    for (sq_writer *w = st->writers; w != NULL; w = next) {
        next = w->next;
        if (w->abandoned) {
            writer_retry_abandoned(w); /* never this call's failure */
        } else if (w->npend > 0) {
            int rc = writer_flush(w, w->hdr, NULL, NULL, 0);
            if (rc != TAPE_OK) return rc;
        }
    }
    return TAPE_OK;
}

static int writer_reserve(sq_writer *w)
{
    if (w->npend == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : SQ_BATCH_FRAMES;
        struct pend *p = realloc(w->pend, cap * sizeof *p);
        if (p == NULL) return oom();
        w->pend = p;
        w->cap = cap;
    }
    return TAPE_OK;
}

/* Does the item being added end the batch (commit now)? */
static int writer_due(const sq_writer *w)
{
    return w->st->sync >= SQ_SYNC_FULL || w->npend + 1 >= SQ_BATCH_FRAMES ||
           (w->npend > 0 && mono_ms() - w->first_ms >= SQ_BATCH_MS);
}

/* Count the item into a mirror (and take the header's metadata). */
static int writer_apply(tape *m, const tape *header, const tape_frame *f, size_t corr)
{
    int rc = sync_meta(m, header);
    if (rc == TAPE_OK && f != NULL) rc = tape_account_frame(m, f);
    if (rc == TAPE_OK && f == NULL) {
        const char *cid = NULL, *status = NULL;
        uint64_t rq = 0, rs = 0;
        int64_t rtt = 0;
        rc = tape_correlation_get(&cid, &rq, &rs, &rtt, &status, header, corr);
        if (rc == TAPE_OK) rc = tape_add_correlation(m, cid, rq, rs, rtt, status);
    }
    return rc;
}

/* Take one item (frame f, or correlation `corr` of the core's header):
 * queue it, or commit it with the batch. It is taken only on TAPE_OK: a
 * failed commit leaves the mirror and the batch as they were, so what
 * was acknowledged before stays pending and what failed is never written
 * later. */
static int writer_take(sq_writer *w, const tape *header, const tape_frame *f, size_t corr)
{
    struct pend item = { NULL, 0, 0 };
    tape_stats s = TAPE_STATS_INIT;
    tape_get_stats(&s, w->hdr);
    item.pos = (int64_t)s.frame_count; /* frames are accounted, not held */
    int rc = writer_reserve(w);
    if (rc == TAPE_OK && f != NULL) rc = tape_frame_clone(&item.f, f);
    if (rc != TAPE_OK) return rc;
    if (writer_due(w)) {
        /* The row written with it must count it: a copy of the mirror
         * does, until the commit makes it true. */
        tape *next = NULL;
        item.corr = corr;
        rc = tape_clone_meta(&next, w->hdr);
        if (rc == TAPE_OK) rc = writer_apply(next, header, f, corr);
        if (rc == TAPE_OK) rc = writer_flush(w, next, &item, header, 0);
        tape_free(next);
        tape_frame_free(item.f);
        if (rc != TAPE_OK) return rc;
        if (writer_apply(w->hdr, header, f, corr) != TAPE_OK) {
            /* committed, so acknowledged; only the next row's stats are off */
            tape_log(TAPE_LOG_ERROR, "sqlite \"%s\": tape \"%s\": cannot count an item: %s",
                     w->st->path, w->id, tape_errmsg());
        }
        return TAPE_OK;
    }
    rc = writer_apply(w->hdr, header, f, corr);
    if (rc != TAPE_OK) {
        tape_frame_free(item.f);
        return rc;
    }
    item.corr = tape_correlation_count(w->hdr) - (f == NULL);
    if (w->npend == 0) w->first_ms = mono_ms();
    w->pend[w->npend++] = item;
    return TAPE_OK;
}

static void writer_free(sq_writer *w)
{
    sq_store *st = w->st;
    if (w->prev != NULL) w->prev->next = w->next; else st->writers = w->next;
    if (w->next != NULL) w->next->prev = w->prev;
    live_remove(w->nonce);
    writer_drop_pending(w);
    free(w->pend);
    tape_free(w->hdr);
    free(w->id);
    free(w);
}

static int sq_writer_begin(void **out, void *self, const tape *header)
{
    sq_store *st = self;
    const char *id = tape_id(header);
    if (st->read_only) return read_only_err(st, "record");
    int rc = sq_flush_all(st);
    if (rc != TAPE_OK) return rc;
    sq_writer *w = calloc(1, sizeof *w);
    char *init = NULL, *meta = NULL;
    size_t init_len = 0, meta_len = 0;
    tape_entry *e = NULL;
    int live = 0;
    rc = w != NULL && (w->id = strdup(id)) != NULL ? tape_clone_meta(&w->hdr, header) : oom();
    if (rc == TAPE_OK) rc = tape_check_line_limit(header, st->max_line);
    if (rc == TAPE_OK) rc = tape_encode_init_line(&init, &init_len, header);
    if (rc == TAPE_OK) rc = encode_meta(&meta, &meta_len, &e, header);
    if (rc == TAPE_OK) rc = live_add(&w->nonce);
    if (rc == TAPE_OK) {
        live = 1;
        rc = tx_begin(st);
        if (rc == TAPE_OK) rc = check_writer(st, id);
        if (rc == TAPE_OK) {
            sqlite3_stmt *s = stmt(st, S_TAPE_EXISTS);
            if (s == NULL) {
                rc = TAPE_EPROVIDER;
            } else {
                bind_str(s, 1, id);
                int src = sqlite3_step(s);
                rc = src == SQLITE_ROW    ? tape_error_set(TAPE_EEXISTS, "tape \"%s\" already exists", id)
                     : src == SQLITE_DONE ? TAPE_OK
                                          : sq_err(st, src, "cannot look a tape up");
                done(s);
            }
        }
        if (rc == TAPE_OK) {
            rc = insert_tape(st, header, init,
                             init_len > 0 && init[init_len - 1] == '\n' ? init_len - 1 : init_len,
                             meta, meta_len, e);
        }
        if (rc == TAPE_OK) {
            sqlite3_stmt *s = stmt(st, S_WRITER_INS);
            if (s == NULL) {
                rc = TAPE_EPROVIDER;
            } else {
                bind_str(s, 1, id);
                sqlite3_bind_int64(s, 2, (int64_t)getpid());
                sqlite3_bind_int64(s, 3, w->nonce);
                sqlite3_bind_int64(s, 4, wall_ms());
                rc = run(st, s, "cannot take the recording lease");
            }
        }
        rc = tx_end(st, rc);
    }
    tape_string_free(init);
    tape_string_free(meta);
    tape_entry_free(e);
    if (rc != TAPE_OK) {
        if (w != NULL) {
            if (live) live_remove(w->nonce);
            tape_free(w->hdr);
            free(w->id);
            free(w);
        }
        return rc;
    }
    w->st = st;
    w->next = st->writers;
    if (st->writers != NULL) st->writers->prev = w;
    st->writers = w;
    *out = w;
    return TAPE_OK;
}

static int sq_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    sq_writer *w = writer;
    /* Refused lines are not counted: the writer goes on without them. */
    int rc = tape_frame_check_line_limit(f, w->st->max_line);
    return rc != TAPE_OK ? rc : writer_take(w, header, f, 0);
}

static int sq_writer_correlate(void *writer, const tape *header, size_t i)
{
    return writer_take(writer, header, NULL, i);
}

/* finalize: on failure the writer stays as it was (nothing written, the
 * batch kept) so that the core can call this again. Abandon (finalize 0)
 * always frees the writer and releases the lease in this process, even
 * when the database cannot be written: what could not be written is
 * logged. */
static int sq_writer_end(void *writer, const tape *header, int finalize)
{
    sq_writer *w = writer;
    sq_store *st = w->st;
    /* The final row is written from a copy: until it commits, a flush by
     * another call must still write the tape as recording. */
    tape *last = NULL;
    int rc = tape_clone_meta(&last, w->hdr);
    if (rc == TAPE_OK) rc = sync_meta(last, header);
    if (rc == TAPE_OK) rc = writer_flush(w, last, NULL, NULL, 1);
    tape_free(last);
    if (rc != TAPE_OK && finalize) {
        return rc;
    }
    if (rc != TAPE_OK) {
        /* The lease stops counting in this process now; what was
         * acknowledged is kept and written by the next call on this store
         * that can (or at close), unless the tape was taken over. */
        tape_log(TAPE_LOG_ERROR,
                 "sqlite \"%s\": tape \"%s\": abandoning the recording: %zu acknowledged "
                 "frames and correlations could not be written yet (kept for the next call "
                 "on this store): %s",
                 st->path, w->id, w->npend, tape_errmsg());
        live_remove(w->nonce);
        if (sync_meta(w->hdr, header) != TAPE_OK || tape_set_status(w->hdr, TAPE_STATUS_RECORDING) != TAPE_OK) {
            tape_log(TAPE_LOG_WARN, "sqlite \"%s\": tape \"%s\": %s", st->path, w->id, tape_errmsg());
        }
        w->abandoned = 1;
        return rc;
    }
    writer_free(w);
    return rc;
}

/* ------------------------------------------------------------ ops */

static int sq_save(void *self, const tape *t)
{
    sq_store *st = self;
    const char *id = tape_id(t);
    char *body = NULL, *meta = NULL;
    size_t body_len = 0, meta_len = 0;
    tape_entry *e = NULL;
    if (st->read_only) return read_only_err(st, "save");
    /* What this store accepts it must read back with its own config. */
    int rc = tape_check_line_limit(t, st->max_line);
    if (rc == TAPE_OK) rc = sq_flush_all(st);
    if (rc == TAPE_OK) rc = tape_encode_jsonl(&body, &body_len, t);
    if (rc == TAPE_OK) rc = encode_meta(&meta, &meta_len, &e, t);
    if (rc == TAPE_OK) rc = tx_begin(st);
    else goto out;
    if (rc == TAPE_OK) rc = check_writer(st, id);
    if (rc == TAPE_OK) {
        sqlite3_stmt *s = stmt(st, S_TAPE_DEL);
        rc = s == NULL ? TAPE_EPROVIDER : (bind_str(s, 1, id), run(st, s, "cannot replace a tape"));
    }
    if (rc == TAPE_OK) {
        /* The document is the init line, then frames and other lines in
         * order; each frame's line is the frame's own, so the lines that
         * are not the next frame's are the others (correlations,
         * checkpoints, unknown types), kept with their position. */
        const char *p = body, *end = body + body_len;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t init_len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        rc = insert_tape(st, t, p, init_len, meta, meta_len, e);
        p += init_len + (nl != NULL);
        size_t fi = 0, n = tape_frame_count(t);
        int64_t ord = 0;
        while (rc == TAPE_OK && p < end) {
            nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
            const tape_frame *f = fi < n ? tape_frame_at(t, fi) : NULL;
            size_t fl = 0;
            const char *fline = f != NULL ? tape_frame_line(f, &fl) : NULL;
            if (f != NULL && fl == len && memcmp(fline, p, len) == 0) {
                rc = insert_frame(st, id, f);
                fi++;
            } else if (len > 0) {
                rc = insert_line(st, id, (int64_t)fi, ord++, p, len);
            }
            p += len + (nl != NULL);
        }
        if (rc == TAPE_OK && fi != n) {
            rc = tape_error_set(TAPE_EPROVIDER,
                                "sqlite: tape \"%s\": %zu of %zu frame lines not found in its "
                                "encoding",
                                id, n - fi, n);
        }
        for (size_t i = 0; rc == TAPE_OK && i < tape_correlation_count(t); i++) {
            rc = insert_corr(st, id, t, i);
        }
    }
    if (rc == TAPE_OK && st->has_stale) {
        /* our own rows: the triggers' marks do not apply */
        sqlite3_stmt *s = stmt(st, S_SAVED);
        rc = s == NULL ? TAPE_EPROVIDER : (bind_str(s, 1, id), run(st, s, "cannot save a tape"));
    }
    rc = tx_end(st, rc);
out:
    tape_entry_free(e);
    tape_string_free(meta);
    tape_string_free(body);
    return rc;
}

static void put_frame_line(sq_buf *b, sqlite3_stmt *s)
{
    sq_buf_put(b, (const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
        sq_buf_put(b, (const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1));
        sq_buf_put(b, (const char *)sqlite3_column_text(s, 2), (size_t)sqlite3_column_bytes(s, 2));
    }
}

/* Load without flushing the writers first (the caller did). */
static int load_tape(tape **out, sq_store *st, const char *id)
{
    /* one snapshot; inside a caller's transaction, that one */
    int own = sqlite3_get_autocommit(st->db);
    int rc = own ? sq_begin_read(st) : TAPE_OK;
    if (rc != TAPE_OK) return rc;
    sq_buf body = { 0 };
    char *meta = NULL;
    size_t meta_len = 0;
    sqlite3_stmt *s = stmt(st, S_TAPE_GET), *fs = NULL, *ls = NULL;
    if (s == NULL) {
        rc = TAPE_EPROVIDER;
        goto out;
    }
    bind_str(s, 1, id);
    int src = sqlite3_step(s);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? not_found(id) : sq_err(st, src, "cannot read a tape");
        goto out;
    }
    meta_len = (size_t)sqlite3_column_bytes(s, 0);
    meta = malloc(meta_len + 1);
    if (meta == NULL) {
        rc = oom();
        goto out;
    }
    memcpy(meta, sqlite3_column_text(s, 0), meta_len);
    meta[meta_len] = '\0';
    sq_buf_put(&body, (const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1));
    sq_buf_put(&body, "\n", 1);
    fs = stmt(st, S_FRAMES_ALL);
    ls = stmt(st, S_LINES_ALL);
    if (fs == NULL || ls == NULL) {
        rc = TAPE_EPROVIDER;
        goto out;
    }
    bind_str(fs, 1, id);
    bind_str(ls, 1, id);
    int lrc = sqlite3_step(ls), frc;
    int64_t fpos = 0;
    for (;;) {
        while (lrc == SQLITE_ROW && sqlite3_column_int64(ls, 0) <= fpos) {
            sq_buf_put(&body, (const char *)sqlite3_column_text(ls, 1),
                       (size_t)sqlite3_column_bytes(ls, 1));
            sq_buf_put(&body, "\n", 1);
            lrc = sqlite3_step(ls);
        }
        frc = sqlite3_step(fs);
        if (frc != SQLITE_ROW) break;
        put_frame_line(&body, fs);
        sq_buf_put(&body, "\n", 1);
        fpos++;
    }
    while (lrc == SQLITE_ROW) {
        sq_buf_put(&body, (const char *)sqlite3_column_text(ls, 1), (size_t)sqlite3_column_bytes(ls, 1));
        sq_buf_put(&body, "\n", 1);
        lrc = sqlite3_step(ls);
    }
    if (frc != SQLITE_DONE || lrc != SQLITE_DONE) {
        rc = sq_err(st, frc != SQLITE_DONE ? frc : lrc, "cannot read a tape's frames");
        goto out;
    }
    if (body.oom) {
        rc = oom();
        goto out;
    }
out:
    done(s);
    done(fs);
    done(ls);
    if (own) sq_end_read(st);
    if (rc == TAPE_OK) {
        tape_decode_options opt = TAPE_DECODE_OPTIONS_INIT;
        opt.max_line_bytes = st->max_line;
        rc = tape_decode(out, body.p, body.len, meta, meta_len, &opt, NULL);
        if (rc != TAPE_OK) {
            rc = tape_error_set(rc, "sqlite \"%s\": tape \"%s\": %s", st->path, id, tape_errmsg());
        }
    }
    free(body.p);
    free(meta);
    return rc;
}

static int sq_load(tape **out, void *self, const char *id)
{
    sq_store *st = self;
    int rc = sq_flush_all(st);
    return rc != TAPE_OK ? rc : load_tape(out, st, id);
}

/* The frames win: rows marked stale (changed from outside this provider)
 * are recomputed from their frames before a listing, a search or the
 * stats read them; a row whose frames cannot be read is marked unreadable
 * (2): it keeps its stored metadata, and text search skips it. Best
 * effort: a locked database leaves the rows for the next call. */
static int repair_batch(sq_store *st, char **last, int *more)
{
    *more = 0;
    sqlite3_stmt *s = stmt(st, S_STALE_LIST);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, *last != NULL ? *last : "");
    char *ids[64];
    size_t n = 0;
    int src;
    while (n < 64 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        if ((ids[n] = strdup((const char *)sqlite3_column_text(s, 0))) == NULL) break;
        n++;
    }
    done(s);
    if (n == 0) return TAPE_OK;
    *more = n == 64;
    free(*last);
    *last = strdup(ids[n - 1]);
    if (*last == NULL) *more = 0;
    int rc = tx_begin(st);
    for (size_t i = 0; rc == TAPE_OK && i < n; i++) {
        rc = check_writer(st, ids[i]);
        if (rc == TAPE_EBUSY) {
            rc = TAPE_OK; /* being recorded: its writer rewrites the row */
            continue;
        }
        tape *t = NULL;
        if (rc == TAPE_OK) rc = load_tape(&t, st, ids[i]);
        if (rc == TAPE_ECORRUPT || rc == TAPE_ELIMIT) {
            tape_log(TAPE_LOG_WARN,
                     "sqlite \"%s\": tape \"%s\" cannot be read (%s); it stays listed with "
                     "its stored metadata and text search skips it",
                     st->path, ids[i], tape_errmsg());
            s = stmt(st, S_STALE_BAD);
            rc = s == NULL ? TAPE_EPROVIDER
                           : (bind_str(s, 1, ids[i]), run(st, s, "cannot mark a tape unreadable"));
            continue;
        }
        char *meta = NULL;
        size_t meta_len = 0;
        tape_entry *e = NULL;
        if (rc == TAPE_OK) rc = encode_meta(&meta, &meta_len, &e, t);
        if (rc == TAPE_OK) {
            s = stmt(st, S_STALE_FIX);
            if (s == NULL) {
                rc = TAPE_EPROVIDER;
            } else {
                cols c;
                cols_of(&c, e);
                bind_cols(s, ids[i], &c, meta, meta_len);
                rc = run(st, s, "cannot correct a tape's stats");
            }
            if (rc == TAPE_OK) {
                tape_log(TAPE_LOG_INFO,
                         "sqlite \"%s\": tape \"%s\" was changed from outside; its listing "
                         "is recomputed from its frames",
                         st->path, ids[i]);
            }
        }
        tape_entry_free(e);
        tape_string_free(meta);
        tape_free(t);
    }
    rc = tx_end(st, rc);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    if (rc != TAPE_OK) *more = 0;
    return rc;
}

const char *sq_tapes(const sq_store *st)
{
    return st->ro_fixed ? "temp.tv" : "tapes";
}

/* In-memory tables of a read-only store: rows corrected from their frames
 * (it cannot write them back) and a view that reads them instead. */
static const char sq_ro_temp[] =
    "PRAGMA temp_store = MEMORY;" /* not even a temporary file */
    "CREATE TEMP TABLE fix(id TEXT PRIMARY KEY NOT NULL, name TEXT, session_id TEXT,"
    " status INTEGER, created_at INTEGER, updated_at INTEGER, duration_ms INTEGER,"
    " frame_count INTEGER, file_size INTEGER, meta TEXT, stale INTEGER);"
    "CREATE TEMP VIEW tv AS SELECT id, name, session_id, status, created_at, updated_at,"
    " duration_ms, frame_count, file_size, meta, stale FROM main.tapes"
    " WHERE id NOT IN (SELECT id FROM temp.fix)"
    " UNION ALL SELECT id, name, session_id, status, created_at, updated_at, duration_ms,"
    " frame_count, file_size, meta, stale FROM temp.fix;";

/* The read-only repair: the same judgement as repair_batch, kept in
 * temp.fix for this call (redone by every listing, search and stats, since
 * other connections may change the rows; normally there are none). */
static int repair_in_memory(sq_store *st)
{
    sqlite3_stmt *s = stmt(st, S_FIX_CLEAR);
    int rc = s == NULL ? TAPE_EPROVIDER : run(st, s, "cannot clear corrected rows");
    st->ro_fixed = 0;
    s = rc == TAPE_OK ? stmt(st, S_STALE_ANY) : NULL;
    if (rc == TAPE_OK && s == NULL) rc = TAPE_EPROVIDER;
    char **ids = NULL;
    size_t n = 0, cap = 0;
    int src = SQLITE_DONE;
    while (rc == TAPE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **p = realloc(ids, cap * sizeof *p);
            if (p == NULL) {
                rc = oom();
                break;
            }
            ids = p;
        }
        if ((ids[n] = strdup((const char *)sqlite3_column_text(s, 0))) == NULL) rc = oom();
        else n++;
    }
    if (rc == TAPE_OK && src != SQLITE_DONE) rc = sq_err(st, src, "cannot read stale rows");
    done(s);
    for (size_t i = 0; rc == TAPE_OK && i < n; i++) {
        tape *t = NULL;
        rc = load_tape(&t, st, ids[i]);
        if (rc == TAPE_ECORRUPT || rc == TAPE_ELIMIT) {
            tape_log(TAPE_LOG_WARN,
                     "sqlite \"%s\": tape \"%s\" cannot be read (%s); it stays listed with "
                     "its stored metadata and text search skips it",
                     st->path, ids[i], tape_errmsg());
            s = stmt(st, S_FIX_BAD);
            rc = s == NULL ? TAPE_EPROVIDER : (bind_str(s, 1, ids[i]), run(st, s, "cannot keep a row"));
        } else if (rc == TAPE_OK) {
            char *meta = NULL;
            size_t meta_len = 0;
            tape_entry *e = NULL;
            rc = encode_meta(&meta, &meta_len, &e, t);
            s = rc == TAPE_OK ? stmt(st, S_FIX_INS) : NULL;
            if (rc == TAPE_OK && s == NULL) rc = TAPE_EPROVIDER;
            if (rc == TAPE_OK) {
                cols c;
                cols_of(&c, e);
                bind_cols(s, ids[i], &c, meta, meta_len);
                rc = run(st, s, "cannot keep a corrected row");
            }
            tape_entry_free(e);
            tape_string_free(meta);
        } else if (rc == TAPE_ENOTFOUND) {
            rc = TAPE_OK; /* deleted meanwhile */
        }
        tape_free(t);
        if (rc == TAPE_OK) st->ro_fixed = 1;
    }
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    return rc;
}

int sq_repair(sq_store *st)
{
    if (!st->has_stale) return TAPE_OK;
    if (st->read_only) return repair_in_memory(st);
    char *last = NULL;
    int more = 1, rc = TAPE_OK;
    while (more && rc == TAPE_OK) rc = repair_batch(st, &last, &more);
    free(last);
    if (rc != TAPE_OK) {
        tape_log(TAPE_LOG_DEBUG, "sqlite \"%s\": stale rows not corrected yet: %s", st->path,
                 tape_errmsg());
    }
    return TAPE_OK;
}

static int sq_remove(void *self, const char *id)
{
    sq_store *st = self;
    if (st->read_only) return read_only_err(st, "delete");
    int rc = sq_flush_all(st);
    if (rc == TAPE_OK) rc = tx_begin(st);
    if (rc != TAPE_OK) return rc;
    rc = check_writer(st, id);
    if (rc == TAPE_OK) {
        sqlite3_stmt *s = stmt(st, S_TAPE_DEL);
        if (s == NULL) {
            rc = TAPE_EPROVIDER;
        } else {
            bind_str(s, 1, id);
            rc = run(st, s, "cannot delete a tape");
            if (rc == TAPE_OK && sqlite3_changes(st->db) == 0) rc = not_found(id);
        }
    }
    return tx_end(st, rc);
}

static int sq_exists(int *out, void *self, const char *id)
{
    sq_store *st = self;
    int rc0 = st->read_only ? sq_ro_check(st) : TAPE_OK;
    if (rc0 != TAPE_OK) return rc0;
    sqlite3_stmt *s = stmt(st, S_TAPE_EXISTS);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, id);
    int src = sqlite3_step(s);
    int rc = src == SQLITE_ROW || src == SQLITE_DONE ? TAPE_OK
                                                     : sq_err(st, src, "cannot look a tape up");
    *out = src == SQLITE_ROW;
    done(s);
    return rc;
}

static int sq_list(void *self, const tape_query *q, tape_entry_sink sink, void *data)
{
    (void)q; /* a hint; the native search is what queries use */
    sq_store *st = self;
    int rc = sq_flush_all(st);
    if (rc == TAPE_OK) rc = sq_repair(st);
    sqlite3_stmt *s = rc == TAPE_OK ? stmt(st, st->ro_fixed ? S_LIST_TV : S_LIST) : NULL;
    if (s == NULL) return rc != TAPE_OK ? rc : TAPE_EPROVIDER;
    int src;
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        tape_entry *e = NULL;
        rc = tape_entry_from_meta(&e, (const char *)sqlite3_column_text(s, 0),
                                  (size_t)sqlite3_column_bytes(s, 0));
        if (rc != TAPE_OK) {
            rc = tape_error_set(TAPE_ECORRUPT, "sqlite \"%s\": a stored meta document: %s",
                                st->path, tape_errmsg());
            break;
        }
        int stop = sink(data, e);
        tape_entry_free(e);
        if (stop) break;
    }
    if (rc == TAPE_OK && src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = sq_err(st, src, "cannot list tapes");
    }
    done(s);
    return rc;
}

static int sq_stats(tape_store_stats *out, void *self)
{
    sq_store *st = self;
    int rc = sq_flush_all(st);
    if (rc == TAPE_OK) rc = sq_repair(st);
    sqlite3_stmt *s = rc == TAPE_OK ? stmt(st, st->ro_fixed ? S_STATS_TV : S_STATS) : NULL;
    if (s == NULL) return rc != TAPE_OK ? rc : TAPE_EPROVIDER;
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        out->tape_count = (uint64_t)sqlite3_column_int64(s, 0);
        out->frame_count = (uint64_t)sqlite3_column_int64(s, 1);
        out->total_bytes = (uint64_t)sqlite3_column_int64(s, 2);
    } else {
        rc = sq_err(st, src, "cannot count tapes");
    }
    done(s);
    return rc;
}

/* ------------------------------------------------------------ frames */

static void iter_clear_batch(sq_iter *it)
{
    for (size_t i = 0; i < it->n; i++) {
        tape_frame_free(it->batch[i]);
    }
    it->n = it->pos = 0;
}

static void sq_frames_close(void *iter)
{
    sq_iter *it = iter;
    iter_clear_batch(it);
    free(it->batch);
    free(it->id);
    free(it);
}

/* The range is fixed at open (frames up to the last one stored then), so
 * frames appended while iterating are not returned. */
static int sq_frames_open(void **out, void *self, const char *id, uint64_t from, uint64_t to)
{
    sq_store *st = self;
    int ex = 0;
    int rc = sq_flush_all(st);
    if (rc == TAPE_OK) rc = sq_exists(&ex, st, id);
    if (rc != TAPE_OK) return rc;
    if (!ex) return not_found(id);
    sqlite3_stmt *s = stmt(st, S_FRAMES_MAX);
    if (s == NULL) return TAPE_EPROVIDER;
    bind_str(s, 1, id);
    int src = sqlite3_step(s);
    int has = src == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL;
    int64_t maxseq = has ? sqlite3_column_int64(s, 0) : -1;
    rc = src == SQLITE_ROW ? TAPE_OK : sq_err(st, src, "cannot read a tape's frames");
    done(s);
    if (rc != TAPE_OK) return rc;
    sq_iter *it = calloc(1, sizeof *it);
    if (it == NULL || (it->id = strdup(id)) == NULL ||
        (it->batch = calloc(SQ_ITER_BATCH, sizeof *it->batch)) == NULL) {
        if (it != NULL) free(it->id);
        free(it);
        return oom();
    }
    it->st = st;
    it->next = from > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)from;
    it->to = to > (uint64_t)maxseq || !has ? maxseq : (int64_t)to;
    it->done = !has || from > (uint64_t)INT64_MAX || it->next > it->to;
    *out = it;
    return TAPE_OK;
}

static int sq_frames_next(const tape_frame **out, void *iter)
{
    sq_iter *it = iter;
    if (it->pos < it->n) {
        *out = it->batch[it->pos++];
        return TAPE_OK;
    }
    iter_clear_batch(it);
    if (it->done) return TAPE_DONE;
    sq_store *st = it->st;
    int rc = sq_flush_all(st);
    sqlite3_stmt *s = rc == TAPE_OK ? stmt(st, S_FRAMES_RANGE) : NULL;
    if (s == NULL) return rc != TAPE_OK ? rc : TAPE_EPROVIDER;
    bind_str(s, 1, it->id);
    sqlite3_bind_int64(s, 2, it->next);
    sqlite3_bind_int64(s, 3, it->to);
    sqlite3_bind_int(s, 4, SQ_ITER_BATCH);
    sq_buf line = { 0 };
    int src;
    while (rc == TAPE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        line.len = 0;
        put_frame_line(&line, s);
        if (line.oom) {
            rc = oom();
            break;
        }
        int type = 0;
        tape_frame *f = NULL;
        if (line.len > st->max_line) {
            rc = tape_error_set(TAPE_ECORRUPT,
                                "sqlite \"%s\": tape \"%s\": a frame line of %zu bytes is "
                                "longer than max_line_bytes (%zu)",
                                st->path, it->id, line.len, st->max_line);
            break;
        }
        rc = tape_line_parse(&type, &f, line.p != NULL ? line.p : "", line.len);
        if (rc == TAPE_OK && f == NULL) {
            rc = tape_error_set(TAPE_ECORRUPT, "a stored frame line is not a frame");
        }
        if (rc != TAPE_OK) {
            rc = tape_error_set(TAPE_ECORRUPT, "sqlite \"%s\": tape \"%s\": %s", st->path,
                                it->id, tape_errmsg());
            break;
        }
        it->batch[it->n++] = f;
    }
    if (rc == TAPE_OK && src != SQLITE_DONE) rc = sq_err(st, src, "cannot read a tape's frames");
    done(s);
    free(line.p);
    if (rc != TAPE_OK) return rc;
    if (it->n < SQ_ITER_BATCH) {
        it->done = 1;
    }
    if (it->n > 0) {
        uint64_t last = tape_frame_seq(it->batch[it->n - 1]);
        if ((int64_t)last >= it->to) it->done = 1;
        else it->next = (int64_t)last + 1;
    }
    if (it->n == 0) return TAPE_DONE;
    *out = it->batch[it->pos++];
    return TAPE_OK;
}

/* ------------------------------------------------------------ lifecycle */

static int schema_probe(sq_store *st, int64_t *tables, int64_t *app, int64_t *ver)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(st->db,
                                 "SELECT (SELECT count(*) FROM sqlite_master),"
                                 " (SELECT application_id FROM pragma_application_id),"
                                 " (SELECT user_version FROM pragma_user_version)",
                                 -1, &s, NULL);
    if (src == SQLITE_OK) src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        *tables = sqlite3_column_int64(s, 0);
        *app = sqlite3_column_int64(s, 1);
        *ver = sqlite3_column_int64(s, 2);
    }
    int rc = TAPE_OK;
    if (src != SQLITE_ROW) {
        rc = (src & 0xff) == SQLITE_NOTADB
                 ? tape_error_set(TAPE_ECORRUPT,
                                  "sqlite \"%s\": not a SQLite database (left untouched)",
                                  st->path)
                 : sq_err(st, src, "cannot read the database header");
    }
    sqlite3_finalize(s);
    return rc;
}

static int schema_classify(sq_store *st, int64_t tables, int64_t app, int64_t ver)
{
    if (app == SQ_APPLICATION_ID) {
        if (ver >= 1 && ver <= SQ_SCHEMA_VERSION) return TAPE_OK;
        if (ver > SQ_SCHEMA_VERSION) {
            return tape_error_set(TAPE_EVERSION,
                                  "sqlite \"%s\": schema version %lld is newer than this "
                                  "tapestore supports (%d); upgrade tapestore",
                                  st->path, (long long)ver, SQ_SCHEMA_VERSION);
        }
        return tape_error_set(TAPE_ECORRUPT, "sqlite \"%s\": bad tapestore schema version %lld",
                              st->path, (long long)ver);
    }
    if (app == 0 && tables == 0 && ver == 0) return TAPE_OK; /* empty: ours to create */
    return tape_error_set(TAPE_ECONFIG,
                          "config key \"path\": \"%s\" is a SQLite database of another "
                          "application (application_id %lld, %lld schema objects), not a "
                          "tapestore database; it was left untouched",
                          st->path, (long long)app, (long long)tables);
}

/* Create or migrate the schema, in one write transaction. */
static int schema_open(sq_store *st)
{
    int64_t tables = 0, app = 0, ver = 0;
    int rc = schema_probe(st, &tables, &app, &ver);
    if (rc == TAPE_OK) rc = schema_classify(st, tables, app, ver);
    st->has_stale = ver >= 3;
    if (rc != TAPE_OK || (app == SQ_APPLICATION_ID && ver == SQ_SCHEMA_VERSION)) return rc;
    /* Version 2 reads the same without stale tracking: a read-only store
     * uses it as it is. */
    if (st->read_only && ver == 2) return TAPE_OK;
    if (st->read_only) {
        return app == 0 ? tape_error_set(TAPE_EUNSUPPORTED,
                                         "sqlite \"%s\": the database has no tapestore schema "
                                         "yet, and a read-only store (config key "
                                         "\"read_only\") does not create it",
                                         st->path)
                        : tape_error_set(TAPE_EVERSION,
                                         "sqlite \"%s\": schema version %lld must be migrated "
                                         "to %d, and a read-only store (config key "
                                         "\"read_only\") does not migrate: open it once "
                                         "without read_only",
                                         st->path, (long long)ver, SQ_SCHEMA_VERSION);
    }
    rc = tx_begin(st);
    /* Again under the lock: another process may have done it meanwhile. */
    if (rc == TAPE_OK) rc = schema_probe(st, &tables, &app, &ver);
    if (rc == TAPE_OK) rc = schema_classify(st, tables, app, ver);
    char *err = NULL;
    if (rc == TAPE_OK && app == 0) {
        int src = sqlite3_exec(st->db, sq_v1_ddl, NULL, NULL, &err);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot create the schema");
        ver = 1;
    }
    if (rc == TAPE_OK && ver == 1) {
        int src = sqlite3_exec(st->db, sq_v1_to_v2, NULL, NULL, &err);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot migrate the schema from version 1 to 2");
        else if (app != 0) tape_log(TAPE_LOG_INFO, "sqlite \"%s\": schema migrated from version 1 to 2", st->path);
        ver = 2;
    }
    if (rc == TAPE_OK && ver == 2) {
        int src = sqlite3_exec(st->db, sq_v2_to_v3, NULL, NULL, &err);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot migrate the schema from version 2 to 3");
        else if (app != 0) tape_log(TAPE_LOG_INFO, "sqlite \"%s\": schema migrated from version 2 to 3", st->path);
        ver = 3;
    }
    if (rc == TAPE_OK) st->has_stale = 1;
    sqlite3_free(err);
    return tx_end(st, rc);
}

static void close_db(sq_store *st)
{
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->stmts[i]);
        st->stmts[i] = NULL;
    }
    sqlite3_close_v2(st->db);
    st->db = NULL;
}

/* A "file:" URI for a read-only open: the path percent-encoded, then the
 * query parameters. NULL on OOM. */
static char *ro_uri(const char *path, const char *params)
{
    size_t n = strlen(path), m = strlen(params);
    char *u = malloc(5 + 3 * n + 1 + m + 1);
    if (u == NULL) return NULL;
    size_t o = 0;
    memcpy(u, "file:", 5);
    o = 5;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("/-._~", c) != NULL) {
            u[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            u[o++] = '%';
            u[o++] = hex[c >> 4];
            u[o++] = hex[c & 15];
        }
    }
    u[o++] = '?';
    memcpy(u + o, params, m + 1);
    return u;
}

static int file_exists(const char *path, const char *suffix)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s%s", path, suffix) >= sizeof buf) return 0;
    struct stat sb;
    return stat(buf, &sb) == 0;
}

/* 1 if the file's header says WAL mode (bytes 18 and 19 are 2). */
static int header_is_wal(const char *path)
{
    unsigned char h[20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, h, sizeof h);
    close(fd);
    return n == (ssize_t)sizeof h && h[18] == 2 && h[19] == 2;
}

/* How a read-only store opens the file without writing anything:
 *  - a -shm exists (a WAL database that a connection has open, or left):
 *    mode=ro with readonly_shm=1, so SQLite maps the shared memory
 *    read-only (it reads the WAL without taking read marks);
 *  - a WAL database without -shm: immutable=1, since mode=ro would create
 *    the -wal and -shm; checked again before each call (sq_ro_check);
 *  - a rollback-journal database: mode=ro. */
static int ro_open(sq_store *st)
{
    struct stat sb;
    if (stat(st->path, &sb) != 0) {
        return tape_error_set(TAPE_EIO,
                              "sqlite \"%s\": cannot open: %s (a read-only store does not "
                              "create the file)",
                              st->path, strerror(errno));
    }
    int shm = file_exists(st->path, "-shm");
    st->immutable = !shm && header_is_wal(st->path);
    char *uri = ro_uri(st->path, shm             ? "mode=ro&readonly_shm=1"
                                 : st->immutable ? "mode=ro&immutable=1"
                                                 : "mode=ro");
    if (uri == NULL) return oom();
    int src = sqlite3_open_v2(uri, &st->db,
                              SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    free(uri);
    return src;
}

static int sq_open(void *self)
{
    sq_store *st = self;
    int src;
    if (st->read_only) {
        src = ro_open(st);
        if (src < 0) return src; /* a TAPE_E* code, message set */
    } else {
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
        src = sqlite3_open_v2(st->path, &st->db, flags, NULL);
    }
    if (src != SQLITE_OK) {
        int rc = tape_error_set(src == SQLITE_NOMEM ? TAPE_ENOMEM : TAPE_EIO,
                                "sqlite \"%s\": cannot open: %s", st->path,
                                st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
        close_db(st);
        return rc;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, st->busy_ms > INT32_MAX ? INT32_MAX : (int)st->busy_ms);
    int rc = TAPE_OK;
    if (!st->read_only && sqlite3_db_readonly(st->db, "main") == 1) {
        rc = tape_error_set(TAPE_EIO,
                            "sqlite \"%s\": the file is read-only; this store needs to write "
                            "it (or set config key \"read_only\")",
                            st->path);
    }
    if (rc == TAPE_OK) {
        src = sqlite3_create_function_v2(st->db, "tape_icontains", 2,
                                         SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                         NULL, sq_fn_icontains, NULL, NULL, NULL);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot register tape_icontains");
    }
    if (rc == TAPE_OK) {
        src = sqlite3_exec(st->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot enable foreign keys");
    }
    if (rc == TAPE_OK) rc = schema_open(st);
    st->ro_fixed = 0;
    if (rc == TAPE_OK && st->read_only && st->has_stale) {
        /* the temp database is the connection's own: this writes no file */
        src = sqlite3_exec(st->db, sq_ro_temp, NULL, NULL, NULL);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot create the in-memory tables");
    }
    if (rc == TAPE_OK && !st->memory && !st->read_only) {
        src = sqlite3_exec(st->db, st->wal ? "PRAGMA journal_mode = WAL" : "PRAGMA journal_mode = DELETE",
                           NULL, NULL, NULL);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot set the journal mode");
    }
    if (rc == TAPE_OK && !st->read_only) {
        static const char *const sync_sql[] = { "PRAGMA synchronous = OFF",
                                                "PRAGMA synchronous = NORMAL",
                                                "PRAGMA synchronous = FULL",
                                                "PRAGMA synchronous = EXTRA" };
        src = sqlite3_exec(st->db, sync_sql[st->sync], NULL, NULL, NULL);
        if (src != SQLITE_OK) rc = sq_err(st, src, "cannot set synchronous");
    }
    if (rc != TAPE_OK) {
        close_db(st);
    }
    return rc;
}

/* Writers the core no longer holds (it frees every writer before the
 * store): end them as abandoned, keeping what can still be written. */
static void end_orphans(sq_store *st)
{
    while (st->writers != NULL) {
        sq_writer *w = st->writers;
        if (st->db != NULL && writer_flush(w, w->hdr, NULL, NULL, 1) != TAPE_OK) {
            tape_log(TAPE_LOG_ERROR,
                     "sqlite \"%s\": tape \"%s\": closing the store: %zu acknowledged frames "
                     "and correlations could not be written: %s",
                     st->path, w->id, w->npend, tape_errmsg());
        }
        writer_free(w);
    }
}

static int sq_close(void *self)
{
    sq_store *st = self;
    end_orphans(st);
    if (st->db == NULL) return TAPE_OK;
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->stmts[i]);
        st->stmts[i] = NULL;
    }
    int src = sqlite3_close(st->db);
    if (src != SQLITE_OK) {
        int rc = sq_err(st, src, "cannot close");
        sqlite3_close_v2(st->db);
        st->db = NULL;
        return rc;
    }
    st->db = NULL;
    return TAPE_OK;
}

static void sq_free(void *self)
{
    sq_store *st = self;
    end_orphans(st);
    if (st->db != NULL) close_db(st);
    free(st->stmts);
    free(st->path);
    free(st);
}

#define SQ_OPS(persist)                                                                   \
    {                                                                                     \
        .version = TAPE_BACKEND_OPS_VERSION, .flags = (persist), .save = sq_save,         \
        .load = sq_load, .remove = sq_remove, .list = sq_list, .free = sq_free,           \
        .open = sq_open, .close = sq_close, .exists = sq_exists, .search = sq_search,     \
        .stats = sq_stats, .writer_begin = sq_writer_begin,                               \
        .writer_append = sq_writer_append, .writer_correlate = sq_writer_correlate,       \
        .writer_end = sq_writer_end, .frames_open = sq_frames_open,                       \
        .frames_next = sq_frames_next, .frames_close = sq_frames_close,                   \
    }

/* TAPE_CAP_WRITER_RETRY: sq_writer_end(finalize) keeps the writer when it
 * fails, so the core can retry it or abandon it at free. */
static const tape_backend_ops sq_ops_file = SQ_OPS(TAPE_CAP_PERSISTENT | TAPE_CAP_WRITER_RETRY);
static const tape_backend_ops sq_ops_memory = SQ_OPS(TAPE_CAP_WRITER_RETRY);

/* ------------------------------------------------------------ config */

static const char *const sq_keys[] = { "path",           "wal",       "busy_timeout_ms",
                                       "synchronous",    "read_only", "max_line_bytes",
                                       NULL };

static int parse_config(sq_store *st, const tape_config *c)
{
    const char *path = NULL, *sync = NULL;
    int64_t maxline = 0;
    int rc = tape_config_check_keys(c, sq_keys);
    if (rc == TAPE_OK) rc = tape_config_get_string(&path, c, "path", NULL);
    if (rc == TAPE_OK) rc = tape_config_get_bool(&st->wal, c, "wal", 1);
    if (rc == TAPE_OK) rc = tape_config_get_int(&st->busy_ms, c, "busy_timeout_ms", 5000);
    if (rc == TAPE_OK) rc = tape_config_get_string(&sync, c, "synchronous", "normal");
    if (rc == TAPE_OK) rc = tape_config_get_bool(&st->read_only, c, "read_only", 0);
    /* The filesystem provider's key: same meaning, default and minimum. */
    if (rc == TAPE_OK) {
        rc = tape_config_get_int(&maxline, c, "max_line_bytes", (int64_t)TAPE_MAX_LINE_DEFAULT);
    }
    if (rc != TAPE_OK) return rc;
    if (maxline < 1024) {
        return tape_error_set(TAPE_ECONFIG, "config key \"max_line_bytes\": must be >= 1024");
    }
    st->max_line = (size_t)maxline;
    if (path == NULL || *path == '\0') {
        return tape_error_set(TAPE_ECONFIG,
                              "config key \"path\" is required: a database file, or \":memory:\"");
    }
    if (st->busy_ms < 0 || st->busy_ms > INT32_MAX) {
        return tape_error_set(TAPE_ECONFIG,
                              "config key \"busy_timeout_ms\": expected 0 to 2147483647");
    }
    static const char *const names[] = { "off", "normal", "full", "extra" };
    st->sync = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(sync, names[i]) == 0) st->sync = i;
    }
    if (st->sync < 0) {
        return tape_error_set(TAPE_ECONFIG,
                              "config key \"synchronous\": expected \"off\", \"normal\", "
                              "\"full\" or \"extra\", got \"%.40s\"",
                              sync);
    }
    st->memory = strcmp(path, ":memory:") == 0;
    if (st->memory && st->read_only) {
        return tape_error_set(TAPE_ECONFIG,
                              "config key \"read_only\": a \":memory:\" database cannot be "
                              "read-only (it starts empty)");
    }
    if (st != NULL && (st->path = strdup(path)) == NULL) return oom();
    return TAPE_OK;
}

static int sq_validate(void *ud, const tape_config *c)
{
    (void)ud;
    sq_store tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = parse_config(&tmp, c);
    free(tmp.path);
    return rc;
}

static int sq_create(const tape_backend_ops **out_ops, void **out_self, void *ud,
                     const tape_config *c)
{
    (void)ud;
    sq_store *st = calloc(1, sizeof *st);
    if (st == NULL) return oom();
    int rc = parse_config(st, c);
    if (rc == TAPE_OK && (st->stmts = calloc(S_COUNT, sizeof *st->stmts)) == NULL) rc = oom();
    if (rc != TAPE_OK) {
        free(st->path);
        free(st);
        return rc;
    }
    *out_ops = st->memory ? &sq_ops_memory : &sq_ops_file;
    *out_self = st;
    return TAPE_OK;
}

static const tape_provider sq_provider = {
    .version = TAPE_PROVIDER_VERSION,
    .name = "sqlite",
    .description = "one SQLite database file, indexed and full-text native search",
    .provider_version = 1,
    .capabilities = TAPE_CAP_EXISTS | TAPE_CAP_SEARCH | TAPE_CAP_STATS | TAPE_CAP_WRITER |
                    TAPE_CAP_READ_FRAMES | TAPE_CAP_PERSISTENT | TAPE_CAP_WRITER_RETRY,
    .validate = sq_validate,
    .create = sq_create,
};

const tape_provider *tape_provider_sqlite(void)
{
    return &sq_provider;
}
