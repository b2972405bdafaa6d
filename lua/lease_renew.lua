-- lease_renew.lua: renew_lease; extends the live lease if the token is its.
-- KEYS[1] lease        HASH    owner, token of the live lease (expires)
-- ARGV[1] lease token
-- ARGV[2] new ttl, ms
-- Reply: the ttl, ms. Errors, raised before any write: FENCED_OUT.

if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return redis.error_reply('FENCED_OUT lease token ' .. ARGV[1] .. ' expired or was taken over')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(ARGV[2])
