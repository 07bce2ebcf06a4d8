"""`tapestore tail -f` follows a recording made by another process: every
frame, in order, as it is appended; it ends when the tape is finalized, or
on SIGINT."""
import json
import os
import signal
import subprocess
import sys
import time

import tapestore
from conftest import BIN, NOTFOUND, OK, child_env

RECORDER = r"""
import sys, time, tapestore
spec, id, n, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "hold"
store = tapestore.open(spec)
with store.record(id=id, name="live recording", tags=["live"]) as w:
    print("started", flush=True)
    for i in range(n):
        if i % 2 == 0:
            w.append(tapestore.CLIENT_TO_SERVER,
                     {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"n": i}})
        else:
            w.append(tapestore.SERVER_TO_CLIENT, {"jsonrpc": "2.0", "id": i - 1, "result": {}})
        time.sleep(0.04)          # about 2 s for 50 frames
    if hold:
        sys.stdin.readline()      # keep the recording open until told
store.close()
print("finished", flush=True)
"""


def start_recorder(spec, id, n, hold=False):
    p = subprocess.Popen([sys.executable, "-c", RECORDER, spec, id, str(n),
                          "hold" if hold else "go"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ))
    assert p.stdout.readline() == b"started\n"
    return p


def tail(*args):
    return subprocess.Popen([BIN, "tail", "-f", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env())


def test_tail_f_prints_every_frame_in_order_and_exits_at_finalize(tmp_path):
    spec = f"filesystem:{tmp_path / 'tapes'}"
    rec = start_recorder(spec, "live-1", 50)
    try:
        raw = tail("-n", "all", "--raw", "--interval", "50", "--store", spec, "live-1")
        js = tail("-n", "all", "--json", "--store", spec, "live-1")
        human = tail("-n", "all", "--store", spec, "live-1")
        assert rec.wait(timeout=60) == 0
        outs = [p.communicate(timeout=30) for p in (raw, js, human)]
    finally:
        rec.kill()
    for p, (out, err) in zip((raw, js, human), outs):
        assert p.returncode == OK, err
    with tapestore.open(spec) as s:
        t = s.load("live-1")
        assert t.status == tapestore.FINALIZED
        want = [f.line for f in t.frames()]
    assert len(want) == 50
    assert outs[0][0].splitlines() == want                      # --raw: the stored lines
    objs = [json.loads(l) for l in outs[1][0].splitlines()]      # --json -f: one object a line
    assert [o["seq"] for o in objs] == list(range(50))
    assert [o["direction"] for o in objs[:2]] == ["client_to_server", "server_to_client"]
    assert objs[1]["method"] == "tools/call" and objs[1]["kind"] == "response"
    rows = [l.split() for l in outs[2][0].decode().splitlines()]
    assert [r[0] for r in rows] == [str(i) for i in range(50)]


def test_tail_f_starts_with_the_last_n_frames(tmp_path):
    spec = f"filesystem:{tmp_path / 'tapes'}"
    rec = start_recorder(spec, "live-2", 30)
    try:
        time.sleep(0.6)  # some frames before tail starts
        p = tail("-n", "2", "--raw", "--store", spec, "live-2")
        assert rec.wait(timeout=60) == 0
        out, err = p.communicate(timeout=30)
    finally:
        rec.kill()
    assert p.returncode == OK, err
    with tapestore.open(spec) as s:
        want = [f.line for f in s.load("live-2").frames()]
    got = out.splitlines()
    assert 2 < len(got) < 30 and got == want[-len(got):]   # a suffix: no gap, no repeat


def test_tail_f_stops_on_sigint(tmp_path):
    spec = f"filesystem:{tmp_path / 'tapes'}"
    rec = start_recorder(spec, "live-3", 4, hold=True)
    try:
        p = tail("--raw", "--store", spec, "live-3")
        time.sleep(1.0)          # the 4 frames are printed, then it waits
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        assert p.returncode == OK, err
        assert len(out.splitlines()) == 4
        rec.stdin.write(b"\n")
        rec.stdin.close()
        assert rec.wait(timeout=30) == 0
    finally:
        rec.kill()


def test_tail_f_of_a_finalized_tape_prints_it_and_exits(tmp_path):
    spec = f"filesystem:{tmp_path / 'tapes'}"
    rec = start_recorder(spec, "done-1", 4)
    assert rec.wait(timeout=30) == 0
    p = tail("--raw", "--store", spec, "done-1")
    out, err = p.communicate(timeout=10)
    assert p.returncode == OK and len(out.splitlines()) == 4, err
    p = tail("--store", spec, "nope")
    out, err = p.communicate(timeout=10)
    assert p.returncode == NOTFOUND and b'no tape "nope"' in err
