"""The Python host API: stores, tapes, frames, queries, recording, errors."""
import datetime as dt
import json
import os
import subprocess
import sys

import pytest

import tapestore
from conftest import make_tape

UTC = dt.timezone.utc


# ---------------------------------------------------------------- open

def test_open_forms(tmp_path, monkeypatch):
    with tapestore.open("filesystem", path=str(tmp_path / "a")) as s:
        assert s.provider == "filesystem"
        s.save(make_tape())
    assert (tmp_path / "a").is_dir()
    with tapestore.open(f"sqlite:{tmp_path / 'b.db'}", eager=True) as s:
        assert s.provider == "sqlite"
    assert (tmp_path / "b.db").exists()
    monkeypatch.setenv("TAPESTORE_STORE", "memory:")
    with tapestore.open() as s:
        assert s.provider == "memory"
    monkeypatch.delenv("TAPESTORE_STORE")
    monkeypatch.chdir(tmp_path)
    with tapestore.open() as s:
        assert s.provider == "filesystem"
        s.save(make_tape(id="env-default"))
    assert (tmp_path / "tapes" / "env-default.jsonl").exists()


def test_open_errors(tmp_path):
    with pytest.raises(tapestore.NotFound):
        tapestore.open("no-such-provider")
    with pytest.raises(tapestore.ConfigError, match="bogus"):
        tapestore.open("memory", bogus=1)
    with pytest.raises(tapestore.InvalidArgument):
        tapestore.open("memory:", path="x")
    with pytest.raises(tapestore.InvalidArgument):
        tapestore.open(None, path="x")


def test_store_context_manager_closes():
    with tapestore.open("memory:") as s:
        assert not s.closed
    assert s.closed
    s.close()  # twice: no-op
    assert "closed" in repr(s)


# ---------------------------------------------------------------- store ops

def test_save_load_delete_exists(store):
    t = make_tape(name="one", tags=["prod", "a"], n=4)
    store.save(t)
    assert store.exists(t.id) and t.id in store
    assert "missing" not in store and 42 not in store
    got = store.load(t.id)
    assert got.id == t.id and got.name == "one" and got.tags == ["prod", "a"]
    assert [f.seq for f in got.frames()] == [0, 1, 2, 3]
    assert got.to_jsonl() == t.to_jsonl()
    assert len(store) == 1
    st = store.stats()
    assert isinstance(st, tapestore.StoreStats) and st.tape_count == 1 and st.frame_count == 4
    assert st.total_bytes > 0
    store.delete(t.id)
    assert not store.exists(t.id)
    with pytest.raises(tapestore.NotFound):
        store.delete(t.id)
    with pytest.raises(KeyError):
        store.load(t.id)
    with pytest.raises(tapestore.InvalidArgument):
        store.load("../etc/passwd")


def test_capabilities(store):
    avail = store.capabilities()
    native = store.capabilities(native=True)
    assert isinstance(avail, frozenset) and native <= avail | {"thread_safe", "persistent", "writer_retry"}
    assert {"exists", "stats", "writer", "read_frames"} <= avail
    assert set(tapestore.CAPABILITIES) >= avail | native
    if store.provider != "memory":
        assert "persistent" in avail


def test_control_unsupported(mem):
    with pytest.raises(tapestore.Unsupported):
        mem.control("no-such-op", {"x": 1})


# ---------------------------------------------------------------- tapes

