/*
 * tape_trampoline.c - providers written in Python (docs/providers-python.md).
 *
 * One tape_provider per registration: its userdata (py_provider) holds a
 * strong reference to the class and to the package's dispatcher
 * (tapestore.provider._dispatch), which wraps arguments in the package's
 * objects, calls the method of the op's name, checks what it returns and
 * invalidates borrowed objects afterwards. This file only moves pointers,
 * takes the locks and turns exceptions into codes.
 *
 * Locks (docs/abi.md "Threads"): the backend declares TAPE_CAP_THREAD_SAFE
 * and every op takes, in this order, the backend's own recursive mutex
 * (unless the class says concurrent = True) and then the GIL, both from a
 * thread that holds neither: the core calls in with the GIL released, so
 * nobody ever waits for the mutex while holding the GIL. Recursive: a
 * method may call back into its own store (the core allows re-entry on a
 * thread-safe backend).
 *
 * Shutdown: a trampoline counts itself in flight and checks `alive` before
 * PyGILState_Ensure (which kills the thread during finalisation on 3.11);
 * the package's atexit handler unregisters its providers, clears `alive`
 * and waits for the calls in flight (tape_py_provider_shutdown).
 */
#include "tape_trampoline.h"

#include "tape_python.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <tapestore/provider.h>
#include <time.h>

static atomic_int alive = 1;
static atomic_long inflight = 0;
/* Set once by the package (tape_py_provider_init); owned. */
static PyObject *tape_error_cls = NULL;
static PyObject *stash_fn = NULL;

typedef struct py_provider {
    char *name;
    PyObject *cls;      /* strong */
    PyObject *dispatch; /* strong */
    int concurrent;
    tape_backend_ops ops; /* the vtable every backend of this class shares */
} py_provider;

typedef struct py_backend {
    py_provider *prov; /* outlives its backends (destroy comes after the last free) */
    PyObject *inst;    /* strong */
    pthread_mutex_t lock;
} py_backend;

typedef struct py_writer {
    py_backend *b;
    PyObject *rec; /* the recording object (strong) */
} py_writer;

typedef struct py_iter {
    py_backend *b;
    PyObject *it;    /* the iterator over frame lines (strong) */
    tape_frame *cur; /* the frame handed out last, owned until the next call */
} py_iter;

/* ---------------------------------------------------------------- calls */

typedef struct py_call {
    py_backend *b; /* NULL: a provider-level call (validate, create, destroy) */
    const char *pname;
    int from_python; /* this thread has a Python thread state: a Python caller */
    PyGILState_STATE g;
    PyObject *et, *ev, *tb; /* an exception pending when we were entered */
} py_call;

/* Take the backend's lock and the GIL. Fails (TAPE_EPROVIDER) when the
 * interpreter is going away: then nothing is held. */
static int call_enter(py_call *c, py_backend *b, const char *pname, const char *op)
{
    c->b = b;
    c->pname = pname;
    atomic_fetch_add(&inflight, 1);
    if (!atomic_load(&alive) || !Py_IsInitialized() || _Py_IsFinalizing()) {
        atomic_fetch_sub(&inflight, 1);
        return tape_error_set(TAPE_EPROVIDER,
                              "python provider '%s' %s: the Python interpreter is shutting down",
                              pname, op);
    }
    if (b != NULL && !b->prov->concurrent) {
        pthread_mutex_lock(&b->lock);
    }
    c->from_python = PyGILState_GetThisThreadState() != NULL;
    c->g = PyGILState_Ensure();
    /* Never call Python with an exception set: keep it for the way out. */
    PyErr_Fetch(&c->et, &c->ev, &c->tb);
    return TAPE_OK;
}

static void call_leave(py_call *c)
{
    PyErr_Restore(c->et, c->ev, c->tb);
    PyGILState_Release(c->g);
    if (c->b != NULL && !c->b->prov->concurrent) {
        pthread_mutex_unlock(&c->b->lock);
    }
    atomic_fetch_sub(&inflight, 1);
}

