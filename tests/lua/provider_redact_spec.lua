-- The redact provider (examples/lua-redact-provider/redact.lua): the
-- conformance suite over the filesystem and over memory; secrets in nested
-- params, in results and in a 5 MiB frame redacted through save and through
-- the writer, with every other byte unchanged; the count in the metadata,
-- while recording too; the patterns configurable; the base's native
-- capabilities kept; C threads recording through it.
local tapestore = require "tapestore"
local src = os.getenv("TAPE_LUA_SOURCE_DIR") or "."
package.path = src .. "/examples/lua-redact-provider/?.lua;" .. package.path
local redact = require "redact" -- registers "redact"
local helper = require "tape_lua_testhelper"
helper.init(assert(package.searchpath("tapestore", package.cpath)))

local R = "[REDACTED]"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

local function rmdir(p) os.execute("rm -rf '" .. p .. "'") end

-- A request with secrets in nested params, and what it must become.
local REQ = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"login",' ..
  '"arguments":{"user":"bob","password":"%s","deep":[{"token":"%s","keep":"password"}]},' ..
  '"_meta":{"authorization":"Bearer %s"}}}'
local REQ_IN = REQ:format("hunter2", "tok\\\"en-1", "abc.DEF-ghi_~+/==")
local REQ_OUT = REQ:format(R, R, R)
-- A result with an API key and a bearer token (redacted anywhere), and a
-- password field, which only counts inside params: kept.
local RES = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":' ..
  '"key %s and header bearer %s"}],"password":"visible"}}'
local RES_IN = RES:format("sk-abcdefghijklmnop1234", "xyz123")
local RES_OUT = RES:format(R, R)
-- No secret at all: byte for byte the same, odd whitespace and escapes included.
local PLAIN = '{ "jsonrpc" : "2.0", "method":"notifications/message", "params" : ' ..
  '{"level":"info","data":"\\u00e9t\\u00e9 \\ud83d\\ude00 tokens: none \\/ \\\\"} }'

local function secret_tape(name)
  local t = tapestore.new_tape{ name = name, tags = { "redact" } }
  assert(t:append(tapestore.CLIENT_TO_SERVER, REQ_IN, { correlation_id = "7" }))
  assert(t:append(tapestore.SERVER_TO_CLIENT, RES_IN, { correlation_id = "7" }))
  assert(t:append(tapestore.SERVER_TO_CLIENT, PLAIN))
  assert(t:add_correlation("7", 0, 1, 5, "ok"))
  return t
end

