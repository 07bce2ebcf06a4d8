/*
 * conformance.c - the provider conformance suite (see conformance.h and
 * docs/conformance.md).
 *
 * Each case is a function that opens its own store, checks what a user of
 * any provider relies on, and records failures through tc_fail (each says
 * what was expected, what was seen, and the library's last error). Cases
 * never depend on one another: each starts from an empty store.
 */
#include "conformance.h"

#include <tapestore/provider.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Case context and failure recording                                  */
/* ------------------------------------------------------------------ */

#define TC_MAX_MSGS 16
#define TC_MSG_MAX 1536

typedef struct tc_ctx {
    tape_registry *reg;
    const char *provider;
    const char *tmpl;
    char *config;               /* this case's expanded config */
    char *dir;                  /* this case's @DIR@ (created on demand) */
    unsigned int native;        /* capabilities of the last store opened */
    unsigned int available;
    int failures;
    int skipped;
    char skip_reason[256];
    char *msgs[TC_MAX_MSGS];
    size_t nmsgs;
    size_t dropped;             /* failures beyond TC_MAX_MSGS */
    pthread_mutex_t lock;       /* worker threads record failures too */
} tc_ctx;

/* Record a failure. The last error is captured first, before anything
 * else can overwrite it. Messages are single lines. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static void tc_fail(tc_ctx *c, int line, const char *fmt, ...)
{
    char err[1100];
    char body[TC_MSG_MAX];
    char *msg;
    size_t len;
    va_list ap;

    if (tape_errcode() != TAPE_OK) {
        snprintf(err, sizeof err, " [last error %s: %s]", tape_strerror(tape_errcode()),
                 tape_errmsg());
    } else {
        err[0] = '\0';
    }
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    len = strlen(body) + strlen(err) + 64;
    msg = malloc(len);
    if (msg != NULL) {
        snprintf(msg, len, "line %d: %s%s", line, body, err);
        for (char *p = msg; *p; p++) {
            if (*p == '\n' || *p == '\r') {
                *p = ' ';
            }
        }
    }
    pthread_mutex_lock(&c->lock);
    c->failures++;
    if (msg != NULL && c->nmsgs < TC_MAX_MSGS) {
        c->msgs[c->nmsgs++] = msg;
        msg = NULL;
    } else {
        c->dropped++;
    }
    pthread_mutex_unlock(&c->lock);
    free(msg);
}

/* Reset this thread's last error, so a failure reports the error of the
 * calls since, not a stale one. */
static void tc_clear_error(void)
{
    tape_error_set(TAPE_OK, "no error");
}

static void tc_fail_rc(tc_ctx *c, int line, const char *call, int got, int want)
{
    tc_fail(c, line, "%s returned %s (%d), expected %s (%d)", call, tape_strerror(got), got,
            tape_strerror(want), want);
}

static void tc_skip(tc_ctx *c, const char *reason)
{
    c->skipped = 1;
    snprintf(c->skip_reason, sizeof c->skip_reason, "%s", reason);
}

/* Assertions inside a case (which has `tc_ctx *c` and a label `out`).
 * REQUIRE* stop the case; EXPECT* record and go on. */
#define TC_FAIL(...) tc_fail(c, __LINE__, __VA_ARGS__)
#define REQUIRE(cond, ...)                                                                 \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            tc_fail(c, __LINE__, __VA_ARGS__);                                             \
            goto out;                                                                      \
        }                                                                                  \
    } while (0)
#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            tc_fail(c, __LINE__, __VA_ARGS__);                                             \
        }                                                                                  \
    } while (0)
#define REQUIRE_RC(want, call)                                                             \
    do {                                                                                   \
        int rc_ = (tc_clear_error(), (call));                                              \
        if (rc_ != (want)) {                                                               \
            tc_fail_rc(c, __LINE__, #call, rc_, (want));                                   \
            goto out;                                                                      \
        }                                                                                  \
    } while (0)
#define EXPECT_RC(want, call)                                                              \
    do {                                                                                   \
        int rc_ = (tc_clear_error(), (call));                                              \
        if (rc_ != (want)) {                                                               \
            tc_fail_rc(c, __LINE__, #call, rc_, (want));                                   \
        }                                                                                  \
    } while (0)
#define REQUIRE_OK(call) REQUIRE_RC(TAPE_OK, call)
#define EXPECT_OK(call) EXPECT_RC(TAPE_OK, call)

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static const char *tc_s(const char *s)
{
    return s != NULL ? s : "(null)";
}

static int tc_streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

/* ASCII case-insensitive substring test, written here so hand-computed
 * query expectations do not depend on the library. */
static int tc_contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (hay == NULL) {
        return 0;
    }
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] != '\0') {
            char a = p[i], b = needle[i];
            if (a >= 'A' && a <= 'Z') {
                a = (char)(a - 'A' + 'a');
            }
            if (b >= 'A' && b <= 'Z') {
                b = (char)(b - 'A' + 'a');
            }
            if (a != b) {
                break;
            }
            i++;
        }
        if (i == n) {
            return 1;
        }
    }
    return n == 0;
}

/* Does the last error message mention `needle` (case-insensitively)? */
static int tc_errmsg_has(const char *needle)
{
    return tc_contains_nocase(tape_errmsg(), needle);
}

static int64_t tc_now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append a frame to an in-memory tape. */
static int tc_add_frame(uint64_t *out_seq, tape *t, int dir, int64_t ts, const char *msg,
                        size_t len, const char *corr, const char *transport, const char *flags)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = dir;
    d.ts_ms = ts;
    d.message = msg;
    d.message_len = len;
    d.correlation_id = corr;
    d.transport_json = transport;
    d.flags_json = flags;
    return tape_append_frame(out_seq, t, &d);
}

/* A short, printable excerpt of a message for failure texts. */
static void tc_excerpt(char *buf, size_t size, const char *s, size_t len)
{
    if (s == NULL) {
        snprintf(buf, size, "(null)");
        return;
    }
    if (len + 3 > size) {
        snprintf(buf, size, "%.*s... (%zu bytes)", (int)(size > 40 ? size - 40 : 1), s, len);
    } else {
        snprintf(buf, size, "%.*s", (int)len, s);
    }
}

/* ------------------------------------------------------------------ */
/* Temporary directories and config expansion                          */
/* ------------------------------------------------------------------ */

static int tc_rmtree(const char *path)
{
    struct stat st;
    int rc = 0;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : -1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        if (d == NULL) {
            return -1;
        }
        while ((de = readdir(d)) != NULL) {
            size_t n;
            char *child;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
                continue;
            }
            n = strlen(path) + strlen(de->d_name) + 2;
            child = malloc(n);
            if (child == NULL) {
                rc = -1;
                break;
            }
            snprintf(child, n, "%s/%s", path, de->d_name);
            if (tc_rmtree(child) != 0) {
                rc = -1;
            }
            free(child);
        }
        closedir(d);
        if (rmdir(path) != 0) {
            rc = -1;
        }
    } else if (unlink(path) != 0) {
        rc = -1;
    }
    return rc;
}

/* Append s to a growing buffer; JSON-string-escape it when `escape`. */
typedef struct tc_buf {
    char *p;
    size_t len, cap;
    int oom;
} tc_buf;

static void tc_buf_put(tc_buf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *np;
        while (b->len + n + 1 > cap) {
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tc_buf_put_json_escaped(tc_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            tc_buf_put(b, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            tc_buf_put(b, esc, 6);
        } else {
            tc_buf_put(b, s, 1);
        }
    }
}

static unsigned int tc_ns_counter;
static pthread_mutex_t tc_ns_lock = PTHREAD_MUTEX_INITIALIZER;

/* Expand the template for one case: @DIR@ gets a fresh directory, @NS@ a
 * fresh token (one each per case, however often they occur). */
static int tc_expand(tc_ctx *c, char *err, size_t errsize)
{
    tc_buf b = { NULL, 0, 0, 0 };
    char ns[96];
    const char *p = c->tmpl;
    struct timespec ts;
    unsigned int n;

    pthread_mutex_lock(&tc_ns_lock);
    n = ++tc_ns_counter;
    pthread_mutex_unlock(&tc_ns_lock);
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(ns, sizeof ns, "tc%ld_%lld%03ld_%u", (long)getpid(), (long long)ts.tv_sec,
             ts.tv_nsec / 1000000, n);

    tc_buf_put(&b, "", 0);
    while (*p) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            if (c->dir == NULL) {
                const char *tmp = getenv("TMPDIR");
                size_t len;
                if (tmp == NULL || *tmp == '\0') {
                    tmp = "/tmp";
                }
                len = strlen(tmp) + 32;
                c->dir = malloc(len);
                if (c->dir == NULL) {
                    free(b.p);
                    snprintf(err, errsize, "out of memory");
                    return TAPE_ENOMEM;
                }
                snprintf(c->dir, len, "%s/tape-conformance-XXXXXX", tmp);
                if (mkdtemp(c->dir) == NULL) {
                    snprintf(err, errsize, "mkdtemp in %s failed: %s", tmp, strerror(errno));
                    free(c->dir);
                    c->dir = NULL;
                    free(b.p);
                    return TAPE_EIO;
                }
            }
            tc_buf_put_json_escaped(&b, c->dir);
            p += 5;
        } else if (strncmp(p, "@NS@", 4) == 0) {
            tc_buf_put(&b, ns, strlen(ns));
            p += 4;
        } else {
            tc_buf_put(&b, p, 1);
            p++;
        }
    }
    if (b.oom) {
        free(b.p);
        snprintf(err, errsize, "out of memory");
        return TAPE_ENOMEM;
    }
    c->config = b.p;
    return TAPE_OK;
}

/* ------------------------------------------------------------------ */
/* Opening stores                                                      */
/* ------------------------------------------------------------------ */

/* Open this case's store (same config every time within a case) and
 * check that it is empty. Records a failure and returns non-zero if not. */
static int tc_open_ex(tc_ctx *c, int line, tape_store **out, int require_empty)
{
    tape_store *s = NULL;
    tape_result *r = NULL;
    int rc;

    *out = NULL;
    rc = tape_store_open(&s, c->reg, c->provider, c->config, 0);
    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_store_open(\"%s\", %s) returned %s, expected TAPE_OK", c->provider,
                c->config, tape_strerror(rc));
        return -1;
    }
    rc = tape_store_capabilities(&c->native, &c->available, s);
    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_store_capabilities returned %s, expected TAPE_OK", tape_strerror(rc));
        tape_store_free(s);
        return -1;
    }
    if (require_empty) {
        rc = tape_store_query(&r, s, NULL);
        if (rc != TAPE_OK) {
            tc_fail(c, line, "listing a fresh store: tape_store_query returned %s, expected TAPE_OK",
                    tape_strerror(rc));
            tape_store_free(s);
            return -1;
        }
        if (tape_result_count(r) != 0) {
            tc_fail(c, line,
                    "a freshly opened store holds %zu tape(s) (first: %s), expected none: the config "
                    "template must give each case a fresh namespace (use @DIR@ or @NS@)",
                    tape_result_count(r), tc_s(tape_entry_id(tape_result_at(r, 0))));
            tape_result_free(r);
            tape_store_free(s);
            return -1;
        }
        tape_result_free(r);
    }
    *out = s;
    return 0;
}
#define TC_OPEN(sp)                                                                        \
    do {                                                                                   \
        if (tc_open_ex(c, __LINE__, (sp), 1) != 0) {                                       \
            goto out;                                                                      \
        }                                                                                  \
    } while (0)

/* Close a store and check that closing succeeds. */
static void tc_close(tc_ctx *c, int line, tape_store **s)
{
    if (*s != NULL) {
        int rc = tape_store_close(*s);
        *s = NULL;
        if (rc != TAPE_OK) {
            tc_fail(c, line, "tape_store_close returned %s, expected TAPE_OK", tape_strerror(rc));
        }
    }
}
#define TC_CLOSE(sp) tc_close(c, __LINE__, (sp))

/* ------------------------------------------------------------------ */
/* Comparing tapes, frames, entries                                    */
/* ------------------------------------------------------------------ */

static int tc_cmp_frame(tc_ctx *c, int line, const char *what, size_t idx, const tape_frame *want,
                        const tape_frame *got)
{
    int n = 0;
    size_t wl = 0, gl = 0;
    const char *wm, *gm;

    if (want == NULL || got == NULL) {
        tc_fail(c, line, "%s: frame %zu: expected %s, got %s", what, idx,
                want ? "a frame" : "no frame", got ? "a frame" : "no frame");
        return 1;
    }
    if (tape_frame_seq(want) != tape_frame_seq(got)) {
        tc_fail(c, line, "%s: frame %zu: seq expected %" PRIu64 ", got %" PRIu64, what, idx,
                tape_frame_seq(want), tape_frame_seq(got));
        n++;
    }
    if (tape_frame_ts(want) != tape_frame_ts(got)) {
        tc_fail(c, line, "%s: frame %zu: ts expected %" PRId64 ", got %" PRId64, what, idx,
                tape_frame_ts(want), tape_frame_ts(got));
        n++;
    }
    if (tape_frame_direction(want) != tape_frame_direction(got)) {
        tc_fail(c, line, "%s: frame %zu: direction expected %d, got %d", what, idx,
                tape_frame_direction(want), tape_frame_direction(got));
        n++;
    }
    wm = tape_frame_message(want, &wl);
    gm = tape_frame_message(got, &gl);
    if (wm == NULL || gm == NULL || wl != gl || memcmp(wm, gm, wl) != 0) {
        char a[200], b[200];
        size_t off = 0;
        while (wm && gm && off < wl && off < gl && wm[off] == gm[off]) {
            off++;
        }
        tc_excerpt(a, sizeof a, wm, wl);
        tc_excerpt(b, sizeof b, gm, gl);
        tc_fail(c, line,
                "%s: frame %zu: message not byte-identical (expected %zu bytes, got %zu, first "
                "difference at byte %zu): expected '%s', got '%s'",
                what, idx, wl, gl, off, a, b);
        n++;
    }
    if (!tc_streq(tape_frame_correlation_id(want), tape_frame_correlation_id(got))) {
        tc_fail(c, line, "%s: frame %zu: correlation id expected %s, got %s", what, idx,
                tc_s(tape_frame_correlation_id(want)), tc_s(tape_frame_correlation_id(got)));
        n++;
    }
    if (tape_frame_is_error(want) != tape_frame_is_error(got)) {
        tc_fail(c, line, "%s: frame %zu: is_error expected %d, got %d", what, idx,
                tape_frame_is_error(want), tape_frame_is_error(got));
        n++;
    }
    if (n == 0) {
        /* The whole line carries every field (transport, flags, unknown
         * ones): it must survive too. */
        const char *wline = tape_frame_line(want, &wl);
        const char *gline = tape_frame_line(got, &gl);
        if (wline == NULL || gline == NULL || wl != gl || memcmp(wline, gline, wl) != 0) {
            char a[300], b[300];
            tc_excerpt(a, sizeof a, wline, wl);
            tc_excerpt(b, sizeof b, gline, gl);
            tc_fail(c, line, "%s: frame %zu: JSONL line differs: expected '%s', got '%s'", what, idx,
                    a, b);
            n++;
        }
    }
    return n;
}

/* Compare every stats field except file_size_bytes (which depends on how
 * a backend encodes, and is checked separately). */
static int tc_cmp_stats(tc_ctx *c, int line, const char *what, const tape_stats *w,
                        const tape_stats *g)
{
    int n = 0;
#define TC_STAT(f)                                                                         \
    if (w->f != g->f) {                                                                    \
        tc_fail(c, line, "%s: stats." #f " expected %" PRIu64 ", got %" PRIu64, what,       \
                (uint64_t)w->f, (uint64_t)g->f);                                           \
        n++;                                                                               \
    }
    TC_STAT(frame_count)
    TC_STAT(duration_ms)
    TC_STAT(last_sequence)
    TC_STAT(client_to_server)
    TC_STAT(server_to_client)
    TC_STAT(error_count)
    TC_STAT(correlation_count)
#undef TC_STAT
    return n;
}

/* Full comparison of two tapes: metadata, tags, frames, correlations,
 * stats. Records one failure per difference; returns their number.
 * frames: 1 compares every frame; 0 only the count (callers sample). */
