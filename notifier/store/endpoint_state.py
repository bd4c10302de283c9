"""Shared per-endpoint state in Redis: circuit breaker, concurrency, rate limit.

An *endpoint* here is a guard key, ``PROJECT:scheme://host:port`` (see
``guard.endpoint_key``): breaker, probe, proof and concurrency cap belong to one
project's use of one endpoint, so one tenant's failures never defer another's
deliveries, and enabling a subscription resets only its own project's state.

Keys (built with ``storage._key``, prefixed ``notifier:``)::

    breaker:ENDPOINT     HASH  failures, first_failure_ms, open_until_ms,
                               cooloff_ms, opened_ms, failed_probes,
                               recovering (a probe succeeded: one task at
                               a time until the next success)
    breakers:open        SET   endpoints whose breaker has opened and not closed
    probe:ENDPOINT       STRING "TOKEN:STARTED_MS" of the half-open probe under
                               way (expires)
    inflight:ENDPOINT    ZSET  lease token -> lease expiry (ms); one per task
                               delivering to the endpoint
    proven:ENDPOINT      STRING it answered in time lately (expires): it may
                               have the full concurrency cap, else one
    throttle:SUBID       STRING GCRA theoretical arrival time (ms)
    held:SUBID           LIST  deliveries held while the subscription is disabled
                               (expires when the longest-lived message they
                               refer to must have: ``HELD_TTL_SECONDS``)

Every decision is one Lua script per batch. Both scripts take ``now`` (ms) as
an argument; 0 means Redis ``TIME``, which is what the workers pass, so they
all share one clock (tests inject their own).

The breaker: ``threshold`` failures in a row open it for ``cooloff``; once that
has passed it is half-open and admits one probe. Only the probe's failure
doubles the cool-off (up to the maximum): failures recorded while it is open or
half-open come from attempts admitted before it opened, the same outage, and
change nothing. The probe's success starts the ramp back: one task at a time
(``recovering``) until the next success closes the breaker and the endpoint
has its full concurrency cap again.
"""

import json

from notifier.store.storage import _key, dumps

#: Held deliveries refer to messages, which live at most [transport]
#: max_message_ttl (14 days by default): held ones are kept that long after the
#: last was held, so a subscription that expires while disabled leaves nothing.
HELD_TTL_SECONDS = 14 * 86400


def subscription_keys(subscription_id):
    """The keys of this module that belong to one subscription alone."""
    return [_key("held", subscription_id), _key("throttle", subscription_id)]


CLOCK_LUA = """
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV[1] now (ms; 0: Redis TIME), ARGV[2] key prefix, ARGV[3] lease ms,
# ARGV[4] probe ms, ARGV[5] attempt ms (longest one attempt can take), then
# per group of 5: endpoint, wanted count, concurrency cap, subscription id,
# rate per second (0 = unlimited).
# Returns per group: {admitted, wait_ms, proven, token...}: admitted
# deliveries may go now (each holds a lease token to release); the rest wait
# wait_ms. An endpoint is proven while it answered in time lately (with
# success or not: what is guarded against here is hanging, not failing); an
# unproven one (new, or it timed out) gets one task in flight, so a hanging
# endpoint ties up one worker, not all of them; so does a recovering one.
ADMIT_LUA = (
    CLOCK_LUA
    + """
local prefix, lease, probe_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local attempt_ms = tonumber(ARGV[5])
local out = {}
local held = {}  -- endpoints this task already holds a lease on
for i = 6, #ARGV, 5 do
  local endpoint, wanted = ARGV[i], tonumber(ARGV[i + 1])
  local cap, sub, rate = tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4])
  local admitted, wait, probe = wanted, 0, false
  local breaker = redis.call('HMGET', prefix .. 'breaker:' .. endpoint,
                             'open_until_ms', 'recovering')
  local open_until = tonumber(breaker[1] or '0')
  if open_until > now then
    admitted, wait = 0, open_until - now
  elseif open_until > 0 then
    -- half-open: one probe; the others wait for its outcome, asking again
    -- about as long as it has taken so far (a quick answer lets them go
    -- within a second, a hanging probe is asked about less and less often)
    local running = redis.call('GET', prefix .. 'probe:' .. endpoint)
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
  local inflight = prefix .. 'inflight:' .. endpoint
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local proven = redis.call('EXISTS', prefix .. 'proven:' .. endpoint)
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
    if admitted == 0 then probe = false end
    redis.call('SET', key, tostring(tat), 'PX', math.ceil(burst + interval) + 1000)
  end
  local entry = {admitted, wait, proven}
  if admitted > 0 and not held[endpoint] then
    local token = redis.call('INCR', prefix .. 'inflight:seq')
    held[endpoint] = token
    redis.call('ZADD', inflight, now + lease, token)
    redis.call('PEXPIRE', inflight, lease * 2)
    table.insert(entry, token)
  end
  if probe then
    redis.call('SET', prefix .. 'probe:' .. endpoint, held[endpoint] .. ':' .. now,
               'PX', probe_ms)
  end
  table.insert(out, entry)
