/*
 * tapestore_python.i - the Python module tapestore.capi (the raw C API): the shared
 * interface (../tapestore.i) plus the Python-only bridges of tape_python.c.
 * Built with -threads: the GIL is released around every wrapped call into
 * the core, destructors included; typemaps run with it held and release it
 * around their own core calls (TAPE_SWIG_UNLOCKED) except the thread-local
 * error reads (tape_errmsg, tape_errcode), which take no lock.
 */
%module(package="tapestore") capi

/* What ../tapestore.i asks of a language module. */
%define TAPE_SWIG_OUT(obj) %append_output(obj) %enddef
%define TAPE_SWIG_SET(obj) %set_output(obj) %enddef
%define TAPE_SWIG_BAD_ARG(what) %argument_fail(SWIG_TypeError, what, $symname, $argnum) %enddef

%{
#include "tape_python.h"
#define TAPE_SWIG_FAIL(code) do { tape_py_raise(code); SWIG_fail; } while (0)
#define TAPE_SWIG_VOID() SWIG_Py_Void()
#define TAPE_SWIG_PTR(p, desc, own) SWIG_NewPointerObj((void *)(p), (desc), (own) ? SWIG_POINTER_OWN : 0)
#define TAPE_SWIG_STR(s) SWIG_FromCharPtr(s)
#define TAPE_SWIG_INT(v) PyLong_FromLong((long)(v))
#define TAPE_SWIG_UINT(v) PyLong_FromUnsignedLong((unsigned long)(v))
#define TAPE_SWIG_I64(v) PyLong_FromLongLong((long long)(v))
#define TAPE_SWIG_U64(v) PyLong_FromUnsignedLongLong((unsigned long long)(v))
#define TAPE_SWIG_BYTES(p, n) PyBytes_FromStringAndSize((p), (Py_ssize_t)(n))
#define TAPE_SWIG_UNLOCKED(stmt) do { Py_BEGIN_ALLOW_THREADS stmt; Py_END_ALLOW_THREADS } while (0)
#define TAPE_SWIG_AS_BYTES(obj, p, n) tape_py_as_bytes((obj), (p), (n))
%}

%include "../tapestore.i"

/* These touch Python objects, so they keep the GIL (swap_hook releases it
 * itself around tape_log_set). */
%nothreadallow;
%rename(_set_error_classes) tape_py_set_error_classes;
%rename(_log_install) tape_py_log_install;
%rename(_log_remove) tape_py_log_remove;
PyObject *tape_py_set_error_classes(PyObject *mapping);
PyObject *tape_py_log_install(PyObject *callable);
PyObject *tape_py_log_remove(void);
/* Tape.append as a C method (tape_python.c; its core call releases the
 * GIL itself). Frames copied out as tapestore.Frame objects, a batch per
 * call (tape_py_frame.c); the iterator's releases the GIL itself around
 * each step into the provider. */
%rename(_append_method) tape_py_append_method;
PyObject *tape_py_append_method(PyObject *cls, PyObject *encode);
%rename(_frame_type) tape_py_frame_type;
%rename(_frames_of) tape_py_frames_of;
%rename(_iter_frames) tape_py_iter_frames;
PyObject *tape_py_frame_type(void);
PyObject *tape_py_frames_of(PyObject *tape_obj, long start, long stop);
PyObject *tape_py_iter_frames(PyObject *iter_obj, long max);
%clearnothreadallow;

/* Providers written in Python (tape_trampoline.c, tapestore/provider.py).
 * The trampolines make and read SWIG proxies through these two, which
 * need the SWIG runtime of this wrapper. */
%{
#include "tape_trampoline.h"
PyObject *tape_py_ptr_new(void *p, const char *type, int own)
{
    swig_type_info *ty = SWIG_TypeQuery(type);
    if (ty == NULL) {
        PyErr_Format(PyExc_SystemError, "tapestore: no SWIG type %s", type);
        return NULL;
    }
    return SWIG_NewPointerObj(p, ty, own ? SWIG_POINTER_OWN : 0);
}
/* The type of each name asked for, looked up once: callers pass string
 * literals, and SWIG_TypeQuery's search showed on per-frame paths. The
 * GIL is held, so the table needs no lock of its own. */
static swig_type_info *tape_py_type(const char *type)
{
    static struct { const char *name; swig_type_info *ty; } seen[16];
    static size_t nseen;
    for (size_t i = 0; i < nseen; i++) {
        if (seen[i].name == type) {
            return seen[i].ty;
        }
    }
    swig_type_info *ty = SWIG_TypeQuery(type);
    if (ty != NULL && nseen < sizeof seen / sizeof seen[0]) {
        seen[nseen].name = type;
        seen[nseen++].ty = ty;
    }
    return ty;
}
int tape_py_ptr_get(PyObject *obj, const char *type, void **out)
{
    swig_type_info *ty = tape_py_type(type);
    if (ty == NULL || !SWIG_IsOK(SWIG_ConvertPtr(obj, out, ty, 0)) || *out == NULL) {
        PyErr_Format(PyExc_TypeError, "expected a %s, got %s", type, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}
%}
%nothreadallow;
%rename(_provider_init) tape_py_provider_init;
%rename(_provider_register) tape_py_provider_register;
%rename(_provider_shutdown) tape_py_provider_shutdown;
%rename(_entry_from_meta) tape_py_entry_from_meta;
%rename(_query_page) tape_py_query_page;
PyObject *tape_py_provider_init(PyObject *tape_error, PyObject *stash);
PyObject *tape_py_provider_register(PyObject *registry, const char *name, PyObject *cls,
                                    PyObject *dispatch, unsigned int version,
                                    const char *description, unsigned int ops,
                                    int concurrent, int persistent);
PyObject *tape_py_provider_shutdown(void);
PyObject *tape_py_entry_from_meta(PyObject *meta);
PyObject *tape_py_query_page(PyObject *query, PyObject *entries);
%clearnothreadallow;
