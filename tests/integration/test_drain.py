"""Small fan-outs' deliveries drained together across posts (delivery/drain.py):
real Redis, a real receiver, the in-memory dispatcher. Each delivery goes
once, each endpoint's in post order; a drain task that dies after taking its
deliveries loses none of them, and repeats none that ran."""

import time

import pytest

from notifier.delivery.drain import SHARDS, shard_of
from notifier.delivery.service import DeliveryService
from notifier.store import keys
from notifier.store.pending_deliveries import drain_member
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher
from workers.app import FANOUT_QUEUE

SOURCE = Source("p", "queues", "drained")


class Clock:
    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def setup(conf, storage, receiver, clock):
    dispatcher = MemoryDispatcher()
    service = DeliveryService(conf, storage, dispatcher, clock=clock)
    subscriptions = [
        storage.create_subscription(SOURCE, receiver.url + path, 3600, {}, confirmed=True)[1]
        for path in ("/a", "/b")
    ]
    return service, dispatcher, subscriptions


def post(storage, service, count):
    """Post single-message posts and run their fan-outs; return the ids."""
    ids = []
    for n in range(count):
        [message_id] = storage.post_messages(SOURCE, [{"body": n, "ttl": 300}])
        service.fanout(SOURCE, [message_id])
        ids.append(message_id)
    return ids


def bodies_by_path(receiver):
    by_path = {}
    for request in receiver.received():
        by_path.setdefault(request.path, []).append(request.json()["body"])
    return by_path


def test_a_light_load_is_delivered_by_the_fanout_itself(storage, redis_client, receiver, setup):
    service, dispatcher, _ = setup
    post(storage, service, 3)

    assert bodies_by_path(receiver) == {"/a": [0, 1, 2], "/b": [0, 1, 2]}
    assert dispatcher.tasks == []  # no extra task
    shard = shard_of(SOURCE)
    assert not redis_client.exists(keys.drain_owner(shard))  # given up: nothing left
    assert redis_client.llen(keys.pending_deliveries(shard)) == 0
    assert storage.pending_retry_count() == 0  # settled: nothing comes back


def test_posts_made_while_a_drain_runs_go_in_its_next_batch_once_each_in_order(
    storage, redis_client, receiver, setup
):
    service, dispatcher, subscriptions = setup
    shard = shard_of(SOURCE)
    redis_client.set(keys.drain_owner(shard), "1")  # another task owns the shard
    post(storage, service, 20)
    assert receiver.received() == []  # pushed, not delivered by their fan-outs
    assert redis_client.llen(keys.pending_deliveries(shard)) == 40

    assert service.drain(shard) == 40  # the owner: one batch (40 <= 50)

    assert bodies_by_path(receiver) == {"/a": list(range(20)), "/b": list(range(20))}
    assert dispatcher.tasks == []
    assert not redis_client.exists(keys.drain_owner(shard))
    for subscription_id in subscriptions:
        attempts = storage.subscription_attempts(subscription_id)
        assert [a["outcome"] for a in attempts] == ["delivered"] * 20
    assert storage.pending_retry_count() == 0


def test_a_backlog_gets_a_helper_task_beside_the_owner(storage, redis_client, receiver, setup):
    service, dispatcher, _ = setup
    shard = shard_of(SOURCE)
    redis_client.set(keys.drain_owner(shard), "1")
    post(storage, service, 60)  # 120 deliveries: more than two batches of 50

    service.drain(shard, owner=False)  # a helper takes one batch
    assert ("drain", (shard, False)) in dispatcher.tasks  # 70 left: one more helper
    dispatcher.run(service)
    service.drain(shard)  # the owner takes the rest and gives the shard up

    by_path = bodies_by_path(receiver)
    assert sorted(by_path["/a"]) == list(range(60)) == sorted(by_path["/b"])
    assert not redis_client.exists(keys.drain_owner(shard))


