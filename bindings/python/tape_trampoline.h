/*
 * tape_trampoline.h - providers written in Python: the trampolines that
 * adapt a Python class to a tape_provider and its backends' vtable
 * (tape_trampoline.c). Every function here is called with the GIL held.
 */
#ifndef TAPE_TRAMPOLINE_H
#define TAPE_TRAMPOLINE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Defined in the SWIG wrapper (tapestore_python.i), which owns the SWIG
 * runtime: a proxy of p as SWIG type `type` ("tape *"; own: the proxy frees
 * it), and the pointer held by a proxy of that type (0, or -1 with a
 * TypeError set). */
PyObject *tape_py_ptr_new(void *p, const char *type, int own);
int tape_py_ptr_get(PyObject *obj, const char *type, void **out);

/* Swig-visible API (see tapestore_python.i; tapestore/provider.py). */
PyObject *tape_py_provider_init(PyObject *tape_error, PyObject *stash);
PyObject *tape_py_provider_register(PyObject *registry, const char *name, PyObject *cls,
                                    PyObject *dispatch, unsigned int version,
                                    const char *description, unsigned int ops,
                                    int concurrent, int persistent);
PyObject *tape_py_provider_shutdown(void);
PyObject *tape_py_entry_from_meta(PyObject *meta);
PyObject *tape_py_query_page(PyObject *query, PyObject *entries);

/* Bits of `ops` (the optional methods a class has). */
#define TAPE_PY_OP_OPEN (1u << 0)
#define TAPE_PY_OP_CLOSE (1u << 1)
#define TAPE_PY_OP_EXISTS (1u << 2)
#define TAPE_PY_OP_SEARCH (1u << 3)
#define TAPE_PY_OP_STATS (1u << 4)
#define TAPE_PY_OP_WRITER (1u << 5)
#define TAPE_PY_OP_FRAMES (1u << 6)
#define TAPE_PY_OP_CONTROL (1u << 7)
#define TAPE_PY_OP_VALIDATE (1u << 8)

#endif
