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
-- How many values one redis.call takes from unpack() at most: Lua 5.1's C
-- stack holds about 8,000, so longer lists go in chunks (even: pairs stay whole).
local CHUNK = 1000

-- msgpack uint64 (0xcf + 8 bytes big-endian) of an integer in [0, 2^53).
-- An envelope's last slot (codec.seq_suffix): commit_boundary.lua stamps it
-- when the sequence it mints is not the one Python expected.
local function u64(n)
  local hi, lo = math.floor(n / 4294967296), n % 4294967296
  return string.char(207,
    math.floor(hi / 16777216), math.floor(hi / 65536) % 256, math.floor(hi / 256) % 256, hi % 256,
    math.floor(lo / 16777216), math.floor(lo / 65536) % 256, math.floor(lo / 256) % 256, lo % 256)
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
-- claimed_key gives the key a claim names, or nil.
local function claimed_key(claim)
  if claim == '' then
    return nil
  end
  return string.sub(claim, 2)
end

-- Error text if KEYS[i] holds another type than want (it was written by
-- something else): checked up front where a key is written without being
-- read first, since a WRONGTYPE error half-way through the writes would
-- leave them half-done.
local function wrong_type_of(i, want)
  local got = redis.call('TYPE', KEYS[i])['ok']
  if got ~= 'none' and got ~= want then
    return 'WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. got .. ', not a ' .. want
  end
  return nil
end

-- wrong_type_of for each KEYS[i] and expected[i]; the first error text or nil.
-- expected may leave out keys whose type a read or the first write checks anyway.
local function wrong_type(expected)
  for i, want in pairs(expected) do
    local failed = wrong_type_of(i, want)
    if failed then
      return failed
    end
  end
  return nil
end

