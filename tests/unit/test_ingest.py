"""Group commit: concurrent posts share one write; errors reach every post."""

import threading

import pytest

from notifier.delivery.ingest import MessageWriter
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher

QUEUE = Source("p", "queues", "q")
OTHER = Source("p", "queues", "other")
UNSUBSCRIBED = Source("p", "queues", "nobody")


class GatedStorage:
    """Records each transaction; the first one waits until released, so the
    posts that arrive meanwhile queue up behind it."""

    def __init__(self, fail=None):
        self.writes = []
        self.deleted = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def store_posts(self, posts, now=None):
        if not self.writes:
            self.first_started.set()
            self.release.wait(5)
        self.writes.append(posts)
        if self.fail:
            raise self.fail
        return [source != UNSUBSCRIBED for source, _, _, _ in posts]

    def delete_messages(self, ids):
        self.deleted.extend(ids)


def post_concurrently(writer, sources, holder, size=0):
    results = [None] * len(sources)

    def run(i):
        try:
            results[i] = writer.post(sources[i], [{"body": i, "ttl": 60}], size)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert holder.first_started.wait(5)
    rest = [threading.Thread(target=run, args=(i,)) for i in range(1, len(sources))]
    for thread in rest:
        thread.start()
    while len(writer._line) < len(sources):  # every later post is waiting in line
        threading.Event().wait(0.001)
    holder.release.set()
    for thread in [first] + rest:
        thread.join(5)
    return results


def test_a_lone_post_is_written_at_once():
    storage = GatedStorage()
    storage.release.set()
    dispatcher = MemoryDispatcher()
    ids = MessageWriter(storage, dispatcher).post(QUEUE, [{"body": 1, "ttl": 60}] * 2)
    assert len(ids) == 2 and len(set(ids)) == 2
    [[(source, messages, written_ids, task)]] = storage.writes
    assert (source, messages, written_ids) == (QUEUE, [{"body": 1, "ttl": 60}] * 2, ids)
    assert task.args == [list(QUEUE), ids, None]
    assert dispatcher.tasks == [("fanout", (list(QUEUE), ids, None))]


def test_posts_arriving_during_a_write_share_the_next_one():
    storage = GatedStorage()
    dispatcher = MemoryDispatcher()
    writer = MessageWriter(storage, dispatcher)
    results = post_concurrently(writer, [QUEUE, QUEUE, OTHER, QUEUE], storage)

    assert len(storage.writes) == 2  # the first alone, then the three behind it
    assert sum(len(ids) for _, _, ids, _ in storage.writes[1]) == 3
    # one fan-out per source and write, carrying the ids of its posts (the
    # order in line of the posts that waited is the threads' race)
    first, *later = dispatcher.tasks
    assert first == ("fanout", (list(QUEUE), results[0], None))
    assert sorted((tuple(args[0]), sorted(args[1])) for _, args in later) == sorted(
        [(tuple(QUEUE), sorted(results[1] + results[3])), (tuple(OTHER), results[2])]
    )


def test_a_failed_write_fails_every_post_of_its_group_and_keeps_nothing():
    storage = GatedStorage(fail=ConnectionError("redis down"))
    writer = MessageWriter(storage, MemoryDispatcher())
    results = post_concurrently(writer, [QUEUE] * 4, storage)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert writer._line == []


def test_groups_are_capped():
    storage = GatedStorage()
    writer = MessageWriter(storage, MemoryDispatcher(), max_group=2)
    results = post_concurrently(writer, [QUEUE] * 5, storage)
    assert all(isinstance(r, list) for r in results)
    assert [sum(len(ids) for _, _, ids, _ in write) for write in storage.writes] == [1, 2, 2]


def test_groups_are_capped_in_bytes_too_but_a_large_post_still_goes():
    storage = GatedStorage()
    writer = MessageWriter(storage, MemoryDispatcher(), max_group_bytes=250)
    results = post_concurrently(writer, [QUEUE] * 4, storage, size=100)
    assert all(isinstance(r, list) for r in results)
    assert [sum(len(ids) for _, _, ids, _ in write) for write in storage.writes] == [1, 2, 1]
    storage = GatedStorage()
    storage.release.set()
    MessageWriter(storage, MemoryDispatcher(), max_group_bytes=10).post(
        QUEUE, [{"body": 1, "ttl": 60}], 1000
    )
    assert len(storage.writes) == 1


class BrokerDown(MemoryDispatcher):
    def send_prepared(self, task):
        raise OSError("broker down")


def test_messages_are_taken_back_when_their_fanout_cannot_be_sent():
    storage = GatedStorage()
    storage.release.set()
    with pytest.raises(OSError, match="broker down"):
        MessageWriter(storage, BrokerDown()).post(QUEUE, [{"body": 1, "ttl": 60}])
    [[(_, _, ids, _)]] = storage.writes
    assert storage.deleted == ids


def test_a_queue_without_subscriptions_gets_no_fanout_task():
    storage = GatedStorage()
    storage.release.set()
    dispatcher = MemoryDispatcher()
    MessageWriter(storage, dispatcher).post(UNSUBSCRIBED, [{"body": 1, "ttl": 60}])
    assert len(storage.writes) == 1 and dispatcher.tasks == []
