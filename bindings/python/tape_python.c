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
#include <tapestore/provider.h> /* tape_error_set */
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

/* The direction names, interned: index 0 "unknown", then TAPE_DIR_*. */
static PyObject *dir_names[3];

int tape_py_dir_names_init(void)
{
    static const char *const names[3] = { "unknown", "client_to_server", "server_to_client" };
    for (int i = 0; i < 3; i++) {
        if (dir_names[i] == NULL && (dir_names[i] = PyUnicode_InternFromString(names[i])) == NULL) {
            return -1;
        }
    }
    return 0;
}

PyObject *tape_py_dir_name(int dir)
{
    return dir_names[dir == TAPE_DIR_CLIENT_TO_SERVER   ? 1
                     : dir == TAPE_DIR_SERVER_TO_CLIENT ? 2
                                                        : 0];
}

/* TAPE_DIR_* of a direction name, or 0. The names are usually the
 * package's constants (interned), so a pointer compare comes first. */
static int direction_of(PyObject *name)
{
    if (name == dir_names[1]) {
        return TAPE_DIR_CLIENT_TO_SERVER;
    }
    if (name == dir_names[2]) {
        return TAPE_DIR_SERVER_TO_CLIENT;
    }
    if (PyUnicode_Check(name)) {
        if (PyUnicode_CompareWithASCIIString(name, "client_to_server") == 0) {
            return TAPE_DIR_CLIENT_TO_SERVER;
        }
        if (PyUnicode_CompareWithASCIIString(name, "server_to_client") == 0) {
            return TAPE_DIR_SERVER_TO_CLIENT;
        }
    }
    return 0;
}

/* tape_append_frame of a message (bytes, or str as UTF-8) in a direction
 * ("client_to_server" / "server_to_client") with every other field at its
 * default, for Tape.append below (SWIG's ten-argument tape_swig_append
 * cost as much as the append). The seq, or NULL with the error raised.
 * The GIL is released around the core call. */
static PyObject *append_plain(PyObject *tape_obj, PyObject *direction, PyObject *message)
{
    void *p = NULL;
    if (tape_py_ptr_get(tape_obj, "tape *", &p) < 0) {
        return NULL;
    }
    int dir = direction_of(direction);
    if (dir == 0) {
        PyObject *why = PyUnicode_FromFormat("direction: expected 'client_to_server' or "
                                             "'server_to_client', got %R", direction);
        const char *text = why != NULL ? PyUnicode_AsUTF8(why) : NULL;
        if (text != NULL) {
            tape_error_set(TAPE_EINVAL, "%s", text);
            tape_py_raise(TAPE_EINVAL);
        }
        Py_XDECREF(why);
        return NULL;
    }
    /* Bytes as they are; a str as UTF-8 (its own cached copy: no new
     * object), or with surrogateescape when it holds surrogates, so bytes
     * decoded that way come back. */
    PyObject *owned = NULL;
    const char *text;
    Py_ssize_t len;
    if (PyBytes_Check(message)) {
        text = PyBytes_AS_STRING(message);
        len = PyBytes_GET_SIZE(message);
    } else if (PyUnicode_Check(message)) {
        if ((text = PyUnicode_AsUTF8AndSize(message, &len)) == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                return NULL;
            }
            PyErr_Clear();
            if ((owned = PyUnicode_AsEncodedString(message, "utf-8", "surrogateescape")) == NULL) {
                return NULL;
            }
            text = PyBytes_AS_STRING(owned);
            len = PyBytes_GET_SIZE(owned);
        }
    } else {
        PyErr_Format(PyExc_TypeError, "append: message must be bytes or str here, got %s",
                     Py_TYPE(message)->tp_name);
        return NULL;
    }
    tape_frame_desc d = TAPE_FRAME_DESC_INIT;
    d.direction = dir;
    d.message = text;
    d.message_len = (size_t)len;
    uint64_t seq = 0;
    int rc;
    /* The caller holds the message object (and owned is ours) while the
     * GIL is out; both are immutable. Their text is NUL-terminated, so a
     * length of 0 reads "", which tape_append_frame refuses as no value. */
    Py_BEGIN_ALLOW_THREADS
    rc = tape_append_frame(&seq, (tape *)p, &d);
    Py_END_ALLOW_THREADS
    Py_XDECREF(owned);
    if (rc != TAPE_OK) {
        tape_py_raise(rc);
        return NULL;
    }
    return PyLong_FromUnsignedLongLong((unsigned long long)seq);
}

