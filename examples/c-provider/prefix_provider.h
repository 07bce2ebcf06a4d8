/*
 * prefix_provider.h - the example provider "prefix" (docs/providers-c.md).
 *
 * A store of the "prefix" provider accepts only tapes whose id starts with
 * a configured prefix ("prod-", "ci-", ...) and keeps them in a memory
 * backend it creates through the builtin memory provider (delegation).
 *
 *   {"prefix": "prod-", "base": {"max_tapes": 100}}
 *
 * "prefix" (string, required): [A-Za-z0-9._-], may be "" (accept every id).
 * "base" (object, optional): the config of the wrapped memory store.
 */
#ifndef EXAMPLE_PREFIX_PROVIDER_H
#define EXAMPLE_PREFIX_PROVIDER_H

#include <tapestore/provider.h>

/** The provider struct, ready for tape_registry_register. */
const tape_provider *example_prefix_provider(void);

#endif
