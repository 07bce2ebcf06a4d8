/*
 * plugins.c - the plugin loader shared by the programs in tools/
 * (see plugins.h).
 *
 * Python: one interpreter per process, started on the first .py plugin
 * with signal handlers left alone (the host owns SIGINT). The `tapestore`
 * package is imported from sys.path: PYTHONPATH first, then the site
 * directories, then the directory the package was installed to
 * (TAPE_TOOLS_PYTHON_DIR, fixed at build time). The package's extension
 * module links the same libtapestore.so.0 as the host, so
 * tapestore.register_provider registers into the registry the host opens
 * stores from. Between loads the GIL is released (PyEval_SaveThread):
 * trampolines take it from whichever thread calls a Python provider.
 *
 * Lua: one state per process for every .lua plugin, made on the first.
 * The file runs as a chunk after `require "tapestore"` (the binding's
 * module, found on package.cpath: $LUA_CPATH, Lua's defaults, then the
 * directory it installs to, TAPE_TOOLS_LUA_DIR); its top-level code calls
 * tapestore.register_provider, which registers into the default registry.
 * Between loads the state's lock is handed back (tape_lua_release, looked
 * up in the loaded module): trampolines take it from whichever thread
 * calls a Lua provider. Shutdown takes it again and closes the state,
 * which unregisters its providers and waits for calls in flight.
 */
#ifdef TAPE_TOOLS_HAVE_PYTHON
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif

#ifdef TAPE_TOOLS_HAVE_LUA
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#endif

#include "plugins.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* libfoo.so, or a versioned libfoo.so.1.2 */
static int is_shared_library(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    if (ends_with(base, ".so")) {
        return 1;
    }
    const char *p = strstr(base, ".so.");
    if (p == NULL) {
        return 0;
    }
    for (p += 4; *p != '\0'; p++) {
        if (!(*p == '.' || (*p >= '0' && *p <= '9'))) {
            return 0;
        }
    }
    return 1;
}

const char *tape_tools_plugin_kinds(void)
{
#if defined(TAPE_TOOLS_HAVE_PYTHON) && defined(TAPE_TOOLS_HAVE_LUA)
    return "C shared libraries (.so), Python files (.py) and Lua files (.lua)";
#elif defined(TAPE_TOOLS_HAVE_PYTHON)
    return "C shared libraries (.so) and Python files (.py)";
#elif defined(TAPE_TOOLS_HAVE_LUA)
    return "C shared libraries (.so) and Lua files (.lua)";
#else
    return "C shared libraries (.so)";
#endif
}

static int load_shared(tape_registry *reg, const char *path, char *err, size_t errlen)
{
    /* dlopen searches the library path for a name without a slash; a
     * plugin named on the command line is a file, so make it one. */
    char *dot = NULL;
    if (strchr(path, '/') == NULL) {
        size_t n = strlen(path);
        dot = malloc(n + 3);
        if (dot == NULL) {
            seterr(err, errlen, "plugin %s: out of memory", path);
            return TAPE_ENOMEM;
        }
        memcpy(dot, "./", 2);
        memcpy(dot + 2, path, n + 1);
    }
    int rc = tape_registry_load_plugin(reg, dot != NULL ? dot : path);
    free(dot);
    if (rc != TAPE_OK) {
        seterr(err, errlen, "plugin %s: %s", path, tape_errmsg());
        /* The file exists (checked): a library dlopen refuses, or one
         * without the entry point, is a plugin that fails to load. */
        if (rc == TAPE_ENOTFOUND) {
            rc = TAPE_EPROVIDER;
        }
    }
    return rc;
}

#ifdef TAPE_TOOLS_HAVE_PYTHON

#ifndef TAPE_TOOLS_PYTHON_DIR
#define TAPE_TOOLS_PYTHON_DIR ""
#endif

static int py_started = 0;
static PyThreadState *py_saved = NULL;
static PyObject *py_ns = NULL; /* namespace of the helper functions below */

/* Run a plugin file and describe a failure in one line: the exception's
 * last line (SyntaxError's includes the file and line), plus where in the
 * plugin file it was raised. BaseException: a plugin calling sys.exit()
 * or interrupted must not end or confuse the host. */
