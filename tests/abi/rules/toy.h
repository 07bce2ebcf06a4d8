/*
 * toy.h - a miniature of the public headers for the abi_rules test: a
 * versioned vtable passed by pointer (like tape_backend_ops), a versioned
 * struct a caller fills in (like tape_frame_desc) and a few functions.
 * rules.sh compiles toy.c with one VARIANT macro per case.
 */
#ifndef TOY_H
#define TOY_H
#include <stddef.h>
#include <stdint.h>

/* An opaque handle, defined only in toy.c (like tape or tape_store). */
typedef struct tape_toy tape_toy;

typedef struct tape_toy_ops {
    unsigned int version;
    unsigned int flags;
    int (*save)(void *self, const char *id);
#ifdef INSERT_MID
    int (*exists)(int *out, void *self, const char *id); /* inserted mid-struct */
#endif
#ifdef RETYPE_AND_APPEND
    int (*load)(void **out, void *self, const char *id, size_t len); /* retyped */
#else
    int (*load)(void **out, void *self, const char *id);
#endif
    void (*free)(void *self);
    /* version 1 ends here */
#if defined(APPEND_MEMBER) || defined(RETYPE_AND_APPEND) || defined(ALL_COMPATIBLE)
    int (*control)(char **out_json, void *self, const char *op); /* version 2 */
#endif
} tape_toy_ops;

/* Refers to the vtable through a slot, as tape_provider's create does: a
 * vtable that grows at the end must not count as a change to this one. */
typedef struct tape_toy_provider {
    unsigned int version;
    const char *name;
    int (*create)(const tape_toy_ops **out_ops, void **out_self, void *userdata);
    /* version 1 ends here */
} tape_toy_provider;

typedef struct tape_toy_desc {
    unsigned int version;
    int direction;
    int64_t ts_ms;
    const char *message;
    /* version 1 ends here */
#ifdef ALL_COMPATIBLE
    size_t raw_len; /* version 2 */
#endif
} tape_toy_desc;

int tape_toy_new(tape_toy **out);
int tape_toy_register(const tape_toy_ops *ops);
int tape_toy_register_provider(const tape_toy_provider *p);
#ifdef CHANGE_SIG
int tape_toy_append(uint64_t *out_seq, const tape_toy_desc *desc, unsigned int flags);
#else
int tape_toy_append(uint64_t *out_seq, const tape_toy_desc *desc);
#endif
#ifndef REMOVE_FUNC
int tape_toy_count(void);
#endif
#if defined(ADD_FUNC) || defined(ALL_COMPATIBLE)
int tape_toy_added(const char *name);
#endif
#ifdef ADD_UNPREFIXED_FUNC
int toy_helper(void);
#endif
#endif
