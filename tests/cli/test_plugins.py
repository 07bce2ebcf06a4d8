"""--plugin and TAPESTORE_PLUGINS: a C shared library, Python files (a dict
provider; the S3 provider on s3rver), and each way a plugin can fail: a
clear error naming the file and the cause, with the documented exit code
(3 for a missing file, 1 for any other failure)."""
import sys
from pathlib import Path

import pytest

import tapestore
from conftest import FAIL, NOTFOUND, OK, PREFIX_PLUGIN, ROOT, make_tape, run

DICT_PLUGIN = '''
import json, os, tapestore

class JsonDir:
    """Tapes as files NAME.tape in a directory: persistent across processes,
    required ops only (the core does exists, search, stats, frames)."""
    def __init__(self, config):
        self.dir = config["dir"]
        os.makedirs(self.dir, exist_ok=True)
    def _p(self, id):
        return os.path.join(self.dir, id + ".tape")
    def save(self, tape):
        with open(self._p(tape.id), "wb") as f:
            f.write(tape.to_meta_json() + b"\\0" + tape.to_jsonl())
    def _read(self, id):
        try:
            with open(self._p(id), "rb") as f:
                meta, _, body = f.read().partition(b"\\0")
        except FileNotFoundError:
            return None
        return tapestore.Tape.from_jsonl(body, meta)
    def load(self, id):
        return self._read(id)
    def delete(self, id):
        try:
            os.remove(self._p(id))
        except FileNotFoundError:
            raise tapestore.NotFound(f"jsondir: no tape {id!r}")
    def list(self, query):
        return [self._read(n[:-5]) for n in sorted(os.listdir(self.dir)) if n.endswith(".tape")]

tapestore.register_provider("jsondir", JsonDir, description="tapes as files, in Python")
'''


@pytest.fixture
def dict_plugin(tmp_path):
    p = tmp_path / "jsondir_provider.py"
    p.write_text(DICT_PLUGIN)
    return p


def test_c_plugin(tmp_path):
    r = run("providers", "--json", "--plugin", PREFIX_PLUGIN)
    assert r.code == OK, r
    assert "prefix" in [p["name"] for p in r.json()["providers"]]
    spec = 'prefix:{"prefix": "ok-"}'
    # a memory store lives in one process: import, then list in the same run is not
    # possible, so check the provider answers (empty) and refuses a bad id by its policy
    r = run("ls", "--json", "--plugin", PREFIX_PLUGIN, "--store", spec)
    assert r.code == OK and r.json()["tapes"] == [], r
    t = make_tape(id="bad-1")
    (tmp_path / "bad-1.jsonl").write_bytes(t.to_jsonl())
    r = run("import", tmp_path / "bad-1.jsonl", "--plugin", PREFIX_PLUGIN, "--store", spec)
    assert r.code == FAIL and "ok-" in r.err, r
    # through the environment, colon-separated, empty items skipped
    r = run("providers", "--json", env={"TAPESTORE_PLUGINS": f"::{PREFIX_PLUGIN}:"})
    assert "prefix" in [p["name"] for p in r.json()["providers"]], r


