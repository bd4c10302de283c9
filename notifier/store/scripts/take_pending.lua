-- Take a shard's pending deliveries for one drain task.
-- KEYS[1] drain:N (list), KEYS[2] drain:N:owner, KEYS[3] retries,
-- KEYS[4] tasks:pending (the task outbox)
-- ARGV[1] limit, ARGV[2] due (epoch seconds) of the taken deliveries in
-- retries should their task die, ARGV[3] owner ms, ARGV[4] "1" if the caller
-- owns the shard (it gives the shard up when it finds nothing left), ARGV[5]
-- the time a taken parked fan-out's outbox entry is dated as sent.
-- Returns {remaining, released, member...}: up to ARGV[1] entries, oldest
-- first. Deliveries are now also in retries in that order (marked: their
-- member differs from any retry a delivery task schedules), so a worker killed
-- mid-task loses none of them; parked fan-outs ({"fanout": outbox entry},
-- pushed by store_posts.lua) are not, their outbox entry brings them back.
local limit = tonumber(ARGV[1])
local taken = redis.call('LRANGE', KEYS[1], 0, limit - 1)
local released = 0
if #taken > 0 then
  redis.call('LTRIM', KEYS[1], #taken, -1)
  local args = {}
  for j = 1, #taken do
    -- A parked fan-out ({"fanout": outbox entry}) is not a delivery: its
    -- outbox entry brings it back should this task die, dated here (it was
    -- dated far ahead while it waited on the shard, where the scheduler
    -- hands an ownerless shard on instead).
    if string.sub(taken[j], 1, 10) == '{"fanout":' then
      redis.call('ZADD', KEYS[4], 'XX', ARGV[5], cjson.decode(taken[j])['fanout'])
    else
      -- 0.1 ms apart: the scheduler sends them back in the order taken
      table.insert(args, tonumber(ARGV[2]) + (j - 1) / 10000)
      table.insert(args, taken[j])
    end
    if #args >= 1000 or (j == #taken and #args > 0) then
      redis.call('ZADD', KEYS[3], unpack(args))
      args = {}
    end
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
