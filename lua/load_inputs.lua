-- load_inputs.lua: load_input_states; every input state of a runtime in the
-- order its id was first stored, read in one atomic step.
-- KEYS[1] inputs       HASH    input_id -> input state envelope
-- KEYS[2] input_order  LIST    input ids in first-stored order
-- ARGV: none
-- Reply: {ids, values}: the ids in order and their envelopes (an id with no
-- value gives false, which the caller reports as corruption). Writes nothing.

local ids = redis.call('LRANGE', KEYS[2], 0, -1)
local values = {}
-- HMGET in chunks: unpack() of a very long list overflows Lua's C stack.
local CHUNK = 1000
for first = 1, #ids, CHUNK do
  local last = math.min(first + CHUNK - 1, #ids)
  local chunk = redis.call('HMGET', KEYS[1], unpack(ids, first, last))
  for i = 1, #chunk do
    values[#values + 1] = chunk[i]
  end
end
return {ids, values}
