"""Validate API input: pure functions raising ValidationError naming the field."""

import json
import re
import uuid
from typing import Any, NoReturn

from notifier.conf import retry_defaults
from notifier.core.retry import RetryPolicy
from notifier.errors import ValidationError

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}\Z")
PROJECT_RE = re.compile(r"^[!-9;-~]{1,256}\Z")  # printable ASCII except ':'
MAX_JSON_DEPTH = 32


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} does not fit in a double")
    return value


def parse_json(raw: bytes, field: str = "body") -> Any:
    """Parse a request body as strict JSON (UTF-8, no NaN, bounded depth)."""
    if not raw:
        raise ValidationError("The request body is empty; JSON was expected.", field=field)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("The request body is not valid UTF-8.", field=field) from exc
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        # Lone surrogates (\ud800) parse but cannot be stored as UTF-8.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"The request body is not valid JSON: {exc}", field=field) from exc
    if _depth(document) > MAX_JSON_DEPTH:
        raise ValidationError(
            f"The request body nests deeper than {MAX_JSON_DEPTH} levels.", field=field
        )
    return document


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def source_name(name: str, kind: str = "queue") -> str:
    if not NAME_RE.match(name or ""):
        raise ValidationError(
            f"The {kind} name {name!r} is invalid: use 1 to 64 letters, digits, "
            f"underscores or hyphens.",
            field=f"{kind}_name",
        )
    return name


def project_id(value: str | None) -> str:
    if value is None or value == "":
        raise ValidationError("The header X-Project-ID is missing.", field="X-Project-ID")
    if not PROJECT_RE.match(value):
        raise ValidationError(
            "The header X-Project-ID must be 1 to 256 printable "
            "ASCII characters without ':' or spaces.",
            field="X-Project-ID",
        )
    return value


def client_id(value: str | None) -> str:
    if not value:
        raise ValidationError("The header Client-ID is missing.", field="Client-ID")
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ValidationError("The header Client-ID must be a UUID.", field="Client-ID") from exc
    return value


