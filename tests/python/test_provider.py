"""Providers written in Python: registration, the trampolines, errors,
borrowed objects, threads, lifetime and shutdown (docs/providers-python.md)."""
import ctypes
import gc
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tapestore

sys.path.insert(0, os.path.dirname(__file__))
from providers_dict import DictStore, MinimalStore  # noqa: E402

_names = itertools.count()
MSG = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}
REPLY = {"jsonrpc": "2.0", "id": 1, "result": {}}


def fresh(prefix="pyt"):
    return f"{prefix}{next(_names)}"


@pytest.fixture
def registered():
    """register(cls) -> name; unregisters at the end."""
    names = []

    def reg(cls, **kw):
        name = fresh()
        tapestore.register_provider(name, cls, **kw)
        names.append(name)
        return name
    yield reg
    for n in names:
        try:
            tapestore.unregister_provider(n)
        except tapestore.NotFound:
            pass


def helper():
    lib = ctypes.CDLL(os.environ["TAPE_PY_HELPER"])
    lib.helper_exists_threads.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                          ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.helper_open_and_exists.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.helper_start_forever.argtypes = [ctypes.c_char_p]
    return lib


def tape(name="t", id=None):
    t = tapestore.Tape(name=name, tags=["a"], id=id)
    t.append(tapestore.CLIENT_TO_SERVER, MSG)
    t.append(tapestore.SERVER_TO_CLIENT, REPLY)
    return t


# ------------------------------------------------------------------ the slots

class Logged(DictStore):
    """DictStore that logs the name of every method the core reaches."""
    calls = []

    def __getattribute__(self, name):
        v = object.__getattribute__(self, name)
        if callable(v) and not name.startswith("_") and name not in ("lock", "tapes", "writers"):
            Logged.calls.append(name)
        return v


class LoggedRecording:
    def __init__(self, rec):
        self.rec = rec

    def append(self, frame, header):
        Logged.calls.append("recording.append")
        return self.rec.append(frame, header)

    def correlate(self, header, index):
        Logged.calls.append("recording.correlate")
        return self.rec.correlate(header, index)

    def end(self, header, finalized):
        Logged.calls.append("recording.end")
        return self.rec.end(header, finalized)


class LoggedStore(Logged):
    def begin_recording(self, header):
        return LoggedRecording(DictStore.begin_recording(self, header))


def _record(s, t):
    with s.record(name="r", id="rec1") as w:
        w.append(tapestore.CLIENT_TO_SERVER, MSG)
        w.add_correlation("c1", 0, 0)


SLOTS = [  # (C slot driven through the core, the method it must reach, action)
    ("open", "open", lambda s, t: tapestore.open(s.provider, eager=True).close()),
    ("save", "save", lambda s, t: s.save(tape(id="other"))),
    ("load", "load", lambda s, t: s.load(t.id)),
    ("remove", "delete", lambda s, t: s.delete(t.id)),
    ("exists", "exists", lambda s, t: s.exists(t.id)),
    ("search", "search", lambda s, t: list(s.query(tags_any=["a"]))),
    ("stats", "stats", lambda s, t: s.stats()),
    ("control", "control", lambda s, t: s.control("echo", {"a": 1})),
    ("frames_open", "frames", lambda s, t: list(s.frames(t.id))),
    ("writer_begin", "begin_recording", _record),
    ("writer_append", "recording.append", _record),
    ("writer_correlate", "recording.correlate", _record),
    ("writer_end", "recording.end", _record),
    ("close", "close", lambda s, t: s.close()),
]


@pytest.mark.parametrize("slot,method,action", SLOTS, ids=[s[0] for s in SLOTS])
def test_each_slot_reaches_the_method_of_its_name(registered, slot, method, action):
    name = registered(LoggedStore)
    s = tapestore.open(name, eager=True)
    t = tape()
    s.save(t)
    Logged.calls.clear()
    action(s, t)
    assert method in Logged.calls, (slot, Logged.calls)
    if method not in ("open", "recording.append", "recording.correlate", "recording.end"):
        assert Logged.calls[0] == method, (slot, Logged.calls)
    s.close()


