/*
 * prefix_plugin.c - packages the "prefix" provider as a plugin library:
 *
 *   tape_registry_load_plugin(reg, "/path/to/tapestore-prefix.so");
 *
 * Build it as a shared module with -fvisibility=hidden: only the two
 * symbols below (marked TAPE_PLUGIN_EXPORT) leave the library.
 */
#include "prefix_provider.h"

/* Read by the host before any code of ours runs: the plugin ABI we were
 * built against. A host that does not know it refuses us (TAPE_EVERSION). */
TAPE_PLUGIN_EXPORT const unsigned int tape_plugin_abi = TAPE_PLUGIN_ABI_VERSION;

TAPE_PLUGIN_EXPORT int tape_plugin_init(tape_registry *reg, unsigned int abi_version);

int tape_plugin_init(tape_registry *reg, unsigned int abi_version)
{
    /* abi_version is the host's newest plugin ABI; it supports ours
     * (checked above), so there is nothing to negotiate at version 1. */
    (void)abi_version;
    return tape_registry_register(reg, example_prefix_provider());
}
