"""Tables and properties for notifier.core.filtering (tags and SNS filter policies)."""

import ipaddress
import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from notifier.core import filtering
from notifier.errors import ValidationError

ATTR, BODY = "MessageAttributes", "MessageBody"


def s(value):
    return {"DataType": "String", "StringValue": value}


def n(value):
    return {"DataType": "Number", "StringValue": str(value)}


def arr(*values):
    return {"DataType": "String.Array", "StringValue": json.dumps(list(values))}


def attr_match(policy, **attributes):
    return filtering.matches(policy, attributes, None, ATTR)


def body_match(policy, body):
    return filtering.matches(policy, None, body, BODY)


# -- tags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subscription, message, expected",
    [
        (None, None, True),
        (None, [], True),
        (None, ["a"], True),
        ([], None, True),
        ([], ["a"], True),
        (["a"], None, False),
        (["a"], [], False),
        (["a"], ["a"], True),
        (["a", "b"], ["b", "c"], True),
        (["a"], ["b"], False),
        (["a", "b"], ["c", "d"], False),
        (["A"], ["a"], False),
    ],
)
def test_tags_match_follows_the_zaqar_truth_table(subscription, message, expected):
    assert filtering.tags_match(subscription, message) is expected


@pytest.mark.parametrize("tags", [None, [], ["a"], ["x" * 256], ["t"] * 50])
def test_validate_tags_accepts_short_string_lists(tags):
    filtering.validate_tags(tags, field="options.filter_policies")


@pytest.mark.parametrize(
    "tags, fragment",
    [
        ("a", "must be a list"),
        ({"a": 1}, "must be a list"),
        ([1], "non-empty string"),
        ([None], "non-empty string"),
        ([""], "non-empty string"),
        (["x" * 257], "longer than 256"),
        (["t"] * 51, "At most 50 tags"),
    ],
)
def test_validate_tags_rejects_bad_lists_naming_the_field(tags, fragment):
    with pytest.raises(ValidationError) as info:
        filtering.validate_tags(tags, field="options.filter_policies")
    assert info.value.field == "options.filter_policies"
    assert fragment in info.value.description


# -- exact matching -------------------------------------------------------------------

RUGBY = {"interests": ["rugby", "tennis"]}


@pytest.mark.parametrize(
    "attribute, expected",
    [
        (s("rugby"), True),
        (s("tennis"), True),
        (s("baseball"), False),
        (s("Rugby"), False),
        (arr("rugby", "baseball"), True),
        (arr("baseball"), False),
        (arr(), False),
        ({"DataType": "String.Array", "StringValue": "not json"}, False),
        ({"DataType": "Binary", "BinaryValue": b"rugby"}, False),
        ({"Type": "String", "Value": "rugby"}, True),
        ({"DataType": "String.custom", "StringValue": "rugby"}, True),
        ("rugby", True),
        (["tennis", "golf"], True),
    ],
)
def test_exact_strings_match_attributes_of_any_string_form(attribute, expected):
    assert attr_match(RUGBY, interests=attribute) is expected


def test_a_missing_attribute_never_matches_an_exact_value():
    assert attr_match(RUGBY, other=s("rugby")) is False
    assert filtering.matches(RUGBY, None, None, ATTR) is False


@pytest.mark.parametrize(
    "policy_value, attribute, expected",
    [
        (5, n(5), True),
        (5, n("5.0"), True),
        (5, n("5e0"), True),
        (301.5, n("3.015e2"), True),
        (5, n(6), False),
        (5, s("5"), False),  # a String "5" is not the number 5
        ("5", n(5), False),  # nor is the number 5 the string "5"
        ("5", s("5"), True),
        (5, arr(5, 7), True),
        (5, arr("5"), False),
        (5, {"DataType": "Number", "StringValue": "five"}, False),
        (5, {"DataType": "Number.Array", "StringValue": "[1, 5]"}, True),
        (0, n("-0"), True),
        (1, {"DataType": "Number", "StringValue": "true"}, False),
    ],
)
def test_exact_numbers_compare_numerically_and_only_with_numbers(policy_value, attribute, expected):
    assert attr_match({"k": [policy_value]}, k=attribute) is expected