/* ------------------------------------------------------------ Tape.append
 * Tape.append's common case (a direction and a message, no options) is
 * most of writing a tape from Python, so it is a C method of the Python
 * class: the same steps as the Python code it stands for (encode a
 * non-text message with tapestore._message_bytes, take the tape's lock,
 * check it is neither revoked nor read-only, one core call), without the
 * interpreter's cost per step. Anything else goes to the Python method
 * it replaced (Tape._append_with). */
static PyObject *append_names[6]; /* _lock, _t, _ro, acquire, release, _append_with */
static PyObject *append_encode;   /* tapestore._message_bytes */

/* The Python Tape.append (kept as Tape._append_with): its signature is
 * the one list of the options, and it names itself in argument errors. */
static PyObject *append_slow(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    PyObject *local[16], **stack = local;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0, n = nargs + nkw + 1;
    if (n > (Py_ssize_t)(sizeof local / sizeof local[0]) &&
        (stack = PyMem_Malloc((size_t)n * sizeof *stack)) == NULL) {
        return PyErr_NoMemory();
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) {
        stack[i + 1] = args[i];
    }
    PyObject *r = PyObject_VectorcallMethod(append_names[5], stack, (size_t)(nargs + 1), kwnames);
    if (stack != local) {
        PyMem_Free(stack);
    }
    return r;
}

static PyObject *append_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 2) {
        return append_slow(self, args, nargs, kwnames);
    }
    PyObject *message = args[1], *encoded = NULL;
    if (!PyBytes_CheckExact(message) && !PyUnicode_CheckExact(message)) {
        if ((encoded = PyObject_CallOneArg(append_encode, message)) == NULL) {
            return NULL;
        }
        message = encoded;
    }
    PyObject *lock = PyObject_GetAttr(self, append_names[0]);
    PyObject *got = lock != NULL ? PyObject_CallMethodNoArgs(lock, append_names[3]) : NULL;
    if (got == NULL) {
        Py_XDECREF(lock);
        Py_XDECREF(encoded);
        return NULL;
    }
    Py_DECREF(got);
    PyObject *res = NULL;
    PyObject *t = PyObject_GetAttr(self, append_names[1]);
    PyObject *ro = t != NULL ? PyObject_GetAttr(self, append_names[2]) : NULL;
    if (ro != NULL) {
        if (t == Py_None || ro != Py_False) {
            /* revoked or lent read-only: the Python path raises the error */
            PyObject *a[2] = { args[0], message };
            res = append_slow(self, a, 2, NULL);
        } else {
            res = append_plain(t, args[0], message);
        }
    }
    Py_XDECREF(t);
    Py_XDECREF(ro);
    /* Release with any exception of the call kept aside. */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *rel = PyObject_CallMethodNoArgs(lock, append_names[4]);
    Py_DECREF(lock);
    Py_XDECREF(encoded);
    if (rel == NULL) {
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
        Py_XDECREF(res);
        return NULL;
    }
    Py_DECREF(rel);
    PyErr_Restore(et, ev, tb);
    return res;
}

static PyMethodDef append_def = {
    "append", (PyCFunction)(void (*)(void))append_method, METH_FASTCALL | METH_KEYWORDS,
    "append(direction, message, *, ts_ms=None, correlation_id=None, transport=None,\n"
    "       flags=None, invalid_json=False, oversize=False, prefix_bytes=0)\n\n"
    "Append a frame and return its sequence number. ``message`` is a dict (or any\n"
    "JSON value) or JSON text (str or bytes). With ``invalid_json=True`` any bytes\n"
    "are kept exactly; with ``oversize=True`` only the length, SHA-256 and first\n"
    "``prefix_bytes`` are kept. ``ts_ms`` None: now minus created_at."
};

PyObject *tape_py_append_method(PyObject *cls, PyObject *encode)
{
    static const char *const names[6] = { "_lock", "_t", "_ro", "acquire", "release",
                                           "_append_with" };
    if (!PyType_Check(cls) || !PyCallable_Check(encode) || tape_py_dir_names_init() < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "_append_method: expected a class and a callable");
        }
        return NULL;
    }
    for (int i = 0; i < 6; i++) {
        if (append_names[i] == NULL &&
            (append_names[i] = PyUnicode_InternFromString(names[i])) == NULL) {
            return NULL;
        }
    }
    Py_INCREF(encode);
    Py_XSETREF(append_encode, encode);
    return PyDescr_NewMethod((PyTypeObject *)cls, &append_def);
}
