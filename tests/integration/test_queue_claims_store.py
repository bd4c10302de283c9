"""The consumer side's store: ranks, claims and their collection, against a
real Redis (times are passed in, no waiting)."""

import threading
import time

from notifier.store import keys
from notifier.store.records import Source

QUEUE = Source("p", "queues", "q")


def post(storage, count, ttl=300, now=None, delay=0, start=0):
    messages = [{"body": {"n": n}, "ttl": ttl} for n in range(start, start + count)]
    if delay:
        messages = [dict(m, delay=delay) for m in messages]
    return storage.post_messages(QUEUE, messages, now=now)


def index_sizes(redis_client):
    return [
        redis_client.zcard(keys.message_ranks(QUEUE)),
        redis_client.zcard(keys.free_messages(QUEUE)),
        redis_client.zcard(keys.claimed_messages(QUEUE)),
        redis_client.hlen(keys.message_claimers(QUEUE)),
        redis_client.zcard(keys.delayed_messages(QUEUE)),
        redis_client.hlen(keys.message_claim_counts(QUEUE)),
    ]


def test_concurrent_claims_never_share_a_message(storage):
    ids = post(storage, 20)
    taken, lock = [], threading.Lock()

    def consume():
        while True:
            _, messages = storage.claims.create(QUEUE, 60, 60, 3)
            if not messages:
                return
            with lock:
                taken.extend(m["id"] for m in messages)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)


def test_a_claim_makes_its_messages_outlive_it_by_its_grace(storage, redis_client):
    [message_id] = post(storage, 1, ttl=60)
    storage.claims.create(QUEUE, 600, 300, 1)
    assert redis_client.ttl(keys.message(message_id)) > 800


def test_expired_messages_and_claims_leave_the_index(storage, redis_client):
    now = time.time()
    post(storage, 5, ttl=60, now=now)
    storage.claims.create(QUEUE, 60, 60, 2, now=now)
    assert index_sizes(redis_client) == [5, 3, 2, 2, 0, 2]
    # At 100 s the claims are over; the claimed messages live to 120 s
    # (claim ttl + grace), the three others expired at 60 s.
    storage.queue_messages.tidy(QUEUE, now=now + 100)
    assert index_sizes(redis_client) == [2, 2, 0, 0, 0, 2]
    post(storage, 1, ttl=60, now=now + 200)  # a post collects what expired
    assert index_sizes(redis_client) == [1, 1, 0, 0, 0, 0]


def test_listing_is_ranked_by_post_order_and_pages_by_marker(storage):
    post(storage, 5)
    first = storage.queue_messages.list_page(QUEUE, 0, 2)
    rest = storage.queue_messages.list_page(QUEUE, first[-1].rank, 10)
    assert [m.record["body"]["n"] for m in first + rest] == [0, 1, 2, 3, 4]


def test_deleting_the_queue_forgets_its_index(storage, redis_client):
    post(storage, 3)
    storage.claims.create(QUEUE, 60, 60, 1)
    storage.delete_source(QUEUE)
    assert index_sizes(redis_client) == [0, 0, 0, 0, 0, 0]
    assert not redis_client.exists(keys.message_counter(QUEUE))


def test_purge_takes_the_messages_bytes_back(storage):
    post(storage, 3)
    assert storage.stored_bytes("p") > 0
    storage.queue_messages.purge(QUEUE)
    assert storage.queue_messages.stats(QUEUE).total == 0
    assert storage.stored_bytes("p") == 0


# -- delayed messages --------------------------------------------------------


def numbers(listed):
    return [m.record["body"]["n"] for m in listed]


def test_a_delayed_message_is_hidden_until_due_then_listed_in_post_order(storage):
    now = time.time()
    post(storage, 1, now=now, delay=30)
    post(storage, 1, now=now, start=1)
    messages = storage.queue_messages
    assert numbers(messages.list_page(QUEUE, now=now)) == [1]
    assert numbers(messages.list_page(QUEUE, include_claimed=True, now=now)) == [1]
    assert numbers(messages.list_page(QUEUE, include_delayed=True, now=now)) == [0, 1]
    stats = messages.stats(QUEUE, now=now)
    assert (stats.free, stats.claimed, stats.delayed, stats.total) == (1, 0, 1, 2)
    assert messages.pop(QUEUE, 5, now=now) != []  # takes the free one only
    assert messages.list_page(QUEUE, include_delayed=True, now=now)[0].record["body"]["n"] == 0
    assert storage.claims.create(QUEUE, 60, 0, 5, now=now)[1] == []

    assert numbers(messages.list_page(QUEUE, now=now + 30)) == [0]  # due at 30 s
    assert messages.stats(QUEUE, now=now + 30).delayed == 0


