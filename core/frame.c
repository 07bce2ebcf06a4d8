/* frame.c - frames: building a frame line, decoding one, accessors; the
 * arena a tape's own frames live in. */

/* madvise(MADV_HUGEPAGE) is a Linux extension outside POSIX. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include "codec_internal.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

static const char *dir_name(int dir)
{
    return dir == TAPE_DIR_CLIENT_TO_SERVER ? "client_to_server" : "server_to_client";
}

/* ---------------------------------------------------------------- arena */

#define CHUNK_MIN ((size_t)1 << 10)
#define CHUNK_MAX ((size_t)16 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
#define ALIGN(n) (((n) + _Alignof(tape_frame) - 1) & ~(_Alignof(tape_frame) - 1))

/*
 * Where first-touch page faults are expensive (virtual machines: ~25 us
 * each, while cJSON parses 4 KiB in ~15 us), filling fresh memory costs
 * more than parsing what goes into it. Blocks of 2 MiB and more are
 * therefore aligned to 2 MiB and marked for transparent huge pages: one
 * fault per 2 MiB instead of 512 (a 1 MiB tape's decode arena is one).
 * Only touched huge pages are backed, so the rounding up costs address
 * space, not memory. Where huge pages are unavailable the advice is
 * ignored and nothing changes. The block is released with free().
 */
void *tape__big_alloc(size_t n)
{
    if (n < HUGE_PAGE) {
        return malloc(n);
    }
    size_t rounded = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = NULL;
    if (rounded < n || posix_memalign(&p, HUGE_PAGE, rounded) != 0) {
        return NULL;
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

static tape_chunk *chunk_new(size_t size)
{
    size_t hdr = ALIGN(sizeof(tape_chunk));
    if (size > SIZE_MAX - hdr) {
        return NULL;
    }
    tape_chunk *k = tape__big_alloc(hdr + size);
    if (k != NULL) {
        k->size = size;
        k->used = 0;
        k->next = NULL;
    }
    return k;
}

void tape__arena_reserve(tape_chunk **arena, size_t n)
{
    /* A hint: on failure the arena simply grows chunk by chunk. */
    if (*arena == NULL && n > 0) {
        *arena = chunk_new(n);
    }
}

void *tape__arena_alloc(tape_chunk **arena, size_t n)
{
    size_t hdr = ALIGN(sizeof(tape_chunk));
    n = ALIGN(n);
    tape_chunk *c = *arena;
    if (c != NULL && c->size - c->used >= n) {
        void *p = (char *)c + hdr + c->used;
        c->used += n;
        return p;
    }
    /* Chunks double from twice the first block: a tape of one frame (a
     * clone, an appended tape) costs about that frame, a long one a few
     * dozen chunks. */
    size_t size = c != NULL ? c->size * 2 : n > SIZE_MAX / 2 ? n : n * 2;
    if (size < CHUNK_MIN) {
        size = CHUNK_MIN; /* after a small reserved chunk */
    } else if (size > CHUNK_MAX) {
        size = CHUNK_MAX; /* after a large reserved chunk */
    }
    /* A block larger than a chunk's share gets a chunk of its own, placed
     * behind the current one so that bumping continues there. */
    int own = c != NULL && n > size / 4;
    if (size < n) {
        size = n; /* a first block larger than a chunk */
    }
    tape_chunk *k = chunk_new(own ? n : size);
    if (k == NULL) {
        return NULL;
    }
    k->used = n;
    if (own && c != NULL) {
        k->next = c->next;
        c->next = k;
    } else {
        k->next = c;
        *arena = k;
    }
    return (char *)k + hdr;
}

void tape__arena_free(tape_chunk *arena)
{
    while (arena != NULL) {
        tape_chunk *next = arena->next;
        free(arena);
        arena = next;
    }
}

/* One block: struct, [extra + raw,] line, message, correlation id (see
 * the header), laid out and NUL-terminated; the caller fills in the text.
 * With msg_in_line the message is a span of the line (at msg_off) and gets
 * no room of its own. cid_len is ignored without a correlation id. x, if
 * not NULL, is copied in with its raw bytes (flagged frames). */
static tape_frame *frame_block(tape_chunk **arena, size_t line_len, int msg_in_line,
                               size_t msg_off, size_t msg_len, int has_cid, size_t cid_len,
                               const tape_frame_x *x)
{
    size_t xsize = x != NULL ? ALIGN(sizeof(tape_frame_x)) + x->raw_len + 1 : 0;
    size_t total = sizeof(tape_frame) + xsize + line_len + 1 +
                   (msg_in_line ? 0 : msg_len + 1) + (has_cid ? cid_len + 1 : 0);
    tape_frame *f = arena != NULL ? tape__arena_alloc(arena, total) : malloc(total);
    if (f == NULL) {
        return NULL;
    }
    f->in_arena = arena != NULL;
    char *p = (char *)(f + 1);
    f->flags = 0;
    f->x = NULL;
    if (x != NULL) {
        f->x = (tape_frame_x *)(void *)p;
        *f->x = *x;
        p += ALIGN(sizeof(tape_frame_x));
        f->x->raw = p;
        memcpy(p, x->raw, x->raw_len);
        p[x->raw_len] = '\0';
        p += x->raw_len + 1;
    }
    f->line = p;
    f->line_len = line_len;
    p[line_len] = '\0';
    p += line_len + 1;
    f->message_len = msg_len;
    f->msg_lazy = msg_in_line;
    if (msg_in_line) {
        f->msg = f->line + msg_off;
        atomic_init(&f->message, NULL);
    } else {
        f->msg = p;
        atomic_init(&f->message, p);
        p[msg_len] = '\0';
        p += msg_len + 1;
    }
    f->correlation_id = NULL;
    f->cid_len = 0;
    if (has_cid) {
        f->correlation_id = p;
        f->cid_len = cid_len;
        p[cid_len] = '\0';
    }
    return f;
}

/* msg_in_line: msg points into line (the copy's message is the same span
 * of its own line); otherwise msg is copied into the block. */
static tape_frame *frame_alloc(tape_chunk **arena, const char *line, size_t line_len,
                               const char *msg, size_t msg_len, int msg_in_line,
                               const char *cid, size_t cid_len, const tape_frame_x *x)
{
    size_t off = msg_in_line ? (size_t)(msg - line) : 0;
    tape_frame *f =
        frame_block(arena, line_len, msg_in_line, off, msg_len, cid != NULL, cid_len, x);
    if (f != NULL) {
        memcpy(f->line, line, line_len);
        if (!msg_in_line) {
            memcpy((char *)f->msg, msg, msg_len);
        }
        if (cid != NULL) {
            memcpy(f->correlation_id, cid, cid_len);
        }
    }
    return f;
}

void tape__frame_release(tape_frame *f)
{
    if (f->msg_lazy) {
        free(atomic_load_explicit(&f->message, memory_order_acquire));
        atomic_store_explicit(&f->message, NULL, memory_order_relaxed);
    }
}

void tape_frame_free(tape_frame *f)
{
    /* A frame in its tape's arena goes with the tape (which releases it). */
    if (f != NULL && !f->in_arena) {
        tape__frame_release(f);
        free(f);
    }
}

tape_frame *tape__frame_copy(const tape_frame *f, tape_chunk **arena)
{
    tape_frame *c = frame_alloc(arena, f->line, f->line_len, f->msg, f->message_len,
                                f->msg_lazy, f->correlation_id, f->cid_len, f->x);
    if (c != NULL) {
        c->flags = f->flags;
        c->seq = f->seq;
        c->ts = f->ts;
        c->dir = f->dir;
        c->is_error = f->is_error;
    }
    return c;
}

int tape_frame_clone(tape_frame **out, const tape_frame *f)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || f == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_frame_clone: %s is NULL",
                              out == NULL ? "out" : "frame");
    }
    if ((*out = tape__frame_copy(f, NULL)) == NULL) {
        return tape__oom();
    }
    return TAPE_OK;
}