def test_list_slot_reaches_list(registered):
    class NoSearch(Logged):
        search = None  # not callable: the slot stays NULL, the core's search lists
    name = registered(NoSearch)
    with tapestore.open(name) as s:
        s.save(tape())
        Logged.calls.clear()
        assert [e.name for e in s.query(tags_any=["a"])] == ["t"]
        assert Logged.calls[:1] == ["list"]
        assert "search" not in s.capabilities(native=True)


def test_capabilities_follow_the_methods(registered):
    with tapestore.open(registered(DictStore)) as s:
        caps = s.capabilities(native=True)
        for c in ("exists", "search", "stats", "writer", "read_frames", "control", "thread_safe"):
            assert c in caps
    with tapestore.open(registered(MinimalStore)) as s:
        caps = s.capabilities(native=True)
        assert not caps & {"exists", "search", "stats", "writer", "read_frames", "control"}
        s.save(tape(id="m1"))
        assert s.exists("m1") and not s.exists("m2")  # the core's fallbacks
        with s.record(id="m2") as w:
            w.append(tapestore.CLIENT_TO_SERVER, MSG)
        assert len(s.load("m2")) == 1
        assert [f.seq for f in s.frames("m1", start=1)] == [1]


def test_validate_and_config(registered):
    seen = []

    class Cfg(MinimalStore):
        @staticmethod
        def validate(config):
            if "bad" in config:
                raise tapestore.ConfigError("cfg: key 'bad' is not allowed")

        def __init__(self, config):
            super().__init__(config)
            seen.append(config)
    name = registered(Cfg)
    with pytest.raises(tapestore.ConfigError, match="key 'bad'"):
        tapestore.open(name, bad=1)
    assert seen == []  # validate ran first; nothing was created
    tapestore.open(name, x=[1, 2], y={"z": None}).close()
    assert seen == [{"x": [1, 2], "y": {"z": None}}]


# ------------------------------------------------------------------ errors

class Flaky(DictStore):
    fail = True

    def __getattribute__(self, name):
        v = object.__getattribute__(self, name)
        if name in ("save", "load", "delete", "list", "exists", "search", "stats", "control",
                    "begin_recording", "frames") and Flaky.fail:
            def boom(*a, **k):
                raise RuntimeError(f"{name} exploded")
            return boom
        return v


FLAKY_OPS = [
    ("save", lambda s: s.save(tape(id="x2"))),
    ("load", lambda s: s.load("x1")),
    ("delete", lambda s: s.delete("x1")),
    ("exists", lambda s: s.exists("x1")),
    ("search", lambda s: list(s.query())),
    ("stats", lambda s: s.stats()),
    ("control", lambda s: s.control("echo", 1)),
    ("begin_recording", lambda s: s.record(id="x3").close()),
    ("frames", lambda s: list(s.frames("x1"))),
]


@pytest.mark.parametrize("op,action", FLAKY_OPS, ids=[o[0] for o in FLAKY_OPS])
def test_every_op_raising_then_called_again(registered, op, action):
    name = registered(Flaky)
    with tapestore.open(name) as s:
        Flaky.fail = False
        s.save(tape(id="x1"))
        Flaky.fail = True
        for _ in range(3):
            with pytest.raises(tapestore.ProviderError) as ei:
                action(s)
            assert f"RuntimeError: {op} exploded" in str(ei.value)
            assert isinstance(ei.value.__cause__, RuntimeError)  # the original, chained
            assert str(ei.value.__cause__) == f"{op} exploded"
        Flaky.fail = False
        action(s)  # works again: no SystemError, nothing left pending
        Flaky.fail = True


def test_list_raising_mid_iteration(registered):
    class Bad(MinimalStore):
        def list(self, query):
            yield from self.tapes.values()
            raise ValueError("listing broke")
    with tapestore.open(registered(Bad)) as s:
        s.save(tape())
        with pytest.raises(tapestore.ProviderError, match="ValueError: listing broke"):
            list(s.query())
        # called again: the store still answers (the core's exists fallback loads)
        assert s.exists("nope") is False


