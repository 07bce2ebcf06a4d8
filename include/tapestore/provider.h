/**
 * @file
 * provider.h - the API for provider authors: the backend vtable, the
 * provider struct, and the helpers a backend needs (errors, config, query
 * terms, line codec, results). A provider includes only this header.
 *
 * A provider is a named factory. The core calls validate() with the config
 * before anything is created, then create() to make a backend: a vtable of
 * ops (tape_backend_ops) plus the backend's own state pointer `self`.
 *
 * Every op returns TAPE_OK or a negative TAPE_E* code and sets the message
 * with tape_error_set(). Arguments passed into an op are borrowed for the
 * duration of the call; what an op returns through an out-parameter is
 * owned by the caller (the core).
 */
#ifndef TAPESTORE_PROVIDER_H
#define TAPESTORE_PROVIDER_H

#include "tapestore.h"

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Errors and logging from providers                                   */
/* ------------------------------------------------------------------ */

/** Set this thread's error code and message (printf format); returns
 *  `code` so a provider can write `return tape_error_set(TAPE_EIO, ...)`. */
TAPE_API int tape_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/** tape_error_set with a va_list. */
TAPE_API int tape_error_setv(int code, const char *fmt, va_list ap);
/** Set this thread's error code and message, the text taken verbatim (no
 *  format: for bindings, whose text may hold '%'). NULL msg: the code's
 *  name. Messages longer than 8 KiB are cut at a UTF-8 character boundary
 *  and end in "...". Returns `code`. */
