-- dump_runtime.lua: dump_runtime; everything stored for one runtime, read in
-- one atomic step (works on Redis Cluster, where MULTI pipelines may not).
-- KEYS[1] state  KEYS[2] snapshot  KEYS[3] input_order  KEYS[4] inputs
-- KEYS[5] receipts  KEYS[6] run_seqs  KEYS[7] meta  KEYS[8] idempotency
-- ARGV: none
-- Reply: {state, snapshot, order list, inputs flat, receipts flat,
-- run_seqs flat, meta flat, idempotency flat}; absent strings are false.
-- Writes nothing.

return {
  redis.call('GET', KEYS[1]),
  redis.call('GET', KEYS[2]),
  redis.call('LRANGE', KEYS[3], 0, -1),
  redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  redis.call('HGETALL', KEYS[7]),
  redis.call('HGETALL', KEYS[8]),
}
