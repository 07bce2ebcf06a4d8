-- Registration, and each C slot of the vtable reaching the Lua op of its
-- own name (BINDINGS.md "tests that would have caught the anchors' bugs",
-- 4): a table-driven test over every op, through the host API and the core.
local tapestore = require "tapestore"
local fx = require "provider_fixtures"
local helper = require "tape_lua_testhelper"
helper.init(package.searchpath("tapestore", package.cpath))

local function msg_tape(name)
  local t = tapestore.new_tape{ name = name or "t" }
  t:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "ping" })
  t:append(tapestore.SERVER_TO_CLIENT, { jsonrpc = "2.0", id = 1, result = {} })
  return t
end

-- A provider whose every op records its name (and the recording's ops
-- "recording.<name>") and answers validly.
local calls = {}
local function spy_factory(config)
  local tapes = {}
  local function note(name) calls[#calls + 1] = name end
  local ops = {}
  function ops.save(t) note("save"); tapes[t.id] = t:copy() end
  function ops.load(id) note("load"); return tapes[id] end
  function ops.delete(id) note("delete"); tapes[id] = nil end
  function ops.list(q) note("list"); local o = {} for _, t in pairs(tapes) do o[#o + 1] = t end return o end
  function ops.open() note("open") end
  function ops.close() note("close") end
  function ops.exists(id) note("exists"); return tapes[id] ~= nil end
  function ops.search(q)
    note("search")
    local o = {} for _, t in pairs(tapes) do o[#o + 1] = t end
    return q:page(o)
  end
  function ops.stats() note("stats"); return { tape_count = 7, frame_count = 8, total_bytes = 9 } end
  function ops.begin_recording(h)
    note("begin_recording")
    return {
      append = function(f, hdr) note("recording.append") end,
      correlate = function(hdr, i) note("recording.correlate") end,
      finish = function(hdr, fin) note("recording.finish") end,
    }
  end
  function ops.frames(id, start, stop)
    note("frames")
    local t = tapes[id]
    return t and t:frames(start, stop)
  end
  function ops.control(op, input) note("control"); return { op = op, input = input } end
  return ops
end

describe("each C slot reaches the op of its own name", function()
  setup(function()
    assert(tapestore.register_provider("lslot", spy_factory, {
      validate = function(config) calls[#calls + 1] = "validate" end }))
  end)
  teardown(function() tapestore.unregister_provider("lslot") end)

  -- slot, the host call that reaches it, the ops it must reach (in order)
  local cases = {
    { "validate+create", function() return tapestore.open("lslot", {}) end, { "validate" } },
    { "open", function(s) return s:stats() end, { "open", "stats" } },
    { "save", function(s, t) return s:save(t) end, { "save" } },
    { "load", function(s, t) return s:load(t.id) end, { "load" } },
    { "exists", function(s, t) return s:exists(t.id) end, { "exists" } },
    { "search", function(s) return s:query_page{} end, { "search" } },
    { "stats", function(s) return s:stats() end, { "stats" } },
    { "control", function(s) return s:control("ping", { x = 1 }) end, { "control" } },
    { "frames_open/next/close", function(s, t)
        local n = 0
        for _ in s:frames(t.id) do n = n + 1 end
        return n
      end, { "frames" } },
    { "writer_begin", function(s, _, ctx) ctx.w = s:record{ name = "rec" }; return ctx.w end,
      { "begin_recording" } },
    { "writer_append", function(_, _, ctx)
        return ctx.w:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "x" })
      end, { "recording.append" } },
    { "writer_correlate", function(_, _, ctx)
        assert(ctx.w:append(tapestore.SERVER_TO_CLIENT, { jsonrpc = "2.0", id = 1, result = 1 }))
        return ctx.w:add_correlation("1", 0, 1)
      end, { "recording.append", "recording.correlate" } },
    { "writer_end", function(_, _, ctx) return ctx.w:finish() end, { "recording.finish" } },
    { "remove", function(s, t) return s:delete(t.id) end, { "delete" } },
    { "close", function(s) return s:close() end, { "close" } },
  }

  it("in a table over every op", function()
    local s, t, ctx = nil, msg_tape("slots"), {}
    for _, c in ipairs(cases) do
      calls = {}
      local r, err = c[2](s, t, ctx)
      assert(r ~= nil, c[1] .. ": " .. tostring(err))
      if s == nil then s = r end
      assert.are.same(c[3], calls, c[1])
      if c[1] == "save" then calls = {} end
    end
  end)

  it("passes the arguments and results of each op through", function()
    local s = assert(tapestore.open("lslot", {}))
    local t = msg_tape("args")
    assert(s:save(t))
    local back = assert(s:load(t.id))
    assert.are.equal("args", back.name)
    assert.are.equal(2, #back)
    assert.is_true(s:exists(t.id))
    assert.is_false(s:exists("nope"))
    local st = s:stats()
    assert.are.same({ 7, 8, 9 }, { st.tape_count, st.frame_count, st.total_bytes })
    assert.are.equal("integer", math.type(st.tape_count))
    local out = s:control("ping", { x = 1, big = 9007199254740993 })
    assert.are.equal("ping", out.op)
    assert.are.equal(9007199254740993, out.input.big)
    assert.are.equal("integer", math.type(out.input.big))
    local seqs = {}
    for f in s:frames(t.id, 1) do seqs[#seqs + 1] = f.seq end
    assert.are.same({ 1 }, seqs)
    s:close()
  end)

  it("fills only the slots of the ops present: the others are the core's fallbacks", function()
    local s = assert(tapestore.open("lslot", {}))
    local native = s:capabilities(true)
    for _, cap in ipairs{ "exists", "search", "stats", "writer", "read_frames", "control",
                          "thread_safe" } do
      assert.is_true(native[cap], cap)
    end
    s:close()
    assert(tapestore.register_provider("lslot_min", fx.minimal))
    finally(function() tapestore.unregister_provider("lslot_min") end)
    s = assert(tapestore.open("lslot_min", {}))
    native = s:capabilities(true)
    local available = s:capabilities()
    for _, cap in ipairs{ "exists", "search", "stats", "writer", "read_frames" } do
      assert.is_nil(native[cap], cap)
      assert.is_true(available[cap], cap)
    end
    assert.is_true(native.thread_safe)
    local t = msg_tape("fallback")
    assert(s:save(t))
    assert.is_true(s:exists(t.id)) -- through list/load
    assert.are.equal(1, s:stats().tape_count)
    local r, msg, code = s:control("anything")
    assert.is_nil(r)
    assert.are.equal(tapestore.EUNSUPPORTED, code)
    s:close()
  end)

  it("takes persistent from the factory's table, else from the registration", function()
    assert(tapestore.register_provider("lslot_pers", function(config)
      local ops = fx.minimal(config)
      ops.persistent = config.persistent
      return ops
    end, { persistent = true }))
    finally(function() tapestore.unregister_provider("lslot_pers") end)
    local function pers(cfg)
      local s = assert(tapestore.open("lslot_pers", cfg))
      local p = s:capabilities(true).persistent
      s:close()
      return p
    end
    assert.is_true(pers{})                       -- the registration's default
    assert.is_nil(pers{ persistent = false })    -- the table's own say
    assert.is_true(pers{ persistent = true })
    local s, msg, code = tapestore.open("lslot_pers", { persistent = "yes" })
    assert.is_nil(s)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:find("the factory's field persistent is a string, expected a boolean", 1, true), msg)
  end)

  it("takes frames as frame objects or as their JSONL lines, and stats with fields left out", function()
    assert(tapestore.register_provider("lslot_lines", function(config)
      local ops = fx.minimal(config)
      local load = ops.load
      ops.frames = function(id, start, stop)
        local t = load(id)
        if t == nil then return nil end
        local lines = {}
        for f in t:frames(start, stop) do lines[#lines + 1] = f.line end
        return lines
      end
      ops.stats = function() return { frame_count = 3 } end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lslot_lines") end)
    local s = assert(tapestore.open("lslot_lines", {}))
    local t = msg_tape("lines")
    assert(s:save(t))
    local got = {}
    for f in s:frames(t.id) do got[#got + 1] = f.message.method or "result" end
    assert.are.same({ "ping", "result" }, got)
    local st = s:stats()
    assert.are.same({ 0, 3, 0 }, { st.tape_count, st.frame_count, st.total_bytes })
    s:close()
  end)

  it("builds one vtable per set of ops: stores of one provider may differ", function()
    assert(tapestore.register_provider("lslot_var", function(config)
      local ops = fx.minimal(config)
      if config.with_exists then ops.exists = function(id) return id == "yes" end end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lslot_var") end)
    local a = assert(tapestore.open("lslot_var", { with_exists = true }))
    local b = assert(tapestore.open("lslot_var", {}))
    assert.is_true(a:capabilities(true).exists)
    assert.is_nil(b:capabilities(true).exists)
    assert.is_true(a:exists("yes")) -- the op: nothing is stored
    assert.is_false(b:exists("yes"))
    a:close()
    b:close()
  end)
end)

describe("register_provider", function()
  it("registers into the default registry, visible from C by name", function()
    assert.is_true(tapestore.register_provider("lreg_one", fx.minimal,
      { version = 7, description = "one line" }))
    finally(function() tapestore.unregister_provider("lreg_one") end)
    local s = assert(tapestore.open("lreg_one:")) -- the one-string form, parsed by the core
    local t = msg_tape()
    assert(s:save(t))
    s:close()
    local version, desc, caps = helper.provider_info("lreg_one")
    assert.are.equal(7, version)
    assert.are.equal("one line", desc)
    assert.are.equal(64, caps & 64) -- TAPE_CAP_THREAD_SAFE
    assert.are.equal(0, caps & 128) -- not TAPE_CAP_PERSISTENT
    -- a store of it opened by a C caller (the lock released) runs the ops
    assert.are.equal(0, helper.open_exists("lreg_one:", t.id)) -- a new, empty store
    assert(tapestore.register_provider("lreg_pers", fx.persistent, { persistent = true }))
    assert.are.equal(128, select(3, helper.provider_info("lreg_pers")) & 128)
    tapestore.unregister_provider("lreg_pers")
    assert.are.equal(tapestore.ENOTFOUND, select(2, helper.provider_info("lreg_pers")))
  end)

  it("returns nil, message, EEXISTS for a name taken, keeping the first", function()
    assert(tapestore.register_provider("lreg_dup", fx.minimal))
    finally(function() tapestore.unregister_provider("lreg_dup") end)
    local r, msg, code = tapestore.register_provider("lreg_dup", fx.full)
    assert.is_nil(r)
    assert.are.equal(tapestore.EEXISTS, code)
    assert.truthy(msg:match("lreg_dup"))
    local s = assert(tapestore.open("lreg_dup", {}))
    assert.is_nil(s:capabilities(true).exists) -- still the minimal one
    s:close()
    r, msg, code = tapestore.register_provider("memory", fx.minimal)
    assert.is_nil(r)
    assert.are.equal(tapestore.EEXISTS, code)
  end)

  it("returns nil, message, code for a name the core refuses", function()
    local r, msg, code = tapestore.register_provider("Bad Name!", fx.minimal)
    assert.is_nil(r)
    assert.are.equal("string", type(msg))
    assert.are.equal("integer", math.type(code))
    assert.is_true(code < 0)
  end)

  it("raises on misuse, naming what is wrong", function()
    assert.has_error(function() tapestore.register_provider(nil, fx.minimal) end)
    assert.has_error(function() tapestore.register_provider("lreg_x", "notafunction") end,
      "register_provider 'lreg_x': the factory must be a function, got string")
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, 3) end)
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, { vresion = 1 }) end,
      "register_provider 'lreg_x': unknown option vresion (expected version, description, validate, persistent)")
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, { version = 1.5 }) end,
      "register_provider 'lreg_x': version must be an integer in [0, 2^32), got 1.5")
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, { version = -1 }) end,
      "register_provider 'lreg_x': version must be an integer in [0, 2^32), got -1")
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, { description = 1 }) end,
      "register_provider 'lreg_x': description must be a string, got number")
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, { validate = 1 }) end,
      "register_provider 'lreg_x': validate must be a function, got number")
    assert.has_error(function() tapestore.register_provider("lreg_x", fx.minimal, { persistent = 1 }) end,
      "register_provider 'lreg_x': persistent must be a boolean, got number")
    assert.is_nil((tapestore.open("lreg_x", {}))) -- nothing was registered
  end)

  it("takes a callable table as the factory", function()
    local factory = setmetatable({}, { __call = function(self, config) return fx.minimal(config) end })
    assert(tapestore.register_provider("lreg_callable", factory))
    finally(function() tapestore.unregister_provider("lreg_callable") end)
    local s = assert(tapestore.open("lreg_callable", {}))
    assert(s:save(msg_tape()))
    s:close()
  end)

  it("gives the factory and validate the config as a table (decoded JSON)", function()
    local seen = {}
    assert(tapestore.register_provider("lreg_cfg", function(config)
      seen.factory = config
      return fx.minimal(config)
    end, { validate = function(config) seen.validate = config end }))
    finally(function() tapestore.unregister_provider("lreg_cfg") end)
    local s = assert(tapestore.open("lreg_cfg", '{"n": 1099511627777, "list": [1, "a"], "o": {}}'))
    for _, k in ipairs{ "factory", "validate" } do
      assert.are.equal(1099511627777, seen[k].n, k)
      assert.are.equal("integer", math.type(seen[k].n), k)
      assert.are.same({ 1, "a" }, { seen[k].list[1], seen[k].list[2] }, k)
      assert.are.equal("table", type(seen[k].o), k)
    end
    s:close()
  end)
end)