static int tc_cmp_tapes(tc_ctx *c, int line, const char *what, const tape *want, const tape *got,
                        int frames)
{
    int n = 0;
    tape_stats ws = TAPE_STATS_INIT, gs = TAPE_STATS_INIT;

    if (want == NULL || got == NULL) {
        tc_fail(c, line, "%s: expected a tape, got NULL", what);
        return 1;
    }
#define TC_STR(f)                                                                          \
    if (!tc_streq(tape_##f(want), tape_##f(got))) {                                        \
        tc_fail(c, line, "%s: " #f " expected \"%s\", got \"%s\"", what, tc_s(tape_##f(want)), \
                tc_s(tape_##f(got)));                                                      \
        n++;                                                                               \
    }
#define TC_I64(f)                                                                          \
    if (tape_##f(want) != tape_##f(got)) {                                                 \
        tc_fail(c, line, "%s: " #f " expected %" PRId64 ", got %" PRId64, what,             \
                (int64_t)tape_##f(want), (int64_t)tape_##f(got));                          \
        n++;                                                                               \
    }
    TC_STR(id)
    TC_STR(name)
    TC_STR(description)
    TC_STR(session_id)
    TC_STR(protocol_version)
    TC_STR(transport_json)
    TC_STR(environment_json)
    TC_I64(status)
    TC_I64(created_at)
    TC_I64(updated_at)
    TC_I64(finalized_at)
#undef TC_STR
#undef TC_I64

    if (tape_tag_count(want) != tape_tag_count(got)) {
        tc_fail(c, line, "%s: tag count expected %zu, got %zu", what, tape_tag_count(want),
                tape_tag_count(got));
        n++;
    } else {
        for (size_t i = 0; i < tape_tag_count(want); i++) {
            if (!tc_streq(tape_tag_at(want, i), tape_tag_at(got, i))) {
                tc_fail(c, line, "%s: tag %zu expected \"%s\", got \"%s\" (tags keep insertion order)",
                        what, i, tc_s(tape_tag_at(want, i)), tc_s(tape_tag_at(got, i)));
                n++;
            }
        }
    }

    if (tape_frame_count(want) != tape_frame_count(got)) {
        tc_fail(c, line, "%s: frame count expected %zu, got %zu", what, tape_frame_count(want),
                tape_frame_count(got));
        n++;
    } else if (frames) {
        for (size_t i = 0; i < tape_frame_count(want) && n < 8; i++) {
            n += tc_cmp_frame(c, line, what, i, tape_frame_at(want, i), tape_frame_at(got, i));
        }
    }

    if (tape_correlation_count(want) != tape_correlation_count(got)) {
        tc_fail(c, line, "%s: correlation count expected %zu, got %zu", what,
                tape_correlation_count(want), tape_correlation_count(got));
        n++;
    } else {
        for (size_t i = 0; i < tape_correlation_count(want) && n < 8; i++) {
            const char *wid = NULL, *gid = NULL, *wst = NULL, *gst = NULL;
            uint64_t wrq = 0, grq = 0, wrs = 0, grs = 0;
            int64_t wrtt = 0, grtt = 0;
            int rc1 = tape_correlation_get(&wid, &wrq, &wrs, &wrtt, &wst, want, i);
            int rc2 = tape_correlation_get(&gid, &grq, &grs, &grtt, &gst, got, i);
            if (rc1 != TAPE_OK || rc2 != TAPE_OK || !tc_streq(wid, gid) || wrq != grq ||
                wrs != grs || wrtt != grtt || !tc_streq(wst, gst)) {
                tc_fail(c, line,
                        "%s: correlation %zu expected (%s, %" PRIu64 ", %" PRIu64 ", %" PRId64
                        ", %s), got (%s, %" PRIu64 ", %" PRIu64 ", %" PRId64 ", %s) [rc %d]",
                        what, i, tc_s(wid), wrq, wrs, wrtt, tc_s(wst), tc_s(gid), grq, grs, grtt,
                        tc_s(gst), rc2);
                n++;
            }
        }
    }

    if (tape_get_stats(&ws, want) != TAPE_OK || tape_get_stats(&gs, got) != TAPE_OK) {
        tc_fail(c, line, "%s: tape_get_stats failed", what);
        n++;
    } else {
        n += tc_cmp_stats(c, line, what, &ws, &gs);
    }
    return n;
}

/* A listing entry must describe its tape. */
static int tc_cmp_entry(tc_ctx *c, int line, const char *what, const tape *want,
                        const tape_entry *got)
{
    int n = 0;
    tape_stats ws = TAPE_STATS_INIT, gs = TAPE_STATS_INIT;

    if (got == NULL) {
        tc_fail(c, line, "%s: expected an entry for %s, got NULL", what, tc_s(tape_id(want)));
        return 1;
    }
#define TC_STR(f)                                                                          \
    if (!tc_streq(tape_##f(want), tape_entry_##f(got))) {                                  \
        tc_fail(c, line, "%s: entry " #f " expected \"%s\", got \"%s\"", what,              \
                tc_s(tape_##f(want)), tc_s(tape_entry_##f(got)));                          \
        n++;                                                                               \
    }
#define TC_I64(f)                                                                          \
    if (tape_##f(want) != tape_entry_##f(got)) {                                           \
        tc_fail(c, line, "%s: entry " #f " expected %" PRId64 ", got %" PRId64, what,       \
                (int64_t)tape_##f(want), (int64_t)tape_entry_##f(got));                    \
        n++;                                                                               \
    }
    TC_STR(id)
    TC_STR(name)
    TC_STR(description)
    TC_STR(session_id)
    TC_I64(status)
    TC_I64(created_at)
    TC_I64(updated_at)
#undef TC_STR
#undef TC_I64
    if (tape_tag_count(want) != tape_entry_tag_count(got)) {
        tc_fail(c, line, "%s: entry %s: tag count expected %zu, got %zu", what, tc_s(tape_id(want)),
                tape_tag_count(want), tape_entry_tag_count(got));
        n++;
    } else {
        for (size_t i = 0; i < tape_tag_count(want); i++) {
            if (!tc_streq(tape_tag_at(want, i), tape_entry_tag_at(got, i))) {
                tc_fail(c, line, "%s: entry %s: tag %zu expected \"%s\", got \"%s\"", what,
                        tc_s(tape_id(want)), i, tc_s(tape_tag_at(want, i)),
                        tc_s(tape_entry_tag_at(got, i)));
                n++;
            }
        }
    }
    if (tape_get_stats(&ws, want) != TAPE_OK || tape_entry_get_stats(&gs, got) != TAPE_OK) {
        tc_fail(c, line, "%s: entry %s: getting stats failed", what, tc_s(tape_id(want)));
        n++;
    } else {
        n += tc_cmp_stats(c, line, what, &ws, &gs);
    }
    return n;
}

/* Find an entry by id in a result page; NULL if absent. */
static const tape_entry *tc_result_find(const tape_result *r, const char *id)
{
    for (size_t i = 0; i < tape_result_count(r); i++) {
        if (tc_streq(tape_entry_id(tape_result_at(r, i)), id)) {
            return tape_result_at(r, i);
        }
    }
    return NULL;
}

/* Write "N: [a b c ...]" (truncated) into buf (size >= 64). */
static void tc_ids_str(char *buf, size_t size, const char *const *ids, size_t n)
{
    size_t used = (size_t)snprintf(buf, size, "%zu: [", n);
    size_t i;
    for (i = 0; i < n; i++) {
        const char *id = tc_s(ids[i]);
        if (used + strlen(id) + 8 >= size) {
            break;
        }
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? " " : "", id);
    }
    snprintf(buf + used, size - used, "%s]", i < n ? " ..." : "");
}

/* ------------------------------------------------------------------ */
/* Case: save/load fidelity                                            */
/* ------------------------------------------------------------------ */

/* Messages kept byte for byte: odd spacing, raw UTF-8, \u escapes (also
 * surrogate pairs), every JSON escape. */
static const char *const fid_msgs[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"clientInfo\":{\"name\":\"conformance\",\"version\":\"1.0\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"serverInfo\":{\"name\":\"srv ✓\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
    "\"arguments\":{\"text\":\"héllo 日本語 🎉 \\u00e9 \\ud83c\\udf89\"}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602,\"message\":\"Ungültig 🚫\"}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":2}}",
    "{ \"jsonrpc\" : \"2.0\" , \"method\":\"notifications/message\",  \"params\":{\"level\":"
    "\"info\",\"data\":\"Grüße 🎉\"} }",
    "{\"jsonrpc\":\"2.0\",\"id\":\"abc-\\u00e9\",\"method\":\"ping\",\"params\":{\"s\":"
    "\"\\ud83c\\udf89 \\u65e5\\u672c \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}}",
};

static void case_fidelity(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *m = NULL, *got = NULL;
    tape_result *r = NULL;
    tape_stats st = TAPE_STATS_INIT;
    const int dirs[] = { TAPE_DIR_CLIENT_TO_SERVER, TAPE_DIR_SERVER_TO_CLIENT,
                         TAPE_DIR_CLIENT_TO_SERVER, TAPE_DIR_SERVER_TO_CLIENT,
                         TAPE_DIR_CLIENT_TO_SERVER, TAPE_DIR_SERVER_TO_CLIENT,
                         TAPE_DIR_CLIENT_TO_SERVER };
    const int64_t ts[] = { 0, 15, 20, 33, 40, 41, 50 };
    const char *corr[] = { "1", "1", "2", "2", NULL, NULL, "abc-é" };
    const char *flags[] = { NULL, NULL, NULL, NULL, "{\"is_error\":true}", NULL, NULL };
    const char *transport[] = { "{\"type\":\"stdio\"}", NULL, NULL, NULL, NULL,
                                "{\"type\":\"http\",\"session\":\"ü-1\"}", NULL };
    const int is_error[] = { 0, 0, 0, 1, 1, 0, 0 };

    TC_OPEN(&s);

    REQUIRE_OK(tape_new(&t, "fidelity-full"));
    REQUIRE_OK(tape_set_name(t, "Fidelity ✓ naïve 日本語 🎉"));
    REQUIRE_OK(tape_set_description(t, "line one\nline two \"quoted\" \\ back\tslash — ünïcödé 🎉"));
    REQUIRE_OK(tape_set_session_id(t, "sess-ü-🎉-1"));
    REQUIRE_OK(tape_set_protocol_version(t, "2025-06-18"));
    REQUIRE_OK(tape_set_status(t, TAPE_STATUS_FINALIZED));
    REQUIRE_OK(tape_set_created_at(t, INT64_C(1723631400123)));
    REQUIRE_OK(tape_set_updated_at(t, INT64_C(1723631460456)));
    REQUIRE_OK(tape_set_finalized_at(t, INT64_C(1723631460789)));
    REQUIRE_OK(tape_add_tag(t, "prod"));
    REQUIRE_OK(tape_add_tag(t, "ünïcode"));
    REQUIRE_OK(tape_add_tag(t, "🎉 party"));
    REQUIRE_OK(tape_add_tag(t, "tools/call"));
    REQUIRE_OK(tape_add_tag(t, "a")); /* sorts before the others: order must be kept */
    REQUIRE_OK(tape_set_transport_json(
        t, "{\"type\":\"stdio\",\"command\":\"node\",\"args\":[\"server.js\",\"--port\",\"8080\"],"
           "\"env\":{\"LANG\":\"C.UTF-8\"}}"));
    REQUIRE_OK(tape_set_environment_json(
        t, "{\"host\":\"ci-runner-7\",\"user\":\"José 🎉\",\"cores\":2,\"debug\":false,"
           "\"extra\":null,\"list\":[1,\"two\",{\"three\":3}]}"));
    for (size_t i = 0; i < sizeof fid_msgs / sizeof fid_msgs[0]; i++) {
        uint64_t seq = 99;
        REQUIRE_OK(tc_add_frame(&seq, t, dirs[i], ts[i], fid_msgs[i], 0, corr[i], transport[i],
                                flags[i]));
        REQUIRE(seq == i, "tape_append_frame assigned seq %" PRIu64 ", expected %zu", seq, i);
    }
    REQUIRE_OK(tape_add_correlation(t, "1", 0, 1, 15, "ok"));
    REQUIRE_OK(tape_add_correlation(t, "2", 2, 3, 13, "error"));

    /* A tape with nothing optional set: unset must stay unset. */
    REQUIRE_OK(tape_new(&m, "fidelity-minimal"));

    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_store_save(s, m));

    REQUIRE_OK(tape_store_load(&got, s, "fidelity-full"));
    tc_cmp_tapes(c, __LINE__, "fidelity-full after save/load", t, got, 1);
    /* Hand-written expectations, so a model bug cannot hide behind an
     * equal comparison. */
    for (size_t i = 0; i < tape_frame_count(got) && i < sizeof fid_msgs / sizeof fid_msgs[0]; i++) {
        size_t len = 0;
        const tape_frame *f = tape_frame_at(got, i);
        const char *msg = tape_frame_message(f, &len);
        EXPECT(msg != NULL && len == strlen(fid_msgs[i]) && memcmp(msg, fid_msgs[i], len) == 0,
               "frame %zu message: expected byte-identical '%s', got '%s' (%zu bytes)", i,
               fid_msgs[i], tc_s(msg), len);
        EXPECT(tape_frame_is_error(f) == is_error[i], "frame %zu is_error: expected %d, got %d", i,
               is_error[i], tape_frame_is_error(f));
        EXPECT(tape_frame_direction(f) == dirs[i], "frame %zu direction: expected %d, got %d", i,
               dirs[i], tape_frame_direction(f));
        EXPECT(tape_frame_ts(f) == ts[i], "frame %zu ts: expected %" PRId64 ", got %" PRId64, i,
               ts[i], tape_frame_ts(f));
        EXPECT(tc_streq(tape_frame_correlation_id(f), corr[i]),
               "frame %zu correlation id: expected %s, got %s", i, tc_s(corr[i]),
               tc_s(tape_frame_correlation_id(f)));
    }
    EXPECT(tc_streq(tape_name(got), "Fidelity ✓ naïve 日本語 🎉"), "name: expected the UTF-8 name, got %s",
           tc_s(tape_name(got)));
    EXPECT(tape_status(got) == TAPE_STATUS_FINALIZED, "status: expected finalized (%d), got %d",
           TAPE_STATUS_FINALIZED, tape_status(got));
    EXPECT(tape_created_at(got) == INT64_C(1723631400123),
           "created_at: expected 1723631400123 (ms precision), got %" PRId64, tape_created_at(got));
    EXPECT(tape_updated_at(got) == INT64_C(1723631460456),
           "updated_at: expected 1723631460456, got %" PRId64, tape_updated_at(got));
    EXPECT(tape_finalized_at(got) == INT64_C(1723631460789),
           "finalized_at: expected 1723631460789, got %" PRId64, tape_finalized_at(got));
    REQUIRE_OK(tape_get_stats(&st, got));
    EXPECT(st.frame_count == 7 && st.duration_ms == 50 && st.last_sequence == 6 &&
               st.client_to_server == 4 && st.server_to_client == 3 && st.error_count == 2 &&
               st.correlation_count == 2,
           "stats: expected frames 7, duration 50, last_seq 6, c2s 4, s2c 3, errors 2, "
           "correlations 2; got %" PRIu64 ", %" PRId64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
           ", %" PRIu64 ", %" PRIu64,
           st.frame_count, st.duration_ms, st.last_sequence, st.client_to_server,
           st.server_to_client, st.error_count, st.correlation_count);
    EXPECT(st.file_size_bytes > 0, "stats.file_size_bytes: expected > 0 for a tape with frames, got 0");
    tape_free(got);
    got = NULL;

    REQUIRE_OK(tape_store_load(&got, s, "fidelity-minimal"));
    tc_cmp_tapes(c, __LINE__, "fidelity-minimal after save/load", m, got, 1);
    EXPECT(tape_name(got) == NULL && tape_description(got) == NULL && tape_tag_count(got) == 0 &&
               tape_frame_count(got) == 0 && tape_correlation_count(got) == 0 &&
               tape_transport_json(got) == NULL && tape_environment_json(got) == NULL,
           "fidelity-minimal: expected no name, description, tags, frames, correlations, "
           "transport or environment; got name %s, description %s, %zu tags, %zu frames",
           tc_s(tape_name(got)), tc_s(tape_description(got)), tape_tag_count(got),
           tape_frame_count(got));
    EXPECT(tape_status(got) == TAPE_STATUS_RECORDING,
           "fidelity-minimal: status expected recording (%d), got %d", TAPE_STATUS_RECORDING,
           tape_status(got));
    EXPECT(tape_finalized_at(got) == TAPE_TIME_NONE,
           "fidelity-minimal: finalized_at expected TAPE_TIME_NONE, got %" PRId64,
           tape_finalized_at(got));

    /* The listing describes both tapes the same way. */
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    REQUIRE(tape_result_count(r) == 2, "listing: expected 2 tapes, got %zu", tape_result_count(r));
    tc_cmp_entry(c, __LINE__, "listing", t, tc_result_find(r, "fidelity-full"));
    tc_cmp_entry(c, __LINE__, "listing", m, tc_result_find(r, "fidelity-minimal"));

out:
    tape_result_free(r);
    tape_free(got);
    tape_free(t);
    tape_free(m);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: a 5 MiB frame                                                 */
/* ------------------------------------------------------------------ */

#define TC_BIG_PAYLOAD (5u * 1024u * 1024u)

static void case_large_frame(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *got = NULL;
    tape_frame_iter *it = NULL;
    char *msg = NULL;
    size_t len = 0;
    const char *head = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"";
    const char *tail = "\"}]}}";
    const char *small = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}";

    TC_OPEN(&s);
    msg = malloc(strlen(head) + TC_BIG_PAYLOAD + strlen(tail) + 1);
    REQUIRE(msg != NULL, "out of memory building a 5 MiB message");
    memcpy(msg, head, strlen(head));
    len = strlen(head);
    for (size_t i = 0; i < TC_BIG_PAYLOAD; i++) {
        /* Varying printable bytes, so a truncated or shifted copy shows. */
        msg[len++] = (char)('A' + (i * 7 + i / 4096) % 58 % 26);
    }
    memcpy(msg + len, tail, strlen(tail) + 1);
    len += strlen(tail);

    REQUIRE_OK(tape_new(&t, "large-frame"));
    REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_CLIENT_TO_SERVER, 0, small, 0, NULL, NULL, NULL));
    REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_SERVER_TO_CLIENT, 5, msg, len, NULL, NULL, NULL));
    REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_CLIENT_TO_SERVER, 9, small, 0, NULL, NULL, NULL));
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_store_load(&got, s, "large-frame"));
    REQUIRE(tape_frame_count(got) == 3, "frame count: expected 3, got %zu", tape_frame_count(got));
    for (size_t i = 0; i < 3; i++) {
        tc_cmp_frame(c, __LINE__, "large-frame after load", i, tape_frame_at(t, i),
                     tape_frame_at(got, i));
    }
    {
        size_t glen = 0;
        const char *gm = tape_frame_message(tape_frame_at(got, 1), &glen);
        EXPECT(gm != NULL && glen == len && memcmp(gm, msg, len) == 0,
               "5 MiB message: expected %zu identical bytes, got %zu", len, glen);
    }
    /* The same frame through a ranged read. */
    {
        const tape_frame *f = NULL;
        size_t glen = 0;
        const char *gm;
        REQUIRE_OK(tape_store_read_frames(&it, s, "large-frame", 1, 1));
        REQUIRE_OK(tape_frame_iter_next(&f, it));
        gm = tape_frame_message(f, &glen);
        EXPECT(tape_frame_seq(f) == 1 && gm != NULL && glen == len && memcmp(gm, msg, len) == 0,
               "read_frames [1,1]: expected seq 1 with the %zu-byte message, got seq %" PRIu64
               " with %zu bytes",
               len, tape_frame_seq(f), glen);
        EXPECT_RC(TAPE_DONE, tape_frame_iter_next(&f, it));
    }
out:
    tape_frame_iter_free(it);
    tape_free(got);
    tape_free(t);
    free(msg);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: invalid_json and oversize frames round-trip                   */
/* ------------------------------------------------------------------ */

/* A recorder relays lines that are not JSON, or too large to keep: the
 * core stores them flagged (docs/tape-format.md, "Flagged frames") as
 * ordinary frame lines, so every provider must give them back as they are. */

#define TC_FLAG_BIG 200000u

static int tc_add_flagged(uint64_t *out_seq, tape *t, tape_writer *w, int64_t ts,
                          const char *bytes, size_t len, unsigned int fflags, size_t prefix)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = TAPE_DIR_SERVER_TO_CLIENT;
    d.ts_ms = ts;
    d.message = bytes;
    d.message_len = len;
    d.frame_flags = fflags;
    d.prefix_bytes = prefix;
    return w != NULL ? tape_writer_append(out_seq, w, &d) : tape_append_frame(out_seq, t, &d);
}

/* f must be the frame that want describes: flags, kept bytes, length and
 * digest, and a message that is one JSON string. */
static void tc_check_flagged(tc_ctx *c, int line, const char *what, const tape_frame *want,
                             const tape_frame *got)
{
    size_t wl = 0, gl = 0;
    const char *wr = tape_frame_raw(want, &wl), *gr = tape_frame_raw(got, &gl);
    if (tape_frame_flags(want) != tape_frame_flags(got)) {
        tc_fail(c, line, "%s: frame %" PRIu64 ": flags expected 0x%x, got 0x%x", what,
                tape_frame_seq(want), tape_frame_flags(want), tape_frame_flags(got));
        return;
    }
    if (gr == NULL || wl != gl || memcmp(wr, gr, wl) != 0) {
        tc_fail(c, line, "%s: frame %" PRIu64 ": raw bytes differ (expected %zu bytes, got %zu)",
                what, tape_frame_seq(want), wl, gl);
    }
    if (tape_frame_is_error(got)) {
        tc_fail(c, line, "%s: frame %" PRIu64 ": a flagged frame is never an error", what,
                tape_frame_seq(got));
    }
    uint64_t lw = 0, lg = 0;
    const char *hw = NULL, *hg = NULL;
    int rw = tape_frame_oversize_info(&lw, &hw, want), rg = tape_frame_oversize_info(&lg, &hg, got);
    if (rw != rg || (rw == TAPE_OK && (lw != lg || !tc_streq(hw, hg)))) {
        tc_fail(c, line,
                "%s: frame %" PRIu64 ": oversize info expected %d/%" PRIu64 "/%s, got %d/%" PRIu64
                "/%s",
                what, tape_frame_seq(want), rw, lw, tc_s(hw), rg, lg, tc_s(hg));
    }
    size_t ml = 0;
    const char *m = tape_frame_message(got, &ml);
    if (tape_frame_flags(got) != 0 && (m == NULL || ml < 2 || m[0] != '"' || m[ml - 1] != '"')) {
        tc_fail(c, line, "%s: frame %" PRIu64 ": message of a flagged frame is not a JSON string",
                what, tape_frame_seq(got));
    }
}

