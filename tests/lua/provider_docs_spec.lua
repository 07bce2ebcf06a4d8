-- The ```lua examples of docs/providers-lua.md run as written.
local src = os.getenv("TAPE_LUA_SOURCE_DIR") or "."
-- the redact provider's walk-through requires it
package.path = src .. "/examples/lua-redact-provider/?.lua;" .. package.path
local doc = assert(io.open(src .. "/docs/providers-lua.md")):read("a")

local blocks = {}
for code in doc:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end

describe("docs/providers-lua.md", function()
  it("has an example", function()
    assert.is_true(#blocks >= 1)
  end)
  for i, code in ipairs(blocks) do
    it("example " .. i .. " runs", function()
      local chunk = assert(load(code, "=providers-lua.md:block" .. i))
      chunk()
    end)
  end
end)
