-- build_index.lua: RuntimeStore.ensure_index; builds the idempotency index of
-- a runtime stored before it existed (layout 1), from every input as Python
-- read and decoded it, if the inputs are still exactly those.
-- KEYS[1] inputs       HASH    input_id -> input state envelope
-- KEYS[2] meta         HASH    layout version: set to 2 once built
-- KEYS[3] idempotency  HASH    "key:<key>" -> input id, "input:<input id>" -> key
-- ARGV[1..] triples: input_id, its envelope as read, claim ("" or "=" .. key)
-- Reply: 1 if built, 0 if the runtime has its index already (nothing
-- written), -1 if the inputs changed since they were read (nothing
-- written; read again). Errors, raised before any write: BAD_ARGS,
-- WRONGTYPE, IDEMPOTENCY_CONFLICT "<holder> <claimant> <key in hex>".

local failed = common_checks(1, {'hash', 'hash', 'hash'})
if failed then
  return redis.error_reply(failed)
end
if redis.call('HGET', KEYS[2], 'layout') ~= '1' then
  return 0
end
-- The inputs must be exactly those read (an older release's worker may
-- have written since): same ids, same values.
local stored = redis.call('HGETALL', KEYS[1])
if #stored ~= #ARGV / 3 * 2 then
  return -1
end
local now = {}
for i = 1, #stored, 2 do
  now[stored[i]] = stored[i + 1]
end
local claimed = {}
for i = 1, #ARGV, 3 do
  if now[ARGV[i]] ~= ARGV[i + 1] then
    return -1
  end
  local key = claimed_key(ARGV[i + 2])
  if key then
    if claimed[key] then
      return redis.error_reply(key_conflict(claimed[key], ARGV[i], key))
    end
    claimed[key] = ARGV[i]
  end
end

-- All checks passed: write.
redis.call('DEL', KEYS[3])
for key, id in pairs(claimed) do
  redis.call('HSET', KEYS[3], 'key:' .. key, id, 'input:' .. id, key)
end
redis.call('HSET', KEYS[2], 'layout', LAYOUT_VERSION)
return 1
