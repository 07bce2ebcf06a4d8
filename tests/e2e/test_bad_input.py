"""Bad input to tape-proxy: what it relays, what it records, how it says so.

Most tests use fake_server.py, a raw peer that echoes every byte back, so
each line crosses the proxy twice (client to server, then back) and the
test sees exactly what was relayed on the proxy's stdout.
"""
import hashlib
import json
import os
import re
import resource
import subprocess
import time

import tapestore
from conftest import (CHILD_ENV, EXIT_INCOMPLETE, EXIT_STORE, EXIT_USAGE, FAKE_SERVER, PROXY,
                      fs_spec, lines_of, only_tape)


def run(args, data=b"", server=FAKE_SERVER, timeout=120, **kw):
    return subprocess.run([PROXY, *args, "--", *server], input=data, capture_output=True,
                          timeout=timeout, env=CHILD_ENV, **kw)


def by_dir(t, d):
    return [f for f in t.frames() if f.direction == d]


C2S, S2C = tapestore.CLIENT_TO_SERVER, tapestore.SERVER_TO_CLIENT


def test_non_json_lines_are_relayed_and_recorded_as_invalid_json(tmp_path):
    lines = [b"not json", b"{broken", b"\xff\xfe binary \x01 and a NUL \x00 here", b"",
             b"HTTP/1.1 502 Bad Gateway\r", b'{"jsonrpc":"2.0"} trailing garbage',
             b'{"jsonrpc":"2.0","method":"fine"}']
    data = b"\n".join(lines) + b"\n"
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data                      # relayed unchanged
    t = only_tape(spec)
    assert t.status == tapestore.FINALIZED
    for d in (C2S, S2C):
        frames = by_dir(t, d)
        assert [f.raw for f in frames] == lines
        assert [f.invalid_json for f in frames] == [True] * 6 + [False]
        assert not any(f.is_error for f in frames)
    # The flagged frames' messages are JSON strings, so JSON readers never break.
    assert json.loads(by_dir(t, C2S)[0].message_text) == "not json"


def test_a_20_mib_message_is_relayed_and_recorded_as_oversize(tmp_path):
    big = (b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"blob":"'
           + b"x" * (20 << 20) + b'"}}')
    not_json = b"<" + b"y" * (20 << 20)
    data = big + b"\n" + not_json + b"\n"
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    t = only_tape(spec)
    for d in (C2S, S2C):
        f, g = by_dir(t, d)
        assert f.oversize and not f.invalid_json
        assert f.oversize_length == len(big)
        assert f.oversize_sha256 == hashlib.sha256(big).hexdigest()
        assert f.raw == big[:1024]
        assert g.oversize and g.oversize_length == len(not_json)
        assert g.oversize_sha256 == hashlib.sha256(not_json).hexdigest()
        assert g.raw == not_json[:1024]
    # The oversize request keeps its correlation id.
    assert by_dir(t, C2S)[0].correlation_id == "client:9"


def test_the_line_limit_is_the_stores(tmp_path):
    """A store configured with a smaller max_line_bytes gets oversize frames
    for what it cannot hold, and whole frames for the rest."""
    small = b'{"jsonrpc":"2.0","method":"m","params":{"s":"' + b"a" * 500 + b'"}}'
    large = b'{"jsonrpc":"2.0","method":"m","params":{"s":"' + b"b" * 10000 + b'"}}'
    spec = fs_spec(tmp_path / "tapes", max_line_bytes=4096)
    r = run(["--store", spec], small + b"\n" + large + b"\n")
    assert r.returncode == 0, r.stderr
    t = only_tape(spec)
    f, g = by_dir(t, C2S)
    assert not f.oversize and f.raw == small
    assert g.oversize and g.oversize_length == len(large)