static void case_flagged_frames(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *got = NULL, *h = NULL;
    tape_writer *w = NULL;
    tape_frame_iter *it = NULL;
    tape_query *q = NULL;
    tape_result *r = NULL;
    char *big = NULL;
    static const char junk[] = "HTTP/1.1 502 Bad Gateway \"quoted\" back\\slash \x01\t\r\x7f"
                               "\xff\xfe \xc3\xa9 zebracrossing \\ud83d a\0b";
    const char *ok = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";

    TC_OPEN(&s);
    big = malloc(TC_FLAG_BIG);
    REQUIRE(big != NULL, "out of memory building a %u-byte message", TC_FLAG_BIG);
    memcpy(big, "{\"result\":\"okapiword ", 21);
    for (size_t i = 21; i < TC_FLAG_BIG; i++) {
        big[i] = (char)('a' + i % 26);
    }
    memcpy(big + 5000, "hiddenword", 10);

    /* Saved whole, loaded, read in ranges. */
    REQUIRE_OK(tape_new(&t, "flagged-frames"));
    REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_CLIENT_TO_SERVER, 0, ok, 0, NULL, NULL, NULL));
    REQUIRE_OK(tc_add_flagged(NULL, t, NULL, 1, junk, sizeof junk - 1, TAPE_FRAME_INVALID_JSON, 0));
    REQUIRE_OK(tc_add_flagged(NULL, t, NULL, 2, big, TC_FLAG_BIG, TAPE_FRAME_OVERSIZE, 0));
    REQUIRE_OK(tc_add_flagged(NULL, t, NULL, 3, big, TC_FLAG_BIG,
                              TAPE_FRAME_OVERSIZE | TAPE_FRAME_INVALID_JSON, 40));
    REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_SERVER_TO_CLIENT, 4, ok, 0, NULL, NULL, NULL));
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_store_load(&got, s, "flagged-frames"));
    tc_cmp_tapes(c, __LINE__, "flagged-frames after load", t, got, 1);
    REQUIRE(tape_frame_count(got) == 5, "frame count: expected 5, got %zu", tape_frame_count(got));
    for (size_t i = 0; i < 5; i++) {
        tc_check_flagged(c, __LINE__, "after load", tape_frame_at(t, i), tape_frame_at(got, i));
    }
    {
        uint64_t len = 0;
        const char *hex = NULL;
        size_t rl = 0;
        EXPECT_OK(tape_frame_oversize_info(&len, &hex, tape_frame_at(got, 2)));
        EXPECT(len == TC_FLAG_BIG && tape_frame_raw(tape_frame_at(got, 2), &rl) != NULL &&
                   rl == TAPE_FRAME_PREFIX_DEFAULT,
               "oversize frame: expected length %u and a %u-byte prefix, got %" PRIu64 " and %zu",
               TC_FLAG_BIG, TAPE_FRAME_PREFIX_DEFAULT, len, rl);
    }
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_read_frames(&it, s, "flagged-frames", 1, 3));
    for (size_t i = 1; i <= 3; i++) {
        const tape_frame *f = NULL;
        REQUIRE_OK(tape_frame_iter_next(&f, it));
        tc_check_flagged(c, __LINE__, "read_frames [1,3]", tape_frame_at(t, i), f);
    }
    EXPECT_RC(TAPE_DONE, tape_frame_iter_next(&(const tape_frame *){ NULL }, it));
    tape_frame_iter_free(it);
    it = NULL;

    /* Recorded through a writer. */
    REQUIRE_OK(tape_new(&h, "flagged-writer"));
    REQUIRE_OK(tape_store_record(&w, s, h));
    REQUIRE_OK(tc_add_flagged(NULL, NULL, w, 0, junk, sizeof junk - 1, TAPE_FRAME_INVALID_JSON, 0));
    REQUIRE_OK(tc_add_flagged(NULL, NULL, w, 1, big, TC_FLAG_BIG, TAPE_FRAME_OVERSIZE, 0));
    REQUIRE_OK(tape_writer_finish(w));
    tape_writer_free(w);
    w = NULL;
    REQUIRE_OK(tape_store_load(&got, s, "flagged-writer"));
    REQUIRE(tape_frame_count(got) == 2, "writer: frame count expected 2, got %zu",
            tape_frame_count(got));
    tc_check_flagged(c, __LINE__, "writer, after load", tape_frame_at(t, 1), tape_frame_at(got, 0));
    tc_check_flagged(c, __LINE__, "writer, after load", tape_frame_at(t, 2), tape_frame_at(got, 1));
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_read_frames(&it, s, "flagged-writer", 0, UINT64_MAX));
    for (size_t i = 0; i < 2; i++) {
        const tape_frame *f = NULL;
        REQUIRE_OK(tape_frame_iter_next(&f, it));
        tc_check_flagged(c, __LINE__, "writer, read_frames", tape_frame_at(t, i + 1), f);
    }

    /* Text search sees the kept bytes, in both kinds. */
    static const struct {
        const char *query;
        size_t n;
    } searches[] = {
        { "{\"text\":\"zebracrossing\"}", 2 }, /* in the invalid_json line */
        { "{\"text\":\"okapiword\"}", 2 },     /* in the oversize prefix */
        { "{\"text\":\"BAD GATEWAY\"}", 2 },
        { "{\"text\":\"hiddenword\"}", 0 },      /* past the prefixes: not kept */
    };
    for (size_t i = 0; i < sizeof searches / sizeof *searches; i++) {
        REQUIRE_OK(tape_query_parse(&q, searches[i].query));
        REQUIRE_OK(tape_store_query(&r, s, q));
        EXPECT(tape_result_count(r) == searches[i].n, "query %.40s: expected %zu tapes, got %zu",
               searches[i].query, searches[i].n, tape_result_count(r));
        tape_result_free(r);
        r = NULL;
        tape_query_free(q);
        q = NULL;
    }
out:
    tape_result_free(r);
    tape_query_free(q);
    tape_frame_iter_free(it);
    tape_writer_free(w);
    tape_free(h);
    tape_free(got);
    tape_free(t);
    free(big);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: a 100,000-frame tape                                          */
/* ------------------------------------------------------------------ */

#define TC_MANY 100000u

static int tc_many_msg(char *buf, size_t size, unsigned int i)
{
    if (i % 2 == 0) {
        return snprintf(buf, size,
                        "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"resources/read\",\"params\":"
                        "{\"uri\":\"file:///data/%u.txt\"}}",
                        i / 2, i);
    }
    return snprintf(buf, size, "{\"jsonrpc\":\"2.0\",\"id\":%u,\"result\":{\"n\":%u}}", i / 2, i);
}

static void case_many_frames(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *got = NULL;
    tape_result *r = NULL;
    tape_stats st = TAPE_STATS_INIT;
    char buf[160];

    TC_OPEN(&s);
    REQUIRE_OK(tape_new(&t, "many-frames"));
    REQUIRE_OK(tape_set_name(t, "100k frames"));
    for (unsigned int i = 0; i < TC_MANY; i++) {
        tc_many_msg(buf, sizeof buf, i);
        REQUIRE_OK(tc_add_frame(NULL, t,
                                i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER,
                                (int64_t)(i / 10), buf, 0, NULL, NULL, NULL));
    }
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_store_load(&got, s, "many-frames"));
    tc_cmp_tapes(c, __LINE__, "many-frames after save/load", t, got, 0);
    REQUIRE(tape_frame_count(got) == TC_MANY, "frame count: expected %u, got %zu", TC_MANY,
            tape_frame_count(got));
    /* First, last, and a spread sample. */
    for (size_t i = 0; i < TC_MANY; i += (i == 0 ? 1 : 997)) {
        if (tc_cmp_frame(c, __LINE__, "many-frames", i, tape_frame_at(t, i), tape_frame_at(got, i)))
            break;
    }
    tc_cmp_frame(c, __LINE__, "many-frames (last)", TC_MANY - 1, tape_frame_at(t, TC_MANY - 1),
                 tape_frame_at(got, TC_MANY - 1));
    REQUIRE_OK(tape_get_stats(&st, got));
    EXPECT(st.frame_count == TC_MANY && st.last_sequence == TC_MANY - 1 &&
               st.duration_ms == (TC_MANY - 1) / 10 && st.client_to_server == TC_MANY / 2,
           "stats: expected %u frames, last_seq %u, duration %u, c2s %u; got %" PRIu64 ", %" PRIu64
           ", %" PRId64 ", %" PRIu64,
           TC_MANY, TC_MANY - 1, (TC_MANY - 1) / 10, TC_MANY / 2, st.frame_count, st.last_sequence,
           st.duration_ms, st.client_to_server);
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    REQUIRE(tape_result_count(r) == 1, "listing: expected 1 tape, got %zu", tape_result_count(r));
    tc_cmp_entry(c, __LINE__, "listing", t, tape_result_at(r, 0));
out:
    tape_result_free(r);
    tape_free(got);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: save replaces                                                 */
/* ------------------------------------------------------------------ */

static void case_replace(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *v1 = NULL, *v2 = NULL, *got = NULL;
    tape_result *r = NULL;
    tape_frame_iter *it = NULL;
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    const tape_frame *f = NULL;
    int n = 0, rc;

    TC_OPEN(&s);
    REQUIRE_OK(tape_new(&v1, "replace-me"));
    REQUIRE_OK(tape_set_name(v1, "first version"));
    REQUIRE_OK(tape_set_session_id(v1, "sess-1"));
    REQUIRE_OK(tape_add_tag(v1, "old"));
    REQUIRE_OK(tape_add_tag(v1, "stale"));
    REQUIRE_OK(tape_set_transport_json(v1, "{\"type\":\"stdio\"}"));
    for (int i = 0; i < 3; i++) {
        REQUIRE_OK(tc_add_frame(NULL, v1, TAPE_DIR_CLIENT_TO_SERVER, i * 10,
                                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"old\"}", 0, NULL, NULL,
                                NULL));
    }
    REQUIRE_OK(tape_add_correlation(v1, "x", 0, 1, 10, "ok"));

    REQUIRE_OK(tape_new(&v2, "replace-me"));
    REQUIRE_OK(tape_set_name(v2, "second version"));
    REQUIRE_OK(tape_add_tag(v2, "new"));
    REQUIRE_OK(tape_set_status(v2, TAPE_STATUS_FINALIZED));
    REQUIRE_OK(tape_set_created_at(v2, INT64_C(1700000000000)));
    REQUIRE_OK(tc_add_frame(NULL, v2, TAPE_DIR_SERVER_TO_CLIENT, 3,
                            "{\"jsonrpc\":\"2.0\",\"method\":\"new\"}", 0, NULL, NULL, NULL));

    REQUIRE_OK(tape_store_save(s, v1));
    REQUIRE_OK(tape_store_save(s, v2));
    REQUIRE_OK(tape_store_load(&got, s, "replace-me"));
    /* Nothing of v1 may survive: not its session, tags, frames,
     * correlations or transport. */
    tc_cmp_tapes(c, __LINE__, "replace-me after the second save", v2, got, 1);

    REQUIRE_OK(tape_store_query(&r, s, NULL));
    REQUIRE(tape_result_count(r) == 1, "listing after replace: expected 1 tape, got %zu",
            tape_result_count(r));
    tc_cmp_entry(c, __LINE__, "listing after replace", v2, tape_result_at(r, 0));

    REQUIRE_OK(tape_store_read_frames(&it, s, "replace-me", 0, UINT64_MAX));
    while ((rc = tape_frame_iter_next(&f, it)) == TAPE_OK) {
        n++;
    }
    EXPECT(rc == TAPE_DONE, "frame iterator ended with %s, expected TAPE_DONE", tape_strerror(rc));
    EXPECT(n == 1, "read_frames after replace: expected 1 frame, got %d", n);

    REQUIRE_OK(tape_store_stats_get(&ss, s));
    EXPECT(ss.tape_count == 1 && ss.frame_count == 1,
           "store stats after replace: expected 1 tape and 1 frame, got %" PRIu64 " and %" PRIu64,
           ss.tape_count, ss.frame_count);
out:
    tape_frame_iter_free(it);
    tape_result_free(r);
    tape_free(got);
    tape_free(v1);
    tape_free(v2);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: delete and exists                                             */
/* ------------------------------------------------------------------ */

static void case_delete_exists(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *a = NULL, *b = NULL, *got = NULL;
    tape_result *r = NULL;
    tape_frame_iter *it = NULL;
    int ex = -1;

    TC_OPEN(&s);
    REQUIRE_OK(tape_new(&a, "del-a"));
    REQUIRE_OK(tape_new(&b, "del-b"));
    REQUIRE_OK(tc_add_frame(NULL, a, TAPE_DIR_CLIENT_TO_SERVER, 0, "{\"jsonrpc\":\"2.0\",\"id\":1}",
                            0, NULL, NULL, NULL));

    REQUIRE_OK(tape_store_exists(&ex, s, "del-a"));
    EXPECT(ex == 0, "exists before save: expected 0, got %d", ex);
    REQUIRE_OK(tape_store_save(s, a));
    REQUIRE_OK(tape_store_save(s, b));
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "del-a"));
    EXPECT(ex == 1, "exists after save: expected 1, got %d", ex);

    REQUIRE_OK(tape_store_delete(s, "del-a"));
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "del-a"));
    EXPECT(ex == 0, "exists after delete: expected 0, got %d", ex);
    EXPECT_RC(TAPE_ENOTFOUND, tape_store_load(&got, s, "del-a"));
    tape_free(got);
    got = NULL;
    EXPECT_RC(TAPE_ENOTFOUND, tape_store_read_frames(&it, s, "del-a", 0, UINT64_MAX));
    tape_frame_iter_free(it);
    it = NULL;
    EXPECT_RC(TAPE_ENOTFOUND, tape_store_delete(s, "del-a"));

    /* The other tape is untouched, and the listing shows only it. */
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "del-b"));
    EXPECT(ex == 1, "exists of an undeleted tape: expected 1, got %d", ex);
    REQUIRE_OK(tape_store_load(&got, s, "del-b"));
    tc_cmp_tapes(c, __LINE__, "del-b after deleting del-a", b, got, 1);
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    EXPECT(tape_result_count(r) == 1 && tc_streq(tape_entry_id(tape_result_at(r, 0)), "del-b"),
           "listing after delete: expected [del-b], got %zu entries (first %s)",
           tape_result_count(r), tc_s(tape_entry_id(tape_result_at(r, 0))));

    /* A deleted id can be saved again. */
    REQUIRE_OK(tape_store_save(s, a));
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "del-a"));
    EXPECT(ex == 1, "exists after saving a deleted id again: expected 1, got %d", ex);
out:
    tape_frame_iter_free(it);
    tape_result_free(r);
    tape_free(got);
    tape_free(a);
    tape_free(b);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: not-found errors                                              */
/* ------------------------------------------------------------------ */