/* UTF-8 of str(obj) into buf (cut to fit); "" when str() fails. */
static void str_into(char *buf, size_t n, PyObject *obj)
{
    buf[0] = '\0';
    PyObject *s = obj != NULL ? PyObject_Str(obj) : NULL;
    if (s == NULL) {
        PyErr_Clear();
        return;
    }
    Py_ssize_t len = 0;
    const char *u = PyUnicode_AsUTF8AndSize(s, &len);
    if (u == NULL) {
        PyErr_Clear();
    } else {
        snprintf(buf, n, "%s", u);
    }
    Py_DECREF(s);
}

/* The exception now set becomes the code (a TapeError's .code, else
 * TAPE_EPROVIDER "<Type>: <text>") and this thread's message. A Python
 * caller gets it back chained (the package's stash); a C thread's goes to
 * sys.unraisablehook. Clears the exception. */
static int fail(py_call *c, const char *method)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (et == NULL) { /* a NULL result without an exception: a bug, say so */
        return tape_error_set(TAPE_EPROVIDER, "python provider '%s' %s failed without an exception",
                              c->pname, method);
    }
    PyErr_NormalizeException(&et, &ev, &tb);
    if (tb != NULL && ev != NULL) {
        PyException_SetTraceback(ev, tb);
    }
    int code = TAPE_EPROVIDER;
    char msg[8448];
    char body[8192];
    str_into(body, sizeof body, ev);
    int ours = tape_error_cls != NULL && ev != NULL && PyObject_IsInstance(ev, tape_error_cls) == 1;
    if (ours) {
        PyObject *co = PyObject_GetAttrString(ev, "code");
        long v = co != NULL ? PyLong_AsLong(co) : 0;
        Py_XDECREF(co);
        PyErr_Clear();
        if (v <= TAPE_ENOTFOUND && v >= TAPE_ESTATE) {
            code = (int)v;
        }
    }
    if (ours && code != TAPE_EPROVIDER) {
        snprintf(msg, sizeof msg, "%s", body);
    } else {
        const char *tn = _PyType_Name((PyTypeObject *)et);
        snprintf(msg, sizeof msg, "python provider '%s' %s: %s: %s", c->pname, method, tn, body);
    }
    if (c->from_python && stash_fn != NULL) {
        PyObject *r = PyObject_CallOneArg(stash_fn, ev != NULL ? ev : Py_None);
        if (r == NULL) {
            PyErr_WriteUnraisable(stash_fn);
        }
        Py_XDECREF(r);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
    } else {
        PyErr_Restore(et, ev, tb);
        PyObject *where = PyUnicode_FromFormat("python provider '%s' %s", c->pname, method);
        PyErr_WriteUnraisable(where);
        Py_XDECREF(where);
    }
    PyErr_Clear();
    /* Last, so nothing run above can overwrite it. */
    return tape_error_set_message(code, msg);
}

/* dispatch(op, target, *args); NULL with an exception set on failure. */
static PyObject *invoke(py_provider *p, const char *op, PyObject *target, const char *fmt, ...)
{
    PyObject *args = NULL;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        args = Py_VaBuildValue(fmt, ap);
        va_end(ap);
        if (args == NULL) {
            return NULL;
        }
        if (!PyTuple_Check(args)) { /* one value: make it a 1-tuple */
            PyObject *t = PyTuple_Pack(1, args);
            Py_DECREF(args);
            if (t == NULL) {
                return NULL;
            }
            args = t;
        }
    } else {
        args = PyTuple_New(0);
        if (args == NULL) {
            return NULL;
        }
    }
    PyObject *r = PyObject_CallFunction(p->dispatch, "sOO", op, target, args);
    Py_DECREF(args);
    return r;
}

/* A borrowed proxy of a core object (the dispatcher invalidates its wrapper
 * after the call). */
static PyObject *lend(const void *ptr, const char *type)
{
    return tape_py_ptr_new((void *)ptr, type, 0);
}

/* ---------------------------------------------------------------- backend ops */

#define BACKEND_CALL(b, op)                                                       \
    py_call c;                                                                    \
    int rc_ = call_enter(&c, (b), (b)->prov->name, (op));                         \
    if (rc_ != TAPE_OK) {                                                         \
        return rc_;                                                               \
    }

static int done(py_call *c, PyObject *r, const char *method)
{
    int rc = TAPE_OK;
    if (r == NULL) {
        rc = fail(c, method);
    }
    Py_XDECREF(r);
    call_leave(c);
    return rc;
}