/* ----------------------------------------------------------- accessors */

uint64_t tape_frame_seq(const tape_frame *f)
{
    return f == NULL ? 0 : f->seq;
}

int64_t tape_frame_ts(const tape_frame *f)
{
    return f == NULL ? 0 : f->ts;
}

int tape_frame_direction(const tape_frame *f)
{
    return f == NULL ? 0 : f->dir;
}

/*
 * The first call on a decoded frame makes the NUL-terminated copy. Frames
 * are const and shared between threads, so the copy is published with a
 * compare-and-swap: racing callers may each make one, the first to land
 * wins, the others free theirs and return the winner's. The slot is the
 * only thing written; `msg` and the line never change.
 */
const char *tape_frame_message(const tape_frame *f, size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = 0;
    }
    if (f == NULL) {
        return NULL;
    }
    /* Frames are never const objects: the cast only reaches the cache. */
    _Atomic(char *) *slot = &((tape_frame *)f)->message;
    char *m = atomic_load_explicit(slot, memory_order_acquire);
    if (m == NULL) {
        char *copy = malloc(f->message_len + 1);
        if (copy == NULL) {
            tape__oom();
            return NULL;
        }
        memcpy(copy, f->msg, f->message_len);
        copy[f->message_len] = '\0';
        char *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(slot, &expected, copy, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            m = copy;
        } else {
            free(copy);
            m = expected;
        }
    }
    if (out_len != NULL) {
        *out_len = f->message_len;
    }
    return m;
}

const char *tape_frame_message_bytes(const tape_frame *f, size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = f == NULL ? 0 : f->message_len;
    }
    return f == NULL ? NULL : f->msg;
}

const char *tape_frame_correlation_id(const tape_frame *f)
{
    return f == NULL ? NULL : f->correlation_id;
}

int tape_frame_is_error(const tape_frame *f)
{
    return f != NULL && f->is_error;
}

const char *tape_frame_line(const tape_frame *f, size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = f == NULL ? 0 : f->line_len;
    }
    return f == NULL ? NULL : f->line;
}

unsigned int tape_frame_flags(const tape_frame *f)
{
    return f == NULL ? 0 : f->flags;
}

const char *tape_frame_raw(const tape_frame *f, size_t *out_len)
{
    if (f == NULL || f->x == NULL) {
        return tape_frame_message(f, out_len);
    }
    if (out_len != NULL) {
        *out_len = f->x->raw_len;
    }
    return f->x->raw;
}

int tape_frame_oversize_info(uint64_t *out_length, const char **out_sha256_hex,
                             const tape_frame *f)
{
    if (out_length != NULL) {
        *out_length = 0;
    }
    if (out_sha256_hex != NULL) {
        *out_sha256_hex = NULL;
    }
    if (f == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_frame_oversize_info: frame is NULL");
    }
    if (!(f->flags & TAPE_FRAME_OVERSIZE)) {
        return tape_error_set(TAPE_ENOTFOUND, "frame %llu is not an oversize frame",
                              (unsigned long long)f->seq);
    }
    if (out_length != NULL) {
        *out_length = f->x->length;
    }
    if (out_sha256_hex != NULL) {
        *out_sha256_hex = f->x->sha256;
    }
    return TAPE_OK;
}

/* --------------------------------------------------------------- build */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int has_member(const cJSON *obj, const char *key)
{
    return tape__member(obj, key) != NULL;
}

/*
 * A frame line is assembled as text, not through cJSON objects: the
 * message goes in verbatim and the rest is numbers, fixed words and a few
 * strings. The result is byte for byte what cJSON_PrintUnformatted made of
 * the same object before (tests and fixtures compare lines), so strings are
 * escaped as cJSON escapes them; numbers differ only from 10^15 on (see
 * json_uint_text).
 */

#define LIT(s) (sizeof(s) - 1)

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, s) put((p), (s), LIT(s))

/* Length of s as a JSON string, quotes included. cJSON escapes '"', '\\'
 * and bytes below 0x20 (six-byte \u00XX unless they have a short form)
 * and copies everything else, UTF-8 included, as it is. */
static size_t json_string_len(const char *s, size_t n)
{
    size_t len = n + 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
            c == '\t') {
            len += 1;
        } else if (c < 0x20) {
            len += 5;
        }
    }
    return len;
}

static char *json_string_put(char *p, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *p++ = (char)c;
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            p = PUT_LIT(p, "u00");
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
            break;
        }
    }
    *p++ = '"';
    return p;
}

/* A seq or ts (at most 2^53) in plain digits. Not cJSON's printer: from
 * 10^15 on it uses 15 significant digits when they read back "close
 * enough", which turns 9007199254740992 into 9.00719925474099e+15 - a
 * different number. Below 10^15 (every realistic value) the text is the
 * same as cJSON's. Returns the length. */
static size_t json_uint_text(char out[32], uint64_t v)
{
    char rev[24];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = rev[n - 1 - i];
    }
    out[n] = '\0';
    return n;
}

/* Optional JSON object text for a frame field, printed compactly (the
 * caller's spacing is not kept). *is_error, if given, is set when the
 * object's is_error member is true. */
static int object_arg_text(char **out, int *is_error, const char *what, const char *text)
{
    *out = NULL;
    if (text == NULL) {
        return TAPE_OK;
    }
    cJSON *v = tape__json_parse(text, strlen(text));
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return tape_error_set(TAPE_EINVAL, "frame %s is not a JSON object: '%.64s'", what,
                              text);
    }
    if (is_error != NULL) {
        *is_error |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "is_error"));
    }
    *out = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    return *out != NULL ? TAPE_OK : tape__oom();
}

static const char *json_bool(int b)
{
    return b ? "true" : "false";
}

