"""What the scheduler moves: retries that are due, and tasks lost on their
way to a worker."""

import logging
from collections.abc import Callable, Sequence
from typing import Any

from notifier.core.model import Delivery
from notifier.delivery.jobs import Dispatcher, send_deliveries
from notifier.store.storage import Storage

LOG = logging.getLogger(__name__)


class Reconciler:
    """Move due retries to the task queue; send lost tasks again."""

    def __init__(
        self, conf: Any, storage: Storage, dispatcher: Dispatcher, clock: Callable[[], float]
    ) -> None:
        self.storage = storage
        self.dispatcher = dispatcher
        self.clock = clock
        self.per_task: int = conf.notification.deliveries_per_task

    def reconcile_tasks(self, stale_seconds: float, queue_names: Sequence[str]) -> int:
        """Send again tasks that were sent but never started (lost between the
        broker and the worker: celery#4354, kombu#1836). Return how many."""
        members = self.storage.lease_stale_tasks(self.clock(), stale_seconds, queue_names)
        for member in members:
            LOG.warning("re-sending a task that never started")
            self.dispatcher.resend(member)
        return len(members)

    def move_due_retries(self, limit: int = 1000) -> int:
        """Enqueue retries that are due; return how many were moved."""
        leased = self.storage.lease_due_retries(self.clock(), limit)
        if not leased:
            return 0
        deliveries = []
        for _, record in leased:
            if "fanout" in record:
                # A parked fan-out put in the schedule by a drain task of a
                # version before parking (during a rolling upgrade): it is a
                # task to send again, not a delivery.
                self.dispatcher.resend(record["fanout"])
            else:
                deliveries.append(Delivery.from_dict(record))
        send_deliveries(self.dispatcher, deliveries, self.per_task)
        self.storage.release_retries([member for member, _ in leased])
        return len(leased)
