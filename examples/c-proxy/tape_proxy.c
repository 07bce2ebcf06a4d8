/*
 * tape_proxy.c - tape-proxy: record an MCP stdio session while relaying it.
 *
 *   tape-proxy [options] -- SERVER-COMMAND [ARGS...]
 *
 * The proxy starts the server with pipes for its stdin and stdout (its
 * stderr is ours), relays newline-delimited JSON-RPC between its own
 * stdin/stdout and the server byte for byte, and records every line as a
 * frame of a tape through the core's streaming writer. docs/proxy.md and
 * tape-proxy(1) describe the behaviour; the comments here say why.
 *
 * Threads:
 *   relay c2s   reads our stdin, writes the server's stdin
 *   relay s2c   reads the server's stdout, writes our stdout
 *   recorder    drains the queue into the writer (the only thread that
 *               touches the writer, the correlation tables and the meta)
 *   main        waits for signals and for the session to end, then shuts
 *               the server down in order and finishes the tape
 *
 * Every signal we care about is blocked in every thread and taken by the
 * main thread with sigtimedwait(), so no code runs in a signal handler.
 */
#include <tapestore/tapestore.h>
#include <cjson/cJSON.h>

#include "plugins.h" /* tools/: providers from .so, .py and .lua files */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Exit codes of our own (docs/proxy.md, "Exit status"). Anything else is
 * the server's status (128 + N when a signal N ended it). */
#define EXIT_USAGE 64      /* bad command line (sysexits EX_USAGE) */
#define EXIT_OSERR 71      /* pipe, fork or thread creation failed */
#define EXIT_INCOMPLETE 75 /* the session ran but the tape is incomplete */
#define EXIT_STORE 78      /* a plugin or the store cannot be loaded/opened, or the recording cannot start */
#define EXIT_NOEXEC 126    /* the server command exists but cannot run */
#define EXIT_NOTFOUND 127  /* the server command was not found */

#define DEFAULT_QUEUE 1024
#define DEFAULT_GRACE_MS 3000
/* The queue also holds at most this many bytes of lines, so a burst of
 * large messages cannot take the proxy's memory; a single larger line is
 * still admitted into an empty queue. */
#define QUEUE_MAX_BYTES ((size_t)64 * 1024 * 1024)
#define READ_CHUNK 65536

#define DIR_C2S 0
#define DIR_S2C 1

static const char usage_text[] =
    "usage: tape-proxy [OPTIONS] -- SERVER-COMMAND [ARGS...]\n"
    "\n"
    "Starts an MCP server that speaks the stdio transport, relays newline-\n"
    "delimited JSON-RPC between this program's stdin/stdout and the server,\n"
    "unchanged, and records every message as a frame of a tape.\n"
    "\n"
    "Options:\n"
    "  --store SPEC      where to record: PROVIDER:[PATH|{json}], e.g.\n"
    "                    filesystem:./tapes, sqlite:tapes.db, memory:. Default:\n"
    "                    $TAPESTORE_STORE, or filesystem:./tapes when unset/empty.\n"
    "  --plugin PATH     load providers from PATH first (repeatable; then the\n"
    "                    colon-separated $TAPESTORE_PLUGINS): a C library (.so),\n"
    "                    a Python file (.py) or a Lua file (.lua) that registers\n"
    "                    its providers when run\n"
    "  --name NAME       the tape's name (default: the server command line)\n"
    "  --tag TAG         add a tag (repeatable)\n"
    "  --id ID           the tape id (default: a new UUID v4); [A-Za-z0-9._-],\n"
    "                    1-128 bytes, not starting with '.'\n"
    "  --id-file FILE    write the tape id and a newline to FILE at start\n"
    "  --queue N         frames waiting for the store, at most (default 1024;\n"
    "                    also at most 64 MiB of lines)\n"
    "  --drop-when-full  when the queue is full, drop frames (counted, reported,\n"
    "                    recorded in the metadata) instead of making the relay\n"
    "                    wait for the store\n"
    "  --grace MS        at the end, how long the server gets to exit after its\n"
    "                    stdin is closed, and again after SIGTERM, before\n"
    "                    SIGKILL (default 3000)\n"
    "  -h, --help        show this help;  --version  show the version\n"
    "\n"
    "The tape id is printed on stderr at start:\n"
    "  tape-proxy: recording tape ID into SPEC\n"
    "\n"
    "Ending: when the client closes our stdin, the server closes its stdout,\n"
    "the client stops reading, or on SIGINT/SIGTERM, the proxy closes the\n"
    "server's stdin, waits --grace ms, sends SIGTERM, waits again, sends\n"
    "SIGKILL. When the server exits the tape is finished (status finalized).\n"
    "\n"
    "Exit status:\n"
    "  the server's     its exit code, or 128+N when signal N ended it\n"
    "  64               usage error\n"
    "  71               cannot create a pipe, a process or a thread\n"
    "  75               the tape is incomplete: the store failed mid-session or\n"
    "                   frames were dropped (stderr says which)\n"
    "  78               a plugin cannot be loaded, the store cannot be opened or\n"
    "                   the recording cannot start\n"
    "  126, 127         the server command cannot be run / was not found\n"
    "\n"
    "See tape-proxy(1) and docs/proxy.md.\n";

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Messages go out in one write each, so lines from the threads and the
 * server's own stderr never interleave mid-line. */
static void say(const char *fmt, ...)
{
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "tape-proxy: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof buf - (size_t)n - 1
                                               ? (size_t)m : sizeof buf - (size_t)n - 2));
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

static void log_hook(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level >= TAPE_LOG_WARN) {
        say("tapestore: %s", msg);
    }
}

