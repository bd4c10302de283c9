"""A task starts no delivery after its deadline: the rest go back to the
retry schedule, due at once, neither attempted twice nor lost. Real Redis,
a real receiver; the service's clock is injected and moves 10 s per request
the receiver answers (a slow endpoint, without waiting for it)."""

import time

import pytest

from notifier.delivery.service import DeliveryService
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher
from tests.support.receiver import Receiver


class Clock:
    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


class SlowReceiver(Receiver):
    """Each request takes 10 s on the service's clock."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def _respond(self, path, headers, body):
        self.clock.offset += 10
        return super()._respond(path, headers, body)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def slow(clock):
    with SlowReceiver(clock) as server:
        yield server


def setup(conf, storage, slow, clock, count=5):
    dispatcher = MemoryDispatcher()
    service = DeliveryService(conf, storage, dispatcher, clock=clock)
    source = Source("p", "queues", "deadline")
    _, subscription_id = storage.create_subscription(
        source, slow.url + "/s", 3600, {}, confirmed=True
    )
    ids = storage.post_messages(source, [{"body": n, "ttl": 300} for n in range(count)])
    deliveries = [{"message_id": m, "subscription_id": subscription_id, "attempt": 0} for m in ids]
    return service, dispatcher, subscription_id, deliveries


def finish(service, dispatcher, clock):
    """Let the scheduler move what is due and the tasks run, with no deadline."""
    while service.move_due_retries() or dispatcher.tasks:
        dispatcher.run(service)


def test_deliveries_not_started_by_the_deadline_go_back_to_the_schedule(conf, storage, slow, clock):
    service, dispatcher, subscription_id, deliveries = setup(conf, storage, slow, clock)
    service.deliver(deliveries, deadline=clock() + 25)  # at 0, 10, 20 s: three go

    assert len(slow.received()) == 3
    assert storage.pending_retry_count() == 2  # the other two wait, due at once
    assert len(storage.subscription_attempts(subscription_id)) == 3  # not attempts

    finish(service, dispatcher, clock)
    bodies = sorted(r.json()["body"] for r in slow.received())
    assert bodies == list(range(5))  # each once: none lost, none twice
    attempts = storage.subscription_attempts(subscription_id)
    assert sorted(a["attempt"] for a in attempts) == [0] * 5
    assert {a["outcome"] for a in attempts} == {"delivered"}


def test_a_task_that_waited_past_its_deadline_sends_nothing_and_loses_nothing(
    conf, storage, slow, clock
):
    service, dispatcher, subscription_id, deliveries = setup(conf, storage, slow, clock)
    service.deliver(deliveries, deadline=clock() - 1)

    assert slow.received() == []
    assert storage.pending_retry_count() == 5
    assert storage.subscription_attempts(subscription_id) == []
    finish(service, dispatcher, clock)
    assert sorted(r.json()["body"] for r in slow.received()) == list(range(5))