@pytest.mark.parametrize(
    "policy_value, body_value, expected",
    [
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (None, None, True),
        (None, "null", False),
        ("null", None, False),
        (None, [None, 1], True),
        (0, False, False),
        ("true", True, False),
    ],
)
def test_true_false_and_null_match_only_themselves_in_a_body(policy_value, body_value, expected):
    assert body_match({"k": [policy_value]}, {"k": body_value}) is expected


def test_null_matches_nothing_in_attributes_which_are_never_null():
    assert attr_match({"k": [None]}, k=s("null")) is False


# -- string operators -------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, value, expected",
    [
        ({"prefix": "bas"}, s("baseball"), True),
        ({"prefix": "bas"}, s("rugby"), False),
        ({"prefix": "bas"}, s("Baseball"), False),
        ({"prefix": ""}, s("anything"), True),
        ({"prefix": "1"}, n(12), False),
        ({"prefix": "bas"}, arr("rugby", "basket"), True),
        ({"suffix": "ball"}, s("football"), True),
        ({"suffix": "ball"}, s("rugby"), False),
        ({"suffix": "ball"}, arr("golf", "netball"), True),
        ({"suffix": "2"}, n(12), False),
        ({"equals-ignore-case": "RuGbY"}, s("rugby"), True),
        ({"equals-ignore-case": "rugby"}, s("RUGBY"), True),
        ({"equals-ignore-case": "rugby"}, s("rugby league"), False),
        ({"equals-ignore-case": "rugby"}, arr("Tennis", "RUGBY"), True),
    ],
)
def test_string_operators(rule, value, expected):
    assert attr_match({"k": [rule]}, k=value) is expected


@pytest.mark.parametrize("rule", [{"prefix": "a"}, {"suffix": "a"}, {"equals-ignore-case": "a"}])
def test_string_operators_never_match_a_missing_key(rule):
    assert attr_match({"k": [rule]}, other=s("a")) is False


# -- anything-but -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argument, value, expected",
    [
        ("rugby", s("rugby"), False),
        ("rugby", s("tennis"), True),
        (["rugby", "tennis"], s("baseball"), True),
        (["rugby", "tennis"], s("tennis"), False),
        (["rugby", "tennis"], arr("rugby", "baseball"), True),  # one element is not excluded
        (["rugby", "tennis"], arr("rugby", "tennis"), False),
        ([100, 500], n(101), True),
        ([100, 500], n(100), False),
        ([100, 500], n("1e2"), False),
        ([100, 500], {"DataType": "Number.Array", "StringValue": "[100, 50]"}, True),
        (100, s("100"), True),  # a string is never the number 100
        ({"prefix": "order-"}, s("order-cancelled"), False),
        ({"prefix": "order-"}, s("order_number"), True),
        ({"prefix": "order-"}, n(5), True),
        ({"suffix": ".tmp"}, s("a.tmp"), False),
        ({"suffix": ".tmp"}, s("a.txt"), True),
        ({"equals-ignore-case": "RED"}, s("red"), False),
        ({"equals-ignore-case": "RED"}, s("blue"), True),
    ],
)
def test_anything_but_matches_values_outside_the_pattern(argument, value, expected):
    assert attr_match({"k": [{"anything-but": argument}]}, k=value) is expected


@pytest.mark.parametrize("argument", ["x", ["x", "y"], 5, {"prefix": "x"}])
def test_anything_but_never_matches_a_missing_key(argument):
    assert attr_match({"k": [{"anything-but": argument}]}, other=s("z")) is False


def test_two_anything_but_rules_on_one_key_are_ored_like_any_other_rules():
    policy = {"k": [{"anything-but": "x"}, {"anything-but": {"prefix": "y"}}]}
    assert attr_match(policy, k=s("x")) is True  # x does not start with y
    assert attr_match(policy, k=s("yes")) is True  # yes is not x
    assert attr_match({"k": [{"anything-but": "x"}, {"anything-but": "x"}]}, k=s("x")) is False


def test_anything_but_or_exists_false_also_accepts_a_missing_key():
    policy = {"k": [{"anything-but": "x"}, {"exists": False}]}
    assert attr_match(policy) is True
    assert attr_match(policy, k=s("y")) is True
    assert attr_match(policy, k=s("x")) is False


