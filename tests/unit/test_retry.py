"""Unit tests of notifier.core.retry: schedules, validation, precedence, classification."""

import calendar
import dataclasses
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.core.retry import (
    BACKOFF_FUNCTIONS,
    MAX_DELAY_SECONDS,
    MAX_RETRIES_PER_PHASE,
    RetryPolicy,
    backoff_delays,
    classify_http_status,
    parse_retry_after,
    resolve_policy,
)
from notifier.errors import ValidationError

DEFAULT_BACKOFF = {
    "linear": [5.0, 7.778, 10.556, 13.333, 16.111, 18.889, 21.667, 24.444, 27.222, 30.0],
    "arithmetic": [5.0, 5.556, 6.667, 8.333, 10.556, 13.333, 16.667, 20.556, 25.0, 30.0],
    "geometric": [5.0, 6.101, 7.445, 9.086, 11.087, 13.529, 16.51, 20.146, 24.584, 30.0],
    "exponential": [5.0, 5.005, 5.02, 5.059, 5.165, 5.455, 6.242, 8.381, 14.195, 30.0],
}

AWS_PICTURE_BACKOFF = {
    "linear": [5.0, 33.333, 61.667, 90.0, 118.333, 146.667, 175.0, 203.333, 231.667, 260.0],
    "arithmetic": [5.0, 10.667, 22.0, 39.0, 61.667, 90.0, 124.0, 163.667, 209.0, 260.0],
    "geometric": [5.0, 7.756, 12.031, 18.663, 28.949, 44.906, 69.658, 108.054, 167.612, 260.0],
    "exponential": [5.0, 5.054, 5.201, 5.601, 6.687, 9.64, 17.666, 39.483, 98.789, 260.0],
}

TYPICAL_RANGES = [(5, 30, 10), (5, 260, 10), (1, 60, 5), (0, 300, 10), (10, 3600, 20), (30, 600, 3)]


def is_non_decreasing(values):
    return all(a <= b for a, b in itertools.pairwise(values))


# --- schedules ---------------------------------------------------------------


def test_the_default_policy_matches_the_spec_defaults():
    assert RetryPolicy().to_dict() == {
        "retries_with_no_delay": 3,
        "minimum_delay_retries": 3,
        "minimum_delay": 5,
        "maximum_delay": 30,
        "maximum_delay_retries": 3,
        "retry_backoff_function": "linear",
        "ignore_subscription_override": False,
        "backoff_retries": 10,
    }


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
def test_a_default_policy_schedules_all_four_phases_in_order(function):
    policy = RetryPolicy(retry_backoff_function=function)
    assert policy.delays() == ([0.0] * 3 + [5.0] * 3 + DEFAULT_BACKOFF[function] + [30.0] * 3)
    assert policy.total_retries == 19


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
def test_the_aws_picture_range_gives_the_documented_curve(function):
    assert backoff_delays(function, 5, 260, 10) == AWS_PICTURE_BACKOFF[function]


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
@pytest.mark.parametrize("low, high, count", TYPICAL_RANGES)
def test_each_curve_runs_from_minimum_to_maximum_without_decreasing(function, low, high, count):
    delays = backoff_delays(function, low, high, count)
    assert len(delays) == count
    assert delays[0] == low and delays[-1] == high
    assert is_non_decreasing(delays)


@pytest.mark.parametrize("low, high, count", TYPICAL_RANGES)
def test_the_four_curves_differ_for_typical_ranges(low, high, count):
    curves = {tuple(backoff_delays(f, low, high, count)) for f in BACKOFF_FUNCTIONS}
    assert len(curves) == 4


def test_arithmetic_and_geometric_coincide_for_the_documented_special_case():
    assert backoff_delays("arithmetic", 1, 4, 3) == backoff_delays("geometric", 1, 4, 3)


def test_linear_reaches_the_maximum_at_the_last_retry_unlike_the_spec_interval():
    delays = backoff_delays("linear", 5, 30, 10)
    assert delays[1] - delays[0] == pytest.approx((30 - 5) / 9, abs=1e-3)
    assert delays[-1] == 30.0


def test_arithmetic_follows_the_spec_formula():
    low, high, count = 5, 260, 10
    d = 2 * (high - low) / (count * (count - 1))
    expected = [round(n * (n - 1) / 2 * d + low, 3) for n in range(1, count + 1)]
    assert backoff_delays("arithmetic", low, high, count) == expected


def test_geometric_follows_the_spec_formula():
    low, high, count = 5, 260, 10
    k = 10 ** (math.log10(high / low) / (count - 1))
    expected = [round(k ** (n - 1) * low, 3) for n in range(1, count + 1)]
    assert backoff_delays("geometric", low, high, count) == expected


