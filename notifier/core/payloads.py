"""Build what subscribers receive: plain data in, plain data out."""

import datetime
import json
from typing import Any

NOTIFICATION = "Notification"


def isoformat(epoch_seconds: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def delivery_id(message_id: str, subscription_id: str) -> str:
    """Return the id of one (message, subscription) delivery, stable across retries."""
    return f"msg_{message_id}_{subscription_id}"


def notification_payload(
    message: dict[str, Any], source_kind: str, source_name: str
) -> dict[str, Any]:
    """Return the JSON document a webhook receives for one message.

    Zaqar's fields (``body``, ``ttl``, ``queue_name``, ``Message_Type``) so
    Zaqar receivers keep working, plus ``message_id`` and ``timestamp`` (the
    message's creation time) so receivers can deduplicate retries.
    """
    payload = {
        "body": message["body"],
        "ttl": message["ttl"],
        "Message_Type": NOTIFICATION,
        "queue_name": source_name,
        "message_id": message["id"],
        "timestamp": isoformat(message["created"]),
    }
    if source_kind == "topics":
        payload["topic_name"] = source_name
    return payload


POST_DATA_PLACEHOLDER = '"$zaqar_message$"'


def render_webhook_body(payload: Any, post_data_template: str | None = None) -> bytes:
    """Return the HTTP body: the payload as JSON, or Zaqar's ``post_data``
    template with ``"$zaqar_message$"`` replaced by it."""
    document = json.dumps(payload, ensure_ascii=False)
    if post_data_template:
        document = post_data_template.replace(POST_DATA_PLACEHOLDER, document)
    return document.encode("utf-8")


EXHAUSTED = "DeliveryExhausted"


def exhausted_notice(
    message: dict[str, Any],
    source: list[str],
    subscription_id: str,
    attempts: int,
    last_attempt: dict[str, Any],
    died_at: float,
) -> dict[str, Any]:
    """Return the body of the message posted to a source's
    ``_dead_letter_queue`` when a notification exhausted its retries: the
    original message, whose delivery failed, how often, and the last
    attempt (already redacted: no response headers, no secrets)."""
    _, kind, name = source
    return {
        "event": EXHAUSTED,
        "source": {"kind": kind, "name": name},
        "subscription_id": subscription_id,
        "attempts": attempts,
        "dead_lettered_at": isoformat(died_at),
        "last_attempt": last_attempt,
        "message": {
            "id": message["id"],
            "body": message["body"],
            "ttl": message["ttl"],
            "created": isoformat(message["created"]),
        },
    }
