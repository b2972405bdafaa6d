-- lib.lua: helpers for the other scripts. redis_store/scripts.py prepends to
-- each script the top-level definitions below that it uses (with the comment
-- lines right above each), so every definition starts at column 0 with
-- "local function NAME" or "local NAME =".
-- KEYS: none of its own; ARGV: none of its own; it defines functions only.
-- Plain Lua 5.1 with redis.* only: no cmsgpack, bit or struct (fakeredis has none).

-- Largest sequence a Lua number (an IEEE double) holds exactly: 2^53 - 1.
local MAX_SEQUENCE = 9007199254740991
local unpack = unpack or table.unpack
-- Key layout version, recorded in each runtime's meta hash (redis_store/keys.py).
-- 2: the idempotency index exists; 1: stored by a release without it.
local LAYOUT_VERSION = 2

-- msgpack uint64 (0xcf + 8 bytes big-endian) of an integer in [0, 2^53).
-- Completes an envelope whose prefix Python encoded (codec.seq_suffix).
local function u64(n)
  local bytes = {}
  for i = 8, 1, -1 do
    local b = n % 256
    bytes[i] = string.char(b)
    n = math.floor(n / 256)
  end
  return '\207' .. table.concat(bytes)
end

-- Decimal text of an integer; tostring() would print 1e+15 for large ones.
local function int_text(n)
  return string.format('%.0f', n)
end

-- The largest sequence stored for a run (nil if none), or nil and an error
-- text when the counter is not an integer in [0, 2^53) (written by someone else).
local function stored_sequence(seqs_key, run_id)
  local last = redis.call('HGET', seqs_key, run_id)
  if not last then
    return nil, nil
  end
  local n = tonumber(last)
  if not n or n < 0 or n > MAX_SEQUENCE or n ~= math.floor(n) then
    return nil, 'CORRUPT run_seqs entry of run ' .. run_id .. ' is not a sequence: ' .. last
  end
  return n, nil
end

-- Input states come in ARGV from index first on as triples: input_id,
-- value, claim. claim is '' when the input has no idempotency key, else '='
-- followed by the key (Lua cannot read the key out of the msgpack value).

-- The key a claim names, or nil.
local function claimed_key(claim)
  if claim == '' then
    return nil
  end
  return string.sub(claim, 2)
end

-- Upsert the input triples from index first on, appending suffix to each
-- value. An id seen for the first time is appended to the order list, so
-- loads return first-stored order. The idempotency index (index_key:
-- 'key:' .. key -> input id, 'input:' .. input id -> key) follows in the
-- same step: an input's old key is dropped only while it still names that
-- input, since another input of this batch may have just claimed it.
local function upsert_inputs(inputs_key, order_key, index_key, first, suffix)
  for i = first, #ARGV, 3 do
    local id = ARGV[i]
    if redis.call('HSET', inputs_key, id, ARGV[i + 1] .. suffix) == 1 then
      redis.call('RPUSH', order_key, id)
    end
    local old = redis.call('HGET', index_key, 'input:' .. id)
    local new = claimed_key(ARGV[i + 2])
    if old and old ~= new and redis.call('HGET', index_key, 'key:' .. old) == id then
      redis.call('HDEL', index_key, 'key:' .. old)
    end
    if new then
      redis.call('HSET', index_key, 'key:' .. new, id, 'input:' .. id, new)
    elseif old then
      redis.call('HDEL', index_key, 'input:' .. id)
    end
  end
end

-- Error text if a key holds another type than expected (it was written by
-- something else): checked up front, since a WRONGTYPE error half-way
-- through the writes would leave them half-done. expected[i] is for KEYS[i];
-- it may leave out keys whose type a read or the first write checks anyway.
local function wrong_type(expected)
  for i, want in pairs(expected) do
    local got = redis.call('TYPE', KEYS[i])['ok']
    if got ~= 'none' and got ~= want then
      return 'WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. got .. ', not a ' .. want
    end
  end
  return nil
end