def test_tape_metadata():
    t = tapestore.Tape(name="n", tags=["a", "b", "a"], description="d", session_id="s",
                       protocol_version="2025-06-18")
    assert len(t.id) == 36 and t.id[14] == "4"  # UUID v4
    assert (t.name, t.description, t.session_id, t.protocol_version) == ("n", "d", "s", "2025-06-18")
    assert t.tags == ["a", "b"] and t.has_tag("a")
    t.tags = ["c", "a"]
    assert t.tags == ["a", "c"]
    t.remove_tag("a")
    with pytest.raises(tapestore.NotFound):
        t.remove_tag("a")
    assert t.status == tapestore.RECORDING
    t.status = tapestore.FINALIZED
    assert t.status == "finalized"
    with pytest.raises(tapestore.InvalidArgument):
        t.status = "done"
    assert t.created_at.tzinfo is not None
    when = dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    t.created_at = when
    assert t.created_at == when
    t.created_at = 1000
    assert t.created_at == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    with pytest.raises(tapestore.InvalidArgument, match="naive"):
        t.created_at = dt.datetime(2025, 1, 1)
    assert t.updated_at is None and t.finalized_at is None
    t.updated_at = when
    t.finalized_at = when
    assert t.updated_at == when and t.finalized_at == when
    t.updated_at = None
    assert t.updated_at is None
    t.transport = {"type": "stdio"}
    t.environment = {"host": "h"}
    assert t.transport == {"type": "stdio"} and t.environment == {"host": "h"}
    t.name = None
    assert t.name is None
    assert tapestore.Tape(id="given-id").id == "given-id"
    with pytest.raises(tapestore.InvalidArgument):
        tapestore.Tape(id="bad/id")
    c = t.copy()
    assert c.id == t.id and c is not t
    assert json.loads(t.to_meta_json())["tape_id"] == t.id


def test_append_and_frames():
    t = tapestore.Tape()
    big = 2**64 + 1
    s0 = t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "m", "params": {"n": big}},
                  correlation_id="c1", ts_ms=5)
    s1 = t.append("server_to_client", '{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}')
    s2 = t.append("server_to_client", b'{"jsonrpc":"2.0","method":"note"}')
    assert (s0, s1, s2) == (0, 1, 2) and len(t) == 3
    f0, f1, f2 = list(t)
    assert f0.message["params"]["n"] == big and f0.ts == 5 and f0.correlation_id == "c1"
    assert f0.direction == tapestore.CLIENT_TO_SERVER and not f0.is_error
    assert f1.is_error and f1.direction == "server_to_client"
    assert f2.raw == b'{"jsonrpc":"2.0","method":"note"}'
    assert b'"seq":2' in f2.line
    assert [f.seq for f in t.frames(1, 2)] == [1]
    assert t.stats.error_count == 1 and t.stats.frame_count == 3
    with pytest.raises(tapestore.InvalidArgument):
        t.append("sideways", {})
    with pytest.raises(tapestore.InvalidArgument):
        t.append(tapestore.CLIENT_TO_SERVER, "{not json")
    with pytest.raises(tapestore.InvalidArgument):
        t.append(tapestore.CLIENT_TO_SERVER, "")
    assert len(t) == 3  # a refused frame loses nothing and adds nothing


def test_correlations():
    t = make_tape(n=2)
    t.add_correlation("1", 0, 1, 12, "ok")
    t.add_correlation("2", 0, 1)
    assert t.correlations == [tapestore.Correlation("1", 0, 1, 12, "ok"),
                              tapestore.Correlation("2", 0, 1, 0, None)]
    with pytest.raises(tapestore.InvalidArgument, match="id"):
        t.add_correlation(None, 0, 1)
    assert t.stats.correlation_count == 2


def test_invalid_json_and_oversize_frames(mem):
    t = tapestore.Tape()
    bad = b'{"jsonrpc": \xff\xfe broken'
    t.append(tapestore.CLIENT_TO_SERVER, bad, invalid_json=True)
    huge = b'{"jsonrpc":"2.0","id":1,"result":"' + b"x" * 5000 + b'"}'
    t.append(tapestore.SERVER_TO_CLIENT, huge, oversize=True, prefix_bytes=100)
    mem.save(t)
    f0, f1 = list(mem.frames(t.id))
    assert f0.invalid_json and not f0.oversize and f0.raw == bad and not f0.is_error
    assert f0.message == bad.decode("utf-8", "surrogateescape")
    assert f1.oversize and not f1.invalid_json and f1.raw == huge[:100]
    assert f1.oversize_length == len(huge)
    import hashlib
    assert f1.oversize_sha256 == hashlib.sha256(huge).hexdigest()
    assert f0.oversize_length is None


