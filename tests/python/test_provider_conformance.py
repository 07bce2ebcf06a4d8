"""The conformance suite the C providers pass, run in-process through the
trampolines against Python providers (tests/python/providers_dict.py)."""
import os
import subprocess
import sys

import pytest

import tapestore
import tapestore.conformance as conf

sys.path.insert(0, os.path.dirname(__file__))
from providers_dict import DictStore, MinimalStore  # noqa: E402


@pytest.mark.parametrize("name,cls", [("pyconf_dict", DictStore), ("pyconf_min", MinimalStore)])
def test_whole_suite_passes(name, cls):
    tapestore.register_provider(name, cls)
    try:
        lines = []
        r = conf.run(name, "{}", emit=lines.append)
        failed = [ln for ln in lines if ln.startswith("not ok")]
        assert r.failed == 0, "\n".join(lines)
        assert not failed
        assert r.passed == len(conf.case_names()) - r.skipped
        assert r.passed > 0
    finally:
        tapestore.unregister_provider(name)


def test_unknown_provider_raises_not_found():
    with pytest.raises(tapestore.NotFound):
        conf.run("no_such_provider_here", emit=None)


def test_command_runs_a_python_plugin(tmp_path):
    plugin = tmp_path / "myplugin.py"
    plugin.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "import tapestore\n"
        "from providers_dict import DictStore\n"
        "tapestore.register_provider('pyconf_cli', DictStore)\n")
    p = subprocess.run([sys.executable, "-m", "tapestore.conformance", "pyconf_cli", "{}",
                        "--plugin", str(plugin), "--only", "save"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok 1" in p.stdout and "not ok" not in p.stdout
    p = subprocess.run([sys.executable, "-m", "tapestore.conformance", "nosuch"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Bail out!" in p.stdout
