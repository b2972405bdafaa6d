-- lease_acquire.lua: acquire_lease and steal_lease; a new owner gets the next
-- fencing epoch, which never goes back (the fence key is never deleted).
-- KEYS[1] lease        HASH    owner, token of the live lease (expires)
-- KEYS[2] meta         HASH    layout version
-- KEYS[3] fence        STRING  fencing epoch: the newest lease token
-- ARGV[1] owner
-- ARGV[2] ttl, ms (the server's clock runs it out)
-- ARGV[3] "1" to take the lease from another holder (steal), else "0"
-- Reply: {token, ttl ms}. The holder acquiring again keeps its token.
-- Errors, raised before any write: WRONGTYPE, LEASE_HELD "<pttl ms> <owner>".

local bad_type = wrong_type({'hash', 'hash', 'string'})
if bad_type then
  return redis.error_reply(bad_type)
end
local holder = redis.call('HGET', KEYS[1], 'owner')
if holder and holder ~= ARGV[1] and ARGV[3] ~= '1' then
  return redis.error_reply('LEASE_HELD ' .. redis.call('PTTL', KEYS[1]) .. ' ' .. holder)
end

-- All checks passed: write.
local token
if holder == ARGV[1] and ARGV[3] ~= '1' then
  token = redis.call('HGET', KEYS[1], 'token')
else
  token = int_text(redis.call('INCR', KEYS[3]))
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
touch_runtime(KEYS[2])
return {token, tonumber(ARGV[2])}
