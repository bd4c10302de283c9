"""Per-task bookkeeping in fewer round trips, on a real redis-server: an
endpoint's leases go back with its breaker update (EVALSHA in the pipeline,
reloaded if Redis lost its scripts), and the done flags are read with the
batch's messages and subscriptions."""

import json

from notifier.store import keys
from notifier.store.delivery_log import DeliveryLog, done_flag
from notifier.store.endpoint_state import EndpointState
from notifier.store.records import Limits, loads
from notifier.store.storage import Source

ENDPOINT = "p1:http://hooks.example:80"


def test_leases_go_back_with_the_breaker_update_even_after_a_script_flush(redis_client):
    state = EndpointState(redis_client, lease_seconds=30, attempt_seconds=15)
    state.record([(ENDPOINT, "ok")], 5, 30, 900)  # proven
    [(count, _, proven, tokens)] = state.admit([(ENDPOINT, 3, 8, "s1", 0)])
    assert (count, proven) == (3, True) and redis_client.zcard(keys.inflight(ENDPOINT)) == 1

    redis_client.script_flush()  # a restarted Redis: no scripts loaded
    states = state.record([(ENDPOINT, "fail", tokens[0])], 5, 30, 900, {ENDPOINT: tokens})

    assert states == {ENDPOINT: ("closed", states[ENDPOINT][1])}
    assert redis_client.zcard(keys.inflight(ENDPOINT)) == 0
    assert state.breaker(ENDPOINT)["failures"] == "1"
    # leases alone, no outcome
    [(_, _, _, tokens)] = state.admit([(ENDPOINT, 1, 8, "s1", 0)])
    assert state.record([], 5, 30, 900, {ENDPOINT: tokens}) == {}
    assert redis_client.zcard(keys.inflight(ENDPOINT)) == 0


def test_done_flags_are_read_with_the_batch(storage):
    source = Source("p", "queues", "q")
    [message_id] = storage.post_messages(source, [{"body": 1, "ttl": 60}])
    _, subscription_id = storage.create_subscription(
        source, "http://127.0.0.1:9/x", 3600, {}, confirmed=True
    )
    ran = {"message_id": message_id, "subscription_id": subscription_id, "attempt": 0}
    storage.record_attempts([{**ran, "outcome": "delivered", "at": 1.0}])
    deliveries = [{**ran, "attempt": 1}, ran]

    messages, subscriptions, done = storage.load_batch([message_id], [subscription_id], deliveries)

    assert set(messages) == {message_id} and set(subscriptions) == {subscription_id}
    assert done == {1}
    assert storage.load_batch([], [], []) == ({}, {}, set())


def attempt(n, outcome="delivered", message_id="m1", subscription_id="s1"):
    return {
        "message_id": message_id,
        "subscription_id": subscription_id,
        "attempt": n,
        "outcome": outcome,
        "at": float(n),
    }


def test_a_batch_is_recorded_in_one_script_call_trimming_only_logs_over_the_cap(redis_client):
    log = DeliveryLog(redis_client, Limits(), attempt_log_length=5, done_ttl_seconds=60)
    log.record_attempts([attempt(n) for n in range(3)])
    assert redis_client.llen(keys.message_attempts("m1")) == 3
    log.record_attempts([attempt(n) for n in range(3, 7)] + [attempt(7, "failed")])

    newest_first = [record["attempt"] for record in log.message_attempts("m1")]
    assert newest_first == [7, 6, 5, 4, 3]  # capped at 5, the oldest gone
    assert [r["attempt"] for r in log.subscription_attempts("s1")] == [7, 6, 5, 4, 3]
    assert 0 < redis_client.ttl(keys.message_attempts("m1")) <= 3600
    # the ones that ran are flagged; the failed one too (it ran), none other
    flags = [attempt(n) for n in range(9)]
    assert log.already_done(flags) == set(range(8))
    assert 0 < redis_client.ttl(done_flag(attempt(0))[0]) <= 60
    assert redis_client.hlen(keys.done("m1")) == 8  # one hash for the message


def test_a_batch_bigger_than_one_lpush_takes_is_recorded_whole(redis_client):
    log = DeliveryLog(redis_client, Limits(), attempt_log_length=5000)
    log.record_attempts([attempt(n, subscription_id=f"s{n}") for n in range(2500)])
    assert redis_client.llen(keys.message_attempts("m1")) == 2500
    assert log.message_attempts("m1", limit=1)[0]["attempt"] == 2499


def test_a_log_entry_leaves_out_what_its_key_says_and_reads_back_whole(redis_client):
    """Each attempt is written to two logs: the subscription's entry has no
    subscription id or source, the message's no message id (a third of what
    Redis reads and appends to its AOF per delivery); read back, the records
    are whole, and entries written whole before (an upgrade) read the same."""
    log = DeliveryLog(redis_client, Limits())
    source = Source("p1", "queues", "q")
    sent = {**attempt(0), "status": 200, "source": source.to_list()}
    control = {**attempt(0, message_id="ctl-c1"), "source": source.to_list()}
    event = {"at": 5.0, "subscription_id": "s1", "message_id": None, "outcome": "disabled"}
    log.record_attempts([sent, control, event])
    redis_client.lpush(keys.subscription_attempts("s1"), json.dumps(sent))  # an older worker's
    redis_client.lpush(keys.message_attempts("m1"), json.dumps(sent))

    raw = [loads(v) for v in redis_client.lrange(keys.subscription_attempts("s1"), 1, -1)]
    assert all("subscription_id" not in r and "source" not in r for r in raw)
    raw = [loads(v) for v in redis_client.lrange(keys.message_attempts("m1"), 1, -1)]
    assert raw and all("message_id" not in r for r in raw)

    shown_control = {**control, "message_id": None, "control": True}
    assert log.subscription_attempts("s1", source=source) == [sent, event, shown_control, sent]
    assert log.message_attempts("m1") == [sent, sent]
    assert log.control_attempts("ctl-c1") == [control]
    # without the source (a caller that does not show it), nothing is made up
    assert "source" not in log.subscription_attempts("s1")[-1]
