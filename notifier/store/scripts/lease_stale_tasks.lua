-- Find tasks lost between the broker and a worker.
-- KEYS[1] tasks:pending, KEYS[2...] the broker's queue lists
-- ARGV[1] now, ARGV[2] stale cutoff, ARGV[3] limit
-- Returns tasks sent before the cutoff that no worker has started, but only
-- while every broker queue is empty (a task waiting in a backlog is not lost),
-- re-stamping them so each is re-sent once per staleness period.
for i = 2, #KEYS do
  if redis.call('LLEN', KEYS[i]) > 0 then return {} end
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(stale) do
  redis.call('ZADD', KEYS[1], ARGV[1], member)
end
return stale
