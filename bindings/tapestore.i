/*
 * tapestore.i - the SWIG interface shared by the language bindings.
 *
 * A language module %includes this file after defining, in its own .i,
 * these SWIG macros (%define), which place results:
 *   TAPE_SWIG_OUT(obj)     add obj to the wrapper's results (Python:
 *                          %append_output; Lua: push it, SWIG_arg++);
 *   TAPE_SWIG_SET(obj)     make obj the wrapper's result;
 *   TAPE_SWIG_BAD_ARG(what) fail: the argument is not a `what`;
 * and these C macros (in %{ %}), which make result objects:
 *   TAPE_SWIG_PTR(p, type_descriptor, own)  a proxy of an opaque pointer
 *                          (own: the proxy frees it with the type's destructor);
 *   TAPE_SWIG_STR(s)       a string copied from s (NULL: the "nothing" object);
 *   TAPE_SWIG_INT(v), TAPE_SWIG_UINT(v), TAPE_SWIG_I64(v), TAPE_SWIG_U64(v)
 *                          integers (64-bit values stay exact);
 *   TAPE_SWIG_FAIL(code)   raise the error of `code` (the thread's last
 *                          error message goes with it) and leave the
 *                          wrapper (SWIG_fail);
 *   TAPE_SWIG_VOID()       the "nothing" object (Python: None; Lua: no value);
 *   TAPE_SWIG_BYTES(p, n)  a new object holding the bytes p[0..n) (Python:
 *                          bytes; Lua: a string);
 *   TAPE_SWIG_UNLOCKED(stmt)  run stmt, a call into the core made by a
 *                          typemap, without the interpreter's lock (the
 *                          wrapped calls themselves are released by SWIG);
 *   TAPE_SWIG_AS_BYTES(obj, &p, &n)  0 with p/n set to the bytes of obj
 *                          (borrowed while obj lives), nonzero if obj is
 *                          not a byte string.
 * Nothing below names a language's API, so the Lua binding can %include it
 * with its own definitions of these macros.
 *
 * Conventions of the wrapped API, as a script sees them:
 *  - a function returning a TAPE_E* code returns nothing on success and
 *    raises on a negative code (TAPE_DONE, a positive 1, is returned);
 *  - out-parameters become return values, in order; objects handed back
 *    through `T **out` are owned by the script, whose proxy frees them with
 *    the type's _free (every opaque type has a destructor below);
 *  - borrowed `const char **` / `const T **` out-parameters are copied
 *    (strings) or handed back unowned (objects).
 * The pythonic layer over this is bindings/python/tapestore/.
 */

%{
#include <tapestore/tapestore.h>
%}

#define TAPE_API

%include <stdint.i>

/* ------------------------------------------------------------ opaque types
 * Declared empty so SWIG makes proxies; each gets the destructor its
 * ownership rule names, so a proxy that owns its object frees it. */
%define TAPE_OPAQUE(TYPE, FREE)
%nodefaultctor TYPE;
struct TYPE {};
%extend TYPE { ~TYPE() { FREE($self); } }
%enddef

TAPE_OPAQUE(tape, tape_free)
TAPE_OPAQUE(tape_frame, (void))           /* always borrowed from its tape / iterator */
TAPE_OPAQUE(tape_entry, tape_entry_free)
TAPE_OPAQUE(tape_query, tape_query_free)
TAPE_OPAQUE(tape_result, tape_result_free)
TAPE_OPAQUE(tape_config, tape_config_free)
TAPE_OPAQUE(tape_registry, tape_registry_free)
TAPE_OPAQUE(tape_provider_info, tape_provider_info_free)
TAPE_OPAQUE(tape_provider_list, tape_provider_list_free)
TAPE_OPAQUE(tape_store, tape_store_free)
TAPE_OPAQUE(tape_writer, tape_writer_free)
TAPE_OPAQUE(tape_frame_iter, tape_frame_iter_free)

