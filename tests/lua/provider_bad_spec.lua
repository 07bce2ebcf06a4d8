-- Bad providers: ops that raise (every one, then called again), return the
-- wrong types, return nil, message[, code], yield, a provider registered
-- from a coroutine that is then collected, collectgarbage() inside an op
-- with finalizers re-entering the same provider. Clear errors, no crash.
local tapestore = require "tapestore"
local fx = require "provider_fixtures"
local helper = require "tape_lua_testhelper"
helper.init(assert(package.searchpath("tapestore", package.cpath)))

local function msg_tape(name)
  local t = tapestore.new_tape{ name = name or "t" }
  t:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "ping" })
  return t
end

-- Register a provider whose ops are fx.minimal's with `over` on top.
local n = 0
local function provider(over, opts)
  n = n + 1
  local name = "lbad" .. n
  assert(tapestore.register_provider(name, function(config)
    local ops = fx.minimal(config)
    for k, v in pairs(over) do ops[k] = v end
    return ops
  end, opts))
  local s = assert(tapestore.open(name, {}))
  return s, name
end

-- The host call of each op (the recording ops through a writer).
local calls = {
  save = function(s) return s:save(msg_tape()) end,
  load = function(s) return s:load("x") end,
  delete = function(s) return s:delete("x") end,
  list = function(s) return s:query_page{} end, -- no search: the core lists
  exists = function(s) return s:exists("x") end,
  search = function(s) return s:query_page{} end,
  stats = function(s) return s:stats() end,
  control = function(s) return s:control("x") end,
  begin_recording = function(s) return s:record{ name = "r" } end,
  frames = function(s)
    local it, msg, code = s:frames("x")
    if it == nil then return nil, msg, code end
    -- a failure while iterating raises, naming the code
    local ok, err = pcall(function() for _ in it do end end)
    if ok then return true end
    err = tostring(err)
    return nil, err, err:find("(TAPE_EPROVIDER)", 1, true) and tapestore.EPROVIDER or 0
  end,
}
local op_names = {}
for k in pairs(calls) do op_names[#op_names + 1] = k end
table.sort(op_names)

describe("an op that raises", function()
  it("fails that call with EPROVIDER, the message and the traceback, and again the next time",
    function()
      local over = {}
      for _, op in ipairs(op_names) do
        over[op] = function() error("boom in " .. op) end
      end
      local s, name = provider(over)
      for round = 1, 2 do
        for _, op in ipairs(op_names) do
          local expected_op = op
          if op == "list" then goto continue end -- search answers the query: below
          local r, msg, code = calls[op](s)
          assert.is_nil(r, op)
          assert.are.equal(tapestore.EPROVIDER, code, op .. ": " .. tostring(msg))
          assert.truthy(msg:find("lua provider '" .. name .. "' " .. expected_op .. ": ", 1, true),
            op .. ": " .. msg)
          assert.truthy(msg:find("boom in " .. op, 1, true), op .. ": " .. msg)
          assert.truthy(msg:find("stack traceback:", 1, true), op .. ": " .. msg)
          ::continue::
        end
      end
      s:close()
      -- list alone (no search): the core's fallback search calls it
      local s2 = provider{ list = function() error("boom in list") end }
      for _ = 1, 2 do
        local r, msg, code = s2:query_page{}
        assert.is_nil(r)
        assert.are.equal(tapestore.EPROVIDER, code)
        assert.truthy(msg:find("boom in list", 1, true), msg)
      end
      s2:close()
    end)

  it("open and close too: open fails every call that needs it, close fails store:close", function()
    local opens = 0
    local s, name = provider{ open = function() opens = opens + 1; error("cannot open " .. opens) end }
    for i = 1, 2 do
      local r, msg, code = s:exists("x")
      assert.is_nil(r)
      assert.are.equal(tapestore.EPROVIDER, code)
      assert.truthy(msg:find("lua provider '" .. name .. "' open: ", 1, true), msg)
      assert.truthy(msg:find("cannot open " .. i, 1, true), msg)
    end
    s:close()
    local s2, name2 = provider{ close = function() error("flush failed") end }
    assert(s2:save(msg_tape()))
    local r, msg, code = s2:close()
    assert.is_nil(r)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:find("lua provider '" .. name2 .. "' close: .*flush failed"), msg)
  end)

  it("each recording op too, and the writer is usable no more", function()
    local s = provider{ begin_recording = function()
      return {
        append = function() error("append broke") end,
        correlate = function() error("correlate broke") end,
        finish = function() error("finish broke") end,
      }
    end }
    local w = assert(s:record{ name = "r" })
    local r, msg, code = w:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "a" })
    assert.is_nil(r)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:find("recording.append: ", 1, true), msg)
    assert.truthy(msg:find("append broke", 1, true), msg)
    local w2 = assert(s:record{ name = "r2" })
    r, msg, code = w2:finish()
    assert.is_nil(r)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:find("recording.finish: .*finish broke"), msg)
    s:close()
  end)

  it("with a non-string error value says what the value was", function()
    local s = provider{
      exists = function() error({ 1, 2 }) end,
      stats = function() error(setmetatable({}, { __tostring = function() return "custom err" end })) end,
    }
    local _, msg = s:exists("x")
    assert.truthy(msg:find("(error object is a table value)", 1, true), msg)
    _, msg = s:stats()
    assert.truthy(msg:find("custom err", 1, true), msg)
    s:close()
  end)
