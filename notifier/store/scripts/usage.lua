-- Library: a project's stored bytes (see notifier/store/keys.py), prepended
-- to the scripts that write or delete counted data. No KEYS or ARGV of its
-- own: each function takes the project's two keys from its caller's KEYS,
--   bytes    quota:bytes:P   HASH  'total', and bucket -> bytes
--   buckets  quota:expiry:P  ZSET  bucket -> bucket
-- A bucket is ceil(expiry / 60), as notifier.store.records.usage_bucket.
local function usage_bucket(expires) return math.ceil(expires / 60) end
-- Drop the buckets whose time has passed; return the bytes still stored.
local function usage_used(bytes, buckets, now)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', buckets, '-inf', math.floor(now / 60),
                            'LIMIT', 0, 500)
    if #gone == 0 then break end
    local freed = 0
    for _, v in ipairs(redis.call('HMGET', bytes, unpack(gone))) do
      freed = freed + (tonumber(v) or 0)
    end
    redis.call('HDEL', bytes, unpack(gone))
    redis.call('ZREM', buckets, unpack(gone))
    redis.call('HINCRBY', bytes, 'total', -freed)
  end
  return tonumber(redis.call('HGET', bytes, 'total') or '0')
end
local function usage_charge(bytes, buckets, size, bucket)
  redis.call('HINCRBY', bytes, bucket, size)
  redis.call('HINCRBY', bytes, 'total', size)
  redis.call('ZADD', buckets, bucket, bucket)
end
-- Take back bytes deleted before their time, never more than their bucket
-- holds (a bucket already dropped has taken them back).
local function usage_refund(bytes, buckets, size, bucket)
  local held = tonumber(redis.call('HGET', bytes, bucket) or '0')
  local back = math.min(held, size)
  if back <= 0 then return end
  if back == held then
    redis.call('HDEL', bytes, bucket)
    redis.call('ZREM', buckets, bucket)
  else
    redis.call('HINCRBY', bytes, bucket, -back)
  end
  redis.call('HINCRBY', bytes, 'total', -back)
end