static const char py_helpers[] =
    "import os, runpy, traceback\n"
    "def _describe(e, path=None):\n"
    "    last = traceback.format_exception_only(type(e), e)[-1].strip()\n"
    "    if isinstance(e, SyntaxError) and e.filename is not None:\n"
    "        return f'{last} (at {e.filename}:{e.lineno})'\n"
    "    if path is None:\n"
    "        return last\n"
    "    frames = traceback.extract_tb(e.__traceback__)\n"
    "    mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]\n"
    "    f = mine[-1] if mine else (frames[-1] if frames else None)\n"
    "    return last if f is None else f'{last} (at {f.filename}:{f.lineno})'\n"
    "def _import_package():\n"
    "    try:\n"
    "        import tapestore\n"
    "        return None\n"
    "    except BaseException as e:\n"
    "        return _describe(e)\n"
    "def _load(path):\n"
    "    try:\n"
    "        runpy.run_path(path, run_name='__tapestore_plugin__')\n"
    "        return None\n"
    "    except BaseException as e:\n"
    "        return _describe(e, path)\n";

/* The text of what a Python call left: a str result, or the pending
 * exception (a failure of our own helpers). Clears the exception. */
static void py_text(char *buf, size_t len, PyObject *r)
{
    PyObject *s = r != NULL ? PyObject_Str(r) : NULL;
    if (s == NULL) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        s = v != NULL ? PyObject_Str(v) : NULL;
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    const char *c = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(buf, len, "%s", c != NULL ? c : "(no description)");
    PyErr_Clear();
    Py_XDECREF(s);
}

/* Start the interpreter and import tapestore. Holds the GIL on success and
 * on failure (the caller releases it). */
static int py_start(const char *path, char *err, size_t errlen)
{
    if (py_started) {
        PyEval_RestoreThread(py_saved);
        py_saved = NULL;
        if (py_ns == NULL) {
            seterr(err, errlen, "plugin %s: the embedded Python interpreter failed to set up "
                   "for an earlier plugin", path);
            return TAPE_EPROVIDER;
        }
        return TAPE_OK;
    }
    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    cfg.install_signal_handlers = 0; /* SIGINT stays the host's */
    cfg.parse_argv = 0;
    PyStatus st = PyConfig_SetBytesString(&cfg, &cfg.program_name, "tapestore");
    if (!PyStatus_Exception(st)) {
        st = Py_InitializeFromConfig(&cfg);
    }
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(st)) {
        seterr(err, errlen, "plugin %s: cannot start the embedded Python interpreter: %s", path,
               st.err_msg != NULL ? st.err_msg : "unknown error");
        return TAPE_EPROVIDER;
    }
    py_started = 1;
    /* After PYTHONPATH and the site directories: the install directory. */
    if (TAPE_TOOLS_PYTHON_DIR[0] != '\0') {
        PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
        PyObject *dir = PyUnicode_DecodeFSDefault(TAPE_TOOLS_PYTHON_DIR);
        if (sys_path == NULL || dir == NULL || PyList_Append(sys_path, dir) != 0) {
            PyErr_Clear();
        }
        Py_XDECREF(dir);
    }
    PyObject *ns = PyDict_New();
    PyObject *r = NULL;
    if (ns != NULL && PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0) {
        r = PyRun_String(py_helpers, Py_file_input, ns, ns);
    }
    if (r == NULL) {
        char why[512];
        py_text(why, sizeof why, NULL);
        seterr(err, errlen, "plugin %s: cannot set up the embedded Python interpreter: %s", path,
               why);
        Py_XDECREF(ns);
        return TAPE_EPROVIDER;
    }
    Py_DECREF(r);
    PyObject *fn = PyDict_GetItemString(ns, "_import_package"); /* borrowed */
    r = fn != NULL ? PyObject_CallNoArgs(fn) : NULL;
    if (r == NULL || r != Py_None) {
        char why[1024];
        py_text(why, sizeof why, r);
        Py_XDECREF(r);
        seterr(err, errlen,
               "plugin %s: cannot import the Python package tapestore: %s (searched PYTHONPATH, "
               "the site directories, then %s)",
               path, why, TAPE_TOOLS_PYTHON_DIR[0] != '\0' ? TAPE_TOOLS_PYTHON_DIR : "nothing else");
        Py_DECREF(ns);
        return TAPE_EPROVIDER;
    }
    Py_DECREF(r);
    py_ns = ns;
    return TAPE_OK;
}