/* Where to cut s (len bytes) to keep at most `want`: not inside a UTF-8
 * character. Bytes that are not UTF-8 are cut where asked. */
static size_t utf8_cut(const char *s, size_t len, size_t want)
{
    if (want >= len) {
        return len;
    }
    size_t lead = want;
    while (lead > 0 && want - lead < 3 && ((unsigned char)s[lead] & 0xC0) == 0x80) {
        lead--;
    }
    unsigned char c = (unsigned char)s[lead];
    size_t n = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    /* s[want] continues the character that starts at lead: drop it all. */
    return lead < want && (c & 0xC0) == 0xC0 && lead + n > want ? lead : want;
}

/* The parts of an invalid_json / oversize frame: *x (raw pointing into
 * msg), the JSON string env.message holds (*mtext, malloc'd) and the flags
 * object text (*ftext, malloc'd): the caller's flags, or the derived ones
 * (all false), plus invalid_json / oversize. */
static int flagged_prepare(tape_frame_x *x, char **mtext, size_t *mlen, char **ftext,
                           unsigned int fflags, const tape_frame_desc *desc, const char *msg,
                           size_t len)
{
    memset(x, 0, sizeof *x);
    size_t keep = len;
    if (fflags & TAPE_FRAME_OVERSIZE) {
        size_t want = desc->prefix_bytes != 0 ? desc->prefix_bytes : TAPE_FRAME_PREFIX_DEFAULT;
        keep = utf8_cut(msg, len, want);
        tape__sha256_hex(x->sha256, msg, len);
    }
    x->length = fflags & TAPE_FRAME_OVERSIZE ? (uint64_t)len : (uint64_t)keep;
    x->raw = (char *)msg;
    x->raw_len = keep;
    size_t n = json_string_len(msg, keep);
    if ((*mtext = malloc(n + 1)) == NULL) {
        return tape__oom();
    }
    *json_string_put(*mtext, msg, keep) = '\0';
    *mlen = n;

    char *caller = NULL;
    if (desc->flags_json != NULL) {
        cJSON *v = tape__json_parse(desc->flags_json, strlen(desc->flags_json));
        if (!cJSON_IsObject(v)) {
            cJSON_Delete(v);
            return tape_error_set(TAPE_EINVAL, "frame flags is not a JSON object: '%.64s'",
                                  desc->flags_json);
        }
        /* Ours say what the frame is. */
        while (cJSON_GetObjectItemCaseSensitive(v, "invalid_json") != NULL) {
            cJSON_DeleteItemFromObjectCaseSensitive(v, "invalid_json");
        }
        while (cJSON_GetObjectItemCaseSensitive(v, "oversize") != NULL) {
            cJSON_DeleteItemFromObjectCaseSensitive(v, "oversize");
        }
        caller = cJSON_PrintUnformatted(v);
        cJSON_Delete(v);
        if (caller == NULL) {
            return tape__oom();
        }
    }
    char ours[160];
    int k = snprintf(ours, sizeof ours, "%s%s", fflags & TAPE_FRAME_INVALID_JSON
                                                    ? "\"invalid_json\":true" : "",
                     (fflags & TAPE_FRAME_INVALID_JSON) && (fflags & TAPE_FRAME_OVERSIZE) ? ","
                                                                                         : "");
    if (fflags & TAPE_FRAME_OVERSIZE) {
        snprintf(ours + k, sizeof ours - (size_t)k, "\"oversize\":{\"length\":%llu,\"sha256\":\"%s\"}",
                 (unsigned long long)x->length, x->sha256);
    }
    const char *base = caller != NULL ? caller
                                      : "{\"is_error\":false,\"is_notification\":false,"
                                        "\"requires_response\":false}";
    size_t blen = strlen(base) - 1; /* without its '}' */
    size_t olen = strlen(ours);
    char *f = malloc(blen + 1 + olen + 2);
    if (f == NULL) {
        free(caller);
        return tape__oom();
    }
    memcpy(f, base, blen);
    size_t at = blen;
    if (blen > 1) {
        f[at++] = ',';
    }
    memcpy(f + at, ours, olen);
    at += olen;
    f[at++] = '}';
    f[at] = '\0';
    free(caller);
    *ftext = f;
    return TAPE_OK;
}

