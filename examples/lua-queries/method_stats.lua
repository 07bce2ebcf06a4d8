-- method_stats.lua - call counts and error rates per method, across tapes.
local q = dofile((arg[0]:match("^(.*/)") or "./") .. "tapequery.lua")

local usage = [[
usage: lua5.4 method_stats.lua [--store SPEC] [--json]

For each JSON-RPC method: how many requests were made (in how many tapes),
how many failed (a JSON-RPC error, or a tool result with isError), the
error rate, and the mean round-trip time of the answered ones.
Notifications are counted apart (they get no answer).
--store SPEC   the store (default $TAPESTORE_STORE, else filesystem:./tapes)
--json         one JSON document: {"methods": [{method, calls, errors,
               error_rate, mean_rtt_ms, tapes, notifications}, ...]}
]]
local opts = q.args(arg, usage)
local store <close> = q.open(opts)

local by = {}
local function stat(method)
  local s = by[method]
  if not s then
    s = { method = method, calls = 0, errors = 0, answered = 0, rtt_total = 0,
          notifications = 0, tapes = 0, seen_in = nil }
    by[method] = s
  end
  return s
end

for t in q.tapes(store) do
  local frames = q.frames(t)
  local answered = {}
  for _, p in ipairs(q.pairs_of(t)) do answered[p.request.seq] = p end
  for _, f in ipairs(frames) do
    local m = q.message(f)
    if type(m) == "table" and type(m.method) == "string" then
      local s = stat(m.method)
      if s.seen_in ~= t.id then s.seen_in, s.tapes = t.id, s.tapes + 1 end
      if q.val(m.id) == nil then
        s.notifications = s.notifications + 1
      else
        s.calls = s.calls + 1
        local p = answered[f.seq]
        if p then
          s.answered = s.answered + 1
          s.rtt_total = s.rtt_total + p.rtt_ms
          if q.failure(q.message(p.response)) then s.errors = s.errors + 1 end
        end
      end
    end
  end
end

local list = {}
for _, s in pairs(by) do
  s.error_rate = s.calls > 0 and s.errors / s.calls or 0.0
  s.mean_rtt_ms = s.answered > 0 and s.rtt_total / s.answered or nil
  list[#list + 1] = { method = s.method, calls = s.calls, errors = s.errors,
                      error_rate = s.error_rate, mean_rtt_ms = s.mean_rtt_ms,
                      tapes = s.tapes, notifications = s.notifications }
end
-- Busiest first, then by name.
table.sort(list, function(a, b)
  if a.calls + a.notifications ~= b.calls + b.notifications then
    return a.calls + a.notifications > b.calls + b.notifications
  end
  return a.method < b.method
end)

if opts.json then
  q.json { methods = q.tapestore.array(list) }
else
  local rows = {}
  for i, s in ipairs(list) do
    rows[i] = { s.method, s.calls, s.errors, string.format("%.1f%%", 100 * s.error_rate),
                s.mean_rtt_ms, s.notifications, s.tapes }
  end
  q.table({ "METHOD", "CALLS", "ERRORS", "ERROR_RATE", "MEAN_RTT_MS", "NOTIFICATIONS", "TAPES" },
          rows, { [2] = true, [3] = true, [4] = true, [5] = true, [6] = true, [7] = true })
end
