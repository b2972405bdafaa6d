-- lifecycle_commit.lua: atomic_lifecycle_commit, persist_runtime_state and
-- persist_input_state; the runtime state and input upserts land together.
-- KEYS[1] state        STRING  runtime state envelope
-- KEYS[2] inputs       HASH    input_id -> input state envelope
-- KEYS[3] input_order  LIST    input ids in first-stored order
-- KEYS[4] meta         HASH    layout version
-- KEYS[5] lease        HASH    owner, token of the live lease (expires)
-- KEYS[6] fence        STRING  fencing epoch: the newest lease token (never deleted)
-- KEYS[7] idempotency  HASH    "key:<key>" -> input id, "input:<input id>" -> key
-- ARGV[1] runtime state envelope, or "" to leave the runtime state as it is
-- ARGV[2] lease token, or "" for a write without a lease
-- ARGV[3..] triples: input_id, input state envelope (complete), claim
--           ("" or "=" .. idempotency key)
-- Reply: 1. Errors, raised before any write: BAD_ARGS, WRONGTYPE, FENCED_OUT,
-- INDEX_MISSING, IDEMPOTENCY_CONFLICT.

-- Every key written is read with a typed command before any write (meta;
-- with inputs: inputs and idempotency), TYPE-checked (input_order, when an
-- input is new) or written with SET (the state): a foreign type fails the
-- script before it has written anything. lease and fence are only read.
local failed = triples_error(3)
  or fence_error(KEYS[6], KEYS[5], ARGV[2])
if failed then
  return redis.error_reply(failed)
end
local layout = redis.call('HGET', KEYS[4], 'layout')
local plan
failed, plan = input_plan(KEYS[2], 3, KEYS[7], layout, 3)
if failed then
  return redis.error_reply(failed)
end

-- All checks passed: write.
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1])
end
input_writes(KEYS[2], KEYS[3], KEYS[7], 3, nil, plan)
mark_runtime(KEYS[4], layout, plan)
return 1
