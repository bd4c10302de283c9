"""Retries, dead letters and replay with real worker and scheduler processes."""

import time

import requests

from notifier.store.storage import Source, Storage
from tests.e2e.test_pipeline import headers, post, subscribe
from tests.support.processes import Role
from tests.support.waiting import wait_until


def api(fleet, project, path, method="GET", **kwargs):
    response = requests.request(
        method, f"{fleet.url}{path}", headers=headers(project), timeout=5, **kwargs
    )
    return response


def gaps(requests_seen):
    return [b.at - a.at for a, b in zip(requests_seen, requests_seen[1:])]


FAST_POLICY = {
    "retries_with_no_delay": 2,
    "minimum_delay_retries": 2,
    "minimum_delay": 1,
    "maximum_delay": 2,
    "backoff_retries": 2,
    "maximum_delay_retries": 1,
    "retry_backoff_function": "linear",
}


def test_attempts_follow_the_policy_until_one_succeeds(fleet, receiver, project):
    # Four failures: one fewer than open the endpoint's breaker (5), which
    # would hold the next attempt for its 30 s cool-off.
    receiver.script("/flaky", [500, 500, 502, 503, 200])
    subscription = subscribe(
        fleet, project, "policy", receiver.url + "/flaky", _retry_policy=FAST_POLICY
    )
    post(fleet, project, "policy", [{"ttl": 300, "body": "x"}])

    seen = receiver.wait_for(5, "/flaky", timeout=30)
    receiver.wait_for(6, "/flaky", timeout=3)

    assert len(receiver.received("/flaky")) == 5  # success ends the sequence
    assert all(g >= 0.9 for g in gaps(seen)[2:])  # pre-backoff: 1 s apart
    log = api(fleet, project, f"/queues/policy/subscriptions/{subscription}/attempts")
    attempts = log.json()["attempts"]
    assert [a["outcome"] for a in attempts] == ["delivered"] + ["failed"] * 4
    assert [a["attempt"] for a in attempts] == [4, 3, 2, 1, 0]
    assert attempts[1]["status"] == 503
    assert all("duration_ms" in a for a in attempts)
    # The delay each failure was given, as recorded (due time minus the
    # attempt's time, two clock readings in one task): less than the 1 s
    # minimum delay for the two immediate retries, at least it after them.
    # Each retry ran no earlier than it was due.
    failed = attempts[:0:-1]  # attempts 0 to 3, oldest first
    given = [f["next_retry_at"] - f["at"] for f in failed]
    assert [g >= 1 for g in given] == [False, False, True, True], given
    for before, after in zip(failed, attempts[-2::-1]):
        assert after["at"] >= before["next_retry_at"], (before, after)


def test_exhausted_deliveries_are_dead_lettered_then_replayed(fleet, receiver, project):
    receiver.script("/down", [500])
    subscription = subscribe(
        fleet,
        project,
        "dlq",
        receiver.url + "/down",
        _retry_policy={
            "retries_with_no_delay": 1,
            "minimum_delay_retries": 1,
            "minimum_delay": 1,
            "maximum_delay": 1,
            "backoff_retries": 0,
            "maximum_delay_retries": 0,
        },
    )
    [message_id] = post(fleet, project, "dlq", [{"ttl": 300, "body": "lost?"}])
    path = f"/queues/dlq/subscriptions/{subscription}"

    letters = wait_until(lambda: api(fleet, project, path + "/dead-letters").json()["dead_letters"])
    assert len(receiver.received("/down")) == 3
    [letter] = letters
    assert letter["message_id"] == message_id
    assert [a["attempt"] for a in letter["history"]] == [0, 1, 2]
    assert letter["last"]["outcome"] == "dead_lettered"

    receiver.script("/down", [200])
    replay = api(fleet, project, path + "/replay", "POST", json={"message_id": message_id})
    assert replay.status_code == 202 and replay.json() == {"replayed": 1}
    receiver.wait_for(4, "/down", timeout=30)
    assert receiver.received("/down")[-1].json()["message_id"] == message_id
    assert api(fleet, project, path + "/dead-letters").json()["dead_letters"] == []


def test_a_permanent_failure_is_dead_lettered_without_retries(fleet, receiver, project):
    receiver.script("/gone", [404])
    subscription = subscribe(fleet, project, "perm", receiver.url + "/gone")
    post(fleet, project, "perm", [{"ttl": 300, "body": 1}])
    path = f"/queues/perm/subscriptions/{subscription}/dead-letters"

    letters = wait_until(lambda: api(fleet, project, path).json()["dead_letters"])
    assert len(letters) == 1 and letters[0]["last"]["status"] == 404
    assert len(receiver.received("/gone")) == 1


def test_retry_after_stretches_an_immediate_retry(fleet, receiver, project):
    receiver.script("/busy", [503, 200], headers={"Retry-After": "2"})
    subscribe(fleet, project, "busy", receiver.url + "/busy")
    post(fleet, project, "busy", [{"ttl": 300, "body": 1}])

    seen = receiver.wait_for(2, "/busy", timeout=30)
    assert len(seen) == 2 and gaps(seen)[0] >= 1.9


def test_pending_retries_survive_a_killed_worker(fleet, receiver, project):
    receiver.script("/later", [500, 200])
    subscription = subscribe(
        fleet,
        project,
        "survive",
        receiver.url + "/later",
        _retry_policy={
            "retries_with_no_delay": 0,
            "minimum_delay_retries": 1,
            "minimum_delay": 4,
            "maximum_delay": 4,
            "backoff_retries": 0,
            "maximum_delay_retries": 0,
        },
    )
    post(fleet, project, "survive", [{"ttl": 300, "body": 1}])
    receiver.wait_for(1, "/later", timeout=30)
    # The worker holds no retry once the failed attempt is recorded.
    assert wait_until(
        lambda: api(
            fleet, project, f"/queues/survive/subscriptions/{subscription}/attempts"
        ).json()["attempts"]
    )

    worker = fleet.roles["worker"]
    worker.kill_group()
    worker.process.wait()
    fleet.start("worker")

    seen = receiver.wait_for(2, "/later", timeout=40)
    assert len(seen) == 2 and gaps(seen)[0] >= 3.9


def test_two_schedulers_move_each_retry_exactly_once(fleet, receiver, project, conf):
    storage = Storage.from_conf(conf)
    source = Source(project, "queues", "sched")
    _, subscription = storage.create_subscription(
        source, receiver.url + "/once", 3600, {}, confirmed=True
    )
    ids = storage.post_messages(source, [{"body": n, "ttl": 300} for n in range(20)])
    now = time.time()
    storage.schedule_retries(
        [(now + 1, {"message_id": i, "subscription_id": subscription, "attempt": 1}) for i in ids]
    )
    with Role("scheduler", fleet.config, log_path=str(fleet.logs / "scheduler2.log")):
        receiver.wait_for(20, "/once", timeout=30)
        receiver.wait_for(21, "/once", timeout=3)
    assert sorted(r.json()["message_id"] for r in receiver.received("/once")) == sorted(ids)