def test_exponential_stays_below_geometric_for_the_aws_picture_range():
    exponential = backoff_delays("exponential", 5, 260, 10)
    geometric = backoff_delays("geometric", 5, 260, 10)
    assert all(e < g for e, g in zip(exponential[1:-1], geometric[1:-1]))


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
@pytest.mark.parametrize(
    "count, expected",
    [
        (0, []),
        (1, [30.0]),
        (2, [5.0, 30.0]),
    ],
)
def test_a_short_backoff_phase_is_empty_or_ends_at_the_maximum(function, count, expected):
    assert backoff_delays(function, 5, 30, count) == expected


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
def test_equal_minimum_and_maximum_give_a_flat_backoff(function):
    assert backoff_delays(function, 20, 20, 6) == [20.0] * 6


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
def test_a_zero_minimum_delay_does_not_break_any_curve(function):
    delays = backoff_delays(function, 0, 300, 10)
    assert delays[0] == 0.0 and delays[-1] == 300.0
    assert is_non_decreasing(delays)


def test_geometric_with_a_zero_minimum_runs_from_one_to_max_plus_one_shifted():
    assert backoff_delays("geometric", 0, 8, 3) == [0.0, 2.0, 8.0]


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
def test_all_zero_delays_give_all_zero_backoff(function):
    assert backoff_delays(function, 0, 0, 4) == [0.0] * 4


def test_an_unknown_backoff_function_is_a_value_error():
    with pytest.raises(ValueError, match="fibonacci"):
        backoff_delays("fibonacci", 5, 30, 10)


@pytest.mark.parametrize("function", BACKOFF_FUNCTIONS)
@pytest.mark.parametrize(
    "phase",
    ["retries_with_no_delay", "minimum_delay_retries", "backoff_retries", "maximum_delay_retries"],
)
def test_a_phase_with_zero_retries_drops_out_of_the_schedule(function, phase):
    policy = RetryPolicy(retry_backoff_function=function, **{phase: 0})
    phases = {
        "retries_with_no_delay": [0.0] * 3,
        "minimum_delay_retries": [5.0] * 3,
        "backoff_retries": DEFAULT_BACKOFF[function],
        "maximum_delay_retries": [30.0] * 3,
    }
    phases[phase] = []
    assert policy.delays() == list(itertools.chain(*phases.values()))
    assert policy.total_retries == len(policy.delays())


def test_a_policy_with_no_retries_at_all_is_exhausted_at_once():
    policy = RetryPolicy(
        retries_with_no_delay=0, minimum_delay_retries=0, backoff_retries=0, maximum_delay_retries=0
    )
    assert policy.delays() == []
    assert policy.next_delay(1) is None


@pytest.mark.parametrize(
    "retry_number, expected",
    [
        (1, 0.0),
        (3, 0.0),
        (4, 5.0),
        (6, 5.0),
        (7, 5.0),
        (8, 7.778),
        (16, 30.0),
        (19, 30.0),
        (20, None),
        (100, None),
    ],
)
def test_next_delay_walks_the_default_schedule(retry_number, expected):
    assert RetryPolicy().next_delay(retry_number) == expected


@pytest.mark.parametrize("retry_number", [0, -1])
def test_next_delay_rejects_retry_numbers_below_one(retry_number):
    with pytest.raises(ValueError, match="retry_number starts at 1"):
        RetryPolicy().next_delay(retry_number)


@pytest.mark.parametrize(
    "retry_number, retry_after, expected",
    [
        (1, None, 0.0),
        (1, 12, 12.0),
        (8, 3.0, 7.778),
        (8, 9.5, 9.5),
        (19, 120, 120.0),
        (20, 120, None),
    ],
)
def test_retry_after_raises_the_policy_delay_but_never_adds_retries(
    retry_number, retry_after, expected
):
    assert RetryPolicy().delay_after_failure(retry_number, retry_after) == expected


# --- from_dict and validation --------------------------------------------------


def test_an_empty_dict_gives_the_defaults():
    assert RetryPolicy.from_dict({}) == RetryPolicy()


def test_missing_keys_take_the_given_defaults():
    defaults = RetryPolicy(minimum_delay=10, maximum_delay=120)
    policy = RetryPolicy.from_dict({"maximum_delay": 60}, defaults)
    assert (policy.minimum_delay, policy.maximum_delay) == (10, 60)


def test_to_dict_and_from_dict_round_trip():
    policy = RetryPolicy(2, 1, 0, 600, 4, "geometric", True, 7)
    assert RetryPolicy.from_dict(policy.to_dict()) == policy


def test_a_policy_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().minimum_delay = 1