static void case_not_found(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *got = NULL;
    tape_frame_iter *it = NULL;
    const char *id = "no-such-tape-7f3a";
    int ex = -1;

    TC_OPEN(&s);
    /* An empty store, then one holding another tape. */
    for (int round = 0; round < 2; round++) {
        EXPECT_RC(TAPE_ENOTFOUND, tape_store_load(&got, s, id));
        EXPECT(tc_errmsg_has(id), "load of unknown id: message should name '%s', got '%s'", id,
               tape_errmsg());
        tape_free(got);
        got = NULL;
        EXPECT_RC(TAPE_ENOTFOUND, tape_store_delete(s, id));
        EXPECT(tc_errmsg_has(id), "delete of unknown id: message should name '%s', got '%s'", id,
               tape_errmsg());
        EXPECT_RC(TAPE_ENOTFOUND, tape_store_read_frames(&it, s, id, 0, UINT64_MAX));
        EXPECT(tc_errmsg_has(id), "read_frames of unknown id: message should name '%s', got '%s'",
               id, tape_errmsg());
        tape_frame_iter_free(it);
        it = NULL;
        EXPECT_RC(TAPE_ENOTFOUND, tape_store_read_frames(&it, s, id, 5, 10));
        tape_frame_iter_free(it);
        it = NULL;
        ex = -1;
        EXPECT_OK(tape_store_exists(&ex, s, id));
        EXPECT(ex == 0, "exists of unknown id: expected 0, got %d", ex);
        if (round == 0) {
            REQUIRE_OK(tape_new(&t, "no-such-tape-7f3"));  /* a prefix of the id */
            REQUIRE_OK(tape_store_save(s, t));
        }
    }
out:
    tape_frame_iter_free(it);
    tape_free(got);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: rejected ids                                                  */
/* ------------------------------------------------------------------ */

static void case_rejected_ids(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *got = NULL;
    tape_result *r = NULL;
    tape_frame_iter *it = NULL;
    char *long_id = NULL, *id129 = NULL, *id128 = NULL;
    const char *bad[12];
    size_t nbad = 0;
    const char *good[6];
    size_t ngood = 0;
    int ex = -1;

    TC_OPEN(&s);
    long_id = malloc(4097);
    id129 = malloc(TAPE_ID_MAX + 2);
    id128 = malloc(TAPE_ID_MAX + 1);
    REQUIRE(long_id && id129 && id128, "out of memory");
    memset(long_id, 'a', 4096);
    long_id[4096] = '\0';
    memset(id129, 'b', TAPE_ID_MAX + 1);
    id129[TAPE_ID_MAX + 1] = '\0';
    memset(id128, 'c', TAPE_ID_MAX);
    id128[TAPE_ID_MAX] = '\0';

    bad[nbad++] = "../x";
    bad[nbad++] = "a/b";
    bad[nbad++] = "";
    bad[nbad++] = ".hidden";
    bad[nbad++] = "..";
    bad[nbad++] = "a b";
    bad[nbad++] = "a\\b";
    bad[nbad++] = "caf\xc3\xa9";
    bad[nbad++] = "x\ny";
    bad[nbad++] = id129;
    bad[nbad++] = long_id;

    for (size_t i = 0; i < nbad; i++) {
        const char *id = bad[i];
        char shown[80];
        snprintf(shown, sizeof shown, "%.32s%s (%zu bytes)", id, strlen(id) > 32 ? "..." : "",
                 strlen(id));
        /* Each refusal is TAPE_EINVAL with a message about the tape id
         * ("invalid" alone would contain "id": look for "tape id"). */
#define TC_BAD_ID(call, what)                                                              \
    do {                                                                                   \
        int rc_ = (tc_clear_error(), (call));                                              \
        if (rc_ != TAPE_EINVAL) {                                                          \
            TC_FAIL("%s(\"%s\") returned %s, expected TAPE_EINVAL", what, shown,            \
                    tape_strerror(rc_));                                                   \
        } else if (!tc_errmsg_has("tape id")) {                                            \
            TC_FAIL("%s(\"%s\"): the message should say what is wrong with the tape id, "     \
                    "got '%s'", what, shown, tape_errmsg());                               \
        }                                                                                  \
    } while (0)
        TC_BAD_ID(tape_id_validate(id), "tape_id_validate");
        TC_BAD_ID(tape_new(&t, id), "tape_new");
        tape_free(t);
        t = NULL;
        TC_BAD_ID(tape_store_load(&got, s, id), "tape_store_load");
        tape_free(got);
        got = NULL;
        TC_BAD_ID(tape_store_delete(s, id), "tape_store_delete");
        TC_BAD_ID(tape_store_exists(&ex, s, id), "tape_store_exists");
        TC_BAD_ID(tape_store_read_frames(&it, s, id, 0, UINT64_MAX), "tape_store_read_frames");
#undef TC_BAD_ID
        tape_frame_iter_free(it);
        it = NULL;
    }

    /* Ids at the edges of the rule are accepted and round-trip. */
    good[ngood++] = id128;
    good[ngood++] = "Az09._-x";
    good[ngood++] = "x";
    good[ngood++] = "a..b";
    good[ngood++] = "-dash_first";
    good[ngood++] = "550e8400-e29b-41d4-a716-446655440000";
    for (size_t i = 0; i < ngood; i++) {
        const char *id = good[i];
        EXPECT_OK(tape_id_validate(id));
        REQUIRE_OK(tape_new(&t, id));
        REQUIRE_OK(tape_store_save(s, t));
        tape_free(t);
        t = NULL;
        ex = -1;
        EXPECT_OK(tape_store_exists(&ex, s, id));
        EXPECT(ex == 1, "exists(\"%.40s\") after save: expected 1, got %d", id, ex);
        REQUIRE_OK(tape_store_load(&got, s, id));
        EXPECT(tc_streq(tape_id(got), id), "load(\"%.40s\"): id expected the same, got \"%.40s\"",
               id, tc_s(tape_id(got)));
        tape_free(got);
        got = NULL;
        EXPECT_OK(tape_store_read_frames(&it, s, id, 0, UINT64_MAX));
        tape_frame_iter_free(it);
        it = NULL;
        EXPECT_OK(tape_store_delete(s, id));
    }

    /* A NUL cannot be inside a C string: "ab" followed by NUL and more
     * bytes is the id "ab" (C semantics), for every function. */
    REQUIRE_OK(tape_new(&t, "ab\0../../etc"));
    EXPECT(tc_streq(tape_id(t), "ab"), "tape_new(\"ab\\0...\"): id expected \"ab\", got \"%s\"",
           tc_s(tape_id(t)));
    REQUIRE_OK(tape_store_save(s, t));
    ex = -1;
    EXPECT_OK(tape_store_exists(&ex, s, "ab\0zz"));
    EXPECT(ex == 1, "exists(\"ab\\0zz\"): expected 1 (the id \"ab\"), got %d", ex);
    EXPECT_OK(tape_store_delete(s, "ab\0/"));

    /* Nothing rejected was stored. */
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    EXPECT(tape_result_count(r) == 0, "listing after the id checks: expected no tapes, got %zu (first %s)",
           tape_result_count(r), tc_s(tape_entry_id(tape_result_at(r, 0))));
out:
    tape_result_free(r);
    tape_frame_iter_free(it);
    tape_free(got);
    tape_free(t);
    free(long_id);
    free(id129);
    free(id128);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* The query corpus                                                    */
/* ------------------------------------------------------------------ */

#define QC_N 60
#define QC_BASE INT64_C(1754000000000) /* created_at of the earliest corpus tape */

static const char *const qc_names[10] = { "Alpha deploy", "beta DEPLOY run", "gamma",
                                          "Delta rollback", "epsilon", "zeta deploy-check",
                                          "Éclair", NULL, "alpha", "omega 🎉" };
static const char *const qc_sessions[4] = { "sess-A", "sess-B", "sess-C", NULL };
static const char *const qc_tag_names[5] = { "prod", "staging", "dev", "failed", "tools" };
static const char *const qc_methods[4] = { "tools/call", "resources/read", "prompts/get", "ping" };

/* What corpus tape i is made of; hand-written expectations read this. */
typedef struct qc_spec {
    char id[32];
    int i;
    const char *name;
    const char *session;
    unsigned int tags;          /* bit k: qc_tag_names[k] */
    int status;
    int64_t created;
    int64_t updated;            /* TAPE_TIME_NONE for some */
    unsigned int frames;
    int64_t step;               /* ts of frame j is j * step */
} qc_spec;

static void qc_spec_make(qc_spec *p, int i)
{
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "q-%02d", i);
    p->i = i;
    p->name = qc_names[(i * 3) % 10];
    p->session = qc_sessions[i % 4];
    p->tags = (unsigned int)((i * 11 + 3) % 32);
    p->status = i % 3 == 0 ? TAPE_STATUS_RECORDING : TAPE_STATUS_FINALIZED;
    /* 25 distinct times over 60 tapes, not in id order: ties exercise
     * the id tie-break. */
    p->created = QC_BASE + ((i * 17) % 25) * 60000;
    p->updated = i % 5 == 0 ? TAPE_TIME_NONE : p->created + ((i * 13) % 40) * 1000;
    p->frames = (unsigned int)((i * 7) % 11);
    p->step = (i % 4 + 1) * 10;
}

static int64_t qc_duration(const qc_spec *p)
{
    return p->frames ? (int64_t)(p->frames - 1) * p->step : 0;
}

/* Request frames carry "needle-<i%7>", sometimes " HayStack" and
 * " Grüße"; the first response of every 8th tape is an error. */
static int qc_build(tape **out, const qc_spec *p)
{
    tape *t = NULL;
    char msg[256];
    int rc;

    *out = NULL;
    if ((rc = tape_new(&t, p->id)) != TAPE_OK) {
        return rc;
    }
    if ((p->name && (rc = tape_set_name(t, p->name)) != TAPE_OK) ||
        (p->session && (rc = tape_set_session_id(t, p->session)) != TAPE_OK) ||
        (rc = tape_set_status(t, p->status)) != TAPE_OK ||
        (rc = tape_set_created_at(t, p->created)) != TAPE_OK ||
        (p->updated != TAPE_TIME_NONE && (rc = tape_set_updated_at(t, p->updated)) != TAPE_OK)) {
        tape_free(t);
        return rc;
    }
    for (int k = 0; k < 5; k++) {
        if ((p->tags & (1u << k)) && (rc = tape_add_tag(t, qc_tag_names[k])) != TAPE_OK) {
            tape_free(t);
            return rc;
        }
    }
    for (unsigned int j = 0; j < p->frames; j++) {
        if (j % 2 == 0) {
            snprintf(msg, sizeof msg,
                     "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"%s\",\"params\":{\"note\":"
                     "\"needle-%d%s%s\"}}",
                     j / 2, qc_methods[(p->i + (int)j) % 4], p->i % 7,
                     (p->i + (int)j) % 5 == 0 ? " HayStack" : "", p->i % 6 == 0 ? " Grüße" : "");
        } else if (p->i % 8 == 0 && j == 1) {
            snprintf(msg, sizeof msg,
                     "{\"jsonrpc\":\"2.0\",\"id\":%u,\"error\":{\"code\":-32601,\"message\":"
                     "\"Method not found\"}}",
                     j / 2);
        } else {
            snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":%u,\"result\":{\"ok\":true}}",
                     j / 2);
        }
        rc = tc_add_frame(NULL, t, j % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER,
                          (int64_t)j * p->step, msg, 0, NULL, NULL, NULL);
        if (rc != TAPE_OK) {
            tape_free(t);
            return rc;
        }
    }
    *out = t;
    return TAPE_OK;
}

/* The corpus as tapes (what the matcher sees) and entries (what the
 * comparator sees), saved into the store. */
typedef struct qc_corpus {
    qc_spec spec[QC_N + 16];
    tape *tapes[QC_N + 16];
    tape_entry *ents[QC_N + 16];
    size_t n;
} qc_corpus;

static int qc_corpus_add(tc_ctx *c, int line, qc_corpus *k, tape_store *s, const qc_spec *p)
{
    size_t n = k->n;
    int rc;
    k->spec[n] = *p;
    if ((rc = qc_build(&k->tapes[n], p)) != TAPE_OK) {
        tc_fail(c, line, "building corpus tape %s: %s", p->id, tape_strerror(rc));
        return rc;
    }
    if ((rc = tape_entry_from_tape(&k->ents[n], k->tapes[n])) != TAPE_OK) {
        tc_fail(c, line, "tape_entry_from_tape(%s): %s", p->id, tape_strerror(rc));
        tape_free(k->tapes[n]);
        k->tapes[n] = NULL;
        return rc;
    }
    k->n++;
    if ((rc = tape_store_save(s, k->tapes[n])) != TAPE_OK) {
        tc_fail(c, line, "tape_store_save(%s) returned %s, expected TAPE_OK", p->id,
                tape_strerror(rc));
        return rc;
    }
    return TAPE_OK;
}

static int qc_corpus_init(tc_ctx *c, int line, qc_corpus *k, tape_store *s)
{
    memset(k, 0, sizeof *k);
    for (int i = 0; i < QC_N; i++) {
        qc_spec p;
        qc_spec_make(&p, i);
        if (qc_corpus_add(c, line, k, s, &p) != TAPE_OK) {
            return -1;
        }
    }
    return 0;
}

static void qc_corpus_free(qc_corpus *k)
{
    for (size_t i = 0; i < k->n; i++) {
        tape_free(k->tapes[i]);
        tape_entry_free(k->ents[i]);
    }
    k->n = 0;
}

/* Insertion sort in q's order (small n; qsort has no context pointer). */
static void qc_sort(const tape_query *q, const tape_entry **v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const tape_entry *x = v[i];
        size_t j = i;
        while (j > 0 && tape_query_compare(q, v[j - 1], x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* What the matcher says q returns from the corpus, ordered, before the
 * limit: *out (malloc'ed, borrowed entries), count in *out_n. */
static int qc_expected(tc_ctx *c, int line, const char *json, const tape_query *q,
                       const qc_corpus *k, const tape_entry ***out, size_t *out_n)
{
    const tape_entry **v = malloc((k->n + 1) * sizeof *v);
    size_t m = 0;
    int has_text = tape_query_has(q, TAPE_Q_TEXT);
    int reported = 0;

    if (v == NULL) {
        tc_fail(c, line, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < k->n; i++) {
        int mt = tape_query_match_tape(q, k->tapes[i]);
        if (mt != 0 && mt != 1) {
            tc_fail(c, line, "query %s: tape_query_match_tape(%s) returned %d, expected 0 or 1",
                    json, k->spec[i].id, mt);
        }
        if (!has_text && !reported && tape_query_match_entry(q, k->ents[i]) != mt) {
            tc_fail(c, line,
                    "query %s: the matcher disagrees with itself on %s: match_tape %d, "
                    "match_entry %d (the query has no text term)",
                    json, k->spec[i].id, mt, tape_query_match_entry(q, k->ents[i]));
            reported = 1;
        }
        if (mt == 1) {
            v[m++] = k->ents[i];
        }
    }
    qc_sort(q, v, m);
    *out = v;
    *out_n = m;
    return 0;
}

static int qc_ids_equal(const tape_entry *const *a, size_t na, const tape_entry *const *b, size_t nb)
{
    if (na != nb) {
        return 0;
    }
    for (size_t i = 0; i < na; i++) {
        if (!tc_streq(tape_entry_id(a[i]), tape_entry_id(b[i]))) {
            return 0;
        }
    }
    return 1;
}

static void qc_fail_lists(tc_ctx *c, int line, const char *what, const char *json,
                          const tape_entry *const *want, size_t nw, const tape_entry *const *got,
                          size_t ng)
{
    const char **a = calloc(nw + 1, sizeof *a);
    const char **b = calloc(ng + 1, sizeof *b);
    char sa[600], sb[600];
    if (a == NULL || b == NULL) {
        tc_fail(c, line, "%s %s: wrong result (out of memory describing it)", what, json);
    } else {
        for (size_t i = 0; i < nw; i++) {
            a[i] = tape_entry_id(want[i]);
        }
        for (size_t i = 0; i < ng; i++) {
            b[i] = tape_entry_id(got[i]);
        }
        size_t k = 0;
        while (k < nw && k < ng && tc_streq(a[k], b[k])) {
            k++;
        }
        tc_ids_str(sa, sizeof sa, a, nw);
        tc_ids_str(sb, sizeof sb, b, ng);
        tc_fail(c, line, "%s %s: first difference at position %zu (expected %s, got %s); expected %s, got %s",
                what, json, k, k < nw ? tc_s(a[k]) : "the end", k < ng ? tc_s(b[k]) : "the end", sa, sb);
    }
    free(a);
    free(b);
}

/* The page a store returns as a borrowed array (valid while r lives). */
static const tape_entry **qc_page(const tape_result *r, size_t *n)
{
    size_t cnt = tape_result_count(r);
    const tape_entry **v = malloc((cnt + 1) * sizeof *v);
    if (v == NULL) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < cnt; i++) {
        v[i] = tape_result_at(r, i);
    }
    *n = cnt;
    return v;
}

/* Run one query against the store and the matcher; with `hand`, also
 * compare the matcher with a list computed without it. */
static void qc_check(tc_ctx *c, int line, tape_store *s, const qc_corpus *k, const char *json,
                     const char *const *hand, size_t nhand)
{
    tape_query *q = NULL, *q2 = NULL;
    tape_result *r = NULL, *r2 = NULL;
    const tape_entry **exp = NULL, **got = NULL;
    size_t nexp = 0, total = 0, ngot = 0;
    int rc;

    rc = tape_query_parse(&q, json);
    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_query_parse(%s) returned %s, expected TAPE_OK", json,
                tape_strerror(rc));
        goto done;
    }
    if (qc_expected(c, line, json, q, k, &exp, &total) != 0) {
        goto done;
    }
    nexp = total;
    if (tape_query_has(q, TAPE_Q_LIMIT) && (uint64_t)tape_query_int(q, TAPE_Q_LIMIT) < total) {
        nexp = (size_t)tape_query_int(q, TAPE_Q_LIMIT);
    }
    if (hand != NULL) {
        int same = nhand == nexp;
        for (size_t i = 0; same && i < nexp; i++) {
            same = tc_streq(hand[i], tape_entry_id(exp[i]));
        }
        if (!same) {
            const char **ids = calloc(nexp + 1, sizeof *ids);
            char sa[600], sb[600];
            if (ids == NULL) {
                tc_fail(c, line, "matcher on %s disagrees with the hand-written list", json);
            } else {
                for (size_t i = 0; i < nexp; i++) {
                    ids[i] = tape_entry_id(exp[i]);
                }
                tc_ids_str(sa, sizeof sa, hand, nhand);
                tc_ids_str(sb, sizeof sb, ids, nexp);
                tc_fail(c, line, "matcher on %s: expected (hand-written) %s, the matcher gives %s",
                        json, sa, sb);
            }
            free(ids);
        }
    }
    rc = tape_store_query(&r, s, q);
    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_store_query(%s) returned %s, expected TAPE_OK", json,
                tape_strerror(rc));
        goto done;
    }
    got = qc_page(r, &ngot);
    if (got == NULL) {
        tc_fail(c, line, "out of memory");
        goto done;
    }
    if (!qc_ids_equal(exp, nexp, got, ngot)) {
        qc_fail_lists(c, line, "tape_store_query", json, exp, nexp, got, ngot);
    }
    /* The next-page cursor: present when the limit cut the list; absent
     * without a limit; if present at the very end, it leads nowhere. */
    if (total > nexp && tape_result_next_cursor(r) == NULL) {
        tc_fail(c, line, "query %s: %zu of %zu matches returned but no next cursor", json, nexp,
                total);
    }
    if (!tape_query_has(q, TAPE_Q_LIMIT) && tape_result_next_cursor(r) != NULL) {
        tc_fail(c, line, "query %s has no limit: expected no next cursor, got \"%s\"", json,
                tape_result_next_cursor(r));
    }
    if (total == nexp && tape_result_next_cursor(r) != NULL) {
        rc = tape_query_with_cursor(&q2, q, tape_result_next_cursor(r));
        if (rc == TAPE_OK) {
            rc = tape_store_query(&r2, s, q2);
        }
        if (rc != TAPE_OK || tape_result_count(r2) != 0) {
            tc_fail(c, line,
                    "query %s: the last page has a next cursor; following it gave %s with %zu "
                    "entries, expected TAPE_OK with none",
                    json, tape_strerror(rc), r2 ? tape_result_count(r2) : (size_t)0);
        }
    }
done:
    free(exp);
    free(got);
    tape_result_free(r);
    tape_result_free(r2);
    tape_query_free(q);
    tape_query_free(q2);
}

/* ------------------------------------------------------------------ */
/* Case: every query key against the matcher                           */
/* ------------------------------------------------------------------ */

static const char *const qc_queries[] = {
    "{}",
    "{\"session_id\":\"sess-A\"}",
    "{\"session_id\":\"nope\"}",
    "{\"name_contains\":\"deploy\"}",
    "{\"name_contains\":\"DEPLOY\"}",
    "{\"name_contains\":\"🎉\"}",
    "{\"name_contains\":\"Éclair\"}",
    "{\"tags_any\":[\"prod\"]}",
    "{\"tags_any\":[\"dev\",\"failed\"]}",
    "{\"tags_any\":[\"nope\"]}",
    "{\"tags_all\":[\"prod\",\"tools\"]}",
    "{\"tags_all\":[\"staging\"],\"tags_any\":[\"dev\",\"failed\"]}",
    "{\"status\":\"recording\"}",
    "{\"status\":\"finalized\"}",
    "{\"created_after\":1754000600000}",
    "{\"created_before\":1754000600000}",
    "{\"created_after\":1754000600000,\"created_before\":1754001200000}",
    "{\"created_after\":1754000600000,\"created_before\":1754000600001}",
    "{\"min_duration_ms\":40}",
    "{\"max_duration_ms\":40}",
    "{\"min_duration_ms\":30,\"max_duration_ms\":90}",
    "{\"min_frames\":5}",
    "{\"max_frames\":0}",
    "{\"min_frames\":3,\"max_frames\":5}",
    "{\"text\":\"needle-3\"}",
    "{\"text\":\"HAYSTACK\"}",
    "{\"text\":\"tools/CALL\"}",
    "{\"text\":\"Grüße\"}",
    "{\"text\":\"Method not found\"}",
    "{\"text\":\"zzz-nowhere\"}",
    "{\"limit\":1}",
    "{\"limit\":5}",
    "{\"limit\":60}",
    "{\"limit\":1000}",
    "{\"session_id\":\"sess-B\",\"status\":\"finalized\",\"min_frames\":2}",
    "{\"tags_any\":[\"prod\",\"dev\"],\"text\":\"needle-2\",\"order_by\":\"duration_ms\","
    "\"descending\":true,\"limit\":3}",
    "{\"name_contains\":\"a\",\"created_after\":1754000300000,\"created_before\":1754001300000,"
    "\"max_duration_ms\":50}",
    "{\"min_duration_ms\":30,\"max_duration_ms\":90,\"min_frames\":3,\"max_frames\":8,"
    "\"order_by\":\"frame_count\"}",
    "{\"session_id\":\"sess-C\",\"name_contains\":\"ALPHA\",\"tags_any\":[\"prod\",\"staging\","
    "\"dev\"],\"tags_all\":[\"tools\"],\"status\":\"finalized\",\"created_after\":1753999999999,"
    "\"created_before\":1754009999999,\"min_duration_ms\":0,\"max_duration_ms\":1000,"
    "\"min_frames\":0,\"max_frames\":100,\"text\":\"needle\",\"order_by\":\"name\","
    "\"descending\":true,\"limit\":50}",
    "{\"tags_any\":[\"staging\",\"tools\"],\"text\":\"needle\",\"limit\":4}",
};

