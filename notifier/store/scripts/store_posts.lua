-- Store posts of messages and enqueue their fan-out, counting their bytes.
-- KEYS[1] tasks:pending (the task outbox), then per post, in order:
--   sources:P:K, meta:P:K:S, msgs:P:K:S, subs:P:K:S, quota:bytes:P,
--   quota:expiry:P, the seven consumer-side keys of the source (ranks,
--   free, claimed, claimer, msgseq, delayed, claimcount; written for queues
--   only), when the post carries a broker message: the broker's fan-out
--   queue, the source's drain:N and drain:N:owner; then msg:ID of each of
--   its messages
-- ARGV[1] now, ARGV[2] number of posts, ARGV[3] most stored bytes per project
--   (0: no limit), then per post: source name, message count, 1 to skip the
--   fan-out without subscriptions, outbox entry ('' for none), broker
--   message ('' for none), the fan-out as parked on drain:N ('' for none),
--   then per message: id, ttl, delay (seconds the
--   message stays hidden from listing, claims and pop), record JSON
-- A fan-out goes onto the broker queue, or, while a drain task owns the
-- source's shard, onto that shard (the owner runs it with its next batch; it
-- gives the shard up only in the script that finds the shard empty, so a
-- parked fan-out always has an owner).
-- Returns per post {1/0: fan-out enqueued, or -1: refused, its project would
-- store more than its quota; bytes the project stores}. Keeps the message
-- index to live messages (bounded under load).
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local k, a = 2, 4
local results = {}
for post = 1, tonumber(ARGV[2]) do
  local name, count, lazy = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2] == '1'
  local member, payload, parked = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  a = a + 6
  local sources, meta, index, subs = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local bytes, buckets = KEYS[k + 4], KEYS[k + 5]
  local q = qindex_keys(k + 6)  -- a queue's messages are ranked, to list and claim
  k = k + 13
  local queue, shard, owner = nil, nil, nil
  if payload ~= '' then queue, shard, owner, k = KEYS[k], KEYS[k + 1], KEYS[k + 2], k + 3 end
  local size = 0
  for m = 0, count - 1 do size = size + #ARGV[a + 4 * m + 3] end
  local used = usage_used(bytes, buckets, now)
  if limit > 0 and used + size > limit then
    results[post] = {-1, used}
  else
    redis.call('ZADD', sources, 0, name)
    redis.call('SET', meta, '{}', 'NX')
    local charges = {}  -- bucket -> bytes: messages of a post mostly share one
    local ids, dues, expiries = {}, {}, {}  -- the indexes: one ZADD each per post
    for m = 0, count - 1 do
      local id, ttl = ARGV[a + 4 * m], tonumber(ARGV[a + 4 * m + 1])
      local delay, record = tonumber(ARGV[a + 4 * m + 2]), ARGV[a + 4 * m + 3]
      redis.call('SET', KEYS[k + m], record, 'EX', ttl)
      table.insert(ids, id)
      table.insert(dues, now + delay)
      table.insert(expiries, now + ttl)
      table.insert(expiries, id)
      local bucket = usage_bucket(now + ttl)
      charges[bucket] = (charges[bucket] or 0) + #record
    end
    if count > 0 then
      zadd_pairs(index, expiries)
      if lazy then qindex_add(q, ids, dues, now) end
    end
    for bucket, size_of in pairs(charges) do usage_charge(bytes, buckets, size_of, bucket) end
    if lazy then qindex_collect(q, index, now) end
    redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
    local fanout = not lazy or redis.call('EXISTS', subs) == 1
    local park = fanout and queue and redis.call('EXISTS', owner) == 1
    if fanout and member ~= '' then
      -- A parked fan-out's outbox entry is dated a day ahead: while it waits
      -- on the shard it is not lost (the scheduler hands an ownerless shard
      -- on); the take dates it (take_pending.lua).
      redis.call('ZADD', KEYS[1], park and now + 86400 or now, member)
    end
    if park then
      redis.call('RPUSH', shard, parked)
    elseif fanout and queue then
      redis.call('LPUSH', queue, payload)
    end
    results[post] = {fanout and 1 or 0, used + size}
  end
  k = k + count
  a = a + 4 * count
end
return results
