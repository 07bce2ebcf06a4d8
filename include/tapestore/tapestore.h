/**
 * @file
 * tapestore.h - the host API of tapestore: registry, stores, tapes,
 * queries and errors.
 *
 * Conventions (see docs/abi.md for the full policy):
 *  - Every fallible function returns int: TAPE_OK (0) on success or a
 *    negative TAPE_E* code. Iterators answer TAPE_DONE (a positive 1) at
 *    the end. The message of the last error is thread-local: tape_errmsg().
 *  - Out-parameters come first. Whatever a function hands back through an
 *    out-parameter is owned by the caller and released with that type's
 *    _free function; every _free accepts NULL.
 *  - Pointers returned by accessors ("borrowed") stay valid until the
 *    object they came from is modified or freed. The same holds for a
 *    `const` out-parameter (const char **, const tape_frame **, ...): what
 *    it receives is borrowed, never freed by the caller.
 *  - A NULL where an object is required gives TAPE_EINVAL, never a crash.
 *  - Public structs start with `unsigned int version`; initialise them with
 *    their _INIT macro. They only ever grow at the end.
 *  - Time is int64_t milliseconds since the Unix epoch (UTC).
 *  - Every function may be called from any thread; a single object
 *    (tape, query, result) must not be modified from two threads at once.
 */
#ifndef TAPESTORE_H
#define TAPESTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a function exported from libtapestore: default visibility (dllexport/dllimport on
 *  Windows). */
#if defined(_WIN32) && defined(TAPE_BUILDING_LIBRARY)
#define TAPE_API __declspec(dllexport)
#elif defined(_WIN32)
#define TAPE_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define TAPE_API __attribute__((visibility("default")))
#else
#define TAPE_API
#endif

#define TAPE_VERSION_MAJOR 0        /**< major version of these headers */
#define TAPE_VERSION_MINOR 1        /**< minor version of these headers */
#define TAPE_VERSION_PATCH 0        /**< patch version of these headers */
#define TAPE_VERSION_STRING "0.1.0" /**< "MAJOR.MINOR.PATCH" of these headers */

/** Library version as MAJOR*10000 + MINOR*100 + PATCH (of the loaded .so). */
TAPE_API int tape_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

#define TAPE_OK 0              /**< success */
#define TAPE_DONE 1            /**< an iterator has no more items (not an error) */
#define TAPE_ENOTFOUND -1      /**< no tape / provider / key of that name */
#define TAPE_EEXISTS -2        /**< name already taken */
#define TAPE_EINVAL -3         /**< invalid argument (NULL, bad id, bad value) */
#define TAPE_ECONFIG -4        /**< invalid configuration (message names the key) */
#define TAPE_EIO -5            /**< operating-system I/O failure */
#define TAPE_ECORRUPT -6       /**< stored data is malformed */
#define TAPE_EUNSUPPORTED -7   /**< the backend cannot do this */
#define TAPE_ENOMEM -8         /**< out of memory */
#define TAPE_EPROVIDER -9      /**< a provider (often a script) failed */
#define TAPE_EBUSY -10         /**< the tape is being written by someone else */
#define TAPE_EVERSION -11      /**< struct / vtable / plugin version not supported */
#define TAPE_EQUERY -12        /**< invalid query (message names the key) */
#define TAPE_ELIMIT -13        /**< a configured limit was exceeded */
#define TAPE_ESTATE -14        /**< call not valid in this state (finished writer) */

/** Message of the last error on this thread. Owned by the library, never
 *  NULL; valid until the next failing call on this thread. */
TAPE_API const char *tape_errmsg(void);
/** Code of the last error on this thread (TAPE_OK if none yet). */
TAPE_API int tape_errcode(void);
/** Static name of a code, e.g. "TAPE_ENOTFOUND". Never NULL. */
TAPE_API const char *tape_strerror(int code);

/* ------------------------------------------------------------------ */
/* Logging: the library never prints; warnings go to this hook.        */
/* ------------------------------------------------------------------ */

#define TAPE_LOG_DEBUG 0 /**< detail for debugging */
#define TAPE_LOG_INFO 1  /**< a normal event worth knowing about */
#define TAPE_LOG_WARN 2  /**< something an operator should look at */
#define TAPE_LOG_ERROR 3 /**< a failure no caller could be told about */

/** `msg` is borrowed for the duration of the call. May be called from any
 *  thread, possibly concurrently. */
typedef void (*tape_log_fn)(void *userdata, int level, const char *msg);

