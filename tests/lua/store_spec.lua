-- Stores: the three open forms, save/load/delete/exists/stats/
-- capabilities/control, runtime failures as nil, message, code, misuse
-- raising with the function and argument named.
local tapestore = require "tapestore"
local H = require "helpers"

describe("tapestore.open", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  it("opens a provider by name with a config table", function()
    local s = assert(tapestore.open("filesystem", { path = dir .. "/tapes" }))
    assert.equal("filesystem", s.provider)
    local t = H.tape({ name = "fs" }, 1)
    assert.is_true(s:save(t))
    assert.is_true(s:close())
    -- persisted where the config said
    local again = assert(tapestore.open("filesystem", { path = dir .. "/tapes" }))
    assert.equal("fs", again:load(t.id).name)
    again:close()
  end)

  it("takes the config as JSON text too", function()
    local s = assert(tapestore.open("filesystem", string.format('{"path":%q}', dir .. "/j")))
    assert.is_true(s:save(tapestore.new_tape { id = "j1" }))
    s:close()
    local f = io.open(dir .. "/j/j1.jsonl")
    assert.is_not_nil(f)
    f:close()
    local bad, msg, code = tapestore.open("filesystem", "{not json")
    assert.is_nil(bad)
    assert.is_string(msg)
    assert.equal(tapestore.ECONFIG, code)
  end)

  it("opens a bare provider name with no config", function()
    local s = assert(tapestore.open("memory"))
    assert.equal("memory", s.provider)
  end)

  it("opens a one-string spec", function()
    local s = assert(tapestore.open("sqlite:" .. dir .. "/tapes.db"))
    assert.equal("sqlite", s.provider)
    assert.is_true(s:save(H.tape({ name = "q" }, 1)))
    s:close()
    local f = io.open(dir .. "/tapes.db")
    assert.is_not_nil(f)
    f:close()
  end)

  it("opens from TAPESTORE_STORE with no argument", function()
    local ok, rc, out = H.run_lua(string.format([[
      local tapestore = require "tapestore"
      local s = assert(tapestore.open())
      print(s.provider)
      assert(s:save(tapestore.new_tape{name = "env"}))
    ]]))
    -- ctest clears TAPESTORE_STORE: the default is filesystem:./tapes
    assert.is_true(ok, out)
    assert.equal("filesystem\n", out)
    local f = io.open("./tapes")
    assert.is_not_nil(f, "the default store is ./tapes")
    f:close()
    os.execute("rm -rf ./tapes")
    local p = io.popen("TAPESTORE_STORE=memory: lua5.4 -e 'print(require(\"tapestore\").open().provider)' 2>&1")
    assert.equal("memory\n", p:read("a"))
    p:close()
    p = io.popen("TAPESTORE_STORE='sqlite:" .. dir .. "/env.db' lua5.4 -e 'print(require(\"tapestore\").open().provider)' 2>&1")
    assert.equal("sqlite\n", p:read("a"))
    p:close()
  end)

  it("returns nil, message, code for an unknown provider", function()
    local s, msg, code = tapestore.open("no-such-provider")
    assert.is_nil(s)
    assert.matches("no%-such%-provider", msg)
    assert.equal(tapestore.ENOTFOUND, code)
  end)

  it("returns ECONFIG naming the bad key", function()
    local s, msg, code = tapestore.open("filesystem", { path = 42 })
    assert.is_nil(s)
    assert.matches("path", msg)
    assert.equal(tapestore.ECONFIG, code)
    local s2, msg2, code2 = tapestore.open("memory", { nonsense = true })
    assert.is_nil(s2)
    assert.matches("nonsense", msg2)
    assert.equal(tapestore.ECONFIG, code2)
  end)

  it("raises on misuse", function()
    assert.has_error(function() tapestore.open(42) end, "tapestore.open: name must be a string, got number")
    assert.has_error(function() tapestore.open("memory:", {}) end)
    assert.has_error(function() tapestore.open(nil, { path = "x" }) end,
      "tapestore.open: a config table needs a provider name")
  end)

  it("opens eagerly when asked", function()
    -- a path that cannot be created fails at open only when eager
    local bad = dir .. "/file"
    io.open(bad, "w"):close()
    local lazy = tapestore.open("filesystem", { path = bad .. "/sub" })
    assert.is_not_nil(lazy)
    local s, msg, code = tapestore.open("filesystem", { path = bad .. "/sub" }, { eager = true })
    assert.is_nil(s)
    assert.is_string(msg)
    assert.equal(tapestore.EIO, code)
  end)
end)

