-- tapestore.capi: the SWIG-generated flat C API, with integers as Lua
-- integers (SWIG 4.1 alone would push floats), failures raising, and
-- owned proxies freed by the collector.
local tapestore = require "tapestore"
local capi = tapestore.capi

describe("tapestore.capi", function()
  it("is the same module as require 'tapestore.capi'", function()
    assert.equal(capi, require "tapestore.capi")
    assert.is_nil(rawget(_G, "capi")) -- no global
  end)

  it("pushes integers as integers", function()
    assert.equal("integer", math.type(capi.tape_version()))
    assert.equal(tapestore.ENOTFOUND, capi.TAPE_ENOTFOUND)
    assert.equal("integer", math.type(capi.TAPE_ENOTFOUND))
    assert.equal("integer", math.type(capi.TAPE_CAP_EXISTS))
    assert.equal("integer", math.type(capi.TAPE_SEQ_END))
    assert.equal(tapestore.SEQ_END, capi.TAPE_SEQ_END)
    local t = capi.tape_new(nil)
    capi.tape_set_created_at(t, 1234567890123)
    local v = capi.tape_created_at(t)
    assert.equal(1234567890123, v)
    assert.equal("integer", math.type(v))
    assert.equal("integer", math.type(capi.tape_frame_count(t)))
  end)

  it("reads integers exactly and refuses a float that is not one", function()
    local t = capi.tape_new(nil)
    capi.tape_set_created_at(t, (1 << 40) + 1)
    assert.equal((1 << 40) + 1, capi.tape_created_at(t))
    assert.has_error(function() capi.tape_set_created_at(t, 1.5) end)
    capi.tape_set_created_at(t, 2.0^41)
    assert.equal(1 << 41, capi.tape_created_at(t))
  end)

  it("names error codes and raises on a negative code", function()
    assert.equal("TAPE_ENOTFOUND", capi.tape_strerror(capi.TAPE_ENOTFOUND))
    local ok, err = pcall(capi.tape_id_validate, "a/b")
    assert.is_false(ok)
    assert.matches("TAPE_EINVAL", err)
    assert.has_no_error(function() capi.tape_id_validate("fine") end)
  end)

  it("parses configs and queries, and writes them back as JSON", function()
    local q = capi.tape_query_parse('{"tags_any":["prod"],"limit":5}')
    local json = capi.tape_query_to_json(q)
    assert.matches('"tags_any":%["prod"%]', json)
    assert.matches('"limit":5', json)
    local ok, err = pcall(capi.tape_query_parse, '{"nope":1}')
    assert.is_false(ok)
    assert.matches("nope", err)
    assert.matches("TAPE_EQUERY", err)
    local config = capi.tape_config_parse('{"path":"./x"}')
    assert.equal('{"path":"./x"}', capi.tape_config_to_json(config))
  end)

  it("introspects the registry and its providers", function()
    local reg = capi.tape_swig_registry_default()
    local list = capi.tape_registry_list(reg)
    local names = {}
    for i = 0, capi.tape_provider_list_count(list) - 1 do
      local p = capi.tape_provider_list_at(list, i)
      names[capi.tape_provider_info_name(p)] = capi.tape_provider_info_capabilities(p)
    end
    assert.is_not_nil(names.memory)
    assert.is_not_nil(names.filesystem)
    assert.is_not_nil(names.sqlite)
    assert.equal("integer", math.type(names.memory))
    local info = capi.tape_registry_find(reg, "memory")
    assert.equal("memory", capi.tape_provider_info_name(info))
    assert.equal("integer", math.type(capi.tape_provider_info_version(info)))
  end)

  it("uses a store end to end, and frees proxies when collected", function()
    for _ = 1, 50 do
      local s = capi.tape_store_open_spec(nil, "memory:", 0)
      local t = capi.tape_new(nil)
      local seq = capi.tape_swig_append(t, nil, capi.TAPE_DIR_CLIENT_TO_SERVER, -1,
        '{"jsonrpc":"2.0","id":1,"method":"m"}', nil, nil, nil, 0, 0)
      assert.equal(0, seq)
      assert.equal("integer", math.type(seq))
      capi.tape_store_save(s, t)
      local back = capi.tape_store_load(s, capi.tape_id(t))
      assert.equal(1, capi.tape_frame_count(back))
      local st = capi.tape_get_stats(back)
      assert.equal(1, st.frame_count)
      assert.equal("integer", math.type(st.frame_count))
      local text = capi.tape_encode_jsonl(back)
      assert.is_string(text)
      local it = capi.tape_store_read_frames(s, capi.tape_id(t), 0, tapestore.SEQ_END)
      local f = capi.tape_frame_iter_next(it)
      assert.equal(0, capi.tape_frame_seq(f))
      capi.tape_store_close(s)
    end
    collectgarbage()
    collectgarbage()
  end)

  it("disowns what a free or tape_store_close consumes (no double free at collection)", function()
    for _ = 1, 20 do
      local t = capi.tape_new(nil)
      capi.tape_free(t)
      local q = capi.tape_query_parse("{}")
      capi.tape_query_free(q)
      local s = capi.tape_store_open_spec(nil, "memory:", 0)
      capi.tape_store_close(s)
      local s2 = capi.tape_store_open_spec(nil, "memory:", 0)
      capi.tape_store_free(s2)
    end
    collectgarbage()
    collectgarbage()
  end)
end)