static int load_python(const char *path, char *err, size_t errlen)
{
    int rc = py_start(path, err, errlen);
    if (rc == TAPE_OK) {
        PyObject *fn = PyDict_GetItemString(py_ns, "_load"); /* borrowed */
        PyObject *arg = PyUnicode_DecodeFSDefault(path);
        PyObject *r = fn != NULL && arg != NULL ? PyObject_CallOneArg(fn, arg) : NULL;
        Py_XDECREF(arg);
        if (r == NULL || r != Py_None) {
            char why[2048];
            py_text(why, sizeof why, r);
            seterr(err, errlen, "plugin %s: failed to load: %s", path, why);
            rc = TAPE_EPROVIDER;
        }
        Py_XDECREF(r);
    }
    py_saved = PyEval_SaveThread(); /* C threads may now enter the trampolines */
    return rc;
}

static void python_shutdown(void)
{
    if (!py_started) {
        return;
    }
    PyEval_RestoreThread(py_saved);
    py_saved = NULL;
    Py_CLEAR(py_ns);
    /* Runs the package's atexit hooks: its providers are unregistered and
     * calls still in flight are waited for before the interpreter goes. */
    Py_FinalizeEx();
    py_started = 0;
}

#else /* !TAPE_TOOLS_HAVE_PYTHON */

static void python_shutdown(void)
{
}

#endif

#ifdef TAPE_TOOLS_HAVE_LUA
static lua_State *lua_L;          /* the plugins' state, or NULL */
static void *lua_held;            /* its lock record while released */
static void *(*lua_release_fn)(lua_State *);
static void (*lua_acquire_fn)(void *);

int tape_tools_lua_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* In protected mode: the libraries, and the binding's install directory
 * after whatever package.cpath says ($LUA_CPATH, then Lua's defaults). */
static int lua_setup(lua_State *L)
{
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "cpath");
    lua_pushfstring(L, "%s;%s/?.so", lua_tostring(L, -1), TAPE_TOOLS_LUA_DIR);
    lua_setfield(L, -3, "cpath");
    return 0;
}

lua_State *tape_tools_lua_new(char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        seterr(err, errlen, "cannot create a Lua state (out of memory)");
        return NULL;
    }
    lua_pushcfunction(L, lua_setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        seterr(err, errlen, "cannot set up a Lua state: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

/* In protected mode: the module, and the path of its file (pushed). */
static int lua_boot(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "tapestore");
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "searchpath");
    lua_pushliteral(L, "tapestore");
    lua_getfield(L, -3, "cpath");
    lua_call(L, 2, 1);
    return 1;
}

static int lua_start(const char *path, char *err, size_t errlen)
{
    char why[512];
    lua_State *L = tape_tools_lua_new(why, sizeof why);
    if (L == NULL) {
        seterr(err, errlen, "plugin %s: %s", path, why);
        return TAPE_ENOMEM;
    }
    lua_pushcfunction(L, tape_tools_lua_traceback);
    lua_pushcfunction(L, lua_boot);
    if (lua_pcall(L, 0, 1, 1) != LUA_OK || lua_tostring(L, -1) == NULL) {
        seterr(err, errlen, "plugin %s: cannot load the Lua binding (require \"tapestore\"): %s",
               path, lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "not on package.cpath");
        lua_close(L);
        return TAPE_EUNSUPPORTED;
    }
    /* The module is loaded already (RTLD_NOLOAD): only its two hand-over
     * functions are looked up, which Lua's loader does not expose. */
    void *h = dlopen(lua_tostring(L, -1), RTLD_NOW | RTLD_NOLOAD);
    if (h != NULL) {
        *(void **)&lua_release_fn = dlsym(h, "tape_lua_release");
        *(void **)&lua_acquire_fn = dlsym(h, "tape_lua_acquire");
        dlclose(h);
    }
    if (lua_release_fn == NULL || lua_acquire_fn == NULL) {
        seterr(err, errlen, "plugin %s: the Lua binding %s has no tape_lua_release/acquire", path,
               lua_tostring(L, -1));
        lua_close(L);
        return TAPE_EUNSUPPORTED;
    }
    lua_settop(L, 1); /* the traceback handler stays at index 1 */
    lua_L = L;
    return TAPE_OK;
}