describe("validate and the factory", function()
  it("validate refuses with nil, message (TAPE_ECONFIG) before the factory runs", function()
    local made = 0
    assert(tapestore.register_provider("lval", function(config)
      made = made + 1
      return fx.minimal(config)
    end, { validate = function(config)
      for k in pairs(config) do
        if k ~= "label" then return nil, "unknown key '" .. k .. "'" end
      end
    end }))
    finally(function() tapestore.unregister_provider("lval") end)
    local s, msg, code = tapestore.open("lval", { lable = "x" })
    assert.is_nil(s)
    assert.are.equal(tapestore.ECONFIG, code)
    assert.are.equal("lua provider 'lval' validate: unknown key 'lable'", msg)
    assert.are.equal(0, made)
    s = assert(tapestore.open("lval", { label = "x" }))
    assert.are.equal(1, made)
    s:close()
  end)

  it("validate raising is a provider error, with the traceback", function()
    assert(tapestore.register_provider("lval_raise", fx.minimal, {
      validate = function() error("validate broke") end }))
    finally(function() tapestore.unregister_provider("lval_raise") end)
    local s, msg, code = tapestore.open("lval_raise", {})
    assert.is_nil(s)
    assert.are.equal(tapestore.EPROVIDER, code)
    assert.truthy(msg:match("^lua provider 'lval_raise' validate: .*validate broke"))
    assert.truthy(msg:match("stack traceback:"))
  end)

  it("a factory table without a required op is refused at open, naming the op", function()
    for _, missing in ipairs{ "save", "load", "delete", "list" } do
      local name = "lfac_" .. missing
      assert(tapestore.register_provider(name, function(config)
        local ops = fx.minimal(config)
        ops[missing] = nil
        return ops
      end))
      local s, msg, code = tapestore.open(name, {})
      tapestore.unregister_provider(name)
      assert.is_nil(s)
      assert.are.equal(tapestore.EPROVIDER, code)
      assert.truthy(msg:find("lacks the required op " .. missing, 1, true), msg)
    end
  end)

  it("a factory that fails, or returns no table, is refused clearly", function()
    local cases = {
      { function() error("no backend today") end, tapestore.EPROVIDER, "factory: .*no backend today" },
      { function() return nil, "cannot connect", tapestore.EIO end, tapestore.EIO, "^cannot connect$" },
      { function() return nil, "down" end, tapestore.EPROVIDER, "^lua provider 'lfac' factory: down$" },
      { function() end, tapestore.EPROVIDER, "the factory returned nothing, expected a table" },
      { function() return 42 end, tapestore.EPROVIDER, "the factory returned number, expected a table" },
      { function(c) local o = fx.minimal(c); o.exists = "yes"; return o end, tapestore.EPROVIDER,
        "the factory's op exists is a string, expected a function" },
    }
    for i, c in ipairs(cases) do
      assert(tapestore.register_provider("lfac", c[1]))
      local s, msg, code = tapestore.open("lfac", {})
      tapestore.unregister_provider("lfac")
      assert.is_nil(s, i)
      assert.are.equal(c[2], code, i .. ": " .. tostring(msg))
      assert.truthy(msg:match(c[3]), i .. ": " .. msg)
    end
  end)
end)