def test_python_plugin_file_registers_a_provider(tmp_path, dict_plugin, fs_spec, fs_store):
    fs_store.save(make_tape(id="p1", name="from fs", n=4))
    spec = f'jsondir:{{"dir": "{tmp_path / "jd"}"}}'
    r = run("providers", "--json", "--plugin", dict_plugin)
    by = {p["name"]: p for p in r.json()["providers"]}
    assert by["jsondir"]["description"] == "tapes as files, in Python", r
    r = run("migrate", "--from", fs_spec, "--to", spec, "--plugin", dict_plugin, "--json")
    assert r.code == OK and r.json()["copied"] == 1, r
    r = run("ls", "--json", "--store", spec, env={"TAPESTORE_PLUGINS": str(dict_plugin)})
    assert [t["tape_id"] for t in r.json()["tapes"]] == ["p1"], r
    r = run("export", "p1", "--store", spec, "--plugin", dict_plugin)
    assert r.code == OK and r.out == fs_store.load("p1").to_jsonl()
    r = run("show", "p1", "--store", spec, "--plugin", dict_plugin, "--json")
    assert r.json()["tape"]["name"] == "from fs"
    r = run("tail", "-n", "all", "--raw", "p1", "--store", spec, "--plugin", dict_plugin)
    assert r.out.splitlines() == [f.line for f in fs_store.load("p1").frames()]
    r = run("rm", "p1", "--store", spec, "--plugin", dict_plugin)
    assert r.code == OK and not (tmp_path / "jd" / "p1.tape").exists()
    # without the plugin the provider is unknown
    r = run("ls", "--store", spec)
    assert r.code == NOTFOUND and 'no provider named "jsondir"' in r.err


def test_a_python_provider_error_reaches_the_command(tmp_path, dict_plugin):
    # the dir is a file: the provider's __init__ raises
    (tmp_path / "afile").write_text("x")
    spec = f'jsondir:{{"dir": "{tmp_path / "afile"}"}}'
    r = run("ls", "--store", spec, "--plugin", dict_plugin)
    assert r.code == FAIL and "FileExistsError" in r.err, r


def test_broken_plugin_files(tmp_path):
    syn = tmp_path / "broken.py"
    syn.write_text("import tapestore\n\ndef f(:\n    pass\n")
    r = run("ls", "--plugin", syn)
    assert r.code == FAIL, r
    assert f"plugin {syn}: failed to load: SyntaxError: invalid syntax (at {syn}:3)" in r.err

    raises = tmp_path / "raises.py"
    raises.write_text("import tapestore\n\n\ndef setup():\n    raise RuntimeError('no bucket "
                      "configured')\n\nsetup()\n")
    r = run("providers", "--plugin", raises)
    assert r.code == FAIL, r
    assert f"plugin {raises}: failed to load: RuntimeError: no bucket configured (at {raises}:5)" \
        in r.err

    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(4)\n")
    r = run("providers", "--plugin", exits)
    assert r.code == FAIL and f"plugin {exits}: failed to load: SystemExit: 4" in r.err, r

    taken = tmp_path / "taken.py"
    taken.write_text("import tapestore\nclass P:\n    pass\n"
                     "tapestore.register_provider('memory', P)\n")
    r = run("providers", "--plugin", taken)
    assert r.code == FAIL and f"plugin {taken}: failed to load:" in r.err, r

    r = run("providers", "--plugin", tmp_path / "missing.py")
    assert r.code == NOTFOUND, r
    assert f"plugin {tmp_path / 'missing.py'}: No such file or directory" in r.err

    other = tmp_path / "provider.rb"
    other.write_text("puts 1\n")
    r = run("providers", "--plugin", other)
    assert r.code == FAIL, r
    assert (f"plugin {other}: unsupported kind of plugin file (this build loads C shared libraries "
            "(.so), Python files (.py) and Lua files (.lua))") in r.err

    notso = tmp_path / "fake.so"
    notso.write_text("not an ELF file")
    r = run("providers", "--plugin", notso)
    assert r.code == FAIL and f"plugin {notso}:" in r.err, r

    r = run("providers", "--plugin", tmp_path)
    assert r.code == FAIL and "not a regular file" in r.err

    r = run("providers", env={"TAPESTORE_PLUGINS": str(raises)})
    assert r.code == FAIL and "(from TAPESTORE_PLUGINS)" in r.err and "no bucket configured" in r.err


def test_the_tapestore_package_must_be_importable(tmp_path, dict_plugin):
    r = run("providers", "--plugin", dict_plugin, env={"PYTHONPATH": str(tmp_path)})
    assert r.code == FAIL, r
    assert "cannot import the Python package tapestore: ModuleNotFoundError" in r.err
    assert "searched PYTHONPATH" in r.err