def integer(
    value: object, field: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be an integer.", field=field)
    if minimum is not None and value < minimum:
        raise ValidationError(f"{field} must be at least {minimum}.", field=field)
    if maximum is not None and value > maximum:
        raise ValidationError(f"{field} must be at most {maximum}.", field=field)
    return value


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object.", field=field)
    return value


def limit_param(raw: str | None, maximum: int) -> int:
    if raw is None:
        return maximum
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError("limit must be an integer.", field="limit") from exc
    return integer(value, "limit", 1, maximum)


def queue_metadata(metadata: Any, conf: Any) -> dict[str, Any]:
    """Check queue metadata, including the reserved keys notifier reads."""
    checked = obj(metadata, "metadata")
    if len(json.dumps(metadata)) > conf.transport.max_queue_metadata:
        raise ValidationError(
            f"Queue metadata is larger than {conf.transport.max_queue_metadata} bytes.",
            field="metadata",
        )
    if "_retry_policy" in metadata:
        RetryPolicy.from_dict(metadata["_retry_policy"], retry_defaults(conf))
    if "_default_message_ttl" in metadata:
        integer(
            metadata["_default_message_ttl"],
            "_default_message_ttl",
            60,
            conf.transport.max_message_ttl,
        )
    if DEFAULT_MESSAGE_DELAY in metadata:
        integer(metadata[DEFAULT_MESSAGE_DELAY], DEFAULT_MESSAGE_DELAY, 0, max_delay(conf))
    dead_letter_metadata(metadata, conf)
    return checked


#: Queue metadata of Zaqar's delayed queues and dead-letter queues.
DEFAULT_MESSAGE_DELAY = "_default_message_delay"
MAX_CLAIM_COUNT = "_max_claim_count"
DEAD_LETTER_QUEUE = "_dead_letter_queue"
DEAD_LETTER_QUEUE_TTL = "_dead_letter_queue_messages_ttl"


def max_delay(conf: Any) -> int:
    return int(conf.transport.max_message_delay)


def dead_letter_metadata(metadata: dict[str, Any], conf: Any) -> None:
    """Check the dead-letter keys: a claim count from 1, a queue name, a TTL
    for moved messages as any message's."""
    if MAX_CLAIM_COUNT in metadata:
        integer(metadata[MAX_CLAIM_COUNT], MAX_CLAIM_COUNT, 1, 1_000_000)
    if DEAD_LETTER_QUEUE in metadata:
        target = metadata[DEAD_LETTER_QUEUE]
        if not isinstance(target, str) or not NAME_RE.match(target):
            raise ValidationError(
                f"{DEAD_LETTER_QUEUE} must be a queue name (1-64 letters, digits, _ or -).",
                field=DEAD_LETTER_QUEUE,
            )
    if DEAD_LETTER_QUEUE_TTL in metadata:
        integer(
            metadata[DEAD_LETTER_QUEUE_TTL],
            DEAD_LETTER_QUEUE_TTL,
            60,
            conf.transport.max_message_ttl,
        )


MESSAGE_FIELDS = {"body", "ttl", "delay", "filter_policies", "attributes"}


def messages(
    document: Any, conf: Any, default_ttl: int, default_delay: int = 0
) -> list[dict[str, Any]]:
    """Return the list of message dicts of a POST .../messages body."""
    if isinstance(document, dict):
        if "messages" not in document:
            raise ValidationError("The field 'messages' is missing.", field="messages")
        _no_unknown(document, {"messages"})
        document = document["messages"]
    if not isinstance(document, list) or not document:
        raise ValidationError("messages must be a non-empty list.", field="messages")
    limit = conf.transport.max_messages_per_post
    if len(document) > limit:
        raise ValidationError(
            f"No more than {limit} messages may be posted at once.", field="messages"
        )
    return [message(m, i, conf, default_ttl, default_delay) for i, m in enumerate(document)]


def message(
    value: Any, index: int, conf: Any, default_ttl: int, default_delay: int = 0
) -> dict[str, Any]:
    field = f"messages[{index}]"
    obj(value, field)
    unknown = set(value) - MESSAGE_FIELDS
    if unknown:
        raise ValidationError(
            f"{field} has unknown fields: {', '.join(sorted(unknown))}.", field=field
        )
    if "body" not in value:
        raise ValidationError(f"{field}.body is missing.", field=f"{field}.body")
    ttl = integer(value.get("ttl", default_ttl), f"{field}.ttl", 60, conf.transport.max_message_ttl)
    result = {"body": value["body"], "ttl": ttl}
    if "delay" in value:
        delay = integer(value["delay"], f"{field}.delay", 0, max_delay(conf))
    else:  # the queue's default, within today's limit if that was lowered
        delay = max(0, min(int(default_delay), max_delay(conf)))
    if delay:
        result["delay"] = delay
    if "filter_policies" in value:
        from notifier.core import filtering

        filtering.validate_tags(value["filter_policies"], f"{field}.filter_policies")
        result["filter_policies"] = value["filter_policies"]
    if "attributes" in value:
        result["attributes"] = message_attributes(value["attributes"], f"{field}.attributes")
    return result


def string_list(value: Any, field: str, max_items: int = 100, max_length: int = 256) -> list[str]:
    if (
        not isinstance(value, list)
        or len(value) > max_items
        or not all(isinstance(v, str) and 0 < len(v) <= max_length for v in value)
    ):
        raise ValidationError(
            f"{field} must be a list of at most {max_items} non-empty strings.", field=field
        )
    return value


ATTRIBUTE_TYPES = ("String", "Number", "String.Array", "Binary")


def message_attributes(value: Any, field: str) -> dict[str, Any]:
    """Check SNS-style attributes: {name: {DataType, StringValue}}."""
    checked = obj(value, field)
    if len(value) > 10:
        raise ValidationError(f"{field} may hold at most 10 attributes.", field=field)
    for name, attribute in value.items():
        where = f"{field}.{name}"
        obj(attribute, where)
        data_type = attribute.get("DataType")
        if not isinstance(data_type, str) or data_type.split(".")[0] not in (
            "String",
            "Number",
            "Binary",
        ):
            raise ValidationError(
                f"{where}.DataType must be one of {', '.join(ATTRIBUTE_TYPES)}.",
                field=f"{where}.DataType",
            )
        if not isinstance(attribute.get("StringValue"), str):
            raise ValidationError(
                f"{where}.StringValue must be a string.", field=f"{where}.StringValue"
            )
    return checked


SUBSCRIPTION_FIELDS = {"subscriber", "ttl", "options"}


def subscription_patch(document: Any) -> dict[str, Any]:
    """Check a subscription PATCH body's shape; the merged result is then
    checked whole by ``subscription``."""
    checked = obj(document, "body")
    _no_unknown(checked, SUBSCRIPTION_FIELDS)
    if not checked:
        raise ValidationError("Nothing to update.", field="body")
    return checked


def _no_unknown(document: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(unknown)}.", field=unknown[0])


def subscription(document: Any, conf: Any) -> dict[str, Any]:
    """Check a whole subscription body; return {subscriber, ttl, options}.

    The subscriber URI itself is its sink's to check (a webhook's host is
    resolved): ``notifier.services.subscriptions.checked_fields`` does both."""
    from notifier.core import filtering

    obj(document, "body")
    _no_unknown(document, SUBSCRIPTION_FIELDS)
    if "subscriber" not in document:
        raise ValidationError("The field 'subscriber' is missing.", field="subscriber")
    ttl = integer(
        document.get("ttl", conf.transport.default_subscription_ttl),
        "ttl",
        60,
        conf.transport.max_subscription_ttl,
    )
    options = obj(document.get("options", {}), "options")
    if "_retry_policy" in options:
        RetryPolicy.from_dict(options["_retry_policy"], retry_defaults(conf))
    if "filter_policies" in options:
        filtering.validate_tags(options["filter_policies"], "options.filter_policies")
    if "filter_policy" in options:
        scope = options.get("filter_policy_scope", "MessageAttributes")
        filtering.validate_policy(options["filter_policy"], scope)
    return {"subscriber": document["subscriber"], "ttl": ttl, "options": options}


def since_param(raw: Any) -> float:
    """Parse a ``since`` value: epoch seconds (query string or JSON number)."""
    if raw is None:
        return 0
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationError("since must be a time in epoch seconds.", field="since") from exc
    if value != value or value < 0 or isinstance(raw, bool):
        raise ValidationError("since must be a time in epoch seconds.", field="since")
    return value


def replay_request(document: Any) -> dict[str, Any]:
    """Check a replay body: {"message_id": ID} or {"since": EPOCH}."""
    obj(document, "body")
    _no_unknown(document, {"message_id", "since"})
    if "message_id" in document:
        if not isinstance(document["message_id"], str) or not document["message_id"]:
            raise ValidationError("message_id must be a message id.", field="message_id")
        return {"message_id": document["message_id"]}
    if "since" not in document:
        raise ValidationError("Name a message_id or a since time to replay.", field="since")
    return {"since": since_param(document["since"])}
