#!/usr/bin/python3
"""fake_server.py - a raw stdio peer for tape-proxy's bad-input tests.

    fake_server.py [--flood N] [--exit CODE]

Echoes every byte it reads on stdin back on stdout, unchanged and in the
chunks it read them (so any line, JSON or not, of any size comes back as
it was sent). --flood N first writes N small notification lines as fast as
it can. At end of file on stdin it exits with CODE (default 0).
"""
import os
import sys


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main():
    args = sys.argv[1:]
    flood, code = 0, 0
    while args:
        a = args.pop(0)
        if a == "--flood":
            flood = int(args.pop(0))
        elif a == "--exit":
            code = int(args.pop(0))
        else:
            sys.stderr.write(f"fake_server.py: unknown option {a}\n")
            return 64
    if flood:
        batch = []
        for i in range(flood):
            batch.append(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"i":%d}}\n' % i)
            if len(batch) == 256:
                write_all(1, b"".join(batch))
                batch = []
        write_all(1, b"".join(batch))
    while True:
        data = os.read(0, 1 << 20)
        if not data:
            return code
        write_all(1, data)


if __name__ == "__main__":
    sys.exit(main())