TAPE_API int tape_error_set_message(int code, const char *msg);
/** Send a message to the host's log hook, if any, verbatim. */
TAPE_API void tape_log_message(int level, const char *msg);
/** Send a message to the host's log hook, if any. */
TAPE_API void tape_log(int level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------ */
/* Config accessors (for validate and create)                          */
/* ------------------------------------------------------------------ */

/** TAPE_ECONFIG naming the first key of c not in the NULL-terminated list. */
TAPE_API int tape_config_check_keys(const tape_config *c, const char *const *allowed);
/** 1 if the key is present (even as null), else 0. */
TAPE_API int tape_config_has(const tape_config *c, const char *key);
/* Typed getters: a missing key (or JSON null) yields the default; a value of
 * the wrong type gives TAPE_ECONFIG naming the key. Strings are borrowed
 * from the config. */
/** String value (borrowed), or def. */
TAPE_API int tape_config_get_string(const char **out, const tape_config *c, const char *key,
                                    const char *def);
/** Integer value, or def. */
TAPE_API int tape_config_get_int(int64_t *out, const tape_config *c, const char *key,
                                 int64_t def);
/** Boolean value as 1 or 0, or def. */
TAPE_API int tape_config_get_bool(int *out, const tape_config *c, const char *key, int def);
/** The value's JSON text, or NULL if absent. Free with tape_string_free. */
TAPE_API int tape_config_get_json(char **out, const tape_config *c, const char *key);

/* ------------------------------------------------------------------ */
/* Query terms (for backends that push a query down)                   */
/* ------------------------------------------------------------------ */

/* Keys of the query language; new keys are added at the end. */
#define TAPE_Q_SESSION_ID 0      /**< string */
#define TAPE_Q_NAME_CONTAINS 1   /**< string, ASCII case-insensitive substring */
#define TAPE_Q_TAGS_ANY 2        /**< list of strings */
#define TAPE_Q_TAGS_ALL 3        /**< list of strings */
#define TAPE_Q_STATUS 4          /**< int: TAPE_STATUS_* */
#define TAPE_Q_CREATED_AFTER 5   /**< int ms, exclusive */
#define TAPE_Q_CREATED_BEFORE 6  /**< int ms, exclusive */
#define TAPE_Q_MIN_DURATION_MS 7 /**< int, inclusive */
#define TAPE_Q_MAX_DURATION_MS 8 /**< int, inclusive */
#define TAPE_Q_MIN_FRAMES 9      /**< int, inclusive */
#define TAPE_Q_MAX_FRAMES 10     /**< int, inclusive */
#define TAPE_Q_TEXT 11           /**< string, ASCII case-insensitive substring of a frame message */
#define TAPE_Q_ORDER_BY 12       /**< int: TAPE_ORDER_* (always present: default created_at) */
#define TAPE_Q_DESCENDING 13     /**< int 0/1 (always present) */
#define TAPE_Q_LIMIT 14          /**< int (absent: no limit) */
#define TAPE_Q_CURSOR 15         /**< string */
/* Added after version 0.1.0: */
#define TAPE_Q_STRICT 16         /**< int 0/1: a tape that cannot be read fails the query
                                  * (default: it is skipped and reported to the log hook) */
#define TAPE_Q_KEY_COUNT 17      /**< number of keys (one more than the last) */

#define TAPE_ORDER_CREATED_AT 0  /**< order_by "created_at" */
#define TAPE_ORDER_UPDATED_AT 1  /**< order_by "updated_at" */
#define TAPE_ORDER_NAME 2        /**< order_by "name" */
#define TAPE_ORDER_DURATION_MS 3 /**< order_by "duration_ms" */
#define TAPE_ORDER_FRAME_COUNT 4 /**< order_by "frame_count" */
#define TAPE_ORDER_ID 5          /**< order_by "id" */

/** 1 if the query sets the key, else 0. */
TAPE_API int tape_query_has(const tape_query *q, int key);
/** String value (borrowed) or NULL. */
TAPE_API const char *tape_query_string(const tape_query *q, int key);
/** Integer value, or 0 when absent. */
TAPE_API int64_t tape_query_int(const tape_query *q, int key);
/** List length and items (borrowed) of a list key. */
TAPE_API size_t tape_query_list_count(const tape_query *q, int key);
/** The i-th item of a list key (borrowed); NULL if out of range. */
TAPE_API const char *tape_query_list_at(const tape_query *q, int key, size_t i);
/** Name of a key as it appears in JSON ("tags_any"), or NULL. */
TAPE_API const char *tape_query_key_name(int key);

/** Compare two entries in the query's order (ties broken by id): <0, 0, >0. */
TAPE_API int tape_query_compare(const tape_query *q, const tape_entry *a, const tape_entry *b);
/** The cursor that resumes after entry `last` in q's order. Free with
 *  tape_string_free. A native search must produce cursors with this so
 *  they stay interchangeable with the core's. */
TAPE_API int tape_query_cursor_after(char **out, const tape_query *q, const tape_entry *last);
/** 1 if entry e comes after q's cursor in q's order (or q has no cursor). */
TAPE_API int tape_query_after_cursor(const tape_query *q, const tape_entry *e);

/* Building a result page (native search). */
/** A new empty page for a native search. Free it with tape_result_free. */
TAPE_API int tape_result_new(tape_result **out);
/** Append an entry; the result takes a new reference (e stays the
 *  caller's). */
TAPE_API int tape_result_push(tape_result *r, const tape_entry *e);
/** One page of `entries` (borrowed; the page takes its own references)
 *  under q: the core's matcher for every term except `text`, q's order,
 *  resumption after q's cursor, q's limit and the next cursor, exactly as
 *  the core's fallback search computes them. The `text` term is not
 *  applied: a search that filters by text itself (a script provider, an
 *  index) passes only the entries whose frames match. */
TAPE_API int tape_query_page(tape_result **out, const tape_query *q,
                             const tape_entry *const *entries, size_t count);
/** Set the next-page cursor (copied; NULL: last page). */
TAPE_API int tape_result_set_cursor(tape_result *r, const char *cursor);

/* ------------------------------------------------------------------ */
/* Line codec (for backends that stream the tape format)               */
/* ------------------------------------------------------------------ */

#define TAPE_LINE_INIT 1        /**< the init line (tape metadata) */
#define TAPE_LINE_FRAME 2       /**< a frame line */
#define TAPE_LINE_CORRELATION 3 /**< a correlation line */
#define TAPE_LINE_CHECKPOINT 4  /**< a checkpoint line */
#define TAPE_LINE_UNKNOWN 5     /**< a valid line of a type this version does not know */

/** Classify and parse one line (without its newline). For a frame line
 *  *out_frame is a new frame (free with tape_frame_free); for any other
 *  valid line *out_frame is NULL. Invalid JSON or a malformed frame gives
 *  TAPE_ECORRUPT. out_frame may be NULL to only classify. */
TAPE_API int tape_line_parse(int *out_type, tape_frame **out_frame, const char *line,
                             size_t len);
/** Free a frame made by tape_line_parse, tape_frame_new or tape_frame_clone (NULL: no-op). */
TAPE_API void tape_frame_free(tape_frame *f);
/** Build a frame the way tape_append_frame would on `header` (its
 *  created_at and session_id), with an explicit seq; used by writers that
 *  do not hold the whole tape. */
TAPE_API int tape_frame_new(tape_frame **out, const tape *header, uint64_t seq,
                            const tape_frame_desc *desc);
/** Deep copy of a frame. Free with tape_frame_free. */
TAPE_API int tape_frame_clone(tape_frame **out, const tape_frame *f);
/** Add a parsed frame to a tape (takes ownership of f on success). Its seq
 *  must be greater than the last frame's. */
TAPE_API int tape_push_frame(tape *t, tape_frame *f);
/** Decode a .meta.json document into an entry. */
TAPE_API int tape_entry_from_meta(tape_entry **out, const char *meta, size_t len);
/** A frameless copy of the tape's metadata (for writers and listings). */
TAPE_API int tape_clone_meta(tape **out, const tape *t);
/** Copy the metadata a recording may learn mid-session (name, description,
 *  session id, protocol version, transport, environment, tags) from src to
 *  dst; unchanged fields are left alone (a compare each), so a backend
 *  that keeps its own copy of a recording can call this with the header
 *  of every append. Out of memory midway may leave part of it copied. */
TAPE_API int tape_copy_learned_meta(tape *dst, const tape *src);
/** Count a frame into the tape's stats without storing it (writers that
 *  stream frames to storage keep a frameless header tape this way). */
TAPE_API int tape_account_frame(tape *t, const tape_frame *f);
/** TAPE_ELIMIT, with a message naming the frame (or line) and its length,
 *  if any line the encoder would write for t is longer than
 *  max_line_bytes (0: TAPE_MAX_LINE_DEFAULT); else TAPE_OK. A store calls
 *  this at save with its own configured limit, so that everything it
 *  accepts reads back with the config it was written with. */
TAPE_API int tape_check_line_limit(const tape *t, size_t max_line_bytes);
/** The same check for one frame (streaming writers, at append). */
TAPE_API int tape_frame_check_line_limit(const tape_frame *f, size_t max_line_bytes);
/** Encode the init line (with '\n'). Free with tape_string_free. */
TAPE_API int tape_encode_init_line(char **out, size_t *out_len, const tape *t);
/** Encode a checkpoint line for the tape's current stats (with '\n'). */
TAPE_API int tape_encode_checkpoint_line(char **out, size_t *out_len, const tape *t);
/** Encode the tape's i-th correlation as a line (with '\n'). */
TAPE_API int tape_encode_correlation_line(char **out, size_t *out_len, const tape *t,
                                          size_t i);

/* ------------------------------------------------------------------ */
/* Backend vtable                                                      */
/* ------------------------------------------------------------------ */

/** Receives one entry of a listing (borrowed: take tape_entry_ref to keep
 *  it). Return 0 to continue, non-zero to stop the listing early. */
typedef int (*tape_entry_sink)(void *sink_data, tape_entry *e);

/** A backend's vtable. Every op gets the backend's state `self`; see docs/providers-c.md for
 *  each op's contract and core fallback. */
typedef struct tape_backend_ops {
    unsigned int version;       /**< TAPE_BACKEND_OPS_VERSION */
    unsigned int flags;         /**< TAPE_CAP_THREAD_SAFE, TAPE_CAP_PERSISTENT */

    /* Required. */
    /** Store t (borrowed), replacing any tape with the same id. */
    int (*save)(void *self, const tape *t);
    /** Load tape `id` into *out (a new tape the core frees); TAPE_ENOTFOUND if absent. */
    int (*load)(tape **out, void *self, const char *id);
    /** Delete tape `id`; TAPE_ENOTFOUND if absent. */
    int (*remove)(void *self, const char *id);
    /** Call sink for every tape. `q` is a hint: the backend may skip
     *  entries q cannot match, never entries it can; the core applies
     *  the matcher, ordering and paging afterwards. */
    int (*list)(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data);
    /** Release everything (infallible). */
    void (*free)(void *self);

    /* Optional: NULL means "not implemented" and the core falls back. */
    /** Initialise (connect, create directories). Called once, lazily. */
    int (*open)(void *self);
    /** Flush before free; may fail. */
    int (*close)(void *self);
    /** Set *out_exists to 1 or 0. */
    int (*exists)(int *out_exists, void *self, const char *id);
    /** The whole query, ordering and paging included; must return exactly
     *  what the core's matcher would. */
    int (*search)(tape_result **out, void *self, const tape_query *q);
    /** Fill *out (initialised with TAPE_STORE_STATS_INIT) for the whole store. */
    int (*stats)(tape_store_stats *out, void *self);

    /* Streaming writer: all three or none. */
    /** `header` is frameless. TAPE_EEXISTS if the id exists, TAPE_EBUSY if
     *  another writer holds it. */
    int (*writer_begin)(void **out_writer, void *self, const tape *header);
    /** `header` carries the stats including this frame. */
    int (*writer_append)(void *writer, const tape_frame *f, const tape *header);
    /** Record a correlation (index `i` of header's correlations). */
    int (*writer_correlate)(void *writer, const tape *header, size_t i);
    /** finalize != 0: the tape is finished (status finalized in header);
     *  0: abandoned (keep what was appended, release the lease). Frees the
     *  writer either way, except when ops.flags has TAPE_CAP_WRITER_RETRY
     *  and a finalize fails: then the writer is kept, and the core calls
     *  writer_end again (1 to retry, 0 to abandon). */
    int (*writer_end)(void *writer, const tape *header, int finalize);

    /* Streaming ranged reads: all three or none. */
    /** Open an iterator over tape `id`'s frames with from_seq <= seq <= to_seq; TAPE_ENOTFOUND
     *  if absent. */
    int (*frames_open)(void **out_iter, void *self, const char *id, uint64_t from_seq,
                       uint64_t to_seq);
    /** TAPE_OK with *out (owned by the iterator until the next call),
     *  TAPE_DONE at the end, or an error. */
    int (*frames_next)(const tape_frame **out, void *iter);
    /** Release the iterator (infallible). */
    void (*frames_close)(void *iter);

    /** Provider-specific op `op` (in_json may be NULL). *out_json, if set, must come from malloc
     *  (the core frees it); an unknown op gives TAPE_EUNSUPPORTED. */
    int (*control)(char **out_json, void *self, const char *op, const char *in_json);
    /* version 1 ends here; new ops are added below this line */
} tape_backend_ops;
/** Layout version of tape_backend_ops these headers declare. */
#define TAPE_BACKEND_OPS_VERSION 1
/** Every op NULL: set the ones you implement (designated initialisers on a
 * static const vtable work too, as long as .version is set). */
#define TAPE_BACKEND_OPS_INIT { TAPE_BACKEND_OPS_VERSION, 0, NULL, NULL, NULL, NULL, NULL, NULL, \
                                NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                                NULL, NULL }

