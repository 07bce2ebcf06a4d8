-- Threads and lifetime of Lua providers: 8 bare C threads calling one Lua
-- provider at once through the core (tests/lua/tape_lua_testhelper.c) while
-- this state waits with its lock released; register/unregister/open/close
-- in every order; lua_close of a state whose provider a C thread is still
-- calling.
local tapestore = require "tapestore"
local fx = require "provider_fixtures"
local helper = require "tape_lua_testhelper"
local module_path = assert(package.searchpath("tapestore", package.cpath))
helper.init(module_path)

local function msg_tape(name)
  local t = tapestore.new_tape{ name = name or "t" }
  t:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "ping" })
  return t
end

describe("8 C threads calling one Lua provider", function()
  it("are serialised on the state's lock: no crash, nothing lost or duplicated", function()
    local active, overlaps, counts = 0, 0, {}
    local store_ops
    assert(tapestore.register_provider("lthreads", function(config)
      local ops = fx.full(config)
      store_ops = ops
      -- every op checks that it runs alone, and works a little so that a
      -- missing lock would show (as an overlap, or as a broken state)
      for name, fn in pairs(ops) do
        ops[name] = function(...)
          -- no call into tapestore here: the lock stays held, so nothing
          -- else may run Lua meanwhile (the op itself, below, releases it
          -- around its host calls such as tape:copy(), by design)
          active = active + 1
          if active ~= 1 then overlaps = overlaps + 1 end
          counts[name] = (counts[name] or 0) + 1
          local junk = {}
          for i = 1, 50 do junk[i] = tostring(i) end
          active = active - 1
          return fn(...)
        end
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lthreads") end)
    local per = 100
    local r = helper.threads("lthreads:", 8, per)
    assert.is_nil(r.first_error)
    assert.are.equal(0, r.errors)
    assert.are.equal(8 * per, r.saved)
    assert.are.equal(8 * per, r.exists_ok)
    assert.are.equal(8 * per, r.loaded_ok)
    assert.are.equal(0, r.list_rc)
    assert.are.equal(8 * per, r.listed)
    assert.are.equal(0, r.duplicates)
    assert.are.equal(0, overlaps)
    assert.are.equal(0, active)
    -- each call reached its op exactly once
    assert.are.equal(8 * per, counts.save)
    assert.are.equal(8 * per, counts.exists)
    assert.are.equal(8 * per, counts.load)
    assert.is_not_nil(store_ops)
  end)

  it("and the C threads run while an op of this thread waits with the lock released", function()
    -- helper.threads releases the lock around the whole run: called from
    -- inside an op of another Lua provider, it must not deadlock either
    assert(tapestore.register_provider("lthreads_inner", fx.full))
    finally(function() tapestore.unregister_provider("lthreads_inner") end)
    local result
    assert(tapestore.register_provider("lthreads_outer", function(config)
      local ops = fx.minimal(config)
      ops.exists = function(id)
        result = helper.threads("lthreads_inner:", 4, 25)
        return true
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lthreads_outer") end)
    local s = assert(tapestore.open("lthreads_outer", {}))
    assert.is_true(s:exists("x"))
    s:close()
    assert.are.equal(0, result.errors)
    assert.are.equal(100, result.listed)
    assert.are.equal(0, result.duplicates)
  end)
end)

describe("every op of a Lua provider called from a bare pthread", function()
  it("works natively and through the core's fallbacks", function()
    local reached = {}
    assert(tapestore.register_provider("lpthread_full", function(config)
      local ops = fx.full(config)
      for name, fn in pairs(ops) do
        if type(fn) == "function" then
          ops[name] = function(...) reached[name] = true; return fn(...) end
        end
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lpthread_full") end)
    local rcs, first = helper.every_op("lpthread_full:")
    assert.is_nil(first)
    for op, rc in pairs(rcs) do assert.are.equal(0, rc, op) end
    for _, op in ipairs{ "open", "save", "exists", "load", "search", "stats", "begin_recording",
                         "frames", "control", "delete" } do
      assert.is_true(reached[op], op)
    end
    assert.is_nil(reached.list) -- search answered the query
    -- only the required ops: the core's fallbacks, still from the pthread
    assert(tapestore.register_provider("lpthread_min", fx.minimal))
    finally(function() tapestore.unregister_provider("lpthread_min") end)
    rcs, first = helper.every_op("lpthread_min:")
    assert.are.equal(tapestore.EUNSUPPORTED, rcs.control) -- no control op: unsupported
    rcs.control = nil
    assert.truthy(first:find("^control: ", 1), first)
    for op, rc in pairs(rcs) do assert.are.equal(0, rc, op) end
  end)
end)

describe("register, unregister, open and close", function()
  it("in every order: open stores keep working after unregister", function()
    local orders = {
      { "register", "open", "use", "close", "unregister" },
      { "register", "open", "unregister", "use", "close" },
      { "register", "open", "unregister", "use", "collect" },
      { "register", "open", "open2", "unregister", "close", "use2", "close2" },
      { "register", "unregister", "open_fails" },
      { "register", "open", "unregister", "register", "open2", "use", "use2", "close", "close2",
        "unregister" },
    }
    for oi, order in ipairs(orders) do
      local name = "lorder" .. oi
      local gen = 0
      local st = {}
      local registered = false
      for _, step in ipairs(order) do
        local where = oi .. ":" .. step
        if step == "register" then
          gen = gen + 1
          local mine = gen
          assert(tapestore.register_provider(name, function(config)
            local ops = fx.minimal(config)
            ops.exists = function(id) return mine == 1 end -- which registration made it
            return ops
          end), where)
          registered = true
        elseif step == "unregister" then
          assert.is_true(tapestore.unregister_provider(name), where)
          registered = false
        elseif step == "open" or step == "open2" then
          st[step] = assert(tapestore.open(name, {}), where)
          st[step .. "_gen"] = gen
        elseif step == "open_fails" then
          local s, msg, code = tapestore.open(name, {})
          assert.is_nil(s, where)
          assert.are.equal(tapestore.ENOTFOUND, code, where)
        elseif step == "use" or step == "use2" then
          local s = st[step == "use" and "open" or "open2"]
          local g = st[(step == "use" and "open" or "open2") .. "_gen"]
          local t = msg_tape(where)
          assert(s:save(t), where)
          assert.are.equal(where, assert(s:load(t.id), where).name)
          assert.are.equal(g == 1, s:exists(t.id), where) -- the store's own registration
        elseif step == "close" or step == "close2" then
          assert(st[step == "close" and "open" or "open2"]:close(), where)
        elseif step == "collect" then
          st.open = nil
          collectgarbage()
          collectgarbage()
        end
      end
      if registered then tapestore.unregister_provider(name) end
    end
  end)

  it("unregister of an unknown name returns nil, message, ENOTFOUND", function()
    local r, msg, code = tapestore.unregister_provider("lorder_never")
    assert.is_nil(r)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.truthy(msg:find("lorder_never", 1, true), msg)
    assert.has_error(function() tapestore.unregister_provider(nil) end)
  end)

  it("releases the factory when the name is unregistered and no store uses it", function()
    local weak = setmetatable({}, { __mode = "v" })
    for i = 1, 200 do
      local f = function(config) return fx.minimal(config) end
      weak[i] = f
      assert(tapestore.register_provider("lcycle", f))
      if i % 2 == 0 then -- half of them with a store still open at unregister
        local s = assert(tapestore.open("lcycle", {}))
        assert(s:save(msg_tape()))
        assert(tapestore.unregister_provider("lcycle"))
        assert.is_nil((s:load("x")))
        s:close()
      else
        assert(tapestore.unregister_provider("lcycle"))
      end
      f = nil
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)
end)

describe("a name unregistered from another state and taken again", function()
  it("is not unregistered when the first state closes", function()
    local other = helper.new_state(package.cpath, package.path, [[
      local tapestore = require "tapestore"
      local fx = require "provider_fixtures"
      assert(tapestore.register_provider("lshared", fx.minimal))
    ]])
    -- the other state's provider, unregistered from here, the name taken here
    assert(tapestore.unregister_provider("lshared"))
    assert(tapestore.register_provider("lshared", fx.full))
    finally(function() tapestore.unregister_provider("lshared") end)
    helper.close_state(other) -- must not unregister ours
    local s = assert(tapestore.open("lshared", {}))
    assert.is_true(s:capabilities(true).exists) -- ours: the full one
    s:close()
    -- and a state closing unregisters what it still holds
    other = helper.new_state(package.cpath, package.path, [[
      local tapestore = require "tapestore"
      local fx = require "provider_fixtures"
      assert(tapestore.register_provider("lshared2", fx.minimal))
    ]])
    assert.are.equal(1, helper.provider_info("lshared2"))
    helper.close_state(other)
    assert.are.equal(tapestore.ENOTFOUND, select(2, helper.provider_info("lshared2")))
  end)
end)

describe("lua_close of a state with a provider still registered", function()
  it("unregisters it, and a C thread still calling gets TAPE_EPROVIDER, not a crash or a hang",
    function()
      local script = [[
        local tapestore = require "tapestore"
        local fx = require "provider_fixtures"
        assert(tapestore.register_provider("lclosing", function(config)
          local ops = fx.minimal(config)
          ops.exists = function(id) local x = 0 for i = 1, 100 do x = x + i end return x > 0 end
          return ops
        end))
      ]]
      local r = helper.close_while_calling(package.cpath, "package.path = " ..
        string.format("%q", package.path) .. "\n" .. script, "lclosing:")
      assert.are.equal(1, r.open, r.msg)
      assert.is_true(r.ok_before > 0, "calls before the close")
      assert.are.equal(0, r.ok_after)
      assert.is_true(r.eprovider > 0, "calls after the close")
      assert.are.equal(0, r.other)
      assert.truthy(r.msg:find("lua provider 'lclosing' exists: its Lua state is closed", 1, true),
        r.msg)
      -- the closed state's provider is gone from the registry
      local s, msg, code = tapestore.open("lclosing", {})
      assert.is_nil(s)
      assert.are.equal(tapestore.ENOTFOUND, code)
      -- and the name is free again
      assert(tapestore.register_provider("lclosing", fx.minimal))
      assert(tapestore.unregister_provider("lclosing"))
    end)
end)
