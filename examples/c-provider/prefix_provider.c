/*
 * prefix_provider.c - example provider "prefix": an id policy in front of
 * the builtin memory provider (docs/providers-c.md walks through it).
 *
 * It shows the whole provider contract in one file: config validation that
 * names the offending key, delegation to a base provider, a vtable that
 * forwards every op (an optional op only when the base has it), errors set
 * with tape_error_set, a control op, and thread safety inherited from the
 * base. It uses nothing but <tapestore/provider.h>.
 */
#include "prefix_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct prefix_store {
    tape_backend_ops ops;         /* our vtable, built per store in create */
    char *prefix;
    size_t prefix_len;
    const tape_backend_ops *base; /* the memory backend we delegate to */
    void *base_self;
} prefix_store;

/* Writers and frame iterators: their ops receive only this pointer, so it
 * carries the store (for the base vtable) and the base's own handle. */
typedef struct prefix_handle {
    prefix_store *s;
    void *base;
} prefix_handle;

static int check_id(const prefix_store *s, const char *id)
{
    if (strncmp(id, s->prefix, s->prefix_len) != 0) {
        return tape_error_set(TAPE_EINVAL,
                              "tape id \"%s\" does not start with the prefix \"%s\" this store "
                              "requires",
                              id, s->prefix);
    }
    return TAPE_OK;
}

static int handle_new(prefix_handle **out, prefix_store *s)
{
    *out = malloc(sizeof **out);
    if (*out == NULL) {
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    (*out)->s = s;
    (*out)->base = NULL;
    return TAPE_OK;
}

/* ---- required ops: the policy applies where a tape is created */

static int px_save(void *self, const tape *t)
{
    prefix_store *s = self;
    int rc = check_id(s, tape_id(t));
    return rc != TAPE_OK ? rc : s->base->save(s->base_self, t);
}

/* Reads need no check: an id without the prefix is simply not found. */
static int px_load(tape **out, void *self, const char *id)
{
    prefix_store *s = self;
    return s->base->load(out, s->base_self, id);
}

static int px_remove(void *self, const char *id)
{
    prefix_store *s = self;
    return s->base->remove(s->base_self, id);
}

static int px_list(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data)
{
    prefix_store *s = self;
    return s->base->list(s->base_self, q, sink, sink_data);
}

static void px_free(void *self)
{
    prefix_store *s = self;
    s->base->free(s->base_self);
    free(s->prefix);
    free(s);
}

/* ---- optional ops: installed only when the base has them (see create) */

static int px_open(void *self)
{
    prefix_store *s = self;
    return s->base->open(s->base_self);
}

static int px_close(void *self)
{
    prefix_store *s = self;
    return s->base->close(s->base_self);
}

static int px_exists(int *out_exists, void *self, const char *id)
{
    prefix_store *s = self;
    return s->base->exists(out_exists, s->base_self, id);
}

static int px_search(tape_result **out, void *self, const tape_query *q)
{
    prefix_store *s = self;
    return s->base->search(out, s->base_self, q);
}

static int px_stats(tape_store_stats *out, void *self)
{
    prefix_store *s = self;
    return s->base->stats(out, s->base_self);
}

static int px_writer_begin(void **out_writer, void *self, const tape *header)
{
    prefix_store *s = self;
    prefix_handle *h = NULL;
    int rc = check_id(s, tape_id(header));
    if (rc == TAPE_OK) {
        rc = handle_new(&h, s);
    }
    if (rc == TAPE_OK) {
        rc = s->base->writer_begin(&h->base, s->base_self, header);
    }
    if (rc != TAPE_OK) {
        free(h);
        return rc;
    }
    *out_writer = h;
    return TAPE_OK;
}

static int px_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    prefix_handle *h = writer;
    return h->s->base->writer_append(h->base, f, header);
}

static int px_writer_correlate(void *writer, const tape *header, size_t i)
{
    prefix_handle *h = writer;
    return h->s->base->writer_correlate(h->base, header, i);
}

/* writer_end frees the writer whatever it returns. */
static int px_writer_end(void *writer, const tape *header, int finalize)
{
    prefix_handle *h = writer;
    int rc = h->s->base->writer_end(h->base, header, finalize);
    free(h);
    return rc;
}

static int px_frames_open(void **out_iter, void *self, const char *id, uint64_t from_seq,
                          uint64_t to_seq)
{
    prefix_store *s = self;
    prefix_handle *h = NULL;
    int rc = handle_new(&h, s);
    if (rc == TAPE_OK) {
        rc = s->base->frames_open(&h->base, s->base_self, id, from_seq, to_seq);
    }
    if (rc != TAPE_OK) {
        free(h);
        return rc;
    }
    *out_iter = h;
    return TAPE_OK;
}

static int px_frames_next(const tape_frame **out, void *iter)
{
    prefix_handle *h = iter;
    return h->s->base->frames_next(out, h->base);
}

static void px_frames_close(void *iter)
{
    prefix_handle *h = iter;
    h->s->base->frames_close(h->base);
    free(h);
}

/* Our own op "prefix" answers {"prefix": "..."}; others go to the base. */
static int px_control(char **out_json, void *self, const char *op, const char *in_json)
{
    prefix_store *s = self;
    if (strcmp(op, "prefix") == 0) {
        size_t n = s->prefix_len + sizeof "{\"prefix\":\"\"}";
        char *json = malloc(n); /* the core frees it with tape_string_free */
        if (json == NULL) {
            return tape_error_set(TAPE_ENOMEM, "out of memory");
        }
        /* The prefix is [A-Za-z0-9._-] (validated): nothing to escape. */
        snprintf(json, n, "{\"prefix\":\"%s\"}", s->prefix);
        *out_json = json;
        return TAPE_OK;
    }
    if (s->base->control != NULL) {
        return s->base->control(out_json, s->base_self, op, in_json);
    }
    return tape_error_set(TAPE_EUNSUPPORTED, "provider \"prefix\": unknown control op \"%s\"",
                          op);
}