def test_lone_surrogate_escapes_are_recorded_verbatim(tmp_path):
    line = (b'{"jsonrpc":"2.0","id":"\\ud83d","method":"tools/call","params":'
            b'{"text":"half \\ud83d emoji, low \\udc00 alone, a pair \\ud83d\\ude00, \\\\ud800 no"}}')
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], line + b"\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == line + b"\n"
    t = only_tape(spec)
    for f in t.frames():
        assert f.raw == line and not f.invalid_json
        assert f.message["params"]["text"].startswith("half \ud83d emoji")
    # Read as a request: its id (a lone surrogate) made a correlation id.
    assert by_dir(t, C2S)[0].correlation_id is not None


def test_an_unknown_store_is_a_clear_error_and_no_server_starts(tmp_path):
    marker = tmp_path / "server-started"
    server = ["/bin/sh", "-c", f"touch {marker}"]
    r = run(["--store", "nosuch:"], server=server)
    assert r.returncode == EXIT_STORE
    assert b'tape-proxy: cannot open the store "nosuch:": TAPE_ENOTFOUND: no provider named "nosuch"' \
        in r.stderr
    r = run(["--store", 'filesystem:{"path":"x","bogus":1}'], server=server, cwd=tmp_path)
    assert r.returncode == EXIT_STORE
    assert b'unknown config key "bogus"' in r.stderr
    assert not marker.exists()


def test_a_taken_id_is_refused_before_the_server_starts(tmp_path):
    spec = fs_spec(tmp_path / "tapes")
    assert run(["--store", spec, "--id", "same"], b"{}\n").returncode == 0
    r = run(["--store", spec, "--id", "same"], b"{}\n")
    assert r.returncode == EXIT_STORE
    assert b'cannot start recording into' in r.stderr and b"TAPE_EEXISTS" in r.stderr


def limit_file_size(nbytes):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return preexec


def test_a_store_that_fails_mid_session_does_not_stop_the_relay(tmp_path):
    """The filesystem store hits a file size limit (RLIMIT_FSIZE: EFBIG, as a
    full disk would give ENOSPC) after some frames. Relaying goes on, the
    failure is reported once, the exit status says the tape is incomplete,
    and the tape keeps the frames stored before the failure."""
    lines = [b'{"jsonrpc":"2.0","method":"notifications/message","params":{"n":%d,"pad":"%s"}}'
             % (i, b"p" * 1000) for i in range(300)]
    data = b"\n".join(lines) + b"\n"
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], data, preexec_fn=limit_file_size(96 * 1024))
    assert r.stdout == data                      # every line relayed
    assert r.returncode == EXIT_INCOMPLETE, r.stderr
    err = r.stderr.decode()
    assert err.count("the store failed, recording stopped (relaying goes on)") == 1
    assert re.search(r"tape \S+ is incomplete: the store failed \(appending a frame: TAPE_ELIMIT: ",
                     err), err
    assert "exit status 75 (tape incomplete) instead of the server's 0" in err
    t = only_tape(spec)
    assert t.status == tapestore.RECORDING       # abandoned, as a crash leaves it
    frames = list(t.frames())
    assert 10 < len(frames) < 600
    c2s = [f.raw for f in frames if f.direction == C2S]
    assert c2s == lines[:len(c2s)]


def test_a_provider_error_mid_session(tmp_path):
    """The memory provider refuses appends past max_bytes: same outcome."""
    lines = [b'{"jsonrpc":"2.0","method":"m","params":{"n":%d,"pad":"%s"}}' % (i, b"q" * 500)
             for i in range(100)]
    data = b"\n".join(lines) + b"\n"
    r = run(["--store", 'memory:{"max_bytes": 20000}'], data)
    assert r.stdout == data
    assert r.returncode == EXIT_INCOMPLETE
    err = r.stderr.decode()
    assert err.count("the store failed, recording stopped") == 1 and "TAPE_ELIMIT" in err
    assert "tapestore: memory provider: tapes live only in this process" in err  # the log hook


