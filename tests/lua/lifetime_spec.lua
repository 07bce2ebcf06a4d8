-- Lifetime: __close and garbage collection of stores, tapes, writers,
-- iterators, frames and entries in every order; children keep parents
-- alive; closing a store invalidates its children ("closed store"); closed
-- and resurrected objects raise clear errors, never crash.
local tapestore = require "tapestore"
local H = require "helpers"

local function filled()
  local s = assert(tapestore.open("memory:"))
  local t = H.tape({ name = "kept" }, 3)
  assert(s:save(t))
  return s, t.id
end

describe("children keep their parents alive", function()
  it("a chained one-line call works", function()
    local dir = H.tmpdir()
    local t = H.tape({ name = "chained" }, 3)
    assert(tapestore.open("filesystem", { path = dir }):save(t))
    collectgarbage()
    -- the store and the tape are reachable only through the iterator
    local n = 0
    for f in tapestore.open("filesystem", { path = dir }):load(t.id):frames() do
      collectgarbage()
      n = n + 1
      assert.equal(n - 1, f.seq)
    end
    assert.equal(6, n)
    local stored = 0
    for _ in tapestore.open("filesystem", { path = dir }):frames(t.id) do
      collectgarbage()
      stored = stored + 1
    end
    assert.equal(6, stored)
    H.rm_rf(dir)
    local s, id = filled()
    local frames = s:load(id):frames()
    collectgarbage()
    collectgarbage()
    assert.equal(0, frames().seq)
    local it = tapestore.open("memory:"):query {}
    collectgarbage()
    assert.is_nil(it()) -- a new empty store, kept alive by its iterator
  end)

  it("a frame keeps its tape, an iterator and a writer keep their store", function()
    local s, id = filled()
    local f = H.collect(s:load(id):frames())[2]
    local it = s:frames(id)
    local w = s:record { name = "w" }
    s = nil
    collectgarbage()
    collectgarbage()
    assert.equal(1, f.seq)
    assert.equal("server_to_client", f.direction)
    assert.equal(0, it().seq)
    assert.equal(0, w:append("client_to_server", H.request(1, "x")))
    assert.is_true(w:finish())
  end)
end)