/** Install the process-wide log hook (NULL removes it). */
TAPE_API void tape_log_set(tape_log_fn fn, void *userdata);

/* ------------------------------------------------------------------ */
/* Opaque handles                                                      */
/* ------------------------------------------------------------------ */

typedef struct tape tape;                       /**< a tape: metadata + frames */
typedef struct tape_frame tape_frame;           /**< one recorded message */
typedef struct tape_entry tape_entry;           /**< a tape's metadata + stats, no frames */
typedef struct tape_query tape_query;           /**< a parsed query */
typedef struct tape_result tape_result;         /**< one page of query results */
typedef struct tape_config tape_config;         /**< a parsed JSON config object */
typedef struct tape_registry tape_registry;     /**< a set of named providers */
typedef struct tape_provider_info tape_provider_info; /**< a registered provider */
typedef struct tape_provider_list tape_provider_list; /**< a snapshot of a registry's providers */
typedef struct tape_store tape_store;           /**< an open store */
typedef struct tape_writer tape_writer;         /**< a recording in progress */
typedef struct tape_frame_iter tape_frame_iter; /**< frames of a stored tape */

/** Free a string the library returned through an out-parameter. */
TAPE_API void tape_string_free(char *s);

/* ------------------------------------------------------------------ */
/* Tapes                                                               */
/* ------------------------------------------------------------------ */

#define TAPE_ID_MAX 128         /**< longest valid tape id, in bytes */
#define TAPE_TIME_NONE INT64_MIN /**< "no time set" */

/* Frame direction. */
#define TAPE_DIR_CLIENT_TO_SERVER 1 /**< a message the client sent to the server */
#define TAPE_DIR_SERVER_TO_CLIENT 2 /**< a message the server sent to the client */

/* Tape status. */
#define TAPE_STATUS_RECORDING 1   /**< being recorded (or abandoned) */
#define TAPE_STATUS_FINALIZED 2   /**< finished: the recording is complete */

/** Check a tape id: 1..TAPE_ID_MAX bytes of [A-Za-z0-9._-], not starting
 *  with '.'. Returns TAPE_OK or TAPE_EINVAL with a message saying why. */
TAPE_API int tape_id_validate(const char *id);

/** Create an empty tape with status recording and created_at = now.
 *  `id` NULL generates a UUID v4; otherwise it is validated and copied.
 *  *out is freed with tape_free. */
TAPE_API int tape_new(tape **out, const char *id);
/** Deep copy. */
TAPE_API int tape_clone(tape **out, const tape *t);
/** Free a tape and its frames (NULL: no-op). */
TAPE_API void tape_free(tape *t);

/* Metadata accessors. Strings are borrowed (NULL when unset). Setters copy
 * their argument; NULL clears an optional field. */
/** The tape's id (borrowed). */
TAPE_API const char *tape_id(const tape *t);
/** The name (borrowed; NULL when unset). */
TAPE_API const char *tape_name(const tape *t);
/** Set the name (copied; NULL clears it). */
TAPE_API int tape_set_name(tape *t, const char *name);
/** The description (borrowed; NULL when unset). */
TAPE_API const char *tape_description(const tape *t);
/** Set the description (copied; NULL clears it). */
TAPE_API int tape_set_description(tape *t, const char *description);
/** The MCP session id (borrowed; NULL when unset). */
TAPE_API const char *tape_session_id(const tape *t);
/** Set the MCP session id (copied; NULL clears it). */
TAPE_API int tape_set_session_id(tape *t, const char *session_id);
/** The MCP protocol version, e.g. "2025-06-18" (borrowed; NULL when unset). */
TAPE_API const char *tape_protocol_version(const tape *t);
/** Set the MCP protocol version (copied; NULL clears it). */
TAPE_API int tape_set_protocol_version(tape *t, const char *protocol_version);
/** TAPE_STATUS_RECORDING or TAPE_STATUS_FINALIZED (0 for a NULL tape). */
TAPE_API int tape_status(const tape *t);
/** Set TAPE_STATUS_RECORDING or TAPE_STATUS_FINALIZED; any other value gives TAPE_EINVAL. */
TAPE_API int tape_set_status(tape *t, int status);
/** Creation time, ms since the Unix epoch. */
TAPE_API int64_t tape_created_at(const tape *t);
/** Set the creation time (ms since the epoch; TAPE_TIME_NONE gives TAPE_EINVAL). */
TAPE_API int tape_set_created_at(tape *t, int64_t ms);
/** Time of the last update, ms since the epoch; TAPE_TIME_NONE if unset. */
TAPE_API int64_t tape_updated_at(const tape *t);
/** Set the update time (ms since the epoch; TAPE_TIME_NONE unsets it). */
TAPE_API int tape_set_updated_at(tape *t, int64_t ms);
/** Time the recording was finalized, ms since the epoch; TAPE_TIME_NONE if unset. */
TAPE_API int64_t tape_finalized_at(const tape *t);
/** Set the finalize time (ms since the epoch; TAPE_TIME_NONE unsets it). */
TAPE_API int tape_set_finalized_at(tape *t, int64_t ms);
/** Transport / environment as compact JSON text (borrowed, NULL if unset).
 *  The setters take any JSON value as text (validated); NULL clears. */
