"""A slow endpoint ties up one worker, not the fleet: endpoints are proven by
answering in time; an unproven one gets one task in flight, and in a task it
runs beside the others. Real Redis (the Lua scripts), real HTTP receivers."""

import time

import pytest

from notifier.core.model import Delivery
from notifier.delivery.admission import endpoint_key
from notifier.delivery.jobs import Job
from notifier.delivery.service import DeliveryService
from notifier.store import keys
from notifier.store.endpoint_state import EndpointState
from notifier.store.storage import Source
from tests.support.dispatch import MemoryDispatcher
from tests.support.receiver import Receiver

ENDPOINT = "http://hooks.example:80"
CAP = 8


@pytest.fixture
def state(redis_client):
    return EndpointState(
        redis_client, lease_seconds=20, probe_seconds=20, attempt_seconds=10, proven_seconds=60
    )


def admit(state, wanted=1):
    [(count, wait, proven, tokens)] = state.admit([(ENDPOINT, wanted, CAP, "s1", 0)])
    return count, wait, proven, tokens


def test_a_new_endpoint_gets_one_task_in_flight_until_it_answers_in_time(state):
    first = admit(state)
    assert first[0] == 1 and first[2] is False
    assert admit(state)[0] == 0  # the first is still in flight
    state.record([(ENDPOINT, "ok")], 5, 30, 600)
    assert [admit(state)[0] for _ in range(CAP)] == [1] * (CAP - 1) + [0]  # proven: the cap


def test_a_timeout_takes_the_full_cap_away_until_the_next_answer_in_time(state):
    state.record([(ENDPOINT, "ok")], 5, 30, 600)
    _, _, proven, tokens = admit(state)
    assert proven is True
    state.release({ENDPOINT: tokens})
    state.record([(ENDPOINT, "slow")], 5, 30, 600)
    count, _, proven, tokens = admit(state)
    assert (count, proven) == (1, False)
    assert admit(state)[0] == 0
    state.release({ENDPOINT: tokens})
    state.record([(ENDPOINT, "ok")], 5, 30, 600)
    assert admit(state)[2] is True


def redis_ms(redis_client):
    """Redis' clock in ms, as the admit script reads it (TIME)."""
    seconds, micros = redis_client.time()
    return seconds * 1000 + micros // 1000


def admit_bracketed(state, redis_client):
    """Admit once; return (wait ms, Redis time in ms just before and after)."""
    before = redis_ms(redis_client)
    _, wait, _, _ = admit(state)
    return round(wait * 1000), before, redis_ms(redis_client)


def test_waiting_for_an_unproven_endpoint_grows_with_its_attempt_in_flight(state, redis_client):
    """The wait is as long as the attempt in flight has taken (at least 0.1 s).
    Its age is read from the lease in Redis, against Redis' clock: no sleeping
    and no bound on how fast this machine is."""
    admit(state)
    [(token, expiry)] = redis_client.zrange(keys.inflight(ENDPOINT), 0, -1, withscores=True)
    started = int(expiry) - state.lease_ms

    soon, before, after = admit_bracketed(state, redis_client)
    assert max(100, before - started) <= soon <= max(100, after - started)

    # The attempt has been in flight 600 ms longer: age its lease (as a
    # scheduler test ages leases) rather than wait.
    redis_client.zadd(keys.inflight(ENDPOINT), {token: expiry - 600})
    later, before, after = admit_bracketed(state, redis_client)
    assert before - started + 600 <= later <= after - started + 600
    assert later >= 600 and later > soon  # wait about as long again as it has taken


def test_a_lease_older_than_an_attempt_does_not_block_an_unproven_endpoint(redis_client):
    state = EndpointState(
        redis_client, lease_seconds=20, probe_seconds=20, attempt_seconds=0.3, proven_seconds=60
    )
    assert admit(state)[0] == 1  # its task dies without giving the lease back
    assert admit(state)[0] == 0
    time.sleep(0.4)  # longer than one attempt can take
    assert admit(state)[0] == 1


def test_one_task_holds_one_lease_per_endpoint_whatever_its_subscriptions(state):
    groups = [(ENDPOINT, 2, CAP, "s1", 0), (ENDPOINT, 3, CAP, "s2", 0)]
    assert [(count, len(tokens)) for count, _, _, tokens in state.admit(groups)] == [(2, 1), (3, 0)]
    assert admit(state)[0] == 0  # unproven: that one task is all it gets


def test_an_error_answered_in_time_proves_an_endpoint_too(state):
    state.record([(ENDPOINT, "fail")], 5, 30, 600)  # what is guarded is hanging
    assert admit(state)[2] is True


def test_a_permanent_failure_proves_the_endpoint_and_leaves_its_breaker_alone(state):
    state.record([(ENDPOINT, "fail")] * 2, 5, 30, 600)
    assert state.record([(ENDPOINT, "answered")], 5, 30, 600)[ENDPOINT][0] == "closed"
    assert int(state.breaker(ENDPOINT)["failures"]) == 2
    assert admit(state)[2] is True


