-- redact.lua - a tapestore provider written in Lua that wraps a base store
-- and redacts secrets from every message it stores: in save, and in the
-- writer's append, so recordings made through it (by the proxy, from any C
-- thread) are redacted too. See README.md and docs/providers-lua.md.
--
--   local redact = require "redact"      -- registers the provider "redact"
--   local s = tapestore.open("redact", { base = "filesystem:./tapes" })
--
-- What is redacted, each by a configurable list of Lua patterns:
--   bearer   -- bearer tokens anywhere in a message ("Bearer abc..." keeps "Bearer ")
--   api_keys -- API keys anywhere in a message (sk-..., AKIA..., ghp_...)
--   fields   -- the string values of these keys anywhere inside "params"
--               (nested objects and arrays included): password, token, ...
-- Redaction works on the message's JSON text as stored: every byte outside
-- a redacted span stays as it was. The count of redactions is kept in the
-- tape's environment metadata, `environment.redactions` (set once anything
-- was redacted), updated while recording through the writer's metadata
-- update.
--
-- Everything else is delegated to the base store, and only the ops the
-- base has natively are offered, so its native capabilities stay native
-- (the core's fallbacks run on top of this provider as they would on top
-- of the base).
local tapestore = require "tapestore"

local M = {}

M.REPLACEMENT = "[REDACTED]"
M.DEFAULTS = {
  -- A capture is kept: what follows it, to the end of the match, is replaced.
  bearer = { "([Bb][Ee][Aa][Rr][Ee][Rr]%s+)[%w%-%._~%+/]+=*" },
  api_keys = {
    "sk%-[%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-][%w_%-]*",
    "AKIA[%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d][%u%d]",
    "gh[pousr]_[%w][%w][%w][%w][%w][%w][%w][%w][%w][%w]+",
  },
  fields = { "password", "passwd", "token", "access_token", "refresh_token", "api_key",
             "apikey", "secret", "client_secret" },
}

-- ---------------------------------------------------------------- scanning JSON text

-- Index of the closing quote of the JSON string whose opening quote is at i.
local function string_end(s, i)
  local j = i + 1
  while true do
    j = s:find('["\\]', j)
    if j == nil then return nil end
    if s:byte(j) == 92 then j = j + 2 else return j end -- a backslash escapes one byte
  end
end

