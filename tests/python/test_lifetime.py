"""Closed stores and their children in every order, threads, logging."""
import gc
import itertools
import logging
import threading

import pytest

import tapestore
from conftest import make_tape


def _children(s, tid):
    """One of each child kind, each started."""
    it = s.frames(tid)
    next(it)
    w = s.record(name="open-writer")
    w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "a"})
    q = s.query(page_size=1)
    next(q)
    return {"frames": it, "writer": w, "query": q}


def _use(kind, child):
    if kind == "frames":
        return next(child)
    if kind == "writer":
        return child.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "x"})
    return next(child)


@pytest.mark.parametrize("kind", ["frames", "writer", "query"])
def test_closed_store_invalidates_children(tmp_path, kind):
    p = str(tmp_path / "s")
    s = tapestore.open("filesystem", path=p)
    for i in range(3):
        s.save(make_tape(id=f"t{i}", n=3))
    kids = _children(s, "t0")
    wid = kids["writer"].id
    s.close()
    with pytest.raises(tapestore.StateError, match="closed"):
        _use(kind, kids[kind])
    with pytest.raises(tapestore.StateError):
        s.load("t0")
    with pytest.raises(tapestore.StateError):
        s.query_page()
    # The abandoned writer's tape stays recording with what was appended.
    with tapestore.open("filesystem", path=p) as s2:
        t = s2.load(wid)
        assert t.status == "recording" and len(t) == 1
    del kids
    gc.collect()


@pytest.mark.parametrize("order", list(itertools.permutations(["store", "frames", "writer", "tape"])))
def test_close_and_drop_in_every_order(order):
    s = tapestore.open("memory:")
    s.save(make_tape(id="x", n=4))
    objs = {"store": s, "frames": s.frames("x"), "writer": s.record(id="w"), "tape": s.load("x")}
    for name in order:
        o = objs.pop(name)
        if name == "store":
            o.close()
        elif name in ("frames", "writer"):
            o.close()
        del o
        gc.collect()
        for rest, child in objs.items():  # what is left still works or says closed
            if rest == "tape":
                assert len(child) == 4
            elif rest == "frames":
                try:
                    next(child)
                except (tapestore.StateError, StopIteration):
                    pass
            elif rest == "writer":
                try:
                    child.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "x"})
                except tapestore.StateError:
                    pass


def test_children_dropped_without_close_keep_store_alive():
    s = tapestore.open("memory:")
    s.save(make_tape(id="x", n=4))
    it = s.frames("x")
    del s
    gc.collect()
    assert [f.seq for f in it] == [0, 1, 2, 3]  # the iterator kept its store open


def test_writer_dropped_is_abandoned():
    s = tapestore.open("memory:")
    w = s.record(id="abandoned")
    w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "a"})
    del w
    gc.collect()
    t = s.load("abandoned")
    assert t.status == "recording" and len(t) == 1
    s.close()


def test_eight_threads_one_store(tmp_path):
    s = tapestore.open("filesystem", path=str(tmp_path / "mt"))
    errors = []
    barrier = threading.Barrier(8)

    def work(n):
        try:
            barrier.wait()
            for i in range(20):
                t = make_tape(id=f"th{n}-{i}", tags=[f"th{n}"], n=4)
                s.save(t)
                assert s.load(t.id).to_jsonl() == t.to_jsonl()
                assert [f.seq for f in s.frames(t.id, start=1, stop=3)] == [1, 2]
                with s.record(id=f"rec{n}-{i}") as w:
                    w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "m"})
                assert len(list(s.query(tags_any=[f"th{n}"], page_size=7))) == i + 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(s) == 8 * 20 * 2
    s.close()


def test_close_while_threads_use_the_store():
    s = tapestore.open("memory:")
    s.save(make_tape(id="x", n=50))
    running = threading.Barrier(5)  # four readers, each past one round, and the closer
    seen = []

    def reader():
        first = True
        while True:
            try:
                list(s.frames("x"))
                s.load("x")
            except tapestore.StateError:
                seen.append("closed")
                return
            if first:
                first = False
                running.wait()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    running.wait()
    s.close()  # waits for the calls in flight, then every reader sees StateError
    for t in threads:
        t.join()
    assert seen.count("closed") == 4


def test_core_log_reaches_logging(caplog):
    with caplog.at_level(logging.DEBUG, logger="tapestore"):
        tapestore.open("memory:").close()  # the memory provider logs a reminder
    recs = [r for r in caplog.records if r.name == "tapestore"]
    assert recs and "memory provider" in recs[0].getMessage()
    caplog.clear()
    tapestore.remove_log_hook()
    try:
        with caplog.at_level(logging.DEBUG, logger="tapestore"):
            tapestore.open("memory:").close()
        assert [r for r in caplog.records if r.name == "tapestore"] == []
    finally:
        tapestore.install_log_hook()
    with caplog.at_level(logging.DEBUG, logger="tapestore"):
        tapestore.open("memory:").close()
    assert [r for r in caplog.records if r.name == "tapestore"]


def test_log_from_threads(caplog):
    with caplog.at_level(logging.DEBUG, logger="tapestore"):
        ts = [threading.Thread(target=lambda: tapestore.open("memory:").close()) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert len([r for r in caplog.records if r.name == "tapestore"]) >= 8


def test_install_and_remove_from_threads():
    def flip():
        for _ in range(50):
            tapestore.remove_log_hook()
            tapestore.install_log_hook()
            tapestore.open("memory:").close()
    ts = [threading.Thread(target=flip) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    tapestore.install_log_hook()


def test_one_tape_from_eight_threads(mem):
    """A tape is locked around each core call: no race, nothing lost."""
    t = tapestore.Tape()
    barrier = threading.Barrier(8)
    errors = []

    def work(n):
        try:
            barrier.wait()
            for i in range(100):
                t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": f"m{n}-{i}"})
                if i % 10 == 0:
                    assert len(list(t.frames())) >= i
                    mem.save(t)
                    t.tags = [f"t{n}"]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    seqs = [f.seq for f in t.frames()]
    assert seqs == list(range(800))
    methods = {f.message["method"] for f in t.frames()}
    assert len(methods) == 800


def test_close_from_inside_a_call_on_the_store_is_refused():
    """close() waits for calls in flight: from inside one it would wait forever."""
    s = tapestore.open("memory:")
    got = []

    def inside():
        try:
            s._call(lambda h: s.close())
        except tapestore.StateError as e:
            got.append(e)

    # In a thread, so a regression fails here instead of hanging the run.
    th = threading.Thread(target=inside, daemon=True)
    th.start()
    th.join(10)
    assert not th.is_alive(), "close() from inside a call on the store hangs"
    assert len(got) == 1 and "inside a call" in str(got[0])
    assert not s.closed
    s.close()
    assert s.closed