# -- numeric ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, value, expected",
    [
        (["=", 301.5], n(301.5), True),
        (["=", 301.5], n("3.015e2"), True),
        (["=", 301.5], n(301.6), False),
        (["<", 0], n(-1), True),
        (["<", 0], n(0), False),
        (["<=", 0], n(0), True),
        ([">", 0], n(0), False),
        ([">", 0], n(0.00001), True),
        ([">=", 0], n(0), True),
        ([">", 0, "<=", 150], n(150), True),
        ([">", 0, "<=", 150], n(150.5), False),
        ([">", 0, "<=", 150], n(0), False),
        ([">=", 0, "<", 150], n(0), True),
        ([">=", 0, "<", 150], n(150), False),
        ([">", -5.5, "<", -1], n(-3), True),
        ([">", 0], s("5"), False),  # strings are not numbers
        ([">", 0], arr(-1, 3), True),
        ([">", 0], arr(-1, "3"), False),
        ([">", 0], n("abc"), False),
    ],
)
def test_numeric_comparisons(expression, value, expected):
    assert attr_match({"k": [{"numeric": expression}]}, k=value) is expected


def test_numeric_matches_json_numbers_in_a_body():
    policy = {"price": [{"numeric": [">", 0, "<=", 5]}]}
    assert body_match(policy, {"price": 5}) is True
    assert body_match(policy, {"price": 5.5}) is False
    assert body_match(policy, {"price": "5"}) is False
    assert body_match(policy, {"price": True}) is False


# -- exists ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, attributes, expected",
    [
        (True, {"store": s("fans")}, True),
        (True, {"store": s("")}, True),
        (True, {"other": s("x")}, False),
        (True, {}, False),
        (True, {"store": arr()}, False),  # an empty array carries no value
        (False, {"store": s("fans")}, False),
        (False, {"other": s("x")}, True),
        (False, {}, True),
    ],
)
def test_exists_checks_only_presence(flag, attributes, expected):
    assert filtering.matches({"store": [{"exists": flag}]}, attributes, None, ATTR) is expected


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"a": {"b": 1}}, True),
        ({"a": {"b": None}}, True),
        ({"a": {"b": []}}, False),
        ({"a": {"c": 1}}, False),
        ({"a": 1}, False),
        ({"a": {"b": {"c": 1}}}, False),  # exists works on leaves only
    ],
)
def test_exists_true_on_nested_body_keys(body, expected):
    assert body_match({"a": {"b": [{"exists": True}]}}, body) is expected


def test_exists_true_and_false_together_accept_everything():
    policy = {"k": [{"exists": True}, {"exists": False}]}
    assert attr_match(policy) is True
    assert attr_match(policy, k=s("x")) is True


# -- cidr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cidr, address, expected",
    [
        ("10.0.0.0/24", "10.0.0.0", True),
        ("10.0.0.0/24", "10.0.0.255", True),
        ("10.0.0.0/24", "10.1.1.0", False),
        ("10.0.0.7/24", "10.0.0.9", True),
        ("0.0.0.0/0", "192.168.1.1", True),
        ("2001:db8::/32", "2001:db8::1", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("2001:db8::/32", "10.0.0.1", False),
        ("10.0.0.0/8", "2001:db8::1", False),
        ("10.0.0.0/8", "not an ip", False),
    ],
)
def test_cidr_matches_ipv4_and_ipv6_addresses(cidr, address, expected):
    assert attr_match({"ip": [{"cidr": cidr}]}, ip=s(address)) is expected


def test_cidr_ignores_numbers_and_matches_any_array_element():
    assert attr_match({"ip": [{"cidr": "10.0.0.0/8"}]}, ip=n(10)) is False
    assert attr_match({"ip": [{"cidr": "10.0.0.0/8"}]}, ip=arr("x", "10.2.3.4")) is True


# -- AND / OR -------------------------------------------------------------------


def test_keys_are_anded_and_values_within_a_key_are_ored():
    policy = {"interests": ["rugby", {"prefix": "foot"}], "price": [{"numeric": [">", 100]}]}
    assert attr_match(policy, interests=s("football"), price=n(101)) is True
    assert attr_match(policy, interests=s("rugby"), price=n(101)) is True
    assert attr_match(policy, interests=s("rugby"), price=n(100)) is False
    assert attr_match(policy, interests=s("golf"), price=n(101)) is False
    assert attr_match(policy, interests=s("rugby")) is False


