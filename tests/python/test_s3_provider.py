"""The S3 provider example against a real S3-compatible server (s3rver from
npm, pinned in package.json and installed by ``npm ci``), started here on a
free loopback port and stopped by its pid. These tests call the provider's
methods directly; the conformance suite runs it through the trampolines."""
import os
import sys
from pathlib import Path

import botocore.exceptions
import pytest

import tapestore
from conftest import make_tape

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "python-s3-provider"))
import s3_provider  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import s3rver as s3rver_peer  # noqa: E402


@pytest.fixture(scope="module")
def s3rver(tmp_path_factory):
    proc, endpoint = s3rver_peer.start(str(tmp_path_factory.mktemp("s3rver")))
    yield endpoint
    s3rver_peer.stop(proc)


_client = s3rver_peer.client
_free_port = s3rver_peer.free_port
_bucket_no = [0]


@pytest.fixture
def bucket(s3rver):
    _bucket_no[0] += 1
    name = f"tapes-{os.getpid()}-{_bucket_no[0]}"
    _client(s3rver).create_bucket(Bucket=name)
    return name


def _config(endpoint, bucket, **extra):
    c = {"bucket": bucket, "prefix": "rec/", "endpoint_url": endpoint,
         "addressing_style": "path", "aws_access_key_id": "S3RVER",
         "aws_secret_access_key": "S3RVER"}
    c.update(extra)
    s3_provider.S3Provider.validate(c)
    return c


def test_save_load_exists_list_delete(s3rver, bucket):
    p = s3_provider.S3Provider(_config(s3rver, bucket))
    t = make_tape(name="s3 demo", tags=["prod"], n=4)
    assert not p.exists(t.id)
    assert p.load(t.id) is None  # None: not found
    p.save(t)
    assert p.exists(t.id)
    back = p.load(t.id)
    assert back.to_jsonl() == t.to_jsonl()
    assert back.name == "s3 demo" and back.tags == ["prod"]
    listed = p.list({})
    assert [m["tape_id"] for m in listed] == [t.id]
    assert listed[0]["stats"]["frame_count"] == 4
    p.delete(t.id)
    assert not p.exists(t.id)
    with pytest.raises(tapestore.NotFound):
        p.delete(t.id)


def test_meta_cache_by_etag(s3rver, bucket):
    writer = s3_provider.S3Provider(_config(s3rver, bucket))
    tapes = [make_tape(name=f"t{i}") for i in range(3)]
    for t in tapes:
        writer.save(t)
    p = s3_provider.S3Provider(_config(s3rver, bucket))  # another process's view
    gets = []
    for prov in (p, writer):
        real = prov._get
        prov._get = lambda key, ctx, real=real: (gets.append(key), real(key, ctx))[1]
    assert len(p.list({})) == 3
    assert len(gets) == 3
    assert len(p.list({})) == 3
    assert len(gets) == 3  # unchanged ETags: served from the cache
    assert len(writer.list({})) == 3
    assert len(gets) == 3  # the writer cached what it wrote, under S3's ETag
    tapes[0].name = "changed"
    writer.save(tapes[0])
    assert len(p.list({})) == 3
    assert len(gets) == 4  # only the changed meta is fetched again
    assert sorted(m["name"] for m in p.list({})) == ["changed", "t1", "t2"]
    writer.delete(tapes[1].id)
    assert [m["name"] for m in writer.list({})] and len(writer.list({})) == 2


def test_load_lists_chunks_only_for_recordings(s3rver, bucket):
    p = s3_provider.S3Provider(_config(s3rver, bucket))
    t = make_tape(n=2)
    p.save(t)
    lists = []
    real = p._keys
    p._keys = lambda prefix: (lists.append(prefix), real(prefix))[1]
    assert len(p.load(t.id)) == 2
    assert lists == []  # a finished tape: two GETs, no listing


