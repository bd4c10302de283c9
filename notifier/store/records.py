"""What the store writes and how: sources, limits, ids, JSON, byte buckets.

Small values and pure helpers shared by the repositories; no Redis here.
"""

import json
import math
import uuid
from typing import Any, NamedTuple

from notifier import errors

#: A stored record (a message, a subscription, an attempt, a dead letter).
Record = dict[str, Any]

#: Ids of control messages (confirmation requests) start with this; they are
#: stored under ``ctl:`` keys, apart from the messages of queues and topics.
CONTROL_PREFIX = "ctl-"
#: Outcomes after which a delivery attempt must not run again.
RAN_OUTCOMES = ("delivered", "failed", "dead_lettered", "held")
#: Stored bytes are counted per minute of expiry (rounded up); the Lua
#: library ``scripts/usage.lua`` computes the same bucket.
USAGE_BUCKET_SECONDS = 60


class Source(NamedTuple):
    """Where messages are posted and subscriptions hang: a queue or a topic."""

    project: str
    kind: str  # "queues" or "topics"
    name: str

    @property
    def path(self) -> str:
        return f"{self.project}:{self.kind}:{self.name}"

    def to_list(self) -> list[str]:
        return [self.project, self.kind, self.name]


class Limits(NamedTuple):
    """Retention and quotas (0: no limit); ``notifier.conf.limits``."""

    dead_letter_ttl_seconds: int = 7 * 86400
    max_dead_letters_per_subscription: int = 1000
    subscription_log_ttl_seconds: int = 7 * 86400
    max_subscriptions_per_project: int = 0
    max_stored_bytes_per_project: int = 0

    @classmethod
    def from_conf(cls, conf: Any) -> "Limits":
        return cls(
            conf.notification.dead_letter_ttl_seconds,
            conf.notification.max_dead_letters_per_subscription,
            conf.notification.subscription_log_ttl_seconds,
            conf.quota.max_subscriptions_per_project,
            conf.quota.max_stored_bytes_per_project,
        )


def done_horizon_seconds(conf: Any) -> int:
    """How long an attempt that ran is remembered: longer than any way the same
    attempt can come back (a redelivered task, a re-sent outbox entry, a retry
    whose scheduler lease lapsed), and no longer, so Redis memory plateaus
    under a steady load instead of holding a flag per delivery for a day."""
    return 2 * int(
        max(conf.worker.visibility_timeout_seconds, conf.worker.reconcile_after_seconds, 30)
    )


def usage_bucket(expires: float) -> int:
    return math.ceil(expires / USAGE_BUCKET_SECONDS)


def new_id() -> str:
    """Return a new opaque id (32 hex digits)."""
    return uuid.uuid4().hex


def is_control_id(message_id: object) -> bool:
    """Return whether ``message_id`` names a control message."""
    return isinstance(message_id, str) and message_id.startswith(CONTROL_PREFIX)


def redacted_attempt(attempt: Record) -> Record:
    """Return an attempt record as the owner may read it: of a control
    message, neither its id nor the endpoint's reply (which could echo the
    confirmation link) is shown; the record says ``control: true``."""
    if not is_control_id(attempt.get("message_id")):
        return attempt
    shown = dict(attempt, message_id=None, control=True)
    shown.pop("response_body", None)
    return shown


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(raw: str | bytes) -> Record:
    """Decode a stored JSON record."""
    record: Record = json.loads(raw)
    return record


def message_expiry(message: Record) -> float:
    """When a stored message's bytes stop counting: its TTL after it was
    stored, or after it was restored by a replay."""
    return float(message.get("expires") or message["created"] + int(message["ttl"]))


def letter_project(letter: Record) -> str:
    """The project a dead letter counts against: its subscription's."""
    return str(letter.get("project") or letter["message"]["source"][0])


def bytes_quota_error(project: str, used: int, limit: int) -> errors.QuotaExceededError:
    return errors.QuotaExceededError(
        f"Project {project!r} stores {used} bytes of messages and dead letters; this post "
        f"would pass its quota ([quota] max_stored_bytes_per_project = {limit}). Space "
        "frees as messages expire or are delivered, and as dead letters are replayed, "
        "expire or are deleted with their subscription.",
        limit="max_stored_bytes_per_project",
    )
