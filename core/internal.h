/*
 * internal.h - helpers shared by the core's own files. Nothing here is
 * exported (the library is built with -fvisibility=hidden); providers use
 * provider.h only.
 */
#ifndef TAPE_INTERNAL_H
#define TAPE_INTERNAL_H

#include "tapestore/provider.h"

#include <stddef.h>
#include <stdint.h>

/* Strings: NULL on allocation failure (the caller reports TAPE_ENOMEM). */
char *tape__strdup(const char *s);
char *tape__strndup(const char *s, size_t n);

/* Sets "out of memory" and returns TAPE_ENOMEM. */
int tape__oom(void);

/* Longest error or log message, with its NUL (error.c). */
#define TAPE__MSG_MAX 8192
/* Copy len bytes of src into dst (size bytes), cut at a UTF-8 character
 * boundary and marked "..." when it does not fit. */
void tape__copy_text(char *dst, size_t size, const char *src, size_t len);
/* A mark of this thread's error state: it changes whenever an error is
 * set. Taken before a provider call, it tells tape__provider_rc whether
 * the provider set a message of its own, without clearing anything. */
unsigned long tape__error_mark(void);
/* This thread's error, kept across cleanup that may overwrite it. */
typedef struct tape__saved_error {
    int code;
    char msg[TAPE__MSG_MAX];
} tape__saved_error;
void tape__error_save(tape__saved_error *e);
void tape__error_restore(const tape__saved_error *e);
/* Normalise the code a provider function returned (see error.c). `who`
 * names the provider ("provider \"x\""), `op` the function, `mark` is
 * tape__error_mark() from before the call. */
int tape__provider_rc(int rc, const char *who, const char *op, int allow_done,
                      unsigned long mark);

/* Wall clock in ms since the Unix epoch. */
int64_t tape__now_ms(void);

/* ISO-8601 UTC ("2025-08-14T10:30:00.000Z") <-> ms. parse returns TAPE_OK
 * or TAPE_EINVAL; format writes at most 32 bytes including NUL. */
int tape__time_parse(int64_t *out, const char *text);
void tape__time_format(char out[32], int64_t ms);

/* ASCII case-insensitive substring search (empty needle matches). */
int tape__contains_nocase(const char *hay, size_t hay_len, const char *needle);

/* The core's query fallback (query.c): filter `entries` (borrowed) with
 * q's non-text terms, order them, resume after q's cursor, then apply the
 * text term through text_match and cut the page at q's limit. text_match
 * is called lazily, in order: for the page's candidates and, after a full
 * page, until one more match is found (so the next cursor is NULL exactly
 * when nothing is left). */
typedef int (*tape__text_match_fn)(int *out_match, void *ud, const tape_entry *e);
int tape__query_run(tape_result **out, const tape_query *q, tape_entry *const *entries,
                    size_t n, tape__text_match_fn text_match, void *ud);

/* 1 if name is [a-z0-9_-]{1,64} (provider names, spec prefixes). */
int tape__provider_name_valid(const char *name);

/* The provider struct inside a registry record (registry.c). */
const tape_provider *tape__provider_info_struct(const tape_provider_info *p);

#endif
