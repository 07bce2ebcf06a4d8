/*
 * conformance.h - the provider conformance suite of tapestore, as a library.
 *
 * Every provider (builtin, plugin, or a script provider registered through
 * a binding) must pass it. The suite is written once, here; the runner
 * `tape-conformance` and the Python/Lua test drivers only call
 * tape_conformance_run. The API is binding-friendly on purpose: plain C
 * types, one callback, no FILE*, no varargs.
 *
 * Each test case opens its own store with tape_store_open(reg, provider,
 * config) where config is config_template with these placeholders
 * replaced (the value is JSON-string-escaped, so put the placeholder
 * inside a JSON string):
 *   @DIR@  a fresh empty temporary directory, removed after the case;
 *   @NS@   a fresh unique token ([a-z0-9_]) for namespacing (a key prefix,
 *          a table name, a bucket prefix, ...).
 * A case requires the store it opens to be empty. Cases that need a
 * capability the backend lacks (only TAPE_CAP_PERSISTENT so far) are
 * skipped; every other op must work natively or through the core's
 * fallbacks. See docs/conformance.md.
 */
#ifndef TAPE_CONFORMANCE_H
#define TAPE_CONFORMANCE_H

#include <stddef.h>

#include <tapestore/tapestore.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TAPE_CONFORMANCE_API __attribute__((visibility("default")))
#else
#define TAPE_CONFORMANCE_API
#endif

/** What a run found. Initialise with TAPE_CONFORMANCE_REPORT_INIT. */
typedef struct tape_conformance_report {
    unsigned int version;       /* TAPE_CONFORMANCE_REPORT_VERSION */
    int passed;                 /* cases that passed */
    int failed;                 /* cases that failed */
    int skipped;                /* cases skipped for a missing capability */
    /* version 1 ends here; later fields are added below this line */
} tape_conformance_report;
#define TAPE_CONFORMANCE_REPORT_VERSION 1
#define TAPE_CONFORMANCE_REPORT_INIT { TAPE_CONFORMANCE_REPORT_VERSION, 0, 0, 0 }

/** Receives one TAP line (no trailing newline), e.g. "1..17",
 *  "ok 3 - save replaces an existing tape", "not ok 4 - ...", "# reason".
 *  `line` is borrowed for the duration of the call. Always called on the
 *  thread that called tape_conformance_run. */
typedef void (*tape_conformance_emit_fn)(void *ud, const char *line);

/** Run the suite (or the cases whose name contains `only`, NULL: all)
 *  against `provider` of `reg` (NULL: the default registry), opening each
 *  case's store with `config_template` expanded (NULL: "{}").
 *  `emit` may be NULL (no output); `out` receives the counts.
 *  Returns TAPE_OK when the suite ran, whatever its outcome: check
 *  out->failed. Errors: TAPE_EINVAL (NULL out or provider), TAPE_EVERSION
 *  (out->version unknown), TAPE_ENOTFOUND (no such provider, or `only`
 *  selects no case), TAPE_EIO (temporary directory), TAPE_ENOMEM. */
TAPE_CONFORMANCE_API int tape_conformance_run(tape_conformance_report *out, tape_registry *reg,
                                              const char *provider, const char *config_template,
                                              const char *only, tape_conformance_emit_fn emit,
                                              void *ud);

/** Number of test cases in the suite. */
TAPE_CONFORMANCE_API size_t tape_conformance_case_count(void);
/** Static name of case i (0-based), or NULL if out of range. */
TAPE_CONFORMANCE_API const char *tape_conformance_case_name(size_t i);

#ifdef __cplusplus
}
#endif
#endif /* TAPE_CONFORMANCE_H */
