/*
 * fuzz_common.h - helpers shared by the libFuzzer targets. A violated
 * property aborts with a message, which libFuzzer reports as a crash and
 * saves the input that caused it.
 */
#ifndef TAPE_FUZZ_COMMON_H
#define TAPE_FUZZ_COMMON_H

#include <tapestore/provider.h>
#include <tapestore/tapestore.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, what)                                                            \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: property violated: %s (%s) [last error %s: %s]\n",    \
                    __FILE__, __LINE__, what, #cond, tape_strerror(tape_errcode()),       \
                    tape_errmsg());                                                       \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* The input as a NUL-terminated string (an embedded NUL ends it early,
 * which is what a C caller passing it would get). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) {
        abort();
    }
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* A failing call must answer a negative TAPE_E* code with a message. */
static inline void fuzz_check_error(int rc)
{
    FUZZ_CHECK(rc < 0 && rc >= TAPE_ESTATE, "error code is a TAPE_E* value");
    FUZZ_CHECK(tape_errmsg() != NULL && tape_errmsg()[0] != '\0', "error has a message");
}

#endif
