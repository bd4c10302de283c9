-- Remove the oldest dead letters of a subscription, taking their bytes back.
-- KEYS[1] dead:SUBID, KEYS[2] quota:bytes:P, KEYS[3] quota:expiry:P (no
-- KEYS[2] and KEYS[3]: take nothing back)
-- ARGV[1] ttl, ARGV[2] how many
-- Returns how many are left.
local ttl = tonumber(ARGV[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
if #oldest == 0 then return 0 end
if #KEYS == 3 then
  for j = 1, #oldest, 2 do
    usage_refund(KEYS[2], KEYS[3], #oldest[j], usage_bucket(tonumber(oldest[j + 1]) + ttl))
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #oldest / 2 - 1)
return redis.call('ZCARD', KEYS[1])
