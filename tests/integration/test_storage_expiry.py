"""What Storage keeps per delivery expires, so Redis memory plateaus under a
steady load (the memory benchmark shows the curve)."""

import time

from notifier.store import keys
from notifier.store.records import done_horizon_seconds
from notifier.store.storage import Source
from tests.support.expiry import assert_lives


def attempt(message_id, outcome="delivered"):
    return {
        "at": 1.0,
        "message_id": message_id,
        "subscription_id": "s1",
        "attempt": 0,
        "outcome": outcome,
    }


def test_the_done_horizon_outlives_every_way_an_attempt_can_come_back(conf):
    # visibility timeout 45 s, reconcile after 50 s (the defaults); kombu
    # restores a dead worker's task to the head of its queue (RPUSH, taken
    # by BRPOP), so it runs soon after the timeout, backlog or not
    assert done_horizon_seconds(conf) == 100
    conf.set_override("visibility_timeout_seconds", 30, group="worker")
    conf.set_override("reconcile_after_seconds", 20, group="worker")
    assert done_horizon_seconds(conf) == 60  # never under twice a 30 s retry lease


def test_a_done_flag_and_a_message_log_expire_a_subscription_log_is_capped(storage, redis_client):
    before = time.time()
    storage.post_messages(Source("p", "queues", "q"), [{"body": 1, "ttl": 60}], ["m1"])
    storage.record_attempts([attempt("m1")] + [attempt(f"x{n}") for n in range(1100)])
    after = time.time()
    done = keys.done("m1")
    assert_lives(redis_client, done, 100, before, after)
    assert_lives(redis_client, keys.message_attempts("m1"), 3600, before, after)
    assert_lives(redis_client, keys.message("m1"), 60, before, after)
    assert redis_client.llen(keys.subscription_attempts("s1")) == 1000
    assert storage.already_done([{"message_id": "m1", "subscription_id": "s1", "attempt": 0}]) == {
        0
    }