def test_jsonl_round_trip_bytes_invalid_utf8_and_lone_surrogates():
    t = tapestore.Tape(name="rt")
    t.append(tapestore.CLIENT_TO_SERVER, b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"\\ud800 lone"}}')
    t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 2, "method": "m", "params": {"s": "\udc00"}})
    t.append(tapestore.SERVER_TO_CLIENT, b"\x80\xff not utf-8", invalid_json=True)
    data = t.to_jsonl()
    assert isinstance(data, bytes)
    back = tapestore.Tape.from_jsonl(data)
    assert back.to_jsonl() == data
    f = list(back)
    assert f[0].message["params"]["s"] == "\ud800 lone"
    assert f[1].message["params"]["s"] == "\udc00"
    assert f[2].raw == b"\x80\xff not utf-8" and f[2].invalid_json
    # str in: surrogateescape, so bytes decoded that way come back byte for byte.
    text = data.decode("utf-8", "surrogateescape")
    assert tapestore.Tape.from_jsonl(text).to_jsonl() == data
    meta = t.to_meta_json()
    withmeta = tapestore.Tape.from_jsonl(data, meta)
    assert withmeta.name == "rt" and withmeta.to_jsonl() == data
    with pytest.raises(tapestore.CorruptError):
        tapestore.Tape.from_jsonl(b'{"type":"init"' + b"\n" + data)
    with pytest.raises(tapestore.InvalidArgument):
        tapestore.Tape.from_jsonl(12)


# ---------------------------------------------------------------- frames from a store

def test_store_frames_ranges(store):
    t = make_tape(n=10)
    store.save(t)
    assert [f.seq for f in store.frames(t.id)] == list(range(10))
    assert [f.seq for f in store.frames(t.id, start=3, stop=6)] == [3, 4, 5]
    assert [f.seq for f in store.frames(t.id, start=8, stop=tapestore.SEQ_END)] == [8, 9]
    assert [f.seq for f in store.frames(t.id, start=5, stop=5)] == []
    with pytest.raises(tapestore.NotFound):
        store.frames("nope")
    with pytest.raises(tapestore.InvalidArgument):
        store.frames(t.id, start=-1)
    it = store.frames(t.id)
    next(it)
    it.close()
    assert list(it) == []
    with store.frames(t.id) as it2:
        assert next(it2).seq == 0


def test_frame_type():
    t = make_tape(n=2)
    f = next(iter(t))
    assert isinstance(f, tapestore.Frame) and type(f) is tapestore.Frame
    assert repr(f) == f"<Frame seq=0 client_to_server {len(f.raw)} bytes>"
    assert f.raw == f.message_text and f.raw in f.line
    with pytest.raises(AttributeError):
        f.seq = 5  # a copy of what was recorded: read-only
    assert "json" in tapestore.Frame.message.__doc__
    # Frame(f) copies a raw capi frame (what a provider's recording.append gets).
    g = tapestore.Frame(tapestore.capi.tape_frame_at(t._handle(), 1))
    assert (g.seq, g.line) == (1, list(t)[1].line)
    with pytest.raises(TypeError):
        tapestore.Frame(12)
    # A Frame is its line: Frame(line) reads one, and so it pickles and copies.
    import copy
    import pickle
    t.append(tapestore.SERVER_TO_CLIENT, b"\xff raw", invalid_json=True, correlation_id="c9")
    for orig in t:
        for back in (pickle.loads(pickle.dumps(orig)), copy.copy(orig), copy.deepcopy(orig),
                     tapestore.Frame(orig.line)):
            assert back is not orig
            assert [getattr(back, a) for a in ("seq", "ts", "direction", "correlation_id",
                                               "is_error", "invalid_json", "raw", "line")] == \
                [getattr(orig, a) for a in ("seq", "ts", "direction", "correlation_id",
                                            "is_error", "invalid_json", "raw", "line")]
            assert back.message == orig.message
    with pytest.raises(tapestore.CorruptError):
        tapestore.Frame(b"{not json")
    with pytest.raises(tapestore.InvalidArgument, match="not a frame line"):
        tapestore.Frame(b'{"type":"checkpoint","frames":0}')


