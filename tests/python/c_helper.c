/*
 * c_helper.c - C threads for the Python provider tests (loaded with
 * ctypes, which releases the GIL around each call): bare pthreads that call
 * a store, as the proxy would, with no Python thread state of their own.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <tapestore/tapestore.h>
#include <time.h>

#if defined(__GNUC__)
#define HELPER_API __attribute__((visibility("default")))
#else
#define HELPER_API
#endif

HELPER_API int helper_exists_threads(tape_store *s, const char *id, int n, int iters, int *out_errors);
HELPER_API int helper_open_and_exists(const char *spec, const char *id);
HELPER_API int helper_start_forever(const char *spec);
HELPER_API int helper_forever_calls(void);

typedef struct job {
    tape_store *s;
    const char *id;
    int iters;
    int hits;   /* exists said 1 */
    int errors; /* a call failed */
} job;

static void *exists_loop(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->iters; i++) {
        int ex = 0;
        int rc = tape_store_exists(&ex, j->s, j->id);
        if (rc == TAPE_OK && ex) {
            j->hits++;
        } else if (rc < 0) {
            j->errors++;
        }
    }
    return NULL;
}

/* n pthreads each call tape_store_exists(s, id) iters times. Returns the
 * number of calls that said "exists"; *out_errors gets the failed ones. */
HELPER_API int helper_exists_threads(tape_store *s, const char *id, int n, int iters, int *out_errors)
{
    pthread_t t[64];
    job j[64];
    if (n > 64) {
        n = 64;
    }
    for (int i = 0; i < n; i++) {
        j[i] = (job){s, id, iters, 0, 0};
        pthread_create(&t[i], NULL, exists_loop, &j[i]);
    }
    int hits = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        hits += j[i].hits;
        errors += j[i].errors;
    }
    *out_errors = errors;
    return hits;
}

/* Open `spec` from C (the default registry) and return what
 * tape_store_exists(id) answered: 1, 0 or the error code. */
HELPER_API int helper_open_and_exists(const char *spec, const char *id)
{
    tape_store *s = NULL;
    int rc = tape_store_open_spec(&s, NULL, spec, 0);
    if (rc != TAPE_OK) {
        return rc;
    }
    int ex = 0;
    rc = tape_store_exists(&ex, s, id);
    tape_store_free(s);
    return rc == TAPE_OK ? ex : rc;
}

/* A detached thread that calls exists on `spec` until the process ends;
 * it counts its calls so the test knows it is running. */
static atomic_int forever_calls = 0;
static atomic_int forever_last_rc = 0;
static char forever_spec[256];

static void *forever(void *arg)
{
    (void)arg;
    tape_store *s = NULL;
    if (tape_store_open_spec(&s, NULL, forever_spec, 0) != TAPE_OK) {
        atomic_store(&forever_last_rc, -1000);
        return NULL;
    }
    for (;;) {
        int ex = 0;
        atomic_store(&forever_last_rc, tape_store_exists(&ex, s, "t1"));
        atomic_fetch_add(&forever_calls, 1);
    }
    return NULL;
}

HELPER_API int helper_start_forever(const char *spec)
{
    pthread_t t;
    strncpy(forever_spec, spec, sizeof forever_spec - 1);
    if (pthread_create(&t, NULL, forever, NULL) != 0) {
        return -1;
    }
    pthread_detach(t);
    return 0;
}

HELPER_API int helper_forever_calls(void)
{
    return atomic_load(&forever_calls);
}

HELPER_API int helper_forever_last_rc(void);
/* What the forever thread's last call returned (0, or a TAPE_E* code). */
HELPER_API int helper_forever_last_rc(void)
{
    return atomic_load(&forever_last_rc);
}

/* Called through ctypes.PyDLL (the GIL held): sets a Python exception,
 * releases the GIL with it pending, as a C extension may, and calls a
 * store; the provider must run all the same and the exception must still
 * be pending afterwards. The Python API is looked up at run time, so this
 * library does not link libpython. Returns what exists answered. */
#include <dlfcn.h>
HELPER_API int helper_exists_with_pending(const char *spec, const char *id);
HELPER_API int helper_exists_with_pending(const char *spec, const char *id)
{
    void (*set_string)(void *, const char *) = (void (*)(void *, const char *))dlsym(RTLD_DEFAULT, "PyErr_SetString");
    void *(*save)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyEval_SaveThread");
    void (*restore)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "PyEval_RestoreThread");
    void **value_error = dlsym(RTLD_DEFAULT, "PyExc_ValueError");
    if (set_string == NULL || save == NULL || restore == NULL || value_error == NULL) {
        return -1000;
    }
    set_string(*value_error, "pending before the call");
    void *ts = save();
    int rc = helper_open_and_exists(spec, id);
    restore(ts);
    return rc;
}
