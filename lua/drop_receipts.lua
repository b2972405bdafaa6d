-- drop_receipts.lua: prune_runtime; removes the named receipts of finished
-- runs (a batch per call). The runs' sequence counters in run_seqs stay, so
-- a sequence is never minted twice for a run.
-- KEYS[1] receipts     HASH    "<run_id>:<seq>" -> receipt envelope
-- KEYS[2] meta         HASH    snapshot_receipt / snapshot_applied: the receipt
--                              stored with the snapshot, to keep
-- ARGV[1..] receipt fields to remove
-- Reply: how many receipts were removed. The receipt stored with the
-- snapshot is never removed (checked here, atomically with the delete).

local minted = redis.call('HGET', KEYS[2], 'snapshot_receipt')
local applied = redis.call('HGET', KEYS[2], 'snapshot_applied')
local fields = {}
for i = 1, #ARGV do
  if ARGV[i] ~= minted and ARGV[i] ~= applied then
    fields[#fields + 1] = ARGV[i]
  end
end
if #fields == 0 then
  return 0
end
return redis.call('HDEL', KEYS[1], unpack(fields))
