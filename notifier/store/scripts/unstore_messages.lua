-- Delete messages before their TTL, taking their bytes back.
-- KEYS per message, in threes: msg:ID, quota:bytes:P, quota:expiry:P
-- ARGV per message: its bytes' bucket
for i = 1, #ARGV do
  local key, bytes, buckets = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  usage_refund(bytes, buckets, redis.call('STRLEN', key), ARGV[i])
  redis.call('DEL', key)
end
