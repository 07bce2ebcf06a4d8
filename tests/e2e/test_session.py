"""tape-proxy end to end with the real MCP server and the SDK client.

The client (examples/c-proxy/mcp_client.mjs, on @modelcontextprotocol/sdk) runs one session
against server-everything twice: directly, and through
pipe_tap.py -> tape-proxy -> server. The tap logs the exact bytes that
crossed the proxy's stdin and stdout; the tape must hold exactly those
lines, in order, with the right directions, sequence numbers,
correlations and metadata.
"""
import json
import os
import subprocess

import tapestore
from conftest import (CHILD_ENV, CLIENT, FAKE_SERVER, PIPE_TAP, PROXY, SERVER, fs_spec, lines_of,
                      load_tape, only_tape)


def run_client(command, cwd, timeout=120):
    r = subprocess.run(CLIENT + ["--"] + command, capture_output=True, timeout=timeout, cwd=cwd,
                       env=CHILD_ENV)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout), r.stderr.decode(errors="replace")


def recorded_session(tmp_path, extra=()):
    store = tmp_path / "tapes"
    log = tmp_path / "log"
    log.mkdir()
    spec = fs_spec(store)
    id_file = tmp_path / "tape.id"
    out, err = run_client(PIPE_TAP + [str(log), "--", PROXY, "--store", spec, "--name", "e2e",
                                      "--tag", "e2e", "--tag", "sdk", "--id-file", str(id_file),
                                      *extra, "--"] + SERVER, cwd=tmp_path)
    return spec, out, err, log, id_file


def test_results_through_the_proxy_equal_the_direct_results(tmp_path):
    direct, _ = run_client(SERVER, cwd=tmp_path)
    spec, proxied, err, log, _ = recorded_session(tmp_path)
    # Nothing in this session differs between runs (no timestamps or random
    # ids reach the results), so nothing is masked: the documents are equal.
    assert proxied == direct
    # The session did what it says: one tool failed, one method is unknown,
    # the server's sampling request was answered by the client.
    assert direct["missing"]["result"]["isError"] is True
    assert direct["unknown_method"]["error"]["code"] == -32601
    assert "e2e-fixed-model" in direct["sampling"]["result"]["content"][0]["text"]
    assert direct["echo"]["result"]["content"][0]["text"] == "Echo: hello through the pipes"
    assert len(direct["tools"]["result"]["tools"]) >= 10
    assert (log / "status").read_text().strip() == "0"     # the proxy exited 0


def test_tape_holds_every_message_in_order(tmp_path):
    spec, out, err, log, id_file = recorded_session(tmp_path, ["--id", "e2e-session-1"])
    assert f"tape-proxy: recording tape e2e-session-1 into {spec}\n" in err
    assert id_file.read_text() == "e2e-session-1\n"
    c2s = lines_of((log / "c2s.bin").read_bytes())
    s2c = lines_of((log / "s2c.bin").read_bytes())
    assert len(c2s) >= 12 and len(s2c) >= 12

    t = load_tape(spec, "e2e-session-1")
    assert t.status == tapestore.FINALIZED
    assert t.name == "e2e" and t.tags == ["e2e", "sdk"]
    frames = list(t.frames())
    assert [f.seq for f in frames] == list(range(len(c2s) + len(s2c)))
    # Per direction, the frames are exactly the lines that crossed, byte for byte.
    assert [f.raw for f in frames if f.direction == tapestore.CLIENT_TO_SERVER] == c2s
    assert [f.raw for f in frames if f.direction == tapestore.SERVER_TO_CLIENT] == s2c
    assert not any(f.invalid_json or f.oversize for f in frames)
    for d in (tapestore.CLIENT_TO_SERVER, tapestore.SERVER_TO_CLIENT):
        ts = [f.ts for f in frames if f.direction == d]
        assert ts == sorted(ts)

    # Every request is answered by a later frame of the other direction,
    # and the correlations say so: client requests and the server's
    # sampling request alike.
    expected = {}
    requests = {}
    for f in frames:
        m = json.loads(f.raw)
        origin = "client" if f.direction == tapestore.CLIENT_TO_SERVER else "server"
        other = "server" if origin == "client" else "client"
        if "method" in m and "id" in m:
            key = f"{origin}:{json.dumps(m['id'])}"
            requests[key] = f
            assert f.correlation_id == key
        elif "id" in m and ("result" in m or "error" in m):
            key = f"{other}:{json.dumps(m['id'])}"
            req = requests[key]
            assert req.seq < f.seq and f.correlation_id == key
            failed = "error" in m or m.get("result", {}).get("isError") is True
            expected[key] = (req.seq, f.seq, "error" if failed else "ok", f.ts - req.ts)
    assert "server:0" in expected, "the sampling request from the server is correlated"
    got = {c.id: c for c in t.correlations}
    assert set(got) == set(expected)
    for key, (rq, rs, status, dts) in expected.items():
        c = got[key]
        assert (c.request_seq, c.response_seq, c.status) == (rq, rs, status), key
        assert abs(c.rtt_ms - dts) <= 1, (key, c.rtt_ms, dts)
    assert sorted(v[2] for v in expected.values()).count("error") == 2  # missing tool, unknown method
    assert t.stats.correlation_count == len(expected)
    assert t.stats.error_count == 1            # the JSON-RPC error frame

    # Metadata from initialize.
    init_req = json.loads(c2s[0])
    init_resp = next(json.loads(x) for x in s2c if json.loads(x).get("id") == init_req["id"])
    assert init_req["method"] == "initialize"
    assert t.protocol_version == init_resp["result"]["protocolVersion"]
    env = t.environment
    assert env["client"] == {"name": "tapestore-e2e-client", "version": "1.2.3"}
    assert env["server"] == init_resp["result"]["serverInfo"]
    assert env["server"]["name"] == out["initialize"]["serverVersion"]["name"]
    assert env["server"]["version"] == out["initialize"]["serverVersion"]["version"]
    assert env["proxy"]["name"] == "tape-proxy"
    assert env["proxy"]["dropped_frames"] == 0
    assert env["proxy"]["server_exit"] == {"code": 0}
    assert t.transport == {"type": "stdio", "command": SERVER}
    # What listings see, too (the meta file).
    with tapestore.open(spec) as store:
        [e] = list(store.query(tags_all=["e2e", "sdk"], status="finalized"))
        assert e.meta["environment"]["client"]["name"] == "tapestore-e2e-client"
        assert e.meta["protocol_version"] == t.protocol_version


