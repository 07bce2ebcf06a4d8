/* error.c - thread-local last error, log hook, version. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

/* Fixed-size buffers: setting an error can never itself fail. 8 KiB so a
 * script provider's traceback fits. */
static _Thread_local int last_code = TAPE_OK;
static _Thread_local char last_msg[TAPE__MSG_MAX] = "no error";
/* Counts every error set on this thread: a provider call compares it
 * before and after to tell a fresh message from a stale one, without
 * clearing what the caller may still want to read. */
static _Thread_local unsigned long last_seq;

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

/* Copy at most size-1 bytes of src into dst. A cut text ends at a UTF-8
 * character boundary followed by "...", so a binding can always decode
 * the message (Python's str() raises on half a character). */
void tape__copy_text(char *dst, size_t size, const char *src, size_t len)
{
    if (len < size) {
        memcpy(dst, src, len);
        dst[len] = '\0';
        return;
    }
    size_t keep = size - 4; /* room for "..." and the NUL */
    /* Back up over continuation bytes (10xxxxxx) to the start of the
     * character that would be cut, then drop it whole. */
    size_t i = keep;
    while (i > 0 && ((unsigned char)src[i] & 0xC0) == 0x80) {
        i--;
    }
    if (i < keep) {
        unsigned char lead = (unsigned char)src[i];
        size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        keep = i + n <= keep ? i + n : i;
    }
    memcpy(dst, src, keep);
    memcpy(dst + keep, "...", 4);
}

static void set_text(int code, const char *text, size_t len)
{
    tape__copy_text(last_msg, sizeof last_msg, text, len);
    last_code = code;
    last_seq++;
}

int tape_error_setv(int code, const char *fmt, va_list ap)
{
    /* Format into a scratch buffer first: callers may pass tape_errmsg()
     * itself as an argument to wrap the previous message. One byte more
     * than the message holds, so a cut is seen and marked. */
    char buf[TAPE__MSG_MAX + 1];
    int n;
    if (fmt == NULL) {
        n = snprintf(buf, sizeof buf, "%s", tape_strerror(code));
    } else {
        n = vsnprintf(buf, sizeof buf, fmt, ap);
    }
    size_t len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    set_text(code, buf, len);
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

int tape_error_set_message(int code, const char *msg)
{
    if (msg == NULL) {
        msg = tape_strerror(code);
    }
    if (msg >= last_msg && msg < last_msg + sizeof last_msg) {
        /* Part of the current message: move it down, then mark it. */
        size_t len = strlen(msg);
        memmove(last_msg, msg, len + 1);
        last_code = code;
        last_seq++;
        return code;
    }
    set_text(code, msg, strlen(msg));
    return code;
}

unsigned long tape__error_mark(void)
{
    return last_seq;
}

void tape__error_save(tape__saved_error *e)
{
    e->code = last_code;
    memcpy(e->msg, last_msg, strlen(last_msg) + 1);
}

void tape__error_restore(const tape__saved_error *e)
{
    last_code = e->code;
    memcpy(last_msg, e->msg, strlen(e->msg) + 1);
    last_seq++;
}

int tape__oom(void)
{
    return tape_error_set(TAPE_ENOMEM, "out of memory");
}

/* Normalise a code a provider function returned (an op, validate, create,
 * a plugin's init). The message the provider set is kept as it is; an
 * unknown code becomes TAPE_EPROVIDER, still carrying the provider's
 * words; TAPE_DONE passes only where allow_done says so. `mark` is
 * tape__error_mark() from before the call: a message set earlier is never
 * reported as this one's. */
int tape__provider_rc(int rc, const char *who, const char *op, int allow_done,
                      unsigned long mark)
{
    if (rc == TAPE_OK || (rc == TAPE_DONE && allow_done)) {
        return rc;
    }
    int set = last_seq != mark;
    if (rc > 0 || rc < TAPE_ESTATE) {
        if (set) {
            return tape_error_set(TAPE_EPROVIDER, "%s: %s returned unknown code %d: %s", who, op,
                                  rc, last_msg);
        }
        return tape_error_set(TAPE_EPROVIDER, "%s: %s returned unknown code %d", who, op, rc);
    }
    if (!set) {
        return tape_error_set(rc, "%s: %s failed (%s)", who, op, tape_strerror(rc));
    }
    last_code = rc; /* the provider's message, under the code it returned */
    return rc;
}

/* ----------------------------------------------------------- logging */

/* The hook and its userdata change together, rarely. A call copies them
 * and counts itself in the current bucket under the lock, then runs the
 * hook without the lock. tape_log_set swaps the hook, moves new calls to
 * the other bucket and waits until the old bucket is empty, so a binding
 * may release the old callable as soon as it returns. One such setter
 * runs at a time, so no new call ever enters a bucket being waited for
 * (no starvation). From inside a hook a setter cannot wait (for itself, or
 * for a hook that waits for it): it replaces the hook in place and
 * returns at once. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
static tape_log_fn log_fn;
static void *log_ud;
static unsigned long log_count[2];
static int log_cur;
static int log_setting; /* a setter is swapping and waiting */
static _Thread_local unsigned long log_depth; /* hook calls running on this thread */

void tape_log_set(tape_log_fn fn, void *userdata)
{
    pthread_mutex_lock(&log_mu);
    if (log_depth > 0) {
        log_fn = fn;
        log_ud = userdata;
        pthread_mutex_unlock(&log_mu);
        return;
    }
    while (log_setting) {
        pthread_cond_wait(&log_cv, &log_mu);
    }
    log_setting = 1;
    log_fn = fn;
    log_ud = userdata;
    int old = log_cur;
    log_cur = 1 - old;
    while (log_count[old] > 0) {
        pthread_cond_wait(&log_cv, &log_mu);
    }
    log_setting = 0;
    pthread_cond_broadcast(&log_cv);
    pthread_mutex_unlock(&log_mu);
}

static void log_emit(int level, const char *text)
{
    pthread_mutex_lock(&log_mu);
    tape_log_fn fn = log_fn;
    void *ud = log_ud;
    int b = log_cur;
    if (fn != NULL) {
        log_count[b]++;
    }
    pthread_mutex_unlock(&log_mu);
    if (fn == NULL) {
        return;
    }
    log_depth++;
    fn(ud, level, text);
    log_depth--;
    pthread_mutex_lock(&log_mu);
    if (--log_count[b] == 0) {
        pthread_cond_broadcast(&log_cv);
    }
    pthread_mutex_unlock(&log_mu);
}

void tape_log(int level, const char *fmt, ...)
{
    if (fmt == NULL) {
        return;
    }
    char buf[TAPE__MSG_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= TAPE__MSG_MAX) {
        char cut[TAPE__MSG_MAX];
        tape__copy_text(cut, sizeof cut, buf, sizeof buf - 1);
        log_emit(level, cut);
        return;
    }
    log_emit(level, buf);
}

void tape_log_message(int level, const char *msg)
{
    if (msg != NULL) {
        log_emit(level, msg);
    }
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