@pytest.mark.parametrize(
    "key",
    [
        "retries_with_no_delay",
        "minimum_delay_retries",
        "maximum_delay_retries",
        "backoff_retries",
        "minimum_delay",
        "maximum_delay",
    ],
)
@pytest.mark.parametrize(
    "value, rule",
    [
        (True, "integer"),
        (1.0, "integer"),
        ("3", "integer"),
        (None, "integer"),
        (-1, "between 0 and"),
    ],
)
def test_a_bad_integer_option_names_its_field(key, value, rule):
    with pytest.raises(ValidationError, match=rule) as raised:
        RetryPolicy.from_dict({key: value})
    assert raised.value.field == f"_retry_policy.{key}"
    assert key in raised.value.description


@pytest.mark.parametrize(
    "key, upper",
    [
        ("retries_with_no_delay", MAX_RETRIES_PER_PHASE),
        ("minimum_delay_retries", MAX_RETRIES_PER_PHASE),
        ("maximum_delay_retries", MAX_RETRIES_PER_PHASE),
        ("backoff_retries", MAX_RETRIES_PER_PHASE),
        ("maximum_delay", MAX_DELAY_SECONDS),
    ],
)
def test_an_option_above_its_limit_is_rejected_and_the_limit_accepted(key, upper):
    assert getattr(RetryPolicy.from_dict({key: upper}), key) == upper
    with pytest.raises(ValidationError, match=f"between 0 and {upper}") as raised:
        RetryPolicy.from_dict({key: upper + 1})
    assert raised.value.field == f"_retry_policy.{key}"


def test_a_maximum_delay_below_the_minimum_is_rejected():
    with pytest.raises(ValidationError, match="maximum_delay .* minimum_delay") as raised:
        RetryPolicy.from_dict({"minimum_delay": 60, "maximum_delay": 30})
    assert raised.value.field == "_retry_policy.maximum_delay"


def test_a_minimum_delay_above_the_default_maximum_is_rejected():
    with pytest.raises(ValidationError) as raised:
        RetryPolicy.from_dict({"minimum_delay": 31})
    assert "(30)" in raised.value.description


@pytest.mark.parametrize("value", ["fibonacci", "Linear", "", None, 1])
def test_an_unknown_backoff_function_is_rejected(value):
    with pytest.raises(ValidationError, match="linear, arithmetic") as raised:
        RetryPolicy.from_dict({"retry_backoff_function": value})
    assert raised.value.field == "_retry_policy.retry_backoff_function"


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_ignore_subscription_override_must_be_a_real_boolean(value):
    with pytest.raises(ValidationError, match="boolean") as raised:
        RetryPolicy.from_dict({"ignore_subscription_override": value})
    assert raised.value.field == "_retry_policy.ignore_subscription_override"


def test_an_unknown_option_is_rejected_by_name():
    with pytest.raises(ValidationError, match="max_delay is not") as raised:
        RetryPolicy.from_dict({"max_delay": 30})
    assert raised.value.field == "_retry_policy.max_delay"


@pytest.mark.parametrize("value", [None, [], "linear", 3])
def test_a_policy_that_is_not_an_object_is_rejected(value):
    with pytest.raises(ValidationError, match="must be an object") as raised:
        RetryPolicy.from_dict(value)
    assert raised.value.field == "_retry_policy"


def test_the_constructor_validates_too():
    with pytest.raises(ValidationError) as raised:
        RetryPolicy(minimum_delay=-5)
    assert raised.value.field == "_retry_policy.minimum_delay"


# --- resolve_policy --------------------------------------------------------------

QUEUE = {"minimum_delay": 1}
QUEUE_IGNORING = {"minimum_delay": 1, "ignore_subscription_override": True}
SUBSCRIPTION = {"minimum_delay": 2}
SUBSCRIPTION_IGNORING = {"minimum_delay": 2, "ignore_subscription_override": True}
DEFAULTS = RetryPolicy(minimum_delay=3)


@pytest.mark.parametrize(
    "queue, subscription, expected_minimum",
    [
        (None, None, 3),
        ({}, {}, 3),
        (QUEUE, None, 1),
        (QUEUE, {}, 1),
        (None, SUBSCRIPTION, 2),
        ({}, SUBSCRIPTION, 2),
        (QUEUE, SUBSCRIPTION, 2),
        (QUEUE_IGNORING, SUBSCRIPTION, 1),
        (QUEUE_IGNORING, None, 1),
        (QUEUE, SUBSCRIPTION_IGNORING, 2),
    ],
)
def test_resolve_policy_prefers_the_subscription_unless_the_queue_ignores_it(
    queue, subscription, expected_minimum
):
    policy = resolve_policy(queue, subscription, DEFAULTS)
    assert policy.minimum_delay == expected_minimum


def test_resolve_policy_fills_missing_keys_from_the_defaults():
    policy = resolve_policy(None, {"minimum_delay": 2}, DEFAULTS)
    assert policy == RetryPolicy(minimum_delay=2)