/** A provider: a named factory of backends. The registry copies this
 *  struct (and the strings) at registration. */
typedef struct tape_provider {
    unsigned int version;       /**< TAPE_PROVIDER_VERSION */
    const char *name;           /**< [a-z0-9_-]{1,64} */
    const char *description;    /**< one line, may be NULL */
    unsigned int provider_version; /**< the provider's own version number */
    unsigned int capabilities;  /**< TAPE_CAP_* it implements natively */
    void *userdata;             /**< passed to every function below */
    /** Check a config; TAPE_ECONFIG naming the key. Creates nothing. */
    int (*validate)(void *userdata, const tape_config *config);
    /** Create a backend (the config is already validated). */
    int (*create)(const tape_backend_ops **out_ops, void **out_self, void *userdata,
                  const tape_config *config);
    /** Called once when the provider is unregistered and no store uses it
     *  any more (optional). */
    void (*destroy)(void *userdata);
    /* version 1 ends here; new fields are added below this line */
} tape_provider;
/** Layout version of tape_provider these headers declare. */
#define TAPE_PROVIDER_VERSION 1
/** Initialiser: this version, every other field 0 or NULL (set name and create). */
#define TAPE_PROVIDER_INIT { TAPE_PROVIDER_VERSION, NULL, NULL, 0, 0, NULL, NULL, NULL, NULL }

