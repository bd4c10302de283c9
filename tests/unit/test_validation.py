"""Unit tests of notifier.core.validation: every rejection names its field."""

import json

import pytest

from notifier.conf import load_conf
from notifier.core import validation
from notifier.errors import ValidationError
from notifier.services.subscriptions import checked_fields
from tests.support.resolver import FakeResolver

# The host names these subscriptions use, as DNS answered them once.
RESOLVER = FakeResolver(
    {"example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}
)


@pytest.fixture(scope="module")
def conf():
    return load_conf([])


def nested_lists(depth):
    return "[" * depth + "]" * depth


def rejects(call, field):
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.field == field
    assert caught.value.description
    return caught.value


# --- parse_json -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"a": [1, 2.5, null, true]}', {"a": [1, 2.5, None, True]}),
        (b"[]", []),
        (b'"text"', "text"),
        (b"0", 0),
        ('{"é": "ü"}'.encode(), {"é": "ü"}),
        (b'"\\u00e9"', "é"),
        (b" \n{}\t", {}),
        (nested_lists(32).encode(), json.loads(nested_lists(32))),
    ],
)
def test_parse_json_returns_the_document_of_strict_json(raw, expected):
    assert validation.parse_json(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="only whitespace"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"{'a': 1}", id="single quotes"),
        pytest.param(b'{"a": 1,}', id="trailing comma"),
        pytest.param(b"[1] [2]", id="two documents"),
        pytest.param(b"NaN", id="NaN"),
        pytest.param(b'{"a": Infinity}', id="Infinity"),
        pytest.param(b"[-Infinity]", id="-Infinity"),
        pytest.param(b'"\xff"', id="invalid UTF-8"),
        pytest.param(b'"\xed\xa0\x80"', id="UTF-8 encoded surrogate"),
        pytest.param("[1]".encode("utf-16"), id="UTF-16"),
        pytest.param(nested_lists(33).encode(), id="33 nested lists"),
        pytest.param(nested_lists(1000).encode(), id="1000 nested lists"),
        pytest.param(nested_lists(100000).encode(), id="100000 nested lists"),
        pytest.param(('{"a":' * 40 + "1" + "}" * 40).encode(), id="40 nested objects"),
        pytest.param(b"1" * 5000, id="integer over 4300 digits"),
        pytest.param(b"1e999", id="float overflow"),
        pytest.param(b'"\\ud800"', id="lone surrogate"),
    ],
)
def test_parse_json_rejects_anything_but_strict_json(raw):
    rejects(lambda: validation.parse_json(raw), "body")


def test_parse_json_names_the_field_it_was_given():
    rejects(lambda: validation.parse_json(b"{", field="options"), "options")


# --- names, headers, numbers ---------------------------------------------------------


@pytest.mark.parametrize("name", ["q", "Q-1_x", "a" * 64, "0"])
def test_a_source_name_of_letters_digits_underscores_and_hyphens_is_accepted(name):
    assert validation.source_name(name) == name


@pytest.mark.parametrize("name", ["", None, "a" * 65, "a.b", "a b", "a/b", "é", "a\n", "a:b"])
def test_a_bad_source_name_is_rejected_naming_its_kind(name):
    rejects(lambda: validation.source_name(name), "queue_name")
    rejects(lambda: validation.source_name(name, "topic"), "topic_name")


@pytest.mark.parametrize("value", ["p", "tenant-1", "!#$%", "~" * 256])
def test_a_printable_ascii_project_id_is_accepted(value):
    assert validation.project_id(value) == value


@pytest.mark.parametrize("value", [None, "", "a:b", "a b", "é", "x" * 257, "a\tb", "p\n"])
def test_a_missing_or_malformed_project_id_is_rejected(value):
    rejects(lambda: validation.project_id(value), "X-Project-ID")


@pytest.mark.parametrize(
    "value", ["3f1c1a6e-4b8f-4bd0-9d0c-0a7a4f9e2b11", "3F1C1A6E4B8F4BD09D0C0A7A4F9E2B11"]
)
def test_a_uuid_client_id_is_accepted(value):
    assert validation.client_id(value) == value


@pytest.mark.parametrize("value", [None, "", "client", "3f1c1a6e-4b8f", "g" * 32])
def test_a_missing_or_malformed_client_id_is_rejected(value):
    rejects(lambda: validation.client_id(value), "Client-ID")


@pytest.mark.parametrize(
    "value, minimum, maximum",
    [
        (True, None, None),
        (1.0, None, None),
        ("1", None, None),
        (None, None, None),
        (59, 60, None),
        (101, None, 100),
        (-1, 0, 10),
    ],
)
def test_integer_rejects_non_integers_and_out_of_range_values(value, minimum, maximum):
    rejects(lambda: validation.integer(value, "n", minimum, maximum), "n")


