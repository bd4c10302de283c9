"""Celery tasks: thin adapters from task arguments to DeliveryService calls."""

import os

from notifier.service import DeliveryService
from notifier.storage import Storage
from workers.app import DELIVER_TASK, FANOUT_TASK, CeleryDispatcher


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
            self._service = DeliveryService(self.conf, Storage.from_conf(self.conf),
                                            CeleryDispatcher(self.app))
            self._pid = os.getpid()
        return self._service


def register_tasks(app, conf):
    """Register notifier's tasks on ``app``; return the runtime they share."""
    runtime = ProcessRuntime(conf, app)

    @app.task(name=FANOUT_TASK)
    def fanout(source, message_ids, cursor=None):
        return runtime.service.fanout(source, message_ids, cursor)

    @app.task(name=DELIVER_TASK)
    def deliver(deliveries):
        runtime.service.deliver(deliveries)

    return runtime