static const char *const qc_orders[] = { "created_at", "updated_at", "name",
                                         "duration_ms", "frame_count", "id" };

/* Hand-written predicates over the corpus spec (no library involved). */
static int qh_sess_a(const qc_spec *p) { return p->session && strcmp(p->session, "sess-A") == 0; }
static int qh_deploy(const qc_spec *p) { return tc_contains_nocase(p->name, "deploy"); }
static int qh_prod_tools(const qc_spec *p) { return (p->tags & 1u) && (p->tags & 16u); }
static int qh_dev_or_failed(const qc_spec *p) { return (p->tags & (4u | 8u)) != 0; }
static int qh_recording(const qc_spec *p) { return p->status == TAPE_STATUS_RECORDING; }
static int qh_created_window(const qc_spec *p)
{
    return p->created > QC_BASE + 600000 && p->created < QC_BASE + 1200000;
}
static int qh_frames_3_5(const qc_spec *p) { return p->frames >= 3 && p->frames <= 5; }
static int qh_duration_40_90(const qc_spec *p)
{
    return qc_duration(p) >= 40 && qc_duration(p) <= 90;
}
static int qh_needle_3(const qc_spec *p) { return p->frames > 0 && p->i % 7 == 3; }
static int qh_haystack(const qc_spec *p)
{
    for (unsigned int j = 0; j < p->frames; j += 2) {
        if ((p->i + (int)j) % 5 == 0) {
            return 1;
        }
    }
    return 0;
}
static int qh_all(const qc_spec *p) { (void)p; return 1; }
static int qh_sess_b_framed(const qc_spec *p)
{
    return p->session && strcmp(p->session, "sess-B") == 0 && p->frames >= 1;
}

typedef struct qc_hand_case {
    const char *json;
    int (*pred)(const qc_spec *p);
    int id_desc;                /* order: id descending (else created_at, then id) */
    size_t limit;               /* 0: none */
} qc_hand_case;

static const qc_hand_case qc_hand[] = {
    { "{\"session_id\":\"sess-A\"}", qh_sess_a, 0, 0 },
    { "{\"name_contains\":\"DePlOy\"}", qh_deploy, 0, 0 },
    { "{\"tags_all\":[\"prod\",\"tools\"]}", qh_prod_tools, 0, 0 },
    { "{\"tags_any\":[\"dev\",\"failed\"]}", qh_dev_or_failed, 0, 0 },
    { "{\"status\":\"recording\"}", qh_recording, 0, 0 },
    /* QC_BASE + 10 and + 20 minutes, both exclusive */
    { "{\"created_after\":1754000600000,\"created_before\":1754001200000}", qh_created_window, 0, 0 },
    { "{\"min_frames\":3,\"max_frames\":5}", qh_frames_3_5, 0, 0 },
    { "{\"min_duration_ms\":40,\"max_duration_ms\":90}", qh_duration_40_90, 0, 0 },
    { "{\"text\":\"needle-3\"}", qh_needle_3, 0, 0 },
    { "{\"text\":\"HAYSTACK\"}", qh_haystack, 0, 0 },
    { "{\"order_by\":\"id\",\"descending\":true}", qh_all, 1, 0 },
    { "{\"session_id\":\"sess-B\",\"min_frames\":1,\"limit\":4}", qh_sess_b_framed, 0, 4 },
};

/* Order indexes into the spec by created_at then id, or by id descending. */
static void qh_sort(int *idx, size_t n, const qc_spec *spec, int id_desc)
{
    for (size_t i = 1; i < n; i++) {
        int x = idx[i];
        size_t j = i;
        while (j > 0) {
            const qc_spec *a = &spec[idx[j - 1]], *b = &spec[x];
            int cmp;
            if (id_desc) {
                cmp = -strcmp(a->id, b->id);
            } else if (a->created != b->created) {
                cmp = a->created < b->created ? -1 : 1;
            } else {
                cmp = strcmp(a->id, b->id);
            }
            if (cmp <= 0) {
                break;
            }
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = x;
    }
}

static void case_query_matcher(tc_ctx *c)
{
    tape_store *s = NULL;
    qc_corpus *k = calloc(1, sizeof *k);
    tape_result *r = NULL;
    char json[256];

    REQUIRE(k != NULL, "out of memory");
    TC_OPEN(&s);
    if (qc_corpus_init(c, __LINE__, k, s) != 0) {
        goto out;
    }

    /* The listing describes every corpus tape. */
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    EXPECT(tape_result_count(r) == QC_N, "listing: expected %d tapes, got %zu", QC_N,
           tape_result_count(r));
    for (size_t i = 0; i < k->n && c->failures < 8; i++) {
        tc_cmp_entry(c, __LINE__, "listing", k->tapes[i], tc_result_find(r, k->spec[i].id));
    }

    for (size_t i = 0; i < sizeof qc_queries / sizeof qc_queries[0]; i++) {
        qc_check(c, __LINE__, s, k, qc_queries[i], NULL, 0);
    }
    for (size_t o = 0; o < sizeof qc_orders / sizeof qc_orders[0]; o++) {
        for (int desc = 0; desc < 2; desc++) {
            const char *d = desc ? "true" : "false";
            snprintf(json, sizeof json, "{\"order_by\":\"%s\",\"descending\":%s}", qc_orders[o], d);
            qc_check(c, __LINE__, s, k, json, NULL, 0);
            snprintf(json, sizeof json, "{\"order_by\":\"%s\",\"descending\":%s,\"limit\":5}",
                     qc_orders[o], d);
            qc_check(c, __LINE__, s, k, json, NULL, 0);
            snprintf(json, sizeof json,
                     "{\"tags_any\":[\"prod\"],\"order_by\":\"%s\",\"descending\":%s,\"limit\":9}",
                     qc_orders[o], d);
            qc_check(c, __LINE__, s, k, json, NULL, 0);
        }
    }

    /* Hand-written expectations check the matcher itself. */
    for (size_t h = 0; h < sizeof qc_hand / sizeof qc_hand[0]; h++) {
        int idx[QC_N];
        const char *ids[QC_N];
        size_t n = 0;
        for (int i = 0; i < QC_N; i++) {
            if (qc_hand[h].pred(&k->spec[i])) {
                idx[n++] = i;
            }
        }
        qh_sort(idx, n, k->spec, qc_hand[h].id_desc);
        if (qc_hand[h].limit && n > qc_hand[h].limit) {
            n = qc_hand[h].limit;
        }
        for (size_t i = 0; i < n; i++) {
            ids[i] = k->spec[idx[i]].id;
        }
        qc_check(c, __LINE__, s, k, qc_hand[h].json, ids, n);
    }
out:
    tape_result_free(r);
    if (k != NULL) {
        qc_corpus_free(k);
        free(k);
    }
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: cursor paging                                                 */
/* ------------------------------------------------------------------ */

#define QC_PAGE 7
#define QC_MAX_PAGES 200

/* Called between pages with the last entry seen and the page number. */
typedef int (*qc_between_fn)(tc_ctx *c, tape_store *s, size_t page, const tape_entry *last,
                             void *ud);

/* Page through q (which has limit QC_PAGE) collecting entry references. */
static int qc_page_through(tc_ctx *c, int line, tape_store *s, const char *json,
                           const tape_query *q, tape_entry ***out, size_t *out_n,
                           qc_between_fn between, void *ud)
{
    tape_query *cur = NULL;
    tape_result *r = NULL;
    tape_entry **all = NULL;
    size_t n = 0, cap = 0;
    int ret = -1;

    for (size_t page = 1;; page++) {
        const char *next;
        size_t cnt;
        tape_query *nq = NULL;
        int rc = tape_store_query(&r, s, cur ? cur : q);
        if (rc != TAPE_OK) {
            tc_fail(c, line, "paging %s: page %zu: tape_store_query returned %s, expected TAPE_OK",
                    json, page, tape_strerror(rc));
            goto done;
        }
        cnt = tape_result_count(r);
        next = tape_result_next_cursor(r);
        if (cnt > QC_PAGE || (next != NULL && cnt != QC_PAGE)) {
            tc_fail(c, line, "paging %s: page %zu has %zu entries%s, expected %s%d", json, page,
                    cnt, next ? " and a next cursor" : "", next ? "" : "at most ", QC_PAGE);
        }
        if (n + cnt > cap) {
            size_t ncap = (n + cnt) * 2 + 16;
            tape_entry **nv = realloc(all, ncap * sizeof *nv);
            if (nv == NULL) {
                tc_fail(c, line, "out of memory");
                goto done;
            }
            all = nv;
            cap = ncap;
        }
        for (size_t i = 0; i < cnt; i++) {
            /* Results hand out const entries; a reference keeps one. */
            all[n++] = tape_entry_ref(tape_result_at(r, i));
        }
        if (next == NULL) {
            break;
        }
        if (page >= QC_MAX_PAGES) {
            tc_fail(c, line, "paging %s: still a next cursor after %d pages", json, QC_MAX_PAGES);
            goto done;
        }
        if (between && cnt > 0 && between(c, s, page, all[n - 1], ud) != 0) {
            goto done;
        }
        rc = tape_query_with_cursor(&nq, q, next);
        if (rc != TAPE_OK) {
            tc_fail(c, line, "paging %s: tape_query_with_cursor(\"%s\") returned %s", json, next,
                    tape_strerror(rc));
            goto done;
        }
        tape_query_free(cur);
        cur = nq;
        tape_result_free(r);
        r = NULL;
    }
    ret = 0;
done:
    tape_result_free(r);
    tape_query_free(cur);
    if (ret != 0) {
        for (size_t i = 0; i < n; i++) {
            tape_entry_free(all[i]);
        }
        free(all);
        all = NULL;
        n = 0;
    }
    *out = all;
    *out_n = n;
    return ret;
}

static void qc_free_entries(tape_entry **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        tape_entry_free(v[i]);
    }
    free(v);
}

/* Inserts tapes between pages: some sort before the cursor, some after. */
typedef struct qc_inserter {
    qc_corpus *k;
    int done1, done3;
} qc_inserter;

static int qc_insert_between(tc_ctx *c, tape_store *s, size_t page, const tape_entry *last,
                             void *ud)
{
    qc_inserter *ins = ud;
    qc_spec p;
    int64_t at = tape_entry_created_at(last);

    if (page == 1 && !ins->done1) {
        ins->done1 = 1;
        qc_spec_make(&p, 1);
        snprintf(p.id, sizeof p.id, "ins-before-1");
        p.created = QC_BASE - 60000;            /* before everything */
        if (qc_corpus_add(c, __LINE__, ins->k, s, &p) != 0) {
            return -1;
        }
        qc_spec_make(&p, 2);
        snprintf(p.id, sizeof p.id, "a-ins-tie");   /* same time, smaller id: before */
        p.created = at;
        if (qc_corpus_add(c, __LINE__, ins->k, s, &p) != 0) {
            return -1;
        }
        qc_spec_make(&p, 3);
        snprintf(p.id, sizeof p.id, "ins-after-1");
        p.created = QC_BASE + 100 * 60000;      /* after everything */
        if (qc_corpus_add(c, __LINE__, ins->k, s, &p) != 0) {
            return -1;
        }
    } else if (page == 3 && !ins->done3) {
        ins->done3 = 1;
        qc_spec_make(&p, 4);
        snprintf(p.id, sizeof p.id, "ins-before-2");
        p.created = QC_BASE - 120000;
        if (qc_corpus_add(c, __LINE__, ins->k, s, &p) != 0) {
            return -1;
        }
        qc_spec_make(&p, 5);
        snprintf(p.id, sizeof p.id, "zz-ins-tie");  /* same time, larger id: after */
        p.created = at;
        if (qc_corpus_add(c, __LINE__, ins->k, s, &p) != 0) {
            return -1;
        }
        qc_spec_make(&p, 6);
        snprintf(p.id, sizeof p.id, "ins-mid");
        p.created = QC_BASE + 12 * 60000 + 1;
        if (qc_corpus_add(c, __LINE__, ins->k, s, &p) != 0) {
            return -1;
        }
    }
    return 0;
}

static const char *const qc_paged[] = {
    "{\"order_by\":\"created_at\",\"limit\":7}",
    "{\"order_by\":\"created_at\",\"descending\":true,\"limit\":7}",
    "{\"order_by\":\"updated_at\",\"limit\":7}",
    "{\"order_by\":\"name\",\"descending\":true,\"limit\":7}",
    "{\"order_by\":\"name\",\"limit\":7}",
    "{\"order_by\":\"duration_ms\",\"limit\":7}",
    "{\"order_by\":\"frame_count\",\"descending\":true,\"limit\":7}",
    "{\"order_by\":\"id\",\"descending\":true,\"limit\":7}",
    "{\"tags_any\":[\"prod\"],\"order_by\":\"created_at\",\"descending\":true,\"limit\":7}",
    "{\"text\":\"needle\",\"order_by\":\"duration_ms\",\"limit\":7}",
};

static void case_query_paging(tc_ctx *c)
{
    tape_store *s = NULL;
    qc_corpus *k = calloc(1, sizeof *k);
    tape_query *q = NULL, *qc = NULL;
    tape_result *r = NULL;
    tape_entry **all = NULL;
    const tape_entry **exp = NULL;
    size_t nall = 0, nexp = 0;
    char *cursor = NULL;
    qc_inserter ins = { NULL, 0, 0 };
    const char *json;

    REQUIRE(k != NULL, "out of memory");
    TC_OPEN(&s);
    if (qc_corpus_init(c, __LINE__, k, s) != 0) {
        goto out;
    }

    /* Paging through equals the whole ordered list. */
    for (size_t i = 0; i < sizeof qc_paged / sizeof qc_paged[0]; i++) {
        json = qc_paged[i];
        REQUIRE_OK(tape_query_parse(&q, json));
        if (qc_expected(c, __LINE__, json, q, k, &exp, &nexp) == 0 &&
            qc_page_through(c, __LINE__, s, json, q, &all, &nall, NULL, NULL) == 0 &&
            !qc_ids_equal(exp, nexp, (const tape_entry *const *)all, nall)) {
            qc_fail_lists(c, __LINE__, "pages of", json, exp, nexp,
                          (const tape_entry *const *)all, nall);
        }
        qc_free_entries(all, nall);
        all = NULL;
        free(exp);
        exp = NULL;
        tape_query_free(q);
        q = NULL;
    }

    /* Cursors are interchangeable: one made by the core's
     * tape_query_cursor_after resumes a store's listing. */
    json = "{\"order_by\":\"duration_ms\",\"descending\":true,\"limit\":7}";
    REQUIRE_OK(tape_query_parse(&q, json));
    if (qc_expected(c, __LINE__, json, q, k, &exp, &nexp) == 0 && nexp > 17) {
        const tape_entry **got = NULL;
        size_t ngot = 0;
        REQUIRE_OK(tape_query_cursor_after(&cursor, q, exp[9]));
        REQUIRE_OK(tape_query_with_cursor(&qc, q, cursor));
        REQUIRE_OK(tape_store_query(&r, s, qc));
        got = qc_page(r, &ngot);
        if (got != NULL && !qc_ids_equal(exp + 10, 7, got, ngot)) {
            qc_fail_lists(c, __LINE__, "page after tape_query_cursor_after(10th entry) of", json,
                          exp + 10, 7, got, ngot);
        }
        free(got);
    }
    free(exp);
    exp = NULL;
    tape_query_free(q);
    q = NULL;

    /* Tapes added between pages: none of those present at the start is
     * skipped or repeated, and the order holds. */
    json = "{\"order_by\":\"created_at\",\"limit\":7}";
    REQUIRE_OK(tape_query_parse(&q, json));
    ins.k = k;
    if (qc_page_through(c, __LINE__, s, json, q, &all, &nall, qc_insert_between, &ins) == 0) {
        REQUIRE(ins.done1 && ins.done3, "paging %s ended before the insertions (%zu entries)", json,
                nall);
        for (int i = 0; i < QC_N; i++) {
            int seen = 0;
            for (size_t j = 0; j < nall; j++) {
                seen += tc_streq(tape_entry_id(all[j]), k->spec[i].id);
            }
            EXPECT(seen == 1,
                   "paging %s with insertions between pages: %s (present from the start) was "
                   "returned %d times, expected once",
                   json, k->spec[i].id, seen);
        }
        for (size_t j = 0; j < nall; j++) {
            for (size_t l = j + 1; l < nall; l++) {
                EXPECT(!tc_streq(tape_entry_id(all[j]), tape_entry_id(all[l])),
                       "paging %s with insertions: %s returned twice (positions %zu and %zu)", json,
                       tape_entry_id(all[j]), j, l);
            }
            if (j > 0) {
                EXPECT(tape_query_compare(q, all[j - 1], all[j]) < 0,
                       "paging %s with insertions: %s came after %s, against the order", json,
                       tape_entry_id(all[j]), tape_entry_id(all[j - 1]));
            }
        }
    }
out:
    qc_free_entries(all, nall);
    free(exp);
    tape_string_free(cursor);
    tape_result_free(r);
    tape_query_free(q);
    tape_query_free(qc);
    if (k != NULL) {
        qc_corpus_free(k);
        free(k);
    }
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: invalid queries                                               */
/* ------------------------------------------------------------------ */

static void case_invalid_queries(tc_ctx *c)
{
    static const struct {
        const char *json;
        const char *names;      /* the message must contain this */
    } bad[] = {
        { "{\"bogus_key\":1}", "bogus_key" },
        { "{\"session_id\":\"a\",\"colour\":\"red\"}", "colour" },
        { "{\"session_id\":5}", "session_id" },
        { "{\"name_contains\":true}", "name_contains" },
        { "{\"tags_any\":\"prod\"}", "tags_any" },
        { "{\"tags_all\":[1,2]}", "tags_all" },
        { "{\"status\":\"paused\"}", "status" },
        { "{\"status\":[]}", "status" },
        { "{\"created_after\":\"yesterday\"}", "created_after" },
        { "{\"created_before\":{}}", "created_before" },
        { "{\"min_duration_ms\":\"10\"}", "min_duration_ms" },
        { "{\"max_duration_ms\":[1]}", "max_duration_ms" },
        { "{\"min_frames\":\"3\"}", "min_frames" },
        { "{\"max_frames\":false}", "max_frames" },
        { "{\"text\":[\"a\"]}", "text" },
        { "{\"order_by\":\"colour\"}", "order_by" },
        { "{\"order_by\":3}", "order_by" },
        { "{\"descending\":\"yes\"}", "descending" },
        { "{\"limit\":\"ten\"}", "limit" },
        { "{\"limit\":-5}", "limit" },
        { "{\"limit\":2.5}", "limit" },
        { "{\"cursor\":7}", "cursor" },
    };
    static const char *const malformed[] = { "{", "[1,2]", "\"text\"", "{\"limit\":}", "nul" };
    tape_store *s = NULL;
    tape_query *q = NULL, *qc = NULL;
    tape_result *r = NULL;
    tape *t = NULL;
    int rc;

    TC_OPEN(&s);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = tape_query_parse(&q, bad[i].json);
        EXPECT(rc == TAPE_EQUERY, "tape_query_parse(%s) returned %s, expected TAPE_EQUERY",
               bad[i].json, tape_strerror(rc));
        if (rc != TAPE_OK) {
            /* The key itself, quoted: a bare "text" or "limit" could be
             * any word of a generic message. */
            char dq[64], sq[64];
            snprintf(dq, sizeof dq, "\"%s\"", bad[i].names);
            snprintf(sq, sizeof sq, "'%s'", bad[i].names);
            EXPECT(tc_errmsg_has(dq) || tc_errmsg_has(sq),
                   "tape_query_parse(%s): message should name the key %s, got '%s'", bad[i].json,
                   dq, tape_errmsg());
        }
        tape_query_free(q);
        q = NULL;
    }
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        rc = tape_query_parse(&q, malformed[i]);
        EXPECT(rc == TAPE_EQUERY, "tape_query_parse(%s) returned %s, expected TAPE_EQUERY",
               malformed[i], tape_strerror(rc));
        tape_query_free(q);
        q = NULL;
    }

    /* A forged cursor is refused (by the parser or the store), not
     * silently treated as "first page". */
    REQUIRE_OK(tape_new(&t, "inv-q"));
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_query_parse(&q, "{\"limit\":5}"));
    rc = tape_query_with_cursor(&qc, q, "not a cursor!!");
    if (rc == TAPE_OK) {
        rc = tape_store_query(&r, s, qc);
    }
    EXPECT(rc == TAPE_EQUERY,
           "a forged cursor \"not a cursor!!\": expected TAPE_EQUERY from tape_query_with_cursor "
           "or tape_store_query, got %s",
           tape_strerror(rc));
    tape_result_free(r);
    r = NULL;
    tape_query_free(qc);
    qc = NULL;
    tape_query_free(q);
    q = NULL;
    rc = tape_query_parse(&q, "{\"cursor\":\"not a cursor!!\"}");
    if (rc == TAPE_OK) {
        rc = tape_store_query(&r, s, q);
    }
    EXPECT(rc == TAPE_EQUERY,
           "query {\"cursor\":\"not a cursor!!\"}: expected TAPE_EQUERY from tape_query_parse or "
           "tape_store_query, got %s",
           tape_strerror(rc));
