-- snapshot_commit.lua: commit_session_snapshot; stores a snapshot mid-run
-- without minting a receipt, and records that it belongs to no receipt.
-- KEYS[1] snapshot     STRING  runtime's latest snapshot envelope
-- KEYS[2] meta         HASH    layout version; snapshot_receipt/snapshot_applied
--                              are dropped, snapshot_without_receipt set to 1,
--                              snapshot_tag set
-- KEYS[3] lease        HASH    owner, token of the live lease (expires)
-- KEYS[4] commits      HASH    commit_id -> "<fingerprint> <sequence>"
-- KEYS[5] commit_log   ZSET    commit_id scored by server time (ms) committed
-- KEYS[6] fence        STRING  fencing epoch: the newest lease token (never deleted)
-- ARGV[1] snapshot envelope (with a delta, its bytes from the offset on)
-- ARGV[2] lease token, or "" for a write without a lease
-- ARGV[3] commit id, or "" for none
-- ARGV[4] fingerprint of this commit's content (with a commit id)
-- ARGV[5] how long commit ids are kept, ms
-- ARGV[6] tag of the new snapshot (random hex)
-- ARGV[7] "" for a whole snapshot, or "<base tag> <base length> <offset>
--         <receipt> <applied>": a delta (see commit_boundary.lua)
-- ARGV[8] with a delta, the envelope's first bytes (written at 0); else ""
-- Reply: {0, 1 if the commit id had already stored it (nothing written) else 0}.
-- Errors, raised before any write: BAD_ARGS, WRONGTYPE, COMMIT_ID_REUSED,
-- FENCED_OUT, STALE_BASE.

-- Every key written is read with a typed command before any write (meta,
-- commits and commit_log; the snapshot for a delta) or written with SET
-- (a whole snapshot); lease and fence are only read.
local earlier, reused = earlier_commit(KEYS[4], KEYS[5], ARGV[3], ARGV[4], ARGV[5])
if reused then
  return redis.error_reply(reused)
end
if earlier then
  return {0, 1}
end
local failed = fence_error(KEYS[6], KEYS[3], ARGV[2])
if failed then
  return redis.error_reply(failed)
end
local meta = read_meta(KEYS[2])
local offset
failed, offset = snapshot_check(KEYS[1], meta, ARGV[7])
if failed then
  return redis.error_reply(failed)
end

-- All checks passed: write.
snapshot_write(KEYS[1], offset, ARGV[1], ARGV[8])
if meta[3] or meta[4] then
  redis.call('HDEL', KEYS[2], 'snapshot_receipt', 'snapshot_applied')
end
mark_runtime(KEYS[2], meta[1], nil, 'snapshot_without_receipt', '1', 'snapshot_tag', ARGV[6])
remember_commit(KEYS[4], KEYS[5], ARGV[3], ARGV[4], 0, ARGV[5])
return {0, 0}
