"""The circuit breaker's Lua scripts on a real redis-server, with an injected
clock: the cool-off grows only with failed probes, the failures of one outage
count once, and a recovered endpoint ramps back (probe, one task at a time,
then the concurrency cap)."""

import pytest

from notifier.store.endpoint_state import EndpointState

ENDPOINT = "p1:http://hooks.example:80"
THRESHOLD, BASE, MAX = 5, 30, 900
CAP = 8


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def state(redis_client, clock):
    """The endpoint's state, proven (it answered in time before the outage)."""
    endpoint_state = EndpointState(
        redis_client,
        lease_seconds=30,
        probe_seconds=30,
        attempt_seconds=15,
        proven_seconds=600,
        clock=clock,
    )
    endpoint_state.record([(ENDPOINT, "ok")], THRESHOLD, BASE, MAX)
    return endpoint_state


def admit(state, wanted=1, endpoint=ENDPOINT):
    [(count, wait, proven, tokens)] = state.admit([(endpoint, wanted, CAP, "s1", 0)])
    return count, wait, proven, tokens


def record(state, outcome, token=None, times=1, endpoint=ENDPOINT):
    result = state.record([(endpoint, outcome, token)] * times, THRESHOLD, BASE, MAX)
    return result[endpoint][0]


def breaker(state, endpoint=ENDPOINT):
    found = state.breaker(endpoint)
    return {k: int(v) for k, v in found.items()}


def open_breaker(state, clock):
    """Admit a task while closed, then record the failures of an outage."""
    _, _, _, tokens = admit(state, wanted=5)
    assert record(state, "fail", tokens[0], times=THRESHOLD) == "opened"
    state.release({ENDPOINT: tokens})
    return breaker(state)


def test_failures_recorded_while_open_neither_extend_nor_double_the_cooloff(state, clock):
    # three tasks were in flight when the outage began: all fail
    tokens = [admit(state, wanted=5)[3][0] for _ in range(3)]
    assert record(state, "fail", tokens[0], times=THRESHOLD) == "opened"
    opened = breaker(state)
    assert opened["cooloff_ms"] == BASE * 1000
    clock.now += 0.02
    assert record(state, "fail", tokens[1], times=THRESHOLD) == "open"
    clock.now += 5  # a slow one, seconds later: still the same outage
    assert record(state, "slow", tokens[2], times=THRESHOLD) == "open"
    assert breaker(state)["cooloff_ms"] == BASE * 1000
    assert breaker(state)["open_until_ms"] == opened["open_until_ms"]
    assert admit(state)[0] == 0  # still open: nothing goes


def test_successes_recorded_while_open_from_attempts_admitted_before_leave_it_open(state, clock):
    # two tasks in flight as the outage began: one's attempts failed and
    # opened the breaker; the other's earlier attempts had succeeded and are
    # recorded after (a batch stores its endpoint's outcomes when done)
    tokens = [admit(state, wanted=5)[3][0] for _ in range(2)]
    assert record(state, "fail", tokens[0], times=THRESHOLD) == "opened"
    opened = breaker(state)
    clock.now += 0.05
    assert record(state, "ok", tokens[1], times=2) == "open"
    assert record(state, "fail", tokens[1], times=3) == "open"
    assert breaker(state)["open_until_ms"] == opened["open_until_ms"]
    assert "recovering" not in breaker(state)
    assert admit(state)[0] == 0  # still open: nothing goes
    # the half-open probe (admitted after it opened) does close it
    clock.now += BASE
    probe = admit(state)[3]
    assert record(state, "ok", probe[0]) == "closed"
    assert breaker(state)["recovering"] == 1


