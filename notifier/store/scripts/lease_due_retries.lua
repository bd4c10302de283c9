-- Lease due retries to one scheduler.
-- KEYS[1] retries, KEYS[2] retries:leased
-- ARGV[1] now, ARGV[2] limit, ARGV[3] lease expiry cutoff (now - lease seconds)
-- Returns up to ARGV[2] members due by ARGV[1] and moves them to the lease
-- set, first putting back leases older than the cutoff (their scheduler died).
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 1000)
for _, member in ipairs(stale) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], ARGV[1], member)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[1], member)
end
return due
