-- The examples of docs/lua.md run, so the page stays true. The JSON
-- section's examples are the JSON codec's (tests/lua_json); every other
-- ```lua block is run here as it is written.
local src = assert(os.getenv("TAPE_LUA_SOURCE_DIR"), "TAPE_LUA_SOURCE_DIR is set by ctest")

local function blocks()
  local out, section = {}, ""
  local f = assert(io.open(src .. "/docs/lua.md"))
  local text = f:read("a")
  f:close()
  local inblock, buf, start
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if not inblock and line:match("^## ") then
      section = line:sub(4)
    elseif not inblock and line == "```lua" then
      inblock, buf, start = true, {}, n
    elseif inblock and line == "```" then
      inblock = false
      if section ~= "JSON" then
        out[#out + 1] = { section = section, line = start, code = table.concat(buf, "\n") }
      end
    elseif inblock then
      buf[#buf + 1] = line
    end
  end
  return out
end

describe("docs/lua.md", function()
  local all = blocks()

  it("has examples outside the JSON section", function()
    assert.is_true(#all >= 5)
  end)

  for _, b in ipairs(all) do
    it("runs the example of " .. b.section .. " (line " .. b.line .. ")", function()
      local chunk = assert(load(b.code, "=docs/lua.md:" .. b.line))
      chunk()
      collectgarbage()
    end)
  end
end)
