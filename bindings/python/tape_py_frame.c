/*
 * tape_py_frame.c - tapestore.Frame, a frame copied out of the core.
 *
 * A C type rather than a Python class: reading a tape is mostly making
 * Frame objects, and a Python class made from a row tuple cost as much as
 * decoding the tape. A Frame owns copies of its bytes, so it stays valid
 * after its tape or iterator is gone.
 *
 * `message` is decoded on first use with Python's json module. The frames
 * made by one call (a batch) decode their messages together: one
 * json.loads of "[m1,m2,...]" instead of one call per message, which cost
 * more than the parsing itself. A message that does not decode on its own
 * (not UTF-8, say) makes the batch fall back to one json.loads per frame,
 * so the error is that frame's alone. A frame drops its batch once it has
 * its message; a batch holds at most BATCH_BYTES of message text.
 */
#include "tape_python.h"
#include "tape_trampoline.h" /* tape_py_ptr_get */

#include <stdint.h>
#include <string.h>
#include <tapestore/provider.h> /* tape_line_parse, tape_error_set */
#include <tapestore/tapestore.h>

#define BATCH_BYTES (1u << 20) /* message text per batch */
#define BATCH_ALONE (1u << 16) /* a message this long decodes on its own */

typedef struct {
    PyObject_HEAD
    unsigned long long seq;
    long long ts;
    int dir;
    int is_error;
    unsigned int flags;
    PyObject *correlation_id;  /* str, or NULL for none */
    PyObject *line;            /* bytes */
    Py_ssize_t msg_off;        /* >= 0: the message text is line[msg_off:][:msg_len] */
    Py_ssize_t msg_len;
    PyObject *message_text;    /* bytes; made on first use when in the line */
    PyObject *raw;             /* a flagged frame's kept bytes; NULL: message_text */
    PyObject *oversize_length; /* int, or NULL */
    PyObject *oversize_sha256; /* str, or NULL */
    PyObject *message;         /* decoded; NULL until asked for */
    PyObject *batch;           /* its batch_obj until it has its message, or NULL */
    Py_ssize_t index;          /* in the batch */
} frame_obj;

/* The message texts of a batch's frames (spans of bytes objects, usually
 * their lines, so a text is not copied until the decode), and the decoded
 * list. Frames point at their batch, never the other way: no cycles. */
typedef struct {
    PyObject *bytes; /* owned */
    Py_ssize_t off, len;
} batch_text;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n, cap;
    batch_text *text;
    size_t bytes;
    PyObject *decoded; /* NULL: not yet; a list; Py_False: each frame decodes alone */
} batch_obj;

static PyTypeObject frame_type;
static PyTypeObject batch_type;
static PyObject *json_loads;       /* json.loads */

/* ------------------------------------------------------------ making */

static PyObject *bytes_of(const char *p, size_t n)
{
    return PyBytes_FromStringAndSize(p != NULL ? p : "", (Py_ssize_t)n);
}

/* A new Frame with the fields of f (borrowed for the call). */
static frame_obj *frame_new_from(const tape_frame *f)
{
    frame_obj *o = PyObject_GC_New(frame_obj, &frame_type);
    if (o == NULL) {
        return NULL;
    }
    o->seq = (unsigned long long)tape_frame_seq(f);
    o->ts = (long long)tape_frame_ts(f);
    o->dir = tape_frame_direction(f);
    o->is_error = tape_frame_is_error(f) != 0;
    o->flags = tape_frame_flags(f);
    o->correlation_id = o->line = o->message_text = o->raw = NULL;
    o->oversize_length = o->oversize_sha256 = o->message = o->batch = NULL;
    o->msg_off = -1;
    o->msg_len = 0;
    o->index = 0;
    PyObject_GC_Track(o);

    size_t msg_n = 0, line_n = 0;
    const char *msg = tape_frame_message_bytes(f, &msg_n);
    const char *line = tape_frame_line(f, &line_n);
    const char *cid = tape_frame_correlation_id(f);
    if ((o->line = bytes_of(line, line_n)) == NULL) {
        goto fail;
    }
    o->msg_len = (Py_ssize_t)msg_n;
    uintptr_t lp = (uintptr_t)line, mp = (uintptr_t)msg; /* (they may be unrelated) */
    if (line != NULL && msg != NULL && mp >= lp && mp + msg_n <= lp + line_n) {
        o->msg_off = (Py_ssize_t)(mp - lp); /* in the line: copied when asked for */
    } else if ((o->message_text = bytes_of(msg, msg_n)) == NULL) {
        goto fail;
    }
    if (o->flags != 0) {
        size_t raw_n = 0;
        const char *raw = tape_frame_raw(f, &raw_n);
        if (raw == NULL) {
            tape_py_raise(tape_errcode() < 0 ? tape_errcode() : TAPE_ENOMEM);
            goto fail;
        }
        if ((o->raw = bytes_of(raw, raw_n)) == NULL) {
            goto fail;
        }
    }
    if (cid != NULL &&
        (o->correlation_id = PyUnicode_DecodeUTF8(cid, (Py_ssize_t)strlen(cid),
                                                  "surrogateescape")) == NULL) {
        goto fail;
    }
    if (o->flags & TAPE_FRAME_OVERSIZE) {
        uint64_t len = 0;
        const char *sha = NULL;
        if (tape_frame_oversize_info(&len, &sha, f) == TAPE_OK) {
            if ((o->oversize_length = PyLong_FromUnsignedLongLong(len)) == NULL ||
                (sha != NULL && (o->oversize_sha256 = PyUnicode_FromString(sha)) == NULL)) {
                goto fail;
            }
        }
    }
    return o;
fail:
    Py_DECREF(o);
    return NULL;
}

