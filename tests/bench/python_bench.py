#!/usr/bin/env python3
"""The Python binding's figures, each a ratio against a baseline measured in
the same run (docs/benchmarks.md, "Python binding"):

1. trampoline overhead: ``exists`` on a Python provider through the core,
   from C and from Python, against calling the same method directly
   (goal: under 2 us added per call);
2. binding against C: save and load of a 1 MiB and a 64 MiB tape on the
   filesystem provider, through the binding and from C (goal: >= 0.8x);
3. against what a Python user writes by hand: a 10,000-message session as
   JSON Lines with the json module (same fsync) and read back into dicts,
   against the binding's save and load doing the same work (goal: >= 1x),
   and with the messages kept raw (goal: >= 3x);
4. S3 search over 1,000 tapes on s3rver, against one ListObjectsV2 pass
   plus sequential meta GETs.

    python3 tests/bench/python_bench.py [--quick] [--only NAME] [--dir DIR]

--quick runs every part on small sizes (a ctest checks that it runs and
that each part's answers agree; timings there mean nothing). Needs
PYTHONPATH to the built binding and TAPE_BENCH_HELPER to
libtape_py_bench_helper.so (ctest sets both).
"""
import argparse
import ctypes
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tapestore

ROOT = Path(__file__).resolve().parents[2]


def best(fn, repeat):
    """The fastest of `repeat` runs of fn() (seconds), and fn's last result.
    As timeit does, the cyclic GC is off while a run is timed (collected
    before it): else a collection of whatever earlier parts left alive
    lands in one side's figure at random."""
    times, out = [], None
    for _ in range(repeat):
        out = None
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return min(times), out


def best_of_each(fns, repeat):
    """best() for several functions, their runs interleaved (a, b, c, a, b,
    c, ...): this machine's speed drifts over seconds, and measuring one
    side's runs before the other's would put the drift into the ratio."""
    times = {k: [] for k in fns}
    outs = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t, outs[k] = best(fn, 1)
            times[k].append(t)
    return {k: (min(v), outs[k]) for k, v in times.items()}


def helper():
    lib = ctypes.CDLL(os.environ["TAPE_BENCH_HELPER"])  # ctypes releases the GIL
    lib.bench_exists_loop.restype = ctypes.c_int64
    lib.bench_exists_loop.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.bench_save_load.restype = ctypes.c_int
    lib.bench_save_load.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64),
                                    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    return lib


def row(label, value, unit=""):
    print(f"  {label:<52} {value}{unit}")


# ------------------------------------------------------------ 1. trampolines

class ExistsProvider:
    """The smallest provider: exists is a dict lookup."""

    def __init__(self, config):
        self.tapes = {"t1": None}

    def save(self, tape):
        self.tapes[tape.id] = tape.copy()

    def load(self, id):
        return self.tapes.get(id)

    def delete(self, id):
        if self.tapes.pop(id, None) is None:
            raise tapestore.NotFound(id)

    def list(self, query):
        return []

    def exists(self, id):
        return id in self.tapes


def bench_trampoline(a, lib):
    n = 20_000 if a.quick else 500_000
    repeat = 1 if a.quick else 5
    tapestore.register_provider("bench_exists", ExistsProvider)
    try:
        inst = ExistsProvider({})
        direct, ok = best(lambda: all(inst.exists("t1") for _ in range(n)), repeat)
        assert ok
        with tapestore.open("bench_exists") as s:
            via_py, ok = best(lambda: all(s.exists("t1") for _ in range(n)), repeat)
            assert ok
            ns = []
            for _ in range(repeat):
                r = lib.bench_exists_loop(int(s._h.this), b"t1", n)
                assert r >= 0, "exists from C failed"
                ns.append(r)
            via_c = min(ns) / 1e9
    finally:
        tapestore.unregister_provider("bench_exists")
    per = lambda t: t / n * 1e6  # noqa: E731 - microseconds per call
    print(f"trampoline overhead: exists on a Python provider, {n} calls")
    row("direct Python method call", f"{per(direct):.3f}", " us/call")
    row("through the core from C", f"{per(via_c):.3f}", " us/call")
    row("through the core from Python (binding + core)", f"{per(via_py):.3f}", " us/call")
    row("added from C (goal < 2 us)", f"{per(via_c) - per(direct):.3f}",
        f" us/call  (ratio {via_c / direct:.2f}x the direct call)")
    row("added from Python (goal < 2 us)", f"{per(via_py) - per(direct):.3f}",
        f" us/call  (ratio {via_py / direct:.2f}x the direct call)")


