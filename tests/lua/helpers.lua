-- Shared by the host API specs (tests/lua/*_spec.lua): scratch
-- directories, sample messages, and a store filled with known tapes.
local tapestore = require "tapestore"

local M = {}

-- A new empty directory; removed by M.rm_rf.
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

function M.rm_rf(p)
  if p and p:match("^/tmp/") then
    os.execute("rm -rf '" .. p .. "'")
  end
end

function M.request(id, method, params)
  return { jsonrpc = "2.0", id = id, method = method, params = params }
end

function M.response(id, result)
  return { jsonrpc = "2.0", id = id, result = result or tapestore.object{} }
end

-- A tape with n request/response pairs.
function M.tape(fields, n)
  local t = tapestore.new_tape(fields)
  for i = 1, n or 0 do
    local a = assert(t:append(tapestore.CLIENT_TO_SERVER, M.request(i, "ping")))
    local b = assert(t:append(tapestore.SERVER_TO_CLIENT, M.response(i)))
    assert(t:add_correlation(tostring(i), a, b, i, "ok"))
  end
  return t
end

-- Every frame of an iterator, as a list.
function M.collect(...)
  local out = {}
  for x in ... do
    out[#out + 1] = x
  end
  return out
end

-- Run a Lua chunk in a child lua5.4 with the test environment; returns
-- ok, exit code, stdout+stderr.
function M.run_lua(code)
  local f = os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write(code)
  h:close()
  local p = assert(io.popen("lua5.4 " .. f .. " 2>&1"))
  local out = p:read("a")
  local ok, _, rc = p:close()
  os.remove(f)
  return ok, rc, out
end

return M