/* ---- the factory */

static const char *const prefix_keys[] = { "prefix", "base", NULL };

/* Check our keys, then let the memory provider check "base". On success
 * *out_base is the base config (free it with tape_config_free). */
static int read_config(const char **out_prefix, tape_config **out_base, const tape_config *cfg)
{
    *out_base = NULL;
    int rc = tape_config_check_keys(cfg, prefix_keys);
    if (rc == TAPE_OK) {
        rc = tape_config_get_string(out_prefix, cfg, "prefix", NULL);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    if (*out_prefix == NULL) {
        return tape_error_set(TAPE_ECONFIG, "config key \"prefix\" is required, e.g. \"prod-\"");
    }
    if (**out_prefix != '\0' && tape_id_validate(*out_prefix) != TAPE_OK) {
        return tape_error_set(TAPE_ECONFIG,
                              "config key \"prefix\": \"%.80s\" cannot start a tape id (use "
                              "[A-Za-z0-9._-], not starting with '.')",
                              *out_prefix);
    }
    char *base_json = NULL;
    rc = tape_config_get_json(&base_json, cfg, "base");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (base_json != NULL && strcmp(base_json, "null") == 0) {
        tape_string_free(base_json); /* null means absent, as for every key */
        base_json = NULL;
    }
    if (base_json != NULL && base_json[0] != '{') {
        tape_string_free(base_json);
        return tape_error_set(TAPE_ECONFIG, "config key \"base\": expected an object");
    }
    rc = tape_config_parse(out_base, base_json);
    tape_string_free(base_json);
    const tape_provider *mem = tape_provider_memory();
    if (rc == TAPE_OK && mem->validate != NULL) {
        rc = mem->validate(mem->userdata, *out_base);
    }
    if (rc != TAPE_OK) {
        tape_config_free(*out_base);
        *out_base = NULL;
        /* Wrap the base's message so the operator sees both keys. */
        return tape_error_set(rc, "config key \"base\": %s", tape_errmsg());
    }
    return TAPE_OK;
}

static int prefix_validate(void *userdata, const tape_config *config)
{
    (void)userdata;
    const char *prefix = NULL;
    tape_config *base_cfg = NULL;
    int rc = read_config(&prefix, &base_cfg, config);
    tape_config_free(base_cfg);
    return rc;
}

static int prefix_create(const tape_backend_ops **out_ops, void **out_self, void *userdata,
                         const tape_config *config)
{
    (void)userdata;
    const char *prefix = NULL;
    tape_config *base_cfg = NULL;
    int rc = read_config(&prefix, &base_cfg, config);
    if (rc != TAPE_OK) {
        return rc;
    }
    prefix_store *s = calloc(1, sizeof *s);
    size_t n = strlen(prefix);
    if (s == NULL || (s->prefix = malloc(n + 1)) == NULL) {
        free(s);
        tape_config_free(base_cfg);
        return tape_error_set(TAPE_ENOMEM, "out of memory");
    }
    memcpy(s->prefix, prefix, n + 1);
    s->prefix_len = n;
    const tape_provider *mem = tape_provider_memory();
    rc = mem->create(&s->base, &s->base_self, mem->userdata, base_cfg);
    tape_config_free(base_cfg);
    if (rc != TAPE_OK) {
        free(s->prefix);
        free(s);
        return rc;
    }
    /* Mirror the base: an op it lacks stays NULL, so the core's fallback
     * takes over and the store's capabilities stay truthful. Our own state
     * never changes after create, so we are as thread-safe as the base. */
    const tape_backend_ops *b = s->base;
    tape_backend_ops *o = &s->ops;
    o->version = TAPE_BACKEND_OPS_VERSION;
    o->flags = b->flags & (TAPE_CAP_THREAD_SAFE | TAPE_CAP_PERSISTENT);
    o->save = px_save;
    o->load = px_load;
    o->remove = px_remove;
    o->list = px_list;
    o->free = px_free;
    o->open = b->open != NULL ? px_open : NULL;
    o->close = b->close != NULL ? px_close : NULL;
    o->exists = b->exists != NULL ? px_exists : NULL;
    o->search = b->search != NULL ? px_search : NULL;
    o->stats = b->stats != NULL ? px_stats : NULL;
    if (b->writer_begin != NULL) {
        o->writer_begin = px_writer_begin;
        o->writer_append = px_writer_append;
        o->writer_correlate = px_writer_correlate;
        o->writer_end = px_writer_end;
    }
    if (b->frames_open != NULL) {
        o->frames_open = px_frames_open;
        o->frames_next = px_frames_next;
        o->frames_close = px_frames_close;
    }
    o->control = px_control;
    *out_ops = o;
    *out_self = s;
    return TAPE_OK;
}

static const tape_provider prefix_provider = {
    .version = TAPE_PROVIDER_VERSION,
    .name = "prefix",
    .description = "memory store accepting only tape ids with a configured prefix (example)",
    .provider_version = 1,
    .capabilities = TAPE_CAP_EXISTS | TAPE_CAP_STATS | TAPE_CAP_WRITER | TAPE_CAP_READ_FRAMES |
                    TAPE_CAP_CONTROL | TAPE_CAP_THREAD_SAFE,
    .validate = prefix_validate,
    .create = prefix_create,
};

const tape_provider *example_prefix_provider(void)
{
    return &prefix_provider;
}
