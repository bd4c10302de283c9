"""Build the Celery app from notifier's configuration.

Settings chosen for at-least-once delivery (see README, "Celery settings"):

- ``task_acks_late``: a task is acknowledged after it ran, so a worker that
  dies mid-task leaves it unacknowledged and it is delivered again;
- ``task_reject_on_worker_lost``: without it, a pool child killed mid-task has
  its task acknowledged anyway (measured: lost with WorkerLostError);
- ``worker_prefetch_multiplier = 4``: each pool process has its next tasks
  at hand (with 1, pool processes sat idle 37% of the time waiting for the
  next task); tasks reserved by a worker that dies are redelivered, and the
  attempts they had already run are skipped (done flags);
- ``visibility_timeout`` above the longest task (tasks are short: retries
  never wait as ETA/countdown tasks, they wait in Redis), and a short
  ``unacked_restore_interval`` so a killed worker's tasks come back in seconds;
- JSON only: task arguments are ids and small dicts, never pickles.
"""

import json

from celery import Celery
from kombu import Queue

from notifier.conf import broker_url

FANOUT_QUEUE = "notifier.fanout"
DELIVER_QUEUE = "notifier.deliver"
FANOUT_TASK = "notifier.fanout"
DELIVER_TASK = "notifier.deliver"


def create_celery(conf):
    """Return a configured Celery app; nothing connects until it is used."""
    app = Celery("notifier", set_as_current=False)
    visibility = conf.worker.visibility_timeout_seconds
    app.conf.update(
        broker_url=broker_url(conf),
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            "unacked_restore_interval": conf.worker.unacked_restore_interval_seconds,
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "max_connections": 64,
        },
        broker_pool_limit=16,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_time_limit=max(60, visibility - 30),
        task_soft_time_limit=max(50, visibility - 60),
        worker_prefetch_multiplier=4,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_queues=[Queue(FANOUT_QUEUE), Queue(DELIVER_QUEUE)],
        task_default_queue=DELIVER_QUEUE,
        task_routes={FANOUT_TASK: {"queue": FANOUT_QUEUE},
                     DELIVER_TASK: {"queue": DELIVER_QUEUE}},
    )
    return app


def task_member(name, args):
    """The outbox entry of a task: the same text where it is sent and run."""
    return json.dumps([name, args], separators=(",", ":"), ensure_ascii=False)


class CeleryDispatcher:
    """Send fan-out and delivery tasks; the API and the scheduler use it too.

    With ``storage``, every task is first written to an outbox in Redis and
    the worker removes it when it starts the task, so a task lost between the
    broker and a worker is found and sent again (``reconcile_tasks``).
    """

    def __init__(self, app, storage=None):
        self.app = app
        self.storage = storage

    def _send(self, name, args, outboxed=False):
        if self.storage is not None and not outboxed:
            self.storage.mark_task_sent(task_member(name, args))
        self.app.send_task(name, args=args)

    @staticmethod
    def fanout_entry(source):
        """Return ids -> the outbox entry of their first fan-out task."""
        return lambda ids: task_member(FANOUT_TASK, [list(source), list(ids), None])

    def send_fanout(self, source, message_ids, cursor=None, outboxed=False):
        self._send(FANOUT_TASK, [list(source), list(message_ids), cursor], outboxed)

    def send_deliveries(self, deliveries):
        self._send(DELIVER_TASK, [list(deliveries)])

    def resend(self, member):
        name, args = json.loads(member)
        self.app.send_task(name, args=args)

    def ping(self):
        """Return True if the broker answers."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            return connection.connected


def add_heartbeat(app, path, interval_seconds=5.0):
    """Touch ``path`` from the worker's own timer while its event loop runs."""
    from celery import bootsteps

    from notifier.heartbeat import Heartbeat

    heartbeat = Heartbeat(path, interval_seconds=0)

    class HeartbeatStep(bootsteps.StartStopStep):
        requires = {"celery.worker.components:Timer"}

        def start(self, worker):
            heartbeat.beat()
            self.tref = worker.timer.call_repeatedly(interval_seconds, heartbeat.beat)

        def stop(self, worker):
            if getattr(self, "tref", None):
                self.tref.cancel()

    app.steps["worker"].add(HeartbeatStep)
