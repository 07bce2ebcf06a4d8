-- json_spec.lua - the JSON codec's behaviour as a Lua user relies on it
-- (run by test_lua_json, which provides `tapestore` and `core_accepts`).
-- Prints TAP lines numbered after the C checks; returns the failure count.
local T = tapestore
local decode, encode, null = T.json_decode, T.json_encode, T.null

local n, failed = C_CHECKS, 0
local function test(name, fn)
  n = n + 1
  local ok, err = xpcall(fn, debug.traceback)
  print((ok and "ok " or "not ok ") .. n .. " - " .. name)
  if not ok then
    failed = failed + 1
    print("# " .. tostring(err):gsub("\n", "\n# "))
  end
end

-- Strings shown with their bytes escaped, numbers with their type.
local function show(v)
  if type(v) == "string" then
    return '"' .. v:gsub("[^\32-\126]", function(c) return string.format("\\x%02X", c:byte()) end) .. '"'
  elseif math.type(v) then
    return string.format("%s(%s)", math.type(v), math.type(v) == "float" and string.format("%.17g", v) or tostring(v))
  end
  return tostring(v)
end

local function eq(got, want, what)
  if got ~= want or math.type(got) ~= math.type(want) then
    error(string.format("%s: expected %s, got %s", what or "value", show(want), show(got)), 2)
  end
end

local function truthy(v, what)
  if not v then error(what or "expected true", 2) end
end