def test_frame_messages_decode_in_batches_bad_one_alone():
    # The frames read in one call decode their messages with one json.loads;
    # a message json refuses (here bytes that are not UTF-8, which the core
    # keeps) fails for its own frame only, as a decode of its own would.
    t = tapestore.Tape(name="batch")
    for i in range(5):
        t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": i, "method": "m",
                                              "params": {"s": f"MARK{i}", "n": 2**70 + i}})
    data = t.to_jsonl().replace(b"MARK2", b"\xff\xfe")
    frames = list(tapestore.Tape.from_jsonl(data))
    assert frames[0].message["params"] == {"s": "MARK0", "n": 2**70}
    assert frames[0].message is frames[0].message  # decoded once
    assert frames[1].message is not frames[3].message
    with pytest.raises(ValueError):  # UnicodeDecodeError, as json.loads(bytes) gives
        frames[2].message
    assert [f.message["id"] for f in frames if f.seq != 2] == [0, 1, 3, 4]
    assert frames[2].raw == b'{"jsonrpc":"2.0","id":2,"method":"m","params":{"s":"\xff\xfe","n":' \
        + str(2**70 + 2).encode() + b'}}'


def test_frames_hold_no_memory_after_use():
    import gc
    import tracemalloc
    t = make_tape(n=300)
    tracemalloc.start()
    try:
        def walk():
            for f in t.frames():
                f.message, f.raw, f.line
        for _ in range(20):
            walk()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            walk()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes more after 200 walks of 300 frames"


def test_chained_call():
    s = tapestore.open("memory:")
    t = make_tape(n=3)
    s.save(t)
    tape = s.load(t.id)
    s.close()
    # A loaded tape belongs to no store: it outlives the store it came from.
    assert [f.seq for f in tape.frames()] == [0, 1, 2]


def test_one_line_chained_call_on_a_fresh_store(tmp_path):
    p = str(tmp_path / "chain")
    with tapestore.open("filesystem", path=p) as s:
        t = make_tape(n=3, id="chain")
        s.save(t)
    assert [f.seq for f in tapestore.open("filesystem", path=p).load("chain").frames()] == [0, 1, 2]
    assert [f.seq for f in tapestore.open("filesystem", path=p).frames("chain")] == [0, 1, 2]


# ---------------------------------------------------------------- queries

def test_query_pages_through_cursors(store):
    ids = set()
    for i in range(25):
        t = make_tape(name=f"n{i:02d}", tags=["even" if i % 2 == 0 else "odd"], n=1)
        store.save(t)
        ids.add(t.id)
    got = [e.id for e in store.query(page_size=4)]
    assert len(got) == 25 and set(got) == ids
    assert [e.name for e in store.query(order_by="name", page_size=3)] == [f"n{i:02d}" for i in range(25)]
    assert [e.name for e in store.query(order_by="name", descending=True, limit=5, page_size=2)] == \
        [f"n{i:02d}" for i in range(24, 19, -1)]
    assert len(list(store.query(tags_any=["even"], page_size=5))) == 13
    assert list(store.query(limit=0)) == []
    assert len(list(store.query(limit=7, page_size=1000))) == 7
    e = next(store.query(order_by="name"))
    assert isinstance(e, tapestore.Entry) and e.tags == ["even"] and e.status == "recording"
    assert e.created_at.tzinfo is not None and e.stats.frame_count == 1
    assert e.meta["tape_id"] == e.id
    # One page and its cursor.
    p1 = store.query_page(order_by="name", limit=10)
    assert len(p1.entries) == 10 and p1.next_cursor
    p2 = store.query_page(order_by="name", limit=10, cursor=p1.next_cursor)
    p3 = store.query_page(order_by="name", limit=10, cursor=p2.next_cursor)
    assert len(p3.entries) == 5 and p3.next_cursor is None
    names = [x.name for x in p1.entries + p2.entries + p3.entries]
    assert names == sorted(names) and len(set(names)) == 25


