"""`notifier scheduler`: wires the scheduler loop (``notifier.delivery.scheduler``)."""

import signal
import threading
from typing import Any


def run_scheduler(
    conf: Any, stop_event: threading.Event | None = None, poll_seconds: float = 0.1
) -> None:
    from notifier.delivery.scheduler import Scheduler
    from notifier.delivery.service import DeliveryService
    from notifier.observability.heartbeat import Heartbeat
    from notifier.store.storage import Storage
    from workers.app import TASK_QUEUES, CeleryDispatcher, create_celery

    stop = stop_event or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    storage = Storage.from_conf(conf)
    service = DeliveryService(conf, storage, CeleryDispatcher(create_celery(conf), storage))
    Scheduler(
        service,
        TASK_QUEUES,
        conf.worker.reconcile_after_seconds,
        Heartbeat(conf.worker.scheduler_heartbeat_file),
        stop_event=stop,
        poll_seconds=poll_seconds,
    ).run()
