"""Celery tasks: thin adapters from task arguments to DeliveryService calls."""

import logging
import os
import time

import redis
from celery.exceptions import Reject

from notifier.service import DeliveryService
from notifier.storage import Storage
from workers.app import DELIVER_TASK, FANOUT_TASK, CeleryDispatcher, task_member

LOG = logging.getLogger(__name__)

# Redis (storage) unreachable or loading: the task goes back on the queue
# instead of being acknowledged as failed and lost.
STORAGE_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


class ProcessRuntime:
    """The per-process DeliveryService, built lazily after the pool forks
    (Redis connections and HTTP pools must not be shared across a fork)."""

    def __init__(self, conf, app):
        self.conf = conf
        self.app = app
        self._pid = None
        self._service = None

    @property
    def service(self):
        if self._pid != os.getpid():
            storage = Storage.from_conf(self.conf)
            self._service = DeliveryService(self.conf, storage, CeleryDispatcher(self.app, storage))
            self._pid = os.getpid()
        return self._service


def register_tasks(app, conf):
    """Register notifier's tasks on ``app``; return the runtime they share."""
    runtime = ProcessRuntime(conf, app)

    @app.task(name=FANOUT_TASK)
    def fanout(source, message_ids, cursor=None):
        return run(
            runtime,
            FANOUT_TASK,
            [source, message_ids, cursor],
            lambda service: service.fanout(source, message_ids, cursor),
        )

    @app.task(name=DELIVER_TASK)
    def deliver(deliveries):
        run(runtime, DELIVER_TASK, [deliveries], lambda service: service.deliver(deliveries))

    return runtime


def run(runtime, name, args, work):
    """Run one task: leave the outbox, do the work, requeue if Redis is down."""
    try:
        service = runtime.service
        service.storage.mark_task_started(task_member(name, args))
        return work(service)
    except STORAGE_DOWN as exc:
        LOG.warning("storage unavailable, task requeued: %s", type(exc).__name__)
        time.sleep(1)  # don't spin while Redis restarts
        raise Reject(exc, requeue=True) from exc
