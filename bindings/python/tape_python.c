/*
 * tape_python.c - hand-written parts of the Python binding.
 *
 * The error bridge: the pythonic package hands its exception classes over
 * once at import (tape_py_set_error_classes), and the SWIG wrappers raise
 * through tape_py_raise, so a code maps to its class in one place.
 *
 * The log bridge: SWIG cannot make a C callback from a Python callable, so
 * tape_log_set gets log_hook here, which calls the installed callable. The
 * core may call the hook from any thread, concurrently, so the hook takes
 * the GIL itself; tape_log_set waits for calls in flight, so it is called
 * with the GIL released (else a hook waiting for the GIL would deadlock).
 */
#include "tape_python.h"
#include "tape_trampoline.h" /* tape_py_ptr_get */

#include <pthread.h>
#include <string.h>
#include <tapestore/tapestore.h>

/* code (int) -> exception class; owned. NULL until the package sets it. */
static PyObject *error_classes = NULL;

void tape_py_raise(int code)
{
    if (PyErr_Occurred()) {
        return;
    }
    const char *msg = tape_errmsg();
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
    if (text == NULL) {
        return;
    }
    PyObject *cls = NULL;
    if (error_classes != NULL) {
        PyObject *key = PyLong_FromLong(code);
        if (key == NULL) {
            Py_DECREF(text);
            return;
        }
        cls = PyDict_GetItemWithError(error_classes, key); /* borrowed */
        Py_DECREF(key);
        if (cls == NULL && PyErr_Occurred()) {
            Py_DECREF(text);
            return;
        }
    }
    if (cls == NULL) {
        /* Before the package set its classes, or a code newer than it. */
        PyErr_Format(PyExc_RuntimeError, "%s (%s)", msg, tape_strerror(code));
        Py_DECREF(text);
        return;
    }
    PyObject *exc = PyObject_CallFunction(cls, "Oi", text, code);
    Py_DECREF(text);
    if (exc == NULL) {
        return;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

int tape_py_as_bytes(PyObject *obj, const char **p, size_t *n)
{
    if (!PyBytes_Check(obj)) {
        return -1;
    }
    *p = PyBytes_AS_STRING(obj);
    *n = (size_t)PyBytes_GET_SIZE(obj);
    return 0;
}

PyObject *tape_py_set_error_classes(PyObject *mapping)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "_set_error_classes: expected a dict {code: class}");
        return NULL;
    }
    PyObject *copy = PyDict_Copy(mapping);
    if (copy == NULL) {
        return NULL;
    }
    Py_XSETREF(error_classes, copy);
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- log hook */

/* The installed callable (owned), swapped under hook_lock with the GIL
 * released, so two threads installing at once cannot cross. */
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static PyObject *hook_callable = NULL;

static void log_hook(void *userdata, int level, const char *msg)
{
    /* During finalisation PyGILState_Ensure kills the calling thread (3.11):
     * drop the message instead. The package removes the hook at exit. */
    if (!Py_IsInitialized() || _Py_IsFinalizing()) {
        return;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    /* This thread may be inside Python with an exception pending: keep it. */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace");
    PyObject *r = NULL;
    if (text != NULL) {
        r = PyObject_CallFunction((PyObject *)userdata, "iO", level, text);
        Py_DECREF(text);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)userdata);
    } else {
        Py_DECREF(r);
    }
    PyErr_Restore(et, ev, tb);
    PyGILState_Release(g);
}

/* Install `callable` (None removes). The old callable is released only
 * after tape_log_set returned, when no call of it is in flight. */
static PyObject *swap_hook(PyObject *callable)
{
    PyObject *old;
    Py_XINCREF(callable);
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&hook_lock);
    tape_log_set(callable != NULL ? log_hook : NULL, callable);
    old = hook_callable;
    hook_callable = callable;
    pthread_mutex_unlock(&hook_lock);
    Py_END_ALLOW_THREADS
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

PyObject *tape_py_log_install(PyObject *callable)
{
    if (callable == Py_None) {
        return swap_hook(NULL);
    }
    if (!PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "_log_install: expected a callable(level, message)");
        return NULL;
    }
    return swap_hook(callable);
}

PyObject *tape_py_log_remove(void)
{
    return swap_hook(NULL);
}

/* ------------------------------------------------------------ frame rows
 * A Frame is a copy of ten fields; fetching them with one SWIG call each
 * cost more than decoding the message. A row is the tuple Frame._row
 * unpacks: (seq, ts, direction, correlation_id, is_error, flags, raw,
 * message, line, oversize_length, oversize_sha256). The message and raw
 * bytes of a plain frame are the same span, so they share one object. */