def test_keyerror_in_load_is_a_provider_error(registered):
    class KE(MinimalStore):
        def load(self, id):
            return {}["missing"]  # a bug, not "not found"
    with tapestore.open(registered(KE)) as s:
        with pytest.raises(tapestore.ProviderError) as ei:
            s.load("t1")
        assert not isinstance(ei.value, tapestore.NotFound)
        assert "KeyError" in str(ei.value)
        assert isinstance(ei.value.__cause__, KeyError)


def test_none_from_load_is_not_found(registered):
    with tapestore.open(registered(MinimalStore)) as s:
        with pytest.raises(tapestore.NotFound, match="t1"):
            s.load("t1")
        assert "t1" not in s  # the core's exists fallback: load said None


def test_our_exceptions_keep_their_codes(registered):
    class Codes(MinimalStore):
        def save(self, tape):
            raise tapestore.Busy("busy right now")

        def delete(self, id):
            raise tapestore.Unsupported("no deleting here")
    with tapestore.open(registered(Codes)) as s:
        with pytest.raises(tapestore.Busy, match="busy right now"):
            s.save(tape())
        with pytest.raises(tapestore.Unsupported, match="no deleting here"):
            s.delete("a")


WRONG = [
    ("save", lambda self, t: 1, lambda s: s.save(tape()), "save returned int, expected None"),
    ("load", lambda self, id: {"id": id}, lambda s: s.load("a"), "load returned dict, expected a Tape"),
    ("exists", lambda self, id: "yes", lambda s: s.exists("a"), "exists returned str, expected bool"),
    ("list", lambda self, q: None, lambda s: list(s.query()), "list returned NoneType"),
    ("list", lambda self, q: [1], lambda s: list(s.query()), "list gave int, expected a Tape"),
    ("search", lambda self, q: [], lambda s: list(s.query()), "search returned list, expected a tuple"),
    ("stats", lambda self: [1, 2, 3], lambda s: s.stats(), "stats returned list, expected a dict"),
    ("stats", lambda self: {"tape_count": -1}, lambda s: s.stats(), "stats returned tape_count=-1"),
    ("control", lambda self, op, i: object(), lambda s: s.control("x"), "not JSON-able"),
    ("begin_recording", lambda self, h: object(), lambda s: s.record(id="w").close(),
     "lacks append, correlate, end"),
    ("frames", lambda self, id, a, b: [1], lambda s: list(s.frames("a")),
     "frames yielded int, expected a Frame"),
]


@pytest.mark.parametrize("method,impl,action,text", WRONG, ids=[w[3][:30] for w in WRONG])
def test_wrong_return_types(registered, method, impl, action, text):
    attrs = {method: impl}
    if method == "list":
        attrs["search"] = None  # so the core's search lists
    cls = type("Wrong", (DictStore,), attrs)
    with tapestore.open(registered(cls)) as s:
        with pytest.raises(tapestore.ProviderError) as ei:
            action(s)
        assert text in str(ei.value)
        assert "Wrong" in str(ei.value) or method in str(ei.value)


def test_a_missing_required_op_is_refused():
    class NoDelete:
        def __init__(self, config):
            pass

        def save(self, t):
            pass

        def load(self, id):
            return None

        def list(self, q):
            return []
    name = fresh()
    with pytest.raises(tapestore.InvalidArgument, match="delete"):
        tapestore.register_provider(name, NoDelete)
    with pytest.raises(tapestore.NotFound):
        tapestore.open(name)


def test_exception_from_a_c_thread_goes_to_unraisablehook(registered):
    class Raise(MinimalStore):
        def exists(self, id):
            raise LookupError("from a C thread")
    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(u)
    try:
        with tapestore.open(registered(Raise)) as s:
            err = ctypes.c_int(0)
            hits = helper().helper_exists_threads(int(s._h.this), b"t1", 2, 3, ctypes.byref(err))
            assert hits == 0 and err.value == 6
    finally:
        sys.unraisablehook = old
    assert len(seen) == 6
    assert all(isinstance(u.exc_value, LookupError) for u in seen)
    assert "exists" in str(seen[0].object)


