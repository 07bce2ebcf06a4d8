-- Tapes and frames: new_tape, metadata fields (read, set, misuse),
-- tags, append (tables, JSON text, options), frames, correlations,
-- stats, JSONL round trips, integer types, JSON null.
local tapestore = require "tapestore"
local H = require "helpers"

describe("tapestore.new_tape", function()
  it("makes a tape with a UUID v4 id when none is given", function()
    local t = tapestore.new_tape { name = "n", tags = { "prod", "x" } }
    assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", t.id)
    assert.equal("n", t.name)
    assert.same({ "prod", "x" }, t.tags)
    assert.equal(tapestore.RECORDING, t.status)
    assert.equal("integer", math.type(t.created_at))
    assert.is_true(t.created_at > 1700000000000)
    assert.is_nil(t.updated_at)
    assert.is_nil(t.finalized_at)
    assert.equal(0, #t)
    assert.are_not.equal(t.id, tapestore.new_tape().id)
  end)

  it("takes an id and every settable field", function()
    local t = tapestore.new_tape { id = "my-tape", name = "n", description = "d",
      session_id = "s1", protocol_version = "2025-06-18", created_at = 1000,
      transport = { kind = "stdio" }, environment = { host = "h" } }
    assert.equal("my-tape", t.id)
    assert.equal("d", t.description)
    assert.equal("s1", t.session_id)
    assert.equal("2025-06-18", t.protocol_version)
    assert.equal(1000, t.created_at)
    assert.equal("stdio", t.transport.kind)
    assert.equal("h", t.environment.host)
    assert.equal('{"kind":"stdio"}', t.transport_json)
  end)

  it("returns EINVAL for a bad id", function()
    local t, msg, code = tapestore.new_tape { id = "../x" }
    assert.is_nil(t)
    assert.is_string(msg)
    assert.equal(tapestore.EINVAL, code)
  end)

  it("raises on a field of the wrong type or an unknown field", function()
    assert.has_error(function() tapestore.new_tape { name = 1 } end,
      "tapestore.new_tape: name must be a string or nil, got number")
    assert.has_error(function() tapestore.new_tape { tags = "prod" } end,
      "tapestore.new_tape: tags must be an array of strings, got string")
    assert.has_error(function() tapestore.new_tape { tags = { 1 } } end,
      "tapestore.new_tape: tags[1] must be a string, got number")
    assert.has_error(function() tapestore.new_tape { colour = "red" } end,
      'tapestore.new_tape: no field "colour"')
    assert.has_error(function() tapestore.new_tape { id = {} } end,
      "tapestore.new_tape: id must be a string, got table")
    assert.has_error(function() tapestore.new_tape "x" end)
  end)
end)

describe("tape fields", function()
  it("are settable where the C API has a setter", function()
    local t = tapestore.new_tape {}
    t.name = "renamed"
    t.description = "about"
    t.session_id = "sid"
    t.protocol_version = "2024-11-05"
    t.status = tapestore.FINALIZED
    t.created_at = 5000
    t.updated_at = 6000
    t.finalized_at = 7000
    t.tags = { "a", "b", "a" }
    t.environment = { n = 1 }
    assert.equal("renamed", t.name)
    assert.equal("about", t.description)
    assert.equal("sid", t.session_id)
    assert.equal("2024-11-05", t.protocol_version)
    assert.equal("finalized", t.status)
    assert.equal(5000, t.created_at)
    assert.equal(6000, t.updated_at)
    assert.equal(7000, t.finalized_at)
    assert.same({ "a", "b" }, t.tags)
    assert.equal(1, t.environment.n)
    assert.equal("integer", math.type(t.environment.n))
    t.name = nil
    t.updated_at = nil
    t.environment = nil
    assert.is_nil(t.name)
    assert.is_nil(t.updated_at)
    assert.is_nil(t.environment)
  end)

  it("raise on misuse", function()
    local t = tapestore.new_tape {}
    assert.has_error(function() t.id = "other" end, "tape.id: id is read-only")
    assert.has_error(function() t.frame_count = 3 end, "tape.frame_count: frame_count is read-only")
    assert.has_error(function() t.colour = "red" end, 'tape.colour: no field "colour"')
    assert.has_error(function() t.name = {} end, "tape.name: name must be a string or nil, got table")
    assert.has_error(function() t.status = "paused" end,
      'tape.status: status must be "recording" or "finalized"')
    assert.has_error(function() t.created_at = 1.5 end, "tape.created_at: created_at must be an integer, got 1.5")
    assert.has_error(function() t.created_at = "now" end, "tape.created_at: created_at must be an integer, got string")
    assert.has_error(function() t.created_at = nil end, "tape.created_at: created_at cannot be unset")
    assert.has_error(function() t.transport_json = "{not json" end)
    -- a float that is an exact integer is accepted
    t.created_at = 2000.0
    assert.equal(2000, t.created_at)
    assert.equal("integer", math.type(t.created_at))
  end)

  it("keep a bad tag list from changing anything", function()
    local t = tapestore.new_tape { tags = { "keep" } }
    assert.has_error(function() t.tags = { "a", 2 } end)
    assert.same({ "keep" }, t.tags)
  end)

  it("have tag helpers", function()
    local t = tapestore.new_tape { tags = { "a" } }
    assert.is_true(t:add_tag("b"))
    assert.is_true(t:add_tag("b"))
    assert.is_true(t:has_tag("b"))
    assert.is_true(t:remove_tag("a"))
    assert.is_false(t:has_tag("a"))
    local ok, msg, code = t:remove_tag("a")
    assert.is_nil(ok)
    assert.is_string(msg)
    assert.equal(tapestore.ENOTFOUND, code)
    local ok2, _, code2 = t:add_tag("")
    assert.is_nil(ok2)
    assert.equal(tapestore.EINVAL, code2)
    assert.has_error(function() t:add_tag(1) end, "tape:add_tag: tag must be a string, got number")
  end)
end)

describe("tape:append", function()
  it("takes a table or JSON text and returns integer seqs", function()
    local t = tapestore.new_tape {}
    local a = t:append(tapestore.CLIENT_TO_SERVER, H.request(1, "tools/list"))
    local b = t:append(tapestore.SERVER_TO_CLIENT, '{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}')
    assert.equal(0, a)
    assert.equal(1, b)
    assert.equal("integer", math.type(a))
    local frames = H.collect(t:frames())
    assert.equal(2, #frames)
    assert.equal("tools/list", frames[1].message.method)
    assert.equal('{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}', frames[2].raw)
    assert.equal(0, #frames[2].message.result.tools)
  end)

  it("takes options: ts_ms, correlation_id, transport, flags, invalid_json, oversize", function()
    local t = tapestore.new_tape {}
    t:append("client_to_server", H.request(7, "x"), { ts_ms = 42, correlation_id = "7",
      transport = { via = "stdio" }, flags = { is_error = false } })
    t:append("server_to_client", "\255 not json", { invalid_json = true, ts_ms = 43 })
    local big = string.rep("a", 5000)
    t:append("server_to_client", big, { oversize = true, prefix_bytes = 10 })
    local f = H.collect(t:frames())
    assert.equal(42, f[1].ts)
    assert.equal("7", f[1].correlation_id)
    assert.matches('"via":"stdio"', f[1].line)
    assert.is_false(f[1].invalid_json)
    assert.is_true(f[2].invalid_json)
    assert.equal("\255 not json", f[2].raw)
    assert.has_error(function() return f[2].message end)
    assert.is_true(f[3].oversize)
    assert.equal(5000, f[3].oversize_length)
    assert.equal("integer", math.type(f[3].oversize_length))
    assert.matches("^%x+$", f[3].oversize_sha256)
    assert.equal(64, #f[3].oversize_sha256)
    assert.is_nil(f[1].oversize_length)
  end)

  it("returns nil, message, EINVAL for text that is not JSON", function()
    local t = tapestore.new_tape {}
    local seq, msg, code = t:append("client_to_server", "{not json")
    assert.is_nil(seq)
    assert.is_string(msg)
    assert.equal(tapestore.EINVAL, code)
    assert.equal(0, #t)
  end)

  it("raises on misuse", function()
    local t = tapestore.new_tape {}
    assert.has_error(function() t:append("sideways", "{}") end,
      'tape:append: direction must be "client_to_server" or "server_to_client", got "sideways"')
    assert.has_error(function() t:append(1, "{}") end, "tape:append: direction must be a string, got number")
    assert.has_error(function() t:append("client_to_server") end,
      "tape:append: message must be a table or JSON text, got no value")
    assert.has_error(function() t:append("client_to_server", "{}", { ts_ms = 1.5 }) end,
      "tape:append: ts_ms must be an integer, got 1.5")
    assert.has_error(function() t:append("client_to_server", { f = print }) end)
    assert.has_error(function() t:append("client_to_server", {}, { invalid_json = true }) end,
      "tape:append: an invalid_json or oversize message must be a string, got table")
  end)
end)

describe("frames", function()
  it("have every field with the right types", function()
    local t = H.tape({}, 1)
    t:append("server_to_client", { jsonrpc = "2.0", id = 9, error = { code = -32601, message = "no" } })
    local f = H.collect(t:frames())
    assert.equal(3, #f)
    for i, fr in ipairs(f) do
      assert.equal(i - 1, fr.seq)
      assert.equal("integer", math.type(fr.seq))
      assert.equal("integer", math.type(fr.ts))
      assert.is_boolean(fr.is_error)
      assert.is_string(fr.raw)
      assert.is_string(fr.message_text)
      assert.is_string(fr.line)
    end
    assert.equal(tapestore.CLIENT_TO_SERVER, f[1].direction)
    assert.equal(tapestore.SERVER_TO_CLIENT, f[2].direction)
    assert.is_false(f[2].is_error)
    assert.is_true(f[3].is_error)
    assert.equal(-32601, f[3].message.error.code)
    assert.equal("integer", math.type(f[3].message.error.code))
    assert.is_nil(f[1].nonexistent_field)
    assert.equal("tapestore.frame: seq 0", tostring(f[1]))
  end)

  it("decode message once and cache it", function()
    local t = H.tape({}, 1)
    local f = H.collect(t:frames())[1]
    local m1 = f.message
    assert.equal(m1, f.message)
    m1.marker = true
    assert.is_true(f.message.marker)
  end)

  it("keep JSON null distinguishable", function()
    local t = tapestore.new_tape {}
    t:append("client_to_server", '{"jsonrpc":"2.0","id":null,"method":"m","params":{"a":null,"b":[null,1]}}')
    local m = H.collect(t:frames())[1].message
    assert.equal(tapestore.null, m.id)
    assert.equal(tapestore.null, m.params.a)
    assert.equal(tapestore.null, m.params.b[1])
    assert.equal(2, #m.params.b)
    assert.is_not_nil(m.params.a)
    -- and an appended table with tapestore.null writes null
    t:append("client_to_server", { jsonrpc = "2.0", id = tapestore.null, method = "n" })
    assert.matches('"id":null', H.collect(t:frames())[2].raw)
  end)

  it("range over seqs with tape:frames(start, stop)", function()
    local t = H.tape({}, 5)
    local seqs = {}
    for f in t:frames(2, 5) do seqs[#seqs + 1] = f.seq end
    assert.same({ 2, 3, 4 }, seqs)
    assert.equal(8, #H.collect(t:frames(2)))
    assert.equal(0, #H.collect(t:frames(4, 4)))
    assert.equal(10, #H.collect(t:frames(0, tapestore.SEQ_END)))
    assert.has_error(function() t:frames(-1) end, "tape:frames: start and stop must be >= 0")
  end)
end)

describe("correlations", function()
  it("are written and read with integer fields", function()
    local t = H.tape({}, 2)
    local c = t:correlations()
    assert.equal(2, #c)
    assert.same({ id = "1", request_seq = 0, response_seq = 1, rtt_ms = 1, status = "ok" }, c[1])
    assert.same({ id = "2", request_seq = 2, response_seq = 3, rtt_ms = 2, status = "ok" }, c[2])
    for _, k in ipairs { "request_seq", "response_seq", "rtt_ms" } do
      assert.equal("integer", math.type(c[2][k]))
    end
    assert.is_true(t:add_correlation("3", 0, 3))
    assert.same({ id = "3", request_seq = 0, response_seq = 3, rtt_ms = 0 }, t:correlations()[3])
    local ok, msg, code = t:add_correlation(nil, 0, 3)
    assert.is_nil(ok)
    assert.matches("id", msg)
    assert.equal(tapestore.EINVAL, code)
  end)

  it("pass 2^53+1 to the core and back exactly (or are refused, never rounded)", function()
    local t = tapestore.new_tape {}
    local big = (1 << 53) + 1
    -- The core keeps correlations in memory as integers; it may refuse
    -- values JSON cannot keep exactly, but the binding must never round.
    local ok, msg, code = t:add_correlation("c", big, big + 1, big)
    if ok then
      local c = t:correlations()[1]
      assert.equal(big, c.request_seq)
      assert.equal(big + 1, c.response_seq)
      assert.equal(big, c.rtt_ms)
      assert.equal("integer", math.type(c.rtt_ms))
    else
      assert.matches("2%^53", msg)
      assert.equal(tapestore.EINVAL, code)
    end
    assert.is_true(t:add_correlation("d", 1 << 53, 1 << 53, 1 << 53))
    local c = t:correlations()[#t:correlations()]
    assert.equal(1 << 53, c.request_seq)
    assert.equal("integer", math.type(c.request_seq))
    assert.equal("integer", math.type(c.rtt_ms))
    assert.has_error(function() t:add_correlation("c", 0.5, 1) end,
      "tape:add_correlation: request_seq must be an integer, got 0.5")
    assert.has_error(function() t:add_correlation("c", -1, 1) end)
  end)
end)

describe("integers", function()
  it("stay integers above 2^31 and at 2^53 through a ts and a seq", function()
    local t = tapestore.new_tape { created_at = 0 }
    local ts = (1 << 40) + 1
    t:append("client_to_server", H.request(1, "x"), { ts_ms = ts })
    local f = H.collect(t:frames())[1]
    assert.equal(ts, f.ts)
    assert.equal("integer", math.type(f.ts))
    -- a seq of 2^53 from the wire
    local text = t:to_jsonl():gsub('"seq":0', '"seq":9007199254740992')
    local back = assert(tapestore.tape_from_jsonl(text))
    local g = H.collect(back:frames())[1]
    assert.equal(1 << 53, g.seq)
    assert.equal("integer", math.type(g.seq))
    assert.equal(1 << 53, back:stats().last_sequence)
  end)

  it("2^53+1 round-trips exactly inside messages", function()
    local t = tapestore.new_tape {}
    t:append("client_to_server", { jsonrpc = "2.0", id = (1 << 53) + 1, method = "m" })
    local m = H.collect(t:frames())[1].message
    assert.equal((1 << 53) + 1, m.id)
    assert.equal("integer", math.type(m.id))
    local back = tapestore.tape_from_jsonl(t:to_jsonl())
    assert.equal((1 << 53) + 1, H.collect(back:frames())[1].message.id)
  end)

  it("are integers in every stats field", function()
    local st = H.tape({}, 3):stats()
    assert.equal(6, st.frame_count)
    assert.equal(3, st.correlation_count)
    assert.equal(3, st.client_to_server)
    assert.equal(3, st.server_to_client)
    assert.equal(5, st.last_sequence)
    for _, k in ipairs { "frame_count", "duration_ms", "last_sequence", "client_to_server",
                         "server_to_client", "error_count", "correlation_count", "file_size_bytes" } do
      assert.equal("integer", math.type(st[k]), k)
    end
  end)
end)

describe("JSONL", function()
  it("round-trips byte for byte", function()
    local t = H.tape({ name = "rt", tags = { "a" }, description = "é \0 x" }, 3)
    t:append("server_to_client", "\1\2 raw", { invalid_json = true })
    local text = t:to_jsonl()
    local meta = t:to_meta_json()
    local back = assert(tapestore.tape_from_jsonl(text))
    assert.equal(text, back:to_jsonl())
    local back2 = assert(tapestore.tape_from_jsonl(text, meta))
    assert.equal(text, back2:to_jsonl())
    assert.equal(meta, back2:to_meta_json())
    assert.equal("rt", back2.name)
    assert.same({ "a" }, back2.tags)
  end)

  it("returns ECORRUPT for a damaged document, and recovers when asked", function()
    local t = H.tape({}, 2)
    local lines = {}
    for l in t:to_jsonl():gmatch("[^\n]+") do lines[#lines + 1] = l end
    lines[2] = "{garbage"
    local text = table.concat(lines, "\n") .. "\n"
    local r, msg, code = tapestore.tape_from_jsonl(text)
    assert.is_nil(r)
    assert.matches("line 2", msg)
    assert.equal(tapestore.ECORRUPT, code)
    local rec = assert(tapestore.tape_from_jsonl(text, nil, { recover = true }))
    assert.equal(3, #rec)
    local r2, msg2, code2 = tapestore.tape_from_jsonl(t:to_jsonl(), nil, { max_line_bytes = 10 })
    assert.is_nil(r2)
    assert.matches("longer than the limit of 10 bytes", msg2)
    assert.equal(tapestore.ECORRUPT, code2)
    assert.has_error(function() tapestore.tape_from_jsonl("x", nil, { max_line_bytes = -1 }) end,
      "tapestore.tape_from_jsonl: max_line_bytes must be >= 0")
    assert.has_error(function() tapestore.tape_from_jsonl(42) end,
      "tapestore.tape_from_jsonl: text must be a string, got number")
  end)

  it("copies a tape", function()
    local t = H.tape({ name = "orig" }, 1)
    local c = t:copy()
    c.name = "copy"
    assert.equal("orig", t.name)
    assert.equal(t.id, c.id)
    assert.equal(2, #c)
  end)
end)