def test_drop_when_full_counts_what_it_drops(tmp_path):
    """A queue of one frame and a store that syncs every frame cannot keep up
    with a flood: frames are dropped, counted on stderr and in the metadata,
    and the relay never waits (every line reaches the client)."""
    n = 20000
    spec = fs_spec(tmp_path / "tapes", durability="always")
    r = run(["--store", spec, "--queue", "1", "--drop-when-full"],
            server=FAKE_SERVER + ["--flood", str(n)])
    out = lines_of(r.stdout)
    assert len(out) == n and json.loads(out[-1])["params"]["i"] == n - 1
    assert r.returncode == EXIT_INCOMPLETE, r.stderr
    m = re.search(rb"tape \S+ is incomplete: (\d+) frames dropped because the queue was full",
                  r.stderr)
    assert m, r.stderr
    dropped = int(m.group(1))
    t = only_tape(spec)
    assert t.status == tapestore.FINALIZED
    assert t.environment["proxy"]["dropped_frames"] == dropped
    assert t.environment["proxy"]["drop_when_full"] is True and t.environment["proxy"]["queue"] == 1
    frames = list(t.frames())
    assert dropped > 0 and len(frames) + dropped == n
    kept = [json.loads(f.raw)["params"]["i"] for f in frames]
    assert kept == sorted(kept) and len(set(kept)) == len(kept)   # in order, no duplicates
    assert [f.raw for f in frames] == [out[i] for i in kept]


def test_a_full_queue_makes_the_relay_wait_by_default(tmp_path):
    n = 20000
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec, "--queue", "1"], server=FAKE_SERVER + ["--flood", str(n)])
    assert r.returncode == 0, r.stderr
    out = lines_of(r.stdout)
    t = only_tape(spec)
    assert [f.raw for f in t.frames()] == out and len(out) == n
    assert t.environment["proxy"]["dropped_frames"] == 0


def test_the_servers_exit_status_is_the_proxys(tmp_path):
    r = run(["--store", fs_spec(tmp_path / "t")], b"{}\n", server=FAKE_SERVER + ["--exit", "3"])
    assert r.returncode == 3 and r.stdout == b"{}\n"
    t = only_tape(fs_spec(tmp_path / "t"))
    assert t.environment["proxy"]["server_exit"] == {"code": 3}


def test_a_last_line_without_newline_is_relayed_and_recorded(tmp_path):
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], b'{"a":1}\n{"b":2}')
    assert r.returncode == 0 and r.stdout == b'{"a":1}\n{"b":2}'
    t = only_tape(spec)
    assert [f.raw for f in by_dir(t, C2S)] == [b'{"a":1}', b'{"b":2}']
    assert [f.raw for f in by_dir(t, S2C)] == [b'{"a":1}', b'{"b":2}']


def test_usage_errors(tmp_path):
    cases = [
        ([], b"no server command given"),
        (["--queue", "0"], b'--queue: expected a number of frames from 1 to 1000000, got "0"'),
        (["--grace", "soon"], b'--grace: expected milliseconds from 0 to 3600000, got "soon"'),
        (["--id", "../x"], b"--id: "),
        (["--tag", ""], b"--tag: a tag cannot be empty"),
        (["--frobnicate"], b'unknown option "--frobnicate"'),
        (["--store"], b"option --store needs a value"),
    ]
    for args, msg in cases:
        server = [] if args == [] or args == ["--store"] else FAKE_SERVER
        cmd = [PROXY, *args] + (["--", *server] if server else [])
        r = subprocess.run(cmd, capture_output=True, timeout=30, env=CHILD_ENV, cwd=tmp_path)
        assert r.returncode == EXIT_USAGE, (args, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
        assert b"run 'tape-proxy --help' for usage" in r.stderr
    assert not (tmp_path / "tapes").exists()     # nothing was opened


def test_a_server_that_cannot_run_leaves_no_tape(tmp_path):
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], server=[str(tmp_path / "no-such-server")])
    assert r.returncode == 127
    assert f'cannot run the server "{tmp_path / "no-such-server"}": No such file or directory' \
        in r.stderr.decode()
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    r = run(["--store", spec], server=[str(plain)])
    assert r.returncode == 126 and b"Permission denied" in r.stderr
    with tapestore.open(spec) as store:
        assert list(store.query()) == []


