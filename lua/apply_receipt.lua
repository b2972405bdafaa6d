-- apply_receipt.lua: atomic_apply; stores a caller-minted receipt with an
-- optional snapshot and input states, refusing an existing receipt key.
-- KEYS[1] snapshot     STRING  runtime's latest snapshot envelope
-- KEYS[2] receipts     HASH    "<run_id>:<seq>" -> receipt envelope
-- KEYS[3] run_seqs     HASH    run_id -> largest sequence of that run
-- KEYS[4] inputs       HASH    input_id -> input state envelope
-- KEYS[5] input_order  LIST    input ids in first-stored order
-- KEYS[6] meta         HASH    layout version; snapshot_receipt is dropped when a
--                              snapshot is written here (no minted receipt matches it)
-- ARGV[1] run_id
-- ARGV[2] sequence (decimal integer, 0 <= seq < 2^53)
-- ARGV[3] receipt envelope (complete)
-- ARGV[4] snapshot envelope, or "" to leave the snapshot as it is
-- ARGV[5..] pairs: input_id, input state envelope (complete)
-- Reply: 1. Errors, raised before any write: BAD_ARGS, WRONGTYPE, RECEIPT_CONFLICT, CORRUPT.

local failed = common_checks(5, {'string', 'hash', 'hash', 'hash', 'list', 'hash'})
if failed then
  return redis.error_reply(failed)
end
local seq = tonumber(ARGV[2])
if not seq or seq < 0 or seq > MAX_SEQUENCE or seq ~= math.floor(seq) then
  return redis.error_reply('BAD_ARGS sequence must be an integer in [0, 2^53)')
end
local field = ARGV[1] .. ':' .. int_text(seq)
if redis.call('HEXISTS', KEYS[2], field) == 1 then
  return redis.error_reply('RECEIPT_CONFLICT ' .. field)
end
local last, corrupt = stored_sequence(KEYS[3], ARGV[1])
if corrupt then
  return redis.error_reply(corrupt)
end

-- All checks passed: write.
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[1], ARGV[4])
  redis.call('HDEL', KEYS[6], 'snapshot_receipt')
end
redis.call('HSET', KEYS[2], field, ARGV[3])
if not last or seq > last then
  redis.call('HSET', KEYS[3], ARGV[1], int_text(seq))
end
upsert_inputs(KEYS[4], KEYS[5], 5, '')
mark_runtime(KEYS[6])
return 1
