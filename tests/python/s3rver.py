"""s3rver (npm, pinned in package.json) as a real S3 peer: started on a free
loopback port by whoever needs it, stopped by its pid. Used by the S3
provider's tests and by tests/bench/python_bench.py."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Tuple

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parents[2]
S3RVER = ROOT / "node_modules" / "s3rver" / "bin" / "s3rver.js"
KEYS = {"aws_access_key_id": "S3RVER", "aws_secret_access_key": "S3RVER"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: str) -> Tuple[subprocess.Popen, str]:
    """Start s3rver storing under data_dir; (process, endpoint URL)."""
    if not S3RVER.exists():
        raise RuntimeError(f"{S3RVER} is missing: run scripts/setup-debian.sh (npm ci)")
    port = free_port()
    # s3rver's continuation tokens use DES, which OpenSSL 3 only has in its
    # legacy provider: without it a listing past 1,000 keys fails.
    env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
    proc = subprocess.Popen(["node", str(S3RVER), "-d", data_dir, "-a", "127.0.0.1",
                             "-p", str(port), "--silent"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"s3rver did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def client(endpoint: str):
    """A boto3 client of the server (path addressing, its fixed keys)."""
    return boto3.session.Session(region_name="us-east-1", **KEYS).client(
        "s3", endpoint_url=endpoint,
        config=botocore.config.Config(signature_version="s3v4",
                                      s3={"addressing_style": "path"}))
