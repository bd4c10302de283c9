"""The scheduler loop: move due retries onto the task queue, re-send tasks
lost on the way to a worker, and say it is alive.

``notifier scheduler`` (``notifier.cli.scheduler``) wires it; several
schedulers may run at once (retries are leased, so none moves twice).
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from notifier.observability.metrics import REDIS_ERRORS

LOG = logging.getLogger(__name__)

#: How often lost tasks are looked for, in seconds.
RECONCILE_INTERVAL_SECONDS = 5.0
#: How long to wait after a failed pass (Redis restarting), in seconds.
ERROR_PAUSE_SECONDS = 1.0


class RetryMover(Protocol):
    """What the loop drives (``DeliveryService``)."""

    def move_due_retries(self) -> int: ...

    def reconcile_tasks(self, stale_seconds: float, queue_names: Sequence[str]) -> object: ...


class Beat(Protocol):
    def beat(self) -> None: ...


class Scheduler:
    """Run passes until ``stop_event`` is set; each pass moves the due
    retries, every ``reconcile_interval`` re-sends stale tasks, and beats
    the heartbeat. A failing pass (Redis down) is counted, logged and tried
    again after a pause: the loop never dies of it."""

    def __init__(
        self,
        service: RetryMover,
        queue_names: Sequence[str],
        reconcile_after_seconds: float,
        heartbeat: Beat,
        stop_event: threading.Event | None = None,
        poll_seconds: float = 0.1,
        reconcile_interval: float = RECONCILE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.queue_names = list(queue_names)
        self.reconcile_after_seconds = reconcile_after_seconds
        self.heartbeat = heartbeat
        self.stop_event = stop_event or threading.Event()
        self.poll_seconds = poll_seconds
        self.reconcile_interval = reconcile_interval
        self.clock = clock
        self._next_reconcile = 0.0

    def run(self) -> None:
        """Loop until stopped."""
        LOG.info("scheduler started")
        while not self.stop_event.is_set():
            moved = self.run_once()
            self.heartbeat.beat()
            if not moved:
                self.stop_event.wait(self.poll_seconds)

    def run_once(self) -> int:
        """Run one pass; return how many retries it moved."""
        try:
            moved = self.service.move_due_retries()
            if self.clock() >= self._next_reconcile:
                self._next_reconcile = self.clock() + self.reconcile_interval
                self.service.reconcile_tasks(self.reconcile_after_seconds, self.queue_names)
        except Exception:  # Redis restarting: keep going, say so
            REDIS_ERRORS.labels("scheduler").inc()
            LOG.exception("moving due retries failed; retrying in 1 s")
            self.stop_event.wait(ERROR_PAUSE_SECONDS)
            return 0
        return moved
