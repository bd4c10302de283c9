-- Record a batch's attempts: append them to their logs, flag the ones that ran.
-- KEYS: the done flags (done:...), then the logs (attempts:sub:..., attempts:msg:...)
-- ARGV[1] number of done flags, ARGV[2] their TTL (s), ARGV[3] the most records
-- a log keeps, then per log: its TTL (s), the number of its records, the
-- records (oldest first: each is pushed to the head, newest ends first).
-- A log is trimmed only when the push took it over the cap: most never are,
-- so most batches cost one LPUSH and one EXPIRE per log (issue 21).
local flags, done_ttl, cap = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
for i = 1, flags do
  redis.call('SET', KEYS[i], '1', 'EX', done_ttl)
end
local a = 4
for k = flags + 1, #KEYS do
  local ttl, count = ARGV[a], tonumber(ARGV[a + 1])
  local length = 0
  for i = a + 2, a + 1 + count, 1000 do
    length = redis.call('LPUSH', KEYS[k], unpack(ARGV, i, math.min(i + 999, a + 1 + count)))
  end
  if length > cap then redis.call('LTRIM', KEYS[k], 0, cap - 1) end
  redis.call('EXPIRE', KEYS[k], ttl)
  a = a + 2 + count
end
return 0