@pytest.mark.parametrize("value", [60, 100, 75])
def test_integer_accepts_the_bounds_themselves(value):
    assert validation.integer(value, "n", 60, 100) == value


@pytest.mark.parametrize("raw, expected", [(None, 20), ("1", 1), ("20", 20), ("07", 7)])
def test_limit_param_defaults_to_the_maximum(raw, expected):
    assert validation.limit_param(raw, 20) == expected


@pytest.mark.parametrize("raw", ["0", "21", "-1", "ten", "", "1.5"])
def test_limit_param_rejects_non_numbers_and_values_out_of_range(raw):
    rejects(lambda: validation.limit_param(raw, 20), "limit")


# --- messages --------------------------------------------------------------------------


def test_messages_takes_the_list_from_a_messages_object_or_a_bare_list(conf):
    expected = [{"body": {"a": 1}, "ttl": 300}]
    assert validation.messages({"messages": [{"body": {"a": 1}}]}, conf, 300) == expected
    assert validation.messages([{"body": {"a": 1}}], conf, 300) == expected


def test_a_message_without_ttl_gets_the_default_ttl(conf):
    (message,) = validation.messages([{"body": None}], conf, 600)
    assert message == {"body": None, "ttl": 600}


def test_a_message_keeps_its_tags_and_attributes(conf):
    attributes = {
        "kind": {"DataType": "String", "StringValue": "order"},
        "n": {"DataType": "Number", "StringValue": "5"},
        "tags": {"DataType": "String.Array", "StringValue": '["a"]'},
    }
    message = validation.message(
        {"body": 1, "ttl": 60, "filter_policies": ["a"], "attributes": attributes}, 0, conf, 3600
    )
    assert message == {"body": 1, "ttl": 60, "filter_policies": ["a"], "attributes": attributes}


def test_the_ttl_bounds_are_inclusive(conf):
    for ttl in (60, conf.transport.max_message_ttl):
        assert validation.message({"body": 1, "ttl": ttl}, 0, conf, 3600)["ttl"] == ttl


def test_as_many_messages_as_max_messages_per_post_are_accepted(conf):
    limit = conf.transport.max_messages_per_post
    assert len(validation.messages([{"body": i} for i in range(limit)], conf, 60)) == limit


@pytest.mark.parametrize(
    "document, field",
    [
        ({}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ([], "messages"),
        ("messages", "messages"),
        (None, "messages"),
        ([{"body": i} for i in range(21)], "messages"),
        ([{"body": 1}, "two"], "messages[1]"),
        ([{"body": 1}, {"ttl": 60}], "messages[1].body"),
        ([{"body": 1, "id": "x"}], "messages[0]"),
        ([{"body": 1, "ttl": "60"}], "messages[0].ttl"),
        ([{"body": 1, "ttl": None}], "messages[0].ttl"),
        ([{"body": 1, "ttl": False}], "messages[0].ttl"),
        ([{"body": 1, "ttl": 60.0}], "messages[0].ttl"),
        ([{"body": 1, "ttl": -1}], "messages[0].ttl"),
        ([{"body": 1, "ttl": 59}], "messages[0].ttl"),
        ([{"body": 1, "ttl": 1209601}], "messages[0].ttl"),
        ([{"body": 1, "filter_policies": "a"}], "messages[0].filter_policies"),
        ([{"body": 1, "filter_policies": [""]}], "messages[0].filter_policies"),
        ([{"body": 1, "filter_policies": [1]}], "messages[0].filter_policies"),
        ([{"body": 1, "filter_policies": ["a"] * 101}], "messages[0].filter_policies"),
        ([{"body": 1, "attributes": []}], "messages[0].attributes"),
        ([{"body": 1, "attributes": {"a": "x"}}], "messages[0].attributes.a"),
        (
            [{"body": 1, "attributes": {"a": {"StringValue": "x"}}}],
            "messages[0].attributes.a.DataType",
        ),
        (
            [{"body": 1, "attributes": {"a": {"DataType": "Date", "StringValue": "x"}}}],
            "messages[0].attributes.a.DataType",
        ),
        (
            [{"body": 1, "attributes": {"a": {"DataType": "Number", "StringValue": 5}}}],
            "messages[0].attributes.a.StringValue",
        ),
        (
            [
                {
                    "body": 1,
                    "attributes": {
                        f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(11)
                    },
                }
            ],
            "messages[0].attributes",
        ),
    ],
)
def test_a_bad_message_post_is_rejected_naming_the_field(conf, document, field):
    rejects(lambda: validation.messages(document, conf, 3600), field)


@pytest.mark.parametrize("delay", ["soon", -1, 901, 1.5, True, None])
def test_a_message_delay_outside_0_to_max_message_delay_is_refused(conf, delay):
    rejects(
        lambda: validation.message({"body": 1, "delay": delay}, 0, conf, 3600),
        "messages[0].delay",
    )


@pytest.mark.parametrize("delay, kept", [(0, None), (1, 1), (900, 900)])
def test_a_message_delay_is_kept_when_not_zero(conf, delay, kept):
    checked = validation.message({"body": 1, "delay": delay}, 0, conf, 3600)
    assert checked.get("delay") == kept


@pytest.mark.parametrize("default, kept", [(0, None), (30, 30), (5000, 900)])
def test_the_queue_default_delay_applies_within_todays_limit(conf, default, kept):
    checked = validation.message({"body": 1}, 0, conf, 3600, default_delay=default)
    assert checked.get("delay") == kept


def test_a_messages_own_delay_wins_over_the_queue_default(conf):
    checked = validation.message({"body": 1, "delay": 0}, 0, conf, 3600, default_delay=60)
    assert "delay" not in checked


# --- queue metadata ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"colour": "red", "n": [1, {"x": None}]},
        {"_retry_policy": {}},
        {
            "_retry_policy": {
                "minimum_delay": 1,
                "maximum_delay": 2,
                "retry_backoff_function": "geometric",
            }
        },
        {"_default_message_ttl": 60},
        {"_default_message_delay": 0},
        {"_default_message_delay": 900},
        {
            "_max_claim_count": 3,
            "_dead_letter_queue": "dead-letters_1",
            "_dead_letter_queue_messages_ttl": 60,
        },
        {"_max_claim_count": 1},  # alone it does nothing, as in Zaqar
    ],
)
def test_good_queue_metadata_is_returned_unchanged(conf, metadata):
    assert validation.queue_metadata(metadata, conf) == metadata


