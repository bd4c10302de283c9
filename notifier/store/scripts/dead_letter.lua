-- Store dead letters by time of death, counting their bytes; drop those past
-- the TTL (their bytes pass with their bucket) and the oldest over the cap
-- (taking their bytes back).
-- KEYS per letter, in threes: dead:SUBID, quota:bytes:P, quota:expiry:P
-- ARGV[1] now, ARGV[2] ttl, ARGV[3] most letters per subscription, ARGV[4]
-- most stored bytes per project (0: no limit), then per letter: its JSON
-- Returns the 1-based indexes of letters not stored: their project is at its
-- quota.
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local dropped = {}
for i = 1, #ARGV - 4 do
  local key, bytes, buckets, letter = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[4 + i]
  if limit > 0 and usage_used(bytes, buckets, now) + #letter > limit then
    table.insert(dropped, i)
  else
    if redis.call('ZADD', key, now, letter) == 1 then
      usage_charge(bytes, buckets, #letter, usage_bucket(now + ttl))
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - ttl))
    local extra = redis.call('ZCARD', key) - cap
    if extra > 0 then
      local oldest = redis.call('ZRANGE', key, 0, extra - 1, 'WITHSCORES')
      for j = 1, #oldest, 2 do
        usage_refund(bytes, buckets, #oldest[j], usage_bucket(tonumber(oldest[j + 1]) + ttl))
      end
      redis.call('ZREMRANGEBYRANK', key, 0, extra - 1)
    end
    redis.call('EXPIRE', key, ttl)
  end
end
return dropped
