-- Take a shard's pending deliveries for one drain task.
-- KEYS[1] drain:N (list), KEYS[2] drain:N:owner, KEYS[3] retries
-- ARGV[1] limit, ARGV[2] due (epoch seconds) of the taken deliveries in
-- retries should their task die, ARGV[3] owner ms, ARGV[4] "1" if the caller
-- owns the shard (it gives the shard up when it finds nothing left).
-- Returns {remaining, released, member...}: up to ARGV[1] deliveries, oldest
-- first, each now also in retries in that order (marked: its member differs from any retry
-- a delivery task schedules), so a worker killed mid-task loses none of them.
local limit = tonumber(ARGV[1])
local taken = redis.call('LRANGE', KEYS[1], 0, limit - 1)
local released = 0
if #taken > 0 then
  redis.call('LTRIM', KEYS[1], #taken, -1)
  for i = 1, #taken, 500 do
    local args = {}
    for j = i, math.min(i + 499, #taken) do
      -- 0.1 ms apart: the scheduler sends them back in the order taken
      table.insert(args, tonumber(ARGV[2]) + (j - 1) / 10000)
      table.insert(args, taken[j])
    end
    redis.call('ZADD', KEYS[3], unpack(args))
  end
end
local remaining = redis.call('LLEN', KEYS[1])
if ARGV[4] == '1' then
  if #taken == 0 then
    redis.call('DEL', KEYS[2])
    released = 1
  else
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  end
end
local out = {remaining, released}
for _, member in ipairs(taken) do table.insert(out, member) end
return out