# ---------------------------------------------------------------- S3 on s3rver

@pytest.mark.s3
def test_s3_provider_plugin_on_s3rver(tmp_path, fs_spec, fs_store):
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    import s3rver
    proc, endpoint = s3rver.start(str(tmp_path / "s3data"))
    try:
        s3rver.client(endpoint).create_bucket(Bucket="tapes")
        plugin = ROOT / "examples" / "python-s3-provider" / "s3_provider.py"
        spec = ('s3:{"bucket": "tapes", "endpoint_url": "%s", "aws_access_key_id": "S3RVER", '
                '"aws_secret_access_key": "S3RVER", "addressing_style": "path"}' % endpoint)
        for i in range(3):
            fs_store.save(make_tape(id=f"s{i}", name=f"s3 tape {i}", tags=["s3"], n=6))
        r = run("migrate", "--from", fs_spec, "--to", spec, "--plugin", plugin, "--json")
        assert r.code == OK and r.json()["copied"] == 3, r
        r = run("ls", "--json", "--plugin", plugin, "--store", spec)
        assert r.code == OK and [t["tape_id"] for t in r.json()["tapes"]] == ["s0", "s1", "s2"], r
        r = run("export", "s1", "--plugin", plugin, "--store", spec)
        assert r.code == OK and r.out == fs_store.load("s1").to_jsonl()
        r = run("migrate", "--from", fs_spec, "--to", spec, "--plugin", plugin, "--json")
        assert r.code == OK and r.json()["skipped"] == 3, r
        r = run("stats", "--json", "--plugin", plugin, "--store", spec)
        assert r.json()["tape_count"] == 3 and r.json()["provider"] == "s3"
        r = run("ls", "--plugin", plugin, "--store", spec.replace('"tapes"', '"nobucket"'))
        assert r.code == FAIL and "NoSuchBucket" in r.err, r
    finally:
        s3rver.stop(proc)


def test_warnings_reach_stderr_with_or_without_a_python_plugin(dict_plugin):
    for extra in ([], ["--plugin", str(dict_plugin)]):
        r = run("ls", "--store", "memory:", *extra)
        assert r.code == OK, r
        assert "warning: memory provider: tapes live only in this process" in r.err, (extra, r)


# ---------------------------------------------------------------- Lua files

LUA_PLUGIN = """
local tapestore = require "tapestore"
-- Tapes as files in a directory: persistent across processes, the four
-- required ops only (the core does exists, search, stats, frames).
local function dir_provider(config)
  local dir = config.dir
  os.execute("mkdir -p '" .. dir .. "'")
  local function path(id) return dir .. "/" .. id .. ".tape" end
  local function read(id)
    local f = io.open(path(id), "rb")
    if not f then return nil end
    local meta, body = f:read("a"):match("^(.-)\\0(.*)$")
    f:close()
    return assert(tapestore.tape_from_jsonl(body, meta))
  end
  return {
    save = function(t)
      local f = assert(io.open(path(t.id), "wb"))
      f:write(t:to_meta_json(), "\\0", t:to_jsonl())
      f:close()
    end,
    load = read,
    delete = function(id)
      if not os.remove(path(id)) then
        return nil, "luadir: no tape " .. id, tapestore.ENOTFOUND
      end
    end,
    list = function(query)
      local out = {}
      local p = io.popen("ls '" .. dir .. "'")
      for name in p:lines() do
        local id = name:match("^(.*)%.tape$")
        if id then out[#out + 1] = read(id) end
      end
      p:close()
      return out
    end,
  }
end
assert(tapestore.register_provider("luadir", dir_provider,
  { description = "tapes as files, in Lua", persistent = true }))
"""


@pytest.fixture
def lua_plugin(tmp_path):
    p = tmp_path / "luadir_provider.lua"
    p.write_text(LUA_PLUGIN)
    return p