# ------------------------------------------------------ 2. binding against C

def sized_message(size):
    """A tools/call result of about `size` bytes."""
    pad = "x" * max(0, size - 80)
    return json.dumps({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text",
                       "text": pad}]}}, separators=(",", ":"))


def bench_vs_c(a, lib, workdir):
    sizes = [(1 << 20, "1 MiB")] + ([] if a.quick else [(64 << 20, "64 MiB")])
    msg = sized_message(1024)
    print("binding against C: filesystem save and load, no fsync (goal >= 0.8x)")
    for total, label in sizes:
        frames = total // len(msg)
        repeat = 5 if total <= (1 << 20) else 3
        d = workdir / f"vs_c_{frames}"
        py_save = py_load = c_save = c_load = float("inf")
        # durability none: both sides run the same C, so what differs is the
        # binding; an fsync's time varies more than that between runs.
        with tapestore.open("filesystem", path=str(d), durability="none") as s:
            t = tapestore.Tape(name="bench", id="py")
            for i in range(frames):
                t.append(tapestore.SERVER_TO_CLIENT if i % 2 else tapestore.CLIENT_TO_SERVER, msg)
            # Interleaved, each loaded tape freed before the next step, so
            # neither side inherits the other's warm pages or fsync queue.
            for _ in range(repeat):
                t0 = time.perf_counter()
                s.save(t)
                py_save = min(py_save, time.perf_counter() - t0)
                t0 = time.perf_counter()
                back = s.load("py")
                py_load = min(py_load, time.perf_counter() - t0)
                assert len(back) == frames
                del back
                s.delete("py")  # both sides save into an absent id
                sv, ld = ctypes.c_int64(), ctypes.c_int64()
                rc = lib.bench_save_load(ctypes.byref(sv), ctypes.byref(ld), int(s._h.this), b"c",
                                         msg.encode(), frames)
                assert rc == 0, tapestore.capi.tape_strerror(rc)
                c_save = min(c_save, sv.value / 1e9)
                c_load = min(c_load, ld.value / 1e9)
                s.delete("c")
        shutil.rmtree(d)
        row(f"{label} save: binding {py_save * 1e3:.1f} ms, C {c_save * 1e3:.1f} ms",
            f"{c_save / py_save:.2f}", "x")
        row(f"{label} load: binding {py_load * 1e3:.1f} ms, C {c_load * 1e3:.1f} ms",
            f"{c_load / py_load:.2f}", "x")


# ------------------------------------------------- 3. against hand-written json

def session(n):
    """n messages of an MCP session, as dicts: calls and their results."""
    out = []
    for i in range(n // 2):
        out.append({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "search", "arguments": {"q": f"term {i}", "limit": 10}}})
        out.append({"jsonrpc": "2.0", "id": i, "result": {"content": [
            {"type": "text", "text": f"result {i} " + "lorem ipsum " * 8}], "isError": False}})
    return out