/* The message text as bytes (made and kept on first use). */
static PyObject *frame_text(frame_obj *o)
{
    if (o->message_text == NULL) {
        o->message_text = PyBytes_FromStringAndSize(PyBytes_AS_STRING(o->line) + o->msg_off,
                                                    o->msg_len);
    }
    return o->message_text;
}

/* Frames are made in batches: *cur (NULL at first) collects the message
 * texts of the plain ones so that their messages decode in one call. */
static int batch_add(batch_obj **cur, frame_obj *o)
{
    if (o->flags != 0 || (size_t)o->msg_len >= BATCH_ALONE) {
        return 0; /* flagged messages are JSON strings of any bytes; big ones alone */
    }
    batch_obj *k = *cur;
    if (k != NULL && k->bytes + (size_t)o->msg_len > BATCH_BYTES) {
        Py_CLEAR(*cur);
        k = NULL;
    }
    if (k == NULL) {
        if ((k = PyObject_GC_New(batch_obj, &batch_type)) == NULL) {
            return -1;
        }
        k->n = k->cap = 0;
        k->text = NULL;
        k->bytes = 0;
        k->decoded = NULL;
        PyObject_GC_Track(k);
        *cur = k;
    }
    if (k->n == k->cap) {
        Py_ssize_t cap = k->cap ? k->cap * 2 : 64;
        batch_text *text = PyMem_Realloc(k->text, (size_t)cap * sizeof *text);
        if (text == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        k->text = text;
        k->cap = cap;
    }
    batch_text *t = &k->text[k->n];
    t->bytes = o->msg_off >= 0 ? o->line : o->message_text;
    Py_INCREF(t->bytes);
    t->off = o->msg_off >= 0 ? o->msg_off : 0;
    t->len = o->msg_len;
    o->index = k->n++;
    k->bytes += (size_t)o->msg_len + 1;
    Py_INCREF(k);
    o->batch = (PyObject *)k;
    return 0;
}

/* Append a Frame of f to list, in *batch. */
static int append_frame(PyObject *list, batch_obj **batch, const tape_frame *f)
{
    frame_obj *o = frame_new_from(f);
    if (o == NULL) {
        return -1;
    }
    int rc = batch_add(batch, o) < 0 ? -1 : PyList_Append(list, (PyObject *)o);
    Py_DECREF(o);
    return rc;
}

PyObject *tape_py_frames_of(PyObject *tape_obj, long start, long stop)
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
    PyObject *list = PyList_New(0);
    batch_obj *batch = NULL;
    for (long i = start; list != NULL && i < stop; i++) {
        if (append_frame(list, &batch, tape_frame_at(t, (size_t)i)) < 0) {
            Py_CLEAR(list);
        }
    }
    Py_XDECREF(batch);
    return list;
}

