"""The retry scheduler SIGKILLed while retries are pending.

Retries wait in a Redis sorted set; a scheduler leases the due ones (Lua),
enqueues their delivery tasks, then releases the leases; a lease older than
30 s (its scheduler died) is taken again by another scheduler. Each
(message, subscription, attempt) must run once: the attempt log
(GET .../subscriptions/{id}/attempts) and the receivers show it.
"""

import collections
import signal
import time

import pytest

from notifier.store import keys
from tests.faults.conftest import FAULT_CONF
from tests.support.faults import (
    Api,
    FaultReceiver,
    Tally,
    quiet,
    report,
    start_dying_scheduler,
    wait_until,
)

pytestmark = pytest.mark.slow  # real processes, several seconds each

# Breakers out of the way: this is about schedulers, so every failure must be
# an attempt that follows the policy, not a deferral.
CONF = FAULT_CONF + "breaker_failure_threshold = 1000\n"
LEASE_SECONDS = 30  # notifier.store.storage.Storage.lease_due_retries' default


def policy(delay, retries):
    return {
        "retries_with_no_delay": 0,
        "minimum_delay_retries": retries,
        "minimum_delay": delay,
        "maximum_delay": delay,
        "backoff_retries": 0,
        "maximum_delay_retries": 0,
    }


def attempt_log(api, queue, subscriptions):
    """{(path, message_id): [attempt records oldest first]}."""
    log = collections.defaultdict(list)
    for path, subscription_id in subscriptions.items():
        for record in reversed(api.attempts(queue, subscription_id)):
            if record.get("message_id"):
                log[(path, record["message_id"])].append(record)
    return log


def check_each_attempt_ran_once(api, queue, tally):
    """Every (message, subscription, attempt) ran once, the last one delivered,
    and the receiver saw exactly one POST per attempt. Return the log."""

    def settled():  # every POST seen has its attempt recorded
        records = sum(map(len, attempt_log(api, queue, tally.subscriptions).values()))
        return records >= sum(map(len, tally.posts(delivered_only=False).values()))

    wait_until(settled, 3, 0.2)
    log = attempt_log(api, queue, tally.subscriptions)
    copies = tally.posts(delivered_only=False)
    twice = {
        key: collections.Counter(r["attempt"] for r in records) for key, records in log.items()
    }
    twice = {key: [n for n, c in counts.items() if c > 1] for key, counts in twice.items()}
    twice = {key: numbers for key, numbers in twice.items() if numbers}
    assert not twice, f"attempts run more than once: {list(twice.items())[:3]}"
    for key in tally.expected:
        records = log[key]
        assert [r["attempt"] for r in records] == list(range(len(records))), records
        assert records[-1]["outcome"] == "delivered", records[-1]
        assert len(copies[key]) == len(records), (
            f"{key}: {len(copies[key])} POSTs for {len(records)} attempts"
        )
    return log


def pending_retries(redis_db):
    return redis_db.zcard(keys.retries()) + redis_db.zcard(keys.leased_retries())


