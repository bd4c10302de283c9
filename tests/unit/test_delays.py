"""When a delayed message's notifications are due (Zaqar's delayed queues)."""

import pytest

from notifier.core import delays


def message(created=1000.0, ttl=300, delay=None):
    record = {"id": "m", "created": created, "ttl": ttl}
    if delay is not None:
        record["delay"] = delay
    return record


@pytest.mark.parametrize(
    "delay, due",
    [(None, 1000.0), (0, 1000.0), (1, 1001.0), (900, 1900.0)],
)
def test_a_message_is_due_its_delay_after_it_was_posted(delay, due):
    assert delays.due_time(message(delay=delay)) == due


@pytest.mark.parametrize(
    "ttl, delay, outlives",
    [(300, None, True), (300, 299, True), (300, 300, False), (60, 900, False)],
)
def test_a_message_whose_ttl_ends_first_never_comes_due(ttl, delay, outlives):
    assert delays.outlives_delay(message(ttl=ttl, delay=delay)) is outlives


def test_pairs_split_into_now_later_and_never():
    now_pair = (message(delay=0), "s1")
    due_pair = (message(delay=10), "s2")
    passed_pair = (message(created=900.0, delay=10), "s3")  # delay ended at 910
    never_pair = (message(ttl=60, delay=120), "s4")
    split = delays.split_due([now_pair, due_pair, passed_pair, never_pair], now=1000.0)
    assert split.now == [now_pair, passed_pair]
    assert split.later == [(1010.0, due_pair)]
    assert split.never == [never_pair]


def test_a_delay_ending_exactly_now_is_due_now():
    pair = (message(delay=5), "s")
    assert delays.split_due([pair], now=1005.0).now == [pair]


def test_no_pairs_split_into_nothing():
    assert delays.split_due([], now=0.0) == delays.Split([], [], [])