/* ------------------------------------------------------------ return codes
 * Functions whose int is a TAPE_E* code (the others return values). */
%define TAPE_RC(NAME)
%typemap(out) int NAME {
    if ($1 < 0) {
        TAPE_SWIG_FAIL($1);
    }
    if ($1 == 0) {
        TAPE_SWIG_SET(TAPE_SWIG_VOID());
    } else {
        TAPE_SWIG_SET(TAPE_SWIG_INT($1));
    }
}
%enddef

%define TAPE_RC_LIST
TAPE_RC(tape_id_validate) TAPE_RC(tape_new) TAPE_RC(tape_clone)
TAPE_RC(tape_set_name) TAPE_RC(tape_set_description) TAPE_RC(tape_set_session_id)
TAPE_RC(tape_set_protocol_version) TAPE_RC(tape_set_status) TAPE_RC(tape_set_created_at)
TAPE_RC(tape_set_updated_at) TAPE_RC(tape_set_finalized_at) TAPE_RC(tape_set_transport_json)
TAPE_RC(tape_set_environment_json) TAPE_RC(tape_add_tag) TAPE_RC(tape_remove_tag)
TAPE_RC(tape_append_frame) TAPE_RC(tape_frame_oversize_info) TAPE_RC(tape_add_correlation)
TAPE_RC(tape_correlation_get) TAPE_RC(tape_get_stats) TAPE_RC(tape_encode_jsonl)
TAPE_RC(tape_encode_meta) TAPE_RC(tape_decode) TAPE_RC(tape_entry_from_tape)
TAPE_RC(tape_entry_get_stats) TAPE_RC(tape_entry_meta_json) TAPE_RC(tape_query_parse)
TAPE_RC(tape_query_to_json) TAPE_RC(tape_query_with_cursor) TAPE_RC(tape_config_parse)
TAPE_RC(tape_config_parse_spec) TAPE_RC(tape_config_to_json) TAPE_RC(tape_registry_new)
TAPE_RC(tape_registry_add_builtins) TAPE_RC(tape_registry_unregister)
TAPE_RC(tape_registry_load_plugin) TAPE_RC(tape_registry_find) TAPE_RC(tape_registry_list)
TAPE_RC(tape_store_open) TAPE_RC(tape_store_open_spec) TAPE_RC(tape_store_open_env)
TAPE_RC(tape_store_close) TAPE_RC(tape_store_capabilities) TAPE_RC(tape_store_save)
TAPE_RC(tape_store_load) TAPE_RC(tape_store_delete) TAPE_RC(tape_store_exists)
TAPE_RC(tape_store_query) TAPE_RC(tape_store_stats_get) TAPE_RC(tape_store_record)
TAPE_RC(tape_writer_append) TAPE_RC(tape_writer_add_correlation) TAPE_RC(tape_writer_finish)
TAPE_RC(tape_writer_update_meta) TAPE_RC(tape_store_read_frames) TAPE_RC(tape_frame_iter_next)
TAPE_RC(tape_store_control)
%enddef
TAPE_RC_LIST

/* ------------------------------------------------------------ out-parameters */