def test_help_documents_every_option():
    r = subprocess.run([PROXY, "--help"], capture_output=True, timeout=30, env=CHILD_ENV)
    assert r.returncode == 0
    for opt in (b"--store SPEC", b"--name NAME", b"--tag TAG", b"--id ID", b"--id-file FILE",
                b"--queue N", b"--drop-when-full", b"--grace MS", b"TAPESTORE_STORE",
                b"filesystem:./tapes", b"64 ", b"75 ", b"78 ", b"SIGINT"):
        assert opt in r.stdout, opt
    v = subprocess.run([PROXY, "--version"], capture_output=True, timeout=30, env=CHILD_ENV)
    assert v.returncode == 0 and v.stdout.startswith(b"tape-proxy 0.")
    assert os.path.basename(PROXY) == "tape-proxy"


def test_batches_cancellations_and_odd_ids_are_recorded_as_they_are(tmp_path):
    """A batch is one frame and its members are correlated; a cancellation
    is a notification; string ids, lone-surrogate ids and a failing request
    are correlated with their answers (fake_server.py --answer)."""
    sent = [
        b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"note"},'
        b'{"jsonrpc":"2.0","id":"two","method":"fail"}]',
        b'{"jsonrpc":"2.0","id":3,"method":"slow"}',
        b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}',
        b'{"jsonrpc":"2.0","id":"\\ud83d","method":"half"}',
        b'{"jsonrpc":"2.0","id":1.5e0,"method":"float"}',
    ]
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], b"\n".join(sent) + b"\n", server=FAKE_SERVER + ["--answer"])
    assert r.returncode == 0, r.stderr
    t = only_tape(spec)
    frames = list(t.frames())
    assert [f.raw for f in frames if f.direction == C2S] == sent
    answers = [f for f in frames if f.direction == S2C]
    assert answers[0].message == [{"jsonrpc": "2.0", "id": 1, "result": {"echo": "a"}},
                                  {"jsonrpc": "2.0", "id": "two",
                                   "error": {"code": -32000, "message": "failed"}}]
    seq = {f.raw: f.seq for f in frames}
    got = {c.id: (c.request_seq, c.response_seq, c.status) for c in t.correlations}
    batch, batch_answer = frames[0].seq, answers[0].seq
    assert got["client:1"] == (batch, batch_answer, "ok")
    assert got['client:"two"'] == (batch, batch_answer, "error")
    assert got["client:3"] == (seq[sent[1]], answers[1].seq, "ok")
    assert len(got) == 5            # + the lone-surrogate id and the float id
    # The batch frame carries no correlation id; single messages do.
    assert frames[0].correlation_id is None
    cancel = next(f for f in frames if f.raw == sent[2])
    assert cancel.correlation_id is None
    assert t.stats.error_count == 0    # a batch holding an error is not an error object


def test_the_man_page_renders_and_documents_every_option():
    page = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "man", "tape-proxy.1")
    r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", page], capture_output=True,
                       timeout=30, env=CHILD_ENV)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    text = subprocess.run(["groff", "-man", "-Tascii", "-P", "-cbou", page], capture_output=True,
                          timeout=30, env=CHILD_ENV).stdout.decode()
    text = re.sub(r"-\s*\n\s*", "-", text)       # words hyphenated at line ends
    help_text = subprocess.run([PROXY, "--help"], capture_output=True, timeout=30,
                               env=CHILD_ENV).stdout.decode()
    options = set(re.findall(r"(--[a-z][a-z-]+)", help_text))
    assert {"--store", "--drop-when-full", "--grace", "--id-file", "--version"} <= options
    for opt in options:
        assert opt in text, opt
    for code in ("64", "71", "75", "78", "126", "127"):
        assert code in text, code
    assert "TAPESTORE_STORE" in text


