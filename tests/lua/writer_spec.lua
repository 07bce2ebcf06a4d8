-- Recording (store:record and the writer) and ranged reads of stored
-- tapes (store:frames).
local tapestore = require "tapestore"
local H = require "helpers"

for _, spec in ipairs { "memory:", "filesystem" } do
  describe("store:record on " .. spec, function()
    local s, dir
    before_each(function()
      dir = H.tmpdir()
      if spec == "filesystem" then
        s = assert(tapestore.open("filesystem", { path = dir }))
      else
        s = assert(tapestore.open(spec))
      end
    end)
    after_each(function()
      s:close()
      H.rm_rf(dir)
    end)

    it("records frames, correlations and metadata, then finishes", function()
      local w = assert(s:record { name = "live", tags = { "proxy" }, session_id = "abc" })
      assert.is_string(w.id)
      assert.is_true(s:exists(w.id))
      assert.equal("recording", s:load(w.id).status)
      local a = w:append(tapestore.CLIENT_TO_SERVER, H.request(1, "initialize"))
      local b = w:append(tapestore.SERVER_TO_CLIENT, '{"jsonrpc":"2.0","id":1,"result":{}}', { ts_ms = 5 })
      assert.equal(0, a)
      assert.equal(1, b)
      assert.equal("integer", math.type(b))
      assert.is_true(w:add_correlation("1", a, b, 3, "ok"))
      assert.is_true(w:update_meta { name = "live: server", description = "d", tags = { "proxy", "x" } })
      assert.is_true(w:finish())
      local t = s:load(w.id)
      assert.equal("finalized", t.status)
      assert.equal("live: server", t.name)
      assert.equal("d", t.description)
      assert.equal("abc", t.session_id)
      assert.same({ "proxy", "x" }, t.tags)
      assert.equal(2, #t)
      assert.same({ id = "1", request_seq = 0, response_seq = 1, rtt_ms = 3, status = "ok" },
                  t:correlations()[1])
      -- after finish, appends are refused with ESTATE
      local seq, msg, code = w:append("client_to_server", H.request(2, "x"))
      assert.is_nil(seq)
      assert.is_string(msg)
      assert.equal(tapestore.ESTATE, code)
      w:close()
      assert.has_error(function() w:append("client_to_server", "{}") end, "writer:append: closed writer")
      assert.is_true(w.closed)
      assert.is_string(w.id) -- readable after close
    end)

    it("finishes on a normal exit from a <close> scope", function()
      local id
      do
        local w <close> = assert(s:record { name = "scoped" })
        id = w.id
        w:append("client_to_server", H.request(1, "ping"))
      end
      assert.equal("finalized", s:load(id).status)
      assert.equal(1, #s:load(id))
    end)

    it("leaves the tape recording on an error exit, with what was appended", function()
      local id
      local ok, err = pcall(function()
        local w <close> = assert(s:record { name = "crashed" })
        id = w.id
        w:append("client_to_server", H.request(1, "x"))
        w:append("server_to_client", H.response(1))
        error("proxy died")
      end)
      assert.is_false(ok)
      assert.matches("proxy died", err)
      local t = s:load(id)
      assert.equal("recording", t.status)
      assert.equal(2, #t)
    end)

    it("refuses a taken id with EEXISTS and bad metadata", function()
      local t = tapestore.new_tape { id = "taken" }
      s:save(t)
      local w, msg, code = s:record { id = "taken" }
      assert.is_nil(w)
      assert.matches("taken", msg)
      assert.equal(tapestore.EEXISTS, code)
      local w2 = s:record { id = "fresh" }
      assert.has_error(function() w2:update_meta { colour = "red" } end)
      assert.has_error(function() w2:update_meta { name = 3 } end,
        "writer:update_meta: name must be a string or nil, got number")
      assert.has_error(function() w2:update_meta "x" end)
      assert.has_error(function() w2:append("up", "{}") end)
      local seq, _, c2 = w2:append("client_to_server", "{bad")
      assert.is_nil(seq)
      assert.equal(tapestore.EINVAL, c2)
      w2:close()
    end)

    it("is abandoned by close without finish", function()
      local w = s:record { name = "dropped" }
      w:append("client_to_server", H.request(1, "x"))
      w:close()
      w:close() -- harmless twice
      assert.equal("recording", s:load(w.id).status)
      assert.equal(1, #s:load(w.id))
    end)
  end)
end

describe("store:frames", function()
  local s, t
  before_each(function()
    s = assert(tapestore.open("memory:"))
    t = H.tape({ name = "ranged" }, 5) -- seqs 0..9
    s:save(t)
  end)
  after_each(function() s:close() end)

  local function seqs(...)
    local out = {}
    for f in ... do out[#out + 1] = f.seq end
    return out
  end

  it("streams every frame, or a range start <= seq < stop", function()
    assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, seqs(s:frames(t.id)))
    assert.same({ 3, 4, 5 }, seqs(s:frames(t.id, 3, 6)))
    assert.same({ 7, 8, 9 }, seqs(s:frames(t.id, 7, tapestore.SEQ_END)))
    assert.same({ 8, 9 }, seqs(s:frames(t.id, 8)))
    assert.same({}, seqs(s:frames(t.id, 5, 5)))
    assert.same({}, seqs(s:frames(t.id, 20)))
  end)

  it("gives frames that can be kept after the next one", function()
    local kept = {}
    for f in s:frames(t.id) do kept[#kept + 1] = f end
    collectgarbage()
    assert.equal(10, #kept)
    assert.equal("ping", kept[1].message.method)
    assert.equal(9, kept[10].seq)
    assert.equal(H.collect(t:frames())[4].raw, kept[4].raw)
  end)

  it("can be closed early, by break in a for loop or close()", function()
    local n = 0
    for f in s:frames(t.id) do
      n = n + 1
      if f.seq == 2 then break end
    end
    assert.equal(3, n)
    local it = s:frames(t.id)
    assert.equal(0, it().seq)
    it:close()
    assert.has_error(function() it() end, "frame iterator: closed frame iterator")
    local it2 = s:frames(t.id, 9)
    assert.equal(9, it2().seq)
    assert.is_nil(it2())
    assert.is_nil(it2()) -- stays done
  end)

  it("raises on misuse", function()
    assert.has_error(function() s:frames(t.id, -1) end, "store:frames: start and stop must be >= 0")
    assert.has_error(function() s:frames(t.id, 1.5) end, "store:frames: start must be an integer, got 1.5")
    assert.has_error(function() s:frames(1) end, "store:frames: id must be a string, got number")
  end)
end)
