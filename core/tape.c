/* tape.c - the tape model: metadata, tags, frames, correlations, stats. */
#include "codec_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the range the
 * ISO text of the format can carry and tape__time_parse reads back. */
#define TIME_MIN INT64_C(-62167219200000)
#define TIME_MAX INT64_C(253402300799999)

int tape__time_ok(int64_t ms)
{
    return ms >= TIME_MIN && ms <= TIME_MAX;
}

/* ------------------------------------------------------------------ ids */

int tape_id_validate(const char *id)
{
    if (id == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape id is NULL");
    }
    if (id[0] == '\0') {
        return tape_error_set(TAPE_EINVAL, "tape id is empty");
    }
    if (id[0] == '.') {
        return tape_error_set(TAPE_EINVAL,
                              "invalid tape id '%.64s': must not start with '.'", id);
    }
    size_t n = 0;
    for (const char *p = id; *p != '\0'; p++, n++) {
        if (n >= TAPE_ID_MAX) {
            return tape_error_set(TAPE_EINVAL, "invalid tape id '%.32s...': longer than %d bytes",
                                  id, TAPE_ID_MAX);
        }
        unsigned char c = (unsigned char)*p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) {
            /* Quote only the valid prefix: the rest may be control bytes. */
            return tape_error_set(TAPE_EINVAL,
                                  "invalid tape id '%.*s...': byte 0x%02x at offset %zu is not "
                                  "one of [A-Za-z0-9._-]",
                                  (int)(n < 64 ? n : 64), id, c, n);
        }
    }
    return TAPE_OK;
}

/* 16 random bytes from the kernel: getrandom(), else /dev/urandom. */
static int random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        got += (size_t)r;
    }
    if (got == n) {
        return TAPE_OK;
    }
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return tape_error_set(TAPE_EIO, "cannot generate a tape id: no random source (%s)",
                              strerror(errno));
    }
    got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            close(fd);
            return tape_error_set(TAPE_EIO, "cannot read /dev/urandom");
        }
        got += (size_t)r;
    }
    close(fd);
    return TAPE_OK;
}

static int uuid_v4(char out[37])
{
    unsigned char b[16];
    int rc = random_bytes(b, sizeof b);
    if (rc != TAPE_OK) {
        return rc;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return TAPE_OK;
}

/* ------------------------------------------------------------ lifecycle */

tape *tape__alloc(void)
{
    tape *t = calloc(1, sizeof *t);
    if (t != NULL) {
        t->status = TAPE_STATUS_RECORDING;
        t->created_at = TAPE_TIME_NONE;
        t->updated_at = TAPE_TIME_NONE;
        t->finalized_at = TAPE_TIME_NONE;
        t->has_body = 1;
    }
    return t;
}

int tape_new(tape **out, const char *id)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_new: out is NULL");
    }
    *out = NULL;
    char gen[37];
    if (id == NULL) {
        int rc = uuid_v4(gen);
        if (rc != TAPE_OK) {
            return rc;
        }
        id = gen;
    } else {
        int rc = tape_id_validate(id);
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    tape *t = tape__alloc();
    if (t == NULL || (t->id = tape__strdup(id)) == NULL) {
        tape_free(t);
        return tape__oom();
    }
    t->created_at = tape__now_ms();
    *out = t;
    return TAPE_OK;
}

static void free_bodies(tape *t)
{
    /* Arena frames go with the arena, but a message copy made on demand
     * (tape_frame_message) is each frame's own. */
    for (size_t i = 0; i < t->nframes; i++) {
        tape_frame *f = t->frames[i];
        if (f->in_arena) {
            tape__frame_release(f);
        } else {
            tape_frame_free(f);
        }
    }
    free(t->frames);
    t->frames = NULL;
    t->nframes = t->cap_frames = 0;
    tape__arena_free(t->arena);
    t->arena = NULL;
    for (size_t i = 0; i < t->ncorrs; i++) {
        if (!t->corrs[i].in_arena) {
            free(t->corrs[i].id);
            free(t->corrs[i].status);
        }
    }
    free(t->corrs);
    t->corrs = NULL;
    t->ncorrs = t->cap_corrs = 0;
    for (size_t i = 0; i < t->nxlines; i++) {
        if (!t->xlines[i].in_arena) {
            free(t->xlines[i].text);
        }
    }
    free(t->xlines);
    t->xlines = NULL;
    t->nxlines = t->cap_xlines = 0;
}