def bench_vs_json(a, workdir):
    n = 2_000 if a.quick else 10_000
    repeat = 3 if a.quick else 15
    msgs = session(n)
    texts = [json.dumps(m, separators=(",", ":")) for m in msgs]
    path = workdir / "hand.jsonl"
    dirs = [tapestore.CLIENT_TO_SERVER, tapestore.SERVER_TO_CLIENT]

    def hand_write():
        with open(path, "w", encoding="utf-8") as f:
            for i, m in enumerate(msgs):
                f.write(json.dumps({"seq": i + 1, "ts": 0, "direction": dirs[i % 2],
                                    "message": m}, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def hand_read():
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["message"] for line in f]

    with tapestore.open("filesystem", path=str(workdir / "vs_json")) as s:
        def bind_write(items):
            t = tapestore.Tape(name="bench", id="s")
            for i, m in enumerate(items):
                t.append(dirs[i % 2], m)
            s.save(t)

        def bind_read_dicts():
            return [f.message for f in s.load("s").frames()]

        def bind_read_raw():
            return [f.raw for f in s.load("s").frames()]

        r = best_of_each({"hw": hand_write, "bw": lambda: bind_write(msgs),
                          "bwr": lambda: bind_write(texts)}, repeat)
        r.update(best_of_each({"hr": hand_read, "br": bind_read_dicts, "brr": bind_read_raw},
                              repeat))
        (hw, _), (bw, _), (bwr, _) = r["hw"], r["bw"], r["bwr"]
        (hr, hand), (br, dicts), (brr, raws) = r["hr"], r["br"], r["brr"]
    assert dicts == hand == msgs and [json.loads(r) for r in raws] == msgs
    print(f"against hand-written json: a {n}-message session (goal >= 1x; raw >= 3x)")
    row(f"write dicts: json module {hw * 1e3:.1f} ms, binding {bw * 1e3:.1f} ms", f"{hw / bw:.2f}", "x")
    row(f"read dicts: json module {hr * 1e3:.1f} ms, binding {br * 1e3:.1f} ms", f"{hr / br:.2f}", "x")
    row(f"write raw JSON text: binding {bwr * 1e3:.1f} ms", f"{hw / bwr:.2f}", "x")
    row(f"read raw JSON text: binding {brr * 1e3:.1f} ms", f"{hr / brr:.2f}", "x")


# ----------------------------------------------------------------- 4. S3 search

def bench_s3(a, workdir):
    sys.path.insert(0, str(ROOT / "examples" / "python-s3-provider"))
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    import s3_provider  # noqa: F401 - registers "s3"
    import s3rver
    n = 60 if a.quick else 1_000
    proc, endpoint = s3rver.start(str(workdir / "s3rver"))
    try:
        c = s3rver.client(endpoint)
        c.create_bucket(Bucket="bench")
        cfg = {"bucket": "bench", "prefix": "t/", "endpoint_url": endpoint,
               "addressing_style": "path", **s3rver.KEYS}
        spec = "s3:" + json.dumps(cfg)
        with tapestore.open(spec) as s:
            for i in range(n):
                t = tapestore.Tape(name=f"tape {i:04d}", tags=["prod"] if i % 10 == 0 else ["dev"])
                t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
                s.save(t)

        def baseline():
            """What a user would write: one listing, then each meta in turn."""
            metas = []
            for page in c.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="t/"):
                for o in page.get("Contents", []):
                    if o["Key"].endswith(".meta.json"):
                        metas.append(json.loads(c.get_object(Bucket="bench",
                                                             Key=o["Key"])["Body"].read()))
            return sorted(m["tape_id"] for m in metas if "prod" in m["tags"])

        tb, want = best(baseline, 1)
        with tapestore.open(spec) as s:  # a fresh store: an empty meta cache
            cold, got = best(lambda: sorted(e.id for e in s.query(tags_any=["prod"])), 1)
            warm, again = best(lambda: sorted(e.id for e in s.query(tags_any=["prod"])), 3)
    finally:
        s3rver.stop(proc)
    assert got == want == again and len(want) == (n + 9) // 10
    print(f"S3 search: tags_any over {n} tapes on s3rver")
    row(f"ListObjectsV2 + sequential GETs {tb * 1e3:.0f} ms; search {cold * 1e3:.0f} ms",
        f"{tb / cold:.2f}", "x (parallel GETs, cold cache)")
    row(f"search again {warm * 1e3:.0f} ms (ETag cache: listing only)", f"{tb / warm:.2f}", "x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, to check that it runs")
    ap.add_argument("--only", choices=["trampoline", "c", "json", "s3"], help="run one part")
    ap.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    a = ap.parse_args()
    lib = helper()
    workdir = Path(tempfile.mkdtemp(prefix="tape-pybench-", dir=a.dir))
    try:
        if a.only in (None, "trampoline"):
            bench_trampoline(a, lib)
        if a.only in (None, "c"):
            bench_vs_c(a, lib, workdir)
        if a.only in (None, "json"):
            bench_vs_json(a, workdir)
        if a.only in (None, "s3"):
            bench_s3(a, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
