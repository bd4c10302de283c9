"""Unit tests of notifier.core.payloads: what a webhook receives, byte for byte."""

import json

import pytest

from notifier.core.payloads import (
    delivery_id,
    isoformat,
    notification_payload,
    render_webhook_body,
)

MESSAGE = {
    "id": "m1",
    "body": {"event": "created", "n": 1},
    "ttl": 300,
    "created": 1700000000.5,
    "source": ["p", "queues", "orders"],
    "attributes": {"a": {"DataType": "String", "StringValue": "x"}},
}


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1700000000.5, "2023-11-14T22:13:20.500Z"),
        (1700000000.1239, "2023-11-14T22:13:20.123Z"),
        (951782400, "2000-02-29T00:00:00.000Z"),
    ],
)
def test_isoformat_writes_utc_with_milliseconds_and_a_z(epoch, expected):
    assert isoformat(epoch) == expected


def test_a_queue_notification_carries_zaqars_fields_and_the_message_identity():
    assert notification_payload(MESSAGE, "queues", "orders") == {
        "body": {"event": "created", "n": 1},
        "ttl": 300,
        "Message_Type": "Notification",
        "queue_name": "orders",
        "message_id": "m1",
        "timestamp": "2023-11-14T22:13:20.500Z",
    }


def test_a_topic_notification_also_names_the_topic():
    payload = notification_payload(MESSAGE, "topics", "alerts")
    assert payload["topic_name"] == payload["queue_name"] == "alerts"


@pytest.mark.parametrize("body", [None, "", 0, [], "plain text", [1, {"a": None}]])
def test_the_message_body_is_carried_as_it_is(body):
    assert notification_payload(dict(MESSAGE, body=body), "queues", "q")["body"] == body


def test_a_delivery_id_is_stable_and_names_message_and_subscription():
    assert delivery_id("m1", "s1") == delivery_id("m1", "s1") == "msg_m1_s1"
    assert delivery_id("m1", "s2") != delivery_id("m2", "s1")


PAYLOAD = {
    "body": {"text": "héllo ☃"},
    "ttl": 60,
    "Message_Type": "Notification",
    "queue_name": "q",
    "message_id": "m1",
    "timestamp": "1970-01-01T00:00:00.000Z",
}


@pytest.mark.parametrize("template", [None, ""])
def test_without_post_data_the_body_is_the_payload_as_utf8_json(template):
    body = render_webhook_body(PAYLOAD, template)
    assert isinstance(body, bytes)
    assert json.loads(body) == PAYLOAD
    assert "héllo ☃".encode() in body  # not \u-escaped


@pytest.mark.parametrize(
    "template, expected",
    [
        ('{"data": "$zaqar_message$"}', {"data": PAYLOAD}),
        ('["$zaqar_message$", "$zaqar_message$"]', [PAYLOAD, PAYLOAD]),
        ('{"a": {"b": "$zaqar_message$"}, "c": 1}', {"a": {"b": PAYLOAD}, "c": 1}),
        ('"$zaqar_message$"', PAYLOAD),
        ('{"static": true}', {"static": True}),
        ('{"unquoted": "x$zaqar_message$x"}', {"unquoted": "x$zaqar_message$x"}),
    ],
)
def test_post_data_has_each_quoted_placeholder_replaced_by_the_payload(template, expected):
    assert json.loads(render_webhook_body(PAYLOAD, template)) == expected


def test_post_data_that_is_not_json_is_sent_as_written():
    body = render_webhook_body(PAYLOAD, 'msg="$zaqar_message$"&x=1')
    assert body.startswith(b"msg={") and body.endswith(b"}&x=1")


def test_a_placeholder_inside_the_message_is_not_expanded_again():
    payload = dict(PAYLOAD, body='"$zaqar_message$"')
    document = json.loads(render_webhook_body(payload, '{"d": "$zaqar_message$"}'))
    assert document == {"d": payload}


def test_a_rendered_template_is_utf8_encoded():
    body = render_webhook_body(PAYLOAD, '{"note": "ñ", "m": "$zaqar_message$"}')
    assert json.loads(body.decode("utf-8"))["note"] == "ñ"


def test_an_exhausted_notice_names_the_message_subscription_and_last_attempt():
    from notifier.core.payloads import EXHAUSTED, exhausted_notice

    message = {"id": "m1", "body": {"k": [1]}, "ttl": 300, "created": 0.5, "source": ["p"]}
    last = {"outcome": "dead_lettered", "status": 500, "attempt": 3}
    notice = exhausted_notice(message, ["p", "queues", "orders"], "s1", 4, last, 60.0)
    assert notice == {
        "event": EXHAUSTED,
        "source": {"kind": "queues", "name": "orders"},
        "subscription_id": "s1",
        "attempts": 4,
        "dead_lettered_at": "1970-01-01T00:01:00.000Z",
        "last_attempt": last,
        "message": {
            "id": "m1",
            "body": {"k": [1]},
            "ttl": 300,
            "created": "1970-01-01T00:00:00.500Z",
        },
    }