PyObject *tape_py_iter_frames(PyObject *iter_obj, long max)
{
    void *p = NULL;
    if (tape_py_ptr_get(iter_obj, "tape_frame_iter *", &p) < 0) {
        return NULL;
    }
    tape_frame_iter *it = p;
    PyObject *list = PyList_New(0);
    batch_obj *batch = NULL;
    for (long i = 0; list != NULL && i < max; i++) {
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
            Py_CLEAR(list);
            tape_py_raise(rc);
        } else if (append_frame(list, &batch, f) < 0) {
            Py_CLEAR(list);
        }
    }
    Py_XDECREF(batch);
    return list;
}

/* A Frame read from a frame line (bytes), as a tape's reader reads it. */
static PyObject *frame_from_line(PyObject *line)
{
    tape_frame *f = NULL;
    int type = 0, rc;
    const char *text = PyBytes_AS_STRING(line);
    size_t len = (size_t)PyBytes_GET_SIZE(line);
    Py_BEGIN_ALLOW_THREADS /* the bytes are immutable and held by the caller */
    rc = tape_line_parse(&type, &f, text, len);
    Py_END_ALLOW_THREADS
    if (rc == TAPE_OK && type != TAPE_LINE_FRAME) {
        rc = tape_error_set(TAPE_EINVAL, "Frame(line): not a frame line");
    }
    if (rc != TAPE_OK) {
        tape_frame_free(f);
        tape_py_raise(rc);
        return NULL;
    }
    PyObject *o = (PyObject *)frame_new_from(f);
    tape_frame_free(f);
    return o;
}

/* Frame(frame): a Frame of a tapestore.capi tape_frame proxy (a provider's
 * recording.append gets one so); Frame(line): of a frame's JSONL line
 * (bytes), which is how a Frame pickles and copies. */
static PyObject *frame_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    PyObject *arg;
    void *p = NULL;
    if ((kwds != NULL && PyDict_GET_SIZE(kwds) != 0) ||
        !PyArg_ParseTuple(args, "O:Frame", &arg)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Frame() takes no keyword arguments");
        }
        return NULL;
    }
    if (PyBytes_Check(arg)) {
        return frame_from_line(arg);
    }
    if (tape_py_ptr_get(arg, "tape_frame *", &p) < 0) {
        return NULL;
    }
    return (PyObject *)frame_new_from(p);
}

static PyObject *frame_reduce(frame_obj *o, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(O(O))", (PyObject *)Py_TYPE(o), o->line);
}

static PyMethodDef frame_methods[] = {
    { "__reduce__", (PyCFunction)frame_reduce, METH_NOARGS,
      "Pickle and copy support: a Frame is its line." },
    { NULL, NULL, 0, NULL },
};

/* ------------------------------------------------------------ message */

/* Decode the batch's messages in one json.loads: 0, or -1 if that failed
 * for a reason one frame's own decode would also give (then each frame
 * decodes alone), or -2 with an exception that is not about the text. */
static int batch_decode(batch_obj *k)
{
    if (k->decoded != NULL) {
        return PyList_Check(k->decoded) ? 0 : -1;
    }
    Py_ssize_t total = 2 + (k->n > 0 ? k->n - 1 : 0);
    for (Py_ssize_t i = 0; i < k->n; i++) {
        total += k->text[i].len;
    }
    PyObject *joined = PyBytes_FromStringAndSize(NULL, total);
    if (joined == NULL) {
        return -2;
    }
    char *w = PyBytes_AS_STRING(joined);
    *w++ = '[';
    for (Py_ssize_t i = 0; i < k->n; i++) {
        if (i > 0) {
            *w++ = ',';
        }
        memcpy(w, PyBytes_AS_STRING(k->text[i].bytes) + k->text[i].off, (size_t)k->text[i].len);
        w += k->text[i].len;
    }
    *w = ']';
    PyObject *res = PyObject_CallOneArg(json_loads, joined);
    Py_DECREF(joined);
    if (res == NULL) {
        /* A bad text (ValueError) or one nested too deep with the list's
         * extra level (RecursionError): each frame decodes alone. */
        if (!PyErr_ExceptionMatches(PyExc_Exception) || PyErr_ExceptionMatches(PyExc_MemoryError)) {
            return -2;
        }
        PyErr_Clear();
    } else if (!PyList_Check(res) || PyList_GET_SIZE(res) != k->n) {
        Py_CLEAR(res);
    }
    if (res == NULL) {
        Py_INCREF(Py_False);
        res = Py_False;
    }
    k->decoded = res;
    return res == Py_False ? -1 : 0;
}