/* Write everything; 0 or -1 with errno (EPIPE: the reader is gone). */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0) return -1;
    if (set_cloexec(fds[0]) != 0 || set_cloexec(fds[1]) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The queue between the relays and the recorder                       */
/* ------------------------------------------------------------------ */

/* A slot is reserved, with its line copied, before the relay writes the
 * line on; it becomes ready once the write succeeded (or cancelled when it
 * failed: a line that never reached its peer is not recorded). Reserving
 * first gives each line its place in the tape at the moment it was read,
 * so a response can never be recorded before the request it answers, even
 * when the two relay threads race. */
enum { SLOT_RESERVED, SLOT_READY, SLOT_CANCELLED };

typedef struct slot {
    struct slot *next;
    int state;
    int dir;
    int64_t t_us;   /* when the line was read (monotonic) */
    size_t len;
    char data[];
} slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t can_pop;
    pthread_cond_t can_push;
    slot *head, *tail;
    size_t count, bytes;
    size_t max_count;
    int drop_when_full;
    int closed;
    uint64_t dropped;
    int rec_asleep;     /* the recorder waits without a timeout: wake it */
} line_queue;

static line_queue Q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                        PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, DEFAULT_QUEUE, 0, 0, 0, 0 };

/* While lines flow, the recorder looks at the queue every REC_TICK_NS
 * instead of being woken for each line: a wake-up per message (a futex
 * call, and a thread competing for the CPU with the peers) is what a relay
 * would otherwise pay on every line. It is woken at once when the queue is
 * half full, and after REC_IDLE_NS without lines it sleeps until woken. */
#define REC_TICK_NS 2000000
#define REC_IDLE_NS 200000000

/* Full means the recorder is behind. A reserved head means the queue is
 * held up by a relay write instead (its peer is not reading): waiting for
 * the recorder then could deadlock the two directions, so lines are taken
 * beyond the bound until that write completes. */
static int queue_full(size_t len)
{
    if (Q.head == NULL || Q.head->state == SLOT_RESERVED) return 0;
    return Q.count >= Q.max_count || Q.bytes + len > QUEUE_MAX_BYTES;
}

/* Reserve a slot for a line made of two pieces (the buffered start of the
 * line and its end in the current chunk). The copy is made first, so the
 * place in the queue is taken, under the lock, only once there is room.
 * NULL: dropped (counted) or the queue is closed. */
static slot *queue_reserve(int dir, int64_t t_us, const char *a, size_t alen, const char *b,
                           size_t blen)
{
    size_t len = alen + blen;
    slot *s = malloc(sizeof *s + len + 1);
    if (s != NULL) {
        s->next = NULL;
        s->state = SLOT_RESERVED;
        s->dir = dir;
        s->t_us = t_us;
        s->len = len;
        if (alen > 0) memcpy(s->data, a, alen);
        if (blen > 0) memcpy(s->data + alen, b, blen);
        s->data[len] = '\0';
    }
    pthread_mutex_lock(&Q.mu);
    while (s != NULL && !Q.closed && queue_full(len)) {
        if (Q.drop_when_full) {
            free(s);
            s = NULL;
            break;
        }
        pthread_cond_wait(&Q.can_push, &Q.mu);
    }
    if (s == NULL) {
        Q.dropped++;  /* no room (--drop-when-full) or no memory for the copy */
    } else if (Q.closed) {
        free(s);
        s = NULL;
    } else {
        if (Q.tail != NULL) Q.tail->next = s;
        else Q.head = s;
        Q.tail = s;
        Q.count++;
        Q.bytes += len;
    }
    pthread_mutex_unlock(&Q.mu);
    return s;
}

static void queue_settle(slot *s, int state)
{
    pthread_mutex_lock(&Q.mu);
    s->state = state;
    if (s == Q.head && (Q.rec_asleep || Q.count * 2 >= Q.max_count ||
                        Q.bytes * 2 >= QUEUE_MAX_BYTES)) {
        pthread_cond_signal(&Q.can_pop);
    }
    pthread_mutex_unlock(&Q.mu);
}

/* The next settled slot in order, or NULL once the queue is closed and
 * empty. A slot still reserved when the queue closes belongs to a relay
 * that never finished its write: it is dropped as cancelled. */
static slot *queue_pop(void)
{
    static long idle_ns = REC_IDLE_NS; /* only the recorder pops */
    pthread_mutex_lock(&Q.mu);
    for (;;) {
        if (Q.head != NULL && (Q.head->state != SLOT_RESERVED || Q.closed)) break;
        if (Q.head == NULL && Q.closed) {
            pthread_mutex_unlock(&Q.mu);
            return NULL;
        }
        if (idle_ns >= REC_IDLE_NS) {
            Q.rec_asleep = 1;
            pthread_cond_wait(&Q.can_pop, &Q.mu);
            Q.rec_asleep = 0;
            idle_ns = 0;
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += REC_TICK_NS;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&Q.can_pop, &Q.mu, &ts) == ETIMEDOUT) {
                idle_ns += REC_TICK_NS;
            }
        }
    }
    idle_ns = 0;
    slot *s = Q.head;
    Q.head = s->next;
    if (Q.head == NULL) Q.tail = NULL;
    Q.count--;
    Q.bytes -= s->len;
    if (s->state == SLOT_RESERVED) s->state = SLOT_CANCELLED;
    pthread_cond_broadcast(&Q.can_push);
    pthread_mutex_unlock(&Q.mu);
    return s;
}

static void queue_close(void)
{
    pthread_mutex_lock(&Q.mu);
    Q.closed = 1;
    pthread_cond_broadcast(&Q.can_pop);
    pthread_cond_broadcast(&Q.can_push);
    pthread_mutex_unlock(&Q.mu);
}

/* ------------------------------------------------------------------ */
/* Pending requests: JSON-RPC id -> (request seq, time read)           */
/* ------------------------------------------------------------------ */

typedef struct pending {
    struct pending *next;
    uint64_t seq;
    int64_t t_us;
    char key[];
} pending;

typedef struct {
    pending **buckets;
    size_t nbuckets, count;
} pending_map;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static pending **pending_slot(pending_map *m, const char *key)
{
    pending **p = &m->buckets[fnv1a(key) & (m->nbuckets - 1)];
    while (*p != NULL && strcmp((*p)->key, key) != 0) p = &(*p)->next;
    return p;
}

