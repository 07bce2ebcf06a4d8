-- Queries: the iterator pages through cursors by itself (page_size per
-- trip, limit caps the total), query_page hands cursors back, entries
-- carry the metadata with integer fields, bad terms fail clearly.
local tapestore = require "tapestore"
local H = require "helpers"

local function fill(s, n)
  local ids = {}
  for i = 1, n do
    local t = H.tape({ name = string.format("t%02d", i), tags = { i % 3 == 0 and "dev" or "prod" },
      created_at = 1000000 + i * 1000, session_id = "s" .. i }, i % 4)
    assert(s:save(t))
    ids[i] = t.id
  end
  return ids
end

local function names(it)
  local out = {}
  for e in it do out[#out + 1] = e.name end
  return out
end

for _, spec in ipairs { "memory:", "sqlite::memory:" } do
  describe("store:query on " .. spec, function()
    local s
    before_each(function()
      s = assert(tapestore.open(spec))
      fill(s, 30)
    end)
    after_each(function() s:close() end)

    it("iterates every entry across pages smaller than the result", function()
      local got = names(s:query { order_by = "name", page_size = 4 })
      assert.equal(30, #got)
      for i = 1, 30 do assert.equal(string.format("t%02d", i), got[i]) end
    end)

    it("filters with tags_any and created_after", function()
      local got = names(s:query { tags_any = { "prod" }, created_after = 1000000 + 15 * 1000,
                                  order_by = "name", page_size = 3 })
      local want = {}
      for i = 16, 30 do if i % 3 ~= 0 then want[#want + 1] = string.format("t%02d", i) end end
      assert.same(want, got)
    end)

    it("caps the total with limit, across pages", function()
      assert.equal(7, #names(s:query { limit = 7, page_size = 3 }))
      assert.equal(7, #names(s:query { limit = 7 }))
      assert.equal(0, #names(s:query { limit = 0 }))
      assert.equal(30, #names(s:query { limit = 100, page_size = 7 }))
      assert.same({ "t30", "t29" }, names(s:query { order_by = "name", descending = true, limit = 2 }))
    end)

    it("takes every query key the core takes", function()
      assert.same({ "t05" }, names(s:query { session_id = "s5" }))
      assert.same({ "t10" }, names(s:query { name_contains = "T1", min_frames = 4, max_frames = 4,
                                             order_by = "name", tags_all = { "prod" },
                                             status = "recording", created_before = 1000000 + 11 * 1000 }))
      assert.equal(30, #names(s:query { min_duration_ms = 0, max_duration_ms = 1 << 52 }))
      assert.equal(7, #names(s:query { max_duration_ms = 0 })) -- the tapes without frames
      assert.same({ "t01" }, names(s:query { text = "ping", order_by = "id", limit = 1, strict = false,
                                             session_id = "s1" }))
      assert.equal(30, #names(s:query()))
      assert.equal(30, #names(s:query {}))
    end)

    it("gives entries with the tape's metadata and integer stats", function()
      local e
      for x in s:query { session_id = "s6" } do e = x end
      assert.equal("t06", e.name)
      assert.equal("s6", e.session_id)
      assert.equal("recording", e.status)
      assert.same({ "dev" }, e.tags)
      assert.is_nil(e.description)
      assert.equal(1006000, e.created_at)
      assert.equal("integer", math.type(e.created_at))
      assert.equal(4, e.stats.frame_count)
      assert.equal(2, e.stats.correlation_count)
      for k, v in pairs(e.stats) do assert.equal("integer", math.type(v), k) end
      local meta = e:meta()
      assert.equal(e.id, meta.tape_id)
      assert.equal("t06", meta.name)
      assert.is_string(e:meta_json())
      assert.matches("^tapestore.entry: ", tostring(e))
      assert.equal(e.id, s:load(e.id).id)
    end)

    it("returns nil, message, EQUERY for a bad term, naming it", function()
      local it, msg, code = s:query { no_such_key = 1 }
      assert.is_nil(it)
      assert.matches("no_such_key", msg)
      assert.equal(tapestore.EQUERY, code)
      local it2, msg2, code2 = s:query { order_by = "colour" }
      assert.is_nil(it2)
      assert.matches("order_by", msg2)
      assert.equal(tapestore.EQUERY, code2)
      local es, msg3, code3 = s:query_page { status = "paused" }
      assert.is_nil(es)
      assert.matches("status", msg3)
      assert.equal(tapestore.EQUERY, code3)
    end)

    it("raises on misuse", function()
      assert.has_error(function() s:query { limit = 1.5 } end, "store:query: limit must be an integer, got 1.5")
      assert.has_error(function() s:query { limit = -1 } end, "store:query: limit must be >= 0")
      assert.has_error(function() s:query { page_size = 0 } end, "store:query: page_size must be >= 1")
      assert.has_error(function() s:query { created_after = 1.5 } end,
        "store:query: query term created_after must be an integer, got 1.5")
      assert.has_error(function() s:query { tags_any = { 1 } } end,
        "store:query: query term tags_any[1] must be a string, got number")
      assert.has_error(function() s:query { text = print } end)
      assert.has_error(function() s:query "x" end)
      assert.has_error(function() s:query { [1] = "x" } end,
        "store:query: query terms are named by strings, got a number key")
    end)

    it("hands out pages with cursors", function()
      local seen = {}
      local cursor
      local pages = 0
      repeat
        local es, nxt = s:query_page { order_by = "name", limit = 8, cursor = cursor }
        assert.is_table(es)
        pages = pages + 1
        for _, e in ipairs(es) do seen[#seen + 1] = e.name end
        cursor = nxt
      until cursor == nil
      assert.equal(4, pages)
      assert.equal(30, #seen)
      assert.equal("t09", seen[9])
      local all, none = s:query_page {}
      assert.equal(30, #all)
      assert.is_nil(none)
    end)

    it("starts the iterator from a cursor", function()
      local _, cur = s:query_page { order_by = "name", limit = 10 }
      local got = names(s:query { order_by = "name", cursor = cur, page_size = 6 })
      assert.equal(20, #got)
      assert.equal("t11", got[1])
    end)

    it("stops and stays stopped when the iterator is done", function()
      local it = s:query { limit = 2 }
      assert.is_not_nil(it())
      assert.is_not_nil(it())
      assert.is_nil(it())
      assert.is_nil(it())
    end)
  end)
end
