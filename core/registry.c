/*
 * registry.c - named providers. A registry is a hash table of counted
 * provider records; stores and lookups hold references, so unregistering
 * (or freeing the registry) never pulls a provider from under a store.
 */
#include "internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct tape_provider_info {
    atomic_uint refs;
    uint32_t hash;
    struct tape_provider_info *next; /* bucket chain, guarded by the registry lock */
    tape_provider p;                 /* copy; name/description point at the fields below */
    char *name;
    char *description;
};

struct tape_registry {
    pthread_rwlock_t lock;
    tape_provider_info **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    int is_default;
    int ready;      /* set once at init; `buckets` itself moves under the lock */
};

struct tape_provider_list {
    size_t count;
    tape_provider_info **items;
};

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a: short keys, good spread, no setup */
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

static tape_provider_info *info_ref(tape_provider_info *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void tape_provider_info_free(tape_provider_info *p)
{
    if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    if (p->p.destroy != NULL) {
        p->p.destroy(p->p.userdata);
    }
    free(p->name);
    free(p->description);
    free(p);
}

const char *tape_provider_info_name(const tape_provider_info *p)
{
    return p != NULL ? p->name : NULL;
}

const char *tape_provider_info_description(const tape_provider_info *p)
{
    return p != NULL ? p->description : NULL;
}

unsigned int tape_provider_info_version(const tape_provider_info *p)
{
    return p != NULL ? p->p.provider_version : 0;
}

unsigned int tape_provider_info_capabilities(const tape_provider_info *p)
{
    return p != NULL ? p->p.capabilities : 0;
}

const tape_provider *tape__provider_info_struct(const tape_provider_info *p)
{
    return &p->p;
}

static int registry_init(tape_registry *reg)
{
    memset(reg, 0, sizeof *reg);
    reg->nbuckets = 16;
    reg->buckets = calloc(reg->nbuckets, sizeof *reg->buckets);
    if (reg->buckets == NULL) {
        return tape__oom();
    }
    if (pthread_rwlock_init(&reg->lock, NULL) != 0) {
        free(reg->buckets);
        return tape_error_set(TAPE_ENOMEM, "cannot create registry lock");
    }
    reg->ready = 1;
    return TAPE_OK;
}

int tape_registry_new(tape_registry **out)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_new: out is NULL");
    }
    *out = NULL;
    tape_registry *reg = malloc(sizeof *reg);
    if (reg == NULL) {
        return tape__oom();
    }
    int rc = registry_init(reg);
    if (rc != TAPE_OK) {
        free(reg);
        return rc;
    }
    *out = reg;
    return TAPE_OK;
}

void tape_registry_free(tape_registry *reg)
{
    if (reg == NULL || reg->is_default) {
        return;
    }
    for (size_t i = 0; i < reg->nbuckets; i++) {
        tape_provider_info *p = reg->buckets[i];
        while (p != NULL) {
            tape_provider_info *next = p->next;
            tape_provider_info_free(p);
            p = next;
        }
    }
    pthread_rwlock_destroy(&reg->lock);
    free(reg->buckets);
    free(reg);
}

static tape_registry default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    if (registry_init(&default_registry) != TAPE_OK) {
        return; /* buckets stay NULL: every call reports the failure */
    }
    default_registry.is_default = 1;
    if (tape_registry_add_builtins(&default_registry) != TAPE_OK) {
        tape_log(TAPE_LOG_ERROR, "default registry: %s", tape_errmsg());
    }
}

tape_registry *tape_registry_default(void)
{
    pthread_once(&default_once, default_init);
    /* Only an allocation failure at first use leaves it unusable; calls
     * on it then fail with TAPE_ENOMEM instead of crashing. */
    return &default_registry;
}

static int registry_usable(tape_registry *reg, const char *fn)
{
    if (reg == NULL) {
        return tape_error_set(TAPE_EINVAL, "%s: registry is NULL", fn);
    }
    if (!reg->ready) {
        return tape_error_set(TAPE_ENOMEM, "%s: the default registry failed to initialise", fn);
    }
    return TAPE_OK;
}