int tape__frame_build(tape_frame **out, uint64_t seq, const tape_frame_desc *desc,
                      int64_t created_at, const char *session_id, tape_chunk **arena)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || desc == NULL) {
        return tape_error_set(TAPE_EINVAL, "frame: %s is NULL", out == NULL ? "out" : "desc");
    }
    if (desc->version == 0) {
        return tape_error_set(TAPE_EINVAL,
                              "tape_frame_desc.version is 0 (initialise with "
                              "TAPE_FRAME_DESC_INIT)");
    }
    if (desc->version > TAPE_FRAME_DESC_VERSION) {
        return tape_error_set(TAPE_EVERSION,
                              "tape_frame_desc version %u is newer than this library (%u)",
                              desc->version, TAPE_FRAME_DESC_VERSION);
    }
    if (desc->direction != TAPE_DIR_CLIENT_TO_SERVER &&
        desc->direction != TAPE_DIR_SERVER_TO_CLIENT) {
        return tape_error_set(TAPE_EINVAL,
                              "frame direction %d is invalid (expected "
                              "TAPE_DIR_CLIENT_TO_SERVER or TAPE_DIR_SERVER_TO_CLIENT)",
                              desc->direction);
    }
    if (desc->message == NULL) {
        return tape_error_set(TAPE_EINVAL, "frame message is NULL");
    }
    /* Compared as integers: as a double, 2^53 + 1 rounds down to 2^53. */
    if (seq > (uint64_t)TAPE__JSON_INT_MAX) {
        return tape_error_set(TAPE_EINVAL, "frame seq %llu exceeds 2^53",
                              (unsigned long long)seq);
    }
    if (!tape__time_ok(created_at)) {
        return tape_error_set(TAPE_EINVAL, "tape created_at %lld ms is out of range",
                              (long long)created_at);
    }
    int64_t ts = desc->ts_ms;
    if (ts < 0) {
        ts = tape__now_ms() - created_at;
        if (ts < 0) {
            ts = 0;
        }
    }
    /* The frame's ISO timestamp (created_at + ts) must stay readable. */
    if (ts > ((int64_t)1 << 53) || !tape__time_ok(created_at + ts)) {
        return tape_error_set(TAPE_EINVAL, "frame ts_ms %lld is out of range",
                              (long long)desc->ts_ms);
    }

    unsigned int fflags = desc->version >= 2 ? desc->frame_flags : 0;
    if ((fflags & ~(unsigned int)(TAPE_FRAME_INVALID_JSON | TAPE_FRAME_OVERSIZE)) != 0) {
        return tape_error_set(TAPE_EINVAL,
                              "tape_frame_desc.frame_flags 0x%x has unknown bits (expected "
                              "TAPE_FRAME_INVALID_JSON and/or TAPE_FRAME_OVERSIZE)",
                              fflags);
    }
    const char *msg = desc->message;
    size_t len = desc->message_len ? desc->message_len : strlen(msg);
    char *flags = NULL, *transport = NULL, *mtext = NULL;
    tape_frame_x xt, *x = NULL;
    int is_error = 0, rc = TAPE_OK;
    char dflags[96];
    const char *ftext = NULL;
    size_t flen = 0;
    if (fflags != 0) {
        /* Bytes kept as they are, in a JSON string: no trimming, no parse. */
        size_t mlen = 0;
        rc = flagged_prepare(&xt, &mtext, &mlen, &flags, fflags, desc, msg, len);
        if (rc == TAPE_OK) {
            rc = object_arg_text(&transport, NULL, "transport", desc->transport_json);
        }
        if (rc != TAPE_OK) {
            goto done;
        }
        x = &xt;
        msg = mtext;
        len = mlen;
        ftext = flags;
        flen = strlen(flags);
        goto assemble;
    }
    /* Surrounding whitespace carries nothing (often a transport's '\n'). */
    while (len > 0 && is_ws(msg[0])) {
        msg++;
        len--;
    }
    while (len > 0 && is_ws(msg[len - 1])) {
        len--;
    }
    if (memchr(msg, '\0', len) != NULL) {
        return tape_error_set(TAPE_EINVAL, "frame message contains a NUL byte");
    }
    /* The one pass: validation, and what the flags are derived from. */
    tape__jscan scan;
    if ((rc = tape__json_scan(&scan, msg, len, "frame message")) != TAPE_OK) {
        return rc;
    }
    is_error = scan.has_error;
    int derive = desc->flags_json == NULL && scan.is_object;
    int has_method = scan.has_method, has_id = scan.has_id;

    rc = object_arg_text(&flags, &is_error, "flags", desc->flags_json);
    if (rc == TAPE_OK) {
        rc = object_arg_text(&transport, NULL, "transport", desc->transport_json);
    }
    if (rc != TAPE_OK) {
        goto done;
    }
    /* A line is a frame: a message spread over lines is stored minified. */
    if (memchr(msg, '\n', len) != NULL || memchr(msg, '\r', len) != NULL) {
        /* The scan refused raw line breaks inside strings: these are blanks. */
        if ((mtext = malloc(len + 1)) == NULL) {
            rc = tape__oom();
            goto done;
        }
        len = tape__json_minify(mtext, msg, len);
        mtext[len] = '\0';
        msg = mtext;
    }

    /* Shadowcat readers expect flags; without the caller's, derive them. */
    ftext = flags;
    flen = flags != NULL ? strlen(flags) : 0;
    if (derive) {
        char *q = dflags;
        q = PUT_LIT(q, "{\"is_error\":");
        q = put(q, json_bool(is_error), strlen(json_bool(is_error)));
        q = PUT_LIT(q, ",\"is_notification\":");
        q = put(q, json_bool(has_method && !has_id), strlen(json_bool(has_method && !has_id)));
        q = PUT_LIT(q, ",\"requires_response\":");
        q = put(q, json_bool(has_method && has_id), strlen(json_bool(has_method && has_id)));
        q = PUT_LIT(q, "}");
        flen = (size_t)(q - dflags);
        ftext = dflags;
    }
assemble:;
    char seq_text[32], ts_text[32], iso[32];
    size_t seq_len = json_uint_text(seq_text, seq);
    size_t ts_len = json_uint_text(ts_text, (uint64_t)ts);
    tape__time_format(iso, created_at + ts);
    size_t iso_len = strlen(iso);
    const char *dir = dir_name(desc->direction);
    size_t dir_len = strlen(dir);
    const char *cid = desc->correlation_id;
    size_t cid_len = cid != NULL ? strlen(cid) : 0;
    size_t sid_len = session_id != NULL ? strlen(session_id) : 0;

    /* Keys in the documented order (docs/tape-format.md). */
    size_t line_len = LIT("{\"type\":\"frame\",\"seq\":") + seq_len + LIT(",\"ts\":") + ts_len +
                      LIT(",\"dir\":\"") + dir_len + LIT("\",\"env\":{\"message\":") + len +
                      LIT(",\"direction\":\"") + dir_len + LIT("\",\"timestamp\":\"") + iso_len +
                      LIT("\"") + LIT("}") + LIT(",\"correlation_id\":") +
                      (cid != NULL ? json_string_len(cid, cid_len) : LIT("null")) + LIT("}");
    if (session_id != NULL) {
        line_len += LIT(",\"session_id\":") + json_string_len(session_id, sid_len);
    }
    if (transport != NULL) {
        line_len += LIT(",\"transport\":") + strlen(transport);
    }
    if (ftext != NULL) {
        line_len += LIT(",\"flags\":") + flen;
    }
    /* Every line we write must be readable with the default limit. */
    if (line_len > TAPE_MAX_LINE_DEFAULT) {
        rc = tape_error_set(TAPE_ELIMIT, "frame line would be %zu bytes, over the %u-byte line "
                            "limit%s", line_len, TAPE_MAX_LINE_DEFAULT,
                            fflags & TAPE_FRAME_OVERSIZE ? " (lower prefix_bytes)"
                                                         : " (record it with TAPE_FRAME_OVERSIZE)");
        goto done;
    }
    /* The message is a span of the line, as in a decoded frame: no second
     * copy (tape_frame_message makes one if asked). */
    size_t msg_off = LIT("{\"type\":\"frame\",\"seq\":") + seq_len + LIT(",\"ts\":") + ts_len +
                     LIT(",\"dir\":\"") + dir_len + LIT("\",\"env\":{\"message\":");
    tape_frame *f = frame_block(arena, line_len, 1, msg_off, len, cid != NULL, cid_len, x);
    if (f == NULL) {
        rc = tape__oom();
        goto done;
    }
    char *p = f->line;
    p = PUT_LIT(p, "{\"type\":\"frame\",\"seq\":");
    p = put(p, seq_text, seq_len);
    p = PUT_LIT(p, ",\"ts\":");
    p = put(p, ts_text, ts_len);
    p = PUT_LIT(p, ",\"dir\":\"");
    p = put(p, dir, dir_len);
    p = PUT_LIT(p, "\",\"env\":{\"message\":");
    p = put(p, msg, len);
    p = PUT_LIT(p, ",\"direction\":\"");
    p = put(p, dir, dir_len);
    p = PUT_LIT(p, "\",\"timestamp\":\"");
    p = put(p, iso, iso_len);
    p = PUT_LIT(p, "\"");
    if (session_id != NULL) {
        p = PUT_LIT(p, ",\"session_id\":");
        p = json_string_put(p, session_id, sid_len);
    }
    p = PUT_LIT(p, "}");
    if (transport != NULL) {
        p = PUT_LIT(p, ",\"transport\":");
        p = put(p, transport, strlen(transport));
    }
    p = PUT_LIT(p, ",\"correlation_id\":");
    p = cid != NULL ? json_string_put(p, cid, cid_len) : PUT_LIT(p, "null");
    if (ftext != NULL) {
        p = PUT_LIT(p, ",\"flags\":");
        p = put(p, ftext, flen);
    }
    p = PUT_LIT(p, "}");
    assert((size_t)(p - f->line) == line_len);
    assert(memcmp(f->msg, msg, len) == 0);
    if (cid != NULL) {
        memcpy(f->correlation_id, cid, cid_len);
    }
    f->seq = seq;
    f->ts = ts;
    f->dir = desc->direction;
    f->is_error = is_error;
    f->flags = fflags;
    *out = f;
