"""Delayed messages (Zaqar's delayed queues) while the fleet fails: their
notifications wait in the durable retry schedule, not in a sleeping worker,
so a worker and a scheduler killed meanwhile lose none of them, and none
goes out before its delay ends."""

import time

import pytest

from notifier.store import keys
from tests.support.faults import (
    Api,
    FaultReceiver,
    Tally,
    quiet,
    report,
    start_dying_worker,
    wait_until,
)

pytestmark = pytest.mark.slow  # real processes, several seconds each

DELAY = 10  # long enough for the fan-out to run first on a loaded machine


def check_none_early(tally, posted_at):
    early = [
        (key, request.at - posted_at)
        for key, copies in tally.seen().items()
        for request in copies
        if request.at < posted_at + DELAY
    ]
    assert not early, f"delivered before the delay ended: {early[:5]}"


def test_worker_and_scheduler_killed_while_delayed_messages_wait(make_fleet, redis_db):
    fleet = make_fleet()
    fleet.start("api")
    worker = fleet.start("worker")
    scheduler = fleet.start("scheduler")
    with quiet(FaultReceiver()) as receiver:
        api = Api(fleet.url)
        subscriptions = {"/d": api.subscribe("delayed", receiver.url + "/d")}
        posted_at = time.time()
        posted = api.post_ok(
            "delayed", [{"ttl": 600, "body": n, "delay": DELAY} for n in range(20)]
        )
        tally = Tally([receiver], {("/d", m) for m in posted}, subscriptions)
        # The fan-out ran: the 20 deliveries wait in the schedule, due later.
        assert wait_until(lambda: redis_db.zcard(keys.retries()) == 20, DELAY, 0.05)

        worker.kill_group()
        scheduler.kill_group()
        killed_at = time.time()
        assert killed_at < posted_at + DELAY, "the kill came after the delay: nothing waited"
        assert receiver.received() == []
        fleet.start("worker")
        fleet.start("scheduler")
        waited = tally.wait_complete(DELAY + 30)

        tally.check(max_duplicates=0)
        check_none_early(tally, posted_at)
        report(
            "worker and scheduler killed while delayed messages wait",
            f"20 delayed by {DELAY} s: 0 lost, 0 early, last arrived {waited:.1f} s "
            "after the restart",
        )
        api.close()


def test_a_worker_killed_as_it_takes_the_delayed_fanout_loses_nothing(make_fleet):
    fleet = make_fleet()
    fleet.start("api")
    fleet.start("scheduler")
    with quiet(FaultReceiver()) as receiver:
        api = Api(fleet.url)
        subscriptions = {"/f": api.subscribe("fanout", receiver.url + "/f")}
        posted_at = time.time()
        posted = api.post_ok("fanout", [{"ttl": 600, "body": n, "delay": DELAY} for n in range(5)])
        tally = Tally([receiver], {("/f", m) for m in posted}, subscriptions)
        # The worker dies with the fan-out task taken and not yet recorded:
        # the scheduler's reconciler sends it again (after 8 s here).
        start_dying_worker(fleet, 1).wait(30)
        fleet.start("worker")
        tally.wait_complete(30)

        tally.check(max_duplicates=0)
        check_none_early(tally, posted_at)
        api.close()
