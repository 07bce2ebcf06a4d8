"""Helpers of the `tapestore` command's tests (ctest cli, cli_s3): the
program is run as a subprocess; stores are prepared and inspected with the
Python binding (PYTHONPATH=build/bindings/python)."""
import json
import os
import subprocess
from pathlib import Path

import pytest

import tapestore

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TAPESTORE_BIN", str(ROOT / "build" / "tools" / "tapestore"))
PREFIX_PLUGIN = os.environ.get("TAPE_PREFIX_PLUGIN",
                               str(ROOT / "build" / "examples" / "tapestore-prefix.so"))

# Exit codes (docs/cli.md).
OK, FAIL, USAGE, NOTFOUND = 0, 1, 2, 3


def child_env(extra=None, args=()):
    """The environment of the program: ours, minus a preloaded sanitizer
    runtime (an instrumented program has its own), and never a store or
    plugins inherited from the caller."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("TAPESTORE_STORE", None)
    env.pop("TAPESTORE_PLUGINS", None)
    env.pop("NO_COLOR", None)
    env.update(extra or {})
    if "TAPE_CLI_SANITIZE" in env:
        # Leaks are checked, except in a run that embeds Python (a .py
        # plugin): the interpreter keeps memory until the process ends.
        python = any(str(a).endswith(".py") for a in args) or \
            ".py" in env.get("TAPESTORE_PLUGINS", "")
        env["ASAN_OPTIONS"] = "detect_leaks=0" if python else "detect_leaks=1"
    return env


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr.decode("utf-8", "replace")

    @property
    def text(self):
        return self.out.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<exit {self.code} out={self.out[:2000]!r} err={self.err[:2000]!r}>"


def run(*args, env=None, cwd=None, input=None, timeout=120):
    proc = subprocess.run([BIN, *map(str, args)], capture_output=True, env=child_env(env, args),
                          cwd=cwd, input=input, timeout=timeout)
    return Result(proc)


def make_tape(id=None, name="t", tags=(), n=4, error=False):
    """A tape with n frames: request/response pairs, correlated; the last
    response is an error when `error`."""
    t = tapestore.Tape(name=name, tags=list(tags), id=id)
    for i in range(0, n, 2):
        a = t.append(tapestore.CLIENT_TO_SERVER,
                     {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"i": i}},
                     ts_ms=i * 10)
        if i + 1 < n:
            last = i + 2 >= n
            msg = ({"jsonrpc": "2.0", "id": i, "error": {"code": -32602, "message": "bad input"}}
                   if error and last else {"jsonrpc": "2.0", "id": i, "result": {"ok": i}})
            b = t.append(tapestore.SERVER_TO_CLIENT, msg, ts_ms=i * 10 + 7)
            t.add_correlation(str(i), a, b, rtt_ms=7, status="error" if error and last else "success")
    return t


@pytest.fixture
def fs_spec(tmp_path):
    return f"filesystem:{tmp_path / 'tapes'}"


@pytest.fixture
def fs_store(fs_spec):
    s = tapestore.open(fs_spec)
    yield s
    s.close()
