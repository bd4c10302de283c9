"""The consumer side's store: ranks, claims and their collection, against a
real Redis (times are passed in, no waiting)."""

import threading
import time

from notifier.store import keys
from notifier.store.records import Source

QUEUE = Source("p", "queues", "q")


def post(storage, count, ttl=300, now=None):
    return storage.post_messages(
        QUEUE, [{"body": {"n": n}, "ttl": ttl} for n in range(count)], now=now
    )


def index_sizes(redis_client):
    return [
        redis_client.zcard(keys.message_ranks(QUEUE)),
        redis_client.zcard(keys.free_messages(QUEUE)),
        redis_client.zcard(keys.claimed_messages(QUEUE)),
        redis_client.hlen(keys.message_claimers(QUEUE)),
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
    assert index_sizes(redis_client) == [5, 3, 2, 2]
    # At 100 s the claims are over; the claimed messages live to 120 s
    # (claim ttl + grace), the three others expired at 60 s.
    storage.queue_messages.tidy(QUEUE, now=now + 100)
    assert index_sizes(redis_client) == [2, 2, 0, 0]
    post(storage, 1, ttl=60, now=now + 200)  # a post collects what expired
    assert index_sizes(redis_client) == [1, 1, 0, 0]


def test_listing_is_ranked_by_post_order_and_pages_by_marker(storage):
    post(storage, 5)
    first = storage.queue_messages.list_page(QUEUE, 0, 2)
    rest = storage.queue_messages.list_page(QUEUE, first[-1].rank, 10)
    assert [m.record["body"]["n"] for m in first + rest] == [0, 1, 2, 3, 4]


def test_deleting_the_queue_forgets_its_index(storage, redis_client):
    post(storage, 3)
    storage.claims.create(QUEUE, 60, 60, 1)
    storage.delete_source(QUEUE)
    assert index_sizes(redis_client) == [0, 0, 0, 0]
    assert not redis_client.exists(keys.message_counter(QUEUE))


def test_purge_takes_the_messages_bytes_back(storage):
    post(storage, 3)
    assert storage.stored_bytes("p") > 0
    storage.queue_messages.purge(QUEUE)
    assert storage.queue_messages.stats(QUEUE).total == 0
    assert storage.stored_bytes("p") == 0
