-- failed_tool_calls.lua - tapes with failed tools/call responses: which
-- tool, and the error message (a JSON-RPC error, or a result with isError).
local q = dofile((arg[0]:match("^(.*/)") or "./") .. "tapequery.lua")

local usage = [[
usage: lua5.4 failed_tool_calls.lua [--store SPEC] [--json]

Lists every tools/call whose response failed, tape by tape: the tape, the
request's sequence number, the tool's name and the error message.
--store SPEC   the store (default $TAPESTORE_STORE, else filesystem:./tapes)
--json         one JSON document: {"failures": [{tape_id, tape_name, seq,
               tool, error}, ...]}
]]
local opts = q.args(arg, usage)
local store <close> = q.open(opts)

local failures = {}
for t in q.tapes(store) do
  for _, p in ipairs(q.pairs_of(t)) do
    local req, resp = q.message(p.request), q.message(p.response)
    if type(req) == "table" and req.method == "tools/call" then
      local why = q.failure(resp)
      if why then
        local params = q.val(req.params)
        failures[#failures + 1] = {
          tape_id = t.id, tape_name = t.name, seq = p.request.seq,
          tool = type(params) == "table" and q.val(params.name) or nil, error = why,
        }
      end
    end
  end
end

if opts.json then
  q.json { failures = q.tapestore.array(failures) }
else
  local rows = {}
  for i, f in ipairs(failures) do rows[i] = { f.tape_id, f.tape_name, f.seq, f.tool, f.error } end
  q.table({ "TAPE", "NAME", "SEQ", "TOOL", "ERROR" }, rows, { [3] = true })
end