void tape_free(tape *t)
{
    if (t == NULL) {
        return;
    }
    free(t->id);
    free(t->name);
    free(t->description);
    free(t->session_id);
    free(t->protocol_version);
    free(t->transport_json);
    free(t->environment_json);
    for (size_t i = 0; i < t->ntags; i++) {
        free(t->tags[i]);
    }
    free(t->tags);
    free_bodies(t);
    free(t->init_line);
    cJSON_Delete(t->init_extra);
    cJSON_Delete(t->meta_extra);
    cJSON_Delete(t->stats_extra);
    free(t);
}

static int dup_json(cJSON **dst, const cJSON *src)
{
    *dst = NULL;
    if (src != NULL && (*dst = cJSON_Duplicate(src, 1)) == NULL) {
        return TAPE_ENOMEM;
    }
    return TAPE_OK;
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (src != NULL && (*dst = tape__strdup(src)) == NULL) {
        return TAPE_ENOMEM;
    }
    return TAPE_OK;
}

/* Metadata, tags, stats counters and preserved extras; no frames or lines. */
static int copy_meta(tape *c, const tape *t)
{
    if (dup_str(&c->id, t->id) || dup_str(&c->name, t->name) ||
        dup_str(&c->description, t->description) || dup_str(&c->session_id, t->session_id) ||
        dup_str(&c->protocol_version, t->protocol_version) ||
        dup_str(&c->transport_json, t->transport_json) ||
        dup_str(&c->environment_json, t->environment_json) ||
        dup_json(&c->init_extra, t->init_extra) || dup_json(&c->meta_extra, t->meta_extra) ||
        dup_json(&c->stats_extra, t->stats_extra)) {
        return tape__oom();
    }
    c->status = t->status;
    c->created_at = t->created_at;
    c->updated_at = t->updated_at;
    c->finalized_at = t->finalized_at;
    if (t->init_line != NULL) {
        if ((c->init_line = tape__strndup(t->init_line, t->init_line_len)) == NULL) {
            return tape__oom();
        }
        c->init_line_len = t->init_line_len;
    }
    if (t->ntags > 0) {
        if ((c->tags = calloc(t->ntags, sizeof *c->tags)) == NULL) {
            return tape__oom();
        }
        c->cap_tags = t->ntags;
        for (size_t i = 0; i < t->ntags; i++) {
            if ((c->tags[i] = tape__strdup(t->tags[i])) == NULL) {
                return tape__oom();
            }
            c->ntags++;
        }
    }
    c->frame_count = t->frame_count;
    c->last_sequence = t->last_sequence;
    c->c2s = t->c2s;
    c->s2c = t->s2c;
    c->error_count = t->error_count;
    c->correlation_count = t->correlation_count;
    c->duration_ms = t->duration_ms;
    return TAPE_OK;
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_tags(const tape *a, const tape *b)
{
    if (a->ntags != b->ntags) {
        return 0;
    }
    for (size_t i = 0; i < a->ntags; i++) {
        if (strcmp(a->tags[i], b->tags[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Shared by the core's writer (tape_writer_update_meta) and any backend
 * that keeps its own copy of a recording (memory); a field that did not
 * change costs a compare, so it can run at every append. */
int tape_copy_learned_meta(tape *dst, const tape *src)
{
    if (dst == NULL || src == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_copy_learned_meta: %s is NULL",
                              dst == NULL ? "dst" : "src");
    }
    int rc = TAPE_OK;
#define LEARN(field, set)                                                                    \
    if (rc == TAPE_OK && !same_str(dst->field, src->field)) rc = set(dst, src->field)
    LEARN(name, tape_set_name);
    LEARN(description, tape_set_description);
    LEARN(session_id, tape_set_session_id);
    LEARN(protocol_version, tape_set_protocol_version);
    LEARN(transport_json, tape_set_transport_json);
    LEARN(environment_json, tape_set_environment_json);
#undef LEARN
    if (rc == TAPE_OK && !same_tags(dst, src)) {
        while (rc == TAPE_OK && dst->ntags > 0) {
            rc = tape_remove_tag(dst, dst->tags[dst->ntags - 1]);
        }
        for (size_t i = 0; rc == TAPE_OK && i < src->ntags; i++) {
            rc = tape_add_tag(dst, src->tags[i]);
        }
    }
    return rc;
}

int tape_clone(tape **out, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_clone: %s is NULL", out == NULL ? "out" : "t");
    }
    tape *c = tape__alloc();
    if (c == NULL) {
        return tape__oom();
    }
    int rc = copy_meta(c, t);
    if (rc != TAPE_OK) {
        goto fail;
    }
    c->has_body = t->has_body;
    c->size_base = t->size_base;
    c->size_tracks_init = t->size_tracks_init;
    c->stored_bytes = t->stored_bytes;
    c->accounted_bytes = t->accounted_bytes;
    rc = TAPE_ENOMEM;
    if (t->nframes > 0) {
        if ((c->frames = malloc(t->nframes * sizeof *c->frames)) == NULL) {
            goto oom;
        }
        c->cap_frames = t->nframes;
        for (size_t i = 0; i < t->nframes; i++) {
            if ((c->frames[i] = tape__frame_copy(t->frames[i], &c->arena)) == NULL) {
                goto oom;
            }
            c->nframes++;
        }
    }
    if (t->nxlines > 0) {
        if ((c->xlines = malloc(t->nxlines * sizeof *c->xlines)) == NULL) {
            goto oom;
        }
        c->cap_xlines = t->nxlines;
        for (size_t i = 0; i < t->nxlines; i++) {
            tape_xline x = t->xlines[i];
            x.in_arena = 0;
            if ((x.text = tape__strndup(x.text, x.len)) == NULL) {
                goto oom;
            }
            c->xlines[c->nxlines++] = x;
        }
    }
    if (t->ncorrs > 0) {
        if ((c->corrs = malloc(t->ncorrs * sizeof *c->corrs)) == NULL) {
            goto oom;
        }
        c->cap_corrs = t->ncorrs;
        for (size_t i = 0; i < t->ncorrs; i++) {
            tape_corr k = t->corrs[i];
            k.in_arena = 0;
            k.id = tape__strdup(k.id);
            k.status = tape__strdup(k.status);
            if (k.id == NULL || (t->corrs[i].status != NULL && k.status == NULL)) {
                free(k.id);
                free(k.status);
                goto oom;
            }
            c->corrs[c->ncorrs++] = k;
        }
    }
    *out = c;
    return TAPE_OK;
oom:
    rc = tape__oom();
fail:
    tape_free(c);
    return rc;
}

int tape_clone_meta(tape **out, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_clone_meta: %s is NULL",
                              out == NULL ? "out" : "t");
    }
    tape_stats st = TAPE_STATS_INIT;
    int rc = tape__stats(&st, t);
    if (rc != TAPE_OK) {
        return rc;
    }
    tape *c = tape__alloc();
    if (c == NULL) {
        return tape__oom();
    }
    rc = copy_meta(c, t);
    if (rc != TAPE_OK) {
        tape_free(c);
        return rc;
    }
    /* The copy's file size starts where the source's is now. When the
     * source knows its init line (a tape with its body, or such a copy),
     * the copy keeps counting it anew, so a session id or protocol
     * version set later (tape_writer_update_meta) changes the size as a
     * load of the written file would see it. */
    c->has_body = 0;
    c->size_base = st.file_size_bytes;
    if (t->has_body || t->size_tracks_init) {
        size_t init_len = 0;
        rc = tape__init_line_len(&init_len, t);
        if (rc != TAPE_OK) {
            tape_free(c);
            return rc;
        }
        c->size_base = st.file_size_bytes - init_len;
        c->size_tracks_init = 1;
    }
    *out = c;
    return TAPE_OK;
}

/* ------------------------------------------------------------ metadata */

int tape__set_str(char **field, const char *s)
{
    char *copy = NULL;
    if (s != NULL && (copy = tape__strdup(s)) == NULL) {
        return tape__oom();
    }
    free(*field);
    *field = copy;
    return TAPE_OK;
}

void tape__init_line_drop(tape *t)
{
    free(t->init_line);
    t->init_line = NULL;
    t->init_line_len = 0;
}

#define NULL_TAPE(fn) tape_error_set(TAPE_EINVAL, fn ": tape is NULL")

const char *tape_id(const tape *t)
{
    return t == NULL ? NULL : t->id;
}

const char *tape_name(const tape *t)
{
    return t == NULL ? NULL : t->name;
}

int tape_set_name(tape *t, const char *name)
{
    return t == NULL ? NULL_TAPE("tape_set_name") : tape__set_str(&t->name, name);
}

const char *tape_description(const tape *t)
{
    return t == NULL ? NULL : t->description;
}

int tape_set_description(tape *t, const char *description)
{
    return t == NULL ? NULL_TAPE("tape_set_description")
                     : tape__set_str(&t->description, description);
}

const char *tape_session_id(const tape *t)
{
    return t == NULL ? NULL : t->session_id;
}

int tape_set_session_id(tape *t, const char *session_id)
{
    if (t == NULL) {
        return NULL_TAPE("tape_set_session_id");
    }
    int rc = tape__set_str(&t->session_id, session_id);
    if (rc == TAPE_OK) {
        tape__init_line_drop(t);
    }
    return rc;
}

const char *tape_protocol_version(const tape *t)
{
    return t == NULL ? NULL : t->protocol_version;
}

int tape_set_protocol_version(tape *t, const char *protocol_version)
{
    if (t == NULL) {
        return NULL_TAPE("tape_set_protocol_version");
    }
    int rc = tape__set_str(&t->protocol_version, protocol_version);
    if (rc == TAPE_OK) {
        tape__init_line_drop(t);
    }
    return rc;
}

int tape_status(const tape *t)
{
    return t == NULL ? 0 : t->status;
}

int tape_set_status(tape *t, int status)
{
    if (t == NULL) {
        return NULL_TAPE("tape_set_status");
    }
    if (status != TAPE_STATUS_RECORDING && status != TAPE_STATUS_FINALIZED) {
        return tape_error_set(TAPE_EINVAL,
                              "invalid tape status %d (expected TAPE_STATUS_RECORDING or "
                              "TAPE_STATUS_FINALIZED)",
                              status);
    }
    t->status = status;
    return TAPE_OK;
}

int64_t tape_created_at(const tape *t)
{
    return t == NULL ? TAPE_TIME_NONE : t->created_at;
}

static int check_time(const char *what, int64_t ms)
{
    if (!tape__time_ok(ms)) {
        return tape_error_set(TAPE_EINVAL,
                              "%s %lld ms is out of range (years 0000 to 9999 UTC)", what,
                              (long long)ms);
    }
    return TAPE_OK;
}

int tape_set_created_at(tape *t, int64_t ms)
{
    if (t == NULL) {
        return NULL_TAPE("tape_set_created_at");
    }
    if (ms == TAPE_TIME_NONE) {
        return tape_error_set(TAPE_EINVAL, "created_at cannot be unset (TAPE_TIME_NONE)");
    }
    int rc = check_time("created_at", ms);
    if (rc == TAPE_OK) {
        t->created_at = ms;
        tape__init_line_drop(t);
    }
    return rc;
}

int64_t tape_updated_at(const tape *t)
{
    return t == NULL ? TAPE_TIME_NONE : t->updated_at;
}

int tape_set_updated_at(tape *t, int64_t ms)
{
    if (t == NULL) {
        return NULL_TAPE("tape_set_updated_at");
    }
    int rc = ms == TAPE_TIME_NONE ? TAPE_OK : check_time("updated_at", ms);
    if (rc == TAPE_OK) {
        t->updated_at = ms;
    }
    return rc;
}

int64_t tape_finalized_at(const tape *t)
{
    return t == NULL ? TAPE_TIME_NONE : t->finalized_at;
}

int tape_set_finalized_at(tape *t, int64_t ms)
{
    if (t == NULL) {
        return NULL_TAPE("tape_set_finalized_at");
    }
    int rc = ms == TAPE_TIME_NONE ? TAPE_OK : check_time("finalized_at", ms);
    if (rc == TAPE_OK) {
        t->finalized_at = ms;
    }
    return rc;
}

/* Store JSON text compactly, after checking it is one JSON value. */
static int set_json(char **field, const char *what, const char *json)
{
    if (json == NULL) {
        free(*field);
        *field = NULL;
        return TAPE_OK;
    }
    cJSON *v = tape__json_parse(json, strlen(json));
    if (v == NULL) {
        return tape_error_set(TAPE_EINVAL, "%s is not valid JSON: '%.64s'", what, json);
    }
    char *text = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    if (text == NULL) {
        return tape__oom();
    }
    free(*field);
    *field = text;
    return TAPE_OK;
}

const char *tape_transport_json(const tape *t)
{
    return t == NULL ? NULL : t->transport_json;
}

int tape_set_transport_json(tape *t, const char *json)
{
    return t == NULL ? NULL_TAPE("tape_set_transport_json")
                     : set_json(&t->transport_json, "transport", json);
}

const char *tape_environment_json(const tape *t)
{
    return t == NULL ? NULL : t->environment_json;
}

int tape_set_environment_json(tape *t, const char *json)
{
    return t == NULL ? NULL_TAPE("tape_set_environment_json")
                     : set_json(&t->environment_json, "environment", json);
}

/* ---------------------------------------------------------------- tags */

size_t tape_tag_count(const tape *t)
{
    return t == NULL ? 0 : t->ntags;
}

const char *tape_tag_at(const tape *t, size_t i)
{
    return t == NULL || i >= t->ntags ? NULL : t->tags[i];
}

static size_t tag_find(const tape *t, const char *tag)
{
    for (size_t i = 0; i < t->ntags; i++) {
        if (strcmp(t->tags[i], tag) == 0) {
            return i;
        }
    }
    return (size_t)-1;
}

int tape_has_tag(const tape *t, const char *tag)
{
    return t != NULL && tag != NULL && tag_find(t, tag) != (size_t)-1;
}

int tape_add_tag(tape *t, const char *tag)
{
    if (t == NULL || tag == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_add_tag: %s is NULL", t == NULL ? "tape" : "tag");
    }
    if (tag[0] == '\0') {
        return tape_error_set(TAPE_EINVAL, "tape_add_tag: tag is empty");
    }
    if (tag_find(t, tag) != (size_t)-1) {
        return TAPE_OK;
    }
    if (t->ntags == t->cap_tags) {
        size_t cap = t->cap_tags ? t->cap_tags * 2 : 4;
        char **n = realloc(t->tags, cap * sizeof *n);
        if (n == NULL) {
            return tape__oom();
        }
        t->tags = n;
        t->cap_tags = cap;
    }
    if ((t->tags[t->ntags] = tape__strdup(tag)) == NULL) {
        return tape__oom();
    }
    t->ntags++;
    return TAPE_OK;
}

int tape_remove_tag(tape *t, const char *tag)
{
    if (t == NULL || tag == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_remove_tag: %s is NULL",
                              t == NULL ? "tape" : "tag");
    }
    size_t i = tag_find(t, tag);
    if (i == (size_t)-1) {
        return tape_error_set(TAPE_ENOTFOUND, "tape has no tag '%.64s'", tag);
    }
    free(t->tags[i]);
    memmove(&t->tags[i], &t->tags[i + 1], (t->ntags - i - 1) * sizeof *t->tags);
    t->ntags--;
    return TAPE_OK;
}

/* -------------------------------------------------------------- frames */

void tape__count_frame(tape *t, const tape_frame *f)
{
    t->frame_count++;
    t->last_sequence = f->seq;
    if (f->ts > t->duration_ms) {
        t->duration_ms = f->ts;
    }
    if (f->dir == TAPE_DIR_CLIENT_TO_SERVER) {
        t->c2s++;
    } else {
        t->s2c++;
    }
    if (f->is_error) {
        t->error_count++;
    }
}

static int check_next_seq(const tape *t, const tape_frame *f, const char *fn)
{
    if (t->frame_count > 0 && f->seq <= t->last_sequence) {
        return tape_error_set(TAPE_EINVAL, "%s: frame seq %llu is not greater than the last "
                              "seq %llu", fn, (unsigned long long)f->seq,
                              (unsigned long long)t->last_sequence);
    }
    return TAPE_OK;
}

int tape__store_frame(tape *t, tape_frame *f)
{
    if (t->nframes == t->cap_frames) {
        size_t cap = t->cap_frames ? t->cap_frames * 2 : 64;
        tape_frame **n = realloc(t->frames, cap * sizeof *n);
        if (n == NULL) {
            return tape__oom();
        }
        t->frames = n;
        t->cap_frames = cap;
    }
    t->frames[t->nframes++] = f;
    t->stored_bytes += f->line_len + 1;
    tape__count_frame(t, f);
    return TAPE_OK;
}

int tape_append_frame(uint64_t *out_seq, tape *t, const tape_frame_desc *desc)
{
    if (t == NULL) {
        return NULL_TAPE("tape_append_frame");
    }
    uint64_t seq = t->frame_count == 0 ? 0 : t->last_sequence + 1;
    tape_frame *f;
    /* From the tape's arena: a malloc per frame, freed again with the
     * tape, was a first-touch page fault every few frames. */
    int rc = tape__frame_build(&f, seq, desc, t->created_at, t->session_id, &t->arena);
    if (rc != TAPE_OK) {
        return rc;
    }
    rc = tape__store_frame(t, f);
    if (rc != TAPE_OK) {
        tape_frame_free(f);
        return rc;
    }
    if (out_seq != NULL) {
        *out_seq = seq;
    }
    return TAPE_OK;
}

int tape_push_frame(tape *t, tape_frame *f)
{
    if (t == NULL || f == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_push_frame: %s is NULL",
                              t == NULL ? "tape" : "frame");
    }
    int rc = check_next_seq(t, f, "tape_push_frame");
    return rc != TAPE_OK ? rc : tape__store_frame(t, f);
}