-- Error text unless ARGV from index first on holds (id, value, claim) triples.
local function triples_error(first)
  if (#ARGV - first + 1) % 3 ~= 0 then
    return 'BAD_ARGS input ids, values and claims must come in triples'
  end
  for i = first + 2, #ARGV, 3 do
    if ARGV[i] ~= '' and string.sub(ARGV[i], 1, 1) ~= '=' then
      return 'BAD_ARGS a claim is "" or "=" followed by the idempotency key'
    end
  end
  return nil
end

-- triples_error, then wrong_type(expected): the error text, or nil.
local function common_checks(first, expected)
  return triples_error(first) or wrong_type(expected)
end

-- The error text of two inputs claiming one key. The key goes in hex: Redis
-- turns newlines in an error reply into spaces and cuts it at a NUL.
local function key_conflict(holder, claimant, key)
  local hex = string.gsub(key, '.', function(c) return string.format('%02x', string.byte(c)) end)
  return 'IDEMPOTENCY_CONFLICT ' .. holder .. ' ' .. claimant .. ' ' .. hex
end

-- Before any write, what storing the input triples (ARGV from index first
-- on) needs, read with typed commands so that a foreign type fails here:
-- which ids are new (HEXISTS on inputs, which copies no value; only then is
-- input_order, KEYS[order_at], written, so only then TYPE-checked) and the
-- idempotency index entries the batch reads (one HMGET; "key:" .. key ->
-- input id, "input:" .. input id -> key). layout is meta's layout as read
-- (false if none). Refuses a runtime stored before the index (INDEX_MISSING:
-- Python builds it, then sends the write again) and a key that another input
-- holds and keeps holding after this batch (key_conflict). Returns the error
-- text, or nil and the plan that input_writes carries out (nil without inputs).
local function input_plan(inputs_key, order_at, index_key, layout, first)
  if first > #ARGV then
    return nil, nil
  end
  -- An id seen for the first time is appended to the order list (once), so
  -- loads return first-stored order. fields: the index entries to read.
  local new, seen, found, fields, claims = {}, nil, false, {}, false
  for i = first, #ARGV, 3 do
    local id = ARGV[i]
    if redis.call('HEXISTS', inputs_key, id) == 1 then
      found = true
    elseif not (seen and seen[id]) then
      new[#new + 1] = id
      seen = seen or {}
      seen[id] = true
    end
    fields[#fields + 1] = 'input:' .. id
    if ARGV[i + 2] ~= '' then
      claims = true
      fields[#fields + 1] = 'key:' .. claimed_key(ARGV[i + 2])
    end
  end
  if layout == '1' and (found or redis.call('TYPE', inputs_key)['ok'] ~= 'none') then
    return 'INDEX_MISSING', nil
  end
  local failed = #new > 0 and wrong_type_of(order_at, 'list')
  if failed then
    return failed, nil
  end
  local got, held = {}, false
  for a = 1, #fields, CHUNK do
    local part = redis.call('HMGET', index_key, unpack(fields, a, math.min(a + CHUNK - 1, #fields)))
    if a == 1 then
      got = part
    else
      for j = 1, #part do
        got[a + j - 1] = part[j]
      end
    end
  end
  for j = 1, #fields do
    held = held or got[j]
  end
  if not claims and not held then
    return nil, {new = new}  -- no key claimed, none held: the index stays as it is
  end
  local before = {}  -- index field -> value before this batch, false if none
  for j = 1, #fields do
    before[fields[j]] = got[j]
  end
  local batch, claimed = {}, {}
  for i = first, #ARGV, 3 do
    batch[ARGV[i]] = ARGV[i + 2]
  end
  for i = first, #ARGV, 3 do
    local key = claimed_key(ARGV[i + 2])
    if key then
      local holder = claimed[key] or before['key:' .. key]
      if holder and holder ~= ARGV[i] and (batch[holder] == nil or batch[holder] == ARGV[i + 2]) then
        return key_conflict(holder, ARGV[i], key), nil
      end
      claimed[key] = ARGV[i]
    end
  end

  -- The index after each input in turn: an input's old key is dropped only
  -- while it still names that input, since another input of this batch may
  -- have just claimed it. after: field -> value (false: deleted), changed:
  -- the fields in the order first changed.
  local after, changed = {}, {}
  local function get(field)
    local value = after[field]
    if value == nil then
      value = before[field]
    end
    if value == nil then
      value = redis.call('HGET', index_key, field)
      before[field] = value
    end
    return value
  end
  local function put(field, value)
    if after[field] == nil then
      changed[#changed + 1] = field
    end
    after[field] = value
  end
  for i = first, #ARGV, 3 do
    local id, key = ARGV[i], claimed_key(ARGV[i + 2])
    local old = get('input:' .. id)
    if old and old ~= key and get('key:' .. old) == id then
      put('key:' .. old, false)
    end
    if key then
      put('key:' .. key, id)
      put('input:' .. id, key)
    elseif old then
      put('input:' .. id, false)
    end
  end
  local set, del = {}, {}
  for _, field in ipairs(changed) do
    local value = after[field]
    if value and value ~= before[field] then
      set[#set + 1] = field
      set[#set + 1] = value
    elseif not value and before[field] then
      del[#del + 1] = field
    end
  end
  return nil, {new = new, set = set, del = del}
end

-- Stores the input triples from ARGV index first on as input_plan planned
-- (plan nil: there are none), with stamp (if not nil) in place of each
-- value's last 9 bytes (commit_boundary.lua): one HSET, the new ids
-- appended to the order list, the index entries that change.
local function input_writes(inputs_key, order_key, index_key, first, stamp, plan)
  if not plan then
    return
  end
  local values, n = {}, 0
  for i = first, #ARGV, 3 do
    values[n + 1], values[n + 2] = ARGV[i], stamp and string.sub(ARGV[i + 1], 1, -10) .. stamp or ARGV[i + 1]
    n = n + 2
  end
  for a = 1, n, CHUNK do
    redis.call('HSET', inputs_key, unpack(values, a, math.min(a + CHUNK - 1, n)))
  end
  local new, set, del = plan.new, plan.set or {}, plan.del or {}
  for a = 1, #new, CHUNK do
    redis.call('RPUSH', order_key, unpack(new, a, math.min(a + CHUNK - 1, #new)))
  end
  for a = 1, #set, CHUNK do
    redis.call('HSET', index_key, unpack(set, a, math.min(a + CHUNK - 1, #set)))
  end
  for a = 1, #del, CHUNK do
    redis.call('HDEL', index_key, unpack(del, a, math.min(a + CHUNK - 1, #del)))
  end
end

-- Every write marks its runtime in the meta hash: listing runtimes scans
-- meta keys, and the layout version tells later releases what they read.
-- layout is meta's layout as read (false if none). A runtime stored by a
-- release before the index (layout 1) keeps its layout until a write of
-- inputs (with_inputs) has passed input_plan: then its index is complete
-- and it moves up. Further meta fields (field, value, ...) go in the same
-- HSET; nothing is written when nothing changes.
local function mark_runtime(meta_key, layout, with_inputs, ...)
  if not layout or (with_inputs and layout ~= tostring(LAYOUT_VERSION)) then
    redis.call('HSET', meta_key, 'layout', LAYOUT_VERSION, ...)
  elseif select('#', ...) > 0 then
    redis.call('HSET', meta_key, ...)
  end
end

-- mark_runtime for the scripts that do not read meta's layout: sets it
-- where there is none.
local function touch_runtime(meta_key)
  redis.call('HSETNX', meta_key, 'layout', LAYOUT_VERSION)
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
-- retention_ms is ARGV text here and in remember_commit: converted only
-- where a commit id needs it.
local function earlier_commit(commits_key, log_key, commit_id, fingerprint, retention_ms)
  if commit_id == '' then
    return nil, nil
  end
  local earlier = redis.call('HGET', commits_key, commit_id)
  local at = redis.call('ZSCORE', log_key, commit_id)
  if not earlier or not at or now_ms() - tonumber(at) >= tonumber(retention_ms) then
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

-- meta's fields the snapshot-writing scripts read, in one HMGET before any
-- write (it fails on a foreign type: meta's type check too): [1] layout,
-- [2] snapshot_tag, [3] snapshot_receipt, [4] snapshot_applied,
-- [5] snapshot_without_receipt; false where absent.
local function read_meta(meta_key)
  return redis.call('HMGET', meta_key, 'layout', 'snapshot_tag', 'snapshot_receipt', 'snapshot_applied',
    'snapshot_without_receipt')
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
-- computed from. snapshot_check takes meta as read_meta read it and returns
-- the error text (before any write), or nil and the offset (nil: whole).
local function snapshot_check(snapshot_key, meta, spec)
  if spec == '' then
    return nil, nil
  end
  local base_tag, base_len, offset, receipt, applied = string.match(spec, '^(%x+) (%d+) (%d+) (%S+) (%S+)$')
  base_len, offset = tonumber(base_len), tonumber(offset)
  if not base_tag or offset > base_len then
    return 'BAD_ARGS snapshot delta spec ' .. spec, nil
  end
  if meta[2] ~= base_tag or (meta[3] or '-') ~= receipt or (meta[4] or '-') ~= applied
      or redis.call('STRLEN', snapshot_key) ~= base_len then
    return 'STALE_BASE the stored snapshot is not the one this delta extends', nil
  end
  return nil, offset
end

local function snapshot_write(snapshot_key, offset, value, head)
  if not offset then
    redis.call('SET', snapshot_key, value)
    return
  end
  redis.call('SETRANGE', snapshot_key, 0, head)
  redis.call('SETRANGE', snapshot_key, offset, value)
end

-- The checks commit_boundary.lua and apply_receipt.lua both start with, over
-- their shared KEYS layout (1 snapshot .. 10 fence, 11 idempotency): the
-- arguments' shape, then a commit id already used (its sequence comes back:
-- the script replies with it and writes nothing), then the fence, then meta
-- (read_meta) and the snapshot delta's base (ARGV[spec_at]), then the inputs
-- (input_plan). Every key the scripts write is read here with a typed
-- command first (meta; with inputs: inputs and idempotency; commits and
-- commit_log with a commit id; the snapshot for a delta; the scripts read
-- run_seqs next), TYPE-checked (input_order, when an input is new), written
-- with SET (the snapshot), or is the first write (receipts): a foreign type
-- fails the script before it has written anything. lease and fence are only read.
-- Returns the error text or nil, the earlier sequence or nil, meta as read,
-- the delta's offset (nil: whole) and the input plan.
local function commit_checks(first, token, commit_id, fingerprint, retention_ms, spec_at)
  local failed = triples_error(first)
  if failed then
    return failed
  end
  local earlier, reused = earlier_commit(KEYS[8], KEYS[9], commit_id, fingerprint, retention_ms)
  if reused or earlier then
    return reused, earlier
  end
  failed = fence_error(KEYS[10], KEYS[7], token)
  if failed then
    return failed
  end
  local meta = read_meta(KEYS[6])
  local offset, plan
  failed, offset = snapshot_check(KEYS[1], meta, ARGV[spec_at])
  if failed then
    return failed
  end
  failed, plan = input_plan(KEYS[4], 5, KEYS[11], meta[1], first)
  return failed, nil, meta, offset, plan
end
