"""Circuit breakers through the real roles: a short outage is over soon after
the receiver recovers, and one project's failures at an endpoint never defer
another project's deliveries there."""

import threading
import time

import pytest

from notifier.store import keys
from tests.support.faults import Api, FaultReceiver, Tally, quiet, report, wait_until

pytestmark = pytest.mark.slow  # real processes; the flap test waits a 30 s cool-off

# Default breaker settings (threshold 5, cool-off 30 s, maximum 900 s); small
# tasks and two pool processes so several tasks are in flight at the outage.
FLAP_CONF = """visibility_timeout_seconds = 30
reconcile_after_seconds = 40
concurrency = 2
[notification]
deliveries_per_task = 5
"""
BASE_COOLOFF = 30
OUTAGE_SECONDS = 10


class BreakerWatch:
    """Sample one breaker's hash in Redis every 10 ms while the test runs."""

    def __init__(self, redis_client, key):
        self.redis = redis_client
        self.key = key
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            found = self.redis.hgetall(self.key)
            if found:
                self.samples.append({k: int(v) for k, v in found.items()})
            self._stop.wait(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def values(self, field):
        return sorted({s[field] for s in self.samples if field in s})


def test_a_ten_second_outage_is_over_within_one_base_cooloff_of_recovery(make_fleet, redis_db):
    fleet = make_fleet(FLAP_CONF)
    fleet.start("api")
    fleet.start("scheduler")
    fleet.start("worker")
    with quiet(FaultReceiver()) as receiver:
        receiver.delay("/flap", 0.05)  # tasks stay in flight a while
        api = Api(fleet.url)
        subscription_id = api.subscribe("flap", receiver.url + "/flap")
        key = keys.breaker(f"{api.project}:{receiver.url}")
        posted = []
        with BreakerWatch(redis_db, key) as watch:
            for n in range(10):
                posted += api.post_ok("flap", [{"ttl": 900, "body": [n, k]} for k in range(2)])
            assert wait_until(lambda: len(receiver.received()) >= 5, 20)
            receiver.script("/flap", [500])  # the outage: mid-burst
            outage_at = time.time()
            for n in range(10, 20):
                posted += api.post_ok("flap", [{"ttl": 900, "body": [n, k]} for k in range(2)])
            time.sleep(max(0.0, outage_at + OUTAGE_SECONDS - time.time()))
            receiver.script("/flap", [200])
            recovered_at = time.time()
            tally = Tally([receiver], {("/flap", m) for m in posted}, {"/flap": subscription_id})
            tally.wait_complete(BASE_COOLOFF * 3)
            receiver.wait_for(len(receiver.received()) + 1, timeout=1.5)
        duplicates = tally.check(max_duplicates=0)

    attempts = api.attempts("flap", subscription_id)
    failed = [a for a in attempts if a["outcome"] == "failed"]
    after = sorted(a["at"] for a in attempts if a["at"] >= recovered_at)
    assert failed, "the outage failed no attempt: it tested nothing"
    # The breaker opened once, with the base cool-off, however many attempts
    # in flight failed: none of them was a failed probe.
    assert watch.values("cooloff_ms") == [BASE_COOLOFF * 1000]
    assert watch.values("failed_probes") == []
    [open_until] = watch.values("open_until_ms")
    # The first attempt after the recovery was scheduled (the breaker's probe
    # time) within one base cool-off of it, and went then, not earlier.
    assert open_until / 1000.0 - recovered_at <= BASE_COOLOFF
    assert after[0] >= open_until / 1000.0 - 0.01
    report(
        "receiver 500 for 10 s",
        f"{len(posted)} messages; {len(failed)} failed attempts in the outage; the "
        f"breaker opened once with the 30 s cool-off (no doubling); probe scheduled "
        f"{open_until / 1000.0 - recovered_at:.1f} s after recovery, first attempt after "
        f"recovery {after[0] - recovered_at:.1f} s, all delivered "
        f"{max(r.at for r in receiver.received()) - recovered_at:.1f} s after; "
        f"{duplicates} duplicates",
    )
    api.close()


ISOLATION_CONF = """[webhook]
breaker_cooloff_seconds = 60
"""


def test_one_projects_failures_do_not_defer_another_projects_deliveries(make_fleet, redis_db):
    fleet = make_fleet(ISOLATION_CONF)
    fleet.start("api")
    fleet.start("scheduler")
    fleet.start("worker")
    with quiet(FaultReceiver()) as receiver:
        receiver.script("/broken", [500])  # the same host and port, another path
        mallory, alice = Api(fleet.url), Api(fleet.url)
        mallory.subscribe("m", receiver.url + "/broken")
        alice_sub = alice.subscribe("a", receiver.url + "/ok")
        mallory_key = keys.breaker(f"{mallory.project}:{receiver.url}")
        alice_key = keys.breaker(f"{alice.project}:{receiver.url}")

        mallory.post_ok("m", [{"ttl": 600, "body": n} for n in range(6)])
        assert wait_until(lambda: redis_db.hget(mallory_key, "open_until_ms"), 20)
        open_until = int(redis_db.hget(mallory_key, "open_until_ms")) / 1000.0

        # Another project's enable resets its own state there, not Mallory's.
        response = alice.request("POST", f"/queues/a/subscriptions/{alice_sub}/enable")
        assert response.status_code == 200, response.text
        assert int(redis_db.hget(mallory_key, "open_until_ms")) / 1000.0 == open_until

        [message_id] = alice.post_ok("a", [{"ttl": 600, "body": "hello"}])
        [arrived] = receiver.wait_for(1, "/ok", timeout=30)
        assert arrived.json()["message_id"] == message_id

    [attempt] = alice.attempts("a", alice_sub)
    assert attempt["outcome"] == "delivered" and attempt["attempt"] == 0
    assert attempt["at"] < open_until  # delivered while Mallory's breaker was open
    assert redis_db.hget(mallory_key, "open_until_ms") is not None
    assert not redis_db.exists(alice_key)
    report(
        "breaker isolation",
        f"a project's breaker open for {open_until - attempt['at']:.0f} s more while "
        f"another project's delivery to the same endpoint went at its first attempt",
    )
    mallory.close()
    alice.close()