static int pending_grow(pending_map *m)
{
    size_t n = m->nbuckets == 0 ? 64 : m->nbuckets * 2;
    pending **b = calloc(n, sizeof *b);
    if (b == NULL) return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        pending *e = m->buckets[i];
        while (e != NULL) {
            pending *next = e->next;
            size_t j = fnv1a(e->key) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/* A request id seen again before its answer replaces the older one: the
 * answer can only be matched to the latest (JSON-RPC forbids reuse). */
static int pending_put(pending_map *m, const char *key, uint64_t seq, int64_t t_us)
{
    if ((m->nbuckets == 0 || m->count >= m->nbuckets) && pending_grow(m) != 0) return -1;
    pending **p = pending_slot(m, key);
    if (*p != NULL) {
        (*p)->seq = seq;
        (*p)->t_us = t_us;
        return 0;
    }
    size_t klen = strlen(key);
    pending *e = malloc(sizeof *e + klen + 1);
    if (e == NULL) return -1;
    e->next = NULL;
    e->seq = seq;
    e->t_us = t_us;
    memcpy(e->key, key, klen + 1);
    *p = e;
    m->count++;
    return 0;
}

/* Remove and return the entry (the caller frees it), or NULL. */
static pending *pending_take(pending_map *m, const char *key)
{
    if (m->nbuckets == 0) return NULL;
    pending **p = pending_slot(m, key);
    pending *e = *p;
    if (e != NULL) {
        *p = e->next;
        m->count--;
    }
    return e;
}

static void pending_free(pending_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        pending *e = m->buckets[i];
        while (e != NULL) {
            pending *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}

/* ------------------------------------------------------------------ */
/* The recorder                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    tape_writer *w;
    tape *meta;             /* what tape_writer_update_meta gets */
    cJSON *env;             /* the tape's environment: client, server, proxy */
    int64_t base_us;        /* monotonic time of the tape's created_at */
    pending_map pending[2]; /* by the origin of the request: DIR_C2S (client), DIR_S2C */
    char *init_key;         /* pending key of the client's initialize */
    int failed;             /* the store failed: recording stopped */
    int fail_code;
    char fail_msg[1024];
    uint64_t recorded, not_recorded, cancelled;
} recorder;

static recorder R;

static const char *const origin_name[2] = { "client", "server" };

static void record_failure(int rc, const char *what)
{
    if (R.failed) return;
    R.failed = 1;
    R.fail_code = rc;
    snprintf(R.fail_msg, sizeof R.fail_msg, "%s: %s: %s", what, tape_strerror(rc), tape_errmsg());
    /* Reported once, now, so an operator sees it while the session runs. */
    say("the store failed, recording stopped (relaying goes on): %s", R.fail_msg);
}

/* cJSON refuses a lone UTF-16 surrogate escape ("\ud83d"), which RFC 8259
 * allows and JavaScript writes. The core keeps such messages verbatim; to
 * read their ids and methods the proxy parses a copy in which each lone
 * surrogate escape is replaced by \ufffd (same length). */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int u_escape(const char *p, size_t left, unsigned *out)
{
    if (left < 6 || p[0] != '\\' || p[1] != 'u') return 0;
    unsigned v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(p[i]);
        if (h < 0) return 0;
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 1;
}

static char *without_lone_surrogates(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c == NULL) return NULL;
    memcpy(c, s, len);
    c[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (c[i] != '\\') continue;
        unsigned u, v;
        if (!u_escape(c + i, len - i, &u)) {
            i++; /* any other escape: skip the escaped character */
            continue;
        }
        if (u >= 0xD800 && u <= 0xDBFF && u_escape(c + i + 6, len - i - 6, &v) && v >= 0xDC00 &&
            v <= 0xDFFF) {
            i += 11; /* a proper pair */
            continue;
        }
        if (u >= 0xD800 && u <= 0xDFFF) memcpy(c + i + 2, "fffd", 4);
        i += 5;
    }
    return c;
}

static cJSON *parse_message(const char *s, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(s, len);
    if (j == NULL && memchr(s, '\\', len) != NULL) {
        char *c = without_lone_surrogates(s, len);
        if (c != NULL) {
            j = cJSON_ParseWithLength(c, len);
            free(c);
        }
    }
    return j;
}

/* What a message is, for correlation. */
enum { MSG_OTHER, MSG_REQUEST, MSG_NOTIFICATION, MSG_RESPONSE };

static int classify(const cJSON *m, const cJSON **id)
{
    *id = NULL;
    if (!cJSON_IsObject(m)) return MSG_OTHER;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(m, "id");
    if (cJSON_IsString(method)) {
        if (i == NULL) return MSG_NOTIFICATION;
        *id = i;
        return MSG_REQUEST;
    }
    if (i != NULL && !cJSON_IsNull(i) &&
        (cJSON_GetObjectItemCaseSensitive(m, "result") != NULL ||
         cJSON_GetObjectItemCaseSensitive(m, "error") != NULL)) {
        *id = i;
        return MSG_RESPONSE;
    }
    return MSG_OTHER;
}

/* "client:1", "server:\"abc\"": who sent the request, then the id as
 * compact JSON, so equal ids from the two sides never meet. */
static char *corr_key(int origin, const cJSON *id)
{
    char *txt = cJSON_PrintUnformatted(id);
    if (txt == NULL) return NULL;
    size_t n = strlen(origin_name[origin]) + 1 + strlen(txt) + 1;
    char *k = malloc(n);
    if (k != NULL) snprintf(k, n, "%s:%s", origin_name[origin], txt);
    cJSON_free(txt);
    return k;
}

static int update_meta(void)
{
    char *env = cJSON_PrintUnformatted(R.env);
    if (env == NULL) return TAPE_ENOMEM;
    int rc = tape_set_environment_json(R.meta, env);
    cJSON_free(env);
    if (rc == TAPE_OK) rc = tape_writer_update_meta(R.w, R.meta);
    return rc;
}

/* Keep a copy of an info object (clientInfo / serverInfo) as
 * environment.client / environment.server. */
static void learn_info(const char *key, const cJSON *info)
{
    if (!cJSON_IsObject(info)) return;
    cJSON *copy = cJSON_Duplicate(info, 1);
    if (copy == NULL) return;
    cJSON_DeleteItemFromObjectCaseSensitive(R.env, key);
    cJSON_AddItemToObject(R.env, key, copy);
}

/* Correlation bookkeeping for one message (a batch's members come here
 * one by one with the batch frame's seq). */
static void correlate(int dir, const cJSON *m, uint64_t seq, int64_t t_us)
{
    const cJSON *id;
    int kind = classify(m, &id);
    if (kind == MSG_REQUEST) {
        char *k = corr_key(dir, id);
        if (k == NULL) return;
        if (pending_put(&R.pending[dir], k, seq, t_us) == 0 && dir == DIR_C2S) {
            const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
            if (strcmp(method->valuestring, "initialize") == 0) {
                const cJSON *params = cJSON_GetObjectItemCaseSensitive(m, "params");
                learn_info("client", cJSON_GetObjectItemCaseSensitive(params, "clientInfo"));
                free(R.init_key);
                R.init_key = k;
                k = NULL;
                int rc = update_meta();
                if (rc != TAPE_OK) record_failure(rc, "updating the tape's metadata");
            }
        }
        free(k);
    } else if (kind == MSG_RESPONSE) {
        int origin = dir == DIR_C2S ? DIR_S2C : DIR_C2S;
        char *k = corr_key(origin, id);
        if (k == NULL) return;
        pending *p = pending_take(&R.pending[origin], k);
        if (p != NULL) {
            /* "error": a JSON-RPC error, or a tool that reported failure
             * (a tools/call result with isError true). */
            const cJSON *res = cJSON_GetObjectItemCaseSensitive(m, "result");
            int is_error = cJSON_GetObjectItemCaseSensitive(m, "error") != NULL ||
                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError"));
            int64_t rtt = (t_us - p->t_us) / 1000;
            int rc = tape_writer_add_correlation(R.w, k, p->seq, seq, rtt < 0 ? 0 : rtt,
                                                 is_error ? "error" : "ok");
            if (rc != TAPE_OK) record_failure(rc, "recording a correlation");
            if (!R.failed && origin == DIR_C2S && R.init_key != NULL &&
                strcmp(k, R.init_key) == 0) {
                const cJSON *result = cJSON_GetObjectItemCaseSensitive(m, "result");
                const cJSON *pv = cJSON_GetObjectItemCaseSensitive(result, "protocolVersion");
                learn_info("server", cJSON_GetObjectItemCaseSensitive(result, "serverInfo"));
                if (cJSON_IsString(pv)) {
                    rc = tape_set_protocol_version(R.meta, pv->valuestring);
                    if (rc != TAPE_OK) record_failure(rc, "setting the protocol version");
                }
                if (!R.failed && (rc = update_meta()) != TAPE_OK)
                    record_failure(rc, "updating the tape's metadata");
            }
            free(p);
        }
        free(k);
    }
}

static void record_line(const slot *s)
{
    int64_t ts = (s->t_us - R.base_us) / 1000;
    cJSON *m = parse_message(s->data, s->len);
    const cJSON *id = NULL;
    char *corr = NULL;
    if (m != NULL) {
        int kind = classify(m, &id);
        if (kind == MSG_REQUEST) corr = corr_key(s->dir, id);
        else if (kind == MSG_RESPONSE) corr = corr_key(s->dir == DIR_C2S ? DIR_S2C : DIR_C2S, id);
    }
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = s->dir == DIR_C2S ? TAPE_DIR_CLIENT_TO_SERVER : TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = ts < 0 ? 0 : ts;
    d.message = s->data;
    d.message_len = s->len;
    d.correlation_id = corr;
    uint64_t seq = 0;
    /* The core is the judge of what a frame can hold: a message it does
     * not take as JSON becomes an invalid_json frame, one over the store's
     * line limit an oversize frame. (An empty line is data "" with length
     * 0, which the desc reads as strlen(""): zero bytes, as wanted.) */
    int rc = tape_writer_append(&seq, R.w, &d);
    if (rc == TAPE_EINVAL) {
        d.frame_flags = TAPE_FRAME_INVALID_JSON;
        d.correlation_id = NULL;
        rc = tape_writer_append(&seq, R.w, &d);
    }
    if (rc == TAPE_ELIMIT) {
        /* Over the store's line limit (or the disk is full: then this
         * fails too, and the store has failed). */
        d.frame_flags |= TAPE_FRAME_OVERSIZE;
        rc = tape_writer_append(&seq, R.w, &d);
    }
    if (rc != TAPE_OK) {
        record_failure(rc, "appending a frame");
    } else if (d.frame_flags & TAPE_FRAME_INVALID_JSON) {
        /* cJSON may read what the core refused (a raw control character in
         * a string); such a frame is no message to correlate. */
        R.recorded++;
    } else {
        R.recorded++;
        if (cJSON_IsArray(m)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, m) {
                if (!R.failed) correlate(s->dir, e, seq, s->t_us);
            }
        } else if (m != NULL) {
            correlate(s->dir, m, seq, s->t_us);
        }
    }
    free(corr);
    cJSON_Delete(m);
}