TAPE_API const char *tape_transport_json(const tape *t);
/** Set the transport from JSON text (validated; NULL clears it). */
TAPE_API int tape_set_transport_json(tape *t, const char *json);
/** The environment as compact JSON text (borrowed, NULL if unset). */
TAPE_API const char *tape_environment_json(const tape *t);
/** Set the environment from JSON text (validated; NULL clears it). */
TAPE_API int tape_set_environment_json(tape *t, const char *json);

/* Tags: a set of non-empty strings kept in insertion order. */
/** Number of tags. */
TAPE_API size_t tape_tag_count(const tape *t);
/** The i-th tag in insertion order (borrowed); NULL if out of range. */
TAPE_API const char *tape_tag_at(const tape *t, size_t i);
/** 1 if the tape has the tag, else 0. */
TAPE_API int tape_has_tag(const tape *t, const char *tag);
/** Adding a present tag is a no-op (TAPE_OK). */
TAPE_API int tape_add_tag(tape *t, const char *tag);
/** TAPE_ENOTFOUND if absent. */
TAPE_API int tape_remove_tag(tape *t, const char *tag);

/* Frames. */

/** What a caller supplies to append a frame. */
typedef struct tape_frame_desc {
    unsigned int version;       /**< TAPE_FRAME_DESC_VERSION */
    int direction;              /**< TAPE_DIR_* */
    int64_t ts_ms;              /**< ms since the tape started; <0: now - created_at */
    const char *message;        /**< the JSON-RPC message as JSON text (borrowed) */
    size_t message_len;         /**< 0: strlen(message) */
    const char *correlation_id; /**< optional: id pairing a request with its response */
    const char *transport_json; /**< optional JSON object text */
    const char *flags_json;     /**< optional JSON object text */
    /* version 1 ends here; later fields are added below this line */
    unsigned int frame_flags;   /**< 0, or TAPE_FRAME_INVALID_JSON | TAPE_FRAME_OVERSIZE */
    size_t prefix_bytes;        /**< TAPE_FRAME_OVERSIZE: bytes kept; 0: TAPE_FRAME_PREFIX_DEFAULT */
    /* version 2 ends here */
} tape_frame_desc;
/** Layout version of tape_frame_desc these headers declare. */
#define TAPE_FRAME_DESC_VERSION 2
/** Initialiser: this version, direction 0 (set it), ts_ms -1 (now), every pointer NULL,
 *  no frame flags. */
#define TAPE_FRAME_DESC_INIT { TAPE_FRAME_DESC_VERSION, 0, -1, NULL, 0, NULL, NULL, NULL, 0, 0 }

/* Frame flags (tape_frame_desc.frame_flags, tape_frame_flags), for lines a
 * recorder relays but cannot store as a JSON message. Such a frame's
 * tape_frame_message is a JSON string (valid JSON), its kept bytes are
 * tape_frame_raw's, and it is never an error frame. */
/** message/message_len are any bytes (not JSON, maybe not UTF-8); they are
 *  stored exactly, as a JSON string. */
#define TAPE_FRAME_INVALID_JSON (1u << 0)
/** message/message_len are the whole message; only its length, its SHA-256
 *  and its first prefix_bytes (cut at a UTF-8 character boundary) are
 *  stored. The message is not validated. */
#define TAPE_FRAME_OVERSIZE (1u << 1)
/** Bytes of an oversize message kept when prefix_bytes is 0. */
#define TAPE_FRAME_PREFIX_DEFAULT 1024

/** Append a frame. The sequence number is assigned (0, 1, 2, ...) and
 *  returned through out_seq (may be NULL). The message must be valid JSON
 *  (RFC 8259: no raw control characters in strings; lone surrogate escapes
 *  are fine); it is kept byte for byte, except that a message spread over
 *  several lines is stored minified (a line is a frame). With frame_flags
 *  (desc version 2) any bytes can be recorded: see TAPE_FRAME_INVALID_JSON. */
