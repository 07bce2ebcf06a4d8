-- tapestore.set_log: the core's log messages reach a Lua function as
-- (level, text); nil removes it; an error in it goes to stderr and never
-- into the core. (Logs from other C threads and lua_close with a hook
-- set: tests/lua/test_lua_host.c.)
local tapestore = require "tapestore"
local H = require "helpers"

-- A .jsonl with a bad line in the middle: decoding it with recover=true
-- logs a warning ("skipping line 2").
local function damaged()
  local t = H.tape({}, 1)
  local lines = {}
  for l in t:to_jsonl():gmatch("[^\n]+") do lines[#lines + 1] = l end
  lines[2] = "{garbage"
  return table.concat(lines, "\n") .. "\n"
end

describe("tapestore.set_log", function()
  after_each(function() tapestore.set_log(nil) end)

  it("receives the core's messages with their level", function()
    local got = {}
    tapestore.set_log(function(level, text) got[#got + 1] = { level, text } end)
    assert.is_not_nil(tapestore.tape_from_jsonl(damaged(), nil, { recover = true }))
    assert.equal(1, #got)
    assert.equal("warn", got[1][1])
    assert.matches("skipping line 2", got[1][2])
  end)

  it("is removed by nil", function()
    local n = 0
    tapestore.set_log(function() n = n + 1 end)
    tapestore.tape_from_jsonl(damaged(), nil, { recover = true })
    assert.equal(1, n)
    tapestore.set_log(nil)
    tapestore.tape_from_jsonl(damaged(), nil, { recover = true })
    assert.equal(1, n)
    tapestore.set_log() -- nothing set: still fine
  end)

  it("is replaced by a second function", function()
    local a, b = 0, 0
    tapestore.set_log(function() a = a + 1 end)
    tapestore.set_log(function() b = b + 1 end)
    tapestore.tape_from_jsonl(damaged(), nil, { recover = true })
    assert.equal(0, a)
    assert.equal(1, b)
  end)

  it("gets every level: info for a torn last line", function()
    local got = {}
    tapestore.set_log(function(level, text) got[#got + 1] = level .. " " .. text end)
    local text = H.tape({}, 1):to_jsonl() .. '{"type":"frame","seq":'
    assert.is_not_nil(tapestore.tape_from_jsonl(text))
    assert.equal(1, #got)
    assert.matches("^info .*incomplete last line", got[1])
  end)

  it("raises for something that is not a function", function()
    assert.has_error(function() tapestore.set_log(42) end)
    assert.has_error(function() tapestore.set_log({}) end)
  end)

  it("reports an error raised by the function on stderr; the core call succeeds", function()
    local ok, rc, out = H.run_lua(string.format([[
      local tapestore = require "tapestore"
      tapestore.set_log(function(level, text) error("log fn broke") end)
      local t = tapestore.tape_from_jsonl(%q, nil, { recover = true })
      print("decoded", #t)
    ]], damaged()))
    assert.is_true(ok, out)
    assert.equal(0, rc)
    assert.matches("decoded\t1", out) -- the frame of the bad line skipped
    assert.matches("the log function raised: .*log fn broke", out)
  end)

  it("can call tapestore from inside the function", function()
    local inner
    tapestore.set_log(function(level, text)
      local s = tapestore.open("memory:")
      s:save(tapestore.new_tape { name = "from log" })
      inner = s:stats().tape_count
      s:close()
    end)
    tapestore.tape_from_jsonl(damaged(), nil, { recover = true })
    assert.equal(1, inner)
  end)

  it("stays set until lua_close, which removes it", function()
    local ok, rc, out = H.run_lua(string.format([[
      local tapestore = require "tapestore"
      tapestore.set_log(function(level, text) io.write(level, "\n") end)
      tapestore.tape_from_jsonl(%q, nil, { recover = true })
    ]], damaged()))
    assert.is_true(ok, out)
    assert.equal(0, rc)
    assert.equal("warn\n", out)
  end)
end)
