"""Bounded filter evaluation (issue 16, item 7): sorted ranges for numeric and
cidr, a cap on values per key, the worst-case cost of a policy and the
per-fan-out budget that fails closed. Pure parts, checked exhaustively or
against the plain linear definitions."""

import ipaddress
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.core import filtering
from notifier.core.filtering.operators import BUILDERS, TRUE, Ranges, numeric_bounds, scalar
from notifier.core.matching import match_within, matching_pairs

BODY = "MessageBody"


# -- numeric: sorted ranges against the linear definition ------------------------------


def linear_numeric(bounds, v):
    return any(
        (low < v or (low_inc and v == low)) and (v < high or (high_inc and v == high))
        for low, low_inc, high, high_inc in bounds
    )


EXPRESSIONS = [
    ["<", 0],
    ["<=", 0],
    [">", 0],
    [">=", 0],
    ["=", 0],
    [">", 0, "<", 1],
    [">=", 0, "<=", 1],
    [">", 0, "<=", 1],
    [">=", 0, "<", 1],
    [">", 1, "<", 2],
    [">=", 1, "<=", 2],
    [">", -1, "<", 0.5],
    [">=", 2, "<", 3],
    [">", 0.5, "<=", 2],
]
POINTS = [-math.inf, -2, -1, -0.5, 0, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, math.inf]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_numeric_ranges_agree_with_the_linear_check_for_every_combination(count):
    for combination in itertools.combinations(EXPRESSIONS, count):
        bounds = [numeric_bounds(e) for e in combination]
        check = BUILDERS["numeric"](bounds)
        for v in POINTS:
            assert check(float(v)) == linear_numeric(bounds, float(v)), (combination, v)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-20, 20), st.booleans(), st.integers(-20, 20), st.booleans()).filter(
            lambda b: b[0] < b[2]
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.integers(-25, 25).map(lambda i: i / 2), min_size=1, max_size=30),
)
def test_numeric_ranges_agree_with_the_linear_check_on_random_bounds(raw, values):
    bounds = [(float(a), ai, float(b), bi) for a, ai, b, bi in raw]
    check = BUILDERS["numeric"](bounds)
    for v in values:
        assert check(float(v)) == linear_numeric(bounds, float(v))


def test_numeric_matches_numbers_only():
    check = BUILDERS["numeric"]([numeric_bounds([">=", 0])])
    assert not check("5") and not check(TRUE)


def test_ranges_merge_overlaps_and_keep_gaps():
    ranges = Ranges([(5, 7), (1, 3), (2, 4), (10, 10)])
    assert (ranges.lows, ranges.highs) == ([1, 5, 10], [4, 7, 10])
    assert [v for v in range(12) if ranges.contains(v)] == [1, 2, 3, 4, 5, 6, 7, 10]
    assert not Ranges([]).contains(1)


# -- cidr: sorted ranges against ipaddress membership ----------------------------------


NETWORKS = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.1.0/24",
    "192.168.1.128/25",
    "192.168.2.0/31",
    "203.0.113.7/32",
    "0.0.0.0/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::1/128",
    "::ffff:0:0/96",
]


def edges(network):
    net = ipaddress.ip_network(network)
    first, last = int(net.network_address), int(net.broadcast_address)
    top = 2**32 - 1 if net.version == 4 else 2**128 - 1
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    return [
        str(cls(n))
        for n in (first - 1, first, first + 1, last - 1, last, last + 1)
        if 0 <= n <= top
    ]


ADDRESSES = sorted({a for n in NETWORKS for a in edges(n)}) + [
    "::ffff:10.0.0.1",
    "010.0.0.1",
    "10.0.0",
    "10.0.0.1 ",
    "not an ip",
    "",
    "fe80::1%eth0",
]


def linear_cidr(networks, text):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_cidr_ranges_agree_with_ipaddress_for_every_combination(count):
    for combination in itertools.combinations([n for n in NETWORKS if n != "0.0.0.0/0"], count):
        check = BUILDERS["cidr"](list(combination))
        for text in ADDRESSES:
            assert check(text) == linear_cidr(combination, text), (combination, text)