# ------------------------------------------------------------------ borrowed objects

def test_lent_tapes_are_read_only_and_revoked_after_the_call(registered):
    kept = {}

    class Keeper(MinimalStore):
        def save(self, t):
            kept["save"] = t
            with pytest.raises(tapestore.StateError, match="read-only"):
                t.name = "changed"
            with pytest.raises(tapestore.StateError, match="read-only"):
                t.append(tapestore.CLIENT_TO_SERVER, MSG)
            kept["name_inside"] = t.name
            super().save(t)

        def begin_recording(self, header):
            kept["header"] = header
            return DictStore.begin_recording(self, header) if False else _Rec(kept)
    with tapestore.open(registered(Keeper)) as s:
        t = tape(name="orig")
        s.save(t)
        assert kept["name_inside"] == "orig"
        for what in ("save",):
            with pytest.raises(tapestore.StateError, match="copy"):
                kept[what].name
            with pytest.raises(tapestore.StateError):
                list(kept[what].frames())
            with pytest.raises(tapestore.StateError, match="copy"):
                kept[what].append(tapestore.CLIENT_TO_SERVER, MSG)
            with pytest.raises(tapestore.StateError):
                s.save(kept[what])
        assert s.load(t.id).name == "orig"
        with s.record(id="r1") as w:
            w.append(tapestore.CLIENT_TO_SERVER, MSG)
        for what in ("header", "frame_header"):
            with pytest.raises(tapestore.StateError):
                kept[what].id
        # the frame is a copy: still readable after the call
        assert kept["frame"].message == MSG and kept["frame"].seq == 0


class _Rec:
    def __init__(self, kept):
        self.kept = kept

    def append(self, frame, header):
        self.kept["frame"] = frame
        self.kept["frame_header"] = header

    def correlate(self, header, index):
        pass

    def end(self, header, finalized):
        pass


def test_load_returning_a_kept_lent_tape_is_a_state_error(registered):
    class Bad(MinimalStore):
        def save(self, t):
            self.t = t  # keeps the lent tape, not a copy

        def load(self, id):
            return self.t
    with tapestore.open(registered(Bad)) as s:
        s.save(tape(id="k"))
        with pytest.raises(tapestore.StateError, match="copy"):
            s.load("k")


# ------------------------------------------------------------------ threads

class Counting(MinimalStore):
    """exists counts its calls and notices calls that overlap."""

    def __init__(self, config):
        super().__init__(config)
        self.calls = 0
        self.active = 0
        self.overlapped = False
        self.count_lock = threading.Lock()

    def exists(self, id):
        with self.count_lock:
            self.active += 1
            self.calls += 1
            if self.active > 1:
                self.overlapped = True
        time.sleep(0)  # releases the GIL: another call could come in now
        x = sum(range(50))
        with self.count_lock:
            self.active -= 1
        return id == "t1" and x > 0


