"""What Storage keeps per delivery expires, so Redis memory plateaus under a
steady load (the memory benchmark shows the curve)."""

from notifier.storage import PREFIX, Source, done_horizon_seconds


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
    storage.post_messages(Source("p", "queues", "q"), [{"body": 1, "ttl": 60}], ["m1"])
    storage.record_attempts([attempt("m1")] + [attempt(f"x{n}") for n in range(1100)])
    [done] = redis_client.keys(f"{PREFIX}done:m1:*")
    assert 0 < redis_client.ttl(done) <= 100
    assert 0 < redis_client.ttl(f"{PREFIX}attempts:msg:m1") <= 3600
    assert redis_client.ttl(f"{PREFIX}msg:m1") <= 60
    assert redis_client.llen(f"{PREFIX}attempts:sub:s1") == 1000
    assert storage.already_done([{"message_id": "m1", "subscription_id": "s1", "attempt": 0}]) == {
        0
    }