-- Every line of a and b equal, but where want(i) says the message differs.
local function same_lines_but(a, b, skip)
  local la, lb = {}, {}
  for l in a:gmatch("[^\n]*\n") do la[#la + 1] = l end
  for l in b:gmatch("[^\n]*\n") do lb[#lb + 1] = l end
  assert.are.equal(#la, #lb)
  for i = 1, #la do
    if not skip[i] then assert.are.equal(la[i], lb[i], "line " .. i) end
  end
end

describe("the redact provider", function()
  it("passes the conformance suite over the filesystem", function()
    local lines = {}
    -- durability none: the suite's thousands of saves without an fsync each
    local p, f, s = tapestore.conformance("redact",
      { base = 'filesystem:{"path":"@DIR@","durability":"none"}' },
      { emit = function(l) lines[#lines + 1] = l end })
    assert(p, f)
    local bad = {}
    for _, l in ipairs(lines) do if l:match("^not ok") or l:match("^# line") then bad[#bad + 1] = l end end
    assert.are.equal("", table.concat(bad, "\n"))
    assert.are.same({ 0, 0 }, { f, s }) -- persistent: the reopen case runs too
    assert.is_true(p >= 20)
  end)

  it("passes the conformance suite over memory (not persistent: that case skips)", function()
    local p, f, s = tapestore.conformance("redact", { base = "memory:" }, { emit = function() end })
    assert(p, f)
    assert.are.same({ 0, 1 }, { f, s })
  end)

  it("passes the conformance suite over sqlite (its native search pushed down through it)", function()
    local st = assert(tapestore.open("redact", { base = "sqlite:" .. os.tmpname() .. ".db" }))
    assert.is_true(st:capabilities(true).search)
    st:close()
    local p, f, s = tapestore.conformance("redact", { base = "sqlite:@DIR@/t.db" },
      { emit = function() end })
    assert(p, f)
    assert.are.same({ 0, 0 }, { f, s })
  end)

  it("redacts save: nested params and results, nothing else changes", function()
    local dir = tmpdir()
    finally(function() rmdir(dir) end)
    local s = assert(tapestore.open("redact", { path = dir }))
    local t = secret_tape("saved")
    assert(s:save(t))
    -- read back through the base itself: what is stored
    local base = assert(tapestore.open("filesystem", { path = dir }))
    local got = assert(base:load(t.id))
    local msgs = {}
    for f in got:frames() do msgs[#msgs + 1] = f.message_text end
    assert.are.same({ REQ_OUT, RES_OUT, PLAIN }, msgs)
    assert.are.equal(5, got.environment.redactions)
    assert.are.equal("integer", math.type(got.environment.redactions))
    -- every other byte of the tape: the init line, the third frame, the
    -- correlation; the redacted frame lines differ only in their messages
    local want = t:to_jsonl():gsub(REQ_IN:gsub("%p", "%%%0"), (REQ_OUT:gsub("%%", "%%%%")))
    want = want:gsub(RES_IN:gsub("%p", "%%%0"), (RES_OUT:gsub("%%", "%%%%")))
    assert.are.equal(want, got:to_jsonl())
    assert.are.equal(t.name, got.name)
    assert.are.same(t.tags, got.tags)
    assert.are.equal(t.created_at, got.created_at)
    -- and through the redact store the same
    assert.are.equal(got:to_jsonl(), s:load(t.id):to_jsonl())
    -- a tape without secrets is stored as it came: no count
    local plain = tapestore.new_tape{ name = "plain" }
    assert(plain:append(tapestore.CLIENT_TO_SERVER, PLAIN))
    assert(s:save(plain))
    local pg = assert(base:load(plain.id))
    assert.are.equal(plain:to_jsonl(), pg:to_jsonl())
    assert.is_nil(pg.environment)
    -- saved again (already redacted): the count stays
    assert(s:save(got))
    assert.are.equal(5, base:load(t.id).environment.redactions)
    s:close()
    base:close()
  end)

  it("redacts a 5 MiB frame, byte for byte outside the redacted spans", function()
    local s = assert(tapestore.open("redact", { base = "memory:" }))
    local filler = string.rep("abcdefghij", 256 * 1024) -- twice: 5 MiB
    local msg = '{"jsonrpc":"2.0","id":1,"method":"upload","params":{"blob":"' .. filler ..
      ' Bearer big.secret.value","password":"p@ss","tail":"' .. filler .. '"}}'
    local want = '{"jsonrpc":"2.0","id":1,"method":"upload","params":{"blob":"' .. filler ..
      ' Bearer ' .. R .. '","password":"' .. R .. '","tail":"' .. filler .. '"}}'
    local t = tapestore.new_tape{ name = "big" }
    assert(t:append(tapestore.CLIENT_TO_SERVER, msg))
    assert(s:save(t))
    local got = assert(s:load(t.id))
    local f = got:frames()()
    assert.is_true(f.message_text == want, "the 5 MiB message, redacted")
    assert.are.equal(#want, #f.message_text)
    assert.are.equal(2, got.environment.redactions)
    -- and recorded through the writer
    local w = assert(s:record{ id = "big-rec", name = "big-rec" })
    assert(w:append(tapestore.CLIENT_TO_SERVER, msg))
    assert(w:finish())
    local rec = assert(s:load("big-rec"))
    assert.is_true(rec:frames()().message_text == want, "the 5 MiB message, recorded and redacted")
    assert.are.equal(2, rec.environment.redactions)
    s:close()
  end)

  it("redacts the writer's appends, and keeps the count up to date while recording", function()
    local dir = tmpdir()
    finally(function() rmdir(dir) end)
    -- the filesystem writes learned metadata at each checkpoint: one per frame here
    local spec = 'filesystem:{"path":"' .. dir .. '","checkpoint_every":1}'
    local s = assert(tapestore.open("redact", { base = spec }))
    local base = assert(tapestore.open(spec))
    local w = assert(s:record{ id = "rec-1", name = "live", transport_json = '{"type":"stdio"}' })
    assert(w:append(tapestore.CLIENT_TO_SERVER, REQ_IN, { correlation_id = "7" }))
    -- mid-recording, the base already holds the redacted frame
    local mid = assert(base:load("rec-1"))
    assert.are.equal(tapestore.RECORDING, mid.status)
    assert.are.equal(1, #mid)
    assert.are.equal(REQ_OUT, mid:frames()().message_text)
    assert(w:append(tapestore.SERVER_TO_CLIENT, RES_IN, { correlation_id = "7" }))
    assert(w:add_correlation("7", 0, 1, 5, "ok"))
    -- and the count, updated through the writer's metadata while recording
    mid = assert(base:load("rec-1"))
    assert.are.equal(tapestore.RECORDING, mid.status)
    assert.are.equal(3, mid.environment.redactions)
    assert(w:append(tapestore.SERVER_TO_CLIENT, PLAIN))
    mid = assert(base:load("rec-1"))
    assert.are.equal(5, mid.environment.redactions)
    assert.are.equal(tapestore.RECORDING, mid.status)
    assert(w:finish())
    local got = assert(base:load("rec-1"))
    assert.are.equal(tapestore.FINALIZED, got.status)
    local msgs = {}
    for f in got:frames() do msgs[#msgs + 1] = f.message_text end
    assert.are.same({ REQ_OUT, RES_OUT, PLAIN }, msgs)
    assert.are.equal(5, got.environment.redactions)
    assert.are.equal('{"type":"stdio"}', got.transport_json)
    assert.are.equal(1, #got:correlations())
    assert.is_true(s:capabilities(true).writer) -- the base's native writer, through it
    s:close()
    base:close()
  end)

  it("takes its patterns, fields and replacement from the config", function()
    local s = assert(tapestore.open("redact", { base = "memory:", fields = { "pin" },
      bearer = {}, api_keys = { "XKEY%-%d+" }, replacement = "***" }))
    local t = tapestore.new_tape{ name = "cfg" }
    local m = '{"jsonrpc":"2.0","id":1,"method":"m","params":{"pin":"1234","password":"kept",' ..
      '"auth":"Bearer stays","k":"XKEY-42"}}'
    assert(t:append(tapestore.CLIENT_TO_SERVER, m))
    assert(s:save(t))
    local f = s:load(t.id):frames()()
    assert.are.equal('{"jsonrpc":"2.0","id":1,"method":"m","params":{"pin":"***","password":"kept",' ..
      '"auth":"Bearer stays","k":"***"}}', f.message_text)
    s:close()
  end)

  it("refuses a bad config before opening anything, naming the key", function()
    local cases = {
      { {}, "give base (a store spec) or path" },
      { { path = "/tmp/x", colour = 1 }, "unknown key 'colour'" },
      { { base = 3 }, "base must be a store spec" },
      { { base = "memory:", fields = "password" }, "fields must be an array of strings" },
      { { base = "memory:", api_keys = { "[" } }, "api_keys[1] is not a Lua pattern" },
      { { base = "memory:", replacement = '"' }, "replacement must not hold a quote" },
    }
    for i, c in ipairs(cases) do
      local s, msg, code = tapestore.open("redact", c[1])
      assert.is_nil(s, i)
      assert.are.equal(tapestore.ECONFIG, code, i .. ": " .. tostring(msg))
      assert.truthy(msg:find(c[2], 1, true), i .. ": " .. msg)
    end
    local s, msg, code = tapestore.open("redact", { base = "nosuchprovider:" })
    assert.is_nil(s)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.truthy(msg:find("redact: base nosuchprovider:", 1, true), msg)
  end)

  it("keeps the base's native capabilities native", function()
    for _, spec in ipairs{ "memory:", "filesystem:" .. os.tmpname() .. ".d",
                           "sqlite:" .. os.tmpname() .. ".db" } do
      local b = assert(tapestore.open(spec))
      local s = assert(tapestore.open("redact", { base = spec }))
      local bn, sn = b:capabilities(true), s:capabilities(true)
      bn.writer_retry = nil -- a flag of the base's writer, not an op: not passed on
      bn.thread_safe, sn.thread_safe = nil, nil -- a Lua provider always is (sqlite is not)
      assert.are.same(bn, sn, spec)
      s:close()
      b:close()
    end
  end)

  it("is the store of C threads recording through it", function()
    local r = helper.threads('redact:{"base":"memory:"}', 8, 25)
    assert.are.equal(0, r.errors, r.first_error)
    assert.are.equal(200, r.listed)
    assert.are.equal(0, r.duplicates)
  end)
end)

describe("redact.redact_message", function()
  it("counts and replaces, leaving JSON valid", function()
    local out, n = redact.redact_message(REQ_IN)
    assert.are.equal(REQ_OUT, out)
    assert.are.equal(3, n)
    assert(tapestore.json_decode(out))
    out, n = redact.redact_message("not json at all: Bearer abc")
    assert.are.equal("not json at all: Bearer " .. R, out)
    assert.are.equal(1, n)
    out, n = redact.redact_message('{"params":[{"password":"x"}],"id":1}')
    assert.are.same({ '{"params":[{"password":"' .. R .. '"}],"id":1}', 1 }, { out, n })
  end)
end)
