/* error.c - thread-local last error, log hook, version. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdatomic.h>

/* Fixed-size buffers: setting an error can never itself fail. */
static _Thread_local int last_code = TAPE_OK;
static _Thread_local char last_msg[1024] = "no error";

int tape_version(void)
{
    return TAPE_VERSION_MAJOR * 10000 + TAPE_VERSION_MINOR * 100 + TAPE_VERSION_PATCH;
}

const char *tape_errmsg(void)
{
    return last_msg;
}

int tape_errcode(void)
{
    return last_code;
}

const char *tape_strerror(int code)
{
    switch (code) {
    case TAPE_OK: return "TAPE_OK";
    case TAPE_DONE: return "TAPE_DONE";
    case TAPE_ENOTFOUND: return "TAPE_ENOTFOUND";
    case TAPE_EEXISTS: return "TAPE_EEXISTS";
    case TAPE_EINVAL: return "TAPE_EINVAL";
    case TAPE_ECONFIG: return "TAPE_ECONFIG";
    case TAPE_EIO: return "TAPE_EIO";
    case TAPE_ECORRUPT: return "TAPE_ECORRUPT";
    case TAPE_EUNSUPPORTED: return "TAPE_EUNSUPPORTED";
    case TAPE_ENOMEM: return "TAPE_ENOMEM";
    case TAPE_EPROVIDER: return "TAPE_EPROVIDER";
    case TAPE_EBUSY: return "TAPE_EBUSY";
    case TAPE_EVERSION: return "TAPE_EVERSION";
    case TAPE_EQUERY: return "TAPE_EQUERY";
    case TAPE_ELIMIT: return "TAPE_ELIMIT";
    case TAPE_ESTATE: return "TAPE_ESTATE";
    default: return "TAPE_E?";
    }
}

int tape_error_setv(int code, const char *fmt, va_list ap)
{
    /* Format into a scratch buffer first: callers may pass tape_errmsg()
     * itself as an argument to wrap the previous message. */
    char buf[sizeof last_msg];
    if (fmt == NULL) {
        snprintf(buf, sizeof buf, "%s", tape_strerror(code));
    } else {
        vsnprintf(buf, sizeof buf, fmt, ap);
    }
    memcpy(last_msg, buf, sizeof last_msg);
    last_code = code;
    return code;
}

int tape_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tape_error_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

int tape__oom(void)
{
    return tape_error_set(TAPE_ENOMEM, "out of memory");
}

/* The hook and its userdata change together, rarely; readers take the
 * lock only while copying them, never while calling the hook. */
static struct {
    tape_log_fn fn;
    void *ud;
} log_hook;
static atomic_flag log_lock = ATOMIC_FLAG_INIT;

static void log_lock_acquire(void)
{
    while (atomic_flag_test_and_set_explicit(&log_lock, memory_order_acquire)) {
    }
}

static void log_lock_release(void)
{
    atomic_flag_clear_explicit(&log_lock, memory_order_release);
}

void tape_log_set(tape_log_fn fn, void *userdata)
{
    log_lock_acquire();
    log_hook.fn = fn;
    log_hook.ud = userdata;
    log_lock_release();
}

void tape_log(int level, const char *fmt, ...)
{
    log_lock_acquire();
    tape_log_fn fn = log_hook.fn;
    void *ud = log_hook.ud;
    log_lock_release();
    if (fn == NULL || fmt == NULL) {
        return;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn(ud, level, buf);
}

void tape_string_free(char *s)
{
    free(s);
}

char *tape__strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

char *tape__strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int64_t tape__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tape__contains_nocase(const char *hay, size_t hay_len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0) {
        return 1;
    }
    if (n > hay_len) {
        return 0;
    }
    /* First-byte scan keeps the common no-match case cheap. */
    unsigned char c0 = (unsigned char)needle[0];
    unsigned char lo = (unsigned char)((c0 >= 'A' && c0 <= 'Z') ? c0 + 32 : c0);
    unsigned char up = (unsigned char)((lo >= 'a' && lo <= 'z') ? lo - 32 : lo);
    for (size_t i = 0; i + n <= hay_len; i++) {
        unsigned char h = (unsigned char)hay[i];
        if (h != lo && h != up) {
            continue;
        }
        size_t k = 1;
        for (; k < n; k++) {
            unsigned char a = (unsigned char)hay[i + k];
            unsigned char b = (unsigned char)needle[k];
            if (a >= 'A' && a <= 'Z') a = (unsigned char)(a + 32);
            if (b >= 'A' && b <= 'Z') b = (unsigned char)(b + 32);
            if (a != b) {
                break;
            }
        }
        if (k == n) {
            return 1;
        }
    }
    return 0;
}
