-- slowest_requests.lua - the slowest request/response pairs by round-trip
-- time, across every tape.
local q = dofile((arg[0]:match("^(.*/)") or "./") .. "tapequery.lua")

local usage = [[
usage: lua5.4 slowest_requests.lua [--store SPEC] [--limit N] [--json]

The N slowest request/response pairs (default 10) by round-trip time, with
the method, the tape and the outcome.
--store SPEC   the store (default $TAPESTORE_STORE, else filesystem:./tapes)
--limit N      how many pairs to show (default 10)
--json         one JSON document: {"pairs": [{tape_id, method, request_seq,
               response_seq, rtt_ms, status}, ...]}
]]
local opts = q.args(arg, usage, { limit = "number" })
local limit = opts.limit or 10
local store <close> = q.open(opts)

local all = {}
for t in q.tapes(store) do
  for _, p in ipairs(q.pairs_of(t)) do
    local req = q.message(p.request)
    all[#all + 1] = {
      tape_id = t.id, method = type(req) == "table" and q.val(req.method) or nil,
      request_seq = p.request.seq, response_seq = p.response.seq,
      rtt_ms = p.rtt_ms, status = p.status,
    }
  end
end
-- Slowest first; ties in a stable order (tape, then sequence).
table.sort(all, function(a, b)
  if a.rtt_ms ~= b.rtt_ms then return a.rtt_ms > b.rtt_ms end
  if a.tape_id ~= b.tape_id then return a.tape_id < b.tape_id end
  return a.request_seq < b.request_seq
end)
local top = {}
for i = 1, math.min(limit, #all) do top[i] = all[i] end

if opts.json then
  q.json { pairs = q.tapestore.array(top) }
else
  local rows = {}
  for i, p in ipairs(top) do
    rows[i] = { p.rtt_ms, p.method, p.tape_id, p.request_seq, p.response_seq, p.status }
  end
  q.table({ "RTT_MS", "METHOD", "TAPE", "REQ", "RESP", "STATUS" }, rows,
          { [1] = true, [4] = true, [5] = true })
end