describe("the query a list or search receives", function()
  it("is the normalised query as a table, with match and page from the core's matcher", function()
    local seen
    assert(tapestore.register_provider("lquery", function(config)
      local ops = fx.minimal(config)
      local list = ops.list
      ops.search = function(q)
        seen = q
        local items = {}
        for _, t in ipairs(list(q)) do
          if q:match(t) then items[#items + 1] = t end
        end
        return q:page(items)
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lquery") end)
    local s = assert(tapestore.open("lquery", {}))
    for i = 1, 5 do
      local t = msg_tape("q" .. i)
      t:add_tag(i % 2 == 0 and "even" or "odd")
      assert(s:save(t))
    end
    local names = {}
    for e in s:query{ tags_any = { "odd" }, order_by = "name", limit = 2 } do names[#names + 1] = e.name end
    assert.are.same({ "q1", "q3" }, names)
    assert.are.same({ "odd" }, { seen.tags_any[1] })
    assert.are.equal("name", seen.order_by)
    assert.is_false(seen.descending)
    -- match and page work after the call too (the query owns its copy)
    assert.is_true(seen:match{ tape_id = "x", tags = { "odd" }, created_at = "2025-01-01T00:00:00Z" })
    assert.is_false(seen:match{ tape_id = "x", tags = { "even" }, created_at = "2025-01-01T00:00:00Z" })
    assert.has_error(function() seen:match(42) end)
    assert.has_error(function() seen.match({}, {}) end, "expected the query a provider op received")
    s:close()
  end)
end)

describe("objects lent to an op", function()
  it("are revoked when the op returns: later use raises a clear error", function()
    local kept = {}
    assert(tapestore.register_provider("llent", function(config)
      local ops = fx.minimal(config)
      local save = ops.save
      ops.save = function(t) kept.tape = t; kept.name = t.name; return save(t) end
      ops.begin_recording = function(h)
        kept.header = h
        return {
          append = function(f, hdr) kept.frame, kept.fseq, kept.hdr2 = f, f.seq, hdr end,
          correlate = function() end,
          finish = function() end,
        }
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("llent") end)
    local s = assert(tapestore.open("llent", {}))
    assert(s:save(msg_tape("lent")))
    assert.are.equal("lent", kept.name) -- readable during the call
    local ok, err = pcall(function() return kept.tape.name end)
    assert.is_false(ok)
    assert.truthy(tostring(err):match("provider call"), err)
    local w = assert(s:record{ name = "r" })
    assert(w:append(tapestore.CLIENT_TO_SERVER, { jsonrpc = "2.0", id = 1, method = "a" }))
    assert.are.equal(0, kept.fseq)
    for _, k in ipairs{ "header", "frame", "hdr2" } do
      ok, err = pcall(function() return kept[k].seq or kept[k].id end)
      assert.is_false(ok, k)
      assert.truthy(tostring(err):match("provider call"), k .. ": " .. tostring(err))
    end
    assert(w:finish())
    s:close()
  end)
end)

describe("an op calling back into its own store", function()
  it("runs nested (the backend is thread-safe: the core lets it in)", function()
    local store
    assert(tapestore.register_provider("lreenter", function(config)
      local ops = fx.minimal(config)
      ops.exists = function(id)
        -- the host API releases the lock around the core call, and the
        -- trampoline of load takes it again on this same thread
        return store:load(id) ~= nil
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lreenter") end)
    store = assert(tapestore.open("lreenter", {}))
    local t = msg_tape("re")
    assert(store:save(t))
    assert.is_true(store:exists(t.id))
    assert.is_false(store:exists("other"))
    store:close()
  end)

  it("without end is stopped with TAPE_ESTATE, not a crash", function()
    local store, depth = nil, 0
    assert(tapestore.register_provider("lrecurse", function(config)
      local ops = fx.minimal(config)
      ops.exists = function(id)
        depth = depth + 1
        local r, msg, code = store:exists(id) -- again, and again...
        if r == nil then return nil, msg, code end
        return r
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lrecurse") end)
    store = assert(tapestore.open("lrecurse", {}))
    local r, msg, code = store:exists("x")
    assert.is_nil(r)
    assert.are.equal(tapestore.ESTATE, code)
    assert.truthy(msg:find("calls nested 100 deep on this thread", 1, true), msg)
    assert.are.equal(100, depth)
    assert.is_true(store:save(msg_tape()))
    store:close()
  end)

  it("a lent tape is read-only during the call", function()
    local err
    assert(tapestore.register_provider("lreadonly", function(config)
      local ops = fx.minimal(config)
      local save = ops.save
      ops.save = function(t)
        local ok, e = pcall(function() t.name = "changed" end)
        err = not ok and tostring(e) or "no error"
        return save(t)
      end
      return ops
    end))
    finally(function() tapestore.unregister_provider("lreadonly") end)
    local s = assert(tapestore.open("lreadonly", {}))
    local t = msg_tape("orig")
    assert(s:save(t))
    assert.truthy(err:find("read-only", 1, true), err)
    assert.are.equal("orig", s:load(t.id).name)
    assert.are.equal("orig", t.name)
    s:close()
  end)
end)

describe("a provider that delegates to another store", function()
  it("hands out the base store's iterators: list from store:query, frames from tape:frames", function()
    assert(tapestore.register_provider("ldelegate", function(config)
      local base = assert(tapestore.open("memory", {}))
      return {
        save = function(t) return base:save(t) end,
        load = function(id) return base:load(id) end,
        delete = function(id) return base:delete(id) end,
        list = function(query) return base:query{} end, -- an iterator of entries
        frames = function(id, start, stop)
          local t = base:load(id)
          return t and t:frames(start, stop)
        end,
        close = function() return base:close() end,
      }
    end))
    finally(function() tapestore.unregister_provider("ldelegate") end)
    local s = assert(tapestore.open("ldelegate", {}))
    local names = {}
    for i = 1, 3 do
      local t = msg_tape("d" .. i)
      t:add_tag(i == 2 and "two" or "other")
      assert(s:save(t))
    end
    for e in s:query{ order_by = "name" } do names[#names + 1] = e.name end
    assert.are.same({ "d1", "d2", "d3" }, names)
    names = {}
    for e in s:query{ tags_any = { "two" } } do names[#names + 1] = e.name end
    assert.are.same({ "d2" }, names)
    local t = msg_tape("frames")
    assert(s:save(t))
    local seqs = {}
    for f in s:frames(t.id, 1) do seqs[#seqs + 1] = f.seq end
    assert.are.same({ 1 }, seqs)
    -- the base's failure passes through as it is: its code and message
    local r, msg, code = s:delete("never-saved")
    assert.is_nil(r)
    assert.are.equal(tapestore.ENOTFOUND, code)
    assert.truthy(msg:find("never-saved", 1, true), msg)
    assert.is_nil(msg:find("lua provider", 1, true), msg)
    assert(s:close())
  end)

  it("counts above 2^31 and 2^53 from a provider's stats reach the host exactly, as integers", function()
    local big = (1 << 53) + 1
    assert(tapestore.register_provider("lbigstats", function()
      return {
        save = function() end, load = function() end, delete = function() end,
        list = function() return {} end,
        stats = function() return { tape_count = big, frame_count = (1 << 62) + 3,
                                    total_bytes = (1 << 31) + 1 } end,
      }
    end))
    finally(function() tapestore.unregister_provider("lbigstats") end)
    local s <close> = assert(tapestore.open("lbigstats", {}))
    local st = assert(s:stats())
    assert.are.equal(big, st.tape_count)
    assert.are.equal((1 << 62) + 3, st.frame_count)
    assert.are.equal((1 << 31) + 1, st.total_bytes)
    for _, k in ipairs { "tape_count", "frame_count", "total_bytes" } do
      assert.are.equal("integer", math.type(st[k]), k)
    end
  end)
end)