done:
    free(flags);
    free(transport);
    free(mtext);
    return rc;
}

int tape_frame_new(tape_frame **out, const tape *header, uint64_t seq,
                   const tape_frame_desc *desc)
{
    if (header == NULL) {
        if (out != NULL) {
            *out = NULL;
        }
        return tape_error_set(TAPE_EINVAL, "tape_frame_new: header is NULL");
    }
    return tape__frame_build(out, seq, desc, tape_created_at(header), tape_session_id(header),
                             NULL);
}

/* -------------------------------------------------------------- decode */

/*
 * Span scanner. cJSON keeps no source positions, and re-printing a value
 * changes its numbers and escapes, so the message's bytes are found in the
 * line itself. The line has already been accepted by cJSON, whose member
 * lists keep the source order: the message is the i-th member of env,
 * followed by k more, and env likewise within the line. Its start is found
 * by skipping i members forward from env's start, its end by skipping k
 * members backward from env's end - so the message's own bytes, which can
 * be megabytes, are never scanned. Only strings and brackets are skipped;
 * nothing is validated. Anything unexpected makes the scanner give up, and
 * the caller re-prints the message instead.
 */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p)) {
        p++;
    }
    return p;
}

/* p at an opening quote; returns just past the closing one. Looks for
 * quotes only (no per-byte escape state, so the loop pipelines), then
 * counts the backslashes before one: an odd run means it is escaped.
 * Short strings are scanned inline, long ones with memchr. */
static const char *skip_string(const char *p, const char *end)
{
    const char *s = ++p;
    for (;;) {
        const char *stop = end - p > 16 ? p + 16 : end;
        while (p < stop && *p != '"') {
            p++;
        }
        if (p == stop) {
            if (stop == end || (p = memchr(p, '"', (size_t)(end - p))) == NULL) {
                return NULL;
            }
        }
        const char *b = p;
        while (b > s && b[-1] == '\\') {
            b--;
        }
        if (((p - b) & 1) == 0) {
            return p + 1;
        }
        p++;
    }
}

const char *tape__json_skip_value(const char *p, const char *end)
{
    if (p >= end) {
        return NULL;
    }
    if (*p == '"') {
        return skip_string(p, end);
    }
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                if ((p = skip_string(p, end)) == NULL) {
                    return NULL;
                }
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }
            p++;
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p)) {
        p++;
    }
    return p;
}

/* Start of the value of member `index` of the object starting at p. */
const char *tape__json_member_start(const char *p, const char *end, size_t index)
{
    p = skip_ws(p, end);
    if (p >= end || *p != '{') {
        return NULL;
    }
    p++;
    for (size_t i = 0;; i++) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"' || (p = skip_string(p, end)) == NULL) {
            return NULL;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return NULL;
        }
        p = skip_ws(p + 1, end);
        if (i == index) {
            return p;
        }
        if ((p = tape__json_skip_value(p, end)) == NULL) {
            return NULL;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            return NULL;
        }
        p++;
    }
}

/* Backward scanning works on offsets into [lo, ...): -1 is "before lo". */
static ptrdiff_t back_ws(const char *lo, ptrdiff_t i)
{
    while (i >= 0 && is_ws(lo[i])) {
        i--;
    }
    return i;
}

/* lo[i] is a closing quote; returns the offset before its opening quote.
 * Inside a string every quote is escaped, so the first unescaped one
 * going backward opens it. */
static ptrdiff_t back_string(const char *lo, ptrdiff_t i)
{
    for (i--; i >= 0; i--) {
        if (lo[i] == '"') {
            ptrdiff_t b = i;
            while (b > 0 && lo[b - 1] == '\\') {
                b--;
            }
            if (((i - b) & 1) == 0) {
                return i - 1;
            }
        }
    }
    return -2;
}

/* lo[i] is the last byte of a value; returns the offset before it. */
static ptrdiff_t back_value(const char *lo, ptrdiff_t i)
{
    char c = lo[i];
    if (c == '"') {
        return back_string(lo, i);
    }
    if (c == '}' || c == ']') {
        size_t depth = 0;
        while (i >= 0) {
            c = lo[i];
            if (c == '"') {
                if ((i = back_string(lo, i)) < -1) {
                    return -2;
                }
                continue;
            }
            if (c == '}' || c == ']') {
                depth++;
            } else if (c == '{' || c == '[') {
                if (--depth == 0) {
                    return i - 1;
                }
            }
            i--;
        }
        return -2;
    }
    while (i >= 0 && lo[i] != ',' && lo[i] != ':' && lo[i] != '[' && lo[i] != '{' &&
           !is_ws(lo[i])) {
        i--;
    }
    return i;
}

/* lo[close] is an object's closing brace; skips its last `after` members
 * and returns the offset of the last byte of the member before them. */
static ptrdiff_t member_end(const char *lo, ptrdiff_t close, size_t after)
{
    ptrdiff_t i = close - 1;
    for (size_t k = 0; k < after; k++) {
        i = back_ws(lo, i);
        if (i < 0 || (i = back_value(lo, i)) < -1) {
            return -1;
        }
        i = back_ws(lo, i);
        if (i < 0 || lo[i] != ':') {
            return -1;
        }
        i = back_ws(lo, i - 1);
        if (i < 0 || lo[i] != '"' || (i = back_string(lo, i)) < -1) {
            return -1;
        }
        i = back_ws(lo, i);
        if (i < 0 || lo[i] != ',') {
            return -1;
        }
        i--;
    }
    return back_ws(lo, i);
}

/* Position of `item` among its parent's members, and how many follow. */
static size_t member_index(const cJSON *parent, const cJSON *item, size_t *after)
{
    size_t i = 0, n = 0;
    for (const cJSON *c = parent->child; c != NULL; c = c->next, n++) {
        if (c == item) {
            i = n;
        }
    }
    *after = n - i - 1;
    return i;
}