def test_a_hanging_endpoint_does_not_hold_up_the_others_in_the_same_task(conf, storage, receiver):
    """The read timeout is 2 s in the tests; the slow receiver takes 5 s."""
    dispatcher = MemoryDispatcher()
    service = DeliveryService(conf, storage, dispatcher)
    source = Source("p", "queues", "mixed")
    with Receiver() as slow:
        slow.delay("/hang", 5)
        later = {
            "_retry_policy": {
                "retries_with_no_delay": 0,
                "minimum_delay_retries": 0,
                "backoff_retries": 0,
                "maximum_delay_retries": 3,
                "minimum_delay": 60,
                "maximum_delay": 60,
            }
        }
        for url in (receiver.url + "/a", slow.url + "/hang", receiver.url + "/b"):
            _, subscription_id = storage.create_subscription(
                source, url, 3600, later, confirmed=True
            )
            if url.endswith("/hang"):
                hang_id = subscription_id
        ids = storage.post_messages(source, [{"body": n, "ttl": 300} for n in range(3)])
        dispatcher.send_fanout(source, ids)
        started = time.time()
        dispatcher.run(service)
        took = time.time() - started

    arrived = receiver.received()
    assert len(arrived) == 6 and len(slow.received()) == 1  # the rest of /hang waits
    assert took >= 2  # the task waited for the slow endpoint's read timeout ...
    [hung] = [
        record for record in storage.subscription_attempts(hang_id) if record["outcome"] == "failed"
    ]
    assert hung["error"] == "timeout", hung
    # ... but the others did not: each was delivered while /hang still hung
    # (an attempt is logged when it ends).
    assert max(r.at for r in arrived) < hung["at"]
    assert storage.pending_retry_count() == 3  # one timed out, two deferred: none lost


def recorded_batch(conf, storage, project, urls, messages=3):
    """A service whose breaker updates are noted (time, endpoints), and the
    jobs of ``messages`` messages to proven subscribers ``urls``, endpoint
    by endpoint in that order (as a batch runs them)."""
    service = DeliveryService(conf, storage, MemoryDispatcher())
    calls = []
    record = service.admission.state.record

    def recording(answers, *args, **kwargs):
        calls.append((time.time(), {endpoint for endpoint, *_ in answers}))
        return record(answers, *args, **kwargs)

    source = Source(project, "queues", "settle")
    ids = storage.post_messages(source, [{"body": n, "ttl": 300} for n in range(messages)])
    found = storage.get_messages(ids)
    jobs, endpoints = [], []
    for url in urls:
        subscription_id = storage.create_subscription(source, url, 3600, {}, confirmed=True)[1]
        subscription = storage.get_subscriptions([subscription_id])[subscription_id]
        endpoints.append(endpoint_key(subscription))
        record([(endpoints[-1], "ok")], 5, 30, 600)  # proven: run in the task itself
        jobs += [Job(Delivery(i, subscription_id), found[i], subscription) for i in ids]
    service.admission.state.record = recording
    return service, jobs, endpoints, calls


def test_quick_endpoints_in_a_task_give_back_leases_and_feed_breakers_in_one_update(
    conf, storage, receiver, project
):
    with Receiver() as second, Receiver() as third:
        urls = [receiver.url + "/1", second.url + "/2", third.url + "/3"]
        service, jobs, endpoints, calls = recorded_batch(conf, storage, project, urls)
        service.batch.run(jobs)
        assert len(receiver.received() + second.received() + third.received()) == 9
    assert [settled for _, settled in calls] == [set(endpoints)]  # one round trip, not three
    for endpoint in endpoints:
        assert storage.redis.zcard(keys.inflight(endpoint)) == 0  # every lease back


@pytest.mark.parametrize("slow_first", [False, True])
def test_a_slow_endpoint_after_quick_ones_does_not_keep_their_leases_for_its_run(
    conf, storage, receiver, project, slow_first
):
    """Within one of its attempts (0.2 s here), not its whole run (0.6 s)."""
    with Receiver() as slow:
        slow.delay("/slow", 0.2)
        urls = [receiver.url + "/quick", slow.url + "/slow"]
        service, jobs, (quick, late), calls = recorded_batch(
            conf, storage, project, urls[::-1] if slow_first else urls
        )
        if slow_first:
            quick, late = late, quick
        service.batch.run(jobs)
        quick_done = max(r.at for r in receiver.received())
        slow_done = max(r.at for r in slow.received())
    [quick_settled] = [at for at, settled in calls if quick in settled]
    assert quick_settled - quick_done < 0.45
    assert len(calls) == 2 and quick not in calls[-1][1] or slow_first
    assert slow_first or quick_settled < slow_done
    for endpoint in (quick, late):
        assert storage.redis.zcard(keys.inflight(endpoint)) == 0


def test_a_batch_of_endpoints_slow_but_in_time_runs_them_side_by_side_after_a_while(
    conf, storage, project
):
    """Proven endpoints run one after another in the task only for
    INLINE_SECONDS (0.5 s); the ones not started by then run beside it, so
    a batch of four endpoints answering in 0.5 s is not as slow as their
    sum: its eight deliveries all arrive before a 2.5 s deadline (one after
    another they would take 4 s; five would be deferred)."""
    receivers = [Receiver() for _ in range(4)]
    try:
        for receiver in receivers:
            receiver.__enter__()
            receiver.delay("/slow", 0.5)
        service, jobs, _, _ = recorded_batch(
            conf, storage, project, [r.url + "/slow" for r in receivers], messages=2
        )
        service.batch.run(jobs, deadline=time.time() + 2.5)
        assert [len(r.received()) for r in receivers] == [2, 2, 2, 2]
        assert storage.pending_retry_count() == 0
        for receiver in receivers:
            assert [q.json()["body"] for q in receiver.received()] == [0, 1]  # in order
    finally:
        for receiver in receivers:
            receiver.__exit__(None, None, None)
