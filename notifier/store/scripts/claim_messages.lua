-- Claim up to `limit` of the candidate messages still free, oldest first.
-- KEYS[1] msgs:P:queues:S, KEYS[2..8] the queue's consumer-side keys,
--   KEYS[9] quota:bytes:P, KEYS[10] quota:expiry:P, KEYS[11] claim:CID, then
--   msg:ID of each candidate
-- ARGV[1] now, ARGV[2] claim id, ARGV[3] ttl, ARGV[4] grace, ARGV[5] limit,
--   ARGV[6] the claim's record (JSON, without its messages), ARGV[7] the
--   queue's _max_claim_count (0: no limit), then the candidates' ids (in
--   rank order, as KEYS from 12)
-- Returns {pairs, over}: {id, message JSON} pairs of the messages claimed,
-- and the ids of free candidates already claimed _max_claim_count times (not
-- claimed: the caller moves them to the dead-letter queue). The claim is
-- stored (with its ids) only when it holds some.
local q, now = qindex_keys(2), tonumber(ARGV[1])
local index, bytes, buckets = KEYS[1], KEYS[9], KEYS[10]
local cid, ttl, grace, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local most = tonumber(ARGV[7])
qindex_collect(q, index, now)
qindex_release_expired(q, now)
local ids, result, gone, over = {}, {}, {}, {}
for i = 8, #ARGV do
  if #ids >= limit then break end
  local id, key = ARGV[i], KEYS[i + 4]
  if redis.call('ZSCORE', q[2], id) then
    local record = redis.call('GET', key)
    if not record then
      gone[#gone + 1] = id
    elseif most > 0 and tonumber(redis.call('HGET', q[7], id) or '0') >= most then
      over[#over + 1] = id
    else
      redis.call('ZREM', q[2], id)
      redis.call('ZADD', q[3], now + ttl, id)
      redis.call('HSET', q[4], id, cid)
      redis.call('HINCRBY', q[7], id, 1)
      qindex_extend(index, bytes, buckets, key, id, now, ttl + grace)
      ids[#ids + 1] = id
      result[#result + 1] = {id, record}
    end
  end
end
qindex_forget(q, gone)
if #ids > 0 then
  local claim = cjson.decode(ARGV[6])
  claim['messages'] = ids
  redis.call('SET', KEYS[11], cjson.encode(claim), 'EX', ttl)
end
return {result, over}
