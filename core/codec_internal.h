/*
 * codec_internal.h - the tape model's private layout, shared by tape.c,
 * frame.c, entry.c and codec.c. Nothing here is exported.
 *
 * A tape keeps every stored line as text: frames hold their whole JSONL
 * line plus the few decoded fields callers ask for, and every non-frame
 * line (correlation, checkpoint, unknown type) is kept in one ordered list
 * together with the number of frames before it. Encoding writes those
 * lines back as they are, so unknown fields survive untouched.
 */
#ifndef TAPE_CODEC_INTERNAL_H
#define TAPE_CODEC_INTERNAL_H

#include "internal.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>

/* Key comparisons for the decode path. Keys are a few bytes long: an
 * inline loop beats a call to strcmp, which showed in decode profiles. */
static inline int tape__streq(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* cJSON_GetObjectItemCaseSensitive with the inline compare: the first
 * member named key, or NULL (also when obj is not an object). */
static inline const cJSON *tape__member(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj)) {
        return NULL;
    }
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && c->string[0] == key[0] && tape__streq(c->string, key)) {
            return c;
        }
    }
    return NULL;
}

/* Largest integer a JSON number (an IEEE double) holds exactly. */
#define TAPE__JSON_INT_MAX 9007199254740992.0

/* A frame lives in one block: the struct, then (flagged frames only) a
 * tape_frame_x and its raw bytes, then line, message and correlation id,
 * each NUL-terminated (see frame.c). The block comes from
 * malloc, or from its tape's arena when the tape made the frame itself
 * (decode, clone): then the tape frees it.
 *
 * A decoded frame stores no copy of its message: `msg` points at the
 * message's bytes inside `line` (msg_lazy), and tape_frame_message makes
 * the NUL-terminated copy on first use. Writing that copy for every frame
 * made decoding write 1.5x its input; most callers never ask for it. The
 * copy is malloc'd, published with a compare-and-swap (frames are read by
 * several threads at once) and freed with the frame (tape__frame_release
 * for arena frames). Frames whose message is not a span of the line
 * (built ones, a re-printed message) keep it NUL-terminated in the block
 * and point `message` at it from the start. */
/* What an invalid_json or oversize frame keeps besides its line, placed
 * in the frame's block right after the struct (plain frames have none). */
typedef struct tape_frame_x {
    uint64_t length;  /* oversize: the whole message's length; else raw_len */
    size_t raw_len;
    char *raw;        /* the kept bytes (in the block), NUL-terminated */
    char sha256[65];  /* oversize: lowercase hex; "" otherwise */
} tape_frame_x;

struct tape_frame {
    uint64_t seq;
    int64_t ts;
    int dir;
    int is_error;
    int in_arena;
    int msg_lazy;           /* message is malloc'd on demand, msg in line */
    unsigned int flags;     /* TAPE_FRAME_INVALID_JSON | TAPE_FRAME_OVERSIZE */
    tape_frame_x *x;        /* NULL unless flags != 0 */
    size_t line_len;
    size_t message_len;
    size_t cid_len;
    char *line;
    const char *msg;        /* message bytes (not NUL-terminated if lazy) */
    _Atomic(char *) message; /* NUL-terminated copy; NULL until made */
    char *correlation_id;   /* NULL if none */
};

/* Bump allocator for a tape's own frames. Decoding allocates one block
 * per frame between cJSON's many short-lived allocations; taking them from
 * large chunks keeps malloc's bins clean and decoding near cJSON's speed. */
typedef struct tape_chunk {
    struct tape_chunk *next;
    size_t size;
    size_t used;
} tape_chunk;

/* A non-frame line kept in position. */
typedef struct tape_xline {
    size_t before;  /* frames stored before this line */
    int type;       /* TAPE_LINE_CORRELATION / _CHECKPOINT / _UNKNOWN */
    size_t len;     /* without the newline */
    char *text;     /* NUL-terminated */
    int in_arena;   /* text is in the tape's arena (decoded) */
} tape_xline;

typedef struct tape_corr {
    char *id;
    char *status;   /* NULL if none */
    uint64_t request_seq;
    uint64_t response_seq;
    int64_t rtt_ms;
    size_t xline;   /* index of its line in xlines */
    int in_arena;   /* id and status are in the tape's arena (decoded) */
} tape_corr;