OR_POLICY = {
    "source": ["aws.cloudwatch"],
    "$or": [
        {"metricName": ["CPUUtilization", "ReadLatency"]},
        {"namespace": ["AWS/EC2"], "$or": [{"id": [1234]}, {"spot": ["true"]}]},
    ],
}


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"source": s("aws.cloudwatch"), "metricName": s("ReadLatency")}, True),
        ({"source": s("aws.cloudwatch"), "namespace": s("AWS/EC2"), "id": n(1234)}, True),
        ({"source": s("aws.cloudwatch"), "namespace": s("AWS/EC2"), "spot": s("true")}, True),
        ({"source": s("aws.cloudwatch"), "namespace": s("AWS/EC2")}, False),
        ({"source": s("aws.cloudwatch"), "id": n(1234)}, False),
        ({"source": s("other"), "metricName": s("ReadLatency")}, False),
        ({"metricName": s("ReadLatency")}, False),
    ],
)
def test_or_at_top_level_and_nested_inside_a_branch(attributes, expected):
    assert filtering.matches(OR_POLICY, attributes, None, ATTR) is expected


def test_or_inside_a_nested_body_object_keeps_the_parent_path():
    policy = {"order": {"$or": [{"kind": ["refund"]}, {"total": [{"numeric": [">", 99]}]}]}}
    assert body_match(policy, {"order": {"kind": "refund"}}) is True
    assert body_match(policy, {"order": {"total": 100}}) is True
    assert body_match(policy, {"order": {"total": 5}}) is False
    assert body_match(policy, {"kind": "refund"}) is False


# -- body scope ------------------------------------------------------------------

NESTED = {"customer": {"tier": ["gold"], "address": {"country": ["NL", "BE"]}}}


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"customer": {"tier": "gold", "address": {"country": "NL"}}}, True),
        ({"customer": {"tier": "gold", "address": {"country": ["DE", "BE"]}}}, True),
        ({"customer": {"tier": "gold", "address": {"country": "DE"}}}, False),
        ({"customer": {"tier": "gold"}}, False),
        ({"customer": [{"tier": "gold"}, {"address": {"country": "NL"}}]}, True),
        ({"tier": "gold", "country": "NL"}, False),
        (json.dumps({"customer": {"tier": "gold", "address": {"country": "BE"}}}), True),
        ("not json", False),
        ("[1, 2]", False),
        (["gold"], False),
        (None, False),
    ],
)
def test_body_policies_mirror_the_body_nesting(body, expected):
    assert body_match(NESTED, body) is expected


def test_body_scope_ignores_attributes_and_attribute_scope_ignores_the_body():
    policy = {"k": ["v"]}
    assert filtering.matches(policy, {"k": s("v")}, {"k": "x"}, BODY) is False
    assert filtering.matches(policy, {"k": s("x")}, {"k": "v"}, ATTR) is False


def test_a_body_array_matches_if_any_element_matches():
    assert body_match({"tags": ["b"]}, {"tags": ["a", "b"]}) is True
    assert body_match({"tags": ["b"]}, {"tags": [["a"], ["b"]]}) is True
    assert body_match({"tags": ["c"]}, {"tags": ["a", "b"]}) is False


def test_exists_false_on_a_body_that_is_not_an_object_does_not_match():
    assert body_match({"k": [{"exists": False}]}, "plain text") is False
    assert body_match({"k": [{"exists": False}]}, {"other": 1}) is True


# -- no policy -------------------------------------------------------------------


@pytest.mark.parametrize("policy", [None, {}, "", "{}"])
@pytest.mark.parametrize("scope", [ATTR, BODY])
def test_no_policy_matches_every_message(policy, scope):
    assert filtering.matches(policy, None, "plain text", scope) is True
    if isinstance(policy, str):
        assert filtering.compiled(policy, scope).matches(None, "plain text") is True
    else:
        assert filtering.compile_policy(policy, scope).matches(None, "plain text") is True


def test_matches_accepts_policy_json_text():
    assert filtering.matches('{"k": ["v"]}', {"k": s("v")}) is True
    assert filtering.matches('{"k": ["v"]}', {"k": s("w")}) is False


# -- compile and cache -------------------------------------------------------------


def test_compiled_is_memoised_on_the_json_text_and_scope():
    text = filtering.canonical_json({"b": ["x"], "a": [1]})
    assert text == '{"a":[1],"b":["x"]}'
    assert filtering.compiled(text, ATTR) is filtering.compiled(text, ATTR)
    assert filtering.compiled(text, ATTR) is not filtering.compiled(text, BODY)


