-- Create a subscription unless a live one has the same subscriber (index key).
-- KEYS[1] subidx:P:K:S  HASH   subscriber -> subscription id
-- KEYS[2] subs:P:K:S    ZSET   the source's subscription ids
-- KEYS[3] quota:subs:P  ZSET   the project's subscription ids -> expiry
-- KEYS[4] sub:NEW       STRING the new subscription's record
-- KEYS[5] sub:SEEN      STRING the record of the id the caller read in
--                              KEYS[1] (KEYS[4] again when it read none)
-- ARGV[1] subscriber, ARGV[2] new id, ARGV[3] subscription JSON, ARGV[4] ttl,
-- ARGV[5] most subscriptions of the project (0: no limit), ARGV[6] now,
-- ARGV[7] expiry, ARGV[8] the id the caller read in KEYS[1] ('' for none)
-- Returns {0, existing_id} when a live subscription has the subscriber,
-- {-1, count} when the project has its most subscriptions, {-2, ''} when the
-- index changed since the caller read it (read again and retry), else
-- {1, new_id}.
local existing = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if existing ~= ARGV[8] then return {-2, ''} end
if existing ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
  return {0, existing}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
local count = redis.call('ZCARD', KEYS[3])
if tonumber(ARGV[5]) > 0 and count >= tonumber(ARGV[5]) then
  return {-1, tostring(count)}
end
if existing ~= '' then redis.call('ZREM', KEYS[2], existing) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SET', KEYS[4], ARGV[3], 'EX', tonumber(ARGV[4]))
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[2])
return {1, ARGV[2]}
