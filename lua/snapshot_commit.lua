-- snapshot_commit.lua: commit_session_snapshot; stores a snapshot mid-run
-- without minting a receipt, and records that it belongs to no receipt.
-- KEYS[1] snapshot     STRING  runtime's latest snapshot envelope
-- KEYS[2] meta         HASH    layout version; snapshot_receipt/snapshot_applied
--                              are dropped, snapshot_without_receipt set to 1
-- KEYS[3] lease        HASH    owner, token of the live lease (expires)
-- KEYS[4] commits      HASH    commit_id -> "<fingerprint> <sequence>"
-- KEYS[5] commit_log   ZSET    commit_id scored by server time (ms) committed
-- KEYS[6] fence        STRING  fencing epoch: the newest lease token (never deleted)
-- ARGV[1] snapshot envelope
-- ARGV[2] lease token, or "" for a write without a lease
-- ARGV[3] commit id, or "" for none
-- ARGV[4] fingerprint of this commit's content (with a commit id)
-- ARGV[5] how long commit ids are kept, ms
-- Reply: 1 if the commit id had already stored it (nothing written), else 0.
-- Errors, raised before any write: WRONGTYPE, COMMIT_ID_REUSED, FENCED_OUT.

local failed = wrong_type({'string', 'hash', 'hash', 'hash', 'zset', 'string'})
if failed then
  return redis.error_reply(failed)
end
local earlier, reused = earlier_commit(KEYS[4], KEYS[5], ARGV[3], ARGV[4], tonumber(ARGV[5]))
if reused then
  return redis.error_reply(reused)
end
if earlier then
  return 1
end
local fenced = fence_error(KEYS[6], KEYS[3], ARGV[2])
if fenced then
  return redis.error_reply(fenced)
end

-- All checks passed: write.
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'snapshot_receipt', 'snapshot_applied')
redis.call('HSET', KEYS[2], 'snapshot_without_receipt', '1')
mark_runtime(KEYS[2])
remember_commit(KEYS[4], KEYS[5], ARGV[3], ARGV[4], 0, tonumber(ARGV[5]))
return 0