@pytest.mark.parametrize("concurrent", [False, True])
def test_8_python_and_8_c_threads_on_one_provider(registered, concurrent):
    cls = type("C", (Counting,), {"concurrent": concurrent})
    name = registered(cls)
    inst = []
    orig_init = cls.__init__

    def init(self, config):
        orig_init(self, config)
        inst.append(self)
    cls.__init__ = init
    s = tapestore.open(name, eager=True)
    lib = helper()
    n_py, iters = 8, 300
    results = []
    errors = ctypes.c_int(-1)
    c_hits = []

    def py_worker():
        results.append(sum(1 for _ in range(iters) if s.exists("t1")))

    def c_worker():
        c_hits.append(lib.helper_exists_threads(int(s._h.this), b"t1", 8, iters, ctypes.byref(errors)))
    threads = [threading.Thread(target=py_worker) for _ in range(n_py)] + [threading.Thread(target=c_worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert results == [iters] * n_py
    assert c_hits == [8 * iters] and errors.value == 0
    b = inst[0]
    assert b.calls == 16 * iters  # nothing lost, nothing duplicated
    if not concurrent:
        assert not b.overlapped  # the per-backend lock serialised them
    s.close()


def test_reentry_into_the_same_store_works(registered):
    holder = {}

    class Reenter(MinimalStore):
        def exists(self, id):
            # a method calling back into its own store (GIL and lock released by the binding)
            return id in [e.id for e in holder["s"].query()]
    with tapestore.open(registered(Reenter)) as s:
        holder["s"] = s
        s.save(tape(id="t1"))
        assert s.exists("t1") and not s.exists("t2")


# ------------------------------------------------------------------ lifetime

ORDERS = list(itertools.permutations(["unregister", "close", "reregister"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_register_open_unregister_close_in_every_order(order):
    name = fresh()
    tapestore.register_provider(name, MinimalStore)
    s = tapestore.open(name)
    s.save(tape(id="t1"))
    state = {"registered": True, "closed": False}
    for step in order:
        if step == "unregister":
            if state["registered"]:
                tapestore.unregister_provider(name)
                state["registered"] = False
            else:
                with pytest.raises(tapestore.NotFound):
                    tapestore.unregister_provider(name)
        elif step == "close":
            s.close()
            state["closed"] = True
        elif step == "reregister":
            if state["registered"]:
                with pytest.raises(tapestore.AlreadyExists):
                    tapestore.register_provider(name, MinimalStore)
            else:
                tapestore.register_provider(name, MinimalStore)
                state["registered"] = True
        if not state["closed"]:
            assert s.exists("t1")  # an open store keeps working
        else:
            with pytest.raises(tapestore.StateError):
                s.exists("t1")
        if state["registered"]:
            with tapestore.open(name) as s2:
                assert not s2.exists("t1")  # a new backend, a new instance
        else:
            with pytest.raises(tapestore.NotFound):
                tapestore.open(name)
    if state["registered"]:
        tapestore.unregister_provider(name)


def test_refcounts_stay_flat():
    class R(MinimalStore):
        pass
    name = fresh()
    gc.collect()
    base = sys.getrefcount(R)
    for _ in range(1000):
        tapestore.register_provider(name, R)
        with pytest.raises(tapestore.AlreadyExists):
            tapestore.register_provider(name, R)  # a refused registration drops its refs
        tapestore.unregister_provider(name)
    gc.collect()
    assert sys.getrefcount(R) == base
    tapestore.register_provider(name, R)
    s = tapestore.open(name)
    inst_refs = None
    t = tape(id="t1")
    s.save(t)
    rc_cls = sys.getrefcount(R)
    for i in range(10000):
        s.exists("t1")
        if i == 10:
            gc.collect()
            inst_refs = sys.getrefcount(t)
    gc.collect()
    assert sys.getrefcount(R) == rc_cls
    assert sys.getrefcount(t) == inst_refs
    tapestore.unregister_provider(name)
    assert sys.getrefcount(R) > base  # the open store still holds the class
    s.close()
    gc.collect()
    assert sys.getrefcount(R) == base


def test_usable_from_c_by_name_in_the_default_registry(registered):
    class Shared(MinimalStore):
        def exists(self, id):
            return id == "known"
    name = registered(Shared)
    lib = helper()
    assert lib.helper_open_and_exists(f"{name}:{{}}".encode(), b"known") == 1
    assert lib.helper_open_and_exists(f"{name}:{{}}".encode(), b"other") == 0
    assert lib.helper_open_and_exists(b"nosuchprov:{}", b"x") == -1  # TAPE_ENOTFOUND


def test_a_registry_of_its_own():
    reg = tapestore.capi.tape_registry_new()
    tapestore.register_provider("own", MinimalStore, registry=reg)
    with pytest.raises(tapestore.NotFound):
        tapestore.open("own")  # not in the default registry
    assert tapestore.capi.tape_registry_find(reg, "own") is not None
    tapestore.unregister_provider("own", registry=reg)


# ------------------------------------------------------------------ shutdown

def test_a_c_thread_calling_while_the_interpreter_exits():
    script = textwrap.dedent(f"""
        import atexit, ctypes, os, sys, time
        lib = ctypes.CDLL(os.environ["TAPE_PY_HELPER"])

        def after_tapestore_shutdown():  # registered first: runs after tapestore's handler
            n = lib.helper_forever_calls()
            t0 = time.time()
            while lib.helper_forever_calls() < n + 100 and time.time() - t0 < 20:
                time.sleep(0.01)
            # the C thread goes on, and is refused instead of entering Python
            print("after", lib.helper_forever_calls() - n, lib.helper_forever_last_rc(), flush=True)
        atexit.register(after_tapestore_shutdown)
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import tapestore
        from providers_dict import MinimalStore
        class Slowish(MinimalStore):
            def exists(self, id):
                return sum(range(100)) > 0
        tapestore.register_provider("pyexit", Slowish)
        lib.helper_start_forever.argtypes = [ctypes.c_char_p]
        assert lib.helper_start_forever(b"pyexit:{{}}") == 0
        t0 = time.time()
        while lib.helper_forever_calls() < 200 and time.time() - t0 < 20:
            time.sleep(0.01)
        assert lib.helper_forever_calls() >= 200
        print("exiting", flush=True)
    """)
    for _ in range(3):
        p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "exiting" in p.stdout
        assert f"after" in p.stdout
        calls, rc = p.stdout.split("after", 1)[1].split()
        assert int(calls) >= 100 and int(rc) == tapestore.capi.TAPE_EPROVIDER
        assert "Fatal" not in p.stderr


def test_the_class_dropped_first_stays_alive_until_unregistered():
    import weakref
    name = fresh()

    def make():
        class Gone(MinimalStore):
            pass
        return Gone
    cls = make()
    ref = weakref.ref(cls)
    tapestore.register_provider(name, cls)
    del cls
    gc.collect()
    assert ref() is not None  # the registration holds it
    with tapestore.open(name) as s:
        s.save(tape(id="g1"))
        tapestore.unregister_provider(name)
        gc.collect()
        assert ref() is not None and s.exists("g1")  # the open store holds it
    gc.collect()
    assert ref() is None  # released with the last store


def test_big_counts_round_trip(registered):
    class Big(MinimalStore):
        def stats(self):
            return {"tape_count": 2**31 + 1, "frame_count": 2**53 + 1, "total_bytes": 2**64 - 1}
    with tapestore.open(registered(Big)) as s:
        st = s.stats()
        assert (st.tape_count, st.frame_count, st.total_bytes) == (2**31 + 1, 2**53 + 1, 2**64 - 1)
        assert len(s) == 2**31 + 1


def test_entered_with_an_exception_pending(registered):
    seen = []

    class P(MinimalStore):
        def exists(self, id):
            seen.append(sys.exc_info()[1])  # nothing pending inside the method
            return id == "known"
    name = registered(P)
    lib = ctypes.PyDLL(os.environ["TAPE_PY_HELPER"])  # keeps the GIL and checks for errors
    lib.helper_exists_with_pending.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    with pytest.raises(ValueError, match="pending before the call") as ei:
        lib.helper_exists_with_pending(f"{name}:{{}}".encode(), b"known")
    assert seen == [None]  # the method ran, with no exception set, and did not fail
    assert not isinstance(ei.value, SystemError)


def test_open_and_close_raising(registered):
    class OC(MinimalStore):
        fail = True

        def open(self):
            if OC.fail:
                raise OSError("disk gone")

        def close(self):
            if OC.fail:
                raise OSError("flush failed")
    s = tapestore.open(registered(OC))
    for _ in range(2):  # a failed open is tried again on the next call
        with pytest.raises(tapestore.ProviderError, match="open: OSError: disk gone") as ei:
            s.exists("a")
        assert isinstance(ei.value.__cause__, OSError)
    OC.fail = False
    assert s.exists("a") is False
    OC.fail = True
    with pytest.raises(tapestore.ProviderError, match="close: OSError: flush failed") as ei:
        s.close()
    assert isinstance(ei.value.__cause__, OSError)
    assert s.closed
