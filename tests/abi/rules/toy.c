/* toy.c - see toy.h. */
#include "toy.h"

#include <stdlib.h>

/* Private: its layout may change in any release (not in the ABI). */
struct tape_toy {
    int count;
#ifdef PRIVATE_CHANGE
    long extra;
#endif
};

static const tape_toy_ops *registered;

int tape_toy_new(tape_toy **out)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : -1;
}

int tape_toy_register(const tape_toy_ops *ops)
{
    registered = ops;
    return (int)ops->version;
}

int tape_toy_register_provider(const tape_toy_provider *p)
{
    return p->create != NULL;
}

#ifdef CHANGE_SIG
int tape_toy_append(uint64_t *out_seq, const tape_toy_desc *desc, unsigned int flags)
{
    *out_seq = (uint64_t)desc->ts_ms + flags;
    return 0;
}
#else
int tape_toy_append(uint64_t *out_seq, const tape_toy_desc *desc)
{
    *out_seq = (uint64_t)desc->ts_ms;
    return 0;
}
#endif

#ifndef REMOVE_FUNC
int tape_toy_count(void)
{
    return registered != NULL;
}
#endif

#if defined(ADD_FUNC) || defined(ALL_COMPATIBLE)
int tape_toy_added(const char *name)
{
    return name != NULL;
}
#endif

#ifdef ADD_UNPREFIXED_FUNC
int toy_helper(void)
{
    return 1;
}
#endif
