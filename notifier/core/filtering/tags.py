"""Zaqar tag filters (``filter_policies``): plain string lists on both sides."""

from collections.abc import Iterable
from typing import Any

from notifier.errors import ValidationError

MAX_TAGS, MAX_TAG_LENGTH = 50, 256


def tags_match(subscription_tags: Iterable[str] | None, message_tags: Iterable[str] | None) -> bool:
    """Return True if a message with ``message_tags`` goes to the subscription.

    None and [] mean the same on either side: a subscription without tags
    receives everything; a message without tags reaches only such subscriptions.
    """
    if not subscription_tags:
        return True
    return bool(message_tags) and not set(subscription_tags).isdisjoint(message_tags or ())


def validate_tags(tags: Any, field: str = "filter_policies") -> None:
    """Raise ValidationError unless ``tags`` is None or a short list of strings."""
    if tags is None:
        return
    if not isinstance(tags, list):
        raise ValidationError("Tags must be a list of strings", field=field)
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} tags are allowed, got {len(tags)}", field=field)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValidationError(f"Each tag must be a non-empty string, got {tag!r}", field=field)
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(
                f"Tag {tag[:20]!r}... is longer than {MAX_TAG_LENGTH} characters", field=field
            )
