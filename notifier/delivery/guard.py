"""Protect endpoints and the fleet from each other.

Before a batch is delivered, each endpoint's circuit breaker, its cap on
deliveries in flight across all workers, and each subscription's rate limit
decide what may go now; the rest waits in the retry schedule (not counted
as attempts, never dropped). After the batch, outcomes feed the breakers;
an endpoint failing for ``disable_after_failing_seconds``, or answering
410 Gone, gets its subscription disabled: its deliveries are then held until
the subscription is enabled again.
"""

from notifier.core import netpolicy
from notifier.observability import metrics
from notifier.store.endpoint_state import EndpointState

FAIL_FAST_ERRORS = ("timeout", "connection")


def endpoint_of(subscriber):
    """Return ``scheme://host:port`` for network subscribers, else None: the
    host and port the delivery connects to (``netpolicy.parse_http_url``)."""
    return netpolicy.endpoint_key(subscriber)


def endpoint_key(subscription):
    """Return the guard key of a subscription's endpoint, ``PROJECT:scheme://host:port``
    (None for subscribers that are not network endpoints).

    Breaker, probe, proof and concurrency cap are per project and endpoint: one
    tenant's failures (or hanging requests) at a host must not defer another
    tenant's deliveries there. The subscription belongs to its subscriber's
    project (``project``; for topics it may differ from the source's).
    """
    endpoint = endpoint_of(subscription["subscriber"])
    if endpoint is None:
        return None
    return f"{subscription.get('project') or subscription['source'][0]}:{endpoint}"


def throttle_rate(subscription):
    policy = (subscription.get("options") or {}).get("throttle_policy") or {}
    return policy.get("max_receives_per_second") or 0


class EndpointGuard:
    def __init__(self, conf, redis_client, clock):
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

    def admit(self, triples):
        """Return (admitted triples, deferred (due, delivery) pairs, leases,
        unproven endpoints: new ones, or ones that timed out lately)."""
        groups = {}
        free = []
        for triple in triples:
            endpoint = endpoint_key(triple[2])
            if endpoint is None:
                free.append(triple)
            else:
                groups.setdefault((endpoint, triple[2]["id"]), []).append(triple)
        if not groups:
            return free, [], {}, set()
        decisions = self.state.admit(
            [
                (
                    endpoint,
                    len(members),
                    self.conf.endpoint_concurrency,
                    sub_id,
                    throttle_rate(members[0][2]),
                )
                for (endpoint, sub_id), members in groups.items()
            ]
        )
        admitted, deferred, leases, unproven = free, [], {}, set()
        now = self.clock()
        for ((endpoint, _), members), (count, wait, proven, tokens) in zip(
            groups.items(), decisions
        ):
            admitted.extend(members[:count])
            if not proven:
                unproven.add(endpoint)
            leases.setdefault(endpoint, []).extend(tokens)
            spacing = 1.0 / throttle_rate(members[0][2]) if throttle_rate(members[0][2]) else 0.0
            for index, (delivery, _, _) in enumerate(members[count:]):
                deferred.append((now + max(wait, 0.05) + index * spacing, delivery))
        return admitted, deferred, leases, unproven

    def release(self, leases):
        self.state.release(leases)

    def settle(self, results, tokens=None):
        """Feed outcomes to the breakers; return {subscription_id: reason} to disable.

        ``results`` are (subscription, attempt record) pairs; ``tokens`` maps
        an endpoint key to the lease token the task held there (it tells the
        half-open probe's outcome from the others).
        """
        tokens = tokens or {}
        outcomes, disable = [], {}
        for subscription, attempt in results:
            endpoint = endpoint_key(subscription)
            if endpoint is None:
                continue
            if attempt.get("error") == "gone":
                disable[subscription["id"]] = "the endpoint answered 410 Gone"
            if attempt["outcome"] == "delivered":
                outcome = "ok"
            elif attempt.get("error") == "timeout":
                outcome = "slow"
            else:
                # a permanent failure (4xx) does not count toward the breaker,
                # but it is an answer in time
                outcome = "answered" if attempt.get("permanent") else "fail"
            # A run of successes to one endpoint records like one (each resets
            # its breaker and renews its proof): a batch's usual case costs one
            # update in Redis, not one per delivery.
            if outcome != "ok" or not outcomes or outcomes[-1][:2] != (endpoint, "ok"):
                outcomes.append((endpoint, outcome, tokens.get(endpoint)))
        states = self.state.record(
            outcomes,
            self.conf.breaker_failure_threshold,
            self.conf.breaker_cooloff_seconds,
            self.conf.breaker_max_cooloff_seconds,
        )
        opened = sum(1 for state, _ in states.values() if state == "opened")
        if opened:
            metrics.BREAKERS_OPENED.inc(opened)
        cutoff = self.clock() - self.conf.disable_after_failing_seconds
        for subscription, attempt in results:
            endpoint = endpoint_key(subscription)
            state, first_failure = states.get(endpoint, ("closed", None))
            if first_failure and first_failure < cutoff and attempt["outcome"] != "delivered":
                disable[subscription["id"]] = (
                    f"the endpoint has failed without a success since "
                    f"{first_failure:.0f} (epoch seconds)"
                )
        return disable