end)

describe("an op that returns the wrong type", function()
  local cases = {
    { "exists", function() return "yes" end, "exists returned string, expected a boolean" },
    { "exists", function() end, "exists returned nothing, expected a boolean" },
    { "load", function() return 42 end, "load returned number, expected a tape or nil" },
    { "list", function() return 7 end, "list returned number, expected an array or an iterator" },
    { "list", function() return { 5 } end, "list gave number as item 1, expected a tape, an entry or a .meta.json table" },
    { "list", function() return { { tape_id = "../bad" } } end, "list item 1: " },
    { "search", function() return "x" end, "search returned string, expected entries" },
    { "search", function() return {}, 5 end, "search returned a number as the next cursor" },
    { "stats", function() return 3 end, "stats returned number, expected a table" },
    { "stats", function() return { tape_count = "x" } end, "stats returned tape_count = x, expected a non-negative integer" },
    { "stats", function() return { frame_count = 1.5 } end, "stats returned frame_count = 1.5, expected a non-negative integer" },
    { "stats", function() return { total_bytes = -1 } end, "stats returned total_bytes = -1, expected a non-negative integer" },
    { "control", function() return print end, "cannot encode a function" },
    { "save", function() return 1 end, "save returned number, expected nothing (or true)" },
    { "delete", function() return false end, "delete returned false, expected nothing (or true)" },
    { "begin_recording", function() return 3 end, "begin_recording returned number, expected a recording table" },
    { "begin_recording", function() return {} end, "a recording without append" },
    { "begin_recording", function()
        local f = function() end
        return { append = f, correlate = f, ["end"] = f }
      end, "without finish (it needs append, correlate and finish); Python's end is called finish in Lua" },
    { "frames", function() return 3 end, "frames returned number, expected an array or an iterator" },
    { "frames", function() return { 7 } end, "frames gave number as item 1, expected a frame" },
    { "frames", function() return { "not json" } end, "frames item 1: " },
  }
  it("fails with EPROVIDER naming the op and the type", function()
    for i, c in ipairs(cases) do
      local s, name = provider{ [c[1]] = c[2] }
      local r, msg, code = calls[c[1]](s)
      assert.is_nil(r, i)
      assert.are.equal(tapestore.EPROVIDER, code, i .. ": " .. tostring(msg))
      assert.truthy(msg:find("lua provider '" .. name .. "' ", 1, true), i .. ": " .. msg)
      assert.truthy(msg:find(c[3], 1, true), i .. ": " .. msg)
      -- the store still works (another op, and the same one again)
      if c[1] ~= "save" then assert(s:save(msg_tape()), i) else assert(s:query_page{}, i) end
      assert.is_nil((calls[c[1]](s)), i)
      s:close()
    end
  end)
end)

