"""A worker SIGKILLed or SIGTERMed in the middle of a burst loses nothing.

The burst: 40 POSTs of 2 messages to a queue with 2 webhook subscribers, so
each fan-out task delivers its 4 deliveries itself (4 <= deliveries_per_task).
A worker (2 pool processes, prefetch 1) holds at most 2 unacknowledged tasks,
so a crash can repeat at most 2 x 4 = 8 deliveries.
"""

import signal
import time

import pytest

from notifier.store import keys
from tests.faults.conftest import CONCURRENCY, PREFETCH
from tests.support.faults import (
    Api,
    Tally,
    quiet,
    report,
    start_dying_worker,
    unacked_count,
    unacked_message_ids,
    wait_exit,
    wait_until,
)
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow  # real processes, several seconds each

REQUESTS = 40
PER_REQUEST = 2
PATHS = ("/a", "/b")
DELIVERIES_PER_FANOUT = PER_REQUEST * len(PATHS)
IN_FLIGHT_BOUND = CONCURRENCY * PREFETCH * DELIVERIES_PER_FANOUT


def start_burst(fleet, receiver, queue):
    """Subscribe /a and /b, post the burst; return (api, tally)."""
    api = Api(fleet.url)
    subscriptions = {path: api.subscribe(queue, receiver.url + path) for path in PATHS}
    posted = []
    for n in range(REQUESTS):
        posted += api.post_ok(
            queue, [{"ttl": 600, "body": {"n": n, "k": k}} for k in range(PER_REQUEST)]
        )
    expected = {(path, message_id) for path in PATHS for message_id in posted}
    return api, Tally([receiver], expected, subscriptions)


def slow_receiver():
    receiver = quiet(Receiver())
    for path in PATHS:
        receiver.delay(path, 0.03)  # a burst of a few seconds to kill into
    return receiver


def arrivals_after(receiver, moment, message_ids=None):
    return [
        r.at - moment
        for r in receiver.received()
        if r.at >= moment and (message_ids is None or r.json()["message_id"] in message_ids)
    ]


def duplicate_bound(in_flight_ids):
    """What may be delivered twice: the deliveries in flight at the fault, those
    of the messages in unacked tasks (fan-outs of PER_REQUEST messages, or
    delivery tasks that regroup deliveries which waited for an endpoint)."""
    return max(IN_FLIGHT_BOUND, len(in_flight_ids) * len(PATHS))