TAPE_API int tape_append_frame(uint64_t *out_seq, tape *t, const tape_frame_desc *desc);
/** Number of frames in the tape. */
TAPE_API size_t tape_frame_count(const tape *t);
/** Borrowed; NULL if out of range. */
TAPE_API const tape_frame *tape_frame_at(const tape *t, size_t index);

/** The frame's sequence number (0, 1, 2, ...). */
TAPE_API uint64_t tape_frame_seq(const tape_frame *f);
/** The frame's time, ms since the tape started. */
TAPE_API int64_t tape_frame_ts(const tape_frame *f);
/** TAPE_DIR_CLIENT_TO_SERVER or TAPE_DIR_SERVER_TO_CLIENT. */
TAPE_API int tape_frame_direction(const tape_frame *f);
/** The message JSON text, NUL-terminated, borrowed (valid until the frame
 *  or its tape is freed). *out_len may be NULL. A decoded frame makes its
 *  copy on the first call, so this can return NULL when out of memory
 *  (tape_errmsg() says so). Safe to call from several threads at once. */
TAPE_API const char *tape_frame_message(const tape_frame *f, size_t *out_len);
/** The frame's correlation id (borrowed); NULL if none. */
TAPE_API const char *tape_frame_correlation_id(const tape_frame *f);
/** 1 if the frame is an error (JSON-RPC "error" member or flags.is_error). */
TAPE_API int tape_frame_is_error(const tape_frame *f);
/** The frame's whole JSONL line (no newline), borrowed: every field,
 *  including ones this version does not know. */
TAPE_API const char *tape_frame_line(const tape_frame *f, size_t *out_len);
/** TAPE_FRAME_INVALID_JSON / TAPE_FRAME_OVERSIZE bits; 0 for a JSON message. */
TAPE_API unsigned int tape_frame_flags(const tape_frame *f);
/** The bytes the frame keeps, borrowed like tape_frame_message and
 *  NUL-terminated (they may hold NULs: use *out_len): the recorded line of
 *  an invalid_json frame, the prefix of an oversize one, the message text
 *  otherwise. NULL only for a NULL frame or out of memory. */
TAPE_API const char *tape_frame_raw(const tape_frame *f, size_t *out_len);
/** The message JSON text of tape_frame_message without its copy: for a
 *  decoded frame, the bytes inside its line, so NOT NUL-terminated (use
 *  *out_len). Borrowed, valid until the frame or its tape is freed; never
 *  fails (NULL only for a NULL frame). For readers that copy the bytes out
 *  anyway, such as a binding making its own string. *out_len may be NULL. */
TAPE_API const char *tape_frame_message_bytes(const tape_frame *f, size_t *out_len);
/** An oversize frame's whole length and SHA-256 (64 lowercase hex digits,
 *  borrowed). Either out-parameter may be NULL. TAPE_ENOTFOUND if the
 *  frame is not oversize, TAPE_EINVAL if it is NULL. */
TAPE_API int tape_frame_oversize_info(uint64_t *out_length, const char **out_sha256_hex,
                                      const tape_frame *f);

/* Correlations (request/response pairs). */
/** Record that frame response_seq answers request_seq, with the round-trip time in ms and a
 *  status text (copied; may be NULL). */
TAPE_API int tape_add_correlation(tape *t, const char *id, uint64_t request_seq,
                                  uint64_t response_seq, int64_t rtt_ms, const char *status);
/** Number of correlations in the tape. */
TAPE_API size_t tape_correlation_count(const tape *t);
/** Borrowed strings; any out pointer may be NULL. TAPE_ENOTFOUND if out of range. */
TAPE_API int tape_correlation_get(const char **out_id, uint64_t *out_request_seq,
                                  uint64_t *out_response_seq, int64_t *out_rtt_ms,
                                  const char **out_status, const tape *t, size_t index);

/** Statistics of a tape. Set `version` (use TAPE_STATS_INIT) before the call. */
typedef struct tape_stats {
    unsigned int version;           /**< TAPE_STATS_VERSION */
    uint64_t frame_count;           /**< number of frames */
    int64_t duration_ms;            /**< largest frame ts */
    uint64_t last_sequence;         /**< seq of the last frame (0 if none) */
    uint64_t client_to_server;      /**< frames per direction: client to server */
    uint64_t server_to_client;      /**< frames per direction: server to client */
    uint64_t error_count;           /**< frames that are errors (tape_frame_is_error) */
    uint64_t correlation_count;     /**< request/response pairs recorded */
    uint64_t file_size_bytes;       /**< size of the encoded .jsonl */
    /* version 1 ends here */
} tape_stats;
/** Layout version of tape_stats these headers declare. */
#define TAPE_STATS_VERSION 1
/** Initialiser: this version, every count 0. */
#define TAPE_STATS_INIT { TAPE_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0 }

