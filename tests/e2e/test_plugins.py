"""Through --plugin into other stores: the real session (SDK client,
server-everything) recorded by tape-proxy straight into the S3 provider
written in Python (on s3rver) and into the redact provider written in Lua;
then `tapestore migrate` of recorded tapes from filesystem to sqlite and to
S3, verified, interrupted with SIGKILL and resumed, nothing duplicated."""
import json
import os
import signal
import subprocess
import sys

import pytest

import tapestore
from conftest import CHILD_ENV, PIPE_TAP, PROXY, SERVER, fs_spec, lines_of, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
S3_PLUGIN = os.path.join(ROOT, "examples", "python-s3-provider", "s3_provider.py")
REDACT_PLUGIN = os.path.join(ROOT, "examples", "lua-redact-provider", "redact.lua")
TAPESTORE = os.environ.get("TAPESTORE_BIN", "tapestore")
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
sys.path.insert(0, os.path.join(ROOT, "examples", "python-s3-provider"))
import s3rver  # noqa: E402  (the S3 peer: started here, stopped by pid)
import s3_provider  # noqa: E402,F401  (registers "s3" here too, to read what was written)
from test_session import run_client  # noqa: E402


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    proc, endpoint = s3rver.start(str(tmp_path_factory.mktemp("s3rver")))
    yield endpoint
    s3rver.stop(proc)


_buckets = [0]


def s3_spec(endpoint):
    _buckets[0] += 1
    name = f"e2e-{os.getpid()}-{_buckets[0]}"
    s3rver.client(endpoint).create_bucket(Bucket=name)
    cfg = {"bucket": name, "prefix": "tapes/", "endpoint_url": endpoint,
           "addressing_style": "path", **s3rver.KEYS}
    return "s3:" + json.dumps(cfg), name


def record(tmp_path, spec, plugin, tape_id):
    """The SDK client's session through pipe_tap -> tape-proxy --plugin."""
    log = tmp_path / f"log-{tape_id}"
    log.mkdir()
    out, err = run_client(PIPE_TAP + [str(log), "--", PROXY, "--plugin", plugin, "--store", spec,
                                      "--id", tape_id, "--"] + SERVER, cwd=tmp_path)
    assert (log / "status").read_text().strip() == "0", err
    return (lines_of((log / "c2s.bin").read_bytes()), lines_of((log / "s2c.bin").read_bytes()),
            err)


def check_tape(t, c2s, s2c):
    frames = list(t.frames())
    assert t.status == tapestore.FINALIZED
    assert [f.seq for f in frames] == list(range(len(c2s) + len(s2c)))
    assert [f.raw for f in frames if f.direction == tapestore.CLIENT_TO_SERVER] == c2s
    assert [f.raw for f in frames if f.direction == tapestore.SERVER_TO_CLIENT] == s2c
    assert t.environment["client"]["name"] == "tapestore-e2e-client"
    assert t.stats.correlation_count >= 10