describe("store:close", function()
  it("invalidates every child: they raise closed store", function()
    local s, id = filled()
    local it = s:frames(id)
    local q = s:query { name_contains = "kept" }
    local w = s:record { name = "open" }
    w:append("client_to_server", H.request(1, "x"))
    local wid = w.id
    local t = s:load(id)
    local e = q()
    assert.is_true(s:close())
    assert.is_true(s:close()) -- idempotent
    assert.is_true(s.closed)
    assert.has_error(function() it() end, "frame iterator: closed store")
    assert.has_error(function() q() end, "query iterator: closed store")
    assert.has_error(function() w:append("client_to_server", "{}") end, "writer:append: closed store")
    assert.has_error(function() w:finish() end, "writer:finish: closed store")
    assert.has_error(function() s:load(id) end, "store:load: closed store")
    assert.has_error(function() return s.provider end, "store.provider: closed store")
    assert.equal(wid, w.id)
    assert.is_true(w.closed)
    -- tapes and entries belong to no store
    assert.equal(6, #t)
    assert.equal("kept", e.name)
    -- closing and collecting the children afterwards is harmless
    it:close()
    w:close()
    it, q, w = nil, nil, nil
    collectgarbage()
    collectgarbage()
  end)

  it("abandons an open writer: its tape stays recording with what was appended", function()
    local dir = H.tmpdir()
    local s = assert(tapestore.open("filesystem", { path = dir }))
    local w = s:record { name = "open at close" }
    w:append("client_to_server", H.request(1, "x"))
    w:append("server_to_client", H.response(1))
    local id = w.id
    assert.is_true(s:close())
    local again = assert(tapestore.open("filesystem", { path = dir }))
    local t = again:load(id)
    assert.equal("recording", t.status)
    assert.equal(2, #t)
    again:close()
    H.rm_rf(dir)
  end)

  it("runs from a <close> scope", function()
    local st
    do
      local s <close> = assert(tapestore.open("memory:"))
      st = s
      s:save(tapestore.new_tape {})
    end
    assert.is_true(st.closed)
    assert.has_error(function() st:stats() end, "store:stats: closed store")
  end)

  it("is refused from inside a call on the same store", function()
    -- a log function runs inside the core call that logs; the store whose
    -- call is in flight cannot be closed from there (it would wait for itself)
    local s = assert(tapestore.open("memory:"))
    local dir = H.tmpdir()
    local fs = assert(tapestore.open("filesystem", { path = dir }))
    local t = H.tape({}, 1)
    fs:save(t)
    local f = io.open(dir .. "/" .. t.id .. ".jsonl", "a")
    f:write("{garbage\n", '{"type":"frame"}\n')
    f:close()
    local results = {}
    tapestore.set_log(function()
      if #results == 0 then
        results[1] = { fs:close() }
        results[2] = { s:close() }
      end
    end)
    fs:query { text = "zzz" }()
    tapestore.set_log(nil)
    assert.is_nil(results[1][1])
    assert.matches("inside a call on this store", results[1][2])
    assert.equal(tapestore.EBUSY, results[1][3])
    assert.is_true(results[2][1]) -- another store closes fine
    assert.is_true(fs:close())
    H.rm_rf(dir)
  end)
end)

describe("an object closed while a call on it is in flight", function()
  it("is released when the call returns, which then raises closed", function()
    -- a text query over a damaged tape logs from inside the page fetch;
    -- the log function closes the very iterator that is fetching
    local dir = H.tmpdir()
    local fs = assert(tapestore.open("filesystem", { path = dir }))
    local t = H.tape({}, 1)
    fs:save(t)
    fs:save(H.tape({ name = "good" }, 1))
    local f = io.open(dir .. "/" .. t.id .. ".jsonl", "a")
    f:write("{garbage\n", '{"type":"frame"}\n')
    f:close()
    local it = assert(fs:query { text = "ping" })
    local logged = 0
    tapestore.set_log(function()
      logged = logged + 1
      it:close()
      collectgarbage()
    end)
    local ok, err = pcall(it)
    tapestore.set_log(nil)
    assert.is_true(logged > 0)
    assert.is_false(ok)
    assert.matches("closed query iterator", err)
    assert.has_error(function() it() end, "query iterator: closed query iterator")
    assert.is_true(fs:close())
    H.rm_rf(dir)
  end)
end)

describe("closing and collecting in any order", function()
  local kinds = { "store", "tape", "frame", "entry", "writer", "frames", "query", "tape_frames" }

  local function make()
    local s, id = filled()
    local o = {}
    o.store = s
    o.tape = s:load(id)
    o.frame = H.collect(o.tape:frames())[1]
    o.entry = s:query {} ()
    o.writer = s:record { name = "w" }
    o.writer:append("client_to_server", H.request(1, "x"))
    o.frames = s:frames(id)
    o.query = s:query { page_size = 1 }
    o.tape_frames = o.tape:frames()
    return o
  end

  local function close(o, k)
    if k == "store" then
      o.store:close()
    elseif k == "frame" or k == "entry" then
      getmetatable(o[k]).__close(o[k])
    else
      o[k]:close()
    end
  end

  -- every kind closed first, then the rest in both directions, with a
  -- collection between each step; then everything dropped
  for _, first in ipairs(kinds) do
    for _, dir in ipairs { 1, -1 } do
      it("closes " .. first .. " first, then the rest " .. (dir == 1 and "forwards" or "backwards"), function()
        local o = make()
        close(o, first)
        collectgarbage()
        local from, to = 1, #kinds
        if dir == -1 then from, to = #kinds, 1 end
        for i = from, to, dir do
          if kinds[i] ~= first then
            close(o, kinds[i])
            collectgarbage()
          end
        end
        -- everything closed: each raises a clear error when used
        assert.has_error(function() o.store:load("x") end, "store:load: closed store")
        assert.has_error(function() return o.tape.name end, "tape.name: closed tape")
        assert.has_error(function() return o.frame.seq end)
        assert.has_error(function() return o.entry.id end, "entry.id: closed entry")
        assert.has_error(function() o.writer:finish() end)
        assert.has_error(function() o.frames() end)
        assert.has_error(function() o.query() end)
        assert.has_error(function() o.tape_frames() end)
        o = nil
        collectgarbage()
        collectgarbage()
      end)
    end
    it("drops everything unclosed but " .. first .. " and collects", function()
      local o = make()
      close(o, first)
      o = nil
      collectgarbage()
      collectgarbage()
    end)
  end

  it("a frame of a closed tape raises closed tape", function()
    local t = H.tape({}, 1)
    local f = H.collect(t:frames())[1]
    local it = t:frames()
    t:close()
    assert.has_error(function() return f.seq end, "frame.seq: closed tape")
    assert.has_error(function() it() end, "tape:frames iterator: closed tape")
    assert.has_error(function() t:append("client_to_server", "{}") end, "tape:append: closed tape")
    assert.has_error(function() t.name = "x" end, "tape.<field> =: closed tape")
    assert.equal("tapestore.tape (closed)", tostring(t))
  end)

  it("a to-be-closed tape is freed at the end of its scope", function()
    local keep
    do
      local t <close> = tapestore.new_tape { name = "scoped" }
      keep = t
      assert.equal("scoped", keep.name)
    end
    assert.has_error(function() return keep.name end, "tape.name: closed tape")
  end)

  it("__gc after __close is harmless, and a resurrected object stays closed", function()
    local s = assert(tapestore.open("memory:"))
    local mt = getmetatable(s)
    mt.__gc(s)
    mt.__gc(s)
    mt.__close(s)
    assert.has_error(function() s:stats() end, "store:stats: closed store")
    -- resurrect: a table whose finalizer stores the objects somewhere reachable
    _G.resurrected = nil
    do
      local t = tapestore.new_tape { name = "zombie" }
      local st = assert(tapestore.open("memory:"))
      local w = st:record {}
      local holder = setmetatable({ t = t, s = st, w = w }, { __gc = function(h) _G.resurrected = h end })
      holder = nil
      t, st, w = nil, nil, nil
    end
    collectgarbage()
    collectgarbage()
    collectgarbage()
    local h = _G.resurrected
    assert.is_not_nil(h)
    -- the objects' own finalizers ran: they are closed, not freed memory
    assert.has_error(function() return h.t.name end, "tape.name: closed tape")
    assert.has_error(function() h.s:stats() end, "store:stats: closed store")
    assert.has_error(function() h.w:finish() end)
    _G.resurrected = nil
  end)

  it("many stores, iterators and writers dropped unclosed are collected", function()
    for _ = 1, 200 do
      local s = tapestore.open("memory:")
      s:save(H.tape({}, 1))
      local it = s:query {}
      it()
      local w = s:record {}
      w:append("client_to_server", H.request(1, "x"))
      local fr = s:frames(w.id)
      local _ = fr, it
    end
    collectgarbage()
    collectgarbage()
  end)
end)

describe("metamethods called by hand", function()
  it("do nothing or raise on something that is not their object, never crash", function()
    local s = assert(tapestore.open("memory:"))
    local t = tapestore.new_tape {}
    local e = (function() s:save(t) return s:query {} () end)()
    local f = H.collect(H.tape({}, 1):frames())[1]
    local w = s:record {}
    local foreign = { io.stdout, s, t, e, f, w, "x", 1, {} }
    for _, obj in ipairs { s, t, e, f, w, s:frames(t.id), s:query {}, t:frames() } do
      local mt = getmetatable(obj)
      for _, other in ipairs(foreign) do
        if getmetatable(other) ~= mt then
          mt.__gc(other)
          -- __close is a no-op, or (a store's, a writer's) raises naming the type
          local ok, err = pcall(mt.__close, other)
          assert.is_true(ok or err:match("must be a tapestore%.") ~= nil, tostring(err))
          assert.has_error(function() mt.__tostring(other) end)
          assert.has_error(function() return mt.__index(other, "id") end)
        end
      end
    end
    -- nothing was closed by the calls above
    assert.equal(io.type(io.stdout), "file")
    assert.is_true(s:exists(t.id))
    assert.is_string(t.id)
    assert.is_string(e.id)
    assert.equal(0, f.seq)
    assert.is_number(w:append("client_to_server", H.request(1, "x")))
    assert.has_error(function() s:frames(t.id).close(s) end,
      "iterator:close: argument #1 must be an iterator, got userdata")
    t.close(42) -- a no-op
    assert.is_string(t.id)
  end)
end)

describe("at lua_close", function()
  it("unclosed objects of every kind are released without a crash", function()
    local ok, rc, out = H.run_lua([[
      local tapestore = require "tapestore"
      local s = tapestore.open("memory:")
      local t = tapestore.new_tape { name = "x" }
      t:append("client_to_server", '{"jsonrpc":"2.0","id":1,"method":"a"}')
      s:save(t)
      W = s:record {}
      W:append("client_to_server", '{"jsonrpc":"2.0","id":1,"method":"a"}')
      I = s:frames(t.id)
      Q = s:query {}
      F = t:frames()()
      E = Q()
      tapestore.set_log(function() end)
      print("ok")
    ]])
    assert.is_true(ok, out)
    assert.equal(0, rc)
    assert.equal("ok\n", out)
  end)
end)
