-- commit_boundary.lua: commit_session_boundary; mints the next receipt
-- sequence of a run and stores snapshot, receipt and stamped inputs at once.
-- KEYS[1] snapshot     STRING  runtime's latest snapshot envelope
-- KEYS[2] receipts     HASH    "<run_id>:<seq>" -> receipt envelope
-- KEYS[3] run_seqs     HASH    run_id -> largest sequence of that run
-- KEYS[4] inputs       HASH    input_id -> input state envelope
-- KEYS[5] input_order  LIST    input ids in first-stored order
-- KEYS[6] meta         HASH    layout version; snapshot_receipt = field of the
--                              receipt minted with the snapshot now stored
-- ARGV[1] run_id
-- ARGV[2] snapshot envelope
-- ARGV[3] receipt envelope without its final sequence slot
-- ARGV[4..] pairs: input_id, input state envelope without its final
--           last_boundary_sequence slot (last_run_id already stamped)
-- Reply: the minted sequence (integer). Errors, raised before any write:
--   BAD_ARGS, WRONGTYPE, CORRUPT (run_seqs entry not a sequence), SEQUENCE_EXHAUSTED.

local failed = common_checks(4, {'string', 'hash', 'hash', 'hash', 'list', 'hash'})
if failed then
  return redis.error_reply(failed)
end
local last, corrupt = stored_sequence(KEYS[3], ARGV[1])
if corrupt then
  return redis.error_reply(corrupt)
end
local seq = last and last + 1 or 0
if seq > MAX_SEQUENCE then
  return redis.error_reply('SEQUENCE_EXHAUSTED run ' .. ARGV[1] .. ' has used every sequence below 2^53')
end

-- All checks passed: write.
local seq_text = int_text(seq)
local tail = u64(seq)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1] .. ':' .. seq_text, ARGV[3] .. tail)
redis.call('HSET', KEYS[3], ARGV[1], seq_text)
upsert_inputs(KEYS[4], KEYS[5], 4, tail)
mark_runtime(KEYS[6])
redis.call('HSET', KEYS[6], 'snapshot_receipt', ARGV[1] .. ':' .. seq_text)
return seq