/** Fill *out with the tape's statistics (the members of out->version). */
TAPE_API int tape_get_stats(tape_stats *out, const tape *t);

/* ------------------------------------------------------------------ */
/* Codec: Shadowcat tape format 2.0 (see docs/tape-format.md)          */
/* ------------------------------------------------------------------ */

#define TAPE_DECODE_STRICT 0    /**< an invalid line in the middle is an error */
#define TAPE_DECODE_RECOVER 1   /**< ...is skipped and counted */
/** Longest line a decode accepts by default, in bytes (10 MiB). */
#define TAPE_MAX_LINE_DEFAULT (10u * 1024u * 1024u)

/** How tape_decode reads (NULL options: strict, default line limit). */
typedef struct tape_decode_options {
    unsigned int version;       /**< TAPE_DECODE_OPTIONS_VERSION */
    int mode;                   /**< TAPE_DECODE_STRICT or TAPE_DECODE_RECOVER */
    size_t max_line_bytes;      /**< 0: TAPE_MAX_LINE_DEFAULT */
    /* version 1 ends here */
} tape_decode_options;
/** Layout version of tape_decode_options these headers declare. */
#define TAPE_DECODE_OPTIONS_VERSION 1
/** Initialiser: this version, strict, default limit. */
#define TAPE_DECODE_OPTIONS_INIT { TAPE_DECODE_OPTIONS_VERSION, TAPE_DECODE_STRICT, 0 }

/** What a decode found besides the tape. */
typedef struct tape_decode_report {
    unsigned int version;       /**< TAPE_DECODE_REPORT_VERSION */
    int torn_tail;              /**< 1 if an incomplete last line was ignored */
    uint64_t skipped_lines;     /**< invalid lines skipped (recovery mode) */
    uint64_t first_bad_line;    /**< 1-based line number of the first one, 0 if none */
    /* version 1 ends here */
} tape_decode_report;
/** Layout version of tape_decode_report these headers declare. */
#define TAPE_DECODE_REPORT_VERSION 1
/** Initialiser: this version, nothing found. */
#define TAPE_DECODE_REPORT_INIT { TAPE_DECODE_REPORT_VERSION, 0, 0, 0 }

/** Encode the .jsonl document (init line, frames, correlations, checkpoints
 *  and preserved unknown lines, each ending in '\n'). Free with
 *  tape_string_free. */
TAPE_API int tape_encode_jsonl(char **out, size_t *out_len, const tape *t);
/** Encode the .meta.json document. Free with tape_string_free. */
TAPE_API int tape_encode_meta(char **out, size_t *out_len, const tape *t);
/** Decode a tape from its .jsonl text and, optionally, its .meta.json
 *  (meta NULL: metadata comes from the init line only). opts and report
 *  may be NULL (strict, default limit). */
TAPE_API int tape_decode(tape **out, const char *jsonl, size_t jsonl_len,
                         const char *meta, size_t meta_len,
                         const tape_decode_options *opts, tape_decode_report *report);

/* ------------------------------------------------------------------ */
/* Entries: what a listing returns (metadata + stats, no frames)       */
/* ------------------------------------------------------------------ */

/** Entries are immutable and reference counted. */
TAPE_API int tape_entry_from_tape(tape_entry **out, const tape *t);
/** A new reference to the same entry (never fails; NULL gives NULL). Takes
 *  a const pointer so an entry borrowed from a result can be kept. */