def test_only_the_failure_of_the_half_open_probe_doubles_the_cooloff(state, clock):
    opened = open_breaker(state, clock)
    early = admit(state, wanted=5)  # refused: open
    assert early[0] == 0 and early[1] == pytest.approx(BASE)

    clock.now = opened["open_until_ms"] / 1000.0  # the cool-off has passed
    count, _, _, probe_tokens = admit(state, wanted=5)
    assert count == 1  # the probe, one delivery
    waiting = admit(state, wanted=5)
    assert waiting[0] == 0 and 0.25 <= waiting[1] < 1  # asks again soon

    # a failure of an attempt admitted before the breaker opened: ignored
    assert record(state, "fail", 999_999) == "open"
    assert breaker(state)["cooloff_ms"] == BASE * 1000

    clock.now += 0.1
    assert record(state, "fail", probe_tokens[0]) == "opened"
    doubled = breaker(state)
    assert doubled["cooloff_ms"] == 2 * BASE * 1000
    assert doubled["open_until_ms"] == int(clock.now * 1000) + 2 * BASE * 1000
    assert doubled["failed_probes"] == 1


def test_the_cooloff_doubles_per_failed_probe_up_to_the_maximum(state, clock):
    open_breaker(state, clock)
    seen = []
    for _ in range(7):
        clock.now = breaker(state)["open_until_ms"] / 1000.0
        _, _, _, tokens = admit(state)
        record(state, "fail", tokens[0])
        state.release({ENDPOINT: tokens})
        seen.append(breaker(state)["cooloff_ms"] // 1000)
    assert seen == [60, 120, 240, 480, 900, 900, 900]


def test_a_ten_second_outage_is_over_within_one_base_cooloff_of_recovery(state, clock):
    outage_began = clock.now
    tokens = [admit(state, wanted=5)[3][0] for _ in range(4)]  # in flight
    for token in tokens:  # every one of them fails within 20 ms
        record(state, "fail", token, times=5)
        clock.now += 0.005
    recovered = outage_began + 10

    # deliveries keep coming due and are told to wait for the cool-off
    clock.now = recovered
    _, wait, _, _ = admit(state, wanted=50)
    first_try = clock.now + wait
    assert first_try - recovered <= BASE

    clock.now = first_try
    count, _, _, probe = admit(state, wanted=50)
    assert count == 1
    assert record(state, "ok", probe[0]) == "closed"
    state.release({ENDPOINT: probe})
    assert admit(state, wanted=50)[0] == 50


def test_a_recovered_endpoint_ramps_back_probe_then_one_task_then_the_cap(state, clock):
    opened = open_breaker(state, clock)
    clock.now = opened["open_until_ms"] / 1000.0
    count, _, _, probe = admit(state, wanted=5)
    assert count == 1  # 1. the probe
    record(state, "ok", probe[0])
    state.release({ENDPOINT: probe})

    first = admit(state, wanted=5)
    assert first[0] == 5  # 2. one task at a time ...
    second = admit(state, wanted=5)
    assert second[0] == 0 and second[1] == pytest.approx(0.5)  # ... asked again soon
    record(state, "ok", first[3][0])
    state.release({ENDPOINT: first[3]})

    # 3. a success while recovering closes it: the full concurrency cap
    assert breaker(state) == {}
    assert [admit(state)[0] for _ in range(CAP + 1)] == [1] * CAP + [0]


def test_a_failing_recovering_endpoint_reopens_with_the_cooloff_it_had(state, clock):
    opened = open_breaker(state, clock)
    clock.now = opened["open_until_ms"] / 1000.0
    _, _, _, probe = admit(state)
    record(state, "fail", probe[0])  # 60 s
    state.release({ENDPOINT: probe})
    clock.now = breaker(state)["open_until_ms"] / 1000.0
    _, _, _, probe = admit(state)
    record(state, "ok", probe[0])  # recovering
    state.release({ENDPOINT: probe})
    _, _, _, tokens = admit(state, wanted=5)
    assert record(state, "fail", tokens[0], times=THRESHOLD) == "opened"
    assert breaker(state)["cooloff_ms"] == 2 * BASE * 1000  # not doubled again


def test_breakers_of_two_projects_at_one_endpoint_are_separate(state, clock):
    other = "p2:http://hooks.example:80"
    open_breaker(state, clock)
    assert admit(state)[0] == 0
    assert admit(state, endpoint=other)[0] == 1
    state.reset(other)  # enabling p2's subscription: p1's breaker stays open
    assert breaker(state)["open_until_ms"] > 0
    assert admit(state)[0] == 0
