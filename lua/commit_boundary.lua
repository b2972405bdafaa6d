-- commit_boundary.lua: commit_session_boundary; mints the next receipt
-- sequence of a run and stores snapshot, receipt and stamped inputs at once.
-- KEYS[1] snapshot     STRING  runtime's latest snapshot envelope
-- KEYS[2] receipts     HASH    "<run_id>:<seq>" -> receipt envelope
-- KEYS[3] run_seqs     HASH    run_id -> largest sequence of that run
-- KEYS[4] inputs       HASH    input_id -> input state envelope
-- KEYS[5] input_order  LIST    input ids in first-stored order
-- KEYS[6] meta         HASH    layout version; snapshot_receipt = field of the
--                              receipt minted with the stored snapshot
--                              (snapshot_applied, snapshot_without_receipt
--                              dropped); snapshot_tag = tag of the stored snapshot
-- KEYS[7] lease        HASH    owner, token of the live lease (expires)
-- KEYS[8] commits      HASH    commit_id -> "<fingerprint> <sequence>"
-- KEYS[9] commit_log   ZSET    commit_id scored by server time (ms) committed
-- KEYS[10] fence       STRING  fencing epoch: the newest lease token (never deleted)
-- KEYS[11] idempotency HASH    "key:<key>" -> input id, "input:<input id>" -> key
-- ARGV[1] run_id
-- ARGV[2] snapshot envelope, or with a delta (ARGV[9]) its bytes from the offset on
-- ARGV[3] receipt envelope, its final slot the sequence ARGV[11]
-- ARGV[4] lease token, or "" for a write without a lease
-- ARGV[5] commit id, or "" for none
-- ARGV[6] fingerprint of this commit's content (with a commit id)
-- ARGV[7] how long commit ids are kept, ms
-- ARGV[8] tag of the new snapshot (random hex)
-- ARGV[9] "" for a whole snapshot, or "<base tag> <base length> <offset>
--         <receipt> <applied>": a delta over the stored snapshot, which must
--         carry that tag, length and meta receipt fields (lib.lua snapshot_check)
-- ARGV[10] with a delta, the envelope's first bytes (written at 0); else ""
-- ARGV[11] the sequence the caller expects to be minted (decimal); the
--          envelopes' final slots hold it (9 bytes, msgpack uint64), and are
--          rewritten when another one is minted
-- ARGV[12..] triples: input_id, input state envelope, its final
--           last_boundary_sequence slot the sequence ARGV[11] (last_run_id
--           already stamped), claim ("" or "=" .. idempotency key)
-- Reply: {sequence, 1 if the commit id had already committed it (nothing
-- written) else 0}. Errors, raised before any write: BAD_ARGS, WRONGTYPE,
-- COMMIT_ID_REUSED, FENCED_OUT, STALE_BASE (the delta's base is gone),
-- INDEX_MISSING, IDEMPOTENCY_CONFLICT, CORRUPT (run_seqs entry),
-- SEQUENCE_EXHAUSTED.

local failed, earlier, meta, offset, plan = commit_checks(12, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 9)
if failed then
  return redis.error_reply(failed)
end
if earlier then
  return {earlier, 1}
end
local last, corrupt = stored_sequence(KEYS[3], ARGV[1])
if corrupt then
  return redis.error_reply(corrupt)
end
local seq = last and last + 1 or 0
if seq > MAX_SEQUENCE then
  return redis.error_reply('SEQUENCE_EXHAUSTED run ' .. ARGV[1] .. ' has used every sequence below 2^53')
end

-- All checks passed: write, receipts first (a wrong type there fails before
-- anything is written; see commit_checks).
local seq_text = int_text(seq)
local field = ARGV[1] .. ':' .. seq_text
-- The envelopes come stamped with the expected sequence: each string Lua
-- makes costs a hash of all its bytes, so they are rebuilt only when it missed.
local stamp = seq_text ~= ARGV[11] and u64(seq) or nil
redis.call('HSET', KEYS[2], field, stamp and string.sub(ARGV[3], 1, -10) .. stamp or ARGV[3])
snapshot_write(KEYS[1], offset, ARGV[2], ARGV[10])
redis.call('HSET', KEYS[3], ARGV[1], seq_text)
input_writes(KEYS[4], KEYS[5], KEYS[11], 12, stamp, plan)
mark_runtime(KEYS[6], meta[1], plan, 'snapshot_receipt', field, 'snapshot_tag', ARGV[8])
if meta[4] or meta[5] then
  redis.call('HDEL', KEYS[6], 'snapshot_applied', 'snapshot_without_receipt')
end
remember_commit(KEYS[8], KEYS[9], ARGV[5], ARGV[6], seq, ARGV[7])
return {seq, 0}