static int op_save(void *self, const tape *t)
{
    py_backend *b = self;
    BACKEND_CALL(b, "save");
    PyObject *pt = lend(t, "tape *");
    PyObject *r = pt != NULL ? invoke(b->prov, "save", b->inst, "(O)", pt) : NULL;
    Py_XDECREF(pt);
    return done(&c, r, "save");
}

static int op_load(tape **out, void *self, const char *id)
{
    py_backend *b = self;
    *out = NULL;
    BACKEND_CALL(b, "load");
    PyObject *r = invoke(b->prov, "load", b->inst, "(s)", id);
    if (r == Py_None) {
        Py_DECREF(r);
        call_leave(&c);
        return tape_error_set(TAPE_ENOTFOUND, "python provider '%s': no tape '%s'", b->prov->name, id);
    }
    if (r != NULL) {
        void *p = NULL; /* an unowned proxy of a copy made for us: ours now */
        if (tape_py_ptr_get(r, "tape *", &p) == 0) {
            *out = p;
        } else {
            Py_CLEAR(r);
        }
    }
    return done(&c, r, "load");
}

static int op_remove(void *self, const char *id)
{
    py_backend *b = self;
    BACKEND_CALL(b, "delete");
    return done(&c, invoke(b->prov, "delete", b->inst, "(s)", id), "delete");
}

/* The query's JSON (the core's normal form), or NULL with the error set. */
static char *query_json(const tape_query *q)
{
    char *qs = NULL;
    if (q == NULL) {
        return strdup("{}");
    }
    if (tape_query_to_json(&qs, q) != TAPE_OK) {
        return NULL;
    }
    return qs;
}

static int op_list(void *self, const tape_query *q, tape_entry_sink sink, void *sink_data)
{
    py_backend *b = self;
    char *qs = query_json(q);
    if (qs == NULL) {
        return tape_errcode();
    }
    py_call c;
    int rc = call_enter(&c, b, b->prov->name, "list");
    if (rc != TAPE_OK) {
        tape_string_free(qs);
        return rc;
    }
    PyObject *it = invoke(b->prov, "list", b->inst, "(s)", qs);
    tape_string_free(qs);
    if (it == NULL) {
        return done(&c, NULL, "list");
    }
    PyObject *item;
    int stop = 0;
    while (!stop && (item = PyIter_Next(it)) != NULL) {
        void *e = NULL;
        if (tape_py_ptr_get(item, "tape_entry *", &e) != 0) {
            Py_DECREF(item);
            break;
        }
        /* The sink only takes a reference (abi.md "The list sink"). */
        Py_BEGIN_ALLOW_THREADS
        stop = sink(sink_data, e);
        Py_END_ALLOW_THREADS
        Py_DECREF(item);
    }
    Py_DECREF(it); /* closes a generator stopped early */
    if (PyErr_Occurred()) {
        return done(&c, NULL, "list");
    }
    return done(&c, Py_NewRef(Py_None), "list");
}

static int op_open(void *self)
{
    py_backend *b = self;
    BACKEND_CALL(b, "open");
    return done(&c, invoke(b->prov, "open", b->inst, NULL), "open");
}

static int op_close(void *self)
{
    py_backend *b = self;
    BACKEND_CALL(b, "close");
    return done(&c, invoke(b->prov, "close", b->inst, NULL), "close");
}

static int op_exists(int *out_exists, void *self, const char *id)
{
    py_backend *b = self;
    *out_exists = 0;
    BACKEND_CALL(b, "exists");
    PyObject *r = invoke(b->prov, "exists", b->inst, "(s)", id);
    if (r != NULL) {
        *out_exists = r == Py_True; /* the dispatcher checked it is a bool */
    }
    return done(&c, r, "exists");
}

