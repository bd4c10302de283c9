-- Record a batch's attempts: append them to their logs, flag the ones that ran.
-- KEYS: the done flags' hashes (done:MID), then the logs (attempts:sub:...,
-- attempts:msg:..., attempts:ctl:...)
-- ARGV[1] number of done hashes, ARGV[2] their TTL (s), ARGV[3] the most
-- records a log keeps, then per done hash: the number of its fields, the
-- fields (SID:R:N); then per log: its TTL (s), the number of its records, the
-- records (oldest first: each is pushed to the head, newest ends first).
-- A log is trimmed only when the push took it over the cap: most never are,
-- so most batches cost one LPUSH and one EXPIRE per log (issue 21).
local flags, done_ttl, cap = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local a = 4
for k = 1, flags do
  local count = tonumber(ARGV[a])
  for i = a + 1, a + count, 500 do
    local last = math.min(i + 499, a + count)
    local pairs_ = {}
    for j = i, last do
      pairs_[#pairs_ + 1] = ARGV[j]
      pairs_[#pairs_ + 1] = '1'
    end
    redis.call('HSET', KEYS[k], unpack(pairs_))
  end
  redis.call('EXPIRE', KEYS[k], done_ttl)
  a = a + 1 + count
end
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
