"""Shared per-endpoint state in Redis: circuit breaker, concurrency, rate limit.

An *endpoint* here is a guard key, ``PROJECT:scheme://host:port`` (see
``guard.endpoint_key``): breaker, probe, proof and concurrency cap belong to one
project's use of one endpoint, so one tenant's failures never defer another's
deliveries, and enabling a subscription resets only its own project's state.

Its keys (``breaker:``, ``breakers:open``, ``probe:``, ``inflight:``,
``proven:``, ``throttle:``, ``held:``) are drawn in ``notifier.store.keys``.

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

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from redis import Redis
from redis.exceptions import NoScriptError

from notifier.store import keys, lua
from notifier.store.boundary import translate_errors
from notifier.store.records import Record, dumps, loads

#: Held deliveries refer to messages, which live at most [transport]
#: max_message_ttl (14 days by default): held ones are kept that long after the
#: last was held, so a subscription that expires while disabled leaves nothing.
HELD_TTL_SECONDS = 14 * 86400

#: (endpoint, wanted count, concurrency cap, subscription id, rate per second)
Group = tuple[str, int, int, str, float | None]
#: (admitted count, wait seconds, proven, lease tokens)
Admission = tuple[int, float, bool, list[int]]


@translate_errors
class EndpointState:
    """Admit deliveries to endpoints and record how they went.

    ``clock`` (epoch seconds) is for tests; by default the scripts use Redis
    ``TIME``, one clock for every worker.
    """

    def __init__(
        self,
        redis_client: Redis,
        lease_seconds: float = 60,
        probe_seconds: float = 30,
        attempt_seconds: float = 30,
        proven_seconds: float = 600,
        clock: Any = None,
    ) -> None:
        self.redis = redis_client
        self.lease_ms = int(lease_seconds * 1000)
        self.probe_ms = int(probe_seconds * 1000)
        self.attempt_ms = int(attempt_seconds * 1000)
        self.proven_ms = int(proven_seconds * 1000)
        self.clock = clock
        self._admit = lua.register(redis_client, "admit")
        self._record = lua.register(redis_client, "record")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000) if self.clock else 0

    def admit(self, groups: Sequence[Group]) -> list[Admission]:
        """Admit groups of (endpoint, wanted, cap, subscription_id, rate).

        Return a list of (admitted count, wait seconds, proven, lease tokens).
        """
        if not groups:
            return []
        script_keys = [keys.lease_sequence()]
        args: list[Any] = [self._now_ms(), self.lease_ms, self.probe_ms, self.attempt_ms]
        for endpoint, wanted, cap, subscription_id, rate in groups:
            script_keys += [
                keys.breaker(endpoint),
                keys.probe(endpoint),
                keys.inflight(endpoint),
                keys.proven(endpoint),
                keys.throttle(subscription_id),
            ]
            args += [endpoint, wanted, cap, rate or 0]
        return [
            (int(entry[0]), int(entry[1]) / 1000.0, bool(entry[2]), entry[3:])
            for entry in self._admit(keys=script_keys, args=args)
        ]

    def release(self, tokens_by_endpoint: Mapping[str, Sequence[int]]) -> None:
        """Give back concurrency leases once their deliveries are done."""
        if not any(tokens_by_endpoint.values()):
            return
        pipe = self.redis.pipeline(transaction=False)
        for endpoint, tokens in tokens_by_endpoint.items():
            if tokens:
                pipe.zrem(keys.inflight(endpoint), *tokens)
        pipe.execute()

    def record(
        self,
        outcomes: Iterable[Sequence[Any]],
        threshold: int,
        cooloff_seconds: float,
        max_cooloff_seconds: float,
        release: Mapping[str, Sequence[int]] | None = None,
    ) -> dict[str, tuple[str, float | None]]:
        """Record (endpoint, outcome[, lease token]) outcomes, outcome "ok",
        "fail", "answered" or "slow" (True/False for ok/fail); the token is
        that of the task which made the attempt (it tells the half-open
        probe's outcome from the others). Return {endpoint: (state,
        first_failure_at)}, state "closed", "open" or "opened" (by this call).

        ``release``: concurrency leases to give back first, in the same round
        trip (``release``).
        """
        outcomes = list(outcomes)
        pipe = self.redis.pipeline(transaction=False)
        for endpoint, tokens in (release or {}).items():
            if tokens:
                pipe.zrem(keys.inflight(endpoint), *tokens)
        if not outcomes:
            if len(pipe):
                pipe.execute()
            return {}
        script_keys = [keys.open_breakers(), keys.lease_sequence()]
        args: list[Any] = [
            self._now_ms(),
            threshold,
            int(cooloff_seconds * 1000),
            int(max_cooloff_seconds * 1000),
            self.proven_ms,
        ]
        for endpoint, outcome, *token in outcomes:
            outcome = {True: "ok", False: "fail"}.get(outcome, outcome)
            script_keys += [keys.breaker(endpoint), keys.probe(endpoint), keys.proven(endpoint)]
            args += [endpoint, outcome, str(token[0]) if token and token[0] else ""]
        # EVALSHA in the pipeline itself: redis-py's own pipelined scripts ask
        # SCRIPT EXISTS first, one more round trip each time.
        pipe.evalsha(self._record.sha, len(script_keys), *script_keys, *args)
        try:
            result = pipe.execute()[-1]
        except NoScriptError:  # Redis restarted since: load it (the ZREMs ran)
            result = self._record(keys=script_keys, args=args)
        states: dict[str, tuple[str, float | None]] = {}
        for (endpoint, *_), (state, first) in zip(outcomes, result):
            state = state.decode() if isinstance(state, bytes) else state
            if states.get(endpoint, ("",))[0] == "opened" and state == "open":
                state = "opened"  # opened by an earlier outcome of this batch
            states[endpoint] = (state, first / 1000.0 if first else None)
        return states

    def reset(self, endpoint: str) -> None:
        """Close the breaker and forget the proof of one endpoint (guard key)."""
        self.redis.delete(keys.breaker(endpoint), keys.probe(endpoint), keys.proven(endpoint))
        self.redis.srem(keys.open_breakers(), endpoint)

    def breaker(self, endpoint: str) -> dict[str, str]:
        return cast(dict[str, str], self.redis.hgetall(keys.breaker(endpoint)))

    def hold(self, subscription_id: str, deliveries: Sequence[Record]) -> None:
        if deliveries:
            pipe = self.redis.pipeline(transaction=False)
            pipe.rpush(keys.held(subscription_id), *[dumps(d) for d in deliveries])
            pipe.expire(keys.held(subscription_id), HELD_TTL_SECONDS)
            pipe.execute()

    def take_held(self, subscription_id: str, limit: int = 100000) -> list[Record]:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(keys.held(subscription_id), 0, limit - 1)
        pipe.ltrim(keys.held(subscription_id), limit, -1)
        held, _ = pipe.execute()
        return [loads(h) for h in held]

    def held_count(self, subscription_id: str) -> int:
        return int(self.redis.llen(keys.held(subscription_id)))
