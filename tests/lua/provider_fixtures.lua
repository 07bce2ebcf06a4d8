-- Lua providers used by the provider specs (tests/lua/provider_*_spec.lua):
-- full(config) implements every op (the writer and ranged reads included)
-- over a table; minimal(config) only the required four, so the core's
-- fallbacks run. Both pass the whole C conformance suite.
local tapestore = require "tapestore"

local M = {}

-- The tapes of one store: id -> tape (copies: what an op is lent is valid
-- for the call only).
local function minimal_ops(tapes)
  return {
    save = function(t) tapes[t.id] = t:copy() end,
    load = function(id) return tapes[id] end, -- nil: not found
    delete = function(id)
      if tapes[id] == nil then
        return nil, "no tape '" .. id .. "'", tapestore.ENOTFOUND
      end
      tapes[id] = nil
    end,
    list = function(query)
      local out = {}
      for _, t in pairs(tapes) do out[#out + 1] = t end
      return out
    end,
  }
end

function M.minimal(config)
  return minimal_ops({})
end

-- A recording: the header's init line, the frame lines appended so far and
-- the header's correlation lines make the tape that load shows meanwhile
-- (built when asked for, so an append costs the same at any length).
local function new_recording(store, header)
  local rec = { lines = {}, header = header:copy(), id = header.id }
  function rec.tape()
    local doc = rec.header:to_jsonl()
    local init, rest = doc:match("^([^\n]*\n)(.*)$")
    local text = init .. table.concat(rec.lines) .. rest
    return assert(tapestore.tape_from_jsonl(text, rec.header:to_meta_json()))
  end
  local r = {}
  function r.append(frame, hdr)
    local line = frame.line
    if line:sub(-1) ~= "\n" then line = line .. "\n" end
    rec.lines[#rec.lines + 1] = line
    rec.header = hdr:copy()
  end
  function r.correlate(hdr, index)
    assert(math.type(index) == "integer" and index >= 1, "correlate: a 1-based index")
    rec.header = hdr:copy()
  end
  function r.finish(hdr, finalized)
    assert(type(finalized) == "boolean", "finish: finalized is a boolean")
    rec.header = hdr:copy()
    if store.writers[rec.id] == rec then
      store.tapes[rec.id] = rec.tape() -- abandoned too: what was appended, still recording
      store.writers[rec.id] = nil
    end
  end
  return rec, r
end

local function full_ops(store)
  local tapes, writers = store.tapes, store.writers
  local function get(id) -- a recording shows what it has so far
    local rec = writers[id]
    if rec then return rec.tape() end
    return tapes[id]
  end
  local function all()
    local out = {}
    for id in pairs(tapes) do out[#out + 1] = get(id) end
    return out
  end
  local ops = {}
  function ops.save(t)
    if writers[t.id] then
      return nil, "tape '" .. t.id .. "' is being recorded", tapestore.EBUSY
    end
    tapes[t.id] = t:copy()
  end
  ops.load = get
  function ops.delete(id)
    if writers[id] then
      return nil, "tape '" .. id .. "' is being recorded", tapestore.EBUSY
    end
    if tapes[id] == nil then
      return nil, "no tape '" .. id .. "'", tapestore.ENOTFOUND
    end
    tapes[id] = nil
  end
  function ops.list(query)
    local snapshot, i = all(), 0
    return function() -- an iterator: the query is a hint, matched here
      while true do
        i = i + 1
        local t = snapshot[i]
        if t == nil or query:match(t) then return t end
      end
    end
  end
  function ops.open() store.opened = store.opened + 1 end
  function ops.close() end
  function ops.exists(id) return tapes[id] ~= nil end
  function ops.search(query)
    local hits = {}
    for _, t in ipairs(all()) do
      if query:match(t) then hits[#hits + 1] = t end
    end
    return query:page(hits)
  end
  function ops.stats()
    local n, frames, bytes = 0, 0, 0
    for _, t in ipairs(all()) do
      n = n + 1
      frames = frames + #t
      bytes = bytes + t:stats().file_size_bytes
    end
    return { tape_count = n, frame_count = frames, total_bytes = bytes }
  end
  function ops.begin_recording(header)
    local id = header.id
    if writers[id] then
      return nil, "tape '" .. id .. "' is being recorded", tapestore.EBUSY
    end
    if tapes[id] then
      return nil, "tape '" .. id .. "' exists", tapestore.EEXISTS
    end
    local rec, r = new_recording(store, header)
    writers[id] = rec
    tapes[id] = header:copy()
    return r
  end
  function ops.frames(id, start, stop)
    local t = get(id)
    if t == nil then return nil end
    return t:frames(start, stop) -- an iterator over [start, stop)
  end
  function ops.control(op, input)
    if op == "echo" then return input end
    if op == "opened" then return store.opened end
    return nil, "full: unknown control op '" .. op .. "'", tapestore.EUNSUPPORTED
  end
  return ops
end

function M.full(config)
  return full_ops({ tapes = {}, writers = {}, opened = 0 })
end

-- One store per config.ns for the life of the process: a reopen with the
-- same ns sees the same tapes (register it with persistent = true).
local shared = {}
function M.persistent(config)
  local ns = assert(config.ns, "persistent: config.ns is required")
  shared[ns] = shared[ns] or { tapes = {}, writers = {}, opened = 0 }
  return full_ops(shared[ns])
end

return M
