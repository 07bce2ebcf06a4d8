"""Fixtures of the Python binding's tests (run by ctest as python_api)."""
import pytest

import tapestore


@pytest.fixture(params=["memory", "filesystem", "sqlite"])
def store(request, tmp_path):
    """An open store of each builtin provider, closed after the test."""
    if request.param == "memory":
        s = tapestore.open("memory:")
    elif request.param == "filesystem":
        s = tapestore.open("filesystem", path=str(tmp_path / "tapes"))
    else:
        s = tapestore.open(f"sqlite:{tmp_path / 'tapes.db'}")
    yield s
    s.close()


@pytest.fixture
def mem():
    s = tapestore.open("memory:")
    yield s
    s.close()


def make_tape(name="t", tags=(), n=2, id=None):
    t = tapestore.Tape(name=name, tags=list(tags), id=id)
    for i in range(n):
        direction = tapestore.CLIENT_TO_SERVER if i % 2 == 0 else tapestore.SERVER_TO_CLIENT
        if i % 2 == 0:
            t.append(direction, {"jsonrpc": "2.0", "id": i, "method": "tools/call"})
        else:
            t.append(direction, {"jsonrpc": "2.0", "id": i - 1, "result": {}})
    return t


def pytest_configure(config):
    # The S3 provider under the whole conformance suite takes about a minute
    # against s3rver: its own ctest (python_s3_conformance), run once per CI
    # run and not again under the sanitizers.
    config.addinivalue_line("markers", "s3_conformance: the S3 provider under the conformance suite")
