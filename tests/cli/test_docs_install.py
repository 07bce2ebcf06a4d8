"""docs/cli.md and the man page describe every command and flag the program
has; `cmake --install` puts the program (which then runs with no
LD_LIBRARY_PATH) and tapestore(1) in place."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, OK, ROOT, run
from test_commands import COMMANDS

CLI_MD = (ROOT / "docs" / "cli.md").read_text()
MAN = (ROOT / "docs" / "man" / "tapestore.1").read_text()


def flags_of(cmd):
    return set(re.findall(r"(--[a-z][a-z-]+)", run(cmd, "--help").text))


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_and_flag_is_documented(cmd):
    assert f"### `{cmd}" in CLI_MD
    assert f".B {cmd}" in MAN
    for flag in flags_of(cmd):
        assert f"`{flag}" in CLI_MD, (cmd, flag)
        assert flag.replace("-", r"\-") in MAN or flag in ("--colour",), (cmd, flag)


def test_exit_codes_are_documented_alike():
    for doc in (CLI_MD,):
        for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
            assert code in doc
    assert "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found" in run("--help").text
    for code in (".B 0", ".B 1", ".B 2", ".B 3"):
        assert code in MAN


def test_install_puts_the_program_and_the_man_page(tmp_path):
    build = Path(BIN).resolve().parents[1]
    if not (build / "cmake_install.cmake").exists():
        pytest.fail(f"{build} is not a CMake build tree")
    prefix = tmp_path / "prefix"
    p = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    prog = prefix / "bin" / "tapestore"
    man = next(prefix.glob("share/man/man1/tapestore.1"))
    assert man.read_text() == MAN
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    if "TAPE_CLI_SANITIZE" in env:
        env["ASAN_OPTIONS"] = "detect_leaks=1"
    r = subprocess.run([str(prog), "ls", "--store", f"filesystem:{tmp_path / 't'}", "--json"],
                       capture_output=True, env=env)
    assert r.returncode == OK, r.stderr
    ldd = shutil.which("ldd")
    if ldd:
        out = subprocess.run([ldd, str(prog)], capture_output=True, text=True).stdout
        assert str(prefix) in out and "not found" not in out, out
