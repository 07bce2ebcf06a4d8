"""Every subcommand of `tapestore`: its output, its --json document, its
exit codes (0 ok, 1 failure, 2 usage, 3 not found), and its --help."""
import json

import pytest

import tapestore
from conftest import FAIL, NOTFOUND, OK, USAGE, make_tape, run

COMMANDS = ["providers", "ls", "search", "show", "export", "import", "rm", "stats", "tail",
            "migrate"]


# ---------------------------------------------------------------- help, usage

def test_main_help_lists_every_command_and_the_exit_codes():
    r = run("--help")
    assert r.code == OK, r
    for cmd in COMMANDS:
        assert f"\n  {cmd} " in r.text
    assert "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found" in r.text
    assert "TAPESTORE_STORE" in r.text and "TAPESTORE_PLUGINS" in r.text


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd):
    a = run(cmd, "--help")
    b = run("help", cmd)
    c = run(cmd, "-h")
    assert a.code == b.code == c.code == OK, (a, b, c)
    assert a.out == b.out == c.out
    assert f"usage: tapestore {cmd}" in a.text and "--store SPEC" in a.text


def test_usage_errors():
    r = run()
    assert r.code == USAGE and "usage: tapestore" in r.err
    r = run("frobnicate")
    assert r.code == USAGE and 'no command named "frobnicate"' in r.err
    r = run("help", "frobnicate")
    assert r.code == USAGE and 'no command named "frobnicate"' in r.err
    r = run("ls", "--bogus")
    assert r.code == USAGE and "unknown option --bogus" in r.err
    r = run("ls", "extra")
    assert r.code == USAGE and 'unexpected argument "extra"' in r.err
    r = run("show")
    assert r.code == USAGE and "expected one tape id" in r.err
    r = run("show", "../etc")
    assert r.code == USAGE and 'invalid tape id "../etc"' in r.err
    r = run("ls", "--store")
    assert r.code == USAGE and "--store needs a value" in r.err
    r = run("ls", "--color", "sometimes")
    assert r.code == USAGE and "--color: expected auto, always or never" in r.err
    r = run("--bogus", "ls")
    assert r.code == USAGE and "unknown option --bogus" in r.err


def test_version():
    r = run("--version")
    assert r.code == OK and r.text.startswith("tapestore ")


# ---------------------------------------------------------------- the store

def test_default_store_is_filesystem_tapes_in_the_cwd(tmp_path):
    with tapestore.open(f"filesystem:{tmp_path / 'tapes'}") as s:
        s.save(make_tape(id="here"))
    r = run("ls", "--json", cwd=tmp_path)
    assert r.code == OK, r
    assert [t["tape_id"] for t in r.json()["tapes"]] == ["here"]


def test_store_from_the_environment_and_the_flag(tmp_path):
    with tapestore.open(f"sqlite:{tmp_path / 'a.db'}") as s:
        s.save(make_tape(id="in-sqlite"))
    r = run("ls", "--json", env={"TAPESTORE_STORE": f"sqlite:{tmp_path / 'a.db'}"}, cwd=tmp_path)
    assert [t["tape_id"] for t in r.json()["tapes"]] == ["in-sqlite"]
    # --store wins over the environment, before or after the command
    for args in (["--store", f"filesystem:{tmp_path / 'x'}", "ls", "--json"],
                 ["ls", "--json", f"--store=filesystem:{tmp_path / 'x'}"]):
        r = run(*args, env={"TAPESTORE_STORE": f"sqlite:{tmp_path / 'a.db'}"})
        assert r.code == OK and r.json()["tapes"] == [], r


def test_unknown_provider_is_not_found_and_a_bad_config_a_failure(tmp_path):
    r = run("ls", "--store", "nosuch:")
    assert r.code == NOTFOUND and 'no provider named "nosuch"' in r.err, r
    assert "cannot open store nosuch:" in r.err
    r = run("ls", "--store", 'memory:{"max_tapez": 1}')
    assert r.code == FAIL and 'unknown config key "max_tapez"' in r.err, r


# ---------------------------------------------------------------- providers, stats