def test_compiled_rejects_text_that_is_not_json():
    with pytest.raises(ValidationError) as info:
        filtering.compiled("{not json", ATTR)
    assert info.value.field == "options.filter_policy"
    assert "not valid JSON" in info.value.description


def test_a_prepared_message_gives_the_same_answer_as_a_raw_one():
    matcher = filtering.compile_policy({"k": [{"prefix": "v"}]}, ATTR)
    message = filtering.prepare_message({"k": s("value")}, None)
    assert matcher.matches_prepared(message) is True
    assert matcher.matches({"k": s("value")}) is True
    assert matcher.scope == ATTR


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, scope, fragment, key",
    [
        ({"k": "v"}, ATTR, '"k" must be an object or an array', "k"),
        ({"k": 5}, ATTR, "must be an object or an array", "k"),
        ({"k": []}, ATTR, "Empty arrays are not allowed", "k"),
        ({"k": {}}, BODY, "Empty objects are not allowed", "k"),
        ({"k": {"n": ["v"]}}, ATTR, "MessageAttributes does not support nested", "k"),
        ({"k": [["v"]]}, ATTR, "Match value must be String, number, true, false, or null", "k"),
        ({"k": [{"a": 1, "b": 2}]}, ATTR, "Only one key allowed in match expression", "k"),
        ({"k": [{}]}, ATTR, "Only one key allowed in match expression", "k"),
        ({"k": [{"regex": ".*"}]}, ATTR, "Unrecognized match type regex", "k"),
        ({"k": [{"$or": []}]}, ATTR, "Unrecognized match type $or", "k"),
        ({"k": [{"prefix": 5}]}, ATTR, "prefix match pattern must be a string", "k"),
        ({"k": [{"suffix": None}]}, ATTR, "suffix match pattern must be a string", "k"),
        (
            {"k": [{"equals-ignore-case": ["a"]}]},
            ATTR,
            "equals-ignore-case match pattern must be a string",
            "k",
        ),
        (
            {"k": [{"exists": "yes"}]},
            ATTR,
            "exists match pattern must be either true or false.",
            "k",
        ),
        (
            {"k": [{"anything-but": True}]},
            ATTR,
            "Value of anything-but must be an array or single string/number value.",
            "k",
        ),
        (
            {"k": [{"anything-but": [None]}]},
            ATTR,
            "Inside anything but list, start|null|boolean is not supported.",
            "k",
        ),
        ({"k": [{"anything-but": []}]}, ATTR, "Empty arrays are not allowed", "k"),
        (
            {"k": [{"anything-but": {"numeric": [">", 1]}}]},
            ATTR,
            "Unsupported anything-but pattern: numeric",
            "k",
        ),
        (
            {"k": [{"anything-but": {"prefix": 1}}]},
            ATTR,
            "prefix match pattern must be a string",
            "k",
        ),
        ({"k": [{"numeric": 5}]}, ATTR, "Value of numeric must be an array.", "k"),
        ({"k": [{"numeric": []}]}, ATTR, "Value of numeric must be an array.", "k"),
        ({"k": [{"numeric": [5]}]}, ATTR, "Invalid member in numeric match: 5", "k"),
        ({"k": [{"numeric": ["!=", 5]}]}, ATTR, "Unrecognized numeric range operator: !=", "k"),
        ({"k": [{"numeric": ["=", "5"]}]}, ATTR, "Value of equals must be numeric", "k"),
        ({"k": [{"numeric": [">"]}]}, ATTR, "Value of > must be numeric", "k"),
        ({"k": [{"numeric": ["<", True]}]}, ATTR, "Value of < must be numeric", "k"),
        (
            {"k": [{"numeric": ["=", 1, "<", 5]}]},
            ATTR,
            "Too many elements in numeric expression",
            "k",
        ),
        (
            {"k": [{"numeric": ["<", 1, ">", 0]}]},
            ATTR,
            "Too many elements in numeric expression",
            "k",
        ),
        ({"k": [{"numeric": [">", 1, ">", 5]}]}, ATTR, "Bad numeric range operator: >", "k"),
        ({"k": [{"numeric": [">", 1, 5]}]}, ATTR, "Bad value in numeric range: 5", "k"),
        ({"k": [{"numeric": [">", 1, ["<"], 5]}]}, ATTR, "Bad value in numeric range", "k"),
        ({"k": [{"numeric": [">", 5, "<", 5]}]}, ATTR, "Bottom must be less than top", "k"),
        (
            {"k": [{"numeric": [">", 0, "<", 5, 6]}]},
            ATTR,
            "Too many terms in numeric range expression",
            "k",
        ),
        ({"k": [{"cidr": 10}]}, ATTR, "cidr match pattern must be a string", "k"),
        ({"k": [{"cidr": "10.0.0.0"}]}, ATTR, "Malformed CIDR, one '/' required", "k"),
        ({"k": [{"cidr": "10.0.0.0/8/8"}]}, ATTR, "Malformed CIDR, one '/' required", "k"),
        (
            {"k": [{"cidr": "10.0.0.0/x"}]},
            ATTR,
            "Malformed CIDR, mask bits must be an integer",
            "k",
        ),
        ({"k": [{"cidr": "10.0.0.300/8"}]}, ATTR, "Nonstandard IP address: 10.0.0.300", "k"),
        ({"k": [{"cidr": "10.0.0.0/33"}]}, ATTR, "Nonstandard IP address", "k"),
        ({"$or": [{"a": ["x"]}]}, ATTR, '"$or" must be an array of at least two', "$or"),
        ({"$or": {"a": ["x"]}}, ATTR, '"$or" must be an array', "$or"),
        ({"$or": [{"a": ["x"]}, {}]}, ATTR, "non-empty objects", "$or"),
        ({"$or": [{"a": ["x"]}, {"b": [{"bad": 1}]}]}, ATTR, "Unrecognized match type bad", "b"),
        ({"a": {"b": {"c": [{"numeric": ["<"]}]}}}, BODY, "Value of < must be numeric", "a.b.c"),
    ],
)
def test_invalid_policies_are_rejected_naming_the_field_and_key(policy, scope, fragment, key):
    with pytest.raises(ValidationError) as info:
        filtering.validate_policy(policy, scope)
    assert info.value.field == "options.filter_policy"
    assert fragment in info.value.description
    assert f'(key "{key}")' in info.value.description


