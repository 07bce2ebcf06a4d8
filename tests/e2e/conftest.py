"""Shared helpers of the tape-proxy end-to-end tests (tests/e2e).

The environment (set by tests/e2e/CMakeLists.txt): TAPE_PROXY (the
program), TAPE_NODE (node), TAPE_NODE_MODULES (npm ci's node_modules with
server-everything and the SDK), PYTHONPATH (the Python binding, used to
read tapes back).
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import tapestore

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.environ.get("TAPE_PROXY", "tape-proxy")
NODE = os.environ.get("TAPE_NODE", "node")
NODE_MODULES = os.environ.get("TAPE_NODE_MODULES", os.path.join(HERE, "..", "..", "node_modules"))
SERVER_JS = os.path.join(NODE_MODULES, "@modelcontextprotocol", "server-everything", "dist",
                         "index.js")
SERVER = [NODE, SERVER_JS, "stdio"]
CLIENT = [NODE, os.path.join(HERE, "..", "..", "examples", "c-proxy", "mcp_client.mjs")]
FAKE_SERVER = [sys.executable, os.path.join(HERE, "fake_server.py")]
PIPE_TAP = [sys.executable, os.path.join(HERE, "pipe_tap.py")]
EXIT_USAGE, EXIT_INCOMPLETE, EXIT_STORE = 64, 75, 78

# Under ASan the binding needs the sanitizer runtimes preloaded into this
# interpreter; what we start (node, tape-proxy, fake peers) must not get them.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
CHILD_ENV.pop("TAPESTORE_STORE", None)
if "LD_PRELOAD" in os.environ:
    # Leaks are checked in tape-proxy (an instrumented program), only not
    # in this interpreter.
    CHILD_ENV["ASAN_OPTIONS"] = "detect_leaks=1"


@pytest.fixture(scope="session", autouse=True)
def peers_installed():
    """The real peers must be there: a missing one fails, it is never skipped."""
    missing = [p for p in (SERVER_JS, os.path.join(NODE_MODULES, "@modelcontextprotocol", "sdk"))
               if not os.path.exists(p)]
    if missing:
        pytest.fail(f"npm packages missing ({', '.join(missing)}): run scripts/setup-debian.sh "
                    "(npm ci) in the source tree")
    if subprocess.run([NODE, "--version"], capture_output=True, env=CHILD_ENV).returncode != 0:
        pytest.fail(f"cannot run node ({NODE})")


class Procs:
    """Processes a test started; whatever is still running at the end is killed by pid."""

    def __init__(self):
        self.pids = []

    def add(self, pid):
        self.pids.append(pid)
        return pid

    def popen(self, args, **kw):
        kw.setdefault("env", CHILD_ENV)
        p = subprocess.Popen(args, **kw)
        self.add(p.pid)
        return p

    def kill_all(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.kill_all()


def fs_spec(path, **config):
    return "filesystem:" + json.dumps({"path": str(path), **config})


def load_tape(spec, tape_id):
    with tapestore.open(spec) as store:
        return store.load(tape_id)


def only_tape(spec):
    with tapestore.open(spec) as store:
        entries = list(store.query())
        assert len(entries) == 1, [e.id for e in entries]
        return store.load(entries[0].id)


def children_of(pid):
    """Pids of a process's children (the proxy's server), from /proc."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def wait_for(pred, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def lines_of(data):
    """The lines of a byte stream as a line reader sees them: split on \\n,
    a last line without its newline counted too."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


class RawSession:
    """Talk JSON-RPC to tape-proxy's stdin/stdout by hand."""

    def __init__(self, proc):
        self.proc = proc
        self.received = []

    def send(self, msg):
        line = msg if isinstance(msg, bytes) else json.dumps(msg, separators=(",", ":")).encode()
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        return line

    def recv_response(self, rid, timeout=30.0):
        """Read lines until the response with this id (others are kept too)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"EOF before the response to id {rid}")
            self.received.append(line.rstrip(b"\n"))
            msg = json.loads(line)
            if msg.get("id") == rid and "method" not in msg:
                return msg
        raise AssertionError(f"no response to id {rid} within {timeout} s")


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw-e2e", "version": "0.0.7"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
