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
- ``visibility_timeout`` above the longest task, counted from when the worker
  took it (``task_budget_seconds``: a task starts no delivery after its
  budget, and one attempt is bounded by the webhook timeouts), so a task is
  never redelivered while it runs; retries never wait as ETA/countdown tasks,
  they wait in Redis. With a short ``unacked_restore_interval`` a killed
  worker's tasks come back within the visibility timeout plus seconds;
- a hard time limit just under the visibility timeout, a safety net only
  (the budget keeps tasks well inside it): a task cut by it is requeued
  (``task_acks_on_failure_or_timeout`` off), not acknowledged and lost; no
  soft limit (its exception would fail the task and drop its deliveries);
- JSON only: task arguments are ids and small dicts, never pickles.
"""

import base64
import json
import uuid
from typing import NamedTuple

from celery import Celery
from kombu import Queue

from notifier.conf import broker_transport_options, broker_url

FANOUT_QUEUE = "notifier.fanout"
DELIVER_QUEUE = "notifier.deliver"
FANOUT_TASK = "notifier.fanout"
DELIVER_TASK = "notifier.deliver"
DRAIN_TASK = "notifier.drain"
#: Every queue the workers consume, fan-out first.
TASK_QUEUES = (FANOUT_QUEUE, DELIVER_QUEUE)


# What one task may need beyond its budget for bookkeeping (loading state,
# recording attempts) before it is acknowledged.
TASK_MARGIN_SECONDS = 5


def attempt_seconds(conf):
    """The longest one delivery attempt takes (webhook connect + read)."""
    return (
        conf.notification.webhook_connect_timeout_seconds
        + conf.notification.webhook_read_timeout_seconds
    )


def task_budget_seconds(conf):
    """How long after a worker took a task it may still start deliveries:
    the visibility timeout less one attempt and a margin (at least 1 s), so
    the task is acknowledged before it could be redelivered. 25 s at the
    defaults (45 - 15 - 5)."""
    visibility = conf.worker.visibility_timeout_seconds
    return max(1.0, visibility - attempt_seconds(conf) - TASK_MARGIN_SECONDS)


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
            **broker_transport_options(conf),  # Sentinel's master_name, if set
        },
        broker_pool_limit=16,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        task_time_limit=max(2, visibility - 2),
        worker_prefetch_multiplier=4,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_queues=[Queue(FANOUT_QUEUE), Queue(DELIVER_QUEUE)],
        task_default_queue=DELIVER_QUEUE,
        task_routes={
            FANOUT_TASK: {"queue": FANOUT_QUEUE},
            DELIVER_TASK: {"queue": DELIVER_QUEUE},
            DRAIN_TASK: {"queue": DELIVER_QUEUE},
        },
    )
    return app


def task_member(name, args):
    """The outbox entry of a task: the same text where it is sent and run."""
    return json.dumps([name, args], separators=(",", ":"), ensure_ascii=False)


def broker_message(app, name, args, queue):
    """Return the broker message ``send_task`` would push onto ``queue``.

    Celery's protocol-2 task message (built by Celery itself) in kombu's Redis
    envelope (JSON, body base64). That envelope is what sits in Redis lists
    across upgrades and what non-Python Celery clients write; a test compares
    it with a message kombu publishes, so a change shows up there.
    """
    task_id = str(uuid.uuid4())
    headers, properties, body, _ = app.amqp.as_task_v2(task_id, name, args=args, ignore_result=None)
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": dict(
                properties,
                delivery_mode=2,
                priority=0,
                delivery_info={"exchange": "", "routing_key": queue},
                body_encoding="base64",
                delivery_tag=str(uuid.uuid4()),
            ),
        }
    )


class PreparedTask(NamedTuple):
    """A task to be enqueued with the writes it belongs to.

    ``member`` is its outbox entry (None without an outbox). With ``queue`` and
    ``payload``, the storage transaction pushes the broker message itself, so
    the task is enqueued exactly when the messages are stored.
    """

    name: str
    args: list
    member: str | None = None
    queue: str | None = None
    payload: str | None = None


class CeleryDispatcher:
    """Send fan-out and delivery tasks; the API and the scheduler use it too.

    With ``storage``, every task is first written to an outbox in Redis and
    the worker removes it when it starts the task, so a task lost between the
    broker and a worker is found and sent again (``reconcile_tasks``).
    ``shares_storage_redis``: the broker is the storage's Redis database, so
    a fan-out's broker message can be written in the storage transaction that
    stores its messages (one round trip per POST, no kombu publish).
    """

    def __init__(self, app, storage=None, shares_storage_redis=False):
        self.app = app
        self.storage = storage
        self.inline = storage is not None and shares_storage_redis

    def _send(self, name, args):
        if self.storage is not None:
            self.storage.mark_task_sent(task_member(name, args))
        self.app.send_task(name, args=args)

    def prepare_fanout(self, source, message_ids):
        """The first fan-out task of messages about to be stored."""
        args = [list(source), list(message_ids), None]
        if self.storage is None:
            return PreparedTask(FANOUT_TASK, args)
        member = task_member(FANOUT_TASK, args)
        if not self.inline:
            return PreparedTask(FANOUT_TASK, args, member)
        return PreparedTask(
            FANOUT_TASK,
            args,
            member,
            FANOUT_QUEUE,
            broker_message(self.app, FANOUT_TASK, args, FANOUT_QUEUE),
        )

    def send_prepared(self, task):
        """Send a prepared task unless its storage transaction already did."""
        if task.payload is None:
            self.app.send_task(task.name, args=task.args)

    def send_fanout(self, source, message_ids, cursor=None):
        self._send(FANOUT_TASK, [list(source), list(message_ids), cursor])

    def send_deliveries(self, deliveries):
        self._send(DELIVER_TASK, [list(deliveries)])

    def send_drain(self, shard, owner):
        """A drain task for a shard of pending deliveries. No outbox entry:
        a lost one leaves its shard without an owner once the owner flag
        expires, and the scheduler sends another (``Drains.hand_on_unowned``)."""
        self.app.send_task(DRAIN_TASK, args=[shard, owner])

    def take_fanouts(self, limit):
        """Take up to ``limit`` fan-out tasks off the broker queue, oldest
        first, for a drain task to run together (``delivery/drain.py``);
        return [(args, outbox entry)].

        Only when the broker is the storage's Redis (the queue is a list
        there, which kombu LPUSHes and BRPOPs). A taken task is no longer the
        broker's: its outbox entry is what brings it back if the drain task
        dies, so fan-outs sent without one stay on the queue.
        """
        if not self.inline or limit <= 0:
            return []
        popped = self.storage.redis.rpop(FANOUT_QUEUE, limit) or []
        candidates, back = [], []
        for text in popped:
            envelope = json.loads(text)
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            if envelope.get("headers", {}).get("task") != FANOUT_TASK:
                back.append(text)
                continue
            candidates.append((text, args, task_member(FANOUT_TASK, args)))
        taken = []
        if candidates:
            sent = self.storage.sent_at([member for _, _, member in candidates])
            for (text, args, member), at in zip(candidates, sent):
                if at is None:
                    back.append(text)  # sent without an outbox entry: Celery's to run
                else:
                    taken.append((args, member))
        if back:  # not ours to run: back where the consumer takes next
            self.storage.redis.rpush(FANOUT_QUEUE, *reversed(back))
        return taken

    def resend(self, member):
        name, args = json.loads(member)
        self.app.send_task(name, args=args)

    def ping(self):
        """Return True if the broker answers."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            return connection.connected


def create_dispatcher(conf, storage):
    """Return the dispatcher the API and the scheduler send tasks with."""
    shares_storage_redis = broker_url(conf) == conf.redis_url
    return CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=shares_storage_redis)


def add_heartbeat(app, path, interval_seconds=5.0):
    """Touch ``path`` from the worker's own timer while its event loop runs."""
    from celery import bootsteps

    from notifier.observability.heartbeat import Heartbeat

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
