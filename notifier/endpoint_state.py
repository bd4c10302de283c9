"""Shared per-endpoint state in Redis: circuit breaker, concurrency, rate limit.

Keys (built with ``storage._key``, prefixed ``notifier:``)::

    breaker:ENDPOINT     HASH  failures, first_failure_ms, open_until_ms, cooloff_ms
    breakers:open        SET   endpoints whose breaker has opened and not closed
    probe:ENDPOINT       STRING a half-open probe is under way (expires)
    inflight:ENDPOINT    ZSET  lease token -> lease expiry (ms); one per task
                               delivering to the endpoint
    proven:ENDPOINT      STRING it answered in time lately (expires): it may
                               have the full concurrency cap, else one
    throttle:SUBID       STRING GCRA theoretical arrival time (ms)
    held:SUBID           LIST  deliveries held while the subscription is disabled
                               (expires when the longest-lived message they
                               refer to must have: ``HELD_TTL_SECONDS``)

Every decision is one Lua script per batch, using Redis ``TIME`` so all
workers share one clock.
"""

import json

from notifier.storage import _key, dumps

#: Held deliveries refer to messages, which live at most [transport]
#: max_message_ttl (14 days by default): held ones are kept that long after the
#: last was held, so a subscription that expires while disabled leaves nothing.
HELD_TTL_SECONDS = 14 * 86400


def subscription_keys(subscription_id):
    """The keys of this module that belong to one subscription alone."""
    return [_key("held", subscription_id), _key("throttle", subscription_id)]


# ARGV[1] key prefix, ARGV[2] lease ms, ARGV[3] probe ms, ARGV[4] attempt ms
# (longest one attempt can take), then per group of 5:
#   endpoint, wanted count, concurrency cap, subscription id, rate per second
#   (0 = unlimited).
# Returns per group: {admitted, wait_ms, proven, token...}: admitted
# deliveries may go now (each holds a lease token to release); the rest wait
# wait_ms. An endpoint is proven while it answered in time lately (with
# success or not: what is guarded against here is hanging, not failing); an
# unproven one (new, or it timed out) gets one task in flight, so a hanging
# endpoint ties up one worker, not all of them.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, lease, probe_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local attempt_ms = tonumber(ARGV[4])
local out = {}
local held = {}  -- endpoints this task already holds a lease on
for i = 5, #ARGV, 5 do
  local endpoint, wanted = ARGV[i], tonumber(ARGV[i + 1])
  local cap, sub, rate = tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4])
  local admitted, wait = wanted, 0
  local open_until = tonumber(redis.call('HGET', prefix .. 'breaker:' .. endpoint, 'open_until_ms') or '0')
  if open_until > now then
    admitted, wait = 0, open_until - now
  elseif open_until > 0 then
    if redis.call('SET', prefix .. 'probe:' .. endpoint, '1', 'NX', 'PX', probe_ms) then
      admitted = 1
    else
      -- a probe is under way: wait for its outcome, not in a busy loop
      admitted, wait = 0, math.max(redis.call('PTTL', prefix .. 'probe:' .. endpoint), 1000)
    end
  end
  -- A task posts each endpoint's deliveries one after another: one lease per
  -- endpoint per task is what it really holds in flight, whatever the
  -- number of its subscriptions there.
  local inflight = prefix .. 'inflight:' .. endpoint
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local proven = redis.call('EXISTS', prefix .. 'proven:' .. endpoint)
  -- An unproven endpoint has one attempt at a time. A lease older than one
  -- attempt can take is not counted: its task timed out there (and defers
  -- the rest) or died (a worker killed, Redis lost mid-task) before giving
  -- the lease back.
  local busy_since = '-inf'
  if proven == 0 then cap, busy_since = 1, '(' .. (now - attempt_ms + lease) end
  if admitted > 0 and not held[endpoint]
      and redis.call('ZCOUNT', inflight, busy_since, '+inf') >= cap then
    admitted = 0
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
    local key = prefix .. 'throttle:' .. sub
    local interval = 1000 / rate
    local burst = interval  -- strict spacing: never more than rate in any second
    local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
    local granted = 0
    while granted < admitted and tat + interval - now <= burst do
      tat = tat + interval
      granted = granted + 1
    end
    if granted < admitted then
      wait = math.max(wait, math.ceil(tat + interval - burst - now))
    end
    admitted = granted
    redis.call('SET', key, tostring(tat), 'PX', math.ceil(burst + interval) + 1000)
  end
  local entry = {admitted, wait, proven}
  if admitted > 0 and not held[endpoint] then
    held[endpoint] = true
    local token = redis.call('INCR', prefix .. 'inflight:seq')
    redis.call('ZADD', inflight, now + lease, token)
    redis.call('PEXPIRE', inflight, lease * 2)
    table.insert(entry, token)
  end
  table.insert(out, entry)