def test_query_terms(mem):
    old = tapestore.Tape(name="old")
    old.created_at = dt.datetime(2020, 1, 1, tzinfo=UTC)
    mem.save(old)
    new = tapestore.Tape(name="new")
    new.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "needle"})
    mem.save(new)
    assert [e.name for e in mem.query(created_after=dt.datetime(2021, 1, 1, tzinfo=UTC))] == ["new"]
    assert [e.name for e in mem.query(created_before=1_600_000_000_000)] == ["old"]
    assert [e.name for e in mem.query(text="needle")] == ["new"]
    assert [e.name for e in mem.query(name_contains="ol")] == ["old"]
    with pytest.raises(tapestore.QueryError, match="bogus"):
        mem.query(bogus=1)
    with pytest.raises(tapestore.QueryError, match="status"):
        mem.query(status="done")
    with pytest.raises(tapestore.InvalidArgument):
        mem.query(page_size=0)


def test_many_pages_with_default_page_size(mem):
    for i in range(1100):
        mem.save(tapestore.Tape(id=f"t{i:05d}"))
    assert len(mem) == 1100
    assert sum(1 for _ in mem.query()) == 1100
    assert sum(1 for _ in mem.query(limit=1050)) == 1050


# ---------------------------------------------------------------- recording

def test_record_finishes_on_normal_exit(store):
    with store.record(name="rec", tags=["live"]) as w:
        s0 = w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "initialize"})
        s1 = w.append(tapestore.SERVER_TO_CLIENT, {"jsonrpc": "2.0", "id": 1, "result": {}})
        w.add_correlation("1", s0, s1, 3, "ok")
        w.update_meta(name="rec2", tags=["live", "learned"], session_id="sess")
        assert store.exists(w.id)
    t = store.load(w.id)
    assert t.status == "finalized" and t.name == "rec2" and t.tags == ["live", "learned"]
    assert t.session_id == "sess" and len(t) == 2 and t.correlations[0].rtt_ms == 3
    with pytest.raises(tapestore.StateError):
        w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "x"})


def test_record_exception_leaves_recording_with_a_note(store):
    with pytest.raises(RuntimeError) as ei:
        with store.record(name="crash") as w:
            w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "a"})
            raise RuntimeError("boom")
    assert any("recording" in n and w.id in n for n in ei.value.__notes__)
    t = store.load(w.id)
    assert t.status == "recording" and len(t) == 1


def test_record_finish_and_errors(mem):
    w = mem.record(id="fixed")
    with pytest.raises(tapestore.Busy):
        mem.record(id="fixed")
    w.finish()
    with pytest.raises(tapestore.AlreadyExists):
        mem.record(id="fixed")
    with pytest.raises(tapestore.StateError):
        w.finish()
    w.close()
    w.close()
    with pytest.raises(tapestore.StateError, match="recording is closed"):
        w.add_correlation("x", 0, 0)
    with pytest.raises(tapestore.InvalidArgument, match="bogus"):
        mem.record().update_meta(bogus=1)
    hdr = tapestore.Tape(name="h")
    hdr.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "x"})
    with pytest.raises(tapestore.InvalidArgument):
        mem.record(header=hdr)


# ---------------------------------------------------------------- errors

CODES = [
    ("NotFound", -1, KeyError), ("AlreadyExists", -2, None), ("InvalidArgument", -3, ValueError),
    ("ConfigError", -4, None), ("IOError", -5, OSError), ("CorruptError", -6, None),
    ("Unsupported", -7, None), ("OutOfMemory", -8, MemoryError), ("ProviderError", -9, None),
    ("Busy", -10, None), ("VersionError", -11, None), ("QueryError", -12, None),
    ("LimitExceeded", -13, None), ("StateError", -14, None),
]


@pytest.mark.parametrize("name,code,builtin", CODES)
def test_error_classes(name, code, builtin):
    cls = getattr(tapestore, name)
    assert issubclass(cls, tapestore.TapeError) and cls.code == code
    assert tapestore.ERRORS[code] is cls
    assert tapestore.capi.tape_strerror(code).startswith("TAPE_E")
    if builtin is not None:
        assert issubclass(cls, builtin)
    e = cls("the message", code)
    assert str(e) == "the message" and e.code == code and e.message == "the message"


def test_every_core_code_has_a_class():
    codes = {v for k, v in vars(tapestore.capi).items() if k.startswith("TAPE_E") and isinstance(v, int)}
    assert codes == set(tapestore.ERRORS) and len(codes) == 14