describe("an op that returns nil, message[, code]", function()
  it("fails with the code returned and the message as it is", function()
    local s = provider{
      delete = function(id) return nil, "gone: " .. id, tapestore.ENOTFOUND end,
      save = function() return nil, "disk full", tapestore.EIO end,
      exists = function() return nil, "busy now", tapestore.EBUSY end,
    }
    local r, msg, code = s:delete("abc")
    assert.is_nil(r)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.are.equal("gone: abc", msg)
    r, msg, code = s:save(msg_tape())
    assert.are.same({ tapestore.EIO, "disk full" }, { code, msg })
    r, msg, code = s:exists("x")
    assert.are.same({ tapestore.EBUSY, "busy now" }, { code, msg })
    s:close()
  end)

  it("without a code (or with one that is not a tapestore code) fails with EPROVIDER", function()
    local s, name = provider{
      load = function() return nil, "broken" end,
      delete = function() return nil, "odd", 12345 end,
      exists = function() return nil, "odd too", "-1" end, -- a string is not a code
    }
    local r, msg, code = s:load("x")
    assert.is_nil(r)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.are.equal("lua provider '" .. name .. "' load: broken", msg)
    r, msg, code = s:delete("x")
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.are.equal("lua provider '" .. name .. "' delete: odd (and 12345, which is not a "
      .. "tapestore error code)", msg)
    r, msg, code = s:exists("x")
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:find("odd too (and -1, which is not a tapestore error code)", 1, true), msg)
    s:close()
  end)

  it("a bare nil from load means not found, naming the id", function()
    local s, name = provider{ load = function() return nil end }
    local r, msg, code = s:load("missing-id")
    assert.is_nil(r)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.are.equal("lua provider '" .. name .. "': no tape 'missing-id'", msg)
    s:close()
  end)

  it("returning nothing, or true, succeeds", function()
    local s = provider{ save = function() end, delete = function() return nil end,
      open = function() return true end } -- true too: what a store method answers
    assert.is_true(s:save(msg_tape()))
    assert.is_true(s:delete("x"))
    s:close()
  end)
end)

describe("an op that yields", function()
  it("is refused clearly, from the main thread and from a coroutine of the caller", function()
    local s, name = provider{ exists = function() coroutine.yield(1) return true end }
    local r, msg, code = s:exists("x")
    assert.is_nil(r)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:find("lua provider '" .. name .. "' exists: ", 1, true), msg)
    assert.truthy(msg:find("attempt to yield", 1, true), msg)
    assert.truthy(msg:find("an op cannot yield", 1, true), msg)
    local co = coroutine.wrap(function()
      local a, b, c = s:exists("x")
      coroutine.yield("after")
      return a, b, c
    end)
    assert.are.equal("after", co()) -- the op's yield did not reach this coroutine
    local a, b, c = co()
    assert.is_nil(a)
    assert.are.equal(tapestore.EPROVIDER, c)
    assert.truthy(b:find("attempt to yield", 1, true), b)
    assert.is_true(s:save(msg_tape())) -- and the store goes on
    s:close()
  end)

  it("a coroutine used inside an op works as usual", function()
    local s = provider{ exists = function(id)
      local co = coroutine.wrap(function() coroutine.yield(id == "y") end)
      return co()
    end }
    assert.is_true(s:exists("y"))
    assert.is_false(s:exists("n"))
    s:close()
  end)
end)

