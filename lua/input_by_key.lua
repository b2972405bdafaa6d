-- input_by_key.lua: load_input_state_by_idempotency_key; the input that holds
-- a key, through the runtime's index, read in one atomic step.
-- KEYS[1] idempotency  HASH    "key:<key>" -> input id, "input:<input id>" -> key
-- KEYS[2] inputs       HASH    input_id -> input state envelope
-- KEYS[3] meta         HASH    layout version (1: stored before the index)
-- ARGV[1] idempotency key
-- Reply: {0} if the runtime has inputs but no index yet (layout 1: the caller
-- builds it and asks again), else {1, input id or false, its envelope or
-- false}. Writes nothing.

if redis.call('HGET', KEYS[3], 'layout') == '1' and redis.call('TYPE', KEYS[2])['ok'] ~= 'none' then
  return {0}
end
local id = redis.call('HGET', KEYS[1], 'key:' .. ARGV[1])
if not id then
  return {1, false, false}
end
return {1, id, redis.call('HGET', KEYS[2], id)}