def test_recording_into_the_python_s3_provider(tmp_path, s3):
    spec, bucket = s3_spec(s3)
    c2s, s2c, err = record(tmp_path, spec, S3_PLUGIN, "into-s3")
    assert "recording tape into-s3 into s3:" in err
    # Read back with boto3 directly: the two objects of the filesystem layout.
    c = s3rver.client(s3)
    keys = sorted(o["Key"] for o in c.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["tapes/into-s3.jsonl", "tapes/into-s3.meta.json"]  # chunks removed at finish
    body = c.get_object(Bucket=bucket, Key="tapes/into-s3.jsonl")["Body"].read()
    meta = c.get_object(Bucket=bucket, Key="tapes/into-s3.meta.json")["Body"].read()
    check_tape(tapestore.Tape.from_jsonl(body, meta), c2s, s2c)


def test_recording_into_the_lua_redact_provider(tmp_path):
    base = tmp_path / "base"
    spec = "redact:" + json.dumps({"base": fs_spec(base)})
    c2s, s2c, err = record(tmp_path, spec, REDACT_PLUGIN, "into-lua")
    assert "recording tape into-lua into redact:" in err
    # Through the Lua provider into its base: this session holds no secret,
    # so every byte is the one that crossed, and no count is added (a tape
    # without secrets is stored as it came).
    with tapestore.open(fs_spec(base)) as store:
        t = store.load("into-lua")
    check_tape(t, c2s, s2c)
    assert "redactions" not in t.environment
    assert t.environment["proxy"]["name"] == "tape-proxy"

    # A secret in a request's params is redacted in the recording, while the
    # session itself is relayed unchanged.
    secret = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"message": "hi"},
                         "password": "hunter2-very-secret"}}
    p = subprocess.Popen([PROXY, "--plugin", REDACT_PLUGIN, "--store", spec, "--id", "secret",
                          "--", sys.executable, "-c",
                          "import sys\nfor line in sys.stdin: pass\n"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=CHILD_ENV)
    line = json.dumps(secret).encode()
    _, perr = p.communicate(line + b"\n", timeout=60)
    assert p.returncode == 0, perr
    with tapestore.open(fs_spec(base)) as store:
        t = store.load("secret")
    [f] = list(t.frames())
    assert b"hunter2-very-secret" not in f.raw and b"hunter2" not in t.to_jsonl()
    assert f.message["params"]["arguments"] == {"message": "hi"}
    assert t.environment["redactions"] == 1


def documents(spec):
    with tapestore.open(spec) as s:
        return {e.id: (s.load(e.id).to_jsonl(), s.load(e.id).to_meta_json()) for e in s.query()}


def many_recorded_tapes(tmp_path, n):
    """n tapes shaped like recordings (the real session's frames), in a
    filesystem store."""
    src = fs_spec(tmp_path / "src")
    c2s, s2c, _ = record(tmp_path, src, REDACT_PLUGIN, "seed")
    with tapestore.open(src) as s:
        seed = s.load("seed")
        text = seed.to_jsonl()
        for i in range(n):
            t = tapestore.Tape.from_jsonl(text.replace(b'"seed"', f'"rec-{i:04d}"'.encode(), 1))
            t.name = f"recording {i}"
            s.save(t)
        s.delete("seed")
    return src


@pytest.mark.parametrize("target", ["sqlite", "s3"])
def test_migrate_recorded_tapes_killed_and_resumed(tmp_path, s3, target):
    total = 120
    src = many_recorded_tapes(tmp_path, total)
    if target == "sqlite":
        dst, plugin = f"sqlite:{tmp_path / 'dst.db'}", []
    else:
        dst, plugin = s3_spec(s3)[0], ["--plugin", S3_PLUGIN]
    env = dict(CHILD_ENV)
    p = subprocess.Popen([TAPESTORE, *plugin, "migrate", "--from", src, "--to", dst],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen = []

    def copied_some():
        line = p.stderr.readline()
        if line:
            seen.append(line)
        return sum(b" copied " in x for x in seen) >= 20 or p.poll() is not None
    try:
        wait_for(copied_some, timeout=120, what="20 tapes copied")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        p.kill()
    assert p.returncode == -signal.SIGKILL, "the migrate finished before it could be killed"
    want = documents(src)
    partial = documents(dst)
    assert 20 <= len(partial) < total
    assert all(partial[i] == want[i] for i in partial), "what was copied is whole"
    r = subprocess.run([TAPESTORE, *plugin, "migrate", "--from", src, "--to", dst, "--json"],
                       capture_output=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    assert doc["failed"] == 0 and doc["skipped"] == len(partial)
    assert doc["copied"] == total - len(partial)
    assert documents(dst) == want          # verified: nothing missing, nothing changed
    with tapestore.open(dst) as s:
        ids = [e.id for e in s.query()]
        assert len(ids) == len(set(ids)) == total  # nothing duplicated


def test_a_broken_plugin_stops_the_proxy_naming_the_file(tmp_path):
    for name, text, why in [("broken.py", "def f(:\n", "SyntaxError"),
                            ("raises.lua", "error('no bucket configured')\n",
                             "no bucket configured")]:
        plugin = tmp_path / name
        plugin.write_text(text)
        r = subprocess.run([PROXY, "--plugin", str(plugin), "--store", "memory:", "--",
                            sys.executable, "-c", "pass"], capture_output=True, env=CHILD_ENV,
                           timeout=60)
        assert r.returncode == 78, r
        assert f"plugin {plugin}: failed to load" in r.stderr.decode() and \
            why in r.stderr.decode(), r
    r = subprocess.run([PROXY, "--plugin", str(tmp_path / "missing.so"), "--", "true"],
                       capture_output=True, env=CHILD_ENV, timeout=60)
    assert r.returncode == 78 and "No such file or directory" in r.stderr.decode(), r