def test_lua_plugin_file_registers_a_provider(tmp_path, lua_plugin, fs_spec, fs_store):
    """A Lua file registers its provider when loaded; the command then uses
    it from C like any other (migrate in, list, export, rm)."""
    t = make_tape(id="l1", name="from fs", n=4)
    fs_store.save(t)
    spec = f'luadir:{{"dir": "{tmp_path / "ld"}"}}'
    r = run("providers", "--json", "--plugin", lua_plugin)
    by = {p["name"]: p for p in r.json()["providers"]}
    assert by["luadir"]["description"] == "tapes as files, in Lua", r
    r = run("migrate", "--from", fs_spec, "--to", spec, "--plugin", lua_plugin, "--json")
    assert r.code == OK and r.json()["copied"] == 1, r
    r = run("ls", "--json", "--store", spec, env={"TAPESTORE_PLUGINS": str(lua_plugin)})
    assert r.code == OK and [x["tape_id"] for x in r.json()["tapes"]] == ["l1"], r
    r = run("export", "l1", "--store", spec, "--plugin", lua_plugin)
    assert r.code == OK and r.out == t.to_jsonl(), r
    r = run("rm", "l1", "--store", spec, "--plugin", lua_plugin)
    assert r.code == OK, r
    r = run("rm", "l1", "--store", spec, "--plugin", lua_plugin)
    assert r.code == NOTFOUND and "no tape" in r.err, r


def test_lua_and_python_plugins_together(tmp_path, lua_plugin, dict_plugin, fs_spec, fs_store):
    """One process embeds both interpreters: a migrate from the Python
    provider into the Lua one."""
    fs_store.save(make_tape(id="both", n=2))
    py_spec = f'jsondir:{{"dir": "{tmp_path / "jd"}"}}'
    lua_spec = f'luadir:{{"dir": "{tmp_path / "ld"}"}}'
    r = run("migrate", "--from", fs_spec, "--to", py_spec, "--plugin", dict_plugin)
    assert r.code == OK, r
    r = run("migrate", "--from", py_spec, "--to", lua_spec, "--plugin", dict_plugin,
            "--plugin", lua_plugin, "--json")
    assert r.code == OK and r.json()["copied"] == 1, r


def test_broken_lua_plugin_files(tmp_path):
    syn = tmp_path / "broken.lua"
    syn.write_text("local x = = 1\n")
    r = run("ls", "--plugin", syn)
    assert r.code == FAIL, r
    # (Lua shortens a long chunk name from the left: "...name.lua:1:")
    assert f"plugin {syn}: failed to load: " in r.err, r
    assert "broken.lua:1: unexpected symbol near '='" in r.err, r

    raises = tmp_path / "raises.lua"
    raises.write_text("local tapestore = require 'tapestore'\nerror('no bucket configured')\n")
    r = run("providers", "--plugin", raises)
    assert r.code == FAIL, r
    assert f"plugin {raises}: failed to load: " in r.err, r
    assert "raises.lua:2: no bucket configured" in r.err, r
    assert "stack traceback" in r.err

    taken = tmp_path / "taken.lua"
    taken.write_text("local tapestore = require 'tapestore'\n"
                     "assert(tapestore.register_provider('memory', function() return {} end))\n")
    r = run("providers", "--plugin", taken)
    assert r.code == FAIL and f"plugin {taken}: failed to load:" in r.err, r

    r = run("providers", "--plugin", tmp_path / "missing.lua")
    assert r.code == NOTFOUND and "No such file or directory" in r.err, r

    # The binding's module cannot be found: said so, naming the file.
    ok = tmp_path / "ok.lua"
    ok.write_text("return true\n")
    r = run("providers", "--plugin", ok, env={"LUA_CPATH": str(tmp_path / "?.so")})
    assert r.code == FAIL, r
    assert f'plugin {ok}: cannot load the Lua binding (require "tapestore")' in r.err, r
