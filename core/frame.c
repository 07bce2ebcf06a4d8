/* frame.c - frames: building a frame line, decoding one, accessors. */
#include "codec_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *dir_name(int dir)
{
    return dir == TAPE_DIR_CLIENT_TO_SERVER ? "client_to_server" : "server_to_client";
}

/* One allocation: struct, line, message, correlation id (see the header). */
static tape_frame *frame_alloc(const char *line, size_t line_len, const char *msg,
                               size_t msg_len, const char *cid, size_t cid_len)
{
    size_t total = sizeof(tape_frame) + line_len + 1 + msg_len + 1 + (cid ? cid_len + 1 : 0);
    tape_frame *f = malloc(total);
    if (f == NULL) {
        return NULL;
    }
    char *p = (char *)(f + 1);
    f->line = p;
    f->line_len = line_len;
    memcpy(p, line, line_len);
    p[line_len] = '\0';
    p += line_len + 1;
    f->message = p;
    f->message_len = msg_len;
    memcpy(p, msg, msg_len);
    p[msg_len] = '\0';
    p += msg_len + 1;
    f->correlation_id = NULL;
    f->cid_len = 0;
    if (cid != NULL) {
        f->correlation_id = p;
        f->cid_len = cid_len;
        memcpy(p, cid, cid_len);
        p[cid_len] = '\0';
    }
    return f;
}

void tape_frame_free(tape_frame *f)
{
    free(f);
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
    *out = frame_alloc(f->line, f->line_len, f->message, f->message_len, f->correlation_id,
                       f->cid_len);
    if (*out == NULL) {
        return tape__oom();
    }
    (*out)->seq = f->seq;
    (*out)->ts = f->ts;
    (*out)->dir = f->dir;
    (*out)->is_error = f->is_error;
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

const char *tape_frame_message(const tape_frame *f, size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = f == NULL ? 0 : f->message_len;
    }
    return f == NULL ? NULL : f->message;
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

/* --------------------------------------------------------------- build */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int has_member(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) && cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

/* Parse optional JSON object text for a frame field. */
static int parse_object_arg(cJSON **out, const char *what, const char *text)
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
    *out = v;
    return TAPE_OK;
}

