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

cJSON *tape__json_parse(const char *text, size_t len)
{
    if (text == NULL || len == 0) {
        return NULL;
    }
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (v == NULL) {
        return NULL;
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
    char *line;
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
    *out = NULL;
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
    *out = NULL;
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
    *out = NULL;
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