def test_providers(tmp_path):
    r = run("providers")
    assert r.code == OK
    lines = r.text.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "CAPABILITIES", "DESCRIPTION"]
    assert {l.split()[0] for l in lines[1:]} >= {"filesystem", "memory", "sqlite"}
    doc = run("providers", "--json").json()
    by = {p["name"]: p for p in doc["providers"]}
    assert set(by) >= {"filesystem", "memory", "sqlite"}
    assert by["sqlite"]["version"] == 1 and "search" in by["sqlite"]["capabilities"]
    assert "persistent" in by["filesystem"]["capabilities"]
    assert isinstance(by["memory"]["description"], str)
    assert [p["name"] for p in doc["providers"]] == sorted(by)


def test_stats(fs_spec, fs_store):
    fs_store.save(make_tape(id="a", n=4))
    fs_store.save(make_tape(id="b", n=6))
    r = run("stats", "--store", fs_spec, "--json")
    assert r.code == OK, r
    doc = r.json()
    st = fs_store.stats()
    assert doc["store"] == fs_spec and doc["provider"] == "filesystem"
    assert (doc["tape_count"], doc["frame_count"], doc["total_bytes"]) == \
        (2, 10, st.total_bytes)
    assert "read_frames" in doc["capabilities"]["native"]
    assert "search" in doc["capabilities"]["available"]
    assert "search" not in doc["capabilities"]["native"]
    r = run("stats", "--store", fs_spec)
    assert "tapes:        2" in r.text and "frames:       10" in r.text


# ---------------------------------------------------------------- ls, search

def test_ls_table_is_aligned_and_json_is_the_meta_documents(fs_spec, fs_store):
    fs_store.save(make_tape(id="short", name="a", tags=["prod"], n=2))
    fs_store.save(make_tape(id="a-much-longer-id", name="a longer name", n=4))
    r = run("ls", "--store", fs_spec)
    assert r.code == OK, r
    lines = r.text.splitlines()
    header = lines[0]
    assert header.split() == ["ID", "NAME", "STATUS", "CREATED", "FRAMES", "DURATION", "TAGS"]
    col = header.index("NAME")
    assert all(l[col - 2:col] == "  " and l[col] != " " for l in lines[1:]), lines
    assert lines[1].startswith("short ") and "prod" in lines[1]
    doc = run("ls", "--store", fs_spec, "--json").json()
    assert doc["count"] == 2 and doc["next_cursor"] is None
    ids = [t["tape_id"] for t in doc["tapes"]]
    assert ids == ["short", "a-much-longer-id"]  # created_at order
    short = doc["tapes"][0]
    assert short["name"] == "a" and short["tags"] == ["prod"]
    assert short["stats"]["frame_count"] == 2 and short["status"] == "recording"
    # the document is the entry's .meta.json (docs/tape-format.md)
    entry = next(fs_store.query())
    assert json.loads(json.dumps(entry.meta)) == doc["tapes"][0]


def test_ls_paging_prints_the_cursor(fs_spec, fs_store):
    for i in range(5):
        fs_store.save(make_tape(id=f"t{i}", n=2))
    doc = run("ls", "--store", fs_spec, "--order-by", "id", "--limit", "2", "--json").json()
    assert [t["tape_id"] for t in doc["tapes"]] == ["t0", "t1"] and doc["next_cursor"]
    doc2 = run("ls", "--store", fs_spec, "--order-by", "id", "--limit", "2",
               "--cursor", doc["next_cursor"], "--json").json()
    assert [t["tape_id"] for t in doc2["tapes"]] == ["t2", "t3"]
    r = run("ls", "--store", fs_spec, "--order-by", "id", "--limit", "2")
    assert f"more: --cursor {doc['next_cursor']}" in r.text
    doc = run("ls", "--store", fs_spec, "--order-by", "id", "--descending", "--json").json()
    assert [t["tape_id"] for t in doc["tapes"]] == ["t4", "t3", "t2", "t1", "t0"]
    # ls has the ordering flags only; filters are search's
    r = run("ls", "--store", fs_spec, "--tag-any", "x")
    assert r.code == USAGE and "unknown option --tag-any" in r.err


def search_ids(spec, *args):
    r = run("search", "--store", spec, "--order-by", "id", "--json", *args)
    assert r.code == OK, r
    return [t["tape_id"] for t in r.json()["tapes"]]


