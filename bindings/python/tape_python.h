/*
 * tape_python.h - the hand-written C of the Python binding: the error
 * bridge used by the SWIG wrappers and the log-hook bridge. Every function
 * here is called with the GIL held.
 */
#ifndef TAPE_PYTHON_H
#define TAPE_PYTHON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* Raise the exception of `code` with this thread's tape_errmsg(), unless an
 * exception is already set (a trampoline's own exception wins). */
void tape_py_raise(int code);
/* 0 with *p and *n set to the bytes of `obj` (a bytes object; borrowed while it lives). */
int tape_py_as_bytes(PyObject *obj, const char **p, size_t *n);

/* Swig-visible API (see tapestore_python.i). */
PyObject *tape_py_set_error_classes(PyObject *mapping);
PyObject *tape_py_log_install(PyObject *callable);
PyObject *tape_py_log_remove(void);
/* The interned direction names (once, at import): tape_py_dir_name gives
 * the borrowed name of a TAPE_DIR_* ("unknown" for any other value). */
int tape_py_dir_names_init(void);
PyObject *tape_py_dir_name(int dir);
/* Tape.append as a C method of the Python class cls (a method descriptor),
 * encoding messages that are not text with encode (tapestore._message_bytes). */
PyObject *tape_py_append_method(PyObject *cls, PyObject *encode);

/* tape_py_frame.c: the type tapestore.Frame (made ready on first call). */
PyObject *tape_py_frame_type(void);
/* The frames [start, stop) of a tape proxy (stop < 0: to the end) as a
 * list of tapestore.Frame, their messages decoded as one batch. */
PyObject *tape_py_frames_of(PyObject *tape_obj, long start, long stop);
/* Up to max Frames from a frame iterator proxy (fewer at its end; an empty
 * list: done). The GIL is released around each tape_frame_iter_next. */
PyObject *tape_py_iter_frames(PyObject *iter_obj, long max);

#endif
