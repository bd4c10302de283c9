"""A real Celery worker process delivering to a real HTTP receiver."""

import os
import signal
import time

import psutil
import pytest

from notifier.store import keys
from notifier.store.storage import Source
from tests.support.processes import Role, write_config
from tests.support.waiting import wait_until
from workers.app import CeleryDispatcher, create_celery


@pytest.fixture
def worker_conf(tmp_path, redis_server, redis_client):
    return write_config(
        str(tmp_path / "worker.conf"),
        redis_server.url,
        extra="visibility_timeout_seconds = 6\nconcurrency = 2\n",
    )


@pytest.fixture(autouse=True)
def scheduler(worker_conf, tmp_path):
    """As in any deployment: deliveries that wait (for an endpoint that is not
    proven yet, for a breaker) come back through the scheduler."""
    with Role("scheduler", worker_conf, log_path=str(tmp_path / "scheduler.log")):
        yield


@pytest.fixture
def dispatcher(conf):
    return CeleryDispatcher(create_celery(conf))


def subscribe_all(storage, source, urls):
    for url in urls:
        created, _ = storage.create_subscription(source, url, 3600, {}, confirmed=True)
        assert created


def post_burst(storage, dispatcher, source, count):
    ids = []
    for n in range(count):
        [message_id] = storage.post_messages(source, [{"body": {"n": n}, "ttl": 600}])
        dispatcher.send_fanout(source, [message_id])
        ids.append(message_id)
    return ids


def delivered_pairs(receiver):
    return [(r.path, r.json()["message_id"]) for r in receiver.received()]


def test_a_worker_delivers_every_message_to_every_subscriber(
    worker_conf, storage, dispatcher, receiver, tmp_path
):
    source = Source("p1", "queues", "burst")
    subscribe_all(storage, source, [receiver.url + "/a", receiver.url + "/b"])
    ids = post_burst(storage, dispatcher, source, 100)

    with Role("worker", worker_conf, log_path=str(tmp_path / "worker.log")):
        receiver.wait_for(200, timeout=60)
        receiver.wait_for(201, timeout=1)

    pairs = delivered_pairs(receiver)
    assert sorted(pairs) == sorted((p, i) for p in ("/a", "/b") for i in ids)


