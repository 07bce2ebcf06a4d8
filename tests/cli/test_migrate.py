"""`tapestore migrate`: copies verified byte for byte, idempotent,
resumable after a SIGKILL with nothing duplicated, a differing tape in the
target refused unless --overwrite."""
import os
import signal
import subprocess

import pytest

import tapestore
from conftest import BIN, FAIL, NOTFOUND, OK, USAGE, child_env, make_tape, run


def fill(spec, n, frames=6, tags=lambda i: ["all"]):
    with tapestore.open(spec) as s:
        for i in range(n):
            s.save(make_tape(id=f"t{i:04d}", name=f"tape {i}", tags=tags(i), n=frames,
                             error=i % 5 == 0))


def documents(spec):
    """id -> (.jsonl, .meta.json) of every tape in the store."""
    with tapestore.open(spec) as s:
        return {e.id: (s.load(e.id).to_jsonl(), s.load(e.id).to_meta_json())
                for e in s.query()}


def test_migrate_filesystem_to_sqlite_verified(tmp_path):
    src, dst = f"filesystem:{tmp_path / 'src'}", f"sqlite:{tmp_path / 'dst.db'}"
    fill(src, 12)
    r = run("migrate", "--from", src, "--to", dst, "--json")
    assert r.code == OK, r
    doc = r.json()
    assert (doc["from"], doc["to"], doc["total"], doc["copied"], doc["replaced"],
            doc["skipped"], doc["failed"]) == (src, dst, 12, 12, 0, 0, 0)
    want = documents(src)
    assert doc["tapes"][0] == {"id": "t0000", "action": "copied", "frames": 6,
                               "bytes": len(want["t0000"][0]), "error": None}
    assert documents(dst) == want
    # plain progress, one line per tape (stderr is not a terminal here)
    r = run("migrate", "--from", src, "--to", dst)
    assert r.code == OK
    lines = r.err.splitlines()
    assert len(lines) == 12 and lines[0] == "[1/12] skipped t0000 (6 frames)", lines
    assert "12 tapes from" in r.text and "12 skipped" in r.text


def test_migrate_takes_the_query_flags(tmp_path):
    src, dst = f"filesystem:{tmp_path / 'src'}", f"sqlite:{tmp_path / 'dst.db'}"
    fill(src, 10, tags=lambda i: ["even"] if i % 2 == 0 else ["odd"])
    r = run("migrate", "--from", src, "--to", dst, "--tag-any", "odd", "--json")
    assert r.code == OK and r.json()["copied"] == 5, r
    assert sorted(documents(dst)) == [f"t{i:04d}" for i in range(1, 10, 2)]
    r = run("migrate", "--from", src, "--to", dst, "--order-by", "id", "--limit", "2", "--json")
    assert [t["id"] for t in r.json()["tapes"]] == ["t0000", "t0001"]
    assert [t["action"] for t in r.json()["tapes"]] == ["copied", "skipped"]


@pytest.mark.parametrize("target", ["sqlite", "filesystem"])
def test_migrate_interrupted_by_sigkill_then_resumed(tmp_path, target):
    src = f"filesystem:{tmp_path / 'src'}"
    dst = f"sqlite:{tmp_path / 'dst.db'}" if target == "sqlite" else f"filesystem:{tmp_path / 'dst'}"
    total = 200
    fill(src, total, frames=60)
    p = subprocess.Popen([BIN, "migrate", "--from", src, "--to", dst], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=child_env())
    copied = 0
    try:
        while copied < 30:
            line = p.stderr.readline()
            assert line, "migrate ended before it could be interrupted"
            copied += b" copied " in line
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        p.kill()
    assert p.returncode == -signal.SIGKILL
    partial = documents(dst)
    want = documents(src)
    assert 30 <= len(partial) < total
    whole = [i for i in partial if partial[i] == want[i]]
    # What is there is whole; only a filesystem target can hold a tape cut
    # between its two renames (frames written, metadata not yet).
    cut = [i for i in partial if partial[i] != want[i]]
    assert all(partial[i][0] == want[i][0] for i in cut) and len(cut) <= 1
    assert target == "filesystem" or not cut
    r = run("migrate", "--from", src, "--to", dst, "--json", timeout=300)
    assert r.code == OK, r
    doc = r.json()
    assert doc["failed"] == 0 and doc["skipped"] == len(whole) and doc["completed"] == len(cut)
    assert doc["copied"] == total - len(partial)
    assert documents(dst) == want                      # nothing missing, nothing corrupt
    with tapestore.open(dst) as s:
        ids = [e.id for e in s.query()]
        assert len(ids) == len(set(ids)) == total and s.stats().tape_count == total