def test_core_errors_raise_their_class(mem, tmp_path):
    cases = [
        (lambda: mem.load("nope"), tapestore.NotFound),
        (lambda: tapestore.open("memory", nope=1), tapestore.ConfigError),
        (lambda: mem.load("bad id!"), tapestore.InvalidArgument),
        (lambda: mem.control("nope"), tapestore.Unsupported),
        (lambda: mem.query(limit=-5), tapestore.InvalidArgument),
        (lambda: mem.query(order_by="colour"), tapestore.QueryError),
        (lambda: tapestore.Tape.from_jsonl(b"garbage\n{}\n"), tapestore.CorruptError),
    ]
    for fn, cls in cases:
        with pytest.raises(cls) as ei:
            fn()
        assert ei.value.code == cls.code and ei.value.message


def test_io_error_is_an_oserror(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a dir")
    with pytest.raises(OSError) as ei:
        with tapestore.open("filesystem", path=str(f / "sub")) as s:
            s.save(make_tape())
    assert isinstance(ei.value, tapestore.TapeError)


def test_version():
    assert tapestore.version().count(".") == 2


def test_capi_out_config_is_a_result():
    """tape_config_parse_spec's tape_config **out_config comes back as a
    result (the shared interface's out rule under that name too)."""
    from tapestore import capi
    provider, cfg = capi.tape_config_parse_spec('memory:{"max_tapes": 3}')
    assert provider == "memory"
    assert capi.tape_config_to_json(cfg) == '{"max_tapes":3}'


def test_plain_append_takes_every_message_form_and_refuses_bad_ones():
    """Tape.append is a C method whose common case (no options) is one
    core call; it must mean what the general path means."""
    t = tapestore.Tape(name="forms")
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"n": 2 ** 70}}
    seqs = [t.append(tapestore.CLIENT_TO_SERVER, msg),
            t.append(tapestore.CLIENT_TO_SERVER, json.dumps(msg)),
            t.append(tapestore.CLIENT_TO_SERVER, json.dumps(msg).encode()),
            t.append(tapestore.CLIENT_TO_SERVER, msg, correlation_id="c1")]  # the general path
    assert seqs == [0, 1, 2, 3]
    frames = list(t.frames())
    assert all(f.message == msg for f in frames)
    assert frames[0].raw == frames[3].raw
    assert [f.correlation_id for f in frames] == [None, None, None, "c1"]
    for bad, why in [(b"{\"a\":", "not valid JSON"), (b"", "not valid JSON"), ("01", "leading zero")]:
        with pytest.raises(tapestore.InvalidArgument, match=why):
            t.append(tapestore.CLIENT_TO_SERVER, bad)
    with pytest.raises(tapestore.InvalidArgument, match="direction"):
        t.append("sideways", msg)
    assert len(t) == 4  # nothing half-appended
    # Other message forms, every option at once, and the caller's mistakes.
    assert t.append(tapestore.CLIENT_TO_SERVER, [1, {"a": None}]) == 4
    assert t.append(tapestore.CLIENT_TO_SERVER, bytearray(b'{"b":1}')) == 5
    assert t.append("server_to_client", '{"s":"\udcff"}') == 6  # surrogateescape: byte 0xff
    assert list(t.frames(6))[0].raw == b'{"s":"\xff"}'
    assert t.append(direction="client_to_server", message=msg) == 7
    assert t.append(tapestore.CLIENT_TO_SERVER, msg, ts_ms=9, correlation_id="c", transport=None,
                    flags=None, invalid_json=False, oversize=False, prefix_bytes=0) == 8
    assert list(t.frames(8))[0].ts == 9
    with pytest.raises(TypeError, match=r"Tape\.append\(\) got an unexpected keyword argument 'bogus'"):
        t.append(tapestore.CLIENT_TO_SERVER, msg, bogus=1)
    with pytest.raises(TypeError):
        t.append(tapestore.CLIENT_TO_SERVER)
    with pytest.raises(TypeError, match="not JSON serializable"):
        t.append(tapestore.CLIENT_TO_SERVER, {"x": object()})
    assert len(t) == 9
    assert "invalid_json" in tapestore.Tape.append.__doc__