def test_search_has_a_flag_for_every_query_key(tmp_path):
    spec = f"sqlite:{tmp_path / 's.db'}"
    with tapestore.open(spec) as s:
        a = make_tape(id="a", name="Smoke test", tags=["prod", "pay"], n=2)
        a.session_id = "sess-1"
        a.created_at = 1_700_000_000_000
        s.save(a)
        b = make_tape(id="b", name="other", tags=["prod"], n=6, error=True)
        b.created_at = 1_800_000_000_000
        b.status = tapestore.FINALIZED
        s.save(b)
        c = make_tape(id="c", name="third", tags=["dev"], n=4)
        c.created_at = 1_750_000_000_000
        s.save(c)
    assert search_ids(spec) == ["a", "b", "c"]
    assert search_ids(spec, "--session-id", "sess-1") == ["a"]
    assert search_ids(spec, "--name-contains", "SMOKE") == ["a"]
    assert search_ids(spec, "--tag-any", "pay", "--tag-any", "dev") == ["a", "c"]
    assert search_ids(spec, "--tag-all", "prod", "--tag-all", "pay") == ["a"]
    assert search_ids(spec, "--status", "finalized") == ["b"]
    assert search_ids(spec, "--created-after", "1750000000000") == ["b"]
    assert search_ids(spec, "--created-before", "2026-01-01T00:00:00Z") == ["a", "c"]
    assert search_ids(spec, "--min-duration-ms", "40") == ["b"]
    assert search_ids(spec, "--max-duration-ms", "7") == ["a"]
    assert search_ids(spec, "--min-frames", "4") == ["b", "c"]
    assert search_ids(spec, "--max-frames", "4") == ["a", "c"]
    assert search_ids(spec, "--text", "bad INPUT") == ["b"]
    assert search_ids(spec, "--strict", "--text", "tools/call") == ["a", "b", "c"]
    r = run("search", "--store", spec, "--order-by", "frame_count", "--descending", "--limit", "2",
            "--json")
    assert [t["tape_id"] for t in r.json()["tapes"]] == ["b", "c"] and r.json()["next_cursor"]
    assert search_ids(spec, "--query", '{"tags_any": ["prod"], "max_frames": 2}') == ["a"]
    # flags add keys to --query
    assert search_ids(spec, "--query", '{"tags_any": ["prod"]}', "--status", "finalized") == ["b"]
    r = run("search", "--store", spec)
    assert r.code == OK and r.text.splitlines()[0].startswith("ID")


def test_search_errors_name_the_flag_or_key(fs_spec):
    r = run("search", "--store", fs_spec, "--status", "done")
    assert r.code == USAGE and 'query key "status": expected "recording" or "finalized"' in r.err
    r = run("search", "--store", fs_spec, "--min-frames", "many")
    assert r.code == USAGE and '--min-frames: expected an integer, not "many"' in r.err
    r = run("search", "--store", fs_spec, "--query", '{"tag": "x"}')
    assert r.code == USAGE and 'unknown query key "tag"' in r.err
    r = run("search", "--store", fs_spec, "--query", "[1]")
    assert r.code == USAGE and "--query: expected a JSON object" in r.err
    r = run("search", "--store", fs_spec, "--query", '{"limit": 3}', "--limit", "4")
    assert r.code == USAGE and 'query key "limit" is set both by --query and by a flag' in r.err
    r = run("search", "--store", fs_spec, "--limit", "1", "--limit", "2")
    assert r.code == USAGE and "--limit given twice" in r.err
    r = run("search", "--store", fs_spec, "--created-after", "yesterday")
    assert r.code == USAGE and '"yesterday" is not an ISO-8601 time' in r.err
    r = run("search", "--store", fs_spec)
    assert r.code == OK and "no tapes in" in r.text


# ---------------------------------------------------------------- show