-- Deep equality that also compares math.type, the sign of a zero and the
-- array/object marks (metatables).
local function same(a, b, path)
  path = path or "(root)"
  if type(a) ~= type(b) then
    return false, path .. ": " .. type(a) .. " vs " .. type(b)
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) or a ~= b or (a == 0 and 1 / a ~= 1 / b) then
      return false, path .. ": " .. show(a) .. " vs " .. show(b)
    end
    return true
  end
  if type(a) ~= "table" then
    return a == b, path .. ": " .. show(a) .. " vs " .. show(b)
  end
  if getmetatable(a) ~= getmetatable(b) then
    return false, path .. ": different marks (metatables)"
  end
  for k, v in next, a do
    local ok, why = same(v, rawget(b, k), path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false, path .. ": extra key " .. tostring(k) end
  end
  return true
end

local function must_same(a, b)
  local ok, why = same(a, b)
  if not ok then error(why, 2) end
end

-- decode that must succeed.
local function dec(text)
  local v, err, code = decode(text)
  if v == nil then error("decode " .. show(text) .. " failed: " .. tostring(err), 2) end
  return v
end

-- What a refused encode says.
local function enc_err(v)
  local ok, err = pcall(encode, v)
  if ok then error("encode succeeded: " .. show(err), 2) end
  return err
end

local function nested(open, close, depth)
  return open:rep(depth) .. close:rep(depth)
end

-------------------------------------------------------------------- numbers

test("int64 bounds decode to exact Lua integers", function()
  eq(dec("9223372036854775807"), math.maxinteger)
  eq(dec("-9223372036854775808"), math.mininteger)
  eq(dec("[-9223372036854775808]")[1], math.mininteger)
  eq(dec("0"), 0)
  eq(dec("-1"), -1)
end)

test("2^53+1 stays an exact integer both ways", function()
  local v = dec('{"id":9007199254740993}').id
  eq(v, 9007199254740993)
  eq(math.type(v), "integer")
  eq(encode({id = v}), '{"id":9007199254740993}')
  eq(encode(9007199254740993), "9007199254740993")
  eq(encode(math.mininteger), "-9223372036854775808")
  eq(encode(math.maxinteger), "9223372036854775807")
end)

test("integers beyond int64 become floats", function()
  eq(dec("9223372036854775808"), 2.0 ^ 63)
  eq(dec("-9223372036854775809"), -(2.0 ^ 63))
  eq(dec("123456789012345678901234567890"), 1.2345678901234568e29)
  -- leading zeros count for nothing (the core takes them)
  eq(dec("0000000000000000000000000009223372036854775807"), math.maxinteger)
end)

test("-0 is the integer 0; -0.0 is a negative float zero", function()
  eq(dec("-0"), 0)
  local z = dec("-0.0")
  eq(math.type(z), "float")
  eq(1 / z, -math.huge)
  eq(encode(z), "-0.0")
  eq(encode(0.0), "0.0")
  eq(1 / dec(encode(z)), -math.huge)
end)

test("numbers with a fraction or exponent are floats", function()
  eq(dec("1.0"), 1.0)
  eq(dec("1e2"), 100.0)
  eq(dec("1E+2"), 100.0)
  eq(dec("25e-1"), 2.5)
  eq(dec("-0.5"), -0.5)
end)

test("1e400 is inf, as the core reads it; encoding inf is refused", function()
  truthy(core_accepts("1e400"), "the core accepts 1e400")
  eq(dec("1e400"), math.huge)
  eq(dec("-1e400"), -math.huge)
  eq(dec("1e-400"), 0.0)
  eq(enc_err({x = math.huge}), "json: value at .x: cannot encode inf")
  eq(enc_err(-math.huge), "json: value at (root): cannot encode -inf")
  eq(enc_err({1, 0 / 0}), "json: value at [2]: cannot encode NaN")
end)

test("the core's number leniencies decode the same way", function()
  for _, t in ipairs({"01", "-01", "1.", "-.5", "1.e3", "00.5"}) do
    truthy(core_accepts(t), "the core accepts " .. t)
  end
  eq(dec("01"), 1)
  eq(dec("-01"), -1)
  eq(dec("1."), 1.0)
  eq(dec("-.5"), -0.5)
  eq(dec("1.e3"), 1000.0)
  eq(dec("00.5"), 0.5)
end)

test("floats encode with the shortest text that reads back, and stay floats", function()
  eq(encode(1.0), "1.0")
  eq(encode(-3.0), "-3.0")
  eq(encode(0.1), "0.1")
  eq(encode(2.5), "2.5")
  eq(encode(1e20), "1e+20")
  eq(encode(2.0 ^ 53), "9007199254740992.0")
  eq(encode(1 / 3), "0.3333333333333333")
  eq(encode(0.1 + 0.2), "0.30000000000000004")
  local values = {0.1, 1 / 3, 2 / 3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                  2.0 ^ 53, 2.0 ^ 63, 123456789.125, -2.5e-10, 1e21, 1e-7, math.pi, -math.pi * 1e100}
  for _, x in ipairs(values) do
    local back = dec(encode(x))
    eq(back, x, "round trip of " .. string.format("%.17g", x))
    eq(math.type(back), "float")
  end
end)

-------------------------------------------------------------------- strings

test("escapes decode", function()
  eq(dec([["\"\\\/\b\f\n\r\t"]]), "\"\\/\b\f\n\r\t")
  eq(dec([["\u00e9\u00E9"]]), "\xC3\xA9\xC3\xA9")
  eq(dec([["\u20ac"]]), "\xE2\x82\xAC")
  eq(dec([["a\u0000b"]]), "a\0b")
  eq(#dec([["a\u0000b"]]), 3)
end)

test("a surrogate pair decodes to its 4-byte UTF-8 and encodes back raw", function()
  local s = dec([["\ud83d\ude00"]])
  eq(s, "\xF0\x9F\x98\x80")
  eq(encode(s), '"\xF0\x9F\x98\x80"')
  eq(dec([["\uD83D\uDE00"]]), "\xF0\x9F\x98\x80")
  eq(dec([["\ud800\udc00"]]), "\xF0\x90\x80\x80")
  eq(dec([["\udbff\udfff"]]), "\xF4\x8F\xBF\xBF")
  eq(encode("\xF4\x8F\xBF\xBF"), '"\xF4\x8F\xBF\xBF"')
end)

test("lone surrogates decode to WTF-8 bytes and encode back to the same escape", function()
  truthy(core_accepts([["\ud800"]]), "the core accepts a lone surrogate")
  eq(dec([["\ud800"]]), "\xED\xA0\x80")
  eq(dec([["\udc00"]]), "\xED\xB0\x80")
  eq(dec([["\udbff"]]), "\xED\xAF\xBF")
  eq(dec([["x\ud83dy"]]), "x\xED\xA0\xBDy")
  -- low then high is not a pair: two lone surrogates
  eq(dec([["\udc00\ud800"]]), "\xED\xB0\x80\xED\xA0\x80")
  -- a high surrogate followed by one that is not low
  eq(dec([["\ud800\u0041"]]), "\xED\xA0\x80A")
  eq(dec([["\ud800\ud800\udc00"]]), "\xED\xA0\x80\xF0\x90\x80\x80")
  eq(encode("\xED\xA0\x80"), [["\ud800"]])
  eq(encode("\xED\xB0\x80\xED\xA0\x80"), [["\udc00\ud800"]])
  eq(encode(dec([["x\ud83dy"]])), [["x\ud83dy"]])
  eq(encode(dec([["\ud800\ud800\udc00"]])), '"\\ud800\xF0\x90\x80\x80"')
end)

test("strings encode with JSON escapes; UTF-8 and '/' pass through", function()
  eq(encode("a\"b\\c"), [["a\"b\\c"]])
  eq(encode("\b\f\n\r\t"), [["\b\f\n\r\t"]])
  eq(encode("\0\1\31"), [["\u0000\u0001\u001f"]])
  eq(encode("\127/"), '"\127/"')
  eq(encode("caf\xC3\xA9 \xE2\x82\xAC \xF4\x8F\xBF\xBF"), '"caf\xC3\xA9 \xE2\x82\xAC \xF4\x8F\xBF\xBF"')
  eq(encode(""), '""')
end)

test("invalid UTF-8 is refused on encode, naming the byte", function()
  eq(enc_err("\xFF"), "json: value at (root): string is not UTF-8 at byte 0")
  eq(enc_err({s = "ab\xC3"}), "json: value at .s: string is not UTF-8 at byte 2")
  eq(enc_err({"\xC0\x80"}), "json: value at [1]: string is not UTF-8 at byte 0")
  eq(enc_err("\xE0\x80\x80"), "json: value at (root): string is not UTF-8 at byte 0")
  eq(enc_err("\xF4\x90\x80\x80"), "json: value at (root): string is not UTF-8 at byte 0")
  eq(enc_err("\xED\xA0\x80\xED\xB0\x80"), "json: value at (root): string holds a surrogate " ..
     "pair as two 3-byte sequences at byte 0 (not UTF-8 or WTF-8)")
  eq(enc_err({["\xFF"] = 1}), "json: value at [\"?\"]: key is not UTF-8 at byte 0")
  -- The core keeps such bytes in messages: they decode as they are.
  truthy(core_accepts('"\xFF"'), "the core accepts a raw 0xFF in a string")
  eq(dec('"\xFF\xC3"'), "\xFF\xC3")
end)

-------------------------------------------------------------------- null, arrays, objects

test("null is tapestore.null, distinct from absent, kept in arrays", function()
  eq(type(null), "userdata")
  local o = dec('{"a":null,"b":1}')
  truthy(o.a == null, "o.a == tapestore.null")
  truthy(o.x == nil, "an absent key is nil")
  truthy(o.a ~= nil, "null is not nil")
  local a = dec("[1,null,3,null]")
  eq(#a, 4)
  truthy(a[2] == null and a[4] == null, "nulls keep their positions")
  eq(encode(a), "[1,null,3,null]")
  eq(encode({a = null}), '{"a":null}')
  eq(encode(null), "null")
  truthy(dec("null") == null, "a top-level null")
end)

test("decoded arrays and objects carry the shared marks", function()
  local a, o = dec("[1]"), dec('{"a":1}')
  eq(getmetatable(a).__name, "tapestore.array")
  eq(getmetatable(o).__name, "tapestore.object")
  truthy(getmetatable(a) == getmetatable(dec("[]")), "one metatable for all arrays")
  truthy(getmetatable(o) == getmetatable(dec("{}")), "one metatable for all objects")
  truthy(getmetatable(T.array()) == getmetatable(a), "tapestore.array() uses it")
  eq(a[1], 1)
  eq(o.a, 1)
end)

test("empty arrays and objects round-trip as what they were", function()
  eq(encode(dec("[]")), "[]")
  eq(encode(dec("{}")), "{}")
  eq(encode(dec('{"a":[],"b":{},"c":[[],{}]}')), '{"a":[],"b":{},"c":[[],{}]}')
  eq(encode({}), "{}")
  eq(encode(T.array()), "[]")
  eq(encode(T.object()), "{}")
  eq(encode({list = T.array({})}), '{"list":[]}')
end)

test("array(t) and object(t) mark t and return it; misuse raises", function()
  local t = {}
  truthy(T.array(t) == t, "array(t) returns t")
  eq(encode(t), "[]")
  truthy(T.object(t) == t, "object(t) returns t and re-marks it")
  eq(encode(t), "{}")
  local a = T.array({1, 2})
  eq(encode(a), "[1,2]")
  local ok, err = pcall(T.array, 5)
  truthy(not ok and err:find("table expected", 1, true), "array(5): " .. tostring(err))
  ok, err = pcall(T.object, setmetatable({}, {}))
  truthy(not ok and err:find("already has a metatable", 1, true), "foreign metatable: " .. tostring(err))
end)

test("plain tables: sequences are arrays, string keys objects", function()
  eq(encode({1, 2, 3}), "[1,2,3]")
  eq(encode({"a", {true, false}}), '["a",[true,false]]')
  eq(encode({x = 1}), '{"x":1}')
  eq(encode({["1"] = "one"}), '{"1":"one"}')
  eq(encode(setmetatable({1, 2}, {__index = {}})), "[1,2]")
end)

test("object keys are sorted bytewise, whatever the insertion order", function()
  eq(encode({b = 1, a = 2, c = {z = 1, y = 2}}), '{"a":2,"b":1,"c":{"y":2,"z":1}}')
  eq(encode({["\xC3\xA9"] = 1, a = 1, B = 1, _ = 1, ab = 1, aa = 1, [""] = 1, a0 = 1}),
     '{"":1,"B":1,"_":1,"a":1,"a0":1,"aa":1,"ab":1,"\xC3\xA9":1}')
  -- many keys (the qsort path), inserted in two different orders
  local keys = {}
  for i = 1, 200 do keys[i] = string.format("k%03d", (i * 37) % 200) end
  local t1, t2 = {}, {}
  for i = 1, 200 do t1[keys[i]] = i end
  for i = 200, 1, -1 do t2[keys[i]] = i end
  local s1, s2 = encode(t1), encode(t2)
  eq(s1, s2, "the same keys give the same text")
  truthy(s1:find('^{"k000":'), "sorted from k000")
  local prev = ""
  for k in s1:gmatch('"(k%d+)"') do
    truthy(k > prev, "keys ascending: " .. k)
    prev = k
  end
  -- a key that is a prefix of another sorts first
  eq(encode({ab = 1, a = 2, abc = 3}), '{"a":2,"ab":1,"abc":3}')
end)

test("duplicate keys: the first member wins, as in the core", function()
  truthy(core_accepts('{"a":1,"a":2}'), "the core accepts duplicate keys")
  eq(dec('{"a":1,"a":2}').a, 1)
  eq(dec('{"a":1,"b":0,"a":2,"a":3}').a, 1)
  -- past one flush of 128 members: an early key repeated later, and a key
  -- repeated twice inside the later members
  local parts = {'"dup":"first"'}
  for i = 1, 300 do parts[#parts + 1] = string.format('"m%d":%d', i, i) end
  parts[#parts + 1] = '"dup":"second"'
  parts[#parts + 1] = '"late":1'
  parts[#parts + 1] = '"late":2'
  local o = dec("{" .. table.concat(parts, ",") .. "}")
  eq(o.dup, "first")
  eq(o.late, 1)
  eq(o.m1, 1)
  eq(o.m300, 300)
  local count = 0
  for _ in pairs(o) do count = count + 1 end
  eq(count, 302)
end)

test("large arrays and objects decode whole", function()
  local parts = {}
  for i = 1, 1000 do parts[i] = tostring(i) end
  local a = dec("[" .. table.concat(parts, ",") .. "]")
  eq(#a, 1000)
  for i = 1, 1000 do if a[i] ~= i then error("a[" .. i .. "] = " .. tostring(a[i])) end end
  eq(encode(a), "[" .. table.concat(parts, ",") .. "]")
  local nest = dec('[[' .. table.concat(parts, ",") .. '],[' .. table.concat(parts, ",", 1, 300) .. ']]')
  eq(#nest[1], 1000)
  eq(#nest[2], 300)
end)

-------------------------------------------------------------------- decode errors

test("bad JSON returns nil, a message naming the byte, and EINVAL (no raise)", function()
  local v, err, code = decode('{"a" 1}')
  eq(v, nil)
  eq(err, "json: byte 5: expected ':' after object key")
  eq(code, T.EINVAL)
  eq(select("#", decode("[")), 3)
end)

-- text, expected message; every one refused by the core as well
local bad = {
  {"", "json: byte 0: unexpected end of text (expected a value)"},
  {"   ", "json: byte 3: unexpected end of text (expected a value)"},
  {"[1,2", "json: byte 4: unexpected end of text (expected ',' or ']' in an array)"},
  {"[1 2]", "json: byte 3: expected ',' or ']' after an array element, not '2'"},
  {"[1,]", "json: byte 3: unexpected ']' (expected a value)"},
  {"[,1]", "json: byte 1: unexpected ',' (expected a value)"},
  {'{"a":1', "json: byte 6: unexpected end of text (expected ',' or '}' in an object)"},
  {'{"a":1,}', "json: byte 7: expected a string key, not '}'"},
  {'{"a":1 "b":2}', "json: byte 7: expected ',' or '}' after an object member, not '\"'"},
  {"{1:2}", "json: byte 1: expected a string key, not '1'"},
  {"{", "json: byte 1: unexpected end of text (expected a string key)"},
  {'{"a"', "json: byte 4: expected ':' after object key"},
  {'{"a":}', "json: byte 5: unexpected '}' (expected a value)"},
  {"[1] x", "json: byte 4: unexpected 'x' after the value"},
  {"1 2", "json: byte 2: unexpected '2' after the value"},
  {"[1]\0", "json: byte 3: unexpected 0x00 after the value"},
  {'"abc', "json: byte 0: unterminated string"},
  {'["a","b', "json: byte 5: unterminated string"},
  {'"a\\qb"', "json: byte 2: bad escape (backslash followed by 'q') in a string"},
  {'"a\\x41"', "json: byte 2: bad escape (backslash followed by 'x') in a string"},
  {'"\\u12"', "json: byte 1: bad \\u escape (expected 4 hex digits)"},
  {'"\\u12G4"', "json: byte 1: bad \\u escape (expected 4 hex digits)"},
  {'"\\ud800\\u12"', "json: byte 7: bad \\u escape (expected 4 hex digits)"},
  {'"a\nb"', "json: byte 2: raw control character 0x0a in a string (escape it as \\u000a)"},
  {'"\tb"', "json: byte 1: raw control character 0x09 in a string (escape it as \\u0009)"},
  {'"a\0"', "json: byte 2: raw control character 0x00 in a string (escape it as \\u0000)"},
  {"tru", "json: byte 0: bad literal (expected true)"},
  {"nul", "json: byte 0: bad literal (expected null)"},
  {"falsy", "json: byte 0: bad literal (expected false)"},
  {"[True]", "json: byte 1: unexpected 'T' (expected a value)"},
  {"-", "json: byte 0: bad number (expected a digit)"},
  {"-x", "json: byte 0: bad number (expected a digit)"},
  {"-.", "json: byte 0: bad number (expected a digit)"},
  {"1e", "json: byte 0: bad number (expected a digit in the exponent)"},
  {"[1e+]", "json: byte 1: bad number (expected a digit in the exponent)"},
  {"1.5.3", "json: byte 3: bad number (unexpected '.')"},
  {"1e5e5", "json: byte 3: bad number (unexpected 'e')"},
  {"[1-2]", "json: byte 2: bad number (unexpected '-')"},
  {"+1", "json: byte 0: unexpected '+' (expected a value)"},
  {".5", "json: byte 0: unexpected '.' (expected a value)"},
  {"0x10", "json: byte 1: unexpected 'x' after the value"},
  {"NaN", "json: byte 0: unexpected 'N' (expected a value)"},
  {"\1", "json: byte 0: unexpected 0x01 (expected a value)"},
  {"[\f1]", "json: byte 1: unexpected 0x0c (expected a value)"},
  {"\xEF\xBB", "json: byte 0: unexpected 0xef (expected a value)"},
  {"{}\xEF\xBB\xBF", "json: byte 2: unexpected 0xef after the value"},
  {"'a'", "json: byte 0: unexpected ''' (expected a value)"},
  -- cJSON skips a BOM only in a text of 5 bytes or more (blanks around not counted)
  {"\xEF\xBB\xBF2", "json: byte 0: unexpected 0xef (expected a value)"},
  {" \xEF\xBB\xBF2\n", "json: byte 1: unexpected 0xef (expected a value)"},
  {nested("[", "]", 1001), "json: byte 1000: nesting deeper than 1000 levels"},
  {nested("[", "]", 1000):sub(1, 1999), "json: byte 1999: unexpected end of text (expected ',' or ']' in an array)"},
  {string.rep('{"a":', 1001) .. "1" .. string.rep("}", 1001), "json: byte 5000: nesting deeper than 1000 levels"},
}

test("every decode error names the byte and the problem", function()
  for _, case in ipairs(bad) do
    local v, err = decode(case[1])
    if v ~= nil or err ~= case[2] then
      error(string.format("decode %s: expected %s, got %s", show(case[1]:sub(1, 40)), show(case[2]), show(err)))
    end
  end
end)

test("the core refuses every text the decoder refuses", function()
  for _, case in ipairs(bad) do
    if core_accepts(case[1]) then
      error("the core accepts " .. show(case[1]:sub(1, 40)) .. " (" .. case[2] .. ")")
    end
  end
end)

local good = {
  "1", "-1", '"x"', "true", "false", "null", "[]", "{}", " [ 1 , 2 ] ", "\t\r\n{}\n",
  "\xEF\xBB\xBF{}", " \xEF\xBB\xBF [1]", "\xEF\xBB\xBF12", "\xEF\xBB\xBF 1", '{"a":{"b":[1,{"c":null}]}}', nested("[", "]", 1000),
  string.rep('{"a":', 1000) .. "1" .. string.rep("}", 1000), '"\\u0000"', '"\\ud800"',
  '"\xFF"', "1e400", "01", '"\127"', '{"a":1,"a":2}', '"\\/"', "-0", "0.0e-0",
}

test("the decoder accepts what the core accepts", function()
  for _, text in ipairs(good) do
    truthy(core_accepts(text), "the core accepts " .. show(text:sub(1, 40)))
    local v, err = decode(text)
    if v == nil then error("decode " .. show(text:sub(1, 40)) .. ": " .. err) end
  end
  local deep = dec(nested("[", "]", 1000))
  local d = 0
  while type(deep) == "table" do d, deep = d + 1, deep[1] end
  eq(d, 1000)
end)

test("a byte order mark is skipped at the start only", function()
  eq(dec("\xEF\xBB\xBF[1]")[1], 1)
  eq(dec('\xEF\xBB\xBF"\xEF\xBB\xBF"'), "\xEF\xBB\xBF")
end)

test("json_decode raises on a non-string argument (misuse)", function()
  local ok, err = pcall(decode, 5)
  truthy(not ok and err:find("string expected", 1, true), tostring(err))
  ok, err = pcall(decode)
  truthy(not ok and err:find("string expected", 1, true), tostring(err))
  ok, err = pcall(decode, {})
  truthy(not ok, "a table is not JSON text")
end)

-------------------------------------------------------------------- encode refusals

test("encode refuses what JSON cannot hold, naming the path", function()
  eq(enc_err(print), "json: value at (root): cannot encode a function")
  eq(enc_err({params = {x = print}}), "json: value at .params.x: cannot encode a function")
  eq(enc_err({1, 2, {a = coroutine.create(print)}}), "json: value at [3].a: cannot encode a thread")
  eq(enc_err({io.stdout}), "json: value at [1]: cannot encode a userdata (FILE*)")
  eq(enc_err({["a b"] = {f = print}}), 'json: value at ["a b"].f: cannot encode a function')
  eq(enc_err({x = {y = {1, {z = error}}}}), "json: value at .x.y[2].z: cannot encode a function")
  eq(enc_err(nil), "json: value at (root): cannot encode nil (tapestore.null is JSON null)")
  eq(enc_err(T.array), "json: value at (root): cannot encode a function")
  local ok = pcall(encode)
  truthy(not ok, "encode() with no argument raises")
end)

test("encode refuses cycles", function()
  local t = {}
  t.self = t
  eq(enc_err(t), "json: value at .self: cycle: the table contains itself")
  local a = {1, {}}
  a[2][1] = a
  eq(enc_err(a), "json: value at [2][1]: cycle: the table contains itself")
  -- the same table twice, not nested, is no cycle
  local shared = {1}
  eq(encode({shared, shared}), "[[1],[1]]")
end)

test("encode refuses mixed, sparse and non-JSON keys", function()
  eq(enc_err({1, a = 2}), "json: value at (root): table mixes string keys and array indices")
  eq(enc_err({1, nil, 3}), "json: value at (root): sparse array: index 2 is missing (largest index 3)")
  eq(enc_err({x = {[2] = 1}}), "json: value at .x: sparse array: index 1 is missing (largest index 2)")
  eq(enc_err({[1] = 1, [10 ^ 15 // 1] = 2}),
     "json: value at (root): sparse array: index 2 is missing (largest index 1000000000000000)")
  eq(enc_err({[0] = 1}), "json: value at (root): key 0 is not an array index (1..n)")
  eq(enc_err({[-1] = 1}), "json: value at (root): key -1 is not an array index (1..n)")
  eq(enc_err({[1.5] = 1}), "json: value at (root): key 1.5 is neither a string nor an array index")
  eq(enc_err({[true] = 1}), "json: value at (root): a boolean key cannot be a JSON object key")
  eq(enc_err({[{}] = 1}), "json: value at (root): a table key cannot be a JSON object key")
  eq(enc_err(T.array({a = 1})), "json: value at (root): a table marked as an array has string keys")
  eq(enc_err(T.object({1})), "json: value at (root): a table marked as an object has integer keys (JSON keys are strings)")
  eq(enc_err(T.array({1, nil, 3})), "json: value at (root): sparse array: index 2 is missing (largest index 3)")
end)

test("encode's depth limit is the decoder's", function()
  local t = {}
  local cur = t
  for _ = 2, 1000 do
    local nxt = {}
    cur[1] = nxt
    cur = nxt
  end
  local text = encode(t)
  eq(#text, 1000 * 2 - 1 + 1) -- 999 "[" + "{}" + 999 "]": the innermost is an empty plain table
  eq(text, string.rep("[", 999) .. "{}" .. string.rep("]", 999))
  cur[1] = {}
  local err = enc_err(t)
  truthy(err:find("nesting deeper than 1000 levels", 1, true), err)
  eq(err:sub(1, 20), "json: value at [1][1")
end)

-------------------------------------------------------------------- round trips

local canonical = {
  '{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"capabilities":{},"clientInfo":{"name":"c","version":"1.0"},"protocolVersion":"2025-03-26"}}',
  '{"id":2,"jsonrpc":"2.0","result":{"tools":[{"description":"Echo","inputSchema":{"properties":{"message":{"type":"string"}},"required":["message"],"type":"object"},"name":"echo"}]}}',
  '{"error":{"code":-32601,"data":null,"message":"Method not found"},"id":"abc","jsonrpc":"2.0"}',
  '[1,-2,3.5,-0.0,1e+300,9223372036854775807,-9223372036854775808,true,false,null,"s",[],{}]',
  '"\\ud800\\udc00 is one character; \\ud800 alone is not"',
  '{"":"","\\u0000":"\\u001f","a\\"b":"\\\\"}',
  '[[[[[[[[[[{"deep":[{}]}]]]]]]]]]]',
}

test("canonical texts re-encode to the same bytes", function()
  for _, text in ipairs(canonical) do
    local back = encode(dec(text))
    if text:find("is one character") then
      -- the pair is one character now, written raw
      eq(back, '"\xF0\x90\x80\x80 is one character; \\ud800 alone is not"')
    else
      eq(back, text)
    end
  end
end)

test("decode -> encode -> decode keeps the value, types and marks", function()
  local texts = {
    ' { "b" : [ 1 , 2.50 , -0 , 1E2 ] , "a" : { } , "c" : [ ] , "d" : null } ',
    '[01, 1., -.5, "\\u00e9\\ud83d\\ude00\\udfff", {"x":{"y":[[],[{}]]}}]',
    '{"big":18446744073709551616,"neg":-9223372036854775809,"tiny":5e-324}',
  }
  for _, text in ipairs(texts) do
    local v = dec(text)
    local once = encode(v)
    local w = dec(once)
    must_same(v, w)
    eq(encode(w), once, "encoding is stable")
  end
end)

return failed
