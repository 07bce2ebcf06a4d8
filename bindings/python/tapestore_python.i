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
%clearnothreadallow;