def test_deliveries_taken_by_a_drain_that_died_come_back_and_run_once(
    storage, redis_client, receiver, setup, clock, monkeypatch
):
    service, dispatcher, subscriptions = setup
    shard = shard_of(SOURCE)
    redis_client.set(keys.drain_owner(shard), "1")
    ids = post(storage, service, 5)

    # Died after its deliveries, before forgetting what it took: they wait in
    # the retry schedule, marked, until the visibility timeout.
    def die(members):
        raise SystemExit("worker killed")

    monkeypatch.setattr(storage.pending, "settle", die)
    with pytest.raises(SystemExit):
        service.drain(shard)
    monkeypatch.undo()
    assert len(receiver.received()) == 10
    assert storage.pending_retry_count() == 10
    assert service.move_due_retries() == 0  # not before the visibility timeout

    clock.offset = 60  # past it: the scheduler sends them again
    assert service.move_due_retries() == 10
    dispatcher.run(service)
    assert len(receiver.received()) == 10  # the done flags: none ran twice
    assert storage.pending_retry_count() == 0
    for subscription_id in subscriptions:
        assert len(storage.subscription_attempts(subscription_id)) == 5
    assert sorted(bodies_by_path(receiver)["/a"]) == list(range(len(ids)))


def test_deliveries_taken_and_not_attempted_by_a_dead_drain_are_delivered(
    storage, redis_client, receiver, setup, clock
):
    service, dispatcher, _ = setup
    shard = shard_of(SOURCE)
    redis_client.set(keys.drain_owner(shard), "1")
    post(storage, service, 3)
    taken = storage.pending.take(shard, 50, clock() + 45, True, 45)  # then it died
    assert len(taken.members) == 6 and taken.remaining == 0

    clock.offset = 60
    assert service.move_due_retries() == 6
    dispatcher.run(service)
    assert bodies_by_path(receiver) == {"/a": [0, 1, 2], "/b": [0, 1, 2]}


def test_a_shard_whose_owner_is_gone_is_handed_to_a_new_drain(
    storage, redis_client, receiver, setup
):
    service, dispatcher, _ = setup
    shard = shard_of(SOURCE)
    redis_client.set(keys.drain_owner(shard), "1", px=50)  # its task was lost
    post(storage, service, 2)
    assert receiver.received() == []
    time.sleep(0.1)  # the owner flag expires

    assert service.reconcile_tasks(30, ["notifier.deliver"]) == 1
    assert dispatcher.tasks == [("drain", (shard, True))]
    assert service.reconcile_tasks(30, ["notifier.deliver"]) == 0  # owned meanwhile
    dispatcher.run(service)
    assert bodies_by_path(receiver) == {"/a": [0, 1], "/b": [0, 1]}


def test_shards_and_members():
    assert shard_of(SOURCE) == shard_of(Source("p", "queues", "drained"))
    assert {shard_of(Source("p", "queues", f"q{n}")) for n in range(200)} == set(range(SHARDS))
    delivery = {"message_id": "m", "subscription_id": "s", "attempt": 0}
    # never the member a retry of the same delivery is scheduled under
    assert (
        drain_member(delivery) == '{"message_id":"m","subscription_id":"s","attempt":0,"drain":1}'
    )


def test_an_owner_runs_the_fanout_tasks_waiting_on_the_queue(storage, receiver, setup):
    service, dispatcher, _ = setup
    ids = []
    for n in range(6):  # posted while the workers were busy: six fan-out tasks wait
        [message_id] = storage.post_messages(SOURCE, [{"body": n, "ttl": 300}])
        dispatcher.send_fanout(SOURCE, [message_id])
        ids.append(message_id)

    assert dispatcher.run(service, limit=1) == 1  # the first runs the other five

    assert dispatcher.tasks == []
    assert bodies_by_path(receiver) == {"/a": list(range(6)), "/b": list(range(6))}