TAPE_API tape_entry *tape_entry_ref(const tape_entry *e);
/** Drop a reference. */
TAPE_API void tape_entry_free(tape_entry *e);
/** The tape's id (borrowed). */
TAPE_API const char *tape_entry_id(const tape_entry *e);
/** The tape's name (borrowed; NULL when unset). */
TAPE_API const char *tape_entry_name(const tape_entry *e);
/** The tape's description (borrowed; NULL when unset). */
TAPE_API const char *tape_entry_description(const tape_entry *e);
/** The tape's MCP session id (borrowed; NULL when unset). */
TAPE_API const char *tape_entry_session_id(const tape_entry *e);
/** TAPE_STATUS_RECORDING or TAPE_STATUS_FINALIZED. */
TAPE_API int tape_entry_status(const tape_entry *e);
/** Creation time, ms since the epoch. */
TAPE_API int64_t tape_entry_created_at(const tape_entry *e);
/** Time of the last update, ms since the epoch; TAPE_TIME_NONE if unset. */
TAPE_API int64_t tape_entry_updated_at(const tape_entry *e);
/** Number of tags. */
TAPE_API size_t tape_entry_tag_count(const tape_entry *e);
/** The i-th tag (borrowed); NULL if out of range. */
TAPE_API const char *tape_entry_tag_at(const tape_entry *e, size_t i);
/** 1 if the entry has the tag, else 0. */
TAPE_API int tape_entry_has_tag(const tape_entry *e, const char *tag);
/** Fill *out with the tape's statistics, as tape_get_stats does. */
TAPE_API int tape_entry_get_stats(tape_stats *out, const tape_entry *e);
/** The entry as a .meta.json document. Free with tape_string_free. */
TAPE_API int tape_entry_meta_json(char **out, size_t *out_len, const tape_entry *e);

/* ------------------------------------------------------------------ */
/* Queries (see docs/query.md)                                         */
/* ------------------------------------------------------------------ */

/** Parse a JSON query object ("{}" or NULL: every tape). Unknown keys and
 *  wrong types give TAPE_EQUERY with a message naming the key. */
TAPE_API int tape_query_parse(tape_query **out, const char *json);
/** Free a query (NULL: no-op). */
TAPE_API void tape_query_free(tape_query *q);
/** The query as normalised JSON. Free with tape_string_free. */
TAPE_API int tape_query_to_json(char **out, const tape_query *q);
/** A copy of q with its cursor replaced (NULL: first page). */
TAPE_API int tape_query_with_cursor(tape_query **out, const tape_query *q, const char *cursor);
/** 1 if the entry matches every term except `text`, 0 if not. */
TAPE_API int tape_query_match_entry(const tape_query *q, const tape_entry *e);
/** 1 if the tape matches every term including `text`, 0 if not. */
TAPE_API int tape_query_match_tape(const tape_query *q, const tape *t);

/* A page of results. */
/** Free a page of results (NULL: no-op). */
TAPE_API void tape_result_free(tape_result *r);
/** Number of entries on the page. */
TAPE_API size_t tape_result_count(const tape_result *r);
/** Borrowed; NULL if out of range. */
TAPE_API const tape_entry *tape_result_at(const tape_result *r, size_t i);
/** Cursor for the next page (borrowed), or NULL when this is the last page. */
TAPE_API const char *tape_result_next_cursor(const tape_result *r);

/* ------------------------------------------------------------------ */
/* Configuration (see docs/config.md)                                  */
/* ------------------------------------------------------------------ */

/** Parse a JSON object ("" or NULL: empty config). */
TAPE_API int tape_config_parse(tape_config **out, const char *json);
/** Free a config (NULL: no-op). */
TAPE_API void tape_config_free(tape_config *c);
/** Split a one-string store spec: "memory:", "filesystem:./tapes" (the part
 *  after ':' becomes {"path": ...}), "name:{json}". Free *out_provider with
 *  tape_string_free and *out_config with tape_config_free. */
TAPE_API int tape_config_parse_spec(char **out_provider, tape_config **out_config,
                                    const char *spec);
/** Compact JSON text of the config. Free with tape_string_free. */
TAPE_API int tape_config_to_json(char **out, const tape_config *c);

/* ------------------------------------------------------------------ */
/* Registry and providers                                              */
/* ------------------------------------------------------------------ */

/* Capability bits: what a backend does natively. */
#define TAPE_CAP_EXISTS      (1u << 0) /**< native exists check */
#define TAPE_CAP_SEARCH      (1u << 1)  /**< whole query pushed down */
#define TAPE_CAP_STATS       (1u << 2) /**< native store statistics */
#define TAPE_CAP_WRITER      (1u << 3)  /**< constant-cost streaming append */
#define TAPE_CAP_READ_FRAMES (1u << 4)  /**< streaming ranged frame reads */
#define TAPE_CAP_CONTROL     (1u << 5) /**< provider-specific control ops */
#define TAPE_CAP_THREAD_SAFE (1u << 6)  /**< backend needs no serialisation */
#define TAPE_CAP_PERSISTENT  (1u << 7)  /**< data outlives the process */
/* Added after version 0.1.0: */
#define TAPE_CAP_WRITER_RETRY (1u << 8) /**< a writer_end(finalize) that fails keeps the
                                          * writer: the core retries or abandons it */
