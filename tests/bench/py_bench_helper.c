/*
 * py_bench_helper.c - the C side of tests/bench/python_bench.py (loaded with
 * ctypes): the same calls the script makes through the binding, made from
 * C, so the script can print the binding's figures against C's in the same
 * run. Times are CLOCK_MONOTONIC nanoseconds.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapestore/tapestore.h>
#include <time.h>

#if defined(__GNUC__)
#define HELPER_API __attribute__((visibility("default")))
#else
#define HELPER_API
#endif

HELPER_API int64_t bench_exists_loop(tape_store *s, const char *id, int n);
HELPER_API int bench_save_load(int64_t *out_save_ns, int64_t *out_load_ns, tape_store *s,
                               const char *id, const char *message, int frames);

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* n calls of tape_store_exists(id); the elapsed ns, or -1 if a call failed
 * or said the tape is absent. */
int64_t bench_exists_loop(tape_store *s, const char *id, int n)
{
    int64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        int ex = 0;
        if (tape_store_exists(&ex, s, id) != TAPE_OK || !ex) {
            return -1;
        }
    }
    return now_ns() - t0;
}

/* Build a tape of `frames` copies of `message` (alternating directions,
 * like the script's), then time one save and one load of it. */
int bench_save_load(int64_t *out_save_ns, int64_t *out_load_ns, tape_store *s,
                    const char *id, const char *message, int frames)
{
    tape *t = NULL, *back = NULL;
    int rc = tape_new(&t, id);
    for (int i = 0; rc == TAPE_OK && i < frames; i++) {
        tape_frame_desc d = TAPE_FRAME_DESC_INIT;
        d.direction = i % 2 ? TAPE_DIR_SERVER_TO_CLIENT : TAPE_DIR_CLIENT_TO_SERVER;
        d.message = message;
        d.message_len = strlen(message);
        rc = tape_append_frame(NULL, t, &d);
    }
    if (rc == TAPE_OK) {
        int64_t t0 = now_ns();
        rc = tape_store_save(s, t);
        *out_save_ns = now_ns() - t0;
    }
    if (rc == TAPE_OK) {
        int64_t t0 = now_ns();
        rc = tape_store_load(&back, s, id);
        *out_load_ns = now_ns() - t0;
        if (rc == TAPE_OK && tape_frame_count(back) != (size_t)frames) {
            rc = TAPE_ECORRUPT;
        }
    }
    tape_free(back);
    tape_free(t);
    return rc;
}