int tape__frame_build(tape_frame **out, uint64_t seq, const tape_frame_desc *desc,
                      int64_t created_at, const char *session_id)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || desc == NULL) {
        return tape_error_set(TAPE_EINVAL, "frame: %s is NULL", out == NULL ? "out" : "desc");
    }
    *out = NULL;
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
    if ((double)seq > TAPE__JSON_INT_MAX) {
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
    if ((double)ts > TAPE__JSON_INT_MAX || !tape__time_ok(created_at + ts)) {
        return tape_error_set(TAPE_EINVAL, "frame ts_ms %lld is out of range",
                              (long long)desc->ts_ms);
    }

    /* Surrounding whitespace carries nothing (often a transport's '\n'). */
    const char *msg = desc->message;
    size_t len = desc->message_len ? desc->message_len : strlen(msg);
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
    cJSON *m = tape__json_parse(msg, len);
    if (m == NULL) {
        return tape_error_set(TAPE_EINVAL, "frame message is not valid JSON: '%.64s'",
                              len ? msg : "(empty)");
    }
    int is_error = has_member(m, "error");
    cJSON *flags = NULL, *transport = NULL, *root = NULL;
    char *mtext = NULL, *line = NULL;
    int rc = parse_object_arg(&flags, "flags", desc->flags_json);
    if (rc == TAPE_OK) {
        rc = parse_object_arg(&transport, "transport", desc->transport_json);
    }
    if (rc != TAPE_OK) {
        goto done;
    }
    rc = TAPE_ENOMEM;
    if (flags != NULL) {
        is_error |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(flags, "is_error"));
    } else if (cJSON_IsObject(m)) {
        /* Shadowcat readers expect flags; derive them from the message. */
        int has_method = has_member(m, "method"), has_id = has_member(m, "id");
        if ((flags = cJSON_CreateObject()) == NULL ||
            !cJSON_AddBoolToObject(flags, "is_error", is_error) ||
            !cJSON_AddBoolToObject(flags, "is_notification", has_method && !has_id) ||
            !cJSON_AddBoolToObject(flags, "requires_response", has_method && has_id)) {
            goto oom;
        }
    }
    if ((mtext = tape__strndup(msg, len)) == NULL) {
        goto oom;
    }
    /* A line is a frame: a message spread over lines is stored minified. */
    if (memchr(mtext, '\n', len) != NULL || memchr(mtext, '\r', len) != NULL) {
        cJSON_Minify(mtext);
        len = strlen(mtext);
        if (memchr(mtext, '\n', len) != NULL || memchr(mtext, '\r', len) != NULL) {
            rc = tape_error_set(TAPE_EINVAL,
                                "frame message is not valid JSON: a string contains a raw "
                                "line break");
            goto done;
        }
    }
    char iso[32];
    tape__time_format(iso, created_at + ts);
    cJSON *env;
    if ((root = cJSON_CreateObject()) == NULL ||
        !cJSON_AddStringToObject(root, "type", "frame") ||
        !cJSON_AddNumberToObject(root, "seq", (double)seq) ||
        !cJSON_AddNumberToObject(root, "ts", (double)ts) ||
        !cJSON_AddStringToObject(root, "dir", dir_name(desc->direction)) ||
        (env = cJSON_AddObjectToObject(root, "env")) == NULL ||
        !cJSON_AddRawToObject(env, "message", mtext) ||
        !cJSON_AddStringToObject(env, "direction", dir_name(desc->direction)) ||
        !cJSON_AddStringToObject(env, "timestamp", iso) ||
        (session_id != NULL && !cJSON_AddStringToObject(env, "session_id", session_id))) {
        goto oom;
    }
    if (transport != NULL) {
        if (!cJSON_AddItemToObject(root, "transport", transport)) {
            goto oom;
        }
        transport = NULL;
    }
    if (!(desc->correlation_id != NULL
              ? cJSON_AddStringToObject(root, "correlation_id", desc->correlation_id) != NULL
              : cJSON_AddNullToObject(root, "correlation_id") != NULL)) {
        goto oom;
    }
    if (flags != NULL) {
        if (!cJSON_AddItemToObject(root, "flags", flags)) {
            goto oom;
        }
        flags = NULL;
    }
    if ((line = cJSON_PrintUnformatted(root)) == NULL) {
        goto oom;
    }
    size_t line_len = strlen(line);
    /* Every line we write must be readable with the default limit. */
    if (line_len > TAPE_MAX_LINE_DEFAULT) {
        rc = tape_error_set(TAPE_ELIMIT, "frame line would be %zu bytes, over the %u-byte line "
                            "limit", line_len, TAPE_MAX_LINE_DEFAULT);
        goto done;
    }
    const char *cid = desc->correlation_id;
    tape_frame *f = frame_alloc(line, line_len, mtext, len, cid, cid ? strlen(cid) : 0);
    if (f == NULL) {
        goto oom;
    }
    f->seq = seq;
    f->ts = ts;
    f->dir = desc->direction;
    f->is_error = is_error;
    *out = f;
    rc = TAPE_OK;
    goto done;
oom:
    rc = tape__oom();
done:
    cJSON_Delete(m);
    cJSON_Delete(flags);
    cJSON_Delete(transport);
    cJSON_Delete(root);
    free(mtext);
    free(line);
    return rc;
}

int tape_frame_new(tape_frame **out, uint64_t seq, const tape_frame_desc *desc,
                   int64_t created_at)
{
    return tape__frame_build(out, seq, desc, created_at, NULL);
}

/* -------------------------------------------------------------- decode */

/*
 * Span scanner. cJSON keeps no source positions, and re-printing a value
 * changes its numbers and escapes, so the message's bytes are found in the
 * line itself. The line has already been accepted by cJSON: the scanner only
 * skips strings and nested brackets, it validates nothing. Any surprise
 * (an escaped key, say) makes it give up and the caller re-prints instead.
 */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p)) {
        p++;
    }
    return p;
}