def test_cidr_with_everything_and_non_strings():
    check = BUILDERS["cidr"](["0.0.0.0/0"])
    assert check("255.255.255.255") and check("0.0.0.0")
    assert not check("::1") and not check(167772161.0) and not check(None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 32)), min_size=1, max_size=40),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40),
)
def test_cidr_ranges_agree_with_ipaddress_on_random_networks(raw, addresses):
    networks = [str(ipaddress.ip_network((a, bits), strict=False)) for a, bits in raw]
    check = BUILDERS["cidr"](networks)
    for number in addresses:
        text = str(ipaddress.IPv4Address(number))
        assert check(text) == linear_cidr(networks, text)


# -- values per key, huge integers ---------------------------------------------------------


def test_a_key_keeps_its_first_values_up_to_the_cap():
    cap = filtering.MAX_VALUES_PER_KEY
    body = {"a": list(range(cap + 50)), "b": {"c": ["x"] * (cap + 1)}, "d": 1}
    view = filtering.prepare_message(None, body).body_view
    assert view[("a",)] == tuple(float(n) for n in range(cap))
    assert len(view[("b", "c")]) == cap and view[("d",)] == (1.0,)
    # so a value past the cap cannot match
    assert not filtering.matches({"a": [float(cap + 10)]}, None, body, BODY)
    assert filtering.matches({"a": [float(cap - 1)]}, None, body, BODY)


def test_attribute_arrays_are_capped_too():
    cap = filtering.MAX_VALUES_PER_KEY
    attribute = {"DataType": "String.Array", "StringValue": str(list(range(cap + 5)))}
    view = filtering.prepare_message({"k": attribute}, None).attribute_view
    assert len(view["k"]) == cap


def test_an_integer_too_large_for_a_double_is_an_infinity_not_a_crash():
    assert scalar(10**400) == math.inf and scalar(-(10**400)) == -math.inf
    body = {"n": 10**400}
    assert filtering.matches({"n": [{"exists": True}]}, None, body, BODY)
    # no finite range holds it (ranges are open at infinity)
    assert not filtering.matches({"n": [{"numeric": ["<", 0]}]}, None, body, BODY)
    assert not filtering.matches({"n": [{"numeric": [">", 0, "<", 10]}]}, None, body, BODY)


# -- the worst-case cost of a policy ------------------------------------------------------


@pytest.mark.parametrize(
    "policy, body, cost",
    [
        ({"a": ["x"]}, {"a": ["x", "y", "z"]}, 1 + 1 * 3),
        ({"a": ["x", {"prefix": "p"}]}, {"a": ["x", "y"]}, 1 + 2 * 2),
        ({"a": [{"prefix": "p"}, {"suffix": "s"}, {"cidr": "10.0.0.0/8"}]}, {"a": "v"}, 1 + 4),
        ({"a": [{"exists": True}]}, {"a": [1, 2]}, 1 + 1 * 2),
        ({"a": ["x"]}, {"b": 1}, 1),
        ({"a": ["x"], "b": {"c": [1]}}, {"a": "x", "b": {"c": [1, 2]}}, (1 + 1) + (1 + 2)),
        ({"$or": [{"a": ["x"]}, {"a": [{"prefix": "p"}]}]}, {"a": [1, 2]}, (1 + 2) + (1 + 4)),
        ({"a": ["x"]}, "not json", 1),
    ],
)
def test_the_cost_counts_values_times_operator_families(policy, body, cost):
    matcher = filtering.compile_policy(policy, BODY)
    assert matcher.cost(filtering.prepare_message(None, body)) == cost