static PyObject *frame_decode_alone(frame_obj *o)
{
    PyObject *bytes = frame_text(o);
    if (bytes == NULL) {
        return NULL;
    }
    if (o->flags & TAPE_FRAME_INVALID_JSON) {
        /* surrogateescape: an invalid_json frame's string may hold any byte */
        PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes),
                                              "surrogateescape");
        if (text == NULL) {
            return NULL;
        }
        PyObject *v = PyObject_CallOneArg(json_loads, text);
        Py_DECREF(text);
        return v;
    }
    return PyObject_CallOneArg(json_loads, bytes); /* UTF-8 JSON: bytes as they are */
}

static PyObject *frame_get_message(frame_obj *o, void *closure)
{
    (void)closure;
    if (o->message == NULL) {
        if (o->batch != NULL) {
            batch_obj *k = (batch_obj *)o->batch;
            int rc = batch_decode(k);
            if (rc == -2) {
                return NULL;
            }
            if (rc == 0) {
                o->message = PyList_GET_ITEM(k->decoded, o->index);
                Py_INCREF(o->message);
            }
            Py_CLEAR(o->batch);
        }
        if (o->message == NULL && (o->message = frame_decode_alone(o)) == NULL) {
            return NULL;
        }
    }
    Py_INCREF(o->message);
    return o->message;
}

/* ------------------------------------------------------------ the type */

static PyObject *obj_or_none(PyObject *v)
{
    v = v != NULL ? v : Py_None;
    Py_INCREF(v);
    return v;
}

static PyObject *frame_get_seq(frame_obj *o, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(o->seq);
}

static PyObject *frame_get_ts(frame_obj *o, void *c)
{
    (void)c;
    return PyLong_FromLongLong(o->ts);
}

static PyObject *frame_get_direction(frame_obj *o, void *c)
{
    (void)c;
    PyObject *name = tape_py_dir_name(o->dir);
    Py_INCREF(name);
    return name;
}

static PyObject *frame_get_is_error(frame_obj *o, void *c)
{
    (void)c;
    return PyBool_FromLong(o->is_error);
}

static PyObject *frame_get_invalid_json(frame_obj *o, void *c)
{
    (void)c;
    return PyBool_FromLong((o->flags & TAPE_FRAME_INVALID_JSON) != 0);
}

static PyObject *frame_get_oversize(frame_obj *o, void *c)
{
    (void)c;
    return PyBool_FromLong((o->flags & TAPE_FRAME_OVERSIZE) != 0);
}

#define OBJ_GETTER(field)                                      \
    static PyObject *frame_get_##field(frame_obj *o, void *c)  \
    {                                                          \
        (void)c;                                               \
        return obj_or_none(o->field);                          \
    }
OBJ_GETTER(correlation_id)
OBJ_GETTER(line)
OBJ_GETTER(oversize_length)
OBJ_GETTER(oversize_sha256)

static PyObject *frame_get_message_text(frame_obj *o, void *c)
{
    (void)c;
    PyObject *t = frame_text(o);
    Py_XINCREF(t);
    return t;
}

static PyObject *frame_get_raw(frame_obj *o, void *c)
{
    return o->raw != NULL ? obj_or_none(o->raw) : frame_get_message_text(o, c);
}

