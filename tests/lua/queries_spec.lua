-- The query scripts of examples/lua-queries run against a store of known
-- tapes (queries_fixture.lua) as a user runs them (lua5.4 SCRIPT --store
-- SPEC ...), and print exactly these answers: tables and --json documents
-- compared in full, plus their usage errors and exit codes.
local helpers = require "helpers"
local fill = require "queries_fixture"

-- This file's folder, as busted was given it (relative or absolute).
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."
local scripts = here .. "/../../examples/lua-queries/"

local function run(cmdline)
  local p = assert(io.popen(cmdline .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

describe("query scripts", function()
  local dir, spec
  setup(function()
    dir = helpers.tmpdir()
    fill(dir .. "/tapes")
    spec = "filesystem:" .. dir .. "/tapes"
  end)
  teardown(function() helpers.rm_rf(dir) end)

  local function script(name, args)
    return run("lua5.4 " .. scripts .. name .. ".lua --store '" .. spec .. "' " .. (args or ""))
  end

  local expected = {
    { "failed_tool_calls", "", [==[
TAPE      NAME   SEQ  TOOL                  ERROR
--------  -----  ---  --------------------  ------------------------------
t1-alpha  alpha    7  add                   Invalid arguments for tool add
t2-beta   beta     4  longRunningOperation  operation timed out
]==] },
    { "failed_tool_calls", "--json", [==[
{"failures":[{"error":"Invalid arguments for tool add","seq":7,"tape_id":"t1-alpha","tape_name":"alpha","tool":"add"},{"error":"operation timed out","seq":4,"tape_id":"t2-beta","tape_name":"beta","tool":"longRunningOperation"}]}
]==] },
    { "slowest_requests", "", [==[
RTT_MS  METHOD                  TAPE      REQ  RESP  STATUS
------  ----------------------  --------  ---  ----  ------
   250  tools/call              t2-beta     4     5  ok
    40  sampling/createMessage  t3-gamma    2     3  ok
    30  tools/call              t1-alpha    5     6  ok
    12  initialize              t1-alpha    0     1  ok
    12  initialize              t2-beta     0     1  ok
     7  tools/call              t1-alpha    7     8  error
     5  tools/list              t1-alpha    3     4  ok
     4  tools/list              t2-beta     2     3  ok
     2  ping                    t3-gamma    0     1  ok
     1  ping                    t2-beta     6     7  ok
]==] },
    { "slowest_requests", "--json", [==[
{"pairs":[{"method":"tools/call","request_seq":4,"response_seq":5,"rtt_ms":250,"status":"ok","tape_id":"t2-beta"},{"method":"sampling/createMessage","request_seq":2,"response_seq":3,"rtt_ms":40,"status":"ok","tape_id":"t3-gamma"},{"method":"tools/call","request_seq":5,"response_seq":6,"rtt_ms":30,"status":"ok","tape_id":"t1-alpha"},{"method":"initialize","request_seq":0,"response_seq":1,"rtt_ms":12,"status":"ok","tape_id":"t1-alpha"},{"method":"initialize","request_seq":0,"response_seq":1,"rtt_ms":12,"status":"ok","tape_id":"t2-beta"},{"method":"tools/call","request_seq":7,"response_seq":8,"rtt_ms":7,"status":"error","tape_id":"t1-alpha"},{"method":"tools/list","request_seq":3,"response_seq":4,"rtt_ms":5,"status":"ok","tape_id":"t1-alpha"},{"method":"tools/list","request_seq":2,"response_seq":3,"rtt_ms":4,"status":"ok","tape_id":"t2-beta"},{"method":"ping","request_seq":0,"response_seq":1,"rtt_ms":2,"status":"ok","tape_id":"t3-gamma"},{"method":"ping","request_seq":6,"response_seq":7,"rtt_ms":1,"status":"ok","tape_id":"t2-beta"}]}
]==] },
    { "method_stats", "", [==[
METHOD                     CALLS  ERRORS  ERROR_RATE  MEAN_RTT_MS  NOTIFICATIONS  TAPES
-------------------------  -----  ------  ----------  -----------  -------------  -----
tools/call                     3       2       66.7%         95.7              0      2
initialize                     2       0        0.0%         12.0              0      2
ping                           2       0        0.0%          1.5              0      2
tools/list                     2       0        0.0%          4.5              0      2
notifications/initialized      0       0        0.0%            -              1      1
sampling/createMessage         1       0        0.0%         40.0              0      1
]==] },
    { "method_stats", "--json", [==[
{"methods":[{"calls":3,"error_rate":0.6666666666666666,"errors":2,"mean_rtt_ms":95.66666666666667,"method":"tools/call","notifications":0,"tapes":2},{"calls":2,"error_rate":0.0,"errors":0,"mean_rtt_ms":12.0,"method":"initialize","notifications":0,"tapes":2},{"calls":2,"error_rate":0.0,"errors":0,"mean_rtt_ms":1.5,"method":"ping","notifications":0,"tapes":2},{"calls":2,"error_rate":0.0,"errors":0,"mean_rtt_ms":4.5,"method":"tools/list","notifications":0,"tapes":2},{"calls":0,"error_rate":0.0,"errors":0,"method":"notifications/initialized","notifications":1,"tapes":1},{"calls":1,"error_rate":0.0,"errors":0,"mean_rtt_ms":40.0,"method":"sampling/createMessage","notifications":0,"tapes":1}]}
]==] },
    { "sessions_by_client", "", [==[
CLIENT           VERSION  SESSIONS  SERVERS                           PROTOCOL
---------------  -------  --------  --------------------------------  ----------
(no initialize)  -               1  -                                 -
claude-desktop   1.2.0           1  example-servers/everything 0.6.2  2025-06-18
mcp-inspector    0.9.0           1  example-servers/everything 0.6.2  2025-03-26
]==] },
    { "sessions_by_client", "--json", [==[
{"clients":[{"client":"(no initialize)","protocol_versions":[],"servers":[],"sessions":1,"tapes":["t3-gamma"]},{"client":"claude-desktop","protocol_versions":["2025-06-18"],"servers":["example-servers/everything 0.6.2"],"sessions":1,"tapes":["t1-alpha"],"version":"1.2.0"},{"client":"mcp-inspector","protocol_versions":["2025-03-26"],"servers":["example-servers/everything 0.6.2"],"sessions":1,"tapes":["t2-beta"],"version":"0.9.0"}]}
]==] },
    { "slowest_requests", "--limit 3", [==[
RTT_MS  METHOD                  TAPE      REQ  RESP  STATUS
------  ----------------------  --------  ---  ----  ------
   250  tools/call              t2-beta     4     5  ok
    40  sampling/createMessage  t3-gamma    2     3  ok
    30  tools/call              t1-alpha    5     6  ok
]==] },
    { "tool_diff", "t1-alpha t2-beta", [==[
TOOL                  DIFFERENCE
--------------------  --------------------
add                   only in t1-alpha
longRunningOperation  only in t2-beta
echo                  changed: description
0 tool(s) the same in both
]==] },
    { "tool_diff", "--json t1-alpha t2-beta", [==[
{"a":"t1-alpha","b":"t2-beta","changed":[{"tool":"echo","what":["description"]}],"only_a":["add"],"only_b":["longRunningOperation"],"same":0}
]==] },
  }
  for _, case in ipairs(expected) do
    it(case[1] .. " " .. case[2] .. " prints the known answer", function()
      local out, code = script(case[1], case[2])
      assert.are.equal(case[3], out)
      assert.are.equal(0, code)
    end)
  end

  it("reads the store from TAPESTORE_STORE when --store is absent", function()
    local out, code = run("TAPESTORE_STORE='" .. spec .. "' lua5.4 " .. scripts .. "failed_tool_calls.lua")
    assert.are.equal(expected[1][3], out)
    assert.are.equal(0, code)
  end)

  it("every script has --help", function()
    for _, name in ipairs { "failed_tool_calls", "slowest_requests", "method_stats",
                             "sessions_by_client", "tool_diff" } do
      local out, code = run("lua5.4 " .. scripts .. name .. ".lua --help")
      assert.are.equal(0, code)
      assert.truthy(out:find("^usage: lua5.4 " .. name .. ".lua"), out)
      assert.truthy(out:find("--json", 1, true), out)
    end
  end)

  it("usage errors exit 2 and say what was wrong", function()
    local out, code = script("slowest_requests", "--limit x")
    assert.are.equal(2, code)
    assert.truthy(out:find("--limit: expected a whole number, got 'x'", 1, true), out)
    out, code = script("method_stats", "--colour")
    assert.are.equal(2, code)
    assert.truthy(out:find("unknown option --colour", 1, true), out)
    out, code = script("tool_diff", "t1-alpha")
    assert.are.equal(2, code)
    assert.truthy(out:find("expected two tape ids, got 1", 1, true), out)
  end)

  it("runtime failures exit 3 for not found, 1 otherwise, naming the cause", function()
    local out, code = script("tool_diff", "t1-alpha nope")
    assert.are.equal(3, code)
    assert.truthy(out:find('cannot load nope: no tape "nope"', 1, true), out)
    out, code = script("tool_diff", "t1-alpha t3-gamma")
    assert.are.equal(1, code)
    assert.truthy(out:find("t3-gamma: the session has no tools/list result", 1, true), out)
    out, code = run("lua5.4 " .. scripts .. "method_stats.lua --store 'filesystem:{\"path\": 5}'")
    assert.are.equal(1, code)
    assert.truthy(out:find("cannot open the store", 1, true), out)
  end)
end)