struct tape {
    char *id;
    char *name;
    char *description;
    char *session_id;
    char *protocol_version;
    char *transport_json;
    char *environment_json;
    int status;
    int64_t created_at;
    int64_t updated_at;
    int64_t finalized_at;

    char **tags;
    size_t ntags, cap_tags;

    tape_frame **frames;
    size_t nframes, cap_frames;
    tape_chunk *arena;
    tape_corr *corrs;
    size_t ncorrs, cap_corrs;
    tape_xline *xlines;
    size_t nxlines, cap_xlines;

    /* Stats, maintained as frames are appended, pushed or accounted, so a
     * frameless tape (meta clone, writer header, entry) still has them. */
    uint64_t frame_count;
    uint64_t last_sequence;
    uint64_t c2s;
    uint64_t s2c;
    uint64_t error_count;
    uint64_t correlation_count;
    int64_t duration_ms;
    uint64_t stored_bytes;    /* stored frame + non-frame lines, with '\n' */
    uint64_t accounted_bytes; /* lines counted by tape_account_frame only */
    int has_body;             /* 0: frameless; file size starts at size_base */
    uint64_t size_base;
    int size_tracks_init;     /* frameless: size_base excludes the init line, whose
                               * current length is added (writer headers, whose
                               * session id or protocol version may change) */

    /* The init line as decoded, written back verbatim until a field it
     * carries changes (then it is rebuilt from the fields + init_extra). */
    char *init_line;
    size_t init_line_len;
    cJSON *init_extra;  /* unknown init keys (object) or NULL */
    cJSON *meta_extra;  /* unknown .meta.json keys (object) or NULL */
    cJSON *stats_extra; /* unknown keys of meta "stats" (object) or NULL */
};

struct tape_entry {
    atomic_size_t refs;
    tape *t;          /* frameless, never modified after creation */
    tape_stats stats; /* computed once */
};

/* ---- tape.c */
/* A tape with every field empty (no id, created_at TAPE_TIME_NONE). */
tape *tape__alloc(void);
/* Store a frame (ownership moves on success) and count it. */
int tape__store_frame(tape *t, tape_frame *f);
/* Count a frame into the stats (no ownership change). */
void tape__count_frame(tape *t, const tape_frame *f);
/* Store a non-frame line (text copied into arena, or malloc'd if NULL). */
int tape__store_xline(tape *t, int type, const char *text, size_t len, tape_chunk **arena);
/* Store a decoded correlation whose line is the last stored xline;
 * id and status are copied (into arena, or malloc'd if NULL). */
int tape__store_corr(tape *t, const char *id, uint64_t req, uint64_t resp, int64_t rtt,
                     const char *status, tape_chunk **arena);
/* Replace a string field with a copy of s (NULL clears). */
int tape__set_str(char **field, const char *s);
/* Drop the verbatim init line (an init field changed). */
void tape__init_line_drop(tape *t);
/* Compute the stats, file size included. */
int tape__stats(tape_stats *out, const tape *t);
/* 1 if ms can be written and read back as an ISO time (years 0000-9999). */
int tape__time_ok(int64_t ms);

/* ---- frame.c */
/* n bytes from the arena (NULL on allocation failure); freed with it. */
void *tape__arena_alloc(tape_chunk **arena, size_t n);
void tape__arena_free(tape_chunk *arena);
/* Make the first chunk n bytes (decode knows roughly what it needs). */
void tape__arena_reserve(tape_chunk **arena, size_t n);
/* malloc for blocks that will be filled at once (huge-page friendly);
 * released with free(). */
void *tape__big_alloc(size_t n);
/* Free what a frame owns outside its block (a lazily made message copy);
 * for arena frames, whose block goes with the arena. */
void tape__frame_release(tape_frame *f);
/* Copy a frame; arena NULL: malloc. */
tape_frame *tape__frame_copy(const tape_frame *f, tape_chunk **arena);
/* Build a frame line from a caller's description. session_id may be NULL;
 * arena NULL: malloc (a frame of its own, for tape_frame_free). */
int tape__frame_build(tape_frame **out, uint64_t seq, const tape_frame_desc *desc,
                      int64_t created_at, const char *session_id, tape_chunk **arena);
/* JSON scanning of text cJSON has accepted (see frame.c): the start of
 * member `index`'s value in the object at p, the end of the value at p;
 * NULL when the text is not what was expected. */
const char *tape__json_member_start(const char *p, const char *end, size_t index);
const char *tape__json_skip_value(const char *p, const char *end);
/* 1 if s holds an escape cJSON decodes as U+0000 (\u0000, or \u with bad
 * hex digits), which cuts a parsed string short. */