end
return out
"""
)

# ARGV[1] now (ms; 0: Redis TIME), ARGV[2] key prefix, ARGV[3] threshold,
# ARGV[4] base cool-off ms, ARGV[5] max cool-off ms, ARGV[6] how long an
# answer in time proves an endpoint (ms), then triples: endpoint, outcome
# ("ok"; "fail"; "answered": a permanent failure, which leaves the breaker
# alone; "slow": it timed out, so it is no longer proven), the lease token
# of the task that made the attempt ("" if none).
# Returns per triple {state, first_failure_ms}: state "closed", "open" or
# "opened" (this outcome opened it, or a failed probe opened it again).
RECORD_LUA = (
    CLOCK_LUA
    + """
local prefix, threshold = ARGV[2], tonumber(ARGV[3])
local base, max_cooloff = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i = 7, #ARGV, 3 do
  local endpoint, outcome, token = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = prefix .. 'breaker:' .. endpoint
  local probe_key = prefix .. 'probe:' .. endpoint
  local running = redis.call('GET', probe_key)
  local is_probe = token ~= '' and running ~= false
                   and string.match(running, '^(%d+):') == token
  if is_probe then redis.call('DEL', probe_key) end
  if outcome == 'slow' then
    redis.call('DEL', prefix .. 'proven:' .. endpoint)
  else  -- it answered in time, even if with an error
    redis.call('SET', prefix .. 'proven:' .. endpoint, '1', 'PX', ARGV[6])
  end
  local open_until = tonumber(redis.call('HGET', key, 'open_until_ms') or '0')
  if outcome == 'ok' then
    redis.call('DEL', probe_key)
    redis.call('SREM', prefix .. 'breakers:open', endpoint)
    if open_until > 0 then
      -- it answers again: ramp back, one task at a time until the next success
      local cooloff = redis.call('HGET', key, 'cooloff_ms') or base
      redis.call('DEL', key)
      redis.call('HSET', key, 'recovering', 1, 'cooloff_ms', cooloff)
      redis.call('PEXPIRE', key, 30 * 86400 * 1000)
    else
      redis.call('DEL', key)
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
                 'opened_ms', now)
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
                   'opened_ms', now)
        redis.call('HDEL', key, 'recovering')
        redis.call('SADD', prefix .. 'breakers:open', endpoint)
        state = 'opened'
      end
    end
    redis.call('PEXPIRE', key, 30 * 86400 * 1000)
    table.insert(out, {state, tonumber(redis.call('HGET', key, 'first_failure_ms') or '0')})
  end
end
return out
"""
)


class EndpointState:
    """Admit deliveries to endpoints and record how they went.

    ``clock`` (epoch seconds) is for tests; by default the scripts use Redis
    ``TIME``, one clock for every worker.
    """

    def __init__(
        self,
        redis_client,
        lease_seconds=60,
        probe_seconds=30,
        attempt_seconds=30,
        proven_seconds=600,
        clock=None,
    ):
        self.redis = redis_client
        self.lease_ms = int(lease_seconds * 1000)
        self.probe_ms = int(probe_seconds * 1000)
        self.attempt_ms = int(attempt_seconds * 1000)
        self.proven_ms = int(proven_seconds * 1000)
        self.clock = clock
        self._admit = redis_client.register_script(ADMIT_LUA)
        self._record = redis_client.register_script(RECORD_LUA)

    def _now_ms(self):
        return int(self.clock() * 1000) if self.clock else 0

    def admit(self, groups):
        """Admit groups of (endpoint, wanted, cap, subscription_id, rate).

        Return a list of (admitted count, wait seconds, proven, lease tokens).
        """
        if not groups:
            return []
        args = [self._now_ms(), _key(""), self.lease_ms, self.probe_ms, self.attempt_ms]
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
        """Record (endpoint, outcome[, lease token]) outcomes, outcome "ok",
        "fail", "answered" or "slow" (True/False for ok/fail); the token is
        that of the task which made the attempt (it tells the half-open
        probe's outcome from the others). Return {endpoint: (state,
        first_failure_at)}, state "closed", "open" or "opened" (by this call).
        """
        if not outcomes:
            return {}
        args = [
            self._now_ms(),
            _key(""),
            threshold,
            int(cooloff_seconds * 1000),
            int(max_cooloff_seconds * 1000),
            self.proven_ms,
        ]
        for endpoint, outcome, *token in outcomes:
            outcome = {True: "ok", False: "fail"}.get(outcome, outcome)
            args += [endpoint, outcome, str(token[0]) if token and token[0] else ""]
        result = self._record(args=args)
        states = {}
        for (endpoint, *_), (state, first) in zip(outcomes, result):
            state = state.decode() if isinstance(state, bytes) else state
            if states.get(endpoint, ("",))[0] == "opened" and state == "open":
                state = "opened"  # opened by an earlier outcome of this batch
            states[endpoint] = (state, first / 1000.0 if first else None)
        return states

    def reset(self, endpoint):
        """Close the breaker and forget the proof of one endpoint (guard key)."""
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
