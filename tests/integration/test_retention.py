"""Retention and quotas in Storage, against a real redis-server: dead letters
are capped and expire, a project's stored bytes follow what it stores, and
nothing of a subscription outlives it. Times are injected (``now``)."""

import pytest

from notifier import errors
from notifier.store import keys
from notifier.store.endpoint_state import EndpointState
from notifier.store.records import Limits, Source, dumps
from notifier.store.storage import Storage

NOW = 1_700_000_000.0
QUEUE = Source("p1", "queues", "q")
LIMITS = Limits(
    dead_letter_ttl_seconds=600,
    max_dead_letters_per_subscription=3,
    subscription_log_ttl_seconds=900,
    max_subscriptions_per_project=2,
    max_stored_bytes_per_project=20_000,
)


@pytest.fixture
def store(redis_client):
    return Storage(redis_client, limits=LIMITS)


def letter(n, subscription_id="s1", project="p1"):
    message = {"id": f"m{n}", "body": "x" * 100, "ttl": 60, "created": NOW, "source": ["p1"]}
    return {
        "message_id": f"m{n}",
        "subscription_id": subscription_id,
        "project": project,
        "died_at": NOW + n,
        "message": message,
    }


def test_a_subscription_keeps_only_its_newest_dead_letters_and_counts_only_their_bytes(
    store, redis_client
):
    letters = [letter(n) for n in range(10)]
    for n, item in enumerate(letters):
        store.dead_letter([item], now=NOW + n)

    assert redis_client.zcard(keys.dead_letters("s1")) == 3
    kept = store.dead_letters("s1", now=NOW + 10)
    assert [item["message_id"] for item in kept] == ["m7", "m8", "m9"]
    assert store.stored_bytes("p1", now=NOW + 10) == sum(len(dumps(i)) for i in letters[7:])


def test_dead_letters_expire_with_their_retention_and_stop_counting(store, redis_client):
    store.dead_letter([letter(1)], now=NOW)
    assert 0 < redis_client.ttl(keys.dead_letters("s1")) <= 600
    assert store.dead_letters("s1", now=NOW + 599)
    assert store.stored_bytes("p1", now=NOW + 599) > 0

    assert store.dead_letters("s1", now=NOW + 601) == []
    # counted by the minute, rounded up: gone within a minute of the TTL
    assert store.stored_bytes("p1", now=NOW + 600 + 60) == 0


def test_replaying_dead_letters_takes_their_bytes_back(store):
    store.dead_letter([letter(1), letter(2)], now=NOW)
    store.remove_dead_letters("s1", store.dead_letters("s1", now=NOW))
    assert store.dead_letters("s1", now=NOW) == []
    assert store.stored_bytes("p1", now=NOW) == 0


def test_messages_count_until_their_ttl_or_until_their_source_is_deleted(store):
    store.post_messages(QUEUE, [{"body": "a" * 50, "ttl": 120}] * 3, now=NOW)
    stored = store.stored_bytes("p1", now=NOW)
    messages = store.get_messages(store.redis.zrange(keys.source_messages(QUEUE), 0, -1))
    assert stored == sum(len(dumps(m)) for m in messages.values())
    assert store.stored_bytes("p1", now=NOW + 120 + 60) == 0

    store.post_messages(QUEUE, [{"body": "b", "ttl": 120}], now=NOW)
    store.delete_source(QUEUE)
    assert store.stored_bytes("p1", now=NOW) == 0


def test_a_delivered_topic_message_stops_counting(store):
    topic = Source("p1", "topics", "t")
    [message_id] = store.post_messages(topic, [{"body": "x", "ttl": 300}], now=NOW)
    message = store.get_messages([message_id])[message_id]
    store.add_pending({message_id: 1}, {message_id: 300})
    assert store.settle_pending([message]) == [message_id]
    assert store.stored_bytes("p1", now=NOW) == 0


