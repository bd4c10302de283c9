-- Library: `now` in ms, prepended to the endpoint state scripts.
-- ARGV[1] now (ms); 0 means Redis TIME, one clock for every worker.
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