/** Register a provider (copied). TAPE_EEXISTS if the name is taken;
 *  TAPE_EVERSION if p->version is newer than this library knows. */
TAPE_API int tape_registry_register(tape_registry *reg, const tape_provider *p);

/** Builtin factories, exported so a provider can wrap (delegate to) one. */
TAPE_API const tape_provider *tape_provider_memory(void);
/** The filesystem provider (Shadowcat tape format 2.0 files). */
TAPE_API const tape_provider *tape_provider_filesystem(void);
/** The sqlite provider. */
TAPE_API const tape_provider *tape_provider_sqlite(void);

/* ------------------------------------------------------------------ */
/* Plugins                                                             */
/* ------------------------------------------------------------------ */

/** A plugin library exports two symbols:
 *    const unsigned int tape_plugin_abi = TAPE_PLUGIN_ABI_VERSION;
 *    int tape_plugin_init(tape_registry *reg, unsigned int abi_version);
 *  The host refuses a plugin whose tape_plugin_abi it does not support
 *  (TAPE_EVERSION) before running any of its code; tape_plugin_init then
 *  registers the plugin's providers with tape_registry_register and
 *  returns TAPE_OK. Use TAPE_PLUGIN_EXPORT on both definitions. */
#define TAPE_PLUGIN_ABI_VERSION 1
#define TAPE_PLUGIN_ABI_SYMBOL "tape_plugin_abi" /**< name of the ABI version symbol (for dlsym) */
#define TAPE_PLUGIN_ENTRY "tape_plugin_init" /**< name of the entry point (for dlsym) */
/** Marks the two plugin symbols for export from a library built with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define TAPE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define TAPE_PLUGIN_EXPORT
#endif
/** Type of a plugin's tape_plugin_init. */
typedef int (*tape_plugin_init_fn)(tape_registry *reg, unsigned int abi_version);

#ifdef __cplusplus
}
#endif
#endif /* TAPESTORE_PROVIDER_H */