def test_show_human_and_json(fs_spec, fs_store):
    t = make_tape(id="s1", name="session", tags=["prod"], n=4, error=True)
    t.append(tapestore.CLIENT_TO_SERVER, {"jsonrpc": "2.0", "method": "notifications/initialized"},
             ts_ms=50)
    t.append(tapestore.SERVER_TO_CLIENT, b"Traceback: not json", invalid_json=True, ts_ms=60)
    t.session_id = "sess-9"
    t.protocol_version = "2025-06-18"
    fs_store.save(t)
    r = run("show", "s1", "--store", fs_spec)
    assert r.code == OK, r
    out = r.text
    for s in ("Tape s1", "name:         session", "session:      sess-9", "2025-06-18",
              "frames:       6 (3 client to server, 3 server to client)", "errors:       1",
              "correlations: 2", "Correlations", "Frames"):
        assert s in out, s
    rows = [l.split() for l in out.split("Frames\n")[1].splitlines()[1:]]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("0", ">", "request", "tools/call"), ("1", "<", "response", "tools/call"),
        ("2", ">", "request", "tools/call"), ("3", "<", "error", "tools/call"),
        ("4", ">", "notification", "notifications/initialized"),
        ("5", "<", "invalid_json", "-")]
    assert "error -32602: bad input" in out and "rtt 7 ms" in out

    doc = run("show", "s1", "--store", fs_spec, "--json").json()
    assert doc["tape"]["tape_id"] == "s1" and doc["tape"]["session_id"] == "sess-9"
    assert doc["tape"]["stats"]["error_count"] == 1
    assert doc["correlations"] == [
        {"id": "0", "request_seq": 0, "response_seq": 1, "rtt_ms": 7, "status": "success"},
        {"id": "2", "request_seq": 2, "response_seq": 3, "rtt_ms": 7, "status": "error"}]
    f = doc["frames"]
    assert [x["kind"] for x in f] == ["request", "response", "request", "error", "notification",
                                      "invalid_json"]
    assert f[0] == {"seq": 0, "ts": 0, "direction": "client_to_server", "kind": "request",
                    "method": "tools/call", "id": 0, "correlation_id": None, "is_error": False,
                    "error": None, "rtt_ms": None}
    assert f[3]["error"] == {"code": -32602, "message": "bad input"} and f[3]["is_error"]
    assert f[3]["rtt_ms"] == 7 and f[3]["method"] == "tools/call" and f[3]["ts"] == 27
    assert f[4]["id"] is None and f[5]["method"] is None


def test_show_not_found(fs_spec):
    r = run("show", "nope", "--store", fs_spec)
    assert r.code == NOTFOUND and 'no tape "nope" in ' in r.err and r.out == b""


# ---------------------------------------------------------------- export, import

def test_export_is_the_encoded_tape_byte_for_byte(fs_spec, fs_store, tmp_path):
    t = make_tape(id="e1", n=6)
    t.append(tapestore.SERVER_TO_CLIENT, b'{"jsonrpc":"2.0","id":9,"result":1.50e3}')
    t.append(tapestore.SERVER_TO_CLIENT, b'{"s":"\\ud83d lone"}')
    fs_store.save(t)
    want = fs_store.load("e1").to_jsonl()
    r = run("export", "e1", "--store", fs_spec)
    assert r.code == OK and r.out == want
    out = tmp_path / "out.jsonl"
    r = run("export", "e1", "-o", out, "--meta", tmp_path / "out.meta.json", "--store", fs_spec,
            "--json")
    assert r.code == OK, r
    assert out.read_bytes() == want
    assert (tmp_path / "out.meta.json").read_bytes() == fs_store.load("e1").to_meta_json()
    doc = r.json()
    assert doc == {"id": "e1", "file": str(out), "bytes": len(want),
                   "meta_file": str(tmp_path / "out.meta.json"),
                   "meta_bytes": len(fs_store.load("e1").to_meta_json())}
    assert run("export", "nope", "--store", fs_spec).code == NOTFOUND
    r = run("export", "e1", "--json", "--store", fs_spec)
    assert r.code == USAGE and "--json needs -o FILE" in r.err
    r = run("export", "e1", "-o", tmp_path / "no" / "dir" / "x.jsonl", "--store", fs_spec)
    assert r.code == NOTFOUND and "cannot create" in r.err and "No such file" in r.err


def test_import_export_round_trip_byte_for_byte(tmp_path):
    src = tmp_path / "export"
    src.mkdir()
    data = (__import__("pathlib").Path(__file__).resolve().parents[1] / "data")
    jsonl = (data / "shadowcat-session.jsonl").read_bytes()
    meta = (data / "shadowcat-session.meta.json").read_bytes()
    (src / "shadowcat-session.jsonl").write_bytes(jsonl)
    (src / "shadowcat-session.meta.json").write_bytes(meta)
    spec = f"sqlite:{tmp_path / 'db.sqlite'}"
    r = run("import", src, "--store", spec, "--json")
    assert r.code == OK, r
    doc = r.json()
    tid = tapestore.Tape.from_jsonl(jsonl, meta).id
    assert doc["failed"] == [] and doc["imported"] == [
        {"file": str(src / "shadowcat-session.jsonl"), "id": tid, "action": "imported",
         "frames": tapestore.Tape.from_jsonl(jsonl).stats.frame_count}]
    r = run("export", tid, "--store", spec)
    assert r.code == OK and r.out == jsonl  # the file as it was written, byte for byte
    with tapestore.open(spec) as s:
        assert s.load(tid).to_meta_json() == tapestore.Tape.from_jsonl(jsonl, meta).to_meta_json()
    # again: same content, skipped
    r = run("import", src / "shadowcat-session.jsonl", "--store", spec)
    assert r.code == OK and "skipped" in r.text and "same content" in r.text


