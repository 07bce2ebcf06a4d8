/*
 * v1_plugin.c - a provider plugin compiled against the frozen version-1
 * headers (tests/abi/v1/include), loaded into today's library by the
 * abi_v1_plugin_conformance test.
 *
 * Provider "v1memory" forwards every op of its v1 vtable to the builtin
 * memory provider of the library it is loaded into. That library's
 * tape_provider and tape_backend_ops may be newer than ours: we read only
 * the version-1 members, which is exactly what the "grow only at the end"
 * rule of docs/abi.md promises is safe. If the library ever breaks that
 * rule (or stops accepting a version-1 vtable), the conformance suite run
 * through this plugin fails.
 */
#include <tapestore/provider.h>

#include <stdlib.h>

/* Built against the frozen headers, never against include/: if the build
 * picked up the current headers this plugin would test nothing. */
_Static_assert(TAPE_BACKEND_OPS_VERSION == 1, "v1 plugin must see the version-1 vtable");
_Static_assert(TAPE_PROVIDER_VERSION == 1, "v1 plugin must see the version-1 provider struct");
_Static_assert(TAPE_PLUGIN_ABI_VERSION == 1, "v1 plugin must see plugin ABI 1");

typedef struct v1_store {
    tape_backend_ops ops;         /* our version-1 vtable, built per store */
    const tape_backend_ops *base; /* the library's memory backend (maybe newer) */
    void *base_self;
} v1_store;

/* Writer and iterator ops receive only their handle: it carries the store
 * (for the base vtable) and the base's own handle. */
typedef struct v1_handle {
    v1_store *s;
    void *base;
} v1_handle;

static int v1_save(void *self, const tape *t)
{
    v1_store *s = self;
    return s->base->save(s->base_self, t);
}

static int v1_load(tape **out, void *self, const char *id)
{
    v1_store *s = self;
    return s->base->load(out, s->base_self, id);
}

static int v1_remove(void *self, const char *id)
{
    v1_store *s = self;
    return s->base->remove(s->base_self, id);
}

static int v1_list(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data)
{
    v1_store *s = self;
    return s->base->list(s->base_self, q, sink, sink_data);
}

static void v1_free(void *self)
{
    v1_store *s = self;
    s->base->free(s->base_self);
    free(s);
}

static int v1_open(void *self)
{
    v1_store *s = self;
    return s->base->open(s->base_self);
}

static int v1_close(void *self)
{
    v1_store *s = self;
    return s->base->close(s->base_self);
}

static int v1_exists(int *out_exists, void *self, const char *id)
{
    v1_store *s = self;
    return s->base->exists(out_exists, s->base_self, id);
}

static int v1_search(tape_result **out, void *self, const tape_query *q)
{
    v1_store *s = self;
    return s->base->search(out, s->base_self, q);
}

static int v1_stats(tape_store_stats *out, void *self)
{
    v1_store *s = self;
    return s->base->stats(out, s->base_self);
}

static int handle_new(v1_handle **out, v1_store *s)
{
    *out = malloc(sizeof **out);
    if (*out == NULL) {
        return tape_error_set(TAPE_ENOMEM, "v1memory: out of memory");
    }
    (*out)->s = s;
    (*out)->base = NULL;
    return TAPE_OK;
}

static int v1_writer_begin(void **out_writer, void *self, const tape *header)
{
    v1_store *s = self;
    v1_handle *h = NULL;
    int rc = handle_new(&h, s);
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

static int v1_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    v1_handle *h = writer;
    return h->s->base->writer_append(h->base, f, header);
}

static int v1_writer_correlate(void *writer, const tape *header, size_t i)
{
    v1_handle *h = writer;
    return h->s->base->writer_correlate(h->base, header, i);
}

/* writer_end frees the writer whatever it returns. */
static int v1_writer_end(void *writer, const tape *header, int finalize)
{
    v1_handle *h = writer;
    int rc = h->s->base->writer_end(h->base, header, finalize);
    free(h);
    return rc;
}

static int v1_frames_open(void **out_iter, void *self, const char *id, uint64_t from_seq,
                          uint64_t to_seq)
{
    v1_store *s = self;
    v1_handle *h = NULL;
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

static int v1_frames_next(const tape_frame **out, void *iter)
{
    v1_handle *h = iter;
    return h->s->base->frames_next(out, h->base);
}

static void v1_frames_close(void *iter)
{
    v1_handle *h = iter;
    h->s->base->frames_close(h->base);
    free(h);
}

static int v1_control(char **out_json, void *self, const char *op, const char *in_json)
{
    v1_store *s = self;
    return s->base->control(out_json, s->base_self, op, in_json);
}

static int v1_validate(void *userdata, const tape_config *config)
{
    (void)userdata;
    const tape_provider *mem = tape_provider_memory();
    return mem->validate != NULL ? mem->validate(mem->userdata, config) : TAPE_OK;
}

static int v1_create(const tape_backend_ops **out_ops, void **out_self, void *userdata,
                     const tape_config *config)
{
    (void)userdata;
    v1_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return tape_error_set(TAPE_ENOMEM, "v1memory: out of memory");
    }
    const tape_provider *mem = tape_provider_memory();
    int rc = mem->create(&s->base, &s->base_self, mem->userdata, config);
    if (rc != TAPE_OK) {
        free(s);
        return rc;
    }
    /* Mirror the base's version-1 slots: one it lacks stays NULL so the
     * core's fallback runs. Later slots of a newer base are invisible to
     * us, so the core must treat them as "not implemented" for this store. */
    const tape_backend_ops *b = s->base;
    tape_backend_ops *o = &s->ops;
    o->version = TAPE_BACKEND_OPS_VERSION;
    o->flags = b->flags & (TAPE_CAP_THREAD_SAFE | TAPE_CAP_PERSISTENT);
    o->save = v1_save;
    o->load = v1_load;
    o->remove = v1_remove;
    o->list = v1_list;
    o->free = v1_free;
    o->open = b->open != NULL ? v1_open : NULL;
    o->close = b->close != NULL ? v1_close : NULL;
    o->exists = b->exists != NULL ? v1_exists : NULL;
    o->search = b->search != NULL ? v1_search : NULL;
    o->stats = b->stats != NULL ? v1_stats : NULL;
    if (b->writer_begin != NULL) {
        o->writer_begin = v1_writer_begin;
        o->writer_append = v1_writer_append;
        o->writer_correlate = v1_writer_correlate;
        o->writer_end = v1_writer_end;
    }
    if (b->frames_open != NULL) {
        o->frames_open = v1_frames_open;
        o->frames_next = v1_frames_next;
        o->frames_close = v1_frames_close;
    }
    o->control = b->control != NULL ? v1_control : NULL;
    *out_ops = o;
    *out_self = s;
    return TAPE_OK;
}

TAPE_PLUGIN_EXPORT const unsigned int tape_plugin_abi = TAPE_PLUGIN_ABI_VERSION;

TAPE_PLUGIN_EXPORT int tape_plugin_init(tape_registry *reg, unsigned int abi_version);

int tape_plugin_init(tape_registry *reg, unsigned int abi_version)
{
    (void)abi_version; /* the host supports plugin ABI 1 (it checked) */
    const tape_provider *mem = tape_provider_memory();
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = "v1memory";
    p.description = "the memory provider behind a vtable built against the version-1 headers";
    p.provider_version = 1;
    p.capabilities = mem->capabilities; /* what we forward natively */
    p.validate = v1_validate;
    p.create = v1_create;
    return tape_registry_register(reg, &p);
}