out:
    tape_result_free(r);
    tape_query_free(q);
    tape_query_free(qc);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: streaming writer                                              */
/* ------------------------------------------------------------------ */

#define TC_WFRAMES 1000u

/* Frame i of a recorded session: even = request, odd = its response;
 * every 100th response is an error. */
static void tc_writer_msg(char *buf, size_t size, unsigned int i)
{
    if (i % 2 == 0) {
        snprintf(buf, size,
                 "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"echo\",\"arguments\":{\"n\":%u}}}",
                 i / 2, i);
    } else if ((i / 2) % 100 == 0) {
        snprintf(buf, size,
                 "{\"jsonrpc\":\"2.0\",\"id\":%u,\"error\":{\"code\":-32000,\"message\":\"boom %u\"}}",
                 i / 2, i);
    } else {
        snprintf(buf, size, "{\"jsonrpc\":\"2.0\",\"id\":%u,\"result\":{\"n\":%u}}", i / 2, i);
    }
}

static int tc_writer_append(uint64_t *out_seq, tape_writer *w, unsigned int i)
{
    char msg[200], corr[32];
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    tc_writer_msg(msg, sizeof msg, i);
    snprintf(corr, sizeof corr, "c%u", i / 2);
    d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = i;
    d.message = msg;
    d.correlation_id = corr;
    return tape_writer_append(out_seq, w, &d);
}

/* Check frames [from, to) of a loaded tape against tc_writer_msg. */
static int tc_check_writer_frames(tc_ctx *c, int line, const char *what, const tape *t,
                                  unsigned int from, unsigned int to)
{
    char msg[200], corr[32];
    for (unsigned int i = from; i < to; i++) {
        const tape_frame *f = tape_frame_at(t, i);
        size_t len = 0;
        const char *m = f ? tape_frame_message(f, &len) : NULL;
        int dir = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        tc_writer_msg(msg, sizeof msg, i);
        snprintf(corr, sizeof corr, "c%u", i / 2);
        if (f == NULL || tape_frame_seq(f) != i || tape_frame_ts(f) != (int64_t)i ||
            tape_frame_direction(f) != dir || m == NULL || len != strlen(msg) ||
            memcmp(m, msg, len) != 0 || !tc_streq(tape_frame_correlation_id(f), corr) ||
            tape_frame_is_error(f) != (i % 2 == 1 && (i / 2) % 100 == 0)) {
            tc_fail(c, line,
                    "%s: frame %u: expected seq %u, ts %u, dir %d, corr %s, message '%s'; got seq "
                    "%" PRIu64 ", ts %" PRId64 ", dir %d, corr %s, message '%.200s'",
                    what, i, i, i, dir, corr, msg, f ? tape_frame_seq(f) : 0,
                    f ? tape_frame_ts(f) : 0, f ? tape_frame_direction(f) : 0,
                    tc_s(f ? tape_frame_correlation_id(f) : NULL), tc_s(m));
            return 1;
        }
    }
    return 0;
}

static void case_writer(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *h = NULL, *got = NULL;
    tape_writer *w = NULL;
    tape_result *r = NULL;
    tape_frame_iter *it = NULL;
    tape_stats st = TAPE_STATS_INIT;
    const tape_frame *f = NULL;
    int ex = -1, rc, n = 0;
    int native_writer;

    TC_OPEN(&s);
    native_writer = (c->native & TAPE_CAP_WRITER) != 0;
    REQUIRE_OK(tape_new(&h, "writer-1"));
    REQUIRE_OK(tape_set_name(h, "Live session ✓"));
    REQUIRE_OK(tape_set_session_id(h, "sess-live"));
    REQUIRE_OK(tape_set_protocol_version(h, "2025-06-18"));
    REQUIRE_OK(tape_add_tag(h, "live"));
    REQUIRE_OK(tape_add_tag(h, "prod"));
    REQUIRE_OK(tape_set_transport_json(h, "{\"type\":\"stdio\",\"command\":\"server\"}"));
    REQUIRE_OK(tape_set_created_at(h, INT64_C(1754500000000)));

    REQUIRE_OK(tape_store_record(&w, s, h));
    EXPECT(tc_streq(tape_writer_id(w), "writer-1"), "tape_writer_id: expected writer-1, got %s",
           tc_s(tape_writer_id(w)));

    /* Visible at once, with status recording. */
    REQUIRE_OK(tape_store_exists(&ex, s, "writer-1"));
    EXPECT(ex == 1, "exists right after tape_store_record: expected 1, got %d", ex);
    REQUIRE_OK(tape_store_load(&got, s, "writer-1"));
    EXPECT(tape_status(got) == TAPE_STATUS_RECORDING,
           "status right after tape_store_record: expected recording (%d), got %d",
           TAPE_STATUS_RECORDING, tape_status(got));
    EXPECT(tc_streq(tape_name(got), "Live session ✓") && tape_frame_count(got) == 0,
           "right after tape_store_record: expected name 'Live session ✓' and 0 frames, got %s and "
           "%zu frames",
           tc_s(tape_name(got)), tape_frame_count(got));
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    EXPECT(tape_result_count(r) == 1 &&
               tape_entry_status(tape_result_at(r, 0)) == TAPE_STATUS_RECORDING,
           "listing while recording: expected 1 entry with status recording, got %zu (status %d)",
           tape_result_count(r), tape_entry_status(tape_result_at(r, 0)));
    tape_result_free(r);
    r = NULL;

    for (unsigned int i = 0; i < TC_WFRAMES; i++) {
        uint64_t seq = UINT64_MAX;
        if (i == TC_WFRAMES / 2) {
            /* Halfway: still recording; a native writer shows its frames. */
            REQUIRE_OK(tape_store_load(&got, s, "writer-1"));
            EXPECT(tape_status(got) == TAPE_STATUS_RECORDING,
                   "status while recording: expected recording (%d), got %d",
                   TAPE_STATUS_RECORDING, tape_status(got));
            if (native_writer) {
                EXPECT(tape_frame_count(got) == i,
                       "native writer: frames visible while recording: expected %u, got %zu", i,
                       tape_frame_count(got));
                if (tape_frame_count(got) == i) {
                    tc_check_writer_frames(c, __LINE__, "native writer, while recording", got, 0, i);
                }
            }
            tape_free(got);
            got = NULL;
        }
        REQUIRE_OK(tc_writer_append(&seq, w, i));
        REQUIRE(seq == i, "tape_writer_append: seq expected %u, got %" PRIu64, i, seq);
        if (i % 2 == 1) {
            char corr[32];
            snprintf(corr, sizeof corr, "c%u", i / 2);
            REQUIRE_OK(tape_writer_add_correlation(w, corr, i - 1, i, 1,
                                                   (i / 2) % 100 == 0 ? "error" : "ok"));
        }
    }
    REQUIRE_OK(tape_writer_finish(w));
    tape_writer_free(w);
    w = NULL;

    REQUIRE_OK(tape_store_load(&got, s, "writer-1"));
    EXPECT(tape_status(got) == TAPE_STATUS_FINALIZED,
           "status after finish: expected finalized (%d), got %d", TAPE_STATUS_FINALIZED,
           tape_status(got));
    EXPECT(tc_streq(tape_name(got), "Live session ✓") && tc_streq(tape_session_id(got), "sess-live") &&
               tc_streq(tape_protocol_version(got), "2025-06-18") &&
               tape_created_at(got) == INT64_C(1754500000000) && tape_tag_count(got) == 2 &&
               tc_streq(tape_tag_at(got, 0), "live") && tc_streq(tape_tag_at(got, 1), "prod") &&
               tc_streq(tape_transport_json(got), tape_transport_json(h)),
           "metadata after finish: expected the header's (name, session, protocol, created_at, "
           "tags live+prod, transport), got name %s, session %s, protocol %s, created %" PRId64
           ", %zu tags, transport %s",
           tc_s(tape_name(got)), tc_s(tape_session_id(got)), tc_s(tape_protocol_version(got)),
           tape_created_at(got), tape_tag_count(got), tc_s(tape_transport_json(got)));
    REQUIRE(tape_frame_count(got) == TC_WFRAMES, "frames after finish: expected %u, got %zu",
            TC_WFRAMES, tape_frame_count(got));
    tc_check_writer_frames(c, __LINE__, "after finish", got, 0, TC_WFRAMES);
    REQUIRE_OK(tape_get_stats(&st, got));
    EXPECT(st.frame_count == TC_WFRAMES && st.duration_ms == TC_WFRAMES - 1 &&
               st.last_sequence == TC_WFRAMES - 1 && st.client_to_server == TC_WFRAMES / 2 &&
               st.server_to_client == TC_WFRAMES / 2 && st.error_count == 5 &&
               st.correlation_count == TC_WFRAMES / 2,
           "stats after finish: expected frames %u, duration %u, last_seq %u, c2s %u, s2c %u, "
           "errors 5, correlations %u; got %" PRIu64 ", %" PRId64 ", %" PRIu64 ", %" PRIu64
           ", %" PRIu64 ", %" PRIu64 ", %" PRIu64,
           TC_WFRAMES, TC_WFRAMES - 1, TC_WFRAMES - 1, TC_WFRAMES / 2, TC_WFRAMES / 2,
           TC_WFRAMES / 2, st.frame_count, st.duration_ms, st.last_sequence, st.client_to_server,
           st.server_to_client, st.error_count, st.correlation_count);
    EXPECT(tape_correlation_count(got) == TC_WFRAMES / 2,
           "correlations after finish: expected %u, got %zu", TC_WFRAMES / 2,
           tape_correlation_count(got));
    {
        const char *cid = NULL, *cst = NULL;
        uint64_t rq = 0, rs = 0;
        int64_t rtt = 0;
        rc = tape_correlation_get(&cid, &rq, &rs, &rtt, &cst, got, 100);
        EXPECT(rc == TAPE_OK && tc_streq(cid, "c100") && rq == 200 && rs == 201 && rtt == 1 &&
                   tc_streq(cst, "error"),
               "correlation 100: expected (c100, 200, 201, 1, error), got %s (%s, %" PRIu64
               ", %" PRIu64 ", %" PRId64 ", %s)",
               tape_strerror(rc), tc_s(cid), rq, rs, rtt, tc_s(cst));
    }

    REQUIRE_OK(tape_store_query(&r, s, NULL));
    REQUIRE(tape_result_count(r) == 1, "listing after finish: expected 1 entry, got %zu",
            tape_result_count(r));
    tc_cmp_entry(c, __LINE__, "listing after finish", got, tape_result_at(r, 0));

    REQUIRE_OK(tape_store_read_frames(&it, s, "writer-1", 0, UINT64_MAX));
    while ((rc = tape_frame_iter_next(&f, it)) == TAPE_OK) {
        n++;
    }
    EXPECT(rc == TAPE_DONE && n == (int)TC_WFRAMES,
           "read_frames after finish: expected %u frames then TAPE_DONE, got %d then %s", TC_WFRAMES,
           n, tape_strerror(rc));
out:
    tape_frame_iter_free(it);
    tape_result_free(r);
    tape_writer_free(w);
    tape_free(got);
    tape_free(h);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: writer states                                                 */
/* ------------------------------------------------------------------ */

static void case_writer_states(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *h = NULL, *got = NULL;
    tape_writer *w = NULL, *w2 = NULL;
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    uint64_t seq = 0;
    int ex = -1;

    TC_OPEN(&s);

    /* Recording over a saved tape is refused and leaves it alone. */
    REQUIRE_OK(tape_new(&t, "taken"));
    REQUIRE_OK(tape_set_name(t, "saved before"));
    REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_CLIENT_TO_SERVER, 0, "{\"jsonrpc\":\"2.0\",\"id\":1}",
                            0, NULL, NULL, NULL));
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_new(&h, "taken"));
    EXPECT_RC(TAPE_EEXISTS, tape_store_record(&w, s, h));
    tape_writer_free(w);
    w = NULL;
    REQUIRE_OK(tape_store_load(&got, s, "taken"));
    tc_cmp_tapes(c, __LINE__, "a saved tape after a refused tape_store_record", t, got, 1);
    tape_free(got);
    got = NULL;
    tape_free(h);
    h = NULL;

    /* A second writer on an id being recorded is refused. */
    REQUIRE_OK(tape_new(&h, "busy-1"));
    REQUIRE_OK(tape_store_record(&w, s, h));
    EXPECT_RC(TAPE_EBUSY, tape_store_record(&w2, s, h));
    tape_writer_free(w2);
    w2 = NULL;
    REQUIRE_OK(tape_writer_finish(w));
    tape_writer_free(w);
    w = NULL;
    tape_free(h);
    h = NULL;

    /* Bad frames are refused and do not use up a sequence number. */
    REQUIRE_OK(tape_new(&h, "done-1"));
    REQUIRE_OK(tape_store_record(&w, s, h));
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.ts_ms = 1;
    d.message = "{not json";
    EXPECT_RC(TAPE_EINVAL, tape_writer_append(&seq, w, &d));
    d.message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    d.direction = 0;
    EXPECT_RC(TAPE_EINVAL, tape_writer_append(&seq, w, &d));
    d.direction = 3;
    EXPECT_RC(TAPE_EINVAL, tape_writer_append(&seq, w, &d));
    EXPECT_RC(TAPE_EINVAL, tape_writer_append(&seq, w, NULL));
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    seq = 99;
    REQUIRE_OK(tape_writer_append(&seq, w, &d));
    EXPECT(seq == 0, "first valid append after refused ones: seq expected 0, got %" PRIu64, seq);
    REQUIRE_OK(tape_writer_finish(w));

    /* A finished writer refuses everything but free. */
    EXPECT_RC(TAPE_ESTATE, tape_writer_append(&seq, w, &d));
    EXPECT_RC(TAPE_ESTATE, tape_writer_add_correlation(w, "1", 0, 0, 0, "ok"));
    EXPECT_RC(TAPE_ESTATE, tape_writer_finish(w));
    tape_writer_free(w);
    w = NULL;
    REQUIRE_OK(tape_store_load(&got, s, "done-1"));
    EXPECT(tape_status(got) == TAPE_STATUS_FINALIZED && tape_frame_count(got) == 1 &&
               tape_correlation_count(got) == 0,
           "done-1: expected finalized with 1 frame and no correlation, got status %d, %zu frames, "
           "%zu correlations",
           tape_status(got), tape_frame_count(got), tape_correlation_count(got));
    tape_free(got);
    got = NULL;
    tape_free(h);
    h = NULL;

    /* The header carries metadata only: frames or correlations in it are
     * refused (tapestore.h: "must hold no frames or correlations") and
     * nothing is created. */
    REQUIRE_OK(tape_new(&h, "header-with-frames"));
    REQUIRE_OK(tc_add_frame(NULL, h, TAPE_DIR_CLIENT_TO_SERVER, 0,
                            "{\"jsonrpc\":\"2.0\",\"method\":\"header-frame\"}", 0, NULL, NULL, NULL));
    EXPECT_RC(TAPE_EINVAL, tape_store_record(&w, s, h));
    tape_writer_free(w);
    w = NULL;
    tape_free(h);
    h = NULL;
    REQUIRE_OK(tape_new(&h, "header-with-frames"));
    REQUIRE_OK(tape_add_correlation(h, "h", 0, 0, 0, "ok"));
    EXPECT_RC(TAPE_EINVAL, tape_store_record(&w, s, h));
    tape_writer_free(w);
    w = NULL;
    tape_free(h);
    h = NULL;
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "header-with-frames"));
    EXPECT(ex == 0, "a refused tape_store_record created the tape (exists %d, expected 0)", ex);

    /* A writer freed without finish leaves a loadable tape, status
     * recording, with the frames appended so far. */
    REQUIRE_OK(tape_new(&h, "abandoned-1"));
    REQUIRE_OK(tape_set_name(h, "abandoned"));
    REQUIRE_OK(tape_store_record(&w, s, h));
    for (unsigned int i = 0; i < 10; i++) {
        REQUIRE_OK(tc_writer_append(NULL, w, i));
    }
    REQUIRE_OK(tape_writer_add_correlation(w, "c0", 0, 1, 1, "ok"));
    tape_writer_free(w);
    w = NULL;
    REQUIRE_OK(tape_store_exists(&ex, s, "abandoned-1"));
    EXPECT(ex == 1, "exists after an abandoned writer: expected 1, got %d", ex);
    REQUIRE_OK(tape_store_load(&got, s, "abandoned-1"));
    EXPECT(tape_status(got) == TAPE_STATUS_RECORDING,
           "abandoned writer: status expected recording (%d), got %d", TAPE_STATUS_RECORDING,
           tape_status(got));
    EXPECT(tc_streq(tape_name(got), "abandoned"), "abandoned writer: name expected 'abandoned', got %s",
           tc_s(tape_name(got)));
    EXPECT(tape_frame_count(got) == 10, "abandoned writer: expected the 10 frames appended, got %zu",
           tape_frame_count(got));
    if (tape_frame_count(got) == 10) {
        tc_check_writer_frames(c, __LINE__, "abandoned writer", got, 0, 10);
    }
    tape_free(got);
    got = NULL;
    EXPECT_RC(TAPE_EEXISTS, tape_store_record(&w, s, h));
    tape_writer_free(w);
    w = NULL;
out:
    tape_writer_free(w);
    tape_writer_free(w2);
    tape_free(got);
    tape_free(h);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: ranged frame reads                                            */
/* ------------------------------------------------------------------ */