static void *recorder_main(void *arg)
{
    (void)arg;
    slot *s;
    while ((s = queue_pop()) != NULL) {
        if (s->state == SLOT_CANCELLED) R.cancelled++;
        else if (R.failed) R.not_recorded++;
        else record_line(s);
        free(s);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The relays                                                          */
/* ------------------------------------------------------------------ */

static pthread_t main_thread;

typedef struct {
    int dir;
    int src, dst;
    int wake[2];             /* main writes a byte to stop the relay */
    char *line;              /* the start of a line not yet ended */
    size_t len, cap;
    int overflow;            /* that start could not be kept (no memory) */
    atomic_int done;         /* the relay has ended */
    atomic_int eof;          /* its source reached end of file */
    atomic_int dst_broken;   /* its destination stopped taking data */
    pthread_t thread;
    int started;
} relay;

static relay C2S, S2C;

static int line_append(relay *r, const char *p, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap == 0 ? 4096 : r->cap;
        while (cap < r->len + n) cap *= 2;
        char *b = realloc(r->line, cap);
        if (b == NULL) return -1;
        r->line = b;
        r->cap = cap;
    }
    memcpy(r->line + r->len, p, n);
    r->len += n;
    return 0;
}

/* At the end of a relay: a last line that never got its newline was
 * relayed all the same, so it is recorded. */
static void flush_partial(relay *r, int64_t t_us)
{
    if (r->len == 0 || r->overflow || atomic_load(&r->dst_broken)) return;
    slot *s = queue_reserve(r->dir, t_us, r->line, r->len, NULL, 0);
    if (s != NULL) queue_settle(s, SLOT_READY);
    r->len = 0;
}

static void relay_chunk(relay *r, const char *buf, size_t n, int64_t t_us)
{
    /* Reserve a slot for each line this chunk ends, then relay the chunk,
     * then settle the slots. Up to 64 lines per round; a chunk with more
     * is handled in pieces, each relayed before its lines are settled. */
    enum { MAX_SLOTS = 64 };
    size_t start = 0;
    while (start < n) {
        slot *slots[MAX_SLOTS];
        int ns = 0;
        size_t pos = start, end = n;
        while (pos < n && ns < MAX_SLOTS) {
            const char *nl = memchr(buf + pos, '\n', n - pos);
            if (nl == NULL) break;
            size_t e = (size_t)(nl - buf);
            if (!atomic_load(&r->dst_broken) && !r->overflow) {
                slots[ns++] = queue_reserve(r->dir, t_us, r->line, r->len, buf + pos, e - pos);
            }
            r->len = 0;
            r->overflow = 0;
            pos = e + 1;
        }
        if (ns == MAX_SLOTS && pos < n) {
            end = pos;    /* the rest of the chunk: next round */
        } else if (pos < n && !r->overflow && line_append(r, buf + pos, n - pos) != 0) {
            /* Out of memory holding a long line: it is relayed but cannot
             * be recorded; count it as dropped and skip to its end. */
            pthread_mutex_lock(&Q.mu);
            Q.dropped++;
            pthread_mutex_unlock(&Q.mu);
            r->len = 0;
            r->overflow = 1;
        }
        int ok = !atomic_load(&r->dst_broken);
        if (ok && write_all(r->dst, buf + start, end - start) != 0) {
            ok = 0;
            atomic_store(&r->dst_broken, 1);
            pthread_kill(main_thread, SIGUSR1);
        }
        for (int i = 0; i < ns; i++) {
            if (slots[i] != NULL) queue_settle(slots[i], ok ? SLOT_READY : SLOT_CANCELLED);
        }
        start = end;
    }
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    char *buf = malloc(READ_CHUNK);
    int64_t t_us = mono_us();
    while (buf != NULL) {
        struct pollfd p[2] = { { r->src, POLLIN, 0 }, { r->wake[0], POLLIN, 0 } };
        int pr = poll(p, 2, -1);
        if (pr < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents != 0) break;      /* told to stop */
        if (p[0].revents == 0) continue;
        ssize_t n = read(r->src, buf, READ_CHUNK);
        t_us = mono_us();
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            atomic_store(&r->eof, 1);
            break;
        }
        relay_chunk(r, buf, (size_t)n, t_us);
    }
    flush_partial(r, t_us);
    if (r->dir == DIR_C2S) {
        /* EOF to the server: closing its stdin is how MCP's stdio
         * transport says the session is over. */
        close(r->dst);
        r->dst = -1;
    } else {
        /* EOF to the client likewise: nothing more will come. */
        close(STDOUT_FILENO);
    }
    free(buf);
    free(r->line);
    r->line = NULL;
    atomic_store(&r->done, 1);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

static void relay_stop(relay *r)
{
    if (r->started && !atomic_load(&r->done)) {
        ssize_t w = write(r->wake[1], "x", 1);
        (void)w;
    }
}

/* ------------------------------------------------------------------ */
/* The server process                                                  */
/* ------------------------------------------------------------------ */

/* Start the server with pipes for stdin and stdout. *out_err is the errno
 * of a failed exec (0 on success), passed back through a close-on-exec
 * pipe so a missing command is reported by us, not as a silent EOF. */
static pid_t spawn_server(char **argv, int *to_server, int *from_server, int *out_err)
{
    int in[2], out[2], ep[2];
    *out_err = 0;
    if (make_pipe(in) != 0) return -1;
    if (make_pipe(out) != 0) {
        close(in[0]), close(in[1]);
        return -1;
    }
    if (make_pipe(ep) != 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(ep[0]), close(ep[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        /* Own process group: a terminal's Ctrl-C reaches the proxy only,
         * which then shuts the server down in MCP's order. The blocked
         * mask and ignored SIGPIPE would survive exec: undo both. */
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGXFSZ, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0) {
            int e = errno;
            ssize_t w = write(ep[1], &e, sizeof e);
            (void)w;
            _exit(EXIT_NOTFOUND);
        }
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(ep[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
    }
    setpgid(pid, pid); /* also here: whichever runs first wins the race */
    close(in[0]);
    close(out[1]);
    close(ep[1]);
    int e = 0;
    ssize_t r;
    do {
        r = read(ep[0], &e, sizeof e);
    } while (r < 0 && errno == EINTR);
    close(ep[0]);
    if (r == (ssize_t)sizeof e) {
        *out_err = e;
        close(in[1]);
        close(out[0]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *to_server = in[1];
    *from_server = out[0];
    return pid;
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *store;
    const char **plugins;
    size_t nplugins;
    const char *name;
    const char **tags;
    size_t ntags;
    const char *id;
    const char *id_file;
    size_t queue;
    int drop_when_full;
    long grace_ms;
    char **server_argv;
} options;

static int usage_error(const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    say("%s", msg);
    say("run 'tape-proxy --help' for usage");
    return EXIT_USAGE;
}

static int parse_count(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* 0 on success, else the exit code (-1: --help/--version printed). */
static int parse_args(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->queue = DEFAULT_QUEUE;
    o->grace_ms = DEFAULT_GRACE_MS;
    o->tags = calloc((size_t)argc, sizeof *o->tags);
    o->plugins = calloc((size_t)argc, sizeof *o->plugins);
    if (o->tags == NULL || o->plugins == NULL) return EXIT_OSERR;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return -1;
        } else if (strcmp(a, "--version") == 0) {
            printf("tape-proxy %s (libtapestore %d.%d.%d)\n", TAPE_VERSION_STRING,
                   tape_version() / 10000, tape_version() / 100 % 100, tape_version() % 100);
            return -1;
        } else if (strcmp(a, "--drop-when-full") == 0) {
            o->drop_when_full = 1;
            continue;
        } else if (strcmp(a, "--store") == 0 || strcmp(a, "--name") == 0 ||
                   strcmp(a, "--tag") == 0 || strcmp(a, "--id") == 0 ||
                   strcmp(a, "--id-file") == 0 || strcmp(a, "--queue") == 0 ||
                   strcmp(a, "--grace") == 0 || strcmp(a, "--plugin") == 0) {
            if (v == NULL) return usage_error("option %s needs a value", a);
            i++;
            if (strcmp(a, "--store") == 0) {
                o->store = v;
            } else if (strcmp(a, "--plugin") == 0) {
                o->plugins[o->nplugins++] = v;
            } else if (strcmp(a, "--name") == 0) {
                o->name = v;
            } else if (strcmp(a, "--tag") == 0) {
                if (v[0] == '\0') return usage_error("--tag: a tag cannot be empty%s", "");
                o->tags[o->ntags++] = v;
            } else if (strcmp(a, "--id") == 0) {
                if (tape_id_validate(v) != TAPE_OK) {
                    char msg[300];
                    snprintf(msg, sizeof msg, "--id: %s", tape_errmsg());
                    return usage_error("%s", msg);
                }
                o->id = v;
            } else if (strcmp(a, "--id-file") == 0) {
                o->id_file = v;
            } else if (strcmp(a, "--queue") == 0) {
                long n;
                if (parse_count(v, 1, 1000000, &n) != 0)
                    return usage_error("--queue: expected a number of frames from 1 to 1000000, "
                                       "got \"%s\"", v);
                o->queue = (size_t)n;
            } else {
                long n;
                if (parse_count(v, 0, 3600000, &n) != 0)
                    return usage_error("--grace: expected milliseconds from 0 to 3600000, "
                                       "got \"%s\"", v);
                o->grace_ms = n;
            }
        } else if (a[0] == '-') {
            return usage_error("unknown option \"%s\"", a);
        } else {
            break; /* the server command without "--" */
        }
    }
    if (i >= argc) return usage_error("no server command given (put it after --)%s", "");
    o->server_argv = argv + i;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */
/* ------------------------------------------------------------------ */

static char *join_argv(char **argv)
{
    size_t n = 1;
    for (char **a = argv; *a; a++) n += strlen(*a) + 1;
    char *s = malloc(n);
    if (s == NULL) return NULL;
    s[0] = '\0';
    for (char **a = argv; *a; a++) {
        if (a != argv) strcat(s, " ");
        strcat(s, *a);
    }
    return s;
}

static int build_header(tape **out, const options *o)
{
    tape *t = NULL;
    int rc = tape_new(&t, o->id);
    if (rc != TAPE_OK) return rc;
    char *cmdline = join_argv(o->server_argv);
    if (cmdline == NULL) rc = TAPE_ENOMEM;
    if (rc == TAPE_OK) rc = tape_set_name(t, o->name != NULL ? o->name : cmdline);
    for (size_t i = 0; rc == TAPE_OK && i < o->ntags; i++) rc = tape_add_tag(t, o->tags[i]);
    free(cmdline);
    if (rc == TAPE_OK) {
        cJSON *tr = cJSON_CreateObject();
        cJSON_AddStringToObject(tr, "type", "stdio");
        cJSON *cmd = cJSON_AddArrayToObject(tr, "command");
        for (char **a = o->server_argv; *a; a++) cJSON_AddItemToArray(cmd, cJSON_CreateString(*a));
        char *txt = cJSON_PrintUnformatted(tr);
        cJSON_Delete(tr);
        rc = txt != NULL ? tape_set_transport_json(t, txt) : TAPE_ENOMEM;
        cJSON_free(txt);
    }
    if (rc != TAPE_OK) {
        tape_free(t);
        return rc;
    }
    *out = t;
    return TAPE_OK;
}

/* environment.proxy: who recorded the tape and how. */
static cJSON *proxy_info(const options *o)
{
    cJSON *env = cJSON_CreateObject();
    cJSON *p = cJSON_AddObjectToObject(env, "proxy");
    cJSON_AddStringToObject(p, "name", "tape-proxy");
    cJSON_AddStringToObject(p, "version", TAPE_VERSION_STRING);
    cJSON_AddNumberToObject(p, "queue", (double)o->queue);
    cJSON_AddBoolToObject(p, "drop_when_full", o->drop_when_full);
    cJSON_AddNumberToObject(p, "dropped_frames", 0);
    if (cJSON_GetObjectItemCaseSensitive(p, "dropped_frames") == NULL) {
        cJSON_Delete(env); /* out of memory on the way */
        return NULL;
    }
    return env;
}

static int write_id_file(const char *path, const char *id)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (tmp == NULL) return -1;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fprintf(f, "%s\n", id) > 0;
    if (f != NULL && fclose(f) != 0) ok = 0;
    /* Renamed into place so a script polling for the file never reads half an id. */
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        int e = errno;
        unlink(tmp);
        errno = e;
    }
    free(tmp);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* The server's process group (it has its own), or the server alone if
 * setpgid failed. */
static void signal_server(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0) kill(pid, sig);
}

static int status_code(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return 1;
}

static void set_server_exit(int st)
{
    cJSON *p = cJSON_GetObjectItemCaseSensitive(R.env, "proxy");
    cJSON *ex = cJSON_CreateObject();
    if (WIFEXITED(st)) cJSON_AddNumberToObject(ex, "code", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) cJSON_AddNumberToObject(ex, "signal", WTERMSIG(st));
    cJSON_DeleteItemFromObjectCaseSensitive(p, "server_exit");
    cJSON_AddItemToObject(p, "server_exit", ex);
}

static int proxy_main(options *op)
{
    options o = *op;
    int rc;
    /* A closed stdin/stdout/stderr would be handed out again by pipe() and
     * mistaken for the client: put /dev/null there. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) {
            return EXIT_OSERR;
        }
    }
    main_thread = pthread_self();
    /* Plugins before the store they may provide; the hook after them (a
     * Python plugin's package installs its own on import). */
    char perr[2048];
    rc = tape_tools_load_plugins(tape_registry_default(), o.plugins, o.nplugins, perr,
                                 sizeof perr);
    if (rc != TAPE_OK) {
        say("%s", perr);
        return EXIT_STORE;
    }
    tape_log_set(log_hook, NULL);
    /* A reader that went away must be an error we see (EPIPE), not our
     * death; a file size limit likewise (EFBIG, reported by the store). */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);

    const char *env_spec = getenv("TAPESTORE_STORE");
    const char *spec = o.store != NULL ? o.store
                       : env_spec != NULL && env_spec[0] != '\0' ? env_spec
                                                                 : "filesystem:./tapes";
    tape_store *store = NULL;
    rc = o.store != NULL ? tape_store_open_spec(&store, NULL, o.store, TAPE_OPEN_EAGER)
                         : tape_store_open_env(&store, NULL, TAPE_OPEN_EAGER);
    if (rc != TAPE_OK) {
        say("cannot open the store \"%s\": %s: %s", spec, tape_strerror(rc), tape_errmsg());
        free(o.tags);
        return EXIT_STORE;
    }
    /* The tape's clock: ts counts from created_at (set by tape_new in
     * build_header), read with the monotonic clock so a wall-clock step
     * cannot bend frame times. */
    R.base_us = mono_us();
    tape *header = NULL;
    rc = build_header(&header, &o);
    R.env = rc == TAPE_OK ? proxy_info(&o) : NULL;
    if (rc == TAPE_OK && R.env == NULL) rc = TAPE_ENOMEM;
    if (rc == TAPE_OK) {
        char *env = cJSON_PrintUnformatted(R.env);
        rc = env != NULL ? tape_set_environment_json(header, env) : TAPE_ENOMEM;
        cJSON_free(env);
    }
    if (rc == TAPE_OK) rc = tape_store_record(&R.w, store, header);
    if (rc == TAPE_OK) rc = tape_clone(&R.meta, header);
    if (rc != TAPE_OK) {
        say("cannot start recording into \"%s\": %s: %s", spec, tape_strerror(rc), tape_errmsg());
        tape_writer_free(R.w);
        tape_free(header);
        cJSON_Delete(R.env);
        tape_store_free(store);
        free(o.tags);
        return EXIT_STORE;
    }
    char id[TAPE_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", tape_id(header));
    tape_free(header);
    say("recording tape %s into %s", id, spec);
    if (o.id_file != NULL && write_id_file(o.id_file, id) != 0) {
        say("cannot write the tape id to --id-file \"%s\": %s (recording goes on)", o.id_file,
            strerror(errno));
    }

    /* Every thread inherits this mask; the main thread takes the signals
     * with sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    int to_server = -1, from_server = -1, exec_err = 0;
    pid_t pid = spawn_server(o.server_argv, &to_server, &from_server, &exec_err);
    if (pid < 0) {
        int code = exec_err == ENOENT ? EXIT_NOTFOUND : exec_err != 0 ? EXIT_NOEXEC : EXIT_OSERR;
        say("cannot run the server \"%s\": %s", o.server_argv[0],
            strerror(exec_err != 0 ? exec_err : errno));
        /* No session took place: leave no empty tape behind. */
        tape_writer_free(R.w);
        if (tape_store_delete(store, id) != TAPE_OK) {
            say("could not remove the empty tape %s: %s", id, tape_errmsg());
        }
        tape_free(R.meta);
        cJSON_Delete(R.env);
        tape_store_close(store);
        free(o.tags);
        return code;
    }

    Q.max_count = o.queue;
    Q.drop_when_full = o.drop_when_full;
    C2S = (relay){ .dir = DIR_C2S, .src = STDIN_FILENO, .dst = to_server, .wake = { -1, -1 } };
    S2C = (relay){ .dir = DIR_S2C, .src = from_server, .dst = STDOUT_FILENO, .wake = { -1, -1 } };
    pthread_t rec_thread;
    int threads_ok = make_pipe(C2S.wake) == 0 && make_pipe(S2C.wake) == 0 &&
                     pthread_create(&rec_thread, NULL, recorder_main, NULL) == 0;
    int rec_started = threads_ok;
    if (threads_ok) threads_ok = pthread_create(&C2S.thread, NULL, relay_main, &C2S) == 0;
    C2S.started = threads_ok;
    if (threads_ok) threads_ok = pthread_create(&S2C.thread, NULL, relay_main, &S2C) == 0;
    S2C.started = threads_ok;
    int exit_override = 0;
    if (!threads_ok) {
        say("cannot start the relay threads: %s", strerror(errno));
        exit_override = EXIT_OSERR;
    }

    /* Wait for the end. Stage 0: running; 1: the server's stdin is closed,
     * waiting for it to exit; 2: SIGTERM sent; 3: SIGKILL sent. */
    int stage = 0, server_status = 0, server_exited = 0, signalled = 0;
    int64_t deadline = 0, drain_deadline = 0;
    const int64_t grace_us = (int64_t)o.grace_ms * 1000;
    if (!threads_ok) {
        if (C2S.started) {
            relay_stop(&C2S); /* it owns the server's stdin: it closes it */
        } else {
            close(to_server);
        }
        stage = 1;
        deadline = mono_us() + grace_us;
    }
    for (;;) {
        if (!server_exited) {
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                server_exited = 1;
                server_status = st;
                drain_deadline = mono_us() + grace_us;
            }
        }
        int64_t now = mono_us();
        if (server_exited) {
            /* Its last output is still in the pipe: relay it, unless a
             * process it left behind holds the pipe open past the grace. */
            if (!S2C.started || atomic_load(&S2C.done) || now >= drain_deadline) break;
        } else {
            int want_end = signalled || atomic_load(&C2S.done) || atomic_load(&S2C.done) ||
                           atomic_load(&S2C.dst_broken);
            if (stage == 0 && want_end) {
                relay_stop(&C2S); /* the relay closes the server's stdin */
                stage = 1;
                deadline = now + grace_us;
            } else if (stage == 1 && now >= deadline) {
                if (deadline == 0) say("another signal: sending SIGTERM to the server now");
                else say("the server did not exit %ld ms after its stdin was closed: sending "
                         "SIGTERM", o.grace_ms);
                signal_server(pid, SIGTERM);
                stage = 2;
                deadline = now + grace_us;
            } else if (stage == 2 && now >= deadline) {
                if (deadline == 0) say("another signal: sending SIGKILL to the server now");
                else say("the server did not exit %ld ms after SIGTERM: sending SIGKILL",
                         o.grace_ms);
                signal_server(pid, SIGKILL);
                stage = 3;
            }
        }
        int64_t wait_us = 200000;
        int64_t until = server_exited ? drain_deadline : stage == 1 || stage == 2 ? deadline : 0;
        if (until != 0) {
            int64_t left = until - mono_us();
            if (left < wait_us) wait_us = left < 1000 ? 1000 : left;
        }
        struct timespec ts = { (time_t)(wait_us / 1000000), (long)(wait_us % 1000000) * 1000 };
        siginfo_t si;
        int sig = sigtimedwait(&sigs, &si, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            if (!signalled) {
                say("%s: ending the session", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM"
                                                                                        : "SIGHUP");
            }
            if (signalled && stage >= 1 && stage < 3) {
                deadline = 0; /* a second signal: skip the rest of the grace */
            }
            signalled = sig;
        }
    }

    /* The session is over: stop what still runs, record what is queued. */
    relay_stop(&C2S);
    relay_stop(&S2C);
    int64_t stop_by = mono_us() + 1000000;
    while ((C2S.started && !atomic_load(&C2S.done)) || (S2C.started && !atomic_load(&S2C.done))) {
        int64_t left = stop_by - mono_us();
        if (left <= 0) break;
        struct timespec ts = { 0, (long)(left > 100000 ? 100000 : left) * 1000 };
        siginfo_t si;
        sigtimedwait(&sigs, &si, &ts);
    }
    /* A relay stuck writing to a peer that never reads is left behind; its
     * line was not delivered, so the queue drops it as cancelled. */
    if (C2S.started) {
        if (atomic_load(&C2S.done)) pthread_join(C2S.thread, NULL);
        else pthread_detach(C2S.thread);
    }
    if (S2C.started) {
        if (atomic_load(&S2C.done)) pthread_join(S2C.thread, NULL);
        else pthread_detach(S2C.thread);
    }
    queue_close();
    if (rec_started) pthread_join(rec_thread, NULL);

    pthread_mutex_lock(&Q.mu);
    uint64_t dropped = Q.dropped;
    pthread_mutex_unlock(&Q.mu);

    int code = status_code(server_status);
    int incomplete = 0;
    if (!R.failed) {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(R.env, "proxy");
        cJSON_ReplaceItemInObjectCaseSensitive(p, "dropped_frames",
                                               cJSON_CreateNumber((double)dropped));
        set_server_exit(server_status);
        rc = update_meta();
        if (rc != TAPE_OK) record_failure(rc, "updating the tape's metadata");
    }
    if (!R.failed) {
        rc = tape_writer_finish(R.w);
        if (rc != TAPE_OK) record_failure(rc, "finishing the tape");
    }
    /* A tape the store failed on is left with status recording (what a
     * crash leaves), so no reader takes it for a complete session. */
    tape_writer_free(R.w);
    rc = tape_store_close(store);
    if (rc != TAPE_OK && !R.failed) record_failure(rc, "closing the store");
    if (R.failed) {
        say("tape %s is incomplete: the store failed (%s); %" PRIu64 " frames recorded, %" PRIu64
            " not recorded after the failure",
            id, R.fail_msg, R.recorded, R.not_recorded);
        incomplete = 1;
    }
    if (dropped > 0) {
        say("tape %s is incomplete: %" PRIu64 " frames dropped because the queue was full "
            "(--drop-when-full)", id, dropped);
        incomplete = 1;
    }
    if (incomplete) {
        say("exit status %d (tape incomplete) instead of the server's %d", EXIT_INCOMPLETE, code);
        code = EXIT_INCOMPLETE;
    }
    if (exit_override != 0) code = exit_override;

    pending_free(&R.pending[0]);
    pending_free(&R.pending[1]);
    free(R.init_key);
    tape_free(R.meta);
    cJSON_Delete(R.env);
    free(o.tags);
    return code;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(&o, argc, argv);
    if (rc != 0) {
        free(o.tags);
        free(o.plugins);
        return rc < 0 ? 0 : rc;
    }
    int code = proxy_main(&o); /* frees o.tags; every store is closed when it returns */
    /* Script providers go last: their interpreters are closed only once
     * nothing can call them. */
    tape_tools_plugins_shutdown();
    free(o.plugins);
    return code;
}
