/* codec.c - Shadowcat tape format 2.0: lines, .jsonl and .meta.json
 * documents (docs/tape-format.md). */
#include "codec_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION "2.0"

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16u) {
            return 0;
        }
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

/*
 * RFC 8259 allows any \uXXXX escape, so a lone UTF-16 surrogate ("\ud83d",
 * half an emoji, as JavaScript's JSON.stringify writes it) is valid JSON;
 * cJSON refuses it. *out gets a copy of text with each lone surrogate
 * escape rewritten as \ufffd: same length, so every offset into the copy
 * is one into the original, whose bytes are what the codec keeps. Returns
 * 1 with a copy, 0 if there is no lone surrogate, -1 out of memory. The
 * scan only tracks strings; syntax is left to cJSON.
 */
static int patch_lone_surrogates(char **out, const char *text, size_t len)
{
    *out = NULL;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!in_str) {
            in_str = c == '"';
            continue;
        }
        if (c == '"') {
            in_str = 0;
            continue;
        }
        if (c != '\\' || i + 1 >= len) {
            continue;
        }
        unsigned cu, lo;
        if (text[i + 1] != 'u' || len - i < 6 || !hex4(text + i + 2, &cu)) {
            i++; /* a one-character escape (or a broken one: cJSON's) */
            continue;
        }
        if (cu >= 0xD800 && cu <= 0xDBFF && len - i >= 12 && text[i + 6] == '\\' &&
            text[i + 7] == 'u' && hex4(text + i + 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            i += 11; /* a real pair */
            continue;
        }
        if (cu >= 0xD800 && cu <= 0xDFFF) {
            if (*out == NULL) {
                if ((*out = malloc(len)) == NULL) {
                    return -1;
                }
                memcpy(*out, text, len);
            }
            memcpy(*out + i + 2, "fffd", 4);
        }
        i += 5;
    }
    return *out != NULL;
}

cJSON *tape__json_parse(const char *text, size_t len)
{
    /* cJSON skips a NUL as if it were a blank; JSON has no such byte, and
     * keeping it would cut every C string made from the text. */
    if (text == NULL || len == 0 || memchr(text, '\0', len) != NULL) {
        return NULL;
    }
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (v == NULL) {
        /* Only then look for lone surrogates: valid text pays nothing.
         * Parsed values then hold U+FFFD for them; kept bytes (messages,
         * whole lines) come from the original text. */
        char *patched = NULL;
        if (patch_lone_surrogates(&patched, text, len) != 1) {
            return NULL;
        }
        v = cJSON_ParseWithLengthOpts(patched, len, &end, 0);
        end = text + (end - patched);
        free(patched);
        if (v == NULL) {
            return NULL;
        }
    }
    /* cJSON stops after the first value; anything but blanks after it
     * means the text was not one JSON value. */
    for (const char *stop = text + len; end < stop; end++) {
        if (!is_ws(*end)) {
            cJSON_Delete(v);
            return NULL;
        }
    }
    return v;
}

/* One line of the format: a JSON value with no newline inside (cJSON would
 * accept a raw one in a string; written back it would split the frame). */
static cJSON *json_parse_line(const char *text, size_t len)
{
    if (memchr(text, '\n', len) != NULL) {
        return NULL;
    }
    return tape__json_parse(text, len);
}

char *tape__json_line(const cJSON *obj, size_t *out_len)
{
    char *text = cJSON_PrintUnformatted(obj);
    if (text == NULL) {
        return NULL;
    }
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    *out_len = len + 1;
    return line;
}

static cJSON *add_str_or_null(cJSON *obj, const char *key, const char *s)
{
    return s != NULL ? cJSON_AddStringToObject(obj, key, s) : cJSON_AddNullToObject(obj, key);
}

static cJSON *add_time(cJSON *obj, const char *key, int64_t ms)
{
    if (ms == TAPE_TIME_NONE) {
        return cJSON_AddNullToObject(obj, key);
    }
    char iso[32];
    tape__time_format(iso, ms);
    return cJSON_AddStringToObject(obj, key, iso);
}

/* Append copies of the members of `extra` (preserved unknown keys). */
static int add_extra(cJSON *obj, const cJSON *extra)
{
    if (extra == NULL) {
        return 1;
    }
    for (const cJSON *c = extra->child; c != NULL; c = c->next) {
        cJSON *dup = cJSON_Duplicate(c, 1);
        if (dup == NULL || !cJSON_AddItemToObject(obj, c->string, dup)) {
            cJSON_Delete(dup);
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------ init line */

static char *build_init_line(size_t *out_len, const tape *t)
{
    char *line = NULL;
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, "type", "init") &&
        cJSON_AddStringToObject(o, "version", FORMAT_VERSION) &&
        add_str_or_null(o, "tape_id", t->id) && add_str_or_null(o, "session_id", t->session_id) &&
        add_time(o, "created_at", t->created_at) &&
        add_str_or_null(o, "protocol_version", t->protocol_version) &&
        add_extra(o, t->init_extra)) {
        line = tape__json_line(o, out_len);
    }
    cJSON_Delete(o);
    return line;
}

int tape__init_line(char **out, size_t *out_len, const tape *t)
{
    char *line;
    size_t len;
    if (t->init_line != NULL) {
        len = t->init_line_len + 1;
        if ((line = malloc(len + 1)) != NULL) {
            memcpy(line, t->init_line, t->init_line_len);
            line[len - 1] = '\n';
            line[len] = '\0';
        }
    } else {
        line = build_init_line(&len, t);
    }
    if (line == NULL) {
        return tape__oom();
    }
    *out = line;
    if (out_len != NULL) {
        *out_len = len;
    }
    return TAPE_OK;
}

int tape__init_line_len(size_t *out, const tape *t)
{
    if (t->init_line != NULL) {
        *out = t->init_line_len + 1;
        return TAPE_OK;
    }
    char *line = NULL;
    int rc = tape__init_line(&line, out, t);
    free(line);
    return rc;
}

int tape_encode_init_line(char **out, size_t *out_len, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_encode_init_line: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    return tape__init_line(out, out_len, t);
}

/* ----------------------------------------------------- correlation line */

char *tape__corr_line(size_t *out_len, const char *id, uint64_t req, uint64_t resp,
                      int64_t rtt, const char *status)
{
    char *text = NULL;
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, "type", "correlation") &&
        cJSON_AddStringToObject(o, "id", id) &&
        cJSON_AddNumberToObject(o, "request_seq", (double)req) &&
        cJSON_AddNumberToObject(o, "response_seq", (double)resp) &&
        cJSON_AddNumberToObject(o, "rtt_ms", (double)rtt) &&
        add_str_or_null(o, "status", status)) {
        text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    if (text != NULL) {
        *out_len = strlen(text);
    }
    return text;
}

