-- lua_provider_bench.lua - trampoline overhead of a provider written in Lua
-- (docs/benchmarks.md, issue 9 "Benchmarks"): `exists` on a Lua provider
-- through the core (store:exists -> tape_store_exists -> the trampoline ->
-- the op) against a direct Lua call of the same op, in the same run.
-- Goal: under 1 microsecond added per call. Also the same host call on a
-- memory store, which splits the added time into the host API + core part
-- and the trampoline's own part.
--
--   LUA_CPATH='build/bindings/lua/?.so;;' lua5.4 tests/bench/lua_provider_bench.lua [--quick]
--
-- Prints one JSON line per figure (the format of the other benchmarks).
local tapestore = require "tapestore"

local quick = arg[1] == "--quick"
local N = quick and 20000 or 1000000
local ROUNDS = quick and 1 or 5

local ops
assert(tapestore.register_provider("bench_lua", function(config)
  local tapes = { present = true }
  ops = {
    save = function(t) tapes[t.id] = true end,
    load = function(id) return nil end,
    delete = function(id) tapes[id] = nil end,
    list = function(q) return {} end,
    exists = function(id) return tapes[id] == true end,
  }
  return ops
end))
local s = assert(tapestore.open("bench_lua", {}, { eager = true }))
local mem = assert(tapestore.open("memory", {}, { eager = true }))
assert(mem:save(tapestore.new_tape{ id = "present", name = "bench" }))

-- The best of ROUNDS timings (process CPU time: the loops are one thread)
-- of N calls of f, in microseconds per call.
local function time(f)
  local best = math.huge
  for _ = 1, ROUNDS do
    local t0 = os.clock()
    f(N)
    local dt = os.clock() - t0
    if dt < best then best = dt end
  end
  return best * 1e6 / N
end

local exists = ops.exists
local sink = 0
local direct = time(function(n)
  for _ = 1, n do if exists("present") then sink = sink + 1 end end
end)
local through = time(function(n)
  for _ = 1, n do if s:exists("present") then sink = sink + 1 end end
end)
local memory = time(function(n)
  for _ = 1, n do if mem:exists("present") then sink = sink + 1 end end
end)
assert(sink == 3 * N * ROUNDS, "every call answered true")

local function emit(figure, unit, value, baseline, base, added, goal, met)
  print(string.format('{"figure":"%s","%s":%.3f,"baseline":"%s","baseline_%s":%.3f,' ..
    '"added_us":%.3f,"ratio":%.3f,"goal":"%s","goal_met":%s,"calls":%d}',
    figure, unit, value, baseline, unit, base, added, value / base, goal, tostring(met), N))
end

local added = through - direct
emit("lua_provider_exists", "us_per_call", through, "direct_lua_call", direct, added,
  "added under 1 us per call", added < 1.0)
-- The trampoline's own share: the same host call and core dispatch on a
-- C provider (memory), so what is left is the lock, the thread, the pcall.
local own = through - memory
emit("lua_provider_exists_trampoline", "us_per_call", through, "memory_store_exists", memory, own,
  "reported (no goal)", true)

s:close()
mem:close()
tapestore.unregister_provider("bench_lua")