/** Every capability bit that names an optional op. */
#define TAPE_CAP_ALL_OPS     (TAPE_CAP_EXISTS | TAPE_CAP_SEARCH | TAPE_CAP_STATS | \
                              TAPE_CAP_WRITER | TAPE_CAP_READ_FRAMES | TAPE_CAP_CONTROL)

/** The process-wide registry; builtin providers are registered on first
 *  use. Never NULL; tape_registry_free on it is a no-op. */
TAPE_API tape_registry *tape_registry_default(void);
/** A new empty registry (add the builtins with tape_registry_add_builtins). */
TAPE_API int tape_registry_new(tape_registry **out);
/** Open stores keep their providers alive after the registry is freed. */
TAPE_API void tape_registry_free(tape_registry *reg);
/** Register memory (and the other builtins). TAPE_EEXISTS if one is taken. */
TAPE_API int tape_registry_add_builtins(tape_registry *reg);
/** Remove a provider by name; stores already open keep it alive. */
TAPE_API int tape_registry_unregister(tape_registry *reg, const char *name);
/** Load providers from a shared library through its tape_plugin_init entry
 *  point (see tapestore/provider.h). The library stays loaded. */
TAPE_API int tape_registry_load_plugin(tape_registry *reg, const char *path);

/** Look a provider up. *out is a counted reference: free it with
 *  tape_provider_info_free. */
TAPE_API int tape_registry_find(tape_provider_info **out, tape_registry *reg, const char *name);
/** Drop the reference (NULL: no-op). */
TAPE_API void tape_provider_info_free(tape_provider_info *p);
/** The provider's name (borrowed). */
TAPE_API const char *tape_provider_info_name(const tape_provider_info *p);
/** Its one-line description (borrowed; may be NULL). */
TAPE_API const char *tape_provider_info_description(const tape_provider_info *p);
/** The provider's own version number (tape_provider.provider_version). */
TAPE_API unsigned int tape_provider_info_version(const tape_provider_info *p);
/** TAPE_CAP_* bits the provider declared (tape_provider.capabilities). */
TAPE_API unsigned int tape_provider_info_capabilities(const tape_provider_info *p);

/** A snapshot of every provider, sorted by name. */
TAPE_API int tape_registry_list(tape_provider_list **out, tape_registry *reg);
/** Free the snapshot (NULL: no-op). */
TAPE_API void tape_provider_list_free(tape_provider_list *l);
/** Number of providers in the snapshot. */
TAPE_API size_t tape_provider_list_count(const tape_provider_list *l);
/** The i-th provider (borrowed from the list); NULL if out of range. */
TAPE_API const tape_provider_info *tape_provider_list_at(const tape_provider_list *l, size_t i);

/* ------------------------------------------------------------------ */
/* Stores                                                              */
/* ------------------------------------------------------------------ */

#define TAPE_OPEN_EAGER (1u << 0) /**< initialise the backend now, not on first use */

/** Open a store. reg NULL: the default registry. config_json NULL: "{}".
 *  The config is validated by the provider before anything is created. */
TAPE_API int tape_store_open(tape_store **out, tape_registry *reg, const char *provider,
                             const char *config_json, unsigned int flags);
/** Open from a one-string spec such as "memory:" or "filesystem:./tapes". */
TAPE_API int tape_store_open_spec(tape_store **out, tape_registry *reg, const char *spec,
                                  unsigned int flags);
/** Open from $TAPESTORE_STORE (a spec); unset: "filesystem:./tapes". */
TAPE_API int tape_store_open_env(tape_store **out, tape_registry *reg, unsigned int flags);
/** Flush and release the store. The store is freed even when this fails. */
TAPE_API int tape_store_close(tape_store *s);
/** Release without reporting errors (they go to the log hook). */
TAPE_API void tape_store_free(tape_store *s);

/** Provider name of an open store (borrowed). */
TAPE_API const char *tape_store_provider(const tape_store *s);
/** Capabilities: native ops of the backend (*out_native) and ops available
 *  natively or through a core fallback (*out_available). Either may be NULL. */
TAPE_API int tape_store_capabilities(unsigned int *out_native, unsigned int *out_available,
                                     tape_store *s);