int tape__json_has_nul_escape(const char *s, size_t n);
/* Decode a parsed frame line (arena NULL: malloc). Sets a message without
 * a line number. */
int tape__frame_parse(tape_frame **out, const cJSON *root, const char *line, size_t len,
                      tape_chunk **arena);
/* The same for a frame line as this library writes it, without cJSON:
 * TAPE_OK with *out, or TAPE__DECLINE when the line is anything else
 * (another type, a flagged frame, escapes in names, numbers past 2^53,
 * anything the strict check refuses): then parse it with cJSON and
 * tape__frame_parse, which give the same frame for every line this path
 * takes (tests/fuzz/fuzz_frame_fast.c checks that). */
#define TAPE__DECLINE 2
int tape__frame_parse_fast(tape_frame **out, const char *line, size_t len, tape_chunk **arena);

/* ---- entry.c */
/* Wrap a frameless tape in a new entry (takes ownership, even on failure). */
int tape__entry_from_frameless(tape_entry **out, tape *t);

/* ---- sha256.c (FIPS 180-4) */
void tape__sha256(unsigned char out[32], const void *data, size_t len);
/* The digest as 64 lowercase hex digits and a NUL. */
void tape__sha256_hex(char out[65], const void *data, size_t len);

/* ---- jscan.c */
/* What the writer's check learns of a message. */
typedef struct tape__jscan {
    int is_object;  /* the value is an object */
    int has_error;  /* ... with a member "error" (names as decoded) */
    int has_method; /* ... "method" */
    int has_id;     /* ... "id" */
} tape__jscan;
/* TAPE_OK if s[0..n) is exactly one JSON value under the writing rules
 * (RFC 8259 grammar, JSON blanks only, no raw control character in a
 * string, JSON escapes, lone surrogate escapes allowed, nesting up to
 * 1000); else TAPE_EINVAL with "<what> is not valid JSON: ... at byte N"
 * (what NULL: no message is set). No allocation. */
int tape__json_scan(tape__jscan *out, const char *s, size_t n, const char *what);
/* A cursor over an object's members for the reader's fast path
 * (tape__frame_parse_fast): the same strict rules as tape__json_scan,
 * no tree, and no error message (a refusal means "use cJSON"). Every
 * call returns TAPE_OK (or 1 / 0, below) or TAPE_EINVAL. */
typedef struct tape__jcur {
    const char *s;
    size_t n;
    size_t i;
    const char *what; /* the scanner's own use: NULL here */
    int first;        /* no member read yet */
} tape__jcur;
/* Blanks, then the '{' of an object at c->i. */
int tape__jcur_open(tape__jcur *c);
/* The next member's name (its bytes between the quotes, *escaped if they
 * hold a backslash) and its ':': 1; the closing '}': 0. */
int tape__jcur_member(tape__jcur *c, const char **name, size_t *name_len, int *escaped);
/* The member's value, checked; info (may be NULL) as tape__json_scan's. */
int tape__jcur_value(tape__jcur *c, tape__jscan *info, const char **value, size_t *value_len);
/* The byte after the blanks (not taken), or -1 at the end or on a bad blank. */
int tape__jcur_peek(tape__jcur *c);
/* Nothing but blanks is left. */
int tape__jcur_end(tape__jcur *c);
/* Copy s[0..n), which tape__json_scan accepted, to dst (room for n bytes)
 * without the blanks between tokens; returns the length written. */
size_t tape__json_minify(char *dst, const char *s, size_t n);

/* ---- codec.c */
/* cJSON_ParseWithLength that also rejects trailing non-whitespace. */
cJSON *tape__json_parse(const char *text, size_t len);
/* Print obj compactly followed by '\n'; NULL on allocation failure. */
char *tape__json_line(const cJSON *obj, size_t *out_len);
/* The init line with '\n' (verbatim if kept). */
int tape__init_line(char **out, size_t *out_len, const tape *t);
/* Length of the init line with '\n' without building it when kept. */
int tape__init_line_len(size_t *out, const tape *t);
/* Undo the last tape_add_correlation on t (tape.c). */
void tape__drop_last_correlation(tape *t);
/* Build a correlation line (no newline). */
char *tape__corr_line(size_t *out_len, const char *id, uint64_t req, uint64_t resp,
                      int64_t rtt, const char *status);

#endif
