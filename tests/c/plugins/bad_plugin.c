/*
 * bad_plugin.c - plugins that tape_registry_load_plugin must refuse (or
 * whose failure it must report), for tests/c/test_plugin.c. One source,
 * one module per variant (examples/CMakeLists.txt builds them):
 *
 *   BAD_NO_ABI       no tape_plugin_abi symbol
 *   BAD_NO_INIT      tape_plugin_abi but no tape_plugin_init
 *   BAD_ABI=N        tape_plugin_abi = N (0, or newer than the host knows)
 *   BAD_INIT_FAILS   init sets TAPE_ECONFIG with a message and fails
 *   BAD_INIT_SILENT  init fails with TAPE_EIO without setting a message
 *   BAD_INIT_SEVEN   init returns 7, a code outside the API, with a message
 *
 * Every init that runs registers the provider "bad-plugin-ran" first, so
 * a test can see whether the host ran code it should have refused.
 */
#include <tapestore/provider.h>

#include <stddef.h>

#ifndef BAD_NO_ABI
#ifdef BAD_ABI
TAPE_PLUGIN_EXPORT const unsigned int tape_plugin_abi = BAD_ABI;
#else
TAPE_PLUGIN_EXPORT const unsigned int tape_plugin_abi = TAPE_PLUGIN_ABI_VERSION;
#endif
#endif

#ifndef BAD_NO_INIT
static int ran_create(const tape_backend_ops **out_ops, void **out_self, void *userdata,
                      const tape_config *config)
{
    (void)out_ops;
    (void)out_self;
    (void)userdata;
    (void)config;
    return tape_error_set(TAPE_EUNSUPPORTED, "bad-plugin-ran creates no stores");
}

TAPE_PLUGIN_EXPORT int tape_plugin_init(tape_registry *reg, unsigned int abi_version);

int tape_plugin_init(tape_registry *reg, unsigned int abi_version)
{
    (void)abi_version;
    tape_provider p = TAPE_PROVIDER_INIT;
    p.name = "bad-plugin-ran";
    p.create = ran_create;
    int rc = tape_registry_register(reg, &p);
    if (rc != TAPE_OK) {
        return rc;
    }
#if defined(BAD_INIT_FAILS)
    return tape_error_set(TAPE_ECONFIG, "bad plugin: setting \"region\" is missing");
#elif defined(BAD_INIT_SILENT)
    return TAPE_EIO;
#elif defined(BAD_INIT_SEVEN)
    tape_error_set(TAPE_EIO, "bad plugin: the script raised");
    return 7;
#else
    return TAPE_OK;
#endif
}
#endif