int tape_encode_correlation_line(char **out, size_t *out_len, const tape *t, size_t i)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_encode_correlation_line: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    if (i >= t->ncorrs) {
        return tape_error_set(TAPE_ENOTFOUND, "no correlation at index %zu (the tape has %zu)",
                              i, t->ncorrs);
    }
    /* The stored line, so fields this version does not know survive. */
    const tape_xline *x = &t->xlines[t->corrs[i].xline];
    char *line = malloc(x->len + 2);
    if (line == NULL) {
        return tape__oom();
    }
    memcpy(line, x->text, x->len);
    line[x->len] = '\n';
    line[x->len + 1] = '\0';
    *out = line;
    if (out_len != NULL) {
        *out_len = x->len + 1;
    }
    return TAPE_OK;
}

/* ------------------------------------------------------ checkpoint line */

static cJSON *add_u64(cJSON *obj, const char *key, uint64_t v)
{
    return cJSON_AddNumberToObject(obj, key, (double)v);
}

int tape_encode_checkpoint_line(char **out, size_t *out_len, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_encode_checkpoint_line: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    char *line = NULL;
    size_t len = 0;
    cJSON *o = cJSON_CreateObject(), *st, *mc;
    if (o != NULL && cJSON_AddStringToObject(o, "type", "checkpoint") &&
        add_time(o, "checkpoint_at", tape__now_ms()) && add_u64(o, "seq", t->last_sequence) &&
        (st = cJSON_AddObjectToObject(o, "stats")) != NULL &&
        add_u64(st, "frame_count", t->frame_count) &&
        cJSON_AddNumberToObject(st, "duration_ms", (double)t->duration_ms) &&
        (mc = cJSON_AddObjectToObject(st, "message_counts")) != NULL &&
        add_u64(mc, "client_to_server", t->c2s) && add_u64(mc, "server_to_client", t->s2c) &&
        add_u64(st, "error_count", t->error_count) &&
        add_u64(st, "correlation_count", t->correlation_count)) {
        line = tape__json_line(o, &len);
    }
    cJSON_Delete(o);
    if (line == NULL) {
        return tape__oom();
    }
    *out = line;
    if (out_len != NULL) {
        *out_len = len;
    }
    return TAPE_OK;
}

/* ------------------------------------------------------- line decoding */

static const char *json_type_name(const cJSON *v)
{
    if (v == NULL) {
        return "missing";
    }
    if (cJSON_IsString(v)) {
        return "a string";
    }
    if (cJSON_IsNumber(v)) {
        return "a number";
    }
    if (cJSON_IsBool(v)) {
        return "a boolean";
    }
    if (cJSON_IsNull(v)) {
        return "null";
    }
    if (cJSON_IsArray(v)) {
        return "an array";
    }
    return "an object";
}

/* TAPE_LINE_* of a parsed object line; a line without a string "type"
 * is an unknown line, kept as it is. */
static int line_type(const cJSON *root)
{
    const cJSON *type = tape__member(root, "type");
    if (!cJSON_IsString(type)) {
        return TAPE_LINE_UNKNOWN;
    }
    const char *s = type->valuestring;
    if (tape__streq(s, "frame")) {
        return TAPE_LINE_FRAME;
    }
    if (tape__streq(s, "init")) {
        return TAPE_LINE_INIT;
    }
    if (tape__streq(s, "correlation")) {
        return TAPE_LINE_CORRELATION;
    }
    if (tape__streq(s, "checkpoint")) {
        return TAPE_LINE_CHECKPOINT;
    }
    return TAPE_LINE_UNKNOWN;
}

static int json_int(const cJSON *v, int64_t *out, int allow_negative)
{
    if (!cJSON_IsNumber(v)) {
        return 0;
    }
    double d = v->valuedouble;
    double lo = allow_negative ? -TAPE__JSON_INT_MAX : 0;
    if (!(d >= lo && d <= TAPE__JSON_INT_MAX) || (double)(int64_t)d != d) {
        return 0;
    }
    *out = (int64_t)d;
    return 1;
}

/* A string member that may also be null or absent (*out NULL then). */
static int opt_string(const char **out, const cJSON *v)
{
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v)) {
        return 1;
    }
    if (!cJSON_IsString(v)) {
        return 0;
    }
    *out = v->valuestring;
    return 1;
}