def test_an_owner_loads_the_waiting_fanouts_together(storage, receiver, setup, monkeypatch):
    """The fan-out tasks an owner takes read their messages in one round
    trip and each source's first subscription page once; a fan-out whose
    message is gone makes nothing, and each source gets its own subscribers."""
    service, dispatcher, _ = setup
    other = Source("p", "queues", "other")
    storage.create_subscription(other, receiver.url + "/o", 3600, {}, confirmed=True)
    first = storage.post_messages(SOURCE, [{"body": "first", "ttl": 300}])
    dispatcher.send_fanout(SOURCE, first)  # the owner's own task
    waiting = []
    for n, source in enumerate([SOURCE, other, SOURCE, other, SOURCE]):
        ids = storage.post_messages(source, [{"body": n, "ttl": 300}])
        dispatcher.send_fanout(source, ids)
        waiting.append(ids[0])
    storage.delete_messages([waiting[2]])  # expired before its fan-out ran
    calls = {"read_fanouts": [], "subscription_page": []}
    for name, seen in calls.items():
        real = getattr(storage, name)
        monkeypatch.setattr(
            storage, name, lambda *a, _real=real, _seen=seen, **k: _seen.append(a) or _real(*a, **k)
        )

    assert dispatcher.run(service, limit=1) == 1

    assert dispatcher.tasks == []
    assert bodies_by_path(receiver) == {
        "/a": ["first", 0, 4],
        "/b": ["first", 0, 4],
        "/o": [1, 3],
    }
    # the owner's own fan-out, then one read for the five it took, with each
    # source's first page read once
    reads = [(sorted(ids), sorted(sources)) for ids, sources, *_ in calls["read_fanouts"]]
    assert reads == [(first, [SOURCE]), (sorted(waiting), sorted([SOURCE, other]))]
    assert calls["subscription_page"] == []  # no later pages


def test_fanout_tasks_are_taken_off_the_broker_queue_with_their_outbox_entries(
    conf, storage, redis_client
):
    from workers.app import FANOUT_QUEUE, CeleryDispatcher, create_celery, task_member

    dispatcher = CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)
    storage.create_subscription(SOURCE, "http://127.0.0.1:9/a", 3600, {}, confirmed=True)
    posted = []
    for n in range(3):
        task = dispatcher.prepare_fanout(SOURCE, [f"{n:032x}"])
        storage.post_messages(SOURCE, [{"body": n, "ttl": 60}], [f"{n:032x}"], task)
        posted.append(task)
    dispatcher.send_deliveries([{"message_id": "m", "subscription_id": "s", "attempt": 0}])
    redis_client.lpush(FANOUT_QUEUE, redis_client.rpop("notifier.deliver"))  # not a fan-out

    taken = dispatcher.take_fanouts(2)

    assert taken == [(task.args, task.member) for task in posted[:2]]  # oldest first
    assert taken[0][1] == task_member("notifier.fanout", posted[0].args)
    assert redis_client.llen(FANOUT_QUEUE) == 2  # the third, and the foreign task put back
    assert dispatcher.take_fanouts(5) == [(posted[2].args, posted[2].member)]
    assert redis_client.llen(FANOUT_QUEUE) == 1
    assert CeleryDispatcher(create_celery(conf), storage).take_fanouts(5) == []  # not inline
    # a fan-out sent without an outbox entry stays Celery's
    storage.mark_task_started(posted[2].member)
    redis_client.lpush(FANOUT_QUEUE, posted[2].payload)
    assert dispatcher.take_fanouts(5) == []
    assert redis_client.llen(FANOUT_QUEUE) == 2


def test_a_post_to_an_owned_shard_parks_its_fanout_there_for_the_owner(
    conf, storage, redis_client, receiver, setup
):
    """Under load a post costs no task: while a drain task owns the source's
    shard, the post's fan-out goes onto that shard, in the same script that
    stores the message, and the owner runs it with its next batch."""
    from workers.app import FANOUT_QUEUE, CeleryDispatcher, create_celery

    service, _, _ = setup
    poster = CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)
    shard = shard_of(SOURCE)

    def post_one(n):
        message_id = f"{n:032x}"
        task = poster.prepare_fanout(SOURCE, [message_id])
        storage.post_messages(SOURCE, [{"body": n, "ttl": 60}], [message_id], task)
        return task

    post_one(0)  # nobody owns the shard: a fan-out task, as ever
    assert redis_client.llen(FANOUT_QUEUE) == 1
    assert redis_client.llen(keys.pending_deliveries(shard)) == 0
    redis_client.delete(FANOUT_QUEUE)

    assert storage.pending.claim(shard, 10)  # a drain task owns it now
    parked = [post_one(n) for n in (1, 2, 3)]
    assert redis_client.llen(FANOUT_QUEUE) == 0
    assert redis_client.llen(keys.pending_deliveries(shard)) == 3
    assert redis_client.zmscore(keys.task_outbox(), [t.member for t in parked]) != [None] * 3

    assert service.drain(shard) == 6

    assert bodies_by_path(receiver) == {"/a": [1, 2, 3], "/b": [1, 2, 3]}
    assert redis_client.zmscore(keys.task_outbox(), [t.member for t in parked]) == [None] * 3
    assert redis_client.zcard(keys.retries()) == 0
    assert not redis_client.exists(keys.drain_owner(shard))  # given up: nothing left


