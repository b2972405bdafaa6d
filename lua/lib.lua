-- lib.lua: helpers prepended to every other script by redis_store/scripts.py.
-- KEYS: none of its own; ARGV: none of its own; it defines functions only.
-- Plain Lua 5.1 with redis.* only: no cmsgpack, bit or struct (fakeredis has none).

-- Largest sequence a Lua number (an IEEE double) holds exactly: 2^53 - 1.
local MAX_SEQUENCE = 9007199254740991
local unpack = unpack or table.unpack
-- Key layout version, recorded in each runtime's meta hash (redis_store/keys.py).
local LAYOUT_VERSION = 1

-- msgpack uint64 (0xcf + 8 bytes big-endian) of an integer in [0, 2^53).
-- Completes an envelope whose prefix Python encoded (codec.seq_suffix).
local function u64(n)
  local bytes = {}
  for i = 8, 1, -1 do
    local b = n % 256
    bytes[i] = string.char(b)
    n = math.floor(n / 256)
  end
  return '\207' .. table.concat(bytes)
end

-- Decimal text of an integer; tostring() would print 1e+15 for large ones.
local function int_text(n)
  return string.format('%.0f', n)
end

-- The largest sequence stored for a run (nil if none), or nil and an error
-- text when the counter is not an integer in [0, 2^53) (written by someone else).
local function stored_sequence(seqs_key, run_id)
  local last = redis.call('HGET', seqs_key, run_id)
  if not last then
    return nil, nil
  end
  local n = tonumber(last)
  if not n or n < 0 or n > MAX_SEQUENCE or n ~= math.floor(n) then
    return nil, 'CORRUPT run_seqs entry of run ' .. run_id .. ' is not a sequence: ' .. last
  end
  return n, nil
end

-- Upsert input states given as (input_id, value) pairs in ARGV from index
-- first on, appending suffix to each value. An id seen for the first time
-- is appended to the order list, so loads return first-stored order.
local function upsert_inputs(inputs_key, order_key, first, suffix)
  for i = first, #ARGV, 2 do
    if redis.call('HSET', inputs_key, ARGV[i], ARGV[i + 1] .. suffix) == 1 then
      redis.call('RPUSH', order_key, ARGV[i])
    end
  end
end

-- Error text if a key holds another type than expected (it was written by
-- something else): checked up front, since a WRONGTYPE error half-way
-- through the writes would leave them half-done. expected[i] is for KEYS[i].
local function wrong_type(expected)
  for i, want in ipairs(expected) do
    local got = redis.call('TYPE', KEYS[i])['ok']
    if got ~= 'none' and got ~= want then
      return 'WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. got .. ', not a ' .. want
    end
  end
  return nil
end

-- The checks every write script starts with: ARGV from index first_pair on
-- holds (id, value) pairs, and KEYS[i] is absent or of type expected[i].
-- Returns the error text, or nil when all is well.
local function common_checks(first_pair, expected)
  if (#ARGV - first_pair + 1) % 2 ~= 0 then
    return 'BAD_ARGS input ids and values must come in pairs'
  end
  return wrong_type(expected)
end

-- Every write marks its runtime in the meta hash: listing runtimes scans
-- meta keys, and the layout version tells later releases what they read.
local function mark_runtime(meta_key)
  redis.call('HSETNX', meta_key, 'layout', LAYOUT_VERSION)
end