@pytest.mark.parametrize(
    "metadata, field",
    [
        ([], "metadata"),
        (None, "metadata"),
        ({"a": "x" * 65536}, "metadata"),
        ({"_retry_policy": []}, "_retry_policy"),
        ({"_retry_policy": {"maximum_delay": -5}}, "_retry_policy.maximum_delay"),
        (
            {"_retry_policy": {"minimum_delay": 10, "maximum_delay": 5}},
            "_retry_policy.maximum_delay",
        ),
        ({"_retry_policy": {"delay": 5}}, "_retry_policy.delay"),
        ({"_default_message_ttl": 59}, "_default_message_ttl"),
        ({"_default_message_ttl": 1209601}, "_default_message_ttl"),
        ({"_default_message_ttl": "600"}, "_default_message_ttl"),
        ({"_default_message_delay": -1}, "_default_message_delay"),
        ({"_default_message_delay": 901}, "_default_message_delay"),
        ({"_default_message_delay": "60"}, "_default_message_delay"),
        ({"_max_claim_count": 0}, "_max_claim_count"),
        ({"_max_claim_count": "3"}, "_max_claim_count"),
        ({"_dead_letter_queue": ""}, "_dead_letter_queue"),
        ({"_dead_letter_queue": "a/b"}, "_dead_letter_queue"),
        ({"_dead_letter_queue": "x" * 65}, "_dead_letter_queue"),
        ({"_dead_letter_queue": ["q"]}, "_dead_letter_queue"),
        ({"_dead_letter_queue_messages_ttl": 59}, "_dead_letter_queue_messages_ttl"),
        ({"_dead_letter_queue_messages_ttl": 1209601}, "_dead_letter_queue_messages_ttl"),
    ],
)
def test_bad_queue_metadata_is_rejected_naming_the_field(conf, metadata, field):
    rejects(lambda: validation.queue_metadata(metadata, conf), field)


# --- subscriptions ---------------------------------------------------------------------


def test_a_subscription_gets_the_default_ttl_and_empty_options(conf):
    assert checked_fields({"subscriber": "http://example.com/"}, conf, RESOLVER) == {
        "subscriber": "http://example.com/",
        "ttl": 3600,
        "options": {},
    }


@pytest.mark.parametrize(
    "document",
    [
        {"subscriber": "https://example.com:8443/hook?x=1", "ttl": 60},
        {"subscriber": "HTTP://Example.COM/", "ttl": 10 * 365 * 86400},
        {"subscriber": "http://93.184.216.34:1/"},
        {"subscriber": "http://[2606:2800:220:1:248:1893:25c8:1946]:8080/"},
        {
            "subscriber": "http://example.com/",
            "options": {
                "post_data": '{"m": "$zaqar_message$"}',
                "post_headers": {"X-Token": "t"},
                "_retry_policy": {"retries_with_no_delay": 0},
                "filter_policies": ["a", "b"],
                "filter_policy": {"kind": ["order"]},
                "anything": {"else": 1},
            },
        },
    ],
)
def test_a_good_subscription_is_accepted(conf, document):
    fields = checked_fields(document, conf, RESOLVER)
    assert fields["subscriber"] == document["subscriber"]
    assert fields["options"] == document.get("options", {})