def test_a_line_written_in_pieces_is_one_frame_timed_at_its_end(tmp_path):
    spec = fs_spec(tmp_path / "tapes")
    p = subprocess.Popen([PROXY, "--store", spec, "--", *FAKE_SERVER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV)
    try:
        p.stdin.write(b'{"jsonrpc":"2.0",')
        p.stdin.flush()
        # The first piece is relayed at once, before its line is complete.
        assert p.stdout.read1(100) == b'{"jsonrpc":"2.0",'
        time.sleep(0.4)
        p.stdin.write(b'"method":"split"}\n{"jsonrpc":"2.0","method":"next"}\n')
        p.stdin.close()
        rest = p.stdout.read()
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert rest == b'"method":"split"}\n{"jsonrpc":"2.0","method":"next"}\n'
    t = only_tape(spec)
    first, second = by_dir(t, C2S)
    assert first.raw == b'{"jsonrpc":"2.0","method":"split"}'
    assert second.raw == b'{"jsonrpc":"2.0","method":"next"}'
    assert first.ts >= 400 - 50 and abs(second.ts - first.ts) <= 50


def test_a_closed_stdout_is_not_mistaken_for_a_pipe(tmp_path):
    """Started with stdout closed, the proxy relays to /dev/null instead of
    handing fd 1 to one of its pipes."""
    spec = fs_spec(tmp_path / "tapes")
    r = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", PROXY, "--store", spec, "--",
                        *FAKE_SERVER], input=b'{"jsonrpc":"2.0","method":"m"}\n',
                       capture_output=True, timeout=60, env=CHILD_ENV)
    assert r.returncode == 0, r.stderr
    t = only_tape(spec)
    assert [f.direction for f in t.frames()] == [C2S, S2C]


def test_the_queue_is_bounded_in_bytes_too(tmp_path):
    """Six 20 MiB lines each way: far fewer than --queue 1000 frames, but
    more than the queue's 64 MiB. The recorder (which hashes each line for
    its oversize frame) is several times slower than the relay, so with
    --drop-when-full some lines are dropped: only the byte bound can have
    made the queue full."""
    lines = [b'{"n":%d,"s":"' % i + bytes([97 + i]) * (20 << 20) + b'"}' for i in range(6)]
    data = b"\n".join(lines) + b"\n"
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec, "--queue", "1000", "--drop-when-full"], data, timeout=300)
    assert r.stdout == data
    assert r.returncode == EXIT_INCOMPLETE, r.stderr
    t = only_tape(spec)
    dropped = t.environment["proxy"]["dropped_frames"]
    frames = list(t.frames())
    assert dropped > 0 and len(frames) + dropped == 12
    for f in frames:
        i = int(f.raw[5:6])                 # {"n":I,...
        assert f.oversize and f.oversize_sha256 == hashlib.sha256(lines[i]).hexdigest()


def test_a_request_the_core_refuses_as_json_is_not_correlated(tmp_path):
    """A raw tab inside a string: cJSON would read it, RFC 8259 and the core
    do not. It is an invalid_json frame, and no correlation points at it."""
    line = b'{"jsonrpc":"2.0","id":5,"method":"has\ta tab"}'
    spec = fs_spec(tmp_path / "tapes")
    r = run(["--store", spec], line + b"\n", server=FAKE_SERVER + ["--answer"])
    assert r.returncode == 0, r.stderr
    t = only_tape(spec)
    req, answer = list(t.frames())
    assert req.invalid_json and req.raw == line and req.correlation_id is None
    assert json.loads(answer.raw)["id"] == 5        # a lenient server answered it
    assert t.correlations == []


def test_the_servers_stderr_passes_through(tmp_path):
    server = ["/bin/sh", "-c", "printf 'server log line\\n\\001raw bytes\\377\\n' >&2; cat"]
    r = run(["--store", fs_spec(tmp_path / "tapes")], b"{}\n", server=server)
    assert r.returncode == 0 and r.stdout == b"{}\n"
    assert b"\nserver log line\n\x01raw bytes\xff\n" in b"\n" + r.stderr
