-- lease_read.lua: current_lease; the live lease and the time it has left.
-- KEYS[1] lease        HASH    owner, token of the live lease (expires)
-- ARGV: none
-- Reply: {owner or false, token or false, pttl ms}. Writes nothing.

return {
  redis.call('HGET', KEYS[1], 'owner'),
  redis.call('HGET', KEYS[1], 'token'),
  redis.call('PTTL', KEYS[1]),
}