/* T **out: a new object owned by the caller. */
%define TAPE_OUT_OWNED(TYPE)
%typemap(in, numinputs=0) TYPE **out (TYPE *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(argout) TYPE **out {
    TAPE_SWIG_OUT(TAPE_SWIG_PTR(*$1, $*1_descriptor, 1));
}
%enddef
TAPE_OUT_OWNED(tape)
TAPE_OUT_OWNED(tape_entry)
TAPE_OUT_OWNED(tape_query)
TAPE_OUT_OWNED(tape_result)
TAPE_OUT_OWNED(tape_config)
TAPE_OUT_OWNED(tape_registry)
TAPE_OUT_OWNED(tape_provider_info)
TAPE_OUT_OWNED(tape_provider_list)
TAPE_OUT_OWNED(tape_store)
TAPE_OUT_OWNED(tape_writer)
TAPE_OUT_OWNED(tape_frame_iter)
/* The same rule under the other out-parameter names the header uses. */
%apply tape_config **out { tape_config **out_config };

/* const tape_frame **out (tape_frame_iter_next): borrowed until the next
 * call, so handed back unowned; nothing is added at TAPE_DONE. */
%typemap(in, numinputs=0) const tape_frame **out (const tape_frame *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(argout) const tape_frame **out {
    if (*$1 != NULL) {
        TAPE_SWIG_OUT(TAPE_SWIG_PTR((void *)*$1, $descriptor(tape_frame *), 0));
    }
}

/* char **out + size_t *out_len: owned bytes (the codec's documents may hold
 * any byte a message held), freed here. */
%typemap(in, numinputs=0) (char **out, size_t *out_len) (char *tmp = NULL, size_t len = 0) {
    $1 = &tmp;
    $2 = &len;
}
%typemap(argout) (char **out, size_t *out_len) {
    TAPE_SWIG_OUT(TAPE_SWIG_BYTES(*$1, *$2));
}
%typemap(freearg) (char **out, size_t *out_len) { TAPE_SWIG_UNLOCKED(tape_string_free(*$1)); }

/* char **out, char **out_json, char **out_provider: owned text, or None. */
%typemap(in, numinputs=0) char **out (char *tmp = NULL), char **out_json (char *tmp = NULL),
                          char **out_provider (char *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(argout) char **out, char **out_json, char **out_provider {
    TAPE_SWIG_OUT(TAPE_SWIG_STR(*$1));
}
%typemap(freearg) char **out, char **out_json, char **out_provider {
    TAPE_SWIG_UNLOCKED(tape_string_free(*$1));
}

/* Borrowed strings: copied out. */
%typemap(in, numinputs=0) const char **out_id (const char *tmp = NULL),
                          const char **out_status (const char *tmp = NULL),
                          const char **out_sha256_hex (const char *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(argout) const char **out_id, const char **out_status, const char **out_sha256_hex {
    TAPE_SWIG_OUT(TAPE_SWIG_STR(*$1));
}

/* Scalars. */
%define TAPE_OUT_SCALAR(TYPE, NAME, FROM)
%typemap(in, numinputs=0) TYPE *NAME (TYPE tmp = 0) { $1 = ($1_ltype)&tmp; }
%typemap(argout) TYPE *NAME { TAPE_SWIG_OUT(FROM(*$1)); }
%enddef
TAPE_OUT_SCALAR(uint64_t, out_seq, TAPE_SWIG_U64)
TAPE_OUT_SCALAR(uint64_t, out_request_seq, TAPE_SWIG_U64)
TAPE_OUT_SCALAR(uint64_t, out_response_seq, TAPE_SWIG_U64)
TAPE_OUT_SCALAR(uint64_t, out_length, TAPE_SWIG_U64)
TAPE_OUT_SCALAR(int64_t, out_rtt_ms, TAPE_SWIG_I64)
TAPE_OUT_SCALAR(int, out_exists, TAPE_SWIG_INT)
TAPE_OUT_SCALAR(unsigned int, out_native, TAPE_SWIG_UINT)
TAPE_OUT_SCALAR(unsigned int, out_available, TAPE_SWIG_UINT)

/* Borrowed (pointer, length) results: copied into bytes. */
%typemap(in, numinputs=0) size_t *out_len (size_t len = 0) { $1 = &len; }
%typemap(argout) size_t *out_len {}
%typemap(out) const char *tape_frame_message, const char *tape_frame_line,
              const char *tape_frame_raw, const char *tape_frame_message_bytes {
    if ($1 == NULL) {
        TAPE_SWIG_FAIL(tape_errcode() < 0 ? tape_errcode() : TAPE_EINVAL);
    }
    TAPE_SWIG_SET(TAPE_SWIG_BYTES($1, *arg2));
}

/* Byte input: (const char *bytes, size_t len) in the helpers below. */
%typemap(in) (const char *BYTES, size_t LEN) (const char *buf = NULL, size_t size = 0) {
    if (TAPE_SWIG_AS_BYTES($input, &buf, &size) != 0) {
        TAPE_SWIG_BAD_ARG("bytes");
    }
    $1 = ($1_ltype)buf;
    $2 = size;
}

/* Stats structs become (copied) value objects. */
%typemap(in, numinputs=0) tape_stats *out (tape_stats tmp) {
    tape_stats init = TAPE_STATS_INIT;
    tmp = init;
    $1 = &tmp;
}
%typemap(argout) tape_stats *out {
    TAPE_SWIG_OUT(TAPE_SWIG_PTR(%new_copy(*$1, tape_stats), $descriptor(tape_stats *), 1));
}
%typemap(in, numinputs=0) tape_store_stats *out (tape_store_stats tmp) {
    tape_store_stats init = TAPE_STORE_STATS_INIT;
    tmp = init;
    $1 = &tmp;
}
%typemap(argout) tape_store_stats *out {
    TAPE_SWIG_OUT(TAPE_SWIG_PTR(%new_copy(*$1, tape_store_stats), $descriptor(tape_store_stats *), 1));
}
%immutable tape_stats::version;
%immutable tape_store_stats::version;

/* ------------------------------------------------------------ what is left out
 * The log hook takes a C function: each binding bridges it by hand. The
 * frame descriptor's borrowed pointers and the decode options/report are
 * replaced by the helpers below. */
%ignore tape_log_set;
%ignore tape_log_fn;
%ignore tape_string_free;
%ignore tape_frame_desc;
%ignore tape_append_frame;
%ignore tape_writer_append;
%ignore tape_decode_options;
%ignore tape_decode_report;
%ignore tape_decode;
%ignore tape_entry_ref;
%ignore tape_registry_default;

%include <tapestore/tapestore.h>

/* ------------------------------------------------------------ helpers
 * Flat forms of the calls that take a descriptor struct, so a script
 * passes plain values (the message as bytes, any byte allowed). */
TAPE_RC(tape_swig_append)
TAPE_RC(tape_swig_decode)
%apply (const char *BYTES, size_t LEN) { (const char *meta, size_t meta_len) };

%inline %{
/* tape_append_frame / tape_writer_append with a filled tape_frame_desc.
 * Exactly one of t and w is used (w when not NULL). */
static int tape_swig_append(uint64_t *out_seq, tape *t, tape_writer *w, int direction,
                            int64_t ts_ms, const char *BYTES, size_t LEN,
                            const char *correlation_id, const char *transport_json,
                            const char *flags_json, unsigned int frame_flags,
                            size_t prefix_bytes)
{
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = direction;
    d.ts_ms = ts_ms;
    d.message = BYTES;
    d.message_len = LEN;
    d.correlation_id = correlation_id;
    d.transport_json = transport_json;
    d.flags_json = flags_json;
    d.frame_flags = frame_flags;
    d.prefix_bytes = prefix_bytes;
    return w != NULL ? tape_writer_append(out_seq, w, &d) : tape_append_frame(out_seq, t, &d);
}

/* tape_decode of a .jsonl text and optional .meta.json text (bytes). */
static int tape_swig_decode(tape **out, const char *BYTES, size_t LEN, const char *meta,
                            size_t meta_len, int mode, size_t max_line_bytes)
{
    tape_decode_options o = TAPE_DECODE_OPTIONS_INIT;
    o.mode = mode;
    o.max_line_bytes = max_line_bytes;
    /* An empty meta means none: metadata then comes from the init line. */
    return tape_decode(out, BYTES, LEN, meta_len > 0 ? meta : NULL, meta_len, &o, NULL);
}

/* The process-wide registry (never freed: its proxy does not own it). */
static tape_registry *tape_swig_registry_default(void)
{
    return tape_registry_default();
}
%}