def test_a_parked_fanout_taken_by_a_drain_that_died_is_sent_again(conf, storage, redis_client):
    """A parked fan-out is not a delivery, so it does not wait in the retry
    schedule once taken: its outbox entry, dated by the take and left in
    place until its deliveries are settled, is what the reconciler sends
    again. Until taken it is dated a day ahead: waiting on a shard is a
    backlog, not a loss (an ownerless shard is handed on instead)."""
    from workers.app import FANOUT_QUEUE, CeleryDispatcher, create_celery

    poster = CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)
    shard = shard_of(SOURCE)
    storage.create_subscription(SOURCE, "http://127.0.0.1:9/a", 3600, {}, confirmed=True)
    assert storage.pending.claim(shard, 10)
    task = poster.prepare_fanout(SOURCE, ["f" * 32])
    storage.post_messages(SOURCE, [{"body": 0, "ttl": 60}], ["f" * 32], task)
    [waiting_until] = redis_client.zmscore(keys.task_outbox(), [task.member])
    assert waiting_until > time.time() + 86000

    taken_at = time.time() - 5
    taken = storage.pending.take(shard, 50, time.time() + 45, True, 10, sent=taken_at)  # ... died

    assert taken.fanouts == [task.member] and taken.members == []
    assert redis_client.zcard(keys.retries()) == 0
    assert redis_client.zmscore(keys.task_outbox(), [task.member]) == [taken_at]
    later = poster.prepare_fanout(SOURCE, ["e" * 32])  # parked meanwhile: not stale
    storage.post_messages(SOURCE, [{"body": 1, "ttl": 60}], ["e" * 32], later)
    assert redis_client.llen(keys.pending_deliveries(shard)) == 1
    stale = storage.lease_stale_tasks(time.time() + 60, 50, [FANOUT_QUEUE])
    assert stale == [task.member]


def test_a_parked_fanout_in_the_retry_schedule_is_sent_again_as_a_task(storage, setup):
    """During a rolling upgrade a drain task of the version before parking
    puts a taken parked fan-out into the retry schedule like a delivery: the
    scheduler sends it again as the task it is, and moves the rest as ever."""
    service, dispatcher, subscriptions = setup
    member = '["notifier.fanout",[["p","queues","drained"],["' + "a" * 32 + '"],null]]'
    delivery = {"message_id": "b" * 32, "subscription_id": subscriptions[0], "attempt": 1}
    storage.schedule_retries([(time.time() - 1, {"fanout": member}), (time.time() - 1, delivery)])

    assert service.move_due_retries() == 2

    assert dispatcher.resent == [member]
    assert dispatcher.tasks == [("deliver", ([delivery],))]
    assert storage.redis.zcard(keys.retries()) == 0


def test_a_take_of_many_fanouts_delivers_a_bounded_batch(storage, receiver, setup, monkeypatch):
    """However many parked or stolen fan-outs a take matches, one batch
    delivers at most MAX_BATCH_TASKS tasks' worth; the rest go as tasks."""
    from notifier.delivery import drain

    service, dispatcher, _ = setup
    monkeypatch.setattr(drain, "MAX_BATCH_TASKS", 1)
    service.drains.limit = 4  # a batch of at most 4 deliveries
    for n in range(5):  # 5 fan-outs x 2 subscribers waiting as tasks
        [message_id] = storage.post_messages(SOURCE, [{"body": n, "ttl": 300}])
        dispatcher.send_fanout(SOURCE, [message_id])

    # The first fan-out owns the shard and takes the other four: 8 jobs, of
    # which a batch delivers 4 (with the first's own 2); 4 go as a task.
    assert dispatcher.run(service, limit=1) == 1

    assert bodies_by_path(receiver) == {"/a": [0, 1, 2], "/b": [0, 1, 2]}
    assert [(name, len(args[0])) for name, args in dispatcher.tasks] == [("deliver", 4)]
    dispatcher.run(service)
    assert bodies_by_path(receiver) == {"/a": [0, 1, 2, 3, 4], "/b": [0, 1, 2, 3, 4]}


