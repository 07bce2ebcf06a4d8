#!/usr/bin/python3
"""pipe_tap.py - run a command between two pipes and log every byte that crosses.

    pipe_tap.py LOGDIR -- COMMAND [ARGS...]

Our stdin goes to COMMAND's stdin and COMMAND's stdout comes back to our
stdout, unchanged; the bytes are also appended to LOGDIR/c2s.bin and
LOGDIR/s2c.bin. The e2e tests put it between the SDK client and tape-proxy,
so the transcript is what really crossed the proxy's pipes. End of file is
passed on in both directions; the exit status is COMMAND's. Our pid and
COMMAND's are written to LOGDIR/pids ("TAP CHILD"), COMMAND's exit status
(negative: killed by that signal) to LOGDIR/status.
"""
import os
import signal
import subprocess
import sys
import threading


def pump(src, dst, log, close_dst):
    try:
        while True:
            data = os.read(src, 65536)
            if not data:
                break
            log.write(data)
            log.flush()
            try:
                _write_all(dst, data)
            except BrokenPipeError:
                break
    finally:
        close_dst()


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.stderr.write("usage: pipe_tap.py LOGDIR -- COMMAND [ARGS...]\n")
        return 64
    logdir = sys.argv[1]
    child = subprocess.Popen(sys.argv[3:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    with open(os.path.join(logdir, "pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    # Signals meant for us go to the command (the tests signal the proxy directly).
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda n, _f: child.send_signal(n))
    c2s = open(os.path.join(logdir, "c2s.bin"), "ab")
    s2c = open(os.path.join(logdir, "s2c.bin"), "ab")
    t1 = threading.Thread(target=pump, args=(0, child.stdin.fileno(), c2s, child.stdin.close),
                          daemon=True)
    t2 = threading.Thread(target=pump, args=(child.stdout.fileno(), 1, s2c, lambda: os.close(1)),
                          daemon=True)
    t1.start()
    t2.start()
    rc = child.wait()
    t2.join()
    with open(os.path.join(logdir, "status"), "w") as f:
        f.write(f"{rc}\n")
    # t1 may still wait on our stdin; its log is flushed after every read.
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