-- Index of the last byte of the JSON value starting at i.
local function value_end(s, i)
  local c = s:byte(i)
  if c == 34 then return string_end(s, i) end -- "
  if c == 123 or c == 91 then -- { [
    local depth, j = 0, i
    while true do
      j = s:find('[%[%]{}"]', j)
      if j == nil then return nil end
      local b = s:byte(j)
      if b == 34 then
        j = string_end(s, j)
        if j == nil then return nil end
      elseif b == 123 or b == 91 then
        depth = depth + 1
      else
        depth = depth - 1
        if depth == 0 then return j end
      end
      j = j + 1
    end
  end
  local e = s:find("[,%]}%s]", i)
  return (e or #s + 1) - 1
end

-- The span [a, b] of the value of `key` in the top-level JSON object s, or nil.
local function member_span(s, key)
  local i = s:find("[^%s]")
  if i == nil or s:byte(i) ~= 123 then return nil end
  i = i + 1
  while true do
    i = s:find("[^%s,]", i)
    if i == nil or s:byte(i) ~= 34 then return nil end -- } or malformed
    local ke = string_end(s, i)
    if ke == nil then return nil end
    local k = s:sub(i + 1, ke - 1)
    local v = s:find("[^%s:]", ke + 1)
    if v == nil then return nil end
    local ve = value_end(s, v)
    if ve == nil then return nil end
    if k == key then return v, ve end
    i = ve + 1
  end
end
M.member_span = member_span

-- ---------------------------------------------------------------- redacting

-- Replace every match of pattern in s; a match's first capture, if any, is
-- kept. Returns the new text and the number of replacements.
local function replace_all(s, pattern, repl)
  local out, n, pos = {}, 0, 1
  while true do
    local a, b, keep = s:find(pattern, pos)
    if a == nil or b < a then break end
    out[#out + 1] = s:sub(pos, a - 1)
    if type(keep) == "string" then out[#out + 1] = keep end
    out[#out + 1] = repl
    n = n + 1
    pos = b + 1
  end
  if n == 0 then return s, 0 end
  out[#out + 1] = s:sub(pos)
  return table.concat(out), n
end

-- Replace the string values of the keys in `fields` inside s[a..b] (a JSON
-- value); returns the new text of that span and the count.
local function redact_fields(span, fields, repl)
  local n = 0
  for _, f in ipairs(fields) do
    local out, pos, hit = {}, 1, false
    local key = '"' .. f:gsub("%p", "%%%0") .. '"%s*:%s*"'
    while true do
      local a, b = span:find(key, pos)
      if a == nil then break end
      local e = string_end(span, b) -- b is the value's opening quote
      if e == nil then break end
      out[#out + 1] = span:sub(pos, b)
      out[#out + 1] = repl
      if span:sub(b + 1, e - 1) ~= repl then -- redacted before (a tape saved again): not counted
        n = n + 1
      end
      pos = e -- the closing quote stays
      hit = true
    end
    if hit then
      out[#out + 1] = span:sub(pos)
      span = table.concat(out)
    end
  end
  return span, n
end

-- The redacted text of one message (JSON text, or a raw line for an
-- invalid-JSON frame) and the number of secrets replaced.
function M.redact_message(text, rules)
  rules = rules or M.DEFAULTS
  local repl = rules.replacement or M.REPLACEMENT
  local total = 0
  local a, b = member_span(text, "params")
  if a ~= nil and (text:byte(a) == 123 or text:byte(a) == 91) then -- an object or an array
    local span, n = redact_fields(text:sub(a, b), rules.fields or {}, repl)
    if n > 0 then
      text = text:sub(1, a - 1) .. span .. text:sub(b + 1)
      total = total + n
    end
  end
  for _, list in ipairs{ rules.bearer or {}, rules.api_keys or {} } do
    for _, p in ipairs(list) do
      local n
      text, n = replace_all(text, p, repl)
      total = total + n
    end
  end
  return text, total
end

-- ---------------------------------------------------------------- the provider

local function check_rules(config)
  local rules = {}
  for _, k in ipairs{ "bearer", "api_keys", "fields" } do
    local v = config[k]
    if v == nil then
      rules[k] = M.DEFAULTS[k]
    else
      if type(v) ~= "table" then return nil, "redact: " .. k .. " must be an array of strings" end
      for i, p in ipairs(v) do
        if type(p) ~= "string" then
          return nil, "redact: " .. k .. "[" .. i .. "] must be a string"
        end
        if k ~= "fields" and not pcall(string.find, "", p) then
          return nil, "redact: " .. k .. "[" .. i .. "] is not a Lua pattern: " .. p
        end
      end
      rules[k] = v
    end
  end
  if config.replacement ~= nil and type(config.replacement) ~= "string" then
    return nil, "redact: replacement must be a string"
  end
  rules.replacement = config.replacement or M.REPLACEMENT
  if rules.replacement:find('["\\%c]') then
    return nil, "redact: replacement must not hold a quote, a backslash or a control character"
  end
  return rules
end

local KEYS = { base = true, path = true, bearer = true, api_keys = true, fields = true,
               replacement = true }

function M.validate(config)
  for k in pairs(config) do
    if not KEYS[k] then return nil, "redact: unknown key '" .. tostring(k) .. "'" end
  end
  if config.base ~= nil and type(config.base) ~= "string" then
    return nil, "redact: base must be a store spec (\"filesystem:./tapes\", \"memory:\", ...)"
  end
  if config.base == nil and type(config.path) ~= "string" then
    return nil, "redact: give base (a store spec) or path (a filesystem directory)"
  end
  local ok, msg = check_rules(config)
  if not ok then return nil, msg end
end

-- env (a table, or nil) with `redactions` raised by n; nil when there is
-- nothing to say (no count before, nothing redacted), so that a tape
-- without secrets is stored exactly as it came.
local function with_count(env, n)
  local before = type(env) == "table" and math.type(env.redactions) == "integer"
                 and env.redactions or nil
  if n == 0 and before == nil then return nil end
  local e = {}
  if type(env) == "table" then for k, v in pairs(env) do e[k] = v end end
  e.redactions = (before or 0) + n
  return e
end

-- The JSONL line of frame f, redacted (with its newline), and the count.
-- The message (a JSON string for invalid-JSON and oversize frames) is kept
-- verbatim in its line, so it is replaced there and nothing else moves.
local function redacted_line(f, rules)
  local line = f.line
  if line:sub(-1) ~= "\n" then line = line .. "\n" end
  local msg = f.message_text
  local red, n = M.redact_message(msg, rules)
  if n > 0 then
    local a, b = line:find(msg, 1, true)
    line = line:sub(1, a - 1) .. red .. line:sub(b + 1)
  end
  return line, n
end

-- A tape from a frameless tape's init line, frame lines and the lines after
-- them (correlations), its metadata from meta_of (a tape); nil, msg, code.
local function assemble(meta_of, lines)
  local doc = meta_of:to_jsonl()
  local init = doc:match("^[^\n]*\n")
  local rest, skip = {}, #meta_of
  for l in doc:sub(#init + 1):gmatch("[^\n]*\n") do
    if skip > 0 then skip = skip - 1 else rest[#rest + 1] = l end -- its own frames
  end
  return tapestore.tape_from_jsonl(init .. table.concat(lines) .. table.concat(rest),
                                   meta_of:to_meta_json())
end

-- The redacted copy of tape t (lent: read-only): a tape to save.
local function redacted_tape(t, rules)
  local lines, total = {}, 0
  for f in t:frames() do
    local line, n = redacted_line(f, rules)
    lines[#lines + 1] = line
    total = total + n
  end
  if total == 0 then return t end -- nothing to change: the lent tape itself
  local copy, msg, code = assemble(t, lines)
  if copy == nil then return nil, msg, code end
  copy.environment = with_count(t.environment, total)
  return copy
end

-- The metadata a recording may learn mid-session (besides transport and
-- environment: their JSON text travels as it is, as transport_json).
local LEARNED = { "name", "description", "session_id", "protocol_version", "tags" }

-- A recording through the base's writer. An oversize frame cannot go
-- through it (the frame holds only a prefix of its message, and the base's
-- append takes whole messages): then the base's writer is abandoned (the
-- base keeps what was appended, status recording) and the rest of the
-- recording is kept here, saved whole at finish. `busy` (the store's)
-- makes save, delete and a second recording of that id wait (EBUSY) meanwhile.
local function recording(base, bw, header, rules, busy)
  local id, count, last_name = header.id, 0, header.name
  local lines -- the frame lines so far, once buffered
  local r = {}
  -- Mirror the header's metadata, with the count, on the base's writer.
  local function sync(hdr)
    local m = {}
    for _, k in ipairs(LEARNED) do m[k] = hdr[k] end
    m.transport_json = hdr.transport_json -- JSON text, as it is
    m.environment = with_count(hdr.environment, count)
    if m.environment == nil then m.environment_json = hdr.environment_json end
    return bw:update_meta(m)
  end
  local function buffer(hdr)
    local ok, msg, code = sync(hdr)
    bw:close()
    if not ok then return nil, msg, code end
    local t
    t, msg, code = base:load(id)
    if t == nil then return nil, msg, code end
    lines = {}
    for f in t:frames() do
      local line = f.line
      lines[#lines + 1] = line:sub(-1) == "\n" and line or line .. "\n"
    end
    busy[id] = true
    return true
  end
  function r.append(frame, hdr)
    if frame.oversize and lines == nil then
      local ok, msg, code = buffer(hdr)
      if not ok then return nil, msg, code end
    end
    if lines ~= nil then
      local line, n = redacted_line(frame, rules)
      lines[#lines + 1] = line
      count = count + n
      return
    end
    local line = frame.line
    local opts = { ts_ms = frame.ts, correlation_id = frame.correlation_id }
    for _, k in ipairs{ "transport", "flags" } do
      local a, b = member_span(line, k)
      if a then opts[k] = line:sub(a, b) end -- the JSON text as it is
    end
    local text, n
    if frame.invalid_json then
      opts.invalid_json = true
      text, n = M.redact_message(frame.raw, rules)
    else
      text, n = M.redact_message(frame.message_text, rules)
    end
    local ok, msg, code = bw:append(frame.direction, text, opts)
    if not ok then return nil, msg, code end
    count = count + n
    if n > 0 or hdr.name ~= last_name then -- the count, while recording
      last_name = hdr.name
      return sync(hdr)
    end
  end
  function r.correlate(hdr, index)
    if lines ~= nil then return end -- the header carries them to finish
    local c = hdr:correlations()[index]
    return bw:add_correlation(c.id, c.request_seq, c.response_seq, c.rtt_ms, c.status)
  end
  function r.finish(hdr, finalized)
    if lines ~= nil then -- finished or abandoned, saved whole
      busy[id] = nil
      local t, msg, code = assemble(hdr, lines)
      if t == nil then return nil, msg, code end
      t.environment = with_count(hdr.environment, count)
      return base:save(t)
    end
    local ok, msg, code = sync(hdr)
    if ok and finalized then return bw:finish() end
    bw:close() -- abandoned (or the metadata failed): the base keeps what was appended
    if not ok then return nil, msg, code end
  end
  return r
end

function M.factory(config)
  local rules = assert(check_rules(config))
  local spec = config.base or ("filesystem:" .. config.path)
  local base, msg, code = tapestore.open(spec)
  if base == nil then return nil, "redact: base " .. spec .. ": " .. msg, code end
  local native = base:capabilities(true)
  local ops = { persistent = native.persistent == true }
  local busy = {} -- ids of recordings kept here (see recording)
  local function refuse(id)
    return nil, "redact: tape '" .. id .. "' is being recorded", tapestore.EBUSY
  end
  function ops.save(t)
    if busy[t.id] then return refuse(t.id) end
    local copy, m, c = redacted_tape(t, rules)
    if copy == nil then return nil, m, c end
    return base:save(copy)
  end
  function ops.load(id) return base:load(id) end -- nil, msg, ENOTFOUND passes through
  function ops.delete(id)
    if busy[id] then return refuse(id) end
    return base:delete(id)
  end
  function ops.list(query) return base:query{} end -- entries; the core applies the query
  function ops.close() return base:close() end
  if native.exists then ops.exists = function(id) return base:exists(id) end end
  if native.search then ops.search = function(query) return base:query_page(query) end end
  if native.stats then ops.stats = function() return base:stats() end end
  if native.control then ops.control = function(op, input) return base:control(op, input) end end
  if native.read_frames then
    ops.frames = function(id, start, stop) return base:frames(id, start, stop) end
  end
  if native.writer then
    ops.begin_recording = function(header)
      if busy[header.id] then return refuse(header.id) end
      local fields = { id = header.id, created_at = header.created_at,
                       transport_json = header.transport_json,
                       environment = with_count(header.environment, 0) }
      if fields.environment == nil then fields.environment_json = header.environment_json end
      for _, k in ipairs(LEARNED) do fields[k] = header[k] end
      local bw, m, c = base:record(fields)
      if bw == nil then return nil, m, c end
      return recording(base, bw, header, rules, busy)
    end
  end
  return ops
end

-- Register the provider under `name` (default "redact"); true, or nil,
-- message, code (a name taken).
function M.register(name)
  return tapestore.register_provider(name or "redact", M.factory, {
    version = 1,
    description = "redacts secrets (bearer tokens, API keys, password/token params) over a base store",
    validate = M.validate,
    persistent = true, -- the default base, the filesystem, is; each store says its base's
  })
end

-- Registered on require (a name already taken keeps its provider).
M.register()

return M
