-- The store the query scripts' spec runs them against (queries_spec.lua):
-- three finalized sessions with known answers, written through the host
-- API. alpha: claude-desktop, a failing tools/call (a JSON-RPC error);
-- beta: mcp-inspector, a tool result with isError, a changed tool list;
-- gamma: no initialize, a server-to-client request.
local tapestore = require "tapestore"

return function(dir)
local store <close> = assert(tapestore.open("filesystem", { path = dir }))
local C, S = tapestore.CLIENT_TO_SERVER, tapestore.SERVER_TO_CLIENT
local function session(id, name, created, steps)
  local t = assert(tapestore.new_tape { id = id, name = name, created_at = created })
  local ts = 0
  for _, st in ipairs(steps) do
    local req = assert(t:append(st[1], st[2], { ts_ms = ts }))
    if st[3] then
      ts = ts + st[4]
      local resp = assert(t:append(st[1] == C and S or C, st[3], { ts_ms = ts }))
      assert(t:add_correlation(tostring(st[2].id), req, resp, st[4], st[5] or "ok"))
    end
    ts = ts + 1
  end
  t.status = tapestore.FINALIZED
  assert(store:save(t))
end
local function init(id, cname, cver, sname, sver, proto)
  return { C, { jsonrpc = "2.0", id = id, method = "initialize",
                params = { protocolVersion = proto, capabilities = {}, clientInfo = { name = cname, version = cver } } },
           { jsonrpc = "2.0", id = id, result = { protocolVersion = proto, capabilities = {},
                                                  serverInfo = { name = sname, version = sver } } }, 12 }
end
local echo = { name = "echo", description = "Echoes back the input", inputSchema = { type = "object", properties = { message = { type = "string" } } } }
local add = { name = "add", description = "Adds two numbers", inputSchema = { type = "object", properties = { a = { type = "number" }, b = { type = "number" } } } }
session("t1-alpha", "alpha", 1764633600000, {
  init(1, "claude-desktop", "1.2.0", "example-servers/everything", "0.6.2", "2025-06-18"),
  { C, { jsonrpc = "2.0", method = "notifications/initialized" } },
  { C, { jsonrpc = "2.0", id = 2, method = "tools/list" }, { jsonrpc = "2.0", id = 2, result = { tools = { echo, add } } }, 5 },
  { C, { jsonrpc = "2.0", id = 3, method = "tools/call", params = { name = "echo", arguments = { message = "hi" } } },
       { jsonrpc = "2.0", id = 3, result = { content = { { type = "text", text = "Echo: hi" } } } }, 30 },
  { C, { jsonrpc = "2.0", id = 4, method = "tools/call", params = { name = "add", arguments = { a = "x" } } },
       { jsonrpc = "2.0", id = 4, error = { code = -32602, message = "Invalid arguments for tool add" } }, 7, "error" },
})
local echo2 = { name = "echo", description = "Echoes the input back", inputSchema = echo.inputSchema }
local long = { name = "longRunningOperation", description = "Runs a long operation", inputSchema = { type = "object" } }
session("t2-beta", "beta", 1764637200000, {
  init(1, "mcp-inspector", "0.9.0", "example-servers/everything", "0.6.2", "2025-03-26"),
  { C, { jsonrpc = "2.0", id = 2, method = "tools/list" }, { jsonrpc = "2.0", id = 2, result = { tools = { echo2, long } } }, 4 },
  { C, { jsonrpc = "2.0", id = 3, method = "tools/call", params = { name = "longRunningOperation", arguments = { duration = 10 } } },
       { jsonrpc = "2.0", id = 3, result = { content = { { type = "text", text = "operation timed out" } }, isError = true } }, 250 },
  { C, { jsonrpc = "2.0", id = 4, method = "ping" }, { jsonrpc = "2.0", id = 4, result = {} }, 1 },
})
session("t3-gamma", "gamma", 1764640800000, {
  { C, { jsonrpc = "2.0", id = "p1", method = "ping" }, { jsonrpc = "2.0", id = "p1", result = {} }, 2 },
  { S, { jsonrpc = "2.0", id = 7, method = "sampling/createMessage", params = { messages = {} } },
       { jsonrpc = "2.0", id = 7, result = { role = "assistant", content = { type = "text", text = "ok" } } }, 40 },
})
end
