#!/usr/bin/python3
"""fake_server.py - a raw stdio peer for tape-proxy's bad-input tests.

    fake_server.py [--flood N] [--exit CODE] [--answer]

Echoes every byte it reads on stdin back on stdout, unchanged and in the
chunks it read them (so any line, JSON or not, of any size comes back as
it was sent). --flood N first writes N small notification lines as fast as
it can. At end of file on stdin it exits with CODE (default 0).

--answer instead answers, line by line: a request gets a result
{"echo": METHOD}, or an error if its method is "fail"; a batch gets a
batch of the answers to its requests; anything else gets no answer.
"""
import json
import os
import sys


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def answer_one(m):
    if not isinstance(m, dict) or "method" not in m or "id" not in m:
        return None
    if m["method"] == "fail":
        return {"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32000, "message": "failed"}}
    return {"jsonrpc": "2.0", "id": m["id"], "result": {"echo": m["method"]}}


def answer_line(line):
    try:
        m = json.loads(line, strict=False)   # control characters in strings too
    except ValueError:
        return None
    if isinstance(m, list):
        out = [a for a in map(answer_one, m) if a is not None]
        return out or None
    return answer_one(m)


def main():
    args = sys.argv[1:]
    flood, code, answer = 0, 0, False
    while args:
        a = args.pop(0)
        if a == "--flood":
            flood = int(args.pop(0))
        elif a == "--answer":
            answer = True
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
    if answer:
        for line in sys.stdin.buffer:
            out = answer_line(line)
            if out is not None:
                write_all(1, json.dumps(out, separators=(",", ":")).encode() + b"\n")
        return code
    while True:
        data = os.read(0, 1 << 20)
        if not data:
            return code
        write_all(1, data)


if __name__ == "__main__":
    sys.exit(main())
