-- lease_release.lua: release_lease; ends the live lease if the token is its.
-- KEYS[1] lease        HASH    owner, token of the live lease (expires)
-- ARGV[1] lease token
-- Reply: 1 if released, 0 if that lease was no longer held. The epoch stays.

if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
