"""Explain: why a filter policy (and a subscription) does not take a message.

``Matcher.explain`` walks the same compiled checks as ``matches_prepared``;
the property tests hold it to that: it reports a miss exactly when the
message does not match, and the key it names fails on its own.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.core import filtering, matching
from notifier.core.filtering import compile_policy, prepare_message

KEYS = ("a", "b", "c")
VALUES = st.one_of(
    st.sampled_from(["x", "y", "xyz", "10.0.0.1"]), st.integers(-3, 3), st.booleans(), st.none()
)
RULES = st.one_of(
    st.sampled_from(["x", "y", "xyz"]),
    st.integers(-3, 3),
    st.sampled_from(
        [
            {"prefix": "x"},
            {"suffix": "z"},
            {"exists": True},
            {"exists": False},
            {"anything-but": "x"},
            {"numeric": [">", 0]},
            {"numeric": ["<=", 1]},
            {"equals-ignore-case": "Y"},
            {"cidr": "10.0.0.0/8"},
        ]
    ),
)
LEAVES = st.dictionaries(
    st.sampled_from(KEYS), st.lists(RULES, min_size=1, max_size=3), min_size=1, max_size=3
)
POLICIES = st.one_of(
    LEAVES,
    st.builds(
        lambda base, branches: dict(base, **{"$or": branches}),
        st.dictionaries(st.sampled_from(KEYS), st.lists(RULES, min_size=1, max_size=2), max_size=1),
        st.lists(LEAVES, min_size=2, max_size=3),
    ),
    st.builds(lambda inner: {"n": inner}, LEAVES),
)
BODIES = st.dictionaries(
    st.sampled_from(KEYS + ("n",)),
    st.one_of(VALUES, st.lists(VALUES, max_size=2), st.dictionaries(st.sampled_from(KEYS), VALUES)),
    max_size=4,
)


def body_matcher(policy):
    return compile_policy(policy, filtering.BODY)


def sub_policy(policy, label):
    """The one-key policy of a dotted body label."""
    *outer, last = label.split(".")
    node = policy
    for key in outer:
        node = node[key]
    result = {last: node[last]}
    for key in reversed(outer):
        result = {key: result}
    return result


@settings(max_examples=400, deadline=None)
@given(POLICIES, BODIES)
def test_explain_reports_a_miss_exactly_when_the_message_does_not_match(policy, body):
    matcher = body_matcher(policy)
    prepared = prepare_message({}, body)

    miss = matcher.explain(prepared)

    assert (miss is None) == matcher.matches_prepared(prepared)
    if miss is not None and not miss.branches and "$or" not in miss.label:
        # The key it names fails on its own.
        assert not body_matcher(sub_policy(policy, miss.label)).matches({}, body)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(KEYS), st.lists(RULES, min_size=1, max_size=2), min_size=1),
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["x", "y", "xyz", "10.0.0.1"])),
)
def test_explain_agrees_with_matches_on_message_attributes(policy, values):
    matcher = compile_policy(policy)
    attributes = {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}
    prepared = prepare_message(attributes)

    miss = matcher.explain(prepared)

    assert (miss is None) == matcher.matches_prepared(prepared)
    if miss is not None:
        assert not compile_policy({miss.label: policy[miss.label]}).matches(attributes)


def test_the_failing_key_and_the_messages_values_are_named():
    matcher = body_matcher({"kind": ["order"], "total": [{"numeric": [">", 100]}]})

    miss = matcher.explain(prepare_message({}, {"kind": "order", "total": 5}))

    assert miss.label == "total" and miss.values == (5.0,)
    assert matcher.explain(prepare_message({}, {"kind": "order", "total": 500})) is None


def test_a_missing_key_has_no_values():
    miss = body_matcher({"kind": ["order"]}).explain(prepare_message({}, {"other": 1}))

    assert miss.label == "kind" and miss.values is None


def test_nested_keys_are_dotted_paths():
    miss = body_matcher({"order": {"region": ["eu"]}}).explain(
        prepare_message({}, {"order": {"region": "us"}})
    )

    assert miss.label == "order.region" and miss.values == ("us",)


def test_an_or_reports_each_branch():
    policy = {"$or": [{"a": ["x"]}, {"b": [{"prefix": "q"}]}]}

    miss = body_matcher(policy).explain(prepare_message({}, {"a": "y", "b": "zz"}))

    assert miss.label == "$or"
    assert [m.label for m in miss.branches] == ["a", "b"]


def test_a_body_that_is_not_a_json_object_fails_a_body_policy():
    miss = body_matcher({"a": ["x"]}).explain(prepare_message({}, "plain text"))

    assert miss.label == filtering.BODY


def test_no_policy_never_misses():
    assert compile_policy(None).explain(prepare_message({}, {})) is None


def subscription(**changes):
    record = {"id": "s1", "confirmed": True, "options": {}}
    options = changes.pop("options", {})
    record["options"].update(options)
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("record", "tags", "body", "matches", "failed", "fragment"),
    [
        (subscription(), None, {}, True, None, "matches"),
        (subscription(confirmed=False), None, {}, False, None, "unconfirmed"),
        (subscription(disabled=True), None, {}, True, None, "paused"),
        (
            subscription(options={"filter_policies": ["red"]}),
            ["blue"],
            {},
            False,
            "filter_policies",
            "tags",
        ),
        (
            subscription(options={"filter_policies": ["red"]}),
            None,
            {},
            False,
            "filter_policies",
            "none",
        ),
        (
            subscription(
                options={"filter_policy": {"kind": ["order"]}, "filter_policy_scope": "MessageBody"}
            ),
            None,
            {"kind": "refund"},
            False,
            "kind",
            "'refund'",
        ),
        (
            subscription(options={"filter_policy": {"kind": ["order"]}}),
            None,
            {"kind": "order"},
            False,
            "kind",
            "no such key",
        ),
    ],
)
def test_a_subscriptions_verdict(record, tags, body, matches, failed, fragment):
    verdict = matching.explain(record, tags, prepare_message({}, body))

    assert (verdict.matches, verdict.failed) == (matches, failed)
    assert fragment in verdict.reason


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda policy, tags, confirmed: subscription(
                confirmed=confirmed,
                options={
                    "filter_policy": policy,
                    "filter_policy_scope": "MessageBody",
                    "filter_policies": tags,
                },
            ),
            st.one_of(st.none(), LEAVES),
            st.one_of(st.none(), st.lists(st.sampled_from(["t1", "t2"]), max_size=2)),
            st.booleans(),
        ),
        max_size=4,
    ),
    BODIES,
    st.one_of(st.none(), st.lists(st.sampled_from(["t1", "t2"]), max_size=2)),
)
def test_explain_agrees_with_fan_out(subscriptions, body, tags):
    for index, record in enumerate(subscriptions):
        record["id"] = f"s{index}"
    message = {"body": body, "filter_policies": tags}

    delivered = {s["id"] for _, s in matching.matching_pairs([message], subscriptions)}
    explained = {
        s["id"]
        for s in subscriptions
        if matching.explain(s, tags, prepare_message({}, body)).matches
    }

    assert explained == delivered