@pytest.mark.parametrize("policy", ["{}", ["k"], 5])
def test_a_policy_must_be_a_json_object(policy):
    with pytest.raises(ValidationError) as info:
        filtering.validate_policy(policy, ATTR)
    assert info.value.description == "Filter policy must be a JSON object"


@pytest.mark.parametrize("scope", [None, "Body", "messageattributes"])
def test_an_unknown_scope_is_rejected_on_the_scope_field(scope):
    with pytest.raises(ValidationError) as info:
        filtering.validate_policy({"k": ["v"]}, scope)
    assert info.value.field == "options.filter_policy_scope"


def test_validation_errors_use_the_given_field():
    with pytest.raises(ValidationError) as info:
        filtering.validate_policy({"k": []}, ATTR, field="filter_policy")
    assert info.value.field == "filter_policy"


def keys(count, values=1):
    return {f"k{i}": [f"v{j}" for j in range(values)] for i in range(count)}


@pytest.mark.parametrize(
    "policy, scope",
    [
        (keys(5), ATTR),
        (keys(2, values=12), ATTR),  # 144
        ({"a": {"b": ["x"], "c": {"d": ["y"], "e": ["z"]}}, "f": ["w"], "g": ["v"]}, BODY),
        ({"k0": ["x"], "$or": [keys(4), keys(4)]}, ATTR),  # 5 per branch
        ({"a": ["x"] * 10, "$or": [{"b": ["y"] * 7}, {"c": ["z"] * 8}]}, ATTR),  # 10 * 15
        ({"k": ["x" * 250_000]}, ATTR),
    ],
)
def test_policies_at_the_limits_are_accepted(policy, scope):
    filtering.validate_policy(policy, scope)