static int op_search(tape_result **out, void *self, const tape_query *q)
{
    py_backend *b = self;
    *out = NULL;
    char *qs = query_json(q);
    if (qs == NULL) {
        return tape_errcode();
    }
    py_call c;
    int rc = call_enter(&c, b, b->prov->name, "search");
    if (rc != TAPE_OK) {
        tape_string_free(qs);
        return rc;
    }
    /* The dispatcher returns ([entry proxies], cursor or None), checked. */
    PyObject *r = invoke(b->prov, "search", b->inst, "(s)", qs);
    tape_string_free(qs);
    if (r == NULL) {
        return done(&c, NULL, "search");
    }
    PyObject *list = PyTuple_GET_ITEM(r, 0), *cur = PyTuple_GET_ITEM(r, 1);
    tape_result *res = NULL;
    rc = tape_result_new(&res);
    for (Py_ssize_t i = 0; rc == TAPE_OK && i < PyList_GET_SIZE(list); i++) {
        void *e = NULL;
        if (tape_py_ptr_get(PyList_GET_ITEM(list, i), "tape_entry *", &e) != 0) {
            tape_result_free(res);
            Py_DECREF(r);
            return done(&c, NULL, "search");
        }
        rc = tape_result_push(res, e);
    }
    if (rc == TAPE_OK && cur != Py_None) {
        const char *cs = PyUnicode_AsUTF8(cur);
        if (cs == NULL) {
            tape_result_free(res);
            Py_DECREF(r);
            return done(&c, NULL, "search");
        }
        rc = tape_result_set_cursor(res, cs);
    }
    Py_DECREF(r);
    call_leave(&c);
    if (rc != TAPE_OK) {
        tape_result_free(res);
        return rc;
    }
    *out = res;
    return TAPE_OK;
}

static int op_stats(tape_store_stats *out, void *self)
{
    py_backend *b = self;
    BACKEND_CALL(b, "stats");
    /* The dispatcher returns (tape_count, frame_count, total_bytes), checked. */
    PyObject *r = invoke(b->prov, "stats", b->inst, NULL);
    if (r != NULL) {
        unsigned long long n, f, t;
        if (PyArg_ParseTuple(r, "KKK", &n, &f, &t)) {
            out->tape_count = n;
            out->frame_count = f;
            out->total_bytes = t;
        } else {
            Py_CLEAR(r);
        }
    }
    return done(&c, r, "stats");
}

static int op_control(char **out_json, void *self, const char *op, const char *in_json)
{
    py_backend *b = self;
    *out_json = NULL;
    BACKEND_CALL(b, "control");
    /* The dispatcher returns the result's JSON text or None. */
    PyObject *r = invoke(b->prov, "control", b->inst, "(sz)", op, in_json);
    if (r != NULL && r != Py_None) {
        const char *s = PyUnicode_AsUTF8(r);
        if (s == NULL || (*out_json = strdup(s)) == NULL) {
            if (s != NULL) {
                PyErr_NoMemory();
            }
            Py_CLEAR(r);
        }
    }
    return done(&c, r, "control");
}

static int op_writer_begin(void **out_writer, void *self, const tape *header)
{
    py_backend *b = self;
    *out_writer = NULL;
    BACKEND_CALL(b, "begin_recording");
    py_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        call_leave(&c);
        return tape_error_set(TAPE_ENOMEM, "python provider '%s': out of memory", b->prov->name);
    }
    PyObject *ph = lend(header, "tape *");
    PyObject *r = ph != NULL ? invoke(b->prov, "begin_recording", b->inst, "(O)", ph) : NULL;
    Py_XDECREF(ph);
    if (r == NULL) {
        free(w);
        return done(&c, NULL, "begin_recording");
    }
    w->b = b;
    w->rec = r; /* the reference the call gave us */
    *out_writer = w;
    call_leave(&c);
    return TAPE_OK;
}

static int op_writer_append(void *writer, const tape_frame *f, const tape *header)
{
    py_writer *w = writer;
    BACKEND_CALL(w->b, "append");
    PyObject *pf = lend(f, "tape_frame *");
    PyObject *ph = lend(header, "tape *");
    PyObject *r = pf != NULL && ph != NULL ? invoke(w->b->prov, "append", w->rec, "(OO)", pf, ph) : NULL;
    Py_XDECREF(pf);
    Py_XDECREF(ph);
    return done(&c, r, "recording.append");
}

static int op_writer_correlate(void *writer, const tape *header, size_t i)
{
    py_writer *w = writer;
    BACKEND_CALL(w->b, "correlate");
    PyObject *ph = lend(header, "tape *");
    PyObject *r = ph != NULL ? invoke(w->b->prov, "correlate", w->rec, "(On)", ph, (Py_ssize_t)i) : NULL;
    Py_XDECREF(ph);
    return done(&c, r, "recording.correlate");
}