def test_import_directories_recursion_errors_and_overwrite(tmp_path, fs_spec, fs_store):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for i, where in enumerate([d, d, d / "sub"]):
        t = make_tape(id=f"i{i}", name=f"n{i}", n=2)
        (where / f"i{i}.jsonl").write_bytes(t.to_jsonl())
        (where / f"i{i}.meta.json").write_bytes(t.to_meta_json())
    good = (d / "i0.jsonl").read_bytes().splitlines(keepends=True)
    (d / "bad.jsonl").write_bytes(good[0] + b'{"type":"frame","seq":0}\n' + good[1])
    (d / "notes.txt").write_text("not a tape")
    r = run("import", d, "--store", fs_spec, "--json")
    assert r.code == FAIL, r
    doc = r.json()
    assert [x["id"] for x in doc["imported"]] == ["i0", "i1"]  # name order, not recursive
    assert doc["failed"] == [{"file": str(d / "bad.jsonl"),
                              "error": doc["failed"][0]["error"]}]
    assert "line 2" in doc["failed"][0]["error"]
    assert f"{d / 'bad.jsonl'}: line 2: malformed frame" in r.err
    assert sorted(e.id for e in fs_store.query()) == ["i0", "i1"]
    assert fs_store.load("i0").name == "n0"  # the meta came along
    r = run("import", "-r", d, "--store", fs_spec, "--json")
    assert r.code == FAIL
    assert {(x["id"], x["action"]) for x in r.json()["imported"]} == \
        {("i0", "skipped"), ("i1", "skipped"), ("i2", "imported")}
    # a different tape with a taken id: refused, then replaced with --overwrite
    other = make_tape(id="i0", name="changed", n=4)
    (tmp_path / "i0.jsonl").write_bytes(other.to_jsonl())
    (tmp_path / "i0.meta.json").write_bytes(other.to_meta_json())
    r = run("import", tmp_path / "i0.jsonl", "--store", fs_spec)
    assert r.code == FAIL and "different content (--overwrite replaces it)" in r.err
    assert fs_store.load("i0").name == "n0"
    r = run("import", tmp_path / "i0.jsonl", "--store", fs_spec, "--overwrite")
    assert r.code == OK and "replaced i0" in r.text, r
    assert fs_store.load("i0").name == "changed"
    r = run("import", tmp_path / "missing.jsonl", "--store", fs_spec)
    assert r.code == NOTFOUND and "missing.jsonl" in r.err and "No such file" in r.err
    r = run("import", "--store", fs_spec)
    assert r.code == USAGE


def test_import_a_bad_meta_names_the_meta_file(tmp_path, fs_spec):
    t = make_tape(id="m1")
    (tmp_path / "m1.jsonl").write_bytes(t.to_jsonl())
    (tmp_path / "m1.meta.json").write_bytes(b'{"tape_id": "other"}')
    r = run("import", tmp_path / "m1.jsonl", "--store", fs_spec)
    assert r.code == FAIL and str(tmp_path / "m1.meta.json") in r.err, r


# ---------------------------------------------------------------- rm

def test_rm(fs_spec, fs_store):
    for i in "abc":
        fs_store.save(make_tape(id=i))
    r = run("rm", "a", "nope", "b", "--store", fs_spec, "--json")
    assert r.code == NOTFOUND, r
    assert r.json() == {"removed": ["a", "b"], "missing": ["nope"], "failed": []}
    assert 'no tape "nope"' in r.err
    assert [e.id for e in fs_store.query()] == ["c"]
    r = run("rm", "-f", "c", "nope", "--store", fs_spec)
    assert r.code == OK and "removed c" in r.text and r.err == ""
    assert run("rm", "--store", fs_spec).code == USAGE
    assert run("rm", "bad/id", "--store", fs_spec).code == USAGE


