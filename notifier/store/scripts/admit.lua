-- Admit deliveries to endpoints: breaker, concurrency cap, rate limit.
-- KEYS[1] inflight:seq, then per group, in fives: breaker:E, probe:E,
--   inflight:E, proven:E, throttle:SUBID
-- ARGV[1] now (ms; 0: Redis TIME, see clock.lua), ARGV[2] lease ms, ARGV[3]
-- probe ms, ARGV[4] attempt ms (longest one attempt can take), then per group,
-- in fours: endpoint, wanted count, concurrency cap, rate per second
-- (0 = unlimited).
-- Returns per group: {admitted, wait_ms, proven, token...}: admitted
-- deliveries may go now (each holds a lease token to release); the rest wait
-- wait_ms. An endpoint is proven while it answered in time lately (with
-- success or not: what is guarded against here is hanging, not failing); an
-- unproven one (new, or it timed out) gets one task in flight, so a hanging
-- endpoint ties up one worker, not all of them; so does a recovering one.
local lease, probe_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local attempt_ms = tonumber(ARGV[4])
local out = {}
local held = {}  -- endpoints this task already holds a lease on
local group = 0
for i = 5, #ARGV, 4 do
  local k = 1 + 5 * group
  group = group + 1
  local breaker_key, probe_key, inflight = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local proven_key, throttle_key = KEYS[k + 4], KEYS[k + 5]
  local endpoint, wanted = ARGV[i], tonumber(ARGV[i + 1])
  local cap, rate = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local admitted, wait, probe = wanted, 0, false
  local breaker = redis.call('HMGET', breaker_key, 'open_until_ms', 'recovering')
  local open_until = tonumber(breaker[1] or '0')
  if open_until > now then
    admitted, wait = 0, open_until - now
  elseif open_until > 0 then
    -- half-open: one probe; the others wait for its outcome, asking again
    -- about as long as it has taken so far (a quick answer lets them go
    -- within a second, a hanging probe is asked about less and less often)
    local running = redis.call('GET', probe_key)
    if running then
      local started = tonumber(string.match(running, ':(%d+)$') or now)
      admitted, wait = 0, math.max(250, math.min(now - started, attempt_ms))
    else
      admitted, probe = 1, true
    end
  end
  -- A task posts each endpoint's deliveries one after another: one lease per
  -- endpoint per task is what it really holds in flight, whatever the
  -- number of its subscriptions there.
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local proven = redis.call('EXISTS', proven_key)
  -- An unproven endpoint has one attempt at a time. A lease older than one
  -- attempt can take is not counted: its task timed out there (and defers
  -- the rest) or died (a worker killed, Redis lost mid-task) before giving
  -- the lease back.
  local busy_since = '-inf'
  if proven == 0 or breaker[2] then cap, busy_since = 1, '(' .. (now - attempt_ms + lease) end
  if admitted > 0 and not held[endpoint]
      and redis.call('ZCOUNT', inflight, busy_since, '+inf') >= cap then
    admitted, probe = 0, false
    if wait == 0 and proven == 1 then wait = 500 end
    if wait == 0 then
      -- as long as the attempt in flight has taken so far (a quick one
      -- proves the endpoint soon; a hanging one is asked about less and
      -- less often), never past the time it must have ended
      local oldest = redis.call('ZRANGEBYSCORE', inflight, busy_since, '+inf',
                                'WITHSCORES', 'LIMIT', 0, 1)
      local started = tonumber(oldest[2]) - lease
      wait = math.max(100, math.min(now - started, started + attempt_ms - now))
    end
  end
  if rate > 0 and admitted > 0 then
    local interval = 1000 / rate
    local burst = interval  -- strict spacing: never more than rate in any second
    local tat = math.max(tonumber(redis.call('GET', throttle_key) or '0'), now)
    local granted = 0
    while granted < admitted and tat + interval - now <= burst do
      tat = tat + interval
      granted = granted + 1
    end
    if granted < admitted then
      wait = math.max(wait, math.ceil(tat + interval - burst - now))
    end
    admitted = granted
    if admitted == 0 then probe = false end
    redis.call('SET', throttle_key, tostring(tat), 'PX', math.ceil(burst + interval) + 1000)
  end
  local entry = {admitted, wait, proven}
  if admitted > 0 and not held[endpoint] then
    local token = redis.call('INCR', KEYS[1])
    held[endpoint] = token
    redis.call('ZADD', inflight, now + lease, token)
    redis.call('PEXPIRE', inflight, lease * 2)
    table.insert(entry, token)
  end
  if probe then
    redis.call('SET', probe_key, held[endpoint] .. ':' .. now, 'PX', probe_ms)
  end
  table.insert(out, entry)
end
return out
