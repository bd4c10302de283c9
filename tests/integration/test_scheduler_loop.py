"""The scheduler loop (``notifier.delivery.scheduler``) against a real Redis:
due retries move once, lost tasks are re-sent on its own clock, and a Redis
that is down is counted and outlived."""

import threading
import time

import redis
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier.cli.redis_server import free_port
from notifier.core.model import Delivery
from notifier.delivery.scheduler import Scheduler
from notifier.delivery.service import DeliveryService
from notifier.store.storage import Storage
from tests.support.dispatch import MemoryDispatcher
from workers.app import DELIVER_TASK, TASK_QUEUES, task_member


class Beats:
    """A heartbeat that counts, and stops the loop after ``stop_after`` beats."""

    def __init__(self, stop_event=None, stop_after=None):
        self.count = 0
        self.stop_event = stop_event
        self.stop_after = stop_after

    def beat(self):
        self.count += 1
        if self.stop_after is not None and self.count >= self.stop_after:
            self.stop_event.set()


def scheduler_of(conf, storage, dispatcher, **kwargs):
    service = DeliveryService(conf, storage, dispatcher)
    kwargs.setdefault("heartbeat", Beats())
    return Scheduler(service, TASK_QUEUES, 30, **kwargs)


def test_a_pass_moves_the_due_retries_and_only_those_once(conf, storage):
    dispatcher = MemoryDispatcher()
    due, later = Delivery("m1", "s1", 1).to_dict(), Delivery("m2", "s1", 1).to_dict()
    storage.schedule_retries([(time.time() - 1, due), (time.time() + 3600, later)])
    scheduler = scheduler_of(conf, storage, dispatcher)

    assert scheduler.run_once() == 1
    assert scheduler.run_once() == 0
    assert dispatcher.tasks == [("deliver", ([due],))]


def test_lost_tasks_are_resent_once_per_reconcile_interval(conf, storage):
    dispatcher = MemoryDispatcher()
    now = [1000.0]
    scheduler = scheduler_of(
        conf, storage, dispatcher, reconcile_interval=5.0, clock=lambda: now[0]
    )
    lost = [task_member(DELIVER_TASK, [[Delivery(f"m{i}", "s1").to_dict()]]) for i in range(3)]
    storage.mark_task_sent(lost[0], now=time.time() - 60)

    scheduler.run_once()
    assert dispatcher.resent == [lost[0]]

    storage.mark_task_sent(lost[1], now=time.time() - 60)
    now[0] += 4.9
    scheduler.run_once()
    assert dispatcher.resent == [lost[0]]
    now[0] += 0.2
    scheduler.run_once()
    assert dispatcher.resent == [lost[0], lost[1]]


def test_the_loop_beats_each_pass_and_ends_when_stopped(conf, storage):
    dispatcher = MemoryDispatcher()
    storage.schedule_retries([(time.time() - 1, Delivery("m1", "s1", 1).to_dict())])
    stop = threading.Event()
    beats = Beats(stop, stop_after=3)
    scheduler = scheduler_of(
        conf, storage, dispatcher, heartbeat=beats, stop_event=stop, poll_seconds=0.01
    )

    scheduler.run()

    assert beats.count == 3
    assert [name for name, _ in dispatcher.tasks] == ["deliver"]


def errors_counted():
    value = REGISTRY.get_sample_value("notifier_redis_errors_total", {"component": "scheduler"})
    return value or 0.0


def test_a_redis_that_is_down_is_counted_and_the_loop_goes_on(conf):
    dead = redis.Redis(
        port=free_port(),
        decode_responses=True,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    stop = threading.Event()
    beats = Beats(stop, stop_after=2)
    scheduler = scheduler_of(
        conf, Storage(dead), MemoryDispatcher(), heartbeat=beats, stop_event=stop
    )
    before = errors_counted()
    started = time.monotonic()

    scheduler.run()  # returns: failing passes do not end the loop

    assert beats.count == 2
    assert errors_counted() == before + 2
    assert time.monotonic() - started >= 1.0  # it paused after the first failure
    dead.close()
