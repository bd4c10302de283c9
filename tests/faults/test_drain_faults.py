"""Small fan-outs under load (delivery/drain.py) while the fleet fails: posts
made while a drain task owns their source's shard park their fan-outs there
instead of enqueuing a task, so the owner dying must not strand them."""

import pytest

from notifier.store import keys
from notifier.store.pending_deliveries import shard_of
from notifier.store.storage import Source
from tests.support.faults import Api, FaultReceiver, Tally, quiet, report
from workers.app import FANOUT_QUEUE

pytestmark = pytest.mark.slow  # real processes, several seconds each


def test_fanouts_parked_for_an_owner_that_died_are_all_delivered(make_fleet, redis_db):
    fleet = make_fleet()
    fleet.start("api")
    with quiet(FaultReceiver()) as receiver:
        api = Api(fleet.url)
        subscriptions = {"/p": api.subscribe("parked", receiver.url + "/p")}
        shard = shard_of(Source(api.project, "queues", "parked"))
        # A drain task owned the shard and was killed: its owner flag outlives it.
        redis_db.set(keys.drain_owner(shard), "1", px=8000)
        posted = [m for n in range(10) for m in api.post_ok("parked", [{"ttl": 600, "body": n}])]

        # Parked behind the dead owner, not enqueued as tasks.
        assert redis_db.llen(keys.pending_deliveries(shard)) == 10
        assert redis_db.llen(FANOUT_QUEUE) == 0
        assert receiver.received() == []

        fleet.start("worker")
        fleet.start("scheduler")
        tally = Tally([receiver], {("/p", m) for m in posted}, subscriptions)
        waited = tally.wait_complete(60)

        tally.check(max_duplicates=0)
        assert redis_db.llen(keys.pending_deliveries(shard)) == 0
        assert redis_db.zcard(keys.task_outbox()) == 0
        report(
            "fan-outs parked behind a dead drain owner",
            f"10 posts parked: all delivered once, the last {waited:.1f} s after the fleet started",
        )
        api.close()
