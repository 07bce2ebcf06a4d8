-- sessions_by_client.lua - recorded sessions grouped by the client's name
-- and version, as its initialize request announced them.
local q = dofile((arg[0]:match("^(.*/)") or "./") .. "tapequery.lua")

local usage = [[
usage: lua5.4 sessions_by_client.lua [--store SPEC] [--json]

Groups the tapes by the client (params.clientInfo of the initialize
request): name, version, how many sessions, which servers they talked to
(result.serverInfo of the answer) and the protocol versions negotiated.
Tapes without an initialize are counted under "(no initialize)".
--store SPEC   the store (default $TAPESTORE_STORE, else filesystem:./tapes)
--json         one JSON document: {"clients": [{client, version, sessions,
               servers: [...], protocol_versions: [...], tapes: [...]}, ...]}
]]
local opts = q.args(arg, usage)
local store <close> = q.open(opts)

local function set_add(set, list, v)
  if v ~= nil and not set[v] then set[v] = true; list[#list + 1] = v end
end

local groups, order = {}, {}
for t in q.tapes(store) do
  local client, version, server, proto = "(no initialize)", nil, nil, nil
  local frames, _ = q.frames(t)
  local init_id
  for _, f in ipairs(frames) do
    local m = q.message(f)
    if type(m) == "table" then
      if m.method == "initialize" and f.direction == q.tapestore.CLIENT_TO_SERVER and init_id == nil then
        local info = type(m.params) == "table" and q.val(m.params.clientInfo)
        client = type(info) == "table" and q.val(info.name) or "(unnamed)"
        version = type(info) == "table" and q.val(info.version) or nil
        init_id = q.val(m.id)
      elseif init_id ~= nil and f.direction == q.tapestore.SERVER_TO_CLIENT and q.val(m.id) == init_id
             and type(q.val(m.result)) == "table" then
        local info = q.val(m.result.serverInfo)
        if type(info) == "table" then
          server = tostring(q.val(info.name) or "?") .. (q.val(info.version) and (" " .. info.version) or "")
        end
        proto = q.val(m.result.protocolVersion)
        break
      end
    end
  end
  local key = client .. "\0" .. (version or "")
  local g = groups[key]
  if not g then
    g = { client = client, version = version, sessions = 0, servers = {}, protocol_versions = {},
          tapes = {}, _s = {}, _p = {} }
    groups[key] = g
    order[#order + 1] = g
  end
  g.sessions = g.sessions + 1
  set_add(g._s, g.servers, server)
  set_add(g._p, g.protocol_versions, proto)
  g.tapes[#g.tapes + 1] = t.id
end
table.sort(order, function(a, b)
  if a.sessions ~= b.sessions then return a.sessions > b.sessions end
  if a.client ~= b.client then return a.client < b.client end
  return (a.version or "") < (b.version or "")
end)
for _, g in ipairs(order) do
  table.sort(g.servers); table.sort(g.protocol_versions); g._s, g._p = nil, nil
  q.tapestore.array(g.servers); q.tapestore.array(g.protocol_versions); q.tapestore.array(g.tapes)
end

if opts.json then
  q.json { clients = q.tapestore.array(order) }
else
  local rows = {}
  for i, g in ipairs(order) do
    rows[i] = { g.client, g.version, g.sessions,
                #g.servers > 0 and table.concat(g.servers, ", ") or nil,
                #g.protocol_versions > 0 and table.concat(g.protocol_versions, ", ") or nil }
  end
  q.table({ "CLIENT", "VERSION", "SESSIONS", "SERVERS", "PROTOCOL" }, rows, { [3] = true })
end