int tape_account_frame(tape *t, const tape_frame *f)
{
    if (t == NULL || f == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_account_frame: %s is NULL",
                              t == NULL ? "tape" : "frame");
    }
    int rc = check_next_seq(t, f, "tape_account_frame");
    if (rc != TAPE_OK) {
        return rc;
    }
    t->accounted_bytes += f->line_len + 1;
    tape__count_frame(t, f);
    return TAPE_OK;
}

size_t tape_frame_count(const tape *t)
{
    return t == NULL ? 0 : t->nframes;
}

const tape_frame *tape_frame_at(const tape *t, size_t index)
{
    return t == NULL || index >= t->nframes ? NULL : t->frames[index];
}

/* ------------------------------------------------------ non-frame lines */

/* A NUL-terminated copy from the arena (decoding: no malloc per line). */
static char *arena_strndup(tape_chunk **arena, const char *s, size_t n)
{
    char *p = tape__arena_alloc(arena, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int tape__store_xline(tape *t, int type, const char *text, size_t len, tape_chunk **arena)
{
    if (t->nxlines == t->cap_xlines) {
        size_t cap = t->cap_xlines ? t->cap_xlines * 2 : 8;
        tape_xline *n = realloc(t->xlines, cap * sizeof *n);
        if (n == NULL) {
            return tape__oom();
        }
        t->xlines = n;
        t->cap_xlines = cap;
    }
    char *copy = arena != NULL ? arena_strndup(arena, text, len) : tape__strndup(text, len);
    if (copy == NULL) {
        return tape__oom();
    }
    tape_xline *x = &t->xlines[t->nxlines++];
    x->before = t->nframes;
    x->type = type;
    x->in_arena = arena != NULL;
    x->len = len;
    x->text = copy;
    t->stored_bytes += len + 1;
    return TAPE_OK;
}

int tape__store_corr(tape *t, const char *id, uint64_t req, uint64_t resp, int64_t rtt,
                     const char *status, tape_chunk **arena)
{
    if (t->ncorrs == t->cap_corrs) {
        size_t cap = t->cap_corrs ? t->cap_corrs * 2 : 8;
        tape_corr *n = realloc(t->corrs, cap * sizeof *n);
        if (n == NULL) {
            return tape__oom();
        }
        t->corrs = n;
        t->cap_corrs = cap;
    }
    tape_corr k = { 0 };
    if (arena != NULL) {
        k.in_arena = 1;
        k.id = arena_strndup(arena, id, strlen(id));
        k.status = status != NULL ? arena_strndup(arena, status, strlen(status)) : NULL;
        if (k.id == NULL || (status != NULL && k.status == NULL)) {
            return tape__oom(); /* what was taken goes with the arena */
        }
    } else {
        k.id = tape__strdup(id);
        k.status = tape__strdup(status);
        if (k.id == NULL || (status != NULL && k.status == NULL)) {
            free(k.id);
            free(k.status);
            return tape__oom();
        }
    }
    k.request_seq = req;
    k.response_seq = resp;
    k.rtt_ms = rtt;
    k.xline = t->nxlines - 1;
    t->corrs[t->ncorrs++] = k;
    t->correlation_count++;
    return TAPE_OK;
}

int tape_add_correlation(tape *t, const char *id, uint64_t request_seq, uint64_t response_seq,
                         int64_t rtt_ms, const char *status)
{
    if (t == NULL || id == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_add_correlation: %s is NULL",
                              t == NULL ? "tape" : "id");
    }
    /* Compared as integers: (double)(2^53 + 1) rounds to 2^53 and passed. */
    const uint64_t max = (uint64_t)1 << 53;
    if (request_seq > max || response_seq > max || rtt_ms > (int64_t)max ||
        rtt_ms < -(int64_t)max) {
        return tape_error_set(TAPE_EINVAL,
                              "tape_add_correlation: a number exceeds 2^53 (not exact in JSON)");
    }
    size_t len;
    char *line = tape__corr_line(&len, id, request_seq, response_seq, rtt_ms, status);
    if (line == NULL) {
        return tape__oom();
    }
    int rc = tape__store_xline(t, TAPE_LINE_CORRELATION, line, len, NULL);
    free(line);
    if (rc != TAPE_OK) {
        return rc;
    }
    rc = tape__store_corr(t, id, request_seq, response_seq, rtt_ms, status, NULL);
    if (rc != TAPE_OK) {
        /* Undo the line so the tape is as before. */
        tape_xline *x = &t->xlines[--t->nxlines];
        t->stored_bytes -= x->len + 1;
        free(x->text);
    }
    return rc;
}

/* Undo the last tape_add_correlation (its record and its line). */
void tape__drop_last_correlation(tape *t)
{
    if (t->ncorrs == 0) {
        return;
    }
    tape_corr *k = &t->corrs[--t->ncorrs];
    t->correlation_count--;
    if (!k->in_arena) {
        free(k->id);
        free(k->status);
    }
    if (k->xline == t->nxlines - 1) {
        tape_xline *x = &t->xlines[--t->nxlines];
        t->stored_bytes -= x->len + 1;
        if (!x->in_arena) {
            free(x->text);
        }
    }
}

size_t tape_correlation_count(const tape *t)
{
    return t == NULL ? 0 : t->ncorrs;
}

int tape_correlation_get(const char **out_id, uint64_t *out_request_seq,
                         uint64_t *out_response_seq, int64_t *out_rtt_ms,
                         const char **out_status, const tape *t, size_t index)
{
    if (t == NULL) {
        return NULL_TAPE("tape_correlation_get");
    }
    if (index >= t->ncorrs) {
        return tape_error_set(TAPE_ENOTFOUND, "no correlation at index %zu (the tape has %zu)",
                              index, t->ncorrs);
    }
    const tape_corr *k = &t->corrs[index];
    if (out_id != NULL) {
        *out_id = k->id;
    }
    if (out_request_seq != NULL) {
        *out_request_seq = k->request_seq;
    }
    if (out_response_seq != NULL) {
        *out_response_seq = k->response_seq;
    }
    if (out_rtt_ms != NULL) {
        *out_rtt_ms = k->rtt_ms;
    }
    if (out_status != NULL) {
        *out_status = k->status;
    }
    return TAPE_OK;
}

/* --------------------------------------------------------------- stats */

int tape__stats(tape_stats *out, const tape *t)
{
    uint64_t size;
    if (t->has_body || t->size_tracks_init) {
        size_t init_len;
        int rc = tape__init_line_len(&init_len, t);
        if (rc != TAPE_OK) {
            return rc;
        }
        size = init_len + (t->has_body ? 0 : t->size_base);
    } else {
        size = t->size_base;
    }
    size += t->stored_bytes + t->accounted_bytes;
    out->frame_count = t->frame_count;
    out->duration_ms = t->duration_ms;
    out->last_sequence = t->last_sequence;
    out->client_to_server = t->c2s;
    out->server_to_client = t->s2c;
    out->error_count = t->error_count;
    out->correlation_count = t->correlation_count;
    out->file_size_bytes = size;
    return TAPE_OK;
}

int tape_get_stats(tape_stats *out, const tape *t)
{
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_get_stats: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    if (out->version < 1) {
        return tape_error_set(TAPE_EINVAL,
                              "tape_get_stats: out->version is %u (initialise with "
                              "TAPE_STATS_INIT)",
                              out->version);
    }
    return tape__stats(out, t);
}