/** Save a tape, replacing any tape with the same id. */
TAPE_API int tape_store_save(tape_store *s, const tape *t);
/** TAPE_ENOTFOUND if there is no such tape. */
TAPE_API int tape_store_load(tape **out, tape_store *s, const char *id);
/** TAPE_ENOTFOUND if there is no such tape. */
TAPE_API int tape_store_delete(tape_store *s, const char *id);
/** *out_exists is 1 or 0. */
TAPE_API int tape_store_exists(int *out_exists, tape_store *s, const char *id);
/** One page of the tapes matching q (NULL: all tapes). */
TAPE_API int tape_store_query(tape_result **out, tape_store *s, const tape_query *q);

/** Statistics of a whole store. Set `version` (use TAPE_STORE_STATS_INIT) before the call. */
typedef struct tape_store_stats {
    unsigned int version;       /**< TAPE_STORE_STATS_VERSION */
    uint64_t tape_count;        /**< number of tapes */
    uint64_t frame_count;       /**< frames over all tapes */
    uint64_t total_bytes;       /**< sum of the tapes' file_size_bytes */
    /* version 1 ends here */
} tape_store_stats;
/** Layout version of tape_store_stats these headers declare. */
#define TAPE_STORE_STATS_VERSION 1
/** Initialiser: this version, every count 0. */
#define TAPE_STORE_STATS_INIT { TAPE_STORE_STATS_VERSION, 0, 0, 0 }

/** Fill *out for the whole store (natively or computed from a listing). */
TAPE_API int tape_store_stats_get(tape_store_stats *out, tape_store *s);

/** Start recording a tape. `header` supplies the id and metadata and must
 *  hold no frames or correlations (TAPE_EINVAL: append them through the
 *  writer). The tape is visible with status recording at once. TAPE_EEXISTS
 *  if the id is taken, TAPE_EBUSY if another writer records it. Free the
 *  writer with tape_writer_free. */
TAPE_API int tape_store_record(tape_writer **out, tape_store *s, const tape *header);
/** Append a frame; see tape_append_frame. */
TAPE_API int tape_writer_append(uint64_t *out_seq, tape_writer *w, const tape_frame_desc *desc);
/** Record a correlation (see tape_add_correlation) in the recording. */
TAPE_API int tape_writer_add_correlation(tape_writer *w, const char *id, uint64_t request_seq,
                                         uint64_t response_seq, int64_t rtt_ms,
                                         const char *status);
/** Finalize: status finalized, stats written, everything flushed. After
 *  success further appends give TAPE_ESTATE. */
TAPE_API int tape_writer_finish(tape_writer *w);
/** Release. A writer not finished leaves its tape with status recording
 *  and the frames appended so far. */
TAPE_API void tape_writer_free(tape_writer *w);
/** Id of the tape being recorded (borrowed). */
TAPE_API const char *tape_writer_id(const tape_writer *w);
/** Update the recording's metadata with what was learned mid-session
 *  (client and server names from `initialize`, a redaction count): the
 *  name, description, tags, session id, protocol version, transport and
 *  environment of `meta` replace the writer's (meta's id, status, times,
 *  frames and correlations are ignored; NULL fields clear). Providers with
 *  native writers persist it at their next checkpoint and at finish; the
 *  core's fallback writer keeps it in its buffer. On failure nothing
 *  changes. `meta` is borrowed. */
TAPE_API int tape_writer_update_meta(tape_writer *w, const tape *meta);

/** "To the end" for tape_store_read_frames. Any to_seq >= TAPE_SEQ_END
 *  means the same (UINT64_MAX too), so a signed 64-bit integer can say it. */
#define TAPE_SEQ_END ((uint64_t)INT64_MAX)

/** Frames of a stored tape with from_seq <= seq <= to_seq (TAPE_SEQ_END:
 *  to the end). TAPE_ENOTFOUND if there is no such tape. */
TAPE_API int tape_store_read_frames(tape_frame_iter **out, tape_store *s, const char *id,
                                    uint64_t from_seq, uint64_t to_seq);
/** TAPE_OK with *out set (borrowed until the next call), TAPE_DONE at the
 *  end, or an error. */
TAPE_API int tape_frame_iter_next(const tape_frame **out, tape_frame_iter *it);
/** Release the iterator (NULL: no-op). */
TAPE_API void tape_frame_iter_free(tape_frame_iter *it);

/** Provider-specific operations: `op` names one; `in_json` may be NULL.
 *  Unknown ops give TAPE_EUNSUPPORTED. *out_json (may be NULL on success)
 *  is freed with tape_string_free. */
TAPE_API int tape_store_control(char **out_json, tape_store *s, const char *op,
                                const char *in_json);

#ifdef __cplusplus
}
#endif
#endif /* TAPESTORE_H */