def test_recording_flushes_only_new_frames(s3rver, bucket):
    cfg = _config(s3rver, bucket, flush_frames=2, flush_seconds=3600)
    p = s3_provider.S3Provider(cfg)
    other = s3_provider.S3Provider(cfg)  # another process's view
    src = make_tape(n=5)
    header = tapestore.Tape(name="live", id=src.id)
    rec = p.begin_recording(header)
    assert other.exists(src.id)  # visible at once, status recording
    assert other.load(src.id).status == "recording"
    frames = list(src.frames())
    puts = []
    real = p._put
    p._put = lambda key, body, ctx: (puts.append((key, len(body))), real(key, body, ctx))[1]
    for f in frames[:3]:
        rec.append(f, header)
    # One chunk with the 2 frames of the first interval, plus the meta.
    chunk_puts = [k for k, _ in puts if ".chunks/" in k]
    assert len(chunk_puts) == 1
    assert len(p.load(src.id)) == 3        # this process: unflushed frames too
    assert len(other.load(src.id)) == 2    # others: up to the last flush
    for f in frames[3:]:
        rec.append(f, header)
    chunk_sizes = [n for k, n in puts if ".chunks/" in k]
    assert len(chunk_sizes) == 2 and chunk_sizes[0] == chunk_sizes[1] > 0  # never the whole tape
    header.status = "finalized"
    rec.end(header, True)
    final = other.load(src.id)
    assert len(final) == 5 and final.status == "finalized"
    assert [f.line for f in final.frames()] == [f.line for f in frames]
    keys = [o["Key"] for o in _client(s3rver).list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [f"rec/{src.id}.jsonl", f"rec/{src.id}.meta.json"]  # chunks gone


def test_interop_with_filesystem(s3rver, bucket, tmp_path):
    """Objects written by the provider load in the filesystem provider when
    fetched with boto3 directly, and the reverse."""
    p = s3_provider.S3Provider(_config(s3rver, bucket))
    c = _client(s3rver)
    t = make_tape(name="to disk", tags=["x"], n=3)
    p.save(t)
    disk = tmp_path / "tapes"
    disk.mkdir()
    for suffix in (".jsonl", ".meta.json"):
        c.download_file(bucket, f"rec/{t.id}{suffix}", str(disk / f"{t.id}{suffix}"))
    with tapestore.open("filesystem", path=str(disk)) as fs:
        assert fs.load(t.id).to_jsonl() == t.to_jsonl()
        u = make_tape(name="from disk", n=2)
        fs.save(u)
    for suffix in (".jsonl", ".meta.json"):
        c.upload_file(str(disk / f"{u.id}{suffix}"), bucket, f"rec/{u.id}{suffix}")
    assert p.load(u.id).to_jsonl() == u.to_jsonl()
    assert sorted(m["tape_id"] for m in p.list({})) == sorted([t.id, u.id])


def test_errors_name_the_problem(s3rver, bucket):
    missing = s3_provider.S3Provider(_config(s3rver, "no-such-bucket-here"))
    with pytest.raises(tapestore.ConfigError, match="NoSuchBucket"):
        missing.list({})
    bad_keys = s3_provider.S3Provider(_config(s3rver, bucket, aws_access_key_id="WRONG"))
    with pytest.raises(tapestore.ConfigError, match="InvalidAccessKeyId.*credentials"):
        bad_keys.save(make_tape())
    unreachable = s3_provider.S3Provider(_config(f"http://127.0.0.1:{_free_port()}", bucket))
    with pytest.raises(tapestore.IOError, match="cannot reach the endpoint"):
        unreachable.exists("x")
    throttled = botocore.exceptions.ClientError(
        {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
        "PutObject")
    err = s3_provider._error("write t1", throttled)
    assert isinstance(err, tapestore.Busy) and "SlowDown" in str(err) and "write t1" in str(err)


@pytest.mark.parametrize("config, key", [
    ({}, "bucket"),
    ({"bucket": "b", "colour": 1}, "colour"),
    ({"bucket": "b", "flush_frames": "10"}, "flush_frames"),
    ({"bucket": "b", "flush_frames": 0}, "flush_frames"),
    ({"bucket": "b", "addressing_style": "sideways"}, "addressing_style"),
])
def test_validate_names_the_key(config, key):
    with pytest.raises(tapestore.ConfigError, match=f'"{key}"'):
        s3_provider.S3Provider.validate(config)



def test_registered_by_name_on_import(s3rver, bucket):
    """Importing the module registered "s3": a store opens by name, through
    the trampolines, and C code would find it the same way."""
    import json
    cfg = _config(s3rver, bucket)
    with tapestore.open("s3:" + json.dumps(cfg)) as store:
        t = make_tape(name="by name", n=3)
        store.save(t)
        assert t.id in store
        assert store.load(t.id).to_jsonl() == t.to_jsonl()
        assert [e.id for e in store.query(name_contains="by name")] == [t.id]
        with store.record(name="live") as w:
            w.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "ping"})
        assert len(store) == 2
        store.delete(t.id)
        assert t.id not in store


@pytest.mark.s3_conformance
def test_conformance_suite_through_the_trampolines(s3rver, bucket):
    """The suite the C providers pass, in-process through the trampolines,
    each case in a fresh prefix of one bucket (@NS@)."""
    import json
    import tapestore.conformance as conf
    cfg = _config(s3rver, bucket, prefix="@NS@/")
    lines = []
    r = conf.run("s3", json.dumps(cfg), emit=lines.append)
    assert r.failed == 0, "\n".join(lines)
    assert r.skipped == 0 and r.passed == len(conf.case_names()), "\n".join(lines)


def test_search_is_native_and_pages_like_the_core(s3rver, bucket):
    """search lists metas through the core's pager: every query gives the
    pages the memory provider (the core's own search) gives."""
    import json
    cfg = _config(s3rver, bucket)
    tapes = []
    for i in range(12):
        t = make_tape(name=f"tape {i:02d}", tags=["prod"] if i % 3 == 0 else ["dev"], n=2 + i % 4)
        if i % 4 == 0:
            t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "needle/find"})
        tapes.append(t)
    queries = [{}, {"tags_any": ["prod"]}, {"name_contains": "tape 1"},
               {"order_by": "name", "descending": True}, {"text": "needle"},
               {"text": "needle", "tags_any": ["prod"]}, {"min_frames": 4, "order_by": "id"}]
    with tapestore.open("s3:" + json.dumps(cfg)) as s3, tapestore.open("memory:") as mem:
        assert "search" in s3.capabilities(native=True)
        for t in tapes:
            s3.save(t)
            mem.save(t)
        for q in queries:
            want = [e.id for e in mem.query(**q)]
            assert [e.id for e in s3.query(**q)] == want, q
            assert want or q.get("text")  # the queries select something
            # Paged by cursor, 5 at a time: the same ids in the same order.
            got, cursor = [], None
            while True:
                page = s3.query_page(cursor=cursor, limit=5, **q)
                got += [e.id for e in page.entries]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert got == want, q
        assert len(list(s3.query(text="needle"))) == 3