static tape_provider_info **slot_of(tape_registry *reg, const char *name, uint32_t h)
{
    tape_provider_info **pp = &reg->buckets[h & (reg->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

static void grow(tape_registry *reg)
{
    size_t n = reg->nbuckets * 2;
    tape_provider_info **b = calloc(n, sizeof *b);
    if (b == NULL) {
        return; /* still correct, only slower */
    }
    for (size_t i = 0; i < reg->nbuckets; i++) {
        tape_provider_info *p = reg->buckets[i];
        while (p != NULL) {
            tape_provider_info *next = p->next;
            p->next = b[p->hash & (n - 1)];
            b[p->hash & (n - 1)] = p;
            p = next;
        }
    }
    free(reg->buckets);
    reg->buckets = b;
    reg->nbuckets = n;
}

int tape_registry_register(tape_registry *reg, const tape_provider *p)
{
    int rc = registry_usable(reg, "tape_registry_register");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (p == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_register: provider is NULL");
    }
    if (p->version == 0) {
        return tape_error_set(TAPE_EINVAL, "provider struct version is 0 (initialise it with "
                                           "TAPE_PROVIDER_INIT)");
    }
    if (p->version > TAPE_PROVIDER_VERSION) {
        return tape_error_set(TAPE_EVERSION,
                              "provider struct version %u is not supported (this library "
                              "knows versions 1..%u)",
                              p->version, (unsigned)TAPE_PROVIDER_VERSION);
    }
    if (!tape__provider_name_valid(p->name)) {
        return tape_error_set(TAPE_EINVAL,
                              "provider name \"%.80s\" is invalid: use 1-64 of [a-z0-9_-]",
                              p->name != NULL ? p->name : "(null)");
    }
    if (p->create == NULL) {
        return tape_error_set(TAPE_EINVAL, "provider \"%s\": create is NULL", p->name);
    }
    tape_provider_info *info = calloc(1, sizeof *info);
    if (info == NULL) {
        return tape__oom();
    }
    info->name = tape__strdup(p->name);
    info->description = tape__strdup(p->description != NULL ? p->description : "");
    if (info->name == NULL || info->description == NULL) {
        free(info->name);
        free(info->description);
        free(info);
        return tape__oom();
    }
    info->p = *p;
    info->p.name = info->name;
    info->p.description = info->description;
    info->hash = hash_name(info->name);
    atomic_init(&info->refs, 1); /* the registry's reference */

    pthread_rwlock_wrlock(&reg->lock);
    tape_provider_info **slot = slot_of(reg, info->name, info->hash);
    if (*slot != NULL) {
        pthread_rwlock_unlock(&reg->lock);
        /* Not registered: its destroy hook must not run. */
        free(info->name);
        free(info->description);
        free(info);
        return tape_error_set(TAPE_EEXISTS, "provider \"%s\" is already registered", p->name);
    }
    *slot = info;
    if (++reg->count > reg->nbuckets * 3 / 4) {
        grow(reg);
    }
    pthread_rwlock_unlock(&reg->lock);
    return TAPE_OK;
}

int tape_registry_unregister(tape_registry *reg, const char *name)
{
    int rc = registry_usable(reg, "tape_registry_unregister");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (name == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_unregister: name is NULL");
    }
    pthread_rwlock_wrlock(&reg->lock);
    tape_provider_info **slot = slot_of(reg, name, hash_name(name));
    tape_provider_info *found = *slot;
    if (found != NULL) {
        *slot = found->next;
        found->next = NULL;
        reg->count--;
    }
    pthread_rwlock_unlock(&reg->lock);
    if (found == NULL) {
        return tape_error_set(TAPE_ENOTFOUND, "no provider named \"%.80s\"", name);
    }
    tape_provider_info_free(found); /* open stores hold their own references */
    return TAPE_OK;
}

int tape_registry_find(tape_provider_info **out, tape_registry *reg, const char *name)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_find: out is NULL");
    }
    *out = NULL;
    int rc = registry_usable(reg, "tape_registry_find");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (name == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_find: name is NULL");
    }
    uint32_t h = hash_name(name);
    pthread_rwlock_rdlock(&reg->lock);
    tape_provider_info *p = *slot_of(reg, name, h);
    if (p != NULL) {
        info_ref(p);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (p == NULL) {
        return tape_error_set(TAPE_ENOTFOUND, "no provider named \"%.80s\"", name);
    }
    *out = p;
    return TAPE_OK;
}

static int by_name(const void *a, const void *b)
{
    const tape_provider_info *x = *(tape_provider_info *const *)a;
    const tape_provider_info *y = *(tape_provider_info *const *)b;
    return strcmp(x->name, y->name);
}

int tape_registry_list(tape_provider_list **out, tape_registry *reg)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_list: out is NULL");
    }
    *out = NULL;
    int rc = registry_usable(reg, "tape_registry_list");
    if (rc != TAPE_OK) {
        return rc;
    }
    tape_provider_list *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return tape__oom();
    }
    pthread_rwlock_rdlock(&reg->lock);
    l->items = malloc((reg->count + 1) * sizeof *l->items);
    if (l->items == NULL) {
        pthread_rwlock_unlock(&reg->lock);
        free(l);
        return tape__oom();
    }
    for (size_t i = 0; i < reg->nbuckets; i++) {
        for (tape_provider_info *p = reg->buckets[i]; p != NULL; p = p->next) {
            l->items[l->count++] = info_ref(p);
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    qsort(l->items, l->count, sizeof *l->items, by_name);
    *out = l;
    return TAPE_OK;
}

void tape_provider_list_free(tape_provider_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->count; i++) {
        tape_provider_info_free(l->items[i]);
    }
    free(l->items);
    free(l);
}