/* Read [from, to] and expect seqs first..last (first > last: none). */
static void tc_check_range(tc_ctx *c, int line, tape_store *s, const char *id, uint64_t from,
                           uint64_t to, uint64_t first, uint64_t last)
{
    tape_frame_iter *it = NULL;
    const tape_frame *f = NULL;
    uint64_t want = first, n = 0;
    char msg[200];
    int rc = tape_store_read_frames(&it, s, id, from, to);

    if (rc != TAPE_OK) {
        tc_fail(c, line, "read_frames(%s, %" PRIu64 ", %" PRIu64 ") returned %s, expected TAPE_OK", id,
                from, to, tape_strerror(rc));
        return;
    }
    while ((rc = tape_frame_iter_next(&f, it)) == TAPE_OK) {
        size_t len = 0;
        const char *m = tape_frame_message(f, &len);
        if (first > last || want > last) {
            tc_fail(c, line, "read_frames(%s, %" PRIu64 ", %" PRIu64 "): unexpected frame seq %" PRIu64,
                    id, from, to, tape_frame_seq(f));
            goto done;
        }
        tc_writer_msg(msg, sizeof msg, (unsigned int)want);
        if (tape_frame_seq(f) != want || m == NULL || len != strlen(msg) || memcmp(m, msg, len) != 0) {
            tc_fail(c, line,
                    "read_frames(%s, %" PRIu64 ", %" PRIu64 "): expected seq %" PRIu64
                    " message '%s', got seq %" PRIu64 " message '%.200s'",
                    id, from, to, want, msg, tape_frame_seq(f), tc_s(m));
            goto done;
        }
        want++;
        n++;
    }
    if (rc != TAPE_DONE) {
        tc_fail(c, line, "read_frames(%s, %" PRIu64 ", %" PRIu64 "): iterator ended with %s, expected TAPE_DONE",
                id, from, to, tape_strerror(rc));
        goto done;
    }
    if (first <= last && want != last + 1) {
        tc_fail(c, line,
                "read_frames(%s, %" PRIu64 ", %" PRIu64 "): expected seqs %" PRIu64 "..%" PRIu64
                ", got %" PRIu64 " frames",
                id, from, to, first, last, n);
        goto done;
    }
    rc = tape_frame_iter_next(&f, it);
    if (rc != TAPE_DONE) {
        tc_fail(c, line, "read_frames(%s, %" PRIu64 ", %" PRIu64 "): next after TAPE_DONE returned %s, expected TAPE_DONE again",
                id, from, to, tape_strerror(rc));
    }
done:
    tape_frame_iter_free(it);
}

static void case_ranged_reads(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *e = NULL;
    tape_frame_iter *a = NULL, *b = NULL;
    const tape_frame *fa = NULL, *fb = NULL;
    char msg[200];

    TC_OPEN(&s);
    REQUIRE_OK(tape_new(&t, "ranged"));
    for (unsigned int i = 0; i < TC_WFRAMES; i++) {
        tc_writer_msg(msg, sizeof msg, i);
        REQUIRE_OK(tc_add_frame(NULL, t, i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER,
                                i, msg, 0, NULL, NULL, NULL));
    }
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_new(&e, "ranged-empty"));
    REQUIRE_OK(tape_store_save(s, e));

    tc_check_range(c, __LINE__, s, "ranged", 0, UINT64_MAX, 0, 999);
    tc_check_range(c, __LINE__, s, "ranged", 0, 999, 0, 999);
    tc_check_range(c, __LINE__, s, "ranged", 10, 19, 10, 19);
    tc_check_range(c, __LINE__, s, "ranged", 5, 5, 5, 5);
    tc_check_range(c, __LINE__, s, "ranged", 990, UINT64_MAX, 990, 999);
    tc_check_range(c, __LINE__, s, "ranged", 995, 2000, 995, 999);
    tc_check_range(c, __LINE__, s, "ranged", 20, 19, 1, 0);             /* empty range */
    tc_check_range(c, __LINE__, s, "ranged", 1000, UINT64_MAX, 1, 0);   /* from > last */
    tc_check_range(c, __LINE__, s, "ranged", 5000, 6000, 1, 0);
    tc_check_range(c, __LINE__, s, "ranged", UINT64_MAX, UINT64_MAX, 1, 0);
    tc_check_range(c, __LINE__, s, "ranged-empty", 0, UINT64_MAX, 1, 0);

    /* Two iterators on one tape are independent. */
    REQUIRE_OK(tape_store_read_frames(&a, s, "ranged", 0, 9));
    REQUIRE_OK(tape_store_read_frames(&b, s, "ranged", 500, 509));
    for (uint64_t i = 0; i < 10; i++) {
        REQUIRE_OK(tape_frame_iter_next(&fa, a));
        REQUIRE_OK(tape_frame_iter_next(&fb, b));
        EXPECT(tape_frame_seq(fa) == i && tape_frame_seq(fb) == 500 + i,
               "interleaved iterators: expected seqs %" PRIu64 " and %" PRIu64 ", got %" PRIu64
               " and %" PRIu64,
               i, 500 + i, tape_frame_seq(fa), tape_frame_seq(fb));
    }
    EXPECT_RC(TAPE_DONE, tape_frame_iter_next(&fa, a));
    EXPECT_RC(TAPE_DONE, tape_frame_iter_next(&fb, b));
out:
    tape_frame_iter_free(a);
    tape_frame_iter_free(b);
    tape_free(t);
    tape_free(e);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: store stats                                                   */
/* ------------------------------------------------------------------ */

/* Store stats must equal the sums over the listing. */
static void tc_check_store_stats(tc_ctx *c, int line, tape_store *s, uint64_t tapes,
                                 uint64_t frames)
{
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    tape_result *r = NULL;
    uint64_t bytes = 0;
    int rc = tape_store_stats_get(&ss, s);

    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_store_stats_get returned %s, expected TAPE_OK", tape_strerror(rc));
        return;
    }
    if (ss.tape_count != tapes || ss.frame_count != frames) {
        tc_fail(c, line,
                "store stats: expected %" PRIu64 " tapes and %" PRIu64 " frames, got %" PRIu64
                " and %" PRIu64,
                tapes, frames, ss.tape_count, ss.frame_count);
    }
    rc = tape_store_query(&r, s, NULL);
    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_store_query returned %s", tape_strerror(rc));
        return;
    }
    for (size_t i = 0; i < tape_result_count(r); i++) {
        tape_stats st = TAPE_STATS_INIT;
        if (tape_entry_get_stats(&st, tape_result_at(r, i)) == TAPE_OK) {
            bytes += st.file_size_bytes;
        }
    }
    if (ss.total_bytes != bytes) {
        tc_fail(c, line,
                "store stats: total_bytes expected %" PRIu64 " (sum of the entries' file_size_bytes), "
                "got %" PRIu64,
                bytes, ss.total_bytes);
    }
    if (frames > 0 && ss.total_bytes == 0) {
        tc_fail(c, line, "store stats: total_bytes is 0 although the store holds %" PRIu64 " frames",
                frames);
    }
    tape_result_free(r);
}

static void case_store_stats(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL;
    tape_writer *w = NULL;
    char id[32];

    TC_OPEN(&s);
    tc_check_store_stats(c, __LINE__, s, 0, 0);
    for (unsigned int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "stats-%u", i);
        REQUIRE_OK(tape_new(&t, id));
        for (unsigned int j = 0; j < i; j++) {
            REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_CLIENT_TO_SERVER, j,
                                    "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", 0, NULL, NULL, NULL));
        }
        REQUIRE_OK(tape_store_save(s, t));
        tape_free(t);
        t = NULL;
    }
    tc_check_store_stats(c, __LINE__, s, 5, 10);
    REQUIRE_OK(tape_store_delete(s, "stats-4"));
    tc_check_store_stats(c, __LINE__, s, 4, 6);
    /* Replacing changes frames, not the tape count. */
    REQUIRE_OK(tape_new(&t, "stats-0"));
    for (unsigned int j = 0; j < 7; j++) {
        REQUIRE_OK(tc_add_frame(NULL, t, TAPE_DIR_SERVER_TO_CLIENT, j,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"y\"}", 0, NULL, NULL, NULL));
    }
    REQUIRE_OK(tape_store_save(s, t));
    tc_check_store_stats(c, __LINE__, s, 4, 13);
    /* A finished recording counts like a saved tape. */
    tape_free(t);
    t = NULL;
    REQUIRE_OK(tape_new(&t, "stats-rec"));
    REQUIRE_OK(tape_store_record(&w, s, t));
    for (unsigned int i = 0; i < 3; i++) {
        REQUIRE_OK(tc_writer_append(NULL, w, i));
    }
    REQUIRE_OK(tape_writer_finish(w));
    tc_check_store_stats(c, __LINE__, s, 5, 16);
out:
    tape_writer_free(w);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: a listing says what a load says                               */
/* ------------------------------------------------------------------ */

/* Every listed entry's stats and learned metadata equal those of the tape
 * a load returns, so a query term (min_duration_ms, min_frames) gives the
 * same answer in every store: saved tapes, finished and unfinished
 * recordings, a recording whose metadata changed mid-session. */
static void tc_check_listing_matches_load(tc_ctx *c, int line, tape_store *s)
{
    tape_result *r = NULL;
    int rc = tape_store_query(&r, s, NULL);
    if (rc != TAPE_OK) {
        tc_fail(c, line, "tape_store_query returned %s", tape_strerror(rc));
        return;
    }
    for (size_t i = 0; i < tape_result_count(r); i++) {
        const tape_entry *e = tape_result_at(r, i);
        tape *t = NULL;
        rc = tape_store_load(&t, s, tape_entry_id(e));
        if (rc != TAPE_OK) {
            tc_fail(c, line, "listed tape \"%s\" does not load: %s (%s)", tc_s(tape_entry_id(e)),
                    tape_strerror(rc), tape_errmsg());
            continue;
        }
        tape_stats le = TAPE_STATS_INIT, lo = TAPE_STATS_INIT;
        tape_entry_get_stats(&le, e);
        tape_get_stats(&lo, t);
        if (le.frame_count != lo.frame_count || le.duration_ms != lo.duration_ms ||
            le.last_sequence != lo.last_sequence || le.client_to_server != lo.client_to_server ||
            le.server_to_client != lo.server_to_client || le.error_count != lo.error_count ||
            le.correlation_count != lo.correlation_count) {
            tc_fail(c, line,
                    "tape \"%s\": listed stats (frames %" PRIu64 ", duration %" PRId64
                    ", last seq %" PRIu64 ", errors %" PRIu64 ", correlations %" PRIu64
                    ", bytes %" PRIu64 ") differ from loaded (frames %" PRIu64
                    ", duration %" PRId64 ", last seq %" PRIu64 ", errors %" PRIu64
                    ", correlations %" PRIu64 ", bytes %" PRIu64 ")",
                    tape_entry_id(e), le.frame_count, le.duration_ms, le.last_sequence,
                    le.error_count, le.correlation_count, le.file_size_bytes, lo.frame_count,
                    lo.duration_ms, lo.last_sequence, lo.error_count, lo.correlation_count,
                    lo.file_size_bytes);
        }
        if (!tc_streq(tape_entry_name(e), tape_name(t)) ||
            !tc_streq(tape_entry_session_id(e), tape_session_id(t)) ||
            tape_entry_status(e) != tape_status(t) ||
            tape_entry_tag_count(e) != tape_tag_count(t)) {
            tc_fail(c, line, "tape \"%s\": listed name/status/tags/session (%s, %d, %zu tags) "
                    "differ from loaded (%s, %d, %zu tags)",
                    tape_entry_id(e), tc_s(tape_entry_name(e)), tape_entry_status(e),
                    tape_entry_tag_count(e), tc_s(tape_name(t)), tape_status(t),
                    tape_tag_count(t));
        }
        tape_free(t);
    }
    tape_result_free(r);
}

static void case_listing_matches_load(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *meta = NULL;
    tape_writer *w = NULL, *open_w = NULL;

    TC_OPEN(&s);
    for (unsigned int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "agree-%u", i);
        REQUIRE_OK(tape_new(&t, id));
        for (unsigned int j = 0; j < i * 3; j++) {
            REQUIRE_OK(tc_add_frame(NULL, t, j % 2 ? TAPE_DIR_SERVER_TO_CLIENT
                                                   : TAPE_DIR_CLIENT_TO_SERVER,
                                    (int64_t)(j * 37 + i), j % 5 == 4
                                        ? "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,"
                                          "\"message\":\"x\"}}"
                                        : "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}",
                                    0, NULL, NULL, NULL));
        }
        if (i == 3) {
            REQUIRE_OK(tape_add_correlation(t, "c1", 0, 1, 37, "success"));
        }
        REQUIRE_OK(tape_store_save(s, t));
        tape_free(t);
        t = NULL;
    }
    /* A finished recording whose metadata was learned mid-session. */
    REQUIRE_OK(tape_new(&t, "agree-rec"));
    REQUIRE_OK(tape_set_name(t, "before initialize"));
    REQUIRE_OK(tape_store_record(&w, s, t));
    for (unsigned int i = 0; i < 4; i++) {
        REQUIRE_OK(tc_writer_append(NULL, w, i));
    }
    REQUIRE_OK(tape_new(&meta, "ignored"));
    REQUIRE_OK(tape_set_name(meta, "client demo 1.0 / server everything 2.0"));
    REQUIRE_OK(tape_add_tag(meta, "learned"));
    REQUIRE_OK(tape_set_session_id(meta, "session-learned-from-initialize"));
    REQUIRE_OK(tape_set_protocol_version(meta, "2025-06-18"));
    REQUIRE_OK(tape_writer_update_meta(w, meta));
    for (unsigned int i = 4; i < 6; i++) {
        REQUIRE_OK(tc_writer_append(NULL, w, i));
    }
    REQUIRE_OK(tape_writer_add_correlation(w, "c0", 0, 1, 1, "success"));
    REQUIRE_OK(tape_writer_finish(w));
    tape_writer_free(w);
    w = NULL;
    tape_free(t);
    t = NULL;
    {
        tape *back = NULL;
        REQUIRE_OK(tape_store_load(&back, s, "agree-rec"));
        EXPECT(tc_streq(tape_name(back), "client demo 1.0 / server everything 2.0") &&
                   tape_has_tag(back, "learned"),
               "metadata given with tape_writer_update_meta was not stored (name \"%s\")",
               tc_s(tape_name(back)));
        tape_free(back);
    }
    /* A recording still open. */
    REQUIRE_OK(tape_new(&t, "agree-open"));
    REQUIRE_OK(tape_store_record(&open_w, s, t));
    for (unsigned int i = 0; i < 3; i++) {
        REQUIRE_OK(tc_writer_append(NULL, open_w, i));
    }
    tc_check_listing_matches_load(c, __LINE__, s);
    tape_writer_free(open_w); /* abandoned: kept with status recording */
    open_w = NULL;
    tc_check_listing_matches_load(c, __LINE__, s);
    if ((c->native | c->available) & TAPE_CAP_PERSISTENT) {
        TC_CLOSE(&s);
        REQUIRE(tc_open_ex(c, __LINE__, &s, 0) == 0, "reopening the store failed");
        tc_check_listing_matches_load(c, __LINE__, s);
    }
out:
    tape_writer_free(open_w);
    tape_writer_free(w);
    tape_free(meta);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: concurrency                                                   */
/* ------------------------------------------------------------------ */

#define TC_THREADS 8
#define TC_PER_THREAD 200

typedef struct tc_worker {
    tc_ctx *c;
    tape_store *s;
    int index;
} tc_worker;

static void tc_thread_id(char *buf, size_t size, int th, int i)
{
    snprintf(buf, size, "th%d-%03d", th, i);
}

/* Save, read back, check; a query now and then mixes listings in. Stops
 * at its first failure (recorded under the context's lock). */
static void *tc_worker_main(void *arg)
{
    tc_worker *wk = arg;
    tc_ctx *c = wk->c;
    tape *t = NULL, *got = NULL;
    tape_query *q = NULL;
    tape_result *r = NULL;
    char id[32], name[64], msg[128];
    int rc, ex;

    rc = tape_query_parse(&q, "{\"order_by\":\"id\",\"limit\":5}");
    if (rc != TAPE_OK) {
        tc_fail(c, __LINE__, "thread %d: tape_query_parse returned %s", wk->index, tape_strerror(rc));
        return NULL;
    }
    for (int i = 0; i < TC_PER_THREAD; i++) {
        tc_thread_id(id, sizeof id, wk->index, i);
        snprintf(name, sizeof name, "thread %d tape %d", wk->index, i);
        snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"t%d\"}", i, wk->index);
        if ((rc = tape_new(&t, id)) != TAPE_OK || (rc = tape_set_name(t, name)) != TAPE_OK ||
            (rc = tc_add_frame(NULL, t, TAPE_DIR_CLIENT_TO_SERVER, 0, msg, 0, NULL, NULL, NULL)) != TAPE_OK ||
            (rc = tc_add_frame(NULL, t, TAPE_DIR_SERVER_TO_CLIENT, 3, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
                               0, NULL, NULL, NULL)) != TAPE_OK) {
            tc_fail(c, __LINE__, "thread %d: building %s failed: %s", wk->index, id, tape_strerror(rc));
            break;
        }
        if ((rc = tape_store_save(wk->s, t)) != TAPE_OK) {
            tc_fail(c, __LINE__, "thread %d: tape_store_save(%s) returned %s, expected TAPE_OK",
                    wk->index, id, tape_strerror(rc));
            break;
        }
        if ((rc = tape_store_load(&got, wk->s, id)) != TAPE_OK) {
            tc_fail(c, __LINE__, "thread %d: tape_store_load(%s) right after saving it returned %s, expected TAPE_OK",
                    wk->index, id, tape_strerror(rc));
            break;
        }
        if (!tc_streq(tape_name(got), name) || tape_frame_count(got) != 2 ||
            !tc_streq(tape_frame_message(tape_frame_at(got, 0), NULL), msg)) {
            tc_fail(c, __LINE__,
                    "thread %d: %s read back as name %s with %zu frames, expected name '%s' with 2 "
                    "frames (first message %s)",
                    wk->index, id, tc_s(tape_name(got)), tape_frame_count(got), name, msg);
            break;
        }
        ex = -1;
        if ((rc = tape_store_exists(&ex, wk->s, id)) != TAPE_OK || ex != 1) {
            tc_fail(c, __LINE__, "thread %d: exists(%s) gave %s / %d, expected TAPE_OK / 1",
                    wk->index, id, tape_strerror(rc), ex);
            break;
        }
        if (i % 50 == 25) {
            if ((rc = tape_store_query(&r, wk->s, q)) != TAPE_OK || tape_result_count(r) != 5) {
                tc_fail(c, __LINE__, "thread %d: a listing during writes gave %s with %zu entries, expected TAPE_OK with 5",
                        wk->index, tape_strerror(rc), r ? tape_result_count(r) : (size_t)0);
                break;
            }
            tape_result_free(r);
            r = NULL;
        }
        tape_free(t);
        t = NULL;
        tape_free(got);
        got = NULL;
    }
    tape_result_free(r);
    tape_free(t);
    tape_free(got);
    tape_query_free(q);
    return NULL;
}

