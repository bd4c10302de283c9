"""The values that travel through delivery: a delivery, an attempt, a dead letter.

Each is a frozen dataclass whose ``to_dict()`` is exactly the JSON stored in
Redis, shown by the API and carried in task arguments (same keys, same key
order, optional keys left out as before), and whose ``from_dict()`` reads it
back. Code above the store works with these values; the store and the wire
keep the dicts::

    Delivery   {"message_id", "subscription_id", "attempt"[, "round"]}
    Attempt    {"at", "message_id", "subscription_id", "attempt", "outcome",
                "duration_ms"[, "round", "status", "error", "detail",
                "response_body", "permanent", "retry_after", "source",
                "message_type", "next_retry_at", "control"]}
               or, for an event of the subscription (``attempt`` None):
               {"at", "subscription_id", "message_id": null, "outcome"[, "detail"]}
    DeadLetter {"message_id", "subscription_id", "project", "attempts",
                "last", "died_at"[, "message" | "control", "message_type"],
                "history"}
"""

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any

#: Longest text (error, detail, response body) an attempt record keeps.
MAX_TEXT = 2048


class Outcome(enum.StrEnum):
    """What became of a delivery attempt (the attempt record's ``outcome``)."""

    DELIVERED = "delivered"
    FAILED = "failed"  # to be retried
    DEAD_LETTERED = "dead_lettered"  # failed for the last time
    HELD = "held"  # failed; the subscription is disabled, kept until enabled
    EXPIRED = "expired"  # the message's TTL passed before it went out
    SUPERSEDED = "superseded"  # a confirmation whose link is no longer current
    SKIPPED = "skipped"  # its filter was not evaluated (the fan-out's budget)
    DISABLED = "disabled"  # an event of the subscription, not an attempt


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one subscription; ``attempt`` 0 is the first try.

    ``round`` tells a replay (or a release of held deliveries) from the first
    run, so its attempts count afresh; 0 is the first run.
    """

    message_id: str
    subscription_id: str
    attempt: int = 0
    round: int = 0

    def next_attempt(self) -> "Delivery":
        """Return the retry of this delivery."""
        return dataclasses.replace(self, attempt=self.attempt + 1)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "message_id": self.message_id,
            "subscription_id": self.subscription_id,
            "attempt": self.attempt,
        }
        if self.round:
            record["round"] = self.round
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Delivery":
        return cls(
            record["message_id"],
            record["subscription_id"],
            record.get("attempt", 0),
            record.get("round", 0),
        )


def _clip(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) else value


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """The record of one delivery attempt, or of an event of a subscription
    (``attempt`` None: disabled), as the attempt logs keep it.

    ``source`` is the message's ``[project, kind, name]``: it lets the API show
    a message's attempts only to the source's own project. ``control`` marks a
    confirmation's record as its owner reads it (``message_id`` hidden).
    """

    at: float
    message_id: str | None
    subscription_id: str
    outcome: Outcome
    attempt: int | None = None
    duration_ms: float | None = None
    round: int = 0
    status: int | None = None
    error: str | None = None
    detail: str | None = None
    response_body: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    source: tuple[str, ...] | None = None
    message_type: str | None = None
    next_retry_at: float | None = None
    control: bool = False

    @classmethod
    def of(
        cls,
        delivery: Delivery,
        outcome: Outcome,
        at: float,
        seconds: float,
        *,
        status: int | None = None,
        error: str | None = None,
        detail: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
        response_body: str | None = None,
        source: Sequence[str] | None = None,
    ) -> "Attempt":
        """Return the record of ``delivery``'s attempt, which took ``seconds``;
        texts are cut to ``MAX_TEXT`` characters."""
        return cls(
            at=at,
            message_id=delivery.message_id,
            subscription_id=delivery.subscription_id,
            outcome=outcome,
            attempt=delivery.attempt,
            duration_ms=round(seconds * 1000, 2),
            round=delivery.round,
            status=_clip(status),
            error=_clip(error),
            detail=_clip(detail),
            response_body=_clip(response_body),
            permanent=permanent,
            retry_after=retry_after,
            source=None if source is None else tuple(source),
        )

    @classmethod
    def event(
        cls, at: float, subscription_id: str, outcome: Outcome, detail: str | None = None
    ) -> "Attempt":
        """Return the record of an event of a subscription (no message)."""
        return cls(at, None, subscription_id, outcome, detail=detail)

    @property
    def delivery(self) -> Delivery:
        """Return the delivery this attempt ran (not for an event)."""
        assert self.message_id is not None and self.attempt is not None
        return Delivery(self.message_id, self.subscription_id, self.attempt, self.round)

    def with_outcome(self, outcome: Outcome, **changes: Any) -> "Attempt":
        return dataclasses.replace(self, outcome=outcome, **changes)

    def to_dict(self) -> dict[str, Any]:
        if self.attempt is None:
            event: dict[str, Any] = {
                "at": self.at,
                "subscription_id": self.subscription_id,
                "message_id": self.message_id,
                "outcome": self.outcome.value,
            }
            if self.detail is not None:
                event["detail"] = self.detail
            return event
        record: dict[str, Any] = {
            "at": self.at,
            "message_id": self.message_id,
            "subscription_id": self.subscription_id,
            "attempt": self.attempt,
            "outcome": self.outcome.value,
            "duration_ms": self.duration_ms,
        }
        if self.round:
            record["round"] = self.round
        for key, value in (
            ("status", self.status),
            ("error", self.error),
            ("detail", self.detail),
            ("response_body", self.response_body),
        ):
            if value is not None:
                record[key] = value
        if self.permanent:
            record["permanent"] = True
        if self.retry_after is not None:
            record["retry_after"] = self.retry_after
        if self.source is not None:
            record["source"] = list(self.source)
        if self.message_type is not None:
            record["message_type"] = self.message_type
        if self.next_retry_at is not None:
            record["next_retry_at"] = self.next_retry_at
        if self.control:
            record["control"] = True
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Attempt":
        source = record.get("source")
        return cls(
            at=record["at"],
            message_id=record.get("message_id"),
            subscription_id=record["subscription_id"],
            outcome=Outcome(record["outcome"]),
            attempt=record.get("attempt"),
            duration_ms=record.get("duration_ms"),
            round=record.get("round", 0),
            status=record.get("status"),
            error=record.get("error"),
            detail=record.get("detail"),
            response_body=record.get("response_body"),
            permanent=bool(record.get("permanent")),
            retry_after=record.get("retry_after"),
            source=None if source is None else tuple(source),
            message_type=record.get("message_type"),
            next_retry_at=record.get("next_retry_at"),
            control=bool(record.get("control")),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that failed for the last time, kept for its owner to read
    and replay.

    ``message`` is the stored message, to restore it on replay. A
    confirmation's letter (``control``) has neither ``message`` nor
    ``message_id`` (its payload is a link); it is never replayed.
    ``history`` is the delivery's attempts, oldest first.
    """

    message_id: str | None
    subscription_id: str
    project: str | None
    attempts: int
    last: Attempt
    died_at: float
    message: Mapping[str, Any] | None = None
    control: bool = False
    message_type: str | None = None
    history: tuple[Attempt, ...] | None = None

    @property
    def replayable(self) -> bool:
        return self.message is not None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "message_id": self.message_id,
            "subscription_id": self.subscription_id,
            "project": self.project,
            "attempts": self.attempts,
            "last": self.last.to_dict(),
            "died_at": self.died_at,
        }
        if self.message is not None:
            record["message"] = dict(self.message)
        if self.control:
            record.update(control=True, message_type=self.message_type)
        if self.history is not None:
            record["history"] = [a.to_dict() for a in self.history]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "DeadLetter":
        history = record.get("history")
        return cls(
            message_id=record.get("message_id"),
            subscription_id=record["subscription_id"],
            project=record.get("project"),
            attempts=record["attempts"],
            last=Attempt.from_dict(record["last"]),
            died_at=record["died_at"],
            message=record.get("message"),
            control=bool(record.get("control")),
            message_type=record.get("message_type"),
            history=None if history is None else tuple(Attempt.from_dict(a) for a in history),
        )