def test_a_worker_killed_mid_burst_loses_nothing_once_restarted(make_fleet, redis_db):
    fleet = make_fleet()
    fleet.start("api")
    fleet.start("scheduler")
    worker = fleet.start("worker")
    with slow_receiver() as receiver:
        api, tally = start_burst(fleet, receiver, "killed")
        total = len(tally.expected)

        assert wait_until(lambda: len(receiver.received()) >= total // 3, 30)
        in_flight = unacked_message_ids(redis_db)
        leases = redis_db.zcard(keys.inflight(f"{api.project}:{receiver.url}"))
        worker.kill_group(signal.SIGKILL)
        killed_at = time.time()
        worker.process.wait(10)
        at_kill = len(receiver.received())

        fleet.start("worker")
        ready_after = time.time() - killed_at
        tally.wait_complete(40)
        complete_after = time.time() - killed_at
        receiver.wait_for(len(receiver.received()) + 1, timeout=1.5)  # late copies

        bound = duplicate_bound(in_flight)
        duplicates = tally.check(max_duplicates=bound)
        resumed = min(arrivals_after(receiver, killed_at), default=float("nan"))
        redone = arrivals_after(receiver, killed_at, in_flight)
        report(
            "worker SIGKILL",
            f"{total} deliveries, killed after {at_kill} holding "
            f"{len(in_flight)} messages in unacked tasks and {leases} of the "
            f"endpoint's concurrency leases (they expire after 8 s); "
            f"replacement ready "
            f"{ready_after:.1f} s after the kill, first delivery at "
            f"{resumed:.1f} s, in-flight work redelivered by "
            f"{max(redone, default=float('nan')):.1f} s, all delivered at "
            f"{complete_after:.1f} s (visibility timeout 6 s); "
            f"{duplicates} duplicates (bound {bound})",
        )
        api.close()


def test_a_worker_sigtermed_mid_burst_finishes_or_hands_back_its_work(make_fleet, redis_db):
    fleet = make_fleet()
    fleet.start("api")
    fleet.start("scheduler")
    worker = fleet.start("worker")
    with slow_receiver() as receiver:
        api, tally = start_burst(fleet, receiver, "warm")
        total = len(tally.expected)

        assert wait_until(lambda: len(receiver.received()) >= total // 3, 30)
        in_flight = unacked_count(redis_db)
        in_flight_ids = unacked_message_ids(redis_db)
        at_signal = len(receiver.received())
        worker.signal(signal.SIGTERM)  # the main process only, as `docker stop`
        shutdown = wait_exit(worker, 30)
        assert shutdown is not None, "the worker did not finish its warm shutdown"
        assert worker.process.returncode == 0, worker.process.returncode
        at_exit = len(receiver.received())
        left_unacked = unacked_count(redis_db)

        restarted_at = time.time()
        fleet.start("worker")
        ready_after = time.time() - restarted_at
        tally.wait_complete(30)
        complete_after = time.time() - restarted_at
        resumed = min(arrivals_after(receiver, restarted_at), default=float("nan"))
        receiver.wait_for(len(receiver.received()) + 1, timeout=1.5)

        bound = duplicate_bound(in_flight_ids)
        duplicates = tally.check(max_duplicates=bound)
        report(
            "worker SIGTERM",
            f"{total} deliveries; SIGTERM after {at_signal} with {in_flight} "
            f"tasks unacked; warm shutdown took {shutdown:.2f} s and made "
            f"{at_exit - at_signal} more deliveries; {left_unacked} tasks left "
            f"unacked; a new worker was ready {ready_after:.1f} s after its "
            f"start, delivered again at {resumed:.1f} s and everything at "
            f"{complete_after:.1f} s; "
            f"{duplicates} duplicates",
        )
        api.close()


def test_a_worker_killed_between_taking_and_recording_a_task_loses_nothing(make_fleet):
    """The loss window a random SIGKILL hits rarely, hit every time."""
    fleet = make_fleet()
    fleet.start("api")
    fleet.start("scheduler")
    with quiet(Receiver()) as receiver:
        api = Api(fleet.url)
        subscriptions = {"/a": api.subscribe("window", receiver.url + "/a")}
        posted = []
        for n in range(10):
            posted += api.post_ok("window", [{"ttl": 600, "body": n}])
        tally = Tally([receiver], {("/a", m) for m in posted}, subscriptions)
        dying = start_dying_worker(fleet, 5)
        dying.wait(30)
        killed_at = time.time()
        fleet.start("worker")
        # kombu never recorded the task, so no visibility timeout brings it
        # back: the scheduler's reconciler re-sends it once it is stale (8 s)
        # and the task queues are empty; it looks every 5 s.
        tally.wait_complete(25)
        report(
            "worker dies between BRPOP and unacked",
            f"{len(posted)} messages; {len(tally.missing())} lost "
            f"{time.time() - killed_at:.1f} s after the kill",
        )
        tally.check()
        api.close()


# The recovery settings at their defaults (visibility timeout 45 s, reconcile
# after 50 s, kombu's restore every 2 s, webhook timeouts 5 + 10 s); only the
# pool and the task size are small, for the duplicate bound above.
DEFAULT_RECOVERY_CONF = """unacked_restore_interval_seconds = 2
concurrency = 2
[notification]
webhook_connect_timeout_seconds = 5
webhook_read_timeout_seconds = 10
deliveries_per_task = 5
"""
RECOVERY_TARGET_SECONDS = 60


def test_a_killed_workers_deliveries_come_back_within_a_minute_at_default_settings(
    make_fleet, redis_db
):
    fleet = make_fleet(DEFAULT_RECOVERY_CONF)
    fleet.start("api")
    fleet.start("scheduler")
    worker = fleet.start("worker")
    with slow_receiver() as receiver:
        api, tally = start_burst(fleet, receiver, "defaults")
        assert wait_until(lambda: len(receiver.received()) >= len(tally.expected) // 3, 30)
        in_flight = unacked_message_ids(redis_db)
        worker.kill_group(signal.SIGKILL)
        killed_at = time.time()
        worker.process.wait(10)
        delivered_before = {key for key, found in tally.seen().items()}

        fleet.start("worker")  # the rest of the fleet: it restores the dead one's tasks
        tally.wait_complete(RECOVERY_TARGET_SECONDS + 30)
        receiver.wait_for(len(receiver.received()) + 1, timeout=1.5)
        bound = duplicate_bound(in_flight)
        duplicates = tally.check(max_duplicates=bound)

    # From the attempt logs: when each delivery that had not arrived at the
    # kill was delivered.
    owed = tally.expected - delivered_before
    delivered_at = {}
    for path, subscription_id in tally.subscriptions.items():
        for attempt in api.attempts("defaults", subscription_id):
            if attempt["outcome"] == "delivered" and (path, attempt["message_id"]) in owed:
                key = (path, attempt["message_id"])
                delivered_at[key] = min(attempt["at"], delivered_at.get(key, attempt["at"]))
    assert set(delivered_at) == owed
    back_after = max(delivered_at.values()) - killed_at
    assert in_flight, "no task was in flight at the kill: it tested nothing"
    assert back_after <= RECOVERY_TARGET_SECONDS, back_after
    report(
        "worker SIGKILL, default settings",
        f"{len(tally.expected)} deliveries, {len(owed)} owed at the kill "
        f"({len(in_flight)} messages in unacked tasks); the last of them delivered "
        f"{back_after:.1f} s after the kill (visibility timeout 45 s); "
        f"{duplicates} duplicates (bound {bound})",
    )
    api.close()