def test_resolve_policy_without_defaults_uses_the_built_in_ones():
    assert resolve_policy(None, None) == RetryPolicy()


def test_resolve_policy_validates_the_policies_it_reads():
    with pytest.raises(ValidationError) as raised:
        resolve_policy({"minimum_delay": -1}, SUBSCRIPTION, DEFAULTS)
    assert raised.value.field == "_retry_policy.minimum_delay"


# --- classify_http_status -----------------------------------------------------------


@pytest.mark.parametrize(
    "status, expected",
    [
        (200, "success"),
        (201, "success"),
        (204, "success"),
        (299, "success"),
        (100, "transient"),
        (199, "transient"),
        (0, "transient"),
        (600, "transient"),
        (999, "transient"),
        (301, "transient"),
        (302, "transient"),
        (304, "transient"),
        (307, "transient"),
        (308, "transient"),
        (408, "transient"),
        (429, "transient"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (410, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
        (499, "permanent"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (599, "transient"),
    ],
)
def test_classify_http_status_follows_the_table(status, expected):
    assert classify_http_status(status) == expected


@pytest.mark.parametrize("status", ["200", 200.0, None, True])
def test_classify_http_status_rejects_non_integers(status):
    with pytest.raises(TypeError, match="status must be an int"):
        classify_http_status(status)


# --- parse_retry_after -----------------------------------------------------------

NOW = calendar.timegm((2015, 10, 21, 7, 28, 0))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (45, 45.0),
        ("+5", 5.0),
        ("-5", 0.0),
        ("-0", 0.0),
        ("3601", 3600.0),
        ("9" * 5000, 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),
        ("Wed Oct 21 07:29:00 2015", 60.0),
        ("Wed, 21 Oct 2015 07:20:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 09:28:00 +0100", 3600.0),
        ("Thu, 22 Oct 2015 07:28:00 GMT", 3600.0),
    ],
)
def test_parse_retry_after_reads_seconds_and_dates_and_clamps_them(value, expected):
    assert parse_retry_after(value, NOW, 3600) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "1.5",
        "12s",
        "0x10",
        "Wed, 99 Foo 2015",
        [],
        1.5,
        True,
    ],
)
def test_parse_retry_after_returns_none_for_garbage(value):
    assert parse_retry_after(value, NOW, 3600) is None


def test_parse_retry_after_with_a_zero_cap_always_gives_zero():
    assert parse_retry_after("120", NOW, 0) == 0.0


def test_parse_retry_after_rejects_a_negative_cap():
    with pytest.raises(ValueError, match="cap_seconds must be >= 0"):
        parse_retry_after("120", NOW, -1)


# --- properties ----------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=MAX_RETRIES_PER_PHASE)
delays = st.integers(min_value=0, max_value=MAX_DELAY_SECONDS)


@st.composite
def policies(draw):
    low, high = sorted((draw(delays), draw(delays)))
    return RetryPolicy(
        retries_with_no_delay=draw(counts),
        minimum_delay_retries=draw(counts),
        minimum_delay=low,
        maximum_delay=high,
        maximum_delay_retries=draw(counts),
        retry_backoff_function=draw(st.sampled_from(BACKOFF_FUNCTIONS)),
        backoff_retries=draw(counts),
    )


@given(policies())
def test_every_schedule_has_total_retries_entries_within_bounds(policy):
    schedule = policy.delays()
    assert len(schedule) == policy.total_retries
    assert all(0 <= d <= policy.maximum_delay for d in schedule)


@given(policies())
def test_every_schedule_never_decreases_and_its_backoff_phase_spans_min_to_max(policy):
    schedule = policy.delays()
    assert is_non_decreasing(schedule)
    start = policy.retries_with_no_delay + policy.minimum_delay_retries
    backoff = schedule[start : start + policy.backoff_retries]
    assert all(policy.minimum_delay <= d <= policy.maximum_delay for d in backoff)
    if len(backoff) >= 2:
        assert (backoff[0], backoff[-1]) == (policy.minimum_delay, policy.maximum_delay)


@given(policies(), st.integers(min_value=1, max_value=4 * MAX_RETRIES_PER_PHASE + 2))
def test_next_delay_agrees_with_the_schedule(policy, retry_number):
    schedule = policy.delays()
    expected = schedule[retry_number - 1] if retry_number <= len(schedule) else None
    assert policy.next_delay(retry_number) == expected


@given(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=0, max_value=MAX_DELAY_SECONDS),
)
def test_parse_retry_after_always_lands_within_zero_and_the_cap(seconds, cap):
    assert 0 <= parse_retry_after(str(seconds), NOW, cap) <= cap