def test_a_delayed_message_whose_ttl_ends_first_is_collected_unseen(storage, redis_client):
    now = time.time()
    post(storage, 1, ttl=60, now=now, delay=120)
    messages = storage.queue_messages
    assert messages.list_page(QUEUE, now=now + 61) == []
    assert messages.list_page(QUEUE, include_delayed=True, now=now + 61) == []
    assert index_sizes(redis_client) == [0, 0, 0, 0, 0, 0]


def test_purge_and_delete_forget_delayed_messages(storage, redis_client):
    post(storage, 2, delay=60)
    ids = post(storage, 1, delay=60, start=2)
    storage.queue_messages.remove(QUEUE, ids)
    assert index_sizes(redis_client) == [2, 0, 0, 0, 2, 0]
    storage.queue_messages.purge(QUEUE)
    assert index_sizes(redis_client) == [0, 0, 0, 0, 0, 0]


# -- claim counts and the dead-letter queue ------------------------------------


DEAD = Source("p", "queues", "dead")


def claim_and_release(storage, rule, now):
    claim_id, taken = storage.claims.create(QUEUE, 60, 0, 5, now=now, dead_letter=rule)
    storage.claims.release(QUEUE, claim_id)
    return taken


def test_a_message_over_its_claim_count_moves_with_its_count_and_new_ttl(storage, redis_client):
    from notifier.store.claims import DeadLetterRule

    now = time.time()
    [message_id] = post(storage, 1, now=now)
    rule = DeadLetterRule(2, DEAD, ttl=600)
    assert len(claim_and_release(storage, rule, now)) == 1
    assert len(claim_and_release(storage, rule, now)) == 1
    assert claim_and_release(storage, rule, now) == []  # moved instead

    assert storage.queue_messages.stats(QUEUE, now=now).total == 0
    [moved] = storage.queue_messages.list_page(DEAD, now=now)
    assert moved.record["id"] == message_id and moved.record["claim_count"] == 2
    assert moved.record["source"] == ["p", "queues", "dead"]
    assert moved.record["ttl"] == 600 and redis_client.ttl(keys.message(message_id)) > 500
    assert redis_client.hget(keys.message_claim_counts(DEAD), message_id) == "2"
    assert storage.source_exists(DEAD)  # the dead-letter queue exists now
    # The next claims find the messages behind it.
    post(storage, 1, now=now, start=1)
    assert [m["body"]["n"] for m in storage.claims.create(QUEUE, 60, 0, 5, now=now)[1]] == [1]


def test_a_moved_message_keeps_its_expiry_without_a_dead_letter_ttl(storage, redis_client):
    from notifier.store.claims import DeadLetterRule

    now = time.time()
    [message_id] = post(storage, 1, ttl=300, now=now)
    rule = DeadLetterRule(1, DEAD)
    claim_and_release(storage, rule, now)
    claim_and_release(storage, rule, now)
    assert 200 < redis_client.ttl(keys.message(message_id)) <= 300
    assert storage.queue_messages.list_page(DEAD, now=now)[0].record["ttl"] == 300


def test_concurrent_claims_move_an_over_counted_message_once(storage):
    from notifier.store.claims import DeadLetterRule

    now = time.time()
    post(storage, 10, now=now)
    rule = DeadLetterRule(1, DEAD)
    storage.claims.release(QUEUE, storage.claims.create(QUEUE, 60, 0, 10, now=now)[0])
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                storage.claims.create(QUEUE, 60, 0, 10, now=now, dead_letter=rule)[1]
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r == [] for r in results)
    assert numbers(storage.queue_messages.list_page(DEAD, now=now)) == list(range(10))


def test_a_post_ranks_its_messages_in_order_with_one_write_per_index(storage, redis_client):
    first = post(storage, 2)
    mixed = storage.post_messages(
        QUEUE, [{"body": n, "ttl": 300, "delay": 60 if n % 2 else 0} for n in range(4)]
    )
    ranks = [redis_client.zscore(keys.message_ranks(QUEUE), i) for i in first + mixed]
    assert ranks == [1, 2, 3, 4, 5, 6]
    assert redis_client.zrange(keys.free_messages(QUEUE), 0, -1) == first + mixed[::2]
    assert set(redis_client.zrange(keys.delayed_messages(QUEUE), 0, -1)) == set(mixed[1::2])
    # a post of more messages than one ZADD of the script takes (500 pairs)
    many = post(storage, 700, start=10)
    assert redis_client.zscore(keys.message_ranks(QUEUE), many[-1]) == 706
    assert index_sizes(redis_client)[:2] == [706, 704]
