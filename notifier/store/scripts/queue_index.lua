-- Library: a queue's consumer-side index (notifier/store/keys.py
-- queue_index), prepended to the scripts that change it. No KEYS or ARGV of
-- its own: each function takes the queue's seven keys from its caller's KEYS
-- as a table q = {ranks, free, claimed, claimer, msgseq, delayed, claimcount}.
local QINDEX_SIZE = 7
local function qindex_keys(first)
  local q = {}
  for i = 0, QINDEX_SIZE - 1 do q[i + 1] = KEYS[first + i] end
  return q
end
-- ZADD of flat {score, member, ...} pairs, in chunks unpack can take.
local function zadd_pairs(key, flat)
  for i = 1, #flat, 1000 do
    redis.call('ZADD', key, unpack(flat, i, math.min(i + 999, #flat)))
  end
end
-- Rank new messages (ids, in order) after every other of their queue; each
-- is free, or hidden in delayed: until its due time (dues[i]) when it was
-- posted with a delay. One INCRBY and one ZADD per index for a whole post.
local function qindex_add(q, ids, dues, now)
  local last = redis.call('INCRBY', q[5], #ids)
  local ranked, free, delayed = {}, {}, {}
  for i, id in ipairs(ids) do
    local rank = last - #ids + i
    table.insert(ranked, rank)
    table.insert(ranked, id)
    if dues[i] > now then
      table.insert(delayed, dues[i])
      table.insert(delayed, id)
    else
      table.insert(free, rank)
      table.insert(free, id)
    end
  end
  zadd_pairs(q[1], ranked)
  zadd_pairs(q[2], free)
  zadd_pairs(q[6], delayed)
end
-- Forget messages (ids, a table) that are gone: expired or deleted.
local function qindex_forget(q, ids)
  for i = 1, #ids, 500 do
    local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
    redis.call('ZREM', q[1], unpack(chunk))
    redis.call('ZREM', q[2], unpack(chunk))
    redis.call('ZREM', q[3], unpack(chunk))
    redis.call('HDEL', q[4], unpack(chunk))
    redis.call('ZREM', q[6], unpack(chunk))
    redis.call('HDEL', q[7], unpack(chunk))
  end
end
-- Drop the messages whose time in the expiry index (msgs:) has passed.
local function qindex_collect(q, index, now)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 500)
    if #gone == 0 then return end
    qindex_forget(q, gone)
    redis.call('ZREM', index, unpack(gone))
  end
end
-- Free the ids (a table) that are still ranked: back into free:.
local function qindex_free(q, ids)
  for _, id in ipairs(ids) do
    local rank = redis.call('ZSCORE', q[1], id)
    if rank then redis.call('ZADD', q[2], rank, id) end
  end
end
-- Free again the messages whose claim has expired, and those whose delay
-- has ended.
local function qindex_release_expired(q, now)
  while true do
    local ids = redis.call('ZRANGEBYSCORE', q[3], '-inf', now, 'LIMIT', 0, 500)
    if #ids == 0 then break end
    qindex_free(q, ids)
    redis.call('ZREM', q[3], unpack(ids))
    redis.call('HDEL', q[4], unpack(ids))
  end
  while true do
    local ids = redis.call('ZRANGEBYSCORE', q[6], '-inf', now, 'LIMIT', 0, 500)
    if #ids == 0 then break end
    qindex_free(q, ids)
    redis.call('ZREM', q[6], unpack(ids))
  end
end
-- Make a claimed message outlive its claim plus grace (as Zaqar does),
-- charging its bytes to the later bucket too (the count errs high).
local function qindex_extend(index, bytes, buckets, key, id, now, life)
  if redis.call('TTL', key) < life then
    redis.call('EXPIRE', key, life)
    redis.call('ZADD', index, now + life, id)
    usage_charge(bytes, buckets, redis.call('STRLEN', key), usage_bucket(now + life))
  end
end