int tape__json_has_nul_escape(const char *s, size_t n)
{
    for (const char *p = s, *end = s + n; (p = memchr(p, '\\', (size_t)(end - p))) != NULL;
         p += 2) {
        if (end - p < 2) {
            return 0;
        }
        if (p[1] == 'u') {
            /* cJSON reads bad hex digits as 0 too. */
            int zero = end - p >= 6;
            for (int i = 2; zero && i < 6; i++) {
                zero = p[i] == '0';
            }
            if (zero) {
                return 1;
            }
            for (int i = 2; i < 6; i++) {
                if (p + i >= end || !((p[i] >= '0' && p[i] <= '9') ||
                                      ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f'))) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* 1 if the string member `item` of the frame's root holds a \u0000 that
 * cut its parsed value short. Only the member's own bytes are scanned:
 * forward when it comes before env, backward from the end when after, so
 * a large message is not read again. If the scanner gives up, the whole
 * line is checked (a \u0000 in the message then counts: refused, not
 * truncated). */
static int member_has_nul(const cJSON *root, const cJSON *item, const cJSON *env,
                          const char *line, size_t len)
{
    size_t after, env_after;
    size_t idx = member_index(root, item, &after);
    size_t env_idx = member_index(root, env, &env_after);
    const char *s = NULL, *e = NULL, *end = line + len;
    if (idx < env_idx) {
        s = tape__json_member_start(line, end, idx);
        e = s != NULL ? tape__json_skip_value(s, end) : NULL;
    } else {
        ptrdiff_t close = back_ws(line, (ptrdiff_t)len - 1);
        ptrdiff_t last = close >= 0 && line[close] == '}' ? member_end(line, close, after) : -1;
        ptrdiff_t before = last >= 0 ? back_value(line, last) : -2;
        if (before >= -1) {
            s = line + before + 1;
            e = line + last + 1;
        }
    }
    if (s == NULL || e == NULL) {
        return tape__json_has_nul_escape(line, len);
    }
    return tape__json_has_nul_escape(s, (size_t)(e - s));
}

/* The bytes of env.message inside the line; 0 if the scanner gave up. */
static int message_span(const char **ms, const char **me, const cJSON *root, const cJSON *env,
                        const cJSON *msg, const char *line, size_t len)
{
    size_t env_after, msg_after;
    size_t env_i = member_index(root, env, &env_after);
    size_t msg_i = member_index(env, msg, &msg_after);
    const char *end = line + len;
    const char *es = tape__json_member_start(line, end, env_i);
    const char *s = es != NULL ? tape__json_member_start(es, end, msg_i) : NULL;
    ptrdiff_t close = back_ws(line, (ptrdiff_t)len - 1);
    if (s == NULL || close < 0 || line[close] != '}') {
        return 0;
    }
    ptrdiff_t ee = member_end(line, close, env_after); /* env's closing brace */
    if (ee < 0 || line[ee] != '}' || line + ee < s) {
        return 0;
    }
    ptrdiff_t e = member_end(line, ee, msg_after);
    if (e < 0 || line + e < s) {
        return 0;
    }
    *ms = s;
    *me = line + e + 1;
    return 1;
}

/* A non-negative integer a JSON number holds exactly. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) {
        return 0;
    }
    double d = v->valuedouble;
    if (!(d >= 0 && d <= TAPE__JSON_INT_MAX) || (double)(uint64_t)d != d) {
        return 0;
    }
    *out = (uint64_t)d;
    return 1;
}

static int frame_bad(const char *why)
{
    return tape_error_set(TAPE_ECORRUPT, "malformed frame: %s", why);
}

static void put_utf8(char **p, unsigned cp)
{
    unsigned char *q = (unsigned char *)*p;
    if (cp < 0x80) {
        *q++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *q++ = (unsigned char)(0xC0 | cp >> 6);
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (unsigned char)(0xE0 | cp >> 12);
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (unsigned char)(0xF0 | cp >> 18);
        *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *p = (char *)q;
}

static int hex4_at(const char *s, size_t n, size_t i, unsigned *out)
{
    unsigned v = 0;
    if (n - i < 4) {
        return 0;
    }
    for (size_t k = i; k < i + 4; k++) {
        unsigned char h = (unsigned char)s[k] | 0x20;
        unsigned dgt = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : 16;
        if (dgt == 16) {
            return 0;
        }
        v = v * 16 + dgt;
    }
    *out = v;
    return 1;
}

/* The value of the JSON string whose text (between the quotes) is s[0..n),
 * into out (room for n bytes: unescaping only shrinks); returns its length.
 * Bytes are copied as they are (no UTF-8 check, as everywhere); \uXXXX
 * becomes UTF-8, a surrogate pair one character, a lone surrogate the
 * three bytes of its code unit (as WTF-8 does), so nothing is lost. An
 * escape that is not JSON stays as written. */
static size_t json_unescape(char *out, const char *s, size_t n)
{
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            *p++ = s[i];
            continue;
        }
        static const char names[] = "\"\\/bfnrt", values[] = "\"\\/\b\f\n\r\t";
        char e = s[i + 1];
        const char *simple = e != 0 ? strchr(names, e) : NULL;
        if (simple != NULL) {
            *p++ = values[simple - names];
            i++;
            continue;
        }
        unsigned cu, lo;
        if (e != 'u' || !hex4_at(s, n, i + 2, &cu)) {
            *p++ = s[i];
            continue;
        }
        i += 5;
        if (cu >= 0xD800 && cu <= 0xDBFF && n - i > 6 && s[i + 1] == '\\' && s[i + 2] == 'u' &&
            hex4_at(s, n, i + 3, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            cu = 0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        put_utf8(&p, cu);
    }
    return (size_t)(p - out);
}

static int is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return i == 64;
}

/* flags.invalid_json (true) and flags.oversize ({length, sha256}) of a
 * frame line: *fflags and, for oversize, x's length and digest. */
static int flagged_parse(unsigned int *fflags, tape_frame_x *x, const cJSON *root,
                         const cJSON *env, const cJSON *msg, const cJSON *flags,
                         const char *line, size_t len)
{
    *fflags = 0;
    if (!cJSON_IsObject(flags)) {
        return TAPE_OK;
    }
    const cJSON *ij = tape__member(flags, "invalid_json");
    const cJSON *ov = tape__member(flags, "oversize");
    if (ij == NULL && ov == NULL) {
        return TAPE_OK; /* the usual frame: two short member scans */
    }
    if (ij != NULL && !cJSON_IsNull(ij)) {
        if (!cJSON_IsBool(ij)) {
            return frame_bad("flags.invalid_json must be a boolean");
        }
        *fflags |= cJSON_IsTrue(ij) ? TAPE_FRAME_INVALID_JSON : 0u;
    }
    memset(x, 0, sizeof *x);
    if (ov != NULL && !cJSON_IsNull(ov)) {
        if (!cJSON_IsObject(ov)) {
            return frame_bad("flags.oversize must be an object");
        }
        uint64_t length;
        if (!json_uint(tape__member(ov, "length"), &length)) {
            return frame_bad("flags.oversize.length must be a non-negative integer");
        }
        const cJSON *sha = tape__member(ov, "sha256");
        if (!cJSON_IsString(sha) || !is_hex64(sha->valuestring) ||
            member_has_nul(root, tape__member(root, "flags"), env, line, len)) {
            return frame_bad("flags.oversize.sha256 must be 64 lowercase hex digits");
        }
        x->length = length;
        memcpy(x->sha256, sha->valuestring, 65);
        *fflags |= TAPE_FRAME_OVERSIZE;
    }
    if (*fflags != 0 && !cJSON_IsString(msg)) {
        return frame_bad("env.message of an invalid_json or oversize frame must be a string");
    }
    return TAPE_OK;
}

int tape__frame_parse(tape_frame **out, const cJSON *root, const char *line, size_t len,
                      tape_chunk **arena)
{
    *out = NULL;
    const cJSON *seq = NULL, *ts = NULL, *dir = NULL, *env = NULL, *cid = NULL, *flags = NULL;
    /* One pass over the members; the first of a duplicated key wins, as
     * with cJSON_GetObjectItem. The first byte picks the one candidate to
     * compare (these lookups were a visible share of decoding). */
    for (const cJSON *c = root->child; c != NULL; c = c->next) {
        const char *k = c->string;
        const cJSON **slot = NULL;
        const char *name = NULL;
        if (k == NULL) {
            continue;
        }
        switch (k[0]) {
        case 's':
            slot = &seq, name = "seq";
            break;
        case 't':
            slot = &ts, name = "ts";
            break;
        case 'd':
            slot = &dir, name = "dir";
            break;
        case 'e':
            slot = &env, name = "env";
            break;
        case 'c':
            slot = &cid, name = "correlation_id";
            break;
        case 'f':
            slot = &flags, name = "flags";
            break;
        default:
            continue;
        }
        if (*slot == NULL && tape__streq(k, name)) {
            *slot = c;
        }
    }
    uint64_t useq, uts;
    if (seq == NULL) {
        return frame_bad("seq is missing");
    }
    if (!json_uint(seq, &useq)) {
        return frame_bad("seq must be a non-negative integer");
    }
    if (ts == NULL) {
        return frame_bad("ts is missing");
    }
    if (!json_uint(ts, &uts)) {
        return frame_bad("ts must be a non-negative integer");
    }
    int d;
    if (!cJSON_IsString(dir)) {
        return frame_bad("dir is missing or not a string");
    }
    if (tape__streq(dir->valuestring, "client_to_server")) {
        d = TAPE_DIR_CLIENT_TO_SERVER;
    } else if (tape__streq(dir->valuestring, "server_to_client")) {
        d = TAPE_DIR_SERVER_TO_CLIENT;
    } else {
        return frame_bad("dir must be \"client_to_server\" or \"server_to_client\"");
    }
    if (!cJSON_IsObject(env)) {
        return frame_bad("env is missing or not an object");
    }
    const cJSON *msg = tape__member(env, "message");
    if (msg == NULL) {
        return frame_bad("env.message is missing");
    }
    if (cid != NULL && !cJSON_IsNull(cid) && !cJSON_IsString(cid)) {
        return frame_bad("correlation_id must be a string or null");
    }
    /* cJSON ends a string at a \u0000: read as it is, "client_to_server\u0000x"
     * would pass and "r\u0000x" would be the correlation id "r". One look
     * at the whole line first (memchr for backslashes: far cheaper than
     * locating the members, which showed in decode profiles); the members
     * only when the line has such an escape somewhere. */
    if (tape__json_has_nul_escape(line, len)) {
        if (member_has_nul(root, dir, env, line, len)) {
            return frame_bad("dir contains \\u0000");
        }
        if (cJSON_IsString(cid) && member_has_nul(root, cid, env, line, len)) {
            return frame_bad("correlation_id contains \\u0000");
        }
    }
    if (flags != NULL && !cJSON_IsNull(flags) && !cJSON_IsObject(flags)) {
        return frame_bad("flags must be an object");
    }
    tape_frame_x xt;
    unsigned int fflags = 0;
    int rc = flagged_parse(&fflags, &xt, root, env, msg, flags, line, len);
    if (rc != TAPE_OK) {
        return rc;
    }
    int msg_error = has_member(msg, "error");

    const char *ms, *me;
    char *printed = NULL, *raw = NULL;
    int in_line = message_span(&ms, &me, root, env, msg, line, len);
    if (!in_line) {
        if ((printed = cJSON_PrintUnformatted(msg)) == NULL) {
            return tape__oom();
        }
        ms = printed;
        me = printed + strlen(printed);
    }
    /* cJSON cut a name "error\u0000x" to "error": with such an escape in
     * the line, the message's names are read as the writer read them (its
     * scanner, when the message passes it), so that a frame's error flag
     * is the same written and read back. */
    if (fflags == 0 && in_line && tape__json_has_nul_escape(line, len)) {
        tape__jscan scan;
        if (tape__json_scan(&scan, ms, (size_t)(me - ms), NULL) == TAPE_OK) {
            msg_error = scan.is_object && scan.has_error;
        }
    }
    /* A flagged frame's message is a string standing for bytes: no error. */
    int is_error = fflags == 0 && (msg_error || cJSON_IsTrue(tape__member(flags, "is_error")));
    if (fflags != 0) {
        /* The kept bytes are the string's value, escapes undone. */
        size_t n = (size_t)(me - ms);
        if (n < 2 || ms[0] != '"' || me[-1] != '"' || (raw = malloc(n)) == NULL) {
            free(printed);
            return n < 2 || ms[0] != '"' ? frame_bad("env.message is not a string") : tape__oom();
        }
        xt.raw = raw;
        xt.raw_len = json_unescape(raw, ms + 1, n - 2);
        if (!(fflags & TAPE_FRAME_OVERSIZE)) {
            xt.length = xt.raw_len;
        }
    }
    const char *cs = cJSON_IsString(cid) ? cid->valuestring : NULL;
    tape_frame *f = frame_alloc(arena, line, len, ms, (size_t)(me - ms), in_line, cs,
                                cs ? strlen(cs) : 0, fflags != 0 ? &xt : NULL);
    free(printed);
    free(raw);
    if (f == NULL) {
        return tape__oom();
    }
    f->seq = useq;
    f->ts = (int64_t)uts;
    f->dir = d;
    f->is_error = is_error;
    f->flags = fflags;
    *out = f;
    return TAPE_OK;
}

/* ------------------------------------------------- decode: fast path
 * Most lines of a tape are frames as tape__frame_build wrote them. For
 * those, a cJSON tree per line (a malloc per value, freed again) was most
 * of a load. This path reads such a line with the strict scanner instead
 * and declines (TAPE__DECLINE) whenever the answer could differ from the
 * tree path's, which then runs as before. */

#define NAME_IS(p, n, lit) ((n) == sizeof(lit) - 1 && memcmp((p), (lit), (n)) == 0)

/* A JSON integer of plain digits up to 2^53, as json_uint takes it. */
static int fast_uint(uint64_t *out, const char *v, size_t n)
{
    if (n == 0 || n > 16 || (v[0] == '0' && n > 1)) {
        return 0;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return 0;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > ((uint64_t)1 << 53)) {
        return 0;
    }
    *out = x;
    return 1;
}

/* env: its "message" (the value's span and what the scan saw of it). */
static int fast_env(tape__jcur *c, const char **ms, size_t *mn, tape__jscan *info)
{
    const char *k, *v;
    size_t kn, vn;
    int esc, r, seen = 0;
    if (tape__jcur_open(c) != TAPE_OK) {
        return TAPE__DECLINE;
    }
    while ((r = tape__jcur_member(c, &k, &kn, &esc)) == 1) {
        if (esc) {
            return TAPE__DECLINE; /* the name could decode to "message" */
        }
        if (NAME_IS(k, kn, "message")) {
            if (seen || tape__jcur_value(c, info, ms, mn) != TAPE_OK) {
                return TAPE__DECLINE;
            }
            seen = 1;
        } else if (tape__jcur_value(c, NULL, &v, &vn) != TAPE_OK) {
            return TAPE__DECLINE;
        }
    }
    return r == 0 && seen ? TAPE_OK : TAPE__DECLINE;
}

/* flags: only is_error (a flagged frame takes the tree path). */
static int fast_flags(tape__jcur *c, int *is_error)
{
    const char *k, *v;
    size_t kn, vn;
    int esc, r, seen = 0;
    if (tape__jcur_open(c) != TAPE_OK) {
        return TAPE__DECLINE;
    }
    while ((r = tape__jcur_member(c, &k, &kn, &esc)) == 1) {
        if (esc || NAME_IS(k, kn, "invalid_json") || NAME_IS(k, kn, "oversize") ||
            tape__jcur_value(c, NULL, &v, &vn) != TAPE_OK) {
            return TAPE__DECLINE;
        }
        if (NAME_IS(k, kn, "is_error")) {
            if (seen) {
                return TAPE__DECLINE;
            }
            seen = 1;
            *is_error = NAME_IS(v, vn, "true");
        }
    }
    return r == 0 ? TAPE_OK : TAPE__DECLINE;
}

int tape__frame_parse_fast(tape_frame **out, const char *line, size_t len, tape_chunk **arena)
{
    enum { F_TYPE = 1, F_SEQ = 2, F_TS = 4, F_DIR = 8, F_ENV = 16, F_CID = 32, F_FLAGS = 64 };
    *out = NULL;
    /* cJSON ends a string at \u0000, so such a line can read differently
     * there (a name "error\u0000x" is "error"): leave it to that path. A
     * raw newline, a JSON blank between tokens, would split the line when
     * written back: that path refuses it (tape_decode's lines have none). */
    if (tape__json_has_nul_escape(line, len) || memchr(line, '\n', len) != NULL) {
        return TAPE__DECLINE;
    }
    tape__jcur c = { .s = line, .n = len };
    const char *k, *v, *ms = NULL, *cid = NULL;
    size_t kn, vn, mn = 0, cn = 0;
    uint64_t seq = 0, ts = 0;
    int esc, r, seen = 0, bit, d = 0, flag_error = 0;
    tape__jscan info;
    if (tape__jcur_open(&c) != TAPE_OK) {
        return TAPE__DECLINE;
    }
    while ((r = tape__jcur_member(&c, &k, &kn, &esc)) == 1) {
        if (esc) {
            return TAPE__DECLINE;
        }
        bit = NAME_IS(k, kn, "type")             ? F_TYPE
              : NAME_IS(k, kn, "seq")            ? F_SEQ
              : NAME_IS(k, kn, "ts")             ? F_TS
              : NAME_IS(k, kn, "dir")            ? F_DIR
              : NAME_IS(k, kn, "env")            ? F_ENV
              : NAME_IS(k, kn, "correlation_id") ? F_CID
              : NAME_IS(k, kn, "flags")          ? F_FLAGS
                                                 : 0;
        if (bit & seen) {
            return TAPE__DECLINE; /* duplicates: the first wins there; keep it simple */
        }
        seen |= bit;
        if (bit == F_ENV) {
            if (fast_env(&c, &ms, &mn, &info) != TAPE_OK) {
                return TAPE__DECLINE;
            }
            continue;
        }
        if (bit == F_FLAGS && tape__jcur_peek(&c) == '{') {
            if (fast_flags(&c, &flag_error) != TAPE_OK) {
                return TAPE__DECLINE;
            }
            continue;
        }
        if (tape__jcur_value(&c, NULL, &v, &vn) != TAPE_OK) {
            return TAPE__DECLINE;
        }
        switch (bit) {
        case F_TYPE:
            if (!NAME_IS(v, vn, "\"frame\"")) {
                return TAPE__DECLINE;
            }
            break;
        case F_SEQ:
            if (!fast_uint(&seq, v, vn)) {
                return TAPE__DECLINE;
            }
            break;
        case F_TS:
            if (!fast_uint(&ts, v, vn)) {
                return TAPE__DECLINE;
            }
            break;
        case F_DIR:
            d = NAME_IS(v, vn, "\"client_to_server\"")   ? TAPE_DIR_CLIENT_TO_SERVER
                : NAME_IS(v, vn, "\"server_to_client\"") ? TAPE_DIR_SERVER_TO_CLIENT
                                                         : 0;
            if (d == 0) {
                return TAPE__DECLINE;
            }
            break;
        case F_CID:
            if (v[0] == '"' && memchr(v, '\\', vn) == NULL) {
                cid = v + 1;
                cn = vn - 2;
            } else if (!NAME_IS(v, vn, "null")) {
                return TAPE__DECLINE;
            }
            break;
        case F_FLAGS: /* not an object (that was above): only null reads the same */
            if (!NAME_IS(v, vn, "null")) {
                return TAPE__DECLINE;
            }
            break;
        default:
            break; /* a member this library does not read: kept in the line */
        }
    }
    const int needed = F_TYPE | F_SEQ | F_TS | F_DIR | F_ENV;
    if (r != 0 || (seen & needed) != needed || tape__jcur_end(&c) != TAPE_OK) {
        return TAPE__DECLINE;
    }
    tape_frame *f = frame_alloc(arena, line, len, ms, mn, 1, cid, cn, NULL);
    if (f == NULL) {
        return tape__oom();
    }
    f->seq = seq;
    f->ts = (int64_t)ts;
    f->dir = d;
    f->is_error = (info.is_object && info.has_error) || flag_error;
    f->flags = 0;
    *out = f;
    return TAPE_OK;
}
