-- lifecycle_commit.lua: atomic_lifecycle_commit, persist_runtime_state and
-- persist_input_state; the runtime state and input upserts land together.
-- KEYS[1] state        STRING  runtime state envelope
-- KEYS[2] inputs       HASH    input_id -> input state envelope
-- KEYS[3] input_order  LIST    input ids in first-stored order
-- KEYS[4] meta         HASH    layout version
-- KEYS[5] lease        HASH    owner, token of the live lease (expires)
-- KEYS[6] fence        STRING  fencing epoch: the newest lease token (never deleted)
-- ARGV[1] runtime state envelope, or "" to leave the runtime state as it is
-- ARGV[2] lease token, or "" for a write without a lease
-- ARGV[3..] pairs: input_id, input state envelope (complete)
-- Reply: 1. Errors, raised before any write: BAD_ARGS, WRONGTYPE, FENCED_OUT.

local failed = common_checks(3, {'string', 'hash', 'list', 'hash', 'hash', 'string'})
if failed then
  return redis.error_reply(failed)
end
local fenced = fence_error(KEYS[6], KEYS[5], ARGV[2])
if fenced then
  return redis.error_reply(fenced)
end

-- All checks passed: write.
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1])
end
upsert_inputs(KEYS[2], KEYS[3], 3, '')
mark_runtime(KEYS[4])
return 1
