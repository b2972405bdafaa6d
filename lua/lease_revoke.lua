-- lease_revoke.lua: revoke_lease (operator); fences out the current holder at
-- once by moving the epoch on and dropping the lease. Nobody holds it after.
-- KEYS[1] lease        HASH    owner, token of the live lease (expires)
-- KEYS[2] meta         HASH    layout version
-- KEYS[3] fence        STRING  fencing epoch: the newest lease token
-- ARGV: none
-- Reply: the new epoch. Errors, raised before any write: WRONGTYPE.

local bad_type = wrong_type({'hash', 'hash', 'string'})
if bad_type then
  return redis.error_reply(bad_type)
end
local epoch = redis.call('INCR', KEYS[3])
redis.call('DEL', KEYS[1])
touch_runtime(KEYS[2])
return epoch