static PyGetSetDef frame_getset[] = {
    { "seq", (getter)frame_get_seq, NULL, "The frame's sequence number (int).", NULL },
    { "ts", (getter)frame_get_ts, NULL, "Milliseconds since the tape's created_at (int).", NULL },
    { "direction", (getter)frame_get_direction, NULL,
      "\"client_to_server\" or \"server_to_client\".", NULL },
    { "correlation_id", (getter)frame_get_correlation_id, NULL,
      "The correlation id (str), or None.", NULL },
    { "is_error", (getter)frame_get_is_error, NULL,
      "True for a JSON-RPC error response (or a frame flagged is_error).", NULL },
    { "invalid_json", (getter)frame_get_invalid_json, NULL,
      "True if the message was recorded as bytes that are not JSON.", NULL },
    { "oversize", (getter)frame_get_oversize, NULL,
      "True if only a prefix, the length and the SHA-256 were kept.", NULL },
    { "oversize_length", (getter)frame_get_oversize_length, NULL,
      "An oversize frame's whole length in bytes, else None.", NULL },
    { "oversize_sha256", (getter)frame_get_oversize_sha256, NULL,
      "An oversize frame's SHA-256 (64 hex digits), else None.", NULL },
    { "raw", (getter)frame_get_raw, NULL,
      "The exact bytes the frame keeps (the message's JSON text; an invalid_json or "
      "oversize frame's bytes).", NULL },
    { "message_text", (getter)frame_get_message_text, NULL,
      "The message's JSON text as stored (bytes).", NULL },
    { "line", (getter)frame_get_line, NULL, "The frame's whole JSON Lines line (bytes).", NULL },
    { "message", (getter)frame_get_message, NULL,
      "The message decoded with json on first use: a dict for a JSON-RPC message; a str "
      "for an invalid_json or oversize frame, whose message is a JSON string (bytes that "
      "are not UTF-8 come back as surrogate escapes). Big integers and lone surrogates "
      "survive.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyObject *frame_repr(frame_obj *o)
{
    PyObject *d = frame_get_direction(o, NULL);
    PyObject *r = PyUnicode_FromFormat("<Frame seq=%llu %U %zd bytes>", o->seq, d,
                                       o->raw != NULL ? PyBytes_GET_SIZE(o->raw) : o->msg_len);
    Py_DECREF(d);
    return r;
}

static int frame_traverse(frame_obj *o, visitproc visit, void *arg)
{
    Py_VISIT(o->message);
    Py_VISIT(o->batch);
    return 0;
}

static int frame_clear(frame_obj *o)
{
    Py_CLEAR(o->message);
    Py_CLEAR(o->batch);
    return 0;
}

static void frame_dealloc(frame_obj *o)
{
    PyObject_GC_UnTrack(o);
    frame_clear(o);
    Py_XDECREF(o->correlation_id);
    Py_XDECREF(o->line);
    Py_XDECREF(o->message_text);
    Py_XDECREF(o->raw);
    Py_XDECREF(o->oversize_length);
    Py_XDECREF(o->oversize_sha256);
    PyObject_GC_Del(o);
}

PyDoc_STRVAR(frame_doc,
             "Frame(frame_or_line)\n--\n\n"
             "One recorded message, copied out of the core (valid after its tape or "
             "iterator is gone). Tape.frames(), Store.frames() and iteration make them; "
             "Frame(frame) copies a tapestore.capi tape_frame, Frame(line) reads a frame's "
             "JSONL line (bytes; how a Frame pickles and copies). ``message`` is decoded from "
             "``message_text`` with json on first use, together with the other frames "
             "read in the same batch.");

static PyTypeObject frame_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tapestore.Frame",
    .tp_basicsize = sizeof(frame_obj),
    .tp_dealloc = (destructor)frame_dealloc,
    .tp_repr = (reprfunc)frame_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = frame_doc,
    .tp_traverse = (traverseproc)frame_traverse,
    .tp_clear = (inquiry)frame_clear,
    .tp_getset = frame_getset,
    .tp_methods = frame_methods,
    .tp_new = frame_tp_new,
};

static int batch_traverse(batch_obj *k, visitproc visit, void *arg)
{
    Py_VISIT(k->decoded);
    return 0;
}

static int batch_clear(batch_obj *k)
{
    Py_CLEAR(k->decoded);
    return 0;
}

static void batch_dealloc(batch_obj *k)
{
    PyObject_GC_UnTrack(k);
    batch_clear(k);
    for (Py_ssize_t i = 0; i < k->n; i++) {
        Py_DECREF(k->text[i].bytes);
    }
    PyMem_Free(k->text);
    PyObject_GC_Del(k);
}

static PyTypeObject batch_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tapestore._FrameBatch",
    .tp_basicsize = sizeof(batch_obj),
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The frames read in one call, whose messages decode together (internal).",
    .tp_traverse = (traverseproc)batch_traverse,
    .tp_clear = (inquiry)batch_clear,
};

PyObject *tape_py_frame_type(void)
{
    if (json_loads == NULL) {
        PyObject *json = PyImport_ImportModule("json");
        if (json == NULL) {
            return NULL;
        }
        json_loads = PyObject_GetAttrString(json, "loads");
        Py_DECREF(json);
        if (json_loads == NULL) {
            return NULL;
        }
        if (tape_py_dir_names_init() < 0) {
            return NULL;
        }
        if (PyType_Ready(&frame_type) < 0 || PyType_Ready(&batch_type) < 0) {
            return NULL;
        }
    }
    Py_INCREF(&frame_type);
    return (PyObject *)&frame_type;
}