def test_migrate_a_differing_tape_is_an_error_unless_overwrite(tmp_path):
    src, dst = f"filesystem:{tmp_path / 'src'}", f"sqlite:{tmp_path / 'dst.db'}"
    fill(src, 3)
    with tapestore.open(dst) as s:
        s.save(make_tape(id="t0001", name="something else", n=2))
    r = run("migrate", "--from", src, "--to", dst, "--json")
    assert r.code == FAIL, r
    doc = r.json()
    assert (doc["copied"], doc["failed"]) == (2, 1)
    bad = [t for t in doc["tapes"] if t["action"] == "failed"]
    assert bad[0]["id"] == "t0001" and "--overwrite replaces it" in bad[0]["error"]
    assert 'tape "t0001": the target already has a different tape with this id' in r.err
    assert "its .jsonl differs from the source's at byte" in r.err
    with tapestore.open(dst) as s:
        assert s.load("t0001").name == "something else"   # untouched
    # metadata alone differing counts too
    with tapestore.open(dst) as s:
        t = s.load("t0000")
        t.name = "renamed"
        s.save(t)
    r = run("migrate", "--from", src, "--to", dst, "--overwrite", "--json")
    assert r.code == OK, r
    actions = {t["id"]: t["action"] for t in r.json()["tapes"]}
    assert actions == {"t0000": "replaced", "t0001": "replaced", "t0002": "skipped"}
    assert documents(dst) == documents(src)


def test_migrate_usage_and_stores(tmp_path):
    src = f"filesystem:{tmp_path / 'src'}"
    r = run("migrate", "--from", src)
    assert r.code == USAGE and "--from SPEC and --to SPEC are both required" in r.err
    r = run("migrate", "--from", src, "--to", src, "--store", src)
    assert r.code == USAGE and "not --store" in r.err
    r = run("migrate", "--from", src, "--to", "nosuch:")
    assert r.code == NOTFOUND and "cannot open the target store nosuch:" in r.err
    r = run("migrate", "--from", src, "--to", f"sqlite:{tmp_path / 'd.db'}", "--status", "x")
    assert r.code == USAGE and 'query key "status"' in r.err
    r = run("migrate", "--from", src, "--to", f"sqlite:{tmp_path / 'd.db'}", "extra")
    assert r.code == USAGE
    r = run("migrate", "--from", src, "--to", f"sqlite:{tmp_path / 'd.db'}")
    assert r.code == OK and "0 tapes from" in r.text


def test_migrate_completes_a_copy_cut_between_the_filesystem_renames(tmp_path):
    # A filesystem save renames the .jsonl, then the .meta.json: a kill in
    # between leaves the frames with only the metadata the init line gives.
    src, dst = f"filesystem:{tmp_path / 'src'}", f"filesystem:{tmp_path / 'dst'}"
    fill(src, 3)
    with tapestore.open(src) as s:
        t = s.load("t0001")
        t.status = tapestore.FINALIZED
        s.save(t)
    assert run("migrate", "--from", src, "--to", dst).code == OK
    (tmp_path / "dst" / "t0001.meta.json").unlink()
    r = run("migrate", "--from", src, "--to", dst, "--json")
    assert r.code == OK, r
    assert {t["id"]: t["action"] for t in r.json()["tapes"]} == \
        {"t0000": "skipped", "t0001": "completed", "t0002": "skipped"}
    assert r.json()["completed"] == 1
    assert documents(dst) == documents(src)
    # a target whose metadata is its own is not "interrupted": still an error
    with tapestore.open(dst) as s:
        t = s.load("t0002")
        t.tags = ["mine"]
        s.save(t)
    r = run("migrate", "--from", src, "--to", dst)
    assert r.code == FAIL and "its .meta.json differs" in r.err, r