static int op_writer_end(void *writer, const tape *header, int finalize)
{
    py_writer *w = writer;
    py_call c;
    int rc = call_enter(&c, w->b, w->b->prov->name, "end");
    if (rc != TAPE_OK) {
        free(w); /* the recording object is leaked: Python is gone */
        return rc;
    }
    PyObject *ph = lend(header, "tape *");
    PyObject *r = ph != NULL ? invoke(w->b->prov, "end", w->rec, "(Oi)", ph, finalize) : NULL;
    Py_XDECREF(ph);
    Py_CLEAR(w->rec);
    free(w); /* freed either way: no TAPE_CAP_WRITER_RETRY */
    return done(&c, r, "recording.end");
}

static int op_frames_open(void **out_iter, void *self, const char *id, uint64_t from_seq,
                          uint64_t to_seq)
{
    py_backend *b = self;
    *out_iter = NULL;
    BACKEND_CALL(b, "frames");
    PyObject *r = invoke(b->prov, "frames", b->inst, "(sKK)", id, (unsigned long long)from_seq,
                         (unsigned long long)to_seq);
    if (r == Py_None) {
        Py_DECREF(r);
        call_leave(&c);
        return tape_error_set(TAPE_ENOTFOUND, "python provider '%s': no tape '%s'", b->prov->name, id);
    }
    if (r == NULL) {
        return done(&c, NULL, "frames");
    }
    py_iter *it = calloc(1, sizeof *it);
    if (it == NULL) {
        Py_DECREF(r);
        call_leave(&c);
        return tape_error_set(TAPE_ENOMEM, "python provider '%s': out of memory", b->prov->name);
    }
    it->b = b;
    it->it = r;
    *out_iter = it;
    call_leave(&c);
    return TAPE_OK;
}

static int op_frames_next(const tape_frame **out, void *iter)
{
    py_iter *it = iter;
    *out = NULL;
    BACKEND_CALL(it->b, "frames");
    tape_frame_free(it->cur);
    it->cur = NULL;
    /* The dispatcher's iterator yields each frame's line (bytes), checked. */
    PyObject *line = PyIter_Next(it->it);
    if (line == NULL) {
        if (PyErr_Occurred()) {
            return done(&c, NULL, "frames");
        }
        call_leave(&c);
        return TAPE_DONE;
    }
    int type = 0;
    tape_frame *f = NULL;
    int rc = tape_line_parse(&type, &f, PyBytes_AS_STRING(line), (size_t)PyBytes_GET_SIZE(line));
    Py_DECREF(line);
    call_leave(&c);
    if (rc != TAPE_OK) {
        return rc;
    }
    if (type != TAPE_LINE_FRAME) {
        tape_frame_free(f);
        return tape_error_set(TAPE_EPROVIDER, "python provider '%s' frames: yielded a line that is not a frame",
                              it->b->prov->name);
    }
    it->cur = f;
    *out = f;
    return TAPE_OK;
}

static void op_frames_close(void *iter)
{
    py_iter *it = iter;
    py_call c;
    if (call_enter(&c, it->b, it->b->prov->name, "frames") == TAPE_OK) {
        Py_CLEAR(it->it);
        call_leave(&c);
    } /* else: Python is gone, the iterator is leaked with it */
    tape_frame_free(it->cur);
    free(it);
}