@pytest.mark.parametrize(
    "policy, scope, message",
    [
        (keys(6), ATTR, "Filter policy can not have more than 5 keys"),
        (
            {"a": {"b": ["x"], "c": {"d": ["y"], "e": ["z"]}}, "f": ["w"], "g": ["v"], "h": ["u"]},
            BODY,
            "Filter policy can not have more than 5 keys",
        ),
        (
            {"k0": ["x"], "$or": [keys(4), keys(5)]},
            ATTR,
            "Filter policy can not have more than 5 keys",
        ),
        (keys(3, values=6), ATTR, "Filter policy is too complex"),  # 216
        (
            {"a": ["x"] * 10, "$or": [{"b": ["y"] * 8}, {"c": ["z"] * 8}]},
            ATTR,
            "Filter policy is too complex",
        ),  # 10 * 16
        ({"k": ["x" * 270_000]}, ATTR, "Filter policy can not be larger than 256 KB"),
    ],
)
def test_policies_over_the_limits_are_rejected(policy, scope, message):
    with pytest.raises(ValidationError) as info:
        filtering.validate_policy(policy, scope)
    assert info.value.description == message
    assert info.value.field == "options.filter_policy"


def test_compile_policy_validates_first():
    with pytest.raises(ValidationError):
        filtering.compile_policy({"k": [{"nope": 1}]}, ATTR)


# -- properties -------------------------------------------------------------------
# A deliberately naive interpreter of the same semantics, to check the compiled,
# optimised matcher against.


def _same(policy_value, value):
    if (
        policy_value is None
        or isinstance(policy_value, bool)
        or value is None
        or isinstance(value, bool)
    ):
        return policy_value is value
    if isinstance(policy_value, str) or isinstance(value, str):
        return policy_value == value and type(policy_value) is type(value)
    return float(policy_value) == float(value)


def _is_num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_ok(expression, value):
    compare = {
        "=": float.__eq__,
        "<": float.__lt__,
        "<=": float.__le__,
        ">": float.__gt__,
        ">=": float.__ge__,
    }
    pairs = zip(expression[::2], expression[1::2])
    return _is_num(value) and all(compare[op](float(value), float(x)) for op, x in pairs)


def _value_ok(rule, value):
    if not isinstance(rule, dict):
        return _same(rule, value)
    ((op, arg),) = rule.items()
    text = isinstance(value, str)
    if op == "prefix":
        return text and value.startswith(arg)
    if op == "suffix":
        return text and value.endswith(arg)
    if op == "equals-ignore-case":
        return text and value.lower() == arg.lower()
    if op == "numeric":
        return _numeric_ok(arg, value)
    if op == "cidr":
        return (
            text
            and value.count(".") == 3
            and ipaddress.ip_address(value) in ipaddress.ip_network(arg, strict=False)
        )
    if isinstance(arg, dict):  # anything-but with an inner pattern
        return not _value_ok(arg, value)
    return not any(_same(x, value) for x in (arg if isinstance(arg, list) else [arg]))


def _collect(node, path):
    if isinstance(node, list):
        return [v for child in node for v in _collect(child, path)]
    if not path:
        return [] if isinstance(node, dict) else [node]
    if isinstance(node, dict) and path[0] in node:
        return _collect(node[path[0]], path[1:])
    return []


def reference(policy, body, path=()):
    for key, value in policy.items():
        if key == "$or":
            ok = any(reference(branch, body, path) for branch in value)
        elif isinstance(value, dict):
            ok = reference(value, body, path + (key,))
        else:
            found = _collect(body, path + (key,))
            ok = any(
                rule["exists"] == bool(found)
                if isinstance(rule, dict) and "exists" in rule
                else any(_value_ok(rule, v) for v in found)
                for rule in value
            )
        if not ok:
            return False
    return True