static PyObject *frame_row(const tape_frame *f)
{
    size_t raw_n = 0, msg_n = 0, line_n = 0;
    const char *raw = tape_frame_raw(f, &raw_n);
    const char *msg = tape_frame_message(f, &msg_n);
    const char *line = tape_frame_line(f, &line_n);
    const char *corr = tape_frame_correlation_id(f);
    unsigned int flags = tape_frame_flags(f);
    PyObject *o_raw = NULL, *o_msg = NULL, *o_len = NULL, *o_sha = NULL, *row = NULL;

    o_raw = PyBytes_FromStringAndSize(raw ? raw : "", (Py_ssize_t)raw_n);
    if (o_raw == NULL) {
        goto out;
    }
    if (msg == raw && msg_n == raw_n) {
        Py_INCREF(o_raw);
        o_msg = o_raw;
    } else if ((o_msg = PyBytes_FromStringAndSize(msg ? msg : "", (Py_ssize_t)msg_n)) == NULL) {
        goto out;
    }
    if (flags & TAPE_FRAME_OVERSIZE) {
        uint64_t len = 0;
        const char *sha = NULL;
        if (tape_frame_oversize_info(&len, &sha, f) == TAPE_OK) {
            o_len = PyLong_FromUnsignedLongLong((unsigned long long)len);
            o_sha = sha ? PyUnicode_FromString(sha) : (Py_INCREF(Py_None), Py_None);
            if (o_len == NULL || o_sha == NULL) {
                goto out;
            }
        }
    }
    if (o_len == NULL) {
        Py_INCREF(Py_None);
        o_len = Py_None;
        Py_XDECREF(o_sha);
        Py_INCREF(Py_None);
        o_sha = Py_None;
    }
    /* N steals the references it is given, also when Py_BuildValue fails. */
    row = Py_BuildValue("(KLiz" "OIN" "Ny#" "NN)", (unsigned long long)tape_frame_seq(f),
                        (long long)tape_frame_ts(f), tape_frame_direction(f), corr,
                        tape_frame_is_error(f) ? Py_True : Py_False, flags, o_raw, o_msg,
                        line ? line : "", (Py_ssize_t)line_n, o_len, o_sha);
    return row;
out:
    Py_XDECREF(o_raw);
    Py_XDECREF(o_msg);
    Py_XDECREF(o_len);
    Py_XDECREF(o_sha);
    return NULL;
}

PyObject *tape_py_frame_rows(PyObject *tape_obj, long start, long stop)
{
    void *p = NULL;
    if (tape_py_ptr_get(tape_obj, "tape *", &p) < 0) {
        return NULL;
    }
    const tape *t = p;
    long n = (long)tape_frame_count(t);
    if (start < 0) {
        start = 0;
    }
    if (stop < 0 || stop > n) {
        stop = n;
    }
    PyObject *list = PyList_New(stop > start ? stop - start : 0);
    if (list == NULL) {
        return NULL;
    }
    for (long i = start; i < stop; i++) {
        PyObject *row = frame_row(tape_frame_at(t, (size_t)i));
        if (row == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i - start, row);
    }
    return list;
}

PyObject *tape_py_iter_rows(PyObject *iter_obj, long max)
{
    void *p = NULL;
    if (tape_py_ptr_get(iter_obj, "tape_frame_iter *", &p) < 0) {
        return NULL;
    }
    tape_frame_iter *it = p;
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (long i = 0; i < max; i++) {
        const tape_frame *f = NULL;
        int rc;
        /* The provider runs here: without the GIL, as every core call. The
         * frame is borrowed until the next call, so it is copied first. */
        Py_BEGIN_ALLOW_THREADS
        rc = tape_frame_iter_next(&f, it);
        Py_END_ALLOW_THREADS
        if (rc == TAPE_DONE) {
            break;
        }
        if (rc != TAPE_OK) {
            Py_DECREF(list);
            tape_py_raise(rc);
            return NULL;
        }
        PyObject *row = frame_row(f);
        if (row == NULL || PyList_Append(list, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(row);
    }
    return list;
}

PyObject *tape_py_append_plain(PyObject *tape_obj, int direction, PyObject *message)
{
    void *p = NULL;
    if (tape_py_ptr_get(tape_obj, "tape *", &p) < 0) {
        return NULL;
    }
    if (!PyBytes_Check(message)) {
        PyErr_Format(PyExc_TypeError, "append: message must be bytes, got %s",
                     Py_TYPE(message)->tp_name);
        return NULL;
    }
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = direction;
    d.message = PyBytes_AS_STRING(message);
    d.message_len = (size_t)PyBytes_GET_SIZE(message);
    uint64_t seq = 0;
    int rc;
    /* The bytes object stays alive (the caller holds it) while the GIL is
     * out; bytes are NUL-terminated, so a length of 0 reads "". */
    Py_BEGIN_ALLOW_THREADS
    rc = tape_append_frame(&seq, (tape *)p, &d); /* "" (len 0) is refused there as no value */
    Py_END_ALLOW_THREADS
    if (rc != TAPE_OK) {
        tape_py_raise(rc);
        return NULL;
    }
    return PyLong_FromUnsignedLongLong((unsigned long long)seq);
}
