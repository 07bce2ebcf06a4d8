-- tapequery.lua - what the query scripts share: their command line, the
-- store, walking recorded sessions, and printing (aligned tables or JSON).
--
-- A script does
--   local q = dofile((arg[0]:match("^(.*/)") or "./") .. "tapequery.lua")
-- so it runs from any directory, with lua5.4 or `tapestore query`.
local tapestore = require "tapestore"

local M = {}

-- Parse the command line: --store SPEC, --json, --help, the options the
-- script declares (name -> "number" | "string"), and positional arguments.
-- usage: the script's help text. Returns opts, positional.
function M.args(argv, usage, options)
  options = options or {}
  local opts, pos = { json = false }, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w_-]+)=(.*)$")
    name = name or a:match("^%-%-([%w_-]+)$")
    if a == "--help" or a == "-h" then
      io.stdout:write(usage)
      os.exit(0)
    elseif name == "json" and value == nil then
      opts.json = true
    elseif name == "store" or options[name] then
      if value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then M.usage_error(usage, "--" .. name .. " needs a value") end
      end
      if options[name] == "number" then
        local n = math.tointeger(tonumber(value))
        if n == nil or n < 0 then
          M.usage_error(usage, "--" .. name .. ": expected a whole number, got '" .. value .. "'")
        end
        value = n
      end
      opts[name:gsub("-", "_")] = value
    elseif a:sub(1, 2) == "--" then
      M.usage_error(usage, "unknown option " .. a)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

function M.usage_error(usage, why)
  io.stderr:write(arg and arg[0] or "query", ": ", why, "\n\n", usage)
  os.exit(2)
end

-- Print a runtime failure and exit 1 (3 for not found, as the command does).
function M.fail(what, message, code)
  io.stderr:write(what, ": ", tostring(message), "\n")
  os.exit(code == tapestore.ENOTFOUND and 3 or 1)
end

-- The store of --store, else $TAPESTORE_STORE, else filesystem:./tapes.
function M.open(opts)
  local store, message, code
  if opts.store then
    store, message, code = tapestore.open(opts.store)
  else
    store, message, code = tapestore.open()
  end
  if not store then M.fail("cannot open the store", message, code) end
  return store
end

-- Every tape of the store (loaded), in id order, one at a time.
function M.tapes(store)
  local it = store:query { order_by = "id" }
  return function()
    local entry = it()
    if entry == nil then return nil end
    local t, message, code = store:load(entry.id)
    if not t then M.fail("cannot load " .. entry.id, message, code) end
    return t
  end
end

-- The frames of a tape as an array, and an index by seq.
function M.frames(t)
  local list, by_seq = {}, {}
  for f in t:frames() do
    list[#list + 1] = f
    by_seq[f.seq] = f
  end
  return list, by_seq
end

-- A frame's message, or nil when it is not JSON (invalid_json, oversize).
function M.message(f)
  if f.invalid_json or f.oversize then return nil end
  return f.message
end

-- A JSON value of a decoded message, or nil for absent and null.
function M.val(v)
  if v == tapestore.null then return nil end
  return v
end

-- The request frames by JSON-RPC id and direction, and the response frame
-- of each correlation: pairs of {request =, response =, rtt_ms =, status =}.
function M.pairs_of(t)
  local _, by_seq = M.frames(t)
  local out = {}
  for _, c in ipairs(t:correlations()) do
    local req, resp = by_seq[c.request_seq], by_seq[c.response_seq]
    if req and resp then
      out[#out + 1] = { request = req, response = resp, rtt_ms = c.rtt_ms, status = c.status, id = c.id }
    end
  end
  return out
end

-- Whether a response message reports a failure: a JSON-RPC error, or a
-- tool result with isError (MCP's way of saying a tool call failed).
function M.failure(msg)
  if type(msg) ~= "table" then return nil end
  local err = M.val(msg.error)
  if err ~= nil then
    return type(err) == "table" and tostring(M.val(err.message) or "error") or tostring(err)
  end
  local result = M.val(msg.result)
  if type(result) == "table" and result.isError == true then
    local content = M.val(result.content)
    if type(content) == "table" and type(content[1]) == "table" and type(content[1].text) == "string" then
      return content[1].text
    end
    return "isError"
  end
  return nil
end

-- ---------------------------------------------------------------- output

local function cell(v)
  if v == nil then return "-" end
  if math.type(v) == "float" then return string.format("%.1f", v) end
  return tostring(v)
end

-- Print rows (arrays of values) under headers, columns aligned; columns
-- listed in `right` are right-aligned (numbers).
function M.table(headers, rows, right)
  right = right or {}
  local width = {}
  for i, h in ipairs(headers) do width[i] = #h end
  local text = {}
  for r, row in ipairs(rows) do
    text[r] = {}
    for i = 1, #headers do
      local s = cell(row[i])
      text[r][i] = s
      if utf8.len(s) and utf8.len(s) > width[i] then width[i] = utf8.len(s) end
    end
  end
  local function line(values)
    local parts = {}
    for i, s in ipairs(values) do
      local pad = string.rep(" ", width[i] - (utf8.len(s) or #s))
      parts[i] = right[i] and pad .. s or (i < #values and s .. pad or s)
    end
    io.stdout:write((table.concat(parts, "  "):gsub("%s+$", "")), "\n")
  end
  line(headers)
  local rule = {}
  for i = 1, #headers do rule[i] = string.rep("-", width[i]) end
  line(rule)
  for _, values in ipairs(text) do line(values) end
end

-- Print a value as one JSON document (deterministic: keys sorted).
function M.json(value)
  io.stdout:write(tapestore.json_encode(value), "\n")
end

M.tapestore = tapestore
return M
