"""Celery tasks: thin adapters from task arguments to DeliveryService calls."""

import logging
import os
import time

from celery import signals
from celery.exceptions import Reject

from notifier import errors
from notifier.conf import broker_url
from notifier.core.model import Delivery
from notifier.delivery.service import DeliveryService
from notifier.store.storage import Storage
from workers.app import (
    DELIVER_TASK,
    DRAIN_TASK,
    FANOUT_TASK,
    CeleryDispatcher,
    task_budget_seconds,
    task_member,
)

LOG = logging.getLogger(__name__)


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
            dispatcher = CeleryDispatcher(
                self.app, storage, shares_storage_redis=broker_url(self.conf) == self.conf.redis_url
            )
            self._service = DeliveryService(self.conf, storage, dispatcher)
            self._pid = os.getpid()
        return self._service


RECEIVED_AT = "notifier_received_at"


def stamp_received(request=None, **_):
    """Note when the worker took a task off the broker (in the consumer, before
    the task waits among the prefetched ones): its visibility timeout runs from
    about then. The stamp travels to the pool with the request's fields."""
    request.request_dict[RECEIVED_AT] = time.time()


def task_deadline(request, budget):
    """Epoch time after which a task starts no more deliveries."""
    return (request.get(RECEIVED_AT) or time.time()) + budget


def register_tasks(app, conf):
    """Register notifier's tasks on ``app``; return the runtime they share."""
    runtime = ProcessRuntime(conf, app)
    budget = task_budget_seconds(conf)
    signals.task_received.connect(stamp_received, weak=False)

    @app.task(name=FANOUT_TASK, bind=True)
    def fanout(task, source, message_ids, cursor=None):
        deadline = task_deadline(task.request, budget)
        member = task_member(FANOUT_TASK, [source, message_ids, cursor])
        return run(
            runtime,
            FANOUT_TASK,
            None,  # its outbox entry goes with its first read (one round trip less)
            lambda service: service.fanout(source, message_ids, cursor, deadline, member),
        )

    @app.task(name=DELIVER_TASK, bind=True)
    def deliver(task, deliveries):
        deadline = task_deadline(task.request, budget)
        run(
            runtime,
            DELIVER_TASK,
            [deliveries],
            lambda service: service.deliver([Delivery.from_dict(d) for d in deliveries], deadline),
        )

    @app.task(name=DRAIN_TASK, bind=True)
    def drain(task, shard, owner=True):
        deadline = task_deadline(task.request, budget)
        return run(
            runtime,
            DRAIN_TASK,
            None,  # no outbox entry (see CeleryDispatcher.send_drain)
            lambda service: service.drain(shard, owner, deadline),
        )

    return runtime


def run(runtime, name, args, work):
    """Run one task: leave the outbox (unless ``args`` is None: the task has no
    entry there), do the work, requeue if Redis is down."""
    try:
        service = runtime.service
        if args is not None:
            service.storage.mark_task_started(task_member(name, args))
        return work(service)
    except errors.UnavailableError as exc:
        # Redis (the store) unreachable or loading: the task goes back on the
        # queue instead of being acknowledged as failed and lost.
        LOG.warning("storage unavailable, task requeued: %s", type(exc.__cause__).__name__)
        time.sleep(1)  # don't spin while Redis restarts
        raise Reject(exc, requeue=True) from exc
