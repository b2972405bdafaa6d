-- apply_receipt.lua: atomic_apply; stores a caller-minted receipt with an
-- optional snapshot and input states, refusing an existing receipt key.
-- KEYS[1] snapshot     STRING  runtime's latest snapshot envelope
-- KEYS[2] receipts     HASH    "<run_id>:<seq>" -> receipt envelope
-- KEYS[3] run_seqs     HASH    run_id -> largest sequence of that run
-- KEYS[4] inputs       HASH    input_id -> input state envelope
-- KEYS[5] input_order  LIST    input ids in first-stored order
-- KEYS[6] meta         HASH    layout version; a snapshot written here moves
--                              snapshot_receipt to snapshot_applied (this
--                              receipt), drops snapshot_without_receipt and
--                              sets snapshot_tag
-- KEYS[7] lease        HASH    owner, token of the live lease (expires)
-- KEYS[8] commits      HASH    commit_id -> "<fingerprint> <sequence>"
-- KEYS[9] commit_log   ZSET    commit_id scored by server time (ms) committed
-- KEYS[10] fence       STRING  fencing epoch: the newest lease token (never deleted)
-- KEYS[11] idempotency HASH    "key:<key>" -> input id, "input:<input id>" -> key
-- ARGV[1] run_id
-- ARGV[2] sequence (decimal integer, 0 <= seq < 2^53)
-- ARGV[3] receipt envelope (complete)
-- ARGV[4] snapshot envelope (with a delta, its bytes from the offset on),
--         or "" to leave the snapshot as it is
-- ARGV[5] lease token, or "" for a write without a lease
-- ARGV[6] commit id, or "" for none
-- ARGV[7] fingerprint of this commit's content (with a commit id)
-- ARGV[8] how long commit ids are kept, ms
-- ARGV[9] tag of the new snapshot (random hex); "" without a snapshot
-- ARGV[10] "" for a whole snapshot (or none), or "<base tag> <base length>
--          <offset> <receipt> <applied>": a delta over the stored snapshot
--          (see commit_boundary.lua)
-- ARGV[11] with a delta, the envelope's first bytes (written at 0); else ""
-- ARGV[12..] triples: input_id, input state envelope (complete), claim
--           ("" or "=" .. idempotency key)
-- Reply: {sequence, 1 if the commit id had already applied it (nothing
-- written) else 0}. Errors, raised before any write: BAD_ARGS, WRONGTYPE,
-- COMMIT_ID_REUSED, FENCED_OUT, STALE_BASE, INDEX_MISSING,
-- IDEMPOTENCY_CONFLICT, RECEIPT_CONFLICT, CORRUPT.

local seq = tonumber(ARGV[2])
if not seq or seq < 0 or seq > MAX_SEQUENCE or seq ~= math.floor(seq) then
  return redis.error_reply('BAD_ARGS sequence must be an integer in [0, 2^53)')
end
local failed, earlier, meta, offset, plan = commit_checks(12, ARGV[5], ARGV[6], ARGV[7], ARGV[8], 10)
if failed then
  return redis.error_reply(failed)
end
if earlier then
  return {earlier, 1}
end
local field = ARGV[1] .. ':' .. int_text(seq)
if redis.call('HEXISTS', KEYS[2], field) == 1 then
  return redis.error_reply('RECEIPT_CONFLICT ' .. field)
end
local last, corrupt = stored_sequence(KEYS[3], ARGV[1])
if corrupt then
  return redis.error_reply(corrupt)
end

-- All checks passed: write, receipts first (see commit_checks).
redis.call('HSET', KEYS[2], field, ARGV[3])
if not last or seq > last then
  redis.call('HSET', KEYS[3], ARGV[1], int_text(seq))
end
input_writes(KEYS[4], KEYS[5], KEYS[11], 12, nil, plan)
if ARGV[4] ~= '' or ARGV[10] ~= '' then
  snapshot_write(KEYS[1], offset, ARGV[4], ARGV[11])
  if meta[3] or meta[5] then
    redis.call('HDEL', KEYS[6], 'snapshot_receipt', 'snapshot_without_receipt')
  end
  mark_runtime(KEYS[6], meta[1], plan, 'snapshot_applied', field, 'snapshot_tag', ARGV[9])
else
  mark_runtime(KEYS[6], meta[1], plan)
end
remember_commit(KEYS[8], KEYS[9], ARGV[6], ARGV[7], seq, ARGV[8])
return {seq, 0}