STRINGS = st.sampled_from(["x", "xy", "yx", "X", "", "10.0.0.1", "5"])
NUMBERS = st.sampled_from([-2, 0, 1.5, 5, 100])
SCALARS = st.one_of(STRINGS, NUMBERS, st.booleans(), st.none())
PLAIN = st.one_of(STRINGS, NUMBERS)
NUMERIC = st.one_of(
    st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), NUMBERS).map(list),
    st.tuples(
        st.sampled_from([">", ">="]),
        st.sampled_from([-2, 0, 1.5]),
        st.sampled_from(["<", "<="]),
        st.sampled_from([1.5, 5, 100]),
    ).map(list),
)
RULES = st.one_of(
    SCALARS,
    st.builds(lambda a: {"prefix": a}, STRINGS),
    st.builds(lambda a: {"suffix": a}, STRINGS),
    st.builds(lambda a: {"equals-ignore-case": a}, STRINGS),
    st.builds(lambda a: {"numeric": a}, NUMERIC),
    st.builds(lambda a: {"exists": a}, st.booleans()),
    st.builds(lambda a: {"cidr": a}, st.sampled_from(["10.0.0.0/8", "10.0.0.2/32"])),
    st.builds(
        lambda a: {"anything-but": a},
        st.one_of(
            PLAIN,
            st.lists(PLAIN, min_size=1, max_size=3),
            st.builds(lambda p: {"prefix": p}, STRINGS),
            st.builds(lambda p: {"suffix": p}, STRINGS),
            st.builds(lambda p: {"equals-ignore-case": p}, STRINGS),
        ),
    ),
)
KEYS = st.sampled_from(["a", "b"])
LEAF_POLICY = st.dictionaries(KEYS, st.lists(RULES, min_size=1, max_size=2), min_size=1, max_size=2)
BODY_POLICY = st.one_of(
    LEAF_POLICY,
    LEAF_POLICY,
    st.builds(lambda top, nested: {**top, "n": nested}, LEAF_POLICY, LEAF_POLICY),
    st.builds(
        lambda top, one, two: {**top, "$or": [one, two]}, LEAF_POLICY, LEAF_POLICY, LEAF_POLICY
    ),
)
VALUES = st.one_of(SCALARS, SCALARS, st.lists(SCALARS, max_size=3))
FLAT_BODY = st.dictionaries(KEYS, VALUES, max_size=2)
BODIES = st.builds(
    lambda top, nested: {**top, "n": nested} if nested else top,
    FLAT_BODY,
    st.one_of(st.none(), FLAT_BODY, st.lists(FLAT_BODY, max_size=2)),
)


def _valid(policy, scope):
    try:
        filtering.validate_policy(policy, scope)
    except ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(BODY_POLICY, BODIES)
def test_the_compiled_matcher_agrees_with_a_naive_interpreter(policy, body):
    assume(_valid(policy, BODY))
    compiled = filtering.compile_policy(policy, BODY)
    assert compiled.matches(None, body) is reference(policy, body)
    assert compiled.matches(None, json.dumps(body)) is reference(policy, body)


def _as_attribute(value):
    if isinstance(value, list):
        return arr(*value)
    return s(value) if isinstance(value, str) else n(value)


@settings(max_examples=800, deadline=None)
@given(
    LEAF_POLICY, st.dictionaries(KEYS, st.one_of(PLAIN, st.lists(PLAIN, max_size=3)), max_size=3)
)
def test_attributes_and_a_flat_body_with_the_same_values_match_alike(policy, values):
    assume(_valid(policy, ATTR))
    attributes = {key: _as_attribute(value) for key, value in values.items()}
    assert filtering.matches(policy, attributes, None, ATTR) is filtering.matches(
        policy, None, values, BODY
    )


@given(st.lists(SCALARS, min_size=1, max_size=5), st.data())
def test_a_policy_of_exact_values_matches_a_message_built_from_one_of_them(values, data):
    chosen = data.draw(st.sampled_from(values))
    assert body_match({"k": values}, {"k": chosen}) is True
    if chosen is not None and not isinstance(chosen, bool):
        assert attr_match({"k": values}, k=_as_attribute(chosen)) is True


@given(st.one_of(PLAIN, st.lists(PLAIN, min_size=1, max_size=3)), st.data())
def test_anything_but_never_matches_an_excluded_value(excluded, data):
    value = data.draw(st.sampled_from(excluded if isinstance(excluded, list) else [excluded]))
    policy = {"k": [{"anything-but": excluded}]}
    assert body_match(policy, {"k": value}) is False
    assert attr_match(policy, k=_as_attribute(value)) is False


JSON = st.recursive(
    st.one_of(
        SCALARS, st.sampled_from(["prefix", "numeric", "$or", "anything-but", "exists", "cidr"])
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["$or", "prefix", "numeric", "exists", "anything-but", "cidr", "k", "j"]
            ),
            children,
            max_size=3,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(JSON, st.sampled_from([ATTR, BODY]), BODIES)
def test_any_json_either_validates_and_evaluates_or_raises_a_validation_error(policy, scope, body):
    try:
        matcher = filtering.compile_policy(policy, scope)
    except ValidationError as err:
        assert err.field == "options.filter_policy"
        return
    assert matcher.matches({"k": s("x")}, body) in (True, False)
