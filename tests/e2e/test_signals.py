"""How tape-proxy ends: SIGINT, SIGTERM, SIGKILL of the proxy, and the
server dying mid-session, all with the real server-everything."""
import os
import signal
import subprocess
import time

import pytest

import tapestore
from conftest import (CHILD_ENV, FAKE_SERVER, INIT, INITIALIZED, PROXY, SERVER, RawSession,
                      children_of, fs_spec, load_tape, wait_for)


def start(procs, tmp_path, *extra, server=SERVER):
    spec = fs_spec(tmp_path / "tapes")
    id_file = tmp_path / "id"
    p = procs.popen([PROXY, "--store", spec, "--id-file", str(id_file), *extra, "--"] + server,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tape_id = wait_for(lambda: id_file.exists() and id_file.read_text().strip(), what="--id-file")
    server_pid = wait_for(lambda: children_of(p.pid), what="the server process")[0]
    procs.add(server_pid)
    return p, spec, tape_id, server_pid


def exchange(p):
    """initialize, initialized, tools/list: 2 requests, 2 responses, 1
    notification from us (and whatever notifications the server sends)."""
    s = RawSession(p)
    sent = [s.send(INIT)]
    s.recv_response(1)
    sent.append(s.send(INITIALIZED))
    sent.append(s.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    s.recv_response(2)
    return sent, s.received


def frames_of(spec, tape_id):
    return list(load_tape(spec, tape_id).frames())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_finalise_the_tape(procs, tmp_path, sig):
    p, spec, tape_id, server_pid = start(procs, tmp_path)
    sent, received = exchange(p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    # The proxy closed the server's stdin; server-everything then exits 0,
    # and that is the proxy's status.
    assert p.returncode == 0, err
    assert f"{signal.Signals(sig).name}: ending the session".encode() in err
    assert b"sending SIGTERM" not in err
    t = load_tape(spec, tape_id)
    assert t.status == tapestore.FINALIZED
    frames = list(t.frames())
    assert [f.raw for f in frames if f.direction == tapestore.CLIENT_TO_SERVER] == sent
    s2c = [f.raw for f in frames if f.direction == tapestore.SERVER_TO_CLIENT]
    assert s2c[:len(received)] == received       # the server may say more before it exits
    assert [(c.id, c.status) for c in t.correlations] == [("client:1", "ok"), ("client:2", "ok")]
    assert t.environment["proxy"]["server_exit"] == {"code": 0}
    wait_for(lambda: not os.path.exists(f"/proc/{server_pid}"), what="the server to be gone")


def test_sigterm_escalates_when_the_server_ignores_stdin_close(procs, tmp_path):
    """A server that neither exits at EOF nor on SIGTERM gets SIGKILL after
    the grace periods; the tape is finalised and the status is 128+9."""
    stubborn = ["/bin/sh", "-c", "trap '' TERM; cat; sleep 600"]
    p, spec, tape_id, _ = start(procs, tmp_path, "--grace", "300", server=stubborn)
    p.stdin.write(b'{"jsonrpc":"2.0","method":"x"}\n')
    p.stdin.flush()
    assert p.stdout.readline() == b'{"jsonrpc":"2.0","method":"x"}\n'
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGKILL, err
    assert b"did not exit 300 ms after its stdin was closed: sending SIGTERM" in err
    assert b"did not exit 300 ms after SIGTERM: sending SIGKILL" in err
    assert time.monotonic() - t0 >= 0.6
    t = load_tape(spec, tape_id)
    assert t.status == tapestore.FINALIZED and len(list(t.frames())) == 2
    assert t.environment["proxy"]["server_exit"] == {"signal": signal.SIGKILL}


def test_sigkill_leaves_a_readable_tape(procs, tmp_path):
    p, spec, tape_id, server_pid = start(procs, tmp_path)
    sent, received = exchange(p)
    # Every frame the recorder appended is in the file (the page cache, with
    # the default durability) once a reader sees it: wait for all of them.
    n = len(sent) + len(received)
    wait_for(lambda: len(frames_of(spec, tape_id)) >= n, what=f"{n} frames on disk")
    p.kill()
    p.wait(timeout=30)
    t = load_tape(spec, tape_id)
    assert t.status == tapestore.RECORDING
    frames = list(t.frames())
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert [f.raw for f in frames if f.direction == tapestore.CLIENT_TO_SERVER] == sent
    assert [f.raw for f in frames if f.direction == tapestore.SERVER_TO_CLIENT][:len(received)] \
        == received
    by_seq = {f.seq: f for f in frames}
    assert [c.id for c in t.correlations] == ["client:1", "client:2"]
    for c, rid in zip(t.correlations, (1, 2)):
        assert by_seq[c.response_seq].message["id"] == rid
        assert by_seq[c.request_seq].message["id"] == rid
    # The orphaned server sees EOF on its stdin and exits by itself.
    wait_for(lambda: not os.path.exists(f"/proc/{server_pid}") or
             open(f"/proc/{server_pid}/stat").read().split()[2] == "Z",
             what="the orphaned server to exit")
    # A store that reads it later is not confused: the id is free to list,
    # and the tape stays readable after another recording in the same store.
    r = subprocess.run([PROXY, "--store", spec, "--"] + FAKE_SERVER, input=b"{}\n",
                       capture_output=True, timeout=60, env=CHILD_ENV)
    assert r.returncode == 0, r.stderr
    with tapestore.open(spec) as store:
        assert {e.id: e.status for e in store.query()}[tape_id] == tapestore.RECORDING


def test_server_killed_mid_session_ends_the_recording(procs, tmp_path):
    p, spec, tape_id, server_pid = start(procs, tmp_path)
    sent, received = exchange(p)
    os.kill(server_pid, signal.SIGKILL)
    # The proxy ends by itself: the client's stdin is still open.
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGKILL, err
    t = load_tape(spec, tape_id)
    assert t.status == tapestore.FINALIZED
    frames = list(t.frames())
    assert [f.raw for f in frames if f.direction == tapestore.CLIENT_TO_SERVER] == sent
    assert t.environment["proxy"]["server_exit"] == {"signal": signal.SIGKILL}
    assert len(t.correlations) == 2


def test_client_closing_stdin_ends_the_session(procs, tmp_path):
    p, spec, tape_id, _ = start(procs, tmp_path, "--tag", "eof")
    sent, received = exchange(p)
    p.stdin.close()
    rest = p.stdout.read()         # the proxy closes our stdout at the server's EOF
    assert p.wait(timeout=60) == 0
    t = load_tape(spec, tape_id)
    assert t.status == tapestore.FINALIZED and t.tags == ["eof"]
    s2c = [f.raw for f in t.frames() if f.direction == tapestore.SERVER_TO_CLIENT]
    assert s2c == received + [x for x in rest.split(b"\n") if x]


def test_client_that_stops_reading_ends_the_session(procs, tmp_path):
    """EPIPE on our stdout (the client is gone) is no crash: the proxy
    closes the server's stdin and finishes the tape."""
    p, spec, tape_id, _ = start(procs, tmp_path)
    sent, received = exchange(p)
    p.stdout.close()
    s = RawSession(p)
    s.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})   # its answer hits EPIPE
    assert p.wait(timeout=60) == 0
    t = load_tape(spec, tape_id)
    assert t.status == tapestore.FINALIZED
    # The ping went through; the answer that could not be delivered is not on the tape.
    c2s = [f.raw for f in t.frames() if f.direction == tapestore.CLIENT_TO_SERVER]
    assert c2s == sent + [b'{"jsonrpc":"2.0","id":3,"method":"ping"}']
    assert [c.id for c in t.correlations] == ["client:1", "client:2"]


def test_another_signal_skips_the_rest_of_the_grace(procs, tmp_path):
    stubborn = ["/bin/sh", "-c", "trap '' TERM; cat; sleep 600"]
    p, spec, tape_id, _ = start(procs, tmp_path, "--grace", "60000", server=stubborn)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    wait_for(lambda: p.poll() is None, what="the proxy still running")
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)         # skip the wait after closing stdin: SIGTERM now
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)        # skip the wait after SIGTERM: SIGKILL now
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 20
    assert p.returncode == 128 + signal.SIGKILL, err
    assert b"SIGINT: ending the session" in err
    assert b"another signal: sending SIGTERM to the server now" in err
    assert b"another signal: sending SIGKILL to the server now" in err
    assert b"did not exit" not in err
    assert load_tape(spec, tape_id).status == tapestore.FINALIZED
