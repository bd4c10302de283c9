"""Per-task bookkeeping in fewer round trips, on a real redis-server: an
endpoint's leases go back with its breaker update (EVALSHA in the pipeline,
reloaded if Redis lost its scripts), and the done flags are read with the
batch's messages and subscriptions."""

from notifier.store import keys
from notifier.store.endpoint_state import EndpointState
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
