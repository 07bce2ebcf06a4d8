"""`tapestore query SCRIPT.lua [ARGS]`: a Lua script run in the embedded
Lua against the command's store: the example query scripts print what they
print under lua5.4, arguments reach the script untouched, providers from
--plugin are visible, and errors get the documented exit codes."""
import os
import subprocess

from conftest import FAIL, NOTFOUND, OK, ROOT, USAGE, child_env, make_tape, run

QUERIES = ROOT / "examples" / "lua-queries"
FIXTURE = ROOT / "tests" / "lua"


def fill(tmp_path):
    """The query scripts' known store (tests/lua/queries_fixture.lua),
    written by a script run through the command itself."""
    filler = tmp_path / "fill.lua"
    filler.write_text('require "queries_fixture"(arg[1])\n')
    d = tmp_path / "tapes"
    r = run("query", filler, d, env={"LUA_PATH": f"{FIXTURE}/?.lua;;"})
    assert r.code == OK, r
    return f"filesystem:{d}"


def lua54(script, *args, store):
    """The same script under Debian's lua5.4, for comparison."""
    env = child_env({"TAPESTORE_STORE": store})
    if "LD_PRELOAD" in os.environ:
        # lua5.4 is not instrumented: under the sanitizers it needs their
        # runtimes preloaded to load the binding (the program does not).
        env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return subprocess.run(["lua5.4", str(script), *map(str, args)], capture_output=True, env=env,
                          timeout=60)


def test_example_scripts_print_what_they_print_under_lua54(tmp_path):
    spec = fill(tmp_path)
    for name, args in [("failed_tool_calls", []), ("slowest_requests", ["--limit", "3"]),
                       ("method_stats", ["--json"]), ("sessions_by_client", []),
                       ("tool_diff", ["t1-alpha", "t2-beta"])]:
        script = QUERIES / f"{name}.lua"
        want = lua54(script, *args, store=spec)
        assert want.returncode == 0, want
        r = run("--store", spec, "query", script, *args)
        assert r.code == OK, r
        assert r.out == want.stdout, name
    # --store after the command, and the store from the environment
    r = run("query", "--store", spec, QUERIES / "failed_tool_calls.lua")
    assert r.code == OK and b"longRunningOperation" in r.out, r
    r = run("query", QUERIES / "failed_tool_calls.lua", env={"TAPESTORE_STORE": spec})
    assert r.code == OK and b"longRunningOperation" in r.out, r


def test_arguments_reach_the_script_untouched(tmp_path):
    s = tmp_path / "args.lua"
    s.write_text('local n = select("#", ...)\n'
                 'io.write(arg[0], "|", #arg, "|", table.concat(arg, ","), "|", n, "|", '
                 '(select(2, ...)), "\\n")\n')
    r = run("query", s, "--json", "--store", "x", "-h", "plain")
    assert r.code == OK, r
    assert r.text == f"{s}|5|--json,--store,x,-h,plain|5|--store\n"


def test_a_plugin_provider_is_visible_to_the_script(tmp_path):
    plugin = tmp_path / "p.py"
    plugin.write_text(
        "import tapestore\n"
        "class Mem:\n"
        "    tapes = {}\n"
        "    def __init__(self, config): pass\n"
        "    def save(self, t): Mem.tapes[t.id] = t.copy()\n"
        "    def load(self, id): return Mem.tapes.get(id)\n"
        "    def delete(self, id): Mem.tapes.pop(id)\n"
        "    def list(self, q): return list(Mem.tapes.values())\n"
        "tapestore.register_provider('pymem', Mem)\n")
    s = tmp_path / "use.lua"
    s.write_text('local tapestore = require "tapestore"\n'
                 'local store <close> = assert(tapestore.open())\n'
                 'assert(store.provider == "pymem")\n'
                 'local t = tapestore.new_tape { id = "x1", name = "via python" }\n'
                 't:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "ping" })\n'
                 'assert(store:save(t))\n'
                 'io.write(store:load("x1").name, " ", #store:load("x1"), "\\n")\n')
    r = run("--plugin", plugin, "--store", "pymem:", "query", s)
    assert r.code == OK and r.text == "via python 1\n", r


def test_exit_codes(tmp_path):
    r = run("query")
    assert r.code == USAGE and "expected a Lua script" in r.err, r
    r = run("query", "--colour", "x.lua")
    assert r.code == USAGE and "unknown option --colour before the script" in r.err, r
    r = run("query", tmp_path / "missing.lua")
    assert r.code == NOTFOUND and "cannot open" in r.err, r
    boom = tmp_path / "boom.lua"
    boom.write_text("local function f() error('no such tool') end\nf()\n")
    r = run("query", boom)
    assert r.code == FAIL, r
    assert "boom.lua:1: no such tool" in r.err and "stack traceback" in r.err, r
    syntax = tmp_path / "syntax.lua"
    syntax.write_text("x = = 1\n")
    r = run("query", syntax)
    assert r.code == FAIL and "unexpected symbol" in r.err, r
    exits = tmp_path / "exits.lua"
    exits.write_text("os.exit(7)\n")
    r = run("query", exits)
    assert r.code == 7, r
    r = run("query", QUERIES / "tool_diff.lua", "only-one")
    assert r.code == USAGE and "expected two tape ids" in r.err, r
    r = run("query", "--help")
    assert r.code == OK and "SCRIPT.lua [ARGS]" in r.text, r