@pytest.mark.parametrize(
    "document, field",
    [
        ([], "body"),
        ("http://example.com/", "body"),
        ({}, "subscriber"),
        ({"ttl": 60}, "subscriber"),
        ({"subscriber": None}, "subscriber"),
        ({"subscriber": 42}, "subscriber"),
        ({"subscriber": ["http://example.com/"]}, "subscriber"),
        ({"subscriber": ""}, "subscriber"),
        ({"subscriber": "foo"}, "subscriber"),
        ({"subscriber": "ftp://example.com/"}, "subscriber"),
        ({"subscriber": "ws://example.com/"}, "subscriber"),
        ({"subscriber": "trust+http://"}, "subscriber"),
        ({"subscriber": "http://"}, "subscriber"),
        ({"subscriber": "http:example.com"}, "subscriber"),
        ({"subscriber": "http://:80/"}, "subscriber"),
        ({"subscriber": "http://example.com:65536/"}, "subscriber"),
        ({"subscriber": "http://example.com:-1/"}, "subscriber"),
        ({"subscriber": "http://example.com:http/"}, "subscriber"),
        ({"subscriber": "http://[::1/"}, "subscriber"),
        ({"subscriber": "http://example.com/", "ttl": 59}, "ttl"),
        ({"subscriber": "http://example.com/", "ttl": 10 * 365 * 86400 + 1}, "ttl"),
        ({"subscriber": "http://example.com/", "ttl": "3600"}, "ttl"),
        ({"subscriber": "http://example.com/", "ttl": True}, "ttl"),
        ({"subscriber": "http://example.com/", "ttl": None}, "ttl"),
        ({"subscriber": "http://example.com/", "options": None}, "options"),
        ({"subscriber": "http://example.com/", "options": ["a"]}, "options"),
        ({"subscriber": "http://example.com/", "options": {"_retry_policy": "x"}}, "_retry_policy"),
        (
            {
                "subscriber": "http://example.com/",
                "options": {"_retry_policy": {"backoff_retries": -1}},
            },
            "_retry_policy.backoff_retries",
        ),
        (
            {"subscriber": "http://example.com/", "options": {"post_data": {"a": 1}}},
            "options.post_data",
        ),
        (
            {"subscriber": "http://example.com/", "options": {"post_headers": ["a"]}},
            "options.post_headers",
        ),
        (
            {"subscriber": "http://example.com/", "options": {"post_headers": {"A": 1}}},
            "options.post_headers",
        ),
        (
            {"subscriber": "http://example.com/", "options": {"post_headers": {"A:B": "c"}}},
            "options.post_headers",
        ),
        (
            {"subscriber": "http://example.com/", "options": {"filter_policies": "a"}},
            "options.filter_policies",
        ),
        (
            {"subscriber": "http://example.com/", "options": {"filter_policy": []}},
            "options.filter_policy",
        ),
        ({"subscriber": "http://example.com/", "confirmed": True}, "confirmed"),
    ],
)
def test_a_bad_subscription_is_rejected_naming_the_field(conf, document, field):
    rejects(lambda: checked_fields(document, conf, RESOLVER), field)


def test_a_scheme_left_out_of_subscriber_types_is_rejected(conf):
    conf.set_override("subscriber_types", ["https"], group="transport")
    try:
        rejects(
            lambda: checked_fields({"subscriber": "http://example.com/"}, conf, RESOLVER),
            "subscriber",
        )
        fields = checked_fields({"subscriber": "https://example.com/"}, conf, RESOLVER)
        assert fields["subscriber"] == "https://example.com/"
    finally:
        conf.clear_override("subscriber_types", group="transport")


@pytest.mark.parametrize(
    "patch",
    [{"ttl": 60}, {"subscriber": "x"}, {"options": {}}, {"ttl": 1, "subscriber": 2, "options": 3}],
)
def test_a_subscription_patch_of_known_fields_passes_the_shape_check(patch):
    assert validation.subscription_patch(patch) == patch


@pytest.mark.parametrize(
    "patch, field",
    [
        ({}, "body"),
        ([], "body"),
        (None, "body"),
        ("ttl", "body"),
        ({"ttl": 60, "id": "x"}, "id"),
        ({"source": "q", "age": 1}, "age"),
    ],
)
def test_a_subscription_patch_must_be_a_non_empty_object_of_known_fields(patch, field):
    rejects(lambda: validation.subscription_patch(patch), field)
