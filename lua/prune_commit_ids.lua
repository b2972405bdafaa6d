-- prune_commit_ids.lua: prune_runtime; forgets commit ids older than the
-- retention, at most a batch per call (the caller loops until none are left).
-- KEYS[1] commits      HASH    commit_id -> "<fingerprint> <sequence>"
-- KEYS[2] commit_log   ZSET    commit_id scored by server time (ms) committed
-- ARGV[1] retention, ms
-- ARGV[2] batch size (ids forgotten at most by this call)
-- Reply: how many ids were forgotten.

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms() - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
if #expired == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], unpack(expired))
redis.call('ZREM', KEYS[2], unpack(expired))
return #expired
