"""The delivery service: one object the workers, the scheduler and the API call.

It wires the delivery package's parts together and delegates to them::

    fanout ──> FanOut (fanout.py) ──> Drains (drain.py) <── drain
                                        v
                                      Batch (batch.py) <── deliver
                                        │  Admission (admission.py): breaker, cap, rate
                                        │  run_attempt (attempt.py): one sink call
                                        v
                                      Outcomes (outcomes.py): retry, dead letter, hold, disable
    send_control ──> Control (control.py)
    enable, replay ──> Replay (replay.py)
    move_due_retries, reconcile_tasks ──> Reconciler (reconcile.py)

A delivery (``core.model.Delivery``) is what travels in task arguments and in
the retry schedule, as a dict. Everything else is loaded from storage when it
runs, so a retry always sees the subscription as it is now (deleted,
disabled, edited).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from notifier.conf import retry_defaults as configured_retry_defaults
from notifier.core.model import Delivery
from notifier.core.retry import RetryPolicy
from notifier.delivery.admission import Admission, endpoint_key
from notifier.delivery.batch import Batch
from notifier.delivery.control import Control
from notifier.delivery.drain import Drains
from notifier.delivery.fanout import FanOut
from notifier.delivery.jobs import Dispatcher
from notifier.delivery.outcomes import Outcomes
from notifier.delivery.reconcile import Reconciler
from notifier.delivery.replay import Replay
from notifier.sinks import SinkRegistry
from notifier.store.storage import Storage


class DeliveryService:
    """Turn messages into deliveries and deliveries into sink calls."""

    def __init__(
        self,
        conf: Any,
        storage: Storage,
        dispatcher: Dispatcher,
        sinks: SinkRegistry | None = None,
        clock: Callable[[], float] = time.time,
        retry_defaults: RetryPolicy | None = None,
    ) -> None:
        self.conf = conf
        self.storage = storage
        self.dispatcher = dispatcher
        self.sinks = sinks or SinkRegistry(conf)
        self.clock = clock
        self.retry_defaults: RetryPolicy = retry_defaults or configured_retry_defaults(conf)
        self.admission = Admission(conf, storage.redis, clock)
        self.outcomes = Outcomes(
            conf, storage, dispatcher, self.admission, clock, self.retry_defaults
        )
        self.batch = Batch(conf, storage, self.sinks, self.admission, self.outcomes, clock)
        self.drains = Drains(conf, storage, dispatcher, self.batch, clock)
        self._fanout = FanOut(
            conf, storage, dispatcher, self.batch, self.outcomes, clock, self.drains
        )
        self.drains.match_many = self._fanout.match_many
        self._control = Control(storage, dispatcher)
        self._replay = Replay(conf, storage, dispatcher, self.admission)
        self._reconciler = Reconciler(conf, storage, dispatcher, clock)

    # -- the workers' tasks ---------------------------------------------------

    def fanout(
        self,
        source: Sequence[str],
        message_ids: Sequence[str],
        cursor: Any = None,
        deadline: float | None = None,
        started: str | None = None,
    ) -> int:
        """Match one page of a source's subscriptions; return the deliveries
        made. ``started``: the task's outbox entry, removed with its first read."""
        return self._fanout.fanout(source, message_ids, cursor, deadline, started)

    def deliver(
        self, deliveries: Sequence[Delivery | dict[str, Any]], deadline: float | None = None
    ) -> None:
        """Run a batch of deliveries (values or their task-argument dicts)."""
        self.batch.deliver(deliveries, deadline)

    def drain(self, shard: int, owner: bool = True, deadline: float | None = None) -> int:
        """Deliver a shard of small fan-outs' deliveries; return how many."""
        return self.drains.drain(shard, deadline, owner)

    # -- the API ------------------------------------------------------------

    def send_control(
        self,
        source: Sequence[str],
        subscription_id: str,
        payload: Mapping[str, Any],
        ttl: int,
        nonce: str | None = None,
    ) -> str:
        """Send a confirmation (or another message of the service's own)."""
        return self._control.send_control(source, subscription_id, payload, ttl, nonce)

    def disable(self, record: dict[str, Any], reason: str) -> None:
        """Disable (pause) a subscription; its deliveries are held meanwhile."""
        self._replay.disable(record, reason, self.clock())

    def enable(self, record: dict[str, Any]) -> int:
        """Enable a disabled subscription; return how many held deliveries go."""
        return self._replay.enable(record)

    def replay(
        self,
        subscription_id: str,
        message_id: str | None = None,
        since: float = 0,
        limit: int = 1000,
    ) -> int:
        """Send dead letters of a subscription again; return how many."""
        return self._replay.replay(subscription_id, message_id, since, limit)

    def endpoint_status(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Return a subscription's breaker ("closed", "open", "recovering")
        and how many deliveries are held for it."""
        endpoint = endpoint_key(record)
        fields = self.admission.state.breaker(endpoint) if endpoint else {}
        open_until = int(fields.get("open_until_ms") or 0) / 1000
        if open_until > self.clock():
            breaker = "open"
        elif fields.get("recovering"):
            breaker = "recovering"
        else:
            breaker = "closed"
        return {
            "breaker": breaker,
            "open_until": open_until if breaker == "open" else None,
            "held": self.admission.state.held_count(record["id"]),
        }

    # -- the scheduler ------------------------------------------------------

    def move_due_retries(self, limit: int = 1000) -> int:
        """Enqueue retries that are due; return how many were moved."""
        return self._reconciler.move_due_retries(limit)

    def reconcile_tasks(self, stale_seconds: float, queue_names: Sequence[str]) -> int:
        """Send again tasks that never started, and drain tasks to shards
        left without an owner; return how many."""
        sent: int = self._reconciler.reconcile_tasks(stale_seconds, queue_names)
        return sent + self.drains.hand_on_unowned()