/* p at an opening quote; returns just past the closing one. */
static const char *skip_string(const char *p, const char *end)
{
    p++;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL) {
            return NULL;
        }
        const char *b = q;
        while (b > p && b[-1] == '\\') {
            b--;
        }
        if (((q - b) & 1) == 0) {
            return q + 1;
        }
        p = q + 1;
    }
}

static const char *skip_value(const char *p, const char *end)
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

/* The value span of the first member `key` of the object at p. */
static int member_span(const char **vs, const char **ve, const char *p, const char *end,
                       const char *key, size_t keylen)
{
    p = skip_ws(p, end);
    if (p >= end || *p != '{') {
        return 0;
    }
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"') {
            return 0;
        }
        const char *ks = p + 1;
        if ((p = skip_string(p, end)) == NULL) {
            return 0;
        }
        const char *ke = p - 1;
        /* cJSON compares unescaped keys; give up rather than guess. */
        if (memchr(ks, '\\', (size_t)(ke - ks)) != NULL) {
            return 0;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return 0;
        }
        p = skip_ws(p + 1, end);
        const char *s = p;
        if ((p = skip_value(p, end)) == NULL) {
            return 0;
        }
        if ((size_t)(ke - ks) == keylen && memcmp(ks, key, keylen) == 0) {
            *vs = s;
            *ve = p;
            return 1;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            return 0;
        }
        p++;
    }
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

int tape__frame_parse(tape_frame **out, const cJSON *root, const char *line, size_t len)
{
    *out = NULL;
    const cJSON *seq = NULL, *ts = NULL, *dir = NULL, *env = NULL, *cid = NULL, *flags = NULL;
    /* One pass over the members; the first of a duplicated key wins, as
     * with cJSON_GetObjectItem. */
    for (const cJSON *c = root->child; c != NULL; c = c->next) {
        const char *k = c->string;
        if (k == NULL) {
            continue;
        }
        if (seq == NULL && strcmp(k, "seq") == 0) {
            seq = c;
        } else if (ts == NULL && strcmp(k, "ts") == 0) {
            ts = c;
        } else if (dir == NULL && strcmp(k, "dir") == 0) {
            dir = c;
        } else if (env == NULL && strcmp(k, "env") == 0) {
            env = c;
        } else if (cid == NULL && strcmp(k, "correlation_id") == 0) {
            cid = c;
        } else if (flags == NULL && strcmp(k, "flags") == 0) {
            flags = c;
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
    if (strcmp(dir->valuestring, "client_to_server") == 0) {
        d = TAPE_DIR_CLIENT_TO_SERVER;
    } else if (strcmp(dir->valuestring, "server_to_client") == 0) {
        d = TAPE_DIR_SERVER_TO_CLIENT;
    } else {
        return frame_bad("dir must be \"client_to_server\" or \"server_to_client\"");
    }
    if (!cJSON_IsObject(env)) {
        return frame_bad("env is missing or not an object");
    }
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(env, "message");
    if (msg == NULL) {
        return frame_bad("env.message is missing");
    }
    if (cid != NULL && !cJSON_IsNull(cid) && !cJSON_IsString(cid)) {
        return frame_bad("correlation_id must be a string or null");
    }
    if (flags != NULL && !cJSON_IsNull(flags) && !cJSON_IsObject(flags)) {
        return frame_bad("flags must be an object");
    }
    int is_error = has_member(msg, "error") ||
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(flags, "is_error"));

    const char *end = line + len, *es, *ee, *ms, *me;
    char *printed = NULL;
    if (!member_span(&es, &ee, line, end, "env", 3) ||
        !member_span(&ms, &me, es, ee, "message", 7)) {
        if ((printed = cJSON_PrintUnformatted(msg)) == NULL) {
            return tape__oom();
        }
        ms = printed;
        me = printed + strlen(printed);
    }
    const char *cs = cJSON_IsString(cid) ? cid->valuestring : NULL;
    tape_frame *f = frame_alloc(line, len, ms, (size_t)(me - ms), cs, cs ? strlen(cs) : 0);
    free(printed);
    if (f == NULL) {
        return tape__oom();
    }
    f->seq = useq;
    f->ts = (int64_t)uts;
    f->dir = d;
    f->is_error = is_error;
    *out = f;
    return TAPE_OK;
}
