-- Move a free message of a queue to its dead-letter queue (Zaqar's
-- _max_claim_count), keeping its claim count.
-- KEYS[1] msgs:P:queues:S, KEYS[2..8] the queue's consumer-side keys,
--   KEYS[9] quota:bytes:P, KEYS[10] quota:expiry:P, KEYS[11] sources:P:queues,
--   KEYS[12] meta:P:queues:D, KEYS[13] msgs:P:queues:D, KEYS[14..20] the
--   dead-letter queue's consumer-side keys, KEYS[21] msg:ID
-- ARGV[1] now, ARGV[2] id, ARGV[3] the message's new record (JSON: its new
--   source and claim count), ARGV[4] its new ttl (0: it keeps its expiry),
--   ARGV[5] the dead-letter queue's name
-- Returns 1 when moved; 0 when the message is no longer free in the queue
-- (claimed, deleted or moved by another consumer meanwhile).
local q, dq, now = qindex_keys(2), qindex_keys(14), tonumber(ARGV[1])
local index, bytes, buckets = KEYS[1], KEYS[9], KEYS[10]
local dindex, key, id, ttl = KEYS[13], KEYS[21], ARGV[2], tonumber(ARGV[4])
if not redis.call('ZSCORE', q[2], id) or redis.call('EXISTS', key) == 0 then return 0 end
local count = redis.call('HGET', q[7], id) or '0'
local expires = tonumber(redis.call('ZSCORE', index, id) or now)
qindex_forget(q, {id})
redis.call('ZREM', index, id)
redis.call('ZADD', KEYS[11], 0, ARGV[5])
redis.call('SET', KEYS[12], '{}', 'NX')
if ttl > 0 then
  redis.call('SET', key, ARGV[3], 'EX', ttl)
  expires = now + ttl
  usage_charge(bytes, buckets, #ARGV[3], usage_bucket(expires))
else
  redis.call('SET', key, ARGV[3], 'KEEPTTL')
end
redis.call('ZADD', dindex, expires, id)
qindex_add(dq, {id}, {now}, now)
redis.call('HSET', dq[7], id, count)
return 1