def test_a_post_past_the_byte_quota_is_refused_and_stores_nothing(store):
    store.post_messages(QUEUE, [{"body": "x" * 9000, "ttl": 300}] * 2, now=NOW)
    before = store.stored_bytes("p1", now=NOW)
    with pytest.raises(errors.QuotaExceededError) as refused:
        store.post_messages(QUEUE, [{"body": "x" * 3000, "ttl": 300}], now=NOW)
    assert refused.value.limit == "max_stored_bytes_per_project"
    assert store.stored_bytes("p1", now=NOW) == before
    # another project is not limited by p1's use
    store.post_messages(Source("p2", "queues", "q"), [{"body": "x" * 9000, "ttl": 300}], now=NOW)
    # and p1's messages passing their TTL frees its quota
    store.post_messages(QUEUE, [{"body": "x" * 3000, "ttl": 300}], now=NOW + 400)


def test_dead_letters_past_the_byte_quota_are_dropped_and_returned(store, redis_client):
    store.post_messages(QUEUE, [{"body": "x" * 9000, "ttl": 300}] * 2, now=NOW)
    big = dict(letter(1), message={"id": "m1", "body": "y" * 3000, "source": ["p1"]})
    assert store.dead_letter([big], now=NOW) == [big]
    assert redis_client.zcard(keys.dead_letters("s1")) == 0


def test_the_subscription_quota_counts_live_subscriptions_of_the_project(store):
    for n in range(2):
        store.create_subscription(QUEUE, f"http://h/{n}", 60, {}, True, now=NOW)
    with pytest.raises(errors.QuotaExceededError) as refused:
        store.create_subscription(QUEUE, "http://h/2", 60, {}, True, now=NOW)
    assert refused.value.limit == "max_subscriptions_per_project"
    # the same subscriber again is not a new subscription
    assert store.create_subscription(QUEUE, "http://h/0", 60, {}, True, now=NOW)[0] is False
    store.create_subscription(Source("p2", "queues", "q"), "http://h/2", 60, {}, True, now=NOW)
    # expired ones do not count
    store.create_subscription(QUEUE, "http://h/2", 60, {}, True, now=NOW + 61)


def test_deleting_a_subscription_leaves_none_of_its_keys(store, redis_client):
    _, subscription_id = store.create_subscription(QUEUE, "http://h/", 3600, {}, True)
    fill_subscription_keys(store, redis_client, subscription_id)

    store.delete_subscription(QUEUE, subscription_id)

    assert redis_client.exists(*keys.subscription_keys(subscription_id)) == 0
    # the queue's message stays, its subscription's dead letter does not
    [message] = store.get_messages(redis_client.zrange(keys.source_messages(QUEUE), 0, -1)).values()
    assert store.stored_bytes("p1") == len(dumps(message))
    assert store.subscription_count("p1") == 0


def test_deleting_a_queue_leaves_its_subscriptions_but_nothing_they_held(store, redis_client):
    _, subscription_id = store.create_subscription(QUEUE, "http://h/", 3600, {}, True)
    fill_subscription_keys(store, redis_client, subscription_id)

    store.delete_source(QUEUE)

    [record, *rest] = keys.subscription_keys(subscription_id)
    assert redis_client.exists(record) == 1  # queues are lazy: see README
    assert redis_client.exists(*rest) == 0
    assert store.stored_bytes("p1") == 0


def fill_subscription_keys(store, redis_client, subscription_id):
    """Give a subscription every key it can have: a dead letter, an attempt
    log, held deliveries, rate-limit state."""
    [message_id] = store.post_messages(QUEUE, [{"body": "x", "ttl": 300}])
    store.dead_letter([letter(1, subscription_id)])
    store.record_attempts(
        [
            {
                "at": NOW,
                "message_id": message_id,
                "subscription_id": subscription_id,
                "attempt": 0,
                "outcome": "failed",
            }
        ]
    )
    state = EndpointState(redis_client)
    state.hold(subscription_id, [{"message_id": message_id, "subscription_id": subscription_id}])
    state.admit([("http://h:80", 1, 4, subscription_id, 5)])
    assert redis_client.exists(*keys.subscription_keys(subscription_id)) == len(
        keys.subscription_keys(subscription_id)
    )