describe("a provider registered from a coroutine", function()
  it("works after the coroutine is collected", function()
    local weak = setmetatable({}, { __mode = "v" })
    local co = coroutine.create(function()
      local tapes = {}
      assert(tapestore.register_provider("lbad_co", function(config)
        local ops = fx.minimal(config)
        ops.exists = function(id) return ops.load(id) ~= nil end
        return ops
      end))
      coroutine.yield()
    end)
    weak.co = co
    assert(coroutine.resume(co))
    co = nil
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak.co) -- the coroutine is gone
    local s = assert(tapestore.open("lbad_co", {}))
    local t = msg_tape()
    assert(s:save(t))
    assert.is_true(s:exists(t.id))
    s:close()
    tapestore.unregister_provider("lbad_co")
  end)

  it("and a store opened and used from coroutines, then collected", function()
    assert(tapestore.register_provider("lbad_co2", fx.full))
    finally(function() tapestore.unregister_provider("lbad_co2") end)
    local results = {}
    for i = 1, 5 do
      local co = coroutine.wrap(function()
        local s = assert(tapestore.open("lbad_co2", {}))
        local t = msg_tape("c" .. i)
        assert(s:save(t))
        coroutine.yield()
        results[i] = s:exists(t.id)
        s:close()
      end)
      co()
      collectgarbage()
      co()
    end
    assert.are.same({ true, true, true, true, true }, results)
  end)
end)

describe("collectgarbage() inside an op", function()
  it("runs finalizers that re-enter the same provider (writers, iterators, stores) without a deadlock",
    function()
      local gc_runs, in_exists, nested = 0, false, { finish = 0, free = 0 }
      local weak = setmetatable({}, { __mode = "k" })
      assert(tapestore.register_provider("lbad_gc", function(config)
        local ops = fx.full(config)
        local exists, begin = ops.exists, ops.begin_recording
        ops.exists = function(id)
          in_exists = true
          collectgarbage()
          collectgarbage()
          in_exists = false
          gc_runs = gc_runs + 1
          return exists(id)
        end
        ops.begin_recording = function(h)
          local r = begin(h)
          local finish = r.finish
          r.finish = function(hdr, fin)
            if in_exists then nested.finish = nested.finish + 1 end
            return finish(hdr, fin)
          end
          return r
        end
        -- the ops table is released when its store is freed: seen by a weak key
        weak[ops] = true
        return ops
      end))
      finally(function() tapestore.unregister_provider("lbad_gc") end)
      local s = assert(tapestore.open("lbad_gc", {}))
      local t = msg_tape()
      assert(s:save(t))
      for round = 1, 3 do
        do -- garbage of the same provider: a store with an open writer and an iterator
          local other = assert(tapestore.open("lbad_gc", {}))
          assert(other:save(msg_tape()))
          local w = assert(other:record{ name = "abandoned" .. round })
          assert(w:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "a" }))
          local it = assert(s:frames(t.id))
          local _ = it
        end
        assert.is_true(s:exists(t.id))
      end
      assert.are.equal(3, gc_runs)
      -- the abandoned writers' finish ran inside exists, nested (writer_end(0))
      assert.are.equal(3, nested.finish)
      s:close()
      s = nil
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak)) -- every store's ops table was released
    end)
end)

describe("re-entry with the state's lock held", function()
  it("runs the trampoline nested instead of waiting for itself", function()
    local calls = 0
    assert(tapestore.register_provider("lbad_held", function(config)
      local ops = fx.minimal(config)
      ops.exists = function(id) calls = calls + 1; return id == "yes" end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lbad_held") end)
    -- C code calls the core without releasing the lock: from the script ...
    assert.are.equal(1, helper.open_exists_locked("lbad_held:", "yes"))
    assert.are.equal(0, helper.open_exists_locked("lbad_held:", "no"))
    -- ... and from inside an op of another Lua provider
    local inner
    assert(tapestore.register_provider("lbad_held_outer", function(config)
      local ops = fx.minimal(config)
      ops.exists = function(id)
        inner = helper.open_exists_locked("lbad_held:", id)
        return true
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lbad_held_outer") end)
    local s = assert(tapestore.open("lbad_held_outer", {}))
    assert.is_true(s:exists("yes"))
    assert.are.equal(1, inner)
    s:close()
    assert.are.equal(3, calls)
  end)
end)