end
return out
"""

# ARGV[1] key prefix, ARGV[2] threshold, ARGV[3] base cool-off ms,
# ARGV[4] max cool-off ms, ARGV[5] how long an answer in time proves an
# endpoint (ms), then pairs: endpoint, outcome ("ok"; "fail"; "answered": a
# permanent failure, which leaves the breaker alone; "slow": it timed out, so
# it is no longer proven).
# Returns per pair {state, first_failure_ms}: state "closed" or "open".
RECORD_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, threshold = ARGV[1], tonumber(ARGV[2])
local base, max_cooloff = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 6, #ARGV, 2 do
  local key = prefix .. 'breaker:' .. ARGV[i]
  redis.call('DEL', prefix .. 'probe:' .. ARGV[i])
  if ARGV[i + 1] == 'slow' then
    redis.call('DEL', prefix .. 'proven:' .. ARGV[i])
  else  -- it answered in time, even if with an error
    redis.call('SET', prefix .. 'proven:' .. ARGV[i], '1', 'PX', ARGV[5])
  end
  if ARGV[i + 1] == 'ok' then
    redis.call('DEL', key)
    redis.call('SREM', prefix .. 'breakers:open', ARGV[i])
    table.insert(out, {'closed', 0})
  elseif ARGV[i + 1] == 'answered' then  -- a permanent failure: the breaker as it is
    local open_until = tonumber(redis.call('HGET', key, 'open_until_ms') or '0')
    table.insert(out, {open_until > now and 'open' or 'closed',
                       tonumber(redis.call('HGET', key, 'first_failure_ms') or '0')})
  else
    local failures = redis.call('HINCRBY', key, 'failures', 1)
    redis.call('HSETNX', key, 'first_failure_ms', now)
    local state = 'closed'
    if failures >= threshold then
      local cooloff = tonumber(redis.call('HGET', key, 'cooloff_ms') or '0')
      if cooloff == 0 then cooloff = base else cooloff = math.min(cooloff * 2, max_cooloff) end
      redis.call('HSET', key, 'cooloff_ms', cooloff, 'open_until_ms', now + cooloff)
      redis.call('SADD', prefix .. 'breakers:open', ARGV[i])
      state = 'open'
    end
    redis.call('PEXPIRE', key, 30 * 86400 * 1000)
    table.insert(out, {state, tonumber(redis.call('HGET', key, 'first_failure_ms'))})
  end
end
return out
"""


class EndpointState:
    """Admit deliveries to endpoints and record how they went."""

    def __init__(
        self,
        redis_client,
        lease_seconds=60,
        probe_seconds=30,
        attempt_seconds=30,
        proven_seconds=600,
    ):
        self.redis = redis_client
        self.lease_ms = int(lease_seconds * 1000)
        self.probe_ms = int(probe_seconds * 1000)
        self.attempt_ms = int(attempt_seconds * 1000)
        self.proven_ms = int(proven_seconds * 1000)
        self._admit = redis_client.register_script(ADMIT_LUA)
        self._record = redis_client.register_script(RECORD_LUA)

    def admit(self, groups):
        """Admit groups of (endpoint, wanted, cap, subscription_id, rate).

        Return a list of (admitted count, wait seconds, proven, lease tokens).
        """
        if not groups:
            return []
        args = [_key(""), self.lease_ms, self.probe_ms, self.attempt_ms]
        for endpoint, wanted, cap, subscription_id, rate in groups:
            args += [endpoint, wanted, cap, subscription_id, rate or 0]
        return [
            (int(entry[0]), int(entry[1]) / 1000.0, bool(entry[2]), entry[3:])
            for entry in self._admit(args=args)
        ]

    def release(self, tokens_by_endpoint):
        """Give back concurrency leases once their deliveries are done."""
        if not any(tokens_by_endpoint.values()):
            return
        pipe = self.redis.pipeline(transaction=False)
        for endpoint, tokens in tokens_by_endpoint.items():
            if tokens:
                pipe.zrem(_key("inflight", endpoint), *tokens)
        pipe.execute()

    def record(self, outcomes, threshold, cooloff_seconds, max_cooloff_seconds):
        """Record (endpoint, outcome) pairs, outcome "ok", "fail", "answered"
        or "slow" (True/False for ok/fail); return {endpoint: (state,
        first_failure_at)}."""
        if not outcomes:
            return {}
        args = [
            _key(""),
            threshold,
            int(cooloff_seconds * 1000),
            int(max_cooloff_seconds * 1000),
            self.proven_ms,
        ]
        for endpoint, outcome in outcomes:
            args += [endpoint, {True: "ok", False: "fail"}.get(outcome, outcome)]
        result = self._record(args=args)
        return {
            endpoint: (
                state.decode() if isinstance(state, bytes) else state,
                first / 1000.0 if first else None,
            )
            for (endpoint, _), (state, first) in zip(outcomes, result)
        }

    def reset(self, endpoint):
        self.redis.delete(
            _key("breaker", endpoint), _key("probe", endpoint), _key("proven", endpoint)
        )
        self.redis.srem(_key("breakers", "open"), endpoint)

    def breaker(self, endpoint):
        return self.redis.hgetall(_key("breaker", endpoint))

    def hold(self, subscription_id, deliveries):
        if deliveries:
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(_key("held", subscription_id), *[dumps(d) for d in deliveries])
            pipe.expire(_key("held", subscription_id), HELD_TTL_SECONDS)
            pipe.execute()

    def take_held(self, subscription_id, limit=100000):
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(_key("held", subscription_id), 0, limit - 1)
        pipe.ltrim(_key("held", subscription_id), limit, -1)
        held, _ = pipe.execute()
        return [json.loads(h) for h in held]

    def held_count(self, subscription_id):
        return self.redis.llen(_key("held", subscription_id))