static void op_free(void *self)
{
    py_backend *b = self;
    py_call c;
    if (call_enter(&c, b, b->prov->name, "free") == TAPE_OK) {
        Py_CLEAR(b->inst);
        call_leave(&c);
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* ---------------------------------------------------------------- provider */

/* The config as JSON text (tape_string_free), or NULL with the error set. */
static char *config_json(const tape_config *config)
{
    char *s = NULL;
    if (config == NULL) {
        return strdup("{}");
    }
    return tape_config_to_json(&s, config) == TAPE_OK ? s : NULL;
}

static int prov_validate(void *userdata, const tape_config *config)
{
    py_provider *p = userdata;
    char *cs = config_json(config);
    if (cs == NULL) {
        return tape_errcode();
    }
    py_call c;
    int rc = call_enter(&c, NULL, p->name, "validate");
    if (rc == TAPE_OK) {
        rc = done(&c, invoke(p, "validate", p->cls, "(s)", cs), "validate");
    }
    tape_string_free(cs);
    return rc;
}

static int prov_create(const tape_backend_ops **out_ops, void **out_self, void *userdata,
                       const tape_config *config)
{
    py_provider *p = userdata;
    char *cs = config_json(config);
    if (cs == NULL) {
        return tape_errcode();
    }
    py_backend *b = calloc(1, sizeof *b);
    if (b == NULL) {
        tape_string_free(cs);
        return tape_error_set(TAPE_ENOMEM, "python provider '%s': out of memory", p->name);
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&b->lock, &a);
    pthread_mutexattr_destroy(&a);
    b->prov = p;
    py_call c;
    int rc = call_enter(&c, NULL, p->name, "create");
    if (rc == TAPE_OK) {
        PyObject *inst = invoke(p, "create", p->cls, "(s)", cs);
        if (inst != NULL) {
            b->inst = inst;
        }
        rc = done(&c, inst != NULL ? Py_NewRef(Py_None) : NULL, "__init__");
    }
    tape_string_free(cs);
    if (rc != TAPE_OK) {
        pthread_mutex_destroy(&b->lock);
        free(b);
        return rc;
    }
    *out_ops = &p->ops;
    *out_self = b;
    return TAPE_OK;
}

static void prov_release(py_provider *p)
{
    Py_CLEAR(p->cls);
    Py_CLEAR(p->dispatch);
    free(p->name);
    free(p);
}

static void prov_destroy(void *userdata)
{
    py_provider *p = userdata;
    py_call c;
    if (call_enter(&c, NULL, p->name, "destroy") == TAPE_OK) {
        Py_CLEAR(p->cls);
        Py_CLEAR(p->dispatch);
        call_leave(&c);
    } /* else: Python is gone; its objects went with it */
    free(p->name);
    free(p);
}

/* ---------------------------------------------------------------- Python API */

PyObject *tape_py_provider_init(PyObject *tape_error, PyObject *stash)
{
    if (!PyType_Check(tape_error) || !PyCallable_Check(stash)) {
        PyErr_SetString(PyExc_TypeError, "_provider_init: expected (TapeError, callable)");
        return NULL;
    }
    Py_XSETREF(tape_error_cls, Py_NewRef(tape_error));
    Py_XSETREF(stash_fn, Py_NewRef(stash));
    atomic_store(&alive, 1);
    Py_RETURN_NONE;
}

static tape_registry *registry_of(PyObject *registry)
{
    if (registry == Py_None) {
        return tape_registry_default();
    }
    void *r = NULL;
    if (tape_py_ptr_get(registry, "tape_registry *", &r) != 0) {
        return NULL;
    }
    return r;
}

PyObject *tape_py_provider_register(PyObject *registry, const char *name, PyObject *cls,
                                    PyObject *dispatch, unsigned int version,
                                    const char *description, unsigned int ops,
                                    int concurrent, int persistent)
{
    if (name == NULL || !PyCallable_Check(cls) || !PyCallable_Check(dispatch)) {
        PyErr_SetString(PyExc_TypeError, "_provider_register: expected a name, a class and a dispatcher");
        return NULL;
    }
    tape_registry *reg = registry_of(registry);
    if (reg == NULL) {
        return NULL;
    }
    py_provider *p = calloc(1, sizeof *p);
    if (p == NULL || (p->name = strdup(name)) == NULL) {
        free(p);
        return PyErr_NoMemory();
    }
    p->cls = Py_NewRef(cls);
    p->dispatch = Py_NewRef(dispatch);
    p->concurrent = concurrent;
    tape_backend_ops o = TAPE_BACKEND_OPS_INIT;
    unsigned int caps = 0;
    o.flags = TAPE_CAP_THREAD_SAFE | (persistent ? TAPE_CAP_PERSISTENT : 0u);
    o.save = op_save;
    o.load = op_load;
    o.remove = op_remove;
    o.list = op_list;
    o.free = op_free;
    if (ops & TAPE_PY_OP_OPEN) {
        o.open = op_open;
    }
    if (ops & TAPE_PY_OP_CLOSE) {
        o.close = op_close;
    }
    if (ops & TAPE_PY_OP_EXISTS) {
        o.exists = op_exists;
        caps |= TAPE_CAP_EXISTS;
    }
    if (ops & TAPE_PY_OP_SEARCH) {
        o.search = op_search;
        caps |= TAPE_CAP_SEARCH;
    }
    if (ops & TAPE_PY_OP_STATS) {
        o.stats = op_stats;
        caps |= TAPE_CAP_STATS;
    }
    if (ops & TAPE_PY_OP_WRITER) {
        o.writer_begin = op_writer_begin;
        o.writer_append = op_writer_append;
        o.writer_correlate = op_writer_correlate;
        o.writer_end = op_writer_end;
        caps |= TAPE_CAP_WRITER;
    }
    if (ops & TAPE_PY_OP_FRAMES) {
        o.frames_open = op_frames_open;
        o.frames_next = op_frames_next;
        o.frames_close = op_frames_close;
        caps |= TAPE_CAP_READ_FRAMES;
    }
    if (ops & TAPE_PY_OP_CONTROL) {
        o.control = op_control;
        caps |= TAPE_CAP_CONTROL;
    }
    p->ops = o;
    tape_provider tp = TAPE_PROVIDER_INIT;
    tp.name = p->name;
    tp.description = description;
    tp.provider_version = version;
    tp.capabilities = caps | o.flags;
    tp.userdata = p;
    tp.validate = (ops & TAPE_PY_OP_VALIDATE) ? prov_validate : NULL;
    tp.create = prov_create;
    tp.destroy = prov_destroy;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tape_registry_register(reg, &tp);
    Py_END_ALLOW_THREADS
    if (rc != TAPE_OK) {
        prov_release(p); /* the core does not call destroy for a refused registration */
        tape_py_raise(rc);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *tape_py_provider_shutdown(void)
{
    atomic_store(&alive, 0);
    /* Calls in flight finish (they hold, or wait for, the GIL: release it).
     * Bounded, so a provider stuck forever cannot hang the exit. */
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < 30000 && atomic_load(&inflight) > 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyObject *tape_py_entry_from_meta(PyObject *meta)
{
    if (!PyBytes_Check(meta)) {
        PyErr_SetString(PyExc_TypeError, "_entry_from_meta: expected bytes");
        return NULL;
    }
    tape_entry *e = NULL;
    int rc;
    /* `meta` (immutable bytes) is kept alive by our caller. */
    Py_BEGIN_ALLOW_THREADS
    rc = tape_entry_from_meta(&e, PyBytes_AS_STRING(meta), (size_t)PyBytes_GET_SIZE(meta));
    Py_END_ALLOW_THREADS
    if (rc != TAPE_OK) {
        tape_py_raise(rc);
        return NULL;
    }
    PyObject *r = tape_py_ptr_new(e, "tape_entry *", 1);
    if (r == NULL) {
        tape_entry_free(e);
    }
    return r;
}

PyObject *tape_py_query_page(PyObject *query, PyObject *entries)
{
    void *q = NULL;
    if (tape_py_ptr_get(query, "tape_query *", &q) != 0) {
        return NULL;
    }
    if (!PyList_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "_query_page: expected a list of entries");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(entries);
    const tape_entry **v = calloc((size_t)n + 1, sizeof *v);
    if (v == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        void *e = NULL;
        if (tape_py_ptr_get(PyList_GET_ITEM(entries, i), "tape_entry *", &e) != 0) {
            for (Py_ssize_t k = 0; k < i; k++) {
                tape_entry_free((tape_entry *)v[k]);
            }
            free(v);
            return NULL;
        }
        v[i] = tape_entry_ref(e); /* ours while the GIL is released */
    }
    tape_result *res = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tape_query_page(&res, q, v, (size_t)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        tape_entry_free((tape_entry *)v[i]);
    }
    Py_END_ALLOW_THREADS
    free(v);
    if (rc != TAPE_OK) {
        tape_py_raise(rc);
        return NULL;
    }
    size_t count = tape_result_count(res);
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; list != NULL && i < count; i++) {
        tape_entry *e = tape_entry_ref(tape_result_at(res, i));
        PyObject *pe = tape_py_ptr_new(e, "tape_entry *", 1);
        if (pe == NULL) {
            tape_entry_free(e);
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, pe);
    }
    const char *cur = tape_result_next_cursor(res);
    PyObject *r = list != NULL ? Py_BuildValue("(Nz)", list, cur) : NULL;
    tape_result_free(res);
    return r;
}
