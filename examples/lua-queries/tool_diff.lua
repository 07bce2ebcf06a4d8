-- tool_diff.lua - how the tool lists two sessions saw differ (the results
-- of their tools/list calls): tools only in one, and tools whose
-- description or input schema changed.
local q = dofile((arg[0]:match("^(.*/)") or "./") .. "tapequery.lua")

local usage = [[
usage: lua5.4 tool_diff.lua [--store SPEC] [--json] TAPE_A TAPE_B

Compares the tools each session was offered (every tools/list result in
it, pages merged): tools only in A, only in B, and tools in both whose
description or inputSchema differ.
--store SPEC   the store (default $TAPESTORE_STORE, else filesystem:./tapes)
--json         one JSON document: {"a": ID, "b": ID, "only_a": [...],
               "only_b": [...], "changed": [{tool, what: [...]}], "same": N}
]]
local opts, pos = q.args(arg, usage)
if #pos ~= 2 then q.usage_error(usage, "expected two tape ids, got " .. #pos) end
local store <close> = q.open(opts)
local tapestore = q.tapestore

-- The tools a session saw: name -> tool (the last listing wins).
local function tools_of(id)
  local t, message, code = store:load(id)
  if not t then q.fail("cannot load " .. id, message, code) end
  local frames = q.frames(t)
  local list_ids = {}
  local tools, found = {}, false
  for _, f in ipairs(frames) do
    local m = q.message(f)
    if type(m) == "table" then
      if m.method == "tools/list" and q.val(m.id) ~= nil then
        list_ids[tostring(m.id)] = f.direction
      elseif q.val(m.id) ~= nil and list_ids[tostring(m.id)] and list_ids[tostring(m.id)] ~= f.direction
             and type(q.val(m.result)) == "table" and type(q.val(m.result.tools)) == "table" then
        found = true
        for _, tool in ipairs(m.result.tools) do
          if type(tool) == "table" and type(tool.name) == "string" then tools[tool.name] = tool end
        end
      end
    end
  end
  if not found then q.fail(id, "the session has no tools/list result", nil) end
  return tools
end

local a, b = tools_of(pos[1]), tools_of(pos[2])
local only_a, only_b, changed, same = {}, {}, {}, 0
for name, ta in pairs(a) do
  local tb = b[name]
  if tb == nil then
    only_a[#only_a + 1] = name
  else
    local what = {}
    if tapestore.json_encode(ta.description or tapestore.null)
       ~= tapestore.json_encode(tb.description or tapestore.null) then
      what[#what + 1] = "description"
    end
    if tapestore.json_encode(ta.inputSchema or tapestore.null)
       ~= tapestore.json_encode(tb.inputSchema or tapestore.null) then
      what[#what + 1] = "inputSchema"
    end
    if #what > 0 then changed[#changed + 1] = { tool = name, what = what } else same = same + 1 end
  end
end
for name in pairs(b) do
  if a[name] == nil then only_b[#only_b + 1] = name end
end
table.sort(only_a); table.sort(only_b)
table.sort(changed, function(x, y) return x.tool < y.tool end)

if opts.json then
  q.json { a = pos[1], b = pos[2], only_a = tapestore.array(only_a), only_b = tapestore.array(only_b),
           changed = tapestore.array(changed), same = same }
else
  local rows = {}
  for _, n in ipairs(only_a) do rows[#rows + 1] = { n, "only in " .. pos[1] } end
  for _, n in ipairs(only_b) do rows[#rows + 1] = { n, "only in " .. pos[2] } end
  for _, c in ipairs(changed) do rows[#rows + 1] = { c.tool, "changed: " .. table.concat(c.what, ", ") } end
  q.table({ "TOOL", "DIFFERENCE" }, rows)
  io.stdout:write(string.format("%d tool(s) the same in both\n", same))
end