def test_a_fanout_with_a_batch_of_its_own_runs_the_fanouts_waiting_behind_it(
    conf, storage, receiver, clock, monkeypatch
):
    """A backlog of posts big enough for a batch each: the first fan-out task
    takes the tasks waiting behind it into its batch, up to MAX_BATCH_TASKS
    tasks' worth; each endpoint still gets its deliveries in post order."""
    from notifier.delivery import drain

    conf.set_override("deliveries_per_task", 4, group="notification")
    monkeypatch.setattr(drain, "MAX_BATCH_TASKS", 3)
    dispatcher = MemoryDispatcher()
    service = DeliveryService(conf, storage, dispatcher, clock=clock)
    for path in ("/a", "/b"):
        storage.create_subscription(SOURCE, receiver.url + path, 3600, {}, confirmed=True)
    for n in range(4):  # 2 messages x 2 subscribers: a batch of its own each
        ids = storage.post_messages(SOURCE, [{"body": [n, i], "ttl": 300} for i in (0, 1)])
        dispatcher.send_fanout(SOURCE, ids)

    name, args = dispatcher.tasks.pop(0)
    assert service.fanout(*args) == 12  # its own 4 and two taken tasks' 8

    in_order = [[n, i] for n in range(3) for i in (0, 1)]
    assert bodies_by_path(receiver) == {"/a": in_order, "/b": in_order}
    assert [name for name, _ in dispatcher.tasks] == ["fanout"]  # the fourth still waits
    dispatcher.run(service)
    assert len(receiver.received()) == 16  # each once


def broker_backlog(conf, storage, receiver, clock):
    """A fleet whose batches hold 2 deliveries, two subscribers (/a, /b), and
    three single-message posts waiting on the real broker queue as fan-out
    tasks with outbox entries; return the service and the tasks."""
    from workers.app import CeleryDispatcher, create_celery

    conf.set_override("deliveries_per_task", 2, group="notification")
    dispatcher = CeleryDispatcher(create_celery(conf), storage, shares_storage_redis=True)
    service = DeliveryService(conf, storage, dispatcher, clock=clock)
    for path in ("/a", "/b"):
        storage.create_subscription(SOURCE, receiver.url + path, 3600, {}, confirmed=True)
    tasks = []
    for n in range(3):
        task = dispatcher.prepare_fanout(SOURCE, [f"{n:032x}"])
        storage.post_messages(SOURCE, [{"body": n, "ttl": 60}], [f"{n:032x}"], task)
        tasks.append(task)
    return service, tasks


def test_fanout_tasks_taken_by_a_fanout_leave_the_broker_and_the_outbox_once_settled(
    conf, storage, redis_client, receiver, clock
):
    """On the real broker queue: the taken tasks are off the queue (no worker
    runs them again) and their outbox entries go once their deliveries are
    settled; a task without an outbox entry stays Celery's."""
    service, tasks = broker_backlog(conf, storage, receiver, clock)
    redis_client.rpop(FANOUT_QUEUE)  # the first: taken by a worker, which runs it
    storage.mark_task_started(tasks[0].member)
    storage.mark_task_started(tasks[2].member)  # as if sent without an entry

    assert service.fanout(SOURCE, [f"{0:032x}"]) == 4

    assert bodies_by_path(receiver) == {"/a": [0, 1], "/b": [0, 1]}
    assert redis_client.zmscore(keys.task_outbox(), [tasks[1].member]) == [None]
    assert redis_client.llen(FANOUT_QUEUE) == 1  # the third, Celery's to run