-- The checks every write script starts with: ARGV from index first on
-- holds (id, value, claim) triples, and KEYS[i] is absent or of type
-- expected[i]. Returns the error text, or nil when all is well.
local function common_checks(first, expected)
  if (#ARGV - first + 1) % 3 ~= 0 then
    return 'BAD_ARGS input ids, values and claims must come in triples'
  end
  for i = first + 2, #ARGV, 3 do
    if ARGV[i] ~= '' and string.sub(ARGV[i], 1, 1) ~= '=' then
      return 'BAD_ARGS a claim is "" or "=" followed by the idempotency key'
    end
  end
  return wrong_type(expected)
end

-- The error text of two inputs claiming one key. The key goes in hex: Redis
-- turns newlines in an error reply into spaces and cuts it at a NUL.
local function key_conflict(holder, claimant, key)
  local hex = string.gsub(key, '.', function(c) return string.format('%02x', string.byte(c)) end)
  return 'IDEMPOTENCY_CONFLICT ' .. holder .. ' ' .. claimant .. ' ' .. hex
end

-- Before writing input triples (from ARGV index first on): error text if the
-- runtime was stored before the index existed (INDEX_MISSING: Python builds
-- it, then sends the write again), or if an input claims a key that another
-- input holds and keeps holding after this batch (key_conflict); else nil.
local function index_error(index_key, meta_key, inputs_key, first)
  if first > #ARGV then
    return nil
  end
  if redis.call('HGET', meta_key, 'layout') == '1' and redis.call('TYPE', inputs_key)['ok'] ~= 'none' then
    return 'INDEX_MISSING'
  end
  local batch, claimed = {}, {}
  for i = first, #ARGV, 3 do
    batch[ARGV[i]] = ARGV[i + 2]
  end
  for i = first, #ARGV, 3 do
    local key = claimed_key(ARGV[i + 2])
    if key then
      local holder = claimed[key] or redis.call('HGET', index_key, 'key:' .. key)
      if holder and holder ~= ARGV[i] and (batch[holder] == nil or batch[holder] == ARGV[i + 2]) then
        return key_conflict(holder, ARGV[i], key)
      end
      claimed[key] = ARGV[i]
    end
  end
  return nil
end

-- Every write marks its runtime in the meta hash: listing runtimes scans
-- meta keys, and the layout version tells later releases what they read.
-- A runtime stored by a release before the index (layout 1) keeps its
-- layout until a write of inputs (from ARGV index first on) has passed
-- index_error: then its index is complete and it moves up. Further meta
-- fields (field, value, ...) go in the same HSET where they can.
local function mark_runtime(meta_key, first, ...)
  if first and first <= #ARGV then
    redis.call('HSET', meta_key, 'layout', LAYOUT_VERSION, ...)
    return
  end
  redis.call('HSETNX', meta_key, 'layout', LAYOUT_VERSION)
  if select('#', ...) > 0 then
    redis.call('HSET', meta_key, ...)
  end
end

-- Fencing: a write carrying a lease token ('' = no lease) goes through only
-- while that token is the live lease's and the runtime's current epoch.
-- Expired or revoked leases fail here, before any write.
local function fence_error(fence_key, lease_key, token)
  if token == '' then
    return nil
  end
  local held = redis.call('HGET', lease_key, 'token')
  local epoch = redis.call('GET', fence_key)
  if held ~= token or epoch ~= token then
    return 'FENCED_OUT lease token ' .. token .. ' is not current (epoch ' .. tostring(epoch) .. ')'
  end
  return nil
end

-- Milliseconds on the server's clock.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

-- Idempotent commits: the sequence a commit id committed within the last
-- retention_ms (nil if none), or an error text when the id was used for a
-- different commit. An id older than the retention counts as new.
local function earlier_commit(commits_key, log_key, commit_id, fingerprint, retention_ms)
  if commit_id == '' then
    return nil, nil
  end
  local earlier = redis.call('HGET', commits_key, commit_id)
  local at = redis.call('ZSCORE', log_key, commit_id)
  if not earlier or not at or now_ms() - tonumber(at) >= retention_ms then
    return nil, nil
  end
  local space = string.find(earlier, ' ', 1, true)
  if not space or string.sub(earlier, 1, space - 1) ~= fingerprint then
    return nil, 'COMMIT_ID_REUSED ' .. commit_id .. ' was used for a different commit'
  end
  return tonumber(string.sub(earlier, space + 1)), nil
end

-- Remember a commit id (server clock). Both keys expire retention_ms after
-- the runtime's last commit; while it keeps committing, prune_commit_ids.lua
-- (RuntimeStore.prune_runtime) forgets old ids, outside this hot path.
local function remember_commit(commits_key, log_key, commit_id, fingerprint, seq, retention_ms)
  if commit_id == '' then
    return
  end
  redis.call('HSET', commits_key, commit_id, fingerprint .. ' ' .. int_text(seq))
  redis.call('ZADD', log_key, now_ms(), commit_id)
  redis.call('PEXPIRE', commits_key, retention_ms)
  redis.call('PEXPIRE', log_key, retention_ms)
end

-- Snapshots, written whole or as a delta over the one this writer wrote
-- last (redis_store/snapshot_delta.py). spec is '' for a whole snapshot in
-- value, or '<base tag> <base length> <offset> <receipt> <applied>': value
-- is then the new snapshot from offset on, and head its first bytes. Every
-- script that writes the snapshot goes through these two and records the
-- new tag in meta ('snapshot_tag') in the same step; the base's
-- snapshot_receipt / snapshot_applied ('-' for none) are checked too, since
-- every snapshot write moves one of them (a worker of a release before
-- deltas writes no tag). So a delta only lands on the exact bytes it was
-- computed from. snapshot_check returns the error text (before any write), or nil.
local function snapshot_check(snapshot_key, meta_key, spec)
  if spec == '' then
    return nil
  end
  local base_tag, base_len, offset, receipt, applied = string.match(spec, '^(%x+) (%d+) (%d+) (%S+) (%S+)$')
  if not base_tag or tonumber(offset) > tonumber(base_len) then
    return 'BAD_ARGS snapshot delta spec ' .. spec
  end
  local meta = redis.call('HMGET', meta_key, 'snapshot_tag', 'snapshot_receipt', 'snapshot_applied')
  if meta[1] ~= base_tag or (meta[2] or '-') ~= receipt or (meta[3] or '-') ~= applied
      or redis.call('STRLEN', snapshot_key) ~= tonumber(base_len) then
    return 'STALE_BASE the stored snapshot is not the one this delta extends'
  end
  return nil
end

local function snapshot_write(snapshot_key, spec, value, head)
  if spec == '' then
    redis.call('SET', snapshot_key, value)
    return
  end
  local offset = tonumber(string.match(spec, '^%x+ %d+ (%d+) '))
  redis.call('SETRANGE', snapshot_key, 0, head)
  redis.call('SETRANGE', snapshot_key, offset, value)
end

-- The checks commit_boundary.lua and apply_receipt.lua both start with, over
-- their shared KEYS layout (1 snapshot .. 10 fence, 11 idempotency):
-- argument shape and key types, then a commit id already used (its sequence
-- comes back: the script replies with it and writes nothing), then the
-- fence, then the snapshot delta's base (ARGV[spec_at]), then the
-- idempotency keys the inputs claim.
-- Only meta, and with inputs the inputs, input_order and idempotency keys,
-- get a TYPE check: the other keys are read with typed commands before any
-- write (run_seqs, commits, commit_log, lease, fence; the snapshot for a
-- delta), are written with SET (the snapshot), or are the first write
-- (receipts): a wrong type there fails the script before it has written anything.
-- Returns error text or nil, and the earlier sequence or nil.
local function commit_checks(first, token, commit_id, fingerprint, retention_ms, spec_at)
  local expected = {[6] = 'hash'}
  if #ARGV >= first then
    expected[4], expected[5], expected[11] = 'hash', 'list', 'hash'
  end
  local failed = common_checks(first, expected)
  if failed then
    return failed, nil
  end
  local earlier, reused = earlier_commit(KEYS[8], KEYS[9], commit_id, fingerprint, retention_ms)
  if reused or earlier then
    return reused, earlier
  end
  failed = fence_error(KEYS[10], KEYS[7], token) or snapshot_check(KEYS[1], KEYS[6], ARGV[spec_at])
  if failed then
    return failed, nil
  end
  return index_error(KEYS[11], KEYS[6], KEYS[4], first), nil
end