def test_a_scheduler_killed_while_retries_are_pending_loses_and_repeats_nothing(
    make_fleet, redis_db
):
    fleet = make_fleet(CONF)
    fleet.start("api")
    fleet.start("worker")
    doomed = fleet.start("scheduler")
    fleet.start("scheduler")
    paths = ("/s1", "/s2")
    with quiet(FaultReceiver()) as receiver:
        for path in paths:
            receiver.script(path, [500])  # failing until it recovers
        api = Api(fleet.url)
        subscriptions = {
            p: api.subscribe("retrying", receiver.url + p, _retry_policy=policy(2, 3))
            for p in paths
        }
        posted = []
        for n in range(10):
            posted += api.post_ok("retrying", [{"ttl": 600, "body": [n, k]} for k in range(2)])
        tally = Tally([receiver], {(p, m) for p in paths for m in posted}, subscriptions)
        chains = len(tally.expected)

        def failed_attempts(number):
            return sum(
                1
                for records in attempt_log(api, "retrying", subscriptions).values()
                for r in records
                if r["attempt"] == number
            )

        # Both schedulers have moved the first retries (attempt 1 failed).
        assert wait_until(lambda: failed_attempts(1) == chains, 20, 0.2)

        # Kill one while the second retries are pending in Redis (none is due
        # in the next half second, none leased: a clean kill of a scheduler).
        def between_moves():
            first = redis_db.zrange(keys.retries(), 0, 0, withscores=True)
            return (
                not redis_db.zcard(keys.leased_retries())
                and first
                and first[0][1] > time.time() + 0.5
            )

        assert wait_until(between_moves, 5, 0.02)
        pending_at_kill = pending_retries(redis_db)
        assert doomed.process.poll() is None
        doomed.kill_group(signal.SIGKILL)
        killed_at = time.time()
        time.sleep(0.3)
        for path in paths:
            receiver.script(path, [200])
        recovered_at = time.time()

        tally.wait_complete(20)
        complete_after = time.time() - killed_at
        receiver.wait_for(len(receiver.received()) + 1, timeout=1.5)
        log = check_each_attempt_ran_once(api, "retrying", tally)
        assert pending_retries(redis_db) == 0
        attempts = sum(len(records) for records in log.values())
        report(
            "scheduler SIGKILL",
            f"{chains} delivery chains, {pending_at_kill} "
            f"retries pending at the kill; all delivered "
            f"{complete_after:.1f} s after the kill, "
            f"{max(r.at for r in receiver.received()) - recovered_at:.1f} s "
            f"after the receiver recovered; {attempts} attempts, each run once",
        )
        api.close()


@pytest.mark.parametrize(
    "point",
    [
        "after-lease",
        "after-enqueue",
    ],
)
def test_a_scheduler_dying_mid_move_neither_loses_nor_repeats_a_retry(make_fleet, redis_db, point):
    """SIGKILL at the two dangerous points of a move, every time."""
    fleet = make_fleet(CONF)
    fleet.start("api")
    fleet.start("worker")
    with quiet(FaultReceiver()) as receiver:
        receiver.script("/x", [500, 500, 500, 200])  # each message's attempt 0 fails
        api = Api(fleet.url)
        subscriptions = {
            "/x": api.subscribe("moved", receiver.url + "/x", _retry_policy=policy(1, 2))
        }
        dying = start_dying_scheduler(fleet, point)
        posted = api.post_ok("moved", [{"ttl": 600, "body": n} for n in range(3)])
        tally = Tally([receiver], {("/x", m) for m in posted}, subscriptions)

        dying.wait(15)
        died_at = time.time()
        leased = redis_db.zrange(keys.leased_retries(), 0, -1, withscores=True)
        assert leased, "the dying scheduler held no lease"
        if point == "after-enqueue":
            # its tasks were enqueued: the worker delivers attempt 1
            tally.wait_complete(10)
            assert tally.complete(), f"{len(tally.missing())} not delivered"

        # A dead scheduler's lease is taken again after 30 s: age the leases
        # by 30 s instead of waiting (no live scheduler holds any now).
        redis_db.zadd(
            keys.leased_retries(), {member: score - LEASE_SECONDS for member, score in leased}
        )
        fleet.start("scheduler")
        waited = tally.wait_complete(15)
        receiver.wait_for(len(receiver.received()) + 1, timeout=3)

        check_each_attempt_ran_once(api, "moved", tally)
        assert pending_retries(redis_db) == 0
        report(
            f"scheduler dies {point}",
            f"{len(leased)} leased retries; taken over and delivered "
            f"{waited:.1f} s after the takeover (+{LEASE_SECONDS} s lease "
            f"expiry in real time; {time.time() - died_at:.1f} s here with "
            f"the lease aged)",
        )
        api.close()