def test_a_fanout_reads_in_two_round_trips_and_leaves_the_outbox_with_the_first(
    conf, storage, redis_client, receiver, setup
):
    """The task's outbox entry, its messages and the first page's ids in one
    round trip; the page's subscriptions in the next (issue 21). An id whose
    subscription expired leaves the index on the way."""
    from redis.client import Pipeline, Redis

    service, _, _ = setup
    gone = storage.create_subscription(SOURCE, receiver.url + "/gone", 3600, {}, confirmed=True)[1]
    redis_client.delete(keys.subscription(gone))
    ids = storage.post_messages(SOURCE, [{"body": n, "ttl": 300} for n in range(2)])
    member = '["notifier.fanout",[["p","queues","drained"],["x"],null]]'
    storage.mark_task_sent(member)
    trips = []
    real_execute, real_command = Pipeline.execute, Redis.execute_command
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            Pipeline,
            "execute",
            lambda p, *a: trips.append([c[0][0] for c in p.command_stack]) or real_execute(p, *a),
        )
        patch.setattr(
            Redis,
            "execute_command",
            lambda r, *a, **k: trips.append([a[0]]) or real_command(r, *a, **k),
        )
        messages, pages = storage.read_fanouts(ids, [SOURCE], 500, [member])

    assert trips == [["ZREM", "MGET", "ZRANGEBYLEX"], ["MGET"], ["ZREM"]]  # the last: `gone`
    assert set(messages) == set(ids)
    subscriptions, cursor = pages[SOURCE]
    assert (
        sorted(s["subscriber"] for s in subscriptions) == [receiver.url + "/a", receiver.url + "/b"]
        and cursor is None
    )
    assert redis_client.zscore(keys.task_outbox(), member) is None
    assert gone not in redis_client.zrange(keys.source_subscriptions(SOURCE), 0, -1)
    assert len(redis_client.zrange(keys.source_subscriptions(SOURCE), 0, -1)) == 2
    assert service.fanout(SOURCE, ids, started=member) == 4


def test_a_fanout_up_to_a_batchs_bound_is_delivered_in_its_task_beyond_it_as_tasks(
    conf, storage, receiver, clock, monkeypatch
):
    """The API writes concurrent posts to one queue as one fan-out: up to
    MAX_BATCH_TASKS tasks' worth it is one batch in its own task, not sent
    on as delivery tasks each costing a task's round trips again; beyond
    that it is spread over delivery tasks, so the fleet shares it."""
    from notifier.delivery import drain

    conf.set_override("deliveries_per_task", 4, group="notification")
    monkeypatch.setattr(drain, "MAX_BATCH_TASKS", 3)
    dispatcher = MemoryDispatcher()
    service = DeliveryService(conf, storage, dispatcher, clock=clock)
    for path in ("/a", "/b"):
        storage.create_subscription(SOURCE, receiver.url + path, 3600, {}, confirmed=True)

    ids = storage.post_messages(SOURCE, [{"body": n, "ttl": 300} for n in range(6)])
    assert service.fanout(SOURCE, ids) == 12  # 6 x 2: three tasks' worth
    assert dispatcher.tasks == []
    assert bodies_by_path(receiver) == {"/a": list(range(6)), "/b": list(range(6))}

    ids = storage.post_messages(SOURCE, [{"body": n, "ttl": 300} for n in range(7)])
    assert service.fanout(SOURCE, ids) == 14
    assert [(name, len(args[0])) for name, args in dispatcher.tasks] == [("deliver", 4)] * 3 + [
        ("deliver", 2)
    ]


def test_a_task_past_its_deadline_takes_no_fanouts_and_a_task_taken_twice_runs_once(
    conf, storage, redis_client, receiver, clock
):
    """A prefetched task past its deadline puts its own deliveries back on
    the schedule and leaves the waiting tasks to others; a task on the queue
    twice (restored by kombu and sent again by the reconciler) taken into
    one batch is delivered once."""
    service, tasks = broker_backlog(conf, storage, receiver, clock)
    redis_client.lpush(FANOUT_QUEUE, tasks[2].payload)  # the third, twice
    redis_client.rpop(FANOUT_QUEUE)  # the first: this worker's

    service.fanout(SOURCE, [f"{0:032x}"], deadline=time.time() - 1, started=tasks[0].member)
    assert redis_client.llen(FANOUT_QUEUE) == 3  # none taken
    assert receiver.received() == [] and redis_client.zcard(keys.retries()) == 2

    redis_client.rpop(FANOUT_QUEUE)  # the second: this worker's next
    service.fanout(SOURCE, [f"{1:032x}"], started=tasks[1].member)  # takes the third twice
    assert bodies_by_path(receiver) == {"/a": [1, 2], "/b": [1, 2]}
    assert redis_client.llen(FANOUT_QUEUE) == 0
