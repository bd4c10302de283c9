-- Remove dead letters (replayed), taking their bytes back.
-- KEYS per letter, in threes: dead:SUBID, quota:bytes:P, quota:expiry:P
-- ARGV[1] ttl, then per letter: its JSON
local ttl = tonumber(ARGV[1])
for i = 1, #ARGV - 1 do
  local key, letter = KEYS[3 * i - 2], ARGV[1 + i]
  local died = redis.call('ZSCORE', key, letter)
  if died then
    redis.call('ZREM', key, letter)
    usage_refund(KEYS[3 * i - 1], KEYS[3 * i], #letter, usage_bucket(tonumber(died) + ttl))
  end
end