static int tc_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void case_concurrency(tc_ctx *c)
{
    tape_store *s = NULL;
    tape_result *r = NULL;
    tape *got = NULL;
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    pthread_t th[TC_THREADS];
    tc_worker wk[TC_THREADS];
    int started = 0;
    const char **ids = NULL;
    char id[32];
    size_t n;

    TC_OPEN(&s);
    for (int i = 0; i < TC_THREADS; i++) {
        wk[i].c = c;
        wk[i].s = s;
        wk[i].index = i;
        if (pthread_create(&th[i], NULL, tc_worker_main, &wk[i]) != 0) {
            TC_FAIL("pthread_create failed for thread %d", i);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    if (c->failures) {
        goto out;
    }

    /* Exactly the 1,600 ids: none lost, none duplicated. */
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    n = tape_result_count(r);
    EXPECT(n == TC_THREADS * TC_PER_THREAD, "listing after the threads: expected %d tapes, got %zu",
           TC_THREADS * TC_PER_THREAD, n);
    ids = malloc((n + 1) * sizeof *ids);
    REQUIRE(ids != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        ids[i] = tape_entry_id(tape_result_at(r, i));
        REQUIRE(ids[i] != NULL, "listing: entry %zu has no id", i);
    }
    qsort(ids, n, sizeof *ids, tc_strcmp_p);
    for (size_t i = 1; i < n; i++) {
        EXPECT(strcmp(ids[i - 1], ids[i]) != 0, "listing after the threads: %s listed twice", ids[i]);
    }
    for (int t = 0; t < TC_THREADS; t++) {
        for (int i = 0; i < TC_PER_THREAD; i++) {
            const char *key = id;
            tc_thread_id(id, sizeof id, t, i);
            if (bsearch(&key, ids, n, sizeof *ids, tc_strcmp_p) == NULL) {
                TC_FAIL("listing after the threads: %s is missing", id);
            }
            if (tape_store_load(&got, s, id) != TAPE_OK) {
                TC_FAIL("load(%s) after the threads failed", id);
            } else if (tape_frame_count(got) != 2) {
                TC_FAIL("load(%s) after the threads: expected 2 frames, got %zu", id,
                        tape_frame_count(got));
            }
            tape_free(got);
            got = NULL;
            if (c->failures > 20) {
                goto out;
            }
        }
    }
    REQUIRE_OK(tape_store_stats_get(&ss, s));
    EXPECT(ss.tape_count == TC_THREADS * TC_PER_THREAD && ss.frame_count == 2 * TC_THREADS * TC_PER_THREAD,
           "store stats after the threads: expected %d tapes and %d frames, got %" PRIu64 " and %" PRIu64,
           TC_THREADS * TC_PER_THREAD, 2 * TC_THREADS * TC_PER_THREAD, ss.tape_count, ss.frame_count);
out:
    free(ids);
    tape_free(got);
    tape_result_free(r);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: NULL arguments                                                */
/* ------------------------------------------------------------------ */

static void case_null_args(tc_ctx *c)
{
    tape_store *s = NULL, *s2 = NULL;
    tape *t = NULL, *got = NULL;
    tape_writer *w = NULL;
    tape_frame_iter *it = NULL;
    tape_result *r = NULL;
    tape_store_stats ss = TAPE_STORE_STATS_INIT;
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    const tape_frame *f = NULL;
    unsigned int caps = 0;
    char *json = NULL;
    int ex = -1;

    TC_OPEN(&s);
    REQUIRE_OK(tape_new(&t, "nulls"));
    REQUIRE_OK(tape_store_save(s, t));
    d.direction = TAPE_DIR_CLIENT_TO_SERVER;
    d.message = "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}";

#define TC_EINVAL(call)                                                                    \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ != TAPE_EINVAL) {                                                          \
            tc_fail_rc(c, __LINE__, #call, rc_, TAPE_EINVAL);                              \
        } else if (tape_errmsg()[0] == '\0') {                                             \
            TC_FAIL("%s: TAPE_EINVAL with an empty message", #call);                       \
        }                                                                                  \
    } while (0)

    TC_EINVAL(tape_store_open(NULL, c->reg, c->provider, c->config, 0));
    TC_EINVAL(tape_store_open(&s2, c->reg, NULL, c->config, 0));
    tape_store_free(s2);
    s2 = NULL;
    TC_EINVAL(tape_store_capabilities(&caps, &caps, NULL));
    TC_EINVAL(tape_store_save(NULL, t));
    TC_EINVAL(tape_store_save(s, NULL));
    TC_EINVAL(tape_store_load(NULL, s, "nulls"));
    TC_EINVAL(tape_store_load(&got, NULL, "nulls"));
    TC_EINVAL(tape_store_load(&got, s, NULL));
    TC_EINVAL(tape_store_delete(NULL, "nulls"));
    TC_EINVAL(tape_store_delete(s, NULL));
    TC_EINVAL(tape_store_exists(NULL, s, "nulls"));
    TC_EINVAL(tape_store_exists(&ex, NULL, "nulls"));
    TC_EINVAL(tape_store_exists(&ex, s, NULL));
    TC_EINVAL(tape_store_query(NULL, s, NULL));
    TC_EINVAL(tape_store_query(&r, NULL, NULL));
    TC_EINVAL(tape_store_stats_get(NULL, s));
    TC_EINVAL(tape_store_stats_get(&ss, NULL));
    TC_EINVAL(tape_store_record(NULL, s, t));
    TC_EINVAL(tape_store_record(&w, NULL, t));
    TC_EINVAL(tape_store_record(&w, s, NULL));
    TC_EINVAL(tape_store_read_frames(NULL, s, "nulls", 0, UINT64_MAX));
    TC_EINVAL(tape_store_read_frames(&it, NULL, "nulls", 0, UINT64_MAX));
    TC_EINVAL(tape_store_read_frames(&it, s, NULL, 0, UINT64_MAX));
    TC_EINVAL(tape_store_control(&json, NULL, "x", NULL));
    TC_EINVAL(tape_store_control(&json, s, NULL, NULL));
    TC_EINVAL(tape_writer_append(NULL, NULL, &d));
    TC_EINVAL(tape_writer_add_correlation(NULL, "1", 0, 1, 1, "ok"));
    TC_EINVAL(tape_writer_finish(NULL));
    TC_EINVAL(tape_frame_iter_next(&f, NULL));
    EXPECT(tape_store_provider(NULL) == NULL, "tape_store_provider(NULL): expected NULL");
    EXPECT(tape_writer_id(NULL) == NULL, "tape_writer_id(NULL): expected NULL");
    /* Frees accept NULL. */
    tape_store_free(NULL);
    tape_writer_free(NULL);
    tape_frame_iter_free(NULL);
    tape_result_free(NULL);

    /* Writers and iterators with NULL arguments. */
    REQUIRE_OK(tape_new(&got, "nulls-writer"));
    REQUIRE_OK(tape_store_record(&w, s, got));
    TC_EINVAL(tape_writer_append(NULL, w, NULL));
    TC_EINVAL(tape_writer_add_correlation(w, NULL, 0, 1, 1, "ok"));
    REQUIRE_OK(tape_writer_finish(w));
    REQUIRE_OK(tape_store_read_frames(&it, s, "nulls", 0, UINT64_MAX));
    TC_EINVAL(tape_frame_iter_next(NULL, it));
#undef TC_EINVAL

    /* The store still works after all that. */
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_load(&got, s, "nulls"));
out:
    tape_string_free(json);
    tape_frame_iter_free(it);
    tape_writer_free(w);
    tape_result_free(r);
    tape_free(got);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: capabilities                                                  */
/* ------------------------------------------------------------------ */

static void case_capabilities(tc_ctx *c)
{
    tape_store *s = NULL;
    unsigned int native = 0, avail = 0, only = 0;
    const unsigned int always = TAPE_CAP_EXISTS | TAPE_CAP_SEARCH | TAPE_CAP_STATS |
                                TAPE_CAP_WRITER | TAPE_CAP_READ_FRAMES;
    char *json = NULL;
    int rc;

    TC_OPEN(&s);
    REQUIRE_OK(tape_store_capabilities(&native, &avail, s));
    EXPECT((native & TAPE_CAP_ALL_OPS & ~avail) == 0,
           "capabilities: native ops 0x%x must be available too (available 0x%x)", native, avail);
    EXPECT((avail & always) == always,
           "capabilities: exists, search, stats, writer and read-frames are always available "
           "(natively or through the core's fallbacks): expected 0x%x in available, got 0x%x",
           always, avail);
    /* Either out-pointer may be NULL. */
    REQUIRE_OK(tape_store_capabilities(&only, NULL, s));
    EXPECT(only == native, "capabilities(native only): expected 0x%x, got 0x%x", native, only);
    REQUIRE_OK(tape_store_capabilities(NULL, &only, s));
    EXPECT(only == avail, "capabilities(available only): expected 0x%x, got 0x%x", avail, only);
    EXPECT(tc_streq(tape_store_provider(s), c->provider), "tape_store_provider: expected %s, got %s",
           c->provider, tc_s(tape_store_provider(s)));
    /* Unknown control ops answer "unsupported", naming the op. */
    rc = tape_store_control(&json, s, "conformance.no-such-op", NULL);
    EXPECT(rc == TAPE_EUNSUPPORTED,
           "tape_store_control(unknown op) returned %s, expected TAPE_EUNSUPPORTED", tape_strerror(rc));
    EXPECT(rc == TAPE_OK || tc_errmsg_has("conformance.no-such-op"),
           "tape_store_control(unknown op): message should name the op, got '%s'", tape_errmsg());
out:
    tape_string_free(json);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* Case: persistence across reopen (TAPE_CAP_PERSISTENT only)          */
/* ------------------------------------------------------------------ */

static void case_persistence(tc_ctx *c)
{
    tape_store *s = NULL;
    tape *t = NULL, *got = NULL, *h = NULL;
    tape_writer *w = NULL;
    tape_result *r = NULL;
    int ex = -1;

    TC_OPEN(&s);
    if (((c->native | c->available) & TAPE_CAP_PERSISTENT) == 0) {
        tc_skip(c, "the backend lacks TAPE_CAP_PERSISTENT");
        goto out;
    }
    REQUIRE_OK(tape_new(&t, "persist-1"));
    REQUIRE_OK(tape_set_name(t, "kept ✓"));
    REQUIRE_OK(tape_add_tag(t, "kept"));
    REQUIRE_OK(tape_set_status(t, TAPE_STATUS_FINALIZED));
    REQUIRE_OK(tape_set_updated_at(t, INT64_C(1754000000001)));
    for (unsigned int i = 0; i < 20; i++) {
        char msg[200];
        tc_writer_msg(msg, sizeof msg, i);
        REQUIRE_OK(tc_add_frame(NULL, t, i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER,
                                i, msg, 0, "c", NULL, NULL));
    }
    REQUIRE_OK(tape_add_correlation(t, "c", 0, 1, 1, "ok"));
    REQUIRE_OK(tape_store_save(s, t));
    REQUIRE_OK(tape_new(&h, "persist-rec"));
    REQUIRE_OK(tape_store_record(&w, s, h));
    for (unsigned int i = 0; i < 6; i++) {
        REQUIRE_OK(tc_writer_append(NULL, w, i));
    }
    REQUIRE_OK(tape_writer_finish(w));
    tape_writer_free(w);
    w = NULL;
    REQUIRE_OK(tape_store_save(s, h)); /* then replaced by the header alone */
    /* A recording never finished keeps what was appended. */
    tape_free(h);
    h = NULL;
    REQUIRE_OK(tape_new(&h, "persist-open"));
    REQUIRE_OK(tape_store_record(&w, s, h));
    for (unsigned int i = 0; i < 3; i++) {
        REQUIRE_OK(tc_writer_append(NULL, w, i));
    }
    tape_writer_free(w);
    w = NULL;
    tape_free(h);
    h = NULL;
    REQUIRE_OK(tape_new(&h, "persist-rec"));
    REQUIRE_OK(tape_set_created_at(h, INT64_C(1754000000000)));
    REQUIRE_OK(tape_store_save(s, h));
    REQUIRE_OK(tape_new(&got, "persist-gone"));
    REQUIRE_OK(tape_store_save(s, got));
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_delete(s, "persist-gone"));
    TC_CLOSE(&s);
    if (c->failures) {
        goto out;
    }

    /* Same config: the same data. */
    if (tc_open_ex(c, __LINE__, &s, 0) != 0) {
        goto out;
    }
    REQUIRE_OK(tape_store_load(&got, s, "persist-1"));
    tc_cmp_tapes(c, __LINE__, "persist-1 after reopen", t, got, 1);
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_load(&got, s, "persist-rec"));
    tc_cmp_tapes(c, __LINE__, "persist-rec after reopen", h, got, 1);
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_load(&got, s, "persist-open"));
    EXPECT(tape_status(got) == TAPE_STATUS_RECORDING && tape_frame_count(got) == 3,
           "an unfinished recording after reopen: expected status recording with 3 frames, got "
           "status %d with %zu frames",
           tape_status(got), tape_frame_count(got));
    if (tape_frame_count(got) == 3) {
        tc_check_writer_frames(c, __LINE__, "unfinished recording after reopen", got, 0, 3);
    }
    tape_free(got);
    got = NULL;
    REQUIRE_OK(tape_store_exists(&ex, s, "persist-gone"));
    EXPECT(ex == 0, "a tape deleted before close exists after reopen (got %d, expected 0)", ex);
    REQUIRE_OK(tape_store_query(&r, s, NULL));
    EXPECT(tape_result_count(r) == 3, "listing after reopen: expected 3 tapes, got %zu",
           tape_result_count(r));
    tc_cmp_entry(c, __LINE__, "listing after reopen", t, tc_result_find(r, "persist-1"));
    tape_result_free(r);
    r = NULL;
    REQUIRE_OK(tape_store_delete(s, "persist-1"));
    TC_CLOSE(&s);

    if (tc_open_ex(c, __LINE__, &s, 0) != 0) {
        goto out;
    }
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "persist-1"));
    EXPECT(ex == 0, "persist-1 deleted, closed, reopened: exists expected 0, got %d", ex);
    ex = -1;
    REQUIRE_OK(tape_store_exists(&ex, s, "persist-rec"));
    EXPECT(ex == 1, "persist-rec after a second reopen: exists expected 1, got %d", ex);
out:
    tape_result_free(r);
    tape_writer_free(w);
    tape_free(got);
    tape_free(h);
    tape_free(t);
    TC_CLOSE(&s);
}

/* ------------------------------------------------------------------ */
/* The suite                                                           */
/* ------------------------------------------------------------------ */

typedef void (*tc_case_fn)(tc_ctx *c);

static const struct {
    const char *name;
    tc_case_fn fn;
} tc_cases[] = {
    { "capabilities", case_capabilities },
    { "save/load fidelity", case_fidelity },
    { "save/load a 5 MiB frame", case_large_frame },
    { "invalid_json and oversize frames round-trip", case_flagged_frames },
    { "save/load a 100,000-frame tape", case_many_frames },
    { "save replaces an existing tape", case_replace },
    { "delete and exists", case_delete_exists },
    { "not-found errors name the id", case_not_found },
    { "rejected ids", case_rejected_ids },
    { "query: every key against the matcher", case_query_matcher },
    { "query: cursor paging", case_query_paging },
    { "query: invalid queries", case_invalid_queries },
    { "writer: streaming append", case_writer },
    { "writer: states and errors", case_writer_states },
    { "ranged frame reads", case_ranged_reads },
    { "store stats", case_store_stats },
    { "a listing says what a load says", case_listing_matches_load },
    { "concurrency: 8 threads x 200 tapes", case_concurrency },
    { "NULL arguments", case_null_args },
    { "persistence across reopen", case_persistence },
};
#define TC_NCASES (sizeof tc_cases / sizeof tc_cases[0])

size_t tape_conformance_case_count(void)
{
    return TC_NCASES;
}

const char *tape_conformance_case_name(size_t i)
{
    return i < TC_NCASES ? tc_cases[i].name : NULL;
}

static void tc_emitf(tape_conformance_emit_fn emit, void *ud, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void tc_emitf(tape_conformance_emit_fn emit, void *ud, const char *fmt, ...)
{
    char line[TC_MSG_MAX + 1200];
    va_list ap;
    if (emit == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(ud, line);
}

int tape_conformance_run(tape_conformance_report *out, tape_registry *reg, const char *provider,
                         const char *config_template, const char *only,
                         tape_conformance_emit_fn emit, void *ud)
{
    tape_provider_info *info = NULL;
    size_t selected = 0, num = 0;
    int64_t t_start;
    int rc;

    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_conformance_run: out is NULL");
    }
    if (out->version != TAPE_CONFORMANCE_REPORT_VERSION) {
        return tape_error_set(TAPE_EVERSION,
                              "tape_conformance_run: report version %u is not supported (expected %u)",
                              out->version, TAPE_CONFORMANCE_REPORT_VERSION);
    }
    out->passed = out->failed = out->skipped = 0;
    if (provider == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_conformance_run: provider is NULL");
    }
    if (config_template == NULL) {
        config_template = "{}";
    }
    rc = tape_registry_find(&info, reg != NULL ? reg : tape_registry_default(), provider);
    if (rc != TAPE_OK) {
        char why[1100];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        return tape_error_set(rc, "tape_conformance_run: provider '%s' not found: %s", provider, why);
    }
    tape_provider_info_free(info);
    for (size_t i = 0; i < TC_NCASES; i++) {
        selected += only == NULL || strstr(tc_cases[i].name, only) != NULL;
    }
    if (selected == 0) {
        return tape_error_set(TAPE_ENOTFOUND, "tape_conformance_run: no case name contains '%s'",
                              only);
    }

    tc_emitf(emit, ud, "1..%zu", selected);
    tc_emitf(emit, ud, "# tapestore %s conformance: provider %s, config template %s",
             TAPE_VERSION_STRING, provider, config_template);
    t_start = tc_now_mono_ms();
    for (size_t i = 0; i < TC_NCASES; i++) {
        tc_ctx c;
        char err[512];
        int64_t t0;

        if (only != NULL && strstr(tc_cases[i].name, only) == NULL) {
            continue;
        }
        num++;
        memset(&c, 0, sizeof c);
        pthread_mutex_init(&c.lock, NULL);
        c.reg = reg;
        c.provider = provider;
        c.tmpl = config_template;
        t0 = tc_now_mono_ms();
        rc = tc_expand(&c, err, sizeof err);
        if (rc != TAPE_OK) {
            tc_fail(&c, __LINE__, "preparing the config for this case: %s", err);
        } else {
            tc_cases[i].fn(&c);
        }
        if (c.dir != NULL && tc_rmtree(c.dir) != 0) {
            tc_fail(&c, __LINE__, "removing the case's directory %s failed: %s", c.dir,
                    strerror(errno));
        }
        if (c.failures > 0) {
            out->failed++;
            tc_emitf(emit, ud, "not ok %zu - %s", num, tc_cases[i].name);
            for (size_t m = 0; m < c.nmsgs; m++) {
                tc_emitf(emit, ud, "# %s", c.msgs[m]);
            }
            if (c.dropped > 0) {
                tc_emitf(emit, ud, "# ... and %zu more failure(s)", c.dropped);
            }
        } else if (c.skipped) {
            out->skipped++;
            tc_emitf(emit, ud, "ok %zu - %s # SKIP %s", num, tc_cases[i].name, c.skip_reason);
        } else {
            out->passed++;
            tc_emitf(emit, ud, "ok %zu - %s", num, tc_cases[i].name);
        }
        tc_emitf(emit, ud, "# %s: %lld ms", tc_cases[i].name, (long long)(tc_now_mono_ms() - t0));
        for (size_t m = 0; m < c.nmsgs; m++) {
            free(c.msgs[m]);
        }
        free(c.config);
        free(c.dir);
        pthread_mutex_destroy(&c.lock);
    }
    tc_emitf(emit, ud, "# %d passed, %d failed, %d skipped in %.1f s", out->passed, out->failed,
             out->skipped, (double)(tc_now_mono_ms() - t_start) / 1000.0);
    return TAPE_OK;
}