describe("store", function()
  local s
  before_each(function() s = assert(tapestore.open("memory:")) end)
  after_each(function() s:close() end)

  it("saves, loads, checks and deletes", function()
    local t = H.tape({ name = "one", tags = { "a", "b" } }, 2)
    assert.is_true(s:save(t))
    assert.is_true(s:exists(t.id))
    local back = s:load(t.id)
    assert.equal("one", back.name)
    assert.same({ "a", "b" }, back.tags)
    assert.equal(4, #back)
    assert.equal(t:to_jsonl(), back:to_jsonl())
    assert.is_true(s:delete(t.id))
    assert.is_false(s:exists(t.id))
  end)

  it("returns ENOTFOUND from load, delete and frames of a missing tape", function()
    for _, call in ipairs { s.load, s.delete, s.frames } do
      local r, msg, code = call(s, "missing")
      assert.is_nil(r)
      assert.matches("missing", msg)
      assert.equal(tapestore.ENOTFOUND, code)
      assert.equal("TAPE_ENOTFOUND", tapestore.error_name(code))
    end
  end)

  it("returns EINVAL for an invalid id", function()
    local r, msg, code = s:load("../etc/passwd")
    assert.is_nil(r)
    assert.is_string(msg)
    assert.equal(tapestore.EINVAL, code)
    local ok, msg2, code2 = tapestore.validate_id("a/b")
    assert.is_nil(ok)
    assert.is_string(msg2)
    assert.equal(tapestore.EINVAL, code2)
    assert.is_true(tapestore.validate_id("good-id_1.x"))
  end)

  it("raises when an id is not a string", function()
    assert.has_error(function() s:load({}) end, "store:load: id must be a string, got table")
    assert.has_error(function() s:exists(1) end, "store:exists: id must be a string, got number")
    assert.has_error(function() s:delete(nil) end, "store:delete: id must be a string, got nil")
    assert.has_error(function() s:save("x") end)
  end)

  it("raises when called on something that is not a store", function()
    assert.has_error(function() s.load(42, "x") end,
      "store:load: argument #1 must be a tapestore.store, got number")
    local t = tapestore.new_tape {}
    assert.has_error(function() s.load(t, "x") end,
      "store:load: argument #1 must be a tapestore.store, got tapestore.tape")
  end)

  it("reports stats with integer counts", function()
    s:save(H.tape({ name = "a" }, 1))
    s:save(H.tape({ name = "b" }, 2))
    local st = s:stats()
    assert.equal(2, st.tape_count)
    assert.equal(6, st.frame_count)
    assert.is_true(st.total_bytes > 0)
    for _, k in ipairs { "tape_count", "frame_count", "total_bytes" } do
      assert.equal("integer", math.type(st[k]), k)
    end
  end)

  it("lists capabilities, available and native", function()
    local all = s:capabilities()
    local native = s:capabilities(true)
    assert.is_true(all.exists)
    assert.is_true(all.search)
    assert.is_true(all.writer)
    assert.is_true(all.read_frames)
    assert.is_nil(native.persistent)
    for k in pairs(native) do assert.is_true(all[k] or k == "thread_safe" or k == "writer_retry", k) end
    local sq = assert(tapestore.open("sqlite", { path = ":memory:" }))
    assert.is_true(sq:capabilities(true).search)
    assert.is_nil(native.search) -- memory answers queries through the core's fallback
    sq:close()
  end)

  it("answers EUNSUPPORTED for an unknown control op", function()
    local r, msg, code = s:control("no-such-op", { x = 1 })
    assert.is_nil(r)
    assert.matches("no%-such%-op", msg)
    assert.equal(tapestore.EUNSUPPORTED, code)
    assert.has_error(function() s:control(1) end, "store:control: op must be a string, got number")
  end)

  it("has a tostring and a name", function()
    assert.equal("tapestore.store: memory", tostring(s))
    assert.equal("tapestore.store", getmetatable(s).__name)
  end)
end)

describe("error codes", function()
  it("are constants with their names", function()
    local names = { "ENOTFOUND", "EEXISTS", "EINVAL", "ECONFIG", "EIO", "ECORRUPT",
                    "EUNSUPPORTED", "ENOMEM", "EPROVIDER", "EBUSY", "EVERSION", "EQUERY",
                    "ELIMIT", "ESTATE" }
    local seen = {}
    for _, n in ipairs(names) do
      local c = tapestore[n]
      assert.equal("integer", math.type(c), n)
      assert.is_true(c < 0, n)
      assert.equal("TAPE_" .. n, tapestore.error_name(c))
      assert.equal(tapestore.capi["TAPE_" .. n], c)
      assert.is_nil(seen[c])
      seen[c] = true
    end
    assert.equal(0, tapestore.OK)
    assert.equal(1, tapestore.DONE)
    assert.has_error(function() tapestore.error_name("x") end,
      "tapestore.error_name: code must be an integer, got string")
  end)

  it("come with a version", function()
    assert.equal(tapestore.VERSION, tapestore.version())
    assert.matches("^%d+%.%d+%.%d+$", tapestore.version())
  end)
end)
