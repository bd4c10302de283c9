-- Claim up to `limit` of the candidate messages still free, oldest first.
-- KEYS[1] msgs:P:queues:S, KEYS[2..6] the queue's consumer-side keys,
--   KEYS[7] quota:bytes:P, KEYS[8] quota:expiry:P, KEYS[9] claim:CID, then
--   msg:ID of each candidate
-- ARGV[1] now, ARGV[2] claim id, ARGV[3] ttl, ARGV[4] grace, ARGV[5] limit,
--   ARGV[6] the claim's record (JSON, without its messages), then the
--   candidates' ids (in rank order, as KEYS from 10)
-- Returns {id, message JSON} pairs of the messages claimed; the claim is
-- stored (with their ids) only when it holds some.
local q, now = qindex_keys(2), tonumber(ARGV[1])
local index, bytes, buckets = KEYS[1], KEYS[7], KEYS[8]
local cid, ttl, grace, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
qindex_collect(q, index, now)
qindex_release_expired(q, now)
local ids, result, gone = {}, {}, {}
for i = 7, #ARGV do
  if #ids >= limit then break end
  local id, key = ARGV[i], KEYS[i + 3]
  if redis.call('ZSCORE', q[2], id) then
    local record = redis.call('GET', key)
    if record then
      redis.call('ZREM', q[2], id)
      redis.call('ZADD', q[3], now + ttl, id)
      redis.call('HSET', q[4], id, cid)
      qindex_extend(index, bytes, buckets, key, id, now, ttl + grace)
      ids[#ids + 1] = id
      result[#result + 1] = {id, record}
    else
      gone[#gone + 1] = id
    end
  end
end
qindex_forget(q, gone)
if #ids > 0 then
  local claim = cjson.decode(ARGV[6])
  claim['messages'] = ids
  redis.call('SET', KEYS[9], cjson.encode(claim), 'EX', ttl)
end
return result
