-- load_inputs.lua: load_input_states; every input state of a runtime in the
-- order its id was first stored, read in one atomic step.
-- KEYS[1] inputs       HASH    input_id -> input state envelope
-- KEYS[2] input_order  LIST    input ids in first-stored order
-- ARGV: none
-- Reply: array of input state envelopes (an id with no value gives nil,
-- which the caller reports as corruption). Writes nothing.

local ids = redis.call('LRANGE', KEYS[2], 0, -1)
local out = {}
-- HMGET in chunks: unpack() of a very long list overflows Lua's C stack.
local CHUNK = 1000
for first = 1, #ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #ids)
  local values = redis.call('HMGET', KEYS[1], unpack(ids, first, last))
  for i = 1, #values do
    out[#out + 1] = values[i]
  end
end
return out
