-- Store a message again (a replay) unless it exists, counting its bytes.
-- KEYS[1] msg:ID, KEYS[2] quota:bytes:P, KEYS[3] quota:expiry:P
-- ARGV[1] now, ARGV[2] ttl, ARGV[3] message JSON
-- Returns 1 if it was stored.
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if not redis.call('SET', KEYS[1], ARGV[3], 'EX', ttl, 'NX') then return 0 end
usage_charge(KEYS[2], KEYS[3], #ARGV[3], usage_bucket(now + ttl))
return 1