static int is_init_key(const char *k)
{
    static const char *const keys[] = { "type", "version", "tape_id", "session_id",
                                        "created_at", "protocol_version" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        if (strcmp(k, keys[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * The first member of the object `root` (parsed from text) whose value
 * holds an escape cJSON decodes as U+0000, or NULL. cJSON ends the parsed
 * string there: "abc\u0000def" would be read as the id "abc". Meant for
 * small documents (init line, meta, correlation line): one scan of the
 * whole text, and a second, per member, only when it found one. `only`,
 * if not NULL, limits the search to the members named in it.
 */
static const char *nul_member(const cJSON *root, const char *text, size_t len,
                              const char *const *only)
{
    if (!tape__json_has_nul_escape(text, len)) {
        return NULL;
    }
    const char *end = text + len;
    size_t i = 0;
    for (const cJSON *c = root->child; c != NULL; c = c->next, i++) {
        int wanted = only == NULL;
        for (const char *const *k = only; k != NULL && *k != NULL && !wanted; k++) {
            wanted = c->string != NULL && strcmp(c->string, *k) == 0;
        }
        if (!wanted) {
            continue;
        }
        const char *s = tape__json_member_start(text, end, i);
        const char *e = s != NULL ? tape__json_skip_value(s, end) : NULL;
        if (s == NULL || e == NULL) {
            return "a member"; /* the scanner gave up: refuse, not truncate */
        }
        if (tape__json_has_nul_escape(s, (size_t)(e - s))) {
            return c->string != NULL ? c->string : "a member";
        }
    }
    return NULL;
}

/* Fill t's id, session, created_at and protocol version from an init
 * line; unknown keys move (detached from root) into t->init_extra. */
static int init_parse(tape *t, cJSON *root, const char *line, size_t len)
{
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "tape_id");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(root, "created_at");
    const char *session, *proto;
    /* Every member: a changed init line is re-printed from parsed values. */
    const char *cut = nul_member(root, line, len, NULL);
    if (cut != NULL) {
        return tape_error_set(TAPE_ECORRUPT,
                              "init line: %s contains \\u0000 (a NUL character), which "
                              "this library cannot keep in a string",
                              cut);
    }
    if (!cJSON_IsString(version)) {
        return tape_error_set(TAPE_ECORRUPT, "init line: version is %s, expected a string",
                              json_type_name(version));
    }
    const char *v = version->valuestring;
    if (!(v[0] == '2' && (v[1] == '\0' || v[1] == '.'))) {
        return tape_error_set(TAPE_ECORRUPT,
                              "init line: unsupported format version '%.32s' (this library "
                              "reads 2.x)",
                              v);
    }
    if (!cJSON_IsString(id)) {
        return tape_error_set(TAPE_ECORRUPT, "init line: tape_id is %s, expected a string",
                              json_type_name(id));
    }
    if (tape_id_validate(id->valuestring) != TAPE_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        return tape_error_set(TAPE_ECORRUPT, "init line: %s", why);
    }
    if (!cJSON_IsString(created)) {
        return tape_error_set(TAPE_ECORRUPT, "init line: created_at is %s, expected a string",
                              json_type_name(created));
    }
    int64_t ms;
    if (tape__time_parse(&ms, created->valuestring) != TAPE_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        return tape_error_set(TAPE_ECORRUPT, "init line: created_at: %s", why);
    }
    if (!opt_string(&session, cJSON_GetObjectItemCaseSensitive(root, "session_id"))) {
        return tape_error_set(TAPE_ECORRUPT, "init line: session_id must be a string or null");
    }
    if (!opt_string(&proto, cJSON_GetObjectItemCaseSensitive(root, "protocol_version"))) {
        return tape_error_set(TAPE_ECORRUPT,
                              "init line: protocol_version must be a string or null");
    }
    if (tape__set_str(&t->id, id->valuestring) || tape__set_str(&t->session_id, session) ||
        tape__set_str(&t->protocol_version, proto)) {
        return TAPE_ENOMEM;
    }
    t->created_at = ms;
    for (cJSON *c = root->child, *next; c != NULL; c = next) {
        next = c->next;
        if (c->string == NULL || is_init_key(c->string)) {
            continue;
        }
        if (t->init_extra == NULL && (t->init_extra = cJSON_CreateObject()) == NULL) {
            return tape__oom();
        }
        cJSON_DetachItemViaPointer(root, c);
        if (!cJSON_AddItemToObject(t->init_extra, c->string, c)) {
            cJSON_Delete(c);
            return tape__oom();
        }
    }
    free(t->init_line);
    if ((t->init_line = tape__strndup(line, len)) == NULL) {
        return tape__oom();
    }
    t->init_line_len = len;
    return TAPE_OK;
}

typedef struct corr_fields {
    const char *id;
    const char *status;
    uint64_t request_seq;
    uint64_t response_seq;
    int64_t rtt_ms;
} corr_fields;

static int corr_parse(corr_fields *k, const cJSON *root, const char *line, size_t len)
{
    /* One pass over the members (first of a duplicated key wins, as with
     * cJSON_GetObjectItem): a correlation line follows most requests. */
    const cJSON *id = NULL, *rq = NULL, *rs = NULL, *rtt = NULL, *st = NULL;
    for (const cJSON *c = root->child; c != NULL; c = c->next) {
        const char *n = c->string;
        const cJSON **slot = NULL;
        const char *name = NULL;
        if (n == NULL) {
            continue;
        }
        switch (n[0]) {
        case 'i':
            slot = &id, name = "id";
            break;
        case 'r':
            if (n[1] == 'e' && n[2] == 'q') {
                slot = &rq, name = "request_seq";
            } else if (n[1] == 'e') {
                slot = &rs, name = "response_seq";
            } else {
                slot = &rtt, name = "rtt_ms";
            }
            break;
        case 's':
            slot = &st, name = "status";
            break;
        default:
            continue;
        }
        if (*slot == NULL && tape__streq(n, name)) {
            *slot = c;
        }
    }
    int64_t v;
    if (!cJSON_IsString(id)) {
        return tape_error_set(TAPE_ECORRUPT, "malformed correlation: id is %s, expected a string",
                              json_type_name(id));
    }
    /* The decoded fields only: the line itself is kept as it is. */
    static const char *const decoded[] = { "id", "status", NULL };
    const char *cut = nul_member(root, line, len, decoded);
    if (cut != NULL) {
        return tape_error_set(TAPE_ECORRUPT, "malformed correlation: %s contains \\u0000", cut);
    }
    k->id = id->valuestring;
    if (!json_int(rq, &v, 0)) {
        return tape_error_set(TAPE_ECORRUPT,
                              "malformed correlation: request_seq must be a non-negative integer");
    }
    k->request_seq = (uint64_t)v;
    if (!json_int(rs, &v, 0)) {
        return tape_error_set(TAPE_ECORRUPT,
                              "malformed correlation: response_seq must be a non-negative "
                              "integer");
    }
    k->response_seq = (uint64_t)v;
    k->rtt_ms = 0;
    if (rtt != NULL && !cJSON_IsNull(rtt) && !json_int(rtt, &k->rtt_ms, 1)) {
        return tape_error_set(TAPE_ECORRUPT, "malformed correlation: rtt_ms must be an integer");
    }
    if (!opt_string(&k->status, st)) {
        return tape_error_set(TAPE_ECORRUPT,
                              "malformed correlation: status must be a string or null");
    }
    return TAPE_OK;
}

int tape_line_parse(int *out_type, tape_frame **out_frame, const char *line, size_t len)
{
    if (out_frame != NULL) {
        *out_frame = NULL;
    }
    if (out_type == NULL || line == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_line_parse: %s is NULL",
                              out_type == NULL ? "out_type" : "line");
    }
    *out_type = 0;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        len--;
    }
    tape_frame *fast;
    int frc = tape__frame_parse_fast(&fast, line, len, NULL);
    if (frc != TAPE__DECLINE) {
        if (frc == TAPE_OK) {
            *out_type = TAPE_LINE_FRAME;
            if (out_frame != NULL) {
                *out_frame = fast;
            } else {
                tape_frame_free(fast);
            }
        }
        return frc;
    }
    cJSON *root = json_parse_line(line, len);
    if (root == NULL) {
        return tape_error_set(TAPE_ECORRUPT, "line is not valid JSON: '%.*s'",
                              (int)(len < 64 ? len : 64), line);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tape_error_set(TAPE_ECORRUPT, "line is not a JSON object");
    }
    int type = line_type(root), rc = TAPE_OK;
    if (type == TAPE_LINE_INIT) {
        tape *tmp = tape__alloc();
        rc = tmp == NULL ? tape__oom() : init_parse(tmp, root, line, len);
        tape_free(tmp);
    } else if (type == TAPE_LINE_FRAME) {
        tape_frame *f;
        rc = tape__frame_parse(&f, root, line, len, NULL);
        if (rc == TAPE_OK && out_frame != NULL) {
            *out_frame = f;
        } else {
            tape_frame_free(f);
        }
    } else if (type == TAPE_LINE_CORRELATION) {
        corr_fields k;
        rc = corr_parse(&k, root, line, len);
    }
    cJSON_Delete(root);
    if (rc == TAPE_OK) {
        *out_type = type;
    }
    return rc;
}

/* -------------------------------------------------------- meta document */

static cJSON *add_json_text(cJSON *obj, const char *key, const char *text)
{
    if (text == NULL) {
        return cJSON_AddNullToObject(obj, key);
    }
    cJSON *v = cJSON_Parse(text); /* validated when it was set */
    if (v == NULL || !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

static cJSON *meta_object(const tape *t, const tape_stats *st)
{
    cJSON *o = cJSON_CreateObject(), *tags, *s, *mc;
    if (o == NULL || !add_str_or_null(o, "tape_id", t->id) ||
        !add_str_or_null(o, "name", t->name) ||
        !add_str_or_null(o, "description", t->description) ||
        (tags = cJSON_AddArrayToObject(o, "tags")) == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < t->ntags; i++) {
        cJSON *tag = cJSON_CreateString(t->tags[i]);
        if (tag == NULL || !cJSON_AddItemToArray(tags, tag)) {
            cJSON_Delete(tag);
            goto fail;
        }
    }
    if (!add_time(o, "created_at", t->created_at) || !add_time(o, "updated_at", t->updated_at) ||
        !add_time(o, "finalized_at", t->finalized_at) ||
        !cJSON_AddStringToObject(o, "status", t->status == TAPE_STATUS_FINALIZED ? "finalized"
                                                                                 : "recording") ||
        !add_str_or_null(o, "session_id", t->session_id) ||
        !add_str_or_null(o, "protocol_version", t->protocol_version) ||
        !add_json_text(o, "transport", t->transport_json) ||
        !add_json_text(o, "environment", t->environment_json) ||
        (s = cJSON_AddObjectToObject(o, "stats")) == NULL ||
        !add_u64(s, "frame_count", st->frame_count) ||
        !cJSON_AddNumberToObject(s, "duration_ms", (double)st->duration_ms) ||
        !add_u64(s, "file_size_bytes", st->file_size_bytes) ||
        !add_u64(s, "last_sequence", st->last_sequence) ||
        (mc = cJSON_AddObjectToObject(s, "message_counts")) == NULL ||
        !add_u64(mc, "client_to_server", st->client_to_server) ||
        !add_u64(mc, "server_to_client", st->server_to_client) ||
        !add_u64(s, "error_count", st->error_count) ||
        !add_u64(s, "correlation_count", st->correlation_count) ||
        !add_extra(s, t->stats_extra) || !add_extra(o, t->meta_extra)) {
        goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

int tape_encode_meta(char **out, size_t *out_len, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_encode_meta: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    tape_stats st = TAPE_STATS_INIT;
    int rc = tape__stats(&st, t);
    if (rc != TAPE_OK) {
        return rc;
    }
    cJSON *o = meta_object(t, &st);
    if (o == NULL) {
        return tape__oom();
    }
    /* Indented: the meta file is small and people read it. */
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *doc = NULL;
    size_t len = 0;
    if (text != NULL) {
        len = strlen(text);
        if ((doc = realloc(text, len + 2)) == NULL) {
            free(text);
        } else {
            doc[len++] = '\n';
            doc[len] = '\0';
        }
    }
    if (doc == NULL) {
        return tape__oom();
    }
    *out = doc;
    if (out_len != NULL) {
        *out_len = len;
    }
    return TAPE_OK;
}

static int meta_bad(const char *key, const char *expected, const cJSON *v)
{
    return tape_error_set(TAPE_ECORRUPT, "meta: %s is %s, expected %s", key, json_type_name(v),
                          expected);
}

static int meta_time(int64_t *out, const char *key, const cJSON *v)
{
    if (cJSON_IsNull(v)) {
        *out = TAPE_TIME_NONE;
        return TAPE_OK;
    }
    if (!cJSON_IsString(v)) {
        return meta_bad(key, "an ISO-8601 string or null", v);
    }
    if (tape__time_parse(out, v->valuestring) != TAPE_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", tape_errmsg());
        return tape_error_set(TAPE_ECORRUPT, "meta: %s: %s", key, why);
    }
    return TAPE_OK;
}

static int meta_count(uint64_t *out, const char *key, const cJSON *v)
{
    int64_t n = 0;
    if (!cJSON_IsNull(v) && !json_int(v, &n, 0)) {
        return meta_bad(key, "a non-negative integer", v);
    }
    *out = (uint64_t)n;
    return TAPE_OK;
}

static int add_extra_copy(cJSON **extra, const cJSON *c)
{
    if (*extra == NULL && (*extra = cJSON_CreateObject()) == NULL) {
        return tape__oom();
    }
    cJSON *dup = cJSON_Duplicate(c, 1);
    if (dup == NULL || !cJSON_AddItemToObject(*extra, c->string, dup)) {
        cJSON_Delete(dup);
        return tape__oom();
    }
    return TAPE_OK;
}

/* The stats object: counters (entries only; a tape with its frames
 * recounts them) and unknown keys, which are always kept. */
static int meta_stats(tape *t, const cJSON *s, int counters)
{
    static const char *const keys[] = { "frame_count", "duration_ms", "file_size_bytes",
                                        "last_sequence", "error_count", "correlation_count" };
    uint64_t *slots[] = { &t->frame_count, NULL, &t->size_base, &t->last_sequence,
                          &t->error_count, &t->correlation_count };
    for (const cJSON *c = s->child; c != NULL; c = c->next) {
        const char *k = c->string;
        size_t i = 0;
        while (i < sizeof keys / sizeof *keys && strcmp(k, keys[i]) != 0) {
            i++;
        }
        int rc = TAPE_OK;
        char key[64];
        snprintf(key, sizeof key, "stats.%s", k);
        if (i < sizeof keys / sizeof *keys) {
            if (!counters) {
                continue;
            }
            uint64_t v = 0;
            rc = meta_count(&v, key, c);
            if (rc == TAPE_OK) {
                if (slots[i] != NULL) {
                    *slots[i] = v;
                } else {
                    t->duration_ms = (int64_t)v;
                }
            }
        } else if (strcmp(k, "message_counts") == 0) {
            if (!counters) {
                continue;
            }
            if (cJSON_IsNull(c)) {
                continue;
            }
            if (!cJSON_IsObject(c)) {
                return meta_bad(key, "an object", c);
            }
            rc = meta_count(&t->c2s, "stats.message_counts.client_to_server",
                            cJSON_GetObjectItemCaseSensitive(c, "client_to_server"));
            if (rc == TAPE_OK) {
                rc = meta_count(&t->s2c, "stats.message_counts.server_to_client",
                                cJSON_GetObjectItemCaseSensitive(c, "server_to_client"));
            }
        } else {
            rc = add_extra_copy(&t->stats_extra, c);
        }
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    return TAPE_OK;
}

static int set_json_value(char **field, const cJSON *v)
{
    char *text = NULL;
    if (!cJSON_IsNull(v) && (text = cJSON_PrintUnformatted(v)) == NULL) {
        return tape__oom();
    }
    free(*field);
    *field = text;
    return TAPE_OK;
}

/*
 * Apply a .meta.json object to t. for_entry: t is a frameless tape made
 * from the meta alone (id, created_at and stats come from it). Otherwise t
 * was decoded from its .jsonl: the ids must agree, metadata comes from the
 * meta, stats stay as counted from the frames.
 */
static int meta_apply(tape *t, const cJSON *m, const char *text, size_t len, int for_entry)
{
    /* Every member: the meta is rewritten from parsed values. */
    const char *cut = nul_member(m, text, len, NULL);
    if (cut != NULL) {
        return tape_error_set(TAPE_ECORRUPT,
                              "meta: %s contains \\u0000 (a NUL character), which this library "
                              "cannot keep in a string",
                              cut);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "tape_id");
    if (!cJSON_IsString(id)) {
        return meta_bad("tape_id", "a string", id);
    }
    if (for_entry) {
        if (tape_id_validate(id->valuestring) != TAPE_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", tape_errmsg());
            return tape_error_set(TAPE_ECORRUPT, "meta: %s", why);
        }
        if (tape__set_str(&t->id, id->valuestring) != TAPE_OK) {
            return TAPE_ENOMEM;
        }
    } else if (strcmp(id->valuestring, t->id) != 0) {
        return tape_error_set(TAPE_ECORRUPT,
                              "meta: tape_id '%.64s' does not match the init line's '%.64s'",
                              id->valuestring, t->id);
    }
    int init_changed = 0;
    for (const cJSON *c = m->child; c != NULL; c = c->next) {
        const char *k = c->string;
        const char *s;
        int rc = TAPE_OK;
        if (strcmp(k, "tape_id") == 0) {
            continue;
        } else if (strcmp(k, "name") == 0 || strcmp(k, "description") == 0) {
            if (!opt_string(&s, c)) {
                return meta_bad(k, "a string or null", c);
            }
            rc = tape__set_str(k[0] == 'n' ? &t->name : &t->description, s);
        } else if (strcmp(k, "session_id") == 0 || strcmp(k, "protocol_version") == 0) {
            if (!opt_string(&s, c)) {
                return meta_bad(k, "a string or null", c);
            }
            char **field = k[0] == 's' ? &t->session_id : &t->protocol_version;
            /* Shadowcat metas lack these: null keeps the init line's value. */
            if (s == NULL && !for_entry) {
                continue;
            }
            if ((s == NULL) != (*field == NULL) || (s != NULL && strcmp(s, *field) != 0)) {
                init_changed = 1;
                rc = tape__set_str(field, s);
            }
        } else if (strcmp(k, "tags") == 0) {
            if (cJSON_IsNull(c)) {
                continue;
            }
            if (!cJSON_IsArray(c)) {
                return meta_bad(k, "an array of strings", c);
            }
            size_t i = 0;
            for (const cJSON *tag = c->child; tag != NULL && rc == TAPE_OK; tag = tag->next, i++) {
                if (!cJSON_IsString(tag)) {
                    char key[32];
                    snprintf(key, sizeof key, "tags[%zu]", i);
                    return meta_bad(key, "a string", tag);
                }
                if (tag->valuestring[0] != '\0') { /* empty tags cannot exist: dropped */
                    rc = tape_add_tag(t, tag->valuestring);
                }
            }
        } else if (strcmp(k, "created_at") == 0) {
            int64_t ms;
            if (!cJSON_IsString(c)) {
                return meta_bad(k, "an ISO-8601 string", c);
            }
            rc = meta_time(&ms, k, c);
            if (rc == TAPE_OK && ms != t->created_at) {
                t->created_at = ms;
                init_changed = 1;
            }
        } else if (strcmp(k, "updated_at") == 0) {
            rc = meta_time(&t->updated_at, k, c);
        } else if (strcmp(k, "finalized_at") == 0) {
            rc = meta_time(&t->finalized_at, k, c);
        } else if (strcmp(k, "status") == 0) {
            if (cJSON_IsNull(c)) {
                continue;
            }
            if (!cJSON_IsString(c)) {
                return meta_bad(k, "\"recording\" or \"finalized\"", c);
            }
            if (strcmp(c->valuestring, "recording") == 0) {
                t->status = TAPE_STATUS_RECORDING;
            } else if (strcmp(c->valuestring, "finalized") == 0) {
                t->status = TAPE_STATUS_FINALIZED;
            } else {
                return tape_error_set(TAPE_ECORRUPT,
                                      "meta: status '%.32s' is neither \"recording\" nor "
                                      "\"finalized\"",
                                      c->valuestring);
            }
        } else if (strcmp(k, "transport") == 0) {
            rc = set_json_value(&t->transport_json, c);
        } else if (strcmp(k, "environment") == 0) {
            rc = set_json_value(&t->environment_json, c);
        } else if (strcmp(k, "stats") == 0) {
            if (cJSON_IsNull(c)) {
                continue;
            }
            if (!cJSON_IsObject(c)) {
                return meta_bad(k, "an object", c);
            }
            rc = meta_stats(t, c, for_entry);
        } else {
            rc = add_extra_copy(&t->meta_extra, c);
        }
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    if (t->created_at == TAPE_TIME_NONE) {
        return tape_error_set(TAPE_ECORRUPT, "meta: created_at is missing");
    }
    if (init_changed) {
        tape__init_line_drop(t); /* rebuilt from the meta's values */
    }
    return TAPE_OK;
}

static cJSON *parse_meta(const char *meta, size_t len)
{
    cJSON *m = tape__json_parse(meta, len);
    if (m == NULL) {
        tape_error_set(TAPE_ECORRUPT, "meta document is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        tape_error_set(TAPE_ECORRUPT, "meta document is not a JSON object");
        return NULL;
    }
    return m;
}

int tape_entry_from_meta(tape_entry **out, const char *meta, size_t len)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || meta == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_entry_from_meta: %s is NULL",
                              out == NULL ? "out" : "meta");
    }
    cJSON *m = parse_meta(meta, len);
    if (m == NULL) {
        return TAPE_ECORRUPT;
    }
    tape *t = tape__alloc();
    if (t == NULL) {
        cJSON_Delete(m);
        return tape__oom();
    }
    t->has_body = 0;
    int rc = meta_apply(t, m, meta, len, 1);
    cJSON_Delete(m);
    if (rc != TAPE_OK) {
        tape_free(t);
        return rc;
    }
    return tape__entry_from_frameless(out, t);
}

int tape_entry_meta_json(char **out, size_t *out_len, const tape_entry *e)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || e == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_entry_meta_json: %s is NULL",
                              out == NULL ? "out" : "entry");
    }
    return tape_encode_meta(out, out_len, e->t);
}

/* ------------------------------------------------------ .jsonl document */

int tape_encode_jsonl(char **out, size_t *out_len, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_encode_jsonl: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    char *init;
    size_t init_len;
    int rc = tape__init_line(&init, &init_len, t);
    if (rc != TAPE_OK) {
        return rc;
    }
    size_t total = init_len + (size_t)t->stored_bytes;
    char *buf = tape__big_alloc(total + 1);
    if (buf == NULL) {
        free(init);
        return tape__oom();
    }
    /* Stored lines are copied as they are: near memcpy speed. */
    memcpy(buf, init, init_len);
    free(init);
    char *p = buf + init_len;
    size_t x = 0;
    for (size_t i = 0; i <= t->nframes; i++) {
        for (; x < t->nxlines && t->xlines[x].before <= i; x++) {
            memcpy(p, t->xlines[x].text, t->xlines[x].len);
            p += t->xlines[x].len;
            *p++ = '\n';
        }
        if (i < t->nframes) {
            const tape_frame *f = t->frames[i];
            memcpy(p, f->line, f->line_len);
            p += f->line_len;
            *p++ = '\n';
        }
    }
    *p = '\0';
    *out = buf;
    if (out_len != NULL) {
        *out_len = (size_t)(p - buf);
    }
    return TAPE_OK;
}

/* The rule "a store refuses what it could not read back": every line the
 * encoder would write, measured without its newline (what the decoder
 * compares with max_line_bytes). */
int tape_check_line_limit(const tape *t, size_t max_line_bytes)
{
    if (t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_check_line_limit: tape is NULL");
    }
    if (max_line_bytes == 0) {
        max_line_bytes = TAPE_MAX_LINE_DEFAULT;
    }
    size_t init_len = 0;
    int rc = tape__init_line_len(&init_len, t);
    if (rc != TAPE_OK) {
        return rc;
    }
    if (init_len - 1 > max_line_bytes) {
        return tape_error_set(TAPE_ELIMIT,
                              "tape \"%s\": the init line is %zu bytes, longer than the "
                              "store's max_line_bytes of %zu",
                              t->id, init_len - 1, max_line_bytes);
    }
    for (size_t i = 0; i < t->nframes; i++) {
        rc = tape_frame_check_line_limit(t->frames[i], max_line_bytes);
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    for (size_t x = 0; x < t->nxlines; x++) {
        if (t->xlines[x].len > max_line_bytes) {
            return tape_error_set(TAPE_ELIMIT,
                                  "tape \"%s\": a %s line is %zu bytes, longer than the "
                                  "store's max_line_bytes of %zu",
                                  t->id,
                                  t->xlines[x].type == TAPE_LINE_CORRELATION ? "correlation"
                                  : t->xlines[x].type == TAPE_LINE_CHECKPOINT ? "checkpoint"
                                                                               : "preserved",
                                  t->xlines[x].len, max_line_bytes);
        }
    }
    return TAPE_OK;
}

int tape_frame_check_line_limit(const tape_frame *f, size_t max_line_bytes)
{
    if (f == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_frame_check_line_limit: frame is NULL");
    }
    if (max_line_bytes == 0) {
        max_line_bytes = TAPE_MAX_LINE_DEFAULT;
    }
    if (f->line_len > max_line_bytes) {
        return tape_error_set(TAPE_ELIMIT,
                              "frame %llu is a %zu-byte line, longer than the store's "
                              "max_line_bytes of %zu",
                              (unsigned long long)f->seq, f->line_len, max_line_bytes);
    }
    return TAPE_OK;
}

/* ----------------------------------------------------------- decoding */

typedef struct decoder {
    tape *t;
    int mode;
    size_t max_line;
    tape_decode_report *report;
    uint64_t lineno;
    int have_init;
} decoder;

#define LINE_TORN 1

/* Prefix the current error message with the line number. */
static int at_line(const decoder *d, int code)
{
    char why[768];
    snprintf(why, sizeof why, "%s", tape_errmsg());
    return tape_error_set(code, "line %llu: %s", (unsigned long long)d->lineno, why);
}

/* An invalid line in the middle (the message says why): strict mode
 * fails, recovery mode skips and counts it. */
static int bad_line(decoder *d)
{
    if (d->mode == TAPE_DECODE_STRICT) {
        return at_line(d, TAPE_ECORRUPT);
    }
    tape_log(TAPE_LOG_WARN, "tape decode: skipping line %llu: %s",
             (unsigned long long)d->lineno, tape_errmsg());
    d->report->skipped_lines++;
    if (d->report->first_bad_line == 0) {
        d->report->first_bad_line = d->lineno;
    }
    return TAPE_OK;
}

/* Store a parsed frame (taking it), after the one check between lines. */
static int decode_frame(decoder *d, tape_frame *f)
{
    tape *t = d->t;
    if (t->frame_count > 0 && f->seq <= t->last_sequence) {
        unsigned long long s = f->seq;
        tape_frame_free(f);
        return tape_error_set(TAPE_ECORRUPT,
                              "line %llu: frame seq %llu is not greater than the previous "
                              "frame's seq %llu",
                              (unsigned long long)d->lineno, s,
                              (unsigned long long)t->last_sequence);
    }
    int rc = tape__store_frame(t, f);
    if (rc != TAPE_OK) {
        tape_frame_free(f);
    }
    return rc;
}

static int decode_body_line(decoder *d, cJSON *root, int type, const char *line, size_t len)
{
    tape *t = d->t;
    int rc;
    switch (type) {
    case TAPE_LINE_INIT:
        tape_error_set(TAPE_ECORRUPT, "a second init line");
        return bad_line(d);
    case TAPE_LINE_FRAME: {
        tape_frame *f;
        rc = tape__frame_parse(&f, root, line, len, &t->arena);
        if (rc != TAPE_OK) {
            return rc == TAPE_ECORRUPT ? bad_line(d) : rc;
        }
        return decode_frame(d, f);
    }
    case TAPE_LINE_CORRELATION: {
        corr_fields k;
        if (corr_parse(&k, root, line, len) != TAPE_OK) {
            return bad_line(d);
        }
        rc = tape__store_xline(t, type, line, len, &t->arena);
        if (rc == TAPE_OK) {
            rc = tape__store_corr(t, k.id, k.request_seq, k.response_seq, k.rtt_ms, k.status,
                                  &t->arena);
        }
        return rc;
    }
    default:
        return tape__store_xline(t, type, line, len, &t->arena);
    }
}

static int decode_line(decoder *d, const char *line, size_t len, int last_without_newline)
{
    if (d->have_init) {
        tape_frame *f;
        int rc = tape__frame_parse_fast(&f, line, len, &d->t->arena);
        if (rc != TAPE__DECLINE) {
            return rc == TAPE_OK ? decode_frame(d, f) : rc;
        }
    }
    /* tape_decode cut the line at its '\n': json_parse_line's scan for
     * one would find nothing. */
    cJSON *root = tape__json_parse(line, len);
    if (root == NULL && last_without_newline) {
        /* A crash mid-append leaves a partial last line: not an error. */
        d->report->torn_tail = 1;
        tape_log(TAPE_LOG_INFO, "tape decode: ignoring the incomplete last line %llu",
                 (unsigned long long)d->lineno);
        return LINE_TORN;
    }
    if (root == NULL || !cJSON_IsObject(root)) {
        tape_error_set(TAPE_ECORRUPT, "%s: '%.*s'",
                       root == NULL ? "invalid JSON" : "not a JSON object",
                       (int)(len < 48 ? len : 48), line);
        cJSON_Delete(root);
        if (!d->have_init) {
            return at_line(d, TAPE_ECORRUPT);
        }
        return bad_line(d);
    }
    int type = line_type(root), rc;
    if (!d->have_init) {
        if (type != TAPE_LINE_INIT) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(root, "type");
            tape_error_set(TAPE_ECORRUPT, "the first line must be the init line, found %s%s%s",
                           cJSON_IsString(ty) ? "type '" : "a line without a type",
                           cJSON_IsString(ty) ? ty->valuestring : "",
                           cJSON_IsString(ty) ? "'" : "");
            rc = at_line(d, TAPE_ECORRUPT);
        } else {
            rc = init_parse(d->t, root, line, len);
            if (rc == TAPE_ECORRUPT) {
                rc = at_line(d, rc);
            }
            d->have_init = rc == TAPE_OK;
        }
    } else {
        rc = decode_body_line(d, root, type, line, len);
    }
    cJSON_Delete(root);
    return rc;
}

int tape_decode(tape **out, const char *jsonl, size_t jsonl_len, const char *meta,
                size_t meta_len, const tape_decode_options *opts, tape_decode_report *report)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || jsonl == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_decode: %s is NULL",
                              out == NULL ? "out" : "jsonl");
    }
    decoder d = { 0 };
    d.mode = TAPE_DECODE_STRICT;
    d.max_line = TAPE_MAX_LINE_DEFAULT;
    if (opts != NULL) {
        if (opts->version == 0) {
            return tape_error_set(TAPE_EINVAL, "tape_decode: opts->version is 0 (initialise "
                                  "with TAPE_DECODE_OPTIONS_INIT)");
        }
        if (opts->version > TAPE_DECODE_OPTIONS_VERSION) {
            return tape_error_set(TAPE_EVERSION,
                                  "tape_decode_options version %u is newer than this library "
                                  "(%u)",
                                  opts->version, TAPE_DECODE_OPTIONS_VERSION);
        }
        if (opts->mode != TAPE_DECODE_STRICT && opts->mode != TAPE_DECODE_RECOVER) {
            return tape_error_set(TAPE_EINVAL, "tape_decode: mode %d is neither "
                                  "TAPE_DECODE_STRICT nor TAPE_DECODE_RECOVER", opts->mode);
        }
        d.mode = opts->mode;
        if (opts->max_line_bytes != 0) {
            d.max_line = opts->max_line_bytes;
        }
    }
    tape_decode_report local = TAPE_DECODE_REPORT_INIT;
    if (report != NULL) {
        if (report->version == 0) {
            return tape_error_set(TAPE_EINVAL, "tape_decode: report->version is 0 (initialise "
                                  "with TAPE_DECODE_REPORT_INIT)");
        }
        report->torn_tail = 0;
        report->skipped_lines = 0;
        report->first_bad_line = 0;
        d.report = report;
    } else {
        d.report = &local;
    }
    cJSON *m = NULL;
    if (meta != NULL && (m = parse_meta(meta, meta_len)) == NULL) {
        return TAPE_ECORRUPT;
    }
    if ((d.t = tape__alloc()) == NULL) {
        cJSON_Delete(m);
        return tape__oom();
    }
    /* A frame keeps its line (its message is a span of it) and a small
     * struct: the text plus a margin, in one chunk when the size is known
     * up front. Only touched pages cost memory. */
    if (jsonl_len <= SIZE_MAX / 2) {
        tape__arena_reserve(&d.t->arena, jsonl_len + jsonl_len / 2);
    }
    int rc = TAPE_OK;
    const char *p = jsonl, *end = jsonl + jsonl_len;
    while (p < end && rc == TAPE_OK) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line = p;
        size_t len = (size_t)((nl != NULL ? nl : end) - p);
        p = nl != NULL ? nl + 1 : end;
        d.lineno++;
        if (len > d.max_line) {
            rc = tape_error_set(TAPE_ECORRUPT,
                                "line %llu is %zu bytes, longer than the limit of %zu bytes",
                                (unsigned long long)d.lineno, len, d.max_line);
            break;
        }
        while (len > 0 && line[len - 1] == '\r') {
            len--; /* CRLF files read like LF files; all of them, so a
                    * decode-encode round trip is stable */
        }
        size_t i = 0;
        while (i < len && is_ws(line[i])) {
            i++;
        }
        if (i == len) {
            continue; /* blank line */
        }
        rc = decode_line(&d, line, len, nl == NULL);
        if (rc == LINE_TORN) {
            rc = TAPE_OK;
            break;
        }
    }
    if (rc == TAPE_OK && !d.have_init) {
        rc = tape_error_set(TAPE_ECORRUPT, "the tape has no init line%s",
                            d.report->torn_tail ? " (its only line is incomplete)"
                                                : (jsonl_len == 0 ? " (the document is empty)"
                                                                  : ""));
    }
    if (rc == TAPE_OK && m != NULL) {
        rc = meta_apply(d.t, m, meta, meta_len, 0);
    }
    cJSON_Delete(m);
    if (rc != TAPE_OK) {
        tape_free(d.t);
        return rc;
    }
    *out = d.t;
    return TAPE_OK;
}