def test_a_killed_pool_child_loses_nothing(worker_conf, storage, dispatcher, receiver, tmp_path):
    source = Source("p1", "queues", "child")
    subscribe_all(storage, source, [receiver.url + "/slow"])
    receiver.delay("/slow", 0.05)
    ids = post_burst(storage, dispatcher, source, 60)

    with Role("worker", worker_conf, log_path=str(tmp_path / "worker.log")) as worker:
        receiver.wait_for(10, timeout=60)
        children = psutil.Process(worker.process.pid).children()
        assert children, "the worker has a prefork pool"
        os.kill(children[0].pid, signal.SIGKILL)
        receiver.wait_for(60, timeout=60)
        seen = {message_id for _, message_id in delivered_pairs(receiver)}
        deadline = time.monotonic() + 30
        while seen != set(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = {message_id for _, message_id in delivered_pairs(receiver)}

    assert seen == set(ids)
    duplicates = len(delivered_pairs(receiver)) - len(ids)
    assert duplicates <= 2  # at most the task in flight in the killed child


def test_a_whole_worker_killed_mid_burst_loses_nothing_once_restarted(
    worker_conf, storage, dispatcher, receiver, tmp_path
):
    source = Source("p1", "queues", "whole")
    subscribe_all(storage, source, [receiver.url + "/slow"])
    receiver.delay("/slow", 0.05)
    ids = post_burst(storage, dispatcher, source, 60)
    log = str(tmp_path / "worker.log")

    worker = Role("worker", worker_conf, log_path=log).start()
    receiver.wait_for(10, timeout=60)
    worker.kill_group(signal.SIGKILL)
    worker.process.wait()
    with Role("worker", worker_conf, log_path=log):
        deadline = time.monotonic() + 60
        seen = set()
        while seen != set(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = {message_id for _, message_id in delivered_pairs(receiver)}

    assert seen == set(ids)


def test_a_fanout_written_in_the_storage_transaction_is_run_by_a_worker(
    worker_conf, conf, storage, redis_client, receiver, tmp_path
):
    inline = CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)
    source = Source("p1", "queues", "inline")
    subscribe_all(storage, source, [receiver.url + "/a"])
    ids = [f"{n:032x}" for n in range(3)]
    task = inline.prepare_fanout(source, ids)
    storage.post_messages(source, [{"body": n, "ttl": 600} for n in range(3)], ids, task)
    inline.send_prepared(task)  # a no-op: the transaction enqueued it
    assert redis_client.llen("notifier.fanout") == 1

    with Role("worker", worker_conf, log_path=str(tmp_path / "worker.log")):
        receiver.wait_for(3, timeout=30)
        receiver.wait_for(4, timeout=1)

    assert sorted(m for _, m in delivered_pairs(receiver)) == ids
    assert redis_client.zcard(keys.task_outbox()) == 0  # the worker took it off the outbox


def test_the_inline_broker_message_has_the_shape_kombu_publishes(conf, redis_client):
    import json

    from workers.app import FANOUT_QUEUE, FANOUT_TASK, broker_message

    app = create_celery(conf)
    args = [["p", "queues", "q"], ["abc"], None]
    app.send_task(FANOUT_TASK, args=args)
    theirs = json.loads(redis_client.rpop(FANOUT_QUEUE))
    ours = json.loads(broker_message(app, FANOUT_TASK, args, FANOUT_QUEUE))

    def shape(message):
        volatile = {"id", "root_id", "correlation_id", "delivery_tag", "origin", "reply_to"}
        return {
            k: (shape(v) if isinstance(v, dict) else "*" if k in volatile else v)
            for k, v in message.items()
        }

    assert shape(ours) == shape(theirs)
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"]


def test_concurrent_posts_share_transactions_and_every_message_is_delivered_once(
    worker_conf, conf, storage, redis_client, receiver, tmp_path, monkeypatch
):
    """200 posts wait in line behind a write held open (as a slow Redis round
    trip would hold it): they go in groups of max_group, one transaction and
    one fan-out task each, through real Redis and a real worker."""
    import threading

    from notifier.delivery.ingest import MessageWriter

    writer = MessageWriter(
        storage, CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)
    )
    source = Source("p1", "queues", "grouped")
    subscribe_all(storage, source, [receiver.url + "/a"])
    store_posts = storage.store_posts
    first_started, release, groups = threading.Event(), threading.Event(), []

    def held_store_posts(posts, now=None):
        groups.append(sum(len(ids) for _, _, ids, _ in posts))
        if len(groups) == 1:
            first_started.set()
            assert release.wait(30)
        return store_posts(posts, now)

    monkeypatch.setattr(storage, "store_posts", held_store_posts)
    ids, errors = [], []

    def post(n):
        try:
            ids.extend(writer.post(source, [{"body": n, "ttl": 600}]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(200)]
    threads[0].start()
    assert first_started.wait(30)
    for thread in threads[1:]:
        thread.start()
    # every later post waits in line behind the held one
    assert wait_until(lambda: len(writer._line) == 200, 30, 0.01)
    release.set()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert writer.max_group == 64
    assert groups == [1, 64, 64, 64, 7]  # the held one alone, then max_group at a time
    assert redis_client.llen("notifier.fanout") == len(groups)

    with Role("worker", worker_conf, log_path=str(tmp_path / "worker.log")):
        receiver.wait_for(200, timeout=60)
        receiver.wait_for(201, timeout=1)

    assert sorted(m for _, m in delivered_pairs(receiver)) == sorted(ids)
    assert len(set(ids)) == 200


def test_a_fanout_is_enqueued_only_where_there_is_something_to_match(conf, storage, redis_client):
    inline = CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)

    def post(source):
        ids = [f"{n:032x}" for n in range(2)]
        task = inline.prepare_fanout(source, ids)
        [enqueued] = storage.store_posts([(source, [{"body": 1, "ttl": 60}] * 2, ids, task)])
        assert storage.get_messages(ids).keys() == set(ids)  # stored either way
        return (
            enqueued,
            redis_client.llen("notifier.fanout"),
            redis_client.zcard(keys.task_outbox()),
        )

    quiet = Source("p1", "queues", "nobody-listens")
    assert post(quiet) == (False, 0, 0)
    # a topic always fans out: its fan-out deletes messages that match nothing
    assert post(Source("p1", "topics", "nobody-listens")) == (True, 1, 1)
    storage.create_subscription(quiet, "http://127.0.0.1:9/x", 3600, {}, confirmed=True)
    assert post(quiet) == (True, 2, 2)