static int load_lua(const char *path, char *err, size_t errlen)
{
    if (lua_L == NULL) {
        int rc = lua_start(path, err, errlen);
        if (rc != TAPE_OK) {
            return rc;
        }
    } else {
        lua_acquire_fn(lua_held);
    }
    lua_State *L = lua_L;
    int rc = TAPE_OK;
    int lrc = luaL_loadfilex(L, path, "t");
    if (lrc == LUA_OK) {
        lrc = lua_pcall(L, 0, 0, 1);
    }
    if (lrc != LUA_OK) {
        seterr(err, errlen, "plugin %s: failed to load: %s", path, lua_tostring(L, -1));
        rc = TAPE_EPROVIDER;
    }
    lua_settop(L, 1);
    lua_held = lua_release_fn(L); /* C threads may now enter the trampolines */
    return rc;
}

static void lua_shutdown(void)
{
    if (lua_L == NULL) {
        return;
    }
    lua_acquire_fn(lua_held);
    lua_close(lua_L); /* unregisters its providers, waits for calls in flight */
    lua_L = NULL;
    lua_held = NULL;
}
#else
static void lua_shutdown(void)
{
}
#endif

void tape_tools_plugins_shutdown(void)
{
    lua_shutdown();
    python_shutdown();
}

int tape_tools_load_plugin(tape_registry *reg, const char *path, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (path == NULL || path[0] == '\0') {
        seterr(err, errlen, "plugin: empty path");
        return TAPE_EINVAL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        seterr(err, errlen, "plugin %s: %s", path, strerror(e));
        return e == ENOENT || e == ENOTDIR ? TAPE_ENOTFOUND : TAPE_EIO;
    }
    if (!S_ISREG(sb.st_mode)) {
        seterr(err, errlen, "plugin %s: not a regular file", path);
        return TAPE_EINVAL;
    }
    if (is_shared_library(path)) {
        return load_shared(reg, path, err, errlen);
    }
    if (ends_with(path, ".py")) {
#ifdef TAPE_TOOLS_HAVE_PYTHON
        return load_python(path, err, errlen);
#else
        seterr(err, errlen,
               "plugin %s: a Python file, but this build has no Python support "
               "(TAPE_BUILD_PYTHON=OFF): it loads only %s", path, tape_tools_plugin_kinds());
        return TAPE_EUNSUPPORTED;
#endif
    }
    if (ends_with(path, ".lua")) {
#ifdef TAPE_TOOLS_HAVE_LUA
        return load_lua(path, err, errlen);
#else
        seterr(err, errlen,
               "plugin %s: a Lua file, but this build has no Lua support "
               "(TAPE_BUILD_LUA=OFF): it loads only %s", path, tape_tools_plugin_kinds());
        return TAPE_EUNSUPPORTED;
#endif
    }
    seterr(err, errlen, "plugin %s: unsupported kind of plugin file (this build loads %s)", path,
           tape_tools_plugin_kinds());
    return TAPE_EUNSUPPORTED;
}

int tape_tools_load_plugins(tape_registry *reg, const char *const *paths, size_t n, char *err,
                            size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        int rc = tape_tools_load_plugin(reg, paths[i], err, errlen);
        if (rc != TAPE_OK) {
            return rc;
        }
    }
    const char *env = getenv(TAPE_TOOLS_PLUGINS_ENV);
    if (env == NULL || env[0] == '\0') {
        return TAPE_OK;
    }
    char *list = strdup(env);
    if (list == NULL) {
        seterr(err, errlen, "%s: out of memory", TAPE_TOOLS_PLUGINS_ENV);
        return TAPE_ENOMEM;
    }
    int rc = TAPE_OK;
    char *save = NULL;
    for (char *p = strtok_r(list, ":", &save); p != NULL && rc == TAPE_OK;
         p = strtok_r(NULL, ":", &save)) {
        rc = tape_tools_load_plugin(reg, p, err, errlen);
        if (rc != TAPE_OK) {
            /* Say where the path came from. */
            size_t used = strlen(err);
            if (err != NULL && used + 1 < errlen) {
                snprintf(err + used, errlen - used, " (from %s)", TAPE_TOOLS_PLUGINS_ENV);
            }
        }
    }
    free(list);
    return rc;
}
