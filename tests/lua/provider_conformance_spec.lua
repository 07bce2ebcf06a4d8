-- The C conformance suite (tests/conformance, the one every provider
-- passes), run in-process through the trampolines against providers
-- written in Lua (tests/lua/provider_fixtures.lua), and the
-- tapestore.conformance function itself. TAPE_CONFORMANCE_LIB names the
-- library (set by ctest).
local tapestore = require "tapestore"
local fx = require "provider_fixtures"

-- Run the whole suite against provider `name`; the TAP lines are kept.
local function run(name, config)
  local lines = {}
  local passed, failed, skipped = tapestore.conformance(name, config, {
    emit = function(line) lines[#lines + 1] = line end,
  })
  assert(passed, failed) -- on a setup error: nil, message, code
  return passed, failed, skipped, lines
end

local function failures(lines)
  local out = {}
  for i, l in ipairs(lines) do
    if l:match("^not ok") then
      out[#out + 1] = l
      local j = i + 1
      while lines[j] and lines[j]:match("^# line") do
        out[#out + 1] = lines[j]
        j = j + 1
      end
    end
  end
  return table.concat(out, "\n")
end

local function plan(lines)
  return tonumber(lines[1]:match("^1%.%.(%d+)$"))
end

describe("the conformance suite through the trampolines", function()
  it("passes against a Lua provider with every op", function()
    assert(tapestore.register_provider("lconf_full", fx.full))
    finally(function() tapestore.unregister_provider("lconf_full") end)
    local passed, failed, skipped, lines = run("lconf_full", "{}")
    assert.are.equal("", failures(lines))
    assert.are.equal(0, failed)
    assert.are.equal(1, skipped) -- persistence: not persistent
    assert.are.equal(plan(lines), passed + skipped)
    assert.is_true(passed >= 19)
    assert.are.equal("integer", math.type(passed))
  end)

  it("passes against a Lua provider with only the required ops (the core's fallbacks)",
    function()
      assert(tapestore.register_provider("lconf_min", fx.minimal))
      finally(function() tapestore.unregister_provider("lconf_min") end)
      local s = assert(tapestore.open("lconf_min", {}))
      local native = s:capabilities(true)
      assert.is_nil(native.exists)
      assert.is_nil(native.search)
      assert.is_nil(native.writer)
      s:close()
      local passed, failed, skipped, lines = run("lconf_min", "{}")
      assert.are.equal("", failures(lines))
      assert.are.equal(0, failed)
      assert.are.equal(plan(lines), passed + skipped)
    end)

  it("runs the persistence case for a provider registered persistent", function()
    assert(tapestore.register_provider("lconf_pers", fx.persistent, { persistent = true }))
    finally(function() tapestore.unregister_provider("lconf_pers") end)
    local passed, failed, skipped, lines = run("lconf_pers", { ns = "@NS@" })
    assert.are.equal("", failures(lines))
    assert.are.equal(0, failed)
    assert.are.equal(0, skipped)
    assert.are.equal(plan(lines), passed)
  end)

  it("catches a broken provider: a load that drops the last frame fails fidelity", function()
    assert(tapestore.register_provider("lconf_broken", function(config)
      local ops = fx.minimal(config)
      local load = ops.load
      ops.load = function(id)
        local t = load(id)
        if t == nil or #t == 0 then return t end
        local keep = {}
        for f in t:frames() do keep[#keep + 1] = f.line end
        table.remove(keep)
        local init = t:to_jsonl():match("^[^\n]*\n")
        return assert(tapestore.tape_from_jsonl(init .. table.concat(keep, "\n") ..
          (#keep > 0 and "\n" or ""), t:to_meta_json()))
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lconf_broken") end)
    local lines = {}
    local passed, failed = tapestore.conformance("lconf_broken", "{}", {
      only = "save/load fidelity", emit = function(l) lines[#lines + 1] = l end })
    assert.are.equal(0, passed)
    assert.are.equal(1, failed)
    assert.truthy(failures(lines):match("not ok 1 %- save/load fidelity"))
  end)
end)

describe("tapestore.conformance", function()
  it("runs the selected cases and prints TAP to stdout without emit", function()
    -- In a child lua5.4, so its TAP lines do not mix with busted's.
    local script = [[
      local tapestore = require "tapestore"
      local fx = require "provider_fixtures"
      assert(tapestore.register_provider("lconf_only", fx.minimal))
      local p, f, s = tapestore.conformance("lconf_only", "{}", { only = "delete and exists" })
      print(string.format("counts %s %s %s %s", p, f, s, math.type(p)))
    ]]
    local cmd = "lua5.4 -e " .. string.format("%q", script):gsub("\\\n", " ") .. " 2>&1"
    local h = assert(io.popen(cmd))
    local out = h:read("a")
    h:close()
    assert.truthy(out:match("^1%.%.1\n"), out)
    assert.truthy(out:match("\nok 1 %- delete and exists\n"), out)
    assert.truthy(out:match("\ncounts 1 0 0 integer\n"), out)
  end)

  it("says how to point at the library when it cannot load it", function()
    local script = [[
      local tapestore = require "tapestore"
      print(tapestore.conformance("memory", "{}", { only = "capabilities" }))
    ]]
    local cmd = "env TAPE_CONFORMANCE_LIB=/nonexistent/libtapestore_conformance.so " ..
      "LD_LIBRARY_PATH=/nonexistent lua5.4 -e " ..
      string.format("%q", script):gsub("\\\n", " ") .. " 2>&1"
    local h = assert(io.popen(cmd))
    local out = h:read("a")
    h:close()
    assert.truthy(out:match("^nil\t"), out)
    assert.truthy(out:find("cannot load libtapestore_conformance.so (set TAPE_CONFORMANCE_LIB)", 1, true), out)
    assert.truthy(out:find("/nonexistent/libtapestore_conformance.so", 1, true), out)
    assert.truthy(out:match("\t%-1\n$"), out) -- TAPE_ENOTFOUND
  end)

  it("finds the library beside the libtapestore it uses, without TAPE_CONFORMANCE_LIB", function()
    -- an installed layout: both libraries in one directory, found there
    local lib = assert(os.getenv("TAPE_CONFORMANCE_LIB"))
    local build = assert(os.getenv("TAPE_LUA_BUILD_DIR"))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "' && cp -L '" .. build .. "/libtapestore.so.0' '" ..
      lib .. "' '" .. dir .. "/'"))
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    local script = [[
      local tapestore = require "tapestore"
      print("counts", tapestore.conformance("memory", "{}", { only = "capabilities", emit = function() end }))
    ]]
    -- libtapestore preloaded from there (not on the loader's path, so only
    -- "beside libtapestore" can find the suite; sanitizer runtimes first)
    local pre = os.getenv("LD_PRELOAD")
    pre = (pre and pre ~= "" and pre .. ":" or "") .. dir .. "/libtapestore.so.0"
    local cmd = "env -u TAPE_CONFORMANCE_LIB -u LD_LIBRARY_PATH LD_PRELOAD='" .. pre .. "' lua5.4 -e " ..
      string.format("%q", script):gsub("\\\n", " ") .. " 2>&1"
    local h = assert(io.popen(cmd))
    local out = h:read("a")
    h:close()
    assert.truthy(out:find("counts\t1\t0\t0", 1, true), out)
  end)

  it("takes the config template as a table or JSON text", function()
    assert(tapestore.register_provider("lconf_cfg", fx.persistent))
    finally(function() tapestore.unregister_provider("lconf_cfg") end)
    local quiet = { only = "not-found", emit = function() end }
    assert.are.equal(1, (tapestore.conformance("lconf_cfg", { ns = "@NS@" }, quiet)))
    assert.are.equal(1, (tapestore.conformance("lconf_cfg", '{"ns":"@NS@"}', quiet)))
  end)

  it("runs against a builtin provider too", function()
    local passed, failed = tapestore.conformance("memory", "{}", { only = "query: invalid",
      emit = function() end })
    assert.are.same({ 1, 0 }, { passed, failed })
  end)

  it("returns nil, message, code for an unknown provider or an empty selection", function()
    local r, msg, code = tapestore.conformance("no_such_provider", "{}", { emit = function() end })
    assert.is_nil(r)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.truthy(msg:match("no_such_provider"))
    r, msg, code = tapestore.conformance("memory", "{}", { only = "no case is named this" })
    assert.is_nil(r)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.are.equal("string", type(msg))
  end)

  it("raises on misuse, naming the argument", function()
    assert.has_error(function() tapestore.conformance({}) end)
    assert.has_error(function() tapestore.conformance("memory", "{}", { only = 3 }) end,
      "conformance: only must be a string, got number")
    assert.has_error(function() tapestore.conformance("memory", "{}", { emit = "x" }) end,
      "conformance: emit must be a function, got string")
    local ok, err = pcall(tapestore.conformance, "memory", "{}", { only = "query: invalid",
      emit = function() error("emit broke") end })
    assert.is_false(ok)
    assert.truthy(tostring(err):match("the emit function raised: .*emit broke"))
  end)
end)
