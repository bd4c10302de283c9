-- Record how attempts at endpoints went: the circuit breaker and the proof.
-- KEYS[1] breakers:open, KEYS[2] inflight:seq (the last lease token handed
-- out), then per outcome, in threes: breaker:E, probe:E, proven:E
-- ARGV[1] now (ms; 0: Redis TIME, see clock.lua), ARGV[2] threshold, ARGV[3]
-- base cool-off ms, ARGV[4] max cool-off ms, ARGV[5] how long an answer in
-- time proves an endpoint (ms), then per outcome, in threes: endpoint,
-- outcome ("ok"; "fail"; "answered": a permanent failure, which leaves the
-- breaker alone; "slow": it timed out, so it is no longer proven), the lease
-- token of the task that made the attempt ("" if none).
-- Returns per outcome {state, first_failure_ms}: state "closed", "open" or
-- "opened" (this outcome opened it, or a failed probe opened it again).
local threshold = tonumber(ARGV[2])
local base, max_cooloff = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local n = 0
for i = 6, #ARGV, 3 do
  local k = 2 + 3 * n
  n = n + 1
  local key, probe_key, proven_key = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local endpoint, outcome, token = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local running = redis.call('GET', probe_key)
  local is_probe = token ~= '' and running ~= false
                   and string.match(running, '^(%d+):') == token
  if is_probe then redis.call('DEL', probe_key) end
  if outcome == 'slow' then
    redis.call('DEL', proven_key)
  else  -- it answered in time, even if with an error
    redis.call('SET', proven_key, '1', 'PX', ARGV[5])
  end
  local open_until = tonumber(redis.call('HGET', key, 'open_until_ms') or '0')
  -- An attempt admitted before the breaker opened (its lease token is no
  -- later than the last one handed out then) tells nothing new: its success,
  -- like its failure, leaves an open breaker as it is.
  local before_opening = open_until > 0 and token ~= '' and not is_probe
      and tonumber(token) <= tonumber(redis.call('HGET', key, 'opened_token') or '-1')
  if outcome == 'ok' and before_opening then
    table.insert(out, {open_until > now and 'open' or 'closed', 0})
  elseif outcome == 'ok' then
    -- (the healthy case, one of every batch: no probe, no breaker state,
    -- nothing to clear; the calls below run only when there is)
    if running ~= false and not is_probe then redis.call('DEL', probe_key) end
    if open_until > 0 then
      redis.call('SREM', KEYS[1], endpoint)
      -- it answers again: ramp back, one task at a time until the next success
      local cooloff = redis.call('HGET', key, 'cooloff_ms') or base
      redis.call('DEL', key)
      redis.call('HSET', key, 'recovering', 1, 'cooloff_ms', cooloff)
      redis.call('PEXPIRE', key, 30 * 86400 * 1000)
    elseif redis.call('DEL', key) == 1 then  -- failures counted, or recovering
      redis.call('SREM', KEYS[1], endpoint)
    end
    table.insert(out, {'closed', 0})
  elseif outcome == 'answered' then  -- a permanent failure: the breaker as it is
    table.insert(out, {open_until > now and 'open' or 'closed',
                       tonumber(redis.call('HGET', key, 'first_failure_ms') or '0')})
  else
    local state = 'closed'
    if open_until > 0 and is_probe then
      -- the half-open probe failed: the only failure that doubles the cool-off
      local cooloff = tonumber(redis.call('HGET', key, 'cooloff_ms') or base)
      cooloff = math.min(math.max(cooloff, base) * 2, max_cooloff)
      redis.call('HSET', key, 'cooloff_ms', cooloff, 'open_until_ms', now + cooloff,
                 'opened_ms', now, 'opened_token', redis.call('GET', KEYS[2]) or 0)
      redis.call('HINCRBY', key, 'failed_probes', 1)
      state = 'opened'
    elseif open_until > 0 then
      -- admitted before the breaker opened: the same outage, counted already
      state = 'open'
    else
      local failures = redis.call('HINCRBY', key, 'failures', 1)
      redis.call('HSETNX', key, 'first_failure_ms', now)
      if failures >= threshold then
        -- a recovering endpoint keeps the cool-off it had; else the base
        local cooloff = tonumber(redis.call('HGET', key, 'cooloff_ms') or base)
        redis.call('HSET', key, 'cooloff_ms', cooloff, 'open_until_ms', now + cooloff,
                   'opened_ms', now, 'opened_token', redis.call('GET', KEYS[2]) or 0)
        redis.call('HDEL', key, 'recovering')
        redis.call('SADD', KEYS[1], endpoint)
        state = 'opened'
      end
    end
    redis.call('PEXPIRE', key, 30 * 86400 * 1000)
    table.insert(out, {state, tonumber(redis.call('HGET', key, 'first_failure_ms') or '0')})
  end
end
return out