def test_a_policy_costs_no_more_than_its_keys_times_the_cap():
    policy = {"a": [{"cidr": f"10.{i}.0.0/16"} for i in range(150)]}
    body = {"a": [f"11.0.{i // 256}.{i % 256}" for i in range(20000)]}
    matcher = filtering.compile_policy(policy, BODY)
    assert matcher.cost(filtering.prepare_message(None, body)) == 1 + 2 * (
        filtering.MAX_VALUES_PER_KEY
    )


# -- the budget of a fan-out ---------------------------------------------------------------


def message(mid, body, tags=None):
    return {"id": mid, "body": body, "filter_policies": tags}


def subscription(sid, policy=None, tags=None, confirmed=True):
    options = {}
    if policy is not None:
        options.update(filter_policy=policy, filter_policy_scope=BODY)
    if tags is not None:
        options["filter_policies"] = tags
    return {"id": sid, "options": options, "confirmed": confirmed}


def ids(pairs):
    return [(m["id"], s["id"]) for m, s in pairs]


def test_without_a_budget_every_policy_is_evaluated_as_before():
    messages = [message("m1", {"a": "x"}), message("m2", {"a": "y"})]
    subscriptions = [subscription("s1"), subscription("s2", {"a": ["y"]})]
    pairs, skipped = match_within(messages, subscriptions)
    assert (
        ids(pairs)
        == [("m1", "s1"), ("m2", "s1"), ("m2", "s2")]
        == ids(matching_pairs(messages, subscriptions))
    )
    assert skipped == []


def test_the_costliest_evaluations_are_the_ones_skipped_and_say_why():
    big = {"a": [str(i) for i in range(100)], "b": "x"}
    messages = [message("m1", big)]
    subscriptions = [
        subscription("costly", {"a": [{"prefix": "zz"}, {"suffix": "zz"}]}),  # 1 + 3 * 100
        subscription("plain"),  # no filter: free
        subscription("cheap", {"b": ["x"]}),  # 1 + 1
        subscription("unconfirmed", {"b": ["x"]}, confirmed=False),
    ]
    pairs, skipped = match_within(messages, subscriptions, budget=100)
    assert ids(pairs) == [("m1", "plain"), ("m1", "cheap")]
    [(skipped_message, skipped_subscription, reason)] = skipped
    assert (skipped_message["id"], skipped_subscription["id"]) == ("m1", "costly")
    assert "301 units" in reason and "98 of the fan-out's 100" in reason


def test_the_budget_is_spent_exactly_and_shared_by_the_fanout():
    messages = [message(f"m{i}", {"b": "x"}) for i in range(3)]
    subscriptions = [subscription("s", {"b": ["x"]})]  # 2 units per message
    pairs, skipped = match_within(messages, subscriptions, budget=6)
    assert len(pairs) == 3 and skipped == []
    pairs, skipped = match_within(messages, subscriptions, budget=5)
    assert ids(pairs) == [("m0", "s"), ("m1", "s")]
    assert [(m["id"], s["id"]) for m, s, _ in skipped] == [("m2", "s")]


def test_a_skipped_evaluation_fails_closed_even_when_it_would_match():
    messages = [message("m1", {"a": ["x"] * 50})]
    pairs, skipped = match_within(messages, [subscription("s", {"a": ["x"]})], budget=10)
    assert pairs == [] and len(skipped) == 1


def test_tags_that_do_not_match_cost_nothing():
    messages = [message("m1", {"a": ["x"] * 50}, tags=["red"])]
    subscriptions = [subscription("blue", {"a": ["x"]}, tags=["blue"])]
    assert match_within(messages, subscriptions, budget=1) == ([], [])


def test_the_pairs_keep_subscription_then_message_order_whatever_the_costs():
    messages = [message("m1", {"a": ["x"] * 5}), message("m2", {"a": "x"})]
    subscriptions = [subscription("s1", {"a": ["x"]}), subscription("s2")]
    pairs, _ = match_within(messages, subscriptions, budget=1000)
    assert ids(pairs) == [("m1", "s1"), ("m2", "s1"), ("m1", "s2"), ("m2", "s2")]