size_t tape_provider_list_count(const tape_provider_list *l)
{
    return l != NULL ? l->count : 0;
}

const tape_provider_info *tape_provider_list_at(const tape_provider_list *l, size_t i)
{
    return l != NULL && i < l->count ? l->items[i] : NULL;
}

int tape_registry_add_builtins(tape_registry *reg)
{
    const tape_provider *builtins[] = { tape_provider_filesystem(), tape_provider_memory(),
                                        tape_provider_sqlite() };
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        int rc = tape_registry_register(reg, builtins[i]);
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    return TAPE_OK;
}

int tape_registry_load_plugin(tape_registry *reg, const char *path)
{
    int rc = registry_usable(reg, "tape_registry_load_plugin");
    if (rc != TAPE_OK) {
        return rc;
    }
    if (path == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_registry_load_plugin: path is NULL");
    }
    /* Never dlclose'd: stores may run the plugin's code until exit. */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        return tape_error_set(TAPE_ENOTFOUND, "cannot load plugin %s: %s", path,
                              why != NULL ? why : "unknown error");
    }
    const unsigned int *abi = dlsym(handle, TAPE_PLUGIN_ABI_SYMBOL);
    if (abi == NULL) {
        dlclose(handle);
        return tape_error_set(TAPE_EINVAL, "plugin %s does not export %s", path,
                              TAPE_PLUGIN_ABI_SYMBOL);
    }
    if (*abi == 0) {
        dlclose(handle);
        return tape_error_set(TAPE_EINVAL, "plugin %s: %s is 0 (set it to "
                              "TAPE_PLUGIN_ABI_VERSION)", path, TAPE_PLUGIN_ABI_SYMBOL);
    }
    if (*abi > TAPE_PLUGIN_ABI_VERSION) {
        unsigned int v = *abi;
        dlclose(handle);
        return tape_error_set(TAPE_EVERSION,
                              "plugin %s needs plugin ABI %u; this library supports 1..%u", path,
                              v, (unsigned)TAPE_PLUGIN_ABI_VERSION);
    }
    void *sym = dlsym(handle, TAPE_PLUGIN_ENTRY);
    if (sym == NULL) {
        dlclose(handle);
        return tape_error_set(TAPE_EINVAL, "plugin %s has no %s entry point", path,
                              TAPE_PLUGIN_ENTRY);
    }
    tape_plugin_init_fn init;
    /* POSIX guarantees a data pointer from dlsym converts to a function pointer. */
    memcpy(&init, &sym, sizeof init);
    char who[4200]; /* a whole path: a cut could split a UTF-8 character */
    snprintf(who, sizeof who, "plugin %s", path);
    unsigned long mark = tape__error_mark();
    return tape__provider_rc(init(reg, TAPE_PLUGIN_ABI_VERSION), who, TAPE_PLUGIN_ENTRY, 0,
                             mark);
}
