-- delete_runtime.lua: delete_runtime; removes everything stored for a
-- runtime at once, except its fencing epoch, so lease tokens never repeat.
-- KEYS[1] fence        STRING  fencing epoch (kept)
-- KEYS[2] lease        HASH    owner, token of the live lease (expires)
-- KEYS[3..] every other key of the runtime (state, snapshot, inputs, ...)
-- ARGV[1] lease token, or "" for an operator's delete without a lease
-- Reply: how many keys were deleted (0: nothing was stored). Errors, raised
-- before any write: FENCED_OUT.
-- UNLINK frees large values (a run's receipts) off the main thread, so the
-- script's own work stays small however much the runtime holds.

local fenced = fence_error(KEYS[1], KEYS[2], ARGV[1])
if fenced then
  return redis.error_reply(fenced)
end
return redis.call('UNLINK', unpack(KEYS, 2))
