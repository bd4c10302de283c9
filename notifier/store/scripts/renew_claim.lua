-- Renew a claim: a new ttl and grace from now, for the messages it still holds.
-- KEYS[1] msgs:P:queues:S, KEYS[2..8] the queue's consumer-side keys,
--   KEYS[9] quota:bytes:P, KEYS[10] quota:expiry:P, KEYS[11] claim:CID, then
--   msg:ID of each message of the claim
-- ARGV[1] now, ARGV[2] claim id, ARGV[3] ttl, ARGV[4] grace, ARGV[5] the
--   claim's new record (JSON), then the claim's message ids (as KEYS from 12)
-- Returns 0 if the claim has expired or was released, else 1.
local q, now = qindex_keys(2), tonumber(ARGV[1])
local index, bytes, buckets = KEYS[1], KEYS[9], KEYS[10]
local cid, ttl, grace = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[11]) == 0 then return 0 end
for i = 6, #ARGV do
  local id, key = ARGV[i], KEYS[i + 6]
  if redis.call('HGET', q[4], id) == cid and redis.call('EXISTS', key) == 1 then
    redis.call('ZADD', q[3], now + ttl, id)
    qindex_extend(index, bytes, buckets, key, id, now, ttl + grace)
  end
end
redis.call('SET', KEYS[11], ARGV[5], 'EX', ttl)
return 1
