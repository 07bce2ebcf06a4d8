#!/usr/bin/env python3
"""migrate throughput: `tapestore migrate` against export-then-import of the
same tapes, both through the program, in the same run (docs/benchmarks.md).

The baseline is what a user of the command would do without migrate: one
`tapestore export ID -o FILE --meta FILE` per tape, then one
`tapestore import DIR` into the target. Both end with the same tapes in a
fresh target; migrate also loads each copy back and compares it byte for
byte. Printed: time, tapes/s and MB/s of each, and the ratio
(baseline time / migrate time: above 1 means migrate is faster).

    PYTHONPATH=build/bindings/python python3 tests/bench/migrate_bench.py \\
        [--quick] [--bin build/tools/tapestore] [--dir DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tapestore

ROOT = Path(__file__).resolve().parents[2]


def make_tapes(spec, n, frames):
    with tapestore.open(spec) as s:
        for i in range(n):
            t = tapestore.Tape(name=f"bench {i}", tags=["bench", "even" if i % 2 == 0 else "odd"],
                               id=f"b{i:05d}")
            for k in range(0, frames, 2):
                a = t.append(tapestore.CLIENT_TO_SERVER,
                             {"jsonrpc": "2.0", "id": k, "method": "tools/call",
                              "params": {"name": "echo", "arguments": {"text": "x" * 120}}})
                b = t.append(tapestore.SERVER_TO_CLIENT,
                             {"jsonrpc": "2.0", "id": k,
                              "result": {"content": [{"type": "text", "text": "y" * 200}]}})
                t.add_correlation(str(k), a, b, rtt_ms=3, status="success")
            s.save(t)
        return s.stats().total_bytes


def tapestore_run(binary, *args):
    p = subprocess.run([binary, *map(str, args)], capture_output=True)
    if p.returncode != 0:
        sys.exit(f"migrate_bench: {' '.join(map(str, args))} failed ({p.returncode}): "
                 f"{p.stderr.decode(errors='replace')}")
    return p


def target_spec(kind, d, name):
    return f"sqlite:{d / (name + '.db')}" if kind == "sqlite" else f"filesystem:{d / name}"


def bench(binary, d, src, n, nbytes, kind, reps):
    best_m = best_b = float("inf")
    for r in range(reps):
        dst = target_spec(kind, d, f"m{kind}{r}")
        t0 = time.perf_counter()
        p = tapestore_run(binary, "migrate", "--from", src, "--to", dst, "--json")
        best_m = min(best_m, time.perf_counter() - t0)
        doc = json.loads(p.stdout)
        assert doc["copied"] == n and doc["failed"] == 0, doc

        out = d / f"export{kind}{r}"
        out.mkdir()
        dst2 = target_spec(kind, d, f"b{kind}{r}")
        t0 = time.perf_counter()
        for i in range(n):
            tid = f"b{i:05d}"
            tapestore_run(binary, "--store", src, "export", tid, "-o", out / f"{tid}.jsonl",
                          "--meta", out / f"{tid}.meta.json")
        p = tapestore_run(binary, "--store", dst2, "import", out, "--json")
        best_b = min(best_b, time.perf_counter() - t0)
        assert len(json.loads(p.stdout)["imported"]) == n
    mb = nbytes / 1e6
    name = f"migrate_fs_to_{kind}"
    print(f"{name}: {n} tapes, {mb:.1f} MB: migrate {best_m * 1e3:.0f} ms "
          f"({n / best_m:.0f} tapes/s, {mb / best_m:.1f} MB/s); export-then-import "
          f"{best_b * 1e3:.0f} ms ({n / best_b:.0f} tapes/s, {mb / best_b:.1f} MB/s); "
          f"ratio {best_b / best_m:.2f}x (export-then-import time / migrate time)")
    print(json.dumps({"name": name, "tapes": n, "bytes": nbytes, "migrate_s": best_m,
                      "export_import_s": best_b, "ratio": best_b / best_m}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: few small tapes, once")
    ap.add_argument("--bin", default=os.environ.get("TAPESTORE_BIN",
                                                    str(ROOT / "build" / "tools" / "tapestore")))
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--tapes", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    a = ap.parse_args()
    n = a.tapes or (20 if a.quick else 200)
    frames = a.frames or (10 if a.quick else 200)
    reps = 1 if a.quick else 3
    base = Path(tempfile.mkdtemp(prefix="migrate-bench-", dir=a.dir))
    try:
        src = f"filesystem:{base / 'src'}"
        nbytes = make_tapes(src, n, frames)
        print(f"# {n} tapes of {frames} frames in {src}; best of {reps}")
        for kind in ("sqlite", "filesystem"):
            bench(a.bin, base, src, n, nbytes, kind, reps)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
