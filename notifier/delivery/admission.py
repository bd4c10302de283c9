"""Admission: protect endpoints and the fleet from each other.

Before a batch is delivered, each endpoint's circuit breaker, its cap on
deliveries in flight across all workers, and each subscription's rate limit
decide what may go now; the rest waits in the retry schedule (not counted
as attempts, never dropped). After the batch, outcomes feed the breakers;
an endpoint failing for ``disable_after_failing_seconds``, or answering
410 Gone, gets its subscription disabled: its deliveries are then held until
the subscription is enabled again.
"""

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from notifier.core import netpolicy
from notifier.core.model import Attempt, Outcome
from notifier.delivery.jobs import Deferred, Job, Record
from notifier.observability import metrics
from notifier.store.endpoint_state import EndpointState

#: Errors after which an endpoint gets no more of a task's deliveries at once.
FAIL_FAST_ERRORS = ("timeout", "connection")


class Answer(enum.StrEnum):
    """How an attempt counts for its endpoint's breaker."""

    OK = "ok"  # delivered
    FAIL = "fail"  # a transient failure
    SLOW = "slow"  # timed out
    ANSWERED = "answered"  # a permanent failure: an answer in time, no breaker count


def endpoint_of(subscriber: str) -> str | None:
    """Return ``scheme://host:port`` for network subscribers, else None: the
    host and port the delivery connects to (``netpolicy.parse_http_url``)."""
    endpoint: str | None = netpolicy.endpoint_key(subscriber)
    return endpoint


def endpoint_key(subscription: Mapping[str, Any]) -> str | None:
    """Return the admission key of a subscription's endpoint,
    ``PROJECT:scheme://host:port`` (None for subscribers that are not network
    endpoints).

    Breaker, probe, proof and concurrency cap are per project and endpoint: one
    tenant's failures (or hanging requests) at a host must not defer another
    tenant's deliveries there. The subscription belongs to its subscriber's
    project (``project``; for topics it may differ from the source's).
    """
    endpoint = endpoint_of(subscription["subscriber"])
    if endpoint is None:
        return None
    return f"{subscription.get('project') or subscription['source'][0]}:{endpoint}"


def throttle_rate(subscription: Mapping[str, Any]) -> float:
    policy = (subscription.get("options") or {}).get("throttle_policy") or {}
    rate: float = policy.get("max_receives_per_second") or 0
    return rate


def answer_of(attempt: Attempt) -> Answer:
    if attempt.outcome == Outcome.DELIVERED:
        return Answer.OK
    if attempt.error == "timeout":
        return Answer.SLOW
    # a permanent failure (4xx) does not count toward the breaker, but it is
    # an answer in time
    return Answer.ANSWERED if attempt.permanent else Answer.FAIL


class Admitted(NamedTuple):
    """What admission decided for a batch."""

    jobs: list[Job]  # to deliver now
    deferred: list[Deferred]  # to the retry schedule, not counted as attempts
    leases: dict[str, list[Any]]  # endpoint -> lease tokens, to give back
    unproven: set[str]  # endpoints new, or that timed out lately


class Admission:
    """Breakers, concurrency caps and rate limits of endpoints, shared by
    every worker through Redis (``state``)."""

    def __init__(self, conf: Any, redis_client: Any, clock: Callable[[], float]) -> None:
        self.conf = conf.webhook
        self.clock = clock
        attempt = (
            conf.notification.webhook_connect_timeout_seconds
            + conf.notification.webhook_read_timeout_seconds
        )
        self.state = EndpointState(
            redis_client,
            lease_seconds=attempt * 2,
            probe_seconds=attempt * 2,
            attempt_seconds=attempt,
            proven_seconds=self.conf.proven_seconds,
        )

    def admit(self, jobs: Iterable[Job]) -> Admitted:
        """Decide which jobs go now; defer the others."""
        groups: dict[tuple[str, str], list[Job]] = {}
        free: list[Job] = []
        for job in jobs:
            endpoint = endpoint_key(job.subscription)
            if endpoint is None:
                free.append(job)
            else:
                groups.setdefault((endpoint, job.subscription["id"]), []).append(job)
        if not groups:
            return Admitted(free, [], {}, set())
        decisions = self.state.admit(
            [
                (
                    endpoint,
                    len(members),
                    self.conf.endpoint_concurrency,
                    sub_id,
                    throttle_rate(members[0].subscription),
                )
                for (endpoint, sub_id), members in groups.items()
            ]
        )
        admitted = Admitted(free, [], {}, set())
        now = self.clock()
        for ((endpoint, _), members), (count, wait, proven, tokens) in zip(
            groups.items(), decisions
        ):
            admitted.jobs.extend(members[:count])
            if not proven:
                admitted.unproven.add(endpoint)
            admitted.leases.setdefault(endpoint, []).extend(tokens)
            rate = throttle_rate(members[0].subscription)
            spacing = 1.0 / rate if rate else 0.0
            for index, job in enumerate(members[count:]):
                admitted.deferred.append(
                    Deferred(now + max(wait, 0.05) + index * spacing, job.delivery)
                )
        return admitted

    def release(self, leases: Mapping[str, Sequence[Any]]) -> None:
        self.state.release(leases)

    def settle(
        self,
        results: Sequence[tuple[Record, Attempt]],
        tokens: Mapping[str, Any] | None = None,
        release: Mapping[str, Sequence[Any]] | None = None,
    ) -> dict[str, str]:
        """Feed outcomes to the breakers; return {subscription_id: reason} to disable.

        ``results`` are (subscription, attempt) pairs; ``tokens`` maps an
        endpoint key to the lease token the task held there (it tells the
        half-open probe's outcome from the others); ``release``: leases to
        give back in the same round trip.
        """
        tokens = tokens or {}
        answers: list[tuple[str, str, Any]] = []
        disable: dict[str, str] = {}
        for subscription, attempt in results:
            endpoint = endpoint_key(subscription)
            if endpoint is None:
                continue
            if attempt.error == "gone":
                disable[subscription["id"]] = "the endpoint answered 410 Gone"
            answer = answer_of(attempt)
            # A run of successes to one endpoint records like one (each resets
            # its breaker and renews its proof): a batch's usual case costs one
            # update in Redis, not one per delivery.
            if answer != Answer.OK or not answers or answers[-1][:2] != (endpoint, Answer.OK):
                answers.append((endpoint, answer.value, tokens.get(endpoint)))
        states = self.state.record(
            answers,
            self.conf.breaker_failure_threshold,
            self.conf.breaker_cooloff_seconds,
            self.conf.breaker_max_cooloff_seconds,
            release,
        )
        opened = sum(1 for state, _ in states.values() if state == "opened")
        if opened:
            metrics.BREAKERS_OPENED.inc(opened)
        cutoff = self.clock() - self.conf.disable_after_failing_seconds
        for subscription, attempt in results:
            endpoint = endpoint_key(subscription)
            if endpoint is None:
                continue  # not a network endpoint: no breaker
            _, first_failure = states.get(endpoint, ("closed", None))
            if first_failure and first_failure < cutoff and attempt.outcome != Outcome.DELIVERED:
                disable[subscription["id"]] = (
                    f"the endpoint has failed without a success since "
                    f"{first_failure:.0f} (epoch seconds)"
                )
        return disable
