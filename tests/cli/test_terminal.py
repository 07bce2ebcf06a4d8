"""Colour only on a terminal, NO_COLOR honoured, and migrate's progress bar
on a terminal: the program runs with a pty (Python's pty module) as its
stdout and stderr."""
import os
import pty
import select
import subprocess

from conftest import BIN, OK, child_env, make_tape, run

ESC = b"\x1b["


def run_on_pty(*args, env=None, timeout=60):
    """Run with stdout and stderr on one pty; (exit code, everything written)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, *map(str, args)], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave, env=child_env(env))
    os.close(slave)
    out = b""
    try:
        while True:
            r, _, _ = select.select([master], [], [], timeout)
            if not r:
                raise TimeoutError(f"no output for {timeout} s: {out!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        code = p.wait(timeout=timeout)
    return code, out


def store_with_tapes(fs_store, n=3):
    for i in range(n):
        fs_store.save(make_tape(id=f"c{i}", name=f"colour {i}", tags=["t"], n=4, error=True))


def test_colour_on_a_terminal_only(fs_spec, fs_store):
    store_with_tapes(fs_store)
    code, out = run_on_pty("ls", "--store", fs_spec, env={"TERM": "xterm"})
    assert code == OK and ESC in out, out
    assert b"\x1b[1mID" in out  # the header is bold
    code, out = run_on_pty("show", "c0", "--store", fs_spec, env={"TERM": "xterm"})
    assert code == OK and b"\x1b[31merror" in out, out  # an error frame in red
    r = run("ls", "--store", fs_spec)  # a pipe: no colour
    assert r.code == OK and ESC not in r.out
    r = run("ls", "--store", fs_spec, "--color", "always")
    assert ESC in r.out
    code, out = run_on_pty("ls", "--store", fs_spec, "--color", "never", env={"TERM": "xterm"})
    assert code == OK and ESC not in out


def test_no_color_is_honoured(fs_spec, fs_store):
    store_with_tapes(fs_store)
    for args in (["ls"], ["show", "c0"], ["stats"], ["providers"], ["show", "nope"]):
        code, out = run_on_pty(*args, "--store", fs_spec, env={"NO_COLOR": "1", "TERM": "xterm"})
        assert ESC not in out, (args, out)
    # an error message is coloured on a terminal without NO_COLOR
    code, out = run_on_pty("show", "nope", "--store", fs_spec, env={"TERM": "xterm"})
    assert code == 3 and b"\x1b[31merror" in out, out
    # an empty NO_COLOR does not count (no-color.org)
    code, out = run_on_pty("ls", "--store", fs_spec, env={"NO_COLOR": "", "TERM": "xterm"})
    assert ESC in out


def test_migrate_shows_a_progress_bar_on_a_terminal(tmp_path, fs_spec, fs_store):
    store_with_tapes(fs_store, n=5)
    code, out = run_on_pty("migrate", "--from", fs_spec, "--to", f"sqlite:{tmp_path / 'd.db'}",
                           env={"NO_COLOR": "1", "TERM": "xterm"})
    assert code == OK, out
    assert out.count(b"\r\x1b[K[") == 5, out        # one redraw of the bar per tape
    assert b"[" + b"#" * 30 + b"] 5/5 copied c4" in out
    assert b"[1/5]" not in out                       # no plain lines on a terminal