def test_export_reproduces_every_message_byte_for_byte(tmp_path):
    """The bytes a JSONL export writes are the recording's: encoding the
    loaded tape gives the stored lines back, and every frame of the export,
    decoded again, keeps the line that crossed. (`tapestore export` itself
    is the command's, tested with it; this is the encoding it prints.)"""
    spec, out, err, log, id_file = recorded_session(tmp_path)
    tape_id = id_file.read_text().strip()
    t = load_tape(spec, tape_id)
    data = t.to_jsonl()
    # Every line after the init line is the stored file's, byte for byte
    # (the init line is rebuilt: the protocol version learned mid-session
    # is in the meta, which wins on load; docs/tape-format.md).
    on_disk = (tmp_path / "tapes" / f"{tape_id}.jsonl").read_bytes()
    assert data.split(b"\n", 1)[1] == on_disk.split(b"\n", 1)[1]
    assert b'"protocol_version":"' in data.split(b"\n", 1)[0]
    again = tapestore.Tape.from_jsonl(data)
    assert again.to_jsonl() == data
    crossed = {tapestore.CLIENT_TO_SERVER: lines_of((log / "c2s.bin").read_bytes()),
               tapestore.SERVER_TO_CLIENT: lines_of((log / "s2c.bin").read_bytes())}
    for d, lines in crossed.items():
        assert [f.message_text for f in list(again.frames()) if f.direction == d] == lines
    # Each frame line carries its message verbatim inside env.message.
    for f, line in zip([f for f in list(again.frames()) if f.direction == tapestore.SERVER_TO_CLIENT],
                       crossed[tapestore.SERVER_TO_CLIENT]):
        assert b'"env":{"message":' + line + b',' in f.line


def test_store_from_environment_and_default(tmp_path):
    """--store absent: TAPESTORE_STORE, and filesystem:./tapes without it."""
    msg = b'{"jsonrpc":"2.0","id":7,"method":"ping"}\n'
    env = dict(CHILD_ENV, TAPESTORE_STORE=f"sqlite:{tmp_path / 'env.db'}")
    r = subprocess.run([PROXY, "--"] + FAKE_SERVER, input=msg, capture_output=True, timeout=60,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == msg, r.stderr
    assert f"into sqlite:{tmp_path / 'env.db'}".encode() in r.stderr
    t = only_tape(f"sqlite:{tmp_path / 'env.db'}")
    assert [f.raw for f in list(t.frames())] == [msg.rstrip(b"\n")] * 2

    r = subprocess.run([PROXY, "--"] + FAKE_SERVER, input=msg, capture_output=True, timeout=60,
                       env=CHILD_ENV, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == msg, r.stderr
    assert b"into filesystem:./tapes\n" in r.stderr
    t = only_tape(f"filesystem:{tmp_path / 'tapes'}")
    assert t.status == tapestore.FINALIZED and len(list(t.frames())) == 2
    assert t.name == " ".join(FAKE_SERVER)      # the default name: the command line
    # The echoed request came back from the "server": a server-to-client
    # request with the same id, correlated on its own side.
    assert [f.correlation_id for f in list(t.frames())] == ["client:7", "server:7"]
    assert os.path.exists(tmp_path / "tapes" / "index.json")