def test_a_failing_store_is_exit_1(tmp_path):
    spec = f'filesystem:{{"path": "{tmp_path / "ro"}", "read_only": true}}'
    (tmp_path / "ro").mkdir()
    with tapestore.open(f"filesystem:{tmp_path / 'ro'}") as s:
        s.save(make_tape(id="x"))
    r = run("rm", "x", "--store", spec)
    assert r.code == FAIL and "read-only" in r.err, r


# ---------------------------------------------------------------- tail (no -f)

def test_tail_last_frames(fs_spec, fs_store):
    fs_store.save(make_tape(id="tl", n=20))
    r = run("tail", "tl", "--store", fs_spec)
    assert r.code == OK, r
    rows = [l.split() for l in r.text.splitlines()]
    assert [x[0] for x in rows] == [str(i) for i in range(10, 20)]
    # a response whose request is outside the window still gets its method
    assert rows[0][3:5] == ["request", "tools/call"] and rows[1][3:5] == ["response", "tools/call"]
    r = run("tail", "-n", "3", "--raw", "tl", "--store", fs_spec)
    want = [f.line for f in fs_store.load("tl").frames(17)]
    assert r.out.splitlines() == want
    doc = run("tail", "-n", "all", "--json", "tl", "--store", fs_spec).json()
    assert doc["id"] == "tl" and doc["count"] == 20 and [f["seq"] for f in doc["frames"]] == \
        list(range(20))
    assert run("tail", "-n", "0", "tl", "--store", fs_spec).out == b""
    assert run("tail", "nope", "--store", fs_spec).code == NOTFOUND
    r = run("tail", "-n", "-2", "tl", "--store", fs_spec)
    assert r.code == USAGE and "-n: expected a number" in r.err
    r = run("tail", "--interval", "1", "-f", "tl", "--store", fs_spec)
    assert r.code == USAGE and "--interval" in r.err


def test_show_matches_responses_to_requests_by_direction_and_id(fs_spec, fs_store):
    t = tapestore.Tape(id="dirs")
    C, S = tapestore.CLIENT_TO_SERVER, tapestore.SERVER_TO_CLIENT
    t.append(C, {"jsonrpc": "2.0", "id": 1, "method": "tools/call"})
    t.append(S, {"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage"})  # server asks
    t.append(C, {"jsonrpc": "2.0", "id": 1, "result": {}})          # answers the server
    t.append(S, {"jsonrpc": "2.0", "id": 1, "result": {}})          # answers the client
    t.append(C, {"jsonrpc": "2.0", "id": "1", "method": "ping"})    # "1" is not 1
    t.append(S, {"jsonrpc": "2.0", "id": "1", "result": {}})
    t.append(S, {"jsonrpc": "2.0", "id": 99, "result": {}})         # no request
    t.append(C, [{"jsonrpc": "2.0", "id": 5, "method": "a"}])       # a batch
    fs_store.save(t)
    f = run("show", "dirs", "--store", fs_spec, "--json").json()["frames"]
    assert [x["method"] for x in f] == ["tools/call", "sampling/createMessage",
                                        "sampling/createMessage", "tools/call", "ping", "ping",
                                        None, None]
    assert [x["id"] for x in f][4:7] == ["1", "1", 99] and f[7]["kind"] == "batch"


def test_import_a_filesystem_store_directory(tmp_path, fs_spec, fs_store):
    for i in range(4):
        t = make_tape(id=f"d{i}", name=f"dir {i}", tags=["x"], n=4)
        if i == 2:
            t.status = tapestore.FINALIZED
        fs_store.save(t)
    spec = f"sqlite:{tmp_path / 'from-dir.db'}"
    r = run("import", tmp_path / "tapes", "--store", spec, "--json")
    assert r.code == OK and r.json()["failed"] == [], r
    with tapestore.open(spec) as s:
        got = {e.id: (s.load(e.id).to_jsonl(), s.load(e.id).to_meta_json()) for e in s.query()}
    want = {e.id: (fs_store.load(e.id).to_jsonl(), fs_store.load(e.id).to_meta_json())
            for e in fs_store.query()}
    assert got == want and len(got) == 4
