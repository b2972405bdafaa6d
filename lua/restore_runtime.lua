-- restore_runtime.lua: restore_runtime (redis-store import and copy); writes
-- everything of one runtime, as another store dumped it, in one step.
-- KEYS[1] state        STRING  runtime state envelope
-- KEYS[2] snapshot     STRING  latest snapshot envelope
-- KEYS[3] inputs       HASH    input_id -> input state envelope
-- KEYS[4] input_order  LIST    input ids in first-stored order
-- KEYS[5] receipts     HASH    "<run_id>:<seq>" -> receipt envelope
-- KEYS[6] run_seqs     HASH    run_id -> largest sequence of that run
-- KEYS[7] meta         HASH    layout version; snapshot_receipt or snapshot_applied
-- KEYS[8] commits      HASH    commit ids (removed by a replace; never copied)
-- KEYS[9] commit_log   ZSET    commit ids by time (likewise)
-- KEYS[10] lease       HASH    the live lease: a replace revokes it
-- KEYS[11] fence       STRING  fencing epoch: becomes the larger of its own
--                              and ARGV[2]; never lowered, never deleted
-- KEYS[12] idempotency HASH    the idempotency-key index, restored whole
-- ARGV[1] "1" to replace what the runtime holds, "0" to refuse then
-- ARGV[2] fencing epoch of the dumped runtime (decimal integer, 0 <= e < 2^53)
-- ARGV[3] runtime state envelope, or "" for none
-- ARGV[4] snapshot envelope, or "" for none
-- ARGV[5] meta field naming whom the snapshot belongs to ("snapshot_receipt",
--         "snapshot_applied", "snapshot_without_receipt"), or "" for none
-- ARGV[6] that field's value ("<run_id>:<seq>"), or ""
-- ARGV[7] number of inputs I, ARGV[8] of receipts R, ARGV[9] of run counters
--         C, ARGV[10] of index entries X
-- ARGV[11..] I pairs input_id, envelope (in first-stored order); then R pairs
--         receipt field, envelope; then C pairs run_id, largest sequence;
--         then X pairs index field, value ("key:<k>" -> id, "input:<id>" -> k)
-- Reply: 1 written; 0 nothing written because the runtime holds data (its
-- meta key exists) and ARGV[1] is "0". Errors, raised before any write:
-- BAD_ARGS, WRONGTYPE.

local function count(i)
  local n = tonumber(ARGV[i])
  if not n or n < 0 or n ~= math.floor(n) then
    return nil
  end
  return n
end

local inputs, receipts, counters, entries = count(7), count(8), count(9), count(10)
if not inputs or not receipts or not counters or not entries
    or #ARGV ~= 10 + 2 * (inputs + receipts + counters + entries) then
  return redis.error_reply('BAD_ARGS the counts do not match the pairs given')
end
local epoch = tonumber(ARGV[2])
if not epoch or epoch < 0 or epoch > MAX_SEQUENCE or epoch ~= math.floor(epoch) then
  return redis.error_reply('BAD_ARGS epoch must be an integer in [0, 2^53)')
end
if (ARGV[5] == '') ~= (ARGV[6] == '') or (ARGV[5] ~= '' and ARGV[4] == '') then
  return redis.error_reply('BAD_ARGS a snapshot receipt needs a snapshot')
end
local first_counter = 11 + 2 * (inputs + receipts)
local first_entry = first_counter + 2 * counters
for i = first_counter + 1, first_entry - 1, 2 do
  local n = tonumber(ARGV[i])
  if not n or n < 0 or n > MAX_SEQUENCE or n ~= math.floor(n) then
    return redis.error_reply('BAD_ARGS run counter ' .. ARGV[i - 1] .. ' is not a sequence')
  end
end
local bad_type = wrong_type({'string', 'string', 'hash', 'list', 'hash', 'hash', 'hash', 'hash', 'zset', 'hash', 'string', 'hash'})
if bad_type then
  return redis.error_reply(bad_type)
end
local current = tonumber(redis.call('GET', KEYS[11]) or '0')
if not current then
  return redis.error_reply('WRONGTYPE ' .. KEYS[11] .. ' does not hold an epoch')
end
-- (TYPE, not EXISTS: the worker's ACL rule grants the commands the scripts use.)
if redis.call('TYPE', KEYS[7])['ok'] ~= 'none' and ARGV[1] ~= '1' then
  return 0
end

-- All checks passed: write.
if redis.call('TYPE', KEYS[10])['ok'] ~= 'none' then
  current = current + 1  -- a live lease on the target: fence its holder out
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[12])
if math.max(current, epoch) > 0 then
  redis.call('SET', KEYS[11], int_text(math.max(current, epoch)))
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[3])
end
if ARGV[4] ~= '' then
  -- whole; meta (and its snapshot_tag) was unlinked above, so no delta lands on it
  snapshot_write(KEYS[2], nil, ARGV[4], '')
end
for i = 11, 10 + 2 * inputs, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  redis.call('RPUSH', KEYS[4], ARGV[i])
end
for i = 11 + 2 * inputs, first_counter - 1, 2 do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
end
for i = first_counter, first_entry - 1, 2 do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
end
for i = first_entry, #ARGV, 2 do
  redis.call('HSET', KEYS[12], ARGV[i], ARGV[i + 1])
end
touch_runtime(KEYS[7])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[7], ARGV[5], ARGV[6])
end
return 1
