-- lease_read.lua: current_lease; the live lease and the fencing epoch.
-- KEYS[1] lease        HASH    owner, token of the live lease (expires)
-- KEYS[2] fence        STRING  fencing epoch
-- ARGV: none
-- Reply: {owner or false, token or false, pttl ms, epoch or false}. Writes nothing.

return {
  redis.call('HGET', KEYS[1], 'owner'),
  redis.call('HGET', KEYS[1], 'token'),
  redis.call('PTTL', KEYS[1]),
  redis.call('GET', KEYS[2]),
}
